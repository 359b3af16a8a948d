//! End-to-end: the real `zae-aggregator invoke` binary against a real moto
//! server (DynamoDB and S3 over HTTP on 127.0.0.1), exactly as one Lambda
//! invocation would run.
//!
//! Two kinds of tests:
//!
//! * **expected states**: every conformance vector with a `state.json` is
//!   run from its start state (the latest image of each bucket the event
//!   touches, or the zae-limiter table in `tests/local/fixture.json`), and the
//!   whole table and every archive object afterwards must equal the file.
//!   `ZAE_BLESS=1` rewrites the files (review the diff: they are checked
//!   against the Python aggregator by the parity run, docs/differences.md);
//! * **behaviours**, asserted directly: old- and new-format buckets, refill
//!   lock won and lost, shard doubling and propagation, archive objects and
//!   their NDJSON, malformed records reported while the rest lands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use zae_aggregator::dynamo_json;
use zae_planner::vector::{default_root, load, Vector};

mod common;
use common::moto::{gunzip, Moto};

type Item = std::collections::HashMap<String, AttributeValue>;

/// The vectors whose final state is pinned, and where each starts from.
const STATE_VECTORS: &[(&str, Start)] = &[
    ("golden-1-spec13", Start::LatestImages),
    ("golden-2-midnight-w4", Start::LatestImages),
    ("old-format-bucket-w20", Start::LatestImages),
    ("pre-migration-unprefixed", Start::LatestImages),
    ("refill-w10-every-limit", Start::LatestImages),
    ("refill-sharded-division", Start::LatestImages),
    ("shard-threshold-exact", Start::LatestImages),
    ("propagate-2-to-4", Start::LatestImages),
    ("archive-multi-day-w13", Start::LatestImages),
    ("archive-unicode-and-large", Start::LatestImages),
    ("malformed-records", Start::LatestImages),
    ("real-batch-1000", Start::Fixture),
    ("real-malformed-skips", Start::Fixture),
    ("v17-reset-edge", Start::LatestImages),
    ("v17-window-roll", Start::LatestImages),
    ("v17-vu-restamp", Start::LatestImages),
    ("v17-deferred-wcu-credit", Start::LatestImages),
    ("v17-schedule-absolute", Start::LatestImages),
    ("v17-soft-overdraw", Start::LatestImages),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The latest `NewImage` of every MODIFY record's item.
    LatestImages,
    /// `tests/local/fixture.json`: the zae-limiter table as the Python
    /// library's own traffic left it (the stream the real vectors come from).
    Fixture,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn vector(name: &str) -> Vector {
    load(&default_root().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What one `invoke` did.
struct Run {
    code: i32,
    response: Value,
    logs: Vec<Value>,
}

impl Run {
    fn summary(&self) -> &Value {
        self.logs
            .iter()
            .rev()
            .find(|l| l["message"] == "Lambda invocation completed")
            .unwrap_or_else(|| panic!("no summary line in {:#?}", self.logs))
    }
}

/// A moto server with the vector's table and archive bucket, in its start
/// state.
async fn prepared(v: &Vector, start: Start) -> Moto {
    let moto = Moto::start();
    moto.create_table(&v.config.table_name).await;
    if let Some(bucket) = &v.config.archive_bucket {
        moto.create_bucket(bucket).await;
    }
    match start {
        Start::LatestImages => {
            for image in latest_images(&v.event_json).values() {
                moto.put_item(&v.config.table_name, image).await;
            }
        }
        Start::Fixture => {
            let text = std::fs::read_to_string(root().join("tests/local/fixture.json")).unwrap();
            let fixture: Value = serde_json::from_str(&text).unwrap();
            for item in fixture["items"].as_array().unwrap() {
                moto.put_item(&v.config.table_name, &item.to_string()).await;
            }
        }
    }
    moto
}

/// `(PK, SK)` → the latest NewImage (JSON text) of each MODIFY record's item.
fn latest_images(event_json: &str) -> BTreeMap<(String, String), String> {
    let event: Value = serde_json::from_str(event_json).unwrap();
    let mut latest = BTreeMap::new();
    for r in event["Records"].as_array().into_iter().flatten() {
        let image = &r["dynamodb"]["NewImage"];
        if r["eventName"] == "MODIFY" && image["PK"]["S"].is_string() && image["SK"]["S"].is_string() {
            let key = (image["PK"]["S"].as_str().unwrap().to_string(), image["SK"]["S"].as_str().unwrap().to_string());
            // A table refuses empty strings in index keys, so no stored
            // item can have one; some synthetic images do.
            let mut image = image.clone();
            image.as_object_mut().unwrap().retain(|k, v| !(k.starts_with("GSI") && v["S"] == ""));
            // Nor can it hold a malformed number (the malformed-record vectors).
            let text = image.to_string();
            if dynamo_json::to_attribute_value(&format!("{{\"M\":{text}}}")).is_ok() {
                latest.insert(key, text);
            }
        }
    }
    latest
}

/// Run `zae-aggregator invoke` on `event` with the vector's configuration,
/// clock and request id.
fn invoke(moto: &Moto, v: &Vector, event: &Path, extra_env: &[(&str, &str)]) -> Run {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("zae-e2e-{}-{run}-{}.json", std::process::id(), v.name));
    let _ = std::fs::remove_file(&out);
    let windows: Vec<&str> = v.config.windows.iter().map(|w| w.name()).collect();
    let mut c = Command::new(env!("CARGO_BIN_EXE_zae-aggregator"));
    c.env_clear()
        .envs(moto.aws_env())
        .env("TABLE_NAME", &v.config.table_name)
        .env("SNAPSHOT_WINDOWS", windows.join(","))
        .env("SNAPSHOT_TTL_DAYS", v.config.snapshot_ttl_days.to_string())
        .env("MAX_SHARD_COUNT", v.config.max_shard_count.to_string())
        .env("ZAE_MAX_ATTEMPTS", "2");
    match &v.config.archive_bucket {
        Some(b) => c.env("ENABLE_ARCHIVAL", "true").env("ARCHIVE_BUCKET_NAME", b),
        None => c.env("ENABLE_ARCHIVAL", "false"),
    };
    if let Some(l) = v.config.limiter {
        c.env("ZAE_LIMITER_VERSION", l.name());
    }
    c.envs(extra_env.iter().copied());
    c.args(["invoke", "--now-ms", &v.now_ms.to_string(), "--request-id", &v.invocation_id, "--output"])
        .arg(&out)
        .arg(event);
    let o = c.output().expect("the binary runs");
    let logs: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect();
    let response = std::fs::read_to_string(&out)
        .map(|t| serde_json::from_str(&t).expect("the response is JSON"))
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_file(&out);
    Run { code: o.status.code().expect("exited"), response, logs }
}

fn event_path(v: &Vector) -> PathBuf {
    v.dir.join("event.json")
}

/// The table as sorted `PK`, `SK`, then DynamoDB JSON lines.
async fn table_state(moto: &Moto, table: &str) -> Vec<Value> {
    let mut items: Vec<(String, String, Value)> = moto
        .scan(table)
        .await
        .iter()
        .map(|i| {
            let json: Value = serde_json::from_str(&dynamo_json::item_to_json(i)).unwrap();
            (s(i, "PK").to_string(), s(i, "SK").to_string(), sorted(json))
        })
        .collect();
    items.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    items.into_iter().map(|(_, _, v)| v).collect()
}

/// Every archive object: key and gunzipped NDJSON lines.
async fn objects_state(moto: &Moto, bucket: Option<&str>) -> Vec<Value> {
    let Some(bucket) = bucket else { return Vec::new() };
    let mut out = Vec::new();
    for key in moto.list_objects(bucket).await {
        let body = moto.get_object(bucket, &key).await;
        let text = String::from_utf8(gunzip(&body)).expect("NDJSON is UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        out.push(json!({"key": key, "lines": lines}));
    }
    out
}

/// Objects with their keys in sorted order (serde_json keeps insertion order).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<String, Value> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        other => other,
    }
}

fn s<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("")
}

