//! The wasmtime host: calls through the component agree with the native
//! planner, limits turn into errors rather than panics, and a planner keeps
//! serving after a failed call.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use zae_aggregator::bindings::{self as wit, ObservedItem, PlanError};
use zae_aggregator::{CallError, Limits, Planner};
use zae_planner::config::Config;
use zae_planner::plan::Batch as NativeBatch;
use zae_planner::vector::load_all;
use zae_planner::window::Window;

const NOW_MS: i64 = 1_767_229_200_000; // 2026-01-01T01:00:00Z

fn batch<'a>(event: &'a str, config: &'a wit::Config) -> wit::Batch<'a> {
    wit::Batch { event_json: event, config, now_ms: NOW_MS, invocation_id: "req-1" }
}

fn native_batch<'a>(event: &'a str, config: &'a Config) -> NativeBatch<'a> {
    NativeBatch { event_json: event, config, now_ms: NOW_MS, invocation_id: "req-1" }
}

/// The canonical JSON of a wasm answer, rendered by the component.
async fn rendered(planner: &Planner, answer: &Result<wit::BatchPlan, PlanError>) -> String {
    planner.render(answer).await.expect("the render call succeeds")
}

/// The canonical JSON of the native planner's answer for the same input.
fn native_json(answer: Result<zae_planner::Plan, zae_planner::PlanError>) -> String {
    match answer {
        Ok(plan) => zae_planner::plan::canonical_json(&plan),
        Err(e) => zae_planner::plan::error_json(&e),
    }
}

/// `planner` plans `event` under `config` exactly as the native planner does.
async fn assert_agrees(planner: &Planner, event: &str, config: &Config) -> wit::BatchPlan {
    let wit_config = common::wit_config(config);
    let answer = planner.plan(&batch(event, &wit_config)).await.expect("no call error");
    let native = native_json(zae_planner::plan(&native_batch(event, config)));
    assert_eq!(rendered(planner, &answer).await, native);
    answer.expect("a plan")
}

async fn assert_serves(planner: &Planner) {
    assert_agrees(planner, &common::bucket_event(3), &Config::default()).await;
}

#[test]
fn planner_is_shareable_across_threads() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Planner>();
    check::<CallError>();
}

#[tokio::test]
async fn empty_event_plans_through_wasm() {
    let plan = assert_agrees(common::planner(), r#"{"Records":[]}"#, &Config::default()).await;
    assert_eq!(plan.counters.records, 0);
    assert!(plan.writes.is_empty());
}

#[tokio::test]
async fn bucket_event_plans_identically_through_wasm() {
    let config = Config { archive_bucket: Some("archive".into()), ..Config::default() };
    let plan = assert_agrees(common::planner(), &common::bucket_event(40), &config).await;
    assert!(!plan.writes.is_empty());
    for (i, w) in plan.writes.iter().enumerate() {
        assert_eq!(w.id as usize, i, "write ids are plan positions");
        assert!(w.target.starts_with("rate-limits {PK="), "{}", w.target);
    }
}

#[tokio::test]
async fn replan_snapshots_matches_native() {
    let config = Config::default();
    let wit_config = common::wit_config(&config);
    let event = common::bucket_event(5);
    let plan = common::plan(&batch(&event, &wit_config)).await;
    let first = plan.writes.iter().find(|w| w.purpose == wit::Purpose::Snapshot).expect("a snapshot write");
    let second = plan.writes.iter().filter(|w| w.purpose == wit::Purpose::Snapshot).nth(1).expect("two");
    let observed =
        [ObservedItem { write_id: first.id, item: None }, ObservedItem { write_id: second.id, item: Some("{}") }];
    let wasm = common::planner().replan_snapshots(&batch(&event, &wit_config), &observed).await.expect("no call error");
    let native_observed = [
        zae_planner::ObservedItem { write_id: first.id, item: None },
        zae_planner::ObservedItem { write_id: second.id, item: Some("{}".into()) },
    ];
    let native = zae_planner::replan_snapshots(&native_batch(&event, &config), &native_observed);
    assert_eq!(rendered(common::planner(), &wasm).await, native_json(native));
    let replan = wasm.expect("a re-plan");
    assert_eq!(replan.writes.iter().map(|w| w.id).collect::<Vec<_>>(), [first.id, second.id]);
    assert_eq!(replan.writes[0].target, first.target);

    let unknown = plan.writes.len() as u32 + 7;
    let bad = [ObservedItem { write_id: unknown, item: None }];
    let wasm = common::planner().replan_snapshots(&batch(&event, &wit_config), &bad).await.expect("no call error");
    assert_eq!(wasm.map(|_| ()), Err(PlanError::UnknownWriteId(unknown)));
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
        match (wasm, native) {
            (Ok(w), Ok(n)) => assert_eq!(w, common::wit_config(&n), "vars {vars:?}"),
            (Err(w), Err(n)) => {
                assert_eq!((w.setting.as_str(), w.message.as_str()), (n.setting.as_str(), n.message.as_str()));
                let kebab = |p: wit::ConfigProblem| match p {
                    wit::ConfigProblem::Empty => "empty",
                    wit::ConfigProblem::Duplicate => "duplicate",
                    wit::ConfigProblem::UnknownValue => "unknown-value",
                    wit::ConfigProblem::NotANumber => "not-a-number",
                    wit::ConfigProblem::OutOfRange => "out-of-range",
                    wit::ConfigProblem::RequiresOther => "requires-other",
                };
                assert_eq!(kebab(w.problem), n.problem.name(), "vars {vars:?}");
            }
            (w, n) => panic!("vars {vars:?}: wasm {w:?}, native {n:?}"),
        }
    }
    let ok =
        common::planner().config_from_env(&[("SNAPSHOT_WINDOWS".into(), "monthly".into())]).await.unwrap().unwrap();
    assert_eq!(ok.windows, vec![wit::Window::Monthly]);
}

