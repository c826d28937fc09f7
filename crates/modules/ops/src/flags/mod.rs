//! Feature flags evaluated the way Unleash's official SDKs evaluate them.
//!
//! The input is Unleash's client API: a full [`ClientFeatures`] payload
//! (`GET /api/client/features`) or the [`DeltaEvents`] of the delta API
//! (hydration, feature and segment updates and removals, applied in order).
//! An [`Engine`] compiles that state once (constraint operands parsed, regular
//! expressions built) and then answers [`Engine::is_enabled`] and
//! [`Engine::variant`] for a [`Context`] without allocating much and without
//! any I/O. The whole Unleash client specification suite passes (see
//! `tests/it/unleash.rs`).
//!
//! ```
//! use plexus_ops::flags::{ClientFeatures, Context, Engine};
//!
//! let state = ClientFeatures::from_json(
//!     r#"{"version":1,"features":[{"name":"beta","enabled":true,
//!         "strategies":[{"name":"userWithId","parameters":{"userIds":"7, 42"}}]}]}"#,
//! )?;
//! let engine = Engine::from_state(state);
//! let ctx = Context { user_id: Some("42".into()), ..Context::default() };
//! assert!(engine.is_enabled("beta", &ctx));
//! assert!(!engine.is_enabled("beta", &Context::default()));
//! assert_eq!(engine.variant("beta", &ctx).name, "disabled");
//! # Ok::<(), plexus_ops::flags::FlagsError>(())
//! ```
//!
//! Semantics worth knowing:
//! - Bad input never panics and never enables a feature by accident: an
//!   unknown operator, an unparsable operand in the constraint itself (regex,
//!   number, date, semver, CIDR), an unknown strategy or a missing segment is
//!   false, and `inverted` does not turn such a broken rule into true. A
//!   context value that is missing or does not parse makes the operator false,
//!   and `inverted` then negates that, as in the SDKs.
//! - Buckets use Unleash's normalized MurmurHash3 (x86, 32 bit) of
//!   `"{groupId}:{stickinessValue}"`: seed 0 modulo 100 for rollouts, seed
//!   86028157 modulo the total weight for variants.
//! - A feature may depend on parents (`dependencies`); a parent that itself has
//!   dependencies (a chain, or a cycle) makes the child disabled, as Unleash
//!   allows one level only.
//! - `applicationHostname` is treated as an unknown strategy (false): it needs
//!   the host name of the process, which this engine does not read.

mod constraint;
mod context;
mod engine;
mod hash;
mod model;
mod net;
mod simple;
mod strategy;
mod variant;

pub use context::Context;
pub use engine::{Engine, Evaluation, Reason};
pub use model::{ClientFeatures, DeltaEvents};
pub use simple::parse_flags;
pub use variant::{Payload, Variant};

/// Why an Unleash payload could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlagsError {
    /// The text is not JSON of the expected shape.
    #[error("invalid {what} at line {line} column {column}: {reason}")]
    Json {
        /// Which payload: `client features`, `delta events` or `context`.
        what: &'static str,
        /// 1-based line of the first problem.
        line: usize,
        /// 1-based column of the first problem.
        column: usize,
        /// What serde found there, without the position.
        reason: String,
    },
}

impl FlagsError {
    pub(crate) fn json(what: &'static str, e: &serde_json::Error) -> Self {
        // serde_json's Display appends " at line L column C"; the position is
        // carried in fields instead, so it is cut from the reason.
        let text = e.to_string();
        let reason = match text.rfind(" at line ") {
            Some(i) => text[..i].to_owned(),
            None => text,
        };
        Self::Json { what, line: e.line(), column: e.column(), reason }
    }
}
