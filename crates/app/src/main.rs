//! The `plexus` binary: parses the command line and calls into the app.

use clap::Parser;

/// mimalloc: per-thread free lists without glibc's arena locks (see BENCHMARKS.md, trust cost).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
