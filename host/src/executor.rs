//! Executing a plan: every write is one DynamoDB `UpdateItem` / `PutItem` or
//! S3 `PutObject` request, sent concurrently (bounded), with the SDK's
//! standard retries (`docs/architecture.md#executor`).
//!
//! What a failed ConditionExpression means is the plan's call, never the
//! executor's: `ignore` writes are counted and dropped; `resolve-watermarks`
//! writes (snapshot counters, `docs/architecture.md#exactly-once`) are sent
//! with `ReturnValuesOnConditionCheckFailure = ALL_OLD`, and the items they
//! met are handed back to the planner (`replan-snapshots`, keyed by write id),
//! whose answer is executed the same way, round after round, until nothing is
//! left or the round budget is spent. The steps of a round are pure functions
//! ([`Conflicts::observed`], [`match_replan`], [`settle`]) so they are tested
//! without an endpoint.
//!
//! What a write that fails for good means is the plan's call too (its
//! `failure-policy`): a `required` write fails the stream records it carries
//! ([`Report::failed_records`], which the caller turns into Lambda's
//! `batchItemFailures`); a `best-effort` write is counted and logged, and the
//! next batch decides again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use aws_sdk_s3::primitives::ByteStream;
use tokio::task::JoinSet;

use crate::bindings::{
    Attribute, Batch, ExpressionName, FailurePolicy, LogEntry, LogField, ObservedItem, OnConditionFailure, Operation,
    Purpose, PutItem, PutObject, Read, ReadOutcome, ReadResult, RecordFailure, RecordOutcome, RecordStatus,
    TransactItem, UpdateItem, Write,
};
use crate::dynamo_json::{attrs_to_map, item_to_json};
use crate::engine::Planner;

/// A plan's shared item images (`batch-plan.images`), for every request task.
type Images = Arc<Vec<Vec<Attribute>>>;

/// Tuning of an [`Executor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorOptions {
    /// Most requests in flight at once (a value of 0 is treated as 1).
    pub concurrency: usize,
    /// Attempts per request, the first included, in the SDK's standard retry
    /// mode (exponential backoff with jitter). A value of 0 is treated as 1.
    pub max_attempts: u32,
    /// Most `replan-snapshots` rounds per execution; a watermark conflict
    /// still open after them fails its write.
    pub max_replan_rounds: u32,
    /// Time limit of one attempt of one request (`None`: no limit).
    pub request_timeout: Option<Duration>,
}

impl Default for ExecutorOptions {
    /// 16 in flight, 5 attempts, 5 re-plan rounds, 10 s per attempt.
    fn default() -> Self {
        ExecutorOptions {
            concurrency: 16,
            max_attempts: 5,
            max_replan_rounds: 5,
            request_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// Runs plans against DynamoDB and S3. Cheap to clone (the clients share
/// their connection pools).
#[derive(Debug, Clone)]
pub struct Executor {
    ddb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    options: ExecutorOptions,
    /// When the invocation's time is spent (Lambda's deadline less a
    /// margin): no request starts after it, and none runs past it.
    deadline: Option<Instant>,
}

/// Why a write did not run: the invocation's time budget was spent.
pub const DEADLINE_NOT_STARTED: &str = "not started: the invocation's time budget is spent";
/// Why a write stopped: the invocation's deadline came while it ran.
pub const DEADLINE_STOPPED: &str = "stopped at the invocation's deadline (it may have been applied; a retry is safe)";

/// How one original write of the plan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    /// Not finished (only while executing; none remains in a [`Report`]).
    Pending,
    /// The request succeeded.
    Applied,
    /// An `ignore` write's condition failed: expected, nothing to do.
    ConditionIgnored,
    /// A `resolve-watermarks` conflict was settled by re-planning: every
    /// re-planned write for the item applied, or nothing was left to apply.
    Resolved,
    /// A `required` write failed for good; the text says why. Its records failed.
    Failed(String),
    /// A `best-effort` write failed for good; the text says why. Counted and
    /// logged; its records did not fail.
    Abandoned(String),
    /// A `required` write that can never succeed; the text says why. Its
    /// records were stored in the dead letter, so they count as handled.
    DeadLettered(String),
}

/// What one original write is, without its request (which is moved into the
/// task that sends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteMeta {
    /// The write's id.
    pub id: u32,
    /// Why it is planned.
    pub purpose: Purpose,
    /// What its failure means.
    pub failure_policy: FailurePolicy,
    /// What a failed condition means.
    pub on_condition_failure: OnConditionFailure,
    /// Where it goes, in words.
    pub target: String,
    /// The records it carries.
    pub records: Vec<u32>,
    /// Log entries for when it is applied.
    pub on_applied: Vec<LogEntry>,
    /// Log entries for when it fails for good.
    pub on_failed: Vec<LogEntry>,
}

impl WriteMeta {
    fn split(w: Write) -> (WriteMeta, Operation) {
        let meta = WriteMeta {
            id: w.id,
            purpose: w.purpose,
            failure_policy: w.failure_policy,
            on_condition_failure: w.on_condition_failure,
            target: w.target,
            records: w.records,
            on_applied: w.on_applied,
            on_failed: w.on_failed,
        };
        (meta, w.operation)
    }
}

/// What [`Executor::execute`] did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One result per write of the original plan, in plan order.
    pub writes: Vec<WriteResult>,
    /// AWS operations sent (re-planned ones included; the SDK's own retries
    /// of one operation are not counted).
    pub requests: u32,
    /// `replan-snapshots` calls made.
    pub replan_rounds: u32,
    /// Reads made for `plan-after-reads`.
    pub reads: u32,
    /// Writes executed from re-plans.
    pub replanned_writes: u32,
    /// Condition failures of `ignore` writes.
    pub conditions_ignored: u32,
    /// Snapshot writes applied (original or re-planned).
    pub snapshots_applied: u32,
    /// Refill writes applied.
    pub refills_applied: u32,
    /// Shard-doubling writes applied.
    pub shard_bumps_applied: u32,
    /// Shard-propagation writes applied.
    pub shard_propagations_applied: u32,
    /// Archive objects written.
    pub archive_objects_written: u32,
    /// Audit events inside the archive objects written (the records of
    /// those writes; events of an object that failed are not counted).
    pub archived_events: u32,
    /// Archive objects that failed for good.
    pub archive_objects_failed: u32,
    /// `best-effort` writes that failed for good.
    pub best_effort_failures: u32,
    /// Records stored in dead-letter objects (the plan's own, for records
    /// the planner found invalid, and the executor's, for writes refused for
    /// good).
    pub dead_letter_records: u32,
    /// Indices of the stream records whose `required` writes failed for good
    /// (and were not stored in the dead letter).
    pub failed_records: BTreeSet<u32>,
    /// Indices of the stream records stored in the dead letter by the
    /// executor (a write refused for good, a malformed watermark).
    pub dead_lettered_records: BTreeSet<u32>,
    /// `required` writes that failed permanently: write id, its records and
    /// why. Candidates for the dead letter.
    pub permanent_failures: Vec<(u32, Vec<u32>, String)>,
    /// Records some `required` write failed for transiently: they must be
    /// retried, never dead-lettered.
    pub transient_records: BTreeSet<u32>,
    /// Failures that mean the deployment itself is wrong (access denied, a
    /// missing table or bucket): the invocation fails loudly.
    pub deployment_errors: Vec<String>,
    /// The invocation's time budget ran out before every write ended.
    pub deadline_reached: bool,
    /// One line per failed write: purpose, target, and the error chain.
    pub errors: Vec<String>,
    /// Log entries of the re-plans, in order, for the caller to emit with
    /// the plan's own logs.
    pub replan_logs: Vec<LogEntry>,
    /// The writes' own entries, in the order the writes ended: `on-applied`
    /// for each applied write, `on-failed` (with the error) for each that
    /// failed for good.
    pub write_logs: Vec<LogEntry>,
}

