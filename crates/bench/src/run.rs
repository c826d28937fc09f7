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

use crate::cli::{Args, Era, Scenario};
use crate::client::{Client, Target};
use crate::rpc::{
    CallTemplate, ErrorKind, LEGACY_VERSION, MODERN_VERSION, Message, check_call_result, expected_echo,
    initialize_body, initialized_notification_body, request_headers,
};
use crate::scenario::{self, AssessmentPlan};
use crate::stats::{Percentiles, Report, Side, Stats};

/// Open loop: a worker that was idle waits for its slot on the tokio timer, which has
/// millisecond granularity. Up to this much wake-up lag is the timer's, not the server's, and
/// is not charged to the request; anything beyond it (and all of the wait of a slot that found
/// no idle worker) is.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Pause after a failed connect in the closed loop, so a dead server is not hammered.
pub(crate) const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// What every worker shares.
pub(crate) struct Plan {
    /// One per argument set, taken in turn by every worker together.
    templates: Vec<Prepared>,
    /// `--scenario assessment`.
    pub(crate) assessment: Option<AssessmentPlan>,
    next_template: AtomicU64,
    expect_text: Option<String>,
    pub(crate) era: Era,
    pub(crate) timeout: Duration,
    /// Start of the run (warmup included).
    t0: Instant,
    /// End of warmup: requests started (scheduled) from here on are recorded.
    pub(crate) measure_start: Instant,
    /// No request starts (or is scheduled) at or after this.
    pub(crate) end: Instant,
    pub(crate) budget: Budget,
    pub(crate) schedule: Option<Schedule>,
}

/// Open loop: slot `i` is due at `t0 + i * interval`; an idle worker claims the next slot.
pub(crate) struct Schedule {
    interval_ns: f64,
    next: AtomicU64,
}

/// A call's body and, when its line gave headers, its own full set of headers.
pub(crate) struct Prepared {
    pub(crate) template: CallTemplate,
    pub(crate) headers: Option<HeaderMap>,
}

/// `--max-requests`.
pub(crate) struct Budget(Option<AtomicU64>);

