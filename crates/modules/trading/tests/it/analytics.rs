//! Tests of `plexus_trading::analytics`.

use std::collections::BTreeMap;

use plexus_trading::analytics::{
    self, AnalyticsError, ConcentrationKind, ConcentrationLimits, Holding, Position, RiskParams, Scenario, ShockSource,
    TRADING_DAYS_PER_YEAR,
};
use serde_json::Value;

const TOL: f64 = 1e-9;

/// `got` equals `want` to 1e-9, relative when `want` is larger than 1.
fn close(got: f64, want: f64, what: &str) {
    let tol = TOL * want.abs().max(1.0);
    assert!((got - want).abs() <= tol, "{what}: got {got:.17e}, want {want:.17e} (diff {:e})", (got - want).abs());
}

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/risk_reference.json");
    let text = std::fs::read_to_string(path).expect("read the reference fixture");
    serde_json::from_str(&text).expect("parse the reference fixture")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

#[test]
fn fixture_records_its_generator_and_versions() {
    let fx = fixture();
    assert_eq!(fx["versions"]["empyrical-reloaded"], "0.7.1");
    assert_eq!(fx["periods_per_year"], 252);
    assert_eq!(fx["cases"].as_array().expect("cases").len(), 6);
}

#[test]
fn normal_quantile_matches_scipy() {
    let fx = fixture();
    for row in fx["norm_ppf"].as_array().expect("norm_ppf") {
        let p = row["p"].as_f64().expect("p");
        let want = row["z"].as_f64().expect("z");
        let got = analytics::normal_quantile(p).expect("quantile");
        assert!((got - want).abs() <= 1e-14 * want.abs().max(1.0), "ppf({p}) = {got:e}, scipy {want:e}");
    }
    for bad in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
        assert!(matches!(analytics::normal_quantile(bad), Err(AnalyticsError::InvalidParameter { .. })), "{bad}");
    }
    assert!((analytics::normal_pdf(0.0) - 0.398_942_280_401_432_7).abs() < 1e-16);
}

/// Every metric of every fixture case, to 1e-9 of empyrical-reloaded's value.
#[test]
fn metrics_match_empyrical_reference() {
    let fx = fixture();
    let rf = fx["risk_free"].as_f64().expect("risk_free");
    let n = TRADING_DAYS_PER_YEAR;
    let mut checked = 0;
    for case in fx["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let r = floats(&case["returns"]);
        let b = floats(&case["benchmark"]);
        let want = &case["expected"];
        let metrics: Vec<(&str, Result<f64, AnalyticsError>)> = vec![
            ("cum_returns_final", analytics::cumulative_return(&r)),
            ("annual_return", analytics::annual_return(&r, n)),
            ("annual_volatility", analytics::annual_volatility(&r, n)),
            ("sharpe_ratio", analytics::sharpe_ratio(&r, 0.0, n)),
            ("sharpe_ratio_rf", analytics::sharpe_ratio(&r, rf, n)),
            ("sortino_ratio", analytics::sortino_ratio(&r, 0.0, n)),
            ("downside_risk", analytics::downside_risk(&r, 0.0, n)),
            ("max_drawdown", analytics::max_drawdown(&r)),
            ("calmar_ratio", analytics::calmar_ratio(&r, n)),
            ("beta", analytics::beta(&r, &b)),
            ("alpha", analytics::alpha(&r, &b, 0.0, n)),
            ("beta_rf", analytics::alpha_beta(&r, &b, rf, n).map(|(_, b)| b)),
            ("alpha_rf", analytics::alpha(&r, &b, rf, n)),
            ("value_at_risk_95", analytics::value_at_risk(&r, 0.05)),
            ("value_at_risk_99", analytics::value_at_risk(&r, 0.01)),
            ("conditional_value_at_risk_95", analytics::conditional_value_at_risk(&r, 0.05)),
            ("conditional_value_at_risk_99", analytics::conditional_value_at_risk(&r, 0.01)),
            ("parametric_var_95", analytics::parametric_var(&r, 0.05)),
            ("parametric_var_99", analytics::parametric_var(&r, 0.01)),
            ("parametric_es_95", analytics::parametric_expected_shortfall(&r, 0.05)),
            ("parametric_es_99", analytics::parametric_expected_shortfall(&r, 0.01)),
        ];
        assert_eq!(metrics.len(), want.as_object().expect("expected").len(), "{name}: every metric is checked");
        for (metric, got) in metrics {
            let what = format!("{name}.{metric}");
            match want[metric].as_f64() {
                Some(w) => close(got.unwrap_or_else(|e| panic!("{what}: {e}")), w, &what),
                // empyrical answered NaN or an infinity: we answer "undefined".
                None => assert!(matches!(got, Err(AnalyticsError::Undefined { .. })), "{what}: {got:?}"),
            }
            checked += 1;
        }

        // The all-in-one report agrees with the single functions.
        let params = RiskParams { risk_free: rf, ..RiskParams::default() };
        let m = analytics::risk_summary(&r, Some(&b), &params).expect("risk_summary");
        assert_eq!(m.observations, r.len());
        close(m.tail_95.historical_var, want["value_at_risk_95"].as_f64().expect("var"), name);
        close(m.tail_99.expected_shortfall, want["conditional_value_at_risk_99"].as_f64().expect("es"), name);
        close(m.tail_99.parametric_var, want["parametric_var_99"].as_f64().expect("pvar"), name);
        close(m.sharpe_ratio.expect("sharpe"), want["sharpe_ratio_rf"].as_f64().expect("sharpe"), name);
        close(m.alpha.expect("alpha"), want["alpha_rf"].as_f64().expect("alpha"), name);
        close(m.beta.expect("beta"), want["beta"].as_f64().expect("beta"), name);
        close(m.max_drawdown, want["max_drawdown"].as_f64().expect("mdd"), name);
        assert_eq!(m.sortino_ratio.is_none(), want["sortino_ratio"].is_null(), "{name}");
        assert_eq!(m.calmar_ratio.is_none(), want["calmar_ratio"].is_null(), "{name}");
        assert_eq!(m.notes.len(), usize::from(m.sortino_ratio.is_none()) + usize::from(m.calmar_ratio.is_none()));
    }
    assert_eq!(checked, 6 * 21);
}