fn n(item: &Item, name: &str) -> i64 {
    let text = item.get(name).and_then(|v| v.as_n().ok()).unwrap_or_else(|| panic!("no N {name} in {item:?}"));
    text.parse().unwrap()
}

fn find<'a>(items: &'a [Item], pk: &str, sk: &str) -> Option<&'a Item> {
    items.iter().find(|i| s(i, "PK") == pk && s(i, "SK") == sk)
}

fn get<'a>(items: &'a [Item], pk: &str, sk: &str) -> &'a Item {
    find(items, pk, sk).unwrap_or_else(|| panic!("no item {pk} / {sk}"))
}

#[tokio::test]
async fn vectors_reach_their_expected_states() {
    let bless = zae_planner::vector::bless();
    let mut failures = Vec::new();
    for &(name, start) in STATE_VECTORS {
        let v = vector(name);
        let moto = prepared(&v, start).await;
        let run = invoke(&moto, &v, &event_path(&v), &[]);
        let state = json!({
            "start": match start { Start::LatestImages => "latest-images", Start::Fixture => "fixture" },
            "exit_code": run.code,
            "response": run.response,
            "table": table_state(&moto, &v.config.table_name).await,
            "objects": objects_state(&moto, v.config.archive_bucket.as_deref()).await,
        });
        let rendered = serde_json::to_string_pretty(&state).unwrap() + "\n";
        let path = v.dir.join("state.json");
        if bless {
            std::fs::write(&path, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (ZAE_BLESS=1 creates it)", path.display()));
        if expected != rendered {
            let line = expected.lines().zip(rendered.lines()).position(|(a, b)| a != b).unwrap_or(0);
            failures.push(format!(
                "{name}: state differs from state.json at line {}: expected {:?}, got {:?}",
                line + 1,
                expected.lines().nth(line).unwrap_or(""),
                rendered.lines().nth(line).unwrap_or("")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The `(PK, SK)` of every planned snapshot write.
fn planned_snapshot_keys(v: &Vector) -> Vec<(String, String)> {
    let plan = zae_planner::plan(&v.batch()).unwrap();
    let mut keys: Vec<(String, String)> = plan
        .writes
        .iter()
        .filter(|w| w.purpose == zae_planner::plan::Purpose::Snapshot)
        .map(|w| match &w.operation {
            zae_planner::plan::Operation::UpdateItem(u) => key_strings(&u.key),
            other => panic!("snapshot writes are UpdateItems, got {other:?}"),
        })
        .collect();
    keys.sort();
    keys
}

fn key_strings(key: &[zae_planner::plan::Attribute]) -> (String, String) {
    let text = |i: usize| serde_json::from_str::<Value>(&key[i].value).unwrap()["S"].as_str().unwrap().to_string();
    (text(0), text(1))
}

#[tokio::test]
async fn new_and_old_format_buckets_roll_up_to_the_same_snapshot_schema() {
    for name in ["golden-1-spec13", "old-format-bucket-w20"] {
        let v = vector(name);
        let moto = prepared(&v, Start::LatestImages).await;
        let run = invoke(&moto, &v, &event_path(&v), &[]);
        assert_eq!(run.code, 0, "{name}: {:#?}", run.logs);
        let items = moto.scan(&v.config.table_name).await;
        let usage: Vec<&Item> = items.iter().filter(|i| s(i, "SK").starts_with("#USAGE#")).collect();
        let mut keys: Vec<(String, String)> =
            usage.iter().map(|i| (s(i, "PK").to_string(), s(i, "SK").to_string())).collect();
        keys.sort();
        assert_eq!(keys, planned_snapshot_keys(&v), "{name}: the planned snapshot items exist");
        assert!(!usage.is_empty(), "{name}: no snapshot item");
        for i in &usage {
            for attr in ["entity_id", "resource", "window", "window_start", "GSI2PK", "GSI2SK"] {
                assert!(!s(i, attr).is_empty(), "{name}: {attr} missing in {i:?}");
            }
            assert!(n(i, "total_events") > 0);
            // Bookkeeping is never a number attribute (the reader would count it).
            for (k, val) in i.iter() {
                if k.starts_with("wm#") {
                    assert!(val.as_s().is_ok_and(|t| t.len() == 40), "{name}: {k} = {val:?}");
                }
            }
        }
        assert_eq!(run.response["body"]["snapshots_updated"], json!(usage.len()), "{name}");
    }
}

#[tokio::test]
async fn refill_lock_won_and_lost() {
    let v = vector("golden-1-spec13");
    let plan = zae_planner::plan(&v.batch()).unwrap();
    let refill = plan
        .writes
        .iter()
        .find(|w| w.purpose == zae_planner::plan::Purpose::Refill)
        .expect("the golden vector refills");
    let (pk, sk) = match &refill.operation {
        zae_planner::plan::Operation::UpdateItem(u) => key_strings(&u.key),
        other => panic!("refill is an UpdateItem, got {other:?}"),
    };

    // Won: the bucket still holds the rf the records saw.
    let moto = prepared(&v, Start::LatestImages).await;
    let before = get(&moto.scan(&v.config.table_name).await, &pk, &sk).clone();
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 0);
    assert_eq!(run.response["body"]["refills_written"], 1);
    let after = get(&moto.scan(&v.config.table_name).await, &pk, &sk).clone();
    assert_eq!(n(&after, "rf"), v.now_ms, "rf moves to now");
    let tk: Vec<&String> = before.keys().filter(|k| k.starts_with("b_") && k.ends_with("_tk")).collect();
    assert!(tk.iter().any(|k| n(&after, k) > n(&before, k)), "some limit gained tokens: {before:?} -> {after:?}");

    // Lost: another writer moved rf first; the refill changes nothing, and
    // that is an expected outcome, not a failure.
    let moto = prepared(&v, Start::LatestImages).await;
    let mut moved: Value = serde_json::from_str(&dynamo_json::item_to_json(&before)).unwrap();
    moved["rf"] = json!({"N": (v.now_ms - 1).to_string()});
    moto.put_item(&v.config.table_name, &moved.to_string()).await;
    let untouched = get(&moto.scan(&v.config.table_name).await, &pk, &sk).clone();
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 0, "a lost lock is not an error: {:#?}", run.logs);
    assert_eq!(run.response["body"]["refills_written"], 0);
    assert_eq!(run.response["batchItemFailures"], json!([]));
    assert_eq!(run.summary()["conditions_ignored"], 1);
    let after = get(&moto.scan(&v.config.table_name).await, &pk, &sk).clone();
    // The shard bump of the same batch may change shard_count; the refill
    // changed no balance and did not move rf.
    for (k, val) in &untouched {
        if k == "rf" || k.ends_with("_tk") {
            assert_eq!(after.get(k), Some(val), "{k}");
        }
    }
}

#[tokio::test]
async fn shard_doubling_then_propagation_to_every_shard() {
    // Doubling: shard 0's wcu is below 20 % of capacity.
    let v = vector("golden-1-spec13");
    let moto = prepared(&v, Start::LatestImages).await;
    let before = moto.scan(&v.config.table_name).await;
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 0, "{:#?}", run.logs);
    let after = moto.scan(&v.config.table_name).await;
    let doubled: Vec<(String, i64, i64)> = after
        .iter()
        .filter(|i| s(i, "SK") == "#STATE" && i.contains_key("shard_count"))
        .filter_map(|i| {
            let old = find(&before, s(i, "PK"), "#STATE").map(|b| n(b, "shard_count"))?;
            (old != n(i, "shard_count")).then(|| (s(i, "PK").to_string(), old, n(i, "shard_count")))
        })
        .collect();
    assert_eq!(run.summary()["shard_bumps_applied"], json!(doubled.len()));
    assert_eq!(doubled.len(), 1, "{doubled:?}");
    for (pk, old, new) in &doubled {
        assert_eq!(*new, old * 2, "{pk}");
    }

    // Propagation: a shard_count raised to 4 reaches shard 1 (update) and
    // creates shards 2 and 3 (clones of shard 0 with per-shard capacity).
    let v = vector("propagate-2-to-4");
    let moto = prepared(&v, Start::LatestImages).await;
    // Shard 1 exists and still says 2; shards 2 and 3 do not exist yet.
    let (pk0, image) = latest_images(&v.event_json).into_iter().next().unwrap();
    let mut shard1: Value = serde_json::from_str(&image).unwrap();
    let pk1 = format!("{}#1", pk0.0.rsplit_once('#').unwrap().0);
    shard1["PK"] = json!({"S": pk1});
    shard1["shard_count"] = json!({"N": "2"});
    moto.put_item(&v.config.table_name, &shard1.to_string()).await;
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 0, "{:#?}", run.logs);
    let items = moto.scan(&v.config.table_name).await;
    let shards: Vec<&Item> =
        items.iter().filter(|i| s(i, "SK") == "#STATE" && s(i, "PK").contains("/BUCKET#")).collect();
    let prefix = s(shards[0], "PK").rsplit_once('#').unwrap().0.to_string();
    for shard in 0..4 {
        let item = get(&items, &format!("{prefix}#{shard}"), "#STATE");
        assert_eq!(n(item, "shard_count"), 4, "shard {shard}");
    }
    assert_eq!(run.summary()["shard_propagations_applied"], 3);
}

#[tokio::test]
async fn archive_objects_hold_the_audit_rows_as_ndjson() {
    let v = vector("archive-multi-day-w13");
    let moto = prepared(&v, Start::LatestImages).await;
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 0, "{:#?}", run.logs);
    let bucket = v.config.archive_bucket.as_deref().unwrap();
    let keys = moto.list_objects(bucket).await;
    assert!(keys.len() >= 2, "one object per UTC day: {keys:?}");
    let plan = zae_planner::plan(&v.batch()).unwrap();
    let mut events = 0;
    for key in &keys {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[0], "audit");
        assert!(parts[1].starts_with("year=") && parts[2].starts_with("month=") && parts[3].starts_with("day="));
        assert!(parts[4].starts_with("audit-") && parts[4].ends_with(".jsonl.gz"), "{key}");
        let stored = moto.get_object(bucket, key).await;
        // The stored bytes are exactly the planned object.
        let planned = plan
            .writes
            .iter()
            .find_map(|w| match &w.operation {
                zae_planner::plan::Operation::PutObject(o) if &o.key == key => Some(o.body.clone()),
                _ => None,
            })
            .expect("every object was planned");
        assert_eq!(stored, planned, "{key}");
        for line in String::from_utf8(gunzip(&stored)).unwrap().lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            assert!(event["event_id"].is_string() || event["event_id"].is_null(), "{line}");
            events += 1;
        }
    }
    assert_eq!(run.response["body"]["events_archived"], events);
}

