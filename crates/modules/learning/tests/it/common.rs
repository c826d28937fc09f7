//! Shared helpers: the reference fixture and tolerant comparisons.

use serde_json::Value;

/// The fixture written by `scripts/reference/learning_reference.py`.
pub(crate) fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/learning_reference.json");
    let text = std::fs::read_to_string(path).expect("read the reference fixture");
    serde_json::from_str(&text).expect("parse the reference fixture")
}

pub(crate) fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

pub(crate) fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

/// `got` equals `want` to `tol`, relative when `|want| > 1`; returns the
/// scaled difference so tests can report the largest one.
pub(crate) fn close(got: f64, want: f64, tol: f64, what: &str) -> f64 {
    let scale = want.abs().max(1.0);
    let diff = (got - want).abs();
    assert!(diff <= tol * scale, "{what}: got {got:.17e}, want {want:.17e} (diff {diff:e})");
    diff / scale
}