#[test]
fn all_positive_series_explains_its_missing_ratios() {
    let r = [0.01, 0.02, 0.005];
    let m = analytics::risk_summary(&r, None, &RiskParams::default()).expect("metrics");
    assert_eq!(m.sortino_ratio, None);
    assert_eq!(m.calmar_ratio, None);
    assert_eq!(m.max_drawdown, 0.0);
    assert_eq!(m.beta, None);
    assert_eq!(
        m.notes,
        vec![
            "sortino ratio is undefined: no return is below the required return (a downside deviation of 0)",
            "calmar ratio is undefined: the series has no drawdown",
        ]
    );
    // Serializable for a tool's structured output.
    let json = serde_json::to_value(&m).expect("serialize");
    assert_eq!(json["sortino_ratio"], Value::Null);
    assert!(json["tail_95"]["historical_var"].is_number());
}

#[test]
fn drawdown_of_a_known_series() {
    // Wealth 1 → 1.1 → 0.88 → 0.968 → 1.1616 → 0.92928: peak 1.1616, trough 0.92928.
    let r = [0.10, -0.20, 0.10, 0.20, -0.20];
    let dd = analytics::drawdown_series(&r).expect("drawdowns");
    let want = [0.0, -0.2, -0.12, 0.0, -0.2];
    for (g, w) in dd.iter().zip(want) {
        close(*g, w, "drawdown");
    }
    close(analytics::max_drawdown(&r).expect("mdd"), -0.2, "max drawdown");
    // A loss on day one is measured from the starting wealth.
    close(analytics::max_drawdown(&[-0.5, 0.5]).expect("mdd"), -0.5, "first-day loss");
    close(analytics::max_drawdown(&[-0.1, -0.1]).expect("mdd"), -0.19, "two losses compound");
    close(analytics::cumulative_return(&r).expect("cum"), 1.1 * 0.8 * 1.1 * 1.2 * 0.8 - 1.0, "cumulative");
}