#[tokio::test]
async fn malformed_records_are_reported_with_their_sequence_numbers_and_the_rest_lands() {
    let v = vector("real-malformed");
    let moto = prepared(&v, Start::Fixture).await;
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 0, "invalid records are reported, not retried: {:#?}", run.logs);
    assert_eq!(run.response["batchItemFailures"], json!([]));
    let plan = zae_planner::plan(&v.batch()).unwrap();
    let invalid: Vec<(u32, String)> = plan
        .outcomes
        .iter()
        .filter(|o| matches!(o.status, zae_planner::plan::RecordStatus::Invalid(_)))
        .map(|o| (o.index, o.sequence_number.clone().unwrap_or_else(|| "none".into())))
        .collect();
    assert!(invalid.len() >= 5, "the vector has many malformed records: {invalid:?}");
    let errors: Vec<&str> =
        run.response["body"]["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    for (index, seq) in &invalid {
        let prefix = format!("Invalid record {index} (sequence {seq}): ");
        assert!(errors.iter().any(|e| e.starts_with(&prefix)), "{prefix} not in {errors:#?}");
    }
    // The valid records landed: snapshots and archived audit rows.
    assert!(run.response["body"]["snapshots_updated"].as_u64().unwrap() > 0);
    assert!(run.response["body"]["events_archived"].as_u64().unwrap() > 0);
    let usage = moto.scan(&v.config.table_name).await.iter().filter(|i| s(i, "SK").starts_with("#USAGE#")).count();
    assert_eq!(json!(usage), run.response["body"]["snapshots_updated"]);
}

