//! The flags engine beyond the Unleash suite: bad input, the error type, delta
//! events the suite does not cover, and bucketing invariants.

use plexus_ops::flags::{ClientFeatures, Context, DeltaEvents, Engine, FlagsError, Variant};
use serde_json::json;

fn engine(state: serde_json::Value) -> Engine {
    Engine::from_state(ClientFeatures::from_json(&state.to_string()).expect("valid state"))
}

/// One feature whose default strategy has one constraint.
fn constrained(operator: &str, value: serde_json::Value, inverted: bool) -> Engine {
    engine(json!({"features": [{"name": "f", "enabled": true, "strategies": [{"name": "default",
        "constraints": [{"contextName": "field", "operator": operator, "value": value,
                         "values": [value], "inverted": inverted}]}]}]}))
}

fn with(field: &str, value: &str) -> Context {
    let mut ctx = Context::default();
    ctx.properties.insert(field.to_owned(), value.to_owned());
    ctx
}

#[test]
fn broken_constraint_operands_are_false_even_inverted() {
    let cases = [
        ("REGEX", json!("(unclosed")),
        ("REGEX", json!("^(?=a)b$")),
        ("REGEX", json!("a{1000000000}")),
        ("DATE_AFTER", json!("yesterday")),
        ("DATE_BEFORE", json!("2024-13-45T99:00:00Z")),
        ("SEMVER_EQ", json!("v1.2.3")),
        ("SEMVER_GT", json!("1.2")),
        ("NUM_EQ", json!("twelve")),
        ("NUM_LT", json!("NaN")),
        ("NUM_GT", json!("inf")),
        ("IN_CIDR", json!("10.0.0.0/99")),
        ("IN_CIDR", json!("not-an-ip")),
        ("NO_SUCH_OPERATOR", json!("x")),
    ];
    for (op, value) in cases {
        for inverted in [false, true] {
            let engine = constrained(op, value.clone(), inverted);
            for probe in ["", "x", "1.2.3", "12", "10.0.0.1", "2024-01-01T00:00:00Z", "aaaa"] {
                assert!(
                    !engine.is_enabled("f", &with("field", probe)),
                    "{op} {value} inverted={inverted} on {probe:?}"
                );
            }
            assert!(!engine.is_enabled("f", &Context::default()), "{op} {value} inverted={inverted}");
        }
    }
}

#[test]
fn bad_context_values_are_false_and_inversion_applies() {
    let cases = [
        ("NUM_EQ", json!("12"), "twelve"),
        ("SEMVER_EQ", json!("1.2.3"), "v1.2.3"),
        ("DATE_AFTER", json!("2022-01-01T00:00:00Z"), "not a date"),
        ("IN_CIDR", json!("10.0.0.0/8"), "10.0.0.999"),
        ("REGEX", json!("^a$"), "b"),
    ];
    for (op, value, probe) in cases {
        assert!(!constrained(op, value.clone(), false).is_enabled("f", &with("field", probe)), "{op} {probe}");
        assert!(constrained(op, value, true).is_enabled("f", &with("field", probe)), "{op} {probe} inverted");
    }
}

#[test]
fn operators_at_their_edges() {
    let c = |op: &str, v: &str| constrained(op, json!(v), false);
    assert!(c("SEMVER_LT", "1.0.0").is_enabled("f", &with("field", "1.0.0-rc.1")));
    assert!(c("SEMVER_EQ", "1.0.0+build.1").is_enabled("f", &with("field", "1.0.0+build.2")));
    assert!(c("SEMVER_GT", "1.0.0-alpha.beta").is_enabled("f", &with("field", "1.0.0-beta")));
    assert!(c("SEMVER_LT", "1.0.0-alpha.10").is_enabled("f", &with("field", "1.0.0-alpha.9")));
    assert!(c("NUM_LTE", "-1.5").is_enabled("f", &with("field", "-2")));
    assert!(c("IN_CIDR", "::ffff:0:0/96").is_enabled("f", &with("field", "::ffff:1.2.3.4")));
    assert!(c("IN_CIDR", "1.2.3.0/24").is_enabled("f", &with("field", "::ffff:1.2.3.4")));
    assert!(c("DATE_BEFORE", "2999-01-01T00:00:00Z").is_enabled("f", &Context::default()), "now when unset");
    assert!(!c("DATE_AFTER", "2999-01-01T00:00:00Z").is_enabled("f", &Context::default()));
    assert!(c("STR_CONTAINS", "ß").is_enabled("f", &with("field", "straße")));
    assert!(!c("STR_CONTAINS", "").is_enabled("f", &with("field", "anything")), "empty values are dropped");
    assert!(c("IN", " dev ").is_enabled("f", &with("field", "dev")), "values are trimmed");
}

