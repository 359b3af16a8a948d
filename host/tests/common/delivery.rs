//! A DynamoDB-stream → Lambda delivery simulator: plays a stream the way an
//! event source mapping does, through the fault proxy, against moto.
//!
//! What it reproduces (docs/architecture.md#exactly-once, docs/delivery-guarantees.md; W1/W2/W16/W17):
//!
//! * batches of random size, in sequence order per lane;
//! * `ParallelizationFactor` > 1: records are split over lanes by partition
//!   key (so one bucket item always stays in one lane, in order), and lanes
//!   run concurrently, interleaving their writes;
//! * `ReportBatchItemFailures`: a response naming a record makes the next
//!   batch start at that record (sometimes re-split at a different end);
//! * function errors (`BisectBatchOnFunctionError`): the batch is split in
//!   halves, each delivered (and retried) on its own; without bisection the
//!   whole batch is retried;
//! * duplicate deliveries: an earlier batch (or a suffix of it) is delivered
//!   again after later ones, and sometimes the same batch runs twice at once;
//! * crashes: a real `zae-aggregator invoke` child process SIGKILLed after
//!   some of its requests went through (with the next request held before
//!   or after moto applied it), and in-process invocations abandoned the
//!   same way (Lambda's timeout killing the runtime);
//! * retries are unlimited (`MaximumRetryAttempts = -1`), so every record is
//!   eventually processed and the final state can be compared with the
//!   ground truth; the number of invocations is bounded so a livelock fails.
//!
//! In-process invocations use AWS clients whose sleeps (backoff and
//! per-attempt timeout) run [`TIME_SCALE`] times faster, so SDK retries do
//! not dominate the run time; child processes use real time.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryPartition;
use aws_sdk_dynamodb::config::{AsyncSleep, BehaviorVersion, Credentials, Region, Sleep};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use zae_aggregator::bindings::{Batch, BatchPlan as Plan};
use zae_aggregator::dynamo_json::item_to_json;
use zae_aggregator::executor::Executor;
use zae_aggregator::handler::{self, App};
use zae_aggregator::settings::Settings;
use zae_aggregator::{Limits, Planner};

use super::fault_proxy::{Fault, FaultProxy, HoldMode, Policy, RandomPolicy};
use super::moto::{gunzip, Moto, REGION};
use super::rng::{hash64, Rng};
use super::streams::{self, Stream};
use super::truth::{self, Truth, Verdict};

/// In-process AWS clients sleep this many times less than asked (backoff
/// and per-attempt timeouts alike).
pub const TIME_SCALE: u32 = 5;
/// Real per-attempt timeout of every client (in-process and child).
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(600);
/// How long a stalled request is held before it is forwarded anyway.
pub const STALL: Duration = Duration::from_millis(1300);
/// `SNAPSHOT_TTL_DAYS` of every run.
pub const TTL_DAYS: i64 = 90;

/// The planner, loaded once per test binary (precompiled component).
pub fn planner() -> &'static Planner {
    static PLANNER: OnceLock<Planner> = OnceLock::new();
    PLANNER.get_or_init(|| Planner::load(Limits::default()).expect("the embedded planner component loads"))
}

/// Keep the aggregator's own log lines (JSON on stdout) out of the test
/// output: only errors, into a buffer nobody reads.
pub fn quiet_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let sink = zae_aggregator::logging::Output::Memory(Arc::new(Mutex::new(Vec::new())));
        zae_aggregator::logging::init(zae_aggregator::logging::LogLevel::Error, sink);
    });
}

/// Sleeps `1 / TIME_SCALE` of the requested time.
#[derive(Debug)]
struct ScaledSleep;

impl AsyncSleep for ScaledSleep {
    fn sleep(&self, duration: Duration) -> Sleep {
        Sleep::new(tokio::time::sleep(duration / TIME_SCALE))
    }
}

fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A DynamoDB client for the proxy listener on `port`, time-scaled, with its
/// own retry token bucket.
pub fn ddb_client(port: u16, partition: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint(port))
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .sleep_impl(ScaledSleep)
        .retry_partition(RetryPartition::new(format!("ddb-{partition}")))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An S3 client for the proxy listener on `port` (path style), time-scaled.
