//! The executor against a real moto server: plans from the conformance
//! vectors (made by the wasm planner) are executed, and the resulting table
//! items and S3 objects are checked.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde_json::{json, Value};

use common::moto::{gunzip, Moto};
use common::{config, execute, vector_batch};
use zae_aggregator::bindings::{Batch, BatchPlan as Plan, LogLevel, Operation, Purpose};
use zae_aggregator::dynamo_json::item_to_json;
use zae_aggregator::executor::{Executor, ExecutorOptions, Report, WriteResult};
use zae_planner::vector::{default_root, load, Vector};

type Item = HashMap<String, AttributeValue>;

fn vector(name: &str) -> Vector {
    load(&default_root().join(name)).unwrap_or_else(|e| panic!("vector {name}: {e}"))
}

async fn plan_batch(batch: &Batch<'_>) -> Plan {
    common::plan(batch).await
}

/// Plan `batch`, execute the plan against `moto` and print the report.
async fn plan_and_execute(moto: &Moto, batch: &Batch<'_>, options: ExecutorOptions, label: &str) -> (Plan, Report) {
    let plan = plan_batch(batch).await;
    let report = execute(&executor(moto, options), batch, &plan).await;
    summary(label, &report);
    (plan, report)
}

fn executor(moto: &Moto, options: ExecutorOptions) -> Executor {
    Executor::new(moto.ddb_client(), moto.s3_client(), options)
}

/// Put the latest `NewImage` of every MODIFY record (the bucket items the
/// event's records describe) into `table`.
async fn seed_buckets(moto: &Moto, table: &str, event_json: &str) {
    let event: Value = serde_json::from_str(event_json).unwrap();
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    for record in event["Records"].as_array().unwrap() {
        if record["eventName"] != "MODIFY" {
            continue;
        }
        let image = &record["dynamodb"]["NewImage"];
        if image.is_object() {
            let key = format!("{}\u{0}{}", image["PK"]["S"], image["SK"]["S"]);
            latest.insert(key, image.to_string());
        }
    }
    for image in latest.values() {
        moto.put_item(table, image).await;
    }
}

/// The item with this key, if the scan has it.
fn find<'a>(items: &'a [Item], pk: &str, sk: &str) -> Option<&'a Item> {
    let is = |item: &Item, name: &str, want: &str| {
        item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str) == Some(want)
    };
    items.iter().find(|item| is(item, "PK", pk) && is(item, "SK", sk))
}

fn get<'a>(items: &'a [Item], pk: &str, sk: &str) -> &'a Item {
    find(items, pk, sk).unwrap_or_else(|| panic!("no item {pk} / {sk} in {}", render(items).join("\n")))
}

fn s<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).unwrap_or_else(|| panic!("{name} is not an S in {}", item_to_json(item)))
}

fn n(item: &Item, name: &str) -> i128 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not an integer N in {}", item_to_json(item)))
}

/// Items as sorted DynamoDB JSON lines (comparable scans).
fn render(items: &[Item]) -> Vec<String> {
    let mut lines: Vec<String> = items.iter().map(item_to_json).collect();
    lines.sort();
    lines
}

/// Snapshot items only (sort key `#USAGE#...`), rendered.
fn usage_items(items: &[Item]) -> Vec<String> {
    let usage: Vec<Item> = items
        .iter()
        .filter(|i| i.get("SK").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk.starts_with("#USAGE#")))
        .cloned()
        .collect();
    render(&usage)
}

fn results_by_purpose(plan: &Plan, report: &Report) -> Vec<(Purpose, WriteResult)> {
    plan.writes.iter().map(|w| w.purpose).zip(report.writes.iter().cloned()).collect()
}

fn summary(name: &str, report: &Report) {
    eprintln!(
        "{name}: requests={} replan_rounds={} replanned_writes={} ignored={} snapshots={} refills={} bumps={} \
         propagations={} objects={} events={} failed_records={:?} errors={:?}",
        report.requests,
        report.replan_rounds,
        report.replanned_writes,
        report.conditions_ignored,
        report.snapshots_applied,
        report.refills_applied,
        report.shard_bumps_applied,
        report.shard_propagations_applied,
        report.archive_objects_written,
        report.archived_events,
        report.failed_records,
        report.errors
    );
}

const GOLDEN_BUCKET: &str = "ns/BUCKET#u1#gpt-4#0";
const GOLDEN_ENTITY: &str = "ns/ENTITY#u1";
const GOLDEN_HOURLY: &str = "#USAGE#gpt-4#2023-12-31T23:00:00Z";
const GOLDEN_DAILY: &str = "#USAGE#gpt-4#2023-12-31T00:00:00Z#daily";
const GOLDEN_WATERMARK: &str = "0000000000000000000010000000000000000100";

