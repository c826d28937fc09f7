//! Notifications: incident events delivered to Slack incoming webhooks and
//! generic JSON webhooks.
//!
//! [`Notifier::notify`] never blocks its caller: each target has a
//! background task with a queue, so one target's events arrive in the
//! order they were raised (created before resolved) while targets are
//! served concurrently, and a receiver that is down delays only itself.
//! Each delivery goes through core's [`send`] with the configured
//! [`RetryPolicy`] (429, 5xx, timeouts and refused connections are retried
//! with backoff; other 4xx give up at once). A delivery that finally fails
//! is appended to the dead-letter file (JSON Lines, one [`DeadLetter`] per
//! line, with the exact payload so [`Notifier::replay_dead_letters`] can
//! send it again) and a warning is logged.
//!
//! Secrets: a Slack webhook URL is a credential
//! (`https://hooks.slack.com/services/T…/B…/<token>`), and a generic
//! target's headers may carry a token. Neither is ever logged, put in an
//! error or a dead-letter record, or shown by `Debug`: a target is named by
//! its name and its URL's host. Error texts from the client are scrubbed of
//! the URL, its path, its long path segments and query values, and the
//! header values before they go anywhere.
//!
//! Not done here: signing payloads (an HMAC header) needs the `hmac` crate,
//! which this crate does not depend on; a generic target can carry a static
//! token header instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use plexus_core::http::{HttpClient, HttpError, HttpRequest, RetryPolicy, send};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, oneshot};

use super::lifecycle::{Incident, Severity, Status, rfc3339};
use super::postmortem::human_duration;

/// Slack's limits on block text (characters), with a margin for
/// characters Slack counts twice (emoji outside the BMP).
const SLACK_HEADER_CHARS: usize = 145;
const SLACK_FIELD_CHARS: usize = 1_900;
const SLACK_SECTION_CHARS: usize = 2_900;
const SLACK_TEXT_CHARS: usize = 300;

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EventKind {
    #[serde(rename = "incident.created")]
    Created,
    #[serde(rename = "incident.updated")]
    Updated,
    #[serde(rename = "incident.resolved")]
    Resolved,
}

impl EventKind {
    /// `incident.created`, `incident.updated`, `incident.resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "incident.created",
            Self::Updated => "incident.updated",
            Self::Resolved => "incident.resolved",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to announce: what happened, the incident as it now is, and
/// when the event was raised (`sentAt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub incident: Incident,
    pub sent_at: OffsetDateTime,
}

impl Event {
    /// `incident.created` for a new incident.
    pub fn created(incident: &Incident, now: OffsetDateTime) -> Self {
        Self { kind: EventKind::Created, incident: incident.clone(), sent_at: now }
    }

    /// After an update: `incident.resolved` when the latest entry resolved
    /// it, `incident.updated` otherwise (notes after resolution included).
    pub fn updated(incident: &Incident, now: OffsetDateTime) -> Self {
        let n = incident.timeline.len();
        let just_resolved = incident.status == Status::Resolved
            && (n < 2 || incident.timeline.get(n - 2).is_some_and(|e| e.status != Status::Resolved));
        let kind = if just_resolved { EventKind::Resolved } else { EventKind::Updated };
        Self { kind, incident: incident.clone(), sent_at: now }
    }

