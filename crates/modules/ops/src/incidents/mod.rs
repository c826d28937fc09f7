//! Incidents: the lifecycle, its timeline, and webhook notifications.
//!
//! Three parts, each usable on its own:
//! - [`lifecycle`]: plain data and rules, no IO. An [`Incident`] moves
//!   investigating → identified → monitoring → resolved (skipping allowed,
//!   monitoring may fall back to investigating or identified); every change
//!   and every note is a [`TimelineEntry`]. An [`IncidentBook`] holds them,
//!   hands out `INC-0001`, `INC-0002`, … and is rebuilt from the JSON
//!   documents the module persists (`incidents/<id>.json`). Time is a
//!   parameter, never read from the clock here.
//! - [`postmortem`]: the blameless postmortem draft in Markdown, written when
//!   an incident is resolved (bilingual headings, English / 日本語).
//! - [`notify`]: delivery of [`Event`]s to Slack incoming webhooks and
//!   generic JSON webhooks through core's [`HttpClient`] port, with retries,
//!   a JSON Lines dead-letter file for receivers that stay down, and
//!   delivery counters. Webhook URLs and header values are secrets: logs,
//!   errors and `Debug` name a target by its name and host only.
//!
//! [`HttpClient`]: plexus_core::http::HttpClient

pub mod lifecycle;
pub mod notify;
pub mod postmortem;

pub use lifecycle::{
    Incident, IncidentBook, IncidentError, MAX_AUTHOR_CHARS, MAX_ENTRIES, MAX_ENTRY_CHARS, MAX_NOTE_CHARS,
    MAX_TIMELINE, MAX_TITLE_CHARS, NewIncident, Severity, Status, TimelineEntry, Update,
};
pub use notify::{
    DeadLetter, Delivery, DeliveryOutcome, DeliveryResult, DeliveryStats, Event, EventKind, Notifier, NotifyError,
    NotifyOptions, ReplayReport, Target,
};
pub use postmortem::postmortem_markdown;
