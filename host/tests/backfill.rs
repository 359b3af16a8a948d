//! `zae-aggregator backfill` against a real moto server (docs/reading.md#backfill).
//!
//! * `monthly_backfill_is_exact_twice_interrupted_and_beside_live_writes`: a table written
//!   from real zae-limiter client traffic over January to March 2024 with `hourly,daily`
//!   only. `backfill --window monthly` is killed mid-run, resumed while `invoke` delivers new
//!   batches for April with monthly switched on, and run a third time. Then every monthly item
//!   of January to March (namespace `default`) equals, counters, `total_events` and watermarks, the one a table
//!   that had `monthly` on from the start holds for the same traffic; `reconcile` finds no
//!   drift (each monthly item equals the sum of its daily items); March's records delivered
//!   again with monthly on change no monthly item (the copied watermarks); the third run
//!   writes nothing and changes no item.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::moto::Moto;
use common::poller::{command, scratch, usage_items, wait};
use common::reading::{
    aggregated_table_with, default_namespace, invoke_all, put_final_buckets, records_in, run, three_month_records,
    RECORDS,
};

/// 2024-04-01T00:00:00Z.
const APRIL_S: i64 = 1_711_929_600;

/// The monthly items of a table's `default` namespace (by key), without `ttl` (set from the clock).
async fn monthly(moto: &Moto, table: &str) -> BTreeMap<(String, String), Value> {
    let ns = format!("{}/", default_namespace(&three_month_records()));
    usage_items(moto, table)
        .await
        .into_iter()
        .filter(|i| i["SK"]["S"].as_str().is_some_and(|sk| sk.ends_with("#monthly")))
        .filter(|i| i["PK"]["S"].as_str().is_some_and(|pk| pk.starts_with(&ns)))
        .map(|mut i| {
            i.as_object_mut().unwrap().remove("ttl");
            ((i["PK"]["S"].as_str().unwrap().to_string(), i["SK"]["S"].as_str().unwrap().to_string()), i)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_backfill_is_exact_twice_interrupted_and_beside_live_writes() {
    let moto = Moto::start();
    let dir = scratch("backfill");
    let records = three_month_records();
    aggregated_table_with(&moto, "reference", &records, &dir, "hourly,daily,monthly").await;
    aggregated_table_with(&moto, "late", &records, &dir, "hourly,daily").await;
    let want = monthly(&moto, "reference").await;
    assert!(want.len() >= 6, "{} monthly items", want.len());
    assert!(monthly(&moto, "late").await.is_empty());

    let checkpoint = dir.join("checkpoint.json");
    let log = dir.join("backfill.log");
    let args = [
        "--window",
        "monthly",
        "--to",
        "2024-03",
        "--table",
        "late",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--max-wcu",
        "4",
    ];
    // Killed mid-run: some items written, not all.
    let mut child = command(&moto, "backfill", &args, &log, &[]);
    let started = Instant::now();
    while monthly(&moto, "late").await.len() < 2 && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().unwrap();
    let _ = child.wait();
    let partial = monthly(&moto, "late").await.len();
    assert!(partial >= 2 && partial < want.len(), "killed after {partial} of {} items", want.len());

    // Resumed while the aggregator, monthly now on, writes April's batches.
    let mut child = command(&moto, "backfill", &args, &log, &[]);
    let april = records_in(RECORDS, 300, &[APRIL_S]);
    invoke_all(&moto, "late", &april, &dir, "hourly,daily,monthly", "april");
    // The client's bucket items after April (reconcile checks the hourly sums against their tc).
    put_final_buckets(&moto, "late", &april).await;
    assert_eq!(wait(&mut child, Duration::from_secs(600), &log), 0, "{}", std::fs::read_to_string(&log).unwrap());

    let got = monthly(&moto, "late").await;
    let early: BTreeMap<_, _> =
        got.iter().filter(|((_, sk), _)| !sk.contains("#2024-04-")).map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(early.len(), want.len());
    for (key, item) in &want {
        assert_eq!(early.get(key), Some(item), "{key:?}");
    }
    assert!(got.len() > early.len(), "April's monthly items come from the live writes");
    let out = run(&moto, "late", "reconcile", &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    // The boundary is the watermarks: the aggregator, monthly on, redelivered records the
    // backfilled items already sum, counts none of them again.
    let redelivered = &records[records.len() * 2 / 3..];
    invoke_all(&moto, "late", redelivered, &dir, "hourly,daily,monthly", "again");
    assert_eq!(monthly(&moto, "late").await, got, "a redelivery changed a backfilled item");

    // A third run writes nothing.
    let mut child = command(&moto, "backfill", &args, &log, &[]);
    assert_eq!(wait(&mut child, Duration::from_secs(300), &log), 0);
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().rev().find(|l| l.starts_with("backfill monthly:")).unwrap_or_default().to_string();
    assert!(last.contains(": 0 written,") || last.contains("0/0 items"), "{last}");
    assert_eq!(monthly(&moto, "late").await, got);
    // Without the checkpoint, every item is found already there and left as it is.
    let fresh = dir.join("fresh.json");
    let out = run(
        &moto,
        "late",
        "backfill",
        &["--window", "monthly", "--to", "2024-03", "--checkpoint", fresh.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(&format!("{n}/{n} items: 0 written, {n} already there", n = want.len())), "{stdout}");
    assert_eq!(monthly(&moto, "late").await, got);
    let _ = std::fs::remove_dir_all(&dir);
}
