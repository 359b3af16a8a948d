//! Planning speed through wasmtime next to the native planner, on the same
//! batches, and the cost of getting the component ready on a cold start.
//!
//! ```text
//! cargo bench -p zae-aggregator --bench plan_wasm
//! ```
//!
//! Groups:
//! * `plan/{native,wasm}/{N} records`: one whole `plan` call for an empty
//!   batch (what every call costs before its first record), a real
//!   100-record batch, the real 1,000-record batch, and a 10,000-record batch
//!   built from the real one (its records repeated with fresh sequence
//!   numbers), with the default limits. The wasm figure includes what every
//!   call pays: a fresh store and instance, copying the event in and the plan
//!   out. Divide by N for time per record (criterion's throughput line shows
//!   records per second).
//! * `ready/load-precompiled`: `Planner::load` (deserialize the embedded
//!   precompiled component, link WASI, pre-instantiate), what a Lambda cold
//!   start pays before its first plan.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use zae_aggregator::bindings as wit;
use zae_aggregator::{Limits, Planner};
use zae_planner::plan::Batch;

#[path = "../tests/common/contract.rs"]
mod contract;
use contract::wit_config;
use zae_planner::vector::{default_root, load, Vector};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // The default limits, as a Lambda runs: the 10,000-record batch (24.8 MB
    // of event JSON) needs ~35 MiB of guest memory, well under the cap.
    let planner = Planner::load(Limits::default()).expect("planner");
    let small = load(&default_root().join("real-batch-0023")).expect("vector");
    let large = load(&default_root().join("real-batch-1000")).expect("vector");
    let huge = zae_planner::vector::repeated_event(&large.event_json, 10_000);
    let cases: [(usize, &str, &Vector); 4] = [
        (0, r#"{"Records": []}"#, &small),
        (100, small.event_json.as_str(), &small),
        (1_000, large.event_json.as_str(), &large),
        (10_000, &huge, &large),
    ];

    let mut group = c.benchmark_group("plan");
    group.sample_size(20);
    for (n, event, v) in cases {
        let batch = Batch { event_json: event, config: &v.config, now_ms: v.now_ms, invocation_id: &v.invocation_id };
        let wit_config = wit_config(&v.config);
        let wit_batch =
            wit::Batch { event_json: event, config: &wit_config, now_ms: v.now_ms, invocation_id: &v.invocation_id };
        if n > 0 {
            group.throughput(Throughput::Elements(n as u64));
        }
        group.bench_function(format!("native/{n} records"), |b| b.iter(|| zae_planner::plan(&batch).expect("plan")));
        group.bench_function(format!("wasm/{n} records"), |b| {
            b.iter(|| rt.block_on(planner.plan(&wit_batch)).expect("no trap").expect("plan"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("ready");
    group.sample_size(20);
    group.bench_function("load-precompiled", |b| {
        b.iter_batched(|| (), |()| Planner::load(Limits::default()).expect("planner"), BatchSize::PerIteration)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