pub fn s3_client(port: u16, partition: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint(port))
        .region(aws_sdk_s3::config::Region::new(REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "static"))
        .force_path_style(true)
        .sleep_impl(ScaledSleep)
        .retry_partition(aws_sdk_s3::config::retry::RetryPartition::new(format!("s3-{partition}")))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// How Lambda delivers, and how hostile the run is.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// ParallelizationFactor: concurrent lanes.
    pub lanes: usize,
    /// Largest batch (BatchSize).
    pub batch_max: usize,
    /// BisectBatchOnFunctionError.
    pub bisect: bool,
    /// Chance, after each batch, to deliver an earlier batch (or a suffix) again.
    pub p_duplicate: f64,
    /// Chance that an invocation runs twice at the same time.
    pub p_concurrent_duplicate: f64,
    /// Chance that an invocation is a child process killed mid-batch.
    pub p_kill: f64,
    /// Chance that an in-process invocation is abandoned mid-batch.
    pub p_timeout: f64,
    /// Most kills + abandonments per history.
    pub max_crashes: u64,
    /// `ZAE_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `ZAE_WRITE_CONCURRENCY`.
    pub concurrency: usize,
    /// Invocations after which the history counts as not converging.
    pub max_invocations: u64,
    /// `ZAE_LIMITER_VERSION`: the zae-limiter semantics (`0.13`, `0.17`).
    pub limiter: &'static str,
}

impl SimOptions {
    /// No faults of the simulator's own, one lane.
    pub fn calm() -> SimOptions {
        SimOptions {
            lanes: 1,
            batch_max: 100,
            bisect: true,
            p_duplicate: 0.0,
            p_concurrent_duplicate: 0.0,
            p_kill: 0.0,
            p_timeout: 0.0,
            max_crashes: 0,
            max_attempts: 1,
            concurrency: 1,
            max_invocations: 200,
            limiter: "0.13",
        }
    }
}

/// How one invocation ended, as the event source mapping sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No `batchItemFailures`.
    Success,
    /// `batchItemFailures[0].itemIdentifier`.
    Partial(String),
    /// A function error (crash, timeout, error payload).
    FunctionError(String),
}

/// How to crash an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// A child process, SIGKILLed.
    Kill,
    /// An in-process invocation, abandoned (its future dropped).
    Timeout,
}

/// What the simulator did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Invocations (every kind).
    pub invocations: u64,
    /// Of which child processes.
    pub child_invocations: u64,
    /// Child processes SIGKILLed mid-batch.
    pub kills: u64,
    /// Kills planned whose process finished before the kill point.
    pub kills_not_reached: u64,
    /// In-process invocations abandoned mid-batch.
    pub timeouts: u64,
    /// Abandonments planned whose invocation finished first.
    pub timeouts_not_reached: u64,
    /// Batches delivered again after later ones.
    pub duplicates: u64,
    /// Invocations that ran twice at once.
    pub concurrent_duplicates: u64,
    /// Batches split in halves after a function error.
    pub bisections: u64,
    /// Whole-batch retries after a function error (no bisection).
    pub whole_retries: u64,
    /// Retries from a reported failed record.
    pub partial_retries: u64,
    /// Function errors.
    pub function_errors: u64,
    /// `replan-snapshots` rounds (in-process invocations).
    pub replan_rounds: u64,
    /// Writes executed from re-plans.
    pub replanned_writes: u64,
    /// Requests sent by in-process invocations.
    pub requests: u64,
    /// Protocol problems (each makes the history fail).
    pub problems: Vec<String>,
    /// A sample of the write errors that failed records (for diagnosis).
    pub write_errors: Vec<String>,
}

impl Stats {
    /// Add another run's counts.
    pub fn absorb(&mut self, o: &Stats) {
        self.invocations += o.invocations;
        self.child_invocations += o.child_invocations;
        self.kills += o.kills;
        self.kills_not_reached += o.kills_not_reached;
        self.timeouts += o.timeouts;
        self.timeouts_not_reached += o.timeouts_not_reached;
        self.duplicates += o.duplicates;
        self.concurrent_duplicates += o.concurrent_duplicates;
        self.bisections += o.bisections;
        self.whole_retries += o.whole_retries;
        self.partial_retries += o.partial_retries;
        self.function_errors += o.function_errors;
        self.replan_rounds += o.replan_rounds;
        self.replanned_writes += o.replanned_writes;
        self.requests += o.requests;
    }
}

/// One lane: a proxy listener and an in-process aggregator pointed at it.
pub struct Lane {
    /// Proxy listener id.
    pub listener: usize,
    /// Proxy listener port.
    pub port: u16,
    /// The in-process aggregator.
    pub app: App,
}

