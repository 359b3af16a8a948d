//! Randomized soak of the exactly-once property (docs/delivery-guarantees.md): seeded
//! delivery histories with mixed faults, each compared with the ground truth
//! computed from its stream.
//!
//! Every history derives from its seed: the stream (a generated one, a
//! slice of the real 0.13 vectors, or, in about one history in four, a slice
//! of the 0.17 oracle's zae-limiter 0.17.0 client traffic planned with the
//! 0.17 semantics, whose `{limit}#od` overdraw counters the ground truth
//! counts too), `SNAPSHOT_WINDOWS`, archival, how Lambda
//! delivers (lanes = ParallelizationFactor, batch sizes, bisection,
//! duplicate and concurrent deliveries, SIGKILLed `invoke` child processes,
//! abandoned invocations, SDK attempts, write concurrency) and the proxy's
//! faults (dropped responses, 500s, ProvisionedThroughputExceeded,
//! ThrottlingException, stalls past the client timeout).
//!
//! ```sh
//! export ZAE_MOTO_SERVER=/tmp/motoenv/bin/moto_server
//! cargo test -p zae-aggregator --test soak -- --nocapture                          # 100 histories (CI)
//! ZAE_SOAK_HISTORIES=1000 cargo test -p zae-aggregator --test soak -- --nocapture  # the full soak
//! ZAE_SOAK_SEED=4711 ZAE_SOAK_HISTORIES=1 cargo test -p zae-aggregator --test soak -- --nocapture  # one seed
//! ```
//!
//! `ZAE_SOAK_SEED` (default 1) is the first history's seed, the others
//! follow; `ZAE_SOAK_PARALLEL` (default 4) histories run at once over
//! `ZAE_SOAK_MOTOS` (default 2) moto servers. A failing history prints its
//! seed with a one-line reproduction command.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use common::delivery::{run_history, HistoryResult, HistorySpec, Stats};
use common::fault_proxy::Fault;
use common::moto::Moto;
use common::truth::Verdict;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        _ => default,
    }
}