#[test]
fn hand_checked_quantiles_and_moments() {
    let r = [-0.05, -0.03, -0.01, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07];
    // (11 − 1)·0.05 = 0.5: halfway between the two lowest.
    close(analytics::value_at_risk(&r, 0.05).expect("var"), -0.04, "var 95");
    // (11 − 1)·0.25 = 2.5: halfway between -0.01 and 0.
    close(analytics::value_at_risk(&r, 0.25).expect("var"), -0.005, "var 75");
    // int(10·0.05) = 0: the lowest alone; int(10·0.25) = 2: the mean of three.
    close(analytics::conditional_value_at_risk(&r, 0.05).expect("es"), -0.05, "es 95");
    close(analytics::conditional_value_at_risk(&r, 0.25).expect("es"), -0.03, "es 75");
    // Order does not matter.
    let mut shuffled = r;
    shuffled.reverse();
    close(analytics::value_at_risk(&shuffled, 0.05).expect("var"), -0.04, "shuffled");

    // [0, 0.02, -0.01, 0.03]: mean 0.01, squared deviations 0.0001 + 0.0001 + 0.0004 + 0.0004 over n − 1 = 3.
    let x = [0.0, 0.02, -0.01, 0.03];
    let mean = 0.01;
    let var = ((0.01f64).powi(2) + 0.01f64.powi(2) + 0.02f64.powi(2) + 0.02f64.powi(2)) / 3.0;
    close(analytics::annual_volatility(&x, 252.0).expect("vol"), var.sqrt() * 252f64.sqrt(), "vol");
    close(analytics::sharpe_ratio(&x, 0.0, 252.0).expect("sharpe"), mean / var.sqrt() * 252f64.sqrt(), "sharpe");
    // downside: only -0.01 is below 0: √(0.0001/4)·√252
    close(analytics::downside_risk(&x, 0.0, 252.0).expect("dr"), (0.0001f64 / 4.0).sqrt() * 252f64.sqrt(), "dr");
    // parametric: mean + z·σ with z = Φ⁻¹(0.05)
    let z = analytics::normal_quantile(0.05).expect("z");
    close(analytics::parametric_var(&x, 0.05).expect("pvar"), mean + z * var.sqrt(), "pvar");

    // Beta of a series that is exactly 2× the benchmark plus a constant.
    let b = [0.01, -0.02, 0.015, 0.0, -0.005];
    let y: Vec<f64> = b.iter().map(|v| 0.001 + 2.0 * v).collect();
    close(analytics::beta(&y, &b).expect("beta"), 2.0, "beta");
    // alpha = (1 + 0.001)^252 − 1 when rf = 0
    close(analytics::alpha(&y, &b, 0.0, 252.0).expect("alpha"), 1.001f64.powf(252.0) - 1.0, "alpha");
}

#[test]
fn bad_input_is_a_precise_error() {
    use AnalyticsError as E;
    assert_eq!(analytics::value_at_risk(&[], 0.05), Err(E::Empty { what: "returns" }));
    assert_eq!(
        analytics::sharpe_ratio(&[0.01, f64::NAN, 0.02], 0.0, 252.0).map_err(|e| e.to_string()),
        Err("returns[1] is not a finite number (NaN)".to_owned())
    );
    assert_eq!(
        analytics::annual_volatility(&[0.01], 252.0),
        Err(E::TooFewPoints { metric: "annual volatility", needed: 2, got: 1 })
    );
    assert_eq!(
        analytics::beta(&[0.01, 0.02, 0.03], &[0.01, 0.02]).map_err(|e| e.to_string()),
        Err("benchmark has 2 points but 3 were expected (the series must be aligned)".to_owned())
    );
    assert!(matches!(analytics::value_at_risk(&[0.01], 0.0), Err(E::InvalidParameter { .. })));
    assert!(matches!(analytics::value_at_risk(&[0.01], 1.0), Err(E::InvalidParameter { .. })));
    assert!(matches!(analytics::sharpe_ratio(&[0.01, 0.02], f64::INFINITY, 252.0), Err(E::InvalidParameter { .. })));
    assert!(matches!(analytics::annual_volatility(&[0.01, 0.02], 0.0), Err(E::InvalidParameter { .. })));
    assert_eq!(
        analytics::sharpe_ratio(&[0.01, 0.01, 0.01], 0.0, 252.0),
        Err(E::Undefined {
            metric: "sharpe ratio",
            reason: "the returns have zero dispersion (a standard deviation of 0)"
        })
    );
    assert_eq!(
        analytics::beta(&[0.01, 0.02], &[0.005, 0.005]),
        Err(E::Undefined { metric: "beta", reason: "the benchmark has no variance" })
    );
    assert!(matches!(analytics::annual_return(&[-1.5, 0.1], 252.0), Err(E::Undefined { .. })));
    assert!(matches!(analytics::risk_summary(&[0.01], None, &RiskParams::default()), Err(E::TooFewPoints { .. })));
    assert!(matches!(
        analytics::risk_summary(&[0.01, 0.02], Some(&[0.01]), &RiskParams::default()),
        Err(E::LengthMismatch { .. })
    ));
}

fn holding(symbol: &str, quantity: f64, prices: &[f64]) -> Holding {
    Holding { symbol: symbol.to_owned(), quantity, prices: prices.to_vec() }
}

