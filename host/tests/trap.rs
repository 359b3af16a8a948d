//! A guest that traps fails only its own batch: the planner and the handler
//! keep serving the next one.
//!
//! The shipped component never panics on any input, so this test builds a
//! second copy of it with the `test-trap` feature, which panics (a wasm
//! `unreachable` trap) when the invocation id is `zae-test:trap` and behaves
//! normally otherwise. The build goes to its own target directory, so the
//! embedded component is never touched.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use zae_aggregator::bindings::Batch;
use zae_aggregator::executor::{Executor, ExecutorOptions};
use zae_aggregator::handler::{self, App, InvokeError};
use zae_aggregator::settings::Settings;
use zae_aggregator::{CallError, Limits, Planner};
use zae_planner::config::Config;

mod common;

const TRAP_ID: &str = "zae-test:trap";

/// The trapping build of the component (built once per test process).
fn trap_component() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let target_dir = root.join("target").join("component-test-trap");
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--quiet", "-p", "zae-planner", "--target", "wasm32-wasip2", "--profile", "component"])
            .args(["--features", "test-trap", "--locked", "--target-dir"])
            .arg(&target_dir)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the test-trap component failed");
        std::fs::read(target_dir.join("wasm32-wasip2/component/zae_planner.wasm")).expect("the component was built")
    })
}

fn trap_planner() -> Planner {
    Planner::from_component(trap_component(), Limits::default()).expect("the test-trap component compiles")
}

fn empty_event() -> &'static str {
    r#"{"Records":[]}"#
}

#[tokio::test]
async fn a_trap_fails_its_call_and_the_planner_keeps_serving() {
    let planner = trap_planner();
    let native_config = Config::default();
    let config = common::wit_config(&native_config);
    let event = common::bucket_event(50);
    let trapping = Batch { event_json: &event, config: &config, now_ms: 1_767_225_600_000, invocation_id: TRAP_ID };
    for _ in 0..2 {
        match planner.plan(&trapping).await {
            Err(CallError::Trap { code, detail }) => {
                assert!(code.as_deref().is_some_and(|c| c.contains("unreachable")), "code {code:?}");
                assert!(detail.contains("test-trap: trapping on request"), "the guest's panic message: {detail}");
            }
            other => panic!("expected a trap, got {:?}", other.map(|r| r.is_ok())),
        }
        // Same planner, next batch: a fresh instance answers, and exactly as
        // the native planner does.
        let fine = Batch { invocation_id: "req-2", ..trapping };
        let answer = planner.plan(&fine).await.expect("no call error");
        assert!(answer.is_ok(), "{answer:?}");
        let native_batch = zae_planner::plan::Batch {
            event_json: &event,
            config: &native_config,
            now_ms: fine.now_ms,
            invocation_id: fine.invocation_id,
        };
        let native = zae_planner::plan_json(&native_batch).expect("a native plan");
        assert_eq!(planner.render(&answer).await.expect("renders"), native);
    }
}

#[tokio::test]
async fn a_trapped_invocation_is_a_function_error_and_the_next_one_succeeds() {
    let planner = trap_planner();
    let settings = Settings::from_vars(
        &planner,
        &[("TABLE_NAME".into(), "rate-limits".into()), ("ZAE_LIMITER_VERSION".into(), "0.13".into())],
    )
    .await
    .expect("valid settings");
    // No request is ever sent: the trapped batch plans nothing and the next
    // batch is empty. A closed loopback port makes any request fail loudly.
    let sdk = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let s3 = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url("http://127.0.0.1:9")
        .force_path_style(true)
        .build();
    let executor = Executor::new(
        aws_sdk_dynamodb::Client::from_conf(sdk),
        aws_sdk_s3::Client::from_conf(s3),
        ExecutorOptions::default(),
    );
    let app = App { planner, executor, settings };
    // Every record makes the guest trap; with no dead-letter bucket nothing
    // is isolated and the batch fails as a function error.
    let mut event: serde_json::Value = serde_json::from_str(&common::bucket_event(10)).unwrap();
    for r in event["Records"].as_array_mut().unwrap() {
        r["eventID"] = "zae-test:trap-record".into();
    }
    let event = event.to_string();

    let err = handler::invoke(&app, &event, "req-1", "fn", 1_767_225_600_000).await.expect_err("the guest traps");
    assert!(matches!(err, InvokeError::Component(CallError::Trap { .. })), "{err:?}");
    assert_eq!(err.error_type(), "PlannerTrap");
    assert!(err.to_string().contains("unreachable"), "{err}");

    let ok = handler::invoke(&app, empty_event(), "req-2", "fn", 1_767_225_600_000).await.expect("the next batch runs");
    assert_eq!(ok.failed_records, 0);
    assert_eq!(ok.response["statusCode"], 200);
    assert_eq!(ok.response["batchItemFailures"], serde_json::json!([]));
}

/// The app of the trapping component against `moto`, storing dead letters in
/// `dead_letter_bucket` when it is given.
async fn moto_app(moto: &common::moto::Moto, dead_letter_bucket: Option<&str>) -> App {
    let planner = trap_planner();
    let mut vars = vec![("TABLE_NAME".into(), "rate-limits".into()), ("ZAE_LIMITER_VERSION".into(), "0.13".into())];
    if let Some(b) = dead_letter_bucket {
        vars.push(("DEAD_LETTER_BUCKET".into(), b.into()));
    }
    let settings = Settings::from_vars(&planner, &vars).await.expect("valid settings");
    let executor = Executor::new(moto.ddb_client(), moto.s3_client(), ExecutorOptions::default());
    App { planner, executor, settings }
}

