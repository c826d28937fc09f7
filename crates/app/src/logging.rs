//! Logs go to stderr (stdout carries the stdio protocol), as text or JSON.

use tracing_subscriber::EnvFilter;

pub(crate) fn init(level: &str, json: bool) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
