//! Shard propagation under the zae-limiter 0.17 semantics
//! (docs/specification.md#shard-propagation-017): a raised `shard_count` on
//! shard 0 is copied to the existing shards, and each new shard is
//! pre-created as one `TransactWriteItems` of its `Put`, the debits of the
//! quota donors that fund it, and a `ConditionCheck` of the owner's META item
//! (ADR-145, ADR-150). The decisions are [`crate::quota`]'s; this module
//! resolves the image's schedules, asks the host for the old shards when a
//! quota needs them (`reads`, then [`after_reads`]), and turns the decisions
//! into writes.
//!
//! Kept from our 0.13 planner: propagation is coalesced per shard-0 bucket
//! (the latest raising image decides), writes carry every raising record,
//! are best-effort, and a failed condition (a shard the client created
//! first, a donor or owner that moved) is expected and ignored.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::bucket::{bucket_pk, BucketRecord};
use crate::plan::{
    Attribute, ConditionCheck, Counters, ExpressionName, Log, LogEntry, LogLevel, OnConditionFailure, Operation,
    Purpose, PutItem, Read, ReadOutcome, ReadResult, TransactItem, UpdateItem, Write,
};
use crate::quota::{self, BucketKey, CloneDecision, ImageLimit, ItemEdit, PropagationInput, RequestParts};
use crate::schedule;

/// One shard-0 bucket whose count the batch raised: its latest raising record
/// and every raising record's index.
struct Group<'r> {
    latest: &'r BucketRecord<'r>,
    records: Vec<u32>,
}

/// The raising records, grouped per shard-0 item, in first-seen order.
fn groups<'r>(records: &[&'r BucketRecord<'r>]) -> Vec<Group<'r>> {
    let mut out: Vec<Group> = Vec::new();
    for r in records.iter().copied().filter(|r| r.raises_shard_count()) {
        match out.iter_mut().find(|g| *g.latest.pk == *r.pk) {
            Some(g) => {
                if r.seq > g.latest.seq {
                    g.latest = r;
                }
                g.records.push(r.index);
            }
            None => out.push(Group { latest: r, records: vec![r.index] }),
        }
    }
    for g in &mut out {
        g.records.sort_unstable();
    }
    out
}

/// Shard 0's NewImage as a DynamoDB-JSON map.
fn image_of(rec: &BucketRecord) -> Map<String, Value> {
    let mut map = Map::new();
    for a in rec.clone_source.as_deref().map_or(&[][..], |c| &c.image) {
        if let Ok(v) = serde_json::from_str::<Value>(&a.value) {
            map.insert(a.name.clone(), v);
        }
    }
    map
}

/// The image's limits with their schedule-effective capacities and quota
/// rules, and the first schedule that does not decode.
fn image_limits(image: &Map<String, Value>, now_ms: i64) -> Result<(Vec<ImageLimit>, Option<String>), String> {
    let attrs = quota::extract_limit_attrs(image).map_err(|e| e.0)?;
    let mut out = Vec::with_capacity(attrs.len());
    let mut error = None;
    for l in &attrs {
        if l.name == quota::WCU_LIMIT_NAME {
            out.push(ImageLimit {
                name: l.name.clone(),
                cp_milli: l.cp_milli,
                effective_cp_milli: l.cp_milli,
                quota: None,
            });
            continue;
        }
        let source = quota::param_schedule_source(&l.name, image);
        let compact = if source.declares_none { None } else { source.own.or(source.item) };
        let sched = match compact.filter(|c| !c.is_empty()) {
            None => schedule::Schedule::empty(),
            Some(c) => match schedule::decode(c, source.tz) {
                Ok(s) => s,
                Err(e) => {
                    error.get_or_insert_with(|| format!("{} schedule {c:?} ({}): {e}", l.name, source.tz));
                    break;
                }
            },
        };
        let mut quota_rule = None;
        if quota::is_quota_limit(&l.name, image).map_err(|e| e.0)? {
            let reset = quota::quota_reset_source(&l.name, image);
            let decoded = match reset.compact.filter(|c| !c.is_empty()) {
                None => schedule::Schedule::empty(),
                Some(c) => match schedule::decode_reset(c, reset.tz) {
                    Ok(s) => s,
                    Err(e) => {
                        error.get_or_insert_with(|| format!("{} reset schedule {c:?} ({}): {e}", l.name, reset.tz));
                        break;
                    }
                },
            };
            let edge = schedule::prev_reset_edge(&decoded, now_ms).map_err(|e| e.to_string())?;
            quota_rule = Some(reset.rule(!decoded.is_empty(), edge).map_err(|e| e.0)?);
        }
        let (cp, _, _) =
            schedule::effective_params(l.cp_milli, l.ra_milli, l.rp_ms, &sched, now_ms).map_err(|e| e.to_string())?;
        out.push(ImageLimit { name: l.name.clone(), cp_milli: l.cp_milli, effective_cp_milli: cp, quota: quota_rule });
    }
    Ok((out, error))
}