/// `bucket_event(10)` with record 6 made poison for the test-trap build.
fn event_with_poison_record() -> (String, serde_json::Value) {
    let mut event: serde_json::Value = serde_json::from_str(&common::bucket_event(10)).unwrap();
    event["Records"][6]["eventID"] = "zae-test:trap-record".into();
    let poison = event["Records"][6].clone();
    (event.to_string(), poison)
}

/// The usage-snapshot items of a table, every attribute (watermarks and TTL
/// included), sorted.
async fn usage(moto: &common::moto::Moto) -> Vec<String> {
    let mut out: Vec<String> = moto
        .scan("rate-limits")
        .await
        .into_iter()
        .filter(|item| item.get("SK").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk.starts_with("#USAGE#")))
        .map(|item| {
            let mut attrs: Vec<String> = item.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            attrs.sort();
            attrs.join(" ")
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_record_the_planner_fails_on_is_isolated_and_stored_in_the_dead_letter() {
    let moto = common::moto::Moto::start();
    moto.create_table("rate-limits").await;
    moto.create_bucket("dead-letters").await;
    let app = moto_app(&moto, Some("dead-letters")).await;
    let (event, poison) = event_with_poison_record();

    let inv = handler::invoke(&app, &event, "req-poison", "fn", 1_767_229_200_000)
        .await
        .expect("isolated, not a function error");
    assert_eq!(inv.response["batchItemFailures"], serde_json::json!([]), "the shard moves on");
    assert_eq!(inv.response["body"]["processed"], 10);
    assert_eq!(inv.failed_records, 0);
    assert_eq!(inv.report.dead_lettered_records, std::collections::BTreeSet::from([6]), "{:?}", inv.report);
    let errors = inv.response["body"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].as_str().unwrap().contains("PlannerTrap"), "{errors:?}");

    // The dead letter holds the poison record alone, whole, with its reason.
    let keys = moto.list_objects("dead-letters").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let text = String::from_utf8(common::moto::gunzip(&moto.get_object("dead-letters", &keys[0]).await)).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["record"], poison, "{text}");
    assert_eq!(lines[0]["sequence_number"], poison["dynamodb"]["SequenceNumber"], "{text}");
    assert!(lines[0]["reason"].as_str().unwrap().contains("planner fails on this record alone"), "{text}");

    // Every other record counted exactly as a batch without the poison
    // record counts it (planned by the shipped component).
    let reference = common::moto::Moto::start();
    reference.create_table("rate-limits").await;
    let ref_app = App {
        planner: Planner::load(Limits::default()).expect("the shipped planner loads"),
        executor: Executor::new(reference.ddb_client(), reference.s3_client(), ExecutorOptions::default()),
        settings: app.settings.clone(),
    };
    let mut without: serde_json::Value = serde_json::from_str(&event).unwrap();
    without["Records"].as_array_mut().unwrap().remove(6);
    let r = handler::invoke(&ref_app, &without.to_string(), "req-ref", "fn", 1_767_229_200_000).await.unwrap();
    assert_eq!(r.failed_records, 0);
    let got = usage(&moto).await;
    assert!(!got.is_empty());
    assert_eq!(got, usage(&reference).await);

    // The same batch again changes nothing but adds a second dead-letter
    // object for the same record (the stream delivered it twice).
    handler::invoke(&app, &event, "req-poison-2", "fn", 1_767_229_200_000).await.expect("isolated again");
    assert_eq!(usage(&moto).await, got);
}

#[tokio::test]
async fn without_a_dead_letter_bucket_a_record_the_planner_fails_on_still_fails_the_batch() {
    let moto = common::moto::Moto::start();
    moto.create_table("rate-limits").await;
    let app = moto_app(&moto, None).await;
    let (event, _) = event_with_poison_record();
    let err =
        handler::invoke(&app, &event, "req-poison", "fn", 1_767_229_200_000).await.expect_err("retried, as before");
    assert!(matches!(err, InvokeError::Component(CallError::Trap { .. })), "{err:?}");
}

/// What isolating one poison record costs on the bundled 1,000-record batch
/// (docs/benchmarks.md#poison-records): requests and wall time with the record
/// marked, against the same batch unmarked, each on a fresh moto table.
/// `cargo test --release -p zae-aggregator --test trap -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn isolation_cost_on_the_real_1000_record_batch() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let text = std::fs::read_to_string(root.join("tests/conformance/real-batch-1000/event.json")).unwrap();
    let mut marked: serde_json::Value = serde_json::from_str(&text).unwrap();
    let n = marked["Records"].as_array().unwrap().len();
    marked["Records"][n / 2]["eventID"] = "zae-test:trap-record".into();
    for (name, event) in [("unmarked", text.clone()), ("one poison record", marked.to_string())] {
        let moto = common::moto::Moto::start();
        moto.create_table("rate-limits").await;
        moto.create_bucket("dead-letters").await;
        let app = moto_app(&moto, Some("dead-letters")).await;
        let started = std::time::Instant::now();
        let inv = handler::invoke(&app, &event, "req-cost", "fn", 1_767_229_200_000).await.expect("no function error");
        let wall = started.elapsed();
        println!(
            "{name}: {n} records, {} requests, {} snapshot writes applied, {} dead-lettered, {:.0} ms",
            inv.report.requests,
            inv.report.snapshots_applied,
            inv.report.dead_lettered_records.len(),
            wall.as_secs_f64() * 1000.0
        );
        assert_eq!(inv.response["batchItemFailures"], serde_json::json!([]));
    }
}
