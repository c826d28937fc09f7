//! Experiments: exposures and conversions per variant, and their statistics.
//!
//! Teams record, per experiment, which *unit* (a user, a session, a device)
//! was *exposed* to which variant and which exposed units *converted*. An
//! [`ExperimentLog`] keeps those events durably and answers
//! [`ExperimentLog::results`]: conversion rates per variant, each variant
//! against control (absolute and relative lift, two-proportion z-test, 95%
//! confidence interval of the difference, Bayesian probability to beat
//! control), a sample-ratio-mismatch check and a [`Recommendation`].
//! [`render_markdown`] turns results into the report the module writes to
//! `experiments/results.md`.
//!
//! ```
//! use plexus_ops::experiments::{analyze, render_markdown, Recommendation, VariantCounts};
//!
//! let results = analyze("checkout", "control", &[
//!     VariantCounts::new("control", 2000, 200),
//!     VariantCounts::new("one-click", 2000, 260),
//! ]);
//! assert_eq!(results.recommendation, Recommendation::Winner { variant: "one-click".into() });
//! assert!(render_markdown(&[results]).contains("| one-click | 2000 | 260 | 13.00% |"));
//! ```
//!
//! # Storage
//! One append-only JSON Lines file per experiment, `<dir>/<id>.jsonl`, one
//! counted event per line:
//! `{"t":"2026-05-01T09:30:00Z","kind":"exposure","variant":"a","unit":"u1"}`
//! (`kind` is `exposure` or `conversion`; an optional `value`, a number, is
//! summed over counted conversions, e.g. revenue). Duplicates are not written,
//! so the file holds exactly the events the statistics count; the in-memory
//! aggregates are rebuilt from it by [`ExperimentLog::open`]. Each event is
//! one `write` of a whole line, done on the blocking pool; it survives a crash
//! of the process, and a crash in the middle of a write leaves a *torn* last
//! line (no newline) that `open` cuts off with a warning. A malformed line
//! that is not the last is an error: the file was edited by hand.
//!
//! # Counting rules
//! - A unit counts once per variant: a repeated exposure is a no-op
//!   ([`Recorded::Duplicate`]).
//! - A conversion counts once per unit, and only for a unit exposed in that
//!   variant; otherwise [`ExperimentError::NotExposed`].
//! - A unit exposed to two variants is counted in both and reported
//!   ([`Recorded::Contaminated`], [`ExperimentResults::contaminated_units`]).
//! - Experiment ids are 1 to 64 characters of `A-Z a-z 0-9 _ -`.
//!
//! # Decisions and thresholds
//! [`Recommendation`] is decided in this order:
//! 1. [`Recommendation::InvalidSrm`] when the chi-square test of exposures
//!    against the expected allocation (equal, or the weights of
//!    [`ExperimentLog::define`]) gives p < [`SRM_ALPHA`] (0.001);
//! 2. [`Recommendation::NoWinnerYet`] when any variant has fewer than
//!    [`MIN_EXPOSURES_PER_VARIANT`] (100) exposures;
//! 3. [`Recommendation::Winner`] for the variant with the largest lift among
//!    those with p < [`ALPHA`] (0.05, split over the non-control variants when
//!    there are several: Bonferroni), a 95% confidence interval above 0 and a
//!    probability to beat control of at least [`WIN_PROBABILITY`] (0.95);
//! 4. [`Recommendation::ControlBetter`] when every variant is significantly
//!    worse (interval below 0, probability to beat control at most 0.05);
//! 5. otherwise [`Recommendation::NoWinnerYet`].
//!
//! Control is the defined one; without a definition the variant named
//! `control` if there is one, else the first variant name in sorted order.

mod analysis;
mod report;
mod stats;
mod store;

pub use analysis::{
    ALPHA, Comparison, ExperimentResults, MIN_EXPOSURES_PER_VARIANT, Recommendation, SRM_ALPHA, SrmCheck,
    VariantCounts, VariantStats, WIN_PROBABILITY, analyze,
};
pub use report::render_markdown;
pub use stats::{
    Z_95, ZTest, chi_square_goodness_of_fit, chi_square_sf, gamma_q, normal_sf, prob_beat_control,
    two_proportion_z_test,
};
pub use store::{Event, EventKind, ExperimentLog, Recorded, validate_id};

use std::path::PathBuf;

/// Why an experiment operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// The id is not 1 to 64 characters of `A-Z a-z 0-9 _ -`.
    #[error("invalid experiment id {id:?}: expected 1 to 64 characters of A-Z, a-z, 0-9, _ and -")]
    InvalidId {
        /// The rejected id.
        id: String,
    },
    /// A field of an event is unusable.
    #[error("invalid event: {reason}")]
    InvalidEvent {
        /// What is wrong.
        reason: String,
    },
    /// A conversion for a unit that has no exposure in that variant.
    #[error("conversion for unit {unit} that was never exposed to variant {variant} of experiment {experiment}")]
    NotExposed {
        /// Experiment id.
        experiment: String,
        /// The variant of the conversion.
        variant: String,
        /// The unit.
        unit: String,
    },
    /// An event names a variant the experiment's definition does not list.
    #[error("unknown variant {variant} for experiment {experiment} (defined: {defined})")]
    UnknownVariant {
        /// Experiment id.
        experiment: String,
        /// The variant named by the event.
        variant: String,
        /// The defined variants, comma separated.
        defined: String,
    },
    /// An experiment definition is inconsistent.
    #[error("invalid definition of experiment {experiment}: {reason}")]
    InvalidDefinition {
        /// Experiment id.
        experiment: String,
        /// What is wrong.
        reason: String,
    },
    /// No event and no definition for this id.
    #[error("unknown experiment {experiment}")]
    UnknownExperiment {
        /// Experiment id.
        experiment: String,
    },
    /// A line of a log file, not the last one, is not an event.
    #[error("corrupt experiment log {path} at line {line}: {reason}")]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing the log directory failed.
    #[error("cannot {action} {path}")]
    Io {
        /// `read`, `write`, `create` or `list`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