    /// The generic webhook body:
    /// `{"type": "incident.created", "incident": {...}, "sentAt": "..."}`,
    /// the incident in its stored form (timeline included).
    pub fn webhook_payload(&self) -> Value {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            #[serde(rename = "type")]
            kind: EventKind,
            incident: &'a Incident,
            #[serde(with = "rfc3339")]
            sent_at: OffsetDateTime,
        }
        serde_json::to_value(Body { kind: self.kind, incident: &self.incident, sent_at: self.sent_at })
            .unwrap_or(Value::Null)
    }

    /// The Slack incoming-webhook body: a `text` fallback (what
    /// notifications show) and `blocks`: a header, the severity, status,
    /// affected systems and teams as fields, the latest note, and a
    /// context line with the event type and time. User text is escaped
    /// (`&`, `<`, `>`) so a note cannot mention `<!channel>`.
    pub fn slack_payload(&self) -> Value {
        let i = &self.incident;
        let sev = i.severity.as_str().to_uppercase();
        let mark = match (i.status, i.severity) {
            (Status::Resolved, _) => "✅",
            (_, Severity::Sev1) => "🔴",
            (_, Severity::Sev2) => "🟠",
            (_, Severity::Sev3) => "🟡",
            (_, Severity::Sev4) => "🔵",
        };
        let verb = match self.kind {
            EventKind::Created => "declared / 発生",
            EventKind::Updated => "updated / 更新",
            EventKind::Resolved => "resolved / 解決",
        };
        let text =
            escape_truncate(&format!("{mark} [{sev}] {} {} ({verb}): {}", i.id, i.status, i.title), SLACK_TEXT_CHARS);
        let header = truncate(&format!("{mark} {sev} {}: {}", i.id, i.title), SLACK_HEADER_CHARS);
        let field = |label: &str, value: &str| json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape_truncate(value, SLACK_FIELD_CHARS))});
        let list = |items: &[String]| if items.is_empty() { "—".to_owned() } else { items.join(", ") };
        let mut fields = vec![
            field("Severity / 重大度", &i.severity.label()),
            field("Status / 状態", i.status.as_str()),
            field("Affected / 影響範囲", &list(&i.affected)),
            field("Teams / チーム", &list(&i.teams)),
        ];
        if let Some(d) = i.duration() {
            fields.push(field("Duration / 所要時間", &human_duration(d)));
        }
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
            json!({"type": "section", "fields": fields}),
        ];
        if let Some(e) = i.latest_note() {
            let head = format!("*Latest note / 最新メモ* — {}, {}\n", escape(&e.author), stamp(e.at));
            let room = SLACK_SECTION_CHARS.saturating_sub(head.chars().count());
            let body = format!("{head}{}", escape_truncate(&e.note, room));
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": body}}));
        }
        let context = format!("{} · {}", self.kind, stamp(self.sent_at));
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
        json!({"text": text, "blocks": blocks})
    }
}

/// Where events go. `Debug` shows the name and the URL's host only: the
/// rest of the URL and the header values are secrets.
#[derive(Clone)]
pub enum Target {
    /// A Slack incoming webhook (`https://hooks.slack.com/services/…`).
    Slack { name: String, url: String },
    /// Any receiver of the JSON event; `headers` may carry a token.
    Webhook { name: String, url: String, headers: Vec<(String, String)> },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Slack { name, .. } => {
                f.debug_struct("Slack").field("name", name).field("host", &self.host()).finish_non_exhaustive()
            }
            Self::Webhook { name, headers, .. } => {
                let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
                f.debug_struct("Webhook")
                    .field("name", name)
                    .field("host", &self.host())
                    .field("headers", &names)
                    .finish_non_exhaustive()
            }
        }
    }
}

impl Target {
    /// A Slack incoming webhook.
    pub fn slack(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::Slack { name: name.into(), url: url.into() }
    }

    /// A generic webhook.
    pub fn webhook(name: impl Into<String>, url: impl Into<String>, headers: Vec<(String, String)>) -> Self {
        Self::Webhook { name: name.into(), url: url.into(), headers }
    }

    /// The name it is known by in logs, stats and dead letters.
    pub fn name(&self) -> &str {
        match self {
            Self::Slack { name, .. } | Self::Webhook { name, .. } => name,
        }
    }

    /// The URL's host (and port), the only part of it that is shown.
    pub fn host(&self) -> &str {
        split_url(self.url()).map_or("?", |u| u.host)
    }

    fn url(&self) -> &str {
        match self {
            Self::Slack { url, .. } | Self::Webhook { url, .. } => url,
        }
    }

    fn headers(&self) -> &[(String, String)] {
        match self {
            Self::Slack { .. } => &[],
            Self::Webhook { headers, .. } => headers,
        }
    }

