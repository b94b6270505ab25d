//! The scenario files shipped in `scenarios/` are valid as shipped: each one passes `loadgen
//! validate` (the same parsing and checks `loadgen run` applies before it starts anything), and
//! each forwarder config beside them is accepted by the forwarder the way a run starts it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

fn scenarios_dir() -> PathBuf {
    workspace_root().join("scenarios")
}

/// Files in `dir` (not below it) whose name ends in `.yaml`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_scenario_passes_loadgen_validate() {
    let files = yaml_files(&scenarios_dir());
    // The README names these; losing one silently would make this test vacuous for it.
    for expected in [
        "smoke", "steady", "burst", "fault", "ramp", "spike", "chaos", "cache",
    ] {
        assert!(
            files.iter().any(|f| f.file_stem().unwrap() == expected),
            "scenarios/{expected}.yaml is missing: {files:?}"
        );
    }
    let loadgen = binary("loadgen");
    for file in &files {
        // Run from another folder, as a user would: relative paths inside (prompts files,
        // forwarder configs) must resolve against the scenario's own folder.
        let mut validate = std::process::Command::new(&loadgen);
        validate
            .arg("validate")
            .arg(file)
            .current_dir(std::env::temp_dir());
        let checked = run(&mut validate, LIMIT);
        assert_eq!(
            checked.code(),
            Some(0),
            "{}: {}",
            file.display(),
            checked.stderr
        );
        assert!(
            checked.stdout.contains(": ok ("),
            "{}: {}",
            file.display(),
            checked.stdout
        );
        // `validate` does not open a forwarder config a scenario names (the forwarder reads
        // it when the run starts), so check here that each one exists beside the scenario.
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("config:") {
                let named = rest.split('#').next().unwrap().trim();
                let path = file.parent().unwrap().join(named);
                assert!(path.is_file(), "{}: {line:?} names no file", file.display());
            }
        }
    }
}

#[test]
fn every_forwarder_config_shipped_with_the_scenarios_starts_a_forwarder() {
    // Subfolders of scenarios/ hold what scenarios refer to. Each kind must be checked here, so
    // a new folder fails this test until someone says how its files are validated.
    let mut configs = 0;
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        match dir.file_name().and_then(|n| n.to_str()) {
            // Prompts files: read (and checked line by line) by `loadgen validate` of the
            // scenarios naming them, in the test above.
            Some("data") => {}
            Some("forwarder") => {
                for config in yaml_files(&dir) {
                    // As a run starts it: the config file, loadgen's listen address and
                    // backends on the command line. A bad config exits 2 before announcing
                    // its address, which fails here.
                    let backend = Server::mock(&[]);
                    let backend_url = format!("http://{}", backend.addr);
                    let forwarder = Server::start(
                        &binary("forwarder"),
                        &[
                            "--listen",
                            "127.0.0.1:0",
                            "--config",
                            config.to_str().unwrap(),
                            "--backend",
                            &backend_url,
                        ],
                    );
                    assert_ne!(forwarder.addr.port(), 0, "{}", config.display());
                    configs += 1;
                }
            }
            other => panic!("scenarios/{other:?}/: no check for this folder's files yet"),
        }
    }
    assert!(
        configs >= 1,
        "scenarios/forwarder/ holds the warm-up config"
    );
}