/// Everything one history runs against.
pub struct Harness {
    /// The fault proxy (one listener per lane).
    pub proxy: FaultProxy,
    /// The lanes.
    pub lanes: Vec<Lane>,
    /// Table name.
    pub table: String,
    /// Archive bucket, when archival is on.
    pub bucket: Option<String>,
    /// `SNAPSHOT_WINDOWS`.
    pub windows: String,
    /// Delivery options.
    pub sim: SimOptions,
    /// The stream.
    pub stream: Stream,
    /// Its ground truth.
    pub truth: Truth,
    /// What the simulator did.
    pub stats: Mutex<Stats>,
    clock: AtomicI64,
    first_now: i64,
    invocations: AtomicU64,
    crashes: AtomicU64,
    dir: PathBuf,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn max_time_ms(records: &[Value]) -> i64 {
    let mut max = 0;
    for r in records {
        let d = &r["dynamodb"];
        if let Some(t) = d["ApproximateCreationDateTime"].as_f64() {
            max = max.max((t * 1000.0) as i64);
        }
        for img in ["NewImage", "OldImage"] {
            if let Some(rf) = d[img]["rf"]["N"].as_str().and_then(|x| x.parse::<i64>().ok()) {
                max = max.max(rf);
            }
        }
    }
    max
}

impl Harness {
    /// A fresh table (and archive bucket) in `moto` in the stream's start
    /// state, a proxy with one listener per lane, and an aggregator per lane.
    pub async fn new(moto: &Moto, stream: Stream, windows: &str, archival: bool, sim: SimOptions) -> Harness {
        quiet_logs();
        let tag = format!("{}-{}", std::process::id(), UNIQUE.fetch_add(1, Ordering::SeqCst));
        let table = format!("zae-eo-{tag}");
        let bucket = archival.then(|| format!("zae-eo-archive-{tag}"));
        moto.create_table(&table).await;
        if let Some(b) = &bucket {
            moto.create_bucket(b).await;
        }
        for item in &stream.initial_items {
            moto.put_item(&table, &item.to_string()).await;
        }
        let window_list: Vec<&str> = windows.split(',').collect();
        let truth = truth::compute_for(&stream.records, &window_list, archival, sim.limiter == "0.17");
        let proxy = FaultProxy::new(moto.port, STALL);
        let mut lanes = Vec::new();
        for i in 0..sim.lanes.max(1) {
            let (listener, port) = proxy.listen().await;
            let app = build_app(port, &table, bucket.as_deref(), windows, &sim, &format!("{tag}-{i}")).await;
            lanes.push(Lane { listener, port, app });
        }
        let dir = std::env::temp_dir().join(format!("zae-eo-{tag}"));
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        let first_now = max_time_ms(&stream.records) + 60_000;
        Harness {
            proxy,
            lanes,
            table,
            bucket,
            windows: windows.to_string(),
            sim,
            stream,
            truth,
            stats: Mutex::new(Stats::default()),
            clock: AtomicI64::new(first_now),
            first_now,
            invocations: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
            dir,
        }
    }

    fn stat(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap());
    }

    fn problem(&self, p: String) {
        self.stat(|s| s.problems.push(p));
    }

    /// The next invocation time (strictly increasing, never an `rf` of the stream).
    pub fn tick(&self) -> i64 {
        self.clock.fetch_add(1000, Ordering::SeqCst)
    }

    /// The event JSON of some records.
    pub fn event(records: &[Value]) -> String {
        json!({ "Records": records }).to_string()
    }

    /// The plan the lane's aggregator makes for an event at `now_ms`.
    pub async fn plan(&self, lane: usize, event: &str, now_ms: i64) -> Plan {
        let app = &self.lanes[lane].app;
        let batch = Batch { event_json: event, config: &app.settings.config, now_ms, invocation_id: "plan" };
        match app.planner.plan(&batch).await {
            Ok(Ok(plan)) => plan,
            other => panic!("planning failed: {other:?}"),
        }
    }

    /// One in-process invocation.
    pub async fn invoke_in_process(&self, lane: usize, event: &str, now_ms: i64, rid: &str) -> Outcome {
        self.stat(|s| s.invocations += 1);
        match handler::invoke(&self.lanes[lane].app, event, rid, "zae-aggregator-test", now_ms).await {
            Ok(inv) => {
                self.stat(|s| {
                    s.replan_rounds += inv.report.replan_rounds as u64;
                    s.replanned_writes += inv.report.replanned_writes as u64;
                    s.requests += inv.report.requests as u64;
                    for e in inv.report.errors.iter().take(3) {
                        if s.write_errors.len() < 20 {
                            s.write_errors.push(e.chars().take(400).collect());
                        }
                    }
                });
                outcome_of(&inv.response)
            }
            Err(e) => Outcome::FunctionError(e.to_string()),
        }
    }

