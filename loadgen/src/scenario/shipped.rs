//! Tests of the scenario files shipped in `scenarios/`: they load as `loadgen run` loads them,
//! and their load shapes are the ones their comments and the README promise.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::Plan;
use super::schema::Protocol;
use crate::engine::request::{Rendered, RequestTemplate};

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn shipped(name: &str) -> Plan {
    let path = scenarios_dir().join(name);
    super::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn ramp_yaml_is_a_progressive_100_200_500_percent_ramp() {
    let plan = shipped("ramp.yaml");
    let load = &plan.load;
    assert!(load.is_open(), "a ramp of arrival rates");
    let base = load.start;
    assert!(base > 0.0, "starts at its baseline rate, not from zero");
    let targets: Vec<f64> = load.stages.iter().map(|s| s.target).collect();
    // Never down, and the levels it holds are exactly 1x, 2x and 5x the first.
    assert!(
        targets.windows(2).all(|w| w[0] <= w[1]),
        "progressive: {targets:?}"
    );
    let mut levels = targets.clone();
    levels.dedup();
    let factors: Vec<f64> = levels.iter().map(|t| t / base).collect();
    assert_eq!(factors, [1.0, 2.0, 5.0], "levels {levels:?} of {base}/s");
    assert_eq!(targets[0], base, "the first stage holds the baseline");
    // Each level is held by a flat stage (its own start and end at that level), long enough
    // to read its latency, not only touched at the end of a ramp.
    let mut before = base;
    let mut held = Vec::new();
    for stage in &load.stages {
        if before == stage.target {
            assert!(stage.duration >= Duration::from_secs(60), "{stage:?}");
            held.push(stage.target / base);
        }
        before = stage.target;
    }
    assert_eq!(held, [1.0, 2.0, 5.0]);
    // Mid-ramp the rate is between its levels: a ramp, not a step.
    let ramp_start = load.stages[0].duration;
    let ramp = load.stages[1].duration;
    assert_eq!(load.level_at(ramp_start + ramp / 2), 1.5 * base);
}

#[test]
fn spike_yaml_steps_to_five_times_its_users_for_its_spike_and_back() {
    let load = shipped("spike.yaml").load;
    let base = load.users_at(Duration::ZERO);
    assert_eq!(base, 1000);
    let spike_start = load.stages[0].duration;
    let spike_end = spike_start + load.stages[1].duration;
    let at = |d: Duration| load.users_at(d);
    assert_eq!(at(spike_start - Duration::from_millis(1)), base);
    assert_eq!(at(spike_start), 5 * base, "a step, not a ramp");
    assert_eq!(at(spike_end - Duration::from_millis(1)), 5 * base);
    assert_eq!(at(spike_end), base, "and straight back");
    assert_eq!(at(load.total_duration() - Duration::from_millis(1)), base);
}

/// The prompts in `scenarios/data/prompts.jsonl`, read here independently of `read_prompts`.
fn prompts_in_the_data_file() -> BTreeSet<String> {
    let text = std::fs::read_to_string(scenarios_dir().join("data/prompts.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l).unwrap() {
            serde_json::Value::String(s) => s,
            serde_json::Value::Object(o) => o["prompt"].as_str().unwrap().to_owned(),
            other => panic!("unexpected line {other}"),
        })
        .collect()
}

#[test]
fn bodies_rendered_from_ramp_yaml_carry_the_prompts_of_its_prompts_file() {
    let plan = shipped("ramp.yaml");
    let from_file = prompts_in_the_data_file();
    assert!(from_file.len() >= 10, "{from_file:?}");
    let template = RequestTemplate::new(
        &plan.request,
        &"http://127.0.0.1:1".parse().unwrap(),
        Protocol::Http1,
    )
    .unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    let mut rendered = Rendered::default();
    let mut wire = Vec::new();
    let mut seen = BTreeSet::new();
    for sequence in 0..400 {
        template.render(sequence, &mut rng, &mut rendered);
        // Read off the wire, as a server would get it.
        template.write_http1(&rendered, &mut wire);
        let at = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let body: serde_json::Value = serde_json::from_slice(&wire[at..]).unwrap();
        let prompt = body["messages"][0]["content"].as_str().unwrap().to_owned();
        assert!(from_file.contains(&prompt), "{prompt:?} is not in the file");
        seen.insert(prompt);
    }
    // Drawn across the whole file, not stuck on one line: 400 draws of 20 miss one with
    // probability about 20 * 0.95^400, i.e. never.
    assert_eq!(seen, from_file);
}