#[tokio::test]
async fn a_missing_archive_bucket_fails_the_invocation_loudly() {
    let v = vector("archive-multi-day-w13");
    let moto = Moto::start();
    moto.create_table(&v.config.table_name).await;
    // No bucket: every PutObject meets NoSuchBucket. That is the deployment's
    // fault, not the records': the invocation fails (Lambda retries the whole
    // batch once the bucket exists) and nothing goes to a dead letter.
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.response["errorType"], "DeploymentError", "{}", run.response);
    assert!(run.response["errorMessage"].as_str().is_some_and(|m| m.contains("NoSuchBucket")), "{}", run.response);
    let failed = run.logs.iter().find(|l| l["message"] == "Lambda invocation failed").expect("a loud failure line");
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["error_type"], "DeploymentError");
    assert!(failed["deployment_errors"].as_array().is_some_and(|e| !e.is_empty()), "{failed}");
    let plan = zae_planner::plan(&v.batch()).unwrap();
    // zae-limiter's own line for each object, with its fields and the error.
    let upstream: Vec<&Value> = run
        .logs
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with("Error writing to S3: ")))
        .collect();
    let objects = plan.writes.iter().filter(|w| w.purpose == zae_planner::plan::Purpose::Archive).count();
    assert_eq!(upstream.len(), objects, "{:#?}", run.logs);
    for l in upstream {
        assert_eq!(l["level"], "ERROR");
        assert_eq!(l["bucket"], v.config.archive_bucket.as_deref().unwrap());
        assert!(l["key"].as_str().is_some_and(|k| k.starts_with("audit/year=")), "{l}");
        assert!(l["exception"].as_str().is_some_and(|e| e.contains("NoSuchBucket")), "{l}");
    }
}