impl Report {
    /// Whether every required write ended well (applied, ignored, resolved,
    /// or its records stored in the dead letter) and the deployment is sound.
    pub fn is_success(&self) -> bool {
        self.failed_records.is_empty()
            && self.deployment_errors.is_empty()
            && !self.writes.iter().any(|w| matches!(w, WriteResult::Failed(_)))
    }

    /// Add the report of a later part of the same batch, whose record `0`
    /// is this batch's record `offset`: counts add up, record indices shift
    /// by `offset`, lists and logs follow this report's own.
    pub fn absorb(&mut self, other: Report, offset: u32) {
        let shift = |set: BTreeSet<u32>| set.into_iter().map(move |r| r + offset);
        self.writes.extend(other.writes);
        self.requests += other.requests;
        self.replan_rounds += other.replan_rounds;
        self.reads += other.reads;
        self.replanned_writes += other.replanned_writes;
        self.conditions_ignored += other.conditions_ignored;
        self.snapshots_applied += other.snapshots_applied;
        self.refills_applied += other.refills_applied;
        self.shard_bumps_applied += other.shard_bumps_applied;
        self.shard_propagations_applied += other.shard_propagations_applied;
        self.archive_objects_written += other.archive_objects_written;
        self.archived_events += other.archived_events;
        self.archive_objects_failed += other.archive_objects_failed;
        self.best_effort_failures += other.best_effort_failures;
        self.dead_letter_records += other.dead_letter_records;
        self.failed_records.extend(shift(other.failed_records));
        self.dead_lettered_records.extend(shift(other.dead_lettered_records));
        self.permanent_failures.extend(
            other
                .permanent_failures
                .into_iter()
                .map(|(id, rs, m)| (id, rs.into_iter().map(|r| r + offset).collect(), m)),
        );
        self.transient_records.extend(shift(other.transient_records));
        self.deployment_errors.extend(other.deployment_errors);
        self.deadline_reached |= other.deadline_reached;
        self.errors.extend(other.errors);
        self.replan_logs.extend(other.replan_logs);
        self.write_logs.extend(other.write_logs);
    }

    fn count_applied(&mut self, purpose: Purpose, records: usize) {
        match purpose {
            Purpose::Snapshot => self.snapshots_applied += 1,
            Purpose::Refill => self.refills_applied += 1,
            Purpose::ShardBump => self.shard_bumps_applied += 1,
            Purpose::ShardPropagate => self.shard_propagations_applied += 1,
            Purpose::Archive => {
                self.archive_objects_written += 1;
                self.archived_events += count(records);
            }
            Purpose::DeadLetter => self.dead_letter_records += count(records),
        }
    }

    /// End original write `w` for good, as its failure policy and the
    /// failure's kind say.
    fn fail(&mut self, w: &WriteMeta, failure: Failure) {
        let Failure { kind, message } = failure;
        self.write_logs.extend(w.on_failed.iter().map(|e| with_error(e, &message)));
        if w.purpose == Purpose::Archive {
            self.archive_objects_failed += 1;
        }
        if kind == FailureKind::Deployment {
            tracing::error!(
                target: "zae_aggregator::executor",
                purpose = w.purpose.name(),
                write = %w.target,
                exception = %message,
                "The deployment is wrong: a write was refused"
            );
            self.deployment_errors.push(format!("{} {}: {message}", w.purpose.name(), w.target));
        }
        let index = w.id as usize;
        match w.failure_policy {
            FailurePolicy::Required => {
                tracing::warn!(
                    target: "zae_aggregator::executor",
                    purpose = w.purpose.name(),
                    write = %w.target,
                    records = %RecordList(&w.records),
                    exception = %message,
                    "Write failed"
                );
                self.failed_records.extend(w.records.iter().copied());
                match kind {
                    FailureKind::Permanent => self.permanent_failures.push((w.id, w.records.clone(), message.clone())),
                    FailureKind::Transient | FailureKind::Deployment => {
                        self.transient_records.extend(w.records.iter().copied())
                    }
                }
                self.errors.push(format!("{} {}: {message}", w.purpose.name(), w.target));
                if let Some(slot) = self.writes.get_mut(index) {
                    *slot = WriteResult::Failed(message);
                }
            }
            FailurePolicy::BestEffort => {
                tracing::warn!(
                    target: "zae_aggregator::executor",
                    purpose = w.purpose.name(),
                    write = %w.target,
                    exception = %message,
                    "Best-effort write failed; the next batch decides again"
                );
                self.best_effort_failures += 1;
                self.errors.push(format!("{} {} (best-effort): {message}", w.purpose.name(), w.target));
                if let Some(slot) = self.writes.get_mut(index) {
                    *slot = WriteResult::Abandoned(message);
                }
            }
        }
    }

    /// The records that can go to the dead letter: those of permanently
    /// failed writes that no transient failure also holds back, each with
    /// the first such write's id and error (pure).
    pub fn dead_letter_candidates(&self) -> Vec<(u32, Option<u32>, String)> {
        let mut out: BTreeMap<u32, (Option<u32>, String)> = BTreeMap::new();
        for (id, records, message) in &self.permanent_failures {
            for &r in records {
                if !self.transient_records.contains(&r) {
                    out.entry(r).or_insert_with(|| (Some(*id), message.clone()));
                }
            }
        }
        out.into_iter().map(|(r, (id, m))| (r, id, m)).collect()
    }

    /// Record that the dead letter holds `records`: they are handled, and the
    /// writes whose every record is held count as dead-lettered.
    fn dead_lettered(&mut self, records: &[u32]) {
        for r in records {
            self.failed_records.remove(r);
            self.dead_lettered_records.insert(*r);
        }
        for (id, recs, message) in &self.permanent_failures {
            if recs.iter().all(|r| self.dead_lettered_records.contains(r)) {
                if let Some(slot) = self.writes.get_mut(*id as usize) {
                    *slot = WriteResult::DeadLettered(message.clone());
                }
            }
        }
    }

    fn set(&mut self, id: u32, result: WriteResult) {
        if let Some(slot) = self.writes.get_mut(id as usize) {
            *slot = result;
        }
    }
}

/// An `on-failed` entry as the contract says to emit it: `: {error}` appended
/// to the message, the error as a last field `exception`.
pub fn with_error(entry: &LogEntry, error: &str) -> LogEntry {
    let mut e = entry.clone();
    e.message = format!("{}: {error}", e.message);
    e.fields.push(LogField { name: "exception".into(), value: serde_json::Value::from(error).to_string() });
    e
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The request succeeded.
    Applied,
    /// ConditionalCheckFailedException; for `resolve-watermarks` writes, the
    /// item the condition met (DynamoDB JSON), `None` if it does not exist.
    ConditionFailed(Option<String>),
    /// The request failed for good (after the SDK's retries).
    Failed(Failure),
}

/// What kind of failure a request met: it decides where its records go
/// (docs/delivery-guarantees.md#failure-handling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    /// Throttling, a server error, a timeout, a lost connection: a retry may
    /// succeed, so a `required` write's records fail and are delivered again.
    Transient,
    /// The request itself can never succeed (a validation error, a size
    /// limit, a malformed value): its records go to the dead letter.
    Permanent,
    /// The deployment is wrong (access denied, a missing table or bucket,
    /// bad credentials): not the records' fault, so they never go to the dead
    /// letter; the invocation fails loudly.
    Deployment,
}

