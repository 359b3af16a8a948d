//! One invocation: plan the batch with the component, emit its logs, execute
//! the plan, and build the Lambda response.
//!
//! The response keeps the Python aggregator's `statusCode` and `body`
//! (`docs/specification.md#lambda-response`) and adds `batchItemFailures` for
//! `ReportBatchItemFailures`:
//!
//! ```json
//! {"batchItemFailures":[{"itemIdentifier":"<sequence number>"}],
//!  "statusCode":200,
//!  "body":{"processed":3,"snapshots_updated":2,"refills_written":1,"events_archived":0,"errors":[]}}
//! ```
//!
//! Lambda retries a stream batch from the lowest sequence number reported,
//! so at most one failure is listed: the lowest-index record whose write
//! failed for good. Records marked invalid by the planner are not failures
//! (retrying cannot fix them); they are listed in `body.errors`.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Instant;

use serde_json::{json, Value};

use crate::bindings::{Batch, Counters, PlanError, RecordFailure, RecordOutcome, RecordStatus};
use crate::engine::{CallError, Planner};
use crate::executor::{Executor, Report};
use crate::logging::{self, LogLevel};
use crate::settings::Settings;

/// Logger name of the handler's lines.
pub const LOGGER: &str = "zae_aggregator.handler";

/// Everything an invocation needs, built once per process.
pub struct App {
    /// The planner component.
    pub planner: Planner,
    /// The AWS executor.
    pub executor: Executor,
    /// The validated configuration.
    pub settings: Settings,
}

/// The result of one invocation that ran to the end (some writes may still
/// have failed: see [`Invocation::failed_records`]).
#[derive(Debug)]
pub struct Invocation {
    /// The Lambda response (see the module documentation).
    pub response: Value,
    /// How many records failed for good (their writes could not be applied).
    pub failed_records: usize,
    /// What the executor did.
    pub report: Report,
    /// The plan's counters.
    pub plan_counters: Counters,
}

/// Why an invocation produced no response. Either way the invocation is a
/// function error, so the event source mapping retries (and bisects) the
/// batch; that is safe because every write is idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// The event is unusable: not JSON, not an object, or `Records` is not a
    /// list.
    BadEvent(String),
    /// The planner rejected the configuration (which start-up validation
    /// accepted: only a host that builds its configuration by hand gets here).
    BadConfig(String),
    /// The planner component trapped, ran out of time or memory, or could not
    /// be instantiated.
    Component(CallError),
    /// A write was refused because the deployment is wrong (access denied, a
    /// missing table or bucket, bad credentials): not the records' fault, so
    /// nothing goes to the dead letter and the invocation fails loudly; the
    /// batch is retried once the deployment is fixed.
    Deployment(String),
}

impl InvokeError {
    /// A short error type, for Lambda's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            InvokeError::BadEvent(_) => "InvalidEvent",
            InvokeError::BadConfig(_) => "InvalidConfig",
            InvokeError::Deployment(_) => "DeploymentError",
            InvokeError::Component(CallError::Trap { .. }) => "PlannerTrap",
            InvokeError::Component(CallError::DeadlineExceeded { .. }) => "PlannerDeadlineExceeded",
            InvokeError::Component(CallError::MemoryLimit { .. }) => "PlannerMemoryLimit",
            InvokeError::Component(CallError::Instantiate(_)) => "PlannerInstantiationFailed",
        }
    }

    /// Lambda's error payload: `{"errorType": ..., "errorMessage": ...}`.
    pub fn payload(&self) -> Value {
        json!({"errorType": self.error_type(), "errorMessage": self.to_string()})
    }
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvokeError::BadEvent(m) => write!(f, "invalid event: {m}"),
            InvokeError::BadConfig(m) => write!(f, "invalid configuration: {m}"),
            InvokeError::Deployment(m) => write!(f, "the deployment is wrong: {m}"),
            InvokeError::Component(e) => e.fmt(f),
        }
    }
}

