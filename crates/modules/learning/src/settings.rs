//! `[learning]` in `plexus.toml`: tier limits, the defaults of every
//! tenant's configuration, the xAPI home page and the demo.
//!
//! ```toml
//! [learning]
//! home_page = "https://learning.example.jp/tenants"   # + "/<tenant>": the accounts' homePage
//! cache_seconds = 30          # how stale another node's change may be here
//! refit_every = 200           # answers between automatic BKT refits
//! [learning.tiers.free]       # free, standard and enterprise have defaults
//! max_learners = 100
//! max_statements = 20000
//! max_items = 500
//! [learning.defaults]         # each tenant starts from these; admins change theirs
//! mastery_threshold = 0.95
//! target_se = 0.3
//! max_items = 20
//! preferred_formats = ["video", "interactive"]
//! [learning.defaults.branding]
//! name = "Plexus Learning"
//! welcome = "ようこそ"
//! [learning.demo]             # --demo seeds this tenant
//! tenant = "demo"
//! seed = 2025
//! learners = 40
//! ```
//!
//! A tenant's own configuration ([`TenantConfig`]) is stored per tenant
//! and edited with the `configure_learning` tool; it serializes in
//! camelCase (the tools' convention) and reads snake_case too (TOML's).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analytics::AtRiskOptions;
use crate::cat::MAX_RANDOMESQUE;
use crate::graph::ContentFormat;

/// The tier a tenant without a known tier gets.
pub const DEFAULT_TIER: &str = "standard";

/// How many SQLite files learning's rows spread over by default (see
/// [`crate::store::Shards`]).
pub const DEFAULT_SHARDS: usize = 1;

/// The `[learning]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningSettings {
    /// Limits per tier (`free`, `standard` and `enterprise` have defaults;
    /// a tier given here replaces that tier's defaults).
    pub tiers: BTreeMap<String, TierLimits>,
    /// Every tenant's configuration until its administrators change it.
    pub defaults: TenantConfig,
    /// Seed a demo tenant (`plexus serve --demo`).
    pub demo: Option<DemoSettings>,
    /// The base of the per-tenant xAPI account home page: a learner is the
    /// agent `{"account": {"homePage": "<home_page>/<tenant>", "name": "<userId>"}}`.
    pub home_page: String,
    /// How long a tenant's tier, configuration and course stay cached
    /// without a change seen by this node (a change made here is seen at
    /// once), in seconds.
    pub cache_seconds: u64,
    /// Refit a tenant's BKT parameters after this many new answers (0: only
    /// on demand with `fit_mastery_model`).
    pub refit_every: u64,
    /// On SQLite, how many files new tenants' learning rows spread over,
    /// each with its own writer (1: all in the main file). See
    /// [`crate::store::Shards`].
    pub shards: usize,
}

impl Default for LearningSettings {
    fn default() -> Self {
        Self {
            tiers: BTreeMap::new(),
            defaults: TenantConfig::default(),
            demo: None,
            home_page: "https://learning.plexus.invalid/tenants".to_owned(),
            cache_seconds: 30,
            refit_every: 200,
            shards: DEFAULT_SHARDS,
        }
    }
}

/// The limits of one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TierLimits {
    /// Learners (a learner is created on first use).
    #[serde(alias = "max_learners")]
    pub max_learners: u64,
    /// Stored xAPI statements (posted through xAPI, tracked with
    /// `track_learning_progress`, or answers to assessments).
    #[serde(alias = "max_statements")]
    pub max_statements: u64,
    /// Items in the item bank.
    #[serde(alias = "max_items")]
    pub max_items: u64,
}

impl TierLimits {
    /// The built-in limits of `free`, `standard` and `enterprise`.
    pub fn builtin(tier: &str) -> Option<TierLimits> {
        match tier {
            "free" => Some(TierLimits { max_learners: 100, max_statements: 20_000, max_items: 500 }),
            "standard" => Some(TierLimits { max_learners: 10_000, max_statements: 2_000_000, max_items: 10_000 }),
            "enterprise" => {
                Some(TierLimits { max_learners: 1_000_000, max_statements: 200_000_000, max_items: 100_000 })
            }
            _ => None,
        }
    }
}

/// `[learning.demo]`: the tenant `--demo` seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoSettings {
    /// The tenant seeded (created by the app if missing).
    pub tenant: String,
    /// Seed of the course, bank and learners.
    pub seed: u64,
    /// Simulated learners, 1 to 10,000.
    pub learners: usize,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self { tenant: "demo".to_owned(), seed: 2025, learners: 40 }
    }
}

