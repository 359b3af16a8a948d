//! Usage snapshots: consumption deltas (docs/specification.md#consumption-deltas) coalesced into one UpdateItem
//! per snapshot item per batch (W6), with exactly-once watermarks
//! (docs/specification.md#watermarks, docs/architecture.md#exactly-once).
//!
//! Item layout is upstream's flat schema (docs/specification.md#snapshots), readable by zae-limiter's
//! snapshot reader (docs/specification.md#snapshot-reader), with these decisions:
//! * W4: hourly items keep `#USAGE#{resource}#{key}`; daily and monthly items are
//!   `#USAGE#{resource}#{key}#{window}` so the three windows never share an item.
//! * W5: the window time is the record's `ApproximateCreationDateTime`; `rf` only
//!   when that is absent (counted).
//! * W7 kept: each counter gains `floor_div(delta, 1000)` per delta and
//!   `total_events` gains 1 per delta, exactly the sums of upstream's writes.
//! * W9: every name goes through a placeholder; a limit whose name collides with
//!   a snapshot attribute is not written (counted and logged).
//! * Watermarks: per contributing bucket item a string attribute `wm#…` holds the
//!   highest applied sequence number, zero-padded to 40 digits (never N: the
//!   reader treats every N as a counter).

use std::collections::BTreeMap;

use crate::bucket::BucketRecord;
use crate::event::Seq;
use crate::limits;
use crate::plan::{
    Attribute, Counters, ExpressionName, Log, LogEntry, LogLevel, OnConditionFailure, Operation, Purpose, UpdateItem,
    Write,
};
use crate::window::{window_key, Window};

/// Attribute names a limit counter may not take (they hold snapshot metadata).
pub const RESERVED: [&str; 12] = [
    "PK",
    "SK",
    "entity_id",
    "resource",
    "window",
    "window_start",
    "total_events",
    "GSI2PK",
    "GSI2SK",
    "GSI4PK",
    "GSI4SK",
    "ttl",
];

/// Prefix of watermark attributes.
pub const WATERMARK_PREFIX: &str = "wm#";

/// Whether a limit name cannot be a counter attribute.
pub fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name) || name.starts_with(WATERMARK_PREFIX)
}

/// Python `//` for a positive divisor.
pub fn floor_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b)
}

/// Sort key of a snapshot item (W4).
pub fn snapshot_sk(resource: &str, window: Window, key: &str) -> String {
    match window {
        Window::Hourly => format!("#USAGE#{resource}#{key}"),
        _ => format!("#USAGE#{resource}#{key}#{}", window.name()),
    }
}

/// PK of an entity's items.
pub fn entity_pk(ns: &str, entity: &str) -> String {
    format!("{ns}/ENTITY#{entity}")
}

/// The window time of a record (W5) and whether it fell back to `rf`.
pub fn window_time(rec: &BucketRecord) -> (i64, bool) {
    match rec.approx_ms {
        Some(ms) => (ms, false),
        None => {
            let rf = rec.rf_ms.unwrap_or(0).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
            (rf, true)
        }
    }
}

/// Whether a record produces consumption deltas (non-wcu, non-zero).
pub fn has_deltas(rec: &BucketRecord) -> bool {
    rec.limits.iter().any(|l| l.name != "wcu" && l.tc_delta != 0)
}

/// Window keys of a record for the configured windows; an error makes the
/// record invalid (its time cannot be represented).
pub fn window_keys(rec: &BucketRecord, windows: &[Window]) -> Result<Vec<String>, String> {
    let (ts, _) = window_time(rec);
    windows.iter().map(|&w| window_key(w, ts).map_err(|e| format!("window time {ts} ms: {e}"))).collect()
}

/// One delta of one record to one snapshot item.
#[derive(Debug)]
struct Contribution<'c, 'a> {
    rec: &'c BucketRecord<'a>,
    /// Index in the item's `sources`.
    source: usize,
    limit: &'c str,
    tokens: i128,
    /// Position among every contribution of the call (items and their writes
    /// follow it).
    ord: usize,
    /// Above the observed watermark (always, for a fresh plan).
    kept: bool,
    /// A soft limit's delta that left its shard in debt (`{limit}#od` + 1).
    overdrawn: bool,
}

