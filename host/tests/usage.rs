//! `zae-aggregator usage list | summary | average` against a real moto server
//! (docs/reading.md#commands), on a table written by our aggregator from real
//! zae-limiter client traffic (the oracle's recorded seed-1 stream, its window
//! times spread over three calendar months so that every month of the period
//! has usage):
//!
//! * `usage_answers_equal_the_ground_truth`: `summary` per entity, `list` per
//!   entity and resource, and `list` by resource alone (GSI2) equal the ground
//!   truth computed from the stream records (common::truth), for every window;
//!   `average --months 3` answers from the monthly window, reads exactly 3
//!   items for one resource (`--stats`), and its totals equal the truth's
//!   hourly sums over the period; a bad query time is exit 2 before any read.
//! * `usage_average_falls_back_when_monthly_is_missing`: with one monthly item
//!   deleted, the average is answered from the daily window, to the same sum.

mod common;

use std::collections::BTreeMap;
use std::process::Output;

use serde_json::{json, Value};

use common::moto::Moto;
use common::poller::scratch;
use common::reading::{aggregated_table, ground_truth, run, three_month_records, NOW_MS};
use common::truth::SnapTruth;

fn usage(moto: &Moto, table: &str, args: &[&str]) -> Output {
    run(moto, table, "usage", args)
}

/// The JSON answer of a successful `usage` run.
fn answer(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("usage prints JSON")
}

/// The `items read: N` of `--stats`.
fn items_read(out: &Output) -> u64 {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("items read: ")).unwrap_or_else(|| panic!("no stats in {err}"));
    line["items read: ".len()..].split(',').next().unwrap().parse().unwrap()
}

/// Items, counter sums and `total_events` of one resource and window.
type Sums = (usize, BTreeMap<String, i128>, i128);

fn counters(v: &Value) -> BTreeMap<String, i128> {
    v.as_object().unwrap().iter().map(|(k, n)| (k.clone(), n.as_str().unwrap().parse().unwrap())).collect()
}