    /// One in-process invocation under a Lambda deadline: its outcome and
    /// the executor's report (`None` for a function error).
    pub async fn invoke_until(
        &self,
        lane: usize,
        event: &str,
        now_ms: i64,
        rid: &str,
        deadline: std::time::Instant,
    ) -> (Outcome, Option<zae_aggregator::executor::Report>) {
        self.stat(|s| s.invocations += 1);
        let app = &self.lanes[lane].app;
        match handler::invoke_until(app, event, rid, "zae-aggregator-test", now_ms, Some(deadline)).await {
            Ok(inv) => (outcome_of(&inv.response), Some(inv.report)),
            Err(e) => (Outcome::FunctionError(e.to_string()), None),
        }
    }

    /// One in-process invocation, abandoned once `pass` requests went
    /// through and the next one reached the proxy (held as `mode` says).
    pub async fn invoke_abandoned(
        &self,
        lane: usize,
        event: &str,
        now_ms: i64,
        rid: &str,
        pass: u64,
        mode: HoldMode,
    ) -> Outcome {
        self.stat(|s| s.invocations += 1);
        let l = &self.lanes[lane];
        let fired = self.proxy.arm(l.listener, pass, mode);
        let fut = handler::invoke(&l.app, event, rid, "zae-aggregator-test", now_ms);
        tokio::pin!(fut);
        let finished = tokio::select! {
            r = &mut fut => Some(r),
            _ = fired => None,
        };
        // An abandoned invocation is never polled again (its spawned request
        // tasks live until the future goes out of scope, like requests a
        // frozen Lambda sandbox had in flight).
        self.proxy.release(l.listener);
        match finished {
            None => {
                self.stat(|s| s.timeouts += 1);
                Outcome::FunctionError("invocation abandoned mid-batch (timeout)".into())
            }
            Some(r) => {
                self.stat(|s| s.timeouts_not_reached += 1);
                match r {
                    Ok(inv) => outcome_of(&inv.response),
                    Err(e) => Outcome::FunctionError(e.to_string()),
                }
            }
        }
    }

    fn child_env(&self, lane: usize) -> Vec<(String, String)> {
        let mut vars = app_vars(&self.table, self.bucket.as_deref(), &self.windows, &self.sim);
        vars.push(("ZAE_REQUEST_TIMEOUT_MS".into(), REQUEST_TIMEOUT.as_millis().to_string()));
        for (k, v) in [
            ("AWS_ENDPOINT_URL", endpoint(self.lanes[lane].port)),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ] {
            vars.push((k.into(), v));
        }
        vars
    }

