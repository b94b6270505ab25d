//! One child process of the stack: spawned in its own process group with a parent-death
//! signal, its address read from its first stdout line, its output kept in a log file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::probe;

/// A started child. Dropping it kills the process (a last resort; call `stop` to be graceful).
///
/// The process sits behind a lock so a chaos fault can crash and restart it (same arguments,
/// same address) while the rest of the run holds a shared reference.
pub struct Child {
    pub name: String,
    pid: AtomicU32,
    pub addr: SocketAddr,
    pub log: PathBuf,
    process: tokio::sync::Mutex<tokio::process::Child>,
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        source: std::io::Error,
    },
    #[error("{name} exited before it was ready ({status}); last lines of {log}:\n{tail}")]
    Exited {
        name: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error("{name} was not ready within {waited:?}: {detail}")]
    NotReady {
        name: String,
        waited: Duration,
        detail: String,
    },
}

impl Child {
    /// Spawns `program args`, waits for `listening on http://ADDR` on its stdout.
    pub async fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log_dir: &Path,
        timeout: Duration,
    ) -> Result<Child, ChildError> {
        let log = log_dir.join(format!("{name}.log"));
        let (process, addr) = launch(name, program, args, &log, false, timeout).await?;
        Ok(Child {
            name: name.to_owned(),
            pid: AtomicU32::new(process.id().unwrap_or(0)),
            addr,
            log,
            process: tokio::sync::Mutex::new(process),
            program: program.to_owned(),
            args: args.to_vec(),
            timeout,
        })
    }

    /// The current process id (it changes when a fault restarts the child).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Sends `signal` to the current process; false if it is gone or being restarted.
    pub fn signal(&self, signal: libc::c_int) -> bool {
        // Under the lock and only while not yet reaped: a reaped pid may belong to another
        // process by now. (An exited but unreaped child keeps its pid as a zombie.)
        let Ok(mut process) = self.process.try_lock() else {
            return false;
        };
        if !matches!(process.try_wait(), Ok(None)) {
            return false;
        }
        // SAFETY: plain kill(2) on our own child's pid, which is not reaped (checked above).
        unsafe { libc::kill(self.pid() as libc::pid_t, signal) == 0 }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; always reaps. For faults mid-run.
    pub async fn terminate(&self, grace: Duration) {
        let mut process = self.process.lock().await;
        if let Ok(Some(_)) = process.try_wait() {
            return;
        }
        self.signal(libc::SIGTERM);
        if tokio::time::timeout(grace, process.wait()).await.is_err() {
            let _ = process.start_kill();
            let _ = process.wait().await;
        }
    }

    /// Kills whatever runs, then starts the child again with the same arguments on the same
    /// address (so everything configured with its URL keeps working) and waits for `ready`.
    pub async fn restart(&self, ready: &str) -> Result<(), ChildError> {
        {
            let mut process = self.process.lock().await;
            let _ = process.start_kill();
            let _ = process.wait().await;
            let listen = self.addr.to_string();
            let args: Vec<String> = self
                .args
                .iter()
                .map(|a| {
                    if a == "127.0.0.1:0" {
                        listen.clone()
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let (fresh, addr) = launch(
                &self.name,
                &self.program,
                &args,
                &self.log,
                true,
                self.timeout,
            )
            .await?;
            self.pid.store(fresh.id().unwrap_or(0), Ordering::Relaxed);
            *process = fresh;
            if addr != self.addr {
                return Err(ChildError::NotReady {
                    name: self.name.clone(),
                    waited: self.timeout,
                    detail: format!("it came back on {addr}, not on {}", self.addr),
                });
            }
        }
        self.wait_ready(ready, self.timeout).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Polls `path` until it answers 200, the child exits, or `timeout` passes.
    pub async fn wait_ready(&self, path: &str, timeout: Duration) -> Result<(), ChildError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match probe::get(self.addr, path, Duration::from_secs(1)).await {
                Ok((200, _)) => return Ok(()),
                Ok((status, _)) => format!("{path} answered {status}"),
                Err(e) => format!("{path}: {e}"),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(ChildError::NotReady {
                    name: self.name.clone(),
                    waited: timeout,
                    detail: last,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps the process.
    pub async fn stop(&mut self, grace: Duration) {
        let pid = self.pid() as libc::pid_t;
        let process = self.process.get_mut();
        if let Ok(Some(_)) = process.try_wait() {
            return;
        }
        // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet. SIGCONT
        // first: a child a fault left stopped could not act on SIGTERM.
        unsafe {
            libc::kill(pid, libc::SIGCONT);
            libc::kill(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(grace, process.wait()).await.is_err() {
            let _ = process.start_kill();
            let _ = process.wait().await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.get_mut().try_wait(), Ok(None))
    }
}

/// Spawns `program args` with its stderr in `log` (appended to on a restart) and waits for
/// `listening on http://ADDR` on its stdout.
async fn launch(
    name: &str,
    program: &Path,
    args: &[String],
    log: &Path,
    append: bool,
    timeout: Duration,
) -> Result<(tokio::process::Child, SocketAddr), ChildError> {
    let spawn_err = |source| ChildError::Spawn {
        name: name.to_owned(),
        program: program.display().to_string(),
        source,
    };
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(log)
        .map_err(spawn_err)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Own process group: a terminal's Ctrl-C reaches loadgen alone, which then stops
            // the stack in order instead of everything dying at once mid-run.
            libc::setpgid(0, 0);
            // If loadgen dies (even by SIGKILL) the kernel kills the child: no orphans.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut process = command.spawn().map_err(spawn_err)?;
    let stdout = process.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(timeout, lines.next_line()).await;
    let addr = match first {
        Ok(Ok(Some(line))) => parse_listening(&line),
        _ => None,
    };
    let Some(addr) = addr else {
        let status = match tokio::time::timeout(Duration::from_secs(2), process.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => format!("no address announced within {timeout:?}"),
        };
        return Err(ChildError::Exited {
            name: name.to_owned(),
            status,
            log: log.display().to_string(),
            tail: tail(log),
        });
    };
    // Keep draining stdout so a chatty child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((process, addr))
}

fn parse_listening(line: &str) -> Option<SocketAddr> {
    line.trim()
        .strip_prefix("listening on http://")?
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(10);
    if lines.is_empty() {
        "(empty)".to_owned()
    } else {
        lines[start..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_listening_line_gives_the_address() {
        assert_eq!(
            super::parse_listening("listening on http://127.0.0.1:4000\n"),
            Some("127.0.0.1:4000".parse().unwrap())
        );
        assert_eq!(super::parse_listening("hello"), None);
    }
}
