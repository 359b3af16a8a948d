//! The wasmtime host: calls through the component agree with the native
//! planner, limits turn into errors rather than panics, and a planner keeps
//! serving after a failed call.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use zae_aggregator::{CallError, Limits, Planner};
use zae_planner::config::Config;
use zae_planner::plan::{canonical_json, Attribute, Batch, ObservedItem, PlanError};
use zae_planner::vector::load_all;
use zae_planner::window::Window;

const NOW_MS: i64 = 1_767_229_200_000; // 2026-01-01T01:00:00Z

fn batch<'a>(event: &'a str, config: &'a Config) -> Batch<'a> {
    Batch { event_json: event, config, now_ms: NOW_MS, invocation_id: "req-1" }
}

async fn assert_serves(planner: &Planner) {
    let config = Config::default();
    let event = common::bucket_event(3);
    let b = batch(&event, &config);
    let wasm = planner.plan(&b).await.expect("no call error").expect("a plan");
    assert_eq!(canonical_json(&wasm), zae_planner::plan_json(&b).unwrap());
}

#[test]
fn planner_is_shareable_across_threads() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Planner>();
    check::<CallError>();
}

#[tokio::test]
async fn empty_event_plans_through_wasm() {
    let config = Config::default();
    let b = batch(r#"{"Records":[]}"#, &config);
    let plan = common::planner().plan(&b).await.expect("no call error").expect("a plan");
    assert_eq!(plan.counters.records, 0);
    assert!(plan.writes.is_empty());
    assert_eq!(canonical_json(&plan), zae_planner::plan_json(&b).unwrap());
}

#[tokio::test]
async fn bucket_event_plans_identically_through_wasm() {
    let config = Config { archive_bucket: Some("archive".into()), ..Config::default() };
    let event = common::bucket_event(40);
    let b = batch(&event, &config);
    let plan = common::planner().plan(&b).await.expect("no call error").expect("a plan");
    assert!(!plan.writes.is_empty());
    assert_eq!(canonical_json(&plan), zae_planner::plan_json(&b).unwrap());
}

#[tokio::test]
async fn replan_snapshots_matches_native() {
    let config = Config::default();
    let event = common::bucket_event(5);
    let b = batch(&event, &config);
    let native = zae_planner::plan(&b).unwrap();
    let first = native.writes.iter().find_map(|w| match &w.operation {
        zae_planner::plan::Operation::UpdateItem(u) if w.purpose == zae_planner::plan::Purpose::Snapshot => {
            Some(u.key.clone())
        }
        _ => None,
    });
    let key = first.expect("the event yields a snapshot write");
    let observed = vec![
        ObservedItem { key: key.clone(), item: None },
        ObservedItem { key: vec![Attribute::s("PK", "nope"), Attribute::s("SK", "nope")], item: Some("{}".into()) },
    ];
    let wasm = common::planner().replan_snapshots(&b, &observed).await.expect("no call error");
    let native = zae_planner::replan_snapshots(&b, &observed);
    assert_eq!(wasm.map(|p| canonical_json(&p)), native.map(|p| canonical_json(&p)));

    let bad = vec![ObservedItem { key: vec![], item: None }];
    let wasm = common::planner().replan_snapshots(&b, &bad).await.expect("no call error");
    assert!(matches!(wasm, Err(PlanError::BadEvent(_))), "{wasm:?}");
    assert_eq!(wasm.map(|_| ()), zae_planner::replan_snapshots(&b, &bad).map(|_| ()));
}

#[tokio::test]
async fn config_from_env_round_trips_through_wasm() {
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("TABLE_NAME", "limits"), ("SNAPSHOT_WINDOWS", "hourly,monthly"), ("SNAPSHOT_TTL_DAYS", "30")],
        vec![("ENABLE_ARCHIVAL", "true"), ("ARCHIVE_BUCKET_NAME", "archive"), ("MAX_SHARD_COUNT", "8")],
        vec![("UNRELATED", "x"), ("TABLE_NAME", "first"), ("TABLE_NAME", " second ")],
        vec![("SNAPSHOT_WINDOWS", "hourly,weekly")],
        vec![("SNAPSHOT_TTL_DAYS", "0")],
        vec![("ENABLE_ARCHIVAL", "true")],
        vec![("MAX_SHARD_COUNT", "-1")],
        vec![("TABLE_NAME", "")],
    ];
    for vars in cases {
        let owned: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let wasm = common::planner().config_from_env(&owned).await.expect("no call error");
        let native = Config::from_env(vars.iter().copied());
        assert_eq!(wasm, native, "vars {vars:?}");
    }
    let ok =
        common::planner().config_from_env(&[("SNAPSHOT_WINDOWS".into(), "monthly".into())]).await.unwrap().unwrap();
    assert_eq!(ok.windows, vec![Window::Monthly]);
}

