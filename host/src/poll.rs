//! `zae-aggregator poll`: a long-running consumer of the table's DynamoDB
//! stream with the semantics of the Lambda event source mapping the
//! delivery guarantees assume (docs/poll.md, docs/delivery-guarantees.md):
//!
//! * every shard is read in order; a child shard only after its parent is
//!   read to its end; new shards are discovered every 10 s;
//! * records the deployment template's filter drops are skipped; the others
//!   go in Lambda-shaped batches (`--batch-size`, `--batching-window`)
//!   through the same planner and executor as `invoke`
//!   ([`handler::invoke_until`]);
//! * `batchItemFailures` are honoured: the shard resumes at the first failed
//!   record, after a backoff;
//! * a checkpoint per shard is written only after a batch is handled, in an
//!   item of the table itself or in a local file (`--checkpoint`);
//! * shards are read concurrently (`--max-shards`), one batch at a time per
//!   shard;
//! * SIGINT / SIGTERM: the batch in flight finishes, its checkpoint is
//!   written, the process exits 0.
//!
//! The pure parts (record shape, filter, lineage, batching, checkpoint
//! format) are in [`crate::stream`].

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue as DdbValue;
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata as _};
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use tokio::sync::{watch, Mutex, Semaphore};
use tokio::task::JoinSet;

use crate::cli::{self, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use crate::executor::Executor;
use crate::handler::{self, App};
use crate::lambda;
use crate::logging::{self, LogLevel, Output};
use crate::stream::{
    self, backoff, lambda_record, parse_stream_arn, ready_shards, resume_index, Checkpoint, Pending, ShardInfo,
    CHECKPOINT_PK, CHECKPOINT_SK_PREFIX,
};

/// Logger name of `poll`'s own lines.
pub const LOGGER: &str = "zae_aggregator.poll";

/// The function name the invocation log lines carry.
pub const FUNCTION_NAME: &str = "zae-aggregator-poll";

/// How often new shards are looked for.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// Pause between reads of a shard that has nothing new (Lambda polls a
/// shard about four times a second).
const IDLE_READ: Duration = Duration::from_millis(250);

/// Consecutive failed stream reads after which a shard's reader gives up
/// (it is started again at the next discovery).
const MAX_READ_FAILURES: u32 = 8;

/// Where a shard starts when the checkpoint has nothing for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// Every shard from its oldest record still in the stream (24 hours); the checkpoint is not read
    TrimHorizon,
    /// Open shards from their newest record on; the checkpoint is not read
    Latest,
    /// Where the checkpoint says; shards it does not know from their oldest record
    Checkpoint,
}

/// Arguments of `poll`.
#[derive(Debug, Args)]
pub struct PollArgs {
    /// The stream to read (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL)
    #[arg(long, value_name = "ARN", required_unless_present = "table", conflicts_with = "table")]
    pub stream_arn: Option<String>,
    /// Read the current stream of this table (DescribeTable's LatestStreamArn)
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Largest number of records in one batch (Lambda's BatchSize)
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Longest a record waits for its batch to fill, in seconds (Lambda's MaximumBatchingWindowInSeconds)
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=300))]
    pub batching_window: u32,
    /// Keep the checkpoint in this local file instead of an item of the table
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Where to start
    #[arg(long, value_enum, default_value_t = From::Checkpoint)]
    pub from: From,
    /// Exit once every open shard has returned an empty page and everything read is handled
    #[arg(long)]
    pub until_caught_up: bool,
    /// Largest number of shards read at the same time
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_shards: u32,
}

/// Where the checkpoint is kept.
#[derive(Debug, Clone)]
pub enum Store {
    /// A local file, replaced atomically (write, then rename).
    File(PathBuf),
    /// The item `(CHECKPOINT_PK, "#CHECKPOINT#" + stream label)` of the table.
    Table {
        /// The client.
        client: aws_sdk_dynamodb::Client,
        /// The table.
        table: String,
        /// The item's sort key.
        sort_key: String,
    },
}

impl Store {
    /// The table store of `stream_arn`'s table.
    pub fn table(client: aws_sdk_dynamodb::Client, stream_arn: &str) -> Result<Store, String> {
        let (table, label) = parse_stream_arn(stream_arn)?;
        Ok(Store::Table { client, table, sort_key: format!("{CHECKPOINT_SK_PREFIX}{label}") })
    }

