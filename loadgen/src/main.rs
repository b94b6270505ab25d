//! The `loadgen` command line: parse arguments, hand over to the library, map results to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen::{exit, mock, run, scenario};

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load-testing and chaos CLI for LLM gateways"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario: start its stack, drive the load, write reports, judge the budgets.
    Run {
        /// The scenario file (YAML).
        scenario: PathBuf,
        /// Squeeze the whole scenario (all stages) into this long, e.g. 1m.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Write the reports into this folder instead of reports/<name>-<UTC time>/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// No full-screen display (progress lines only).
        #[arg(long)]
        no_tui: bool,
        /// Allow a target outside the loopback range.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Check a scenario file without running it.
    Validate { scenario: PathBuf },
    /// Serve the mock OpenAI-compatible LLM backend.
    Mock(mock::MockArgs),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    scenario::human::parse_duration(text)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUN_FAILED as u8);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Run {
                scenario,
                duration,
                out,
                no_tui,
                allow_remote,
            } => {
                let options = run::RunOptions {
                    scenario,
                    duration,
                    out,
                    no_tui,
                    allow_remote,
                };
                match run::run(options).await {
                    Ok(code) => code,
                    Err(e) => {
                        eprintln!("loadgen: {e}");
                        e.exit_code()
                    }
                }
            }
            Command::Validate { scenario: path } => {
                run::limits::raise_open_files();
                match scenario::load(&path) {
                    Ok(plan) => {
                        println!(
                            "{}: ok ({} stages, {} budgets, up to {} users)",
                            path.display(),
                            plan.load.stages.len(),
                            plan.budgets.len(),
                            plan.load.peak_users()
                        );
                        exit::OK
                    }
                    Err(e) => {
                        eprintln!("loadgen: {e}");
                        exit::BAD_INPUT
                    }
                }
            }
            Command::Mock(args) => match mock::run(args).await {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("loadgen mock: {e:#}");
                    exit::RUN_FAILED
                }
            },
        }
    });
    ExitCode::from(code as u8)
}
