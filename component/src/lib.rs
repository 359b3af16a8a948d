//! zae-aggregator's planner.
//!
//! A pure, deterministic function from a DynamoDB-stream batch (the Lambda
//! event JSON), a configuration and the current time to the list of DynamoDB
//! and S3 writes that aggregate it. It builds as a WASI Preview 2 component
//! (the WIT contract is `wit/planner.wit`) and as a native library with the
//! same code, so tests and hosts can compare both.
//!
//! Stages, each in its own module: [`event`] (the event read once, record by
//! record, through the compact per-record tree of [`json`]), [`bucket`] (key
//! formats, record parse, per-item folding), [`window`] (window keys),
//! [`snapshot`] (coalesced usage counters with exactly-once watermarks),
//! [`refill`], [`shard`] (doubling and propagation), [`archive`] (audit NDJSON
//! and gzip), and [`plan`] (the output and its canonical JSON). [`limits`]
//! checks every DynamoDB write against DynamoDB's limits before it is planned.

pub mod archive;
pub mod bucket;
pub mod clone;
pub mod config;
pub mod consumption;
pub mod dead_letter;
pub mod event;
pub mod json;
pub mod limits;
pub mod materialise;
pub mod plan;
pub mod pyjson;
pub mod quota;
pub mod refill;
pub mod schedule;
pub mod shard;
pub mod snapshot;
pub mod usage;
#[cfg(not(target_arch = "wasm32"))]
pub mod vector;
pub mod window;

#[cfg(target_arch = "wasm32")]
mod guest;

use std::collections::BTreeMap;

use bucket::{BucketRecord, Parsed};
use event::{Record, Seq};
pub use plan::{Batch, ObservedItem, Plan, PlanError};
use plan::{Log, LogEntry, LogLevel, RecordOutcome, RecordStatus};

/// What the classification pass made of each record.
enum Class<'a> {
    Bucket(Box<BucketRecord<'a>>),
    Audit(archive::AuditEvent),
    Skip(String),
    Invalid(String),
}

/// One classified record: all that is kept of it once its parse tree is gone.
struct Classified<'a> {
    index: u32,
    seq: Option<Seq>,
    class: Class<'a>,
    /// Window keys, for a bucket record with deltas.
    keys: Vec<String>,
}

/// Classifies records as the event is read, and collects their logs.
struct Classifier<'b, 'a> {
    batch: &'b Batch<'a>,
    records: Vec<Classified<'a>>,
    logs: Vec<LogEntry>,
}

impl<'a> event::Sink<'a> for Classifier<'_, 'a> {
    fn record(&mut self, rec: &Record<'_, 'a>) {
        let c = classify_one(rec, self.batch, &mut self.logs);
        self.records.push(c);
    }

    fn restart(&mut self) {
        self.records.clear();
        self.logs.clear();
    }
}

fn classify_one<'a>(rec: &Record<'_, 'a>, batch: &Batch, logs: &mut Vec<LogEntry>) -> Classified<'a> {
    let mut keys = Vec::new();
    let class = if let Some(e) = &rec.shape_error {
        Class::Invalid(e.clone())
    } else {
        match rec.event_name {
            Some("MODIFY") => match bucket::parse(rec) {
                Parsed::Bucket(b) => {
                    if snapshot::has_deltas(&b) {
                        match snapshot::window_keys(&b, &batch.config.windows) {
                            Ok(k) => {
                                keys = k;
                                Class::Bucket(b)
                            }
                            Err(e) => Class::Invalid(e),
                        }
                    } else {
                        Class::Bucket(b)
                    }
                }
                Parsed::Skip(r) => Class::Skip(r),
                Parsed::Invalid(r) => Class::Invalid(r),
            },
            Some("REMOVE") => match &batch.config.archive_bucket {
                Some(_) => match archive::extract(rec, batch.now_ms, logs) {
                    archive::Extracted::Event(e) => Class::Audit(e),
                    archive::Extracted::Skip(r) => Class::Skip(r),
                    archive::Extracted::Invalid(r) => Class::Invalid(r),
                },
                None => Class::Skip("REMOVE record and archival is disabled".into()),
            },
            Some("INSERT") => Class::Skip("INSERT records carry no consumption".into()),
            Some(other) => Class::Skip(format!("eventName {other:?} is not handled")),
            None => Class::Invalid("record has no eventName".into()),
        }
    };
    match &class {
        Class::Invalid(reason) => {
            Log::new(logs, LogLevel::Warning, "Invalid record")
                .n("record_index", rec.index)
                .raw("sequence_number", opt_json(rec.seq_raw()))
                .s("reason", reason);
        }
        Class::Skip(reason) if reason.starts_with("Skipping pre-migration") => {
            let pk = rec.new_image.and_then(|n| event::get_s(n, "PK")).unwrap_or("");
            Log::new(logs, LogLevel::Warning, reason.clone()).s("pk", pk).n("record_index", rec.index);
        }
        _ => {}
    }
    Classified { index: rec.index, seq: rec.seq.clone(), class, keys }
}