#[tokio::test]
async fn invalid_records_go_to_the_dead_letter_and_the_shard_moves_on() {
    let v = vector("malformed-records");
    let moto = prepared(&v, Start::LatestImages).await;
    let run = invoke(&moto, &v, &event_path(&v), &[("DEAD_LETTER_BUCKET", "dead-letters")]);
    // The bucket does not exist yet: storing fails, so the invalid records fail as before.
    assert_eq!(run.code, 1, "{:#?}", run.logs);
    moto.create_bucket("dead-letters").await;
    let run = invoke(&moto, &v, &event_path(&v), &[("DEAD_LETTER_BUCKET", "dead-letters")]);
    assert_eq!(run.code, 0, "{:#?}", run.logs);
    assert_eq!(run.response["batchItemFailures"], json!([]));
    let plan = zae_planner::plan(&v.batch()).unwrap();
    let invalid: Vec<&zae_planner::plan::RecordOutcome> =
        plan.outcomes.iter().filter(|o| matches!(o.status, zae_planner::plan::RecordStatus::Invalid(_))).collect();
    assert!(invalid.len() >= 5, "{invalid:?}");
    let keys = moto.list_objects("dead-letters").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let text = String::from_utf8(gunzip(&moto.get_object("dead-letters", &keys[0]).await)).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), invalid.len());
    let event: Value = serde_json::from_str(&v.event_json).unwrap();
    for (line, o) in lines.iter().zip(&invalid) {
        let zae_planner::plan::RecordStatus::Invalid(reason) = &o.status else { unreachable!() };
        assert_eq!(line["record_index"], o.index);
        assert_eq!(line["reason"], reason.as_str());
        assert_eq!(line["sequence_number"], json!(o.sequence_number));
        assert_eq!(line["record"], event["Records"][o.index as usize]);
    }
    let sent = run.logs.iter().find(|l| l["message"] == "Records sent to the dead letter").expect("logged");
    assert_eq!(sent["level"], "ERROR");
    assert_eq!(sent["records"], invalid.len());
    let completed = run.logs.iter().find(|l| l["message"] == "Lambda invocation completed").unwrap();
    assert_eq!(completed["dead_letter_records"], invalid.len());
}

