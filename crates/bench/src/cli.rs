//! Command line: options, and the small value parsers (`--duration 10s`, `--header 'K: V'`).

use std::time::Duration;

use clap::{Parser, ValueEnum};
use http::{HeaderName, HeaderValue};

/// Which generation of the MCP HTTP transport to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Era {
    /// 2026-07-28: stateless requests with the `_meta` envelope and `Mcp-Method`/`Mcp-Name` headers.
    Modern,
    /// 2025-11-25 with a session: `initialize` + `notifications/initialized` once per worker,
    /// then `Mcp-Session-Id` on every call (if the server hands one out).
    Legacy,
    /// 2025-11-25 without `initialize` (servers running a stateless legacy transport).
    LegacyStateless,
}

impl Era {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Era::Modern => "modern",
            Era::Legacy => "legacy",
            Era::LegacyStateless => "legacy-stateless",
        }
    }
}

/// A sequence of calls that follows the server's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// Adaptive testing: `generate_assessment` with a line's arguments, then
    /// `submit_assessment_response` to every item the assessment presents (a random option)
    /// until it ends, then the next line. The latency reported is the answers'; the starts are
    /// reported apart.
    Assessment,
}

/// Load generator for MCP servers over Streamable HTTP (`tools/call`, one keep-alive
/// HTTP/1.1 connection per worker).
///
/// Closed loop by default (each worker sends back to back); with `--rate` an open loop
/// with latency measured from the scheduled send time.
/// Exit status: 0 run completed, 1 setup failed, 2 no request succeeded.
#[derive(Debug, Parser)]
#[command(name = "plexus-bench", version)]
pub(crate) struct Args {
    /// Endpoint, `http://HOST:PORT/PATH` (plain HTTP only)
    #[arg(long)]
    pub(crate) url: String,

    /// Protocol era
    #[arg(long, value_enum, default_value_t = Era::Modern)]
    pub(crate) era: Era,

    /// Tool to call
    #[arg(long, default_value = "echo")]
    pub(crate) tool: String,

    /// Tool arguments, a JSON object. For `echo` with a string `text`, each result is checked
    /// to contain that text.
    #[arg(long, default_value = r#"{"text":"hello"}"#)]
    pub(crate) args: String,

    /// Tool arguments from a file, one JSON object per line, used in turn (request n takes line
    /// n mod lines): for measuring without caches. Overrides --args.
    #[arg(long, value_name = "FILE")]
    pub(crate) args_file: Option<std::path::PathBuf>,

    /// Calls from a file, one JSON object per line, `{"arguments": {...}, "headers": {"Name":
    /// "value"}}` (both optional), used in turn like --args-file: for spreading the load over
    /// principals and tenants. The line's headers override --header. Not with `--era legacy` (a
    /// session belongs to one principal). Overrides --args and --args-file.
    #[arg(long, value_name = "FILE", conflicts_with = "args_file")]
    pub(crate) calls_file: Option<std::path::PathBuf>,

    /// Drive a scenario instead of calling one tool (see `Scenario`); needs --calls-file, whose
    /// lines are the scenario's first calls. With --rate every call of the scenario (starts and
    /// answers) takes the schedule's next slot: an open loop of learners who think between
    /// answers.
    #[arg(long, value_enum)]
    pub(crate) scenario: Option<Scenario>,

    /// Workers = connections = maximum requests in flight
    #[arg(short, long, default_value_t = 16)]
    pub(crate) concurrency: usize,

    /// Measured period (`10s`, `500ms`, `2m`, plain number = seconds)
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,

    /// Period before the measurement during which the same load runs but is not recorded
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,

    /// Open loop: total requests per second, sent on a fixed schedule regardless of responses
    #[arg(long)]
    pub(crate) rate: Option<f64>,

    /// Extra request header `Name: value` (repeatable; overrides the defaults)
    #[arg(short = 'H', long = "header", value_parser = parse_header)]
    pub(crate) headers: Vec<Header>,

    /// Hard cap on `tools/call` requests sent, warmup included (the run stops early when reached)
    #[arg(long)]
    pub(crate) max_requests: Option<u64>,

    /// Per-request timeout
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,

    /// Tokio worker threads for the load generator (default: number of CPUs)
    #[arg(long)]
    pub(crate) threads: Option<usize>,

