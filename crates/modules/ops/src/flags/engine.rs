//! The engine: the compiled state and the two questions asked of it.

use std::collections::HashMap;

use super::constraint::Constraint;
use super::context::Context;
use super::model::{ClientFeatures, DeltaEvent, DeltaEvents, DependencyDef, FeatureDef, SegmentDef, VariantDef};
use super::strategy::Strategy;
use super::variant::{Variant, select};

/// The current flag state, compiled, and its evaluation.
///
/// Build it from a full payload with [`Engine::from_state`] (or start empty
/// with [`Engine::default`]) and keep it current with [`Engine::apply`].
/// Evaluation takes `&self`: share it behind an `Arc<RwLock<_>>` or swap a
/// whole `Arc<Engine>` on each update.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    features: HashMap<String, Feature>,
    segments: HashMap<u64, Vec<Constraint>>,
}

#[derive(Debug, Clone)]
struct Feature {
    name: String,
    enabled: bool,
    strategies: Vec<Strategy>,
    variants: Vec<VariantDef>,
    dependencies: Vec<DependencyDef>,
}

/// Why an evaluation came out as it did: OpenFeature's resolution reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The feature is switched off.
    Disabled,
    /// On for everyone: no strategy, or a `default` strategy without
    /// constraints or segments.
    Static,
    /// A rule about the caller decided (constraints, user ids, addresses,
    /// dependencies).
    TargetingMatch,
    /// A percentage rollout or a choice among several variants decided.
    Split,
}

impl Reason {
    /// The OpenFeature name: `DISABLED`, `STATIC`, `TARGETING_MATCH`, `SPLIT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Disabled => "DISABLED",
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
        }
    }
}

/// The whole answer for one feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub enabled: bool,
    pub variant: Variant,
    pub reason: Reason,
}

/// Whether a feature is on, and by which strategy (`None`: it has none).
enum Outcome<'a> {
    Off,
    On(Option<&'a Strategy>),
}

impl Engine {
    /// An engine holding exactly `state`.
    pub fn from_state(state: ClientFeatures) -> Self {
        let mut engine = Self::default();
        engine.replace(state.features, state.segments);
        engine
    }

    /// Applies delta events in order: `hydration` replaces everything,
    /// `feature-updated` / `segment-updated` insert or replace one entry,
    /// `feature-removed` / `segment-removed` drop one. Unknown event types are
    /// skipped.
    pub fn apply(&mut self, delta: DeltaEvents) {
        for event in delta.events {
            match event {
                DeltaEvent::Hydration { features, segments } => self.replace(features, segments),
                DeltaEvent::FeatureUpdated { feature } => {
                    let feature = Feature::compile(&feature);
                    self.features.insert(feature.name.clone(), feature);
                }
                DeltaEvent::FeatureRemoved { feature_name } => {
                    self.features.remove(&feature_name);
                }
                DeltaEvent::SegmentUpdated { segment } => {
                    self.segments.insert(segment.id, compile_segment(&segment));
                }
                DeltaEvent::SegmentRemoved { segment_id } => {
                    self.segments.remove(&segment_id);
                }
                DeltaEvent::Unknown => {}
            }
        }
    }

    /// Whether the feature `name` is enabled for `ctx`; false for a feature
    /// that does not exist.
    pub fn is_enabled(&self, name: &str, ctx: &Context) -> bool {
        self.features.get(name).is_some_and(|f| matches!(self.evaluate(f, ctx), Outcome::On(_)))
    }

    /// The variant of the feature `name` for `ctx`: the variants of the
    /// strategy that enabled it if it has any, else the feature's; the
    /// `disabled` variant when the feature is off, unknown, or has no variant.
    pub fn variant(&self, name: &str, ctx: &Context) -> Variant {
        match self.features.get(name) {
            Some(feature) => self.variant_of(feature, &self.evaluate(feature, ctx), ctx),
            None => Variant::disabled(false),
        }
    }