#[derive(Debug)]
struct Item<'c, 'a> {
    pk: String,
    sk: String,
    ns: &'c str,
    entity: &'c str,
    resource: &'c str,
    window: Window,
    key: String,
    /// Watermark attributes of every contributing bucket item, first-seen order.
    sources: Vec<String>,
    contributions: Vec<Contribution<'c, 'a>>,
}

/// How a write guards its watermarks.
#[derive(Debug, Clone)]
pub enum Guard {
    /// First attempt: each source's watermark is absent or below its first
    /// contribution.
    Fresh,
    /// Re-plan: each source's watermark is exactly what was observed.
    Observed(BTreeMap<String, Option<Seq>>),
}

/// One bucket record with its window keys, ready for snapshot planning.
pub struct Timed<'c, 'a> {
    /// The record.
    pub rec: &'c BucketRecord<'a>,
    /// One key per configured window, same order.
    pub keys: &'c [String],
}

/// Parameters of snapshot planning.
pub struct Params<'a> {
    /// Target table.
    pub table: &'a str,
    /// Configured windows.
    pub windows: &'a [Window],
    /// Now, epoch ms.
    pub now_ms: i64,
    /// TTL days.
    pub ttl_days: u32,
    /// Count soft-limit overdraws in `{limit}#od` (the zae-limiter 0.17
    /// semantics): one per delta of a limit stamped `b_{limit}_soft` that
    /// consumed (`tc` rose) and left the shard's balance below zero.
    pub overdraws: bool,
}

/// Which part of a snapshot item a write covers: the item's key and the
/// index of its chunk of sources (docs/specification.md#dynamodb-limits).
/// A re-plan's write takes the id of the first plan's write with the same
/// identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WriteIdentity {
    /// PK.
    pub pk: String,
    /// SK.
    pub sk: String,
    /// Chunk index within the item (0 when the item is not split).
    pub chunk: u32,
}

