//! Exactly-once under single faults (docs/delivery-guarantees.md; docs/decisions.md W1, W2, W14, W16,
//! W17): deterministic tests that inject one fault at a time at every step of
//! a batch, through a fault-injecting proxy between the real aggregator and a
//! real moto server, deliver the stream the way Lambda's event source mapping
//! does (retries from the reported record, bisection), and compare the final
//! table and archive with ground truth computed from the stream records.
//!
//! Needs a moto server (`ZAE_MOTO_SERVER=/path/to/moto_server`).
//!
//! * `the_proxy_injects_every_fault_kind`: each fault kind does what it says.
//! * `single_fault_at_every_step_*`: every proxy fault kind at every request
//!   of a first delivery, and of a redelivery that overlaps applied work
//!   (watermark conflicts, re-plans), with and without SDK retries.
//! * `sigkill_at_every_step` / `timeout_at_every_step`: a real `invoke`
//!   child process SIGKILLed (or an in-process invocation abandoned) after
//!   each number of requests, with the next request held before or after it
//!   applied.
//! * `duplicate_and_stale_deliveries_change_nothing`, `parallel_lanes_*`,
//!   `partial_batch_responses_name_the_lowest_failed_record`,
//!   `function_errors_retry_whole_batches_or_bisect`.
//! * `the_checker_detects_*`: the comparison really fails on a double count,
//!   a lost delta, a lost audit row, a bookkeeping number attribute and a
//!   refill applied twice; `without_the_watermark_guard_*`: the same kind of
//!   history double counts once the proxy strips the watermark conditions.
//! * `cost_of_the_guarantee`: bytes and requests the watermarks cost in the
//!   no-fault case (printed; run with `--nocapture`).

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use common::delivery::{self, Harness, Outcome, SimOptions, Stats};
use common::fault_proxy::{Fault, FaultProxy, HoldMode, Policy};
use common::moto::Moto;
use common::rng::{hash64, Rng};
use common::streams::{self, Stream};
use common::truth::{self, Verdict};
use zae_aggregator::bindings as wit;
use zae_aggregator::dynamo_json::attrs_to_map;
use zae_planner::config::Config;
use zae_planner::plan::{Batch, Plan, Purpose};
use zae_planner::window::Window;

/// Windows of the deterministic scenario.
const WINDOWS: &str = "hourly,daily";
/// Records of the deterministic stream delivered before the overlapping redelivery.
const PREFIX: usize = 6;
/// Cases run at once (each has its own table, bucket and proxy).
const PARALLEL: usize = 6;

fn native_plan(records: &[Value], windows: &[Window]) -> Plan {
    let config = Config {
        table_name: "t".into(),
        windows: windows.to_vec(),
        archive_bucket: Some("b".into()),
        ..Config::default()
    };
    let event = Harness::event(records);
    let batch = Batch { event_json: &event, config: &config, now_ms: 1_800_000_000_000, invocation_id: "x" };
    zae_planner::plan(&batch).expect("plans")
}

/// The deterministic scenario: the first generated stream of 12 records
/// whose one-batch plan has every write purpose (snapshots, a refill, a
/// shard doubling, a shard propagation and at least two archive objects),
/// with a snapshot item that has contributions both from the 6-record
/// prefix and from later records (so redelivering the whole stream after the
/// prefix meets watermarks and re-plans writes for the rest).
fn det_stream() -> &'static Stream {
    static STREAM: OnceLock<Stream> = OnceLock::new();
    STREAM.get_or_init(|| {
        let windows = [Window::Hourly, Window::Daily];
        for seed in 0..20_000u64 {
            let s = streams::generate(seed, 12);
            let plan = native_plan(&s.records, &windows);
            let count = |p: Purpose| plan.writes.iter().filter(|w| w.purpose == p).count();
            let all = count(Purpose::Snapshot) > 0
                && count(Purpose::Refill) > 0
                && count(Purpose::ShardBump) > 0
                && count(Purpose::ShardPropagate) > 0
                && count(Purpose::Archive) >= 2;
            let straddles = plan.writes.iter().any(|w| {
                w.purpose == Purpose::Snapshot
                    && w.records.iter().any(|&r| (r as usize) < PREFIX)
                    && w.records.iter().any(|&r| (r as usize) >= PREFIX)
            });
            if all && straddles {
                return s;
            }
        }
        panic!("no generated stream exercises every write purpose");
    })
}

fn describe_plan(plan: &Plan) -> String {
    plan.writes.iter().map(|w| w.purpose.name()).collect::<Vec<_>>().join(",")
}

fn assert_holds(what: &str, v: &Verdict) {
    assert!(v.holds(), "{what}: the property does not hold: {v:#?}");
}

/// One proxy fault at one request ordinal (counted from when the fault
/// policy is set), delivered Lambda-style to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The whole stream as one first batch.
    First,
    /// The prefix delivered cleanly, then the whole stream (overlapping).
    Overlapping,
}

struct CaseResult {
    label: String,
    verdict: Verdict,
    stats: Stats,
    injected: BTreeMap<Fault, u64>,
    first_outcome: Option<Outcome>,
    /// Whether the faulted request was a `required` write (a snapshot
    /// update or an archive object) rather than a `best-effort` one (refill,
    /// shard doubling or propagation); `None` when no fault was injected.
    faulted_required: Option<bool>,
}

/// Whether some write of an invocation failed because its attempt timed out
/// on the client (a loaded machine), which fails records of its own.
fn timed_out(write_errors: &[String]) -> bool {
    write_errors.iter().any(|e| e.contains("timed out") || e.contains("timeout"))
}

/// Whether a logged request is a `required` write: snapshot items and
/// archive objects; bucket items (refill, shard writes) are `best-effort`.
fn is_required_request(e: &common::fault_proxy::Logged) -> bool {
    e.operation.starts_with("S3") || String::from_utf8_lossy(&e.body).contains("\"#USAGE#")
}

