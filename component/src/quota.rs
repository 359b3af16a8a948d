//! Quota-conserving shard clones of zae-limiter 0.17
//! (docs/specification.md#quota-conserving-clones-zae-limiter-017).
//!
//! A quota (a limit with no refill and a reset: ADR-137) must not gain
//! tokens when `shard_count` doubles. A new shard of a quota is therefore
//! *funded by a move, never a mint* (ADR-145): it takes its share off the
//! existing sibling whose current-period grant covers its slot, in one
//! transaction with its own `Put`, and is granted a fresh share only when no
//! sibling covers the slot. Every clone's transaction also pins the owner's
//! META item on the owner stamp the clone copies (ADR-150).
//!
//! This module holds those decisions as pure functions: no I/O, no clock,
//! checked arithmetic, no panics. Cron evaluation lives elsewhere: every
//! function that needs a schedule takes what it needs from it (a reset edge
//! already computed, an effective capacity, or a closure).
//!
//! Items come in two forms, both DynamoDB JSON, through [`Item`]:
//!
//! * **stream images** (shard 0's `NewImage`), read the way upstream reads
//!   its wire-format image: a number is `int(image.get(a, {}).get("N", d))`,
//!   so an attribute of another type reads as the default;
//! * **read items** (the old shards, read with a strongly consistent
//!   `GetItem`), read the way upstream reads the native values of the boto3
//!   `Table` resource: `NULL` reads as absent where upstream tests
//!   `is None`, and a number must be an integer `N`.
//!
//! Where upstream would raise (a number that is not an integer, a `NULL`
//! where it calls `int()`), these functions return a [`QuotaError`]; the
//! propagation of that record then fails as upstream's does, logged, never
//! a wrong write. One deliberate difference: upstream's `int()` of a native
//! `Decimal` truncates a fractional number (`2.5` reads as 2) and takes a
//! numeric string; here both are errors, as every other number the planner
//! reads (docs/specification.md#conventions).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::bucket::{bucket_pk, split_limit_attr};
use crate::event::parse_int;
use crate::plan::write_json_str;
use crate::refill::floor_div;

/// Largest `shard_count` upstream propagates (`schema.MAX_SHARD_COUNT`).
pub const MAX_SHARD_COUNT: i128 = 32;
/// The reserved schedule value "this limit declares none" (#541).
pub use crate::schedule::BUCKET_SCHED_NONE;
/// The incarnation of an entity with neither `pinc` nor `created_at`.
pub const LEGACY_INCARNATION: &str = "-";
/// META's parent generation attribute (ADR-150).
pub const ENTITY_FIELD_PGEN: &str = "pgen";
/// META's incarnation attribute (ADR-150).
pub const ENTITY_FIELD_PINC: &str = "pinc";
/// A bucket item's copy of the owner's generation.
pub const BUCKET_FIELD_PGEN: &str = "pgen";
/// A bucket item's copy of the owner's incarnation.
pub const BUCKET_FIELD_PINC: &str = "pinc";
/// What a stamp that is not a number reads as (`schema.STAMP_EXPIRED`).
pub const STAMP_EXPIRED: i128 = -1;
/// The per-partition write-capacity limit, never a quota and never divided.
pub const WCU_LIMIT_NAME: &str = "wcu";
/// Sort key of a bucket item.
pub const SK_STATE: &str = "#STATE";
/// Sort key of an entity's META item.
pub const SK_META: &str = "#META";

/// Tokens, millitokens.
pub const FIELD_TK: &str = "tk";
/// Capacity, millitokens.
pub const FIELD_CP: &str = "cp";
/// Refill amount, millitokens.
pub const FIELD_RA: &str = "ra";
/// Refill period, ms.
pub const FIELD_RP: &str = "rp";
/// Consumption counter, millitokens.
pub const FIELD_TC: &str = "tc";
/// Grant count: the shard count a quota's grant was sized at (ADR-145).
pub const FIELD_GC: &str = "gc";
/// Topped-up allowance, millitokens (ADR-149).
pub const FIELD_TU: &str = "tu";
/// Session window start, epoch ms.
pub const FIELD_WS: &str = "ws";
/// Session window applied, epoch ms.
pub const FIELD_WA: &str = "wa";
/// Session window length, seconds (ADR-139).
pub const FIELD_RSA: &str = "rsa";
/// `tc` at the window fan-out, millitokens (#640).
pub const FIELD_WTC: &str = "wtc";
/// A limit's own reset schedule (`b_{name}_rsched`), or the item default (`rsched`).
pub const FIELD_RSCHED: &str = "rsched";
/// A limit's own parameter schedule (`b_{name}_sched`), or the item default (`sched`).
pub const FIELD_SCHED: &str = "sched";
/// The item's schedule time zone (an IANA name; `UTC` when absent).
pub const FIELD_SCHED_TZ: &str = "sched_tz";
/// The item's refill timestamp, epoch ms.
pub const FIELD_RF: &str = "rf";
/// The item's shard count.
pub const FIELD_SHARD_COUNT: &str = "shard_count";

/// `b_{limit}_{field}`.
pub fn bucket_attr(limit: &str, field: &str) -> String {
    format!("b_{limit}_{field}")
}

/// A value upstream would have raised on, with the attribute it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaError(pub String);

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuotaError {}

fn int(attr: &str, s: &str) -> Result<i128, QuotaError> {
    parse_int(attr, s).map_err(QuotaError)
}

/// One attribute value, as far as these rules look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Av<'v> {
    /// `{"N": "…"}`.
    N(&'v str),
    /// `{"S": "…"}`.
    S(&'v str),
    /// `{"NULL": true}`: native `None`.
    Null,
    /// Any other type.
    Other,
}

/// A DynamoDB-JSON item or image, attribute by attribute.
pub trait Item {
    /// The value of attribute `name`, `None` when the item has no such key.
    fn av(&self, name: &str) -> Option<Av<'_>>;

    /// Every attribute name, in item order.
    fn attr_names(&self) -> Vec<&str>;
}

fn av_of_value(v: &Value) -> Av<'_> {
    let Some(o) = v.as_object() else { return Av::Other };
    if let Some(Value::String(n)) = o.get("N") {
        Av::N(n)
    } else if let Some(Value::String(s)) = o.get("S") {
        Av::S(s)
    } else if o.contains_key("NULL") {
        Av::Null
    } else {
        Av::Other
    }
}

impl Item for Map<String, Value> {
    fn av(&self, name: &str) -> Option<Av<'_>> {
        self.get(name).map(av_of_value)
    }

    fn attr_names(&self) -> Vec<&str> {
        self.keys().map(String::as_str).collect()
    }
}

impl Item for crate::json::Obj<'_, '_> {
    fn av(&self, name: &str) -> Option<Av<'_>> {
        let v = self.get(name)?;
        let Some(o) = v.as_object() else { return Some(Av::Other) };
        Some(if let Some(n) = o.get("N").and_then(|x| x.as_str()) {
            Av::N(n)
        } else if let Some(s) = o.get("S").and_then(|x| x.as_str()) {
            Av::S(s)
        } else if o.get("NULL").is_some() {
            Av::Null
        } else {
            Av::Other
        })
    }

    fn attr_names(&self) -> Vec<&str> {
        self.keys().collect()
    }
}

// --- reading stream images (wire format) ------------------------------------

/// `image.get(a, {}).get("N")`.
fn wire_n<'i>(image: &'i dyn Item, attr: &str) -> Option<&'i str> {
    match image.av(attr)? {
        Av::N(n) => Some(n),
        _ => None,
    }
}

/// `image.get(a, {}).get("S")`.
fn wire_s<'i>(image: &'i dyn Item, attr: &str) -> Option<&'i str> {
    match image.av(attr)? {
        Av::S(s) => Some(s),
        _ => None,
    }
}

/// `int(image.get(a, {}).get("N", default))`.
fn wire_int(image: &dyn Item, attr: &str, default: i128) -> Result<i128, QuotaError> {
    wire_n(image, attr).map_or(Ok(default), |n| int(attr, n))
}

/// `int(n) if (n := image.get(a, {}).get("N")) is not None else None`.
fn wire_opt(image: &dyn Item, attr: &str) -> Result<Option<i128>, QuotaError> {
    wire_n(image, attr).map(|n| int(attr, n)).transpose()
}

// --- reading items read with GetItem (native values) ------------------------

/// `int(v) if (v := item.get(a)) is not None else None`.
fn native_opt(item: &dyn Item, attr: &str) -> Result<Option<i128>, QuotaError> {
    match item.av(attr) {
        None | Some(Av::Null) => Ok(None),
        Some(Av::N(n)) => int(attr, n).map(Some),
        Some(_) => Err(QuotaError(format!("{attr}: not a number"))),
    }
}

/// `int(item.get(a, default))`.
fn native_int(item: &dyn Item, attr: &str, default: i128) -> Result<i128, QuotaError> {
    match item.av(attr) {
        None => Ok(default),
        Some(Av::N(n)) => int(attr, n),
        Some(Av::Null) => Err(QuotaError(format!("{attr}: NULL is not a number"))),
        Some(_) => Err(QuotaError(format!("{attr}: not a number"))),
    }
}

/// An item's stored `shard_count`; absent or below 1 reads as 1
/// (`_stored_count`).
pub fn stored_count(item: &dyn Item) -> Result<i128, QuotaError> {
    Ok(native_int(item, FIELD_SHARD_COUNT, 1)?.max(1))
}

/// A stamp's deadline off its attribute (`schema.decode_stamp`): absent is
/// `None`, anything but a number is [`STAMP_EXPIRED`].
pub fn decode_stamp(av: Option<Av<'_>>) -> Result<Option<i128>, QuotaError> {
    match av {
        None => Ok(None),
        Some(Av::N(n)) => int("stamp", n).map(Some),
        Some(_) => Ok(Some(STAMP_EXPIRED)),
    }
}