impl FailureKind {
    /// The kind of an error the service answered with `code`.
    pub fn of_code(code: &str) -> FailureKind {
        const DEPLOYMENT: &[&str] = &[
            "AccessDenied",
            "AccessDeniedException",
            "AllAccessDisabled",
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidAccessKeyId",
            "InvalidClientTokenId",
            "InvalidSignatureException",
            "MissingAuthenticationToken",
            "MissingAuthenticationTokenException",
            "NoSuchBucket",
            "ResourceNotFoundException",
            "SignatureDoesNotMatch",
            "UnrecognizedClientException",
            "KMSAccessDeniedException",
            "KMSDisabledException",
            "KMSNotFoundException",
            "KMSInvalidStateException",
        ];
        const PERMANENT: &[&str] = &[
            "ValidationException",
            "SerializationException",
            "ItemCollectionSizeLimitExceededException",
            "EntityTooLarge",
            "InvalidArgument",
            "InvalidRequest",
            "KeyTooLongError",
            "MetadataTooLarge",
        ];
        if DEPLOYMENT.contains(&code) {
            FailureKind::Deployment
        } else if PERMANENT.contains(&code) {
            FailureKind::Permanent
        } else {
            FailureKind::Transient
        }
    }
}

/// A request that failed for good: its kind and the error in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where its records go.
    pub kind: FailureKind,
    /// `{code}: {message} (HTTP {status})`, or the SDK's error chain.
    pub message: String,
}

impl Failure {
    /// A failure a retry may fix.
    pub fn transient(message: impl Into<String>) -> Failure {
        Failure { kind: FailureKind::Transient, message: message.into() }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Failure {
        Failure { kind: FailureKind::Permanent, message: message.into() }
    }
}

/// One executed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Whether the request was sent (a write with malformed attribute
    /// values fails before that).
    pub sent: bool,
    /// How it ended.
    pub outcome: Outcome,
}

/// Snapshot items whose watermark condition failed, by the id of their
/// original write, with the item each condition met.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conflicts(pub BTreeMap<u32, Option<String>>);

impl Conflicts {
    /// The observed items to pass to `replan-snapshots`.
    pub fn observed(&self) -> Vec<ObservedItem<'_>> {
        self.0.iter().map(|(&write_id, item)| ObservedItem { write_id, item: item.as_deref() }).collect()
    }
}

/// The writes of a re-plan that address items in conflict, to run, and the
/// positions of each item's writes among them; writes for other items are
/// returned apart (the planner never returns them; they are not executed).
#[derive(Debug, Default)]
pub struct Round {
    /// Writes to execute.
    pub to_run: Vec<Write>,
    /// Positions in `to_run` per original write id.
    pub by_id: BTreeMap<u32, Vec<usize>>,
    /// Writes for items not in conflict.
    pub strays: Vec<Write>,
}

/// Sort a re-plan's writes by the conflict they resolve (pure).
pub fn match_replan(conflicts: &Conflicts, writes: Vec<Write>) -> Round {
    let mut round = Round::default();
    for w in writes {
        if conflicts.0.contains_key(&w.id) {
            round.by_id.entry(w.id).or_default().push(round.to_run.len());
            round.to_run.push(w);
        } else {
            round.strays.push(w);
        }
    }
    round
}

/// How a conflict ended after one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Nothing is left to apply for the item.
    Resolved,
    /// The item's re-planned write failed, or its records turned out invalid
    /// (a malformed watermark: a permanent failure).
    Failed(Failure),
    /// The re-planned write met newer watermarks: another round, with this item.
    Again(Option<String>),
}

/// Decide, for each conflict, how the round ended (pure). `outcomes` are the
/// results of `round.to_run`, in order; `newly_invalid` maps records the
/// re-plan found invalid (and the plan did not) to the reason; `records_of`
/// gives an original write's records. Applied re-planned writes are returned
/// by position so the caller can count them.
pub fn settle(
    conflicts: &Conflicts,
    round: &Round,
    outcomes: &[Outcome],
    newly_invalid: &BTreeMap<u32, String>,
    records_of: impl Fn(u32) -> Vec<u32>,
) -> (BTreeMap<u32, Settlement>, Vec<usize>) {
    let mut settled = BTreeMap::new();
    let mut applied = Vec::new();
    for &id in conflicts.0.keys() {
        let Some(positions) = round.by_id.get(&id) else {
            let reasons: BTreeSet<&str> =
                records_of(id).iter().filter_map(|r| newly_invalid.get(r).map(String::as_str)).collect();
            let s = if reasons.is_empty() {
                Settlement::Resolved
            } else {
                let reasons: Vec<&str> = reasons.into_iter().collect();
                Settlement::Failed(Failure::permanent(format!("not re-planned: {}", reasons.join("; "))))
            };
            settled.insert(id, s);
            continue;
        };
        let mut failure: Option<Failure> = None;
        let mut again: Option<Option<String>> = None;
        for &j in positions {
            match outcomes.get(j) {
                Some(Outcome::Applied) => applied.push(j),
                Some(Outcome::ConditionFailed(observed)) => match round.to_run[j].on_condition_failure {
                    OnConditionFailure::ResolveWatermarks => again = Some(observed.clone()),
                    OnConditionFailure::Ignore => {}
                },
                Some(Outcome::Failed(f)) => {
                    failure = Some(Failure { kind: f.kind, message: format!("re-planned write: {}", f.message) })
                }
                None => failure = Some(Failure::transient("re-planned write has no result")),
            }
        }
        let s = match (failure, again) {
            (Some(f), _) => Settlement::Failed(f),
            (None, Some(observed)) => Settlement::Again(observed),
            (None, None) => Settlement::Resolved,
        };
        settled.insert(id, s);
    }
    (settled, applied)
}

/// Records the re-plan found invalid that the plan did not: their snapshot
/// item holds a malformed watermark and was not re-planned.
pub fn newly_invalid(plan: &[RecordOutcome], replan: &[RecordOutcome]) -> BTreeMap<u32, String> {
    let was_invalid: BTreeSet<u32> =
        plan.iter().filter(|o| matches!(o.status, RecordStatus::Invalid(_))).map(|o| o.index).collect();
    replan
        .iter()
        .filter_map(|o| match &o.status {
            RecordStatus::Invalid(reason) if !was_invalid.contains(&o.index) => Some((o.index, reason.clone())),
            _ => None,
        })
        .collect()
}