#[tokio::test]
async fn applied_writes_log_zae_limiters_own_lines() {
    let v = vector("golden-1-spec13");
    let moto = prepared(&v, Start::LatestImages).await;
    let run = invoke(&moto, &v, &event_path(&v), &[("LOG_LEVEL", "DEBUG")]);
    assert_eq!(run.code, 0, "{:#?}", run.logs);
    let updated: Vec<&Value> = run.logs.iter().filter(|l| l["message"] == "Snapshot updated").collect();
    // One per limit of each snapshot item written: tpm in the hourly and the daily item.
    let windows: Vec<&str> = updated.iter().map(|l| l["window"].as_str().unwrap()).collect();
    assert_eq!(windows, ["hourly", "daily"], "{updated:#?}");
    for l in &updated {
        assert_eq!(l["level"], "DEBUG");
        assert_eq!((l["entity_id"].as_str(), l["resource"].as_str()), (Some("u1"), Some("gpt-4")));
        assert_eq!((l["limit_name"].as_str(), l["tokens_delta"].as_i64()), (Some("tpm"), Some(20_000)));
    }
    assert_eq!(updated[0]["window_key"], "2023-12-31T23:00:00Z");
    let completed = run.logs.iter().find(|l| l["message"] == "Batch processing completed").expect("summary");
    assert_eq!(completed["processed_count"], 1);
    assert_eq!(completed["deltas_extracted"], 1);
    assert_eq!(completed["snapshots_updated"], 2);
    assert_eq!(completed["refills_written"], 1);
    assert_eq!(completed["error_count"], 0);
    assert!(run.logs.iter().any(|l| l["message"] == "Bucket refilled"), "{:#?}", run.logs);
    assert!(run.logs.iter().any(|l| l["message"] == "Proactive shard doubling"), "{:#?}", run.logs);
}

