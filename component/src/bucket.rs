//! Bucket items: key formats (docs/specification.md#keys) and the parse of a bucket MODIFY
//! record (docs/specification.md#bucket-records), done once per record (docs/decisions.md#w3).
//!
//! Differences from upstream, all in the direction of "report, never lose":
//! * a record that claims to be a bucket (PK `…/BUCKET#…` or SK `#BUCKET#…`) but
//!   cannot be parsed is *invalid* with a reason, not silently skipped;
//! * every `b_{limit}_{tc|tk|cp|ra|rp}`, `rf` and `shard_count` number is checked,
//!   so a malformed number anywhere invalidates the record up front instead of
//!   crashing a later stage (W1, W3);
//! * a record without consumption counters is still a bucket record, because
//!   shard propagation and the later stages run on every batch (W8).

use std::borrow::Cow;

use crate::event::{av_n, get_n, get_s_cow, parse_int, Record, Seq};
use crate::json::Positions;

/// The two bucket key layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// `{ns}/BUCKET#{entity}#{resource}#{shard}` / `#STATE`.
    New {
        /// The shard part of the PK exactly as written.
        shard_str: String,
    },
    /// `{ns}/ENTITY#{entity}` / `#BUCKET#{resource}` (pre-shard).
    Old,
}

/// The attributes zae-limiter 0.14 to 0.17 add to a limit of a bucket item
/// (docs/specification.md#limiter-versions), as the NewImage spells them:
/// numbers as their text, read only under the 0.17 semantics (so a 0.13
/// deployment plans exactly as before, whatever they hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitExt {
    /// `b_{name}_sched`: the limit's own parameter schedule (`-`: none).
    pub sched: Option<String>,
    /// `b_{name}_rsched`: the limit's own reset schedule (`-`: none).
    pub rsched: Option<String>,
    /// `b_{name}_ws`: duration-window start, epoch ms.
    pub ws: Option<String>,
    /// `b_{name}_rsa`: duration-window length, seconds.
    pub rsa: Option<String>,
    /// `b_{name}_wa`: the window start this shard's balance reflects.
    pub wa: Option<String>,
    /// `b_{name}_wtc`: `tc` when the window was fanned out.
    pub wtc: Option<String>,
    /// `b_{name}_gc`: the shard count this shard's quota grant was sized at.
    pub gc: Option<String>,
    /// `b_{name}_tu`: quota topped up above the grant this period.
    pub tu: Option<String>,
    /// `b_{name}_soft` is present: a soft limit (metered, not enforced).
    pub soft: bool,
}

impl LimitExt {
    fn is_empty(&self) -> bool {
        *self == LimitExt::default()
    }
}

/// The item-level attributes zae-limiter 0.14 to 0.17 add to a bucket item,
/// as the NewImage spells them (see [`LimitExt`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemExt {
    /// `sched`: the item's default parameter schedule.
    pub sched: Option<String>,
    /// `rsched`: the item's default reset schedule.
    pub rsched: Option<String>,
    /// `sched_tz`: the time zone of both (UTC when absent).
    pub sched_tz: Option<String>,
    /// `vu`: the materialisation stamp, epoch ms.
    pub vu: Option<String>,
}

/// One limit of a bucket with a consumption counter in both images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Limit name (`tpm`, `wcu`, …).
    pub name: String,
    /// `new tc - old tc`, millitokens.
    pub tc_delta: i128,
    /// Stored tokens (NewImage), millitokens.
    pub tk: i128,
    /// Capacity, millitokens.
    pub cp: i128,
    /// Refill amount, millitokens.
    pub ra: i128,
    /// Refill period, ms.
    pub rp: i128,
    /// NewImage `b_{name}_tc` (0 when absent).
    pub tc: i128,
    /// The 0.14-0.17 attributes of the limit; `None` when it has none.
    pub ext: Option<Box<LimitExt>>,
}