impl Executor {
    /// Clients from the standard AWS environment (`AWS_ENDPOINT_URL`,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`, the default credentials chain),
    /// with the SDK's standard retry mode limited to `max_attempts` and
    /// `request_timeout` as the per-attempt timeout. S3 uses path-style
    /// addressing when a custom endpoint is configured (`AWS_ENDPOINT_URL` or
    /// `AWS_ENDPOINT_URL_S3`), as local endpoints such as moto need. Build
    /// one per process.
    pub async fn from_env(options: ExecutorOptions) -> Executor {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config(&options));
        if let Some(timeout) = timeout_config(&options) {
            loader = loader.timeout_config(timeout);
        }
        let sdk = loader.load().await;
        let custom_endpoint =
            sdk.endpoint_url().is_some() || env_set("AWS_ENDPOINT_URL") || env_set("AWS_ENDPOINT_URL_S3");
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let s3_config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(custom_endpoint).build();
        Executor { ddb, s3: aws_sdk_s3::Client::from_conf(s3_config), options, deadline: None }
    }

    /// An executor over the given clients (endpoint, region, credentials and
    /// addressing style are theirs); `options` replaces their retry
    /// configuration and sets their per-attempt timeout.
    pub fn new(ddb: aws_sdk_dynamodb::Client, s3: aws_sdk_s3::Client, options: ExecutorOptions) -> Executor {
        let mut ddb_config = ddb.config().to_builder().retry_config(retry_config(&options));
        let mut s3_config = s3.config().to_builder().retry_config(retry_config(&options));
        if let Some(timeout) = timeout_config(&options) {
            ddb_config = ddb_config.timeout_config(timeout.clone());
            s3_config = s3_config.timeout_config(timeout);
        }
        Executor {
            ddb: aws_sdk_dynamodb::Client::from_conf(ddb_config.build()),
            s3: aws_sdk_s3::Client::from_conf(s3_config.build()),
            options,
            deadline: None,
        }
    }

    /// This executor with a deadline (`None`: none): requests not started by
    /// then are not sent, and requests still running then are abandoned;
    /// both fail their records (a `required` write's records go back to the
    /// stream), so an invocation ends before Lambda's own timeout with
    /// `batchItemFailures` instead of no answer at all.
    pub fn with_deadline(&self, deadline: Option<Instant>) -> Executor {
        Executor { deadline, ..self.clone() }
    }

    fn time_is_up(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The options this executor runs with.
    pub fn options(&self) -> &ExecutorOptions {
        &self.options
    }

    /// The DynamoDB client.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.ddb
    }

    /// The S3 client.
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// Execute every write of a plan (concurrently, at most
    /// [`ExecutorOptions::concurrency`] in flight; the contract makes writes
    /// independent), resolve watermark conflicts through
    /// `planner.replan_snapshots(batch, observed)` rounds, and report.
    ///
    /// `batch` must be the batch the plan was made from, `outcomes` its
    /// record outcomes. The writes are consumed: each request (an archive
    /// body included) is moved into the task that sends it. Never panics:
    /// every failure, including a panicked request task, ends up as a
    /// [`WriteResult::Failed`] or [`WriteResult::Abandoned`].
    pub async fn execute(
        &self,
        planner: &Planner,
        batch: &Batch<'_>,
        writes: Vec<Write>,
        outcomes: &[RecordOutcome],
    ) -> Report {
        self.execute_plan(planner, batch, writes, Vec::new(), &[], outcomes).await
    }

    /// [`Executor::execute`] for a plan that also asks for reads: once the
    /// writes have run, the reads are made (strongly consistent GetItems,
    /// concurrently), their results go to `planner.plan_after_reads`, and the
    /// writes it answers are executed the same way (their results extend the
    /// report's `writes`, by id).
    ///
    /// `images` are the plan's shared item images (`batch-plan.images`),
    /// which its put-items may start from (`put-item.base`); each request
    /// builds its item from them when it is sent, so the plan's new shard
    /// items are never all in memory at once.
    pub async fn execute_plan(
        &self,
        planner: &Planner,
        batch: &Batch<'_>,
        writes: Vec<Write>,
        images: Vec<Vec<Attribute>>,
        reads: &[Read],
        outcomes: &[RecordOutcome],
    ) -> Report {
        let images: Images = Arc::new(images);
        let mut report = Report { writes: vec![WriteResult::Pending; writes.len()], ..Report::default() };
        let mut metas = self.run_writes(planner, batch, writes, &images, outcomes, &mut report).await;
        if !reads.is_empty() && !self.time_is_up() {
            let results = self.read_all(reads).await;
            report.reads += count(reads.len());
            report.requests += count(reads.len());
            let wit_results: Vec<ReadResult<'_>> = results.iter().map(OwnedReadResult::as_wit).collect();
            match planner.plan_after_reads(batch, &wit_results).await {
                Ok(Ok(after)) => {
                    report.replan_logs.extend(after.logs.iter().cloned());
                    let first = report.writes.len();
                    for w in &after.writes {
                        let slot = w.id as usize;
                        if slot >= report.writes.len() {
                            report.writes.resize(slot + 1, WriteResult::Pending);
                        }
                    }
                    // Ids below the first new slot would collide with the plan's own.
                    let (ok, bad): (Vec<Write>, Vec<Write>) =
                        after.writes.into_iter().partition(|w| w.id as usize >= first);
                    if !bad.is_empty() {
                        report.errors.push(format!(
                            "plan-after-reads returned {} writes whose ids collide with the plan's; not executed",
                            bad.len()
                        ));
                    }
                    metas.extend(self.run_writes(planner, batch, ok, &Images::default(), outcomes, &mut report).await);
                    // Slots of ids the answer skipped never had a write.
                    for slot in report.writes.iter_mut().skip(first) {
                        if *slot == WriteResult::Pending {
                            *slot = WriteResult::ConditionIgnored;
                        }
                    }
                    for meta in &metas {
                        if report.writes.get(meta.id as usize) == Some(&WriteResult::Pending) {
                            report.fail(meta, Failure::transient("the write did not finish"));
                        }
                    }
                }
                Ok(Err(e)) => report.errors.push(format!("plan-after-reads refused the reads: {}", e.message())),
                Err(e) => report.errors.push(format!("the plan-after-reads call failed: {e}")),
            }
        }
        if !self.time_is_up() {
            self.dead_letter(planner, batch, &mut report).await;
        }
        report.deadline_reached = self.time_is_up();
        // Every write has ended one way or another; one that somehow has not
        // fails like any unfinished write, so its records are retried.
        for meta in &metas {
            if report.writes.get(meta.id as usize) == Some(&WriteResult::Pending) {
                report.fail(meta, Failure::transient("the write did not finish"));
            }
        }
        report
    }

    /// Make every read, concurrently (at most `concurrency` at once).
    async fn read_all(&self, reads: &[Read]) -> Vec<OwnedReadResult> {
        let limit = self.options.concurrency.max(1);
        let mut out = Vec::with_capacity(reads.len());
        for chunk in reads.chunks(limit) {
            let mut tasks = JoinSet::new();
            for (i, read) in chunk.iter().enumerate() {
                let (ddb, read, deadline) = (self.ddb.clone(), read.clone(), self.deadline);
                tasks.spawn(async move {
                    let result = match deadline {
                        None => read_item(&ddb, &read).await,
                        Some(at) => match tokio::time::timeout_at(at.into(), read_item(&ddb, &read)).await {
                            Ok(r) => r,
                            Err(_) => OwnedReadResult {
                                read_id: read.id,
                                outcome: OwnedReadOutcome::Failed(DEADLINE_STOPPED.into()),
                            },
                        },
                    };
                    (i, result)
                });
            }
            let mut results: Vec<Option<OwnedReadResult>> = (0..chunk.len()).map(|_| None).collect();
            while let Some(joined) = tasks.join_next().await {
                if let Ok((i, r)) = joined {
                    results[i] = Some(r);
                }
            }
            for (read, r) in chunk.iter().zip(results) {
                out.push(r.unwrap_or(OwnedReadResult {
                    read_id: read.id,
                    outcome: OwnedReadOutcome::Failed("the read task failed".into()),
                }));
            }
        }
        out
    }

    /// Run `writes` (resolving watermark conflicts), recording each
    /// outcome in `report`; returns their metadata.
    async fn run_writes(
        &self,
        planner: &Planner,
        batch: &Batch<'_>,
        writes: Vec<Write>,
        images: &Images,
        outcomes: &[RecordOutcome],
        report: &mut Report,
    ) -> Vec<WriteMeta> {
        let (metas, ops): (Vec<WriteMeta>, Vec<Operation>) = writes.into_iter().map(WriteMeta::split).unzip();
        let resolve: Vec<bool> =
            metas.iter().map(|m| m.on_condition_failure == OnConditionFailure::ResolveWatermarks).collect();
        let attempts = self.run_ordered(ops.into_iter().zip(resolve).collect(), images).await;
        let mut conflicts = Conflicts::default();
        for (meta, attempt) in metas.iter().zip(attempts) {
            if attempt.sent {
                report.requests += 1;
            }
            match attempt.outcome {
                Outcome::Applied => {
                    report.count_applied(meta.purpose, meta.records.len());
                    report.write_logs.extend(meta.on_applied.iter().cloned());
                    report.set(meta.id, WriteResult::Applied);
                }
                Outcome::Failed(failure) => report.fail(meta, failure),
                Outcome::ConditionFailed(observed) => match meta.on_condition_failure {
                    OnConditionFailure::Ignore => {
                        report.conditions_ignored += 1;
                        report.set(meta.id, WriteResult::ConditionIgnored);
                    }
                    OnConditionFailure::ResolveWatermarks => {
                        conflicts.0.insert(meta.id, observed);
                    }
                },
            }
        }
        self.resolve(planner, batch, &metas, outcomes, conflicts, report).await;
        metas
    }

    /// Store the records that can never be applied in the dead letter (the
    /// planner's `dead-letter` write, when a bucket is configured); once it
    /// is stored they count as handled. If storing fails, they stay failed.
    async fn dead_letter(&self, planner: &Planner, batch: &Batch<'_>, report: &mut Report) {
        let candidates = report.dead_letter_candidates();
        if candidates.is_empty() {
            return;
        }
        let failures: Vec<RecordFailure> = candidates
            .iter()
            .map(|(index, write_id, reason)| RecordFailure { index: *index, reason, write_id: *write_id })
            .collect();
        self.store_dead_letter(planner, batch, &failures, report).await;
    }

    /// Store `failures` (records of `batch` that can never be applied) in the
    /// dead letter, as [`Executor::execute`] does for the writes refused for
    /// good: the report's `dead_lettered_records` holds the records stored.
    /// The handler uses it for a record the planner itself fails on
    /// (`docs/host.md#poison-records`).
    pub async fn dead_letter_records(
        &self,
        planner: &Planner,
        batch: &Batch<'_>,
        failures: &[RecordFailure<'_>],
    ) -> Report {
        let mut report = Report::default();
        if !self.time_is_up() {
            self.store_dead_letter(planner, batch, failures, &mut report).await;
        }
        report.deadline_reached = self.time_is_up();
        report
    }

    async fn store_dead_letter(
        &self,
        planner: &Planner,
        batch: &Batch<'_>,
        failures: &[RecordFailure<'_>],
        report: &mut Report,
    ) {
        let write = match planner.dead_letter(batch, failures).await {
            Ok(Ok(Some(w))) => w,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                report.errors.push(format!("dead letter: the planner refused it: {}", e.message()));
                return;
            }
            Err(e) => {
                report.errors.push(format!("dead letter: the planner call failed: {e}"));
                return;
            }
        };
        let (meta, op) = WriteMeta::split(write);
        let attempt = self.run(vec![(op, false)], &Images::default()).await.pop();
        match attempt {
            Some(Attempt { sent, outcome: Outcome::Applied }) => {
                report.requests += u32::from(sent);
                report.write_logs.extend(meta.on_applied.iter().cloned());
                report.dead_letter_records += count(meta.records.len());
                report.dead_lettered(&meta.records);
            }
            Some(Attempt { sent, outcome: Outcome::Failed(f) }) => {
                report.requests += u32::from(sent);
                report.write_logs.extend(meta.on_failed.iter().map(|e| with_error(e, &f.message)));
                report.errors.push(format!("{} {}: {}", meta.purpose.name(), meta.target, f.message));
                if f.kind == FailureKind::Deployment {
                    report.deployment_errors.push(format!("{} {}: {}", meta.purpose.name(), meta.target, f.message));
                }
            }
            Some(Attempt { sent, outcome: Outcome::ConditionFailed(_) }) => {
                report.requests += u32::from(sent);
            }
            None => {}
        }
    }

    /// Re-plan and execute conflicted snapshot items, round by round.
    async fn resolve(
        &self,
        planner: &Planner,
        batch: &Batch<'_>,
        metas: &[WriteMeta],
        outcomes: &[RecordOutcome],
        mut conflicts: Conflicts,
        report: &mut Report,
    ) {
        let meta_of = |id: u32| metas.iter().find(|m| m.id == id);
        let fail_all = |report: &mut Report, conflicts: &Conflicts, message: &str| {
            for &id in conflicts.0.keys() {
                if let Some(m) = meta_of(id) {
                    report.fail(m, Failure::transient(message));
                }
            }
        };
        let max_rounds = self.options.max_replan_rounds;
        while !conflicts.0.is_empty() {
            if self.time_is_up() {
                fail_all(report, &conflicts, "watermark conflict not resolved: the invocation's time budget is spent");
                return;
            }
            if report.replan_rounds >= max_rounds {
                fail_all(report, &conflicts, &format!("watermark conflict unresolved after {max_rounds} rounds"));
                return;
            }
            report.replan_rounds += 1;
            tracing::debug!(
                target: "zae_aggregator::executor",
                round = report.replan_rounds,
                items = conflicts.0.len(),
                "Re-planning snapshot items after watermark conflicts"
            );
            let replan = match planner.replan_snapshots(batch, &conflicts.observed()).await {
                Ok(Ok(replan)) => replan,
                Ok(Err(e)) => {
                    fail_all(report, &conflicts, &format!("re-planning the snapshot item failed: {}", e.message()));
                    return;
                }
                Err(e) => {
                    fail_all(report, &conflicts, &format!("the re-planning call failed: {e}"));
                    return;
                }
            };
            report.replan_logs.extend(replan.logs.iter().cloned());
            let invalid = newly_invalid(outcomes, &replan.outcomes);
            let round = match_replan(&conflicts, replan.writes);
            for w in &round.strays {
                tracing::warn!(
                    target: "zae_aggregator::executor",
                    purpose = w.purpose.name(),
                    write = %w.target,
                    "The re-plan returned a write for an item that was not in conflict; not executed"
                );
            }
            let ops: Vec<(Operation, bool)> = round
                .to_run
                .iter()
                .map(|w| (w.operation.clone(), w.on_condition_failure == OnConditionFailure::ResolveWatermarks))
                .collect();
            let attempts = self.run(ops, &Images::default()).await;
            let sent = attempts.iter().filter(|a| a.sent).count() as u32;
            report.requests += sent;
            report.replanned_writes += sent;
            let results: Vec<Outcome> = attempts.into_iter().map(|a| a.outcome).collect();
            let records_of = |id: u32| meta_of(id).map(|m| m.records.clone()).unwrap_or_default();
            let (settled, applied) = settle(&conflicts, &round, &results, &invalid, records_of);
            for j in applied {
                let w = &round.to_run[j];
                report.count_applied(w.purpose, w.records.len());
                report.write_logs.extend(w.on_applied.iter().cloned());
            }
            let mut next = Conflicts::default();
            for (id, s) in settled {
                match s {
                    Settlement::Resolved => report.set(id, WriteResult::Resolved),
                    Settlement::Failed(failure) => {
                        if let Some(m) = meta_of(id) {
                            report.fail(m, failure);
                        }
                    }
                    Settlement::Again(observed) => {
                        next.0.insert(id, observed);
                    }
                }
            }
            conflicts = next;
        }
    }

    /// [`Executor::run`] with the contract's one ordering rule: every
    /// `TransactWriteItems` runs after the other operations, one at a time,
    /// in plan order. A plan's transactions share items (the shard clones of
    /// one bucket all check the owner's META item, and may debit donors the
    /// plan's updates also raise); run concurrently, DynamoDB would cancel
    /// all but one of them (`TransactionConflict`). Results in input order.
    async fn run_ordered(&self, ops: Vec<(Operation, bool)>, images: &Images) -> Vec<Attempt> {
        let is_tx = |op: &Operation| matches!(op, Operation::TransactWriteItems(_));
        if !ops.iter().any(|(op, _)| is_tx(op)) {
            return self.run(ops, images).await;
        }
        let total = ops.len();
        type Indexed = Vec<(usize, (Operation, bool))>;
        let (txs, rest): (Indexed, Indexed) = ops.into_iter().enumerate().partition(|(_, (op, _))| is_tx(op));
        let mut results: Vec<Option<Attempt>> = (0..total).map(|_| None).collect();
        let (rest_index, rest_ops): (Vec<usize>, Vec<(Operation, bool)>) = rest.into_iter().unzip();
        for (i, attempt) in rest_index.into_iter().zip(self.run(rest_ops, images).await) {
            results[i] = Some(attempt);
        }
        for (i, op) in txs {
            results[i] = self.run(vec![op], images).await.pop();
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Attempt { sent: false, outcome: Outcome::Failed(Failure::transient("not run")) }))
            .collect()
    }

    /// Send each operation (with whether it resolves watermarks)
    /// concurrently, at most `concurrency` at once; results in order. Each
    /// operation is moved into its task.
    async fn run(&self, ops: Vec<(Operation, bool)>, images: &Images) -> Vec<Attempt> {
        let limit = self.options.concurrency.max(1);
        let total = ops.len();
        let mut results: Vec<Option<Attempt>> = (0..total).map(|_| None).collect();
        let mut tasks: JoinSet<(usize, Attempt)> = JoinSet::new();
        let mut task_index: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut pending = ops.into_iter().enumerate();
        let deadline = self.deadline;
        loop {
            while tasks.len() < limit {
                let Some((index, (op, resolve))) = pending.next() else { break };
                if self.time_is_up() {
                    let failure = Failure::transient(DEADLINE_NOT_STARTED);
                    results[index] = Some(Attempt { sent: false, outcome: Outcome::Failed(failure) });
                    continue;
                }
                let (ddb, s3, images) = (self.ddb.clone(), self.s3.clone(), Arc::clone(images));
                let handle = tasks.spawn(async move {
                    let attempt = match deadline {
                        None => send(&ddb, &s3, op, resolve, &images).await,
                        Some(at) => match tokio::time::timeout_at(at.into(), send(&ddb, &s3, op, resolve, &images))
                            .await
                        {
                            Ok(attempt) => attempt,
                            Err(_) => {
                                Attempt { sent: true, outcome: Outcome::Failed(Failure::transient(DEADLINE_STOPPED)) }
                            }
                        },
                    };
                    (index, attempt)
                });
                task_index.insert(handle.id(), index);
            }
            match tasks.join_next_with_id().await {
                Some(Ok((_, (index, attempt)))) => results[index] = Some(attempt),
                Some(Err(e)) => {
                    if let Some(&index) = task_index.get(&e.id()) {
                        results[index] = Some(Attempt {
                            sent: false,
                            outcome: Outcome::Failed(Failure::transient(format!("the request task failed: {e}"))),
                        });
                    }
                }
                None => break,
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or(Attempt {
                    sent: false,
                    outcome: Outcome::Failed(Failure::transient("the request task vanished")),
                })
            })
            .collect()
    }
}