// --- the shape of a quota ---------------------------------------------------

/// The numbers of one limit of an image (`_extract_limit_attrs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitAttrs {
    /// Limit name.
    pub name: String,
    /// `b_{name}_cp`, millitokens (0 when not a number).
    pub cp_milli: i128,
    /// `b_{name}_tk`, millitokens (0 when not a number).
    pub tk_milli: i128,
    /// `b_{name}_ra`, millitokens (0 when not a number).
    pub ra_milli: i128,
    /// `b_{name}_rp`, ms (0 when not a number).
    pub rp_ms: i128,
}

/// Every limit of an image, found by its `b_{name}_cp` attribute (of any
/// type), in image order. Wire-format numbers: an attribute of another type
/// reads as 0, an `N` that is not an integer is an error.
pub fn extract_limit_attrs(image: &dyn Item) -> Result<Vec<LimitAttrs>, QuotaError> {
    let mut out: Vec<LimitAttrs> = Vec::new();
    for attr in image.attr_names() {
        let Some((name, FIELD_CP)) = split_limit_attr(attr) else { continue };
        let get = |field: &str| wire_int(image, &bucket_attr(name, field), 0);
        let limit = LimitAttrs {
            name: name.to_string(),
            cp_milli: get(FIELD_CP)?,
            tk_milli: get(FIELD_TK)?,
            ra_milli: get(FIELD_RA)?,
            rp_ms: get(FIELD_RP)?,
        };
        match out.iter_mut().find(|l| l.name == limit.name) {
            Some(l) => *l = limit,
            None => out.push(limit),
        }
    }
    Ok(out)
}

/// Whether limit `name` of a (wire-format) image is a quota
/// (`_is_quota_limit`): a zero `b_{name}_ra` together with a reset, which is
/// a `b_{name}_rsa` window (any type), the limit's own non-empty
/// `b_{name}_rsched`, or, unless that is [`BUCKET_SCHED_NONE`], the item's
/// non-empty `rsched`. Only the presence of a schedule is asked, never its
/// content.
pub fn is_quota_limit(name: &str, image: &dyn Item) -> Result<bool, QuotaError> {
    if wire_int(image, &bucket_attr(name, FIELD_RA), 0)? != 0 {
        return Ok(false);
    }
    if image.av(&bucket_attr(name, FIELD_RSA)).is_some() {
        return Ok(true);
    }
    let own = wire_s(image, &bucket_attr(name, FIELD_RSCHED));
    if own == Some(BUCKET_SCHED_NONE) {
        return Ok(false);
    }
    if own.is_some_and(|s| !s.is_empty()) {
        return Ok(true);
    }
    Ok(wire_s(image, FIELD_RSCHED).is_some_and(|s| !s.is_empty()))
}

/// When a quota's grant period ends: what the decisions need of its reset
/// rule, the cron part already evaluated by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetRule {
    /// A calendar quota (or one whose rule resolved to no schedule):
    /// `prev_edge_ms` is `prev_reset_edge(reset_schedule, now_ms)`, the most
    /// recent reset edge at or before now (`None`: no schedule, or no edge in
    /// reach).
    Calendar {
        /// The reset edge in force, epoch ms.
        prev_edge_ms: Option<i64>,
    },
    /// A session quota: a window of `reset_after_s` seconds from `ws`.
    Session {
        /// `b_{name}_rsa`, seconds.
        reset_after_s: i128,
    },
}

/// Where a quota's reset rule comes from on a (wire-format) image
/// (`_quota_reset_rule`), for the caller to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetSource<'i> {
    /// The compact reset schedule to decode with `decode_reset(compact, tz)`:
    /// the limit's own `b_{name}_rsched` unless it is [`BUCKET_SCHED_NONE`]
    /// (then `None`), the item's `rsched` when the own one is absent or empty.
    /// `None` or empty decodes to no entries.
    pub compact: Option<&'i str>,
    /// `sched_tz`, `UTC` when absent.
    pub tz: &'i str,
    /// The raw `b_{name}_rsa` number, if present.
    pub rsa: Option<&'i str>,
}

/// Read [`ResetSource`] off an image.
pub fn quota_reset_source<'i>(name: &str, image: &'i dyn Item) -> ResetSource<'i> {
    let tz = wire_s(image, FIELD_SCHED_TZ).unwrap_or("UTC");
    let own = wire_s(image, &bucket_attr(name, FIELD_RSCHED));
    let compact = match own {
        Some(BUCKET_SCHED_NONE) => None,
        Some(s) if !s.is_empty() => Some(s),
        _ => wire_s(image, FIELD_RSCHED),
    };
    ResetSource { compact, tz, rsa: wire_n(image, &bucket_attr(name, FIELD_RSA)) }
}

impl ResetSource<'_> {
    /// The rule, once the caller has decoded [`ResetSource::compact`]:
    /// `has_entries` says whether it decoded to at least one entry, and
    /// `prev_edge_ms` is its `prev_reset_edge` at now. A `rsa` window makes a
    /// session quota unless a reset schedule rides beside it.
    pub fn rule(&self, has_entries: bool, prev_edge_ms: Option<i64>) -> Result<ResetRule, QuotaError> {
        match self.rsa {
            Some(rsa) if !has_entries => Ok(ResetRule::Session { reset_after_s: int("rsa", rsa)? }),
            _ => Ok(ResetRule::Calendar { prev_edge_ms }),
        }
    }
}

/// Whether a grant belongs to the current period (`quota_period_is_current`,
/// design §5): a session quota needs a live window (`ws + rsa * 1000 > now`)
/// already applied (`ws <= wa`, `wa` defaulting to `rf`); a calendar quota
/// needs no reset edge after `rf`.
pub fn quota_period_is_current(
    rule: &ResetRule,
    rf_ms: i128,
    window_start_ms: Option<i128>,
    window_applied_ms: Option<i128>,
    now_ms: i64,
) -> bool {
    match *rule {
        ResetRule::Session { reset_after_s } => {
            let Some(ws) = window_start_ms else { return false };
            // Saturating: the exact sum is beyond i128 only where it is far
            // from any `now`, on the side the saturated value lands.
            if ws.saturating_add(reset_after_s.saturating_mul(1000)) <= i128::from(now_ms) {
                return false;
            }
            ws <= window_applied_ms.unwrap_or(rf_ms)
        }
        ResetRule::Calendar { prev_edge_ms } => prev_edge_ms.is_none_or(|e| i128::from(e) <= rf_ms),
    }
}

// --- the grant decision (ADR-145) -------------------------------------------

/// One existing shard of a quota as the grant decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSibling {
    /// Shard id.
    pub shard_id: i128,
    /// Its balance, millitokens.
    pub tokens_milli: i128,
    /// The shard count its grant was sized at (at least 1 when built by
    /// [`sibling_from_item`]).
    pub grant_count: i128,
    /// Whether its grant belongs to the current period.
    pub current: bool,
}

/// How a new shard of a quota is funded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaGrant {
    /// The donor, `None` for a fresh grant.
    pub donor_shard: Option<i128>,
    /// The new shard's starting balance, millitokens (moved off the donor).
    pub tokens_milli: i128,
    /// The donor's grant count.
    pub donor_grant_count: Option<i128>,
}

/// One sibling off a read item (`_quota_sibling_from_image`): `None` when the
/// item lacks `b_{limit}_tk` (or it is `NULL`). Without `b_{limit}_gc` the
/// grant count is the stored count, halved while the balance holds more than
/// one share at that count (R7: it was granted at a lower one); a corrupt
/// `gc < 1` reads as the stored count. `capacity_milli` is the quota's
/// schedule-effective capacity; `current` is [`quota_period_is_current`] of
/// the item's `rf`, `b_{limit}_ws` and `b_{limit}_wa` under `rule`.
pub fn sibling_from_item(
    shard_id: i128,
    item: &dyn Item,
    limit: &str,
    rule: &ResetRule,
    capacity_milli: i128,
    now_ms: i64,
) -> Result<Option<QuotaSibling>, QuotaError> {
    let Some(tokens) = native_opt(item, &bucket_attr(limit, FIELD_TK))? else { return Ok(None) };
    let grant_count = match native_opt(item, &bucket_attr(limit, FIELD_GC))? {
        None => {
            let mut g = stored_count(item)?;
            // `g > 1`, so the division is defined.
            while g > 1 && floor_div(capacity_milli, g).is_some_and(|share| tokens > share) {
                g /= 2;
            }
            g
        }
        Some(g) if g < 1 => stored_count(item)?,
        Some(g) => g,
    };
    let ws = native_opt(item, &bucket_attr(limit, FIELD_WS))?;
    let wa = native_opt(item, &bucket_attr(limit, FIELD_WA))?;
    let rf = native_int(item, FIELD_RF, 0)?;
    Ok(Some(QuotaSibling {
        shard_id,
        tokens_milli: tokens,
        grant_count,
        current: quota_period_is_current(rule, rf, ws, wa, now_ms),
    }))
}

/// Python's `a % b` (the result has the divisor's sign); `None` for `b = 0`.
fn py_mod(a: i128, b: i128) -> Option<i128> {
    if b == -1 {
        return Some(0);
    }
    let r = a.checked_rem(b)?;
    Some(if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r })
}

