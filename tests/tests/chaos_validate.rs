//! A bad `faults:` entry is bad input: exit 2, and the message names the file, line, column,
//! the fault and its field.

use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

fn check(faults: &str) -> Finished {
    let (dir, scenario) = write_scenario(&small_scenario("badfault", faults));
    let mut validate = std::process::Command::new(binary("loadgen"));
    let finished = run(validate.arg("validate").arg(&scenario), LIMIT);
    drop(dir);
    finished
}

#[test]
fn an_unknown_kind_names_the_fault_and_field() {
    let checked = check(
        "faults:\n  - { at: 1s, target: backend-0, kind: crash }\n  - { at: 1s, target: 0, kind: explode }\n",
    );
    assert_eq!(checked.code(), Some(2), "{checked:?}");
    assert!(
        checked.stderr.contains("scenario.yaml:")
            && checked.stderr.contains("faults[1].kind")
            && checked.stderr.contains("explode"),
        "{}",
        checked.stderr
    );
}

#[test]
fn a_missing_backend_and_a_misplaced_parameter_are_named() {
    let checked = check("faults:\n  - { at: 1s, target: backend-7, kind: crash }\n");
    assert_eq!(checked.code(), Some(2), "{checked:?}");
    assert!(
        checked.stderr.contains("faults[0].target"),
        "{}",
        checked.stderr
    );
    let checked = check("faults:\n  - { at: 1s, target: all, kind: hang, status: 503 }\n");
    assert_eq!(checked.code(), Some(2), "{checked:?}");
    assert!(
        checked.stderr.contains("faults[0].status"),
        "{}",
        checked.stderr
    );
}

#[test]
fn a_run_with_a_bad_fault_exits_2_before_starting_anything() {
    let (dir, scenario) = write_scenario(&small_scenario(
        "badrun",
        "faults:\n  - { at: 1s, target: 0, kind: delay }\n",
    ));
    let run = loadgen_run(&scenario, &dir.path().join("report"), &[], LIMIT);
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(run.stderr.contains("faults[0].delay"), "{}", run.stderr);
    assert!(stack_pids(&run.stdout).is_empty());
}
