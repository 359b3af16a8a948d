//! Native planning speed on real stream batches, whole and stage by stage.
//!
//! ```text
//! cargo bench -p zae-planner --bench plan
//! ```
//!
//! Groups:
//! * `plan-native/...`: one whole `plan` call on the real 100- and
//!   1,000-record batches with their conformance vectors' configuration.
//!   Divide by the record count for time per record (criterion's throughput
//!   line shows records per second).
//! * `breakdown/{N}/{stage}`: the stages of one `plan` call for N = 100,
//!   1,000 and 10,000 records, each timed on inputs prepared outside the
//!   measurement, with `SNAPSHOT_WINDOWS=hourly,daily` and archival on (the
//!   side-by-side harness's configuration, `tests/bench/`). The 10,000-record
//!   batch is the real 1,000-record one repeated with fresh sequence numbers
//!   (as in `host/benches/plan_wasm.rs` and `tests/bench/side_by_side.py`).
//!   Stages:
//!   - `parse`: the event read record by record, each record's tree built
//!     and its envelope read (`event::read` with a sink that keeps nothing);
//!   - `deltas`: `parse` plus every MODIFY parsed as a bucket record (keys,
//!     limits, `tc` deltas from both images) and, for those with a delta, its
//!     window keys (records are parsed as they are read, so this stage
//!     includes `parse`: subtract it for the bucket work alone);
//!   - `coalesce`: snapshot planning: deltas folded per snapshot item, one
//!     UpdateItem each with its counters and watermark guards;
//!   - `refill`: bucket records folded per item + refill decisions and writes;
//!   - `shard`: doubling decisions and `shard_count` propagation;
//!   - `archive`: `parse` plus audit REMOVEs into NDJSON lines, objects per
//!     day, gzip (includes `parse`, like `deltas`);
//!   - `gzip`: the gzip of the same NDJSON body alone (part of `archive`);
//!   - `whole`: the whole `plan` call, for comparison with the sum;
//!   - `scan-floor`: not a planner stage: one validating pass over the event
//!     bytes that builds nothing ([`scan`]), the floor under any parser that
//!     reads the whole event byte by byte;
//!   - `serde-floor`: not a planner stage either: serde_json validating the
//!     event while keeping nothing (`IgnoredAny`), the floor under `parse`,
//!     which uses serde_json's lexer.
//! * `wide/{N}`: one whole `plan` call on a single bucket MODIFY record whose
//!   NewImage and OldImage each have N attributes (1,024, 4,096, 16,384; a
//!   400 KB item has about 16,384), a mix of `b_{limit}_{field}` numbers and
//!   other attributes ([`zae_planner::vector::wide_event`]): planning time
//!   must grow linearly with N (docs/benchmarks.md#wide-images).
//! * `wide-propagate/{N}x{S}`: the same record on shard 0 raising
//!   `shard_count` to S, so S - 1 shard items are cloned from its NewImage.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use zae_planner::bucket::{self, BucketRecord, Parsed};
use zae_planner::config::Config;
use zae_planner::event::{self, Record};
use zae_planner::plan::{Batch, Counters};
use zae_planner::vector::{default_root, load};
use zae_planner::window::Window;
use zae_planner::{archive, pyjson, refill, shard, snapshot};

/// A sink that parses MODIFY records as buckets and counts their window keys
/// (or, without windows, does nothing with the records).
struct Deltas<'w> {
    windows: Option<&'w [Window]>,
    keys: usize,
}

impl<'a> event::Sink<'a> for Deltas<'_> {
    fn record(&mut self, r: &Record<'_, 'a>) {
        let Some(windows) = self.windows else { return };
        if r.event_name != Some("MODIFY") {
            return;
        }
        if let Parsed::Bucket(b) = bucket::parse(r) {
            if snapshot::has_deltas(&b) {
                self.keys += snapshot::window_keys(&b, windows).expect("keys").len();
            }
        }
    }

    fn restart(&mut self) {
        self.keys = 0;
    }
}

fn records_in(event_json: &str) -> usize {
    serde_json::from_str::<Value>(event_json).expect("event")["Records"].as_array().map_or(0, Vec::len)
}