#[test]
fn hostile_states_do_not_panic() {
    let states = [
        json!({"features": [{"name": "f", "enabled": true, "strategies": [{"name": "flexibleRollout",
            "parameters": {"rollout": "abc", "stickiness": "", "groupId": ""}}],
            "variants": [{"name": "a", "weight": 4294967295u64}, {"name": "b", "weight": 4294967295u64},
                         {"name": "c", "weight": -3}, {"name": "d", "weight": 1.5}]}]}),
        json!({"features": [{"name": "f", "enabled": true, "strategies": [{"name": "default"}],
            "variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}]}),
        json!({"features": [{"name": "f", "enabled": true, "strategies": [
            {"name": "remoteAddress", "parameters": {"IPs": ",,, ,/,1.2.3.4/40,::/0"}},
            {"name": "gradualRolloutUserId", "parameters": {"percentage": "1e400"}},
            {"name": "userWithId", "parameters": {"userIds": null}},
            {"name": "applicationHostname", "parameters": {"hostNames": "localhost"}}],
            "dependencies": [{"feature": "f"}]}]}),
        json!({"features": null, "segments": null}),
        json!({"features": [{"name": "f", "enabled": null, "strategies": null, "variants": null}]}),
    ];
    let contexts = [
        Context::default(),
        Context { user_id: Some(String::new()), remote_address: Some("::1".into()), ..Context::default() },
        Context {
            user_id: Some("\u{0}\u{fffd}".repeat(1000)),
            current_time: Some("garbage".into()),
            ..Context::default()
        },
    ];
    for state in states {
        let engine = engine(state);
        for ctx in &contexts {
            let _ = engine.is_enabled("f", ctx);
            let v = engine.variant("f", ctx);
            assert!(v.enabled == (v.name != "disabled"), "{v:?}");
        }
    }
}

#[test]
fn self_dependency_and_cycles_are_off() {
    let engine = engine(json!({"features": [
        {"name": "self", "enabled": true, "dependencies": [{"feature": "self"}]},
        {"name": "a", "enabled": true, "dependencies": [{"feature": "b"}]},
        {"name": "b", "enabled": true, "dependencies": [{"feature": "a"}]}]}));
    for name in ["self", "a", "b"] {
        assert!(!engine.is_enabled(name, &Context::default()), "{name}");
        assert_eq!(engine.variant(name, &Context::default()), Variant::disabled(false), "{name}");
    }
}

#[test]
fn errors_name_the_payload_and_position() {
    let e = ClientFeatures::from_json("{\"features\": 3}").expect_err("not a list");
    let FlagsError::Json { what, line, column, .. } = &e else { panic!("unexpected error {e:?}") };
    assert_eq!((*what, *line), ("client features", 1));
    assert!(*column > 0);
    let text = e.to_string();
    assert!(text.starts_with("invalid client features at line 1 column "), "{text}");
    assert!(text.contains("invalid type: integer `3`, expected a sequence"), "{text}");
    assert!(!text.ends_with('.'), "{text}");

    let e = DeltaEvents::from_json("{\"events\": [{\"type\": \"feature-updated\"}]}").expect_err("no feature");
    assert!(e.to_string().starts_with("invalid delta events at line 1 column "), "{e}");
    assert!(e.to_string().contains("missing field `feature`"), "{e}");
    let e = Context::from_json("[").expect_err("truncated");
    assert!(e.to_string().starts_with("invalid context at line 1 column 1"), "{e}");
}

#[test]
fn delta_events_apply_in_order() {
    let mut engine = Engine::default();
    let delta = |v: serde_json::Value| DeltaEvents::from_json(&v.to_string()).expect("valid delta");
    let seg_feature = json!({"name": "s", "enabled": true, "strategies": [{"name": "default", "segments": [7]}]});
    engine.apply(delta(json!({"events": [
        {"type": "segment-updated", "segment": {"id": 7, "constraints": [
            {"contextName": "appName", "operator": "IN", "values": ["web"]}]}},
        {"type": "feature-updated", "feature": seg_feature},
        {"type": "feature-updated", "feature": {"name": "gone", "enabled": true}},
        {"type": "feature-removed", "featureName": "gone"},
        {"type": "something-new", "payload": 1}]})));
    let web = Context { app_name: Some("web".into()), ..Context::default() };
    assert!(engine.is_enabled("s", &web));
    assert!(!engine.contains("gone"));
    engine.apply(delta(json!({"events": [{"type": "segment-removed", "segmentId": 7}]})));
    assert!(!engine.is_enabled("s", &web), "a missing segment is false");
    engine.apply(delta(json!({"events": [{"type": "hydration", "features": [{"name": "h", "enabled": true}]}]})));
    assert_eq!(engine.feature_names().collect::<Vec<_>>(), ["h"]);
}

#[test]
fn rollout_is_sticky_and_monotonic() {
    let at = |rollout: u32| {
        engine(json!({"features": [{"name": "f", "enabled": true, "strategies": [{"name": "flexibleRollout",
            "parameters": {"rollout": rollout.to_string(), "stickiness": "userId", "groupId": "g"}}]}]}))
    };
    let engines: Vec<Engine> = (0..=100).step_by(10).map(at).collect();
    let mut on_at_50 = 0;
    for i in 0..1000 {
        let ctx = Context { user_id: Some(format!("u{i}")), ..Context::default() };
        let on: Vec<bool> = engines.iter().map(|e| e.is_enabled("f", &ctx)).collect();
        assert!(!on[0] && on[10], "0% is off and 100% is on");
        assert!(on.windows(2).all(|w| w[1] || !w[0]), "once on, on at every larger rollout: {on:?}");
        assert_eq!(on, engines.iter().map(|e| e.is_enabled("f", &ctx)).collect::<Vec<_>>(), "sticky");
        on_at_50 += usize::from(on[5]);
    }
    assert!((400..=600).contains(&on_at_50), "50% of 1000 users: {on_at_50}");
}

#[test]
fn variant_weights_split_users() {
    let engine = engine(json!({"features": [{"name": "f", "enabled": true, "strategies": [],
        "variants": [{"name": "a", "weight": 200}, {"name": "b", "weight": 800, "payload": {"type": "json", "value": "{}"}}]}]}));
    let mut a = 0;
    for i in 0..2000 {
        let ctx = Context { session_id: Some(format!("s{i}")), ..Context::default() };
        let v = engine.variant("f", &ctx);
        assert!(v.enabled && v.feature_enabled);
        assert_eq!(v, engine.variant("f", &ctx), "sticky");
        a += usize::from(v.name == "a");
    }
    assert!((300..=500).contains(&a), "20% of 2000: {a}");
}
