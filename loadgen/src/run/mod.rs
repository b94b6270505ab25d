//! `loadgen run`: load the scenario, start the stack, drive the load, write the reports, judge
//! the budgets, stop the stack — and map what happened to the exit code.

mod adhoc;
pub mod limits;
mod live;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::client::Endpoint;
use crate::engine::tls::Tls;
use crate::exit;
use crate::report::{budget::Verdict, run_dir};
use crate::scenario::{self, Plan, human::format_duration, schema::Protocol};
use crate::stack::Stack;

/// What the command line asked for: a scenario file, or an ad-hoc load on `--target`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// The scenario file (YAML).
    #[arg(required_unless_present = "target", conflicts_with = "target")]
    pub scenario: Option<PathBuf>,
    /// Squeeze the whole scenario (all stages) into this long, e.g. 1m; with --target, how long
    /// to run.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Write the reports into this folder instead of reports/<name>-<UTC time>/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No full-screen display (progress lines only).
    #[arg(long)]
    pub no_tui: bool,
    /// Allow a target outside the loopback range.
    #[arg(long)]
    pub allow_remote: bool,
    #[command(flatten)]
    pub adhoc: adhoc::AdHocArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    scenario::human::parse_duration(text)
}

/// Why a run ended without a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Failed(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::BadInput(_) => exit::BAD_INPUT,
            RunError::Failed(_) => exit::RUN_FAILED,
        }
    }
}

/// Runs a scenario to its verdict; `Ok` carries the exit code (0 all budgets met, 1 one missed).
pub async fn run(options: RunArgs) -> Result<i32, RunError> {
    limits::raise_open_files();
    if options.duration.is_some_and(|d| d.is_zero()) {
        return Err(RunError::BadInput(
            "--duration must be longer than zero".into(),
        ));
    }
    let plan = match (&options.scenario, &options.adhoc.target) {
        (Some(path), _) => {
            let mut plan = scenario::load(path).map_err(|e| RunError::BadInput(e.to_string()))?;
            if let Some(total) = options.duration {
                plan.squeeze(total);
            }
            plan
        }
        (None, Some(_)) => {
            adhoc::plan(&options.adhoc, options.duration).map_err(RunError::BadInput)?
        }
        (None, None) => {
            return Err(RunError::BadInput(
                "give a scenario file or --target URL".into(),
            ));
        }
    };
    // A relative report dir is taken from where loadgen runs, like every other tool's output.
    let base = plan.report.dir.clone();
    let dir = run_dir::create(&base, &plan.name, options.out.as_deref()).map_err(|e| {
        RunError::Failed(format!(
            "cannot create the report folder in {}: {e}",
            base.display()
        ))
    })?;
    print_header(&plan, &dir);

    let mut stack = match &plan.stack {
        Some(spec) => {
            let logs = dir.join("logs");
            std::fs::create_dir_all(&logs)
                .map_err(|e| RunError::Failed(format!("cannot create {}: {e}", logs.display())))?;
            let proxies = plan.faults.iter().any(|f| f.is_network());
            let stack = Stack::start(spec, &logs, proxies)
                .await
                .map_err(|e| RunError::Failed(format!("the stack did not start: {e}")))?;
            for child in stack.children() {
                println!(
                    "stack: {:<10} pid {:<7} {}  (log {})",
                    child.name,
                    child.pid(),
                    child.url(),
                    child.log.display()
                );
            }
            for (proxy, backend) in stack.proxies.iter().zip(&stack.backends) {
                println!(
                    "fault proxy: http://{} -> {} (network faults act here)",
                    proxy.addr, backend.name
                );
            }
            Some(stack)
        }
        None => None,
    };

    let outcome = drive(&plan, stack.as_ref(), &options, &dir).await;
    if let Some(stack) = stack.as_mut() {
        stack.stop().await;
    }
    let verdicts = outcome?;
    println!("report: {}", dir.display());
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    if failed > 0 {
        println!(
            "result: FAIL ({failed} of {} budgets missed)",
            verdicts.len()
        );
        Ok(exit::BUDGET_FAILED)
    } else {
        println!(
            "result: PASS ({} of {} budgets met)",
            verdicts.len(),
            verdicts.len()
        );
        Ok(exit::OK)
    }
}

/// Resolves the target, checks it answers, runs the load and writes the reports.
async fn drive(
    plan: &Plan,
    stack: Option<&Stack>,
    options: &RunArgs,
    dir: &std::path::Path,
) -> Result<Vec<Verdict>, RunError> {
    let target: http::Uri = match (&plan.target, stack.and_then(Stack::entry)) {
        (Some(uri), _) => uri.clone(),
        (None, Some(entry)) => entry
            .url()
            .parse()
            .map_err(|e| RunError::Failed(format!("bad stack address: {e}")))?,
        (None, None) => return Err(RunError::BadInput("no target to send load to".into())),
    };
    let addr = resolve(&target, options.allow_remote).await?;
    if tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_or(true, |r| r.is_err())
    {
        return Err(RunError::Failed(format!(
            "the target {target} ({addr}) is unreachable"
        )));
    }
    let tls = match target.scheme_str() {
        Some("https") => Some(
            Tls::new(
                target.host().unwrap_or_default(),
                plan.load.protocol,
                plan.tls.ca.as_deref(),
                plan.tls.insecure,
            )
            .map_err(|e| RunError::BadInput(e.to_string()))?,
        ),
        _ => None,
    };
    if let Some(tls) = &tls {
        // One handshake first: a certificate that cannot be verified is a failed run with the
        // reason, not a stream of anonymous connect failures.
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| RunError::Failed(format!("the target {target} is unreachable: {e}")))?;
        tokio::time::timeout(Duration::from_secs(10), tls.handshake(tcp))
            .await
            .map_err(|_| RunError::Failed(format!("TLS handshake with {target} timed out")))?
            .map_err(|e| RunError::Failed(format!("TLS handshake with {target} failed: {e}")))?;
    }
    let endpoint = Arc::new(Endpoint { addr, tls });
    let forwarder = stack.and_then(|s| s.forwarder.as_ref()).map(|f| f.addr);
    live::run_load(
        plan,
        &target,
        endpoint,
        forwarder,
        stack,
        dir,
        options.no_tui,
    )
    .await
}

/// The target's socket address; only loopback unless the user says otherwise.
async fn resolve(target: &http::Uri, allow_remote: bool) -> Result<SocketAddr, RunError> {
    let host = target
        .host()
        .unwrap_or("127.0.0.1")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let default_port = if target.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = target.port_u16().unwrap_or(default_port);
    let addr = tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| RunError::Failed(format!("cannot resolve the target host {host:?}")))?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(RunError::BadInput(format!(
            "the target {target} ({addr}) is not a loopback address; pass --allow-remote if you \
             mean to load a system outside this machine"
        )));
    }
    Ok(addr)
}

fn print_header(plan: &Plan, dir: &std::path::Path) {
    let load = &plan.load;
    let connections = match (load.protocol, load.connections) {
        (Protocol::Http1, 0) => "HTTP/1.1, a connection per user".to_owned(),
        (Protocol::Http1, n) => format!("HTTP/1.1 over a pool of {n} connections"),
        (Protocol::Http2, n) => format!("h2c over {n} shared connections"),
    };
    let model = if load.is_open() { "open" } else { "closed" };
    println!(
        "scenario {}: {model} model, {} stage(s) over {}, up to {}, {connections}",
        plan.name,
        load.stages.len(),
        format_duration(load.total_duration()),
        load.describe_peak()
    );
    println!("writing reports to {}", dir.display());
}
