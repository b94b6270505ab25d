//! The `forwarder` binary: parse flags, load config (exit 2 on bad input), run (exit 3 on failure).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use forwarder::cli::Cli;
use forwarder::config::Config;

fn main() -> ExitCode {
    // clap exits by itself: 2 for usage errors, 0 for --help/--version.
    let cli = Cli::parse();
    let config = match cli.config() {
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
    forwarder::server::fd_limit::raise_open_files();
    forwarder::server::run(config).context("the forwarder failed")
}
