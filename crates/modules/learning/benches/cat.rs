//! Next-item selection benchmarks (criterion): a seeded 10,000-item 2PL bank,
//! a session 10 items in, selection with and without content balancing and
//! exposure control; and the EAP update of one answer.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use plexus_learning::cat::{CatConfig, CatSession, ContentTarget, RandomSource, SplitMix64, next_item};
use plexus_learning::irt::{EapGrid, Item, ItemBank, Posterior};
use plexus_learning::sim::{self, BankSpec};

const AREAS: [&str; 5] = ["algebra", "geometry", "statistics", "number", "functions"];

fn bank(seed: u64) -> ItemBank {
    let spec =
        BankSpec { items: 10_000, seed, areas: AREAS.iter().map(|s| (*s).to_owned()).collect(), ..BankSpec::default() };
    sim::synthetic_bank(&spec).expect("bank")
}

/// A session with 10 simulated answers of a learner at θ = 0.7.
fn mid_test(bank: &ItemBank, config: CatConfig) -> CatSession {
    mid_test_at(bank, config, 0.7)
}

/// A session with 10 simulated answers of a learner at `theta`.
fn mid_test_at(bank: &ItemBank, config: CatConfig, theta: f64) -> CatSession {
    let mut session = CatSession::new(bank, config).expect("session");
    let mut rng = SplitMix64::new(5);
    for _ in 0..10 {
        let sel = next_item(bank, &session, &mut rng).expect("next");
        let correct = sim::simulate_answer(&mut rng, bank.item(sel.index).expect("item"), theta);
        session.answer(bank, sel.index, correct).expect("answer");
    }
    session
}

fn selection(c: &mut Criterion) {
    let plain = bank(2024);
    let targets = AREAS
        .iter()
        .zip([0.3, 0.25, 0.2, 0.15, 0.1])
        .map(|(a, p)| ContentTarget { area: (*a).to_owned(), proportion: p })
        .collect::<Vec<_>>();
    let no_stop = CatConfig { se_target: None, max_items: 60, ..CatConfig::default() };
    let cases = [
        ("max_info", CatConfig { ..no_stop.clone() }),
        ("content_balancing", CatConfig { content_targets: targets.clone(), ..no_stop.clone() }),
        ("randomesque_5", CatConfig { randomesque: 5, ..no_stop.clone() }),
        ("balancing_randomesque_5", CatConfig { randomesque: 5, content_targets: targets, ..no_stop.clone() }),
    ];
    let mut group = c.benchmark_group("next_item_10k");
    for (name, config) in cases {
        let session = mid_test(&plain, config);
        let mut rng = SplitMix64::new(1);
        group.bench_function(name, |b| b.iter(|| next_item(black_box(&plain), black_box(&session), &mut rng)));
    }
    // a learner far above the bank (θ = 3.5, b ~ N(0, 1.2)): the best items are
    // weak, so pruning by maximum information skips fewer items
    let session = mid_test_at(&plain, no_stop.clone(), 3.5);
    let mut rng = SplitMix64::new(1);
    group.bench_function("max_info_theta_3_5", |b| {
        b.iter(|| next_item(black_box(&plain), black_box(&session), &mut rng))
    });
    // Sympson–Hetter with K uniform on [0.25, 1]: a rejection in about 4 selections of 10
    let mut rng = SplitMix64::new(3);
    let k: Vec<f64> = (0..plain.len()).map(|_| 0.25 + 0.75 * rng.next_f64()).collect();
    let sh_bank = plain.with_exposure_parameters(&k).expect("K");
    let session = mid_test(&sh_bank, CatConfig { sympson_hetter: true, ..no_stop.clone() });
    group
        .bench_function("sympson_hetter", |b| b.iter(|| next_item(black_box(&sh_bank), black_box(&session), &mut rng)));
    group.finish();
}

fn eap_update(c: &mut Criterion) {
    let plain = bank(2024);
    let session = mid_test(&plain, CatConfig { se_target: None, max_items: 60, ..CatConfig::default() });
    let mut rng = SplitMix64::new(9);
    let next = next_item(&plain, &session, &mut rng).expect("next").index;
    let grid = EapGrid::default();
    let post = Posterior::new(&grid);
    let item2 = plain.item(next).expect("item").clone();
    let item3 = Item { c: 0.2, ..item2.clone() };
    c.bench_function("posterior_update_2pl", |b| {
        b.iter_batched(
            || post.clone(),
            |mut p| {
                p.observe(black_box(&grid), black_box(&item2), true);
                p.estimate(&grid)
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("posterior_update_3pl", |b| {
        b.iter_batched(
            || post.clone(),
            |mut p| {
                p.observe(black_box(&grid), black_box(&item3), false);
                p.estimate(&grid)
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("answer_eap_update", |b| {
        b.iter_batched(
            || session.clone(),
            |mut s| s.answer(black_box(&plain), black_box(next), true),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, selection, eap_update);
criterion_main!(benches);