    /// Where, for messages.
    pub fn describe(&self) -> String {
        match self {
            Store::File(p) => p.display().to_string(),
            Store::Table { table, sort_key, .. } => format!("table {table}, item {CHECKPOINT_PK} / {sort_key}"),
        }
    }

    /// The saved checkpoint, if any.
    pub async fn load(&self) -> Result<Option<Checkpoint>, String> {
        let text = match self {
            Store::File(p) => match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("cannot read the checkpoint {}: {e}", p.display())),
            },
            Store::Table { client, table, sort_key } => {
                let out = client
                    .get_item()
                    .table_name(table)
                    .key("PK", DdbValue::S(CHECKPOINT_PK.into()))
                    .key("SK", DdbValue::S(sort_key.clone()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| {
                        format!("cannot read the checkpoint item: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))
                    })?;
                match out.item().and_then(|i| i.get("checkpoint")).and_then(|v| v.as_s().ok()) {
                    Some(t) => t.clone(),
                    None => return Ok(None),
                }
            }
        };
        Checkpoint::from_json(&text).map(Some).map_err(|e| format!("{} ({})", e, self.describe()))
    }

    /// Replace the saved checkpoint.
    pub async fn save(&self, c: &Checkpoint) -> Result<(), String> {
        let text = c.to_json();
        match self {
            Store::File(p) => {
                let tmp = p.with_extension("tmp");
                std::fs::write(&tmp, &text)
                    .and_then(|()| std::fs::rename(&tmp, p))
                    .map_err(|e| format!("cannot write the checkpoint {}: {e}", p.display()))
            }
            Store::Table { client, table, sort_key } => client
                .put_item()
                .table_name(table)
                .item("PK", DdbValue::S(CHECKPOINT_PK.into()))
                .item("SK", DdbValue::S(sort_key.clone()))
                .item("checkpoint", DdbValue::S(text))
                .item("updated_at", DdbValue::S(logging::format_timestamp(SystemTime::now())))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!("cannot write the checkpoint item: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))
                }),
        }
    }
}

/// How a shard's reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardEnd {
    /// The shard is closed and read to its end.
    Finished,
    /// An empty page came and everything read is handled (`--until-caught-up`).
    CaughtUp,
    /// Asked to stop.
    Stopped,
}

/// Where a shard's reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    TrimHorizon,
    Latest,
    After(String),
}

/// Running totals, for the progress line and the last log line.
#[derive(Debug, Default)]
struct Stats {
    records: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    /// `ApproximateCreationDateTime` (ms) of the newest record handled.
    newest_ms: AtomicI64,
    reading: AtomicU64,
    finished: AtomicU64,
}

/// One `poll` process.
struct Poller {
    app: App,
    streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    region: String,
    store: Store,
    state: Mutex<Checkpoint>,
    batch_size: usize,
    window: Duration,
    until_caught_up: bool,
    stop: watch::Receiver<bool>,
    stats: Stats,
    save_failed: AtomicBool,
}

/// The table a stream belongs to (`--table` or the ARN's), set as
/// `TABLE_NAME` in `vars` (a different `TABLE_NAME` is refused).
pub fn table_of(
    vars: &mut Vec<(String, String)>,
    table: Option<&str>,
    stream_arn: Option<&str>,
) -> Result<String, String> {
    let table = match (table, stream_arn) {
        (Some(t), _) => t.to_string(),
        (None, Some(arn)) => parse_stream_arn(arn)?.0,
        (None, None) => return Err("give --stream-arn or --table".into()),
    };
    match vars.iter().rev().find(|(k, _)| k == "TABLE_NAME") {
        Some((_, t)) if !t.is_empty() && *t != table => {
            Err(format!("TABLE_NAME is {t:?} but the stream belongs to table {table:?}"))
        }
        _ => {
            vars.push(("TABLE_NAME".into(), table.clone()));
            Ok(table)
        }
    }
}

/// What `poll` and `replay` start with: the same planner, executor and
/// settings as `invoke` (logs on standard output), and the AWS
/// configuration for the streams client. Errors are the exit code, the
/// message already printed.
pub async fn start_app(vars: &[(String, String)]) -> Result<(App, aws_config::SdkConfig), u8> {
    let (planner, settings) = match cli::start(vars, Output::Stdout).await {
        Ok(s) => s,
        Err(e) => return Err(fail(e.code, &e.to_string())),
    };
    let executor = Executor::from_env(settings.executor_options()).await;
    let mut settings = settings;
    if let Err(m) = crate::limiter::choose(&planner, executor.dynamodb(), &mut settings).await {
        return Err(fail(EXIT_BAD_INPUT, &m));
    }
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    Ok((App { planner, executor, settings }, sdk))
}