    /// Print one JSON object instead of the text report
    #[arg(long)]
    pub(crate) json: bool,
}

impl Args {
    /// Checks the values clap cannot check on its own.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be positive".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be positive".into());
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err("--rate must be a positive number".into());
        }
        if self.calls_file.is_some() && self.era == Era::Legacy {
            return Err("--calls-file needs a stateless era (a legacy session belongs to one principal)".into());
        }
        if self.scenario.is_some() && self.calls_file.is_none() {
            return Err("--scenario needs --calls-file (its lines are the scenario's first calls)".into());
        }
        if self.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        Ok(())
    }
}

/// One `--header` value.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) name: HeaderName,
    pub(crate) value: HeaderValue,
}

/// Parses `10s`, `500ms`, `250us`, `1.5s`, `2m`, `1h`; a plain number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!("invalid duration {s:?}: expected a number and a unit, like 10s"));
    }
    let value: f64 = number.parse().map_err(|_| format!("invalid duration {s:?}: bad number {number:?}"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!("invalid duration {s:?}: unknown unit {other:?} (use h, m, s, ms, us)"));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses `Name: value`.
pub(crate) fn parse_header(s: &str) -> Result<Header, String> {
    let (name, value) = s.split_once(':').ok_or_else(|| format!("invalid header {s:?}: expected `Name: value`"))?;
    let name =
        HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| format!("invalid header name {:?}", name.trim()))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| format!("invalid value for header {name}"))?;
    Ok(Header { name, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
        for bad in ["", "s", "10x", "1.2.3s", "-1s", "ms10"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn headers() {
        let h = parse_header("X-API-Key: pk_abc:def").expect("valid");
        assert_eq!(h.name, "x-api-key");
        assert_eq!(h.value, "pk_abc:def");
        let h = parse_header("Authorization:Bearer t").expect("valid");
        assert_eq!(h.value, "Bearer t");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": empty name").is_err());
        assert!(parse_header("bad name: v").is_err());
        assert!(parse_header("X: line\nbreak").is_err());
    }

    #[test]
    fn args_parse_and_validate() {
        let args = Args::try_parse_from([
            "plexus-bench",
            "--url",
            "http://127.0.0.1:8080/mcp",
            "--era",
            "legacy-stateless",
            "--rate",
            "5000",
            "-H",
            "X-A: 1",
            "--header",
            "X-B: 2",
            "--duration",
            "3s",
        ])
        .expect("parses");
        assert_eq!(args.era, Era::LegacyStateless);
        assert_eq!(args.headers.len(), 2);
        assert_eq!(args.duration, Duration::from_secs(3));
        assert_eq!(args.warmup, Duration::ZERO);
        assert!(args.validate().is_ok());

        let args = Args::try_parse_from(["plexus-bench", "--url", "u", "--rate", "0"]).expect("parses");
        assert!(args.validate().is_err());
        let args = Args::try_parse_from(["plexus-bench", "--url", "u", "-c", "0"]).expect("parses");
        assert!(args.validate().is_err());
    }

    #[test]
    fn calls_file_and_scenario_combinations() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["plexus-bench", "--url", "u"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv).expect("parses")
        };
        assert!(parse(&["--calls-file", "c.jsonl"]).validate().is_ok());
        assert!(parse(&["--calls-file", "c.jsonl", "--scenario", "assessment"]).validate().is_ok());
        let legacy = parse(&["--calls-file", "c.jsonl", "--era", "legacy"]).validate();
        assert!(legacy.is_err_and(|e| e.contains("stateless era")));
        let alone = parse(&["--scenario", "assessment"]).validate();
        assert!(alone.is_err_and(|e| e.contains("needs --calls-file")));
        assert!(parse(&["--calls-file", "c", "--scenario", "assessment", "--rate", "10"]).validate().is_ok());
        let stopped = parse(&["--calls-file", "c", "--scenario", "assessment", "--rate", "0"]).validate();
        assert!(stopped.is_err_and(|e| e.contains("--rate must be a positive number")));
        let both = ["plexus-bench", "--url", "u", "--calls-file", "a", "--args-file", "b"];
        assert!(Args::try_parse_from(both).is_err());
    }
}