/// How shard `shard_id` is funded (`plan_quota_grant`): a current-period
/// sibling `i` sized at `g` covers every slot `j` with `j % g == i % g`; the
/// covering sibling with the largest `g`, then the lowest id (the first in
/// `siblings` on a full tie), donates `max(0, min(share, its tokens))`. No
/// covering sibling: a fresh share. `shard_count` is not used by the rule
/// (upstream passes it too). A sibling with `grant_count` 0 covers nothing
/// (upstream would divide by zero; [`sibling_from_item`] never builds one).
pub fn plan_quota_grant(siblings: &[QuotaSibling], shard_id: i128, shard_count: i128, share_milli: i128) -> QuotaGrant {
    let _ = shard_count;
    let covers = |s: &&QuotaSibling| {
        s.current
            && s.shard_id != shard_id
            && matches!((py_mod(shard_id, s.grant_count), py_mod(s.shard_id, s.grant_count)), (Some(a), Some(b)) if a == b)
    };
    // `min_by_key` keeps the first of equal keys, as Python's `min`.
    let donor = siblings.iter().filter(covers).min_by_key(|s| (std::cmp::Reverse(s.grant_count), s.shard_id));
    match donor {
        None => QuotaGrant { donor_shard: None, tokens_milli: share_milli, donor_grant_count: None },
        Some(d) => QuotaGrant {
            donor_shard: Some(d.shard_id),
            tokens_milli: share_milli.min(d.tokens_milli).max(0),
            donor_grant_count: Some(d.grant_count),
        },
    }
}

/// The donor side of one move: `tokens_milli` off shard `shard_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDonorDebit {
    /// Donor shard.
    pub shard_id: i128,
    /// The quota.
    pub limit_name: String,
    /// Tokens moved, millitokens.
    pub tokens_milli: i128,
    /// The donor's grant count as read.
    pub grant_count: i128,
    /// Calendar quota: the donor's `rf` must be at or past this reset edge.
    pub guard_rf_ms: Option<i64>,
    /// Session quota: the donor's `b_{name}_wa` must still be this.
    pub guard_wa_ms: Option<i128>,
    /// A donor without `b_{name}_gc` is matched on the `shard_count` it stores.
    pub legacy_shard_count: Option<i128>,
}

/// The debit of a planned move, with its current-period guard
/// (`_donor_debit`): a session quota is guarded on the donor's `wa` as read
/// (no guard when it has none), a calendar quota on `rf` at or past the
/// reset edge in force (no guard when there is none); a donor without the
/// `b_{limit}_gc` key is matched on its stored count.
pub fn donor_debit(
    donor_shard: i128,
    donor_grant_count: i128,
    tokens_milli: i128,
    limit: &str,
    donor: &dyn Item,
    rule: &ResetRule,
) -> Result<QuotaDonorDebit, QuotaError> {
    let (guard_rf_ms, guard_wa_ms) = match *rule {
        ResetRule::Session { .. } => (None, native_opt(donor, &bucket_attr(limit, FIELD_WA))?),
        ResetRule::Calendar { prev_edge_ms } => (prev_edge_ms, None),
    };
    let legacy = donor.av(&bucket_attr(limit, FIELD_GC)).is_none();
    Ok(QuotaDonorDebit {
        shard_id: donor_shard,
        limit_name: limit.to_string(),
        tokens_milli,
        grant_count: donor_grant_count,
        guard_rf_ms,
        guard_wa_ms,
        legacy_shard_count: if legacy { Some(stored_count(donor)?) } else { None },
    })
}

// --- request pieces ---------------------------------------------------------

/// The bucket a propagation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketKey<'a> {
    /// Namespace id.
    pub ns: &'a str,
    /// Entity id.
    pub entity: &'a str,
    /// Resource.
    pub resource: &'a str,
}

impl BucketKey<'_> {
    /// PK of shard `shard`.
    pub fn shard_pk(&self, shard: i128) -> String {
        bucket_pk(self.ns, self.entity, self.resource, shard)
    }

    /// PK of the owner's META item, `{ns}/ENTITY#{entity}`.
    pub fn meta_pk(&self) -> String {
        format!("{}/ENTITY#{}", self.ns, self.entity)
    }
}

/// One request of a write, as data: the item's key, the expressions, the
/// attribute-name placeholders and the values (compact DynamoDB JSON such as
/// `{"N":"5"}`), each list in the order upstream builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestParts {
    /// `PK`.
    pub pk: String,
    /// `SK`.
    pub sk: String,
    /// `UpdateExpression`, `None` for a `ConditionCheck`.
    pub update_expression: Option<String>,
    /// `ConditionExpression`.
    pub condition_expression: String,
    /// `(placeholder, attribute name)`.
    pub names: Vec<(String, String)>,
    /// `(placeholder, DynamoDB JSON value)`.
    pub values: Vec<(String, String)>,
}

fn n_json(v: impl fmt::Display) -> String {
    format!("{{\"N\":\"{v}\"}}")
}

fn s_json(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    out.push_str("{\"S\":");
    write_json_str(&mut out, v);
    out.push('}');
    out
}

/// Insert into an ordered map: a repeated key keeps its first position and
/// takes the last value (a Python dict).
fn put(list: &mut Vec<(String, String)>, key: String, value: String) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => list.push((key, value)),
    }
}

/// The donor `Update`s of one clone's transaction (`_donor_update_items`):
/// one per donor shard, in shard order; the quotas moving off one donor share
/// its `Update` (`ADD #qt{i} :qn{i}, …`), each conditioned on the donor still
/// holding the tokens, still carrying the grant count read (or, with no
/// `gc`, the `shard_count` read) and its grant still in the current period.
pub fn donor_update_items(key: &BucketKey, debits: &[QuotaDonorDebit]) -> Vec<RequestParts> {
    let mut by_shard: BTreeMap<i128, Vec<&QuotaDonorDebit>> = BTreeMap::new();
    for d in debits {
        by_shard.entry(d.shard_id).or_default().push(d);
    }
    let mut out = Vec::with_capacity(by_shard.len());
    for (shard, group) in by_shard {
        let mut names = vec![("#qsc".to_string(), FIELD_SHARD_COUNT.to_string())];
        let mut values: Vec<(String, String)> = Vec::new();
        let mut adds: Vec<String> = Vec::new();
        let mut conds: Vec<String> = vec!["attribute_exists(PK)".into()];
        for (i, d) in group.iter().enumerate() {
            put(&mut names, format!("#qt{i}"), bucket_attr(&d.limit_name, FIELD_TK));
            put(&mut names, format!("#qg{i}"), bucket_attr(&d.limit_name, FIELD_GC));
            put(&mut values, format!(":qx{i}"), n_json(d.tokens_milli));
            // `tokens_milli` is `min(share, tk)` of i128 values: negating it
            // overflows only for i128::MIN, which no balance can be.
            put(&mut values, format!(":qn{i}"), n_json(NegDisplay(d.tokens_milli)));
            put(&mut values, format!(":qg{i}"), n_json(d.grant_count));
            adds.push(format!("#qt{i} :qn{i}"));
            conds.push(format!("#qt{i} >= :qx{i}"));
            let mut legacy = format!(":qg{i}");
            if let Some(count) = d.legacy_shard_count {
                legacy = format!(":ql{i}");
                put(&mut values, legacy.clone(), n_json(count));
            }
            conds.push(format!("(#qg{i} = :qg{i} OR (attribute_not_exists(#qg{i}) AND #qsc = {legacy}))"));
            if let Some(edge) = d.guard_rf_ms {
                put(&mut names, "#qrf".into(), FIELD_RF.into());
                put(&mut values, format!(":qe{i}"), n_json(edge));
                conds.push(format!("#qrf >= :qe{i}"));
            }
            if let Some(wa) = d.guard_wa_ms {
                put(&mut names, format!("#qw{i}"), bucket_attr(&d.limit_name, FIELD_WA));
                put(&mut values, format!(":qw{i}"), n_json(wa));
                conds.push(format!("#qw{i} = :qw{i}"));
            }
        }
        out.push(RequestParts {
            pk: key.shard_pk(shard),
            sk: SK_STATE.into(),
            update_expression: Some(format!("ADD {}", adds.join(", "))),
            condition_expression: conds.join(" AND "),
            names,
            values,
        });
    }
    out
}

/// `-v` written in decimal without overflowing.
struct NegDisplay(i128);

impl fmt::Display for NegDisplay {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0.checked_neg() {
            Some(n) => write!(f, "{n}"),
            // -i128::MIN = 2^127.
            None => f.write_str("170141183460469231730687303715884105728"),
        }
    }
}

/// Path 1's raise of a shard carrying a quota, with each grant size frozen
/// (`_quota_count_freeze`): `SET #qsc = :qnew, #qf{i} = if_not_exists(#qf{i},
/// :qo{i}), …` under `#qsc < :qnew`. `grants` is `(quota, grant count)`.
pub fn quota_count_freeze(pk: &str, sk: &str, new_count: i128, grants: &[(String, i128)]) -> RequestParts {
    let mut names = vec![("#qsc".to_string(), FIELD_SHARD_COUNT.to_string())];
    let mut sets = vec!["#qsc = :qnew".to_string()];
    let mut values = vec![(":qnew".to_string(), n_json(new_count))];
    for (i, (name, grant_count)) in grants.iter().enumerate() {
        put(&mut names, format!("#qf{i}"), bucket_attr(name, FIELD_GC));
        put(&mut values, format!(":qo{i}"), n_json(grant_count));
        sets.push(format!("#qf{i} = if_not_exists(#qf{i}, :qo{i})"));
    }
    RequestParts {
        pk: pk.into(),
        sk: sk.into(),
        update_expression: Some(format!("SET {}", sets.join(", "))),
        condition_expression: "#qsc < :qnew".into(),
        names,
        values,
    }
}

/// A condition with its placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The expression.
    pub expression: String,
    /// `(placeholder, attribute name)`, only those the expression uses.
    pub names: Vec<(String, String)>,
    /// `(placeholder, DynamoDB JSON value)`, only those the expression uses.
    pub values: Vec<(String, String)>,
}