/// A parsed bucket MODIFY record. Strings borrow from the event text (they
/// are copied only when the event wrote them with escapes); nothing refers to
/// the record's parse tree, which is gone once the record has been read.
#[derive(Debug, Clone)]
pub struct BucketRecord<'a> {
    /// Record index.
    pub index: u32,
    /// Sequence number.
    pub seq: Seq,
    /// `dynamodb.ApproximateCreationDateTime` in ms.
    pub approx_ms: Option<i64>,
    /// Namespace id.
    pub ns: Cow<'a, str>,
    /// Entity id.
    pub entity: Cow<'a, str>,
    /// Resource.
    pub resource: Cow<'a, str>,
    /// The item's PK and SK as written.
    pub pk: Cow<'a, str>,
    /// SK.
    pub sk: Cow<'a, str>,
    /// Key layout.
    pub format: Format,
    /// Shard id (0 for old format).
    pub shard_id: i128,
    /// NewImage `shard_count` (1 when absent).
    pub shard_count: i128,
    /// OldImage `shard_count`, when present.
    pub old_shard_count: Option<i128>,
    /// NewImage `rf` (None when absent).
    pub rf_ms: Option<i128>,
    /// Limits with `tc` in both images, NewImage order, wcu included.
    pub limits: Vec<Limit>,
    /// The other limits of the NewImage (a `b_{name}_cp` attribute but no `tc`
    /// in both images), in NewImage order, with `tc_delta` 0.
    pub other_limits: Vec<Limit>,
    /// The NewImage, kept only when this record raises `shard_count` on a
    /// new-format shard 0 (see [`BucketRecord::raises_shard_count`]): new
    /// shard items are cloned from it.
    pub clone_source: Option<Box<crate::shard::CloneSource>>,
    /// The NewImage has no `entity_id`: the record is read for shard
    /// propagation only (which needs just the key and `shard_count`, as
    /// upstream's does); no usage, refill or doubling comes from it.
    pub propagation_only: bool,
    /// The 0.14-0.17 item-level attributes; `None` when it has none.
    pub ext: Option<Box<ItemExt>>,
}

impl BucketRecord<'_> {
    /// Whether this record raises `shard_count` on a new-format shard 0.
    pub fn raises_shard_count(&self) -> bool {
        self.clone_source.is_some()
    }

    /// Name of the snapshot-item attribute that stores this source item's
    /// watermark: `wm#{shard}` for new-format buckets, `wm#{PK after ns}` for
    /// old-format ones. Limit names cannot contain `#`, so these never collide
    /// with a counter.
    pub fn watermark_attr(&self) -> String {
        match &self.format {
            Format::New { shard_str } => format!("wm#{shard_str}"),
            Format::Old => format!("wm#{}", &self.pk[self.ns.len() + 1..]),
        }
    }
}

/// Result of parsing one MODIFY record as a bucket.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A bucket record.
    Bucket(Box<BucketRecord<'a>>),
    /// Not a bucket item, or one we deliberately leave alone.
    Skip(String),
    /// A bucket record that cannot be parsed.
    Invalid(String),
}

/// Split a bucket PK remainder (after `BUCKET#`): `{entity}#{resource…}#{shard}`.
/// Returns `(entity, resource, shard_str, shard)`; `None` if it does not parse.
pub fn split_bucket_pk(rest: &str) -> Option<(&str, &str, &str, i128)> {
    let (left, shard_str) = rest.rsplit_once('#')?;
    let shard = parse_shard(shard_str)?;
    let (entity, resource) = left.split_once('#')?;
    Some((entity, resource, shard_str, shard))
}

/// Python `int()` of a PK's shard suffix (docs/specification.md#keys, so `" 2"` and `"-1"` are shards): ASCII
/// whitespace around an optional sign and ASCII digits. The limiter writes plain digits; `_`
/// separators and non-ASCII digits, which `int()` would also take, are not read as shards.
fn parse_shard(s: &str) -> Option<i128> {
    let t = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r'));
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Split `b_{name}_{field}`; the name must be non-empty.
pub fn split_limit_attr(attr: &str) -> Option<(&str, &str)> {
    let rest = attr.strip_prefix("b_")?;
    let (name, field) = rest.rsplit_once('_')?;
    if name.is_empty() {
        return None;
    }
    Some((name, field))
}

const FIELDS: [&str; 5] = ["tc", "tk", "cp", "ra", "rp"];

/// The per-limit attributes of zae-limiter 0.14 to 0.17 ([`LimitExt`]).
const EXT_FIELDS: [&str; 9] = ["sched", "rsched", "ws", "rsa", "wa", "wtc", "gc", "tu", "soft"];

/// The text of an `S` attribute value (another type reads as absent, as
/// zae-limiter reads its wire-format images: `image.get(a, {}).get("S")`).
fn av_s(av: crate::json::Val<'_, '_>) -> Option<String> {
    av.as_object()?.get("S")?.as_str().map(str::to_string)
}

/// The text of an `N` attribute value (another type reads as absent).
fn av_num(av: crate::json::Val<'_, '_>) -> Option<String> {
    av_n(av).map(str::to_string)
}

/// The part `part` of `whole` (a sub-slice of it), with `whole`'s lifetime.
fn sub<'a>(whole: &Cow<'a, str>, part: &str) -> Cow<'a, str> {
    match whole {
        Cow::Borrowed(w) => {
            let start = (part.as_ptr() as usize).wrapping_sub(w.as_ptr() as usize);
            match w.get(start..start.saturating_add(part.len())) {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(part.to_string()),
            }
        }
        Cow::Owned(_) => Cow::Owned(part.to_string()),
    }
}

