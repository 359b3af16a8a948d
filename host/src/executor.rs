//! Executing a plan: every write is one DynamoDB `UpdateItem` / `PutItem` or
//! S3 `PutObject` request, sent concurrently (bounded), with the SDK's
//! standard retries.
//!
//! What a failed ConditionExpression means is the plan's call, never the
//! executor's: `ignore` writes are counted and dropped; `resolve-watermarks`
//! writes (snapshot counters, ARCHITECTURE §5) are sent with
//! `ReturnValuesOnConditionCheckFailure = ALL_OLD`, and the items they met
//! are handed back to the planner (`replan-snapshots`), whose answer is
//! executed the same way, round after round, until nothing is left or the
//! round budget is spent. A write that fails for good fails the stream
//! records it carries ([`Report::failed_records`]); the caller turns those
//! into the Lambda's `batchItemFailures`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use aws_sdk_s3::primitives::ByteStream;
use tokio::task::JoinSet;

use zae_planner::plan::{
    Attribute, Batch, ExpressionName, LogEntry, ObservedItem, OnConditionFailure, Operation, Plan, Purpose, PutItem,
    PutObject, RecordStatus, UpdateItem, Write,
};

use crate::dynamo_json::{attrs_to_map, item_to_json};
use crate::engine::Planner;

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
}

/// How one original write of the plan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    /// The request succeeded.
    Applied,
    /// An `ignore` write's condition failed: expected, nothing to do.
    ConditionIgnored,
    /// A `resolve-watermarks` conflict was settled by re-planning: every
    /// re-planned write for the item applied, or nothing was left to apply.
    Resolved,
    /// The write failed for good; the text says why. Its records failed.
    Failed(String),
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
    /// those writes).
    pub archived_events: u32,
    /// Indices of the stream records whose writes failed for good.
    pub failed_records: BTreeSet<u32>,
    /// One line per failed write: purpose, target, and the error chain.
    pub errors: Vec<String>,
    /// Log entries of the re-plans, in order, for the caller to emit with
    /// the plan's own logs.
    pub replan_logs: Vec<LogEntry>,
}

impl Report {
    /// Whether every write ended well (applied, ignored or resolved).
    pub fn is_success(&self) -> bool {
        self.failed_records.is_empty() && !self.writes.iter().any(|w| matches!(w, WriteResult::Failed(_)))
    }

    fn count_applied(&mut self, w: &Write) {
        match w.purpose {
            Purpose::Snapshot => self.snapshots_applied += 1,
            Purpose::Refill => self.refills_applied += 1,
            Purpose::ShardBump => self.shard_bumps_applied += 1,
            Purpose::ShardPropagate => self.shard_propagations_applied += 1,
            Purpose::Archive => {
                self.archive_objects_written += 1;
                self.archived_events += count(w.records.len());
            }
        }
    }

    /// Fail original write `index` for good.
    fn fail(&mut self, plan: &Plan, index: usize, message: String) {
        let w = &plan.writes[index];
        tracing::warn!(
            target: "zae_aggregator::executor",
            purpose = w.purpose.name(),
            write = %Target(w),
            records = %RecordList(&w.records),
            exception = %message,
            "Write failed"
        );
        self.failed_records.extend(w.records.iter().copied());
        self.errors.push(format!("{} {}: {message}", w.purpose.name(), Target(w)));
        self.writes[index] = WriteResult::Failed(message);
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    Applied,
    /// ConditionalCheckFailedException; for `resolve-watermarks` writes, the
    /// item the condition met (DynamoDB JSON), `None` if it does not exist.
    ConditionFailed(Option<String>),
    Failed(String),
}

/// One executed request.
#[derive(Debug)]
struct Attempt {
    /// Whether the request was sent (a write with malformed attribute
    /// values fails before that).
    sent: bool,
    outcome: Outcome,
}

/// The `(PK, SK)` strings of a snapshot item.
type ItemKey = (String, String);

/// A snapshot item whose watermark condition failed, and what depends on it.
#[derive(Debug)]
struct Conflict {
    /// The key attributes as the original write had them.
    key: Vec<Attribute>,
    /// The item the condition met, as DynamoDB JSON.
    observed: Option<String>,
    /// Indices of the original writes for this item.
    originals: Vec<usize>,
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
        Executor { ddb, s3: aws_sdk_s3::Client::from_conf(s3_config), options }
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
        }
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

