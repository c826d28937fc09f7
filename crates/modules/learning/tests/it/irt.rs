//! Tests of `plexus_learning::irt`.

use plexus_learning::irt::{
    self, CalibrationOptions, EapGrid, Estimate, IrtError, Item, ItemBank, NormalPrior, Posterior, Quadrature,
    QuadratureKind,
};
use proptest::prelude::*;
use serde_json::Value;

use crate::common::{close, f, fixture, floats};

/// Same formula as the reference: 1e-9 (relative above 1).
const TOL: f64 = 1e-9;

#[test]
fn fixture_records_its_generator_and_versions() {
    let fx = fixture();
    assert_eq!(fx["generator"], "scripts/reference/learning_reference.py");
    assert_eq!(fx["versions"]["catsim"], "0.21.0");
    assert_eq!(fx["versions"]["girth"], "0.8.0");
    assert_eq!(fx["versions"]["pyBKT"], "1.4.3");
}

/// `irt::probability` and `irt::information` against catsim's `irt.icc` and `irt.inf`.
#[test]
fn probability_and_information_match_catsim() {
    let fx = fixture();
    let thetas = floats(&fx["irt"]["thetas"]);
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    let mut worst_info: f64 = 0.0;
    for row in fx["irt"]["items"].as_array().expect("items") {
        let (a, b, c, d) = (f(&row["a"]), f(&row["b"]), f(&row["c"]), f(&row["d"]));
        let ps = floats(&row["p"]);
        let infos = floats(&row["info"]);
        for (k, &t) in thetas.iter().enumerate() {
            let what = format!("a={a} b={b} c={c} d={d} θ={t}");
            worst = worst.max(close(irt::probability(t, a, b, c, d), ps[k], TOL, &format!("P {what}")));
            // catsim computes d − P by subtraction, which loses relative
            // precision once I(θ) < ~1e-10 (1.3 % at I = 1e-26): there the
            // comparison is absolute, and `information_far_from_b_is_accurate`
            // checks the crate against 50-digit arithmetic instead.
            let got = irt::information(t, a, b, c, d);
            let want = infos[k];
            if want > 1e-10 {
                worst_info = worst_info.max((got - want).abs() / want);
                assert!((got - want).abs() <= TOL * want, "I {what}: got {got:e}, want {want:e}");
            } else {
                assert!((got - want).abs() <= 1e-15, "I {what}: got {got:e}, want {want:e}");
            }
            checked += 1;
        }
    }
    eprintln!(
        "IRT: {checked} points, largest P difference {worst:.1e}, largest relative I difference (I > 1e-10) {worst_info:.1e}"
    );
    assert_eq!(checked, 8 * 9);
}

/// Far from `b` the crate's information keeps its relative precision:
/// values of mpmath at 50 digits for the 4PL item a = 3.8, b = −2.7,
/// c = 0.05, d = 0.98 (where catsim's formula is off by up to 1.3 %).
#[test]
fn information_far_from_b_is_accurate() {
    for (theta, exact) in
        [(1.7, 1.911_914_052_942_089_6e-12), (4.0, 4.897_810_752_073_459e-20), (6.0, 1.226_664_722_245_651_4e-26)]
    {
        let got = irt::information(theta, 3.8, -2.7, 0.05, 0.98);
        assert!(((got - exact) / exact).abs() < 1e-13, "θ = {theta}: {got:e} vs {exact:e}");
    }
}

