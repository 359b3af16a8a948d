//! Shared helpers of the host's integration tests.

#![allow(dead_code)]

pub mod contract;
pub mod delivery;
pub mod fault_proxy;
pub mod moto;
pub mod poller;
pub mod reading;
pub mod rng;
pub mod split_stream;
pub mod streams;
pub mod truth;

#[allow(unused_imports)]
pub use contract::{config, vector_batch, wit_config, OwnedBatch};

use std::sync::OnceLock;

use serde_json::{json, Value};
use zae_aggregator::bindings as wit;
use zae_aggregator::executor::{Executor, Report};
use zae_aggregator::{Limits, Planner};
use zae_planner::vector::{run_native, Vector};

/// One planner per test binary: compiling the component is the slow part.
pub fn planner() -> &'static Planner {
    static PLANNER: OnceLock<Planner> = OnceLock::new();
    PLANNER.get_or_init(|| Planner::new(Limits::default()).expect("the embedded component compiles"))
}

/// Plan `batch` with the wasm planner; panics on any failure.
pub async fn plan(batch: &wit::Batch<'_>) -> wit::BatchPlan {
    match planner().plan(batch).await {
        Ok(Ok(plan)) => plan,
        Ok(Err(e)) => panic!("the planner refused the batch: {e}"),
        Err(e) => panic!("the planner call failed: {e}"),
    }
}

/// Execute a copy of `plan`'s writes (the plan stays usable for a second
/// execution or for assertions).
pub async fn execute(exec: &Executor, batch: &wit::Batch<'_>, plan: &wit::BatchPlan) -> Report {
    exec.execute_plan(planner(), batch, plan.writes.clone(), plan.images.clone(), &[], &plan.outcomes).await
}

/// The `(PK, SK)` strings of a write's item, from its key attributes.
pub fn write_key(w: &wit::Write) -> Option<(String, String)> {
    let attrs = match &w.operation {
        wit::Operation::UpdateItem(u) => &u.key,
        wit::Operation::PutItem(p) => &p.item,
        wit::Operation::PutObject(_) => return None,
        wit::Operation::TransactWriteItems(items) => match items.first()? {
            wit::TransactItem::Put(p) => &p.item,
            wit::TransactItem::Update(u) => &u.key,
            wit::TransactItem::ConditionCheck(c) => &c.key,
        },
    };
    let get = |name: &str| -> Option<String> {
        let a = attrs.iter().find(|a| a.name == name)?;
        let v: Value = serde_json::from_str(&a.value).ok()?;
        Some(v.get("S")?.as_str()?.to_string())
    };
    Some((get("PK")?, get("SK")?))
}