fn retry_config(options: &ExecutorOptions) -> RetryConfig {
    RetryConfig::standard().with_max_attempts(options.max_attempts.max(1))
}

fn timeout_config(options: &ExecutorOptions) -> Option<TimeoutConfig> {
    options.request_timeout.map(|t| TimeoutConfig::builder().operation_attempt_timeout(t).build())
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Send one request (an object's body is moved into the request, not copied).
async fn send(
    ddb: &aws_sdk_dynamodb::Client,
    s3: &aws_sdk_s3::Client,
    op: Operation,
    resolve: bool,
    images: &[Vec<Attribute>],
) -> Attempt {
    let result = match op {
        Operation::UpdateItem(u) => update_item(ddb, &u, resolve).await,
        Operation::PutItem(p) => put_item(ddb, &p, resolve, images).await,
        Operation::PutObject(o) => put_object(s3, o).await,
        Operation::TransactWriteItems(items) => transact_write_items(ddb, &items, images).await,
    };
    match result {
        Ok(outcome) => {
            if let Outcome::ConditionFailed(observed) = &outcome {
                tracing::debug!(
                    target: "zae_aggregator::executor",
                    resolve_watermarks = resolve,
                    item_exists = observed.is_some(),
                    "Condition check failed"
                );
            }
            Attempt { sent: true, outcome }
        }
        // Malformed request parts: nothing was sent, and nothing ever will be.
        Err(message) => Attempt { sent: false, outcome: Outcome::Failed(Failure::permanent(message)) },
    }
}

/// The expression attribute names as the SDK takes them (`None` if empty,
/// since DynamoDB rejects an empty map).
fn names_map(names: &[ExpressionName]) -> Result<Option<HashMap<String, String>>, String> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut out = HashMap::with_capacity(names.len());
    for n in names {
        if out.insert(n.placeholder.clone(), n.name.clone()).is_some() {
            return Err(format!("expression name {:?} appears more than once", n.placeholder));
        }
    }
    Ok(Some(out))
}

/// The expression attribute values (`None` if empty).
fn values_map(
    values: &[Attribute],
) -> Result<Option<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>, String> {
    if values.is_empty() {
        return Ok(None);
    }
    attrs_to_map(values).map(Some).map_err(|e| format!("invalid expression value: {e}"))
}

async fn update_item(ddb: &aws_sdk_dynamodb::Client, u: &UpdateItem, resolve: bool) -> Result<Outcome, String> {
    let key = attrs_to_map(&u.key).map_err(|e| format!("invalid key: {e}"))?;
    let mut req = ddb
        .update_item()
        .table_name(&u.table_name)
        .set_key(Some(key))
        .update_expression(&u.update_expression)
        .set_condition_expression(u.condition_expression.clone())
        .set_expression_attribute_names(names_map(&u.names)?)
        .set_expression_attribute_values(values_map(&u.values)?);
    if resolve {
        req = req.return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    }
    Ok(match req.send().await {
        Ok(_) => Outcome::Applied,
        Err(err) => match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                Outcome::ConditionFailed(e.item().map(item_to_json))
            }
            _ => Outcome::Failed(describe_error(&err)),
        },
    })
}