#[test]
fn test_information_matches_catsim() {
    let fx = fixture();
    let thetas = floats(&fx["irt"]["thetas"]);
    let items: Vec<Item> = fx["irt"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .enumerate()
        .map(|(i, r)| Item::four_pl(format!("i{i}"), f(&r["a"]), f(&r["b"]), f(&r["c"]), f(&r["d"])))
        .collect();
    for (t, want) in thetas.iter().zip(floats(&fx["irt"]["test_info"])) {
        close(irt::test_information(*t, &items), want, TOL, &format!("test info θ={t}"));
    }
    assert_eq!(irt::standard_error(4.0), 0.5);
    assert_eq!(irt::standard_error(0.0), f64::INFINITY);
}

fn quadrature_of(g: &Value) -> Quadrature {
    let (n, lo, hi) = (g["n"].as_u64().expect("n") as usize, f(&g["lo"]), f(&g["hi"]));
    match g["kind"].as_str().expect("kind") {
        "gauss_legendre" => Quadrature::gauss_legendre(n, lo, hi).expect("gauss-legendre"),
        "uniform" => Quadrature::uniform(n, lo, hi).expect("uniform"),
        other => panic!("unknown grid {other}"),
    }
}

/// Gauss–Legendre nodes and weights against scipy's `roots_legendre` (as girth shifts them).
#[test]
fn quadrature_matches_scipy_and_numpy() {
    let fx = fixture();
    for g in fx["eap"]["grids"].as_array().expect("grids") {
        let q = quadrature_of(g);
        let nodes = floats(&g["nodes"]);
        let weights = floats(&g["weights"]);
        assert_eq!(q.nodes().len(), nodes.len());
        for (k, (&got, &want)) in q.nodes().iter().zip(&nodes).enumerate() {
            assert!((got - want).abs() <= 1e-13, "{} node {k}: {got:e} vs {want:e}", g["kind"]);
        }
        for (k, (&got, &want)) in q.weights().iter().zip(&weights).enumerate() {
            assert!((got - want).abs() <= 1e-13, "{} weight {k}: {got:e} vs {want:e}", g["kind"]);
        }
    }
    let d = Quadrature::default();
    assert_eq!(d.spec().kind, QuadratureKind::Uniform);
    assert_eq!((d.nodes().len(), d.nodes()[0], d.nodes()[120]), (121, -6.0, 6.0));
    assert!((d.nodes()[60]).abs() < 1e-15);
}

/// EAP θ against girth (`ability_eap`, `ability_3pl_eap`) on its Gauss–Legendre
/// grids, and θ and SE against numpy on the default uniform grid.
///
/// The same sums over the same nodes: 1e-9 holds (observed ~1e-14); girth
/// multiplies probabilities where the crate adds logarithms.
#[test]
fn eap_matches_girth_and_numpy() {
    let fx = fixture();
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for case in fx["eap"]["cases"].as_array().expect("cases") {
        let grid_spec = &case["grid"];
        let prior = floats(&case["prior"]);
        let grid = EapGrid::new(quadrature_of(grid_spec), NormalPrior { mean: prior[0], sd: prior[1] }).expect("grid");
        let (a, b, c) = (floats(&case["a"]), floats(&case["b"]), floats(&case["c"]));
        let items: Vec<Item> = (0..a.len()).map(|i| Item::three_pl(format!("i{i}"), a[i], b[i], c[i])).collect();
        let thetas = floats(&case["theta"]);
        let ses = floats(&case["se"]);
        for (p, pattern) in case["patterns"].as_array().expect("patterns").iter().enumerate() {
            let pattern: Vec<bool> =
                pattern.as_array().expect("pattern").iter().map(|v| v.as_u64() == Some(1)).collect();
            let est = irt::eap(&grid, items.iter().zip(pattern.iter().copied())).expect("eap");
            let what =
                format!("{} {} n={} prior={prior:?} pattern {p}", case["model"], grid_spec["kind"], grid_spec["n"]);
            worst = worst.max(close(est.theta, thetas[p], TOL, &format!("θ {what}")));
            worst = worst.max(close(est.se, ses[p], TOL, &format!("SE {what}")));
            checked += 1;
        }
    }
    eprintln!("EAP: {checked} patterns, largest difference {worst:.1e}");
    assert_eq!(checked, 2 * 4 * 8);
}

#[test]
fn eap_without_answers_is_the_prior_and_posterior_is_incremental() {
    let grid = EapGrid::default();
    let est = irt::eap(&grid, std::iter::empty()).expect("eap");
    // the grid truncates N(0, 1) at ±6: the SD is 1 − 2.7e-8
    assert!(est.theta.abs() < 1e-12 && (est.se - 1.0).abs() < 1e-7, "{est:?}");
    let items = [Item::two_pl("x", 1.5, 0.2), Item::three_pl("y", 0.9, -1.0, 0.2)];
    let mut post = Posterior::new(&grid);
    post.observe(&grid, &items[0], true);
    post.observe(&grid, &items[1], false);
    let batch = irt::eap(&grid, [(&items[0], true), (&items[1], false)]).expect("eap");
    assert_eq!(post.estimate(&grid), batch);
    // a NaN item is refused
    let bad = Item::two_pl("nan", f64::NAN, 0.0);
    assert!(matches!(irt::eap(&grid, [(&bad, true)]), Err(IrtError::InvalidParameter { param: "a", .. })));
}

#[test]
fn quadrature_and_prior_validation() {
    assert!(matches!(Quadrature::uniform(1, -1.0, 1.0), Err(IrtError::InvalidQuadrature(_))));
    assert!(matches!(Quadrature::uniform(10, 1.0, -1.0), Err(IrtError::InvalidQuadrature(_))));
    assert!(matches!(Quadrature::gauss_legendre(10, f64::NAN, 1.0), Err(IrtError::InvalidQuadrature(_))));
    assert!(matches!(
        EapGrid::new(Quadrature::default(), NormalPrior { mean: 0.0, sd: 0.0 }),
        Err(IrtError::InvalidPrior(_))
    ));
    assert!(matches!(
        EapGrid::new(Quadrature::default(), NormalPrior { mean: f64::INFINITY, sd: 1.0 }),
        Err(IrtError::InvalidPrior(_))
    ));
    // serde round trip through the spec, and a bad spec is refused
    let grid = EapGrid::new(Quadrature::gauss_legendre(41, -4.5, 4.5).expect("gl"), NormalPrior::default()).expect("g");
    let json = serde_json::to_string(&grid).expect("ser");
    let back: EapGrid = serde_json::from_str(&json).expect("de");
    assert_eq!(back, grid);
    assert!(serde_json::from_str::<Quadrature>(r#"{"kind":"uniform","n":1,"lo":0,"hi":1}"#).is_err());
}

#[test]
fn item_validation() {
    let ok = Item::four_pl("ok", 1.0, 0.0, 0.2, 0.98);
    assert_eq!(ok.validate(), Ok(()));
    let cases: [(Item, &str); 9] = [
        (Item::two_pl("x", 0.0, 0.0), "a"),
        (Item::two_pl("x", -1.0, 0.0), "a"),
        (Item::two_pl("x", f64::NAN, 0.0), "a"),
        (Item::two_pl("x", f64::INFINITY, 0.0), "a"),
        (Item::two_pl("x", 1.0, f64::NAN), "b"),
        (Item::three_pl("x", 1.0, 0.0, 1.0), "c"),
        (Item::three_pl("x", 1.0, 0.0, -0.1), "c"),
        (Item::four_pl("x", 1.0, 0.0, 0.3, 0.3), "d"),
        (Item::two_pl("x", 1.0, 0.0).with_exposure(0.0), "exposure"),
    ];
    for (item, param) in cases {
        match item.validate() {
            Err(IrtError::InvalidParameter { param: p, .. }) => assert_eq!(p, param, "{item:?}"),
            other => panic!("{item:?}: {other:?}"),
        }
    }
    assert_eq!(Item::two_pl("", 1.0, 0.0).validate(), Err(IrtError::EmptyId));
    let e = Item::two_pl("q1", -1.0, 0.0).validate().expect_err("invalid");
    assert_eq!(e.to_string(), "item `q1`: a must be a positive finite number, got -1");
    // D = 1.702 metric conversion
    let it = Item::two_pl("n", 1.0, 0.5).with_scaling(1.702);
    assert!((it.probability(1.5) - 1.0 / (1.0 + (-1.702_f64).exp())).abs() < 1e-15);
}

const CSV: &str = "\u{feff}id,a,b,c,skill,topic,name,source\n\
q1,1.2,-0.5,0.2,代数,一次方程式,\"問題 1, 基本\",textbook\n\
\n\
q2,0.8,1.1,,幾何,\"三角形 \"\"合同\"\"\",問題2,\n\
q3,2.0,0.0,0.15,代数,,,\r\n";

#[test]
fn csv_import_with_japanese_text_quotes_and_defaults() {
    let bank = ItemBank::from_csv_str(CSV).expect("bank");
    assert_eq!(bank.len(), 3);
    let q1 = bank.by_id("q1").expect("q1");
    assert_eq!((q1.a, q1.b, q1.c, q1.d), (1.2, -0.5, 0.2, 1.0));
    assert_eq!(q1.skill, "代数");
    assert_eq!(q1.topic, "一次方程式");
    assert_eq!(q1.name, "問題 1, 基本");
    assert_eq!(q1.extra.get("source").map(String::as_str), Some("textbook"));
    let q2 = bank.by_id("q2").expect("q2");
    assert_eq!((q2.c, q2.d, q2.exposure), (0.0, 1.0, 1.0));
    assert_eq!(q2.topic, "三角形 \"合同\"");
    assert_eq!(bank.areas(), ["代数".to_owned(), "幾何".to_owned()]);
    assert_eq!(bank.area_items(0), [0, 2]);
    assert_eq!(bank.area_of(1), Some(1));
    assert_eq!(bank.index_of("q3"), Some(2));
    assert_eq!(bank.index_of("nope"), None);
    // reader and JSON round trip
    let again = ItemBank::from_csv_reader(CSV.as_bytes()).expect("reader");
    assert_eq!(again, bank);
    assert_eq!(again.fingerprint(), bank.fingerprint());
    let json = bank.to_json();
    let back = ItemBank::from_json_str(&json).expect("json");
    assert_eq!(back, bank);
    assert_eq!(back.fingerprint(), bank.fingerprint());
    let via_serde: ItemBank = serde_json::from_str(&json).expect("serde");
    assert_eq!(via_serde, bank);
}

fn csv_err(text: &str) -> IrtError {
    ItemBank::from_csv_str(text).expect_err("an error")
}

#[test]
fn csv_errors_name_line_and_column() {
    let e = csv_err("id,a,b\nq1,1.0,0\nq2,abc,0\n");
    assert_eq!(e, IrtError::Csv { line: 3, column: 2, name: "a".into(), message: "not a number: `abc`".into() });
    assert_eq!(e.to_string(), "line 3, column 2 (`a`): not a number: `abc`");

    let e = csv_err("id,b,a\nq1,0,-1.5\n");
    assert_eq!(e.to_string(), "line 2, column 3 (`a`): must be a positive finite number, got -1.5");

    let e = csv_err("id,a,b\nq1,1,NaN\n");
    assert_eq!(e.to_string(), "line 2, column 3 (`b`): must be a finite number, got NaN");

    let e = csv_err("id,a,b,c\nq1,1,0,1.2\n");
    assert_eq!(e.to_string(), "line 2, column 4 (`c`): must be in [0, 1), got 1.2");

    let e = csv_err("id,a,b\nq1,1,\n");
    assert_eq!(e.to_string(), "line 2, column 3 (`b`): missing value");

    assert_eq!(csv_err("id,a,c\nq1,1,0\n"), IrtError::MissingColumn("b".into()));
    assert_eq!(csv_err("id,a,c\nq1,1,0\n").to_string(), "missing column `b` in the CSV header");

    let e = csv_err("id,a,b,skill\nq1,1,0,算数\nq2,1,0,算数\n\nq1,2,0,算数\n");
    assert_eq!(e, IrtError::DuplicateId { id: "q1".into(), first: "line 2".into(), second: "line 5".into() });
    assert_eq!(e.to_string(), "duplicate item id `q1`: line 5 repeats line 2");

    let e = csv_err("id,a,b\nq1,1,0,extra\n");
    assert_eq!(e.to_string(), "line 2: expected 3 fields as in the header, found 4");

    let e = csv_err("id,a,b,name\nq1,1,0,\"unterminated\nq2,1,0,x\n");
    assert_eq!(e.to_string(), "line 2: unterminated quoted field");

    let e = csv_err("id,a,b\n\"q1\"x,1,0\n");
    assert!(matches!(e, IrtError::CsvRecord { line: 2, .. }), "{e}");

    let e = csv_err("id,a,b\n,1,0\n");
    assert_eq!(e.to_string(), "line 2, column 1 (`id`): empty id");

    assert_eq!(csv_err("id,a,b\n"), IrtError::EmptyBank);
    assert_eq!(csv_err(""), IrtError::EmptyBank);
    assert!(matches!(csv_err("id,a,a,b\n"), IrtError::CsvRecord { line: 1, .. }));

    // a quoted multi-line field keeps the line count of later records right
    let e = csv_err("id,a,b,name\nq1,1,0,\"two\nlines\"\nq2,x,0,y\n");
    assert!(matches!(e, IrtError::Csv { line: 4, column: 2, .. }), "{e}");

    // invalid UTF-8 through the reader
    let e = ItemBank::from_csv_reader(&[0x69, 0x64, 0xff, 0x0a][..]).expect_err("utf-8");
    assert!(matches!(e, IrtError::Io(_)), "{e}");
}

#[test]
fn json_import_and_errors() {
    let bank = ItemBank::from_json_str(
        r#"{"items": [
            {"id": "j1", "a": 1.1, "b": 0.3, "skill": "読解"},
            {"id": "j2", "a": 0.7, "b": -1.0, "c": 0.2, "d": 0.97, "exposure": 0.5, "extra": {"level": "N3"}}
        ]}"#,
    )
    .expect("bank");
    assert_eq!(bank.len(), 2);
    assert_eq!(bank.by_id("j1").expect("j1").skill, "読解");
    assert_eq!(bank.by_id("j2").expect("j2").exposure, 0.5);
    let array = ItemBank::from_json_str(r#"[{"id": "x", "a": 1, "b": 0}]"#).expect("array form");
    assert_eq!(array.len(), 1);

    let e = ItemBank::from_json_str(r#"[{"id": "x", "a": 1, "b": 0}, {"id": "y", "a": 0, "b": 0}]"#).expect_err("a");
    assert_eq!(e.to_string(), "position 1 in the bank: item `y`: a must be a positive finite number, got 0");
    assert!(
        matches!(e, IrtError::InvalidItem { index: 1, ref source } if matches!(**source, IrtError::InvalidParameter { param: "a", .. }))
    );
    let e = ItemBank::from_json_str(r#"[{"id": "x", "a": 1}, {"id": "y", "a": 1}]"#).expect_err("b");
    assert_eq!(e.to_string(), "invalid JSON item bank: item 0: missing field `b`");
    let e = ItemBank::from_json_str(r#"[{"id": "x", "a": 1, "b": 0, "guess": 0.2}]"#).expect_err("unknown");
    assert!(e.to_string().contains("unknown field `guess`"), "{e}");
    let e = ItemBank::from_json_str(r#"[{"id": "x", "a": 1, "b": 0}, {"id": "x", "a": 2, "b": 0}]"#).expect_err("dup");
    assert_eq!(e, IrtError::DuplicateId { id: "x".into(), first: "item 0".into(), second: "item 1".into() });
    let e =
        ItemBank::from_json_str(r#"[{"id": "x", "a": 1, "b": 0}, {"id": "z", "a": "1", "b": 0}]"#).expect_err("type");
    assert!(matches!(&e, IrtError::Json(m) if m.starts_with("item 1: invalid type")), "{e}");
    assert_eq!(ItemBank::from_json_str("[]").expect_err("empty"), IrtError::EmptyBank);
    assert!(matches!(ItemBank::from_json_str("{").expect_err("syntax"), IrtError::Json(_)));
    assert!(matches!(ItemBank::from_json_str(r#"{"things": []}"#).expect_err("shape"), IrtError::Json(_)));
    assert!(matches!(ItemBank::from_json_str("42").expect_err("shape"), IrtError::Json(_)));
    assert_eq!(ItemBank::new(Vec::new()).expect_err("empty"), IrtError::EmptyBank);
}

#[test]
fn bank_lookup_and_exposure_parameters() {
    let items =
        (0..5).map(|i| Item::two_pl(format!("i{i}"), 1.0, i as f64 - 2.0).with_skill(["x", "y"][i % 2])).collect();
    let bank = ItemBank::new(items).expect("bank");
    assert_eq!(bank.area_items(1), [1, 3]);
    assert_eq!(bank.area_items(9), [] as [u32; 0]);
    assert!(matches!(bank.item(5), Err(IrtError::IndexOutOfRange { index: 5, len: 5 })));
    let infos = bank.information_at(0.0);
    assert!((infos[2] - 0.25).abs() < 1e-15);
    let k = bank.with_exposure_parameters(&[1.0, 0.5, 0.25, 1.0, 1.0]).expect("k");
    assert_eq!(k.get(2).expect("item").exposure, 0.25);
    assert_ne!(k.fingerprint(), bank.fingerprint());
    assert!(matches!(bank.with_exposure_parameters(&[1.0]), Err(IrtError::LengthMismatch { expected: 5, got: 1 })));
    assert!(bank.with_exposure_parameters(&[1.0, 0.0, 1.0, 1.0, 1.0]).is_err());
}

/// 2PL marginal maximum likelihood against girth's `twopl_mml` on the same
/// data and the same 41-node Gauss–Legendre grid. girth optimizes the same
/// marginal likelihood by a different algorithm and stops on its own
/// tolerance, so agreement is loose (0.02 in `a` and `b`), and both are
/// within sampling error of the generating values.
#[test]
fn calibration_matches_girth_loosely() {
    let fx = fixture();
    let cal = &fx["calibration"];
    let responses: Vec<Vec<(usize, bool)>> = cal["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| r.as_str().expect("row").bytes().enumerate().map(|(i, ch)| (i, ch == b'1')).collect())
        .collect();
    let n_items = responses[0].len();
    let options = CalibrationOptions { quadrature: quadrature_of(&cal["grid"]), ..CalibrationOptions::default() };
    let report = irt::calibrate_2pl(n_items, &responses, &options).expect("calibration");
    assert!(report.converged, "{} iterations", report.iterations);
    for w in report.log_likelihoods.windows(2) {
        assert!(w[1] >= w[0] - 1e-9, "marginal log-likelihood decreased: {} -> {}", w[0], w[1]);
    }
    let (ga, gb) = (floats(&cal["girth_a"]), floats(&cal["girth_b"]));
    let (ta, tb) = (floats(&cal["true_a"]), floats(&cal["true_b"]));
    let mut max_diff: f64 = 0.0;
    for i in 0..n_items {
        max_diff = max_diff.max((report.a[i] - ga[i]).abs()).max((report.b[i] - gb[i]).abs());
        assert!((report.a[i] - ta[i]).abs() < 0.35, "a[{i}] = {} vs true {}", report.a[i], ta[i]);
        assert!((report.b[i] - tb[i]).abs() < 0.35, "b[{i}] = {} vs true {}", report.b[i], tb[i]);
    }
    eprintln!("calibration: {} EM iterations, max |diff| vs girth = {max_diff:.2e}", report.iterations);
    assert!(max_diff < 0.02, "max |diff| vs girth = {max_diff}");
}

#[test]
fn calibration_refuses_bad_input() {
    let o = CalibrationOptions::default();
    assert!(matches!(irt::calibrate_2pl(0, &[vec![]], &o), Err(IrtError::Calibration(_))));
    assert!(matches!(irt::calibrate_2pl(2, &[], &o), Err(IrtError::Calibration(_))));
    assert!(matches!(irt::calibrate_2pl(2, &[vec![(2, true)]], &o), Err(IrtError::Calibration(_))));
    assert!(matches!(irt::calibrate_2pl(2, &[vec![(0, true), (0, false)]], &o), Err(IrtError::Calibration(_))));
    let e = irt::calibrate_2pl(2, &[vec![(0, true)]], &o).expect_err("no answers");
    assert_eq!(e.to_string(), "calibration: item 1 has no answers");
    let bad = CalibrationOptions { a_min: -1.0, ..CalibrationOptions::default() };
    assert!(irt::calibrate_2pl(1, &[vec![(0, true)]], &bad).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn probability_and_information_are_well_formed(
        theta in -50.0f64..50.0,
        a in 0.01f64..6.0,
        b in -6.0f64..6.0,
        c in 0.0f64..0.5,
        span in 0.01f64..1.0,
    ) {
        let d = c + (1.0 - c) * span;
        let p = irt::probability(theta, a, b, c, d);
        prop_assert!(p >= c && p <= d, "p = {p}");
        if (a * (theta - b)).abs() < 30.0 {
            prop_assert!(p > 0.0 && p < 1.0, "p = {p}");
        }
        let info = irt::information(theta, a, b, c, d);
        prop_assert!(info.is_finite() && info >= 0.0, "info = {info}");
        let (lp, lq) = irt::log_probabilities(theta, a, b, c, d);
        prop_assert!(lp <= 0.0 && lq <= 0.0 && lp.is_finite() && lq.is_finite());
    }

    #[test]
    fn eap_se_is_positive_and_finite(
        items in proptest::collection::vec((0.2f64..3.0, -4.0f64..4.0, 0.0f64..0.35, any::<bool>()), 0..40),
    ) {
        let grid = EapGrid::default();
        let bank: Vec<Item> = items.iter().enumerate().map(|(i, &(a, b, c, _))| Item::three_pl(format!("i{i}"), a, b, c)).collect();
        let est: Estimate = irt::eap(&grid, bank.iter().zip(items.iter().map(|t| t.3))).expect("eap");
        prop_assert!(est.se.is_finite() && est.se > 0.0, "{est:?}");
        prop_assert!(est.theta.is_finite() && est.theta.abs() <= 6.0, "{est:?}");
    }
}