// No `source`: the message already carries the component error's text, so
// an error chain would only repeat it.
impl std::error::Error for InvokeError {}

/// Run one invocation: plan `event_json` (passed to the planner unchanged)
/// at `now_ms`, emit the plan's logs, execute the plan, and build the
/// response. Logs `Lambda invocation started` and `Lambda invocation
/// completed` (or `Lambda invocation failed`) on the handler's logger.
pub async fn invoke(
    app: &App,
    event_json: &str,
    request_id: &str,
    function_name: &str,
    now_ms: i64,
) -> Result<Invocation, InvokeError> {
    invoke_until(app, event_json, request_id, function_name, now_ms, None).await
}

/// [`invoke`] with Lambda's deadline: the invocation plans and writes only
/// until `deadline` less `ZAE_DEADLINE_MARGIN_MS`. The planner's own deadline
/// is capped by what is left; writes not started by then are not sent and
/// writes still running are abandoned, their records reported in
/// `batchItemFailures` (lowest sequence number), and the completion line is
/// logged, so the invocation always answers before Lambda's timeout.
pub async fn invoke_until(
    app: &App,
    event_json: &str,
    request_id: &str,
    function_name: &str,
    now_ms: i64,
    deadline: Option<Instant>,
) -> Result<Invocation, InvokeError> {
    let started = Instant::now();
    let budget = deadline.map(|d| d.checked_sub(app.settings.host.deadline_margin).unwrap_or(started));
    let planner = match budget {
        None => app.planner.clone(),
        Some(b) => {
            let limits = app.planner.limits();
            let left = b.saturating_duration_since(Instant::now());
            app.planner.with_limits(crate::Limits { deadline: limits.deadline.min(left), ..limits })
        }
    };
    let executor = app.executor.with_deadline(budget);
    let threshold = app.settings.host.log_level;
    let batch = Batch { event_json, config: &app.settings.config, now_ms, invocation_id: request_id };

    // Planning is pure, so it runs before the first line: the start line can
    // then carry the record count without the host parsing the event.
    let planned = match planner.plan(&batch).await {
        Ok(Ok(plan)) => Ok(plan),
        Ok(Err(PlanError::BadConfig(e))) => Err(InvokeError::BadConfig(e.message)),
        Ok(Err(e)) => Err(InvokeError::BadEvent(e.message())),
        Err(e) => Err(InvokeError::Component(e)),
    };
    let mut plan = match planned {
        Ok(plan) => plan,
        Err(InvokeError::Component(e))
            if isolable(&e, planner.limits().deadline < app.planner.limits().deadline)
                && app.settings.config.dead_letter_bucket.is_some() =>
        {
            return isolate(app, event_json, request_id, function_name, now_ms, deadline, e).await;
        }
        Err(e) => {
            log_started(app, request_id, function_name, None, now_ms);
            logging::emit(
                LogLevel::Error,
                LOGGER,
                "Lambda invocation failed",
                &[
                    ("request_id", json!(request_id)),
                    ("error_type", json!(e.error_type())),
                    ("processing_time_ms", elapsed_ms(started)),
                ],
                Some(&logging::error_chain(&e)),
            );
            return Err(e);
        }
    };
    log_started(app, request_id, function_name, Some(plan.counters.records), now_ms);
    logging::emit_plan_logs(&plan.logs, threshold);

    let writes_planned = plan.writes.len();
    let writes = std::mem::take(&mut plan.writes);
    let images = std::mem::take(&mut plan.images);
    let reads = std::mem::take(&mut plan.reads);
    let report = executor.execute_plan(&planner, &batch, writes, images, &reads, &plan.outcomes).await;
    logging::emit_plan_logs(&report.replan_logs, threshold);
    logging::emit_plan_logs(&report.write_logs, threshold);
    if let Some(first) = report.deployment_errors.first() {
        let more = report.deployment_errors.len() - 1;
        let e = InvokeError::Deployment(if more == 0 { first.clone() } else { format!("{first} (and {more} more)") });
        logging::emit(
            LogLevel::Error,
            LOGGER,
            "Lambda invocation failed",
            &[
                ("request_id", json!(request_id)),
                ("error_type", json!(e.error_type())),
                ("deployment_errors", json!(report.deployment_errors)),
                ("processing_time_ms", elapsed_ms(started)),
            ],
            Some(&e.to_string()),
        );
        return Err(e);
    }
    let response = build_response(&plan.outcomes, &report);
    let body = &response["body"];
    let errors = body["errors"].as_array().map_or(0, Vec::len);
    // zae-limiter's own summary lines, same messages and field names, for the
    // queries and dashboards built on them (docs/host.md#logs).
    logging::emit(
        LogLevel::Info,
        LOGGER,
        "Batch processing completed",
        &[
            ("processed_count", json!(plan.counters.records)),
            ("deltas_extracted", json!(plan.counters.deltas)),
            ("snapshots_updated", json!(report.snapshots_applied)),
            ("refills_written", json!(report.refills_applied)),
            ("error_count", json!(errors)),
            ("processing_time_ms", elapsed_ms(started)),
        ],
        None,
    );
    if app.settings.config.archive_bucket.is_some() {
        logging::emit(
            LogLevel::Info,
            LOGGER,
            "Archive processing completed",
            &[
                ("processed_count", json!(plan.counters.audit_records)),
                ("events_archived", json!(report.archived_events)),
                ("s3_objects_created", json!(report.archive_objects_written)),
                ("error_count", json!(report.archive_objects_failed)),
                ("processing_time_ms", elapsed_ms(started)),
            ],
            None,
        );
    }
    logging::emit(
        LogLevel::Info,
        LOGGER,
        "Lambda invocation completed",
        &[
            ("request_id", json!(request_id)),
            ("processed", body["processed"].clone()),
            ("snapshots_updated", body["snapshots_updated"].clone()),
            ("refills_written", body["refills_written"].clone()),
            ("events_archived", body["events_archived"].clone()),
            ("s3_objects_created", json!(report.archive_objects_written)),
            ("error_count", json!(errors)),
            ("processing_time_ms", elapsed_ms(started)),
            ("failed_records", json!(report.failed_records.len())),
            ("invalid_records", json!(plan.counters.invalid)),
            ("skipped_records", json!(plan.counters.skipped)),
            ("writes_planned", json!(writes_planned)),
            ("requests", json!(report.requests)),
            ("replan_rounds", json!(report.replan_rounds)),
            ("replanned_writes", json!(report.replanned_writes)),
            ("conditions_ignored", json!(report.conditions_ignored)),
            ("shard_bumps_applied", json!(report.shard_bumps_applied)),
            ("shard_propagations_applied", json!(report.shard_propagations_applied)),
            ("best_effort_failures", json!(report.best_effort_failures)),
            ("dead_letter_records", json!(report.dead_letter_records)),
            ("deadline_reached", json!(report.deadline_reached)),
        ],
        None,
    );
    if let Some(first) = report.failed_records.first() {
        logging::emit(
            LogLevel::Warning,
            LOGGER,
            "Reporting batch item failure",
            &[
                ("request_id", json!(request_id)),
                ("failed_records", json!(report.failed_records.len())),
                ("first_failed_index", json!(first)),
                ("item_identifier", response["batchItemFailures"][0]["itemIdentifier"].clone()),
            ],
            None,
        );
    }
    Ok(Invocation { failed_records: report.failed_records.len(), response, report, plan_counters: plan.counters })
}

