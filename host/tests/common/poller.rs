//! Helpers of the `poll` and `replay` tests (host/tests/poll.rs,
//! host/tests/replay.rs): realistic traffic written into a moto table with a
//! stream, the stream read back, the binary run as a child process, and the
//! snapshot counters compared with the ground truth of the whole stream.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::Value;

use super::moto::{Moto, REGION};
use super::streams;
use super::truth::{self, Verdict};
use zae_aggregator::dynamo_json::item_to_json;
use zae_aggregator::stream::{lambda_record, passes_filter};

/// The snapshot windows of every run.
pub const WINDOWS: &str = "hourly,daily";
/// `SNAPSHOT_TTL_DAYS` of every run.
pub const TTL_DAYS: i64 = 90;

/// A DynamoDB Streams client for moto.
pub fn streams_client(moto: &Moto) -> aws_sdk_dynamodbstreams::Client {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .region(aws_sdk_dynamodbstreams::config::Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new("test", "test", None, None, "static"))
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
}

/// The table's current stream.
pub async fn stream_arn(moto: &Moto, table: &str) -> String {
    let out = moto.ddb_client().describe_table().table_name(table).send().await.expect("describe table");
    out.table().and_then(|t| t.latest_stream_arn()).expect("the table has a stream").to_string()
}

/// Every record of the stream's shards, as Lambda records, in order.
pub async fn whole_stream(moto: &Moto, arn: &str) -> Vec<Value> {
    let client = streams_client(moto);
    let d = client.describe_stream().stream_arn(arn).send().await.expect("describe stream");
    let mut out = Vec::new();
    for shard in d.stream_description().expect("a description").shards() {
        let mut it = client
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("an iterator")
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let page = client.get_records().shard_iterator(i).limit(1000).send().await.expect("records");
            if page.records().is_empty() {
                break;
            }
            out.extend(page.records().iter().map(|r| lambda_record(r, arn, REGION)));
            it = page.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

/// A fresh table named `table` with a stream, holding `n` generated writes
/// (`make_traffic`); returns the second before they started and the stream ARN.
pub async fn traffic_table(moto: &Moto, table: &str, seed: u64, n: usize) -> (i64, String) {
    moto.create_table(table).await;
    let started_s = zae_aggregator::lambda::now_ms() / 1000;
    make_traffic(moto, table, seed, n).await;
    (started_s, stream_arn(moto, table).await)
}

/// Write a generated stream's items into the table, so that moto's stream
/// holds realistic bucket and audit traffic: every image is put in order,
/// every audit deletion is put and deleted.
///
/// Token counts below zero are raised to zero: a bucket left in debt makes
/// each refill's own stream record plan the next refill (every stage runs
/// on every batch, docs/decisions.md#w8) until real time has paid the debt,
/// about a minute per run here, which says nothing about the poller.
pub async fn make_traffic(moto: &Moto, table: &str, seed: u64, n: usize) {
    let client = moto.ddb_client();
    for r in streams::generate(seed, n).records {
        let d = &r["dynamodb"];
        match r["eventName"].as_str() {
            Some("REMOVE") => {
                moto.put_item(table, &d["OldImage"].to_string()).await;
                let key = zae_aggregator::dynamo_json::value_to_attribute_value(&serde_json::json!({"M": d["Keys"]}));
                let Ok(AttributeValue::M(key)) = key else { panic!("keys of {r}") };
                client.delete_item().table_name(table).set_key(Some(key)).send().await.expect("delete");
            }
            _ if d["NewImage"].is_object() => moto.put_item(table, &out_of_debt(&d["NewImage"]).to_string()).await,
            _ => {}
        }
    }
}

/// An image with every `b_{limit}_tk` below zero raised to zero.
fn out_of_debt(image: &Value) -> Value {
    let mut image = image.clone();
    if let Some(m) = image.as_object_mut() {
        for (name, v) in m.iter_mut() {
            let negative = v["N"].as_str().is_some_and(|n| n.starts_with('-'));
            if name.starts_with("b_") && name.ends_with("_tk") && negative {
                *v = serde_json::json!({"N": "0"});
            }
        }
    }
    image
}

/// The environment of a child `zae-aggregator`.
pub fn env(moto: &Moto) -> Vec<(String, String)> {
    let mut vars = moto.aws_env();
    for (k, v) in [
        ("SNAPSHOT_WINDOWS", WINDOWS),
        ("SNAPSHOT_TTL_DAYS", "90"),
        ("ZAE_LIMITER_VERSION", "0.13"),
        ("LOG_LEVEL", "INFO"),
    ] {
        vars.push((k.to_string(), v.to_string()));
    }
    vars
}

/// Start `zae-aggregator poll ARGS`, output appended to `log`.
pub fn poll(moto: &Moto, args: &[&str], log: &Path) -> Child {
    command(moto, "poll", args, log, &[])
}

/// Start `zae-aggregator SUBCOMMAND ARGS` with [`env`] and `extra`
/// variables, output appended to `log`.
pub fn command(moto: &Moto, subcommand: &str, args: &[&str], log: &Path, extra: &[(&str, &str)]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_zae-aggregator"))
        .arg(subcommand)
        .args(args)
        .env_clear()
        .envs(env(moto))
        .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting zae-aggregator {subcommand}: {e}"))
}

/// Wait for a child's exit code (killed and a panic after `limit`).
pub fn wait(child: &mut Child, limit: Duration, log: &Path) -> i32 {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("poll did not end within {limit:?}; log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Compare the table's snapshots with the truth of the whole stream.
pub async fn verdict(moto: &Moto, table: &str, arn: &str, started_s: i64) -> Verdict {
    let records = whole_stream(moto, arn).await;
    verdict_of(moto, table, &records, started_s).await
}

/// Compare the table's snapshots with the truth of `records` that pass
/// the deployment template's filter (what Lambda delivers: old-format
/// `#BUCKET#` items are not among them).
pub async fn verdict_of(moto: &Moto, table: &str, records: &[Value], started_s: i64) -> Verdict {
    let windows: Vec<&str> = WINDOWS.split(',').collect();
    let delivered: Vec<Value> = records.iter().filter(|r| passes_filter(r)).cloned().collect();
    let t = truth::compute(&delivered, &windows, false);
    assert!(!t.snapshots.is_empty(), "the traffic produced usage");
    let mut v = Verdict::default();
    let day = TTL_DAYS * 86_400;
    let now_s = zae_aggregator::lambda::now_ms() / 1000;
    truth::check_snapshots(&t, &usage_items(moto, table).await, (started_s + day - 1, now_s + day + 1), &mut v);
    v
}

/// The table's snapshot items (DynamoDB JSON maps), in key order.
pub async fn usage_items(moto: &Moto, table: &str) -> Vec<Value> {
    let mut items: Vec<Value> = moto
        .scan(table)
        .await
        .iter()
        .filter(|i| i.get("SK").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk.starts_with("#USAGE#")))
        .map(|i| serde_json::from_str(&item_to_json(i)).unwrap())
        .collect();
    items.sort_by_key(|i| (i["PK"]["S"].to_string(), i["SK"]["S"].to_string()));
    items
}

/// A fresh scratch directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zae-poll-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The last JSON line of a log.
pub fn last_line(log: &Path) -> Value {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok()).unwrap_or(Value::Null)
}