#[tokio::test]
async fn golden_plan_applies_snapshots_refill_and_shard_bump() {
    let moto = Moto::start();
    let v = vector("golden-1-spec13");
    moto.create_table(&v.config.table_name).await;
    seed_buckets(&moto, &v.config.table_name, &v.event_json).await;
    let owned = vector_batch(&v);
    let batch = owned.batch();
    let (plan, report) = plan_and_execute(&moto, &batch, ExecutorOptions::default(), "golden").await;

    assert_eq!(
        results_by_purpose(&plan, &report),
        vec![
            (Purpose::Snapshot, WriteResult::Applied),
            (Purpose::Snapshot, WriteResult::Applied),
            (Purpose::Refill, WriteResult::Applied),
            (Purpose::ShardBump, WriteResult::Applied),
        ]
    );
    assert_eq!(report.requests, 4);
    assert_eq!((report.snapshots_applied, report.refills_applied, report.shard_bumps_applied), (2, 1, 1));
    assert_eq!((report.replan_rounds, report.replanned_writes, report.conditions_ignored), (0, 0, 0));
    assert!(report.failed_records.is_empty() && report.errors.is_empty(), "{report:?}");
    assert!(report.is_success());

    let items = moto.scan(&v.config.table_name).await;
    assert_eq!(items.len(), 3, "{:#?}", render(&items));
    for (sk, window, start) in
        [(GOLDEN_HOURLY, "hourly", "2023-12-31T23:00:00Z"), (GOLDEN_DAILY, "daily", "2023-12-31T00:00:00Z")]
    {
        let snap = get(&items, GOLDEN_ENTITY, sk);
        assert_eq!(n(snap, "tpm"), 20_000, "{sk}");
        assert_eq!(n(snap, "total_events"), 1, "{sk}");
        assert_eq!(s(snap, "wm#0"), GOLDEN_WATERMARK);
        assert_eq!(s(snap, "window"), window);
        assert_eq!(s(snap, "window_start"), start);
        assert_eq!(s(snap, "entity_id"), "u1");
        assert_eq!(s(snap, "resource"), "gpt-4");
        assert_eq!(s(snap, "GSI2PK"), "ns/RESOURCE#gpt-4");
        assert_eq!(s(snap, "GSI4PK"), "ns");
        assert_eq!(n(snap, "ttl"), 1_711_843_200);
        assert!(!snap.contains_key("b_wcu_tc") && !snap.contains_key("wcu"), "wcu is never a snapshot counter");
    }
    // The refill lock won: rf moved to now, every limit got its refill (W10).
    let bucket = get(&items, GOLDEN_BUCKET, "#STATE");
    assert_eq!(n(bucket, "rf"), 1_704_067_200_000);
    assert_eq!(n(bucket, "b_tpm_tk"), 5_000_000 + 8_333_333);
    assert_eq!(n(bucket, "b_wcu_tk"), 150_000 + 850_000);
    assert_eq!(n(bucket, "shard_count"), 2);
}

#[tokio::test]
async fn a_lost_refill_lock_is_ignored_and_changes_nothing() {
    let moto = Moto::start();
    let v = vector("golden-1-spec13");
    let table = &v.config.table_name;
    moto.create_table(table).await;
    // Someone else refilled meanwhile: the stored rf is not the planned :rf_old.
    let event: Value = serde_json::from_str(&v.event_json).unwrap();
    let mut image = event["Records"][0]["dynamodb"]["NewImage"].clone();
    image["rf"] = json!({"N": "1704067199000"});
    moto.put_item(table, &image.to_string()).await;
    let before = get(&moto.scan(table).await, GOLDEN_BUCKET, "#STATE").clone();

    let owned = vector_batch(&v);
    let batch = owned.batch();
    let (plan, report) = plan_and_execute(&moto, &batch, ExecutorOptions::default(), "refill lost").await;

    assert_eq!(
        results_by_purpose(&plan, &report),
        vec![
            (Purpose::Snapshot, WriteResult::Applied),
            (Purpose::Snapshot, WriteResult::Applied),
            (Purpose::Refill, WriteResult::ConditionIgnored),
            (Purpose::ShardBump, WriteResult::Applied),
        ]
    );
    assert_eq!((report.conditions_ignored, report.refills_applied, report.requests), (1, 0, 4));
    assert!(report.failed_records.is_empty() && report.errors.is_empty(), "{report:?}");

    let after = get(&moto.scan(table).await, GOLDEN_BUCKET, "#STATE").clone();
    for name in ["rf", "b_tpm_tk", "b_wcu_tk", "b_tpm_tc", "b_wcu_tc"] {
        assert_eq!(after.get(name), before.get(name), "{name} changed although the refill lost its lock");
    }
    assert_eq!(n(&after, "shard_count"), 2, "the shard bump is independent of the refill");
}