    fn check(&self) -> Result<(), NotifyError> {
        let bad =
            |reason: &'static str| NotifyError::BadTarget { name: self.name().chars().take(100).collect(), reason };
        let name = self.name();
        if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(bad("the name must be one line of 1 to 100 characters"));
        }
        match split_url(self.url()) {
            Some(u) if !u.host.is_empty() && !u.host.chars().any(|c| c.is_whitespace() || c.is_control()) => {}
            _ => return Err(bad("the url must be http:// or https:// with a host")),
        }
        let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if self.headers().iter().any(|(n, v)| !token(n) || v.chars().any(char::is_control)) {
            return Err(bad("a header has an invalid name or a control character in its value"));
        }
        Ok(())
    }

    /// Everything of this target that must not be shown, longest first.
    fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.url().to_owned()];
        if let Some(u) = split_url(self.url()) {
            if let Some(userinfo) = u.userinfo {
                out.push(userinfo.to_owned());
            }
            if u.rest.len() > 1 {
                out.push(u.rest.to_owned());
            }
            out.extend(u.rest.split(['/', '?', '&', '=', '#']).filter(|p| p.len() >= 8).map(str::to_owned));
        }
        for (_, v) in self.headers() {
            if v.len() >= 4 {
                out.push(v.clone());
            }
            out.extend(v.split_whitespace().filter(|p| p.len() >= 8).map(str::to_owned));
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.len()));
        out.dedup();
        out
    }

    /// `text` with every secret of this target replaced.
    fn scrub(&self, text: &str) -> String {
        self.secrets().iter().fold(text.to_owned(), |t, s| t.replace(s.as_str(), "[redacted]"))
    }

    fn payload(&self, event: &Event) -> Value {
        match self {
            Self::Slack { .. } => event.slack_payload(),
            Self::Webhook { .. } => event.webhook_payload(),
        }
    }
}

struct UrlParts<'a> {
    host: &'a str,
    userinfo: Option<&'a str>,
    /// Path, query and fragment.
    rest: &'a str,
}

fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let after = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    Some(UrlParts { host, userinfo, rest })
}

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    pub retry: RetryPolicy,
    /// One attempt, connect to last byte.
    pub timeout: Duration,
    /// The JSON Lines file failed deliveries are appended to.
    pub dead_letter_path: PathBuf,
}

impl NotifyOptions {
    /// 5 attempts from 1 s backoff (capped at 30 s), 10 s per attempt.
    pub fn new(dead_letter_path: impl Into<PathBuf>) -> Self {
        Self {
            retry: RetryPolicy { attempts: 5, base: Duration::from_secs(1), max_wait: Duration::from_secs(30) },
            timeout: Duration::from_secs(10),
            dead_letter_path: dead_letter_path.into(),
        }
    }
}

/// Why notifications could not be set up or replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("notification target `{name}`: {reason}")]
    BadTarget { name: String, reason: &'static str },
    #[error("two notification targets are named `{0}`")]
    DuplicateTarget(String),
    #[error("dead-letter file {path}: {source}")]
    DeadLetterFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One failed delivery, a line of the dead-letter file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// When it was given up (RFC 3339).
    #[serde(with = "rfc3339")]
    #[schemars(with = "String")]
    pub at: OffsetDateTime,
    /// The target's name (never its URL).
    pub target: String,
    /// The target URL's host.
    pub host: String,
    pub event_type: EventKind,
    pub incident_id: String,
    /// Tries made, over every replay.
    pub attempts: u32,
    /// The last failure, scrubbed of secrets.
    pub error: String,
    /// The body as it was sent, to replay.
    pub payload: Value,
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum DeliveryResult {
    /// The receiver answered 2xx (or 3xx) with `status`.
    #[serde(rename = "delivered")]
    Delivered { status: u16 },
    /// Given up, and recorded in the dead-letter file.
    #[serde(rename = "deadLettered")]
    DeadLettered { error: String },
    /// Given up, and the dead-letter record could not be written either.
    #[serde(rename = "lost")]
    Lost { error: String },
}

/// The outcome of delivering one event to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryOutcome {
    pub target: String,
    pub event_type: EventKind,
    pub incident_id: String,
    /// Tries made (1 when the first one succeeded or could not be retried).
    pub attempts: u32,
    pub result: DeliveryResult,
}

impl DeliveryOutcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self.result, DeliveryResult::Delivered { .. })
    }
}

/// Counters since the notifier was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStats {
    /// Deliveries that reached their receiver (replays excluded).
    pub delivered: u64,
    /// Retries made (a delivery that took 3 tries counts 2).
    pub retried: u64,
    /// Deliveries given up and recorded in the dead-letter file.
    pub dead_lettered: u64,
    /// Deliveries given up whose dead-letter record could not be written.
    pub lost: u64,
    /// Dead letters delivered by a replay.
    pub replayed: u64,
    /// Deliveries queued or under way.
    pub pending: u64,
}

/// What a replay of the dead-letter file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Delivered now, removed from the file.
    pub delivered: usize,
    /// Failed again, kept (attempts and error updated).
    pub failed: usize,
    /// Kept: no target of that name is configured any more.
    pub unknown_target: usize,
    /// Kept as they were: lines that are not dead-letter records.
    pub unreadable: usize,
}