    /// One invocation by a real `zae-aggregator invoke` child process; with
    /// `kill = Some((pass, mode))` the process is SIGKILLed once `pass` of
    /// its requests went through and the next one reached the proxy.
    pub async fn invoke_child(
        &self,
        lane: usize,
        event: &str,
        now_ms: i64,
        rid: &str,
        kill: Option<(u64, HoldMode)>,
    ) -> Outcome {
        self.stat(|s| {
            s.invocations += 1;
            s.child_invocations += 1;
        });
        let event_path = self.dir.join(format!("{rid}.json"));
        let out_path = self.dir.join(format!("{rid}.out.json"));
        let err_path = self.dir.join(format!("{rid}.stderr"));
        std::fs::write(&event_path, event).expect("writing the event file");
        let _ = std::fs::remove_file(&out_path);
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zae-aggregator"));
        cmd.arg("invoke")
            .arg(&event_path)
            .arg("--now-ms")
            .arg(now_ms.to_string())
            .arg("--request-id")
            .arg(rid)
            .arg("--output")
            .arg(&out_path);
        for k in [
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_S3",
            "AWS_LAMBDA_RUNTIME_API",
        ] {
            cmd.env_remove(k);
        }
        cmd.envs(self.child_env(lane));
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_path).expect("creating the stderr file"))
            .kill_on_drop(true);
        let listener = self.lanes[lane].listener;
        let fired = kill.map(|(pass, mode)| self.proxy.arm(listener, pass, mode));
        let mut child = cmd.spawn().expect("starting the zae-aggregator binary");
        let killed = match fired {
            Some(fired) => tokio::select! {
                _ = child.wait() => false,
                r = fired => r.is_ok(),
            },
            None => false,
        };
        if killed {
            child.start_kill().expect("sending SIGKILL");
        }
        let status = child.wait().await.expect("waiting for the child");
        if kill.is_some() {
            self.proxy.release(listener);
        }
        if killed {
            use std::os::unix::process::ExitStatusExt as _;
            if status.signal() != Some(9) {
                self.problem(format!("{rid}: the child was to be SIGKILLed but ended with {status}"));
            }
            self.stat(|s| s.kills += 1);
            return Outcome::FunctionError("process killed by SIGKILL mid-batch".into());
        }
        if kill.is_some() {
            self.stat(|s| s.kills_not_reached += 1);
        }
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v.get("batchItemFailures").is_some() => outcome_of(&v),
            Ok(v) => Outcome::FunctionError(format!("error payload {v}")),
            Err(_) => {
                self.problem(format!("{rid}: the child ended with {status} and no response; stderr: {stderr}"));
                Outcome::FunctionError(format!("no response ({status})"))
            }
        }
    }

    /// One invocation as the history's options and `rng` decide: plain,
    /// twice at once, a killed child, or an abandoned in-process run.
    pub async fn invoke(&self, lane: usize, records: &[Value], rng: &mut Rng) -> Outcome {
        let n = self.invocations.fetch_add(1, Ordering::SeqCst) + 1;
        if n > self.sim.max_invocations {
            if n == self.sim.max_invocations + 1 {
                self.problem(format!("did not converge within {} invocations", self.sim.max_invocations));
            }
            return Outcome::Success;
        }
        let event = Self::event(records);
        let now = self.tick();
        let rid = format!("inv-{n}");
        let crash = if self.crashes.load(Ordering::SeqCst) < self.sim.max_crashes {
            if rng.chance(self.sim.p_kill) {
                Some(Crash::Kill)
            } else if rng.chance(self.sim.p_timeout) {
                Some(Crash::Timeout)
            } else {
                None
            }
        } else {
            None
        };
        if let Some(crash) = crash {
            let writes = self.plan(lane, &event, now).await.writes.len() as u64;
            if writes > 0 {
                self.crashes.fetch_add(1, Ordering::SeqCst);
                let pass = rng.below(writes);
                let mode = if rng.chance(0.5) { HoldMode::BeforeForward } else { HoldMode::AfterForward };
                return match crash {
                    Crash::Kill => self.invoke_child(lane, &event, now, &rid, Some((pass, mode))).await,
                    Crash::Timeout => self.invoke_abandoned(lane, &event, now, &rid, pass, mode).await,
                };
            }
        }
        if rng.chance(self.sim.p_concurrent_duplicate) {
            self.stat(|s| s.concurrent_duplicates += 1);
            let now2 = self.tick();
            let dup = format!("{rid}-dup");
            let (first, _) = tokio::join!(
                self.invoke_in_process(lane, &event, now, &rid),
                self.invoke_in_process(lane, &event, now2, &dup)
            );
            return first;
        }
        self.invoke_in_process(lane, &event, now, &rid).await
    }

    /// Deliver a whole slice of records until every one is processed.
    pub async fn deliver_all(&self, lane: usize, records: &[Value], rng: &mut Rng) {
        let reached = self.deliver(lane, records, 0, records.len(), rng).await;
        assert_eq!(reached, records.len());
    }

    /// Deliver one lane's records as the event source mapping does, starting
    /// with the batch `all[lo..hi]`, until that batch is processed; returns
    /// the position after the last record processed (at least `hi`).
    ///
    /// A partial failure restarts at the reported record, and the batch read
    /// from that checkpoint may end earlier or later than the failed one (so
    /// it can mix records already counted with new ones: re-plans that
    /// still write). A function error bisects the batch (or, without
    /// bisection, retries it whole).
    pub fn deliver<'a>(
        &'a self,
        lane: usize,
        all: &'a [Value],
        lo: usize,
        hi: usize,
        rng: &'a mut Rng,
    ) -> Pin<Box<dyn Future<Output = usize> + Send + 'a>> {
        Box::pin(async move {
            let (mut start, mut end) = (lo, hi);
            loop {
                if start >= hi {
                    return start;
                }
                if end <= start {
                    end = hi.max(start + 1).min(all.len());
                }
                let batch = &all[start..end];
                match self.invoke(lane, batch, rng).await {
                    Outcome::Success => {
                        start = end;
                        end = hi;
                    }
                    Outcome::Partial(id) => match batch.iter().position(|r| streams::seq(r) == id) {
                        Some(i) => {
                            self.stat(|s| s.partial_retries += 1);
                            start += i;
                            if rng.chance(0.5) {
                                let size = rng.range(1, self.sim.batch_max.max(1) as u64) as usize;
                                end = (start + size).min(all.len()).max(start + 1);
                            }
                        }
                        None => {
                            self.problem(format!(
                                "batchItemFailures names {id:?}, which is not a record of the batch; retrying it whole"
                            ));
                        }
                    },
                    Outcome::FunctionError(_) => {
                        self.stat(|s| s.function_errors += 1);
                        if self.sim.bisect && batch.len() > 1 {
                            self.stat(|s| s.bisections += 1);
                            let mid = start + batch.len() / 2;
                            // The first half (with its own retries), then the rest.
                            start = self.deliver(lane, all, start, mid, rng).await;
                        } else {
                            self.stat(|s| s.whole_retries += 1);
                        }
                    }
                }
            }
        })
    }

    /// One lane's whole stream: random batch sizes, stale duplicates.
    pub async fn run_lane(&self, lane: usize, records: Vec<Value>, mut rng: Rng) {
        let mut pos = 0;
        let mut delivered: Vec<(usize, usize)> = Vec::new();
        while pos < records.len() {
            let size = (rng.range(1, self.sim.batch_max as u64) as usize).min(records.len() - pos);
            let reached = self.deliver(lane, &records, pos, pos + size, &mut rng).await;
            delivered.push((pos, reached));
            pos = reached;
            if rng.chance(self.sim.p_duplicate) {
                let (a, b) = *rng.pick(&delivered);
                let from = rng.range(a as u64, b as u64 - 1) as usize;
                self.stat(|s| s.duplicates += 1);
                let _ = self.invoke(lane, &records[from..b], &mut rng).await;
            }
        }
    }

    /// The stream's records split over the lanes by partition key.
    pub fn lane_records(&self) -> Vec<Vec<Value>> {
        let mut out = vec![Vec::new(); self.lanes.len()];
        for r in &self.stream.records {
            let lane = (hash64(&[streams::partition_key(r).as_bytes()]) % self.lanes.len() as u64) as usize;
            out[lane].push(r.clone());
        }
        out
    }

    /// Release every held request and wait until nothing is in flight.
    pub async fn settle(&self) {
        for l in &self.lanes {
            self.proxy.release(l.listener);
        }
        self.proxy.quiesce().await;
    }

    /// Compare the table and the archive with the ground truth (call
    /// [`Harness::settle`] first).
    pub async fn verify(&self, moto: &Moto) -> Verdict {
        let items: Vec<Value> =
            moto.scan(&self.table).await.iter().map(|i| serde_json::from_str(&item_to_json(i)).unwrap()).collect();
        let mut objects = Vec::new();
        if let Some(b) = &self.bucket {
            for key in moto.list_objects(b).await {
                let body = moto.get_object(b, &key).await;
                objects.push((key, gunzip(&body)));
            }
        }
        let mut v = Verdict::default();
        let day = TTL_DAYS * 86_400;
        let last_now = self.clock.load(Ordering::SeqCst);
        let ttl_range = (self.first_now.div_euclid(1000) + day, last_now.div_euclid(1000) + day);
        truth::check_snapshots(&self.truth, &items, ttl_range, &mut v);
        truth::check_archive(&self.truth, &objects, &mut v);
        truth::check_buckets(&self.stream.initial_items, &items, &self.proxy.log(), &mut v);
        reader_queries(moto, &self.table, &self.truth, &mut v).await;
        for p in &self.stats.lock().unwrap().problems {
            v.problems.push(p.clone());
        }
        v
    }

    /// Drop the table (moto keeps everything in memory).
    pub async fn cleanup(&self, moto: &Moto) {
        let _ = moto.ddb_client().delete_table().table_name(&self.table).send().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn outcome_of(response: &Value) -> Outcome {
    match response["batchItemFailures"].as_array() {
        Some(a) if !a.is_empty() => Outcome::Partial(a[0]["itemIdentifier"].as_str().unwrap_or("").to_string()),
        Some(_) => Outcome::Success,
        None => Outcome::FunctionError(format!("unexpected response {response}")),
    }
}

fn app_vars(table: &str, bucket: Option<&str>, windows: &str, sim: &SimOptions) -> Vec<(String, String)> {
    let mut vars = vec![
        ("TABLE_NAME".to_string(), table.to_string()),
        ("SNAPSHOT_WINDOWS".to_string(), windows.to_string()),
        ("SNAPSHOT_TTL_DAYS".to_string(), TTL_DAYS.to_string()),
        ("ENABLE_ARCHIVAL".to_string(), bucket.is_some().to_string()),
        ("ZAE_MAX_ATTEMPTS".to_string(), sim.max_attempts.to_string()),
        ("ZAE_WRITE_CONCURRENCY".to_string(), sim.concurrency.to_string()),
        ("LOG_LEVEL".to_string(), "ERROR".to_string()),
        ("ZAE_LIMITER_VERSION".to_string(), sim.limiter.to_string()),
    ];
    if let Some(b) = bucket {
        vars.push(("ARCHIVE_BUCKET_NAME".to_string(), b.to_string()));
    }
    vars
}

/// An in-process aggregator whose clients go to the proxy listener on `port`.
pub async fn build_app(
    port: u16,
    table: &str,
    bucket: Option<&str>,
    windows: &str,
    sim: &SimOptions,
    partition: &str,
) -> App {
    let planner = planner().clone();
    let vars = app_vars(table, bucket, windows, sim);
    let settings = Settings::from_vars(&planner, &vars).await.expect("a valid test configuration");
    let mut options = settings.executor_options();
    options.request_timeout = Some(REQUEST_TIMEOUT * TIME_SCALE);
    let executor = Executor::new(ddb_client(port, partition), s3_client(port, partition), options);
    App { planner, executor, settings }
}

async fn query_keys(
    moto: &Moto,
    table: &str,
    index: Option<&str>,
    pk_name: &str,
    sk_name: &str,
    pk: &str,
    prefix: &str,
) -> BTreeSet<(String, String)> {
    let client = moto.ddb_client();
    let mut out = BTreeSet::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .set_index_name(index.map(str::to_string))
            .key_condition_expression("#p = :pk AND begins_with(#s, :prefix)")
            .expression_attribute_names("#p", pk_name)
            .expression_attribute_names("#s", sk_name)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_string()))
            .scan_index_forward(false)
            .limit(100)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("querying {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)));
        for item in page.items() {
            let get = |n: &str| item.get(n).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            out.insert((get("PK"), get("SK")));
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return out,
        }
    }
}

