//! Helpers shared by the end-to-end tests: find (and build) the real binaries, run them with a
//! time bound, write scenario files, read reports, and check processes are gone.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where cargo put this test binary's sibling executables (`target/<profile>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_owned()
}

/// The path of a workspace binary, built first so tests never run a stale one. Cargo's own lock
/// serialises concurrent builds, and a build with nothing to do takes a fraction of a second.
pub fn binary(name: &str) -> PathBuf {
    let dir = profile_dir();
    let target_dir = dir.parent().expect("target dir");
    let release = dir.file_name().is_some_and(|n| n == "release");
    let mut build = Command::new(env!("CARGO"));
    build
        .args([
            "build",
            "--quiet",
            "--bins",
            "-p",
            "loadgen",
            "-p",
            "forwarder",
            "--target-dir",
        ])
        .arg(target_dir)
        .current_dir(workspace_root());
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "building the binaries failed");
    dir.join(name)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs a command to completion, killing it (and failing the test) after `limit`.
pub fn run(command: &mut Command, limit: Duration) -> Finished {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait(child, limit)
}

/// Waits for a spawned child with piped output, within `limit`.
pub fn wait(mut child: Child, limit: Duration) -> Finished {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "process did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                stdout.recv().unwrap_or_default(),
                stderr.recv().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: stdout.recv().unwrap_or_default(),
        stderr: stderr.recv().unwrap_or_default(),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        let _ = tx.send(text);
    });
    rx
}

/// Reads lines from a child's stdout as they come, until `wanted` matches one (or `limit`).
pub fn read_until(
    lines: &mut impl Iterator<Item = String>,
    limit: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    for line in lines {
        let hit = wanted(&line);
        seen.push(line);
        if hit {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no matching line within {limit:?}: {seen:#?}"
        );
    }
    panic!("output ended without a matching line: {seen:#?}");
}

/// A line iterator over a pipe, fed by a thread so reads can be bounded by the caller.
pub fn lines_of(pipe: impl Read + Send + 'static) -> impl Iterator<Item = String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::iter::from_fn(move || rx.recv_timeout(Duration::from_secs(60)).ok())
}

/// The pids loadgen announced for its stack (`stack: NAME pid PID ...` lines).
pub fn stack_pids(stdout: &str) -> Vec<i32> {
    stdout
        .lines()
        .filter(|l| l.starts_with("stack:"))
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "pid");
            words.nth(1)?.parse().ok()
        })
        .collect()
}

/// Whether a process with this pid still exists (and is not a zombie awaiting its parent).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Waits up to `limit` for every pid to be gone; returns those still alive.
pub fn survivors(pids: &[i32], limit: Duration) -> Vec<i32> {
    let deadline = Instant::now() + limit;
    loop {
        let alive: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `summary.csv` as a metric -> value map, read with a real CSV parser.
pub fn read_summary(dir: &Path) -> std::collections::BTreeMap<String, Option<f64>> {
    let mut reader = csv::Reader::from_path(dir.join("summary.csv")).expect("summary.csv exists");
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        ["metric", "value", "unit"]
    );
    reader
        .records()
        .map(|r| {
            let r = r.expect("well-formed row");
            (r[0].to_owned(), r[1].parse::<f64>().ok())
        })
        .collect()
}

/// `timeseries.csv` rows as header -> value maps.
pub fn read_timeseries(dir: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(dir.join("timeseries.csv")).expect("timeseries.csv");
    let headers = reader.headers().expect("header").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("well-formed row");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// A small, fast scenario against a local stack; `extra` is appended (budgets etc.).
pub fn small_scenario(name: &str, extra: &str) -> String {
    format!(
        "name: {name}\n\
         stack:\n  backends:\n    count: 2\n    profile:\n      ttft: lognormal(20ms, 0.2)\n      \
         tokens_per_s: normal(400, 20)\n      output_tokens: uniform(4, 10)\n\
         load:\n  stages:\n    - {{ duration: 1s, users: 10 }}\n    - {{ duration: 1s, users: 10 }}\n  \
         think_time: uniform(20ms, 60ms)\n\
         {extra}"
    )
}

/// Writes a file into a temporary folder that lives as long as the returned guard.
pub fn write_scenario(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, text).expect("write scenario");
    (dir, path)
}

/// `loadgen run` on a scenario, reports into `out`, within `limit`.
pub fn loadgen_run(scenario: &Path, out: &Path, extra: &[&str], limit: Duration) -> Finished {
    let mut command = Command::new(binary("loadgen"));
    command
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(extra);
    run(&mut command, limit)
}

/// A server process (mock or forwarder) started for a test; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: std::net::SocketAddr,
}

/// Spawns `command` with stdout piped and returns it with its stdout lines up to the first that
/// starts with `until` (its startup announcement). Stdout keeps being drained afterwards, so the
/// child never blocks on a full pipe.
fn spawn_announcing(command: &mut Command, until: &str) -> (Child, Vec<String>) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server");
    let mut lines = lines_of(child.stdout.take().expect("stdout"));
    let seen = read_until(&mut lines, Duration::from_secs(30), |l| {
        l.starts_with(until)
    });
    std::thread::spawn(move || for _ in lines {});
    (child, seen)
}

