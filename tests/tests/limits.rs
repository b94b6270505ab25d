//! The open-file limit: loadgen raises its soft limit to the hard one at start, and a scenario
//! whose sockets cannot fit under the hard limit is bad input (exit 2) that says why, before
//! anything starts. The limits are set per child process, so the machine's own stay untouched.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(90);
/// Exit code for bad input, as the README's table documents it.
const BAD_INPUT: i32 = 2;

/// `loadgen ARGS` with RLIMIT_NOFILE set to `soft`/`hard` in the child before it executes.
fn loadgen_with_nofile(soft: u64, hard: u64, args: &[&std::ffi::OsStr]) -> Finished {
    let mut command = Command::new(binary("loadgen"));
    command.args(args);
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run(&mut command, LIMIT)
}

/// 100 closed-model users against a port nothing listens on; `connections` appended to `load`.
fn hundred_users(connections: &str) -> String {
    format!(
        "name: fds\ntarget: http://127.0.0.1:1\nload:\n  stages:\n    - {{ duration: 1s, users: 100 }}\n{connections}"
    )
}

#[test]
fn a_scenario_whose_sockets_exceed_the_hard_limit_is_bad_input_saying_why() {
    // A connection per user: 100 sockets plus the 200 loadgen keeps for itself, under a hard
    // limit of 256. Raising the soft limit cannot help, so it is refused up front.
    let text = hundred_users("");
    let (_dir, scenario) = write_scenario(&text);
    // No `connections` line is written, so the message points at the stages asking for them.
    let stages_line = text
        .lines()
        .position(|l| l.contains("- { duration"))
        .unwrap()
        + 1;
    for command in ["validate", "run"] {
        let refused = loadgen_with_nofile(256, 256, &[command.as_ref(), scenario.as_os_str()]);
        assert_eq!(refused.code(), Some(BAD_INPUT), "{command}: {refused:?}");
        let why = &refused.stderr;
        for expected in [
            format!("scenario.yaml:{stages_line}:"),
            "load.connections".to_owned(),
            "100 connections are needed".to_owned(),
            "may open only 256 files".to_owned(),
            "protocol: http2".to_owned(),
        ] {
            assert!(
                why.contains(&expected),
                "{command}: want {expected:?} in {why}"
            );
        }
    }
    // Under the same limit, multiplexing the users as the message advises fits.
    let (_dir, multiplexed) = write_scenario(&hundred_users(
        "  connections: { protocol: http2, count: 4 }\n",
    ));
    let fits = loadgen_with_nofile(256, 256, &["validate".as_ref(), multiplexed.as_os_str()]);
    assert_eq!(fits.code(), Some(0), "{fits:?}");
}

#[test]
fn loadgen_raises_its_soft_open_file_limit_to_the_hard_one() {
    // 150 users, each owning a keep-alive connection for the whole run, under a soft limit of
    // 64: only a raised limit lets loadgen (and the mock it starts, which inherits it) hold
    // them all. Without the raise they fail to connect (or are refused by the mock).
    let text = "name: raised\nstack:\n  backends:\n    count: 1\n    profile: { ttft: 5ms, tokens_per_s: 1000, output_tokens: 2 }\n  \
                forwarder: { enabled: false }\n\
                load:\n  start_users: 150\n  stages:\n    - { duration: 1s, users: 150 }\n  think_time: 300ms\n";
    let (dir, scenario) = write_scenario(text);
    let out = dir.path().join("report");
    let ran = loadgen_with_nofile(
        64,
        4096,
        &[
            "run".as_ref(),
            scenario.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    assert_eq!(ran.code(), Some(0), "{ran:?}");
    let s = read_summary(&out);
    let get = |m: &str| s[m].unwrap_or(0.0);
    assert_eq!(get("failed"), 0.0, "{s:?}");
    assert!(get("ok") >= 150.0, "every user was answered: {s:?}");
    assert_eq!(get("users_max"), 150.0, "{s:?}");
}