/// The condition a bucket create pins on its owner's META
/// (`owner_meta_condition`, ADR-150). `exists`: `Some(true)` when META was
/// found, `Some(false)` when it was not (`attribute_not_exists(PK)` only),
/// `None` when the reader cannot tell (no term on `PK`). `pgen` 0 also
/// accepts a META without `pgen`; `pinc` is matched against `pinc`, else
/// `created_at`, else (for [`LEGACY_INCARNATION`]) nothing at all.
pub fn owner_meta_condition(exists: Option<bool>, pgen: Option<i128>, pinc: Option<&str>) -> Condition {
    if exists == Some(false) {
        return Condition { expression: "attribute_not_exists(PK)".into(), names: vec![], values: vec![] };
    }
    let mut parts: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut values = Vec::new();
    if exists == Some(true) {
        parts.push("attribute_exists(PK)".into());
    }
    names.push(("#opg".to_string(), ENTITY_FIELD_PGEN.to_string()));
    match pgen {
        None => parts.push("attribute_not_exists(#opg)".into()),
        Some(g) => {
            values.push((":opg".to_string(), n_json(g)));
            parts.push(if g == 0 {
                "(attribute_not_exists(#opg) OR #opg = :opg)".into()
            } else {
                "#opg = :opg".into()
            });
        }
    }
    names.push(("#opi".to_string(), ENTITY_FIELD_PINC.to_string()));
    match pinc {
        None => parts.push("attribute_not_exists(#opi)".into()),
        Some(inc) => {
            names.push(("#oca".to_string(), "created_at".to_string()));
            values.push((":opi".to_string(), s_json(inc)));
            let created =
                if inc == LEGACY_INCARNATION { "(#oca = :opi OR attribute_not_exists(#oca))" } else { "#oca = :opi" };
            parts.push(format!("(#opi = :opi OR (attribute_not_exists(#opi) AND {created}))"));
        }
    }
    Condition { expression: parts.join(" AND "), names, values }
}

/// The owner stamp a clone copies from shard 0's image: `(pgen, pinc)`, each
/// `None` when absent or `NULL`. `pgen` must be an integer `N`; `pinc` is a
/// string (`S`, or an `N` taken as written).
pub fn owner_stamp(image: &dyn Item) -> Result<(Option<i128>, Option<&str>), QuotaError> {
    let pgen = native_opt(image, BUCKET_FIELD_PGEN)?;
    let pinc = match image.av(BUCKET_FIELD_PINC) {
        None | Some(Av::Null) => None,
        Some(Av::S(s) | Av::N(s)) => Some(s),
        Some(Av::Other) => return Err(QuotaError(format!("{BUCKET_FIELD_PINC}: not a string"))),
    };
    Ok((pgen, pinc))
}

/// The `ConditionCheck` pinning a clone to its owner's META
/// (`_clone_owner_check`, ADR-150): the owner stamp of shard 0's image must
/// still be META's; an image with no stamp at all asserts META has none
/// either (no term on META's existence).
pub fn clone_owner_check(key: &BucketKey, image: &dyn Item) -> Result<RequestParts, QuotaError> {
    let (pgen, pinc) = owner_stamp(image)?;
    let exists = if pgen.is_some() || pinc.is_some() { Some(true) } else { None };
    let c = owner_meta_condition(exists, pgen, pinc);
    Ok(RequestParts {
        pk: key.meta_pk(),
        sk: SK_META.into(),
        update_expression: None,
        condition_expression: c.expression,
        names: c.names,
        values: c.values,
    })
}

// --- legacy grants on read items --------------------------------------------

/// A legacy quota of an old shard whose schedule-effective capacity the
/// caller computes (`effective_params(cp, 0, rp, decode(compact, tz),
/// now).0`, the base `cp` when `compact` does not decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyLimit<'l> {
    /// The shard the item belongs to.
    pub shard: i128,
    /// The limit's numbers on that item.
    pub limit: &'l LimitAttrs,
    /// The parameter schedule in force: the limit's own `b_{name}_sched`
    /// unless it is [`BUCKET_SCHED_NONE`] (then `None`), else the item's
    /// `sched`. `None` or empty means no schedule.
    pub compact: Option<&'l str>,
    /// `sched_tz`, `UTC` when absent.
    pub tz: &'l str,
}

/// `(quota, grant count)` for every legacy quota a read item carries
/// (`_legacy_quota_sizes`): each limit other than `wcu` and the names in
/// `skip` that has no `b_{name}_gc` key and is a quota by
/// [`is_quota_limit`], sized by the R7 rule of [`sibling_from_item`] against
/// the capacity `capacity` gives. Item order.
pub fn legacy_quota_sizes(
    shard: i128,
    item: &dyn Item,
    skip: &[&str],
    now_ms: i64,
    capacity: &dyn Fn(&LegacyLimit) -> i128,
) -> Result<Vec<(String, i128)>, QuotaError> {
    let tz = wire_s(item, FIELD_SCHED_TZ).unwrap_or("UTC");
    let mut sizes = Vec::new();
    for limit in extract_limit_attrs(item)? {
        let name = limit.name.as_str();
        if name == WCU_LIMIT_NAME
            || skip.contains(&name)
            || item.av(&bucket_attr(name, FIELD_GC)).is_some()
            || !is_quota_limit(name, item)?
        {
            continue;
        }
        let compact = match wire_s(item, &bucket_attr(name, FIELD_SCHED)) {
            Some(BUCKET_SCHED_NONE) => None,
            Some(own) if !own.is_empty() => Some(own),
            _ => wire_s(item, FIELD_SCHED),
        };
        let cap = capacity(&LegacyLimit { shard, limit: &limit, compact, tz });
        let rule = ResetRule::Calendar { prev_edge_ms: None };
        if let Some(s) = sibling_from_item(shard, item, name, &rule, cap, now_ms)? {
            sizes.push((limit.name.clone(), s.grant_count));
        }
    }
    Ok(sizes)
}

/// The highest `shard_count` stored by the old shards when it is above
/// `new_count`: the record was overtaken by a later doubling, and no quota
/// clone may be pre-created from it (each would be sized at the older
/// count). `None` otherwise.
pub fn overtaken_by<'i>(
    old_items: impl IntoIterator<Item = &'i Map<String, Value>>,
    new_count: i128,
) -> Result<Option<i128>, QuotaError> {
    let mut max: Option<i128> = None;
    for item in old_items {
        let c = stored_count(item)?;
        max = Some(max.map_or(c, |m| m.max(c)));
    }
    Ok(max.filter(|m| *m > new_count))
}

/// Where the parameter schedule of a limit of shard 0's image comes from,
/// for the caller to compute [`ImageLimit::effective_cp_milli`]
/// (the head of upstream's `propagate_shard_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamScheduleSource<'i> {
    /// The item's `sched`, decoded for every limit: if it does not decode,
    /// no clone is pre-created (even for a limit that declares none).
    pub item: Option<&'i str>,
    /// The limit's own `b_{name}_sched`, unless it is [`BUCKET_SCHED_NONE`].
    pub own: Option<&'i str>,
    /// `b_{name}_sched` is [`BUCKET_SCHED_NONE`]: the limit takes no
    /// schedule, neither its own nor the item's.
    pub declares_none: bool,
    /// `sched_tz`, `UTC` when absent.
    pub tz: &'i str,
}

/// Read [`ParamScheduleSource`] off an image. The schedule in force is none
/// when `declares_none`, else `own` decoded when that is not empty, else
/// `item` decoded; a decode error of `item` or `own` is a schedule error.
pub fn param_schedule_source<'i>(name: &str, image: &'i dyn Item) -> ParamScheduleSource<'i> {
    let own = wire_s(image, &bucket_attr(name, FIELD_SCHED));
    let declares_none = own == Some(BUCKET_SCHED_NONE);
    ParamScheduleSource {
        item: wire_s(image, FIELD_SCHED),
        own: if declares_none { None } else { own },
        declares_none,
        tz: wire_s(image, FIELD_SCHED_TZ).unwrap_or("UTC"),
    }
}

// --- the whole decision of one propagation ----------------------------------

/// One limit of shard 0's `NewImage` as the caller resolved it, in the
/// image order of the `b_{name}_cp` attributes ([`extract_limit_attrs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLimit {
    /// Limit name.
    pub name: String,
    /// The stored `b_{name}_cp` (a `wcu` clone starts at it, undivided).
    pub cp_milli: i128,
    /// The capacity in force now: `effective_params(cp, ra, rp, schedule,
    /// now).0`, the schedule being none when `b_{name}_sched` is
    /// [`BUCKET_SCHED_NONE`], else the limit's own, else the item's `sched`.
    pub effective_cp_milli: i128,
    /// `Some` when the limit is a quota ([`is_quota_limit`]; never `wcu`),
    /// with its rule ([`quota_reset_source`], [`ResetSource::rule`]).
    pub quota: Option<ResetRule>,
}

/// Everything one propagation's quota decisions need.
#[derive(Clone, Copy)]
pub struct PropagationInput<'a> {
    /// The bucket.
    pub key: BucketKey<'a>,
    /// Shard 0's `NewImage` (its `rf`, `b_{q}_ws`/`wa`, `b_{l}_wtc` and owner stamp).
    pub image: &'a dyn Item,
    /// Its limits ([`ImageLimit`]).
    pub limits: &'a [ImageLimit],
    /// Set when a schedule of the image does not decode (the first limit's
    /// error, as upstream stops at it): no sibling read, no freeze, no clone.
    pub schedule_error: Option<&'a str>,
    /// The image's old `shard_count`.
    pub old_count: i128,
    /// Its new `shard_count` (at least 1).
    pub new_count: i128,
    /// Shards at or past this are never written (upstream: skips the whole
    /// propagation above [`MAX_SHARD_COUNT`]; here the caller's cap).
    pub max_shard_count: i128,
    /// The old shards `0 .. old_count` read with a consistent `GetItem`
    /// (absent: no item), or `None` when the read failed. Read only when
    /// [`needs_sibling_read`]; entries outside `0 .. old_count` are ignored.
    pub old_items: Option<&'a BTreeMap<i128, Map<String, Value>>>,
    /// Now, epoch ms (the same instant the rules' edges were computed at).
    pub now_ms: i64,
    /// Effective capacity of a legacy quota of an old shard ([`LegacyLimit`]).
    pub legacy_capacity: &'a dyn Fn(&LegacyLimit) -> i128,
}

