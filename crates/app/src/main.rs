//! The `plexus` binary: parses the command line and calls into the app.

mod cli;
mod commands;
mod config;
mod logging;
mod trust;
mod wiring;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