/// The outcomes of one [`Notifier::notify`], to await if wanted; dropping
/// it leaves the deliveries running.
#[derive(Debug)]
pub struct Delivery {
    kind: EventKind,
    incident_id: String,
    pending: Vec<(String, oneshot::Receiver<DeliveryOutcome>)>,
}

impl Delivery {
    /// Wait for every target's outcome, in target order.
    pub async fn outcomes(self) -> Vec<DeliveryOutcome> {
        let mut out = Vec::with_capacity(self.pending.len());
        for (target, rx) in self.pending {
            out.push(rx.await.unwrap_or_else(|_| DeliveryOutcome {
                target,
                event_type: self.kind,
                incident_id: self.incident_id.clone(),
                attempts: 0,
                result: DeliveryResult::Lost { error: "the delivery task ended without an outcome".to_owned() },
            }));
        }
        out
    }

    /// How many targets the event went to.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

struct Job {
    kind: EventKind,
    incident_id: String,
    payload: Value,
    reply: oneshot::Sender<DeliveryOutcome>,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    lost: AtomicU64,
    replayed: AtomicU64,
    pending: AtomicU64,
}

/// What the per-target tasks share.
struct Shared {
    client: Arc<dyn HttpClient>,
    options: NotifyOptions,
    counters: Counters,
    /// Held while the dead-letter file is appended to or rewritten.
    dead_letters: tokio::sync::Mutex<()>,
}

/// Delivers incident events to the configured targets.
pub struct Notifier {
    shared: Arc<Shared>,
    targets: Vec<Arc<Target>>,
    /// One queue per target, its task started on first use.
    queues: parking_lot::Mutex<Vec<Option<mpsc::UnboundedSender<Job>>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("targets", &self.targets).finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier for `targets` (names unique, URLs http(s) with a host).
    pub fn new(client: Arc<dyn HttpClient>, targets: Vec<Target>, options: NotifyOptions) -> Result<Self, NotifyError> {
        for (n, t) in targets.iter().enumerate() {
            t.check()?;
            if targets[..n].iter().any(|o| o.name() == t.name()) {
                return Err(NotifyError::DuplicateTarget(t.name().to_owned()));
            }
        }
        let queues = parking_lot::Mutex::new(targets.iter().map(|_| None).collect());
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                options,
                counters: Counters::default(),
                dead_letters: tokio::sync::Mutex::new(()),
            }),
            targets: targets.into_iter().map(Arc::new).collect(),
            queues,
        })
    }

    /// The configured targets.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter().map(|t| &**t)
    }

    /// Queue `event` for every target and return at once; the returned
    /// [`Delivery`] can be awaited for the outcomes. Must be called within
    /// a Tokio runtime (outside one, every outcome is `lost`).
    pub fn notify(&self, event: &Event) -> Delivery {
        let mut delivery = Delivery { kind: event.kind, incident_id: event.incident.id.clone(), pending: Vec::new() };
        let runtime = tokio::runtime::Handle::try_current().ok();
        let mut queues = self.queues.lock();
        for (target, queue) in self.targets.iter().zip(queues.iter_mut()) {
            let (reply, rx) = oneshot::channel();
            delivery.pending.push((target.name().to_owned(), rx));
            let job =
                Job { kind: event.kind, incident_id: event.incident.id.clone(), payload: target.payload(event), reply };
            let Some(runtime) = &runtime else {
                tracing::error!(receiver = %target.name(), "incident notification dropped: no async runtime");
                let _ = job.reply.send(lost(target, job.kind, &job.incident_id, "no async runtime"));
                continue;
            };
            self.shared.counters.pending.fetch_add(1, Ordering::Relaxed);
            let job = match queue {
                Some(tx) => match tx.send(job) {
                    Ok(()) => continue,
                    Err(mpsc::error::SendError(job)) => job,
                },
                None => job,
            };
            // No task yet (or it ended): start one.
            let (tx, rx) = mpsc::unbounded_channel();
            runtime.spawn(run(Arc::clone(&self.shared), Arc::clone(target), rx));
            if let Err(mpsc::error::SendError(job)) = tx.send(job) {
                self.shared.counters.pending.fetch_sub(1, Ordering::Relaxed);
                let _ = job.reply.send(lost(target, job.kind, &job.incident_id, "the delivery task did not start"));
            }
            *queue = Some(tx);
        }
        delivery
    }

    /// [`notify`](Self::notify) and wait for every outcome.
    pub async fn notify_and_wait(&self, event: &Event) -> Vec<DeliveryOutcome> {
        self.notify(event).outcomes().await
    }

    /// The counters so far.
    pub fn stats(&self) -> DeliveryStats {
        let c = &self.shared.counters;
        DeliveryStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            replayed: c.replayed.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
        }
    }

    /// Send every dead letter again (to the target of the same name, with
    /// the retry policy). Delivered ones leave the file; the others stay,
    /// with attempts and error updated. New dead letters wait while this
    /// runs.
    pub async fn replay_dead_letters(&self) -> Result<ReplayReport, NotifyError> {
        let path = &self.shared.options.dead_letter_path;
        let file_error = |source| NotifyError::DeadLetterFile { path: path.display().to_string(), source };
        let _guard = self.shared.dead_letters.lock().await;
        let text = match tokio::fs::read_to_string(path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ReplayReport::default()),
            Err(e) => return Err(file_error(e)),
        };
        let mut report = ReplayReport::default();
        let mut keep = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(mut letter) = serde_json::from_str::<DeadLetter>(line) else {
                report.unreadable += 1;
                keep.push(line.to_owned());
                continue;
            };
            let Some(target) = self.targets.iter().find(|t| t.name() == letter.target) else {
                report.unknown_target += 1;
                keep.push(line.to_owned());
                continue;
            };
            let (result, attempts) = self.shared.attempt(target, &letter.payload).await;
            match result {
                Ok(_) => {
                    report.delivered += 1;
                    self.shared.counters.replayed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(receiver = %target.name(), host = %target.host(), event = %letter.event_type,
                        incident = %letter.incident_id, attempts, "dead letter delivered on replay");
                }
                Err(error) => {
                    report.failed += 1;
                    letter.at = OffsetDateTime::now_utc();
                    letter.attempts = letter.attempts.saturating_add(attempts);
                    letter.error = error;
                    keep.push(serde_json::to_string(&letter).unwrap_or_else(|_| line.to_owned()));
                }
            }
        }
        if keep.is_empty() {
            tokio::fs::remove_file(path).await.map_err(file_error)?;
        } else {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".replay");
            let tmp = PathBuf::from(tmp);
            let body = keep.iter().map(|l| format!("{l}\n")).collect::<String>();
            tokio::fs::write(&tmp, body).await.map_err(file_error)?;
            tokio::fs::rename(&tmp, path).await.map_err(file_error)?;
        }
        Ok(report)
    }
}