/// The numbers of one limit in an image, in [`FIELDS`] order.
struct Slot<'t> {
    name: &'t str,
    ext: LimitExt,
    new: [Option<i128>; 5],
    old_tc: Option<i128>,
    tc_pos: usize,
    cp_pos: usize,
}

/// Read every `b_{limit}_{field}` attribute of both images once, checking each
/// number (so no later stage can fail on one). Limits are found by name
/// through [`Positions`], so this is linear in the images' sizes
/// (docs/benchmarks.md#wide-images).
fn read_limits<'t>(
    new: crate::event::Image<'t, '_>,
    old: Option<crate::event::Image<'t, '_>>,
) -> Result<Vec<Slot<'t>>, String> {
    let mut slots: Vec<Slot<'t>> = Vec::with_capacity(4);
    let mut names = Positions::default();
    for (pos, (attr, av)) in new.iter().enumerate() {
        let Some((name, field)) = split_limit_attr(attr) else { continue };
        let fi = FIELDS.iter().position(|f| *f == field);
        if fi.is_none() && !EXT_FIELDS.contains(&field) {
            continue;
        }
        let i = match names.find(slots.len(), name, |p| slots[p as usize].name) {
            Some(i) => i,
            None => {
                slots.push(Slot {
                    name,
                    ext: LimitExt::default(),
                    new: [None; 5],
                    old_tc: None,
                    tc_pos: usize::MAX,
                    cp_pos: usize::MAX,
                });
                names.pushed(slots.len(), |p| slots[p as usize].name);
                slots.len() - 1
            }
        };
        let Some(fi) = fi else {
            let ext = &mut slots[i].ext;
            match field {
                "soft" => ext.soft = true,
                "sched" => ext.sched = av_s(av),
                "rsched" => ext.rsched = av_s(av),
                "ws" => ext.ws = av_num(av),
                "rsa" => ext.rsa = av_num(av),
                "wa" => ext.wa = av_num(av),
                "wtc" => ext.wtc = av_num(av),
                "gc" => ext.gc = av_num(av),
                _ => ext.tu = av_num(av),
            }
            continue;
        };
        let value = match av_n(av) {
            Some(n) => Some(parse_int(attr, n)?),
            None => None,
        };
        let slot = &mut slots[i];
        slot.new[fi] = value;
        match fi {
            0 => slot.tc_pos = pos,
            2 => slot.cp_pos = pos,
            _ => {}
        }
    }
    for (attr, av) in old.iter().flat_map(|o| o.iter()) {
        let Some((name, field)) = split_limit_attr(attr) else { continue };
        if !FIELDS.contains(&field) {
            continue;
        }
        let Some(n) = av_n(av) else { continue };
        let v = parse_int(attr, n)?;
        if field == "tc" {
            if let Some(i) = names.find(slots.len(), name, |p| slots[p as usize].name) {
                slots[i].old_tc = Some(v);
            }
        }
    }
    Ok(slots)
}

/// Why a bucket record without `entity_id` is skipped: upstream skips it for
/// usage, refill and doubling (silently); only shard propagation reads it.
pub const NO_ENTITY_ID: &str = "bucket item has no entity_id: no usage, refill or doubling is derived from it";