#[test]
fn portfolio_returns_from_holdings() {
    // Long only: 10 × A and 5 × B. Values 10·100 + 5·50 = 1250 → 10·110 + 5·45 = 1325 → 10·99 + 5·45 = 1215.
    let h = [holding("A", 10.0, &[100.0, 110.0, 99.0]), holding("B", 5.0, &[50.0, 45.0, 45.0])];
    let r = analytics::portfolio_returns(&h).expect("returns");
    assert_eq!(r.len(), 2);
    close(r[0], 1325.0 / 1250.0 - 1.0, "day 1");
    close(r[1], 1215.0 / 1325.0 - 1.0, "day 2");

    // Long/short: P&L over gross exposure. Day 1: 10·(+10) − 5·(−5) = 125 over 1000 + 250.
    let h = [holding("A", 10.0, &[100.0, 110.0]), holding("B", -5.0, &[50.0, 45.0])];
    close(analytics::portfolio_returns(&h).expect("returns")[0], 125.0 / 1250.0, "long/short");

    assert_eq!(analytics::portfolio_returns(&[]), Err(AnalyticsError::Empty { what: "holdings" }));
    assert!(matches!(
        analytics::portfolio_returns(&[holding("A", 1.0, &[1.0, 2.0]), holding("B", 1.0, &[1.0])]),
        Err(AnalyticsError::LengthMismatch { .. })
    ));
    assert!(matches!(
        analytics::portfolio_returns(&[holding("A", 1.0, &[1.0, 0.0])]),
        Err(AnalyticsError::InvalidParameter { .. })
    ));
    assert!(matches!(
        analytics::portfolio_returns(&[holding("A", 1.0, &[1.0, 2.0]), holding("A", 1.0, &[1.0, 2.0])]),
        Err(AnalyticsError::DuplicateSymbol { .. })
    ));
    assert!(matches!(
        analytics::portfolio_returns(&[holding("A", 0.0, &[1.0, 2.0])]),
        Err(AnalyticsError::Undefined { .. })
    ));
    assert!(matches!(
        analytics::portfolio_returns(&[holding("A", 1.0, &[1.0])]),
        Err(AnalyticsError::TooFewPoints { .. })
    ));
}

fn position(symbol: &str, quantity: f64, price: f64, sector: &str, betas: &[(&str, f64)]) -> Position {
    Position {
        symbol: symbol.to_owned(),
        quantity,
        price,
        sector: Some(sector.to_owned()),
        factor_betas: betas.iter().map(|(f, b)| ((*f).to_owned(), *b)).collect(),
    }
}