/// The item a put-item writes: its `item`, or with a `base`, that image of
/// the plan with `item` put over it (the contract's `put-item.base`).
fn put_attributes(
    p: &PutItem,
    images: &[Vec<Attribute>],
) -> Result<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, String> {
    let Some(i) = p.base else { return attrs_to_map(&p.item).map_err(|e| format!("invalid item: {e}")) };
    let base = images
        .get(i as usize)
        .ok_or_else(|| format!("invalid item: its base image {i} is not among the plan's {} images", images.len()))?;
    let mut item = attrs_to_map(base).map_err(|e| format!("invalid item: {e}"))?;
    item.extend(attrs_to_map(&p.item).map_err(|e| format!("invalid item: {e}"))?);
    Ok(item)
}

async fn put_item(
    ddb: &aws_sdk_dynamodb::Client,
    p: &PutItem,
    resolve: bool,
    images: &[Vec<Attribute>],
) -> Result<Outcome, String> {
    let item = put_attributes(p, images)?;
    let mut req = ddb
        .put_item()
        .table_name(&p.table_name)
        .set_item(Some(item))
        .set_condition_expression(p.condition_expression.clone())
        .set_expression_attribute_names(names_map(&p.names)?)
        .set_expression_attribute_values(values_map(&p.values)?);
    if resolve {
        req = req.return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    }
    Ok(match req.send().await {
        Ok(_) => Outcome::Applied,
        Err(err) => match err.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(e)) => {
                Outcome::ConditionFailed(e.item().map(item_to_json))
            }
            _ => Outcome::Failed(describe_error(&err)),
        },
    })
}