#[tokio::test]
async fn bad_config_and_bad_event_are_values_not_traps() {
    let config = Config { windows: vec![], ..Config::default() };
    let wit_config = common::wit_config(&config);
    let b = batch(r#"{"Records":[]}"#, &wit_config);
    let answer = common::planner().plan(&b).await.expect("no call error");
    match &answer {
        Err(PlanError::BadConfig(e)) => {
            assert_eq!((e.setting.as_str(), e.problem), ("windows", wit::ConfigProblem::Empty));
        }
        other => panic!("expected BadConfig, got {other:?}"),
    }
    let native = zae_planner::plan(&native_batch(r#"{"Records":[]}"#, &config));
    assert_eq!(rendered(common::planner(), &answer).await, native_json(native));

    let config = Config::default();
    let wit_config = common::wit_config(&config);
    for (event, kind) in
        [("not json", "event-not-json"), ("[]", "event-not-object"), (r#"{"Records":{}}"#, "records-not-list")]
    {
        let answer = common::planner().plan(&batch(event, &wit_config)).await.expect("no call error");
        assert!(answer.is_err(), "{event}: {answer:?}");
        let text = rendered(common::planner(), &answer).await;
        assert!(text.starts_with(&format!("{{\"error\":{{\"kind\":\"{kind}\"")), "{text}");
        assert_eq!(text, native_json(zae_planner::plan(&native_batch(event, &config))));
    }
}

#[tokio::test]
async fn memory_cap_is_an_error_and_the_planner_keeps_serving() {
    let config = common::wit_config(&Config::default());
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
    let config = common::wit_config(&Config::default());
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
    let config = common::wit_config(&Config::default());
    let event = common::bucket_event(20_000);
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
    // The call must span several ticks for the test to mean anything; 20,000
    // records take hundreds of milliseconds even in a release build.
    let ticks = took.as_millis() / zae_aggregator::engine::EPOCH_TICK.as_millis();
    assert!(ticks >= 5, "the call took only {took:?}: too short to show yielding");
    // A call that never yielded would let the spinner run only before and
    // after it (twice); one that yields lets it run at about every tick.
    let spins = spins.load(Ordering::Relaxed);
    assert!(spins > 3, "{spins} spins in {took:?}");
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
    let expected = zae_planner::plan_json(&native_batch(&event, &native_config)).unwrap();
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

#[test]
fn a_component_importing_more_than_the_planner_needs_is_refused() {
    // A component importing wasi:filesystem (what a careless rebuild could
    // pull in) must not load: the guest gets no more than it needs.
    let wat = r#"(component
        (import "wasi:filesystem/types@0.2.0" (instance))
    )"#;
    let wasm = wat_to_component(wat);
    let err = Planner::from_component(&wasm, Limits::default()).expect_err("refused");
    assert!(format!("{err:#}").contains("wasi:filesystem/types@0.2.0"), "{err:#}");
}

/// The binary encoding of a component written as text.
fn wat_to_component(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("valid component text")
}