#[tokio::test]
async fn executing_the_same_plan_twice_applies_it_once() {
    let moto = Moto::start();
    let v = vector("golden-1-spec13");
    let table = &v.config.table_name;
    moto.create_table(table).await;
    seed_buckets(&moto, table, &v.event_json).await;
    let owned = vector_batch(&v);
    let batch = owned.batch();
    let plan = plan_batch(&batch).await;
    let exec = executor(&moto, ExecutorOptions::default());

    let first = execute(&exec, &batch, &plan).await;
    assert!(first.is_success(), "{first:?}");
    let after_first = moto.scan(table).await;

    // A Lambda retry of the same batch: every snapshot write meets its own
    // watermark, the re-plan finds nothing left; refill and bump lost their locks.
    let second = execute(&exec, &batch, &plan).await;
    summary("same plan twice", &second);
    assert_eq!(
        results_by_purpose(&plan, &second),
        vec![
            (Purpose::Snapshot, WriteResult::Resolved),
            (Purpose::Snapshot, WriteResult::Resolved),
            (Purpose::Refill, WriteResult::ConditionIgnored),
            (Purpose::ShardBump, WriteResult::ConditionIgnored),
        ]
    );
    assert_eq!((second.replan_rounds, second.replanned_writes, second.requests), (1, 0, 4));
    assert_eq!((second.snapshots_applied, second.conditions_ignored), (0, 2));
    assert!(second.failed_records.is_empty() && second.errors.is_empty(), "{second:?}");
    assert_eq!(render(&moto.scan(table).await), render(&after_first), "the second execution changed the table");
}

/// `n` MODIFY records of one bucket item (same PK, increasing sequence
/// numbers, all in one hour); record `i` consumes `1500 * (i + 1)` tpm
/// millitokens and 1000 rpm millitokens.
fn one_bucket_event(n: usize) -> Value {
    let base_ms: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let pk = "ns1/BUCKET#user-7#gpt-4#0";
    let mut tpm: i64 = 0;
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let old_tpm = tpm;
            tpm += 1500 * (i as i64 + 1);
            let rf = base_ms + i as i64 * 1000;
            json!({
                "eventID": format!("ev-{i}"),
                "eventName": "MODIFY",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": rf / 1000,
                    "SequenceNumber": format!("{}", 300_000_000_000_000_000_000u128 + i as u128 * 100),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                    "Keys": {"PK": {"S": pk}, "SK": {"S": "#STATE"}},
                    "NewImage": {
                        "PK": {"S": pk}, "SK": {"S": "#STATE"},
                        "entity_id": {"S": "user-7"},
                        "rf": {"N": rf.to_string()},
                        "shard_count": {"N": "1"},
                        "b_tpm_tc": {"N": tpm.to_string()}, "b_tpm_tk": {"N": "90000000"},
                        "b_tpm_cp": {"N": "100000000"}, "b_tpm_ra": {"N": "100000000"}, "b_tpm_rp": {"N": "60000"},
                        "b_rpm_tc": {"N": ((i + 1) * 1000).to_string()}, "b_rpm_tk": {"N": "90000"},
                        "b_rpm_cp": {"N": "100000"}, "b_rpm_ra": {"N": "100000"}, "b_rpm_rp": {"N": "60000"}
                    },
                    "OldImage": {
                        "PK": {"S": pk}, "SK": {"S": "#STATE"},
                        "shard_count": {"N": "1"},
                        "b_tpm_tc": {"N": old_tpm.to_string()},
                        "b_rpm_tc": {"N": (i * 1000).to_string()}
                    }
                }
            })
        })
        .collect();
    json!({ "Records": records })
}

fn sub_event(event: &Value, range: std::ops::Range<usize>) -> String {
    json!({ "Records": event["Records"].as_array().unwrap()[range].to_vec() }).to_string()
}

#[tokio::test]
async fn an_overlapping_second_batch_counts_only_its_new_records() {
    let moto = Moto::start();
    let event = one_bucket_event(6);
    let now_ms = 1_767_229_200_000;
    let (whole_cfg, split_cfg) = (config("whole"), config("split"));
    moto.create_table("whole").await;
    moto.create_table("split").await;
    let exec = executor(&moto, ExecutorOptions { concurrency: 1, ..ExecutorOptions::default() });

    // Ground truth: all six records once.
    let all = event.to_string();
    let whole = Batch { event_json: &all, config: &whole_cfg, now_ms, invocation_id: "whole" };
    let whole_plan = plan_batch(&whole).await;
    let report = execute(&exec, &whole, &whole_plan).await;
    summary("whole", &report);
    assert!(report.is_success(), "{report:?}");

    // Records 0..4, then a retry-like batch of records 2..6.
    let (a, b) = (sub_event(&event, 0..4), sub_event(&event, 2..6));
    let first = Batch { event_json: &a, config: &split_cfg, now_ms, invocation_id: "a" };
    let first_plan = plan_batch(&first).await;
    let report = execute(&exec, &first, &first_plan).await;
    summary("split a", &report);
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.snapshots_applied, 2);

    let second = Batch { event_json: &b, config: &split_cfg, now_ms, invocation_id: "b" };
    let second_plan = plan_batch(&second).await;
    let report = execute(&exec, &second, &second_plan).await;
    summary("split b", &report);
    let snapshot_results: Vec<WriteResult> = results_by_purpose(&second_plan, &report)
        .into_iter()
        .filter(|(p, _)| *p == Purpose::Snapshot)
        .map(|(_, r)| r)
        .collect();
    assert_eq!(snapshot_results, vec![WriteResult::Resolved, WriteResult::Resolved]);
    assert_eq!((report.replan_rounds, report.replanned_writes, report.snapshots_applied), (1, 2, 2));
    assert_eq!(report.requests as usize, second_plan.writes.len() + 2);
    assert!(report.failed_records.is_empty() && report.errors.is_empty(), "{report:?}");

    let whole_items = moto.scan("whole").await;
    let split_items = moto.scan("split").await;
    let (whole_usage, split_usage) = (usage_items(&whole_items), usage_items(&split_items));
    assert_eq!(whole_usage.len(), 2);
    assert_eq!(split_usage, whole_usage, "the overlapping batches counted some record twice or not at all");
    // floor(1.5 * k) for k = 1..=6 tokens of tpm, one rpm token and two
    // changed limits per record.
    let hourly = get(&split_items, "ns1/ENTITY#user-7", "#USAGE#gpt-4#2026-01-01T00:00:00Z");
    assert_eq!(n(hourly, "tpm"), 1 + 3 + 4 + 6 + 7 + 9);
    assert_eq!(n(hourly, "rpm"), 6);
    assert_eq!(n(hourly, "total_events"), 12);
    assert_eq!(s(hourly, "wm#0"), "0000000000000000000300000000000000000500");
}

