//! `plexus-bench`: a load generator for MCP servers over Streamable HTTP.
//!
//! Closed loop by default (`--concurrency` workers, each on its own keep-alive connection,
//! sending `tools/call` back to back); open loop with `--rate` (a fixed schedule, latency
//! measured from each request's due time). See `plexus-bench --help`.

mod cli;
mod client;
mod rpc;
mod run;
mod scenario;
mod sse;
mod stats;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::Args;
use crate::stats::Report;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = args.validate() {
        eprintln!("plexus-bench: {message}");
        return ExitCode::FAILURE;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    let report = match runtime.build() {
        Ok(runtime) => runtime.block_on(run::run(&args)),
        Err(e) => Err(anyhow::Error::new(e).context("cannot start the runtime")),
    };
    match report {
        Ok(report) => {
            if let Err(e) = print_report(&report, args.json) {
                eprintln!("plexus-bench: cannot write the report: {e}");
                return ExitCode::FAILURE;
            }
            if report.ok == 0 {
                eprintln!("plexus-bench: no request succeeded");
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plexus-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(report: &Report, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json { writeln!(out, "{}", report.json()) } else { write!(out, "{}", report.text()) }
}