/// Parse a MODIFY record as a bucket item (docs/specification.md#bucket-records).
pub fn parse<'a>(rec: &Record<'_, 'a>) -> Parsed<'a> {
    let new = match rec.new_image {
        Some(n) => n,
        None => {
            return if rec.has_dynamodb {
                Parsed::Invalid("MODIFY record has no dynamodb.NewImage".into())
            } else {
                Parsed::Invalid("MODIFY record has no dynamodb object".into())
            }
        }
    };
    let pk_cow = get_s_cow(new, "PK").unwrap_or(Cow::Borrowed(""));
    let sk_cow = get_s_cow(new, "SK").unwrap_or(Cow::Borrowed(""));
    let entity_cow = get_s_cow(new, "entity_id");
    let (pk, sk) = (&*pk_cow, &*sk_cow);
    let Some((ns, rest)) = pk.split_once('/') else {
        if pk.starts_with("BUCKET#") || sk.starts_with("#BUCKET#") {
            return Parsed::Skip("Skipping pre-migration record with unprefixed PK".into());
        }
        return Parsed::Skip("not a rate-limiter bucket item".into());
    };
    if rest.starts_with("BUCKET#") && get_s_cow(new, "SK").is_none_or(|sk| sk.is_empty()) {
        // Refill, doubling and propagation address the item by its SK.
        return Parsed::Invalid("bucket item has no SK string".into());
    }
    let (entity, resource, format, shard_id) = if let Some(b) = rest.strip_prefix("BUCKET#") {
        match split_bucket_pk(b) {
            Some((e, r, s, id)) => (sub(&pk_cow, e), sub(&pk_cow, r), Format::New { shard_str: s.to_string() }, id),
            None => {
                return Parsed::Invalid(format!(
                    "bucket PK {pk:?} is not {{ns}}/BUCKET#{{entity}}#{{resource}}#{{shard}}"
                ))
            }
        }
    } else if let Some(r) = sk.strip_prefix("#BUCKET#") {
        if r.is_empty() {
            return Parsed::Invalid(format!("bucket SK {sk:?} has no resource"));
        }
        match &entity_cow {
            Some(e) if !e.is_empty() => (e.clone(), sub(&sk_cow, r), Format::Old, 0),
            _ => return Parsed::Skip(NO_ENTITY_ID.into()),
        }
    } else {
        return Parsed::Skip("not a rate-limiter bucket item".into());
    };
    let no_entity_id = entity_cow.as_deref().is_none_or(str::is_empty);
    let Some(seq) = rec.seq.clone() else {
        return Parsed::Invalid("bucket record has no dynamodb.SequenceNumber".into());
    };
    let shard_count_text = get_n(new, "shard_count");
    let shard_count = match shard_count_text {
        Some(s) => match parse_int("shard_count", s) {
            Ok(n) if n >= 1 => n,
            Ok(n) => return Parsed::Invalid(format!("shard_count {n} is below 1")),
            Err(e) => return Parsed::Invalid(e),
        },
        None => 1,
    };
    let old_shard_count = match rec.old_image.and_then(|o| get_n(o, "shard_count")) {
        Some(s) => match parse_int("OldImage shard_count", s) {
            Ok(n) => Some(n),
            Err(e) => return Parsed::Invalid(e),
        },
        None => None,
    };
    let rf_ms = match get_n(new, "rf") {
        Some(s) => match parse_int("rf", s) {
            Ok(n) => Some(n),
            Err(e) => return Parsed::Invalid(e),
        },
        None => None,
    };
    let slots = match read_limits(new, rec.old_image) {
        Ok(s) => s,
        Err(e) => return Parsed::Invalid(e),
    };
    let has_tc = |s: &Slot| s.new[0].is_some() && s.old_tc.is_some();
    let mut with_tc: Vec<&Slot> = slots.iter().filter(|s| has_tc(s)).collect();
    with_tc.sort_by_key(|s| s.tc_pos);
    let mut limits = Vec::with_capacity(with_tc.len());
    for s in with_tc {
        let (Some(new_tc), Some(old_tc)) = (s.new[0], s.old_tc) else { continue };
        let Some(tc_delta) = new_tc.checked_sub(old_tc) else {
            return Parsed::Invalid(format!("b_{}_tc: the change from {old_tc} to {new_tc} is out of range", s.name));
        };
        let [tc, tk, cp, ra, rp] = s.new.map(|v| v.unwrap_or(0));
        let ext = (!s.ext.is_empty()).then(|| Box::new(s.ext.clone()));
        limits.push(Limit { name: s.name.to_string(), tc_delta, tk, cp, ra, rp, tc, ext });
    }
    // Slot names are distinct, so a slot is in `limits` exactly when it has `tc` in both images.
    let mut others: Vec<&Slot> = slots.iter().filter(|s| s.cp_pos != usize::MAX && !has_tc(s)).collect();
    others.sort_by_key(|s| s.cp_pos);
    let other_limits = others
        .into_iter()
        .map(|s| {
            let [tc, tk, cp, ra, rp] = s.new.map(|v| v.unwrap_or(0));
            let ext = (!s.ext.is_empty()).then(|| Box::new(s.ext.clone()));
            Limit { name: s.name.to_string(), tc_delta: 0, tk, cp, ra, rp, tc, ext }
        })
        .collect();
    let raises = matches!(format, Format::New { .. })
        && shard_id == 0
        && shard_count_text.is_some()
        && old_shard_count.is_some_and(|old| shard_count > old);
    let (limits, other_limits) = match (no_entity_id, raises) {
        (false, _) => (limits, other_limits),
        (true, true) => (Vec::new(), Vec::new()),
        (true, false) => return Parsed::Skip(NO_ENTITY_ID.into()),
    };
    let ns = sub(&pk_cow, ns);
    let s_of = |name: &str| new.get(name).and_then(av_s);
    let n_of = |name: &str| new.get(name).and_then(av_num);
    let item_ext = ItemExt { sched: s_of("sched"), rsched: s_of("rsched"), sched_tz: s_of("sched_tz"), vu: n_of("vu") };
    Parsed::Bucket(Box::new(BucketRecord {
        index: rec.index,
        seq,
        approx_ms: rec.approx_ms,
        ns,
        entity,
        resource,
        pk: pk_cow,
        sk: sk_cow,
        format,
        shard_id,
        shard_count,
        old_shard_count,
        rf_ms,
        limits,
        other_limits,
        clone_source: raises.then(|| Box::new(crate::shard::CloneSource::new(new))),
        propagation_only: no_entity_id,
        ext: (item_ext != ItemExt::default()).then(|| Box::new(item_ext)),
    }))
}