fn whole(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan-native");
    for name in ["real-batch-0023", "real-batch-1000"] {
        let v = load(&default_root().join(name)).expect("vector");
        let records = records_in(&v.event_json);
        group.throughput(Throughput::Elements(records as u64));
        group.bench_function(format!("{name} ({records} records)"), |b| {
            b.iter(|| zae_planner::plan(&v.batch()).expect("plan"))
        });
    }
    group.finish();
}

/// One pass over JSON text that checks its structure (brackets, strings with
/// escapes, numbers, literals) and allocates nothing; returns the number of
/// values seen. A lower bound for parsing the event, not a parser: it accepts
/// some invalid texts (e.g. numbers are only checked for their characters).
fn scan(b: &[u8]) -> Option<usize> {
    let (mut i, mut values, mut depth) = (0usize, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b' ' | b'\n' | b'\r' | b'\t' | b',' | b':' => i += 1,
            b'{' | b'[' => {
                depth += 1;
                values += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'"' => break,
                        b'\\' => i += 2,
                        c if c < 0x20 => return None,
                        _ => i += 1,
                    }
                }
                i += 1;
                values += 1;
            }
            b't' if b[i..].starts_with(b"true") => (i, values) = (i + 4, values + 1),
            b'f' if b[i..].starts_with(b"false") => (i, values) = (i + 5, values + 1),
            b'n' if b[i..].starts_with(b"null") => (i, values) = (i + 4, values + 1),
            b'-' | b'0'..=b'9' => {
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                values += 1;
            }
            _ => return None,
        }
    }
    (depth == 0).then_some(values)
}