/// Whether a failed planner call may be caused by one record of the batch
/// (a trap, an overrun deadline, the memory cap), so that planning smaller
/// parts can isolate it. A component that cannot be instantiated fails every
/// batch alike, and an overrun deadline that the invocation's time budget
/// cut short (`budget_capped`) may be the budget's doing, not the record's:
/// neither is isolated, so a good record never reaches the dead letter for
/// want of time.
fn isolable(e: &CallError, budget_capped: bool) -> bool {
    match e {
        CallError::Instantiate(_) => false,
        CallError::DeadlineExceeded { .. } => !budget_capped,
        CallError::Trap { .. } | CallError::MemoryLimit { .. } => true,
    }
}

/// The `Records` of a Lambda event as their exact bytes, or `None` when the
/// event does not have that shape (the planner's own errors cover it).
fn split_records(event_json: &str) -> Option<Vec<&serde_json::value::RawValue>> {
    let event: std::collections::HashMap<String, &serde_json::value::RawValue> =
        serde_json::from_str(event_json).ok()?;
    serde_json::from_str(event.get("Records")?.get()).ok()
}

/// A Lambda event holding exactly `records`, byte for byte.
fn join_records(records: &[&serde_json::value::RawValue]) -> String {
    let mut out = String::from("{\"Records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r.get());
    }
    out.push_str("]}");
    out
}