#[tokio::test]
async fn bad_config_and_bad_event_are_values_not_traps() {
    let config = Config { windows: vec![], ..Config::default() };
    let b = batch(r#"{"Records":[]}"#, &config);
    let answer = common::planner().plan(&b).await.expect("no call error");
    match answer {
        Err(PlanError::BadConfig(m)) => assert_eq!(Err(PlanError::BadConfig(m)), zae_planner::plan(&b).map(|_| ())),
        other => panic!("expected BadConfig, got {other:?}"),
    }

    let config = Config::default();
    for event in ["not json", "[]", r#"{"Records":{}}"#] {
        let b = batch(event, &config);
        let answer = common::planner().plan(&b).await.expect("no call error");
        assert!(matches!(answer, Err(PlanError::BadEvent(_))), "{event}: {answer:?}");
        assert_eq!(answer.map(|_| ()), zae_planner::plan(&b).map(|_| ()));
    }
}

#[tokio::test]
async fn memory_cap_is_an_error_and_the_planner_keeps_serving() {
    let config = Config::default();
    let event = common::bucket_event(2_000);
    let b = batch(&event, &config);
    for cap in [1 << 20, 4 << 20] {
        let limited = common::planner().with_limits(Limits { memory_bytes: cap, ..Limits::default() });
        match limited.plan(&b).await {
            Err(CallError::MemoryLimit { limit, detail }) => {
                assert_eq!(limit, cap);
                assert!(!detail.is_empty());
            }
            other => panic!("cap {cap}: expected MemoryLimit, got {:?}", other.map(|r| r.is_ok())),
        }
    }
    assert_serves(common::planner()).await;
    // The default cap has room for the same event.
    let plan = common::planner().plan(&b).await.expect("no call error").expect("a plan");
    assert_eq!(plan.counters.records, 2_000);
}

#[tokio::test]
async fn deadline_is_an_error_and_the_planner_keeps_serving() {
    let config = Config::default();
    let event = common::bucket_event(20_000);
    let b = batch(&event, &config);
    let deadline = Duration::from_millis(1);
    let limited = common::planner().with_limits(Limits { deadline, ..Limits::default() });
    let started = Instant::now();
    match limited.plan(&b).await {
        Err(CallError::DeadlineExceeded { deadline: d }) => assert_eq!(d, deadline),
        other => panic!("expected DeadlineExceeded, got {:?}", other.map(|r| r.is_ok())),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "interrupted late: {:?}", started.elapsed());
    assert_serves(common::planner()).await;
}

#[tokio::test]
async fn long_calls_yield_to_other_tasks_between_epoch_ticks() {
    let config = Config::default();
    let event = common::bucket_event(10_000);
    let b = batch(&event, &config);
    let done = AtomicBool::new(false);
    let spins = AtomicUsize::new(0);
    let spinner = async {
        while !done.load(Ordering::Relaxed) {
            spins.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
    };
    let work = async {
        let started = Instant::now();
        let answer = common::planner().plan(&b).await;
        done.store(true, Ordering::Relaxed);
        (answer, started.elapsed())
    };
    let ((), (answer, took)) = tokio::join!(spinner, work);
    assert!(matches!(answer, Ok(Ok(_))));
    // A call that never yielded would let the spinner run only before and after it.
    if took > 10 * zae_aggregator::engine::EPOCH_TICK {
        assert!(spins.load(Ordering::Relaxed) > 3, "{} spins in {took:?}", spins.load(Ordering::Relaxed));
    }
}

#[tokio::test]
async fn an_unrepresentable_deadline_means_none() {
    assert_serves(&common::planner().with_limits(Limits { deadline: Duration::MAX, ..Limits::default() })).await;
}

#[tokio::test]
async fn precompiled_component_loads_and_plans() {
    let bytes = Planner::precompile().expect("precompiles");
    // SAFETY: produced just above by this build of the host.
    let planner = unsafe { Planner::from_precompiled(&bytes, Limits::default()) }.expect("loads");
    assert_serves(&planner).await;

    // SAFETY: not a precompiled artifact at all; wasmtime rejects the header.
    let garbage = unsafe { Planner::from_precompiled(b"\0asm not a cwasm", Limits::default()) };
    assert!(garbage.is_err());
}

/// Writes a throwaway vector directory and replays it with the same checker
/// the conformance test uses, so the checker itself is exercised even before
/// `tests/conformance/` has vectors.
#[tokio::test]
async fn vector_checker_accepts_agreement_and_reports_mismatch() {
    let root = scratch_dir("vectors");
    let config = json!({
        "table_name": "rate-limits",
        "windows": ["hourly", "daily", "monthly"],
        "snapshot_ttl_days": 90,
        "archive_bucket": "archive",
        "max_shard_count": 32
    });
    let event = common::bucket_event(12);
    let native_config = Config {
        windows: vec![Window::Hourly, Window::Daily, Window::Monthly],
        archive_bucket: Some("archive".into()),
        ..Config::default()
    };
    let expected = zae_planner::plan_json(&batch(&event, &native_config)).unwrap();
    write_vector(&root, "a-agrees", &config, &event, Some(&expected));
    write_vector(&root, "b-no-expected-plan", &config, r#"{"Records":[]}"#, None);
    let mut wrong = expected.clone();
    wrong.replace_range(wrong.len() - 2.., "7}");
    write_vector(&root, "c-wrong-expected-plan", &config, &event, Some(&wrong));

    let vectors = load_all(&root).expect("loads");
    assert_eq!(vectors.len(), 3);
    let reports = common::check_vectors(common::planner(), &vectors[..2]).await;
    assert!(reports.is_empty(), "{reports:#?}");

    let reports = common::check_vectors(common::planner(), &vectors).await;
    assert_eq!(reports.len(), 2, "{reports:#?}");
    let at = format!("at byte {}", expected.len() - 2);
    for r in &reports {
        assert!(r.starts_with("c-wrong-expected-plan: "), "{r}");
        assert!(r.contains(&at), "{r}");
    }
    std::fs::remove_dir_all(&root).ok();
}

fn write_vector(root: &std::path::Path, name: &str, config: &serde_json::Value, event: &str, plan: Option<&str>) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let input = json!({
        "description": format!("scratch vector {name}"),
        "config": config,
        "now_ms": NOW_MS.to_string(),
        "invocation_id": "req-1"
    });
    std::fs::write(dir.join("input.json"), input.to_string()).unwrap();
    std::fs::write(dir.join("event.json"), event).unwrap();
    if let Some(plan) = plan {
        std::fs::write(dir.join("plan.json"), format!("{plan}\n")).unwrap();
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("zae-host-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
