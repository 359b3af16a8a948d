//! Proactive refill (docs/specification.md#refill) with integer millitoken math.
//!
//! Kept from upstream: the trigger (a limit whose projected tokens after lazy
//! refill do not cover the batch's consumption), per-shard division of `cp` and
//! `ra`, `rf = now` and the optimistic lock on `rf`.
//! Fixed: W9 (placeholders only), W10 (when `rf` moves, every limit receives the
//! refill it accrued, capped), W19 (each ADD is guarded so the stored balance
//! cannot pass the effective capacity), W20 (the write addresses the item the
//! record came from), W11/W17 (latest image by sequence number), W8 (runs on
//! every batch). A bucket without `rf` is not refilled (its lock cannot hold).

use std::collections::BTreeMap;

use crate::bucket::{BucketState, Limit};
use crate::plan::{
    Attribute, Counters, ExpressionName, Log, LogEntry, LogLevel, OnConditionFailure, Operation, Purpose, UpdateItem,
    Write,
};

/// Python `//` on i128; `None` on a zero divisor or overflow.
pub fn floor_div(a: i128, b: i128) -> Option<i128> {
    if b == 0 {
        return None;
    }
    let q = a.checked_div(b)?;
    if (a % b != 0) && ((a < 0) != (b < 0)) {
        q.checked_sub(1)
    } else {
        Some(q)
    }
}

/// `bucket.refill_bucket`: returns `(new_tk, new_last_ms)`; `None` on overflow
/// or a zero amount/period.
pub fn refill_bucket(
    tk: i128,
    last_ms: i128,
    now_ms: i128,
    cap: i128,
    amt: i128,
    period: i128,
) -> Option<(i128, i128)> {
    let elapsed = now_ms.checked_sub(last_ms)?;
    if elapsed <= 0 {
        return Some((tk, last_ms));
    }
    let add = floor_div(elapsed.checked_mul(amt)?, period)?;
    if add == 0 {
        return Some((tk, last_ms));
    }
    let used = floor_div(add.checked_mul(period)?, amt)?;
    Some((cap.min(tk.checked_add(add)?), last_ms.checked_add(used)?))
}

/// zae-limiter 0.17's `refill_bucket`: like [`refill_bucket`], but the
/// balance is always capped at the capacity, on the paths that add nothing
/// too (its negative clamp), and only the balance is returned. `None` on
/// overflow or a zero period.
pub fn refill_bucket_clamped(
    tk: i128,
    last_ms: i128,
    now_ms: i128,
    cap: i128,
    amt: i128,
    period: i128,
) -> Option<i128> {
    let elapsed = now_ms.checked_sub(last_ms)?;
    if elapsed <= 0 {
        return Some(cap.min(tk));
    }
    let add = floor_div(elapsed.checked_mul(amt)?, period)?;
    if add == 0 {
        return Some(cap.min(tk));
    }
    Some(cap.min(tk.checked_add(add)?))
}

/// One limit's refill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRefill {
    /// Limit name.
    pub name: String,
    /// Millitokens to add.
    pub delta: i128,
    /// Effective (per-shard) capacity.
    pub cap: i128,
    /// The guard `cap - delta`: the stored balance may not exceed it before
    /// the ADD (W19).
    pub guard: i128,
    /// Whether this limit alone would have triggered the refill.
    pub needed: bool,
}

/// The refill decision for one bucket state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No write: the reason.
    Skip(&'static str),
    /// Write these refills.
    Refill(Vec<LimitRefill>),
    /// Arithmetic overflow on some limit.
    Overflow(String),
}

/// Limits of the latest image (found through `b_{name}_cp`) that the state does
/// not hold, with their stored numbers: they never trigger a refill, but
/// receive what they accrued when `rf` moves (W10).
pub fn accrual_only<'s>(state: &'s BucketState) -> impl Iterator<Item = &'s Limit> {
    state.latest.other_limits.iter().filter(move |o| !state.limits.iter().any(|l| l.name == o.name))
}

