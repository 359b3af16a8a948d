//! Hot-bucket sharding: proactive doubling (docs/specification.md#shard-doubling) and propagation of a
//! raised `shard_count` to the other shards (docs/specification.md#shard-propagation).
//!
//! Kept: the trigger (stored `b_wcu_tk / b_wcu_cp < 0.2` on shard 0), the
//! conditions, the clone semantics and per-shard capacity arithmetic of new
//! shards (`tk = cp // new` for user limits, `tk = cp` for wcu, `tc = 0`).
//! Fixed: W12 (a configurable maximum shard count), W11/W17 (the latest image by
//! sequence number decides), W8 (runs on every batch), W20 (only new-format
//! buckets are sharded), W9 (placeholders).
//!
//! Propagation is coalesced per shard-0 bucket: the latest raising image is
//! cloned, existing shards are raised with `shard_count < :new`, and shards
//! that may not exist yet are created with `attribute_not_exists(PK)`. For a
//! shard that may or may not exist both writes are planned; whichever order
//! they run in, the result is the same (create with the new count, or raise).

use std::sync::Arc;

use crate::bucket::{bucket_pk, split_limit_attr, BucketRecord, BucketState, Format};
use crate::event::{av_json, av_n, Image};
use crate::json::Positions;
use crate::plan::{
    Attribute, Counters, ExpressionName, Log, LogEntry, LogLevel, OnConditionFailure, Operation, Purpose, PutItem,
    UpdateItem, Write,
};
use crate::refill::floor_div;

/// Doubling threshold: stored wcu tokens below this fraction of capacity.
pub const THRESHOLD: f64 = 0.2;

/// `tk / cp < 0.2` with Python's semantics: the correctly rounded quotient
/// compared with the double nearest 0.2. Exact when both fit in 53 bits (the
/// realistic case); beyond that the exact rational test `5 tk < cp` is used.
pub fn below_threshold(tk: i128, cp: i128) -> (bool, f64) {
    const EXACT: i128 = 1 << 53;
    let ratio = tk as f64 / cp as f64;
    if tk.abs() < EXACT && cp.abs() < EXACT {
        (ratio < THRESHOLD, ratio)
    } else {
        (tk.saturating_mul(5) < cp, ratio)
    }
}

/// `round(x, 2)` for logging.
fn round2(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    let mut s = String::new();
    crate::pyjson::write_python_float(&mut s, r);
    s
}