/// A Lambda event of `n` bucket MODIFY records (new key format, two limits,
/// 250 distinct buckets, increasing sequence numbers).
pub fn bucket_event(n: usize) -> String {
    let base_ms: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let pk = format!("ns1/BUCKET#user-{}#gpt-4#0", i % 250);
            let old_tc = (i as i64) * 1_000;
            let new_tc = old_tc + 1_500;
            let rf = base_ms + (i as i64) * 7;
            json!({
                "eventID": format!("ev-{i}"),
                "eventName": "MODIFY",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": (rf / 1000),
                    "SequenceNumber": format!("{}", 100_000_000_000_000_000_000u128 + i as u128),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                    "Keys": {"PK": {"S": pk}, "SK": {"S": "#STATE"}},
                    "NewImage": {
                        "PK": {"S": pk},
                        "SK": {"S": "#STATE"},
                        "entity_id": {"S": format!("user-{}", i % 250)},
                        "rf": {"N": rf.to_string()},
                        "shard_count": {"N": "1"},
                        "b_tpm_tc": {"N": new_tc.to_string()},
                        "b_tpm_tk": {"N": "5000000"},
                        "b_tpm_cp": {"N": "10000000"},
                        "b_tpm_ra": {"N": "10000000"},
                        "b_tpm_rp": {"N": "60000"},
                        "b_rpm_tc": {"N": (i + 1).to_string()},
                        "b_rpm_tk": {"N": "50000"},
                        "b_rpm_cp": {"N": "100000"},
                        "b_rpm_ra": {"N": "100000"},
                        "b_rpm_rp": {"N": "60000"}
                    },
                    "OldImage": {
                        "PK": {"S": pk},
                        "SK": {"S": "#STATE"},
                        "shard_count": {"N": "1"},
                        "b_tpm_tc": {"N": old_tc.to_string()},
                        "b_rpm_tc": {"N": i.to_string()}
                    }
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/rate-limits/stream/2026-01-01T00:00:00.000"
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

/// Byte offset of the first difference between `a` and `b`, if any.
pub fn first_difference(a: &str, b: &str) -> Option<usize> {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => Some(i),
        None if a.len() != b.len() => Some(a.len().min(b.len())),
        None => None,
    }
}

/// Up to 60 bytes of `s` around `offset`, for a mismatch report.
pub fn context(s: &str, offset: usize) -> String {
    let b = s.as_bytes();
    let start = offset.saturating_sub(30).min(b.len());
    let end = (offset + 30).min(b.len());
    format!("{:?}", String::from_utf8_lossy(&b[start..end]))
}

fn compare(name: &str, left: (&str, &str), right: (&str, &str), out: &mut Vec<String>) {
    if let Some(at) = first_difference(left.1, right.1) {
        out.push(format!(
            "{name}: {} != {} at byte {at} (lengths {} and {})\n    {:>8}: {}\n    {:>8}: {}",
            left.0,
            right.0,
            left.1.len(),
            right.1.len(),
            left.0,
            context(left.1, at),
            right.0,
            context(right.1, at),
        ));
    }
}

/// Run every vector natively and through the wasm `planner`; return one
/// report per disagreement (wasm vs native, and each vs the expected plan).
pub async fn check_vectors(planner: &Planner, vectors: &[Vector]) -> Vec<String> {
    let mut mismatches = Vec::new();
    for v in vectors {
        let native = run_native(v);
        let owned = vector_batch(v);
        let answer = match (&v.observed, &v.read_results) {
            (None, None) => planner.plan(&owned.batch()).await,
            (Some(observed), _) => {
                let observed: Vec<wit::ObservedItem<'_>> = observed
                    .iter()
                    .map(|o| wit::ObservedItem { write_id: o.write_id, item: o.item.as_deref() })
                    .collect();
                planner.replan_snapshots(&owned.batch(), &observed).await
            }
            (None, Some(results)) => {
                use zae_planner::plan::ReadOutcome as Native;
                let results: Vec<wit::ReadResult<'_>> = results
                    .iter()
                    .map(|r| wit::ReadResult {
                        read_id: r.read_id,
                        outcome: match &r.outcome {
                            Native::Found(item) => wit::ReadOutcome::Found(item),
                            Native::Missing => wit::ReadOutcome::Missing,
                            Native::Failed(why) => wit::ReadOutcome::Failed(why),
                        },
                    })
                    .collect();
                planner.plan_after_reads(&owned.batch(), &results).await
            }
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(call) => {
                mismatches.push(format!("{}: the wasm call failed: {call}", v.name));
                continue;
            }
        };
        // The component's own rendering (`render-plan` / `render-error`), as
        // `zae-aggregator plan` prints it.
        let wasm = match planner.render(&answer).await {
            Ok(text) => text,
            Err(call) => {
                mismatches.push(format!("{}: the render call failed: {call}", v.name));
                continue;
            }
        };
        compare(&v.name, ("wasm", &wasm), ("native", &native), &mut mismatches);
        if let Some(expected) = &v.expected {
            compare(&v.name, ("native", &native), ("expected", expected), &mut mismatches);
            compare(&v.name, ("wasm", &wasm), ("expected", expected), &mut mismatches);
        }
    }
    mismatches
}