/// Every poison class the planner catches before writing: the shard moves
/// on, each poison record is in the dead letter with its reason, and every
/// other record is applied (exactly once: a second delivery changes nothing).
#[tokio::test]
async fn poison_records_go_to_the_dead_letter_and_the_rest_lands_once() {
    for name in [
        "limit-resource-too-long",
        "limit-entity-too-long",
        "limit-empty-namespace",
        "limit-counter-38-digits",
        "limit-refill-negative-cp",
        "dead-letter-invalid-records",
    ] {
        let v = vector(name);
        let moto = Moto::start();
        moto.create_table(&v.config.table_name).await;
        moto.create_bucket("dead-letters").await;
        if let Some(b) = &v.config.archive_bucket {
            moto.create_bucket(b).await;
        }
        let env = [("DEAD_LETTER_BUCKET", "dead-letters")];
        let run = invoke(&moto, &v, &event_path(&v), &env);
        assert_eq!(run.code, 0, "{name}: {:#?}", run.logs);
        assert_eq!(run.response["batchItemFailures"], json!([]), "{name}");
        let plan = zae_planner::plan(&v.batch()).unwrap();
        let invalid: Vec<(u32, String)> = plan
            .outcomes
            .iter()
            .filter_map(|o| match &o.status {
                zae_planner::plan::RecordStatus::Invalid(r) => Some((o.index, r.clone())),
                _ => None,
            })
            .collect();
        assert!(!invalid.is_empty(), "{name}: the vector has a poison record");
        let keys = moto.list_objects("dead-letters").await;
        assert_eq!(keys.len(), 1, "{name}: {keys:?}");
        let text = String::from_utf8(gunzip(&moto.get_object("dead-letters", &keys[0]).await)).unwrap();
        let stored: Vec<(u32, String)> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["record_index"].as_u64().unwrap() as u32, v["reason"].as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(stored, invalid, "{name}");
        // The valid records' snapshots landed; a redelivery of the batch changes nothing.
        let before = table_state(&moto, &v.config.table_name).await;
        let snapshots = before.iter().filter(|i| i["SK"]["S"].as_str().is_some_and(|s| s.starts_with("#USAGE#")));
        let planned = plan.writes.iter().filter(|w| w.purpose == zae_planner::plan::Purpose::Snapshot).count();
        assert_eq!(snapshots.count(), planned, "{name}");
        let again = invoke(&moto, &v, &event_path(&v), &env);
        assert_eq!(again.code, 0, "{name}");
        assert_eq!(table_state(&moto, &v.config.table_name).await, before, "{name}: a redelivery changed the table");
        assert_eq!(moto.list_objects("dead-letters").await, keys, "{name}: the same dead-letter object, rewritten");
    }
}

#[tokio::test]
async fn a_snapshot_item_fed_by_a_hundred_shards_is_written_in_chunks_exactly_once() {
    let v = vector("limit-100-sources-chunked");
    let moto = Moto::start();
    moto.create_table(&v.config.table_name).await;
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 0, "{:#?}", run.logs);
    let again = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(again.code, 0, "{:#?}", again.logs);
    let items = moto.scan(&v.config.table_name).await;
    let hourly = get(&items, "ns/ENTITY#u1", "#USAGE#gpt-4#2023-12-31T23:00:00Z");
    assert_eq!(n(hourly, "total_events"), 100, "every shard's record counted once");
    let watermarks = hourly.keys().filter(|k| k.starts_with("wm#")).count();
    assert_eq!(watermarks, 100);
}

/// The version record zae-limiter keeps in its table.
fn version_record(lambda_version: &str) -> String {
    json!({"PK": {"S": "_/SYSTEM#"}, "SK": {"S": "#VERSION"}, "schema_version": {"S": "0.10.0"},
           "lambda_version": {"S": lambda_version}})
    .to_string()
}

