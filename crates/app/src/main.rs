//! The `plexus` binary: parses the command line and calls into the app.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = plexus::cli::Cli::parse();
    match plexus::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
