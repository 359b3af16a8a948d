//! The zae-limiter 0.17 materialising pass (docs/specification.md#refill-017):
//! what the aggregator writes to a bucket item under the 0.17 semantics.
//!
//! One conditional UpdateItem per bucket item, as zae-limiter 0.17.0's
//! aggregator decides it: drip refills toward the schedule-effective ceiling
//! (`C // gc + tu` for a quota), the negative clamp of a balance above its
//! ceiling, calendar-quota reset edges (`prev reset edge > rf` sets the
//! balance to the effective capacity and re-grants `gc`), duration-window
//! rolls (`ws > wa`, to `eff_cp - max(0, tc - wtc)`), the deferred `wcu`
//! credit, `rf = max(now, rf, every window start in force)`, `wa` markers,
//! the `vu` re-stamp to the next schedule boundary, and the pins that keep
//! each of them exact under concurrent clients (`rf`, `vu`, the rolled `ws`,
//! `tk <= read` on every raise, `shard_count <= read` on a re-grant, `sched`
//! and `tk <= ceiling` on a re-stamp).
//!
//! Kept from our 0.13 planner where upstream still has the weakness: W10
//! (every dripping limit receives what it accrued when `rf` moves, not only
//! `wcu`), placeholders for every attribute name (W9), the latest image by
//! sequence number (W11/W17), the write addressed to the record's own item
//! (W20), and a bucket without `rf` left alone.

use std::collections::BTreeMap;

use crate::bucket::{BucketState, Limit, LimitExt};
use crate::plan::{
    Attribute, Counters, ExpressionName, Log, LogEntry, LogLevel, OnConditionFailure, Operation, Purpose, UpdateItem,
    Write,
};
use crate::refill::floor_div;
use crate::schedule::{self, Schedule};

/// `wcu`: the per-partition write-capacity limit every bucket carries.
use crate::quota::WCU_LIMIT_NAME as WCU;
/// `b_{name}_sched` / `b_{name}_rsched` value meaning "this limit has none".
use crate::schedule::BUCKET_SCHED_NONE as SCHED_NONE;

use crate::refill::refill_bucket_clamped as refill_bucket;

/// A number attribute of the 0.17 extension, parsed.
fn num(attr: &str, name: &str, text: &Option<String>) -> Result<Option<i128>, String> {
    match text {
        None => Ok(None),
        Some(t) => crate::event::parse_int(&format!("b_{name}_{attr}"), t).map(Some),
    }
}

/// One limit of a bucket item with its 0.17 attributes resolved.
#[derive(Debug, Clone)]
pub struct Resolved<'s> {
    /// The limit as folded (latest image values, summed `tc_delta`).
    pub limit: &'s Limit,
    /// Its parameter schedule (the item's default unless it has its own).
    pub sched: Schedule,
    /// Its reset schedule (the item's default unless it has its own; never for `wcu`).
    pub reset: Schedule,
    /// The raw `(sched, rsched)` texts the two came from, for de-duplication.
    pub raw: (Option<String>, Option<String>),
    /// `b_{name}_ws`.
    pub ws: Option<i128>,
    /// `b_{name}_rsa`.
    pub rsa: Option<i128>,
    /// `b_{name}_wa`.
    pub wa: Option<i128>,
    /// `b_{name}_wtc`.
    pub wtc: Option<i128>,
    /// `b_{name}_gc`.
    pub gc: Option<i128>,
    /// `b_{name}_tu`.
    pub tu: Option<i128>,
}

impl Resolved<'_> {
    /// `(ws, rsa)` when a duration window is in force on this limit: `rsa`
    /// set, no reset schedule beside it, never on `wcu`.
    pub fn window(&self) -> Option<(Option<i128>, i128)> {
        if self.limit.name == WCU || !self.reset.is_empty() {
            return None;
        }
        self.rsa.map(|rsa| (self.ws, rsa))
    }

    /// The window start this shard's balance reflects: `wa`, else `rf`.
    pub fn applied(&self, rf: i128) -> i128 {
        self.wa.unwrap_or(rf)
    }
}

/// The item-level schedules of a bucket item.
#[derive(Debug, Clone)]
pub struct ItemSchedules {
    /// `sched`, decoded.
    pub sched: Schedule,
    /// `sched` as stored (what a re-stamp pins).
    pub sched_raw: Option<String>,
    /// `rsched`, decoded.
    pub reset: Schedule,
    /// `rsched` as stored.
    pub reset_raw: Option<String>,
    /// `vu`.
    pub vu: Option<i128>,
}