#[tokio::test]
async fn archive_objects_are_written_and_gunzip_to_the_expected_ndjson() {
    let moto = Moto::start();
    let v = vector("archive-multi-day-w13");
    let bucket = v.config.archive_bucket.clone().expect("the vector archives");
    moto.create_table(&v.config.table_name).await;
    moto.create_bucket(&bucket).await;
    let owned = vector_batch(&v);
    let batch = owned.batch();
    let (_, report) = plan_and_execute(&moto, &batch, ExecutorOptions::default(), "archive").await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!((report.archive_objects_written, report.archived_events), (2, 3));

    // What the vector expects each object to hold.
    let expected: Value = serde_json::from_str(v.expected.as_deref().unwrap()).unwrap();
    let mut expected_bodies = BTreeMap::new();
    for w in expected["writes"].as_array().unwrap() {
        let op = &w["operation"];
        let body = base64::engine::general_purpose::STANDARD.decode(op["body_base64"].as_str().unwrap()).unwrap();
        expected_bodies.insert(op["key"].as_str().unwrap().to_string(), (body, w["records"].as_array().unwrap().len()));
    }
    assert_eq!(moto.list_objects(&bucket).await, expected_bodies.keys().cloned().collect::<Vec<_>>());
    let mut event_ids = Vec::new();
    for (key, (body, records)) in &expected_bodies {
        let stored = moto.get_object(&bucket, key).await;
        assert_eq!(&stored, body, "{key}: stored bytes differ from the planned gzip body");
        let ndjson = String::from_utf8(gunzip(&stored)).unwrap();
        assert_eq!(ndjson, String::from_utf8(gunzip(body)).unwrap());
        assert!(ndjson.ends_with('\n'));
        let lines: Vec<&str> = ndjson.lines().collect();
        assert_eq!(lines.len(), *records, "{key}");
        for line in lines {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}: {line}"));
            event_ids.push(v["event_id"].as_str().unwrap().to_string());
        }
        let head = moto.s3_client().head_object().bucket(&bucket).key(key).send().await.unwrap();
        assert_eq!(head.content_type(), Some("application/x-ndjson"));
        assert_eq!(head.content_encoding(), Some("gzip"));
    }
    assert_eq!(event_ids.len(), 3);
    assert!(event_ids.contains(&"01HQB2".to_string()) && event_ids.contains(&"01HQB3".to_string()), "{event_ids:?}");
}

#[tokio::test]
async fn a_write_to_a_missing_table_fails_only_its_records() {
    let moto = Moto::start();
    moto.create_table("rate-limits").await;
    let cfg = config("rate-limits");
    let event = common::bucket_event(3);
    let batch = Batch { event_json: &event, config: &cfg, now_ms: 1_767_229_200_000, invocation_id: "missing" };
    let mut plan = plan_batch(&batch).await;
    let mut broken = Vec::new();
    for (i, w) in plan.writes.iter_mut().enumerate() {
        if w.records == [1] {
            if let Operation::UpdateItem(u) = &mut w.operation {
                u.table_name = "no-such-table".into();
                w.target = w.target.replacen("rate-limits", "no-such-table", 1);
                broken.push(i);
            }
        }
    }
    assert!(broken.len() >= 2, "record 1 should have its own snapshot writes");
    let report = execute(&executor(&moto, ExecutorOptions::default()), &batch, &plan).await;
    summary("missing table", &report);

    assert_eq!(report.failed_records, BTreeSet::from([1]));
    assert_eq!(report.errors.len(), broken.len(), "{:?}", report.errors);
    for (i, result) in report.writes.iter().enumerate() {
        if broken.contains(&i) {
            match result {
                WriteResult::Failed(m) => assert!(m.contains("ResourceNotFoundException"), "{m}"),
                other => panic!("write {i}: {other:?}"),
            }
        } else {
            assert!(matches!(result, WriteResult::Applied | WriteResult::ConditionIgnored), "write {i}: {result:?}");
        }
    }
    assert!(report.errors.iter().all(|e| e.contains("no-such-table {PK=ns1/ENTITY#user-1")), "{:?}", report.errors);
    assert_eq!(report.requests as usize, plan.writes.len());

    let items = moto.scan("rate-limits").await;
    let sk = "#USAGE#gpt-4#2026-01-01T00:00:00Z";
    assert!(find(&items, "ns1/ENTITY#user-0", sk).is_some());
    assert!(find(&items, "ns1/ENTITY#user-2", sk).is_some());
    assert!(find(&items, "ns1/ENTITY#user-1", sk).is_none());
}

