//! The hourly snapshot sums against the bucket items' cumulative consumption
//! counters (docs/reading.md#consumption-bound), part of `reconcile`.
//!
//! A bucket item's `b_{limit}_tc` counts the limit's consumption in
//! millitokens since the item was created; every later change of it is one
//! stream record, and each record's change adds `tc_delta // 1000` tokens to
//! the hourly item of its hour (docs/specification.md#consumption-deltas). So
//! per namespace, entity, resource and limit, summed over the shards:
//!
//! ```text
//! 1000 x (sum of the hourly counters) <= sum of tc now - sum of tc at creation <= sum of tc now
//! ```
//!
//! (floors summed separately never exceed the floor of the sum, and an item is
//! created by an acquire, with a `tc` of 0 or more). The bound holds however
//! long the aggregator has run and whatever hourly items have expired: it can
//! only find hourly items that count more than the buckets consumed (a double
//! count, or a bucket or limit deleted and created again, which restarts its
//! `tc`). It cannot find a loss: `tc` also holds the creating acquire's
//! consumption, consumption before the aggregator ran and expired hours.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::bucket::{split_bucket_pk, split_limit_attr};
use crate::usage::{integer, Query, ReaderError, Row};
use crate::window::Window;

/// The bucket items of one (namespace, entity, resource) and one limit: their `tc` summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Consumed {
    shards: u32,
    millitokens: i128,
}

/// One bucket item read: its namespace, entity, resource, and each limit's `tc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Namespace id.
    pub namespace: String,
    /// Entity.
    pub entity: String,
    /// Resource.
    pub resource: String,
    /// `b_{limit}_tc` of every limit but `wcu`, millitokens.
    pub tc: BTreeMap<String, i128>,
}

/// A (namespace, entity, resource, limit) whose hourly items count more tokens than its bucket
/// items have consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excess {
    /// Namespace id.
    pub namespace: String,
    /// Entity.
    pub entity: String,
    /// Resource.
    pub resource: String,
    /// Limit (the hourly counter's name).
    pub limit: String,
    /// Hourly items that hold the counter.
    pub hourly_items: u32,
    /// Their counter summed, tokens.
    pub hourly_tokens: i128,
    /// Bucket items (shards) that hold the limit's `tc`.
    pub shards: u32,
    /// Their `tc` summed, millitokens.
    pub consumed_millitokens: i128,
}

/// The bound checked over every (namespace, entity, resource, limit).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumptionCheck {
    /// Hourly counters checked against their buckets' `tc`.
    pub checked: u32,
    /// Hourly counters without any bucket item holding the limit's `tc` (buckets deleted, a
    /// limit removed, or not read): nothing to check them against.
    pub unchecked: u32,
    /// The counters above the bound.
    pub exceeding: Vec<Excess>,
}

/// Read a bucket item (DynamoDB JSON map): current format `{ns}/BUCKET#{entity}#{resource}#{shard}`
/// with SK `#STATE`, or old format `{ns}/ENTITY#{entity}` with SK `#BUCKET#{resource}`. `None`:
/// not a bucket item; `Some(Err)`: a bucket item whose `tc` cannot be read, and why.
pub fn read_bucket(text: &str) -> Option<Result<Bucket, String>> {
    let Ok(Value::Object(item)) = serde_json::from_str::<Value>(text) else { return None };
    let s = |name: &str| item.get(name).and_then(|v| v.get("S")).and_then(Value::as_str);
    let (pk, sk) = (s("PK")?, s("SK")?);
    let (namespace, rest) = pk.split_once('/')?;
    let (entity, resource) = if let Some(b) = rest.strip_prefix("BUCKET#") {
        if sk != "#STATE" {
            return None;
        }
        let (entity, resource, _, _) = split_bucket_pk(b)?;
        (entity, resource)
    } else {
        let entity = rest.strip_prefix("ENTITY#")?;
        (entity, sk.strip_prefix("#BUCKET#").filter(|r| !r.is_empty())?)
    };
    if namespace.is_empty() || entity.is_empty() {
        return None;
    }
    let mut tc = BTreeMap::new();
    for (attr, value) in &item {
        let Some((limit, "tc")) = split_limit_attr(attr) else { continue };
        if limit == "wcu" {
            continue;
        }
        let n = value.get("N").and_then(Value::as_str);
        match n.and_then(integer) {
            Some(v) => {
                tc.insert(limit.to_string(), v);
            }
            None => return Some(Err(format!("bucket item {pk:?}: {attr} is not an integer N"))),
        }
    }
    Some(Ok(Bucket { namespace: namespace.into(), entity: entity.into(), resource: resource.into(), tc }))
}