/// Read and classify every record; returns them with their logs.
fn classify<'a>(batch: &Batch<'a>) -> Result<(Vec<Classified<'a>>, Vec<LogEntry>), PlanError> {
    batch.config.validate().map_err(PlanError::BadConfig)?;
    batch.config.limiter().map_err(PlanError::BadConfig)?;
    let mut c = Classifier { batch, records: Vec::new(), logs: Vec::new() };
    event::read(batch.event_json, &mut c)?;
    Ok((c.records, c.logs))
}

fn opt_json(s: Option<String>) -> String {
    match s {
        Some(s) => {
            let mut out = String::new();
            plan::write_json_str(&mut out, &s);
            out
        }
        None => "null".into(),
    }
}

/// Records a DynamoDB limit makes invalid, with the reason
/// (docs/specification.md#dynamodb-limits).
type Excluded = BTreeMap<u32, String>;

fn timed<'c, 'a>(
    c: &'c [Classified<'a>],
    excluded: &Excluded,
) -> (Vec<&'c BucketRecord<'a>>, Vec<snapshot::Timed<'c, 'a>>) {
    let mut buckets = Vec::new();
    let mut timed = Vec::new();
    for cl in c {
        if excluded.contains_key(&cl.index) {
            continue;
        }
        if let Class::Bucket(b) = &cl.class {
            buckets.push(&**b);
            if !cl.keys.is_empty() {
                timed.push(snapshot::Timed { rec: b, keys: &cl.keys });
            }
        }
    }
    (buckets, timed)
}

fn finish(c: &[Classified], plan: &mut Plan, excluded: &Excluded) {
    let mut touched = vec![false; c.len()];
    for w in &plan.writes {
        for &i in &w.records {
            if let Some(t) = touched.get_mut(i as usize) {
                *t = true;
            }
        }
    }
    let counters = &mut plan.counters;
    counters.records = c.len() as u32;
    for rec in c {
        let status = match &rec.class {
            Class::Bucket(_) if excluded.contains_key(&rec.index) => {
                counters.bucket_records += 1;
                counters.invalid += 1;
                RecordStatus::Invalid(excluded[&rec.index].clone())
            }
            Class::Bucket(b) if b.propagation_only && !touched[rec.index as usize] => {
                counters.bucket_records += 1;
                counters.skipped += 1;
                RecordStatus::Skipped(bucket::NO_ENTITY_ID.into())
            }
            Class::Bucket(b) => {
                counters.bucket_records += 1;
                if b.limits.is_empty() && !touched[rec.index as usize] {
                    counters.skipped += 1;
                    RecordStatus::Skipped("bucket change without a consumption counter in both images".into())
                } else {
                    RecordStatus::Used
                }
            }
            Class::Audit(_) => {
                counters.audit_records += 1;
                RecordStatus::Used
            }
            Class::Skip(r) => {
                counters.skipped += 1;
                RecordStatus::Skipped(r.clone())
            }
            Class::Invalid(r) => {
                counters.invalid += 1;
                RecordStatus::Invalid(r.clone())
            }
        };
        let sequence_number = rec.seq.as_ref().map(|s| s.raw().to_string());
        plan.outcomes.push(RecordOutcome { index: rec.index, sequence_number, status });
    }
}

fn summary(plan: &mut Plan, batch: &Batch, message: &str) {
    let mut log = Log::new(&mut plan.logs, LogLevel::Info, message).s("request_id", batch.invocation_id);
    for (k, v) in plan.counters.fields() {
        log = log.n(k, v);
    }
    log.n("writes", plan.writes.len());
}

/// The writes of the bucket stages (snapshots, refills, shard doubling and
/// propagation) with their logs and counters.
#[derive(Default)]
struct Staged {
    writes: Vec<plan::Write>,
    reads: Vec<plan::Read>,
    logs: Vec<LogEntry>,
    counters: plan::Counters,
}

fn snapshot_params(cfg: &config::Config, now_ms: i64) -> snapshot::Params<'_> {
    snapshot::Params {
        table: &cfg.table_name,
        windows: &cfg.windows,
        now_ms,
        ttl_days: cfg.snapshot_ttl_days,
        overdraws: cfg.limiter == Some(config::Limiter::V017),
    }
}