#[tokio::test]
async fn the_tables_version_record_chooses_the_semantics_when_unset() {
    let v = vector("v17-soft-overdraw");
    let od = |table: &[Value]| {
        table
            .iter()
            .filter(|i| i["SK"]["S"].as_str().is_some_and(|sk| sk.starts_with("#USAGE#")))
            .filter_map(|i| i.get("tpm#od"))
            .count()
    };
    for (record, configured, want, overdraws) in [
        (Some("0.17.0"), None, "0.17", 2),
        (Some("0.13.0"), None, "0.13", 0),
        (None, None, "0.13", 0),
        (Some("0.17.0"), Some("0.13"), "0.13", 0),
    ] {
        let moto = prepared(&v, Start::LatestImages).await;
        if let Some(r) = record {
            moto.put_item(&v.config.table_name, &version_record(r)).await;
        }
        // Unset unless configured: the vector's own 0.17 is overridden.
        let env: Vec<(&str, &str)> = vec![("ZAE_LIMITER_VERSION", configured.unwrap_or(""))];
        let run = invoke(&moto, &v, &event_path(&v), &env);
        assert_eq!(run.code, 0, "{record:?}: {:?}", run.logs);
        let chose = run.logs.iter().find(|l| l["message"] == "Serving zae-limiter semantics").expect("logged");
        assert_eq!(chose["zae_limiter_version"], want, "{record:?} {configured:?}: {chose}");
        assert_eq!(od(&table_state(&moto, &v.config.table_name).await), overdraws, "{record:?} {configured:?}");
    }
    // A version record that is not a version stops the function at start-up.
    let moto = prepared(&v, Start::LatestImages).await;
    moto.put_item(&v.config.table_name, &version_record("banana")).await;
    let run = invoke(&moto, &v, &event_path(&v), &[("ZAE_LIMITER_VERSION", "")]);
    assert_eq!(run.code, 2);
}

/// The old shards of the after-reads vectors' bucket, as they are read.
fn old_shards(v: &Vector) -> Vec<String> {
    let input: Value = serde_json::from_str(&std::fs::read_to_string(v.dir.join("input.json")).unwrap()).unwrap();
    input["read_results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "found")
        .map(|r| r["item"].to_string())
        .collect()
}

#[tokio::test]
async fn quota_clones_are_funded_by_moves_in_one_transaction_with_the_owner_check() {
    let v = vector("v17-after-reads-quota-clones");
    let table = &v.config.table_name;
    let moto = prepared(&v, Start::LatestImages).await;
    // Shard 0 as the reads see it (the vector's read results), and shard 1.
    for item in old_shards(&v) {
        moto.put_item(table, &item).await;
    }
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 0, "{:?}", run.logs);
    let items = moto.scan(table).await;
    let shard = |i: usize| get(&items, &format!("ns/BUCKET#k1#gpt-4#{i}"), "#STATE");
    // Shard 1 raised with its grant frozen at the count it was granted at.
    assert_eq!((n(shard(1), "shard_count"), n(shard(1), "b_rpd_gc")), (4, 2));
    // Shards 2 and 3 each took one share (25 tokens) off their parent.
    for (clone, donor, before) in [(2, 0, 30_000), (3, 1, 40_000)] {
        assert_eq!(n(shard(clone), "b_rpd_tk"), 25_000, "clone {clone}");
        assert_eq!(n(shard(clone), "b_rpd_gc"), 4, "clone {clone}");
        assert_eq!(n(shard(donor), "b_rpd_tk"), before - 25_000, "donor {donor}");
    }
    // Run again: the clones exist, so their transactions are cancelled and
    // no donor is debited twice.
    let run = invoke(&moto, &v, &event_path(&v), &[]);
    assert_eq!(run.code, 0);
    let again = moto.scan(table).await;
    for i in 0..4 {
        let (pk, sk) = (format!("ns/BUCKET#k1#gpt-4#{i}"), "#STATE");
        assert_eq!(n(get(&again, &pk, sk), "b_rpd_tk"), n(get(&items, &pk, sk), "b_rpd_tk"), "shard {i}");
    }
}

#[tokio::test]
async fn a_clone_whose_owner_moved_is_not_created() {
    let v = vector("v17-propagation-clones");
    let table = &v.config.table_name;
    for (pgen, created) in [(2, true), (3, false)] {
        let moto = prepared(&v, Start::LatestImages).await;
        let meta = json!({"PK": {"S": "ns/ENTITY#k1"}, "SK": {"S": "#META"}, "pgen": {"N": pgen.to_string()},
                          "pinc": {"S": "2026-01-31T23:56:30Z"}, "parent_id": {"S": "proj-a"}});
        moto.put_item(table, &meta.to_string()).await;
        let run = invoke(&moto, &v, &event_path(&v), &[]);
        assert_eq!(run.code, 0, "{:?}", run.logs);
        let items = moto.scan(table).await;
        for shard in [2, 3] {
            let clone = find(&items, &format!("ns/BUCKET#k1#gpt-4#{shard}"), "#STATE");
            assert_eq!(clone.is_some(), created, "META pgen {pgen}, shard {shard}");
            if let Some(c) = clone {
                assert_eq!((n(c, "shard_count"), n(c, "b_rpm_tk"), n(c, "b_rpm_tc")), (4, 15_000, 0));
            }
        }
    }
}