/// Decide for one bucket state at `now_ms`.
pub fn decide(state: &BucketState, now_ms: i64) -> Decision {
    let Some(rf) = state.latest.rf_ms else {
        return Decision::Skip("Refill skipped - bucket has no rf");
    };
    let sc = state.latest.shard_count;
    let mut out = Vec::new();
    // Limits without a consumption counter in both images never trigger a
    // refill, but still receive what they accrued when `rf` moves (W10).
    for (l, can_trigger) in state.limits.iter().map(|l| (l, true)).chain(accrual_only(state).map(|l| (l, false))) {
        if l.rp <= 0 || l.ra <= 0 {
            continue;
        }
        let (Some(cap), Some(amt)) = (floor_div(l.cp, sc), floor_div(l.ra, sc)) else {
            return Decision::Overflow(format!("limit {}: shard division failed", l.name));
        };
        let Some((new_tk, _)) = refill_bucket(l.tk, rf, now_ms as i128, cap, amt, l.rp) else {
            return Decision::Overflow(format!("limit {}: refill arithmetic overflows", l.name));
        };
        let Some(delta) = new_tk.checked_sub(l.tk) else {
            return Decision::Overflow(format!("limit {}: refill arithmetic overflows", l.name));
        };
        if delta <= 0 {
            continue;
        }
        let Some(guard) = cap.checked_sub(delta) else {
            return Decision::Overflow(format!("limit {}: refill arithmetic overflows", l.name));
        };
        let estimate = l.tc_delta.max(0);
        out.push(LimitRefill { name: l.name.clone(), delta, cap, guard, needed: can_trigger && new_tk < estimate });
    }
    if out.iter().any(|l| l.needed) {
        Decision::Refill(out)
    } else {
        Decision::Skip("Refill skipped - sufficient tokens")
    }
}