fn add(into: &mut BTreeMap<String, i128>, from: &BTreeMap<String, i128>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// The entity and resource with the most truth items (hourly).
fn busiest(truth: &[SnapTruth]) -> (String, String, String) {
    let mut count: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for s in truth.iter().filter(|s| s.window == "hourly") {
        *count.entry((s.ns.clone(), s.entity.clone(), s.resource.clone())).or_default() += 1;
    }
    count.into_iter().max_by_key(|(k, n)| (*n, k.clone())).expect("the traffic produced usage").0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_answers_equal_the_ground_truth() {
    let moto = Moto::start();
    let dir = scratch("usage-truth");
    let table = "usage-truth";
    let records = three_month_records();
    aggregated_table(&moto, table, &records, &dir).await;
    let truth = ground_truth(&records);
    let (ns, entity, resource) = busiest(&truth);

    // summary --entity: one summary per (resource, window), equal to the truth's sums.
    let out = usage(&moto, table, &["summary", "--entity", &entity, "--format", "json"]);
    let got = answer(&out);
    let mut want: BTreeMap<(String, String), Sums> = BTreeMap::new();
    for s in truth.iter().filter(|s| s.ns == ns && s.entity == entity) {
        let w = want.entry((s.resource.clone(), s.window.clone())).or_default();
        w.0 += 1;
        add(&mut w.1, &s.counters);
        w.2 += s.total_events;
    }
    let summaries = got["summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), want.len(), "{got}");
    for s in summaries {
        let key = (s["resource"].as_str().unwrap().to_string(), s["window"].as_str().unwrap().to_string());
        let (n, totals, events) = &want[&key];
        assert_eq!(s["namespace"], ns);
        assert_eq!(s["snapshots"], json!(n), "{key:?}");
        assert_eq!(&counters(&s["totals"]), totals, "{key:?}");
        assert_eq!(s["total_events"], json!(events.to_string()), "{key:?}");
    }
    assert_eq!(got["skipped"], json!([]));

    // list --entity --resource --window hourly: every item, newest first.
    let out = usage(
        &moto,
        table,
        &["list", "--entity", &entity, "--resource", &resource, "--window", "hourly", "--format", "json"],
    );
    let rows = answer(&out)["rows"].as_array().unwrap().clone();
    let mut want: Vec<&SnapTruth> = truth
        .iter()
        .filter(|s| s.ns == ns && s.entity == entity && s.resource == resource && s.window == "hourly")
        .collect();
    want.sort_by(|a, b| b.window_start.cmp(&a.window_start));
    assert_eq!(rows.len(), want.len());
    for (row, t) in rows.iter().zip(&want) {
        assert_eq!(row["window_start"], t.window_start);
        assert_eq!(counters(&row["counters"]), t.counters, "{}", t.window_start);
        assert_eq!(row["total_events"], json!(t.total_events.to_string()));
    }

    // list --from/--to narrows by key range and the reader's inclusive bounds.
    let out = usage(
        &moto,
        table,
        &[
            "list",
            "--entity",
            &entity,
            "--resource",
            &resource,
            "--from",
            "2024-02",
            "--to",
            "2024-02",
            "--format",
            "json",
            "--stats",
        ],
    );
    let rows = answer(&out)["rows"].as_array().unwrap().clone();
    let feb = truth
        .iter()
        .filter(|s| s.ns == ns && s.entity == entity && s.resource == resource && s.window_start.starts_with("2024-02"))
        .count();
    assert_eq!(rows.len(), feb);
    assert!(items_read(&out) <= feb as u64 + 1, "the key range reads only February (and the registry item)");

    // list --resource alone (GSI2): every entity's items of that resource.
    let out = usage(&moto, table, &["list", "--resource", &resource, "--window", "daily", "--format", "json"]);
    let rows = answer(&out)["rows"].as_array().unwrap().clone();
    let want = truth.iter().filter(|s| s.ns == ns && s.resource == resource && s.window == "daily").count();
    assert_eq!(rows.len(), want);

    // average --months 3 with monthly maintained: 3 monthly items, the hourly sums.
    let mut hourly: BTreeMap<String, i128> = BTreeMap::new();
    for s in truth.iter().filter(|s| s.ns == ns && s.entity == entity && s.resource == resource && s.window == "hourly")
    {
        add(&mut hourly, &s.counters);
    }
    let now = NOW_MS.to_string();
    let args = ["average", "--entity", &entity, "--resource", &resource, "--months", "3", "--now-ms", &now];
    let out = usage(&moto, table, &[&args[..], &["--format", "json", "--stats"]].concat());
    let got = answer(&out);
    let r = &got["resources"][0];
    assert_eq!(
        (r["window"].as_str(), r["complete"].as_bool(), r["items"].as_u64()),
        (Some("monthly"), Some(true), Some(3))
    );
    assert_eq!(counters(&r["totals"]), hourly);
    // The registry item (namespace name -> id) and the three monthly items.
    assert_eq!(items_read(&out), 4, "{}", String::from_utf8_lossy(&out.stderr));
    // The table format says which window answered.
    let out = usage(&moto, table, &[&args[..], &["--format", "table"]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().nth(1).is_some_and(|l| l.contains(" monthly ") && l.contains(" true ")), "{text}");
    assert!(text.contains("period: 2024-01, 2024-02, 2024-03 (3 months)"), "{text}");

    // Every resource of the entity, found from its bucket items.
    let out =
        usage(&moto, table, &["average", "--entity", &entity, "--months", "3", "--now-ms", &now, "--format", "csv"]);
    assert_eq!(out.status.code(), Some(0));
    let csv = String::from_utf8_lossy(&out.stdout);
    let resources = truth
        .iter()
        .filter(|s| s.ns == ns && s.entity == entity)
        .map(|s| &s.resource)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(csv.lines().count(), resources.len() + 1, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains(",monthly,true,3,")), "{csv}");

    // A bad time is refused before anything is read.
    let out = usage(&moto, table, &["list", "--entity", &entity, "--from", "2024-3-1", "--stats"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"kind\":\"bad-time\""));
    assert!(String::from_utf8_lossy(&out.stderr).contains("items read: 1,"), "only the registry item");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_average_falls_back_when_monthly_is_missing() {
    let moto = Moto::start();
    let dir = scratch("usage-fallback");
    let table = "usage-fallback";
    let records = three_month_records();
    aggregated_table(&moto, table, &records, &dir).await;
    let truth = ground_truth(&records);
    let (ns, entity, resource) = busiest(&truth);
    let pk = format!("{ns}/ENTITY#{entity}");
    let sk = format!("#USAGE#{resource}#2024-02-01T00:00:00Z#monthly");
    let key = std::collections::HashMap::from([
        ("PK".to_string(), aws_sdk_dynamodb::types::AttributeValue::S(pk)),
        ("SK".to_string(), aws_sdk_dynamodb::types::AttributeValue::S(sk)),
    ]);
    moto.ddb_client().delete_item().table_name(table).set_key(Some(key)).send().await.unwrap();
    let mut daily: BTreeMap<String, i128> = BTreeMap::new();
    for s in truth.iter().filter(|s| s.ns == ns && s.entity == entity && s.resource == resource && s.window == "daily")
    {
        add(&mut daily, &s.counters);
    }
    let now = NOW_MS.to_string();
    let out = usage(
        &moto,
        table,
        &[
            "average",
            "--entity",
            &entity,
            "--resource",
            &resource,
            "--months",
            "3",
            "--now-ms",
            &now,
            "--format",
            "json",
        ],
    );
    let got = answer(&out);
    let r = &got["resources"][0];
    assert_eq!((r["window"].as_str(), r["complete"].as_bool()), (Some("daily"), Some(true)), "{got}");
    assert_eq!(counters(&r["totals"]), daily);
    let _ = std::fs::remove_dir_all(&dir);
}

/// zae-limiter's own `get_usage_summary` (tests/local/usage_summary.py) on the same table.
fn python_summary(python: &str, moto: &Moto, table: &str, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/local/usage_summary.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--endpoint", &moto.endpoint, "--table", table])
        .args(args)
        .envs(moto.aws_env())
        .output()
        .expect("running the Python library");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// `usage summary` equals zae-limiter 0.17.0's `get_usage_summary` for the windows it reads
/// (hourly and daily: counts, totals, first and last window), and "average monthly usage over
/// the last 3 months" costs `usage average` (monthly window) 3 items where the library sums
/// every hourly item of the period; both numbers are printed (run with `--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the venv of tests/local/requirements-demo.txt: ZAE_DEMO_PYTHON=/path/to/venv/bin/python"]
async fn the_python_library_agrees() {
    let python = std::env::var("ZAE_DEMO_PYTHON").expect("ZAE_DEMO_PYTHON: the demo venv's python");
    let moto = Moto::start();
    let dir = scratch("usage-python");
    // The library opens a stack's table by the stack's name.
    let table = "zae-limiter";
    let records = three_month_records();
    aggregated_table(&moto, table, &records, &dir).await;
    let ns = common::reading::default_namespace(&records);
    let truth: Vec<SnapTruth> = common::reading::ground_truth(&records).into_iter().filter(|s| s.ns == ns).collect();
    let (_, entity, resource) = busiest(&truth);
    for window in ["hourly", "daily"] {
        let lib =
            python_summary(&python, &moto, table, &["--entity", &entity, "--resource", &resource, "--window", window]);
        let ours = usage(
            &moto,
            table,
            &["summary", "--entity", &entity, "--resource", &resource, "--window", window, "--format", "json"],
        );
        let ours = &answer(&ours)["summaries"][0];
        assert_eq!(lib["snapshot_count"], ours["snapshots"], "{window}: {lib} / {ours}");
        let lib_total: BTreeMap<String, i128> =
            lib["total"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap().into())).collect();
        assert_eq!(lib_total, counters(&ours["totals"]), "{window}");
        assert_eq!(lib["min_window_start"], ours["first_window_start"], "{window}");
        assert_eq!(lib["max_window_start"], ours["last_window_start"], "{window}");
    }
    // "Average monthly usage over the last 3 months" (January to March 2024).
    let lib = python_summary(
        &python,
        &moto,
        table,
        &[
            "--entity",
            &entity,
            "--resource",
            &resource,
            "--window",
            "hourly",
            "--start",
            "2024-01-01T00:00:00Z",
            "--end",
            "2024-03-31T23:59:59Z",
        ],
    );
    let now = NOW_MS.to_string();
    let out = usage(
        &moto,
        table,
        &[
            "average",
            "--entity",
            &entity,
            "--resource",
            &resource,
            "--months",
            "3",
            "--now-ms",
            &now,
            "--format",
            "json",
            "--stats",
        ],
    );
    let ours = answer(&out);
    let stats = String::from_utf8_lossy(&out.stderr).to_string();
    let lib_total: BTreeMap<String, i128> =
        lib["total"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap().into())).collect();
    assert_eq!(counters(&ours["resources"][0]["totals"]), lib_total);
    assert_eq!(ours["resources"][0]["window"], "monthly");
    eprintln!(
        "average monthly usage over the last 3 months, {entity} / {resource}:\n  zae-aggregator usage average (monthly): {}\n  get_usage_summary over hourly items: {} hourly items summed; items read: {}, read units: {}, requests: {}",
        stats.trim(),
        lib["snapshot_count"],
        lib["items"],
        lib["read_units"],
        lib["requests"]
    );
    assert!(lib["items"].as_u64().unwrap() > items_read(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
