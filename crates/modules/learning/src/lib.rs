//! The learning module: a multi-tenant adaptive learning platform.
//!
//! Engines (plain Rust, no MCP types):
//! - [`irt`]: item response theory (2PL/3PL probabilities and information),
//!   EAP ability estimates, item bank import and calibration;
//! - [`cat`]: computerized adaptive testing (maximum-information selection
//!   with exposure control and content balancing, stopping rules);
//! - [`bkt`]: Bayesian Knowledge Tracing per learner and skill, with
//!   parameters fitted by expectation maximization;
//! - [`sim`]: seeded simulated learners with known true abilities;
//! - [`graph`]: the prerequisite graph and recommendations;
//! - [`analytics`]: completion, time on task, at-risk learners, mastery
//!   distributions, item statistics;
//! - [`demo`]: a seeded course, bank and simulated learners;
//! - [`xapi`]: statement validation and the multi-tenant statement store.
//!
//! The platform on top (MCP types, the store):
//! - [`settings`]: `[learning]` in `plexus.toml` (tier limits, each
//!   tenant's default configuration, the demo);
//! - [`service`]: per-tenant configuration, course and bank, learners
//!   within their tier's limits, activity and mastery, assessment sessions,
//!   analytics data, the demo loader; cached where calls repeat;
//! - [`module`]: [`Learning`], the MCP tools, `learning://` resources and
//!   the xAPI routes;
//! - [`activity`]: between xAPI statements and learner events;
//! - [`catalog`]: a tenant's parsed course, bank and item content.
//!
//! Conventions: logistic IRT without scaling constant (D = 1, catsim's);
//! EAP over 121 equally spaced nodes on [−6, 6] with an N(0, 1) prior; BKT
//! defaults prior 0.2, learn 0.1, guess 0.2, slip 0.1, forget 0, mastery at
//! 0.95. Reference values: `scripts/reference/learning_reference.py`
//! (catsim, girth, pyBKT).
//!
//! ```
//! use plexus_learning::bkt::{self, BktParams, EmOptions, SkillModel};
//! use plexus_learning::cat::{CatConfig, CatSession, SplitMix64};
//! use plexus_learning::irt::ItemBank;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An item bank from CSV (or ItemBank::from_json_str).
//! let bank = ItemBank::from_csv_str(
//!     "id,a,b,c,skill\nq1,1.2,-0.5,0,代数\nq2,0.9,0.4,0.2,幾何\nq3,1.6,0.1,0,代数\n",
//! )?;
//!
//! // An adaptive test: select, answer, repeat until a stopping rule holds.
//! let mut session = CatSession::new(&bank, CatConfig { max_items: 2, ..CatConfig::default() })?;
//! let mut rng = SplitMix64::new(42);
//! while !session.is_finished() {
//!     let selection = session.next_item(&bank, &mut rng)?;
//!     let estimate = session.answer(&bank, selection.index, true)?;
//!     assert!(estimate.se > 0.0);
//! }
//! // Persist and restore (exact replay).
//! let record = serde_json::to_string(&session.record())?;
//! let restored = CatSession::restore(&bank, serde_json::from_str(&record)?)?;
//! assert_eq!(restored, session);
//!
//! // Knowledge tracing for one learner and skill.
//! let model = SkillModel::new(BktParams::default(), 0.95)?;
//! let mut state = model.initial_state();
//! let observation = model.observe(&mut state, true)?;
//! assert!(observation.p_known_after > observation.p_known_before);
//!
//! // Parameters from a tenant's answer sequences (defaults until there are enough).
//! let sequences = vec![vec![false, true, true, true], vec![true, true, false, true]];
//! let report = bkt::fit_or_default(&sequences, &EmOptions::default());
//! assert!(!report.fitted); // 8 answers < 50: the defaults
//! # Ok(())
//! # }
//! ```

pub mod activity;
pub mod analytics;
pub mod bkt;
pub mod cat;
pub mod catalog;
pub mod demo;
pub mod error;
pub mod graph;
pub mod irt;
pub mod module;
pub mod service;
pub mod settings;
pub mod sim;
pub mod store;
pub mod xapi;

pub use error::LearningError;
pub use module::{Learning, NAME};
pub use service::DemoSummary;
pub use settings::{LearningSettings, TenantConfig, TierLimits};