/// A target's task: its queue, one delivery at a time, in order.
async fn run(shared: Arc<Shared>, target: Arc<Target>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = jobs.recv().await {
        let outcome = shared.deliver(&target, &job).await;
        shared.counters.pending.fetch_sub(1, Ordering::Relaxed);
        // The caller may have dropped its `Delivery`: fine.
        let _ = job.reply.send(outcome);
    }
}

impl Shared {
    async fn deliver(&self, target: &Target, job: &Job) -> DeliveryOutcome {
        let (result, attempts) = self.attempt(target, &job.payload).await;
        let outcome = |result| DeliveryOutcome {
            target: target.name().to_owned(),
            event_type: job.kind,
            incident_id: job.incident_id.clone(),
            attempts,
            result,
        };
        let error = match result {
            Ok(status) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(receiver = %target.name(), host = %target.host(), event = %job.kind,
                    incident = %job.incident_id, attempts, status, "incident notification delivered");
                return outcome(DeliveryResult::Delivered { status });
            }
            Err(error) => error,
        };
        tracing::warn!(receiver = %target.name(), host = %target.host(), event = %job.kind,
            incident = %job.incident_id, attempts, %error, "incident notification failed; dead-lettered");
        let letter = DeadLetter {
            at: OffsetDateTime::now_utc(),
            target: target.name().to_owned(),
            host: target.host().to_owned(),
            event_type: job.kind,
            incident_id: job.incident_id.clone(),
            attempts,
            error: error.clone(),
            payload: job.payload.clone(),
        };
        match self.append_dead_letter(&letter).await {
            Ok(()) => {
                self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                outcome(DeliveryResult::DeadLettered { error })
            }
            Err(e) => {
                self.counters.lost.fetch_add(1, Ordering::Relaxed);
                tracing::error!(receiver = %target.name(), event = %job.kind, incident = %job.incident_id,
                    error = %e, "incident notification lost: the dead-letter record could not be written");
                outcome(DeliveryResult::Lost { error: format!("{error}; dead-letter record not written: {e}") })
            }
        }
    }

    /// One delivery with retries: the status, or the scrubbed error; and
    /// the tries made.
    async fn attempt(&self, target: &Target, payload: &Value) -> (Result<u16, String>, u32) {
        let mut req = HttpRequest::post_json(target.url(), payload).timeout(self.options.timeout);
        for (n, v) in target.headers() {
            req = req.header(n, v.as_str());
        }
        let retries = AtomicU32::new(0);
        let on_retry = |attempt: u32, wait: Duration, reason: &str| {
            retries.fetch_add(1, Ordering::Relaxed);
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(receiver = %target.name(), host = %target.host(), attempt,
                wait_ms = wait.as_millis() as u64, reason = %target.scrub(reason), "incident notification retrying");
        };
        let result = send(&*self.client, req, self.options.retry, None, &on_retry).await;
        let attempts = retries.load(Ordering::Relaxed).saturating_add(1);
        (result.map(|r| r.status).map_err(|e| target.scrub(&describe(&e))), attempts)
    }

    async fn append_dead_letter(&self, letter: &DeadLetter) -> Result<(), NotifyError> {
        let path = self.options.dead_letter_path.clone();
        let file_error = |source| NotifyError::DeadLetterFile { path: path.display().to_string(), source };
        let mut line = serde_json::to_string(letter).map_err(|e| file_error(std::io::Error::other(e)))?;
        line.push('\n');
        let _guard = self.dead_letters.lock().await;
        let at = path.clone();
        tokio::task::spawn_blocking(move || append(&at, line.as_bytes()))
            .await
            .map_err(|e| file_error(std::io::Error::other(e)))?
            .map_err(file_error)
    }
}

