//! `zae-aggregator reconcile` against a real moto server (docs/reading.md#reconcile), on a
//! table written by our aggregator from real zae-limiter client traffic over three months
//! (hourly, daily and monthly maintained from the start):
//!
//! * `a_consistent_table_has_no_drift_and_each_injected_drift_is_found`: 0 drift (exit 0) on
//!   the table as written, for the whole namespace (GSI4) and for one entity; then an hourly
//!   item edited makes exactly its day drift, with both values (exit 1); then a daily item
//!   deleted makes its day drift with the item absent, and its month drift against the
//!   remaining daily sum; the table format names the counters with both values.
//! * the same test, on the bucket items' consumption counters: every hourly counter of the
//!   namespace is within its buckets' `tc` as the client left them; then one hour counted a
//!   second time in all three windows alike (no drift between windows) is found above its
//!   buckets' consumption (exit 1), in JSON and as a `buckets` line of the table.

mod common;

use std::collections::HashMap;
use std::process::Output;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

use common::moto::Moto;
use common::poller::scratch;
use common::reading::{aggregated_table, default_namespace, ground_truth, run, three_month_records};

fn reconcile(moto: &Moto, table: &str, args: &[&str]) -> (i32, Value, String) {
    let out: Output = run(moto, table, "reconcile", args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let code = out.status.code().unwrap_or(-1);
    if args.contains(&"table") {
        return (code, Value::String(String::from_utf8_lossy(&out.stdout).to_string()), stderr);
    }
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} / {stderr}", String::from_utf8_lossy(&out.stdout)));
    (code, v, stderr)
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("PK".to_string(), AttributeValue::S(pk.into())), ("SK".to_string(), AttributeValue::S(sk.into()))])
}