/// zae-limiter's two access paths (docs/specification.md#snapshot-reader): by entity (`PK`, `begins_with(SK,
/// "#USAGE#")`) and by resource (GSI2, `begins_with(GSI2SK, "USAGE#")`) must
/// each find exactly the truth's items.
pub async fn reader_queries(moto: &Moto, table: &str, truth: &Truth, v: &mut Verdict) {
    let mut by_entity: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut by_resource: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for (key, t) in &truth.snapshots {
        by_entity.entry(key.0.clone()).or_default().insert(key.clone());
        by_resource.entry(format!("{}/RESOURCE#{}", t.ns, t.resource)).or_default().insert(key.clone());
    }
    for (pk, want) in by_entity {
        let got = query_keys(moto, table, None, "PK", "SK", &pk, "#USAGE#").await;
        if got != want {
            v.reader_mismatches += 1;
            v.problems.push(format!("entity query {pk}: found {got:?}, expected {want:?}"));
        }
    }
    for (pk, want) in by_resource {
        let got = query_keys(moto, table, Some("GSI2"), "GSI2PK", "GSI2SK", &pk, "USAGE#").await;
        if got != want {
            v.reader_mismatches += 1;
            v.problems.push(format!("GSI2 query {pk}: found {got:?}, expected {want:?}"));
        }
    }
}