/// Append `bytes` to `path` in one write, creating it (and its directory).
fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(bytes)?;
    file.flush()
}

/// The failure without the URL core puts in 403 and 404.
fn describe(e: &HttpError) -> String {
    match e {
        HttpError::Forbidden(_) => "forbidden (403)".to_owned(),
        HttpError::NotFound(_) => "not found (404)".to_owned(),
        other => other.to_string(),
    }
}

fn lost(target: &Target, kind: EventKind, incident_id: &str, why: &str) -> DeliveryOutcome {
    DeliveryOutcome {
        target: target.name().to_owned(),
        event_type: kind,
        incident_id: incident_id.to_owned(),
        attempts: 0,
        result: DeliveryResult::Lost { error: why.to_owned() },
    }
}

fn stamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// Slack's three escapes, for mrkdwn text.
fn escape(text: &str) -> String {
    escape_truncate(text, usize::MAX)
}

/// Escaped, and cut (with `…`) to at most `max` characters without
/// splitting an escape.
fn escape_truncate(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => "",
        };
        let n = if piece.is_empty() { 1 } else { piece.len() };
        // Room for this piece, and for `…` if more follows.
        let reserve = usize::from(chars.peek().is_some());
        if len + n + reserve > max {
            out.push('…');
            return out;
        }
        if piece.is_empty() {
            out.push(c);
        } else {
            out.push_str(piece);
        }
        len += n;
    }
    out
}

/// Cut (with `…`) to at most `max` characters.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_never_split() {
        assert_eq!(escape("a <!channel> & b"), "a &lt;!channel&gt; &amp; b");
        assert_eq!(escape_truncate("abc", 3), "abc");
        assert_eq!(escape_truncate("abcd", 3), "ab…");
        assert_eq!(escape_truncate("a<b", 4), "a…");
        assert_eq!(truncate("障害が発生しました", 5), "障害が発…");
    }

    #[test]
    fn urls_split_into_host_and_secrets() {
        let t = Target::slack("ops", "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX");
        assert_eq!(t.host(), "hooks.slack.com");
        let scrubbed =
            t.scrub("post https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX failed: XXXXXXXXXXXXXXXX");
        assert!(!scrubbed.contains("XXXX"), "{scrubbed}");
        let t = Target::webhook("pager", "http://user:pw@10.0.0.1:8080/hook?token=abcdefgh1234", vec![]);
        assert_eq!(t.host(), "10.0.0.1:8080");
        assert!(!t.scrub("token=abcdefgh1234 user:pw").contains("abcdefgh1234"));
        assert!(!t.scrub("user:pw").contains("pw"));
        assert!(Target::slack("x", "ftp://h/").check().is_err());
        assert!(Target::slack(" ", "https://h/").check().is_err());
    }
}