/// Resolve the item's schedules and every limit's 0.17 attributes. `Err`
/// with the reason when a number is malformed; `Ok(Err(..))` when a stored
/// schedule cannot be decoded (the bucket is then left alone, as upstream
/// does, rather than refilled at its base rate).
#[allow(clippy::type_complexity)]
pub fn resolve<'s>(state: &'s BucketState) -> Result<Result<(ItemSchedules, Vec<Resolved<'s>>), String>, String> {
    let rec = state.latest;
    let ext = rec.ext.as_deref().cloned().unwrap_or_default();
    let tz = ext.sched_tz.clone().unwrap_or_else(|| "UTC".into());
    let vu = match &ext.vu {
        None => None,
        Some(t) => Some(crate::event::parse_int("vu", t)?),
    };
    let mut error = None;
    let decode = |raw: &Option<String>, reset: bool, what: &str, error: &mut Option<String>| -> Schedule {
        let Some(text) = raw.as_deref().filter(|t| !t.is_empty()) else { return Schedule::empty() };
        let decoded = if reset { schedule::decode_reset(text, &tz) } else { schedule::decode(text, &tz) };
        match decoded {
            Ok(s) => s,
            Err(e) => {
                error.get_or_insert_with(|| format!("{what} {text:?} ({tz}): {e}"));
                Schedule::empty()
            }
        }
    };
    let item = ItemSchedules {
        sched: decode(&ext.sched, false, "item schedule", &mut error),
        sched_raw: ext.sched.clone(),
        reset: decode(&ext.rsched, true, "item reset schedule", &mut error),
        reset_raw: ext.rsched.clone(),
        vu,
    };
    let empty = LimitExt::default();
    let mut out = Vec::with_capacity(state.limits.len());
    for l in &state.limits {
        let e = l.ext.as_deref().unwrap_or(&empty);
        let (sched, sched_raw) = match e.sched.as_deref() {
            Some(SCHED_NONE) => (Schedule::empty(), e.sched.clone()),
            Some(own) if !own.is_empty() && Some(own) != ext.sched.as_deref() => {
                (decode(&e.sched, false, &format!("{} schedule", l.name), &mut error), e.sched.clone())
            }
            _ => (item.sched.clone(), ext.sched.clone()),
        };
        let (reset, reset_raw) = if l.name == WCU {
            (Schedule::empty(), None)
        } else {
            match e.rsched.as_deref() {
                Some(SCHED_NONE) => (Schedule::empty(), e.rsched.clone()),
                Some(own) if !own.is_empty() && Some(own) != ext.rsched.as_deref() => {
                    (decode(&e.rsched, true, &format!("{} reset schedule", l.name), &mut error), e.rsched.clone())
                }
                _ => (item.reset.clone(), ext.rsched.clone()),
            }
        };
        out.push(Resolved {
            limit: l,
            sched,
            reset,
            raw: (sched_raw, reset_raw),
            ws: num("ws", &l.name, &e.ws)?,
            rsa: num("rsa", &l.name, &e.rsa)?,
            wa: num("wa", &l.name, &e.wa)?,
            wtc: num("wtc", &l.name, &e.wtc)?,
            gc: num("gc", &l.name, &e.gc)?,
            tu: num("tu", &l.name, &e.tu)?,
        });
    }
    Ok(match error {
        Some(e) => Err(e),
        None => Ok((item, out)),
    })
}

/// One term of the planned write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Delta {
    /// Reset edge or drip: ADD to `tk`.
    Refill,
    /// Window roll: ADD to `tk`, pinned on the rolled `ws`.
    Roll(i128),
}

/// One limit's part of the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Limit name.
    pub name: String,
    /// Millitokens to ADD (negative: a clamp or a reset down).
    pub delta: i128,
    /// `tk` as read, pinned (`tk <= read`) when the delta is a raise.
    pub read: i128,
    kind: Delta,
}

/// What the pass decided for one bucket item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No write: why.
    Skip(String),
    /// The write.
    Write(Box<Planned>),
}