fn breakdown(c: &mut Criterion) {
    let small = load(&default_root().join("real-batch-0023")).expect("vector");
    let large = load(&default_root().join("real-batch-1000")).expect("vector");
    let huge = zae_planner::vector::repeated_event(&large.event_json, 10_000);
    let config = Config {
        table_name: "zae-limiter".into(),
        windows: vec![Window::Hourly, Window::Daily],
        snapshot_ttl_days: 90,
        archive_bucket: Some("zae-limiter-audit-archive".into()),
        max_shard_count: 32,
        dead_letter_bucket: None,
        limiter: Some(zae_planner::config::Limiter::V013),
    };
    let now_ms = large.now_ms;
    let cases = [(100, small.event_json.as_str()), (1_000, large.event_json.as_str()), (10_000, huge.as_str())];

    for (n, event_json) in cases {
        assert_eq!(records_in(event_json), n);
        let mut group = c.benchmark_group(format!("breakdown/{n}"));
        group.sample_size(if n >= 10_000 { 20 } else { 50 });
        group.throughput(Throughput::Elements(n as u64));

        // Inputs of each stage, prepared once, outside the measurement.
        let parsed: Vec<Box<BucketRecord>> = bucket::bucket_records(event_json).expect("event");
        let buckets: Vec<&BucketRecord> = parsed.iter().map(|b| &**b).collect();
        let keys: Vec<Vec<String>> = buckets
            .iter()
            .map(|b| {
                if snapshot::has_deltas(b) {
                    snapshot::window_keys(b, &config.windows).expect("keys")
                } else {
                    vec![]
                }
            })
            .collect();
        let timed: Vec<snapshot::Timed> = buckets
            .iter()
            .zip(&keys)
            .filter(|(_, k)| !k.is_empty())
            .map(|(b, k)| snapshot::Timed { rec: b, keys: k })
            .collect();
        let params = snapshot::Params {
            table: &config.table_name,
            windows: &config.windows,
            now_ms,
            ttl_days: 90,
            overdraws: false,
        };
        let states = bucket::aggregate(&buckets);
        let events = archive::audit_events(event_json, now_ms, &mut Vec::new()).expect("event");
        let refs: Vec<&archive::AuditEvent> = events.iter().collect();
        let body = archive::ndjson_body(&refs);
        let bucket_name = config.archive_bucket.as_deref().expect("archival on");

        group.bench_function("parse", |b| {
            b.iter(|| event::read(event_json, &mut Deltas { windows: None, keys: 0 }).expect("event"))
        });
        group.bench_function("deltas", |b| {
            b.iter(|| {
                let mut sink = Deltas { windows: Some(&config.windows), keys: 0 };
                event::read(event_json, &mut sink).expect("event");
                sink.keys
            })
        });
        group.bench_function("coalesce", |b| {
            b.iter(|| {
                let (mut writes, mut logs, mut counters) = (Vec::new(), Vec::new(), Counters::default());
                snapshot::plan(
                    &timed,
                    &params,
                    &|_, _| Some(snapshot::Guard::Fresh),
                    &mut writes,
                    &mut logs,
                    &mut counters,
                    &mut Default::default(),
                );
                writes
            })
        });
        group.bench_function("refill", |b| {
            b.iter(|| {
                let states = bucket::aggregate(&buckets);
                let (mut writes, mut logs, mut counters) = (Vec::new(), Vec::new(), Counters::default());
                refill::plan(
                    &states,
                    &config.table_name,
                    now_ms,
                    &mut writes,
                    &mut logs,
                    &mut counters,
                    &mut Default::default(),
                );
                writes
            })
        });
        group.bench_function("shard", |b| {
            b.iter(|| {
                let (mut writes, mut logs, mut counters) = (Vec::new(), Vec::new(), Counters::default());
                shard::plan_bumps(&states, &config.table_name, 32, None, &mut writes, &mut logs, &mut counters);
                shard::plan_propagation(&buckets, &config.table_name, 32, &mut writes, &mut logs, &mut counters);
                writes
            })
        });
        group.bench_function("archive", |b| {
            b.iter(|| {
                let mut logs = Vec::new();
                let events = archive::audit_events(event_json, now_ms, &mut logs).expect("event");
                let (mut writes, mut counters) = (Vec::new(), Counters::default());
                archive::plan(&events, bucket_name, &mut writes, &mut logs, &mut counters);
                writes
            })
        });
        group.bench_function("gzip", |b| b.iter(|| pyjson::gzip(&body)));
        let batch = Batch { event_json, config: &config, now_ms, invocation_id: "bench" };
        group.bench_function("whole", |b| b.iter(|| zae_planner::plan(&batch).expect("plan")));
        assert!(scan(event_json.as_bytes()).is_some());
        group.bench_function("scan-floor", |b| b.iter(|| scan(std::hint::black_box(event_json.as_bytes()))));
        group.bench_function("serde-floor", |b| {
            b.iter(|| serde_json::from_str::<serde::de::IgnoredAny>(std::hint::black_box(event_json)).expect("json"))
        });
        group.finish();
    }
}

fn wide(c: &mut Criterion) {
    let config = |max_shard_count| Config {
        table_name: "zae-limiter".into(),
        windows: vec![Window::Hourly, Window::Daily],
        snapshot_ttl_days: 90,
        archive_bucket: None,
        max_shard_count,
        dead_letter_bucket: None,
        limiter: Some(zae_planner::config::Limiter::V013),
    };
    let now_ms = 1_704_067_260_000;
    let mut group = c.benchmark_group("wide");
    group.sample_size(10);
    for n in [1_024, 4_096, 16_384] {
        let event_json = zae_planner::vector::wide_event(n, 1);
        let cfg = config(32);
        let batch = Batch { event_json: &event_json, config: &cfg, now_ms, invocation_id: "bench" };
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}"), |b| b.iter(|| zae_planner::plan(&batch).expect("plan")));
    }
    group.finish();
    let mut group = c.benchmark_group("wide-propagate");
    group.sample_size(10);
    for (n, shards) in [(16_384, 32), (16_384, 1_024)] {
        let event_json = zae_planner::vector::wide_event(n, shards);
        let cfg = config(shards);
        let batch = Batch { event_json: &event_json, config: &cfg, now_ms, invocation_id: "bench" };
        group.bench_function(format!("{n}x{shards}"), |b| b.iter(|| zae_planner::plan(&batch).expect("plan")));
    }
    group.finish();
}

criterion_group!(benches, whole, breakdown, wide);
criterion_main!(benches);