#[tokio::test]
async fn a_missing_bucket_fails_the_archived_records() {
    let moto = Moto::start();
    let v = vector("archive-basic");
    let owned = vector_batch(&v);
    let batch = owned.batch();
    let (_, report) = plan_and_execute(&moto, &batch, ExecutorOptions::default(), "missing bucket").await;
    assert_eq!(report.writes.len(), 1);
    match &report.writes[0] {
        WriteResult::Failed(m) => assert!(m.contains("NoSuchBucket"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(report.failed_records, BTreeSet::from([0]));
    assert_eq!((report.archive_objects_written, report.archived_events), (0, 0));
    assert!(
        report.errors[0].starts_with("archive s3://audit-archive/audit/year=2024/month=01/day=15/"),
        "{:?}",
        report.errors
    );
}

#[tokio::test]
async fn a_malformed_watermark_fails_the_records_of_its_item() {
    let moto = Moto::start();
    let v = vector("golden-1-spec13");
    let table = &v.config.table_name;
    moto.create_table(table).await;
    seed_buckets(&moto, table, &v.event_json).await;
    let junk =
        json!({"PK": {"S": GOLDEN_ENTITY}, "SK": {"S": GOLDEN_HOURLY}, "tpm": {"N": "5"}, "wm#0": {"S": "junk"}});
    moto.put_item(table, &junk.to_string()).await;

    let owned = vector_batch(&v);
    let batch = owned.batch();
    let (_, report) = plan_and_execute(&moto, &batch, ExecutorOptions::default(), "malformed watermark").await;
    match &report.writes[0] {
        WriteResult::Failed(m) => assert!(m.contains("watermark wm#0 holds"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(report.writes[1], WriteResult::Applied);
    assert_eq!(report.failed_records, BTreeSet::from([0]));
    assert_eq!((report.replan_rounds, report.replanned_writes), (1, 0));
    assert_eq!(report.errors.len(), 1);
    assert!(report.replan_logs.iter().any(|l| l.level == LogLevel::Error), "{:?}", report.replan_logs);
    let items = moto.scan(table).await;
    assert_eq!(n(get(&items, GOLDEN_ENTITY, GOLDEN_HOURLY), "tpm"), 5, "the malformed item was written");
    assert_eq!(n(get(&items, GOLDEN_ENTITY, GOLDEN_DAILY), "tpm"), 20_000);
}

#[tokio::test]
async fn conflicts_left_after_the_round_budget_fail() {
    let moto = Moto::start();
    let v = vector("golden-1-spec13");
    let table = &v.config.table_name;
    moto.create_table(table).await;
    seed_buckets(&moto, table, &v.event_json).await;
    let owned = vector_batch(&v);
    let batch = owned.batch();
    let plan = plan_batch(&batch).await;
    let exec = executor(&moto, ExecutorOptions { max_replan_rounds: 0, ..ExecutorOptions::default() });
    assert!(execute(&exec, &batch, &plan).await.is_success());
    let report = execute(&exec, &batch, &plan).await;
    summary("no rounds", &report);
    let failed = WriteResult::Failed("watermark conflict unresolved after 0 rounds".into());
    assert_eq!(report.writes[..2], [failed.clone(), failed]);
    assert_eq!(report.replan_rounds, 0);
    assert_eq!(report.failed_records, BTreeSet::from([0]));
    assert_eq!(report.errors.len(), 2);
}

#[tokio::test]
async fn shard_propagation_updates_existing_shards_and_creates_new_ones() {
    let moto = Moto::start();
    let v = vector("propagate-2-to-4");
    let table = &v.config.table_name;
    moto.create_table(table).await;
    seed_buckets(&moto, table, &v.event_json).await;
    // Shard 1 exists with the old count; shards 2 and 3 do not exist yet.
    let event: Value = serde_json::from_str(&v.event_json).unwrap();
    let mut shard1 = event["Records"][0]["dynamodb"]["NewImage"].clone();
    shard1["PK"] = json!({"S": "ns/BUCKET#u1#gpt-4#1"});
    shard1["shard_count"] = json!({"N": "2"});
    moto.put_item(table, &shard1.to_string()).await;

    let owned = vector_batch(&v);
    let batch = owned.batch();
    let plan = plan_batch(&batch).await;
    let exec = executor(&moto, ExecutorOptions::default());
    let report = execute(&exec, &batch, &plan).await;
    summary("propagate", &report);
    assert!(report.writes.iter().all(|w| *w == WriteResult::Applied), "{report:?}");
    assert_eq!((report.shard_propagations_applied, report.snapshots_applied, report.requests), (3, 2, 5));
    let items = moto.scan(table).await;
    for shard in 0..4 {
        let item = get(&items, &format!("ns/BUCKET#u1#gpt-4#{shard}"), "#STATE");
        assert_eq!(n(item, "shard_count"), 4, "shard {shard}");
    }

    // Again: the update's `#sc < :new` and the puts' `attribute_not_exists`
    // fail, as expected.
    let again = execute(&exec, &batch, &plan).await;
    summary("propagate again", &again);
    let propagations: Vec<WriteResult> = results_by_purpose(&plan, &again)
        .into_iter()
        .filter(|(p, _)| *p == Purpose::ShardPropagate)
        .map(|(_, r)| r)
        .collect();
    assert_eq!(propagations, vec![WriteResult::ConditionIgnored; 3]);
    assert_eq!((again.conditions_ignored, again.shard_propagations_applied), (3, 0));
    assert_eq!(render(&moto.scan(table).await), render(&items));
}

#[tokio::test]
async fn a_real_batch_runs_concurrently_and_its_redelivery_changes_nothing() {
    let moto = Moto::start();
    let v = vector("real-batch-0023");
    let table = &v.config.table_name;
    moto.create_table(table).await;
    seed_buckets(&moto, table, &v.event_json).await;
    let owned = vector_batch(&v);
    let batch = owned.batch();
    let plan = plan_batch(&batch).await;
    let writes = plan.writes.len();
    assert_eq!(writes, 30);
    let exec = executor(&moto, ExecutorOptions { concurrency: 4, ..ExecutorOptions::default() });

    let first = execute(&exec, &batch, &plan).await;
    summary("real batch", &first);
    assert!(first.writes.iter().all(|w| *w == WriteResult::Applied), "{first:?}");
    assert_eq!((first.requests as usize, first.snapshots_applied as usize), (writes, writes));
    let items = moto.scan(table).await;
    // Each delta lands in exactly one item per window.
    for window in ["hourly", "daily"] {
        let events: i128 = items
            .iter()
            .filter(|i| i.get("window").and_then(|w| w.as_s().ok()).is_some_and(|w| w == window))
            .map(|i| n(i, "total_events"))
            .sum();
        assert_eq!(events, i128::from(plan.counters.deltas), "{window}");
    }

    let again = execute(&exec, &batch, &plan).await;
    summary("real batch again", &again);
    assert!(again.writes.iter().all(|w| *w == WriteResult::Resolved), "{again:?}");
    assert_eq!((again.requests as usize, again.replan_rounds, again.replanned_writes), (writes, 1, 0));
    assert_eq!(render(&moto.scan(table).await), render(&items));
}

/// The lines of every dead-letter object in `bucket`, in key order.
async fn dead_letter_lines(moto: &Moto, bucket: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    for key in moto.list_objects(bucket).await {
        assert!(key.starts_with("dead-letter/year="), "{key}");
        let text = String::from_utf8(gunzip(&moto.get_object(bucket, &key).await)).unwrap();
        lines.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
    }
    lines
}

/// moto seeded for the golden vector, a `dead-letters` bucket, and the
/// vector's batch configured to store dead letters there.
async fn golden_with_dead_letter() -> (Moto, Vector, common::OwnedBatch) {
    let moto = Moto::start();
    let v = vector("golden-1-spec13");
    moto.create_table(&v.config.table_name).await;
    moto.create_bucket("dead-letters").await;
    seed_buckets(&moto, &v.config.table_name, &v.event_json).await;
    let mut owned = vector_batch(&v);
    owned.config.dead_letter_bucket = Some("dead-letters".into());
    (moto, v, owned)
}

/// moto with the `rate-limits` table and a `dead-letters` bucket, and a
/// configuration that stores dead letters there.
async fn dead_letter_setup() -> (Moto, zae_aggregator::bindings::Config) {
    let moto = Moto::start();
    moto.create_table("rate-limits").await;
    moto.create_bucket("dead-letters").await;
    let cfg =
        zae_aggregator::bindings::Config { dead_letter_bucket: Some("dead-letters".into()), ..config("rate-limits") };
    (moto, cfg)
}

#[tokio::test]
async fn a_write_refused_for_good_goes_to_the_dead_letter_and_its_records_are_handled() {
    let (moto, cfg) = dead_letter_setup().await;
    let event = common::bucket_event(3);
    let batch = Batch { event_json: &event, config: &cfg, now_ms: 1_767_229_200_000, invocation_id: "poison" };
    let mut plan = plan_batch(&batch).await;
    // Record 1's snapshot writes give the string key a number: DynamoDB
    // refuses them with a ValidationException, however often they are sent.
    let mut poisoned = Vec::new();
    for w in plan.writes.iter_mut() {
        if w.records == [1] {
            if let Operation::UpdateItem(u) = &mut w.operation {
                u.key[0].value = r#"{"N":"1"}"#.into();
                poisoned.push(w.id as usize);
            }
        }
    }
    assert_eq!(poisoned.len(), 2, "one per window");
    let report = execute(&executor(&moto, ExecutorOptions::default()), &batch, &plan).await;
    summary("refused for good", &report);

    assert!(report.failed_records.is_empty(), "the shard moves on: {report:?}");
    assert_eq!(report.dead_lettered_records, BTreeSet::from([1]));
    assert_eq!(report.dead_letter_records, 1);
    assert!(report.deployment_errors.is_empty());
    for &i in &poisoned {
        assert!(
            matches!(&report.writes[i], WriteResult::DeadLettered(m) if m.contains("ValidationException")),
            "{:?}",
            report.writes[i]
        );
    }
    assert!(report.is_success());
    assert!(
        report.write_logs.iter().any(|l| l.message == "Records sent to the dead letter"),
        "{:?}",
        report.write_logs
    );

    let lines = dead_letter_lines(&moto, "dead-letters").await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    let record: Value = serde_json::from_str::<Value>(&event).unwrap()["Records"][1].clone();
    assert_eq!(line["record_index"], 1);
    assert_eq!(line["sequence_number"], record["dynamodb"]["SequenceNumber"]);
    assert_eq!(line["record"], record, "the whole stream record is kept");
    assert!(line["reason"].as_str().unwrap().contains("ValidationException"), "{line}");
    assert_eq!(line["request"]["type"], "update-item");
    assert_eq!(line["request"]["key"]["PK"]["S"], "ns1/ENTITY#user-1");
    // Every other record landed exactly once.
    let items = moto.scan("rate-limits").await;
    let sk = "#USAGE#gpt-4#2026-01-01T00:00:00Z";
    assert!(find(&items, "ns1/ENTITY#user-0", sk).is_some() && find(&items, "ns1/ENTITY#user-2", sk).is_some());
    assert!(find(&items, "ns1/ENTITY#user-1", sk).is_none());
}

#[tokio::test]
async fn a_malformed_watermark_sends_the_records_of_its_item_to_the_dead_letter() {
    let (moto, v, owned) = golden_with_dead_letter().await;
    let table = &v.config.table_name;
    let junk =
        json!({"PK": {"S": GOLDEN_ENTITY}, "SK": {"S": GOLDEN_HOURLY}, "tpm": {"N": "5"}, "wm#0": {"S": "junk"}});
    moto.put_item(table, &junk.to_string()).await;
    let (_, report) =
        plan_and_execute(&moto, &owned.batch(), ExecutorOptions::default(), "watermark dead letter").await;
    assert!(report.failed_records.is_empty(), "{report:?}");
    assert_eq!(report.dead_lettered_records, BTreeSet::from([0]));
    assert!(
        matches!(&report.writes[0], WriteResult::DeadLettered(m) if m.contains("watermark wm#0 holds")),
        "{:?}",
        report.writes[0]
    );
    let lines = dead_letter_lines(&moto, "dead-letters").await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0]["reason"].as_str().unwrap().contains("malformed"), "{}", lines[0]);
    assert_eq!(lines[0]["request"]["key"]["SK"]["S"], GOLDEN_HOURLY);
}

#[tokio::test]
async fn a_deployment_error_never_fills_the_dead_letter() {
    let (moto, cfg) = dead_letter_setup().await;
    let event = common::bucket_event(2);
    let batch = Batch { event_json: &event, config: &cfg, now_ms: 1_767_229_200_000, invocation_id: "deploy" };
    let mut plan = plan_batch(&batch).await;
    for w in plan.writes.iter_mut() {
        if let Operation::UpdateItem(u) = &mut w.operation {
            u.table_name = "no-such-table".into();
        }
    }
    let report = execute(&executor(&moto, ExecutorOptions::default()), &batch, &plan).await;
    assert!(!report.deployment_errors.is_empty(), "{report:?}");
    assert!(report.deployment_errors.iter().all(|e| e.contains("ResourceNotFoundException")), "{report:?}");
    assert!(report.dead_lettered_records.is_empty());
    assert_eq!(report.failed_records, BTreeSet::from([0, 1]));
    assert!(moto.list_objects("dead-letters").await.is_empty(), "not the records' fault: nothing in the dead letter");
    assert!(!report.is_success());
}

#[tokio::test]
async fn a_refill_refused_for_good_fails_no_record_and_is_not_dead_lettered() {
    let (moto, _, owned) = golden_with_dead_letter().await;
    let mut plan = plan_batch(&owned.batch()).await;
    // A refill DynamoDB refuses however often it is sent: ADD of a string.
    let refill = plan.writes.iter_mut().find(|w| w.purpose == Purpose::Refill).expect("a refill");
    let Operation::UpdateItem(u) = &mut refill.operation else { panic!("refills are updates") };
    let d0 = u.values.iter_mut().find(|v| v.name == ":d0").expect(":d0");
    d0.value = r#"{"S":"x"}"#.into();
    let report = execute(&executor(&moto, ExecutorOptions::default()), &owned.batch(), &plan).await;
    summary("best-effort refill", &report);
    assert!(report.failed_records.is_empty() && report.dead_lettered_records.is_empty(), "{report:?}");
    assert_eq!((report.best_effort_failures, report.snapshots_applied), (1, 2));
    assert!(
        report.errors.iter().any(|e| e.starts_with("refill ") && e.contains("(best-effort)")),
        "{:?}",
        report.errors
    );
    assert!(moto.list_objects("dead-letters").await.is_empty(), "a best-effort write's records are not poison");
    assert!(report.is_success());
}

/// A planned transaction (contract 0.3.0): a conditional Put and a
/// ConditionCheck on another item, as the 0.17 semantics' shard clones are.
fn clone_transaction(table: &str, check_pgen: i64) -> zae_aggregator::bindings::Write {
    use zae_aggregator::bindings::{
        Attribute, ConditionCheck, ExpressionName, FailurePolicy, OnConditionFailure, PutItem, TransactItem, Write,
    };
    let a = |name: &str, value: &str| Attribute { name: name.into(), value: value.into() };
    Write {
        id: 0,
        purpose: Purpose::ShardPropagate,
        failure_policy: FailurePolicy::BestEffort,
        on_condition_failure: OnConditionFailure::Ignore,
        target: format!("{table} clone"),
        records: vec![0],
        operation: Operation::TransactWriteItems(vec![
            TransactItem::Put(PutItem {
                base: None,
                table_name: table.into(),
                item: vec![
                    a("PK", r#"{"S":"ns/BUCKET#e#r#1"}"#),
                    a("SK", r##"{"S":"#STATE"}"##),
                    a("b_tpm_tk", r#"{"N":"500"}"#),
                ],
                condition_expression: Some("attribute_not_exists(#pk)".into()),
                names: vec![ExpressionName { placeholder: "#pk".into(), name: "PK".into() }],
                values: vec![],
            }),
            TransactItem::ConditionCheck(ConditionCheck {
                table_name: table.into(),
                key: vec![a("PK", r#"{"S":"ns/ENTITY#e"}"#), a("SK", r##"{"S":"#META"}"##)],
                condition_expression: "#g = :g".into(),
                names: vec![ExpressionName { placeholder: "#g".into(), name: "pgen".into() }],
                values: vec![a(":g", &format!(r#"{{"N":"{check_pgen}"}}"#))],
            }),
        ]),
        on_applied: vec![],
        on_failed: vec![],
    }
}

#[tokio::test]
async fn a_transaction_applies_whole_or_counts_as_a_failed_condition() {
    let moto = Moto::start();
    let table = "tx-table";
    moto.create_table(table).await;
    moto.put_item(table, r##"{"PK":{"S":"ns/ENTITY#e"},"SK":{"S":"#META"},"pgen":{"N":"3"}}"##).await;
    let owned = common::OwnedBatch {
        event_json: "{\"Records\":[]}".into(),
        config: config(table),
        now_ms: 0,
        invocation_id: "tx".into(),
    };
    let batch = owned.batch();
    let exec = executor(&moto, ExecutorOptions::default());

    // The owner moved (pgen 3, not 2): the whole transaction is cancelled,
    // which the plan's `ignore` turns into a counted condition failure.
    let report = exec.execute(common::planner(), &batch, vec![clone_transaction(table, 2)], &[]).await;
    assert_eq!(report.writes, vec![WriteResult::ConditionIgnored], "{report:?}");
    assert!(find(&moto.scan(table).await, "ns/BUCKET#e#r#1", "#STATE").is_none(), "nothing of it was written");

    let report = exec.execute(common::planner(), &batch, vec![clone_transaction(table, 3)], &[]).await;
    assert_eq!(report.writes, vec![WriteResult::Applied], "{report:?}");
    assert_eq!(report.shard_propagations_applied, 1);
    assert_eq!(n(get(&moto.scan(table).await, "ns/BUCKET#e#r#1", "#STATE"), "b_tpm_tk"), 500);

    // Again: the Put's attribute_not_exists fails, so does the transaction.
    let report = exec.execute(common::planner(), &batch, vec![clone_transaction(table, 3)], &[]).await;
    assert_eq!(report.writes, vec![WriteResult::ConditionIgnored], "{report:?}");
    assert!(report.failed_records.is_empty() && report.best_effort_failures == 0, "{report:?}");
}

#[tokio::test]
async fn a_read_finds_an_item_or_says_it_is_missing() {
    use zae_aggregator::bindings::{Attribute, Read};
    use zae_aggregator::executor::{read_item, OwnedReadOutcome};
    let moto = Moto::start();
    let table = "read-table";
    moto.create_table(table).await;
    moto.put_item(table, r##"{"PK":{"S":"a"},"SK":{"S":"#STATE"},"shard_count":{"N":"4"}}"##).await;
    let read = |pk: &str| Read {
        id: 7,
        table_name: table.into(),
        key: vec![
            Attribute { name: "PK".into(), value: format!(r#"{{"S":"{pk}"}}"#) },
            Attribute { name: "SK".into(), value: r##"{"S":"#STATE"}"##.into() },
        ],
        records: vec![0],
        target: String::new(),
    };
    let found = read_item(&moto.ddb_client(), &read("a")).await;
    assert_eq!(found.read_id, 7);
    let OwnedReadOutcome::Found(item) = found.outcome else { panic!("{found:?}") };
    let item: Value = serde_json::from_str(&item).unwrap();
    assert_eq!(item["shard_count"], json!({"N": "4"}));
    assert_eq!(read_item(&moto.ddb_client(), &read("b")).await.outcome, OwnedReadOutcome::Missing);
    let mut broken = read("a");
    broken.table_name = "no-such-table".into();
    assert!(matches!(read_item(&moto.ddb_client(), &broken).await.outcome, OwnedReadOutcome::Failed(_)));
}