/// Every MODIFY record of an event that parses as a bucket record, in order
/// (the others are left out): for tests, benches and tools that look at one
/// stage on its own.
pub fn bucket_records(event_json: &str) -> Result<Vec<Box<BucketRecord<'_>>>, crate::plan::PlanError> {
    let all = crate::event::map_records(event_json, |r| match (r.event_name, parse(r)) {
        (Some("MODIFY"), Parsed::Bucket(b)) => Some(b),
        _ => None,
    })?;
    Ok(all.into_iter().flatten().collect())
}

/// PK of a new-format bucket shard.
pub fn bucket_pk(ns: &str, entity: &str, resource: &str, shard: impl std::fmt::Display) -> String {
    format!("{ns}/BUCKET#{entity}#{resource}#{shard}")
}

/// All records of one bucket item in a batch, folded (docs/specification.md#folding-per-bucket-item, W11/W17:
/// the image with the highest sequence number wins, `tc` deltas add up).
#[derive(Debug, Clone)]
pub struct BucketState<'a> {
    /// The latest record (highest sequence number) of the item.
    pub latest: &'a BucketRecord<'a>,
    /// Limits: first-seen order, summed `tc_delta`, other fields from the
    /// latest record that has the limit.
    pub limits: Vec<Limit>,
    /// Indices of every record of the item, ascending.
    pub records: Vec<u32>,
    /// Set when a limit's summed `tc_delta` overflows: the item's records
    /// are invalid (docs/specification.md#dynamodb-limits).
    pub overflow: Option<String>,
}