/// Plan snapshot writes. `select` chooses which items to plan and how to guard
/// them: `Some(Guard::Fresh)` for a first plan, `Some(Guard::Observed(..))` for
/// a re-plan, `None` to leave the item out. Records whose contribution cannot
/// be written within DynamoDB's limits are added to `invalid` (the caller plans
/// again without them). Returns the identity of each write pushed, in order.
pub fn plan(
    timed: &[Timed<'_, '_>],
    p: &Params,
    select: &dyn Fn(&str, &str) -> Option<Guard>,
    writes: &mut Vec<Write>,
    logs: &mut Vec<LogEntry>,
    counters: &mut Counters,
    invalid: &mut BTreeMap<u32, String>,
) -> Vec<WriteIdentity> {
    // Items by PK, then SK.
    let mut index: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut items: Vec<Item> = Vec::new();
    let mut guards: Vec<Guard> = Vec::new();
    let mut ord = 0usize;
    for t in timed {
        let rec = t.rec;
        let (_, from_rf) = window_time(rec);
        let pk = entity_pk(&rec.ns, &rec.entity);
        let source_attr = rec.watermark_attr();
        if !has_deltas(rec) {
            continue;
        }
        let by_sk = index.entry(pk.clone()).or_default();
        // One snapshot item per window, whatever the limit: the item and its
        // guard are looked up once per window, then every limit adds to it.
        for (w, key) in p.windows.iter().zip(t.keys) {
            let first_window = *w == p.windows[0];
            let sk = snapshot_sk(&rec.resource, *w, key);
            let Some(guard) = select(&pk, &sk) else { continue };
            // A record at or below the observed watermark was counted already;
            // it stays in the item (its source decides the chunks) but adds
            // nothing.
            let kept = match &guard {
                Guard::Fresh => true,
                Guard::Observed(seen) => !matches!(seen.get(&source_attr), Some(Some(wm)) if rec.seq <= *wm),
            };
            let mut slot = None;
            for l in rec.limits.iter().filter(|l| l.name != "wcu" && l.tc_delta != 0) {
                if kept && first_window {
                    counters.deltas += 1;
                    counters.window_time_from_rf += from_rf as u32;
                }
                if is_reserved(&l.name) {
                    if kept && first_window {
                        counters.reserved_limit_deltas += 1;
                        Log::new(
                            logs,
                            LogLevel::Warning,
                            "Limit name collides with a snapshot attribute; delta not recorded",
                        )
                        .n("record_index", rec.index)
                        .s("sequence_number", rec.seq.raw())
                        .s("entity_id", &rec.entity)
                        .s("resource", &rec.resource)
                        .s("limit_name", &l.name)
                        .n("tokens_delta", floor_div(l.tc_delta, 1000));
                    }
                    continue;
                }
                let slot = *slot.get_or_insert_with(|| match by_sk.get(sk.as_str()) {
                    Some(&i) => i,
                    None => {
                        items.push(Item {
                            pk: pk.clone(),
                            sk: sk.clone(),
                            ns: &rec.ns,
                            entity: &rec.entity,
                            resource: &rec.resource,
                            window: *w,
                            key: key.clone(),
                            sources: Vec::new(),
                            contributions: Vec::new(),
                        });
                        guards.push(guard.clone());
                        by_sk.insert(sk.clone(), items.len() - 1);
                        items.len() - 1
                    }
                });
                let item = &mut items[slot];
                let source = match item.sources.iter().position(|s| *s == source_attr) {
                    Some(i) => i,
                    None => {
                        item.sources.push(source_attr.clone());
                        item.sources.len() - 1
                    }
                };
                item.contributions.push(Contribution {
                    rec,
                    source,
                    limit: &l.name,
                    tokens: floor_div(l.tc_delta, 1000),
                    ord,
                    kept,
                    overdrawn: p.overdraws && l.tc_delta > 0 && l.tk < 0 && l.ext.as_deref().is_some_and(|e| e.soft),
                });
                ord += 1;
            }
        }
    }
    let ttl = (p.now_ms as i128).div_euclid(1000) + p.ttl_days as i128 * 86_400;
    // (first kept contribution of the item, chunk, write, identity, log facts)
    type Planned<'i, 'c, 'a> = (usize, u32, Write, WriteIdentity, (&'i Item<'c, 'a>, usize, usize));
    let mut planned: Vec<Planned> = Vec::new();
    for (item, guard) in items.iter().zip(&guards) {
        if let Err(e) = item_totals(item) {
            for (i, why) in e {
                invalid.entry(i).or_insert(why);
            }
            continue;
        }
        let chunks = chunks(item, p.table, ttl);
        let Some(first) = item.contributions.iter().find(|c| c.kept).map(|c| c.ord) else { continue };
        for (ci, (sources, sorted)) in chunks.iter().enumerate() {
            let view = ChunkView::new(item, sources, *sorted, true);
            if view.contributions.is_empty() {
                continue;
            }
            match item_write(item, &view, guard, p.table, ttl) {
                Ok(w) => {
                    let mut n_limits: Vec<&str> = view.contributions.iter().map(|c| c.limit).collect();
                    n_limits.sort_unstable();
                    n_limits.dedup();
                    planned.push((
                        first,
                        ci as u32,
                        w,
                        WriteIdentity { pk: item.pk.clone(), sk: item.sk.clone(), chunk: ci as u32 },
                        (item, n_limits.len(), view.contributions.len()),
                    ))
                }
                Err(why) => {
                    for c in &view.contributions {
                        invalid.entry(c.rec.index).or_insert_with(|| why.clone());
                    }
                }
            }
        }
    }
    planned.sort_by_key(|(first, chunk, ..)| (*first, *chunk));
    let mut ids = Vec::with_capacity(planned.len());
    for (_, _, w, id, (item, n_limits, total_events)) in planned {
        counters.snapshot_writes += 1;
        Log::new(logs, LogLevel::Debug, "Snapshot planned")
            .s("entity_id", item.entity)
            .s("resource", item.resource)
            .s("window", item.window.name())
            .s("window_key", &item.key)
            .n("limits", n_limits)
            .n("total_events", total_events);
        writes.push(w);
        ids.push(id);
    }
    ids
}