/// Plan proactive doublings. `project_to` (the zae-limiter 0.17 semantics,
/// docs/specification.md#shard-doubling-017) projects the stored `wcu`
/// balance from `rf` to that time before the threshold test, and doubles up
/// to the maximum (`min(2n, max)`) instead of refusing a doubling past it.
#[allow(clippy::too_many_arguments)]
pub fn plan_bumps(
    states: &[BucketState],
    table: &str,
    max_shards: u32,
    project_to: Option<i64>,
    writes: &mut Vec<Write>,
    logs: &mut Vec<LogEntry>,
    counters: &mut Counters,
) {
    for state in states {
        let rec = state.latest;
        if !matches!(rec.format, Format::New { .. }) || rec.shard_id != 0 {
            continue;
        }
        let Some(wcu) = state.limits.iter().find(|l| l.name == "wcu") else { continue };
        if wcu.cp <= 0 {
            continue;
        }
        let old = rec.shard_count;
        let mut tk = wcu.tk;
        if let Some(now) = project_to {
            if old >= max_shards as i128 {
                Log::new(logs, LogLevel::Debug, "Proactive shard skipped - at MAX_SHARD_COUNT")
                    .s("entity_id", &rec.entity)
                    .s("resource", &rec.resource)
                    .n("shard_count", old)
                    .n("max_shard_count", max_shards);
                continue;
            }
            if wcu.rp > 0 && wcu.ra > 0 {
                let rf = rec.rf_ms.unwrap_or(0);
                match crate::refill::refill_bucket_clamped(tk, rf, now as i128, wcu.cp, wcu.ra, wcu.rp) {
                    Some(projected) => tk = projected,
                    None => continue,
                }
            }
        }
        let (below, ratio) = below_threshold(tk, wcu.cp);
        if !below {
            continue;
        }
        // An overflowing double is above any maximum.
        let doubled = old.checked_mul(2).unwrap_or(i128::MAX);
        let new = if project_to.is_some() { doubled.min(max_shards as i128) } else { doubled };
        if new > max_shards as i128 {
            Log::new(logs, LogLevel::Warning, "Proactive shard doubling capped at maximum shard count")
                .s("entity_id", &rec.entity)
                .s("resource", &rec.resource)
                .n("shard_count", old)
                .n("max_shard_count", max_shards)
                .raw("token_ratio", round2(ratio));
            continue;
        }
        writes.push(
            Write::new(
                Purpose::ShardBump,
                Operation::UpdateItem(UpdateItem {
                    table_name: table.to_string(),
                    key: vec![Attribute::s("PK", &rec.pk), Attribute::s("SK", &rec.sk)],
                    update_expression: "SET #sc = :new".into(),
                    condition_expression: Some("#sc = :old".into()),
                    names: vec![ExpressionName { placeholder: "#sc".into(), name: "shard_count".into() }],
                    values: vec![Attribute::n(":new", new), Attribute::n(":old", old)],
                }),
                OnConditionFailure::Ignore,
                state.records.clone(),
            )
            .with_logs(|applied, failed| {
                Log::new(applied, LogLevel::Info, "Proactive shard doubling")
                    .s("entity_id", &rec.entity)
                    .s("resource", &rec.resource)
                    .n("old_count", old)
                    .n("new_count", new)
                    .raw("token_ratio", round2(ratio));
                Log::new(failed, LogLevel::Warning, "Error in proactive sharding")
                    .s("entity_id", &rec.entity)
                    .s("resource", &rec.resource);
            }),
        );
        counters.shard_bump_writes += 1;
        Log::new(logs, LogLevel::Info, "Proactive shard doubling planned")
            .s("entity_id", &rec.entity)
            .s("resource", &rec.resource)
            .n("old_count", old)
            .n("new_count", new)
            .raw("token_ratio", round2(ratio));
    }
}