/// A seeded history: the stream, the delivery options and the proxy policy.
#[derive(Debug, Clone)]
pub struct HistorySpec {
    /// The seed everything derives from.
    pub seed: u64,
    /// The stream.
    pub stream: Stream,
    /// `SNAPSHOT_WINDOWS`.
    pub windows: String,
    /// Archival on.
    pub archival: bool,
    /// Delivery options.
    pub sim: SimOptions,
    /// Proxy policy.
    pub policy: Policy,
}

impl HistorySpec {
    /// The history of `seed`.
    pub fn random(seed: u64) -> HistorySpec {
        let mut rng = Rng::new(seed);
        // About one history in four replays zae-limiter 0.17.0 client traffic
        // under the 0.17 semantics; decided off the seed's own stream so the
        // other histories of a seed stay what they were.
        let v017 = hash64(&[b"limiter", &seed.to_le_bytes()]).is_multiple_of(4);
        let stream = if v017 {
            let len = rng.range(20, 40) as usize;
            streams::random_real17_slice(&mut rng.fork("slice17"), len)
        } else if rng.chance(0.35) {
            let len = rng.range(20, 40) as usize;
            streams::random_real_slice(&mut rng.fork("slice"), len)
        } else {
            let n = rng.range(20, 45) as usize;
            streams::generate(rng.next_u64(), n)
        };
        let windows = streams::random_windows(&mut rng).to_string();
        let archival = rng.chance(0.85);
        let sim = SimOptions {
            lanes: *rng.pick(&[1, 1, 2, 3]),
            batch_max: *rng.pick(&[3, 6, 10, 25]),
            bisect: rng.chance(0.8),
            p_duplicate: *rng.pick(&[0.0, 0.1, 0.3]),
            p_concurrent_duplicate: *rng.pick(&[0.0, 0.05, 0.15]),
            p_kill: *rng.pick(&[0.0, 0.04, 0.1]),
            p_timeout: *rng.pick(&[0.0, 0.05, 0.12]),
            max_crashes: 4,
            max_attempts: *rng.pick(&[1, 2, 3]),
            concurrency: *rng.pick(&[1, 4, 16]),
            max_invocations: 400,
            limiter: if v017 { "0.17" } else { "0.13" },
        };
        let rate = *rng.pick(&[0.0, 0.03, 0.08, 0.15, 0.25]);
        let mut kinds: Vec<Fault> = Fault::ALL.iter().copied().filter(|_| rng.chance(0.7)).collect();
        if kinds.is_empty() {
            kinds.push(*rng.pick(&Fault::ALL));
        }
        let policy = if rate == 0.0 {
            Policy::Pass
        } else {
            Policy::Random(RandomPolicy { seed: rng.next_u64(), rate, kinds, budget: 30, max_per_request: 2 })
        };
        HistorySpec { seed, stream, windows, archival, sim, policy }
    }
}