fn key_attrs(pk: &str, sk: &str) -> Vec<Attribute> {
    vec![Attribute::s("PK", pk), Attribute::s("SK", sk)]
}

fn parts_names(parts: &[(String, String)]) -> Vec<ExpressionName> {
    parts.iter().map(|(p, n)| ExpressionName { placeholder: p.clone(), name: n.clone() }).collect()
}

fn parts_values(parts: &[(String, String)]) -> Vec<Attribute> {
    parts.iter().map(|(p, v)| Attribute::raw(p.clone(), v.clone())).collect()
}

fn update_of(table: &str, parts: &RequestParts) -> UpdateItem {
    UpdateItem {
        table_name: table.to_string(),
        key: key_attrs(&parts.pk, &parts.sk),
        update_expression: parts.update_expression.clone().unwrap_or_default(),
        condition_expression: Some(parts.condition_expression.clone()),
        names: parts_names(&parts.names),
        values: parts_values(&parts.values),
    }
}

/// The item of new shard `shard`: shard 0's image with the keys and
/// `shard_count` replaced and `edits` applied, in image order (a new
/// attribute goes last).
fn clone_item(rec: &BucketRecord, shard: i128, new_count: i128, edits: &[ItemEdit]) -> Vec<Attribute> {
    let mut item: Vec<Attribute> = rec.clone_source.as_deref().map(|c| c.image.clone()).unwrap_or_default();
    let set = |item: &mut Vec<Attribute>, name: &str, value: String| match item.iter_mut().find(|a| a.name == name) {
        Some(a) => a.value = value,
        None => item.push(Attribute::raw(name, value)),
    };
    let (e, r) = (&*rec.entity, &*rec.resource);
    set(&mut item, "PK", Attribute::s("", &bucket_pk(&rec.ns, e, r, shard)).value);
    set(&mut item, "SK", Attribute::s("", &rec.sk).value);
    set(&mut item, "GSI2SK", Attribute::s("", &format!("BUCKET#{e}#{shard}")).value);
    set(&mut item, "GSI3SK", Attribute::s("", &format!("BUCKET#{r}#{shard}")).value);
    set(&mut item, "GSI4SK", Attribute::s("", &format!("BUCKET#{e}#{r}#{shard}")).value);
    set(&mut item, "shard_count", Attribute::n("", new_count).value);
    for edit in edits {
        match edit {
            ItemEdit::Set(name, v) => set(&mut item, name, Attribute::n("", v).value),
            ItemEdit::Remove(name) => item.retain(|a| &a.name != name),
        }
    }
    item
}

