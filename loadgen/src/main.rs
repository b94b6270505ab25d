//! The `loadgen` command line: parse arguments, hand over to the library, map results to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loadgen::{compare, exit, mock, run, scenario};

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
    /// Run a scenario (or an ad-hoc load with --target): drive the load, write reports, judge budgets.
    Run(Box<run::RunArgs>),
    /// Check a scenario file without running it.
    Validate { scenario: PathBuf },
    /// Serve the mock OpenAI-compatible LLM backend.
    Mock(mock::MockArgs),
    /// Run the network fault proxy in front of a backend, with an HTTP control API.
    ChaosProxy(loadgen::chaos::standalone::ChaosProxyArgs),
    /// Compare two runs' reports; exit 1 if NEW regressed beyond tolerance, 2 on bad input.
    Compare(compare::CompareArgs),
    /// Print a run folder's summary and render its report.html again.
    Report { dir: PathBuf },
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
            Command::Run(args) => match run::run(*args).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    e.exit_code()
                }
            },
            Command::Validate { scenario: path } => {
                run::limits::raise_open_files();
                match scenario::load(&path) {
                    Ok(plan) => {
                        println!(
                            "{}: ok ({} stages, {} budgets, up to {})",
                            path.display(),
                            plan.load.stages.len(),
                            plan.budgets.len(),
                            plan.load.describe_peak()
                        );
                        exit::OK
                    }
                    Err(e) => {
                        eprintln!("loadgen: {e}");
                        exit::BAD_INPUT
                    }
                }
            }
            Command::Compare(args) => match compare::run(&args) {
                Ok((text, code)) => {
                    print!("{text}");
                    code
                }
                Err(e) => {
                    eprintln!("loadgen compare: {e}");
                    compare::BAD_INPUT
                }
            },
            Command::Report { dir } => match loadgen::report::rerender::run(&dir) {
                Ok(text) => {
                    print!("{text}");
                    exit::OK
                }
                Err(e) => {
                    eprintln!("loadgen report: {e}");
                    exit::BAD_INPUT
                }
            },
            Command::Mock(args) => match mock::run(args).await {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("loadgen mock: {e:#}");
                    exit::RUN_FAILED
                }
            },
            Command::ChaosProxy(args) => match loadgen::chaos::standalone::run(args).await {
                Ok(()) => exit::OK,
                Err(e @ loadgen::chaos::standalone::ChaosProxyError::NotLoopback(_)) => {
                    eprintln!("loadgen chaos-proxy: {e}");
                    exit::BAD_INPUT
                }
                Err(e) => {
                    eprintln!("loadgen chaos-proxy: {e}");
                    exit::RUN_FAILED
                }
            },
        }
    });
    ExitCode::from(code as u8)
}