/// What one history did and found.
#[derive(Debug, Clone)]
pub struct HistoryResult {
    /// Its seed.
    pub seed: u64,
    /// One line describing it.
    pub description: String,
    /// The comparison with the ground truth.
    pub verdict: Verdict,
    /// The simulator's counts.
    pub stats: Stats,
    /// Faults the proxy injected, by kind.
    pub faults: BTreeMap<Fault, u64>,
    /// Requests the proxy saw.
    pub proxy_requests: u64,
    /// Responses nobody was there to receive.
    pub client_gave_up: u64,
    /// Records, snapshot items and audit events of the truth.
    pub sizes: (usize, usize, usize),
    /// Wall time.
    pub elapsed: Duration,
}

/// Run one history against `moto` and compare the outcome with the truth.
pub async fn run_history(moto: &Moto, spec: &HistorySpec) -> HistoryResult {
    let started = Instant::now();
    let h = Arc::new(Harness::new(moto, spec.stream.clone(), &spec.windows, spec.archival, spec.sim.clone()).await);
    h.proxy.set_policy(spec.policy.clone());
    let mut tasks = JoinSet::new();
    for (lane, records) in h.lane_records().into_iter().enumerate() {
        let h = h.clone();
        let rng = Rng::new(spec.seed ^ hash64(&[b"lane", &lane.to_le_bytes()]));
        tasks.spawn(async move { h.run_lane(lane, records, rng).await });
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            h.problem(format!("a lane panicked: {e}"));
        }
    }
    h.settle().await;
    let verdict = h.verify(moto).await;
    let stats = h.stats.lock().unwrap().clone();
    let description = format!(
        "{} ({} records, zae-limiter {}, windows {}, archival {}, {} lane(s), batch <= {}, bisect {}, attempts {}, \
         concurrency {}, policy {})",
        spec.stream.name,
        spec.stream.records.len(),
        spec.sim.limiter,
        spec.windows,
        spec.archival,
        spec.sim.lanes,
        spec.sim.batch_max,
        spec.sim.bisect,
        spec.sim.max_attempts,
        spec.sim.concurrency,
        match &spec.policy {
            Policy::Pass => "pass".to_string(),
            Policy::Script(s) => format!("script {s:?}"),
            Policy::Random(r) => format!("random rate {} kinds {:?}", r.rate, r.kinds),
        }
    );
    let result = HistoryResult {
        seed: spec.seed,
        description,
        verdict,
        stats,
        faults: h.proxy.injected(),
        proxy_requests: h.proxy.request_count(),
        client_gave_up: h.proxy.client_gave_up(),
        sizes: (spec.stream.records.len(), h.truth.snapshots.len(), h.truth.audit.len()),
        elapsed: started.elapsed(),
    };
    h.cleanup(moto).await;
    result
}