/// Exposure control of adaptive item selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "method", rename_all = "camelCase", deny_unknown_fields)]
pub enum ExposureControl {
    /// Always the most informative item.
    None,
    /// Uniformly among the `k` most informative eligible items.
    Randomesque {
        /// How many of the most informative items to choose among (1 to 1000).
        k: usize,
    },
    /// Sympson–Hetter with the items' `exposure` parameters (K) from the bank.
    #[serde(alias = "sympson_hetter")]
    SympsonHetter,
}

/// When a learner counts as at risk (see [`crate::analytics::AtRiskOptions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct AtRiskSettings {
    /// Low progress: completion below this fraction of the cohort median (default 0.5).
    #[serde(alias = "low_progress_ratio")]
    pub low_progress_ratio: f64,
    /// Declining accuracy looks at the last this many answers (default 20).
    #[serde(alias = "recent_answers")]
    pub recent_answers: usize,
    /// … when there are at least this many (default 10).
    #[serde(alias = "min_answers")]
    pub min_answers: usize,
    /// … and flags a drop of at least this much between the halves (default 0.25).
    #[serde(alias = "accuracy_drop")]
    pub accuracy_drop: f64,
    /// Inactive: no activity for this many days (default 7).
    #[serde(alias = "inactive_days")]
    pub inactive_days: f64,
}

impl Default for AtRiskSettings {
    fn default() -> Self {
        let o = AtRiskOptions::default();
        Self {
            low_progress_ratio: o.low_progress_ratio,
            recent_answers: o.recent_answers,
            min_answers: o.min_answers,
            accuracy_drop: o.accuracy_drop,
            inactive_days: o.inactive_days,
        }
    }
}

impl AtRiskSettings {
    /// The analytics options.
    pub fn options(&self) -> AtRiskOptions {
        AtRiskOptions {
            low_progress_ratio: self.low_progress_ratio,
            recent_answers: self.recent_answers,
            min_answers: self.min_answers,
            accuracy_drop: self.accuracy_drop,
            slope_threshold: None,
            inactive_days: self.inactive_days,
        }
    }
}

/// The tenant's own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Branding {
    /// The platform's name as learners see it (1 to 100 characters).
    pub name: String,
    /// A welcome line shown when an assessment starts (at most 500 characters).
    pub welcome: String,
}

impl Default for Branding {
    fn default() -> Self {
        Self { name: "Plexus Learning".to_owned(), welcome: "Welcome! Let's see what you know.".to_owned() }
    }
}

/// One tenant's configuration: assessment, content and analytics settings
/// and branding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct TenantConfig {
    /// P(known) from which a skill counts as mastered, in (0, 1] (default 0.95).
    #[serde(alias = "mastery_threshold")]
    pub mastery_threshold: f64,
    /// Adaptive assessments stop when the standard error of the ability
    /// estimate is at most this, in (0, 2] (default 0.3).
    #[serde(alias = "target_se")]
    pub target_se: f64,
    /// Adaptive assessments stop after this many items at the latest, 1 to 200 (default 20).
    #[serde(alias = "max_items")]
    pub max_items: usize,
    /// The SE rule applies only after this many items, 1 to `maxItems` (default 1).
    #[serde(alias = "min_items")]
    pub min_items: usize,
    /// Items of a practice assessment, 1 to 200 (default 10).
    #[serde(alias = "practice_items")]
    pub practice_items: usize,
    /// Items per skill of a diagnostic assessment, 1 to 20 (default 2).
    #[serde(alias = "diagnostic_items_per_skill")]
    pub diagnostic_items_per_skill: usize,
    /// Exposure control (default randomesque among the 3 best).
    pub exposure: ExposureControl,
    /// Balance adaptive assessments over the topic's skills (default true).
    #[serde(alias = "content_balancing")]
    pub content_balancing: bool,
    /// Content formats preferred when nothing else decides (a learning
    /// style given in a call comes first).
    #[serde(alias = "preferred_formats")]
    #[schemars(with = "Vec<String>")]
    pub preferred_formats: Vec<ContentFormat>,
    /// Steps of a recommended learning path, 1 to 50 (default 5).
    #[serde(alias = "path_steps")]
    pub path_steps: usize,
    /// At-risk thresholds.
    #[serde(alias = "at_risk")]
    pub at_risk: AtRiskSettings,
    /// Branding.
    pub branding: Branding,
}

impl Default for TenantConfig {
    fn default() -> Self {
        Self {
            mastery_threshold: crate::bkt::DEFAULT_MASTERY_THRESHOLD,
            target_se: 0.3,
            max_items: 20,
            min_items: 1,
            practice_items: 10,
            diagnostic_items_per_skill: 2,
            exposure: ExposureControl::Randomesque { k: 3 },
            content_balancing: true,
            preferred_formats: Vec::new(),
            path_steps: 5,
            at_risk: AtRiskSettings::default(),
            branding: Branding::default(),
        }
    }
}