/// Fold bucket records per item (`PK`, `SK`), in first-seen order; linear in
/// the number of limits however many an item has.
pub fn aggregate<'a>(records: &[&'a BucketRecord<'a>]) -> Vec<BucketState<'a>> {
    let mut index: std::collections::BTreeMap<(&str, &str), usize> = std::collections::BTreeMap::new();
    let mut states: Vec<(BucketState<'a>, Vec<Seq>, Positions)> = Vec::new();
    for &rec in records {
        let slot = *index.entry((&*rec.pk, &*rec.sk)).or_insert_with(|| {
            let state = BucketState { latest: rec, limits: Vec::new(), records: Vec::new(), overflow: None };
            states.push((state, Vec::new(), Positions::default()));
            states.len() - 1
        });
        let (state, limit_seqs, names) = &mut states[slot];
        if rec.seq > state.latest.seq {
            state.latest = rec;
        }
        state.records.push(rec.index);
        for l in &rec.limits {
            match names.find(state.limits.len(), &l.name, |p| &state.limits[p as usize].name) {
                None => {
                    state.limits.push(l.clone());
                    names.pushed(state.limits.len(), |p| &state.limits[p as usize].name);
                    limit_seqs.push(rec.seq.clone());
                }
                Some(i) => {
                    let cur = &mut state.limits[i];
                    match cur.tc_delta.checked_add(l.tc_delta) {
                        Some(sum) => cur.tc_delta = sum,
                        None => {
                            state.overflow.get_or_insert_with(|| {
                                format!("b_{}_tc: the batch's changes of {} overflow when summed", l.name, rec.pk)
                            });
                        }
                    }
                    if rec.seq > limit_seqs[i] {
                        limit_seqs[i] = rec.seq.clone();
                        cur.tk = l.tk;
                        cur.cp = l.cp;
                        cur.ra = l.ra;
                        cur.rp = l.rp;
                        cur.tc = l.tc;
                        cur.ext = l.ext.clone();
                    }
                }
            }
        }
    }
    states
        .into_iter()
        .map(|(mut s, _, _)| {
            s.records.sort_unstable();
            s
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::map_records;
    use serde_json::json;

    /// A bucket MODIFY record in the new format with the given limits
    /// `(name, old_tc, new_tc, tk, cp, ra, rp)`.
    pub fn bucket_record(
        pk: &str,
        seq: u64,
        rf: Option<i64>,
        shard_count: Option<i64>,
        limits: &[(&str, i64, i64, i64, i64, i64, i64)],
    ) -> serde_json::Value {
        let mut new = serde_json::Map::new();
        let mut old = serde_json::Map::new();
        new.insert("PK".into(), json!({"S": pk}));
        new.insert("SK".into(), json!({"S": "#STATE"}));
        new.insert("entity_id".into(), json!({"S": "e"}));
        if let Some(rf) = rf {
            new.insert("rf".into(), json!({"N": rf.to_string()}));
        }
        if let Some(sc) = shard_count {
            new.insert("shard_count".into(), json!({"N": sc.to_string()}));
            old.insert("shard_count".into(), json!({"N": sc.to_string()}));
        }
        for &(n, otc, ntc, tk, cp, ra, rp) in limits {
            for (f, v) in [("tc", ntc), ("tk", tk), ("cp", cp), ("ra", ra), ("rp", rp)] {
                new.insert(format!("b_{n}_{f}"), json!({"N": v.to_string()}));
            }
            old.insert(format!("b_{n}_tc"), json!({"N": otc.to_string()}));
        }
        json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": seq.to_string(), "NewImage": new, "OldImage": old}})
    }

    fn parse_one(rec: serde_json::Value) -> String {
        let text = json!({ "Records": [rec] }).to_string();
        let mut recs = map_records(&text, |r| parse(r)).unwrap();
        match recs.remove(0) {
            Parsed::Bucket(b) => format!(
                "bucket {} {} {} {} {:?} sc={} rf={:?} limits={:?}",
                b.ns,
                b.entity,
                b.resource,
                b.shard_id,
                b.format,
                b.shard_count,
                b.rf_ms,
                b.limits.iter().map(|l| (l.name.as_str(), l.tc_delta)).collect::<Vec<_>>()
            ),
            Parsed::Skip(r) => format!("skip {r}"),
            Parsed::Invalid(r) => format!("invalid {r}"),
        }
    }

    #[test]
    fn bucket_pk_parse_golden_vector_3() {
        assert_eq!(split_bucket_pk("a#b#c#3"), Some(("a", "b#c", "3", 3)));
        assert_eq!(split_bucket_pk("a#0"), None);
        assert_eq!(split_bucket_pk("a#b#x"), None);
        assert_eq!(split_bucket_pk("a#b#-1"), Some(("a", "b", "-1", -1)));
        assert_eq!(split_bucket_pk("#r#0"), Some(("", "r", "0", 0)));
        assert_eq!(split_bucket_pk("u#r# 2"), Some(("u", "r", " 2", 2)));
        assert_eq!(split_bucket_pk("u#r#\t+007\n"), Some(("u", "r", "\t+007\n", 7)));
        assert_eq!(split_bucket_pk("u#r#-0"), Some(("u", "r", "-0", 0)));
        for not_shard in
            ["u#r#", "u#r#-", "u#r#1 2", "u#r#1_0", "u#r#١", "u#r#1.0", "u#r#99999999999999999999999999999999999999999"]
        {
            assert_eq!(split_bucket_pk(not_shard), None, "{not_shard:?}");
        }
    }

    #[test]
    fn limit_attr_split_uses_last_underscore() {
        assert_eq!(split_limit_attr("b_my_limit_tc"), Some(("my_limit", "tc")));
        assert_eq!(split_limit_attr("b__tc"), None);
        assert_eq!(split_limit_attr("b_tc"), None);
        assert_eq!(split_limit_attr("x_a_tc"), None);
    }

    #[test]
    fn new_format_parses_with_shard() {
        let r = bucket_record("ns1/BUCKET#user-1#gpt-4#2", 5, Some(10), Some(4), &[("tpm", 0, 7, 1, 2, 3, 4)]);
        assert_eq!(
            parse_one(r),
            "bucket ns1 user-1 gpt-4 2 New { shard_str: \"2\" } sc=4 rf=Some(10) limits=[(\"tpm\", 7)]"
        );
    }

    #[test]
    fn old_format_takes_entity_from_attribute() {
        let mut r = bucket_record("default/ENTITY#e", 5, Some(10), Some(2), &[("tpm", 0, 5_000_000, 0, 0, 0, 0)]);
        r["dynamodb"]["NewImage"]["SK"] = json!({"S": "#BUCKET#gpt-4"});
        assert_eq!(parse_one(r), "bucket default e gpt-4 0 Old sc=2 rf=Some(10) limits=[(\"tpm\", 5000000)]");
    }

    #[test]
    fn non_buckets_are_skipped_spec_12_1() {
        for sk in ["#LIMIT#x", "#META", "#RESOURCE#gpt-4"] {
            let mut r = bucket_record("default/ENTITY#e", 5, None, None, &[("tpm", 0, 5, 0, 0, 0, 0)]);
            r["dynamodb"]["NewImage"]["SK"] = json!({ "S": sk });
            assert!(parse_one(r).starts_with("skip not a rate-limiter bucket"), "{sk}");
        }
        let r = bucket_record("ENTITY#user-123", 5, None, None, &[]);
        assert_eq!(parse_one(r), "skip not a rate-limiter bucket item");
        let mut r = bucket_record("BUCKET#u#r#0", 5, None, None, &[]);
        r["dynamodb"]["NewImage"]["SK"] = json!({"S": "#STATE"});
        assert_eq!(parse_one(r), "skip Skipping pre-migration record with unprefixed PK");
    }

    #[test]
    fn malformed_buckets_are_invalid_with_reasons() {
        let mut r = bucket_record("default/ENTITY#e", 5, None, None, &[]);
        r["dynamodb"]["NewImage"]["SK"] = json!({"S": "#BUCKET#"});
        assert!(parse_one(r).contains("has no resource"));
        let r = bucket_record("ns/BUCKET#a#0", 5, None, None, &[]);
        assert!(parse_one(r).starts_with("invalid bucket PK"));
        let mut r = bucket_record("ns/BUCKET#a#r#0", 5, None, None, &[("tpm", 0, 5, 0, 0, 0, 0)]);
        r["dynamodb"]["NewImage"]["b_tpm_tc"] = json!({"N": "not_a_number"});
        assert_eq!(parse_one(r), "invalid b_tpm_tc: \"not_a_number\" is not an integer");
        let mut r = bucket_record("ns/BUCKET#a#r#0", 5, None, None, &[]);
        r["dynamodb"]["NewImage"]["rf"] = json!({"N": "1.5"});
        assert!(parse_one(r).starts_with("invalid rf:"));
        let r = bucket_record("ns/BUCKET#a#r#0", 5, None, Some(0), &[]);
        assert!(parse_one(r).contains("below 1"));
        let mut r = bucket_record("ns/BUCKET#a#r#0", 5, None, None, &[]);
        r["dynamodb"]["NewImage"].as_object_mut().unwrap().remove("entity_id");
        assert!(parse_one(r).contains("no entity_id"));
        let mut r = bucket_record("ns/BUCKET#a#r#0", 5, None, None, &[]);
        r["dynamodb"].as_object_mut().unwrap().remove("NewImage");
        assert!(parse_one(r).contains("no dynamodb.NewImage"));
        let r = json!({"eventName": "MODIFY"});
        assert!(parse_one(r).contains("no dynamodb object"));
        let mut r = bucket_record("ns/BUCKET#a#r#0", 5, None, None, &[]);
        r["dynamodb"].as_object_mut().unwrap().remove("SequenceNumber");
        assert!(parse_one(r).contains("SequenceNumber"));
        let mut r = bucket_record("ns/BUCKET#a#r#0", 5, None, None, &[("tpm", 0, 5, 0, 0, 0, 0)]);
        r["dynamodb"]["NewImage"]["b_tpm_tc"] = json!({"N": "9".repeat(38)});
        r["dynamodb"]["OldImage"]["b_tpm_tc"] = json!({"N": format!("-{}", "9".repeat(38))});
        assert!(
            parse_one(r).contains("b_tpm_tc: the change from -999"),
            "a delta beyond i128 is reported, not wrapped"
        );
    }

    #[test]
    fn strings_with_escapes_are_copied_and_equal_the_plain_ones() {
        let plain = bucket_record("ns/BUCKET#user-1#gpt-4#0", 5, None, None, &[("tpm", 0, 7, 1, 2, 3, 4)]);
        let text = json!({ "Records": [plain] }).to_string().replace("user-1#gpt-4", "user\\u002d1#gpt\\u002d4");
        assert!(text.contains("\\u002d"));
        let parsed = map_records(&text, |r| match parse(r) {
            Parsed::Bucket(b) => (b.pk.to_string(), b.entity.to_string(), b.resource.to_string(), b.ns.to_string()),
            other => panic!("{other:?}"),
        })
        .unwrap();
        assert_eq!(parsed[0], ("ns/BUCKET#user-1#gpt-4#0".into(), "user-1".into(), "gpt-4".into(), "ns".into()));
    }

    #[test]
    fn other_limits_are_the_image_limits_without_a_delta() {
        let mut r =
            bucket_record("ns/BUCKET#a#r#0", 5, None, None, &[("tpm", 0, 5, 0, 0, 0, 0), ("rpm", 0, 1, 6, 7, 8, 9)]);
        r["dynamodb"]["OldImage"].as_object_mut().unwrap().remove("b_rpm_tc");
        r["dynamodb"]["NewImage"]["b_zz_cp"] = json!({"S": "not a number"});
        let text = json!({ "Records": [r] }).to_string();
        let others = map_records(&text, |r| match parse(r) {
            Parsed::Bucket(b) => {
                b.other_limits.iter().map(|l| (l.name.clone(), l.tk, l.cp, l.ra, l.rp)).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        })
        .unwrap();
        assert_eq!(others[0], vec![("rpm".to_string(), 6, 7, 8, 9), ("zz".to_string(), 0, 0, 0, 0)]);
    }

    #[test]
    fn limits_need_tc_in_both_images() {
        let mut r = bucket_record("ns/BUCKET#a#r#0", 5, None, None, &[("tpm", 0, 5, 0, 0, 0, 0)]);
        r["dynamodb"]["OldImage"].as_object_mut().unwrap().remove("b_tpm_tc");
        assert!(parse_one(r).ends_with("limits=[]"));
        let mut r = bucket_record("ns/BUCKET#a#r#0", 5, None, None, &[("tpm", 0, 5, 0, 0, 0, 0)]);
        r["dynamodb"]["NewImage"]["b_tpm_tc"] = json!({"S": "5"});
        assert!(parse_one(r).ends_with("limits=[]"), "a wrong AV type counts as missing");
    }

    #[test]
    fn wcu_is_kept_in_limits_and_order_follows_the_image() {
        let r = bucket_record(
            "ns/BUCKET#a#r#0",
            5,
            None,
            None,
            &[("rpm", 0, 1, 0, 0, 0, 0), ("wcu", 0, 1000, 0, 0, 0, 0), ("tpm", 3, 3, 0, 0, 0, 0)],
        );
        assert!(parse_one(r).ends_with("limits=[(\"rpm\", 1), (\"wcu\", 1000), (\"tpm\", 0)]"));
    }

    fn event_text(records: Vec<serde_json::Value>) -> String {
        json!({ "Records": records }).to_string()
    }

    #[test]
    fn aggregation_sums_deltas_and_keeps_the_latest_image_spec_12_1_w11() {
        let text = event_text(vec![
            bucket_record("ns/BUCKET#e#r#0", 20, Some(200), Some(2), &[("tpm", 0, 3_000_000, 7, 9, 9, 9)]),
            bucket_record("ns/BUCKET#e#r#0", 10, Some(100), Some(1), &[("tpm", 0, 2_000_000, 5, 8, 8, 8)]),
            bucket_record("ns/BUCKET#e#r#1", 11, Some(100), Some(1), &[("tpm", 0, 1, 5, 8, 8, 8)]),
        ]);
        let parsed: Vec<BucketRecord> = map_records(&text, |r| match parse(r) {
            Parsed::Bucket(b) => *b,
            other => panic!("{other:?}"),
        })
        .unwrap();
        let refs: Vec<&BucketRecord> = parsed.iter().collect();
        let states = aggregate(&refs);
        assert_eq!(states.len(), 2, "shards are separate items");
        let s = &states[0];
        assert_eq!(s.latest.seq.raw(), "20", "highest sequence number wins, not the last in the list (W17)");
        assert_eq!(s.latest.shard_count, 2);
        assert_eq!(s.limits[0].tc_delta, 5_000_000);
        assert_eq!(s.limits[0].tk, 7);
        assert_eq!(s.records, vec![0, 1]);
    }

    #[test]
    fn watermark_attribute_names_identify_the_source_item() {
        let text = json!({"Records": [
            bucket_record("ns/BUCKET#a#r#3", 5, None, None, &[]),
            {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "6", "NewImage": {
                "PK": {"S": "ns/ENTITY#a"}, "SK": {"S": "#BUCKET#r"}, "entity_id": {"S": "a"}}}}
        ]})
        .to_string();
        let names: Vec<String> = map_records(&text, |r| match parse(r) {
            Parsed::Bucket(b) => b.watermark_attr(),
            other => panic!("{other:?}"),
        })
        .unwrap();
        assert_eq!(names, vec!["wm#3", "wm#ENTITY#a"]);
    }
}