/// What [`plan`] and [`after_reads`] share: the decision of one group
/// turned into writes.
#[allow(clippy::too_many_arguments)]
fn emit(
    g: &Group,
    table: &str,
    max_shards: u32,
    now_ms: i64,
    old_items: Option<&BTreeMap<i128, Map<String, Value>>>,
    writes: &mut Vec<Write>,
    logs: &mut Vec<LogEntry>,
    counters: &mut Counters,
) -> Result<(), String> {
    let rec = g.latest;
    let image = image_of(rec);
    let (limits, schedule_error) = image_limits(&image, now_ms)?;
    let new_count = rec.shard_count;
    let old_count = rec.old_shard_count.unwrap_or(1);
    let key = BucketKey { ns: &rec.ns, entity: &rec.entity, resource: &rec.resource };
    let legacy = |l: &quota::LegacyLimit| -> i128 {
        let sched = match l.compact.filter(|c| !c.is_empty()) {
            None => schedule::Schedule::empty(),
            Some(c) => schedule::decode(c, l.tz).unwrap_or_else(|_| schedule::Schedule::empty()),
        };
        schedule::effective_params(l.limit.cp_milli, 0, l.limit.rp_ms, &sched, now_ms)
            .map(|(cp, _, _)| cp)
            .unwrap_or(l.limit.cp_milli)
    };
    let input = PropagationInput {
        key,
        image: &image,
        limits: &limits,
        schedule_error: schedule_error.as_deref(),
        old_count,
        new_count,
        max_shard_count: max_shards as i128,
        old_items,
        now_ms,
        legacy_capacity: &legacy,
    };
    let decided = quota::plan_propagation(&input).map_err(|e| e.0)?;
    let mut planned = 0u32;
    for shard in &decided.existing {
        let pk = bucket_pk(&rec.ns, &rec.entity, &rec.resource, shard.shard);
        let update = if shard.freeze.is_empty() {
            UpdateItem {
                table_name: table.to_string(),
                key: key_attrs(&pk, &rec.sk),
                update_expression: "SET #sc = :new".into(),
                condition_expression: Some("#sc < :new".into()),
                names: vec![ExpressionName { placeholder: "#sc".into(), name: "shard_count".into() }],
                values: vec![Attribute::n(":new", new_count)],
            }
        } else {
            update_of(table, &quota::quota_count_freeze(&pk, &rec.sk, new_count, &shard.freeze))
        };
        writes.push(Write::new(
            Purpose::ShardPropagate,
            Operation::UpdateItem(update),
            OnConditionFailure::Ignore,
            g.records.clone(),
        ));
        planned += 1;
    }
    for clone in &decided.clones {
        match clone {
            CloneDecision::Skip { shard, reason } => {
                Log::new(logs, LogLevel::Debug, "Clone skipped")
                    .s("resource", &rec.resource)
                    .n("shard_id", shard)
                    .s("reason", &format!("{reason:?}"));
            }
            CloneDecision::Create(c) => {
                let mut items = vec![TransactItem::Put(PutItem {
                    table_name: table.to_string(),
                    base: None,
                    item: clone_item(rec, c.shard, new_count, &c.edits),
                    condition_expression: Some("attribute_not_exists(#pk)".into()),
                    names: vec![ExpressionName { placeholder: "#pk".into(), name: "PK".into() }],
                    values: vec![],
                })];
                items.extend(c.donor_updates.iter().map(|u| TransactItem::Update(update_of(table, u))));
                if let Some(check) = &decided.owner_check {
                    items.push(TransactItem::ConditionCheck(ConditionCheck {
                        table_name: table.to_string(),
                        key: key_attrs(&check.pk, &check.sk),
                        condition_expression: check.condition_expression.clone(),
                        names: parts_names(&check.names),
                        values: parts_values(&check.values),
                    }));
                }
                writes.push(Write::new(
                    Purpose::ShardPropagate,
                    Operation::TransactWriteItems(items),
                    OnConditionFailure::Ignore,
                    g.records.clone(),
                ));
                planned += 1;
            }
        }
    }
    counters.shard_propagate_writes += planned;
    Log::new(logs, LogLevel::Info, "Shard count propagation planned")
        .s("entity_id", &rec.entity)
        .s("resource", &rec.resource)
        .n("new_count", new_count)
        .n("writes", planned);
    Ok(())
}

/// Whether a group's propagation is out of bounds: a count above the
/// maximum is a runaway doubling, never propagated (as upstream, which
/// skips it whole).
fn out_of_bounds(g: &Group, max_shards: u32, logs: &mut Vec<LogEntry>) -> bool {
    let rec = g.latest;
    if rec.shard_count > max_shards as i128 {
        Log::new(logs, LogLevel::Warning, "Shard count propagation skipped - above MAX_SHARD_COUNT")
            .s("entity_id", &rec.entity)
            .s("resource", &rec.resource)
            .n("old_count", rec.old_shard_count.unwrap_or(1))
            .n("new_count", rec.shard_count)
            .n("max_shard_count", max_shards);
        return true;
    }
    false
}

