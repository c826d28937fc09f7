//! [`ExperimentResults`] as a Markdown report.

use std::fmt::Write as _;

use super::analysis::{ExperimentResults, MIN_EXPOSURES_PER_VARIANT, SRM_ALPHA, WIN_PROBABILITY};

/// A p-value: four decimals down to 0.001, then two significant digits in
/// scientific notation, and a floor for values lost to rounding.
pub(crate) fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        "n/a".to_owned()
    } else if p >= 0.001 {
        format!("{p:.4}")
    } else if p >= 1e-16 {
        format!("{p:.1e}")
    } else {
        "< 1e-16".to_owned()
    }
}

/// A significance level: at most four decimals, trailing zeros dropped.
pub(crate) fn fmt_alpha(a: f64) -> String {
    let s = format!("{a:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn fmt_rate(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{:.2}%", r * 100.0))
}

fn fmt_pp(d: Option<f64>) -> String {
    d.map_or_else(|| "–".to_owned(), |d| format!("{:+.2} pp", d * 100.0))
}

fn fmt_prob(p: f64) -> String {
    if p > 0.999 {
        "> 99.9%".to_owned()
    } else if p < 0.001 {
        "< 0.1%".to_owned()
    } else {
        format!("{:.1}%", p * 100.0)
    }
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// Table cells must not break the table: pipes escaped, line breaks removed.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A Markdown report of experiments: per experiment a table of variants
/// (exposures, conversions, rate, lift, 95% confidence interval of the
/// difference, p-value, probability to beat control), the sample ratio check
/// and the recommendation with its reason.
pub fn render_markdown(results: &[ExperimentResults]) -> String {
    let mut out = String::from("# Experiment results\n\n");
    if results.is_empty() {
        out.push_str("No experiments have recorded events yet.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "Two-sided z-test of each variant against control (pooled standard error), 95% confidence interval of the \
         difference, Bayesian probability to beat control with uniform priors. A winner needs at least \
         {MIN_EXPOSURES_PER_VARIANT} exposures per variant, a significant difference and a probability to beat \
         control of at least {:.0}%; a sample ratio mismatch (p < {SRM_ALPHA}) invalidates the results.\n",
        WIN_PROBABILITY * 100.0
    );
    for r in results {
        render_one(&mut out, r);
    }
    out
}

fn render_one(out: &mut String, r: &ExperimentResults) {
    let _ = writeln!(out, "## {}\n", cell(&r.experiment));
    let _ = writeln!(out, "**{}**: {}\n", r.recommendation.label(), r.reason);
    let exposures: u64 = r.variants.iter().map(|v| v.exposures).sum();
    let mut facts = vec![format!("Control: `{}`", cell(&r.control)), format!("{exposures} exposures")];
    if let (Some(first), Some(last)) = (&r.first_event, &r.last_event) {
        facts.push(format!("events from {first} to {last}"));
    }
    let _ = writeln!(out, "{}\n", facts.join(" · "));

    let with_value = r.variants.iter().any(|v| v.value_total != 0.0);
    out.push_str("| Variant | Exposures | Conversions | Rate |");
    if with_value {
        out.push_str(" Value |");
    }
    out.push_str(" Lift | Relative lift | 95% CI of difference | p-value | P(beat control) |\n");
    out.push_str("|---|---:|---:|---:|");
    if with_value {
        out.push_str("---:|");
    }
    out.push_str("---:|---:|---|---:|---:|\n");
    for v in &r.variants {
        let name = if v.control { format!("{} (control)", cell(&v.variant)) } else { cell(&v.variant) };
        let _ = write!(out, "| {name} | {} | {} | {} |", v.exposures, v.conversions, fmt_rate(v.rate));
        if with_value {
            let _ = write!(out, " {} |", fmt_value(v.value_total));
        }
        match r.comparisons.iter().find(|c| c.variant == v.variant).filter(|_| !v.control) {
            Some(c) => {
                let relative = c.relative_lift.map_or_else(|| "–".to_owned(), |l| format!("{:+.1}%", l * 100.0));
                let ci = match (c.ci_low, c.ci_high) {
                    (Some(lo), Some(hi)) => format!("[{:+.2}, {:+.2}] pp", lo * 100.0, hi * 100.0),
                    _ => "–".to_owned(),
                };
                let p = c.p_value.map_or_else(|| "–".to_owned(), fmt_p);
                let p = if c.significant { format!("**{p}**") } else { p };
                let _ = writeln!(
                    out,
                    " {} | {relative} | {ci} | {p} | {} |",
                    fmt_pp(c.absolute_lift),
                    fmt_prob(c.prob_beat_control)
                );
            }
            None => out.push_str(" – | – | – | – | – |\n"),
        }
    }
    out.push('\n');

    let shares: Vec<String> = r
        .variants
        .iter()
        .map(|v| {
            let observed = v.observed_share.map_or_else(|| "–".to_owned(), |s| format!("{:.1}%", s * 100.0));
            format!("{} {observed} (expected {:.1}%)", cell(&v.variant), v.expected_share * 100.0)
        })
        .collect();
    let verdict = match (r.srm.chi_square, r.srm.p_value) {
        (Some(chi), Some(p)) => format!(
            "chi-square = {chi:.2} (df {}), p = {}: {}",
            r.srm.df,
            fmt_p(p),
            if r.srm.mismatch { "**mismatch**" } else { "ok" }
        ),
        _ => "not enough data to test".to_owned(),
    };
    let _ = writeln!(out, "Sample ratio: {}; {verdict}.\n", shares.join(", "));
    if r.contaminated_units > 0 {
        let _ = writeln!(
            out,
            "Warning: {} units were exposed to more than one variant (counted in each).\n",
            r.contaminated_units
        );
    }
}