/// Plan propagation for every shard-0 bucket whose count was raised in the batch.
pub fn plan_propagation(
    records: &[&BucketRecord],
    table: &str,
    max_shards: u32,
    writes: &mut Vec<Write>,
    logs: &mut Vec<LogEntry>,
    counters: &mut Counters,
) {
    let raising: Vec<&BucketRecord> = records.iter().copied().filter(|r| r.raises_shard_count()).collect();
    let mut done: Vec<&str> = Vec::new();
    for r in &raising {
        if done.contains(&&*r.pk) {
            continue;
        }
        done.push(&*r.pk);
        let group: Vec<&BucketRecord> = raising.iter().copied().filter(|x| *x.pk == *r.pk).collect();
        let Some(latest) = group.iter().copied().max_by(|a, b| a.seq.cmp(&b.seq)) else { continue };
        let first_old = group.iter().filter_map(|x| x.old_shard_count).min().unwrap_or(1);
        let latest_old = latest.old_shard_count.unwrap_or(1);
        let new = latest.shard_count;
        let limit = new.min(max_shards as i128);
        if new > max_shards as i128 {
            Log::new(logs, LogLevel::Warning, "Shard count above maximum; propagation limited")
                .s("entity_id", &latest.entity)
                .s("resource", &latest.resource)
                .n("shard_count", new)
                .n("max_shard_count", max_shards);
        }
        let template = CloneTemplate::new(latest, new);
        let mut indices: Vec<u32> = group.iter().map(|x| x.index).collect();
        indices.sort_unstable();
        let mut planned = 0u32;
        for t in 1..latest_old.min(limit) {
            writes.push(Write::new(
                Purpose::ShardPropagate,
                Operation::UpdateItem(UpdateItem {
                    table_name: table.to_string(),
                    key: vec![
                        Attribute::s("PK", &bucket_pk(&latest.ns, &latest.entity, &latest.resource, t)),
                        Attribute::s("SK", &latest.sk),
                    ],
                    update_expression: "SET #sc = :new".into(),
                    condition_expression: Some("#sc < :new".into()),
                    names: vec![ExpressionName { placeholder: "#sc".into(), name: "shard_count".into() }],
                    values: vec![Attribute::n(":new", new)],
                }),
                OnConditionFailure::Ignore,
                indices.clone(),
            ));
            planned += 1;
        }
        for t in first_old.max(1)..limit {
            writes.push(Write::new(
                Purpose::ShardPropagate,
                Operation::PutItem(PutItem {
                    table_name: table.to_string(),
                    base: Some(template.image()),
                    item: template.shard_keys(t),
                    condition_expression: Some("attribute_not_exists(#pk)".into()),
                    names: vec![ExpressionName { placeholder: "#pk".into(), name: "PK".into() }],
                    values: vec![],
                }),
                OnConditionFailure::Ignore,
                indices.clone(),
            ));
            planned += 1;
        }
        counters.shard_propagate_writes += planned;
        Log::new(logs, LogLevel::Info, "Shard count propagation planned")
            .s("entity_id", &latest.entity)
            .s("resource", &latest.resource)
            .n("new_count", new)
            .n("writes", planned);
    }
}

/// What shard propagation keeps of a raising shard-0 NewImage: its
/// attributes rendered once as DynamoDB JSON, in image order, and the
/// capacity of every `b_{limit}_cp` number, in image order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneSource {
    /// The NewImage's attributes, values as compact DynamoDB JSON.
    pub image: Vec<Attribute>,
    /// `(limit, cp)` of each `b_{limit}_cp` that is an integer `N`.
    pub capacities: Vec<(String, i128)>,
}

impl CloneSource {
    /// Render `image` once (docs/specification.md#shard-propagation).
    pub fn new(image: Image) -> CloneSource {
        let mut capacities = Vec::new();
        let attrs = image
            .iter()
            .map(|(k, v)| {
                if let (Some((name, "cp")), Some(n)) = (split_limit_attr(k), av_n(v)) {
                    if let Ok(cp) = crate::event::parse_int(k, n) {
                        capacities.push((name.to_string(), cp));
                    }
                }
                Attribute::raw(k, av_json(&v.to_value()))
            })
            .collect();
        CloneSource { image: attrs, capacities }
    }
}

/// The items of the new shards of one propagation: shard 0's NewImage with
/// `shard_count` and per-shard tokens replaced once, and the positions of the
/// four attributes that name the shard (`PK`, `GSI2SK`, `GSI3SK`, `GSI4SK`),
/// filled in per shard. Building it is linear in the image; the plan's
/// put-items share it as their `base` and carry only those four attributes
/// each (docs/benchmarks.md#wide-images).
#[derive(Debug, Clone)]
pub struct CloneTemplate<'r> {
    src: &'r BucketRecord<'r>,
    item: Arc<Vec<Attribute>>,
    /// Positions in `item` of `PK`, `GSI2SK`, `GSI3SK`, `GSI4SK`.
    keys: [usize; 4],
}