/// Run the bucket stages without the `excluded` records; returns the records
/// that a DynamoDB limit makes invalid in this run.
fn bucket_stages(c: &[Classified], batch: &Batch, excluded: &Excluded, out: &mut Staged) -> Excluded {
    let cfg = batch.config;
    let mut invalid = Excluded::new();
    let (buckets, timed) = timed(c, excluded);
    let params = snapshot_params(cfg, batch.now_ms);
    let fresh = |_: &str, _: &str| Some(snapshot::Guard::Fresh);
    snapshot::plan(&timed, &params, &fresh, &mut out.writes, &mut out.logs, &mut out.counters, &mut invalid);
    let with_entity: Vec<&BucketRecord> = buckets.iter().copied().filter(|b| !b.propagation_only).collect();
    let states = bucket::aggregate(&with_entity);
    for s in &states {
        if let Some(why) = &s.overflow {
            for &i in &s.records {
                invalid.entry(i).or_insert_with(|| why.clone());
            }
        }
    }
    let states: Vec<_> = states.into_iter().filter(|s| s.overflow.is_none()).collect();
    let (writes, logs, counters) = (&mut out.writes, &mut out.logs, &mut out.counters);
    if cfg.limiter == Some(config::Limiter::V017) {
        let (table, max, now) = (&cfg.table_name, cfg.max_shard_count, batch.now_ms);
        materialise::plan(&states, table, now, writes, logs, counters, &mut invalid);
        shard::plan_bumps(&states, table, max, Some(now), writes, logs, counters);
        clone::plan(&buckets, table, max, now, &mut out.reads, writes, logs, counters);
    } else {
        refill::plan(&states, &cfg.table_name, batch.now_ms, writes, logs, counters, &mut invalid);
        shard::plan_bumps(&states, &cfg.table_name, cfg.max_shard_count, None, writes, logs, counters);
        shard::plan_propagation(&buckets, &cfg.table_name, cfg.max_shard_count, writes, logs, counters);
    }
    for w in writes.iter() {
        if let Err(e) = limits::check_write(w) {
            let (pk, sk) = w.item_key().unwrap_or_default();
            let why = format!("{} write to {pk} {sk} exceeds a DynamoDB limit: {e}", w.purpose.name());
            for &i in &w.records {
                invalid.entry(i).or_insert_with(|| why.clone());
            }
        }
    }
    invalid
}

/// Run the bucket stages until no write breaks a DynamoDB limit: each round
/// leaves out the records the previous rounds found invalid (a record is
/// never in any write once invalid). Returns the last round and every
/// invalid record.
fn settle_limits(c: &[Classified], batch: &Batch) -> (Staged, Excluded) {
    let mut excluded = Excluded::new();
    loop {
        let mut staged = Staged::default();
        let mut found = bucket_stages(c, batch, &excluded, &mut staged);
        found.retain(|i, _| !excluded.contains_key(i));
        if found.is_empty() {
            return (staged, excluded);
        }
        excluded.extend(found);
    }
}

/// `Invalid record` lines for the records a limit made invalid, by index.
fn log_excluded(c: &[Classified], excluded: &Excluded, logs: &mut Vec<LogEntry>) {
    for (&i, reason) in excluded {
        let seq = c.get(i as usize).and_then(|cl| cl.seq.as_ref()).map(|s| s.raw().to_string());
        Log::new(logs, LogLevel::Warning, "Invalid record")
            .n("record_index", i)
            .raw("sequence_number", opt_json(seq))
            .s("reason", reason);
    }
}