/// Whether the old shards must be read before planning: the image carries a
/// quota and every schedule decoded.
pub fn needs_sibling_read(limits: &[ImageLimit], schedule_error: Option<&str>) -> bool {
    schedule_error.is_none() && limits.iter().any(|l| l.quota.is_some() && l.name != WCU_LIMIT_NAME)
}

/// Path 1 for one existing shard: raise `shard_count` (`SET #sc = :new`
/// under `#sc < :new`) when `freeze` is empty, else [`quota_count_freeze`]
/// with these `(quota, grant count)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingShard {
    /// Shard id.
    pub shard: i128,
    /// Grant sizes to freeze: the image's quotas first (as read off this
    /// shard), then its legacy quotas the image does not carry.
    pub freeze: Vec<(String, i128)>,
}

/// One change of a clone item relative to shard 0's image, to be applied in
/// order after the keys and `shard_count` (a `Set` of an absent attribute
/// appends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemEdit {
    /// Set attribute to an integer `N`.
    Set(String, i128),
    /// Remove attribute (if present).
    Remove(String),
}

/// A clone to create: one transaction of its `Put` (shard 0's image with the
/// keys, `shard_count = new_count` and `edits`, under
/// `attribute_not_exists(PK)`), then `donor_updates`, then the owner check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedClone {
    /// Target shard.
    pub shard: i128,
    /// Per quota `b_{q}_gc = new_count` and no `b_{q}_tu`; then per limit
    /// (non-quotas in image order, then quotas) `b_{l}_tk` = its starting
    /// tokens, `b_{l}_tc = 0`, and `b_{l}_wtc = 0` when the image has one.
    pub edits: Vec<ItemEdit>,
    /// The moves funding its quotas.
    pub debits: Vec<QuotaDonorDebit>,
    /// [`donor_update_items`] of `debits`.
    pub donor_updates: Vec<RequestParts>,
}

/// Why a new shard is not pre-created (the client creates it lazily).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A schedule of the image does not decode.
    ScheduleError(String),
    /// The old shards could not be read, so no move can be sized.
    SiblingReadFailed,
    /// An old shard stores a count above this record's: a later doubling
    /// overtook it.
    Overtaken {
        /// The highest stored count.
        stored_count: i128,
    },
    /// A move onto a quota whose reset or roll is pending on the image (R13).
    StaleMove {
        /// The first such quota.
        limit: String,
    },
}

/// The decision for one new shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneDecision {
    /// Create it.
    Create(PlannedClone),
    /// Leave it to the client.
    Skip {
        /// Target shard.
        shard: i128,
        /// Why.
        reason: SkipReason,
    },
}

/// The quota decisions of one propagation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropagationPlan {
    /// Path 1, shards `1 .. min(old_count, max)`.
    pub existing: Vec<ExistingShard>,
    /// Path 2, shards `old_count .. min(new_count, max)`.
    pub clones: Vec<CloneDecision>,
    /// The `ConditionCheck` every created clone's transaction ends with;
    /// `None` when no clone is planned.
    pub owner_check: Option<RequestParts>,
    /// The image's quotas, image order.
    pub quota_names: Vec<String>,
    /// Per quota, the siblings as read (before any planned move).
    pub siblings: Vec<(String, Vec<QuotaSibling>)>,
    /// The highest count the old shards store (`new_count` when none was
    /// read), for [`plan_repair`].
    pub seen_count: i128,
}

impl PropagationPlan {
    /// The shards a clone is planned for.
    pub fn created(&self) -> impl Iterator<Item = i128> + '_ {
        self.clones.iter().filter_map(|c| match c {
            CloneDecision::Create(p) => Some(p.shard),
            CloneDecision::Skip { .. } => None,
        })
    }
}

/// Plan the quota side of one `shard_count` raise (`propagate_shard_count`).
///
/// Clones are planned in shard order, each assuming every earlier one
/// succeeded: after a planned move the donor's balance is lowered by it, as
/// upstream lowers it after each successful transaction, so an executor that
/// runs them in order and sees every one succeed writes exactly what
/// upstream writes. If one is cancelled, the donor still holds what it was
/// to lose, and a later debit of the same donor carries a `#qt >= :qx`
/// condition and a size computed from a balance lower than the real one:
/// it can only move less than upstream would, or fail its condition and be
/// skipped, never move tokens the donor does not hold.
pub fn plan_propagation(input: &PropagationInput) -> Result<PropagationPlan, QuotaError> {
    let new_count = input.new_count;
    if new_count < 1 {
        return Err(QuotaError(format!("shard_count {new_count} is below 1")));
    }
    let existing_end = input.old_count.min(input.max_shard_count);
    let target_end = new_count.min(input.max_shard_count);
    let targets = input.old_count.max(1)..target_end;

    // Starting tokens: `wcu` undivided, other limits a share of the capacity
    // in force; a quota's is decided per target.
    let mut starting: Vec<(&str, i128)> = Vec::new();
    let mut quotas: Vec<(&str, i128, i128, ResetRule)> = Vec::new(); // name, share, capacity, rule
    if input.schedule_error.is_none() {
        for l in input.limits {
            if l.name == WCU_LIMIT_NAME {
                starting.push((&l.name, l.cp_milli));
                continue;
            }
            let share = floor_div(l.effective_cp_milli, new_count).unwrap_or(0);
            match l.quota {
                Some(rule) => quotas.push((&l.name, share, l.effective_cp_milli, rule)),
                None => starting.push((&l.name, share)),
            }
        }
    }
    let quota_names: Vec<String> = quotas.iter().map(|q| q.0.to_string()).collect();
    let skip_names: Vec<&str> = quotas.iter().map(|q| q.0).collect();

    let empty = BTreeMap::new();
    let read = if quotas.is_empty() { Some(&empty) } else { input.old_items };
    let old: Vec<(i128, &Map<String, Value>)> =
        read.map(|m| m.range(0..input.old_count.max(0)).map(|(s, i)| (*s, i)).collect()).unwrap_or_default();

    let mut siblings: Vec<(&str, Vec<QuotaSibling>)> = Vec::new();
    let mut extra: BTreeMap<i128, Vec<(String, i128)>> = BTreeMap::new();
    if !quotas.is_empty() && read.is_some() {
        for &(shard, item) in &old {
            let legacy = legacy_quota_sizes(shard, item, &skip_names, input.now_ms, input.legacy_capacity)?;
            if !legacy.is_empty() {
                extra.insert(shard, legacy);
            }
        }
        for &(name, _, capacity, rule) in &quotas {
            let mut group = Vec::new();
            for &(shard, item) in &old {
                if let Some(s) = sibling_from_item(shard, item, name, &rule, capacity, input.now_ms)? {
                    group.push(s);
                }
            }
            siblings.push((name, group));
        }
    }

    let mut existing = Vec::new();
    for shard in 1..existing_end {
        let mut freeze: Vec<(String, i128)> = siblings
            .iter()
            .flat_map(|(name, group)| {
                group.iter().filter(|s| s.shard_id == shard).map(|s| (name.to_string(), s.grant_count))
            })
            .collect();
        freeze.extend(extra.get(&shard).into_iter().flatten().cloned());
        existing.push(ExistingShard { shard, freeze });
    }

    let mut plan = PropagationPlan {
        existing,
        clones: Vec::new(),
        owner_check: None,
        quota_names,
        siblings: siblings.iter().map(|(n, g)| (n.to_string(), g.clone())).collect(),
        seen_count: new_count,
    };
    let skip_all = |plan: &mut PropagationPlan, reason: SkipReason| {
        plan.clones = targets.clone().map(|shard| CloneDecision::Skip { shard, reason: reason.clone() }).collect();
    };
    if let Some(e) = input.schedule_error {
        skip_all(&mut plan, SkipReason::ScheduleError(e.to_string()));
        return Ok(plan);
    }
    if read.is_none() {
        skip_all(&mut plan, SkipReason::SiblingReadFailed);
        return Ok(plan);
    }
    if let Some(max) = overtaken_by(old.iter().map(|(_, item)| *item), i128::MIN)? {
        plan.seen_count = max;
    }
    if !quotas.is_empty() && plan.seen_count > new_count {
        let stored_count = plan.seen_count;
        skip_all(&mut plan, SkipReason::Overtaken { stored_count });
        return Ok(plan);
    }

    // R13: a quota whose grant on the image is not current.
    let image = input.image;
    let image_rf = wire_int(image, FIELD_RF, 0)?;
    let mut stale: Vec<&str> = Vec::new();
    for &(name, _, _, rule) in &quotas {
        let ws = wire_opt(image, &bucket_attr(name, FIELD_WS))?;
        let wa = wire_opt(image, &bucket_attr(name, FIELD_WA))?;
        if !quota_period_is_current(&rule, image_rf, ws, wa, input.now_ms) {
            stale.push(name);
        }
    }
    plan.owner_check = Some(clone_owner_check(&input.key, image)?);

    for target in targets.clone() {
        let mut edits = Vec::new();
        let mut grants: Vec<(&str, i128)> = starting.clone();
        let mut debits = Vec::new();
        let mut stale_move: Option<&str> = None;
        for (qi, &(name, share, _, rule)) in quotas.iter().enumerate() {
            let group = siblings.get(qi).map_or(&[][..], |(_, g)| &g[..]);
            let grant = plan_quota_grant(group, target, new_count, share);
            grants.push((name, grant.tokens_milli));
            edits.push(ItemEdit::Set(bucket_attr(name, FIELD_GC), new_count));
            edits.push(ItemEdit::Remove(bucket_attr(name, FIELD_TU)));
            if let Some(donor) = grant.donor_shard {
                if stale_move.is_none() && stale.contains(&name) {
                    stale_move = Some(name);
                }
                if let (Some(gc), true) = (grant.donor_grant_count, grant.tokens_milli > 0) {
                    // A donor is a sibling, so it was read.
                    let Some((_, item)) = old.iter().find(|(s, _)| *s == donor) else { continue };
                    debits.push(donor_debit(donor, gc, grant.tokens_milli, name, *item, &rule)?);
                }
            }
        }
        if let Some(limit) = stale_move {
            plan.clones
                .push(CloneDecision::Skip { shard: target, reason: SkipReason::StaleMove { limit: limit.into() } });
            continue;
        }
        for (name, tokens) in &grants {
            edits.push(ItemEdit::Set(bucket_attr(name, FIELD_TK), *tokens));
            edits.push(ItemEdit::Set(bucket_attr(name, FIELD_TC), 0));
            let wtc = bucket_attr(name, FIELD_WTC);
            if image.av(&wtc).is_some() {
                edits.push(ItemEdit::Set(wtc, 0));
            }
        }
        // Plan the next clones against what the donors have left.
        for d in &debits {
            if let Some((_, group)) = siblings.iter_mut().find(|(n, _)| *n == d.limit_name) {
                for s in group.iter_mut().filter(|s| s.shard_id == d.shard_id) {
                    s.tokens_milli = s.tokens_milli.saturating_sub(d.tokens_milli);
                }
            }
        }
        let donor_updates = donor_update_items(&input.key, &debits);
        plan.clones.push(CloneDecision::Create(PlannedClone { shard: target, edits, debits, donor_updates }));
    }
    Ok(plan)
}