#[test]
fn stress_test_by_symbol_and_factor() {
    let book = [
        position("AAPL", 100.0, 200.0, "tech", &[("market", 1.2)]),
        position("XOM", 200.0, 100.0, "energy", &[("market", 0.8), ("oil", 1.5)]),
        position("TSLA", -50.0, 400.0, "auto", &[("market", 2.0)]),
        position("GLD", 10.0, 180.0, "commodities", &[]),
    ];
    let scenario = Scenario {
        name: "crash".to_owned(),
        symbol_shocks: BTreeMap::from([("AAPL".to_owned(), -0.25), ("NVDA".to_owned(), -0.4)]),
        factor_shocks: BTreeMap::from([("market".to_owned(), -0.10), ("oil".to_owned(), -0.20)]),
    };
    let res = analytics::stress_test(&book, &scenario).expect("stress");
    assert_eq!(res.scenario, "crash");
    let by: BTreeMap<&str, _> = res.positions.iter().map(|p| (p.symbol.as_str(), p)).collect();
    // AAPL: its own shock wins over its market beta: 20 000 × −25 %.
    assert_eq!(by["AAPL"].source, ShockSource::Symbol);
    close(by["AAPL"].pnl, -5000.0, "AAPL");
    // XOM: 0.8·(−10 %) + 1.5·(−20 %) = −38 % of 20 000.
    assert_eq!(by["XOM"].source, ShockSource::Factors);
    close(by["XOM"].shock, -0.38, "XOM shock");
    close(by["XOM"].pnl, -7600.0, "XOM");
    // TSLA short: 2.0·(−10 %) on −20 000 is a gain of 4 000.
    close(by["TSLA"].pnl, 4000.0, "TSLA");
    close(by["TSLA"].stressed_value, -16000.0, "TSLA stressed");
    // GLD: nothing applies.
    assert_eq!(by["GLD"].source, ShockSource::None);
    assert_eq!(by["GLD"].pnl, 0.0);
    close(res.total_pnl, -8600.0, "total");
    close(res.net_value, 20000.0 + 20000.0 - 20000.0 + 1800.0, "net");
    close(res.gross_exposure, 61800.0, "gross");
    close(res.pnl_fraction_of_gross, -8600.0 / 61800.0, "fraction");
    assert_eq!(res.unmatched_symbols, vec!["NVDA".to_owned()]);

    // A factor-implied fall beyond −100 % is floored.
    let crash = Scenario {
        name: "wipeout".to_owned(),
        factor_shocks: BTreeMap::from([("market".to_owned(), -0.6)]),
        ..Scenario::default()
    };
    let res = analytics::stress_test(&book[2..3], &crash).expect("stress");
    close(res.positions[0].shock, -1.0, "floored");

    // A scenario from JSON, as a tool receives it.
    let s: Scenario =
        serde_json::from_str(r#"{"name":"oil","factor_shocks":{"oil":0.1}}"#).expect("scenario from JSON");
    let res = analytics::stress_test(&book, &s).expect("stress");
    close(res.total_pnl, 20000.0 * 0.15, "oil up");

    let bad = Scenario {
        name: "bad".to_owned(),
        symbol_shocks: BTreeMap::from([("AAPL".to_owned(), -1.5)]),
        ..Scenario::default()
    };
    assert_eq!(
        analytics::stress_test(&book, &bad).map_err(|e| e.to_string()),
        Err("shock of AAPL = -1.5 is invalid: a shock is a simple return, finite and at least -1 (-100%)".to_owned())
    );
    let mut nan_book = book.to_vec();
    nan_book[0].price = f64::NAN;
    assert!(matches!(analytics::stress_test(&nan_book, &s), Err(AnalyticsError::InvalidParameter { .. })));
}

#[test]
fn concentration_warnings_name_the_numbers() {
    let book = [
        position("AAPL", 100.0, 400.0, "tech", &[]),   // 40 000
        position("MSFT", 50.0, 300.0, "tech", &[]),    // 15 000
        position("XOM", -100.0, 100.0, "energy", &[]), // 10 000 (short)
        position("JNJ", 100.0, 150.0, "health", &[]),  // 15 000
        position("PG", 100.0, 200.0, "staples", &[]),  // 20 000
    ];
    // Gross 100 000: AAPL 40 %, PG 20 %, MSFT 15 %, JNJ 15 %, XOM 10 %; tech 55 %.
    let limits = ConcentrationLimits { max_position_fraction: 0.20, max_sector_fraction: 0.50 };
    let w = analytics::concentration_warnings(&book, &limits).expect("warnings");
    assert_eq!(w.len(), 2, "{w:#?}");
    assert_eq!(w[0].kind, ConcentrationKind::Sector);
    assert_eq!(w[0].name, "tech");
    close(w[0].fraction, 0.55, "tech");
    // (55 000 − 0.5·100 000)/(1 − 0.5) = 10 000: then 45 000 of 90 000.
    close(w[0].reduce_by, 10000.0, "tech cut");
    assert_eq!(
        w[0].recommendation,
        "sector tech is 55.00% of gross exposure (55000.00 of 100000.00), above the 50.00% limit: \
         reduce it by 10000.00 to bring it back to the limit"
    );
    assert_eq!(w[1].kind, ConcentrationKind::Position);
    assert_eq!(w[1].name, "AAPL");
    close(w[1].fraction, 0.40, "AAPL");
    close(w[1].reduce_by, 25000.0, "AAPL cut"); // 15 000 of 75 000 = 20 %
    // PG at exactly 20 % is at the limit, not above it.
    assert!(w.iter().all(|x| x.name != "PG"));

    // A short counts by its size.
    let limits = ConcentrationLimits { max_position_fraction: 0.09, max_sector_fraction: 1.0 };
    let w = analytics::concentration_warnings(&book, &limits).expect("warnings");
    assert_eq!(w.len(), 5);
    assert_eq!(w.last().map(|x| x.name.as_str()), Some("XOM"));

    assert!(analytics::concentration_warnings(&book, &ConcentrationLimits::default()).is_ok());
    assert!(matches!(
        analytics::concentration_warnings(&book, &ConcentrationLimits { max_position_fraction: 0.0, ..limits }),
        Err(AnalyticsError::InvalidParameter { .. })
    ));
    assert!(analytics::concentration_warnings(&[], &limits).expect("empty").is_empty());
}