    /// Execute every write of `plan` (concurrently, at most
    /// [`ExecutorOptions::concurrency`] in flight; the contract makes writes
    /// independent), resolve watermark conflicts through
    /// `planner.replan_snapshots(batch, observed)` rounds, and report.
    ///
    /// `batch` must be the batch `plan` was made from. Never panics: every
    /// failure, including a panicked request task, ends up as a
    /// [`WriteResult::Failed`].
    pub async fn execute(&self, planner: &Planner, batch: &Batch<'_>, plan: &Plan) -> Report {
        let mut report = Report { writes: vec![WriteResult::Applied; plan.writes.len()], ..Report::default() };
        let attempts = self.run(&plan.writes).await;
        let mut conflicts: BTreeMap<ItemKey, Conflict> = BTreeMap::new();
        for (index, (w, attempt)) in plan.writes.iter().zip(attempts).enumerate() {
            if attempt.sent {
                report.requests += 1;
            }
            match attempt.outcome {
                Outcome::Applied => report.count_applied(w),
                Outcome::Failed(message) => report.fail(plan, index, message),
                Outcome::ConditionFailed(observed) => match w.on_condition_failure {
                    OnConditionFailure::Ignore => {
                        report.conditions_ignored += 1;
                        report.writes[index] = WriteResult::ConditionIgnored;
                    }
                    OnConditionFailure::ResolveWatermarks => match write_key(w) {
                        Some((item_key, key)) => {
                            let conflict = conflicts.entry(item_key).or_insert_with(|| Conflict {
                                key,
                                observed: None,
                                originals: Vec::new(),
                            });
                            conflict.observed = observed;
                            conflict.originals.push(index);
                        }
                        None => report.fail(
                            plan,
                            index,
                            "watermark conflict on a write without PK and SK string keys; cannot re-plan".into(),
                        ),
                    },
                },
            }
        }
        self.resolve(planner, batch, plan, conflicts, &mut report).await;
        report
    }