fn reproduce(seed: u64) -> String {
    let moto = std::env::var("ZAE_MOTO_SERVER").unwrap_or_else(|_| "/path/to/moto_server".into());
    format!(
        "ZAE_MOTO_SERVER={moto} ZAE_SOAK_SEED={seed} ZAE_SOAK_HISTORIES=1 \
         cargo test -p zae-aggregator --test soak -- --nocapture"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak() {
    let histories = env_u64("ZAE_SOAK_HISTORIES", 100);
    let first_seed = env_u64("ZAE_SOAK_SEED", 1);
    let parallel = env_u64("ZAE_SOAK_PARALLEL", 4).max(1) as usize;
    let moto_count = env_u64("ZAE_SOAK_MOTOS", 2).clamp(1, 8) as usize;
    let started = Instant::now();
    let motos: Vec<Arc<Moto>> = (0..moto_count).map(|_| Arc::new(Moto::start())).collect();
    eprintln!(
        "soak: {histories} histories from seed {first_seed}, {parallel} at a time over {moto_count} moto server(s)"
    );

    let permits = Arc::new(Semaphore::new(parallel));
    let mut set = JoinSet::new();
    for i in 0..histories {
        let seed = first_seed + i;
        let moto = motos[(i as usize) % motos.len()].clone();
        let permits = permits.clone();
        set.spawn(async move {
            let _p = permits.acquire_owned().await.unwrap();
            let spec = HistorySpec::random(seed);
            run_history(&moto, &spec).await
        });
    }
    let mut results: Vec<HistoryResult> = Vec::new();
    while let Some(r) = set.join_next().await {
        let r = r.expect("a history panicked (see the panic message above for its seed)");
        if !r.verdict.holds() {
            eprintln!("FAILED seed {}: {}\n  reproduce: {}", r.seed, r.description, reproduce(r.seed));
            for p in r.verdict.problems.iter().take(8) {
                eprintln!("  problem: {p}");
            }
        }
        results.push(r);
        if results.len().is_multiple_of(10) || results.len() as u64 == histories {
            eprintln!(
                "soak: {}/{histories} histories done, {} failed, {:.0} s",
                results.len(),
                results.iter().filter(|r| !r.verdict.holds()).count(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    results.sort_by_key(|r| r.seed);

    let mut verdict = Verdict::default();
    let mut stats = Stats::default();
    let mut faults: BTreeMap<Fault, u64> = BTreeMap::new();
    let (mut records, mut items, mut audit, mut proxy_requests) = (0, 0, 0, 0);
    for r in &results {
        verdict.absorb(&r.verdict);
        stats.absorb(&r.stats);
        for (k, n) in &r.faults {
            *faults.entry(*k).or_default() += n;
        }
        records += r.sizes.0;
        items += r.sizes.1;
        audit += r.sizes.2;
        proxy_requests += r.proxy_requests;
    }
    let failed: Vec<&HistoryResult> = results.iter().filter(|r| !r.verdict.holds()).collect();
    let v017 = results.iter().filter(|r| r.description.contains("zae-limiter 0.17")).count();
    let slowest = results.iter().max_by_key(|r| r.elapsed).map(|r| (r.seed, r.elapsed.as_secs_f64()));

    let mut out = String::new();
    out.push_str(&format!(
        "SOAK SUMMARY: {} histories (seeds {first_seed}..={}), {:.0} s wall, slowest {:?}\n",
        results.len(),
        first_seed + histories.saturating_sub(1),
        started.elapsed().as_secs_f64(),
        slowest
    ));
    out.push_str(&format!(
        "  stream records {records}, snapshot items {items}, audit deletions {audit}; invocations {} \
         ({} child processes); requests through the proxy {proxy_requests}; histories of zae-limiter 0.17 \
         client traffic under the 0.17 semantics: {v017}\n",
        stats.invocations, stats.child_invocations
    ));
    out.push_str("  faults injected by kind:\n");
    for f in Fault::ALL {
        out.push_str(&format!("    {:<34} {}\n", f.name(), faults.get(&f).copied().unwrap_or(0)));
    }
    for (name, n) in [
        ("sigkill of an invoke child process", stats.kills),
        ("invocation abandoned mid-batch", stats.timeouts),
        ("duplicate delivery (stale, later)", stats.duplicates),
        ("duplicate delivery (concurrent)", stats.concurrent_duplicates),
        ("bisection after a function error", stats.bisections),
        ("whole-batch retry (no bisection)", stats.whole_retries),
        ("retry from a reported record", stats.partial_retries),
    ] {
        out.push_str(&format!("    {name:<34} {n}\n"));
    }
    out.push_str(&format!(
        "  also: {} function errors, {} crash points not reached (the invocation finished first), \
         {} re-plan rounds, {} re-planned writes\n",
        stats.function_errors,
        stats.kills_not_reached + stats.timeouts_not_reached,
        stats.replan_rounds,
        stats.replanned_writes
    ));
    out.push_str(&format!(
        "  double counts: {} counter cells ({} tokens), {} total_events\n",
        verdict.double_counted_cells, verdict.double_counted_tokens, verdict.events_double_counted
    ));
    out.push_str(&format!(
        "  lost deltas: {} counter cells ({} tokens), {} total_events, {} missing items\n",
        verdict.lost_cells, verdict.lost_tokens, verdict.events_lost, verdict.missing_items
    ));
    out.push_str(&format!(
        "  lost audit rows: {}; archive duplicates (identical lines, same event_id): {}; audit mismatches: {}\n",
        verdict.lost_audit_rows, verdict.audit_duplicates, verdict.audit_mismatches
    ));
    out.push_str(&format!(
        "  refills applied twice: {}; bucket item mismatches: {}; unexpected snapshot items: {}; \
         watermark mismatches: {}; reader mismatches (reader view, entity and GSI2 queries): {}\n",
        verdict.refills_applied_twice,
        verdict.bucket_mismatches,
        verdict.unexpected_items,
        verdict.watermark_mismatches,
        verdict.reader_mismatches
    ));
    let mut verdict017 = Verdict::default();
    for r in results.iter().filter(|r| r.description.contains("zae-limiter 0.17")) {
        verdict017.absorb(&r.verdict);
    }
    out.push_str(&format!(
        "  bucket writes replayed by the bucket check: {:?}; of which in 0.17 histories: {:?}\n",
        verdict.bucket_writes_replayed, verdict017.bucket_writes_replayed
    ));
    out.push_str(&format!("  failed histories: {}\n", failed.len()));
    for r in &failed {
        out.push_str(&format!("  FAILED seed {}: {}\n", r.seed, r.description));
        for p in r.verdict.problems.iter().take(8) {
            out.push_str(&format!("      {p}\n"));
        }
        out.push_str(&format!("    reproduce: {}\n", reproduce(r.seed)));
    }
    eprintln!("{out}");
    if let Ok(path) = std::env::var("ZAE_SOAK_REPORT") {
        std::fs::write(&path, &out).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }

    assert!(failed.is_empty(), "{} of {} histories broke the property (see above)", failed.len(), results.len());
    if histories >= 50 {
        for f in Fault::ALL {
            assert!(faults.get(&f).copied().unwrap_or(0) > 0, "no {} fault was injected", f.name());
        }
        assert!(stats.kills > 0 && stats.timeouts > 0 && stats.duplicates > 0 && stats.concurrent_duplicates > 0);
        assert!(stats.bisections > 0 && stats.partial_retries > 0 && stats.whole_retries > 0);
    }
}