    /// Whether `name` is on for `ctx`, its variant, and why; `None` for a
    /// feature that does not exist.
    pub fn evaluate_full(&self, name: &str, ctx: &Context) -> Option<Evaluation> {
        let feature = self.features.get(name)?;
        let outcome = self.evaluate(feature, ctx);
        let variant = self.variant_of(feature, &outcome, ctx);
        let many_variants = |s: Option<&Strategy>| {
            s.filter(|s| !s.variants.is_empty()).map_or(feature.variants.len(), |s| s.variants.len()) > 1
        };
        let reason = match outcome {
            Outcome::Off if !feature.enabled => Reason::Disabled,
            Outcome::Off if feature.strategies.iter().any(Strategy::is_split) => Reason::Split,
            Outcome::Off => Reason::TargetingMatch,
            Outcome::On(s) if s.is_some_and(Strategy::is_split) || many_variants(s) => Reason::Split,
            Outcome::On(s) if feature.dependencies.is_empty() && s.is_none_or(Strategy::is_static) => Reason::Static,
            Outcome::On(_) => Reason::TargetingMatch,
        };
        Some(Evaluation { enabled: matches!(outcome, Outcome::On(_)), variant, reason })
    }

    /// Whether a feature named `name` is known.
    pub fn contains(&self, name: &str) -> bool {
        self.features.contains_key(name)
    }

    /// The names of the known features, in no particular order.
    pub fn feature_names(&self) -> impl Iterator<Item = &str> {
        self.features.keys().map(String::as_str)
    }

    fn replace(&mut self, features: Vec<FeatureDef>, segments: Vec<SegmentDef>) {
        self.features = features.iter().map(|f| (f.name.clone(), Feature::compile(f))).collect();
        self.segments = segments.iter().map(|s| (s.id, compile_segment(s))).collect();
    }

    fn evaluate<'a>(&'a self, feature: &'a Feature, ctx: &Context) -> Outcome<'a> {
        if !feature.enabled || !self.dependencies_met(feature, ctx) {
            return Outcome::Off;
        }
        if feature.strategies.is_empty() {
            return Outcome::On(None);
        }
        match feature.strategies.iter().find(|s| s.is_enabled(ctx, &self.segments)) {
            Some(strategy) => Outcome::On(Some(strategy)),
            None => Outcome::Off,
        }
    }

    /// Every parent must exist, have no parents of its own (Unleash allows one
    /// level; this also stops cycles), and be as the child expects: enabled
    /// (and, if variants are listed, showing one of them) or, with
    /// `"enabled": false`, disabled.
    fn dependencies_met(&self, feature: &Feature, ctx: &Context) -> bool {
        feature.dependencies.iter().all(|dep| {
            let Some(parent) = self.features.get(&dep.feature) else { return false };
            if !parent.dependencies.is_empty() {
                return false;
            }
            let outcome = self.evaluate(parent, ctx);
            let on = matches!(outcome, Outcome::On(_));
            if dep.enabled == Some(false) {
                return !on;
            }
            match dep.variants.as_deref() {
                Some(wanted) if on && !wanted.is_empty() => {
                    let variant = self.variant_of(parent, &outcome, ctx);
                    wanted.contains(&variant.name)
                }
                _ => on,
            }
        })
    }

    fn variant_of(&self, feature: &Feature, outcome: &Outcome<'_>, ctx: &Context) -> Variant {
        let Outcome::On(strategy) = outcome else { return Variant::disabled(false) };
        let chosen = match strategy {
            Some(s) if !s.variants.is_empty() => select(&s.variants, &s.group, s.stickiness.as_deref(), ctx),
            _ => select(&feature.variants, &feature.name, None, ctx),
        };
        chosen.map_or_else(|| Variant::disabled(true), VariantDef::to_variant)
    }
}

impl Feature {
    fn compile(def: &FeatureDef) -> Self {
        Self {
            name: def.name.clone(),
            enabled: def.enabled,
            strategies: def.strategies.iter().map(|s| Strategy::compile(s, &def.name)).collect(),
            variants: def.variants.clone(),
            dependencies: def.dependencies.clone(),
        }
    }
}

fn compile_segment(segment: &SegmentDef) -> Vec<Constraint> {
    segment.constraints.iter().map(Constraint::compile).collect()
}