async fn fault_case(moto: Arc<Moto>, phase: Phase, fault: Fault, step: u64, attempts: u32) -> CaseResult {
    let sim = SimOptions { max_attempts: attempts, ..SimOptions::calm() };
    let h = Harness::new(&moto, det_stream().clone(), WINDOWS, true, sim).await;
    let mut rng = Rng::new(step);
    let records = h.stream.records.clone();
    if phase == Phase::Overlapping {
        h.deliver_all(0, &records[..PREFIX], &mut rng).await;
    }
    h.proxy.set_policy(Policy::Script([(step, fault)].into_iter().collect()));
    // The faulted invocation, then Lambda's retries until done.
    let now = h.tick();
    let first = h.invoke_in_process(0, &Harness::event(&records), now, "faulted").await;
    let faulted_required = h.proxy.log().iter().find(|e| e.fault.is_some()).map(is_required_request);
    match &first {
        Outcome::Success => {}
        Outcome::Partial(id) => {
            let i = records.iter().position(|r| streams::seq(r) == id).expect("the reported record is in the batch");
            h.deliver_all(0, &records[i..], &mut rng).await;
        }
        Outcome::FunctionError(_) => h.deliver_all(0, &records, &mut rng).await,
    }
    h.settle().await;
    let verdict = h.verify(&moto).await;
    let stats = h.stats.lock().unwrap().clone();
    let injected = h.proxy.injected();
    h.cleanup(&moto).await;
    CaseResult {
        label: format!("{phase:?} {} at request {step} (attempts {attempts})", fault.name()),
        verdict,
        stats,
        injected,
        first_outcome: Some(first),
        faulted_required,
    }
}

/// Requests of the faulted invocation in a clean run of `phase`.
async fn clean_requests(moto: &Moto, phase: Phase) -> u64 {
    let h = Harness::new(moto, det_stream().clone(), WINDOWS, true, SimOptions::calm()).await;
    let mut rng = Rng::new(0);
    let records = h.stream.records.clone();
    if phase == Phase::Overlapping {
        h.deliver_all(0, &records[..PREFIX], &mut rng).await;
    }
    let before = h.proxy.request_count();
    let now = h.tick();
    assert_eq!(h.invoke_in_process(0, &Harness::event(&records), now, "clean").await, Outcome::Success);
    h.settle().await;
    let n = h.proxy.request_count() - before;
    assert_holds(&format!("clean {phase:?}"), &h.verify(moto).await);
    h.cleanup(moto).await;
    n
}

type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;

async fn run_cases(cases: Vec<CaseFuture>) -> Vec<CaseResult> {
    let permits = Arc::new(Semaphore::new(PARALLEL));
    let mut set = JoinSet::new();
    for (i, case) in cases.into_iter().enumerate() {
        let permits = permits.clone();
        set.spawn(async move {
            let _p = permits.acquire_owned().await.unwrap();
            (i, case.await)
        });
    }
    let mut out: Vec<(usize, CaseResult)> = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.expect("a case panicked"));
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

fn report(title: &str, results: &[CaseResult]) {
    let mut failed = Vec::new();
    let mut stats = Stats::default();
    let mut injected: BTreeMap<Fault, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    for r in results {
        stats.absorb(&r.stats);
        for (k, n) in &r.injected {
            *injected.entry(*k).or_default() += n;
        }
        let o = match &r.first_outcome {
            Some(Outcome::Success) => "success",
            Some(Outcome::Partial(_)) => "partial",
            Some(Outcome::FunctionError(_)) => "function-error",
            None => "-",
        };
        *outcomes.entry(o).or_default() += 1;
        if !r.verdict.holds() {
            failed.push(format!("{}: {:#?}", r.label, r.verdict));
        }
    }
    eprintln!(
        "{title}: {} cases; faults {:?}; first invocations {:?}; invocations {}, kills {}, timeouts {}, \
         bisections {}, partial retries {}, replan rounds {}, replanned writes {}",
        results.len(),
        injected.iter().map(|(k, n)| (k.name(), *n)).collect::<Vec<_>>(),
        outcomes,
        stats.invocations,
        stats.kills,
        stats.timeouts,
        stats.bisections,
        stats.partial_retries,
        stats.replan_rounds,
        stats.replanned_writes
    );
    assert!(failed.is_empty(), "{title}: {} case(s) broke the property:\n{}", failed.len(), failed.join("\n"));
}