/// The planner failed on the whole batch (`docs/host.md#poison-records`):
/// find the record that makes it fail instead of failing the batch forever.
///
/// The batch is split in two halves, planned and executed in order as
/// invocations of their own (request ids `{request_id}/1` and
/// `{request_id}/2`); a half that fails again is split again. A single record
/// the planner still fails on goes to the dead letter with the planner's
/// error as its reason, and counts as handled; if storing it fails, the
/// original error stands and the batch is retried, as before. Only with a
/// dead-letter bucket: without one, isolating could only end in the same
/// error. When a half reports a failed record, the later half is not run:
/// Lambda retries from that record anyway. The response adds the halves'
/// counts, so the caller sees one invocation.
async fn isolate(
    app: &App,
    event_json: &str,
    request_id: &str,
    function_name: &str,
    now_ms: i64,
    deadline: Option<Instant>,
    error: CallError,
) -> Result<Invocation, InvokeError> {
    let records = match split_records(event_json) {
        Some(records) if !records.is_empty() => records,
        _ => return Err(fail_invocation(app, request_id, function_name, now_ms, InvokeError::Component(error))),
    };
    logging::emit(
        LogLevel::Warning,
        LOGGER,
        "Planner failed on the batch; planning it in parts to isolate the record",
        &[
            ("request_id", json!(request_id)),
            ("record_count", json!(records.len())),
            ("error_type", json!(InvokeError::Component(error.clone()).error_type())),
        ],
        // The first line: the whole error (with the guest's backtrace) goes
        // with the record to the dead letter and its ERROR line.
        Some(error.to_string().lines().next().unwrap_or_default()),
    );
    if records.len() == 1 {
        return dead_letter_alone(app, event_json, request_id, function_name, now_ms, deadline, error).await;
    }
    let mid = records.len() / 2;
    let mut parts: Vec<(u32, Invocation)> = Vec::new();
    for (k, (start, half)) in [(0, &records[..mid]), (mid, &records[mid..])].into_iter().enumerate() {
        let sub_event = join_records(half);
        let sub_id = format!("{request_id}/{}", k + 1);
        let inv = Box::pin(invoke_until(app, &sub_event, &sub_id, function_name, now_ms, deadline)).await?;
        let failed = !inv.response["batchItemFailures"].as_array().is_none_or(Vec::is_empty);
        parts.push((start as u32, inv));
        if failed {
            break;
        }
    }
    Ok(combine(parts))
}

/// Log `Lambda invocation failed` for an error met before any plan, and
/// return it.
fn fail_invocation(app: &App, request_id: &str, function_name: &str, now_ms: i64, e: InvokeError) -> InvokeError {
    log_started(app, request_id, function_name, None, now_ms);
    logging::emit(
        LogLevel::Error,
        LOGGER,
        "Lambda invocation failed",
        &[("request_id", json!(request_id)), ("error_type", json!(e.error_type()))],
        Some(&logging::error_chain(&e)),
    );
    e
}

