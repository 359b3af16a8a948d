//! `zae-aggregator replay` against a real moto server (docs/poll.md#replay):
//!
//! * `a_stream_range_replayed_twice_counts_once`: a sequence range of a real
//!   stream, replayed, leaves the counters equal to the truth of that range;
//!   replayed again, it changes no snapshot item at all;
//! * `a_dead_letter_is_applied_once_after_its_cause_is_fixed`: a record
//!   dead-lettered by a malformed watermark stays in the dead letter while
//!   the cause remains (exit 1, the object stays), is applied once after the
//!   item is repaired (its objects move to `replayed/`), and a second replay
//!   finds nothing.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::moto::Moto;
use common::poller::{
    command, last_line, scratch, streams_client, traffic_table, usage_items, verdict_of, wait, whole_stream,
};
use common::streams;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_range_replayed_twice_counts_once() {
    let moto = Moto::start();
    let dir = scratch("replay-range");
    let log = dir.join("replay.log");
    let table = "replay-range";
    let (started_s, arn) = traffic_table(&moto, table, 21, 120).await;
    let records = whole_stream(&moto, &arn).await;
    let described = streams_client(&moto).describe_stream().stream_arn(&arn).send().await.unwrap();
    let shard = described.stream_description().unwrap().shards()[0].shard_id().unwrap().to_string();
    let (from, to) = (10, records.len() * 2 / 3);
    let range = &records[from..=to];
    let args = [
        "--stream-arn",
        &arn,
        "--shard",
        &shard,
        "--from-seq",
        streams::seq(&range[0]),
        "--to-seq",
        streams::seq(&range[range.len() - 1]),
        "--batch-size",
        "25",
    ];

    let mut child = command(&moto, "replay", &args, &log, &[]);
    assert_eq!(wait(&mut child, Duration::from_secs(300), &log), 0, "{}", std::fs::read_to_string(&log).unwrap());
    let done = last_line(&log);
    assert_eq!(done["message"], "Replay finished", "{done}");
    assert_eq!(done["records_read"], json!(range.len()), "{done}");
    let v = verdict_of(&moto, table, range, started_s).await;
    assert!(v.holds(), "{v:#?}");
    let first = usage_items(&moto, table).await;

    let mut child = command(&moto, "replay", &args, &log, &[]);
    assert_eq!(wait(&mut child, Duration::from_secs(300), &log), 0);
    assert_eq!(usage_items(&moto, table).await, first, "a second replay changed snapshot items");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The event: two bucket records (user-0 and user-1), 2026-01-01T00:00Z.
fn event() -> String {
    common::bucket_event(2)
}

/// Snapshot items without `ttl` (set from the clock at the first write).
fn counters(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .map(|mut i| {
            i.as_object_mut().unwrap().remove("ttl");
            i
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_applied_once_after_its_cause_is_fixed() {
    let moto = Moto::start();
    let dir = scratch("replay-dead-letter");
    let log = dir.join("replay.log");
    let event_file = dir.join("event.json");
    std::fs::write(&event_file, event()).unwrap();
    let event_path = event_file.to_str().unwrap();
    let bucket = "dead-letters";
    moto.create_bucket(bucket).await;
    let now = "1767225660000";

    // The reference: the same event on a healthy table.
    moto.create_table("healthy").await;
    let vars = [("TABLE_NAME", "healthy")];
    let mut child = command(&moto, "invoke", &[event_path, "--now-ms", now, "-o", "/dev/null"], &log, &vars);
    assert_eq!(wait(&mut child, Duration::from_secs(120), &log), 0);
    let want = counters(usage_items(&moto, "healthy").await);
    assert_eq!(want.len(), 4, "hourly and daily items of two entities: {want:?}");

    // A malformed watermark in user-0's hourly item: its record goes to the
    // dead letter, user-1's is applied.
    let table = "broken";
    moto.create_table(table).await;
    let pk = "ns1/ENTITY#user-0";
    let sk = "#USAGE#gpt-4#2026-01-01T00:00:00Z";
    let junk = json!({"PK": {"S": pk}, "SK": {"S": sk}, "tpm": {"N": "5"}, "wm#0": {"S": "junk"}});
    moto.put_item(table, &junk.to_string()).await;
    let vars = [("TABLE_NAME", table), ("DEAD_LETTER_BUCKET", bucket)];
    let mut child = command(&moto, "invoke", &[event_path, "--now-ms", now, "-o", "/dev/null"], &log, &vars);
    assert_eq!(wait(&mut child, Duration::from_secs(120), &log), 0, "dead-lettered records count as handled");
    let dead = moto.list_objects(bucket).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].starts_with("dead-letter/"), "{dead:?}");

    // The cause is still there: the object stays (and the record is stored
    // again, by the replay's own invocation).
    let url = format!("s3://{bucket}/dead-letter");
    let mut child = command(&moto, "replay", &["--dead-letter", &url], &log, &vars);
    assert_eq!(wait(&mut child, Duration::from_secs(120), &log), 1, "{}", std::fs::read_to_string(&log).unwrap());
    let after = moto.list_objects(bucket).await;
    assert!(after.contains(&dead[0]), "the object moved although its record was not applied: {after:?}");
    assert!(after.iter().all(|k| !k.contains("/replayed/")), "{after:?}");

    // Fixed: the broken item is removed. Every dead-letter object (the
    // original and the copy the failed replay stored) is applied, and moved.
    moto.ddb_client()
        .delete_item()
        .table_name(table)
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap();
    let mut child = command(&moto, "replay", &["--dead-letter", &url], &log, &vars);
    assert_eq!(wait(&mut child, Duration::from_secs(120), &log), 0, "{}", std::fs::read_to_string(&log).unwrap());
    let done = last_line(&log);
    assert_eq!(done["objects_replayed"], json!(after.len()), "{done}");
    let moved = moto.list_objects(bucket).await;
    assert_eq!(moved.len(), after.len());
    assert!(moved.iter().all(|k| k.starts_with("dead-letter/replayed/")), "{moved:?}");
    assert_eq!(counters(usage_items(&moto, table).await), want, "applied once, as on the healthy table");

    // Again: nothing left to replay, nothing changes.
    let mut child = command(&moto, "replay", &["--dead-letter", &url], &log, &vars);
    assert_eq!(wait(&mut child, Duration::from_secs(120), &log), 0);
    assert_eq!(last_line(&log)["objects"], 0);
    assert_eq!(counters(usage_items(&moto, table).await), want);
    let _ = std::fs::remove_dir_all(&dir);
}