type Key = (String, String, String, String);

/// The bound over the hourly `rows` and the `buckets` that match `q`'s namespace, entity and
/// resource (its window, `from` and `to` do not apply: the bound needs every hourly item).
/// Counters named `{limit}#od` are not consumption and are left out.
pub fn check(rows: &[Row], buckets: &[Bucket], q: &Query) -> Result<ConsumptionCheck, ReaderError> {
    let wanted = |ns: &str, e: &str, r: &str| {
        q.namespace.as_deref().is_none_or(|n| n == ns)
            && q.entity.as_deref().is_none_or(|x| x == e)
            && q.resource.as_deref().is_none_or(|x| x == r)
    };
    let mut hourly: BTreeMap<Key, (u32, i128)> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.window == Window::Hourly && wanted(&r.namespace, &r.entity, &r.resource)) {
        for (name, v) in row.counters.iter().filter(|(n, _)| !n.contains('#')) {
            let key = (row.namespace.clone(), row.entity.clone(), row.resource.clone(), name.clone());
            let slot = hourly.entry(key).or_default();
            slot.0 += 1;
            slot.1 = slot.1.checked_add(*v).ok_or_else(|| ReaderError::Overflow { counter: name.clone() })?;
        }
    }
    let mut consumed: BTreeMap<Key, Consumed> = BTreeMap::new();
    for b in buckets.iter().filter(|b| wanted(&b.namespace, &b.entity, &b.resource)) {
        for (limit, tc) in &b.tc {
            let key = (b.namespace.clone(), b.entity.clone(), b.resource.clone(), limit.clone());
            let slot = consumed.entry(key).or_default();
            slot.shards += 1;
            slot.millitokens = slot
                .millitokens
                .checked_add(*tc)
                .ok_or_else(|| ReaderError::Overflow { counter: format!("b_{limit}_tc") })?;
        }
    }
    let mut out = ConsumptionCheck::default();
    for (key, (items, tokens)) in hourly {
        let Some(c) = consumed.get(&key) else {
            out.unchecked += 1;
            continue;
        };
        out.checked += 1;
        let counted = tokens.checked_mul(1000).ok_or_else(|| ReaderError::Overflow { counter: key.3.clone() })?;
        if counted > c.millitokens {
            let (namespace, entity, resource, limit) = key;
            out.exceeding.push(Excess {
                namespace,
                entity,
                resource,
                limit,
                hourly_items: items,
                hourly_tokens: tokens,
                shards: c.shards,
                consumed_millitokens: c.millitokens,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::read_item;

    fn hourly(entity: &str, resource: &str, hour: u32, tokens: i128) -> Row {
        let text = format!(
            r##"{{"PK":{{"S":"ns/ENTITY#{entity}"}},"SK":{{"S":"#USAGE#{resource}#2024-03-01T{hour:02}:00:00Z"}},"tpm":{{"N":"{tokens}"}},"tpm#od":{{"N":"5"}},"total_events":{{"N":"1"}}}}"##
        );
        read_item(&text).unwrap()
    }

    fn bucket(pk: &str, sk: &str, tc: &str) -> String {
        format!(
            r#"{{"PK":{{"S":"{pk}"}},"SK":{{"S":"{sk}"}},"b_tpm_tc":{{"N":"{tc}"}},"b_wcu_tc":{{"N":"1"}},"b_tpm_cp":{{"N":"9"}}}}"#
        )
    }

    fn buckets(texts: &[String]) -> Vec<Bucket> {
        texts.iter().map(|t| read_bucket(t).unwrap().unwrap()).collect()
    }

    #[test]
    fn both_bucket_formats_are_read_and_wcu_is_not_a_limit() {
        let b = read_bucket(&bucket("ns/BUCKET#e#gpt#4o#0", "#STATE", "7000")).unwrap().unwrap();
        assert_eq!((b.entity.as_str(), b.resource.as_str()), ("e", "gpt#4o"));
        assert_eq!(b.tc, BTreeMap::from([("tpm".to_string(), 7000)]));
        let old = read_bucket(&bucket("ns/ENTITY#e", "#BUCKET#gpt", "5")).unwrap().unwrap();
        assert_eq!((old.namespace.as_str(), old.resource.as_str(), old.tc["tpm"]), ("ns", "gpt", 5));
        assert_eq!(read_bucket(&bucket("ns/BUCKET#e#gpt#0", "#LIMITS", "1")), None);
        assert_eq!(read_bucket(r##"{"PK":{"S":"ns/ENTITY#e"},"SK":{"S":"#USAGE#r#x"}}"##), None);
        assert!(read_bucket(&bucket("ns/BUCKET#e#gpt#0", "#STATE", "1.5")).unwrap().is_err());
    }

    #[test]
    fn the_bound_sums_shards_and_hours_and_finds_only_an_excess() {
        let rows = [hourly("e", "gpt", 1, 3), hourly("e", "gpt", 2, 4)];
        let shards =
            buckets(&[bucket("ns/BUCKET#e#gpt#0", "#STATE", "4000"), bucket("ns/BUCKET#e#gpt#1", "#STATE", "3000")]);
        let ok = check(&rows, &shards, &Query::default()).unwrap();
        assert_eq!((ok.checked, ok.unchecked, ok.exceeding.len()), (1, 0, 0), "7 tokens within 7,000 millitokens");
        let one_short =
            buckets(&[bucket("ns/BUCKET#e#gpt#0", "#STATE", "4000"), bucket("ns/BUCKET#e#gpt#1", "#STATE", "2999")]);
        let found = check(&rows, &one_short, &Query::default()).unwrap();
        assert_eq!(
            found.exceeding,
            vec![Excess {
                namespace: "ns".into(),
                entity: "e".into(),
                resource: "gpt".into(),
                limit: "tpm".into(),
                hourly_items: 2,
                hourly_tokens: 7,
                shards: 2,
                consumed_millitokens: 6999,
            }]
        );
    }

    #[test]
    fn counters_without_buckets_are_unchecked_and_the_query_filters_both() {
        let rows = [hourly("e", "gpt", 1, 3), hourly("f", "gpt", 1, 3)];
        let shards = buckets(&[bucket("ns/BUCKET#e#gpt#0", "#STATE", "0")]);
        let all = check(&rows, &shards, &Query::default()).unwrap();
        assert_eq!((all.checked, all.unchecked, all.exceeding.len()), (1, 1, 1));
        let f = check(&rows, &shards, &Query { entity: Some("f".into()), ..Query::default() }).unwrap();
        assert_eq!((f.checked, f.unchecked, f.exceeding.len()), (0, 1, 0));
    }

    #[test]
    fn sums_that_leave_128_bits_are_an_error_not_a_wrap() {
        let rows = [hourly("e", "gpt", 1, i128::MAX / 1000 + 1)];
        let shards = buckets(&[bucket("ns/BUCKET#e#gpt#0", "#STATE", "0")]);
        assert!(matches!(check(&rows, &shards, &Query::default()), Err(ReaderError::Overflow { .. })));
    }
}