async fn single_fault_at_every_step(phase: Phase) {
    let moto = Arc::new(Moto::start());
    let n = clean_requests(&moto, phase).await;
    let plan = native_plan(&det_stream().records, &[Window::Hourly, Window::Daily]);
    eprintln!(
        "{phase:?}: {n} requests in the faulted invocation when clean; first-batch plan: {}",
        describe_plan(&plan)
    );
    assert!(n >= 8, "the scenario is too small to mean anything ({n} requests)");
    let mut cases: Vec<CaseFuture> = Vec::new();
    let mut expected: Vec<(Fault, u32)> = Vec::new();
    for fault in Fault::ALL {
        let attempts: &[u32] = match fault {
            Fault::DropResponse | Fault::Stall => &[1, 2],
            _ => &[1],
        };
        for &a in attempts {
            for step in 0..n {
                expected.push((fault, a));
                cases.push(Box::pin(fault_case(moto.clone(), phase, fault, step, a)));
            }
        }
    }
    let started = Instant::now();
    let results = run_cases(cases).await;
    for (r, (fault, attempts)) in results.iter().zip(&expected) {
        assert_eq!(r.injected.get(fault), Some(&1), "{}: the fault was not injected exactly once", r.label);
        if *attempts == 1 {
            match r.faulted_required {
                Some(true) => assert!(
                    matches!(r.first_outcome, Some(Outcome::Partial(_))),
                    "{}: without SDK retries the faulted required write must fail its records: {:?}",
                    r.label,
                    r.first_outcome
                ),
                // Unless a required write timed out on its own (a loaded
                // machine), nothing fails: the faulted write is best-effort.
                Some(false) => assert!(
                    r.first_outcome == Some(Outcome::Success) || timed_out(&r.stats.write_errors),
                    "{}: a best-effort write's failure fails no record: {:?} ({:?})",
                    r.label,
                    r.first_outcome,
                    r.stats.write_errors
                ),
                None => panic!("{}: no request was faulted", r.label),
            }
        }
    }
    report(&format!("{phase:?} single faults ({:.1} s)", started.elapsed().as_secs_f64()), &results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_fault_at_every_step_of_a_first_delivery() {
    single_fault_at_every_step(Phase::First).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_fault_at_every_step_of_an_overlapping_redelivery() {
    single_fault_at_every_step(Phase::Overlapping).await;
}

async fn crash_case(moto: Arc<Moto>, crash: delivery::Crash, pass: u64, mode: HoldMode) -> CaseResult {
    let sim = SimOptions { max_attempts: 2, concurrency: 4, ..SimOptions::calm() };
    let h = Harness::new(&moto, det_stream().clone(), WINDOWS, true, sim).await;
    let mut rng = Rng::new(pass);
    let records = h.stream.records.clone();
    let event = Harness::event(&records);
    let now = h.tick();
    let first = match crash {
        delivery::Crash::Kill => h.invoke_child(0, &event, now, "crashed", Some((pass, mode))).await,
        delivery::Crash::Timeout => h.invoke_abandoned(0, &event, now, "crashed", pass, mode).await,
    };
    // A function error: Lambda bisects (even steps) or retries the whole
    // batch (odd steps).
    if first != Outcome::Success {
        if pass.is_multiple_of(2) {
            h.stats.lock().unwrap().bisections += 1;
            let mid = records.len() / 2;
            h.deliver_all(0, &records[..mid], &mut rng).await;
            h.deliver_all(0, &records[mid..], &mut rng).await;
        } else {
            h.deliver_all(0, &records, &mut rng).await;
        }
    }
    h.settle().await;
    let verdict = h.verify(&moto).await;
    let stats = h.stats.lock().unwrap().clone();
    h.cleanup(&moto).await;
    CaseResult {
        label: format!("{crash:?} after {pass} requests, {mode:?}"),
        verdict,
        stats,
        injected: BTreeMap::new(),
        first_outcome: Some(first),
        faulted_required: None,
    }
}

async fn crash_at_every_step(crash: delivery::Crash) {
    let moto = Arc::new(Moto::start());
    let writes = native_plan(&det_stream().records, &[Window::Hourly, Window::Daily]).writes.len() as u64;
    let mut cases: Vec<CaseFuture> = Vec::new();
    for pass in 0..writes {
        for mode in [HoldMode::BeforeForward, HoldMode::AfterForward] {
            cases.push(Box::pin(crash_case(moto.clone(), crash, pass, mode)));
        }
    }
    let started = Instant::now();
    let results = run_cases(cases).await;
    for r in &results {
        assert!(
            matches!(r.first_outcome, Some(Outcome::FunctionError(_))),
            "{}: the crash did not happen: {:?}",
            r.label,
            r.first_outcome
        );
    }
    let total: Stats = results.iter().fold(Stats::default(), |mut a, r| {
        a.absorb(&r.stats);
        a.write_errors.extend(r.stats.write_errors.iter().take(2).cloned());
        a
    });
    match crash {
        delivery::Crash::Kill => assert_eq!(total.kills, 2 * writes, "every child was SIGKILLed mid-batch"),
        delivery::Crash::Timeout => assert_eq!(total.timeouts, 2 * writes, "every invocation was abandoned mid-batch"),
    }
    eprintln!("write errors seen in retries: {:#?}", total.write_errors);
    report(&format!("{crash:?} at every step ({:.1} s)", started.elapsed().as_secs_f64()), &results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_every_step() {
    crash_at_every_step(delivery::Crash::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeout_at_every_step() {
    crash_at_every_step(delivery::Crash::Timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_proxy_injects_every_fault_kind() {
    let moto = Moto::start();
    moto.create_table("p").await;
    moto.create_bucket("probe-bucket").await;
    let proxy = FaultProxy::new(moto.port, delivery::STALL);
    let (_, port) = proxy.listen().await;
    // The probe clients' sleeps are time-scaled: 2 s is 400 ms of real time.
    let timeout = Duration::from_millis(2000);
    let retry = aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(1);
    let timeouts =
        aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder().operation_attempt_timeout(timeout).build();
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        delivery::ddb_client(port, "probe")
            .config()
            .to_builder()
            .retry_config(retry.clone())
            .timeout_config(timeouts.clone())
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        delivery::s3_client(port, "probe").config().to_builder().retry_config(retry).timeout_config(timeouts).build(),
    );
    let put = |n: u32| {
        ddb.update_item()
            .table_name("p")
            .key("PK", AttributeValue::S(format!("k{n}")))
            .key("SK", AttributeValue::S("s".into()))
            .update_expression("ADD c :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
    };
    let exists = |n: u32| {
        let moto = &moto;
        async move { moto.scan("p").await.iter().any(|i| i.get("PK").and_then(|v| v.as_s().ok()) == Some(&format!("k{n}"))) }
    };
    for (n, fault) in Fault::ALL.iter().enumerate() {
        let n = n as u32;
        proxy.set_policy(Policy::Script([(0, *fault)].into_iter().collect()));
        let err = put(n).await.expect_err("the injected fault reaches the client");
        let text = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
        proxy.quiesce().await;
        let applied = exists(n).await;
        match fault {
            Fault::DropResponse => assert!(applied && text.contains("dispatch failure"), "{fault:?}: {text}"),
            Fault::InternalError => assert!(!applied && text.contains("InternalServerError"), "{fault:?}: {text}"),
            Fault::ProvisionedThroughputExceeded => {
                assert!(!applied && text.contains("ProvisionedThroughputExceededException"), "{fault:?}: {text}")
            }
            Fault::Throttling => assert!(!applied && text.contains("ThrottlingException"), "{fault:?}: {text}"),
            Fault::Stall => assert!(applied && text.to_lowercase().contains("timeout"), "{fault:?}: {text}"),
        }
        eprintln!("{}: applied={applied}; client saw: {}", fault.name(), text.lines().next().unwrap_or(""));
    }
    for fault in [Fault::InternalError, Fault::Throttling] {
        proxy.set_policy(Policy::Script([(0, fault)].into_iter().collect()));
        let err = s3
            .put_object()
            .bucket("probe-bucket")
            .key("o")
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect_err("s3 fault");
        let text = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err));
        assert!(text.contains(if fault == Fault::InternalError { "InternalError" } else { "SlowDown" }), "{text}");
    }
    proxy.set_policy(Policy::Pass);
    s3.put_object()
        .bucket("probe-bucket")
        .key("o")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("s3 through the proxy");
    put(99).await.expect("a clean request passes");
    let counts = proxy.injected();
    assert_eq!(counts.values().sum::<u64>(), 7, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_batch_responses_name_the_lowest_failed_record() {
    let moto = Moto::start();
    let records = det_stream().records.clone();
    let plan = native_plan(&records, &[Window::Hourly, Window::Daily]);
    let mut checked = 0;
    for (j, w) in plan.writes.iter().enumerate() {
        let h = Harness::new(&moto, det_stream().clone(), WINDOWS, true, SimOptions::calm()).await;
        h.proxy.set_policy(Policy::Script([(j as u64, Fault::InternalError)].into_iter().collect()));
        let now = h.tick();
        let outcome = h.invoke_in_process(0, &Harness::event(&records), now, "one-failure").await;
        let lowest = *w.records.iter().min().expect("a write carries records") as usize;
        let mut rng = Rng::new(j as u64);
        if w.failure_policy == zae_planner::plan::FailurePolicy::BestEffort {
            // A failed refill or shard write fails no record: the next batch decides again.
            // (Unless a required write timed out on its own on a loaded machine.)
            assert!(
                outcome == Outcome::Success || timed_out(&h.stats.lock().unwrap().write_errors),
                "write {j} ({}) is best-effort: {outcome:?}",
                w.purpose.name()
            );
            // Throttled for good (one attempt), the same: a hot item cannot hold the shard.
            h.cleanup(&moto).await;
            let h = Harness::new(&moto, det_stream().clone(), WINDOWS, true, SimOptions::calm()).await;
            h.proxy.set_policy(Policy::Script([(j as u64, Fault::Throttling)].into_iter().collect()));
            let now = h.tick();
            let outcome = h.invoke_in_process(0, &Harness::event(&records), now, "throttled").await;
            assert!(
                outcome == Outcome::Success || timed_out(&h.stats.lock().unwrap().write_errors),
                "throttled best-effort write {j} ({}): {outcome:?}",
                w.purpose.name()
            );
            // A redelivery of the whole batch (whatever the answer named) leaves
            // every count exact.
            h.deliver_all(0, &records, &mut rng).await;
            h.settle().await;
            assert_holds(&format!("after a failed best-effort write {j}"), &h.verify(&moto).await);
            h.cleanup(&moto).await;
            checked += 1;
            continue;
        }
        assert_eq!(
            outcome,
            Outcome::Partial(streams::seq(&records[lowest]).to_string()),
            "write {j} ({}) failed: the response must name record {lowest}",
            w.purpose.name()
        );
        // Lambda goes on from that record: nothing may be lost or doubled.
        h.deliver_all(0, &records[lowest..], &mut rng).await;
        h.settle().await;
        assert_holds(&format!("after a failed write {j}"), &h.verify(&moto).await);
        h.cleanup(&moto).await;
        checked += 1;
    }
    assert_eq!(checked, plan.writes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_and_stale_deliveries_change_nothing() {
    let moto = Moto::start();
    let sim = SimOptions { concurrency: 4, max_attempts: 3, ..SimOptions::calm() };
    let h = Harness::new(&moto, streams::generate(11, 30), "hourly,daily,monthly", true, sim).await;
    let records = h.stream.records.clone();
    let mut rng = Rng::new(1);
    let batches: Vec<(usize, usize)> = (0..records.len()).step_by(5).map(|a| (a, (a + 5).min(records.len()))).collect();
    for &(a, b) in &batches {
        h.deliver_all(0, &records[a..b], &mut rng).await;
    }
    h.settle().await;
    let table_after_first = h.verify(&moto).await;
    assert_holds("after the first delivery", &table_after_first);
    let before = h.proxy.request_count();
    let items_before = moto.scan(&h.table).await.len();
    // Every batch again, each twice at the same time, newest first (stale
    // images after newer ones), then the whole stream as one batch.
    for &(a, b) in batches.iter().rev() {
        let event = Harness::event(&records[a..b]);
        let (n1, n2) = (h.tick(), h.tick());
        let (o1, o2) =
            tokio::join!(h.invoke_in_process(0, &event, n1, "dup-a"), h.invoke_in_process(0, &event, n2, "dup-b"));
        let errors = h.stats.lock().unwrap().write_errors.clone();
        assert_eq!((&o1, &o2), (&Outcome::Success, &Outcome::Success), "{errors:#?}");
    }
    let now = h.tick();
    let errors = h.stats.lock().unwrap().write_errors.clone();
    assert_eq!(
        h.invoke_in_process(0, &Harness::event(&records), now, "dup-all").await,
        Outcome::Success,
        "{errors:#?}"
    );
    h.settle().await;
    let log = h.proxy.log();
    // Nothing a redelivery sends may change a snapshot item, a shard count
    // or create an item. A refill may apply, if no refill moved that
    // bucket's `rf` yet: a differently split batch can decide to refill
    // (its estimate is the consumption of its own records), and the `rf`
    // lock still lets at most one refill through per `rf` (checked by
    // `verify`: refills applied twice).
    let applied: Vec<String> = log
        .iter()
        .filter(|e| e.ordinal >= before && e.applied() && e.dynamodb_op().is_some())
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect();
    let not_refills: Vec<&String> = applied.iter().filter(|b| !b.contains("\"#rf\":\"rf\"")).collect();
    assert!(not_refills.is_empty(), "redeliveries changed DynamoDB items: {not_refills:#?}");
    let v = h.verify(&moto).await;
    assert_holds("after duplicate and stale deliveries", &v);
    assert_eq!(moto.scan(&h.table).await.len(), items_before);
    eprintln!(
        "redelivery: {} requests, {} refills newly decided and applied, {} archive duplicates (identical lines, \
         de-duplicable by event_id)",
        h.proxy.request_count() - before,
        applied.len(),
        v.audit_duplicates
    );
    h.cleanup(&moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_errors_retry_whole_batches_or_bisect() {
    let moto = Arc::new(Moto::start());
    for bisect in [true, false] {
        let sim = SimOptions {
            bisect,
            p_kill: 0.3,
            p_timeout: 0.3,
            max_crashes: 6,
            batch_max: 12,
            max_attempts: 2,
            concurrency: 4,
            ..SimOptions::calm()
        };
        let h = Harness::new(&moto, streams::generate(23, 30), "hourly,daily", true, sim).await;
        let records = h.stream.records.clone();
        h.run_lane(0, records, Rng::new(5)).await;
        h.settle().await;
        let v = h.verify(&moto).await;
        let stats = h.stats.lock().unwrap().clone();
        eprintln!("bisect {bisect}: {stats:?}");
        assert!(stats.kills + stats.timeouts >= 3, "crashes happened: {stats:?}");
        if bisect {
            assert!(stats.bisections > 0);
        } else {
            assert!(stats.whole_retries > 0 && stats.bisections == 0);
        }
        assert_holds(&format!("bisect {bisect}"), &v);
        h.cleanup(&moto).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_lanes_interleave_without_double_counting() {
    let moto = Moto::start();
    // ParallelizationFactor 3: the shards of one bucket (one snapshot item,
    // several watermark sources) land in different lanes and write the
    // same snapshot items concurrently.
    let sim = SimOptions { lanes: 3, batch_max: 4, concurrency: 8, max_attempts: 2, ..SimOptions::calm() };
    let h = Arc::new(Harness::new(&moto, streams::generate(29, 40), "hourly,daily,monthly", true, sim).await);
    h.proxy.set_policy(Policy::Random(common::fault_proxy::RandomPolicy {
        seed: 3,
        rate: 0.15,
        kinds: Fault::ALL.to_vec(),
        budget: 20,
        max_per_request: 2,
    }));
    let lanes = h.lane_records();
    assert!(lanes.iter().filter(|l| !l.is_empty()).count() >= 2, "the stream spreads over lanes");
    let mut set = JoinSet::new();
    for (i, recs) in lanes.into_iter().enumerate() {
        let h = h.clone();
        set.spawn(async move { h.run_lane(i, recs, Rng::new(100 + i as u64)).await });
    }
    while let Some(r) = set.join_next().await {
        r.expect("lane");
    }
    h.settle().await;
    let v = h.verify(&moto).await;
    let shared_items = h.truth.snapshots.values().filter(|s| s.watermarks.len() > 1).count();
    eprintln!("lanes: {} snapshot items with several sources; faults {:?}", shared_items, h.proxy.injected());
    assert!(shared_items > 0, "some snapshot item has contributions from several bucket items");
    assert!(h.proxy.injected().values().sum::<u64>() > 0);
    assert_holds("parallel lanes", &v);
    h.cleanup(&moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_vectors_delivered_with_faults() {
    let moto = Moto::start();
    let spec = delivery::HistorySpec {
        seed: 77,
        stream: {
            let removes: Vec<usize> = streams::real_stream()
                .iter()
                .enumerate()
                .filter(|(_, r)| r["eventName"] == "REMOVE")
                .map(|(i, _)| i)
                .collect();
            streams::real_slice(removes[4].saturating_sub(60), 120)
        },
        windows: "hourly,daily,monthly".into(),
        archival: true,
        sim: SimOptions {
            lanes: 2,
            batch_max: 25,
            p_duplicate: 0.2,
            p_kill: 0.05,
            p_timeout: 0.05,
            max_crashes: 3,
            max_attempts: 2,
            concurrency: 8,
            ..SimOptions::calm()
        },
        policy: Policy::Random(common::fault_proxy::RandomPolicy {
            seed: 77,
            rate: 0.05,
            kinds: Fault::ALL.to_vec(),
            budget: 20,
            max_per_request: 2,
        }),
    };
    let r = delivery::run_history(&moto, &spec).await;
    eprintln!(
        "real vectors: {:?} records/items/audit, {:?}, faults {:?}, {:.1} s",
        r.sizes,
        r.stats,
        r.faults,
        r.elapsed.as_secs_f64()
    );
    assert!(r.sizes.1 > 10 && r.sizes.2 > 0, "the slice has snapshot items and audit deletions: {:?}", r.sizes);
    assert_holds(&r.description, &r.verdict);
}

// ---------------------------------------------------------------------------
// The checker itself must be able to fail.

/// The expression values an update expression uses (DynamoDB rejects unused
/// ones, and the condition is what these tests strip).
fn used_values(
    expr: &str,
    values: &[zae_aggregator::bindings::Attribute],
) -> std::collections::HashMap<String, AttributeValue> {
    let tokens: std::collections::BTreeSet<&str> =
        expr.split(|c: char| c.is_whitespace() || ",()=".contains(c)).filter(|t| !t.is_empty()).collect();
    attrs_to_map(values).unwrap().into_iter().filter(|(k, _)| tokens.contains(k.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_detects_double_counts_losses_and_lost_audit_rows() {
    let moto = Moto::start();
    let stream = det_stream().clone();
    let records = stream.records.clone();

    // A snapshot write applied twice, the second time without its watermark
    // condition (what upstream's blind ADD does on a retry: W1).
    let h = Harness::new(&moto, stream.clone(), WINDOWS, true, SimOptions::calm()).await;
    let now = h.tick();
    let event = Harness::event(&records);
    assert_eq!(h.invoke_in_process(0, &event, now, "clean").await, Outcome::Success);
    let plan = h.plan(0, &event, now).await;
    let snapshot = plan.writes.iter().find(|w| w.purpose == wit::Purpose::Snapshot).expect("a snapshot write");
    let wit::Operation::UpdateItem(u) = &snapshot.operation else { panic!("snapshot writes are updates") };
    let names: std::collections::HashMap<String, String> =
        u.names.iter().map(|n| (n.placeholder.clone(), n.name.clone())).collect();
    moto.ddb_client()
        .update_item()
        .table_name(&h.table)
        .set_key(Some(attrs_to_map(&u.key).unwrap()))
        .update_expression(&u.update_expression)
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(used_values(&u.update_expression, &u.values)))
        .send()
        .await
        .expect("the unconditional replay applies");
    h.settle().await;
    let v = h.verify(&moto).await;
    assert!(!v.holds() && v.double_counted_cells > 0 && v.events_double_counted > 0, "{v:#?}");
    assert_eq!(v.lost_cells, 0);

    // A bookkeeping attribute stored as a number is read as a counter.
    let key = attrs_to_map(&u.key).unwrap();
    moto.ddb_client()
        .update_item()
        .table_name(&h.table)
        .set_key(Some(key))
        .update_expression("SET #w = :n")
        .expression_attribute_names("#w", "wm#9")
        .expression_attribute_values(":n", AttributeValue::N("5".into()))
        .send()
        .await
        .unwrap();
    let v = h.verify(&moto).await;
    assert!(v.reader_mismatches > 0 && v.watermark_mismatches > 0, "{v:#?}");

    // A refill applied twice (its rf condition stripped).
    let refill = plan.writes.iter().find(|w| w.purpose == wit::Purpose::Refill).expect("a refill write");
    let wit::Operation::UpdateItem(r) = &refill.operation else { panic!("refills are updates") };
    let (_, port) = h.proxy.listen().await;
    let client = delivery::ddb_client(port, "checker");
    for _ in 0..2 {
        client
            .update_item()
            .table_name(&h.table)
            .set_key(Some(attrs_to_map(&r.key).unwrap()))
            .update_expression(&r.update_expression)
            .set_expression_attribute_names(Some(
                r.names.iter().map(|n| (n.placeholder.clone(), n.name.clone())).collect(),
            ))
            .set_expression_attribute_values(Some(used_values(&r.update_expression, &r.values)))
            .send()
            .await
            .expect("the unconditional refill applies");
    }
    h.settle().await;
    let v = h.verify(&moto).await;
    assert!(v.refills_applied_twice >= 1, "{v:#?}");

    // A lost archive object is a lost audit row.
    let objects = moto.list_objects(h.bucket.as_deref().unwrap()).await;
    assert!(objects.len() >= 2);
    moto.s3_client().delete_object().bucket(h.bucket.as_deref().unwrap()).key(&objects[0]).send().await.unwrap();
    let v = h.verify(&moto).await;
    assert!(v.lost_audit_rows > 0, "{v:#?}");
    h.cleanup(&moto).await;

    // A record never delivered is a lost delta.
    let h = Harness::new(&moto, stream.clone(), WINDOWS, true, SimOptions::calm()).await;
    let consuming = records
        .iter()
        .position(|r| {
            let one = truth::compute(std::slice::from_ref(r), &["hourly"], false);
            !one.snapshots.is_empty()
        })
        .expect("a consuming record");
    let mut skipped = records.clone();
    skipped.remove(consuming);
    let mut rng = Rng::new(0);
    h.deliver_all(0, &skipped, &mut rng).await;
    h.settle().await;
    let v = h.verify(&moto).await;
    assert!(!v.holds() && (v.lost_cells > 0 || v.missing_items > 0) && v.events_lost > 0, "{v:#?}");
    assert_eq!(v.double_counted_cells, 0);
    h.cleanup(&moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_watermark_guard_the_same_history_double_counts() {
    // The proxy strips the watermark condition from every snapshot write
    // (upstream's blind ADD, W1): duplicate deliveries and SDK retries after
    // lost responses must then show up as double counts.
    let moto = Moto::start();
    let sim = SimOptions { batch_max: 6, p_duplicate: 1.0, max_attempts: 2, concurrency: 4, ..SimOptions::calm() };
    let h = Harness::new(&moto, streams::generate(31, 30), "hourly,daily", true, sim).await;
    h.proxy.strip_snapshot_conditions(true);
    h.proxy.set_policy(Policy::Random(common::fault_proxy::RandomPolicy {
        seed: 31,
        rate: 0.1,
        kinds: vec![Fault::DropResponse],
        budget: 10,
        max_per_request: 1,
    }));
    h.run_lane(0, h.stream.records.clone(), Rng::new(31)).await;
    h.settle().await;
    let v = h.verify(&moto).await;
    eprintln!(
        "without the guard: {} double-counted cells ({} tokens, {} events)",
        v.double_counted_cells, v.double_counted_tokens, v.events_double_counted
    );
    // (A double-applied refund shows as a counter below the truth, so
    // "lost" cells may appear too; nothing was skipped.)
    assert!(!v.holds() && v.double_counted_cells > 0 && v.events_double_counted > 0 && v.events_lost == 0, "{v:#?}");
    h.cleanup(&moto).await;
}

#[test]
fn the_ground_truth_follows_the_documented_rules() {
    // Worked example 1 of docs/specification.md#worked-examples (window from ApproximateCreationDateTime: W5).
    let rec = serde_json::json!({
        "eventName": "MODIFY",
        "dynamodb": {
            "ApproximateCreationDateTime": 1704067195,
            "SequenceNumber": "100",
            "NewImage": {
                "PK": {"S": "ns/BUCKET#u1#gpt-4#0"}, "SK": {"S": "#STATE"}, "entity_id": {"S": "u1"},
                "rf": {"N": "1704067195000"}, "shard_count": {"N": "1"},
                "b_tpm_tc": {"N": "20000000"}, "b_tpm_tk": {"N": "5000000"}, "b_tpm_cp": {"N": "100000000"},
                "b_tpm_ra": {"N": "100000000"}, "b_tpm_rp": {"N": "60000"},
                "b_rpm_tc": {"N": "-1500"},
                "b_wcu_tc": {"N": "1000"}, "b_wcu_tk": {"N": "150000"}, "b_wcu_cp": {"N": "1000000"},
                "b_wcu_ra": {"N": "1000000"}, "b_wcu_rp": {"N": "1000"}
            },
            "OldImage": {"b_tpm_tc": {"N": "0"}, "b_wcu_tc": {"N": "0"}, "b_rpm_tc": {"N": "0"}}
        }
    });
    let t = truth::compute(&[rec], &["hourly", "daily", "monthly"], false);
    let keys: Vec<&(String, String)> = t.snapshots.keys().collect();
    assert_eq!(
        keys,
        vec![
            &("ns/ENTITY#u1".to_string(), "#USAGE#gpt-4#2023-12-01T00:00:00Z#monthly".to_string()),
            &("ns/ENTITY#u1".to_string(), "#USAGE#gpt-4#2023-12-31T00:00:00Z#daily".to_string()),
            &("ns/ENTITY#u1".to_string(), "#USAGE#gpt-4#2023-12-31T23:00:00Z".to_string()),
        ]
    );
    let hourly = &t.snapshots[keys[2]];
    assert_eq!(hourly.counters, BTreeMap::from([("rpm".to_string(), -2), ("tpm".to_string(), 20_000)]));
    assert_eq!(hourly.total_events, 2, "one per changed non-wcu limit (W7)");
    assert_eq!(hourly.watermarks["wm#0"], format!("{:0>40}", "100"));
    assert_eq!(truth::civil(1_709_164_800_000), (2024, 2, 29, 0));
    // The reader (docs/specification.md#snapshot-reader) counts every number except the metadata.
    let item = serde_json::json!({"PK": {"S": "p"}, "SK": {"S": "s"}, "entity_id": {"S": "u"},
        "resource": {"S": "r"}, "window": {"S": "hourly"}, "window_start": {"S": "w"},
        "total_events": {"N": "3"}, "ttl": {"N": "9"}, "tpm": {"N": "5"}, "wm#0": {"S": "0001"},
        "GSI4PK": {"S": "ns"}});
    let view = truth::reader_view(&item).unwrap().unwrap();
    assert_eq!(view.counters, BTreeMap::from([("tpm".to_string(), 5)]));
    assert_eq!(view.total_events, 3);
    let mut rng = Rng::new(7);
    let mut again = Rng::new(7);
    for _ in 0..100 {
        assert_eq!(rng.range(3, 9), again.range(3, 9));
    }
    assert_ne!(hash64(&[b"ab", b"c"]), hash64(&[b"a", b"bc"]));
}

// ---------------------------------------------------------------------------
// What the guarantee costs.

/// DynamoDB's item size rules: name bytes + value bytes (S: UTF-8 length,
/// N: about one byte per two significant digits plus one, BOOL/NULL: 1,
/// M/L: 3 + contents + 1 per element).
fn av_size(v: &Value) -> usize {
    let o = v.as_object().expect("an AV");
    let (t, x) = o.iter().next().expect("a typed AV");
    match t.as_str() {
        "S" => x.as_str().unwrap().len(),
        "N" => {
            let digits = x.as_str().unwrap().trim_start_matches('-').trim_start_matches('0');
            digits.len().div_ceil(2) + 1
        }
        "BOOL" | "NULL" => 1,
        "M" => 3 + x.as_object().unwrap().iter().map(|(k, v)| k.len() + av_size(v) + 1).sum::<usize>(),
        "L" => 3 + x.as_array().unwrap().iter().map(|v| av_size(v) + 1).sum::<usize>(),
        _ => x.to_string().len(),
    }
}

fn item_size(item: &serde_json::Map<String, Value>, with_watermarks: bool) -> usize {
    item.iter().filter(|(k, _)| with_watermarks || !k.starts_with("wm#")).map(|(k, v)| k.len() + av_size(v)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cost_of_the_guarantee() {
    let moto = Moto::start();
    // The whole real stream (2,410 records of zae-limiter's own traffic) in
    // BatchSize-100 batches, no faults: the deployed configuration.
    let stream = streams::real_slice(0, streams::real_stream().len());
    let sim = SimOptions { concurrency: 4, max_attempts: 5, ..SimOptions::calm() };
    let h = Harness::new(&moto, stream, "hourly,daily", true, sim).await;
    let records = h.stream.records.clone();
    let started = Instant::now();
    let mut planned = 0u64;
    let mut snapshot_writes = 0u64;
    let mut batches = 0u64;
    for chunk in records.chunks(100) {
        let event = Harness::event(chunk);
        let now = h.tick();
        let plan = h.plan(0, &event, now).await;
        planned += plan.writes.len() as u64;
        snapshot_writes += plan.writes.iter().filter(|w| w.purpose == wit::Purpose::Snapshot).count() as u64;
        batches += 1;
        assert_eq!(h.invoke_in_process(0, &event, now, &format!("b{batches}")).await, Outcome::Success);
    }
    h.settle().await;
    let elapsed = started.elapsed();
    let v = h.verify(&moto).await;
    assert_holds("no-fault run of the real stream", &v);
    let stats = h.stats.lock().unwrap().clone();
    let log = h.proxy.log();
    let requests = log.len() as u64;
    let conditional_failures =
        log.iter().filter(|e| e.error_type.as_deref() == Some("ConditionalCheckFailedException")).count();
    // No fault is injected, but on a loaded machine an attempt can outlive
    // the client's per-attempt timeout: moto applies it, the response is
    // never delivered, and the SDK's retry meets the write's own watermark
    // (a conflict that one re-plan round settles with nothing left to
    // write). Such lost responses are counted from the proxy log; every
    // conflict must be one of them, and nothing else may cost a request.
    let is_snapshot = |e: &common::fault_proxy::Logged| {
        e.operation.ends_with("UpdateItem") && String::from_utf8_lossy(&e.body).contains("#USAGE#")
    };
    let lost_applied = log.iter().filter(|e| is_snapshot(e) && e.applied() && !e.delivered).count() as u64;
    let snapshot_conflicts = log
        .iter()
        .filter(|e| is_snapshot(e) && e.error_type.as_deref() == Some("ConditionalCheckFailedException"))
        .count() as u64;
    eprintln!("cost run: {lost_applied} applied snapshot writes lost their response, {snapshot_conflicts} conflicts");
    if lost_applied == 0 {
        assert_eq!(snapshot_conflicts, 0, "a watermark conflict without a lost response");
    }
    assert!(stats.replan_rounds as u64 <= snapshot_conflicts, "re-plans only after conflicts");
    assert_eq!(stats.replanned_writes, 0, "a re-plan after the write's own retry writes nothing");
    if h.proxy.client_gave_up() == 0 {
        assert_eq!(lost_applied, 0);
        assert_eq!(stats.replan_rounds, 0, "no watermark conflicts without faults");
        assert_eq!(requests, planned, "exactly the planned writes are sent: no reads, no re-plans");
    }

    let items: Vec<serde_json::Map<String, Value>> = moto
        .scan(&h.table)
        .await
        .iter()
        .map(|i| serde_json::from_str::<Value>(&zae_aggregator::dynamo_json::item_to_json(i)).unwrap())
        .filter(|i| i["SK"]["S"].as_str().is_some_and(|s| s.starts_with("#USAGE#")))
        .map(|i| i.as_object().unwrap().clone())
        .collect();
    let n = items.len() as f64;
    let (mut wm_count, mut wm_bytes, mut max_wm_bytes, mut size_with, mut size_without) = (0, 0, 0, 0, 0);
    let (mut wcu_with, mut wcu_without) = (0, 0);
    for item in &items {
        let (c, b) = truth::watermark_bytes(item);
        wm_count += c;
        wm_bytes += b;
        max_wm_bytes = max_wm_bytes.max(b);
        let (with, without) = (item_size(item, true), item_size(item, false));
        size_with += with;
        size_without += without;
        wcu_with += with.div_ceil(1024);
        wcu_without += without.div_ceil(1024);
    }
    // Request bytes of the watermark guard in the snapshot writes.
    let mut guard_bytes = 0usize;
    let mut snapshot_request_bytes = 0usize;
    for e in &log {
        let Some(body) = e.json() else { continue };
        if !body["Key"]["SK"]["S"].as_str().is_some_and(|s| s.starts_with("#USAGE#")) {
            continue;
        }
        snapshot_request_bytes += e.body.len();
        guard_bytes += body["ConditionExpression"].as_str().map_or(0, str::len) + ", #w0 = :w0".len();
        for (k, v) in body["ExpressionAttributeValues"].as_object().unwrap() {
            if k.starts_with(":w") || k.starts_with(":f") {
                guard_bytes += k.len() + v.to_string().len() + 2;
            }
        }
        for (k, v) in body["ExpressionAttributeNames"].as_object().unwrap() {
            if v.as_str().is_some_and(|v| v.starts_with("wm#")) {
                guard_bytes += k.len() + v.to_string().len() + 2;
            }
        }
    }
    let snapshot_requests = log
        .iter()
        .filter(|e| e.json().is_some_and(|b| b["Key"]["SK"]["S"].as_str().is_some_and(|s| s.starts_with("#USAGE#"))))
        .count();
    eprintln!(
        "COST OF THE GUARANTEE (no faults, real stream, {} records, {batches} batches of <= 100, {:.1} s)",
        records.len(),
        elapsed.as_secs_f64()
    );
    eprintln!("  requests per batch: {:.2} sent, {:.2} planned, extra {:.2} (reads 0, re-plans {}, conditional failures {conditional_failures})",
        requests as f64 / batches as f64, planned as f64 / batches as f64, (requests - planned) as f64 / batches as f64, stats.replan_rounds);
    eprintln!("  snapshot writes per batch: {:.2}", snapshot_writes as f64 / batches as f64);
    eprintln!(
        "  snapshot items: {}; watermark attributes per item: {:.2}; watermark bytes per item: {:.1} mean, {} max",
        items.len(),
        wm_count as f64 / n,
        wm_bytes as f64 / n,
        max_wm_bytes
    );
    eprintln!(
        "  item size: {:.1} bytes with watermarks, {:.1} without (+{:.1}%); write units per item write: {:.3} vs {:.3}",
        size_with as f64 / n,
        size_without as f64 / n,
        100.0 * (size_with - size_without) as f64 / size_without as f64,
        wcu_with as f64 / n,
        wcu_without as f64 / n
    );
    eprintln!(
        "  snapshot request bytes: {:.1} mean, of which the watermark guard {:.1}",
        snapshot_request_bytes as f64 / snapshot_requests as f64,
        guard_bytes as f64 / snapshot_requests as f64
    );
    assert!(wm_count > 0 && size_with > size_without);
    h.cleanup(&moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slowed_endpoint_ends_the_invocation_before_its_deadline() {
    let moto = Moto::start();
    let records = det_stream().records.clone();
    let plan = native_plan(&records, &[Window::Hourly, Window::Daily]);
    let h = Harness::new(&moto, det_stream().clone(), WINDOWS, true, SimOptions::calm()).await;
    // Every request is held before it is forwarded: DynamoDB has slowed down.
    let stalls = (0..plan.writes.len() as u64 * 4).map(|i| (i, Fault::Stall)).collect();
    h.proxy.set_policy(Policy::Script(stalls));
    let now = h.tick();
    // Lambda's deadline 1.5 s away; the default 1 s margin leaves 0.5 s to write.
    let started = Instant::now();
    let deadline = started + Duration::from_millis(1500);
    let (outcome, report) = h.invoke_until(0, &Harness::event(&records), now, "slow", deadline).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "answered after Lambda's deadline: {took:?}");
    let report = report.expect("an answer, not a function error");
    assert!(report.deadline_reached, "{report:?}");
    assert!(
        !report.writes.contains(&zae_aggregator::executor::WriteResult::Pending),
        "no write is left pending: {:?}",
        report.writes
    );
    // The lowest record of any required write is reported, so Lambda resumes there.
    let lowest = plan
        .writes
        .iter()
        .filter(|w| w.failure_policy == zae_planner::plan::FailurePolicy::Required)
        .flat_map(|w| w.records.iter().copied())
        .min()
        .expect("required writes") as usize;
    assert_eq!(outcome, Outcome::Partial(streams::seq(&records[lowest]).to_string()));
    // Lambda goes on from there once DynamoDB is fast again: nothing lost or doubled.
    h.proxy.set_policy(Policy::Pass);
    h.settle().await;
    let mut rng = Rng::new(7);
    h.deliver_all(0, &records[lowest..], &mut rng).await;
    h.settle().await;
    assert_holds("after an invocation cut short by its deadline", &h.verify(&moto).await);
}