/// A configuration value that cannot be used: the field (a path in
/// snake_case, `at_risk.inactive_days`) and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field, snake_case, dotted.
    pub field: String,
    /// Why.
    pub message: String,
}

impl ConfigError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), message: message.into() }
    }

    /// The field in camelCase (`atRisk.inactiveDays`), as the tools name it.
    pub fn camel_field(&self) -> String {
        self.field.split('.').map(camel).collect::<Vec<_>>().join(".")
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// `snake_case` → `snakeCase`.
pub fn camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn in_range(field: &str, v: f64, ok: bool, rule: &str) -> Result<(), ConfigError> {
    if ok && v.is_finite() { Ok(()) } else { Err(ConfigError::new(field, format!("must be {rule}, got {v}"))) }
}

fn count(field: &str, v: usize, lo: usize, hi: usize) -> Result<(), ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("must be an integer from {lo} to {hi}, got {v}")))
    }
}

fn text(field: &str, v: &str, min: usize, max: usize) -> Result<(), ConfigError> {
    let n = v.chars().count();
    if n < min || n > max {
        return Err(ConfigError::new(field, format!("must be {min} to {max} characters, got {n}")));
    }
    if v.chars().any(char::is_control) {
        return Err(ConfigError::new(field, "must not contain control characters"));
    }
    Ok(())
}

impl TenantConfig {
    /// Checks every value; the first problem found, naming its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = self.mastery_threshold;
        in_range("mastery_threshold", t, t > 0.0 && t <= 1.0, "in (0, 1]")?;
        let se = self.target_se;
        in_range("target_se", se, se > 0.0 && se <= 2.0, "in (0, 2]")?;
        count("max_items", self.max_items, 1, 200)?;
        count("min_items", self.min_items, 1, self.max_items)?;
        count("practice_items", self.practice_items, 1, 200)?;
        count("diagnostic_items_per_skill", self.diagnostic_items_per_skill, 1, 20)?;
        if let ExposureControl::Randomesque { k } = self.exposure {
            count("exposure.k", k, 1, MAX_RANDOMESQUE)?;
        }
        let mut seen = Vec::new();
        for f in &self.preferred_formats {
            if seen.contains(f) {
                return Err(ConfigError::new("preferred_formats", format!("`{f}` is listed twice")));
            }
            seen.push(*f);
        }
        count("path_steps", self.path_steps, 1, 50)?;
        let r = &self.at_risk;
        in_range(
            "at_risk.low_progress_ratio",
            r.low_progress_ratio,
            (0.0..=1.0).contains(&r.low_progress_ratio),
            "in [0, 1]",
        )?;
        count("at_risk.recent_answers", r.recent_answers, 2, 1000)?;
        count("at_risk.min_answers", r.min_answers, 2, r.recent_answers)?;
        in_range(
            "at_risk.accuracy_drop",
            r.accuracy_drop,
            r.accuracy_drop > 0.0 && r.accuracy_drop <= 1.0,
            "in (0, 1]",
        )?;
        in_range(
            "at_risk.inactive_days",
            r.inactive_days,
            r.inactive_days > 0.0 && r.inactive_days <= 3650.0,
            "in (0, 3650]",
        )?;
        text("branding.name", &self.branding.name, 1, 100)?;
        text("branding.welcome", &self.branding.welcome, 0, 500)?;
        Ok(())
    }

    /// This configuration with `patch` applied (not validated).
    pub fn patched(&self, patch: &TenantConfigPatch) -> TenantConfig {
        let mut c = self.clone();
        let p = patch;
        macro_rules! set {
            ($($f:ident),*) => {$(
                if let Some(v) = &p.$f {
                    c.$f = v.clone();
                }
            )*};
        }
        set!(
            mastery_threshold,
            target_se,
            max_items,
            min_items,
            practice_items,
            diagnostic_items_per_skill,
            exposure,
            content_balancing,
            preferred_formats,
            path_steps
        );
        if let Some(r) = &p.at_risk {
            let a = &mut c.at_risk;
            macro_rules! set_risk {
                ($($f:ident),*) => {$(
                    if let Some(v) = r.$f {
                        a.$f = v;
                    }
                )*};
            }
            set_risk!(low_progress_ratio, recent_answers, min_answers, accuracy_drop, inactive_days);
        }
        if let Some(b) = &p.branding {
            if let Some(n) = &b.name {
                c.branding.name = n.clone();
            }
            if let Some(w) = &b.welcome {
                c.branding.welcome = w.clone();
            }
        }
        c
    }
}

