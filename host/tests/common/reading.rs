//! Helpers of the read-side tests (host/tests/usage.rs, host/tests/reconcile.rs): a table
//! written by `zae-aggregator invoke` from real zae-limiter client traffic (the oracle's
//! recorded seed-1 stream) spread over three calendar months, its ground truth, and the
//! binary's read commands run to completion.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use super::moto::Moto;
use super::poller::{command, wait};
use super::streams;
use super::truth::{self, SnapTruth};
use zae_aggregator::stream::passes_filter;

/// The windows the aggregator maintains in these tests.
pub const WINDOWS: &str = "hourly,daily,monthly";
/// Records of the real stream used.
pub const RECORDS: usize = 900;
/// 2024-01-01T00:00:00Z, 2024-02-01, 2024-03-01 (epoch seconds): the three months.
pub const MONTHS_S: [i64; 3] = [1_704_067_200, 1_706_745_600, 1_709_251_200];
/// 2024-04-15T12:00:00Z: the clock of `usage average` (period January to March).
pub const NOW_MS: i64 = 1_713_182_400_000;

/// The real stream's first records, each record's window time moved into one
/// of the three months (in order: the first third in January, ...), keeping
/// its offset within the day so hours and days vary as they did.
pub fn three_month_records() -> Vec<Value> {
    records_in(0, RECORDS, &MONTHS_S)
}

/// `len` records of the real stream from `start`, their window times spread
/// over `months` (epoch seconds of each month's first second) as
/// [`three_month_records`] does.
pub fn records_in(start: usize, len: usize, months: &[i64]) -> Vec<Value> {
    let stream = streams::real_slice(start, len);
    let n = stream.records.len();
    stream
        .records
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            let t = r["dynamodb"]["ApproximateCreationDateTime"].as_f64().unwrap_or(0.0) as i64;
            let month = months[i * months.len() / n];
            // Days 1 to 5 of the month, the record's own time of day.
            let moved = month + (i as i64 % 5) * 86_400 + t.rem_euclid(86_400);
            r["dynamodb"]["ApproximateCreationDateTime"] = json!(moved);
            r
        })
        .collect()
}

/// A table written by `zae-aggregator invoke` from the records (batches of
/// 100, as Lambda delivers them after the template's filter), starting from
/// the items the records imply and zae-limiter's namespace registry item, and
/// ending with the bucket items as the client left them (the last image of
/// each; `reconcile` checks the hourly sums against their `tc`).
pub async fn aggregated_table(moto: &Moto, table: &str, records: &[Value], dir: &Path) {
    aggregated_table_with(moto, table, records, dir, WINDOWS).await;
}

/// [`aggregated_table`] with these `SNAPSHOT_WINDOWS`.
pub async fn aggregated_table_with(moto: &Moto, table: &str, records: &[Value], dir: &Path, windows: &str) {
    moto.create_table(table).await;
    let initial = streams::real_slice(0, RECORDS).initial_items;
    for item in &initial {
        moto.put_item(table, &item.to_string()).await;
    }
    for r in records {
        if r["eventName"] == "INSERT" && r["dynamodb"]["Keys"]["PK"]["S"] == "_/SYSTEM#" {
            moto.put_item(table, &r["dynamodb"]["NewImage"].to_string()).await;
        }
    }
    invoke_all(moto, table, records, dir, windows, "a");
    put_final_buckets(moto, table, records).await;
}

/// Put each bucket item's last image among the records (what the client
/// wrote last), delete those whose last record removed them.
pub async fn put_final_buckets(moto: &Moto, table: &str, records: &[Value]) {
    let mut last: std::collections::BTreeMap<(String, String), Option<&Value>> = Default::default();
    for r in records {
        let keys = &r["dynamodb"]["Keys"];
        let (Some(pk), Some(sk)) = (keys["PK"]["S"].as_str(), keys["SK"]["S"].as_str()) else { continue };
        if !(pk.contains("/BUCKET#") || sk.starts_with("#BUCKET#")) {
            continue;
        }
        let image = (r["eventName"] != "REMOVE").then(|| &r["dynamodb"]["NewImage"]);
        last.insert((pk.to_string(), sk.to_string()), image);
    }
    for ((pk, sk), image) in last {
        match image {
            Some(item) => moto.put_item(table, &item.to_string()).await,
            None => {
                let key = std::collections::HashMap::from([
                    ("PK".to_string(), aws_sdk_dynamodb::types::AttributeValue::S(pk)),
                    ("SK".to_string(), aws_sdk_dynamodb::types::AttributeValue::S(sk)),
                ]);
                moto.ddb_client().delete_item().table_name(table).set_key(Some(key)).send().await.unwrap();
            }
        }
    }
}

/// Deliver `records` (after the template's filter) to `zae-aggregator invoke`
/// in batches of 100 with these `SNAPSHOT_WINDOWS`; `tag` names the event files.
pub fn invoke_all(moto: &Moto, table: &str, records: &[Value], dir: &Path, windows: &str, tag: &str) {
    let delivered: Vec<&Value> = records.iter().filter(|r| passes_filter(r)).collect();
    let log = dir.join(format!("invoke-{tag}.log"));
    for (i, batch) in delivered.chunks(100).enumerate() {
        let path = dir.join(format!("event-{tag}-{i}.json"));
        std::fs::write(&path, json!({ "Records": batch }).to_string()).unwrap();
        let out = dir.join(format!("response-{tag}-{i}.json"));
        let args = [path.to_str().unwrap(), "-o", out.to_str().unwrap()];
        let mut child = command(moto, "invoke", &args, &log, &[("TABLE_NAME", table), ("SNAPSHOT_WINDOWS", windows)]);
        let code = wait(&mut child, std::time::Duration::from_secs(300), &log);
        assert_eq!(code, 0, "invoke of batch {i}: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }
}

/// The id of the namespace named `default` in the records' registry item.
pub fn default_namespace(records: &[Value]) -> String {
    records
        .iter()
        .find(|r| r["dynamodb"]["Keys"]["SK"]["S"] == "#NAMESPACE#default")
        .and_then(|r| r["dynamodb"]["NewImage"]["namespace_id"]["S"].as_str())
        .expect("the stream registers the default namespace")
        .to_string()
}

/// The ground truth of the records the aggregator was given.
pub fn ground_truth(records: &[Value]) -> Vec<SnapTruth> {
    let delivered: Vec<Value> = records.iter().filter(|r| passes_filter(r)).cloned().collect();
    let windows: Vec<&str> = WINDOWS.split(',').collect();
    truth::compute(&delivered, &windows, false).snapshots.into_values().collect()
}

/// Run `zae-aggregator SUBCOMMAND ARGS` to completion against `table`.
pub fn run(moto: &Moto, table: &str, subcommand: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zae-aggregator"))
        .arg(subcommand)
        .args(args)
        .env_clear()
        .envs(moto.aws_env())
        .env("TABLE_NAME", table)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running zae-aggregator {subcommand}: {e}"))
}