/// Plan refills for every bucket state. A state whose refill arithmetic
/// overflows gets no write; its records are added to `invalid`
/// (docs/specification.md#dynamodb-limits).
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
            Decision::Skip(why) => {
                Log::new(logs, LogLevel::Debug, why).s("entity_id", &rec.entity).s("resource", &rec.resource);
            }
            Decision::Overflow(why) => {
                Log::new(logs, LogLevel::Error, format!("Error refilling bucket: {why}"))
                    .s("entity_id", &rec.entity)
                    .s("resource", &rec.resource);
                for &i in &state.records {
                    invalid.entry(i).or_insert_with(|| format!("refill of {} {}: {why}", rec.pk, rec.sk));
                }
            }
            Decision::Refill(limits) => {
                let rf_old = rec.rf_ms.unwrap_or(0);
                let mut names = vec![ExpressionName { placeholder: "#rf".into(), name: "rf".into() }];
                let mut values = Vec::new();
                let mut adds = Vec::new();
                let mut cond = vec!["#rf = :rf_old".to_string()];
                for (i, l) in limits.iter().enumerate() {
                    names.push(ExpressionName { placeholder: format!("#k{i}"), name: format!("b_{}_tk", l.name) });
                    values.push(Attribute::n(format!(":d{i}"), l.delta));
                    values.push(Attribute::n(format!(":c{i}"), l.guard));
                    adds.push(format!("#k{i} :d{i}"));
                    cond.push(format!("#k{i} <= :c{i}"));
                }
                values.push(Attribute::n(":rf_new", now_ms));
                values.push(Attribute::n(":rf_old", rf_old));
                writes.push(
                    Write::new(
                        Purpose::Refill,
                        Operation::UpdateItem(UpdateItem {
                            table_name: table.to_string(),
                            key: vec![Attribute::s("PK", &rec.pk), Attribute::s("SK", &rec.sk)],
                            update_expression: format!("SET #rf = :rf_new ADD {}", adds.join(", ")),
                            condition_expression: Some(cond.join(" AND ")),
                            names,
                            values,
                        }),
                        OnConditionFailure::Ignore,
                        state.records.clone(),
                    )
                    .with_logs(|applied, failed| {
                        let names: Vec<&str> = limits.iter().map(|l| l.name.as_str()).collect();
                        Log::new(applied, LogLevel::Debug, "Bucket refilled")
                            .s("entity_id", &rec.entity)
                            .s("resource", &rec.resource)
                            .list("limits_refilled", &names);
                        Log::new(failed, LogLevel::Warning, "Error refilling bucket")
                            .s("entity_id", &rec.entity)
                            .s("resource", &rec.resource);
                    }),
                );
                counters.refill_writes += 1;
                let names: Vec<&str> = limits.iter().map(|l| l.name.as_str()).collect();
                Log::new(logs, LogLevel::Debug, "Bucket refill planned")
                    .s("entity_id", &rec.entity)
                    .s("resource", &rec.resource)
                    .list("limits_refilled", &names);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_floor_division() {
        assert_eq!(floor_div(-1500, 1000), Some(-2));
        assert_eq!(floor_div(-1, 1000), Some(-1));
        assert_eq!(floor_div(999, 1000), Some(0));
        assert_eq!(floor_div(7, -2), Some(-4));
        assert_eq!(floor_div(-7, -2), Some(3));
        assert_eq!(floor_div(1, 0), None);
        assert_eq!(floor_div(i128::MIN, -1), None);
    }

    #[test]
    fn refill_math_worked_example_spec_5_3() {
        // rf 1704067195000, now 1704067200000, tpm tk 5M, cp = ra = 100M, rp 60s.
        let (tk, last) =
            refill_bucket(5_000_000, 1_704_067_195_000, 1_704_067_200_000, 100_000_000, 100_000_000, 60_000).unwrap();
        assert_eq!(tk, 13_333_333);
        assert_eq!(tk - 5_000_000, 8_333_333);
        assert_eq!(last, 1_704_067_195_000 + 4_999);
    }

    #[test]
    fn the_017_refill_always_clamps() {
        assert_eq!(refill_bucket_clamped(150, 10, 10, 100, 1, 1), Some(100), "no time elapsed: clamped");
        assert_eq!(refill_bucket_clamped(150, 0, 1, 100, 1, 1000), Some(100), "nothing accrued: clamped");
        assert_eq!(refill_bucket_clamped(-50, 0, 1, 100, 1, 1000), Some(-50), "debt is left alone");
        assert_eq!(refill_bucket_clamped(50, 0, 1000, 100, 20, 1000), Some(70));
        assert_eq!(refill_bucket_clamped(90, 0, 1000, 100, 50, 1), Some(100));
        assert_eq!(refill_bucket_clamped(0, 0, 2, 10, i128::MAX, 1), None);
        assert_eq!(refill_bucket_clamped(5, 0, 10, 100, 1, 0), None, "a zero period is refused");
    }

    #[test]
    fn refill_edge_cases() {
        assert_eq!(refill_bucket(5, 10, 10, 100, 1, 1), Some((5, 10)), "zero elapsed");
        assert_eq!(refill_bucket(5, 10, 5, 100, 1, 1), Some((5, 10)), "clock behind");
        assert_eq!(refill_bucket(5, 0, 1, 100, 1, 1000), Some((5, 0)), "accrues nothing");
        assert_eq!(refill_bucket(90, 0, 1000, 100, 50, 1), Some((100, 1000)), "capped");
        // rf missing upstream means last = 0: elapsed ~1.7e12 times a large amount overflows i64 but not i128.
        let r = refill_bucket(0, 0, 1_704_067_200_000, i64::MAX as i128, 100_000_000_000_000, 60_000);
        assert!(r.is_some());
        assert_eq!(refill_bucket(0, 0, 2, 10, i128::MAX, 1), None, "overflow is reported, not wrapped");
    }
}
