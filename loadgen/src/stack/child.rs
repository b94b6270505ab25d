//! One child process of the stack: spawned in its own process group with a parent-death
//! signal, its address read from its first stdout line, its output kept in a log file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::probe;

/// A started child. Dropping it kills the process (a last resort; call `stop` to be graceful).
pub struct Child {
    pub name: String,
    pub pid: u32,
    pub addr: SocketAddr,
    pub log: PathBuf,
    process: tokio::process::Child,
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
        let spawn_err = |source| ChildError::Spawn {
            name: name.to_owned(),
            program: program.display().to_string(),
            source,
        };
        let log = log_dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).map_err(spawn_err)?;
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
        let pid = process.id().unwrap_or(0);
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
                tail: tail(&log),
            });
        };
        // Keep draining stdout so a chatty child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Child {
            name: name.to_owned(),
            pid,
            addr,
            log,
            process,
        })
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
        if let Ok(Some(_)) = self.process.try_wait() {
            return;
        }
        // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(grace, self.process.wait())
            .await
            .is_err()
        {
            let _ = self.process.start_kill();
            let _ = self.process.wait().await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }
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