/// One TransactWriteItems request. A cancellation whose every reason is
/// `None` or `ConditionalCheckFailed` is a failed condition (the planned
/// transaction met an item that had moved on); any other reason
/// (`TransactionConflict`, throttling, ...) fails the write like any error.
async fn transact_write_items(
    ddb: &aws_sdk_dynamodb::Client,
    items: &[TransactItem],
    images: &[Vec<Attribute>],
) -> Result<Outcome, String> {
    use aws_sdk_dynamodb::types::{self as ty, TransactWriteItem};
    let mut actions = Vec::with_capacity(items.len());
    for item in items {
        let action = match item {
            TransactItem::Put(p) => TransactWriteItem::builder().put(
                ty::Put::builder()
                    .table_name(&p.table_name)
                    .set_item(Some(put_attributes(p, images)?))
                    .set_condition_expression(p.condition_expression.clone())
                    .set_expression_attribute_names(names_map(&p.names)?)
                    .set_expression_attribute_values(values_map(&p.values)?)
                    .build()
                    .map_err(|e| format!("invalid transaction put: {e}"))?,
            ),
            TransactItem::Update(u) => TransactWriteItem::builder().update(
                ty::Update::builder()
                    .table_name(&u.table_name)
                    .set_key(Some(attrs_to_map(&u.key).map_err(|e| format!("invalid key: {e}"))?))
                    .update_expression(&u.update_expression)
                    .set_condition_expression(u.condition_expression.clone())
                    .set_expression_attribute_names(names_map(&u.names)?)
                    .set_expression_attribute_values(values_map(&u.values)?)
                    .build()
                    .map_err(|e| format!("invalid transaction update: {e}"))?,
            ),
            TransactItem::ConditionCheck(c) => TransactWriteItem::builder().condition_check(
                ty::ConditionCheck::builder()
                    .table_name(&c.table_name)
                    .set_key(Some(attrs_to_map(&c.key).map_err(|e| format!("invalid key: {e}"))?))
                    .condition_expression(&c.condition_expression)
                    .set_expression_attribute_names(names_map(&c.names)?)
                    .set_expression_attribute_values(values_map(&c.values)?)
                    .build()
                    .map_err(|e| format!("invalid condition check: {e}"))?,
            ),
        };
        actions.push(action.build());
    }
    Ok(match ddb.transact_write_items().set_transact_items(Some(actions)).send().await {
        Ok(_) => Outcome::Applied,
        Err(err) => match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(e))
                if e.cancellation_reasons()
                    .iter()
                    .all(|r| matches!(r.code(), None | Some("None") | Some("ConditionalCheckFailed"))) =>
            {
                Outcome::ConditionFailed(None)
            }
            _ => Outcome::Failed(describe_error(&err)),
        },
    })
}

/// What a read found, owned (the contract's `read-outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedReadOutcome {
    /// The item as DynamoDB JSON.
    Found(String),
    /// No such item.
    Missing,
    /// The read failed; the error.
    Failed(String),
}

/// The answer to one read, owned (the contract's `read-result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedReadResult {
    /// The read's id.
    pub read_id: u32,
    /// What it found.
    pub outcome: OwnedReadOutcome,
}

impl OwnedReadResult {
    /// The contract's form, borrowing from `self`.
    pub fn as_wit(&self) -> ReadResult<'_> {
        let outcome = match &self.outcome {
            OwnedReadOutcome::Found(item) => ReadOutcome::Found(item),
            OwnedReadOutcome::Missing => ReadOutcome::Missing,
            OwnedReadOutcome::Failed(why) => ReadOutcome::Failed(why),
        };
        ReadResult { read_id: self.read_id, outcome }
    }
}

/// One strongly consistent GetItem for the planner (`plan-after-reads`).
pub async fn read_item(ddb: &aws_sdk_dynamodb::Client, read: &Read) -> OwnedReadResult {
    let outcome = match attrs_to_map(&read.key) {
        Err(e) => OwnedReadOutcome::Failed(format!("invalid key: {e}")),
        Ok(key) => {
            match ddb.get_item().table_name(&read.table_name).set_key(Some(key)).consistent_read(true).send().await {
                Ok(out) => match out.item() {
                    Some(item) => OwnedReadOutcome::Found(item_to_json(item)),
                    None => OwnedReadOutcome::Missing,
                },
                Err(err) => OwnedReadOutcome::Failed(describe_error(&err).message),
            }
        }
    };
    OwnedReadResult { read_id: read.id, outcome }
}

async fn put_object(s3: &aws_sdk_s3::Client, o: PutObject) -> Result<Outcome, String> {
    let result = s3
        .put_object()
        .bucket(&o.bucket)
        .key(&o.key)
        .body(ByteStream::from(o.body))
        .content_type(&o.content_type)
        .content_encoding(&o.content_encoding)
        .send()
        .await;
    Ok(match result {
        Ok(_) => Outcome::Applied,
        Err(err) => Outcome::Failed(describe_error(&err)),
    })
}

/// A failed request: its kind (from the service's error code; a request the
/// SDK could not even build is permanent, everything else transient) and the
/// error in one line: `{code}: {message} (HTTP {status})` for an error the
/// service answered, the SDK's error chain otherwise (timeouts, connection
/// failures), without the raw response dump.
fn describe_error<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match err {
        SdkError::ServiceError(service) => service.err().code().map_or(FailureKind::Transient, FailureKind::of_code),
        SdkError::ConstructionFailure(_) => FailureKind::Permanent,
        _ => FailureKind::Transient,
    };
    Failure { kind, message: describe_error_text(err) }
}

fn describe_error_text<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!(
                "{}: {} (HTTP {})",
                e.code().unwrap_or("service error"),
                e.message().unwrap_or("no message"),
                service.raw().status().as_u16()
            )
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

/// Record indices as a JSON-style list (`[0,3,4]`), for log fields.
struct RecordList<'a>(&'a [u32]);