    /// Re-plan and execute conflicted snapshot items, round by round.
    async fn resolve(
        &self,
        planner: &Planner,
        batch: &Batch<'_>,
        plan: &Plan,
        mut conflicts: BTreeMap<ItemKey, Conflict>,
        report: &mut Report,
    ) {
        let was_invalid: BTreeSet<u32> =
            plan.outcomes.iter().filter(|o| matches!(o.status, RecordStatus::Invalid(_))).map(|o| o.index).collect();
        let max_rounds = self.options.max_replan_rounds;
        while !conflicts.is_empty() {
            if report.replan_rounds >= max_rounds {
                let message = format!("watermark conflict unresolved after {max_rounds} rounds");
                for conflict in conflicts.values() {
                    for &index in &conflict.originals {
                        report.fail(plan, index, message.clone());
                    }
                }
                return;
            }
            report.replan_rounds += 1;
            tracing::debug!(
                target: "zae_aggregator::executor",
                round = report.replan_rounds,
                items = conflicts.len(),
                "Re-planning snapshot items after watermark conflicts"
            );
            let observed: Vec<ObservedItem> =
                conflicts.values().map(|c| ObservedItem { key: c.key.clone(), item: c.observed.clone() }).collect();
            let replan = match planner.replan_snapshots(batch, &observed).await {
                Ok(Ok(replan)) => replan,
                Ok(Err(e)) => {
                    fail_all(report, plan, &conflicts, &format!("re-planning the snapshot item failed: {e}"));
                    return;
                }
                Err(e) => {
                    fail_all(report, plan, &conflicts, &format!("the re-planning call failed: {e}"));
                    return;
                }
            };
            report.replan_logs.extend(replan.logs.iter().cloned());

            // Records the re-plan found invalid that the plan did not: their
            // snapshot item holds a malformed watermark and was not re-planned.
            let newly_invalid: BTreeMap<u32, &str> = replan
                .outcomes
                .iter()
                .filter_map(|o| match &o.status {
                    RecordStatus::Invalid(reason) if !was_invalid.contains(&o.index) => {
                        Some((o.index, reason.as_str()))
                    }
                    _ => None,
                })
                .collect();

            let mut to_run: Vec<Write> = Vec::new();
            let mut by_key: BTreeMap<ItemKey, Vec<usize>> = BTreeMap::new();
            for w in &replan.writes {
                match write_key(w) {
                    Some((item_key, _)) if conflicts.contains_key(&item_key) => {
                        by_key.entry(item_key).or_default().push(to_run.len());
                        to_run.push(w.clone());
                    }
                    _ => tracing::warn!(
                        target: "zae_aggregator::executor",
                        purpose = w.purpose.name(),
                        write = %Target(w),
                        "The re-plan returned a write for an item that was not in conflict; not executed"
                    ),
                }
            }

            let attempts = self.run(&to_run).await;
            for attempt in &attempts {
                if attempt.sent {
                    report.requests += 1;
                    report.replanned_writes += 1;
                }
            }
            let mut attempts: Vec<Option<Attempt>> = attempts.into_iter().map(Some).collect();

            let mut next = BTreeMap::new();
            for (item_key, mut conflict) in std::mem::take(&mut conflicts) {
                let Some(indices) = by_key.get(&item_key) else {
                    let reasons: BTreeSet<&str> = conflict
                        .originals
                        .iter()
                        .flat_map(|&i| plan.writes[i].records.iter())
                        .filter_map(|r| newly_invalid.get(r).copied())
                        .collect();
                    if reasons.is_empty() {
                        for &index in &conflict.originals {
                            report.writes[index] = WriteResult::Resolved;
                        }
                    } else {
                        let reasons: Vec<&str> = reasons.into_iter().collect();
                        let message = format!("not re-planned: {}", reasons.join("; "));
                        for &index in &conflict.originals {
                            report.fail(plan, index, message.clone());
                        }
                    }
                    continue;
                };
                let mut failure: Option<String> = None;
                let mut still_conflicted: Option<Option<String>> = None;
                for &j in indices {
                    let w = &to_run[j];
                    let outcome = attempts[j].take().map(|a| a.outcome);
                    match outcome {
                        Some(Outcome::Applied) => report.count_applied(w),
                        Some(Outcome::ConditionFailed(observed)) => match w.on_condition_failure {
                            OnConditionFailure::ResolveWatermarks => still_conflicted = Some(observed),
                            OnConditionFailure::Ignore => report.conditions_ignored += 1,
                        },
                        Some(Outcome::Failed(message)) => failure = Some(format!("re-planned write: {message}")),
                        None => failure = Some("re-planned write has no result".into()),
                    }
                }
                if let Some(message) = failure {
                    for &index in &conflict.originals {
                        report.fail(plan, index, message.clone());
                    }
                } else if let Some(observed) = still_conflicted {
                    conflict.observed = observed;
                    next.insert(item_key, conflict);
                } else {
                    for &index in &conflict.originals {
                        report.writes[index] = WriteResult::Resolved;
                    }
                }
            }
            conflicts = next;
        }
    }

    /// Send `writes` concurrently, at most `concurrency` at once; results
    /// in the order of `writes`.
    async fn run(&self, writes: &[Write]) -> Vec<Attempt> {
        let limit = self.options.concurrency.max(1);
        let mut results: Vec<Option<Attempt>> = (0..writes.len()).map(|_| None).collect();
        let mut tasks: JoinSet<(usize, Attempt)> = JoinSet::new();
        let mut task_index: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut next = 0;
        while next < writes.len() || !tasks.is_empty() {
            while next < writes.len() && tasks.len() < limit {
                let (ddb, s3, write, index) = (self.ddb.clone(), self.s3.clone(), writes[next].clone(), next);
                let handle = tasks.spawn(async move { (index, send(&ddb, &s3, write).await) });
                task_index.insert(handle.id(), index);
                next += 1;
            }
            match tasks.join_next_with_id().await {
                Some(Ok((_, (index, attempt)))) => results[index] = Some(attempt),
                Some(Err(e)) => {
                    if let Some(&index) = task_index.get(&e.id()) {
                        results[index] = Some(Attempt {
                            sent: false,
                            outcome: Outcome::Failed(format!("the request task failed: {e}")),
                        });
                    }
                }
                None => break,
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Attempt { sent: false, outcome: Outcome::Failed("the request task vanished".into()) }))
            .collect()
    }
}

