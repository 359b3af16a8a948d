//! Native planning speed on real stream batches.
//!
//! ```text
//! cargo bench -p zae-planner --bench plan
//! ```
//! Reports time per batch; divide by the record count for time per record
//! (criterion's throughput line shows records per second).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zae_planner::vector::{default_root, load};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan-native");
    for name in ["real-batch-0023", "real-batch-1000"] {
        let v = load(&default_root().join(name)).expect("vector");
        let records = serde_json::from_str::<serde_json::Value>(&v.event_json).expect("event")["Records"]
            .as_array()
            .map_or(0, Vec::len);
        group.throughput(Throughput::Elements(records as u64));
        group.bench_function(format!("{name} ({records} records)"), |b| {
            b.iter(|| zae_planner::plan(&v.batch()).expect("plan"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