/// Every counter of an item summed over all its contributions: the value the
/// item holds once every chunk is applied. An overflow or a sum beyond
/// DynamoDB's digits makes that counter's contributing records invalid.
fn item_totals(item: &Item) -> Result<(), Vec<(u32, String)>> {
    let mut sums: Vec<(&str, Option<i128>)> = Vec::new();
    for c in &item.contributions {
        match sums.iter_mut().find(|(n, _)| *n == c.limit) {
            Some((_, sum)) => *sum = sum.and_then(|s| s.checked_add(c.tokens)),
            None => sums.push((c.limit, Some(c.tokens))),
        }
    }
    let mut bad = Vec::new();
    for (limit, sum) in sums {
        let why = match sum {
            None => {
                format!("snapshot counter {limit} of {} {}: the sum of the batch's deltas overflows", item.pk, item.sk)
            }
            Some(s) => match limits::number(s) {
                Ok(()) => continue,
                Err(e) => format!("snapshot counter {limit} of {} {}: {e}", item.pk, item.sk),
            },
        };
        for c in item.contributions.iter().filter(|c| c.limit == limit) {
            bad.push((c.rec.index, why.clone()));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

/// The chunks of an item's sources: one chunk with every source (first-seen
/// order) when that write fits DynamoDB's limits; otherwise the sources sorted
/// by watermark name and packed greedily, each chunk as large as fits. Decided
/// from every contribution (kept or not), so a re-plan splits the item exactly
/// as the first plan did. `bool`: whether the chunk's sources are sorted.
fn chunks(item: &Item, table: &str, ttl: i128) -> Vec<(Vec<usize>, bool)> {
    let all: Vec<usize> = (0..item.sources.len()).collect();
    let fits = |sources: &[usize], sorted: bool| {
        let view = ChunkView::new(item, sources, sorted, false);
        item_write(item, &view, &Guard::Fresh, table, ttl).is_ok_and(|w| limits::check_write(&w).is_ok())
    };
    if fits(&all, false) {
        return vec![(all, false)];
    }
    let mut sorted = all;
    sorted.sort_by(|a, b| item.sources[*a].cmp(&item.sources[*b]));
    let mut out: Vec<(Vec<usize>, bool)> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for s in sorted {
        current.push(s);
        if current.len() > 1 && !fits(&current, true) {
            current.pop();
            out.push((std::mem::take(&mut current), true));
            current.push(s);
        }
    }
    if !current.is_empty() {
        out.push((current, true));
    }
    out
}

/// The contributions one write carries: those of a chunk's sources (only the
/// kept ones, or all of them when sizing chunks), in contribution order.
struct ChunkView<'v, 'c, 'a> {
    contributions: Vec<&'v Contribution<'c, 'a>>,
    /// Sources in watermark order (`#w{i}`).
    sources: Vec<usize>,
}

impl<'v, 'c, 'a> ChunkView<'v, 'c, 'a> {
    fn new(item: &'v Item<'c, 'a>, sources: &[usize], sorted: bool, kept_only: bool) -> Self {
        let mut member = vec![false; item.sources.len()];
        for &s in sources {
            member[s] = true;
        }
        let contributions: Vec<&Contribution> =
            item.contributions.iter().filter(|c| member[c.source] && (c.kept || !kept_only)).collect();
        let mut order: Vec<usize> = Vec::new();
        if sorted {
            order.extend(sources.iter().copied().filter(|&s| contributions.iter().any(|c| c.source == s)));
        } else {
            for c in &contributions {
                if !order.contains(&c.source) {
                    order.push(c.source);
                }
            }
        }
        ChunkView { contributions, sources: order }
    }
}

fn item_write(item: &Item, view: &ChunkView, guard: &Guard, table: &str, ttl: i128) -> Result<Write, String> {
    let mut limits: Vec<(&str, i128)> = Vec::new();
    // `{limit}#od` counts, in first-overdraw order.
    let mut overdraws: Vec<(String, i128)> = Vec::new();
    for c in view.contributions.iter().filter(|c| c.overdrawn) {
        let name = format!("{}#od", c.limit);
        match overdraws.iter_mut().find(|(n, _)| *n == name) {
            Some((_, n)) => *n += 1,
            None => overdraws.push((name, 1)),
        }
    }
    for c in &view.contributions {
        match limits.iter_mut().find(|(n, _)| *n == c.limit) {
            Some((_, sum)) => {
                *sum = sum.checked_add(c.tokens).ok_or_else(|| {
                    format!(
                        "snapshot counter {} of {} {}: the sum of the batch's deltas overflows",
                        c.limit, item.pk, item.sk
                    )
                })?
            }
            None => limits.push((c.limit, c.tokens)),
        }
    }
    let total_events = view.contributions.len();
    let mut records: Vec<u32> = view.contributions.iter().map(|c| c.rec.index).collect();
    records.sort_unstable();
    records.dedup();
    // Per source: lowest and highest sequence number it contributes.
    let bounds: Vec<(&str, &Seq, &Seq)> = view
        .sources
        .iter()
        .map(|&s| {
            let mut seqs = view.contributions.iter().filter(|c| c.source == s).map(|c| &c.rec.seq);
            let first = seqs.next().expect("a chunk's sources contribute");
            let (lo, hi) = seqs.fold((first, first), |(lo, hi), q| (lo.min(q), hi.max(q)));
            (item.sources[s].as_str(), lo, hi)
        })
        .collect();
    let mut names: Vec<ExpressionName> = Vec::new();
    let mut values: Vec<Attribute> = Vec::new();
    let mut name = |ph: String, n: &str| names.push(ExpressionName { placeholder: ph, name: n.to_string() });
    for (ph, n) in [
        ("#eid", "entity_id"),
        ("#res", "resource"),
        ("#win", "window"),
        ("#ws", "window_start"),
        ("#g2pk", "GSI2PK"),
        ("#g2sk", "GSI2SK"),
        ("#g4pk", "GSI4PK"),
        ("#g4sk", "GSI4SK"),
        ("#ttl", "ttl"),
        ("#te", "total_events"),
    ] {
        name(ph.to_string(), n);
    }
    for (i, (limit, _)) in limits.iter().enumerate() {
        name(format!("#l{i}"), limit);
    }
    for (i, (attr, _, _)) in bounds.iter().enumerate() {
        name(format!("#w{i}"), attr);
    }
    for (i, (counter, _)) in overdraws.iter().enumerate() {
        name(format!("#od{i}"), counter);
    }
    values.push(Attribute::s(":eid", item.entity));
    values.push(Attribute::s(":res", item.resource));
    values.push(Attribute::s(":win", item.window.name()));
    values.push(Attribute::s(":ws", &item.key));
    values.push(Attribute::s(":g2pk", &format!("{}/RESOURCE#{}", item.ns, item.resource)));
    values.push(Attribute::s(":g2sk", &format!("USAGE#{}#{}", item.key, item.entity)));
    values.push(Attribute::s(":g4pk", item.ns));
    values.push(Attribute::s(":g4sk", &entity_pk(item.ns, item.entity)));
    values.push(Attribute::n(":ttl", ttl));
    values.push(Attribute::n(":te", total_events));
    for (i, (_, sum)) in limits.iter().enumerate() {
        values.push(Attribute::n(format!(":l{i}"), sum));
    }
    for (i, (_, n)) in overdraws.iter().enumerate() {
        values.push(Attribute::n(format!(":od{i}"), n));
    }
    let mut set = String::from(
        "SET #eid = :eid, #res = if_not_exists(#res, :res), #win = if_not_exists(#win, :win), \
         #ws = if_not_exists(#ws, :ws), #g2pk = :g2pk, #g2sk = :g2sk, #g4pk = if_not_exists(#g4pk, :g4pk), \
         #g4sk = if_not_exists(#g4sk, :g4sk), #ttl = if_not_exists(#ttl, :ttl)",
    );
    let mut cond = Vec::new();
    for (i, (attr, first, last)) in bounds.iter().enumerate() {
        set.push_str(&format!(", #w{i} = :w{i}"));
        values.push(Attribute::s(format!(":w{i}"), last.padded()));
        match guard {
            Guard::Fresh => {
                cond.push(format!("(attribute_not_exists(#w{i}) OR #w{i} < :f{i})"));
                values.push(Attribute::s(format!(":f{i}"), first.padded()));
            }
            Guard::Observed(seen) => match seen.get(*attr).cloned().flatten() {
                Some(wm) => {
                    cond.push(format!("#w{i} = :o{i}"));
                    values.push(Attribute::s(format!(":o{i}"), wm.padded()));
                }
                None => cond.push(format!("attribute_not_exists(#w{i})")),
            },
        }
    }
    let mut expr = set;
    expr.push_str(" ADD ");
    for i in 0..limits.len() {
        expr.push_str(&format!("#l{i} :l{i}, "));
    }
    for i in 0..overdraws.len() {
        expr.push_str(&format!("#od{i} :od{i}, "));
    }
    expr.push_str("#te :te");
    let (entity, resource, window, key) = (item.entity, item.resource, item.window, &item.key);
    Ok(Write::new(
        Purpose::Snapshot,
        Operation::UpdateItem(UpdateItem {
            table_name: table.to_string(),
            key: vec![Attribute::s("PK", &item.pk), Attribute::s("SK", &item.sk)],
            update_expression: expr,
            condition_expression: Some(cond.join(" AND ")),
            names,
            values,
        }),
        OnConditionFailure::ResolveWatermarks,
        records,
    )
    // zae-limiter's own lines, one per limit (its writes were per delta):
    // dashboards match `Snapshot updated` and the fields of a failed write.
    .with_logs(|applied, failed| {
        for (limit, tokens) in &limits {
            Log::new(applied, LogLevel::Debug, "Snapshot updated")
                .s("entity_id", entity)
                .s("resource", resource)
                .s("limit_name", limit)
                .s("window", window.name())
                .s("window_key", key)
                .n("tokens_delta", tokens);
            Log::new(failed, LogLevel::Warning, "Error updating snapshot")
                .s("entity_id", entity)
                .s("resource", resource)
                .s("limit_name", limit)
                .s("window", window.name());
        }
    }))
}

/// Watermarks stored on an observed item: `wm#…` string attributes.
/// Errors name a malformed watermark (the table was written by something else).
pub fn observed_watermarks(
    item: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, Option<Seq>>, String> {
    let mut out = BTreeMap::new();
    for (name, av) in item {
        if !name.starts_with(WATERMARK_PREFIX) {
            continue;
        }
        let s = av.get("S").and_then(|v| v.as_str());
        match s.and_then(Seq::parse_padded) {
            Some(seq) => {
                out.insert(name.clone(), Some(seq));
            }
            None => return Err(format!("watermark {name} holds {av}, not a 40-digit sequence number")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_division_table_spec_3_5() {
        for (a, want) in [(5_000_000, 5000), (999, 0), (-1, -1), (-1500, -2), (-2_000_000, -2000)] {
            assert_eq!(floor_div(a, 1000), want, "{a}");
        }
    }

    #[test]
    fn sort_keys_separate_windows_w4() {
        assert_eq!(snapshot_sk("gpt-4", Window::Hourly, "2024-01-01T00:00:00Z"), "#USAGE#gpt-4#2024-01-01T00:00:00Z");
        assert_eq!(
            snapshot_sk("gpt-4", Window::Daily, "2024-01-01T00:00:00Z"),
            "#USAGE#gpt-4#2024-01-01T00:00:00Z#daily"
        );
        assert_eq!(
            snapshot_sk("gpt-4", Window::Monthly, "2024-01-01T00:00:00Z"),
            "#USAGE#gpt-4#2024-01-01T00:00:00Z#monthly"
        );
    }

    #[test]
    fn reserved_names() {
        for n in RESERVED {
            assert!(is_reserved(n));
        }
        assert!(is_reserved("wm#0"));
        assert!(!is_reserved("tpm"));
        assert!(!is_reserved("ttl2"));
    }
}