/// The one record of `event_json` makes the planner fail: store it in the
/// dead letter, or fail as before.
async fn dead_letter_alone(
    app: &App,
    event_json: &str,
    request_id: &str,
    function_name: &str,
    now_ms: i64,
    deadline: Option<Instant>,
    error: CallError,
) -> Result<Invocation, InvokeError> {
    let started = Instant::now();
    let original = InvokeError::Component(error);
    if app.settings.config.dead_letter_bucket.is_none() {
        return Err(fail_invocation(app, request_id, function_name, now_ms, original));
    }
    let reason = format!("the planner fails on this record alone ({}): {original}", original.error_type());
    let batch = Batch { event_json, config: &app.settings.config, now_ms, invocation_id: request_id };
    let failures = [RecordFailure { index: 0, reason: &reason, write_id: None }];
    let executor = app
        .executor
        .with_deadline(deadline.map(|d| d.checked_sub(app.settings.host.deadline_margin).unwrap_or(started)));
    let report = executor.dead_letter_records(&app.planner, &batch, &failures).await;
    logging::emit_plan_logs(&report.write_logs, app.settings.host.log_level);
    if !report.dead_lettered_records.contains(&0) {
        return Err(fail_invocation(app, request_id, function_name, now_ms, original));
    }
    logging::emit(
        LogLevel::Error,
        LOGGER,
        "Record stored in the dead letter: the planner fails on it",
        &[
            ("request_id", json!(request_id)),
            ("dead_letter_records", json!(1)),
            ("processing_time_ms", elapsed_ms(started)),
        ],
        Some(&reason),
    );
    let response = json!({
        "batchItemFailures": [],
        "statusCode": 200,
        "body": {
            "processed": 1,
            "snapshots_updated": 0,
            "refills_written": 0,
            "events_archived": 0,
            "errors": [format!("Record 0 stored in the dead letter: {reason}")],
        }
    });
    let plan_counters = Counters { records: 1, invalid: 1, ..zero_counters() };
    Ok(Invocation { response, failed_records: 0, report, plan_counters })
}

/// One invocation's result from those of consecutive parts of its batch,
/// each with the index of its first record (pure).
fn combine(parts: Vec<(u32, Invocation)>) -> Invocation {
    let mut failures: Vec<Value> = Vec::new();
    let (mut processed, mut snapshots, mut refills, mut archived) = (0u64, 0u64, 0u64, 0u64);
    let mut errors: Vec<Value> = Vec::new();
    let mut report = Report::default();
    let mut plan_counters = zero_counters();
    let mut failed_records = 0;
    for (start, inv) in parts {
        let body = &inv.response["body"];
        let num = |k: &str| body[k].as_u64().unwrap_or(0);
        processed += num("processed");
        snapshots += num("snapshots_updated");
        refills += num("refills_written");
        archived += num("events_archived");
        errors.extend(body["errors"].as_array().cloned().unwrap_or_default());
        failures.extend(inv.response["batchItemFailures"].as_array().cloned().unwrap_or_default());
        failed_records += inv.failed_records;
        report.absorb(inv.report, start);
        add_counters(&mut plan_counters, &inv.plan_counters);
    }
    // Lambda retries from the lowest failed record: only the first counts.
    failures.truncate(1);
    let response = json!({
        "batchItemFailures": failures,
        "statusCode": 200,
        "body": {
            "processed": processed,
            "snapshots_updated": snapshots,
            "refills_written": refills,
            "events_archived": archived,
            "errors": errors,
        }
    });
    Invocation { response, failed_records, report, plan_counters }
}