/// A partial change of a [`TenantConfig`]: what is given replaces the
/// current value, the rest stays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TenantConfigPatch {
    /// P(known) from which a skill counts as mastered, in (0, 1].
    pub mastery_threshold: Option<f64>,
    /// Target standard error of adaptive assessments, in (0, 2].
    pub target_se: Option<f64>,
    /// Maximum items of an adaptive assessment, 1 to 200.
    pub max_items: Option<usize>,
    /// Minimum items before the SE rule applies, 1 to `maxItems`.
    pub min_items: Option<usize>,
    /// Items of a practice assessment, 1 to 200.
    pub practice_items: Option<usize>,
    /// Items per skill of a diagnostic assessment, 1 to 20.
    pub diagnostic_items_per_skill: Option<usize>,
    /// Exposure control: `{"method": "none"}`, `{"method": "randomesque", "k": 5}` or `{"method": "sympsonHetter"}`.
    pub exposure: Option<ExposureControl>,
    /// Balance adaptive assessments over the topic's skills.
    pub content_balancing: Option<bool>,
    /// Preferred content formats, most preferred first (video, text, interactive, exercise, quiz, audio, project).
    #[schemars(with = "Option<Vec<String>>")]
    pub preferred_formats: Option<Vec<ContentFormat>>,
    /// Steps of a recommended learning path, 1 to 50.
    pub path_steps: Option<usize>,
    /// At-risk thresholds (each optional).
    pub at_risk: Option<AtRiskPatch>,
    /// Branding strings (each optional).
    pub branding: Option<BrandingPatch>,
}

impl TenantConfigPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == TenantConfigPatch::default()
    }
}

/// A partial change of [`AtRiskSettings`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AtRiskPatch {
    /// In [0, 1].
    pub low_progress_ratio: Option<f64>,
    /// 2 to 1000.
    pub recent_answers: Option<usize>,
    /// 2 to `recentAnswers`.
    pub min_answers: Option<usize>,
    /// In (0, 1].
    pub accuracy_drop: Option<f64>,
    /// In (0, 3650].
    pub inactive_days: Option<f64>,
}

/// A partial change of [`Branding`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandingPatch {
    /// 1 to 100 characters.
    pub name: Option<String>,
    /// At most 500 characters.
    pub welcome: Option<String>,
}

impl LearningSettings {
    /// The limits of `tier`: the configured ones, else the built-in ones,
    /// else `standard`'s.
    pub fn limits(&self, tier: &str) -> TierLimits {
        self.tiers
            .get(tier)
            .copied()
            .or_else(|| TierLimits::builtin(tier))
            .or_else(|| self.tiers.get(DEFAULT_TIER).copied())
            .or_else(|| TierLimits::builtin(DEFAULT_TIER))
            .unwrap_or(TierLimits { max_learners: 10_000, max_statements: 2_000_000, max_items: 10_000 })
    }

    /// The tier whose limits apply to a tenant of `tier` (`standard` for
    /// a tier neither configured nor built in).
    pub fn effective_tier<'a>(&self, tier: &'a str) -> &'a str {
        if self.tiers.contains_key(tier) || TierLimits::builtin(tier).is_some() { tier } else { DEFAULT_TIER }
    }

    /// Checks the table; errors name the setting (`learning.defaults.target_se: must be in (0, 2], got 3`).
    pub fn validate(&self) -> Result<(), String> {
        for (name, t) in &self.tiers {
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(format!("learning.tiers: tier name {name:?} must be non-empty text"));
            }
            for (field, v) in
                [("max_learners", t.max_learners), ("max_statements", t.max_statements), ("max_items", t.max_items)]
            {
                if v == 0 {
                    return Err(format!("learning.tiers.{name}.{field}: must be at least 1"));
                }
            }
        }
        self.defaults.validate().map_err(|e| format!("learning.defaults.{e}"))?;
        let home = self.home_page.trim_end_matches('/');
        let scheme_ok = home.starts_with("https://") || home.starts_with("http://");
        if !scheme_ok || home.len() <= "https://".len() || home.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("learning.home_page: must be an http(s) URL without spaces, got {:?}", self.home_page));
        }
        if !(1..=crate::store::MAX_SHARDS).contains(&self.shards) {
            return Err(format!(
                "learning.shards: must be from 1 to {}, got {}",
                crate::store::MAX_SHARDS,
                self.shards
            ));
        }
        if self.cache_seconds > 3600 {
            return Err(format!("learning.cache_seconds: must be at most 3600, got {}", self.cache_seconds));
        }
        if let Some(d) = &self.demo {
            if d.tenant.is_empty() || d.tenant.chars().count() > 128 || d.tenant.chars().any(char::is_control) {
                return Err("learning.demo.tenant: must be 1 to 128 characters without control characters".to_owned());
            }
            if !(1..=10_000).contains(&d.learners) {
                return Err(format!("learning.demo.learners: must be from 1 to 10000, got {}", d.learners));
            }
        }
        Ok(())
    }
}