/// The repair after a propagation created quota clones
/// (`_repair_quota_clones`): given a later consistent read of shard 0
/// (`None`: no item), when the higher of it and `seen_count` is above
/// `new_count` a later doubling overtook the clones while they were being
/// created, and each created clone gets [`quota_count_freeze`] at that count
/// with every quota's grant frozen at `new_count`. Nothing when no clone was
/// created or the image carries no quota.
pub fn plan_repair(
    key: &BucketKey,
    new_count: i128,
    seen_count: i128,
    later_shard0: Option<&dyn Item>,
    created: &[i128],
    quota_names: &[String],
) -> Result<Vec<RequestParts>, QuotaError> {
    if created.is_empty() || quota_names.is_empty() {
        return Ok(Vec::new());
    }
    let later = match later_shard0 {
        Some(item) => stored_count(item)?,
        None => 1,
    };
    let current = seen_count.max(later);
    if current <= new_count {
        return Ok(Vec::new());
    }
    let grants: Vec<(String, i128)> = quota_names.iter().map(|n| (n.clone(), new_count)).collect();
    Ok(created.iter().map(|&shard| quota_count_freeze(&key.shard_pk(shard), SK_STATE, current, &grants)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn n(v: i128) -> Value {
        json!({ "N": v.to_string() })
    }

    const CAL: ResetRule = ResetRule::Calendar { prev_edge_ms: Some(1_000) };
    const KEY: BucketKey = BucketKey { ns: "ns", entity: "e", resource: "r" };

    #[test]
    fn a_quota_is_a_zero_rate_with_a_reset() {
        let q = |v: Value| is_quota_limit("q", &item(v));
        assert_eq!(q(json!({"b_q_ra": n(0), "rsched": {"S": "1m0h0"}})), Ok(true), "item default");
        assert_eq!(q(json!({"rsched": {"S": "1m0h0"}})), Ok(true), "absent ra reads as 0");
        assert_eq!(q(json!({"b_q_ra": n(5), "rsched": {"S": "1m0h0"}})), Ok(false), "a dripping limit");
        assert_eq!(q(json!({"b_q_ra": n(0)})), Ok(false), "a zero rate alone is corrupt, not a quota");
        assert_eq!(
            q(json!({"b_q_rsched": {"S": "-"}, "rsched": {"S": "1m0h0"}})),
            Ok(false),
            "#541 blocks the default"
        );
        assert_eq!(q(json!({"b_q_rsched": {"S": "-"}, "b_q_rsa": n(60)})), Ok(true), "rsa is asked before the marker");
        assert_eq!(q(json!({"b_q_rsa": {"S": "?"}})), Ok(true), "rsa: presence, any type");
        assert_eq!(q(json!({"b_q_rsched": {"S": ""}, "rsched": {"S": ""}})), Ok(false), "empty schedules");
        assert_eq!(q(json!({"b_q_rsched": {"S": ""}, "rsched": {"S": "x"}})), Ok(true), "an empty own one inherits");
        assert_eq!(q(json!({"b_q_ra": {"S": "5"}, "rsched": {"S": "x"}})), Ok(true), "a non-N rate reads as 0");
        assert!(q(json!({"b_q_ra": {"N": "0.5"}})).is_err(), "upstream's int() raises");
    }

    #[test]
    fn the_reset_source_resolves_like_upstream() {
        let img = item(json!({"sched_tz": {"S": "Europe/Paris"}, "rsched": {"S": "D"}, "b_q_rsched": {"S": "-"},
            "b_q_rsa": n(60), "b_r_rsched": {"S": "own"}, "b_s_rsched": {"S": ""}}));
        let q = quota_reset_source("q", &img);
        assert_eq!((q.compact, q.tz, q.rsa), (None, "Europe/Paris", Some("60")));
        assert_eq!(q.rule(false, None), Ok(ResetRule::Session { reset_after_s: 60 }));
        assert_eq!(q.rule(true, Some(5)), Ok(ResetRule::Calendar { prev_edge_ms: Some(5) }), "rsa beside a schedule");
        assert_eq!(quota_reset_source("r", &img).compact, Some("own"));
        assert_eq!(quota_reset_source("s", &img).compact, Some("D"), "an empty own one inherits");
        assert_eq!(quota_reset_source("t", &item(json!({}))).tz, "UTC");
        let bad = item(json!({"b_q_rsa": {"N": "1.5"}}));
        assert!(quota_reset_source("q", &bad).rule(false, None).is_err());
        assert!(quota_reset_source("q", &bad).rule(true, None).is_ok(), "not parsed beside a schedule");
    }

    #[test]
    fn stored_count_is_at_least_one() {
        assert_eq!(stored_count(&item(json!({}))), Ok(1));
        assert_eq!(stored_count(&item(json!({"shard_count": n(0)}))), Ok(1));
        assert_eq!(stored_count(&item(json!({"shard_count": n(-4)}))), Ok(1));
        assert_eq!(stored_count(&item(json!({"shard_count": n(8)}))), Ok(8));
        assert!(stored_count(&item(json!({"shard_count": {"NULL": true}}))).is_err(), "int(None)");
        assert!(stored_count(&item(json!({"shard_count": {"N": "2.5"}}))).is_err(), "diverges: no truncation");
    }

    #[test]
    fn a_sibling_without_gc_is_sized_by_r7() {
        let sib = |v: Value| sibling_from_item(3, &item(v), "q", &CAL, 800, 0).unwrap().map(|s| s.grant_count);
        assert_eq!(sib(json!({"b_q_tk": n(100), "shard_count": n(8)})), Some(8), "one share at 8");
        assert_eq!(sib(json!({"b_q_tk": n(101), "shard_count": n(8)})), Some(4), "more than a share: granted at 4");
        assert_eq!(sib(json!({"b_q_tk": n(800), "shard_count": n(8)})), Some(1));
        assert_eq!(sib(json!({"b_q_tk": n(801), "shard_count": n(8)})), Some(1), "never below 1");
        assert_eq!(sib(json!({"b_q_tk": n(900), "b_q_gc": n(2), "shard_count": n(8)})), Some(2), "gc as stored");
        assert_eq!(sib(json!({"b_q_tk": n(1), "b_q_gc": n(0), "shard_count": n(8)})), Some(8), "corrupt gc");
        assert_eq!(sib(json!({"b_q_tk": n(101), "b_q_gc": {"NULL": true}, "shard_count": n(8)})), Some(4), "NULL gc");
        assert_eq!(sib(json!({"shard_count": n(8)})), None, "no tk");
        assert_eq!(sib(json!({"b_q_tk": {"NULL": true}})), None, "NULL tk");
        let s = sibling_from_item(3, &item(json!({"b_q_tk": n(5), "rf": n(999)})), "q", &CAL, 8, 0).unwrap();
        assert_eq!(s, Some(QuotaSibling { shard_id: 3, tokens_milli: 5, grant_count: 1, current: false }));
        let s = sibling_from_item(3, &item(json!({"b_q_tk": n(5), "rf": n(1000)})), "q", &CAL, 8, 0).unwrap();
        assert!(s.unwrap().current, "rf at the edge is current");
    }

    #[test]
    fn period_rules() {
        let cal = |edge, rf| quota_period_is_current(&ResetRule::Calendar { prev_edge_ms: edge }, rf, None, None, 0);
        assert!(cal(None, 0), "no edge: always current");
        assert!(cal(Some(10), 10) && cal(Some(10), 11) && !cal(Some(10), 9));
        let ses = |ws, wa, rf, now| quota_period_is_current(&ResetRule::Session { reset_after_s: 60 }, rf, ws, wa, now);
        assert!(!ses(None, None, 0, 0), "no window");
        assert!(ses(Some(0), Some(0), 0, 59_999) && !ses(Some(0), Some(0), 0, 60_000), "the window ends");
        assert!(!ses(Some(10), Some(9), 100, 0), "rolled but not applied");
        assert!(ses(Some(10), None, 10, 0) && !ses(Some(10), None, 9, 0), "wa defaults to rf");
        let huge = ResetRule::Session { reset_after_s: i128::MAX };
        assert!(quota_period_is_current(&huge, 0, Some(0), None, i64::MAX), "no overflow");
        let neg = ResetRule::Session { reset_after_s: i128::MIN };
        assert!(!quota_period_is_current(&neg, 0, Some(i128::MAX), None, i64::MIN));
    }

    fn sib(shard_id: i128, tokens_milli: i128, grant_count: i128, current: bool) -> QuotaSibling {
        QuotaSibling { shard_id, tokens_milli, grant_count, current }
    }

    #[test]
    fn a_grant_is_a_move_off_the_closest_covering_sibling() {
        let fresh = QuotaGrant { donor_shard: None, tokens_milli: 25, donor_grant_count: None };
        assert_eq!(plan_quota_grant(&[], 3, 4, 25), fresh);
        // Shard 3 at count 4: sibling 1 at g=2 covers it (3 % 2 == 1), sibling 0 at g=1 covers everything.
        let s = [sib(0, 100, 1, true), sib(1, 40, 2, true)];
        assert_eq!(
            plan_quota_grant(&s, 3, 4, 25),
            QuotaGrant { donor_shard: Some(1), tokens_milli: 25, donor_grant_count: Some(2) }
        );
        assert_eq!(plan_quota_grant(&s, 2, 4, 25).donor_shard, Some(0), "2 % 2 = 0 is not 1's slot");
        assert_eq!(plan_quota_grant(&s, 3, 4, 50).tokens_milli, 40, "at most what the donor holds");
        let broke = [sib(1, -5, 2, true)];
        assert_eq!(plan_quota_grant(&broke, 3, 4, 25).tokens_milli, 0, "never negative");
        assert_eq!(plan_quota_grant(&[sib(1, 40, 2, false)], 3, 4, 25), fresh, "a stale grant covers nothing");
        assert_eq!(plan_quota_grant(&[sib(3, 40, 1, true)], 3, 4, 25), fresh, "a shard never funds itself");
        let tie = [sib(2, 1, 2, true), sib(0, 2, 2, true)];
        assert_eq!(plan_quota_grant(&tie, 4, 8, 25).donor_shard, Some(0), "then the lowest id");
        assert_eq!(plan_quota_grant(&[sib(1, 9, 0, true)], 3, 4, 25), fresh, "g = 0 covers nothing");
        assert_eq!(plan_quota_grant(&[sib(-1, 9, -2, true)], 3, 4, 25).donor_shard, Some(-1), "Python's modulo");
    }

    #[test]
    fn the_debit_guard_follows_the_rule() {
        let donor = item(json!({"b_q_wa": n(77), "b_q_gc": n(2), "shard_count": n(4)}));
        let d = donor_debit(1, 2, 25, "q", &donor, &CAL).unwrap();
        assert_eq!((d.guard_rf_ms, d.guard_wa_ms, d.legacy_shard_count), (Some(1_000), None, None));
        let d = donor_debit(1, 2, 25, "q", &donor, &ResetRule::Session { reset_after_s: 5 }).unwrap();
        assert_eq!((d.guard_rf_ms, d.guard_wa_ms), (None, Some(77)));
        let legacy = item(json!({"shard_count": n(4)}));
        let d = donor_debit(1, 2, 25, "q", &legacy, &ResetRule::Calendar { prev_edge_ms: None }).unwrap();
        assert_eq!((d.guard_rf_ms, d.guard_wa_ms, d.legacy_shard_count), (None, None, Some(4)));
        let null_gc = item(json!({"b_q_gc": {"NULL": true}}));
        assert_eq!(donor_debit(1, 2, 25, "q", &null_gc, &CAL).unwrap().legacy_shard_count, None, "`in`, not `is None`");
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn several_quotas_on_one_donor_share_its_update() {
        let d = |shard, limit: &str, rf: Option<i64>, wa: Option<i128>, legacy| QuotaDonorDebit {
            shard_id: shard,
            limit_name: limit.into(),
            tokens_milli: 25,
            grant_count: 2,
            guard_rf_ms: rf,
            guard_wa_ms: wa,
            legacy_shard_count: legacy,
        };
        let items = donor_update_items(
            &KEY,
            &[d(1, "a", Some(9), None, None), d(0, "c", Some(9), None, None), d(1, "b", Some(9), Some(7), Some(4))],
        );
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].pk, "ns/BUCKET#e#r#0", "donors in shard order");
        let u = &items[1];
        assert_eq!(u.update_expression.as_deref(), Some("ADD #qt0 :qn0, #qt1 :qn1"));
        assert_eq!(
            u.condition_expression,
            "attribute_exists(PK) AND #qt0 >= :qx0 AND (#qg0 = :qg0 OR (attribute_not_exists(#qg0) AND #qsc = :qg0)) \
             AND #qrf >= :qe0 AND #qt1 >= :qx1 AND (#qg1 = :qg1 OR (attribute_not_exists(#qg1) AND #qsc = :ql1)) \
             AND #qrf >= :qe1 AND #qw1 = :qw1"
        );
        assert_eq!(
            u.names,
            pairs(&[
                ("#qsc", "shard_count"),
                ("#qt0", "b_a_tk"),
                ("#qg0", "b_a_gc"),
                ("#qrf", "rf"),
                ("#qt1", "b_b_tk"),
                ("#qg1", "b_b_gc"),
                ("#qw1", "b_b_wa")
            ]),
            "#qrf once, where first used"
        );
        let vals: Vec<&str> = u.values.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(vals, [":qx0", ":qn0", ":qg0", ":qe0", ":qx1", ":qn1", ":qg1", ":ql1", ":qe1", ":qw1"]);
        assert_eq!(u.values[1].1, r#"{"N":"-25"}"#);
        assert_eq!(NegDisplay(i128::MIN).to_string(), "170141183460469231730687303715884105728");
    }

    #[test]
    fn the_count_freeze_keeps_a_grant_already_frozen() {
        let f = quota_count_freeze("pk", SK_STATE, 8, &[("q".into(), 2), ("lq".into(), 4)]);
        assert_eq!(
            f.update_expression.as_deref(),
            Some("SET #qsc = :qnew, #qf0 = if_not_exists(#qf0, :qo0), #qf1 = if_not_exists(#qf1, :qo1)")
        );
        assert_eq!(f.condition_expression, "#qsc < :qnew");
        assert_eq!(f.names, pairs(&[("#qsc", "shard_count"), ("#qf0", "b_q_gc"), ("#qf1", "b_lq_gc")]));
        assert_eq!(f.values, pairs(&[(":qnew", r#"{"N":"8"}"#), (":qo0", r#"{"N":"2"}"#), (":qo1", r#"{"N":"4"}"#)]));
    }

    #[test]
    fn the_owner_check_pins_the_image_stamp() {
        let c = clone_owner_check(&KEY, &item(json!({}))).unwrap();
        assert_eq!((c.pk.as_str(), c.sk.as_str()), ("ns/ENTITY#e", "#META"));
        assert_eq!(c.condition_expression, "attribute_not_exists(#opg) AND attribute_not_exists(#opi)");
        assert!(c.values.is_empty() && c.update_expression.is_none());
        let c = clone_owner_check(&KEY, &item(json!({"pgen": n(0), "pinc": {"S": "-"}}))).unwrap();
        assert_eq!(
            c.condition_expression,
            "attribute_exists(PK) AND (attribute_not_exists(#opg) OR #opg = :opg) AND (#opi = :opi OR \
             (attribute_not_exists(#opi) AND (#oca = :opi OR attribute_not_exists(#oca))))"
        );
        assert_eq!(c.values, pairs(&[(":opg", r#"{"N":"0"}"#), (":opi", r#"{"S":"-"}"#)]));
        let c = owner_meta_condition(Some(false), Some(3), Some("x"));
        assert_eq!((c.expression.as_str(), c.names.len()), ("attribute_not_exists(PK)", 0));
        assert!(clone_owner_check(&KEY, &item(json!({"pgen": {"N": "1.5"}}))).is_err());
        assert_eq!(decode_stamp(None), Ok(None));
        assert_eq!(decode_stamp(Some(Av::Other)), Ok(Some(STAMP_EXPIRED)));
        assert_eq!(decode_stamp(Some(Av::N("42"))), Ok(Some(42)));
    }

    #[test]
    fn stream_images_read_like_json_maps() {
        let ev = r#"{"Records":[{"dynamodb":{"NewImage":{"b_q_cp":{"N":"5"},"b_q_ra":{"N":"0"},
            "rsched":{"S":"1m0h0"},"n":{"NULL":true},"b":{"BOOL":true},"b_w_cp":{"S":"x"}}}}]}"#;
        let got = crate::event::map_records(ev, |rec| {
            let img = rec.new_image.unwrap();
            let img: &dyn Item = &img;
            (
                img.av("n") == Some(Av::Null),
                img.av("b").map(|a| a == Av::Other),
                is_quota_limit("q", img),
                extract_limit_attrs(img).map(|l| l.iter().map(|l| (l.name.clone(), l.cp_milli)).collect::<Vec<_>>()),
            )
        })
        .unwrap();
        assert_eq!(got[0], (true, Some(true), Ok(true), Ok(vec![("q".to_string(), 5), ("w".to_string(), 0)])));
    }

    /// Shard 0's image and the old shards of a 1 -> 4 doubling of quota `q`
    /// (capacity 100, so a share of 25), every grant current.
    type Items = BTreeMap<i128, Map<String, Value>>;

    fn one_to_four(donor_tk: i128) -> (Map<String, Value>, Items, Vec<ImageLimit>) {
        let image = item(json!({"PK": {"S": "ns/BUCKET#e#r#0"}, "rf": n(5_000), "b_q_tk": n(donor_tk),
            "b_q_cp": n(100), "b_q_ra": n(0), "b_q_tu": n(9), "b_q_wtc": n(3), "rsched": {"S": "1m0h0"},
            "b_wcu_cp": n(1_000), "b_r_cp": n(60), "b_r_ra": n(60)}));
        let mut old = image.clone();
        old.insert("b_q_gc".into(), n(1));
        let limits = vec![
            ImageLimit { name: "q".into(), cp_milli: 100, effective_cp_milli: 100, quota: Some(CAL) },
            ImageLimit { name: "wcu".into(), cp_milli: 1_000, effective_cp_milli: 500, quota: None },
            ImageLimit { name: "r".into(), cp_milli: 60, effective_cp_milli: 30, quota: None },
        ];
        (image, BTreeMap::from([(0, old)]), limits)
    }

    fn input<'a>(
        image: &'a Map<String, Value>,
        limits: &'a [ImageLimit],
        old: Option<&'a BTreeMap<i128, Map<String, Value>>>,
        capacity: &'a dyn Fn(&LegacyLimit) -> i128,
    ) -> PropagationInput<'a> {
        PropagationInput {
            key: KEY,
            image,
            limits,
            schedule_error: None,
            old_count: 1,
            new_count: 4,
            max_shard_count: MAX_SHARD_COUNT,
            old_items: old,
            now_ms: 10_000,
            legacy_capacity: capacity,
        }
    }

    fn created(plan: &PropagationPlan) -> Vec<&PlannedClone> {
        plan.clones
            .iter()
            .filter_map(|c| match c {
                CloneDecision::Create(p) => Some(p),
                CloneDecision::Skip { .. } => None,
            })
            .collect()
    }

    #[test]
    fn clones_move_shares_off_the_donor_in_turn() {
        let (image, old, limits) = one_to_four(60);
        let cap = |l: &LegacyLimit| l.limit.cp_milli;
        let plan = plan_propagation(&input(&image, &limits, Some(&old), &cap)).unwrap();
        assert!(plan.existing.is_empty());
        assert_eq!(plan.quota_names, ["q"]);
        let clones = created(&plan);
        assert_eq!(clones.len(), 3);
        // 60 on the donor: 25, 25, then the 10 left. Each later debit is
        // conditioned on the balance the earlier ones leave.
        let moved: Vec<(i128, i128)> = clones.iter().map(|c| (c.shard, c.debits[0].tokens_milli)).collect();
        assert_eq!(moved, [(1, 25), (2, 25), (3, 10)]);
        assert_eq!(clones[2].donor_updates[0].values[0], (":qx0".to_string(), r#"{"N":"10"}"#.to_string()));
        assert_eq!(
            clones[0].edits,
            [
                ItemEdit::Set("b_q_gc".into(), 4),
                ItemEdit::Remove("b_q_tu".into()),
                ItemEdit::Set("b_wcu_tk".into(), 1_000),
                ItemEdit::Set("b_wcu_tc".into(), 0),
                ItemEdit::Set("b_r_tk".into(), 7),
                ItemEdit::Set("b_r_tc".into(), 0),
                ItemEdit::Set("b_q_tk".into(), 25),
                ItemEdit::Set("b_q_tc".into(), 0),
                ItemEdit::Set("b_q_wtc".into(), 0),
            ],
            "wcu undivided at its stored cp, other limits a share of the effective cp, quotas last"
        );
        assert_eq!(plan.siblings[0].1[0].tokens_milli, 60, "siblings as read");
        assert!(plan.owner_check.is_some());
        // Nothing left: the last clone starts empty and moves nothing.
        let (image, old, limits) = one_to_four(50);
        let plan = plan_propagation(&input(&image, &limits, Some(&old), &cap)).unwrap();
        let clones = created(&plan);
        assert!(clones[2].debits.is_empty() && clones[2].donor_updates.is_empty());
        assert!(clones[2].edits.contains(&ItemEdit::Set("b_q_tk".into(), 0)));
    }

    #[test]
    fn clones_are_skipped_whole() {
        let cap = |l: &LegacyLimit| l.limit.cp_milli;
        let (image, mut old, limits) = one_to_four(60);
        let plan = plan_propagation(&input(&image, &limits, None, &cap)).unwrap();
        assert!(plan
            .clones
            .iter()
            .all(|c| matches!(c, CloneDecision::Skip { reason: SkipReason::SiblingReadFailed, .. })));
        assert_eq!(plan.clones.len(), 3);
        let mut i = input(&image, &limits, Some(&old), &cap);
        i.schedule_error = Some("bad");
        let plan = plan_propagation(&i).unwrap();
        assert!(
            matches!(&plan.clones[0], CloneDecision::Skip { reason: SkipReason::ScheduleError(e), .. } if e == "bad")
        );
        assert!(!needs_sibling_read(&limits, Some("bad")) && needs_sibling_read(&limits, None));
        // R13: shard 0's own grant is stale (rf before the edge).
        let mut stale = image.clone();
        stale.insert("rf".into(), n(999));
        let plan = plan_propagation(&input(&stale, &limits, Some(&old), &cap)).unwrap();
        assert!(
            matches!(&plan.clones[0], CloneDecision::Skip { reason: SkipReason::StaleMove { limit }, .. } if limit == "q")
        );
        // Overtaken: shard 0 already stores 8.
        old.get_mut(&0).unwrap().insert("shard_count".into(), n(8));
        let plan = plan_propagation(&input(&image, &limits, Some(&old), &cap)).unwrap();
        assert!(plan
            .clones
            .iter()
            .all(|c| matches!(c, CloneDecision::Skip { reason: SkipReason::Overtaken { stored_count: 8 }, .. })));
        assert!(plan.owner_check.is_none());
        // The cap: shards at or past it are never planned.
        let mut i = input(&image, &limits, Some(&old), &cap);
        i.max_shard_count = 2;
        assert_eq!(plan_propagation(&i).unwrap().clones.len(), 1);
        i.new_count = 0;
        assert!(plan_propagation(&i).is_err());
    }

    #[test]
    fn path_one_freezes_every_quota_an_old_shard_carries() {
        let (image, mut old, limits) = one_to_four(60);
        let mut s1 = old[&0].clone();
        s1.remove("b_q_gc");
        s1.insert("shard_count".into(), n(2));
        s1.insert("b_q_tk".into(), n(50));
        // A legacy quota shard 0's image does not carry, under a schedule
        // halving its capacity: 40 tokens is more than 100/2 // 2 = 25, so granted at 1.
        for (k, v) in [("b_l_cp", n(100)), ("b_l_tk", n(40)), ("b_l_ra", n(0)), ("b_l_sched", json!({"S": "half"}))] {
            s1.insert(k.into(), v);
        }
        old.insert(1, s1);
        let cap = |l: &LegacyLimit| if l.compact == Some("half") { l.limit.cp_milli / 2 } else { l.limit.cp_milli };
        let mut i = input(&image, &limits, Some(&old), &cap);
        i.old_count = 2;
        let plan = plan_propagation(&i).unwrap();
        assert_eq!(plan.existing, [ExistingShard { shard: 1, freeze: vec![("q".into(), 2), ("l".into(), 1)] }]);
        assert_eq!(plan.seen_count, 2);
        // Shard 2 is covered by shard 0 (g = 1), shard 3 by shard 1 (g = 2 is closer).
        let donors: Vec<i128> = created(&plan).iter().map(|c| c.debits[0].shard_id).collect();
        assert_eq!(donors, [0, 1]);
        assert_eq!(created(&plan)[1].debits[0].legacy_shard_count, Some(2));
    }

    #[test]
    fn overtaken_and_schedule_sources() {
        let items = [item(json!({"shard_count": n(4)})), item(json!({})), item(json!({"shard_count": n(16)}))];
        assert_eq!(overtaken_by(&items, 8), Ok(Some(16)));
        assert_eq!(overtaken_by(&items, 16), Ok(None));
        assert_eq!(overtaken_by(&items[..0], 1), Ok(None));
        let img = item(json!({"sched": {"S": "I"}, "b_a_sched": {"S": "-"}, "b_b_sched": {"S": "B"}}));
        let a = param_schedule_source("a", &img);
        assert_eq!((a.item, a.own, a.declares_none, a.tz), (Some("I"), None, true, "UTC"));
        let b = param_schedule_source("b", &img);
        assert_eq!((b.own, b.declares_none), (Some("B"), false));
    }

    #[test]
    fn the_repair_raises_overtaken_clones() {
        let names = vec!["q".to_string(), "p".to_string()];
        let later = item(json!({"shard_count": n(8)}));
        assert!(plan_repair(&KEY, 4, 4, None, &[2, 3], &names).unwrap().is_empty(), "no item reads as 1");
        assert!(plan_repair(&KEY, 4, 4, Some(&later), &[], &names).unwrap().is_empty());
        assert!(plan_repair(&KEY, 4, 4, Some(&later), &[2], &[]).unwrap().is_empty());
        let got = plan_repair(&KEY, 4, 4, Some(&later), &[2, 3], &names).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], quota_count_freeze("ns/BUCKET#e#r#3", SK_STATE, 8, &[("q".into(), 4), ("p".into(), 4)]));
        let same = item(json!({"shard_count": n(4)}));
        assert!(plan_repair(&KEY, 4, 4, Some(&same), &[2], &names).unwrap().is_empty());
    }
}