/// Edit one snapshot item as a bug or a person would: `ADD tpm n`.
async fn add_tpm(moto: &Moto, table: &str, pk: &str, sk: &str, n: u64) {
    moto.ddb_client()
        .update_item()
        .table_name(table)
        .set_key(Some(key(pk, sk)))
        .update_expression("ADD tpm :n")
        .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistent_table_has_no_drift_and_each_injected_drift_is_found() {
    let moto = Moto::start();
    let dir = scratch("reconcile");
    let table = "reconcile";
    let records = three_month_records();
    aggregated_table(&moto, table, &records, &dir).await;
    let ns = default_namespace(&records);
    let truth: Vec<_> = ground_truth(&records).into_iter().filter(|s| s.ns == ns).collect();
    let daily = truth.iter().filter(|s| s.window == "daily").count();
    let monthly = truth.iter().filter(|s| s.window == "monthly").count();

    // The whole `default` namespace: every daily and monthly item compared, none drifts.
    let (code, v, err) = reconcile(&moto, table, &["--format", "json", "--stats"]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["drifts"], json!([]));
    assert_eq!(v["skipped"], json!([]));
    assert_eq!(v["checked"], json!(daily + monthly), "every period of a table maintained from the start");
    assert!(err.contains("items read: "), "{err}");
    let c = &v["consumption"];
    assert_eq!(c["exceeding"], json!([]), "{c}");
    assert!(c["checked"].as_u64().unwrap() > 0, "the hourly counters were checked against the buckets: {c}");
    eprintln!("consumption bound, whole namespace: {c}");

    // One hourly item edited: exactly its day drifts, with both values.
    let h = truth
        .iter()
        .filter(|s| s.window == "hourly" && s.counters.get("tpm").is_some_and(|v| *v > 0))
        .nth(7)
        .expect("an hourly item with tpm");
    let pk = format!("{}/ENTITY#{}", h.ns, h.entity);
    add_tpm(&moto, table, &pk, &format!("#USAGE#{}#{}", h.resource, h.window_start), 5).await;
    let (code, v, _) = reconcile(&moto, table, &["--entity", &h.entity, "--format", "json"]);
    assert_eq!(code, 1, "{v}");
    let drifts = v["drifts"].as_array().unwrap();
    assert_eq!(drifts.len(), 1, "{v}");
    let d = &drifts[0];
    let day = format!("{}T00:00:00Z", &h.window_start[..10]);
    assert_eq!(
        (d["window"].as_str(), d["window_start"].as_str(), d["present"].as_bool()),
        (Some("daily"), Some(day.as_str()), Some(true))
    );
    let stored: i128 = d["stored"]["tpm"].as_str().unwrap().parse().unwrap();
    let summed: i128 = d["summed"]["tpm"].as_str().unwrap().parse().unwrap();
    assert_eq!(summed, stored + 5);

    // A daily item deleted inside the span: its day drifts with the item absent, and its
    // month drifts against the remaining daily items.
    let mut days: Vec<&str> = truth
        .iter()
        .filter(|s| s.window == "daily" && s.ns == h.ns && s.entity == h.entity && s.resource == h.resource)
        .map(|s| s.window_start.as_str())
        .collect();
    days.sort();
    days.retain(|d| **d != *day);
    let gone = days[days.len() / 2].to_string();
    moto.ddb_client()
        .delete_item()
        .table_name(table)
        .set_key(Some(key(&pk, &format!("#USAGE#{}#{gone}#daily", h.resource))))
        .send()
        .await
        .unwrap();
    let (code, v, _) = reconcile(&moto, table, &["--entity", &h.entity, "--format", "json"]);
    assert_eq!(code, 1);
    let found: Vec<(String, String, bool)> = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["window"].as_str().unwrap().to_string(),
                d["window_start"].as_str().unwrap().to_string(),
                d["present"].as_bool().unwrap(),
            )
        })
        .collect();
    let month = format!("{}-01T00:00:00Z", &gone[..7]);
    assert!(found.contains(&("daily".into(), gone.clone(), false)), "{found:?}");
    assert!(found.contains(&("monthly".into(), month.clone(), true)), "{found:?}");
    assert!(found.contains(&("daily".into(), day.clone(), true)), "{found:?}");
    assert_eq!(found.len(), 3, "{v}");

    // The table format: one line per drifting counter, both values.
    let (code, text, _) = reconcile(&moto, table, &["--entity", &h.entity, "--format", "table"]);
    assert_eq!(code, 1);
    let text = text.as_str().unwrap().to_string();
    assert!(text.starts_with("namespace"), "{text}");
    assert!(text.lines().any(|l| l.contains(&gone) && l.contains(" false ") && l.contains(" tpm ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("checked ") && l.ends_with("drifting")), "{text}");

    // One hour of another entity counted again in every window (the windows still agree): only
    // the bound against the buckets' consumption can see it.
    let x = truth
        .iter()
        .find(|s| s.window == "hourly" && s.entity != h.entity && s.counters.get("tpm").is_some_and(|v| *v > 0))
        .expect("an hourly item of another entity");
    let x_pk = format!("{}/ENTITY#{}", x.ns, x.entity);
    let (hour, day, month) = (x.window_start.clone(), &x.window_start[..10], &x.window_start[..7]);
    for sk in [
        format!("#USAGE#{}#{hour}", x.resource),
        format!("#USAGE#{}#{day}T00:00:00Z#daily", x.resource),
        format!("#USAGE#{}#{month}-01T00:00:00Z#monthly", x.resource),
    ] {
        add_tpm(&moto, table, &x_pk, &sk, 1_000_000_000_000).await;
    }
    let (code, v, _) = reconcile(&moto, table, &["--entity", &x.entity, "--format", "json"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["drifts"], json!([]), "the windows agree with each other");
    let exceeding = v["consumption"]["exceeding"].as_array().unwrap();
    assert_eq!(exceeding.len(), 1, "{v}");
    assert_eq!(
        (exceeding[0]["resource"].as_str(), exceeding[0]["limit"].as_str()),
        (Some(x.resource.as_str()), Some("tpm"))
    );
    let (code, text, _) = reconcile(&moto, table, &["--entity", &x.entity, "--format", "table"]);
    assert_eq!(code, 1);
    let text = text.as_str().unwrap().to_string();
    assert!(text.lines().any(|l| l.contains(" buckets ") && l.contains(" tpm ")), "{text}");
    assert!(text.contains("1 above it"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
