//! The local stack a scenario declares: mock LLM backends and the forwarder in front of them,
//! each a real child process on a free loopback port, ready-checked before load starts and always
//! stopped afterwards — on success, error, Ctrl-C, or loadgen dying (parent-death signal).

mod child;
pub mod probe;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::scenario::schema::StackSpec;
pub use child::{Child, ChildError};

/// The running stack.
pub struct Stack {
    pub backends: Vec<Child>,
    pub forwarder: Option<Child>,
    /// Network fault proxies, one in front of each backend (same order), when asked for: the
    /// forwarder then reaches each backend through its proxy.
    pub proxies: Vec<crate::chaos::proxy::Proxy>,
}

/// Why the stack could not start (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Child(#[from] ChildError),
    #[error(
        "cannot find the forwarder binary (looked for {0} and on PATH); build it with \
         `cargo build --release --workspace` or set stack.forwarder.binary"
    )]
    ForwarderNotFound(String),
    #[error("cannot locate the loadgen executable to start mock backends: {0}")]
    SelfExe(std::io::Error),
    #[error("cannot start a fault proxy: {0}")]
    Proxy(std::io::Error),
}

impl Stack {
    /// Starts the backends, then (with `proxies`) a fault proxy in front of each, then the
    /// forwarder; logs go to `log_dir`. On any failure whatever was started is stopped before
    /// the error returns.
    pub async fn start(
        spec: &StackSpec,
        log_dir: &Path,
        proxies: bool,
    ) -> Result<Stack, StackError> {
        let mut stack = Stack {
            backends: Vec::new(),
            forwarder: None,
            proxies: Vec::new(),
        };
        match stack.start_all(spec, log_dir, proxies).await {
            Ok(()) => Ok(stack),
            Err(e) => {
                stack.stop().await;
                Err(e)
            }
        }
    }

    async fn start_all(
        &mut self,
        spec: &StackSpec,
        log_dir: &Path,
        proxies: bool,
    ) -> Result<(), StackError> {
        let timeout = spec.startup_timeout.0;
        let me = std::env::current_exe().map_err(StackError::SelfExe)?;
        let mut names = backend_names(spec).into_iter();
        for group in std::iter::once(&spec.backends).chain(&spec.degraded) {
            for i in 0..group.count.value {
                let mut profile = group.profile.clone();
                // One seed per backend, so seeded backends do not answer in lockstep.
                profile.seed = profile.seed.map(|s| s.wrapping_add(u64::from(i)));
                let mut args = vec!["mock".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
                args.extend(profile.to_args());
                let name = names.next().unwrap_or_default();
                let child = Child::spawn(&name, &me, &args, log_dir, timeout).await?;
                self.backends.push(child);
            }
        }
        for backend in &self.backends {
            backend.wait_ready("/healthz", timeout).await?;
            if proxies {
                let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                let proxy = crate::chaos::proxy::Proxy::start(any_port, backend.addr)
                    .await
                    .map_err(StackError::Proxy)?;
                self.proxies.push(proxy);
            }
        }
        if spec.forwarder.enabled {
            let binary = find_forwarder(spec.forwarder.binary.as_deref())?;
            let mut args = vec!["--listen".to_owned(), "127.0.0.1:0".into()];
            if let Some(config) = &spec.forwarder.config {
                args.extend(["--config".into(), config.value.display().to_string()]);
            }
            let urls: Vec<String> = if self.proxies.is_empty() {
                self.backends.iter().map(Child::url).collect()
            } else {
                self.proxies
                    .iter()
                    .map(|p| format!("http://{}", p.addr))
                    .collect()
            };
            for url in urls {
                args.extend(["--backend".into(), url]);
            }
            if let Some(n) = spec.forwarder.max_inflight {
                args.extend(["--max-inflight".into(), n.to_string()]);
            }
            if let Some(n) = spec.forwarder.max_queue {
                args.extend(["--max-queue".into(), n.to_string()]);
            }
            args.extend(spec.forwarder.args.iter().cloned());
            let forwarder = Child::spawn("forwarder", &binary, &args, log_dir, timeout).await?;
            forwarder.wait_ready("/readyz", timeout).await?;
            wait_backends_up(&forwarder, self.backends.len(), timeout).await?;
            self.forwarder = Some(forwarder);
        }
        Ok(())
    }

    /// Where load goes by default: the forwarder, or the single backend without one.
    pub fn entry(&self) -> Option<&Child> {
        self.forwarder.as_ref().or(self.backends.first())
    }

    /// Every child, forwarder first.
    pub fn children(&self) -> impl Iterator<Item = &Child> {
        self.forwarder.iter().chain(self.backends.iter())
    }

    /// Stops the forwarder, then the backends: SIGTERM, a grace period, then SIGKILL.
    pub async fn stop(&mut self) {
        if let Some(forwarder) = self.forwarder.as_mut() {
            forwarder.stop(STOP_GRACE).await;
        }
        futures_util::future::join_all(self.backends.iter_mut().map(|b| b.stop(STOP_GRACE))).await;
    }
}

/// The backends' names in start order: `backend-<i>` for the healthy group, `degraded-<i>` for
/// the rest (numbered across the degraded groups, so every name is unique).
pub fn backend_names(spec: &StackSpec) -> Vec<String> {
    let healthy = (0..spec.backends.count.value).map(|i| format!("backend-{i}"));
    let degraded: u32 = spec.degraded.iter().map(|g| g.count.value).sum();
    healthy
        .chain((0..degraded).map(|i| format!("degraded-{i}")))
        .collect()
}

/// How long a child may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The forwarder only counts as ready once it sees every backend up, so the first second of
/// load does not hit backends it has not checked yet.
async fn wait_backends_up(
    forwarder: &Child,
    expected: usize,
    timeout: Duration,
) -> Result<(), ChildError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok((200, text)) =
            probe::get(forwarder.addr, "/metrics", Duration::from_secs(1)).await
        {
            let up = text
                .lines()
                .filter(|l| l.starts_with("forwarder_backend_up{") && l.trim_end().ends_with(" 1"))
                .count();
            if up >= expected {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ChildError::NotReady {
                name: forwarder.name.clone(),
                waited: timeout,
                detail: format!("it did not report all {expected} backends up"),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The forwarder binary: as configured, else next to loadgen, else on PATH.
fn find_forwarder(configured: Option<&Path>) -> Result<PathBuf, StackError> {
    if let Some(path) = configured {
        return Ok(path.to_owned());
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|me| me.parent().map(|dir| dir.join("forwarder")));
    if let Some(sibling) = &sibling
        && sibling.is_file()
    {
        return Ok(sibling.clone());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("forwarder"))
            .find(|p| p.is_file())
    });
    on_path.ok_or_else(|| {
        StackError::ForwarderNotFound(
            sibling.map_or_else(|| "forwarder".to_owned(), |p| p.display().to_string()),
        )
    })
}