fn zero_counters() -> Counters {
    Counters {
        records: 0,
        bucket_records: 0,
        audit_records: 0,
        skipped: 0,
        invalid: 0,
        deltas: 0,
        window_time_from_rf: 0,
        reserved_limit_deltas: 0,
        snapshot_writes: 0,
        refill_writes: 0,
        shard_bump_writes: 0,
        shard_propagate_writes: 0,
        archive_objects: 0,
        archived_events: 0,
    }
}

fn add_counters(sum: &mut Counters, c: &Counters) {
    sum.records += c.records;
    sum.bucket_records += c.bucket_records;
    sum.audit_records += c.audit_records;
    sum.skipped += c.skipped;
    sum.invalid += c.invalid;
    sum.deltas += c.deltas;
    sum.window_time_from_rf += c.window_time_from_rf;
    sum.reserved_limit_deltas += c.reserved_limit_deltas;
    sum.snapshot_writes += c.snapshot_writes;
    sum.refill_writes += c.refill_writes;
    sum.shard_bump_writes += c.shard_bump_writes;
    sum.shard_propagate_writes += c.shard_propagate_writes;
    sum.archive_objects += c.archive_objects;
    sum.archived_events += c.archived_events;
}

fn log_started(app: &App, request_id: &str, function_name: &str, record_count: Option<u32>, now_ms: i64) {
    let config = &app.settings.config;
    let windows: Vec<&str> = config.windows.iter().map(|w| w.name()).collect();
    logging::emit(
        LogLevel::Info,
        LOGGER,
        "Lambda invocation started",
        &[
            ("request_id", json!(request_id)),
            ("function_name", json!(function_name)),
            ("record_count", json!(record_count)),
            ("table_name", json!(config.table_name)),
            ("snapshot_windows", json!(windows)),
            ("enable_archival", json!(config.archive_bucket.is_some())),
            ("archive_bucket", json!(config.archive_bucket)),
            ("snapshot_ttl_days", json!(config.snapshot_ttl_days)),
            ("max_shard_count", json!(config.max_shard_count)),
            ("now_ms", json!(now_ms)),
        ],
        None,
    );
}