impl Budget {
    pub(crate) fn take(&self) -> bool {
        match &self.0 {
            None => true,
            Some(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
        }
    }

    fn exhausted(&self) -> bool {
        self.0.as_ref().is_some_and(|left| left.load(Ordering::Relaxed) == 0)
    }
}

pub(crate) struct Worker {
    client: Client,
    headers: HeaderMap,
    session: Option<HeaderValue>,
}

pub(crate) async fn run(args: &Args) -> Result<Report> {
    let arguments: Value = serde_json::from_str(&args.args).context("--args is not valid JSON")?;
    if !arguments.is_object() {
        bail!("--args must be a JSON object");
    }
    let argument_sets = match &args.args_file {
        Some(path) => read_objects(path)?,
        None => Vec::new(),
    };
    let calls = match &args.calls_file {
        Some(path) => {
            read_objects(path)?.iter().enumerate().map(|(n, v)| Line::parse(v, path, n)).collect::<Result<Vec<_>>>()?
        }
        None => Vec::new(),
    };
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

    let version = if args.era == Era::Modern { MODERN_VERSION } else { LEGACY_VERSION };
    let line_headers = |tool: &str, line: &Line| -> Result<HeaderMap> {
        let mut h = request_headers(args.era, tool, &target.authority, Some(version), None, &args.headers)?;
        for crate::cli::Header { name, value } in &line.headers {
            h.insert(name.clone(), value.clone());
        }
        Ok(h)
    };
    let (templates, assessment) = match args.scenario {
        Some(Scenario::Assessment) => {
            let mut starts = Vec::with_capacity(calls.len());
            let mut answers = Vec::with_capacity(calls.len());
            for line in &calls {
                starts.push(Prepared {
                    template: CallTemplate::new(args.era, scenario::START, &line.arguments),
                    headers: Some(line_headers(scenario::START, line)?),
                });
                answers.push(line_headers(scenario::ANSWER, line)?);
            }
            (Vec::new(), Some(AssessmentPlan::new(starts, answers)))
        }
        None if !calls.is_empty() => {
            let mut templates = Vec::with_capacity(calls.len());
            for line in &calls {
                templates.push(Prepared {
                    template: CallTemplate::new(args.era, &args.tool, &line.arguments),
                    headers: Some(line_headers(&args.tool, line)?),
                });
            }
            (templates, None)
        }
        None if !argument_sets.is_empty() => {
            let templates = argument_sets
                .iter()
                .map(|a| Prepared { template: CallTemplate::new(args.era, &args.tool, a), headers: None })
                .collect();
            (templates, None)
        }
        None => (vec![Prepared { template: CallTemplate::new(args.era, &args.tool, &arguments), headers: None }], None),
    };

    let t0 = Instant::now();
    let measure_start = t0 + args.warmup;
    let plan = Arc::new(Plan {
        expect_text: if argument_sets.is_empty() && calls.is_empty() {
            expected_echo(&args.tool, &arguments)
        } else {
            None
        },
        templates,
        assessment,
        next_template: AtomicU64::new(0),
        era: args.era,
        timeout: args.timeout,
        t0,
        measure_start,
        end: measure_start + args.duration,
        budget: Budget(args.max_requests.map(AtomicU64::new)),
        schedule: args.rate.map(|rate| Schedule { interval_ns: 1e9 / rate, next: AtomicU64::new(0) }),
    });

    let mut running = JoinSet::new();
    for (n, worker) in workers.into_iter().enumerate() {
        let plan = Arc::clone(&plan);
        running.spawn(async move {
            if plan.assessment.is_some() {
                scenario::assessments(worker, &plan, n as u64).await
            } else if plan.schedule.is_some() {
                let (worker, stats) = open_loop(worker, &plan).await;
                (worker, stats, None)
            } else {
                let (worker, stats) = closed_loop(worker, &plan).await;
                (worker, stats, None)
            }
        });
    }
    let mut total = Stats::new();
    let mut starts: Option<Stats> = None;
    let mut sessions = Vec::new();
    while let Some(joined) = running.join_next().await {
        let (worker, stats, side) = joined.context("worker task failed")?;
        total.merge(&stats);
        if let Some(side) = side {
            // The starts' slots are the same schedule's: their late and dropped slots count.
            total.late += side.late;
            total.dropped += side.dropped;
            starts.get_or_insert_with(Stats::new).merge(&side);
        }
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
        tool: match args.scenario {
            Some(Scenario::Assessment) => format!("{} (scenario assessment)", scenario::ANSWER),
            None => args.tool.clone(),
        },
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
        side: starts.map(|st| Side {
            tool: scenario::START.to_owned(),
            ok: st.ok(),
            errors: st.errors.iter().map(|(kind, n)| (kind.to_string(), *n)).collect(),
            latency: Percentiles::of(&st.latency_us),
        }),
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

/// One `tools/call` of the plan's templates, judged. Returns the outcome and when the response
/// had arrived.
async fn call(worker: &mut Worker, plan: &Plan, id: u64) -> (Result<(), ErrorKind>, Instant) {
    let n = plan.next_template.fetch_add(1, Ordering::Relaxed) % plan.templates.len() as u64;
    let prepared = &plan.templates[n as usize];
    let (outcome, done) = exchange(worker, prepared.headers.as_ref(), prepared.template.body(id), id, plan).await;
    (outcome.and_then(|m| check_call_result(&m, plan.expect_text.as_deref())), done)
}

/// Sends one `tools/call` body (with `headers`, else the worker's) and returns the JSON-RPC
/// response to `id` unjudged, and when it had arrived.
pub(crate) async fn exchange(
    worker: &mut Worker,
    headers: Option<&HeaderMap>,
    body: Bytes,
    id: u64,
    plan: &Plan,
) -> (Result<Message, ErrorKind>, Instant) {
    let deadline = Instant::now() + plan.timeout;
    let headers = headers.unwrap_or(&worker.headers);
    match worker.client.send(Method::POST, headers, body, Some(id), deadline).await {
        Err(kind) => (Err(kind), Instant::now()),
        Ok(reply) => {
            let outcome = if reply.status != StatusCode::OK {
                Err(ErrorKind::Status(reply.status.as_u16()))
            } else {
                reply.message.unwrap_or(Err(ErrorKind::BadResponse))
            };
            (outcome, reply.done)
        }
    }
}

/// The lines of a JSON Lines file of objects (blank lines skipped).
fn read_objects(path: &std::path::Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("{} line {}: not JSON", path.display(), n + 1))?;
        if !v.is_object() {
            bail!("{} line {}: not a JSON object", path.display(), n + 1);
        }
        out.push(v);
    }
    if out.is_empty() {
        bail!("{} has no lines", path.display());
    }
    Ok(out)
}

/// One line of `--calls-file`.
#[derive(Debug)]
pub(crate) struct Line {
    arguments: Value,
    headers: Vec<crate::cli::Header>,
}

impl Line {
    fn parse(v: &Value, path: &std::path::Path, n: usize) -> Result<Line> {
        let at = || format!("{} object {}", path.display(), n + 1);
        let Value::Object(fields) = v else { bail!("{}: not a JSON object", at()) };
        if let Some(unknown) = fields.keys().find(|k| !matches!(k.as_str(), "arguments" | "headers")) {
            bail!("{}: unknown field `{unknown}` (expected `arguments` and `headers`)", at());
        }
        let arguments = fields.get("arguments").cloned().unwrap_or_else(|| Value::Object(Default::default()));
        if !arguments.is_object() {
            bail!("{}: `arguments` must be an object", at());
        }
        let mut headers = Vec::new();
        match fields.get("headers") {
            None => {}
            Some(Value::Object(h)) => {
                for (name, value) in h {
                    let Some(value) = value.as_str() else { bail!("{}: header `{name}` must be a string", at()) };
                    headers.push(
                        crate::cli::parse_header(&format!("{name}: {value}")).map_err(|e| anyhow!("{}: {e}", at()))?,
                    );
                }
            }
            Some(_) => bail!("{}: `headers` must be an object of strings", at()),
        }
        Ok(Line { arguments, headers })
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
    let mut id = 0;
    while let Some(Slot { start, measured }) = next_slot(plan, &mut stats).await {
        id += 1;
        let (outcome, done) = call(&mut worker, plan, id).await;
        if measured {
            stats.record(outcome, start, done);
        }
    }
    (worker, stats)
}

/// Open loop: when a call is to be sent and what its latency counts from.
pub(crate) struct Slot {
    /// The slot's due time, or the moment a worker that waited for it woke (within
    /// [`TIMER_SLACK`]).
    pub(crate) start: Instant,
    /// Due after warmup: its outcome is recorded.
    pub(crate) measured: bool,
}

/// Open loop: claims the schedule's next slot and waits for it if it is not due yet. Slots
/// that no worker could take before the end of the run count as dropped in `stats`, slots
/// claimed after they were due as late. `None` when the schedule or `--max-requests` is
/// exhausted (or there is no schedule).
pub(crate) async fn next_slot(plan: &Plan, stats: &mut Stats) -> Option<Slot> {
    let schedule = plan.schedule.as_ref()?;
    loop {
        let slot = schedule.next.fetch_add(1, Ordering::Relaxed);
        let due = plan.t0 + Duration::from_nanos((slot as f64 * schedule.interval_ns) as u64);
        if due >= plan.end {
            return None;
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
            return None;
        }
        let start = if claimed <= due {
            sleep_until(due).await;
            Instant::now().min(due + TIMER_SLACK)
        } else {
            if measured {
                stats.late += 1;
            }
            due
        };
        return Some(Slot { start, measured });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: f64, t0: Instant, warmup: Duration, duration: Duration, budget: Option<u64>) -> Plan {
        Plan {
            templates: Vec::new(),
            assessment: None,
            next_template: AtomicU64::new(0),
            expect_text: None,
            era: Era::Modern,
            timeout: Duration::from_secs(1),
            t0,
            measure_start: t0 + warmup,
            end: t0 + warmup + duration,
            budget: Budget(budget.map(AtomicU64::new)),
            schedule: Some(Schedule { interval_ns: 1e9 / rate, next: AtomicU64::new(0) }),
        }
    }

    // On tokio's paused clock: a sleep ends exactly when due, and nothing else moves time.
    #[tokio::test(start_paused = true)]
    async fn slots_follow_the_schedule_and_overdue_ones_count_from_their_due_time() {
        // 1,000 slots a second; the run began 5 ms ago, so slots 0-4 are overdue when claimed.
        let t0 = Instant::now() - Duration::from_millis(5);
        let plan = plan(1000.0, t0, Duration::from_millis(2), Duration::from_millis(18), None);
        let mut stats = Stats::new();
        let mut slots = Vec::new();
        while let Some(slot) = next_slot(&plan, &mut stats).await {
            slots.push(slot);
        }
        assert_eq!(slots.len(), 20, "one per millisecond of warmup and run");
        // Overdue slots start at their due time; of them, 2-4 are after warmup and late.
        for (n, slot) in slots.iter().enumerate().take(5) {
            assert_eq!(slot.start, t0 + Duration::from_millis(n as u64));
        }
        assert_eq!(stats.late, 3);
        assert_eq!(slots.iter().filter(|s| s.measured).count(), 18);
        // A slot waited for starts when due.
        for (n, slot) in slots.iter().enumerate().skip(5) {
            assert_eq!(slot.start, t0 + Duration::from_millis(n as u64), "slot {n}");
        }
        assert_eq!(stats.dropped, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_no_worker_took_in_time_are_dropped_and_the_budget_stops_the_schedule() {
        // The run ended before anyone claimed its 10 slots (all measured: no warmup).
        let t0 = Instant::now() - Duration::from_millis(50);
        let ended = plan(1000.0, t0, Duration::ZERO, Duration::from_millis(10), None);
        let mut stats = Stats::new();
        assert!(next_slot(&ended, &mut stats).await.is_none());
        assert_eq!((stats.dropped, stats.late), (10, 0));

        let capped = plan(1000.0, t0, Duration::ZERO, Duration::from_secs(1), Some(3));
        let mut stats = Stats::new();
        let mut n = 0;
        while next_slot(&capped, &mut stats).await.is_some() {
            n += 1;
        }
        assert_eq!(n, 3, "--max-requests 3");
    }
}