/// The reads a group needs: shards `0 .. old_count` when its image carries a
/// quota (and every schedule decodes); none otherwise.
fn reads_of(g: &Group, now_ms: i64) -> Result<Vec<i128>, String> {
    let image = image_of(g.latest);
    let (limits, error) = image_limits(&image, now_ms)?;
    if !quota::needs_sibling_read(&limits, error.as_deref()) {
        return Ok(Vec::new());
    }
    Ok((0..g.latest.old_shard_count.unwrap_or(1).max(1)).collect())
}

/// Plan propagation for every shard-0 bucket the batch raised: the writes of
/// those that need no read, and the reads of those that do (their writes
/// come from [`after_reads`]). A group whose image cannot be read is logged
/// and left alone (the next raise, or the client, propagates).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    records: &[&BucketRecord],
    table: &str,
    max_shards: u32,
    now_ms: i64,
    reads: &mut Vec<Read>,
    writes: &mut Vec<Write>,
    logs: &mut Vec<LogEntry>,
    counters: &mut Counters,
) {
    for g in groups(records) {
        if out_of_bounds(&g, max_shards, logs) {
            continue;
        }
        let rec = g.latest;
        let result = reads_of(&g, now_ms).and_then(|shards| {
            if shards.is_empty() {
                return emit(&g, table, max_shards, now_ms, None, writes, logs, counters);
            }
            for shard in shards {
                let pk = bucket_pk(&rec.ns, &rec.entity, &rec.resource, shard);
                reads.push(Read {
                    id: reads.len() as u32,
                    table_name: table.to_string(),
                    key: key_attrs(&pk, &rec.sk),
                    records: g.records.clone(),
                    target: format!("{table} {{PK={pk}, SK={}}}", rec.sk),
                });
            }
            Ok(())
        });
        if let Err(why) = result {
            Log::new(logs, LogLevel::Warning, "Error propagating shard_count")
                .s("entity_id", &rec.entity)
                .s("resource", &rec.resource)
                .s("reason", &why);
        }
    }
}

/// The writes of the groups whose propagation waited on reads, given the
/// reads' outcomes by id (ids as [`plan`] numbered them). A failed read
/// propagates the count without the quota freeze and pre-creates no clone.
#[allow(clippy::too_many_arguments)]
pub fn after_reads(
    records: &[&BucketRecord],
    table: &str,
    max_shards: u32,
    now_ms: i64,
    outcome: &dyn Fn(u32) -> ReadOutcome,
    writes: &mut Vec<Write>,
    logs: &mut Vec<LogEntry>,
    counters: &mut Counters,
) {
    let mut next_id = 0u32;
    for g in groups(records) {
        if out_of_bounds(&g, max_shards, &mut Vec::new()) {
            continue;
        }
        let Ok(shards) = reads_of(&g, now_ms) else { continue };
        if shards.is_empty() {
            continue;
        }
        let mut items: BTreeMap<i128, Map<String, Value>> = BTreeMap::new();
        let mut failed = None;
        for shard in shards {
            match outcome(next_id) {
                ReadOutcome::Found(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => {
                        items.insert(shard, m);
                    }
                    _ => failed = Some(format!("shard {shard}: the item read is not a DynamoDB JSON map")),
                },
                ReadOutcome::Missing => {}
                ReadOutcome::Failed(why) => failed = Some(why),
            }
            next_id += 1;
        }
        let rec = g.latest;
        if let Some(why) = &failed {
            Log::new(logs, LogLevel::Warning, "Sibling read failed - propagating without the quota freeze or clones")
                .s("resource", &rec.resource)
                .s("reason", why);
        }
        let old = if failed.is_some() { None } else { Some(&items) };
        if let Err(why) = emit(&g, table, max_shards, now_ms, old, writes, logs, counters) {
            Log::new(logs, LogLevel::Warning, "Error propagating shard_count")
                .s("entity_id", &rec.entity)
                .s("resource", &rec.resource)
                .s("reason", &why);
        }
    }
}

/// The reads' outcomes by id, for [`after_reads`]: a read with no result
/// counts as failed.
pub fn outcome_of(results: &[ReadResult]) -> impl Fn(u32) -> ReadOutcome + '_ {
    move |id| {
        results
            .iter()
            .rev()
            .find(|r| r.read_id == id)
            .map(|r| r.outcome.clone())
            .unwrap_or_else(|| ReadOutcome::Failed("the host returned no result for this read".into()))
    }
}