/// Plan every write for a batch.
pub fn plan(batch: &Batch) -> Result<Plan, PlanError> {
    let (c, logs) = classify(batch)?;
    let cfg = batch.config;
    let mut out = Plan::default();
    let windows: Vec<&str> = cfg.windows.iter().map(|w| w.name()).collect();
    Log::new(&mut out.logs, LogLevel::Info, "Batch processing started")
        .s("request_id", batch.invocation_id)
        .n("record_count", c.len())
        .list("windows", &windows)
        .s("table_name", &cfg.table_name);
    out.logs.extend(logs);
    let (staged, excluded) = settle_limits(&c, batch);
    log_excluded(&c, &excluded, &mut out.logs);
    out.writes = staged.writes;
    out.reads = staged.reads;
    out.logs.extend(staged.logs);
    out.counters = staged.counters;
    if let Some(bucket) = &cfg.archive_bucket {
        let events: Vec<archive::AuditEvent> = c
            .iter()
            .filter_map(|cl| match &cl.class {
                Class::Audit(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        archive::plan(&events, bucket, &mut out.writes, &mut out.logs, &mut out.counters);
    }
    out.finish_writes();
    finish(&c, &mut out, &excluded);
    if let Some(bucket) = &cfg.dead_letter_bucket {
        // Invalid records can never be applied: stored with their reasons,
        // they count as handled (docs/specification.md#dead-letters).
        let entries: Vec<dead_letter::Entry> = out
            .outcomes
            .iter()
            .filter_map(|o| match &o.status {
                RecordStatus::Invalid(reason) => Some(dead_letter::Entry {
                    index: o.index,
                    sequence_number: o.sequence_number.clone(),
                    reason: reason.clone(),
                    request: None,
                }),
                _ => None,
            })
            .collect();
        let id = out.writes.len() as u32;
        if let Some(w) = dead_letter::write(batch.event_json, batch.now_ms, bucket, &entries, id) {
            out.writes.push(w);
        }
    }
    summary(&mut out, batch, "Batch planned");
    Ok(out)
}

/// Plan the writes that waited on the plan's reads
/// (docs/architecture.md#reads), given the reads' results; their ids follow
/// the plan's writes. A read whose result is missing counts as failed.
pub fn plan_after_reads(batch: &Batch, results: &[plan::ReadResult]) -> Result<Plan, PlanError> {
    let first = plan(batch)?;
    for r in results {
        if !first.reads.iter().any(|read| read.id == r.read_id) {
            return Err(PlanError::UnknownReadId(r.read_id));
        }
    }
    let mut out = Plan::default();
    if !first.reads.is_empty() {
        let (c, _) = classify(batch)?;
        let (_, excluded) = settle_limits(&c, batch);
        let (buckets, _) = timed(&c, &excluded);
        let cfg = batch.config;
        let outcome = clone::outcome_of(results);
        let (writes, logs, counters) = (&mut out.writes, &mut out.logs, &mut out.counters);
        clone::after_reads(
            &buckets,
            &cfg.table_name,
            cfg.max_shard_count,
            batch.now_ms,
            &outcome,
            writes,
            logs,
            counters,
        );
        let base = first.writes.len() as u32;
        for (i, w) in out.writes.iter_mut().enumerate() {
            w.id = base + i as u32;
            w.target = w.describe_target();
        }
    }
    summary(&mut out, batch, "Reads planned");
    Ok(out)
}

/// A record the host could not apply, for [`dead_letter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// Index in the event's `Records`.
    pub index: u32,
    /// Why it can never be applied.
    pub reason: String,
    /// The id of the write that failed for it, if any.
    pub write_id: Option<u32>,
}

/// The dead-letter write for records the host found can never be applied
/// (a write DynamoDB or S3 refuses for good, a snapshot item whose watermark
/// is malformed): `None` when no dead-letter bucket is configured or there
/// is nothing to store. Each line carries the failed request, taken from
/// the batch's own plan by write id; the write's id follows the plan's.
pub fn dead_letter(batch: &Batch, failures: &[RecordFailure]) -> Result<Option<plan::Write>, PlanError> {
    let Some(bucket) = &batch.config.dead_letter_bucket else {
        return Ok(None);
    };
    let planned = plan(batch)?;
    let mut entries = Vec::with_capacity(failures.len());
    for f in failures {
        let Some(outcome) = planned.outcomes.get(f.index as usize) else {
            return Err(PlanError::UnknownRecordIndex(f.index));
        };
        let request = match f.write_id {
            None => None,
            Some(id) => match planned.writes.get(id as usize) {
                Some(w) => Some(plan::operation_json(&w.operation)),
                None => return Err(PlanError::UnknownWriteId(id)),
            },
        };
        entries.push(dead_letter::Entry {
            index: f.index,
            sequence_number: outcome.sequence_number.clone(),
            reason: f.reason.clone(),
            request,
        });
    }
    let id = planned.writes.len() as u32;
    Ok(dead_letter::write(batch.event_json, batch.now_ms, bucket, &entries, id))
}

/// Re-plan the snapshot writes of `batch` for the observed items only
/// (`docs/architecture.md#exactly-once`). Each observed item names the write
/// whose condition failed by its id; the answer's writes carry the ids of the
/// writes they replace. An item split into chunks
/// (docs/specification.md#dynamodb-limits) is re-planned chunk by chunk, each
/// write with the id of its chunk's first write. Items whose observed
/// watermarks are malformed get no write; their records are reported invalid
/// with the reason, like the records a DynamoDB limit makes invalid.
pub fn replan_snapshots(batch: &Batch, observed: &[ObservedItem]) -> Result<Plan, PlanError> {
    let (c, _) = classify(batch)?;
    let cfg = batch.config;
    let mut out = Plan::default();
    let (_, excluded) = settle_limits(&c, batch);
    let (_, timed) = timed(&c, &excluded);
    let params = snapshot_params(cfg, batch.now_ms);
    // The snapshot writes of the first plan, in plan order: a write's id is
    // its index there (snapshot writes come first).
    let mut fresh = Vec::new();
    let mut scratch = (Vec::new(), plan::Counters::default(), Excluded::new());
    let fresh_ids = snapshot::plan(
        &timed,
        &params,
        &|_, _| Some(snapshot::Guard::Fresh),
        &mut fresh,
        &mut scratch.0,
        &mut scratch.1,
        &mut scratch.2,
    );
    let mut seen: BTreeMap<(String, String), snapshot::Guard> = BTreeMap::new();
    let mut broken: BTreeMap<(String, String), String> = BTreeMap::new();
    for o in observed {
        let Some(id) = fresh_ids.get(o.write_id as usize) else {
            return Err(PlanError::UnknownWriteId(o.write_id));
        };
        let key = (id.pk.clone(), id.sk.clone());
        let marks = match &o.item {
            None => Ok(BTreeMap::new()),
            Some(json) => match serde_json::from_str::<serde_json::Value>(json) {
                Ok(serde_json::Value::Object(m)) => snapshot::observed_watermarks(&m),
                _ => Err("observed item is not a DynamoDB JSON map".to_string()),
            },
        };
        match marks {
            Ok(m) => {
                seen.insert(key, snapshot::Guard::Observed(m));
            }
            Err(e) => {
                broken.insert(key, e);
            }
        }
    }
    // Records of an item whose stored watermark is malformed are invalid
    // (they go to the dead letter), so no re-planned write may carry them:
    // the other items they feed are re-planned without them.
    let mut malformed = Excluded::new();
    for (w, id) in fresh.iter().zip(&fresh_ids) {
        if let Some(reason) = broken.get(&(id.pk.clone(), id.sk.clone())) {
            for &i in &w.records {
                malformed.entry(i).or_insert_with(|| format!("snapshot item watermark is malformed: {reason}"));
            }
        }
    }
    let mut without = excluded.clone();
    without.extend(malformed.iter().map(|(i, r)| (*i, r.clone())));
    let (_, kept) = crate::timed(&c, &without);
    let mut late = Excluded::new();
    let ids = snapshot::plan(
        &kept,
        &params,
        &|pk, sk| seen.get(&(pk.to_string(), sk.to_string())).cloned(),
        &mut out.writes,
        &mut out.logs,
        &mut out.counters,
        &mut late,
    );
    let by_identity: BTreeMap<&snapshot::WriteIdentity, u32> =
        fresh_ids.iter().enumerate().map(|(i, k)| (k, i as u32)).collect();
    for (w, id) in out.writes.iter_mut().zip(&ids) {
        w.id = by_identity.get(id).copied().unwrap_or(u32::MAX);
        w.target = w.describe_target();
    }
    // A re-planned write carries fewer contributions than the first plan's;
    // one that still breaks a limit is not written, and its records are
    // reported invalid.
    out.writes.retain(|w| match limits::check_write(w) {
        Ok(()) => true,
        Err(e) => {
            for &i in &w.records {
                late.entry(i).or_insert_with(|| format!("re-planned snapshot write exceeds a DynamoDB limit: {e}"));
            }
            false
        }
    });
    let mut invalid: BTreeMap<u32, String> = late;
    for (w, id) in fresh.iter().zip(&fresh_ids) {
        let Some(reason) = broken.get(&(id.pk.clone(), id.sk.clone())) else { continue };
        if id.chunk == 0 {
            if let plan::Operation::UpdateItem(u) = &w.operation {
                Log::new(&mut out.logs, LogLevel::Error, "Snapshot item has a malformed watermark; not written")
                    .raw("key", format!("{{\"PK\":{},\"SK\":{}}}", u.key[0].value, u.key[1].value))
                    .s("reason", reason);
            }
        }
    }
    invalid.extend(malformed);
    finish(&c, &mut out, &excluded);
    for o in &mut out.outcomes {
        if let Some(r) = invalid.remove(&o.index) {
            o.status = RecordStatus::Invalid(r);
        }
    }
    summary(&mut out, batch, "Snapshots re-planned");
    Ok(out)
}

/// Plan and render canonical JSON in one call.
pub fn plan_json(batch: &Batch) -> Result<String, PlanError> {
    plan(batch).map(|p| plan::canonical_json(&p))
}