impl<'r> CloneTemplate<'r> {
    /// The template for `src`'s image raised to `new` shards.
    pub fn new(src: &'r BucketRecord<'r>, new: i128) -> Self {
        let source = src.clone_source.as_deref();
        let mut item: Vec<Attribute> = source.map(|c| c.image.clone()).unwrap_or_default();
        let mut names = Positions::default();
        for len in 1..=item.len() {
            names.pushed(len, |p| &item[p as usize].name);
        }
        // Upstream sets each attribute in turn: an existing one keeps its
        // place, a new one goes last.
        let mut set = |name: String, value: String| -> usize {
            match names.find(item.len(), &name, |p| &item[p as usize].name) {
                Some(i) => {
                    item[i].value = value;
                    i
                }
                None => {
                    item.push(Attribute { name, value });
                    names.pushed(item.len(), |p| &item[p as usize].name);
                    item.len() - 1
                }
            }
        };
        // Placeholders (an empty string) until each shard's item names its shard.
        let keys = ["PK", "GSI2SK", "GSI3SK", "GSI4SK"].map(|k| set(k.into(), Attribute::s("", "").value));
        // The sort key as parsed (a string), never an image value of another
        // shape: the new item must be addressable like shard 0.
        set("SK".into(), Attribute::s("", &src.sk).value);
        set("shard_count".into(), Attribute::n("", new).value);
        for (name, cp) in source.map_or(&[][..], |c| &c.capacities) {
            let tk = if name == "wcu" { *cp } else { floor_div(*cp, new).unwrap_or(*cp) };
            set(format!("b_{name}_tk"), Attribute::n("", tk).value);
            set(format!("b_{name}_tc"), Attribute::n("", 0).value);
        }
        CloneTemplate { src, item: Arc::new(item), keys }
    }

    /// The image every new shard's item starts from (its four shard-naming attributes empty).
    pub fn image(&self) -> Arc<Vec<Attribute>> {
        Arc::clone(&self.item)
    }

    /// The four attributes that name new shard `t` (`PK`, `GSI2SK`, `GSI3SK`, `GSI4SK`), to
    /// put over [`CloneTemplate::image`], where each has its place.
    pub fn shard_keys(&self, t: i128) -> Vec<Attribute> {
        let (ns, e, r) = (&*self.src.ns, &*self.src.entity, &*self.src.resource);
        let values = [
            bucket_pk(ns, e, r, t),
            format!("BUCKET#{e}#{t}"),
            format!("BUCKET#{r}#{t}"),
            format!("BUCKET#{e}#{r}#{t}"),
        ];
        self.keys.iter().zip(&values).map(|(&i, v)| Attribute::s(&self.item[i].name, v)).collect()
    }

    /// The whole item of new shard `t` (a copy of the image).
    pub fn item(&self, t: i128) -> Vec<Attribute> {
        let mut item = (*self.item).clone();
        for (&i, a) in self.keys.iter().zip(self.shard_keys(t)) {
            item[i] = a;
        }
        item
    }
}

/// The item of a new shard `t`: shard 0's NewImage with keys, `shard_count` and
/// per-shard tokens replaced (docs/specification.md#shard-propagation), in Python dict order.
/// Planning many shards builds one [`CloneTemplate`] and asks it for each.
pub fn clone_item(src: &BucketRecord, t: i128, new: i128) -> Vec<Attribute> {
    CloneTemplate::new(src, new).item(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_strict_spec_6_1() {
        assert!(below_threshold(150_000, 1_000_000).0);
        assert!(!below_threshold(250_000, 1_000_000).0);
        assert!(!below_threshold(200_000, 1_000_000).0, "exactly 20% does not trigger");
        assert!(below_threshold(199_999, 1_000_000).0);
        assert!(below_threshold(0, 1_000_000).0);
        assert!(below_threshold(-5, 1_000_000).0);
        assert!(below_threshold(100_000, 1_000_000).0);
        let big = 1i128 << 80;
        assert!(!below_threshold(big, big * 5).0, "exact rational test beyond 2^53");
        assert!(below_threshold(big - 1, big * 5).0);
    }

    #[test]
    fn ratio_rounds_for_logs() {
        assert_eq!(round2(0.15), "0.15");
        assert_eq!(round2(0.0), "0.0");
        assert_eq!(round2(0.1299), "0.13");
    }
}
