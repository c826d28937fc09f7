//! The run: set up one connection (and, for the legacy era, one session) per worker, drive
//! the closed or open loop for warmup + duration, then merge the workers' statistics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

use crate::cli::{Args, Era};
use crate::client::{Client, Target};
use crate::rpc::{
    CallTemplate, ErrorKind, LEGACY_VERSION, MODERN_VERSION, check_call_result, expected_echo, initialize_body,
    initialized_notification_body, request_headers,
};
use crate::stats::{Percentiles, Report, Stats};

/// Open loop: a worker that was idle waits for its slot on the tokio timer, which has
/// millisecond granularity. Up to this much wake-up lag is the timer's, not the server's, and
/// is not charged to the request; anything beyond it (and all of the wait of a slot that found
/// no idle worker) is.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Pause after a failed connect in the closed loop, so a dead server is not hammered.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// What every worker shares.
struct Plan {
    /// One per argument set, taken in turn by every worker together.
    templates: Vec<CallTemplate>,
    next_template: AtomicU64,
    expect_text: Option<String>,
    timeout: Duration,
    /// Start of the run (warmup included).
    t0: Instant,
    /// End of warmup: requests started (scheduled) from here on are recorded.
    measure_start: Instant,
    /// No request starts (or is scheduled) at or after this.
    end: Instant,
    budget: Budget,
    schedule: Option<Schedule>,
}

/// Open loop: slot `i` is due at `t0 + i * interval`; an idle worker claims the next slot.
struct Schedule {
    interval_ns: f64,
    next: AtomicU64,
}

/// `--max-requests`.
struct Budget(Option<AtomicU64>);

impl Budget {
    fn take(&self) -> bool {
        match &self.0 {
            None => true,
            Some(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
        }
    }

    fn exhausted(&self) -> bool {
        self.0.as_ref().is_some_and(|left| left.load(Ordering::Relaxed) == 0)
    }
}

struct Worker {
    client: Client,
    headers: HeaderMap,
    session: Option<HeaderValue>,
}

pub(crate) async fn run(args: &Args) -> Result<Report> {
    let arguments: Value = serde_json::from_str(&args.args).context("--args is not valid JSON")?;
    let mut argument_sets = Vec::new();
    if let Some(path) = &args.args_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(line).with_context(|| format!("{} line {}: not JSON", path.display(), n + 1))?;
            if !v.is_object() {
                bail!("{} line {}: not a JSON object", path.display(), n + 1);
            }
            argument_sets.push(v);
        }
        if argument_sets.is_empty() {
            bail!("{} has no argument lines", path.display());
        }
    }
    if !arguments.is_object() {
        bail!("--args must be a JSON object");
    }
    let target = Arc::new(Target::resolve(&args.url).await?);

    // Setup, not timed: connect every worker (and open its session in the legacy era).
    let mut setup = JoinSet::new();
    for _ in 0..args.concurrency {
        let target = Arc::clone(&target);
        let era = args.era;
        let tool = args.tool.clone();
        let user = args.headers.clone();
        let timeout = args.timeout;
        setup.spawn(async move {
            let mut client = Client::new(&target);
            let deadline = Instant::now() + timeout;
            let (headers, session) = match era {
                Era::Legacy => open_session(&mut client, &target, &tool, &user, deadline).await?,
                Era::Modern | Era::LegacyStateless => {
                    let version = if era == Era::Modern { MODERN_VERSION } else { LEGACY_VERSION };
                    let headers = request_headers(era, &tool, &target.authority, Some(version), None, &user)?;
                    client.open(deadline).await.map_err(|kind| anyhow!("cannot connect to {}: {kind}", target.addr))?;
                    (headers, None)
                }
            };
            anyhow::Ok(Worker { client, headers, session })
        });
    }
    let mut workers = Vec::with_capacity(args.concurrency);
    while let Some(joined) = setup.join_next().await {
        workers.push(joined.context("setup task failed")??);
    }

    let t0 = Instant::now();
    let measure_start = t0 + args.warmup;
    let plan = Arc::new(Plan {
        templates: if argument_sets.is_empty() {
            vec![CallTemplate::new(args.era, &args.tool, &arguments)]
        } else {
            argument_sets.iter().map(|a| CallTemplate::new(args.era, &args.tool, a)).collect()
        },
        next_template: AtomicU64::new(0),
        expect_text: if argument_sets.is_empty() { expected_echo(&args.tool, &arguments) } else { None },
        timeout: args.timeout,
        t0,
        measure_start,
        end: measure_start + args.duration,
        budget: Budget(args.max_requests.map(AtomicU64::new)),
        schedule: args.rate.map(|rate| Schedule { interval_ns: 1e9 / rate, next: AtomicU64::new(0) }),
    });

    let mut running = JoinSet::new();
    for worker in workers {
        let plan = Arc::clone(&plan);
        running.spawn(async move {
            if plan.schedule.is_some() { open_loop(worker, &plan).await } else { closed_loop(worker, &plan).await }
        });
    }
    let mut total = Stats::new();
    let mut sessions = Vec::new();
    while let Some(joined) = running.join_next().await {
        let (worker, stats) = joined.context("worker task failed")?;
        total.merge(&stats);
        total.reconnects += worker.client.reconnects();
        if worker.session.is_some() {
            sessions.push(worker);
        }
    }
    close_sessions(sessions).await;

    let elapsed = total.last_done.map_or(Duration::ZERO, |done| done.saturating_duration_since(measure_start));
    Ok(Report {
        url: args.url.clone(),
        era: args.era.as_str(),
        tool: args.tool.clone(),
        concurrency: args.concurrency,
        rate: args.rate,
        warmup: args.warmup,
        elapsed,
        ok: total.ok(),
        errors: total.errors.iter().map(|(kind, n)| (kind.to_string(), *n)).collect(),
        late: total.late,
        dropped: total.dropped,
        reconnects: total.reconnects,
        stopped_by_max_requests: plan.budget.exhausted(),
        latency: Percentiles::of(&total.latency_us),
    })
}