/// Run `poll`; the exit code.
pub async fn run(args: &PollArgs, vars: &[(String, String)]) -> u8 {
    let mut vars = vars.to_vec();
    let table = match table_of(&mut vars, args.table.as_deref(), args.stream_arn.as_deref()) {
        Ok(t) => t,
        Err(m) => return fail(EXIT_BAD_INPUT, &m),
    };
    // On a terminal the progress line replaces the INFO log lines.
    let tty = std::io::stderr().is_terminal();
    if tty && !vars.iter().any(|(k, _)| k == "LOG_LEVEL") {
        vars.push(("LOG_LEVEL".into(), "WARNING".into()));
    }
    let (app, sdk) = match start_app(&vars).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let region = sdk.region().map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let executor = &app.executor;
    let stream_arn = match &args.stream_arn {
        Some(a) => a.clone(),
        None => match latest_stream_arn(executor.dynamodb(), &table).await {
            Ok(a) => a,
            Err(m) => return fail(EXIT_BAD_INPUT, &m),
        },
    };
    let store = match &args.checkpoint {
        Some(p) => Store::File(p.clone()),
        None => match Store::table(executor.dynamodb().clone(), &stream_arn) {
            Ok(s) => s,
            Err(m) => return fail(EXIT_BAD_INPUT, &m),
        },
    };
    let saved = match store.load().await {
        Ok(c) => c,
        Err(m) => return fail(EXIT_BAD_INPUT, &m),
    };
    if let Some(c) = &saved {
        if c.stream_arn != stream_arn {
            return fail(
                EXIT_BAD_INPUT,
                &format!("the checkpoint {} belongs to stream {}, not {stream_arn}", store.describe(), c.stream_arn),
            );
        }
    }
    let state = match (args.from, saved) {
        (From::Checkpoint, Some(c)) => c,
        _ => Checkpoint::new(&stream_arn),
    };
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    logging::emit(
        LogLevel::Info,
        LOGGER,
        "Poll started",
        &[
            ("stream_arn", json!(stream_arn)),
            ("checkpoint", json!(store.describe())),
            ("from", json!(format!("{:?}", args.from))),
            ("batch_size", json!(args.batch_size)),
            ("batching_window_s", json!(args.batching_window)),
            ("max_shards", json!(args.max_shards)),
            ("until_caught_up", json!(args.until_caught_up)),
        ],
        None,
    );
    let poller = Arc::new(Poller {
        app,
        streams,
        stream_arn,
        region,
        store,
        state: Mutex::new(state),
        batch_size: args.batch_size as usize,
        window: Duration::from_secs(u64::from(args.batching_window)),
        until_caught_up: args.until_caught_up,
        stop,
        stats: Stats::default(),
        save_failed: AtomicBool::new(false),
    });
    let progress = tty.then(|| progress(poller.clone()));
    let started = Instant::now();
    let code = poller.clone().run(args.from, args.max_shards as usize).await;
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let s = &poller.stats;
    logging::emit(
        if code == EXIT_OK { LogLevel::Info } else { LogLevel::Error },
        LOGGER,
        "Poll stopped",
        &[
            ("records", json!(s.records.load(Ordering::Relaxed))),
            ("batches", json!(s.batches.load(Ordering::Relaxed))),
            ("retried_batches", json!(s.retries.load(Ordering::Relaxed))),
            ("shards_finished", json!(s.finished.load(Ordering::Relaxed))),
            ("elapsed_s", json!((started.elapsed().as_secs_f64() * 100.0).round() / 100.0)),
            ("exit_code", json!(code)),
        ],
        None,
    );
    code
}

/// Print `message` as the command's error; `code`.
pub fn fail(code: u8, message: &str) -> u8 {
    eprintln!("zae-aggregator: {message}");
    code
}