impl Server {
    /// Starts `binary args`, waiting for its `listening on http://ADDR` line.
    pub fn start(binary: &Path, args: &[&str]) -> Server {
        let (child, first) = spawn_announcing(Command::new(binary).args(args), "listening on");
        let addr = first
            .last()
            .and_then(|l| {
                let rest = l.strip_prefix("listening on ")?;
                rest.strip_prefix("http://")
                    .or_else(|| rest.strip_prefix("https://"))
            })
            .and_then(|a| a.parse().ok())
            .expect("listening address");
        Server { child, addr }
    }

    pub fn mock(args: &[&str]) -> Server {
        let mut all = vec!["mock", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Server::start(&binary("loadgen"), &all)
    }

    pub fn forwarder(backends: &[&Server], args: &[&str]) -> Server {
        let urls: Vec<String> = backends
            .iter()
            .map(|b| format!("http://{}", b.addr))
            .collect();
        let mut all = vec!["--listen", "127.0.0.1:0"];
        for url in &urls {
            all.extend(["--backend", url.as_str()]);
        }
        all.extend_from_slice(args);
        let server = Server::start(&binary("forwarder"), &all);
        // Ready once it has seen its backends up.
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_get(server.addr, "/readyz").0 != 200 {
            assert!(Instant::now() < deadline, "forwarder never became ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one HTTP/1.1 request on a fresh connection (`Connection: close`) and returns the
/// connection, for the caller to read the answer as it arrives.
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
) -> std::net::TcpStream {
    let body = body.as_ref();
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
    stream
}

/// GETs `path` and returns (status, whole answer text including the head).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    use std::io::Write;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    read_answer(stream)
}

/// Reads a whole answer from a `Connection: close` exchange: (status, text including the head).
pub fn read_answer(mut stream: std::net::TcpStream) -> (u16, String) {
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A chat completion request body.
pub fn chat_body(stream: bool) -> String {
    format!(
        r#"{{"model":"mock-llm","messages":[{{"role":"user","content":"hello"}}],"stream":{stream}}}"#
    )
}

/// `loadgen ARGS...` to completion within `limit` (for commands other than `run`).
pub fn loadgen(args: &[&std::ffi::OsStr], limit: Duration) -> Finished {
    let mut command = Command::new(binary("loadgen"));
    command.args(args);
    run(&mut command, limit)
}

/// Whether this is a CI run (`CI=true`), where a missing test tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A test needs `what`: returns false (skip, said on stderr) on a developer machine without it;
/// fails the test in CI, where .ci/run installs it.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        !in_ci(),
        "{what} is missing in CI (.ci/run should have installed it)"
    );
    eprintln!("SKIPPED: {what} is not installed on this machine");
    false
}

/// `loadgen chaos-proxy` in front of `upstream`, with its control API; killed when dropped.
pub struct ChaosProxy {
    child: Child,
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    /// The control API.
    pub control: std::net::SocketAddr,
}

impl ChaosProxy {
    pub fn start(upstream: std::net::SocketAddr) -> ChaosProxy {
        let (child, seen) = spawn_announcing(
            Command::new(binary("loadgen")).args([
                "chaos-proxy",
                "--upstream",
                &upstream.to_string(),
            ]),
            "control on",
        );
        let addr_of = |prefix: &str| -> std::net::SocketAddr {
            seen.iter()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|a| a.parse().ok())
                .expect("announced address")
        };
        ChaosProxy {
            addr: addr_of("listening on http://"),
            control: addr_of("control on http://"),
            child,
        }
    }

    /// One call to the control API: (status, whole answer text).
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        read_answer(http_request(self.control, method, path, &[], body))
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive HTTP/1.1 connection, for a series of exchanges on the same socket.
pub struct KeepAlive {
    stream: std::io::BufReader<std::net::TcpStream>,
    addr: std::net::SocketAddr,
}

impl KeepAlive {
    pub fn connect(addr: std::net::SocketAddr) -> KeepAlive {
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        KeepAlive {
            stream: std::io::BufReader::new(stream),
            addr,
        }
    }

    /// POSTs `body` to `path` and reads the whole answer (it must carry a Content-Length):
    /// (status, body).
    pub fn post(&mut self, path: &str, body: &str) -> (u16, String) {
        use std::io::Write;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send");
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = None;
        loop {
            line.clear();
            self.stream.read_line(&mut line).expect("header line");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let mut answer = vec![0; length.expect("a Content-Length answer")];
        self.stream.read_exact(&mut answer).expect("answer body");
        (status, String::from_utf8_lossy(&answer).into_owned())
    }
}

/// The median of a timeseries.csv column over the rows whose `elapsed_s` is in `from..=to`
/// (rows without a value skipped); panics if there is none.
pub fn median_over(
    rows: &[std::collections::BTreeMap<String, String>],
    column: &str,
    from: f64,
    to: f64,
) -> f64 {
    let mut values: Vec<f64> = rows
        .iter()
        .filter(|r| (from..=to).contains(&r["elapsed_s"].parse::<f64>().unwrap_or(-1.0)))
        .filter_map(|r| r[column].parse().ok())
        .collect();
    assert!(
        !values.is_empty(),
        "no {column} in {from}..={to} s: {rows:?}"
    );
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