fn fail_all(report: &mut Report, plan: &Plan, conflicts: &BTreeMap<ItemKey, Conflict>, message: &str) {
    for conflict in conflicts.values() {
        for &index in &conflict.originals {
            report.fail(plan, index, message.to_string());
        }
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

/// Send one write (an object's body is moved into the request, not copied).
async fn send(ddb: &aws_sdk_dynamodb::Client, s3: &aws_sdk_s3::Client, mut write: Write) -> Attempt {
    let resolve = write.on_condition_failure == OnConditionFailure::ResolveWatermarks;
    let result = match &mut write.operation {
        Operation::UpdateItem(u) => update_item(ddb, u, resolve).await,
        Operation::PutItem(p) => put_item(ddb, p, resolve).await,
        Operation::PutObject(o) => {
            let body = std::mem::take(&mut o.body);
            put_object(s3, o, body).await
        }
    };
    let w = &write;
    match result {
        Ok(outcome) => {
            if let Outcome::ConditionFailed(observed) = &outcome {
                tracing::debug!(
                    target: "zae_aggregator::executor",
                    purpose = w.purpose.name(),
                    write = %Target(w),
                    on_condition_failure = w.on_condition_failure.name(),
                    item_exists = observed.is_some(),
                    "Condition check failed"
                );
            }
            Attempt { sent: true, outcome }
        }
        // Malformed request parts: nothing was sent.
        Err(message) => Attempt { sent: false, outcome: Outcome::Failed(message) },
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

async fn put_item(ddb: &aws_sdk_dynamodb::Client, p: &PutItem, resolve: bool) -> Result<Outcome, String> {
    let item = attrs_to_map(&p.item).map_err(|e| format!("invalid item: {e}"))?;
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

async fn put_object(s3: &aws_sdk_s3::Client, o: &PutObject, body: Vec<u8>) -> Result<Outcome, String> {
    let result = s3
        .put_object()
        .bucket(&o.bucket)
        .key(&o.key)
        .body(ByteStream::from(body))
        .content_type(&o.content_type)
        .content_encoding(&o.content_encoding)
        .send()
        .await;
    Ok(match result {
        Ok(_) => Outcome::Applied,
        Err(err) => Outcome::Failed(describe_error(&err)),
    })
}

/// A failed request in one line: `{code}: {message} (HTTP {status})` for an
/// error the service answered, the SDK's error chain otherwise (timeouts,
/// connection failures), without the raw response dump.
fn describe_error<E>(err: &SdkError<E, HttpResponse>) -> String
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

/// The `(PK, SK)` of the item a write addresses, with the key attributes
/// (`PK` then `SK`) for an [`ObservedItem`]; `None` for S3 writes and keys
/// that are not two strings.
fn write_key(w: &Write) -> Option<(ItemKey, Vec<Attribute>)> {
    let attrs = match &w.operation {
        Operation::UpdateItem(u) => &u.key,
        Operation::PutItem(p) => &p.item,
        Operation::PutObject(_) => return None,
    };
    let find = |name: &str| attrs.iter().find(|a| a.name == name);
    let (pk, sk) = (find("PK")?, find("SK")?);
    let key = (string_value(&pk.value)?, string_value(&sk.value)?);
    Some((key, vec![pk.clone(), sk.clone()]))
}

/// The text of a `{"S":"..."}` value.
fn string_value(json: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(json).ok()? {
        serde_json::Value::Object(m) if m.len() == 1 => m.get("S")?.as_str().map(str::to_string),
        _ => None,
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

/// Where a write goes, for messages: `table {PK=.., SK=..}` or `s3://bucket/key`.
struct Target<'a>(&'a Write);

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (table, attrs) = match &self.0.operation {
            Operation::PutObject(o) => return write!(f, "s3://{}/{}", o.bucket, o.key),
            Operation::UpdateItem(u) => (&u.table_name, &u.key),
            Operation::PutItem(p) => (&p.table_name, &p.item),
        };
        write!(f, "{table} {{")?;
        let key = attrs.iter().filter(|a| a.name == "PK" || a.name == "SK");
        for (i, a) in key.enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match string_value(&a.value) {
                Some(s) => write!(f, "{}={s}", a.name)?,
                None => write!(f, "{}={}", a.name, a.value)?,
            }
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(key: Vec<Attribute>) -> Write {
        Write {
            purpose: Purpose::Snapshot,
            operation: Operation::UpdateItem(UpdateItem {
                table_name: "t".into(),
                key,
                update_expression: "ADD #a :a".into(),
                condition_expression: None,
                names: vec![],
                values: vec![],
            }),
            on_condition_failure: OnConditionFailure::ResolveWatermarks,
            records: vec![0, 3],
        }
    }

    #[test]
    fn defaults() {
        let o = ExecutorOptions::default();
        assert_eq!((o.concurrency, o.max_attempts, o.max_replan_rounds), (16, 5, 5));
        assert_eq!(o.request_timeout, Some(Duration::from_secs(10)));
    }

    #[test]
    fn write_keys_are_pk_and_sk_strings() {
        let w = update(vec![Attribute::s("PK", "ns/ENTITY#u1"), Attribute::s("SK", "#USAGE#r#x")]);
        let (k, attrs) = write_key(&w).unwrap();
        assert_eq!(k, ("ns/ENTITY#u1".to_string(), "#USAGE#r#x".to_string()));
        assert_eq!(attrs.len(), 2);
        assert_eq!(Target(&w).to_string(), "t {PK=ns/ENTITY#u1, SK=#USAGE#r#x}");
        let w = update(vec![Attribute::s("PK", "p"), Attribute::n("SK", 1)]);
        assert!(write_key(&w).is_none());
        assert_eq!(Target(&w).to_string(), "t {PK=p, SK={\"N\":\"1\"}}");
    }

    #[test]
    fn object_targets_are_s3_urls() {
        let w = Write {
            purpose: Purpose::Archive,
            operation: Operation::PutObject(PutObject {
                bucket: "b".into(),
                key: "audit/x.jsonl.gz".into(),
                body: vec![],
                content_type: "application/x-ndjson".into(),
                content_encoding: "gzip".into(),
            }),
            on_condition_failure: OnConditionFailure::Ignore,
            records: vec![1],
        };
        assert!(write_key(&w).is_none());
        assert_eq!(Target(&w).to_string(), "s3://b/audit/x.jsonl.gz");
    }

    #[test]
    fn empty_expression_maps_are_omitted() {
        assert_eq!(names_map(&[]).unwrap(), None);
        assert_eq!(values_map(&[]).unwrap(), None);
        let names = [ExpressionName { placeholder: "#a".into(), name: "ttl".into() }];
        assert_eq!(names_map(&names).unwrap().unwrap()["#a"], "ttl");
        let dup = [names[0].clone(), names[0].clone()];
        assert!(names_map(&dup).unwrap_err().contains("more than once"));
        let bad = values_map(&[Attribute::raw(":a", "{\"N\":1}".into())]).unwrap_err();
        assert!(bad.starts_with("invalid expression value: attribute \":a\""), "{bad}");
    }

    #[test]
    fn report_counts_by_purpose() {
        let mut r = Report::default();
        let mut w = update(vec![]);
        r.count_applied(&w);
        w.purpose = Purpose::Archive;
        r.count_applied(&w);
        assert_eq!((r.snapshots_applied, r.archive_objects_written, r.archived_events), (1, 1, 2));
        assert!(r.is_success());
    }
}
