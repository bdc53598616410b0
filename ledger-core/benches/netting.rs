//! Netting 100 operators: every pair owes each other something (9,900
//! obligations), positions, bilateral netting and multilateral netting.
//! The baseline in the same run is summing the obligations once (the least
//! any netting must do).
//!
//! `cargo bench -p ledger-core --bench netting`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use ledger_core::settlement::Tadig;
use ledger_core::settlement::netting::{Obligation, bilateral, multilateral, net_positions};

fn obligations(n: usize) -> Vec<Obligation> {
    let parties: Vec<Tadig> = (0..n)
        .map(|i| format!("OPR{i:02}").parse().unwrap())
        .collect();
    let mut out = Vec::with_capacity(n * n);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for (i, debtor) in parties.iter().enumerate() {
        for (j, creditor) in parties.iter().enumerate() {
            if i != j {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                out.push(Obligation {
                    debtor: *debtor,
                    creditor: *creditor,
                    amount: u128::from(seed % 10_000_000),
                });
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let obligations = obligations(100);
    let positions = net_positions(&obligations).unwrap();
    let mut group = c.benchmark_group("netting-100-operators");
    group.bench_function("baseline: sum the obligations", |b| {
        b.iter(|| {
            std::hint::black_box(&obligations)
                .iter()
                .map(|o| o.amount)
                .sum::<u128>()
        })
    });
    group.bench_function("net positions", |b| {
        b.iter(|| net_positions(std::hint::black_box(&obligations)).unwrap())
    });
    group.bench_function("bilateral", |b| {
        b.iter(|| bilateral(std::hint::black_box(&obligations)).unwrap())
    });
    group.bench_function("multilateral (from positions)", |b| {
        b.iter(|| multilateral(std::hint::black_box(&positions)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