/// Legacy era: `initialize`, then `notifications/initialized`, on this worker's connection.
/// Returns the headers for its calls (negotiated version, session id if the server gave one).
async fn open_session(
    client: &mut Client,
    target: &Target,
    tool: &str,
    user: &[crate::cli::Header],
    deadline: Instant,
) -> Result<(HeaderMap, Option<HeaderValue>)> {
    let headers = request_headers(Era::Legacy, tool, &target.authority, None, None, user)?;
    let reply = client
        .send(Method::POST, &headers, initialize_body(), Some(0), deadline)
        .await
        .map_err(|kind| anyhow!("initialize failed: {kind}"))?;
    if reply.status != StatusCode::OK {
        bail!("initialize failed: HTTP {}", reply.status);
    }
    let response = reply
        .message
        .context("initialize failed: no response")?
        .map_err(|kind| anyhow!("initialize failed: {kind}"))?;
    if let Some(error) = &response.error {
        bail!("initialize failed: {error}");
    }
    let version = response.result.as_ref().and_then(|r| r.protocol_version.as_deref()).unwrap_or(LEGACY_VERSION);
    let session = reply.session;
    let headers = request_headers(Era::Legacy, tool, &target.authority, Some(version), session.as_ref(), user)?;
    let reply = client
        .send(Method::POST, &headers, initialized_notification_body(), None, deadline)
        .await
        .map_err(|kind| anyhow!("notifications/initialized failed: {kind}"))?;
    if !reply.status.is_success() {
        bail!("notifications/initialized failed: HTTP {}", reply.status);
    }
    Ok((headers, session))
}

/// Legacy era: end the sessions (best effort; a server may answer 405).
async fn close_sessions(workers: Vec<Worker>) {
    let mut closing = JoinSet::new();
    for mut worker in workers {
        closing.spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(2);
            let _ = worker.client.send(Method::DELETE, &worker.headers, Bytes::new(), None, deadline).await;
        });
    }
    while closing.join_next().await.is_some() {}
}

/// One `tools/call`, judged. Returns the outcome and when the response had arrived.
async fn call(worker: &mut Worker, plan: &Plan, id: u64) -> (Result<(), ErrorKind>, Instant) {
    let deadline = Instant::now() + plan.timeout;
    let reply = worker
        .client
        .send(
            Method::POST,
            &worker.headers,
            plan.templates[(plan.next_template.fetch_add(1, Ordering::Relaxed) % plan.templates.len() as u64) as usize]
                .body(id),
            Some(id),
            deadline,
        )
        .await;
    match reply {
        Err(kind) => (Err(kind), Instant::now()),
        Ok(reply) => {
            let outcome = if reply.status != StatusCode::OK {
                Err(ErrorKind::Status(reply.status.as_u16()))
            } else {
                match reply.message {
                    Some(Ok(response)) => check_call_result(&response, plan.expect_text.as_deref()),
                    Some(Err(kind)) => Err(kind),
                    None => Err(ErrorKind::BadResponse),
                }
            };
            (outcome, reply.done)
        }
    }
}

/// Back to back: latency from the actual send.
async fn closed_loop(mut worker: Worker, plan: &Plan) -> (Worker, Stats) {
    let mut stats = Stats::new();
    let mut id = 0;
    loop {
        let start = Instant::now();
        if start >= plan.end || !plan.budget.take() {
            break;
        }
        id += 1;
        let (outcome, done) = call(&mut worker, plan, id).await;
        if start >= plan.measure_start {
            stats.record(outcome, start, done);
        }
        if outcome == Err(ErrorKind::Connect) {
            sleep(CONNECT_BACKOFF).await;
        }
    }
    (worker, stats)
}

/// Fixed schedule: latency from the slot's due time (coordinated-omission correction).
async fn open_loop(mut worker: Worker, plan: &Plan) -> (Worker, Stats) {
    let mut stats = Stats::new();
    let Some(schedule) = &plan.schedule else {
        return (worker, stats);
    };
    let mut id = 0;
    loop {
        let slot = schedule.next.fetch_add(1, Ordering::Relaxed);
        let due = plan.t0 + Duration::from_nanos((slot as f64 * schedule.interval_ns) as u64);
        if due >= plan.end {
            break;
        }
        let measured = due >= plan.measure_start;
        let claimed = Instant::now();
        if claimed >= plan.end {
            // Due within the run, but no worker was free before it ended.
            if measured {
                stats.dropped += 1;
            }
            continue;
        }
        if !plan.budget.take() {
            break;
        }
        let on_time = claimed <= due;
        let start = if on_time {
            sleep_until(due).await;
            Instant::now().min(due + TIMER_SLACK)
        } else {
            if measured {
                stats.late += 1;
            }
            due
        };
        id += 1;
        let (outcome, done) = call(&mut worker, plan, id).await;
        if measured {
            stats.record(outcome, start, done);
        }
    }
    (worker, stats)
}