/// A planned materialising write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// `tk` changes, in limit order (rolls, resets, clamps, drips, then the
    /// credits of limits that did not need one: W10 and the deferred `wcu`).
    pub terms: Vec<Term>,
    /// New `rf`.
    pub rf: i128,
    /// `rf` as read.
    pub rf_read: i128,
    /// `vu` as read.
    pub vu_read: Option<i128>,
    /// `(limit, ws)` window-applied markers to stamp.
    pub marks: Vec<(String, i128)>,
    /// Quotas re-granted (`gc = shard_count`), pinned on `shard_count <= read`.
    pub granted: Vec<String>,
    /// The shard count read.
    pub shard_count: i128,
    /// Quotas whose top-up the re-grant removes.
    pub remove_tu: Vec<String>,
    /// The `vu` re-stamp, when due.
    pub restamp: Option<Restamp>,
}

/// A `vu` re-stamp and what it is pinned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restamp {
    /// The new `vu`: the next boundary.
    pub vu: i128,
    /// The stored `sched` the boundary was computed from (`None`: absent).
    pub sched: Option<String>,
    /// `(limit, ceiling)` of each limit the pass leaves unclamped: each must
    /// still be within its ceiling.
    pub ceilings: Vec<(String, i128)>,
}

fn overflow(name: &str) -> String {
    format!("limit {name}: refill arithmetic overflows")
}