impl fmt::Display for RecordList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_item_with_a_base_writes_the_image_with_its_attributes_put_over_it() {
        let a = |name: &str, value: &str| Attribute { name: name.into(), value: value.into() };
        let images = vec![vec![a("PK", r#"{"S":""}"#), a("SK", r##"{"S":"#STATE"}"##), a("b_x_tk", r#"{"N":"5"}"#)]];
        let put = |base: Option<u32>| PutItem {
            table_name: "t".into(),
            base,
            item: vec![a("PK", r#"{"S":"ns/BUCKET#e#r#2"}"#), a("GSI2SK", r#"{"S":"BUCKET#e#2"}"#)],
            condition_expression: None,
            names: vec![],
            values: vec![],
        };
        let item = put_attributes(&put(Some(0)), &images).unwrap();
        assert_eq!(item.len(), 4, "{item:?}");
        assert_eq!(item["PK"].as_s().unwrap(), "ns/BUCKET#e#r#2");
        assert_eq!(item["SK"].as_s().unwrap(), "#STATE");
        assert_eq!(item["b_x_tk"].as_n().unwrap(), "5");
        assert_eq!(put_attributes(&put(None), &images).unwrap().len(), 2, "no base: the item alone");
        let missing = put_attributes(&put(Some(1)), &images).unwrap_err();
        assert!(missing.contains("base image 1 is not among the plan's 1 images"), "{missing}");
    }

    fn write(id: u32, on: OnConditionFailure, records: Vec<u32>) -> Write {
        Write {
            id,
            purpose: Purpose::Snapshot,
            failure_policy: FailurePolicy::Required,
            on_condition_failure: on,
            target: format!("t {{PK=p, SK=s{id}}}"),
            records,
            operation: Operation::UpdateItem(UpdateItem {
                table_name: "t".into(),
                key: vec![],
                update_expression: "ADD #a :a".into(),
                condition_expression: None,
                names: vec![],
                values: vec![],
            }),
            on_applied: vec![],
            on_failed: vec![],
        }
    }

    fn meta(id: u32, purpose: Purpose, policy: FailurePolicy, records: Vec<u32>) -> WriteMeta {
        WriteMeta {
            id,
            purpose,
            failure_policy: policy,
            on_condition_failure: OnConditionFailure::Ignore,
            target: format!("t{id}"),
            records,
            on_applied: vec![],
            on_failed: vec![LogEntry {
                level: crate::bindings::LogLevel::Warning,
                message: "Error updating snapshot".into(),
                fields: vec![LogField { name: "limit_name".into(), value: "\"tpm\"".into() }],
            }],
        }
    }

    #[test]
    fn defaults() {
        let o = ExecutorOptions::default();
        assert_eq!((o.concurrency, o.max_attempts, o.max_replan_rounds), (16, 5, 5));
        assert_eq!(o.request_timeout, Some(Duration::from_secs(10)));
    }

    #[test]
    fn empty_expression_maps_are_omitted() {
        assert_eq!(names_map(&[]).unwrap(), None);
        assert_eq!(values_map(&[]).unwrap(), None);
        let names = [ExpressionName { placeholder: "#a".into(), name: "ttl".into() }];
        assert_eq!(names_map(&names).unwrap().unwrap()["#a"], "ttl");
        let dup = [names[0].clone(), names[0].clone()];
        assert!(names_map(&dup).unwrap_err().contains("more than once"));
        let bad = values_map(&[Attribute { name: ":a".into(), value: "{\"N\":1}".into() }]).unwrap_err();
        assert!(bad.starts_with("invalid expression value: attribute \":a\""), "{bad}");
    }

    #[test]
    fn report_counts_by_purpose() {
        let mut r = Report::default();
        r.count_applied(Purpose::Snapshot, 2);
        r.count_applied(Purpose::Archive, 2);
        assert_eq!((r.snapshots_applied, r.archive_objects_written, r.archived_events), (1, 1, 2));
        assert!(r.is_success());
    }

    #[test]
    fn failure_policy_decides_whether_records_fail() {
        let mut r = Report { writes: vec![WriteResult::Pending; 2], ..Report::default() };
        r.fail(&meta(0, Purpose::Refill, FailurePolicy::BestEffort, vec![3, 4]), Failure::transient("throttled"));
        assert!(r.failed_records.is_empty());
        assert_eq!(r.best_effort_failures, 1);
        assert_eq!(r.writes[0], WriteResult::Abandoned("throttled".into()));
        assert!(r.is_success());
        r.fail(&meta(1, Purpose::Snapshot, FailurePolicy::Required, vec![1, 4]), Failure::transient("throttled"));
        assert_eq!(r.failed_records, [1, 4].into_iter().collect());
        assert_eq!(r.writes[1], WriteResult::Failed("throttled".into()));
        assert_eq!(r.errors, ["refill t0 (best-effort): throttled", "snapshot t1: throttled"]);
        // Each failed write's own entries, with the error: zae-limiter's line and fields.
        assert_eq!(r.write_logs.len(), 2);
        assert_eq!(r.write_logs[1].message, "Error updating snapshot: throttled");
        let fields: Vec<(&str, &str)> =
            r.write_logs[1].fields.iter().map(|f| (f.name.as_str(), f.value.as_str())).collect();
        assert_eq!(fields, [("limit_name", "\"tpm\""), ("exception", "\"throttled\"")]);
        assert!(!r.is_success());
    }

    #[test]
    fn error_codes_decide_the_failure_kind() {
        for code in
            ["ValidationException", "ItemCollectionSizeLimitExceededException", "EntityTooLarge", "KeyTooLongError"]
        {
            assert_eq!(FailureKind::of_code(code), FailureKind::Permanent, "{code}");
        }
        for code in ["AccessDeniedException", "AccessDenied", "ResourceNotFoundException", "NoSuchBucket"] {
            assert_eq!(FailureKind::of_code(code), FailureKind::Deployment, "{code}");
        }
        for code in ["ProvisionedThroughputExceededException", "ThrottlingException", "SlowDown", "InternalServerError"]
        {
            assert_eq!(FailureKind::of_code(code), FailureKind::Transient, "{code}");
        }
    }

    #[test]
    fn only_records_held_back_by_permanent_failures_alone_go_to_the_dead_letter() {
        let mut r = Report { writes: vec![WriteResult::Pending; 3], ..Report::default() };
        r.fail(
            &meta(0, Purpose::Snapshot, FailurePolicy::Required, vec![1, 2]),
            Failure::permanent("ValidationException"),
        );
        r.fail(&meta(1, Purpose::Snapshot, FailurePolicy::Required, vec![2, 3]), Failure::transient("throttled"));
        r.fail(&meta(2, Purpose::Archive, FailurePolicy::Required, vec![5]), Failure::permanent("EntityTooLarge"));
        assert_eq!(
            r.dead_letter_candidates(),
            [(1, Some(0), "ValidationException".to_string()), (5, Some(2), "EntityTooLarge".to_string())]
        );
        r.dead_lettered(&[1, 5]);
        assert_eq!(r.failed_records, [2, 3].into_iter().collect());
        assert_eq!(r.writes[2], WriteResult::DeadLettered("EntityTooLarge".into()));
        assert_eq!(r.writes[0], WriteResult::Failed("ValidationException".into()), "record 2 still needs a retry");
        assert!(!r.is_success());
    }

    #[test]
    fn deployment_errors_are_never_dead_letter_candidates() {
        let mut r = Report { writes: vec![WriteResult::Pending; 1], ..Report::default() };
        r.fail(
            &meta(0, Purpose::Snapshot, FailurePolicy::Required, vec![0]),
            Failure { kind: FailureKind::Deployment, message: "AccessDeniedException".into() },
        );
        assert!(r.dead_letter_candidates().is_empty());
        assert_eq!(r.deployment_errors.len(), 1);
        assert!(!r.is_success());
    }

    #[test]
    fn observed_items_are_keyed_by_write_id() {
        let c = Conflicts([(3, Some("{}".to_string())), (1, None)].into_iter().collect());
        let o = c.observed();
        assert_eq!((o[0].write_id, o[0].item), (1, None));
        assert_eq!((o[1].write_id, o[1].item), (3, Some("{}")));
    }

    #[test]
    fn a_replan_is_matched_to_its_conflicts_by_id() {
        let c = Conflicts([(0, None), (2, None)].into_iter().collect());
        let writes = vec![
            write(2, OnConditionFailure::ResolveWatermarks, vec![1]),
            write(5, OnConditionFailure::ResolveWatermarks, vec![9]),
            write(0, OnConditionFailure::ResolveWatermarks, vec![0]),
        ];
        let round = match_replan(&c, writes);
        assert_eq!(round.to_run.iter().map(|w| w.id).collect::<Vec<_>>(), [2, 0]);
        assert_eq!(round.by_id, [(0, vec![1]), (2, vec![0])].into_iter().collect());
        assert_eq!(round.strays.len(), 1);
        assert_eq!(round.strays[0].id, 5);
    }

    #[test]
    fn settling_a_round() {
        let c = Conflicts([(0, None), (1, None), (2, None), (3, None), (4, None)].into_iter().collect());
        let writes = vec![
            write(0, OnConditionFailure::ResolveWatermarks, vec![0]),
            write(1, OnConditionFailure::ResolveWatermarks, vec![1]),
            write(2, OnConditionFailure::ResolveWatermarks, vec![2]),
        ];
        let round = match_replan(&c, writes);
        let outcomes = [
            Outcome::Applied,
            Outcome::ConditionFailed(Some("{\"M\":{}}".into())),
            Outcome::Failed(Failure::transient("500")),
        ];
        // Item 3 was not re-planned: all applied before. Item 4 was not
        // re-planned because its record turned out invalid.
        let invalid: BTreeMap<u32, String> = [(4, "watermark is malformed".to_string())].into_iter().collect();
        let (settled, applied) = settle(&c, &round, &outcomes, &invalid, |id| vec![id]);
        assert_eq!(applied, [0]);
        assert_eq!(settled[&0], Settlement::Resolved);
        assert_eq!(settled[&1], Settlement::Again(Some("{\"M\":{}}".into())));
        assert_eq!(settled[&2], Settlement::Failed(Failure::transient("re-planned write: 500")));
        assert_eq!(settled[&3], Settlement::Resolved);
        assert_eq!(settled[&4], Settlement::Failed(Failure::permanent("not re-planned: watermark is malformed")));
    }

    #[test]
    fn only_records_newly_invalid_count() {
        let o = |index, status| RecordOutcome { index, sequence_number: None, status };
        let plan = [o(0, RecordStatus::Invalid("a".into())), o(1, RecordStatus::Used), o(2, RecordStatus::Used)];
        let replan = [
            o(0, RecordStatus::Invalid("a".into())),
            o(1, RecordStatus::Invalid("b".into())),
            o(2, RecordStatus::Used),
        ];
        assert_eq!(newly_invalid(&plan, &replan), [(1, "b".to_string())].into_iter().collect());
    }
}