/// Milliseconds since `started`, rounded to 2 decimals, as a JSON float.
fn elapsed_ms(started: Instant) -> Value {
    json!(round2(started.elapsed().as_secs_f64() * 1000.0))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The Lambda response for a plan's record outcomes and the executor's
/// report (pure).
///
/// * `batchItemFailures`: empty, or the sequence number of the
///   lowest-index failed record (see [`failure_identifier`]).
/// * `body.processed`: the number of records; `snapshots_updated`,
///   `refills_written`, `events_archived`: what was applied;
///   `errors`: the executor's error lines, then one line per invalid record
///   (see [`error_lines`]).
pub fn build_response(outcomes: &[RecordOutcome], report: &Report) -> Value {
    let failures: Vec<Value> = failure_identifier(outcomes, &report.failed_records)
        .into_iter()
        .map(|id| json!({"itemIdentifier": id}))
        .collect();
    json!({
        "batchItemFailures": failures,
        "statusCode": 200,
        "body": {
            "processed": outcomes.len(),
            "snapshots_updated": report.snapshots_applied,
            "refills_written": report.refills_applied,
            "events_archived": report.archived_events,
            "errors": error_lines(outcomes, report),
        }
    })
}

/// The `itemIdentifier` to report for `failed` record indices: `None` when
/// nothing failed, else the sequence number of the lowest failed index.
///
/// A failed record without a sequence number cannot occur (the planner
/// marks such records invalid and never puts them in a write); should it
/// happen, the batch's first record's sequence number is reported instead,
/// and failing that an empty identifier, which Lambda treats as a failure of
/// the whole batch. Either way the failed record is retried.
pub fn failure_identifier(outcomes: &[RecordOutcome], failed: &BTreeSet<u32>) -> Option<String> {
    let first = *failed.first()?;
    let sequence_of = |index: u32| outcomes.iter().find(|o| o.index == index).and_then(|o| o.sequence_number.clone());
    Some(sequence_of(first).or_else(|| outcomes.first().and_then(|o| o.sequence_number.clone())).unwrap_or_default())
}

/// `body.errors`: the executor's error lines, then
/// `Invalid record {index} (sequence {seq}): {reason}` for each invalid
/// record (`none` when it has no sequence number).
pub fn error_lines(outcomes: &[RecordOutcome], report: &Report) -> Vec<String> {
    let mut lines = report.errors.clone();
    for o in outcomes {
        if let RecordStatus::Invalid(reason) = &o.status {
            let seq = o.sequence_number.as_deref().unwrap_or("none");
            lines.push(format!("Invalid record {} (sequence {seq}): {reason}", o.index));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report::default()
    }

    fn outcome(index: u32, seq: Option<&str>, status: RecordStatus) -> RecordOutcome {
        RecordOutcome { index, sequence_number: seq.map(str::to_string), status }
    }

    #[test]
    fn records_split_and_join_byte_for_byte() {
        let event = r#"{"x":1,"Records":[{"a":1.50},  {"b":"é\u00e9"},[]] }"#;
        let records = split_records(event).unwrap();
        let texts: Vec<&str> = records.iter().map(|r| r.get()).collect();
        assert_eq!(texts, [r#"{"a":1.50}"#, r#"{"b":"é\u00e9"}"#, "[]"]);
        assert_eq!(join_records(&records[1..]), r#"{"Records":[{"b":"é\u00e9"},[]]}"#);
        assert_eq!(join_records(&[]), r#"{"Records":[]}"#);
        for bad in ["[]", "{}", r#"{"Records":{}}"#, "not json"] {
            assert!(split_records(bad).is_none(), "{bad}");
        }
    }

    fn part(processed: u64, failure: Option<&str>, failed: &[u32], errors: &[&str]) -> Invocation {
        let report = Report { failed_records: failed.iter().copied().collect(), requests: 2, ..Report::default() };
        let failures: Vec<Value> = failure.map(|f| json!({"itemIdentifier": f})).into_iter().collect();
        Invocation {
            response: json!({"batchItemFailures": failures, "statusCode": 200, "body": {
                "processed": processed, "snapshots_updated": 3, "refills_written": 1, "events_archived": 0,
                "errors": errors}}),
            failed_records: failed.len(),
            report,
            plan_counters: Counters { records: processed as u32, ..zero_counters() },
        }
    }

    #[test]
    fn parts_combine_into_one_response() {
        let inv = combine(vec![(0, part(5, None, &[], &["a"])), (5, part(5, Some("105"), &[1], &["b"]))]);
        assert_eq!(
            inv.response,
            json!({"batchItemFailures": [{"itemIdentifier": "105"}], "statusCode": 200, "body": {
                "processed": 10, "snapshots_updated": 6, "refills_written": 2, "events_archived": 0,
                "errors": ["a", "b"]}})
        );
        assert_eq!(inv.failed_records, 1);
        assert_eq!(inv.report.failed_records, BTreeSet::from([6]), "indices shift by the part's start");
        assert_eq!(inv.report.requests, 4);
        assert_eq!(inv.plan_counters.records, 10);
    }

    #[test]
    fn only_a_trap_deadline_or_memory_cap_is_isolated() {
        let trap = CallError::Trap { code: None, detail: String::new() };
        let deadline = CallError::DeadlineExceeded { deadline: std::time::Duration::from_secs(1) };
        let memory = CallError::MemoryLimit { limit: 1, detail: String::new() };
        for capped in [false, true] {
            assert!(isolable(&trap, capped));
            assert!(isolable(&memory, capped));
            assert!(!isolable(&CallError::Instantiate(String::new()), capped));
        }
        assert!(isolable(&deadline, false), "the planner's own deadline: the record's doing");
        assert!(!isolable(&deadline, true), "a deadline the time budget cut short: maybe the budget's");
    }

    #[test]
    fn empty_batch() {
        let r = build_response(&[], &report());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            "{\"batchItemFailures\":[],\"statusCode\":200,\"body\":{\"processed\":0,\"snapshots_updated\":0,\
             \"refills_written\":0,\"events_archived\":0,\"errors\":[]}}"
        );
    }

    #[test]
    fn counts_errors_and_the_lowest_failure() {
        let outcomes = vec![
            outcome(0, Some("100"), RecordStatus::Used),
            outcome(1, Some("200"), RecordStatus::Invalid("rf is not a number".into())),
            outcome(2, Some("300"), RecordStatus::Used),
            outcome(3, None, RecordStatus::Invalid("no SequenceNumber".into())),
            outcome(4, Some("500"), RecordStatus::Skipped("not a bucket".into())),
            outcome(5, Some("600"), RecordStatus::Used),
        ];
        let mut rep = report();
        rep.snapshots_applied = 4;
        rep.refills_applied = 2;
        rep.archived_events = 7;
        rep.failed_records = [5, 2].into_iter().collect();
        rep.errors = vec!["Error updating snapshot: throttled".into()];
        let r = build_response(&outcomes, &rep);
        assert_eq!(
            r,
            json!({
                "batchItemFailures": [{"itemIdentifier": "300"}],
                "statusCode": 200,
                "body": {
                    "processed": 6,
                    "snapshots_updated": 4,
                    "refills_written": 2,
                    "events_archived": 7,
                    "errors": [
                        "Error updating snapshot: throttled",
                        "Invalid record 1 (sequence 200): rf is not a number",
                        "Invalid record 3 (sequence none): no SequenceNumber",
                    ]
                }
            })
        );
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["batchItemFailures", "statusCode", "body"]);
        let body_keys: Vec<&String> = r["body"].as_object().unwrap().keys().collect();
        assert_eq!(body_keys, ["processed", "snapshots_updated", "refills_written", "events_archived", "errors"]);
    }

    #[test]
    fn a_failure_without_sequence_number_falls_back() {
        let outcomes = vec![outcome(0, Some("100"), RecordStatus::Used), outcome(1, None, RecordStatus::Used)];
        let failed: BTreeSet<u32> = [1].into_iter().collect();
        assert_eq!(failure_identifier(&outcomes, &failed).as_deref(), Some("100"));
        let outcomes = vec![outcome(0, None, RecordStatus::Used)];
        let failed: BTreeSet<u32> = [0].into_iter().collect();
        assert_eq!(failure_identifier(&outcomes, &failed).as_deref(), Some(""));
        assert_eq!(failure_identifier(&outcomes, &BTreeSet::new()), None);
    }

    #[test]
    fn errors_display_and_payload() {
        let e = InvokeError::BadEvent("Records is not a list".into());
        assert_eq!(e.to_string(), "invalid event: Records is not a list");
        assert_eq!(
            e.payload(),
            json!({"errorType": "InvalidEvent", "errorMessage": "invalid event: Records is not a list"})
        );
        let e = InvokeError::Component(CallError::DeadlineExceeded { deadline: std::time::Duration::from_millis(10) });
        assert_eq!(e.error_type(), "PlannerDeadlineExceeded");
        assert_eq!(e.to_string(), "planner call exceeded its deadline of 10 ms");
        assert!(std::error::Error::source(&e).is_none(), "the message carries the cause once");
        let e = InvokeError::BadConfig("windows is empty".into());
        assert_eq!(
            e.payload(),
            json!({"errorType": "InvalidConfig", "errorMessage": "invalid configuration: windows is empty"})
        );
    }

    #[test]
    fn rounding() {
        assert_eq!(round2(12.3456), 12.35);
        assert_eq!(round2(0.001), 0.0);
    }
}