/// Decide the materialising pass for one bucket item at `now_ms`. `Err` is
/// a record problem (malformed numbers, overflow): its records are invalid.
pub fn decide(state: &BucketState, now_ms: i64) -> Result<Decision, String> {
    let rec = state.latest;
    let Some(rf) = rec.rf_ms else {
        return Ok(Decision::Skip("Refill skipped - bucket has no rf".into()));
    };
    let (item, limits) = match resolve(state)? {
        Ok(r) => r,
        Err(why) => {
            return Ok(Decision::Skip(format!("Undecodable stored schedule - skipping refill for this bucket: {why}")))
        }
    };
    if limits.is_empty() {
        return Ok(Decision::Skip("Refill skipped - sufficient tokens".into()));
    }
    let now = now_ms as i128;
    let sc = rec.shard_count;
    // An unapplied window that has already ended: the client opens the next
    // one; restoring the dead one would grant two allowances in one span.
    for r in &limits {
        if let Some((Some(ws), rsa)) = r.window() {
            let end = ws.checked_add(rsa.checked_mul(1000).ok_or_else(|| overflow(&r.limit.name))?);
            if ws > r.applied(rf) && end.is_some_and(|e| e <= now) {
                return Ok(Decision::Skip("Refill skipped - an unapplied duration window has already ended".into()));
            }
        }
    }
    let mut terms: Vec<Term> = Vec::new();
    let mut credits: Vec<Term> = Vec::new();
    let mut needed = false;
    let mut granted = Vec::new();
    let mut unclamped: Vec<(String, i128)> = Vec::new();
    let mut over_ceiling = false;
    for r in &limits {
        let l = r.limit;
        let name = &l.name;
        let (eff_cp, ceiling, eff_ra, eff_rp) = if *name == WCU {
            (l.cp, l.cp, l.ra, l.rp)
        } else {
            let (scp, sra, srp) = schedule::effective_params(l.cp, l.ra, l.rp, &r.sched, now_ms)
                .map_err(|e| format!("limit {name}: {e}"))?;
            let eff_cp = floor_div(scp, sc).ok_or_else(|| overflow(name))?;
            let eff_ra = floor_div(sra, sc).ok_or_else(|| overflow(name))?;
            let is_quota = !r.reset.is_empty() || r.rsa.is_some();
            let grant = match r.gc {
                Some(g) if is_quota && g >= 1 => g,
                _ => sc,
            };
            let mut ceiling = floor_div(scp, grant).ok_or_else(|| overflow(name))?;
            if is_quota {
                if let Some(tu) = r.tu.filter(|t| *t != 0) {
                    ceiling = ceiling.checked_add(tu).ok_or_else(|| overflow(name))?;
                }
            }
            (eff_cp, ceiling, eff_ra, srp)
        };
        if let Some((Some(ws), _)) = r.window() {
            if ws > r.applied(rf) {
                let mut target = eff_cp;
                if let Some(wtc) = r.wtc {
                    let spent = l.tc.checked_sub(wtc).ok_or_else(|| overflow(name))?.max(0);
                    target = target.checked_sub(spent).ok_or_else(|| overflow(name))?;
                }
                let delta = target.checked_sub(l.tk).ok_or_else(|| overflow(name))?;
                granted.push(name.clone());
                if delta != 0 {
                    needed = true;
                    terms.push(Term { name: name.clone(), delta, read: l.tk, kind: Delta::Roll(ws) });
                }
                continue;
            }
        }
        if !r.reset.is_empty() {
            if let Some(edge) = schedule::prev_reset_edge(&r.reset, now_ms).map_err(|e| format!("limit {name}: {e}"))? {
                if edge as i128 > rf {
                    let delta = eff_cp.checked_sub(l.tk).ok_or_else(|| overflow(name))?;
                    granted.push(name.clone());
                    if delta != 0 {
                        needed = true;
                        terms.push(Term { name: name.clone(), delta, read: l.tk, kind: Delta::Refill });
                    }
                    continue;
                }
            }
        }
        if l.rp <= 0 || l.ra <= 0 {
            unclamped.push((name.clone(), ceiling));
            over_ceiling |= l.tk > ceiling;
            continue;
        }
        let new_tk = refill_bucket(l.tk, rf, now, ceiling, eff_ra, eff_rp).ok_or_else(|| overflow(name))?;
        let delta = new_tk.checked_sub(l.tk).ok_or_else(|| overflow(name))?;
        if delta == 0 {
            continue;
        }
        if delta > 0 && new_tk >= l.tc_delta.max(0) {
            // Not needed: credited only if the write happens (the deferred
            // `wcu` credit, and W10 for every other dripping limit).
            credits.push(Term { name: name.clone(), delta, read: l.tk, kind: Delta::Refill });
            continue;
        }
        needed = true;
        terms.push(Term { name: name.clone(), delta, read: l.tk, kind: Delta::Refill });
    }
    if !needed {
        return Ok(Decision::Skip("Refill skipped - sufficient tokens".into()));
    }
    terms.extend(credits);
    // Limits of the latest image without a consumption counter in both
    // images accrue too (W10), toward the same schedule-free per-shard cap
    // the 0.13 planner uses, and only when they drip.
    for l in crate::refill::accrual_only(state) {
        if l.rp <= 0 || l.ra <= 0 || l.name == WCU {
            continue;
        }
        let (Some(cap), Some(amt)) = (floor_div(l.cp, sc), floor_div(l.ra, sc)) else { continue };
        if l.ext.as_deref().is_some_and(|e| e.sched.is_some() || e.rsched.is_some() || e.rsa.is_some())
            || item.sched_raw.is_some()
            || item.reset_raw.is_some()
        {
            // A scheduled or resetting limit needs its schedule: left to
            // the client, as upstream leaves every such limit.
            continue;
        }
        let Some(new_tk) = refill_bucket(l.tk, rf, now, cap, amt, l.rp) else { continue };
        let Some(delta) = new_tk.checked_sub(l.tk) else { continue };
        if delta > 0 {
            terms.push(Term { name: l.name.clone(), delta, read: l.tk, kind: Delta::Refill });
        }
    }
    let windows: Vec<(String, Option<i128>)> =
        limits.iter().filter_map(|r| r.window().map(|(ws, _)| (r.limit.name.clone(), ws))).collect();
    let new_rf = windows.iter().filter_map(|(_, ws)| *ws).fold(now.max(rf), i128::max);
    let mut marks: Vec<(String, i128)> = limits
        .iter()
        .filter_map(|r| match r.window() {
            Some((Some(ws), _)) if r.wa != Some(ws) => Some((r.limit.name.clone(), ws)),
            _ => None,
        })
        .collect();
    marks.sort();
    let remove_tu: Vec<String> =
        granted.iter().filter(|n| limits.iter().any(|r| &r.limit.name == *n && r.tu.is_some())).cloned().collect();
    let mut restamp = None;
    if let Some(vu) = item.vu {
        if vu <= now && !over_ceiling {
            if let Some(boundary) = next_boundary(&item, &limits, now_ms)? {
                if boundary as i128 > now {
                    restamp = Some(Restamp {
                        vu: boundary as i128,
                        sched: item.sched_raw.clone(),
                        ceilings: unclamped.clone(),
                    });
                }
            }
        }
    }
    Ok(Decision::Write(Box::new(Planned {
        terms,
        rf: new_rf,
        rf_read: rf,
        vu_read: item.vu,
        marks,
        granted,
        shard_count: sc,
        remove_tu,
        restamp,
    })))
}