/// The table's current stream.
pub async fn latest_stream_arn(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<String, String> {
    let out =
        ddb.describe_table().table_name(table).send().await.map_err(|e| {
            format!("cannot describe table {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))
        })?;
    out.table()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_string)
        .ok_or_else(|| format!("table {table} has no stream (enable one with NEW_AND_OLD_IMAGES)"))
}

/// Every shard of the stream (all pages of `DescribeStream`).
pub async fn describe_shards(
    streams: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> Result<Vec<ShardInfo>, String> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = streams
            .describe_stream()
            .stream_arn(stream_arn)
            .set_exclusive_start_shard_id(start)
            .send()
            .await
            .map_err(|e| format!("cannot describe stream {stream_arn}: {}", DisplayErrorContext(&e)))?;
        let Some(d) = out.stream_description() else { return Ok(shards) };
        for s in d.shards() {
            let Some(id) = s.shard_id() else { continue };
            shards.push(ShardInfo {
                id: id.to_string(),
                parent: s.parent_shard_id().map(str::to_string),
                closed: s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some(),
            });
        }
        match d.last_evaluated_shard_id() {
            Some(last) if !last.is_empty() => start = Some(last.to_string()),
            _ => return Ok(shards),
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Sleep `d`, or less when asked to stop; whether to stop.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// The progress line on standard error, redrawn every second.
fn progress(p: Arc<Poller>) -> tokio::task::JoinHandle<()> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            let s = &p.stats;
            let records = s.records.load(Ordering::Relaxed);
            let rate = records as f64 / started.elapsed().as_secs_f64().max(0.001);
            let newest = s.newest_ms.load(Ordering::Relaxed);
            let lag = if newest > 0 {
                format!("{:.1} s", (lambda::now_ms() - newest).max(0) as f64 / 1000.0)
            } else {
                "-".to_string()
            };
            bar.set_message(format!(
                "{records} records, {rate:.0}/s, lag {lag}, shards: {} reading, {} finished",
                s.reading.load(Ordering::Relaxed),
                s.finished.load(Ordering::Relaxed)
            ));
            bar.tick();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

impl Poller {
    async fn run(self: Arc<Self>, from: From, max_shards: usize) -> u8 {
        let permits = Arc::new(Semaphore::new(max_shards));
        let mut stop = self.stop.clone();
        let mut done: BTreeSet<String> = self.state.lock().await.finished();
        let mut caught_up: BTreeSet<String> = BTreeSet::new();
        let mut busy: BTreeSet<String> = BTreeSet::new();
        let mut initial: Option<BTreeSet<String>> = None;
        let mut tasks: JoinSet<(String, Result<ShardEnd, String>)> = JoinSet::new();
        let mut failed = false;
        let mut describe_failures = 0u32;
        loop {
            let stopping = *stop.borrow();
            if stopping && tasks.is_empty() {
                break;
            }
            let mut described = false;
            if !stopping {
                match describe_shards(&self.streams, &self.stream_arn).await {
                    Ok(shards) => {
                        described = true;
                        describe_failures = 0;
                        let first = initial.is_none();
                        let initial = initial.get_or_insert_with(|| shards.iter().map(|s| s.id.clone()).collect());
                        if first && from == From::Latest {
                            done.extend(shards.iter().filter(|s| s.closed).map(|s| s.id.clone()));
                        }
                        let excluded: BTreeSet<String> = busy.union(&caught_up).cloned().collect();
                        for s in ready_shards(&shards, &done, &excluded) {
                            let position =
                                self.state.lock().await.shards.get(&s.id).and_then(|p| p.sequence_number.clone());
                            let start = match position {
                                Some(seq) => Start::After(seq),
                                None if from == From::Latest && initial.contains(&s.id) => Start::Latest,
                                None => Start::TrimHorizon,
                            };
                            busy.insert(s.id.clone());
                            let (me, shard, permits) = (self.clone(), s.clone(), permits.clone());
                            tasks.spawn(async move {
                                let _permit = permits.acquire_owned().await;
                                me.stats.reading.fetch_add(1, Ordering::Relaxed);
                                let end = me.clone().read_shard(&shard, start).await;
                                me.stats.reading.fetch_sub(1, Ordering::Relaxed);
                                (shard.id, end)
                            });
                        }
                    }
                    Err(m) => {
                        describe_failures += 1;
                        logging::emit(LogLevel::Warning, LOGGER, "Stream description failed", &[], Some(&m));
                        if self.until_caught_up && describe_failures >= MAX_READ_FAILURES {
                            return EXIT_FAILED;
                        }
                    }
                }
            }
            if self.until_caught_up && tasks.is_empty() && described {
                break;
            }
            let idle = if self.until_caught_up && !described { backoff(describe_failures) } else { DISCOVERY_INTERVAL };
            tokio::select! {
                Some(joined) = tasks.join_next() => {
                    let (id, end) = match joined {
                        Ok(x) => x,
                        Err(e) => {
                            logging::emit(LogLevel::Error, LOGGER, "Shard reader crashed", &[], Some(&e.to_string()));
                            failed = true;
                            continue;
                        }
                    };
                    busy.remove(&id);
                    match end {
                        Ok(ShardEnd::Finished) => {
                            self.stats.finished.fetch_add(1, Ordering::Relaxed);
                            done.insert(id);
                        }
                        Ok(ShardEnd::CaughtUp) => {
                            caught_up.insert(id);
                        }
                        Ok(ShardEnd::Stopped) => {}
                        Err(m) => {
                            logging::emit(LogLevel::Error, LOGGER, "Shard reader failed", &[("shard_id", json!(id))], Some(&m));
                            if self.until_caught_up {
                                failed = true;
                                caught_up.insert(id);
                            }
                        }
                    }
                }
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed(), if !stopping => {}
            }
        }
        if failed || self.save_failed.load(Ordering::Relaxed) {
            EXIT_FAILED
        } else {
            EXIT_OK
        }
    }

    /// A shard iterator at `start`; a checkpoint older than the stream's
    /// 24 hours falls back to the oldest record, with an error line (the
    /// records between are gone).
    async fn iterator(&self, shard: &str, start: &Start) -> Result<Option<String>, String> {
        let (kind, seq) = match start {
            Start::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            Start::Latest => (ShardIteratorType::Latest, None),
            Start::After(s) => (ShardIteratorType::AfterSequenceNumber, Some(s.clone())),
        };
        let got = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(seq)
            .send()
            .await;
        match got {
            Ok(out) => Ok(out.shard_iterator().map(str::to_string)),
            Err(e) if matches!(e.as_service_error(), Some(GetShardIteratorError::TrimmedDataAccessException(_))) => {
                logging::emit(
                    LogLevel::Error,
                    LOGGER,
                    "Checkpoint is older than the stream's retention: records were lost, reading from the oldest",
                    &[("shard_id", json!(shard)), ("checkpoint", json!(format!("{start:?}")))],
                    None,
                );
                Box::pin(self.iterator(shard, &Start::TrimHorizon)).await
            }
            Err(e) => Err(format!("GetShardIterator {shard}: {}", DisplayErrorContext(&e))),
        }
    }

    /// Read one shard: batches in order, one at a time, until it ends, the
    /// reader catches up (`--until-caught-up`) or is asked to stop.
    async fn read_shard(self: Arc<Self>, shard: &ShardInfo, start: Start) -> Result<ShardEnd, String> {
        let mut stop = self.stop.clone();
        let mut failures = 0u32;
        let mut iterator = loop {
            match self.iterator(&shard.id, &start).await {
                Ok(it) => break it,
                Err(m) => {
                    failures += 1;
                    if failures >= MAX_READ_FAILURES {
                        return Err(m);
                    }
                    if sleep_or_stop(&mut stop, backoff(failures)).await {
                        return Ok(ShardEnd::Stopped);
                    }
                }
            }
        };
        failures = 0;
        let mut pending = Pending::new();
        let mut attempt = 0u32;
        loop {
            if *stop.borrow() {
                return Ok(ShardEnd::Stopped);
            }
            // Read a page unless a full batch already waits.
            let mut empty_page = false;
            if let Some(it) = iterator.clone().filter(|_| pending.len() < self.batch_size) {
                match self.streams.get_records().shard_iterator(it).limit(1000).send().await {
                    Ok(out) => {
                        failures = 0;
                        let now = Instant::now();
                        let mut fresh = 0;
                        for r in out.records() {
                            fresh += usize::from(pending.push(lambda_record(r, &self.stream_arn, &self.region), now));
                        }
                        // A page of records read already is no progress: as empty.
                        empty_page = fresh == 0;
                        iterator = out.next_shard_iterator().map(str::to_string);
                    }
                    Err(e) => {
                        let expired =
                            matches!(e.as_service_error(), Some(GetRecordsError::ExpiredIteratorException(_)));
                        let trimmed =
                            matches!(e.as_service_error(), Some(GetRecordsError::TrimmedDataAccessException(_)));
                        if expired || trimmed {
                            // Start again after the last record read.
                            let at = pending.read_to().map_or(start.clone(), |s| Start::After(s.to_string()));
                            iterator = self.iterator(&shard.id, &at).await?;
                            continue;
                        }
                        failures += 1;
                        let m = format!("GetRecords {}: {}", shard.id, DisplayErrorContext(&e));
                        if failures >= MAX_READ_FAILURES {
                            return Err(m);
                        }
                        logging::emit(
                            LogLevel::Warning,
                            LOGGER,
                            "Stream read failed, retrying",
                            &[("shard_id", json!(shard.id)), ("error_code", json!(e.code()))],
                            Some(&m),
                        );
                        if sleep_or_stop(&mut stop, backoff(failures)).await {
                            return Ok(ShardEnd::Stopped);
                        }
                        continue;
                    }
                }
            }
            let closed = iterator.is_none();
            let flush = closed || (self.until_caught_up && empty_page);
            if pending.ready(Instant::now(), self.batch_size, self.window, flush) {
                let batch = pending.batch(self.batch_size);
                let resume = self.handle(&shard.id, &batch).await;
                let handled = resume.unwrap_or(batch.len());
                let position = pending.handled(handled);
                self.note_handled(&batch[..handled]);
                self.save(&shard.id, position.as_deref(), false).await;
                if resume.is_some() {
                    attempt += 1;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    if sleep_or_stop(&mut stop, backoff(attempt)).await {
                        return Ok(ShardEnd::Stopped);
                    }
                } else {
                    attempt = 0;
                }
                continue;
            }
            if pending.is_empty() {
                // Only filtered records since the last batch: move past them.
                if let Some(position) = pending.handled(0) {
                    self.save(&shard.id, Some(&position), false).await;
                }
                if closed {
                    self.save(&shard.id, None, true).await;
                    return Ok(ShardEnd::Finished);
                }
                if self.until_caught_up && empty_page {
                    return Ok(ShardEnd::CaughtUp);
                }
            }
            if empty_page || closed {
                let wait = pending.wait_left(Instant::now(), self.window).unwrap_or(IDLE_READ).min(IDLE_READ);
                if sleep_or_stop(&mut stop, wait).await {
                    return Ok(ShardEnd::Stopped);
                }
            }
        }
    }

    /// Handle one batch exactly as one Lambda invocation; `None` when every
    /// record was handled, else the index of the first record to retry.
    async fn handle(&self, shard: &str, batch: &[Value]) -> Option<usize> {
        let event = json!({"Records": batch}).to_string();
        let first = batch.first().map(stream::record_seq).unwrap_or_default();
        let request_id = format!("poll-{shard}-{first}");
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        match handler::invoke_until(&self.app, &event, &request_id, FUNCTION_NAME, lambda::now_ms(), None).await {
            Ok(inv) => resume_index(batch, &inv.response),
            // A function error: the whole batch is retried (the handler
            // logged why).
            Err(_) => Some(0),
        }
    }

    fn note_handled(&self, records: &[Value]) {
        self.stats.records.fetch_add(records.len() as u64, Ordering::Relaxed);
        let newest =
            records.iter().filter_map(|r| r["dynamodb"]["ApproximateCreationDateTime"].as_f64()).fold(0.0f64, f64::max);
        if newest > 0.0 {
            self.stats.newest_ms.fetch_max((newest * 1000.0) as i64, Ordering::Relaxed);
        }
    }

    /// Move shard `id`'s checkpoint to `position` (and mark it finished) and
    /// save it; a failed save is logged and retried with the next one.
    async fn save(&self, id: &str, position: Option<&str>, finished: bool) {
        if position.is_none() && !finished {
            return;
        }
        let mut state = self.state.lock().await;
        if let Some(p) = position {
            state.advance(id, p);
        }
        if finished {
            state.finish(id);
        }
        match self.store.save(&state).await {
            Ok(()) => self.save_failed.store(false, Ordering::Relaxed),
            Err(m) => {
                self.save_failed.store(true, Ordering::Relaxed);
                logging::emit(LogLevel::Error, LOGGER, "Checkpoint write failed", &[("shard_id", json!(id))], Some(&m));
            }
        }
    }
}
