//! The `forwarder` binary: parse flags, load config (exit 2 on bad input), run (exit 3 on failure).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use forwarder::cli::Cli;
use forwarder::config::Config;

fn main() -> ExitCode {
    // clap exits by itself: 2 for usage errors, 0 for --help/--version.
    let cli = Cli::parse();
    let config = match Config::from_cli(&cli) {
        Ok(config) => config,
        Err(err) => {
            forwarder::log!("{err}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            forwarder::log!("{err:#}");
            ExitCode::from(3)
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(forwarder::server::run(config));
    // Do not wait on stragglers (e.g. a DNS lookup thread) after the drain has ended.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(result?)
}