/// The earliest instant after `now_ms` at which anything scheduled on the
/// item changes: every distinct (parameter, reset) schedule pair, the item's
/// own included, and the end of every duration window in force (`now` for
/// a window not yet anchored). `None` when nothing on the item is scheduled.
fn next_boundary(item: &ItemSchedules, limits: &[Resolved], now_ms: i64) -> Result<Option<i64>, String> {
    let mut seen: Vec<(&Option<String>, &Option<String>)> = Vec::new();
    let mut out: Option<i64> = None;
    let mut vote = |b: i64| out = Some(out.map_or(b, |o| o.min(b)));
    let item_pair = (&item.sched_raw, &item.reset_raw);
    let pairs = std::iter::once((item_pair, &item.sched, &item.reset))
        .chain(limits.iter().map(|r| ((&r.raw.0, &r.raw.1), &r.sched, &r.reset)));
    for (raw, sched, reset) in pairs {
        if seen.contains(&raw) {
            continue;
        }
        seen.push(raw);
        if sched.is_empty() && reset.is_empty() {
            continue;
        }
        if let Some(b) = schedule::next_boundary(sched, reset, now_ms).map_err(|e| e.to_string())? {
            vote(b);
        }
    }
    for r in limits {
        if let Some((ws, rsa)) = r.window() {
            let end = match ws {
                None => now_ms as i128,
                Some(ws) => rsa.checked_mul(1000).and_then(|d| ws.checked_add(d)).ok_or_else(|| overflow("window"))?,
            };
            vote(i64::try_from(end).unwrap_or(if end < 0 { i64::MIN } else { i64::MAX }));
        }
    }
    Ok(out)
}

/// The UpdateItem of a planned write (placeholders only, W9).
pub fn update(state: &BucketState, table: &str, p: &Planned) -> UpdateItem {
    let rec = state.latest;
    let mut names = vec![
        ExpressionName { placeholder: "#rf".into(), name: "rf".into() },
        ExpressionName { placeholder: "#vu".into(), name: "vu".into() },
    ];
    let mut values = vec![Attribute::n(":rf_new", p.rf), Attribute::n(":rf_old", p.rf_read)];
    let mut sets = vec!["#rf = :rf_new".to_string()];
    let mut adds = Vec::new();
    let mut cond = vec!["#rf = :rf_old".to_string()];
    match p.vu_read {
        None => cond.push("attribute_not_exists(#vu)".into()),
        Some(vu) => {
            cond.push("#vu = :vu_old".into());
            values.push(Attribute::n(":vu_old", vu));
        }
    }
    for (i, t) in p.terms.iter().enumerate() {
        names.push(ExpressionName { placeholder: format!("#k{i}"), name: format!("b_{}_tk", t.name) });
        values.push(Attribute::n(format!(":d{i}"), t.delta));
        adds.push(format!("#k{i} :d{i}"));
        if let Delta::Roll(ws) = t.kind {
            names.push(ExpressionName { placeholder: format!("#w{i}"), name: format!("b_{}_ws", t.name) });
            values.push(Attribute::n(format!(":w{i}"), ws));
            cond.push(format!("#w{i} = :w{i}"));
        }
        if t.delta > 0 {
            values.push(Attribute::n(format!(":r{i}"), t.read));
            cond.push(format!("#k{i} <= :r{i}"));
        }
    }
    for (i, (name, ws)) in p.marks.iter().enumerate() {
        names.push(ExpressionName { placeholder: format!("#a{i}"), name: format!("b_{name}_wa") });
        values.push(Attribute::n(format!(":a{i}"), ws));
        sets.push(format!("#a{i} = :a{i}"));
    }
    for (i, name) in p.granted.iter().enumerate() {
        names.push(ExpressionName { placeholder: format!("#g{i}"), name: format!("b_{name}_gc") });
        values.push(Attribute::n(format!(":g{i}"), p.shard_count));
        sets.push(format!("#g{i} = :g{i}"));
    }
    if !p.granted.is_empty() {
        names.push(ExpressionName { placeholder: "#sc".into(), name: "shard_count".into() });
        values.push(Attribute::n(":sc", p.shard_count));
        cond.push("(attribute_not_exists(#sc) OR #sc <= :sc)".into());
    }
    let mut removes = Vec::new();
    for (i, name) in p.remove_tu.iter().enumerate() {
        names.push(ExpressionName { placeholder: format!("#t{i}"), name: format!("b_{name}_tu") });
        removes.push(format!("#t{i}"));
    }
    if let Some(Restamp { vu, sched, ceilings }) = &p.restamp {
        sets.push("#vu = :vu_new".into());
        values.push(Attribute::n(":vu_new", vu));
        names.push(ExpressionName { placeholder: "#sched".into(), name: "sched".into() });
        match sched {
            None => cond.push("attribute_not_exists(#sched)".into()),
            Some(s) => {
                cond.push("#sched = :sched".into());
                values.push(Attribute::s(":sched", s));
            }
        }
        for (i, (name, ceiling)) in ceilings.iter().enumerate() {
            names.push(ExpressionName { placeholder: format!("#q{i}"), name: format!("b_{name}_tk") });
            values.push(Attribute::n(format!(":q{i}"), ceiling));
            cond.push(format!("#q{i} <= :q{i}"));
        }
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if !adds.is_empty() {
        expression.push_str(&format!(" ADD {}", adds.join(", ")));
    }
    if !removes.is_empty() {
        expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    UpdateItem {
        table_name: table.to_string(),
        key: vec![Attribute::s("PK", &rec.pk), Attribute::s("SK", &rec.sk)],
        update_expression: expression,
        condition_expression: Some(cond.join(" AND ")),
        names,
        values,
    }
}

/// Plan the materialising pass for every bucket state (the 0.17 semantics'
/// refill stage). A state whose numbers are malformed or overflow gets no
/// write; its records are added to `invalid`.
pub fn plan(
    states: &[BucketState],
    table: &str,
    now_ms: i64,
    writes: &mut Vec<Write>,
    logs: &mut Vec<LogEntry>,
    counters: &mut Counters,
    invalid: &mut BTreeMap<u32, String>,
) {
    for state in states {
        let rec = state.latest;
        match decide(state, now_ms) {
            Ok(Decision::Skip(why)) => {
                let level = if why.starts_with("Undecodable") { LogLevel::Warning } else { LogLevel::Debug };
                Log::new(logs, level, why).s("entity_id", &rec.entity).s("resource", &rec.resource);
            }
            Err(why) => {
                Log::new(logs, LogLevel::Error, format!("Error refilling bucket: {why}"))
                    .s("entity_id", &rec.entity)
                    .s("resource", &rec.resource);
                for &i in &state.records {
                    invalid.entry(i).or_insert_with(|| format!("refill of {} {}: {why}", rec.pk, rec.sk));
                }
            }
            Ok(Decision::Write(p)) => {
                let refilled: Vec<&str> =
                    p.terms.iter().filter(|t| t.kind == Delta::Refill).map(|t| t.name.as_str()).collect();
                let rolled: Vec<&str> =
                    p.terms.iter().filter(|t| matches!(t.kind, Delta::Roll(_))).map(|t| t.name.as_str()).collect();
                writes.push(
                    Write::new(
                        Purpose::Refill,
                        Operation::UpdateItem(update(state, table, &p)),
                        OnConditionFailure::Ignore,
                        state.records.clone(),
                    )
                    .with_logs(|applied, failed| {
                        Log::new(applied, LogLevel::Debug, "Bucket refilled")
                            .s("entity_id", &rec.entity)
                            .s("resource", &rec.resource)
                            .list("limits_refilled", &refilled)
                            .list("windows_rolled", &rolled);
                        Log::new(failed, LogLevel::Warning, "Error refilling bucket")
                            .s("entity_id", &rec.entity)
                            .s("resource", &rec.resource);
                    }),
                );
                counters.refill_writes += 1;
                Log::new(logs, LogLevel::Debug, "Bucket refill planned")
                    .s("entity_id", &rec.entity)
                    .s("resource", &rec.resource)
                    .list("limits_refilled", &refilled)
                    .list("windows_rolled", &rolled);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    /// 2026-02-01T00:00:30Z.
    const NOW: i64 = 1_769_904_030_000;
    /// 2026-01-31T23:59:00Z.
    const BEFORE_MIDNIGHT: i64 = 1_769_903_940_000;

    /// One limit of a test record: `(name, old_tc, new_tc, tk, cp, ra, rp, extra)`.
    type TestLimit<'a> = (&'a str, i64, i64, i64, i64, i64, i64, &'a [(&'a str, Value)]);

    /// A bucket MODIFY record of shard 0 with `item` attributes and `limits`.
    fn record(seq: u64, item: &[(&str, Value)], limits: &[TestLimit]) -> Value {
        let mut new = Map::new();
        let mut old = Map::new();
        new.insert("PK".into(), json!({"S": "ns/BUCKET#e#r#0"}));
        new.insert("SK".into(), json!({"S": "#STATE"}));
        new.insert("entity_id".into(), json!({"S": "e"}));
        for (k, v) in item {
            new.insert((*k).into(), v.clone());
        }
        for &(n, otc, ntc, tk, cp, ra, rp, extra) in limits {
            for (f, v) in [("tc", ntc), ("tk", tk), ("cp", cp), ("ra", ra), ("rp", rp)] {
                new.insert(format!("b_{n}_{f}"), json!({"N": v.to_string()}));
            }
            for (f, v) in extra {
                new.insert(format!("b_{n}_{f}"), v.clone());
            }
            old.insert(format!("b_{n}_tc"), json!({"N": otc.to_string()}));
        }
        json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": seq.to_string(), "NewImage": new, "OldImage": old}})
    }

    fn n(v: i64) -> Value {
        json!({"N": v.to_string()})
    }

    fn s(v: &str) -> Value {
        json!({"S": v})
    }

    fn decide_one(rec: Value, now: i64) -> Result<Decision, String> {
        let event = json!({"Records": [rec]}).to_string();
        let records = crate::bucket::bucket_records(&event).unwrap();
        let refs: Vec<&crate::bucket::BucketRecord> = records.iter().map(|b| &**b).collect();
        let states = crate::bucket::aggregate(&refs);
        decide(&states[0], now)
    }

    fn planned(rec: Value, now: i64) -> Planned {
        match decide_one(rec, now).unwrap() {
            Decision::Write(p) => *p,
            Decision::Skip(why) => panic!("skipped: {why}"),
        }
    }

    fn term<'p>(p: &'p Planned, name: &str) -> &'p Term {
        p.terms.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no term for {name}: {p:?}"))
    }

    #[test]
    fn a_crossed_reset_edge_resets_the_quota_and_regrants_it() {
        // A daily quota of 100 tokens reset at UTC midnight, on 2 shards:
        // rf before midnight, now after it.
        let p = planned(
            record(
                1,
                &[("rf", n(BEFORE_MIDNIGHT)), ("shard_count", n(2)), ("rsched", s("1m0h0"))],
                &[("rpd", 0, 5_000, 7_000, 100_000, 0, 1_000, &[("gc", n(2)), ("tu", n(4_000))])],
            ),
            NOW,
        );
        let t = term(&p, "rpd");
        assert_eq!((t.delta, t.read), (50_000 - 7_000, 7_000), "back to cp // shard_count");
        assert_eq!(p.granted, vec!["rpd".to_string()]);
        assert_eq!(p.remove_tu, vec!["rpd".to_string()], "a reset ends the top-up's period");
        assert_eq!((p.rf, p.rf_read, p.shard_count), (NOW as i128, BEFORE_MIDNIGHT as i128, 2));
        // Not crossed: rf already past the edge. A quota does not drip.
        let skip = decide_one(
            record(
                1,
                &[("rf", n(NOW - 10_000)), ("rsched", s("1m0h0"))],
                &[("rpd", 0, 5_000, 7_000, 100_000, 0, 1_000, &[])],
            ),
            NOW,
        )
        .unwrap();
        assert_eq!(skip, Decision::Skip("Refill skipped - sufficient tokens".into()));
    }

    #[test]
    fn the_written_request_pins_what_the_decision_read() {
        let rec = record(
            1,
            &[("rf", n(BEFORE_MIDNIGHT)), ("shard_count", n(2)), ("rsched", s("1m0h0")), ("vu", n(0))],
            &[("rpd", 0, 5_000, 7_000, 100_000, 0, 1_000, &[("tu", n(4_000))])],
        );
        let event = json!({"Records": [rec]}).to_string();
        let records = crate::bucket::bucket_records(&event).unwrap();
        let refs: Vec<&crate::bucket::BucketRecord> = records.iter().map(|b| &**b).collect();
        let states = crate::bucket::aggregate(&refs);
        let Decision::Write(p) = decide(&states[0], NOW).unwrap() else { panic!() };
        let u = update(&states[0], "t", &p);
        assert_eq!(u.update_expression, "SET #rf = :rf_new, #g0 = :g0, #vu = :vu_new ADD #k0 :d0 REMOVE #t0", "{u:?}");
        let cond = u.condition_expression.unwrap();
        for part in [
            "#rf = :rf_old",
            "#vu = :vu_old",
            "#k0 <= :r0",
            "(attribute_not_exists(#sc) OR #sc <= :sc)",
            "attribute_not_exists(#sched)",
        ] {
            assert!(cond.contains(part), "{part} missing from {cond}");
        }
        let value = |ph: &str| u.values.iter().find(|a| a.name == ph).map(|a| a.value.clone()).unwrap();
        assert_eq!(value(":vu_new"), "{\"N\":\"1769990400000\"}", "the next reset edge: 2026-02-02T00:00Z");
        assert_eq!(value(":r0"), "{\"N\":\"7000\"}");
    }

    #[test]
    fn a_window_fanned_out_but_not_applied_rolls_to_the_share_less_what_was_spent() {
        let ws = NOW - 20_000;
        let p = planned(
            record(
                1,
                &[("rf", n(NOW - 60_000)), ("shard_count", n(1))],
                &[(
                    "ses",
                    0,
                    12_000,
                    -3_000,
                    50_000,
                    0,
                    1_000,
                    &[("ws", n(ws)), ("rsa", n(75)), ("wa", n(NOW - 100_000)), ("wtc", n(9_000))],
                )],
            ),
            NOW,
        );
        let t = term(&p, "ses");
        assert_eq!(t.delta, (50_000 - 3_000) - (-3_000), "target = share - (tc - wtc)");
        assert_eq!(t.kind, Delta::Roll(ws as i128));
        assert_eq!(p.marks, vec![("ses".to_string(), ws as i128)]);
        assert_eq!(p.rf, NOW as i128, "max(now, rf, ws)");
        // The same window, already over by now: nothing is written.
        let ended = decide_one(
            record(
                1,
                &[("rf", n(NOW - 200_000))],
                &[(
                    "ses",
                    0,
                    1,
                    0,
                    50_000,
                    0,
                    1_000,
                    &[("ws", n(NOW - 100_000)), ("rsa", n(60)), ("wa", n(NOW - 300_000))],
                )],
            ),
            NOW,
        )
        .unwrap();
        assert_eq!(ended, Decision::Skip("Refill skipped - an unapplied duration window has already ended".into()));
    }

    #[test]
    fn a_shrunk_limit_is_clamped_and_wcu_gets_its_deferred_credit() {
        let rf = NOW - 1_000;
        let p = planned(
            record(
                1,
                &[("rf", n(rf)), ("shard_count", n(1))],
                &[
                    ("rpm", 0, 1_000, 90_000, 60_000, 60_000, 60_000, &[]),
                    ("wcu", 0, 1_000, 500_000, 1_000_000, 1_000_000, 1_000, &[]),
                ],
            ),
            NOW,
        );
        let rpm = term(&p, "rpm");
        assert_eq!(rpm.delta, -30_000, "clamped down to the capacity");
        let wcu = term(&p, "wcu");
        assert_eq!(wcu.delta, 500_000, "wcu's accrual from rf, credited because rf moves");
        assert_eq!(wcu.read, 500_000, "and pinned on tk <= read");
    }

    #[test]
    fn a_schedule_scales_the_ceiling_and_an_undecodable_one_leaves_the_bucket_alone() {
        // x0.5 all day: the ceiling of a 100-token limit is 50 tokens.
        let p = planned(
            record(
                1,
                &[("rf", n(NOW - 60_000)), ("sched", s("1s500"))],
                &[("rpm", 0, 60_000, 10_000, 100_000, 100_000, 60_000, &[])],
            ),
            NOW,
        );
        assert_eq!(term(&p, "rpm").delta, 40_000, "10 + 50 accrued, capped at 50");
        let skip = decide_one(
            record(
                1,
                &[("rf", n(NOW - 60_000)), ("sched", s("9zz"))],
                &[("rpm", 0, 40_000, 10_000, 100_000, 100_000, 60_000, &[])],
            ),
            NOW,
        )
        .unwrap();
        let Decision::Skip(why) = skip else { panic!("{skip:?}") };
        assert!(why.starts_with("Undecodable stored schedule"), "{why}");
    }

    #[test]
    fn malformed_017_numbers_are_a_record_problem() {
        let e = decide_one(
            record(1, &[("rf", n(NOW - 60_000))], &[("ses", 0, 1, 0, 1, 0, 1, &[("rsa", s("x")), ("ws", n(1))])]),
            NOW,
        );
        assert!(e.is_ok(), "an S where a number belongs reads as absent, as upstream reads it");
        let e = decide_one(
            record(1, &[("rf", n(NOW - 60_000))], &[("ses", 0, 1, 0, 1, 0, 1, &[("rsa", json!({"N": "1.5"}))])]),
            NOW,
        );
        assert!(e.unwrap_err().contains("b_ses_rsa"));
    }
}
