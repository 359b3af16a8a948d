//! Ground truth, computed from the stream records alone (never by the
//! planner), and the comparison of a table and an archive bucket against it.
//!
//! The rules are the documented ones (docs/specification.md: keys, bucket records, deltas, snapshots, archive; and
//! docs/differences.md), written out again here:
//!
//! * only `MODIFY` records of bucket items count: new format
//!   `{ns}/BUCKET#{entity}#{resource}#{shard}`, or old format
//!   `{ns}/ENTITY#…` + `#BUCKET#{resource}` with the entity from `entity_id`;
//!   a record with a malformed number, no `entity_id` or no `SequenceNumber`
//!   counts nothing;
//! * per limit with a `tc` number in both images, except `wcu`, with a
//!   non-zero change `delta = new - old` (millitokens): the counter gains
//!   `floor(delta / 1000)` and `total_events` gains 1, in every configured
//!   window's item (W7);
//! * the window time is `ApproximateCreationDateTime` (seconds), else `rf`,
//!   else 0 (W5); hourly items are `#USAGE#{resource}#{YYYY-MM-DDTHH:00:00Z}`,
//!   daily and monthly ones end in `#daily` / `#monthly` (W4);
//! * a limit named like a snapshot attribute is not written (W9);
//! * every audit `REMOVE` with an `OldImage` is archived, identified by its
//!   `event_id` (or the id in its sort key).
//!
//! The comparison reads the table the way zae-limiter's snapshot reader does
//! (docs/specification.md#snapshot-reader): counters are every number attribute except the listed
//! metadata, so a bookkeeping attribute stored as a number would show up as
//! an unexpected counter.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::fault_proxy::Logged;

/// Attribute names a limit counter may not take (docs/decisions.md#w9).
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

/// What zae-limiter's reader does not count as a counter (docs/specification.md#snapshot-reader).
pub const READER_METADATA: [&str; 10] =
    ["PK", "SK", "entity_id", "resource", "window", "window_start", "total_events", "GSI2PK", "GSI2SK", "ttl"];

/// `(year, month, day, hour)` in UTC of epoch milliseconds.
pub fn civil(ms: i64) -> (i64, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = (secs.rem_euclid(86_400) / 3600) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day, hour)
}

/// Python `//` by 1000.
fn floor_1000(x: i128) -> i128 {
    x.div_euclid(1000)
}

/// A DynamoDB number that Python's `int()` accepts in the forms DynamoDB
/// emits (optional sign, digits).
pub fn int(s: &str) -> Option<i128> {
    let t = s.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn s<'a>(img: &'a Value, name: &str) -> Option<&'a str> {
    img.get(name)?.get("S")?.as_str()
}

fn n<'a>(img: &'a Value, name: &str) -> Option<&'a str> {
    img.get(name)?.get("N")?.as_str()
}

/// One snapshot item as it must end up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapTruth {
    /// Namespace.
    pub ns: String,
    /// Entity id.
    pub entity: String,
    /// Resource.
    pub resource: String,
    /// `hourly`, `daily` or `monthly`.
    pub window: String,
    /// The window key (`window_start`).
    pub window_start: String,
    /// Counters: limit name -> tokens.
    pub counters: BTreeMap<String, i128>,
    /// `total_events`.
    pub total_events: i128,
    /// Highest contributing sequence number per source bucket item, by
    /// watermark attribute (`wm#{shard}`, `wm#{old-format PK}`), 40 digits.
    pub watermarks: BTreeMap<String, String>,
}

/// One archived audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTruth {
    /// Sequence number of its REMOVE.
    pub seq: String,
    /// Its `timestamp` attribute, if a string.
    pub timestamp: Option<String>,
}

/// The ground truth of a stream.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// Snapshot items by `(PK, SK)`.
    pub snapshots: BTreeMap<(String, String), SnapTruth>,
    /// Audit events by event id (only when archival is on).
    pub audit: BTreeMap<String, AuditTruth>,
    /// Records that count nothing because they are malformed.
    pub invalid: usize,
    /// Soft-limit overdraws are counted (`{limit}#od`, the 0.17 semantics).
    pub overdraws: bool,
    /// Consumption deltas (record x counted limit).
    pub deltas: usize,
}

fn window_key(window: &str, ms: i64) -> (String, String) {
    let (y, m, d, h) = civil(ms);
    match window {
        "hourly" => (format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00Z"), String::new()),
        "daily" => (format!("{y:04}-{m:02}-{d:02}T00:00:00Z"), "#daily".into()),
        "monthly" => (format!("{y:04}-{m:02}-01T00:00:00Z"), "#monthly".into()),
        other => panic!("unknown window {other}"),
    }
}

/// Whether every number the aggregator validates parses (docs/decisions.md#w3:
/// `b_*`, `rf` and `shard_count` are checked up front).
fn numbers_ok(new: &Value, old: Option<&Value>) -> bool {
    for img in [Some(new), old].into_iter().flatten() {
        let Some(m) = img.as_object() else { continue };
        for (name, av) in m {
            let checked = name == "rf"
                || name == "shard_count"
                || name
                    .strip_prefix("b_")
                    .and_then(|r| r.rsplit_once('_'))
                    .is_some_and(|(l, f)| !l.is_empty() && ["tc", "tk", "cp", "ra", "rp"].contains(&f));
            if checked {
                if let Some(v) = av.get("N").and_then(Value::as_str) {
                    if int(v).is_none() {
                        return false;
                    }
                }
            }
        }
    }
    match n(new, "shard_count") {
        Some(v) => int(v).is_some_and(|x| x >= 1),
        None => true,
    }
}

fn pad40(seq: &str) -> String {
    format!("{seq:0>40}")
}

/// Compute the truth of `records` for `windows` (`SNAPSHOT_WINDOWS` order),
/// with archival on or off.
pub fn compute(records: &[Value], windows: &[&str], archival: bool) -> Truth {
    compute_for(records, windows, archival, false)
}

/// [`compute`]; with `overdraws` (the zae-limiter 0.17 semantics) a soft
/// limit's delta that consumed and left its shard below zero also counts 1
/// in `{limit}#od` of each window's item.
pub fn compute_for(records: &[Value], windows: &[&str], archival: bool, overdraws: bool) -> Truth {
    let mut t = Truth { overdraws, ..Truth::default() };
    for r in records {
        let d = &r["dynamodb"];
        match r["eventName"].as_str() {
            Some("MODIFY") => modify(&mut t, d, windows),
            Some("REMOVE") if archival => {
                let old = d.get("OldImage").filter(|o| o.is_object());
                let pk = old.and_then(|o| s(o, "PK")).or_else(|| s(&d["Keys"], "PK")).unwrap_or("");
                let rest = pk.split_once('/').map_or(pk, |(_, r)| r);
                let (Some(old), true, Some(seq)) = (old, rest.starts_with("AUDIT#"), d["SequenceNumber"].as_str())
                else {
                    continue;
                };
                let id = s(old, "event_id")
                    .map(str::to_string)
                    .or_else(|| s(old, "SK").and_then(|sk| sk.strip_prefix("#AUDIT#")).map(str::to_string));
                if let Some(id) = id {
                    let timestamp = s(old, "timestamp").map(str::to_string);
                    t.audit.insert(id, AuditTruth { seq: seq.to_string(), timestamp });
                }
            }
            _ => {}
        }
    }
    t
}

fn modify(t: &mut Truth, d: &Value, windows: &[&str]) {
    let Some(new) = d.get("NewImage").filter(|v| v.is_object()) else { return };
    let old = d.get("OldImage").filter(|v| v.is_object());
    let pk = s(new, "PK").unwrap_or("");
    let sk = s(new, "SK").unwrap_or("");
    let Some((ns, rest)) = pk.split_once('/') else { return };
    let (entity, resource, source) = if let Some(b) = rest.strip_prefix("BUCKET#") {
        let Some((left, shard)) = b.rsplit_once('#') else {
            t.invalid += 1;
            return;
        };
        let Some((entity, resource)) = left.split_once('#') else {
            t.invalid += 1;
            return;
        };
        if int(shard).is_none() {
            t.invalid += 1;
            return;
        }
        (entity.to_string(), resource.to_string(), format!("wm#{shard}"))
    } else if let Some(resource) = sk.strip_prefix("#BUCKET#") {
        match s(new, "entity_id") {
            Some(e) if !e.is_empty() && !resource.is_empty() => {
                (e.to_string(), resource.to_string(), format!("wm#{rest}"))
            }
            _ => {
                t.invalid += 1;
                return;
            }
        }
    } else {
        return;
    };
    let seq = match d["SequenceNumber"].as_str() {
        Some(x) if !x.is_empty() && x.len() <= 40 && x.bytes().all(|b| b.is_ascii_digit()) => x,
        _ => {
            t.invalid += 1;
            return;
        }
    };
    if s(new, "entity_id").is_none_or(str::is_empty) || !numbers_ok(new, old) {
        t.invalid += 1;
        return;
    }
    let time_ms: i64 = match &d["ApproximateCreationDateTime"] {
        Value::Number(x) => match x.as_i64() {
            Some(i) => i * 1000,
            None => (x.as_f64().unwrap() * 1000.0).floor() as i64,
        },
        Value::Null => n(new, "rf").and_then(int).map_or(0, |v| v as i64),
        _ => {
            t.invalid += 1;
            return;
        }
    };
    let Some(new_map) = new.as_object() else { return };
    for (attr, av) in new_map {
        let Some((name, "tc")) = attr.strip_prefix("b_").and_then(|r| r.rsplit_once('_')) else { continue };
        if name.is_empty() || name == "wcu" {
            continue;
        }
        let (Some(nv), Some(ov)) = (av.get("N").and_then(Value::as_str), old.and_then(|o| n(o, attr))) else {
            continue;
        };
        let delta = int(nv).unwrap() - int(ov).unwrap();
        if delta == 0 {
            continue;
        }
        t.deltas += 1;
        if RESERVED.contains(&name) || name.starts_with("wm#") {
            continue;
        }
        for &w in windows {
            let (key, suffix) = window_key(w, time_ms);
            let item_sk = format!("#USAGE#{resource}#{key}{suffix}");
            let item = t.snapshots.entry((format!("{ns}/ENTITY#{entity}"), item_sk)).or_insert_with(|| SnapTruth {
                ns: ns.to_string(),
                entity: entity.clone(),
                resource: resource.clone(),
                window: w.to_string(),
                window_start: key.clone(),
                counters: BTreeMap::new(),
                total_events: 0,
                watermarks: BTreeMap::new(),
            });
            *item.counters.entry(name.to_string()).or_insert(0) += floor_1000(delta);
            let soft = new_map.contains_key(&format!("b_{name}_soft"));
            let tk = n(new, &format!("b_{name}_tk")).and_then(int);
            if t.overdraws && soft && delta > 0 && tk.is_some_and(|tk| tk < 0) {
                *item.counters.entry(format!("{name}#od")).or_insert(0) += 1;
            }
            item.total_events += 1;
            let padded = pad40(seq);
            let wm = item.watermarks.entry(source.clone()).or_default();
            if padded > *wm {
                *wm = padded;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reading the table like zae-limiter does

/// A snapshot as zae-limiter's `get_usage_snapshots` returns it (docs/specification.md#snapshot-reader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderSnapshot {
    /// `entity_id`.
    pub entity: String,
    /// `resource`.
    pub resource: String,
    /// `window` (the reader keeps it as the window type).
    pub window: String,
    /// `window_start`.
    pub window_start: String,
    /// `total_events`.
    pub total_events: i128,
    /// Every other number attribute.
    pub counters: BTreeMap<String, i128>,
}

/// The reader's view of one item: `Ok(None)` when it drops the item,
/// `Err` when it would raise (a number `int()` rejects).
pub fn reader_view(item: &Value) -> Result<Option<ReaderSnapshot>, String> {
    let get = |name: &str| s(item, name).filter(|v| !v.is_empty()).map(str::to_string);
    let (Some(entity), Some(resource), Some(window_start)) = (get("entity_id"), get("resource"), get("window_start"))
    else {
        return Ok(None);
    };
    let total_events = match n(item, "total_events") {
        Some(v) => int(v).ok_or_else(|| format!("total_events {v:?} is not an integer"))?,
        None => 0,
    };
    let mut counters = BTreeMap::new();
    for (name, av) in item.as_object().into_iter().flatten() {
        if READER_METADATA.contains(&name.as_str()) {
            continue;
        }
        if let Some(v) = av.get("N").and_then(Value::as_str) {
            counters.insert(name.clone(), int(v).ok_or_else(|| format!("counter {name} = {v:?} is not an integer"))?);
        }
    }
    Ok(Some(ReaderSnapshot {
        entity,
        resource,
        window: s(item, "window").unwrap_or("").to_string(),
        window_start,
        total_events,
        counters,
    }))
}

// ---------------------------------------------------------------------------
// The verdict

/// What a comparison found. Every field must be zero (and `problems`
/// empty) for the property to hold.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Counter cells (item x limit) above the truth.
    pub double_counted_cells: u64,
    /// Tokens above the truth, summed.
    pub double_counted_tokens: i128,
    /// Counter cells below the truth (a lost delta, or a refund applied twice).
    pub lost_cells: u64,
    /// Tokens below the truth, summed.
    pub lost_tokens: i128,
    /// `total_events` above the truth, summed over items.
    pub events_double_counted: i128,
    /// `total_events` below the truth, summed over items.
    pub events_lost: i128,
    /// Snapshot items the truth has and the table does not.
    pub missing_items: u64,
    /// Snapshot items the table has and the truth does not.
    pub unexpected_items: u64,
    /// Watermarks that differ from the highest contributing sequence number.
    pub watermark_mismatches: u64,
    /// Reader-visible differences other than counters (window, keys, a
    /// bookkeeping attribute read as a counter, an item it cannot read).
    pub reader_mismatches: u64,
    /// Audit events in no archive object.
    pub lost_audit_rows: u64,
    /// Archived events that are not audit deletions of the stream.
    pub unexpected_audit_rows: u64,
    /// Extra copies of archived events (same line in another object):
    /// allowed, de-duplicable by `event_id`.
    pub audit_duplicates: u64,
    /// Events archived with different lines, or in a wrong day partition.
    pub audit_mismatches: u64,
    /// Bucket items with more than one refill applied (beyond the first).
    pub refills_applied_twice: u64,
    /// Bucket items whose final state is not the start state plus each
    /// applied write exactly once.
    pub bucket_mismatches: u64,
    /// Applied bucket writes the replay evaluated, by kind (what the bucket
    /// check covered; not a finding).
    pub bucket_writes_replayed: BTreeMap<&'static str, u64>,
    /// Human-readable details, one per finding.
    pub problems: Vec<String>,
}

impl Verdict {
    /// Whether the property holds (duplicates of identical archive lines
    /// are allowed).
    pub fn holds(&self) -> bool {
        self.double_counted_cells == 0
            && self.lost_cells == 0
            && self.events_double_counted == 0
            && self.events_lost == 0
            && self.missing_items == 0
            && self.unexpected_items == 0
            && self.watermark_mismatches == 0
            && self.reader_mismatches == 0
            && self.lost_audit_rows == 0
            && self.unexpected_audit_rows == 0
            && self.audit_mismatches == 0
            && self.refills_applied_twice == 0
            && self.bucket_mismatches == 0
            && self.problems.is_empty()
    }

    /// Add another verdict's counts.
    pub fn absorb(&mut self, o: &Verdict) {
        self.double_counted_cells += o.double_counted_cells;
        self.double_counted_tokens += o.double_counted_tokens;
        self.lost_cells += o.lost_cells;
        self.lost_tokens += o.lost_tokens;
        self.events_double_counted += o.events_double_counted;
        self.events_lost += o.events_lost;
        self.missing_items += o.missing_items;
        self.unexpected_items += o.unexpected_items;
        self.watermark_mismatches += o.watermark_mismatches;
        self.reader_mismatches += o.reader_mismatches;
        self.lost_audit_rows += o.lost_audit_rows;
        self.unexpected_audit_rows += o.unexpected_audit_rows;
        self.audit_duplicates += o.audit_duplicates;
        self.audit_mismatches += o.audit_mismatches;
        self.refills_applied_twice += o.refills_applied_twice;
        self.bucket_mismatches += o.bucket_mismatches;
        for (k, n) in &o.bucket_writes_replayed {
            *self.bucket_writes_replayed.entry(k).or_default() += n;
        }
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < 40 {
            self.problems.push(p);
        }
    }
}

fn key_of(item: &Value) -> Option<(String, String)> {
    Some((s(item, "PK")?.to_string(), s(item, "SK")?.to_string()))
}

fn is_usage(key: &(String, String)) -> bool {
    key.1.starts_with("#USAGE#")
}

/// Compare the snapshot items of a scanned table (DynamoDB JSON maps) with
/// the truth. `ttl_range` bounds the `ttl` set at an item's first write.
pub fn check_snapshots(truth: &Truth, items: &[Value], ttl_range: (i64, i64), v: &mut Verdict) {
    let mut actual: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for item in items {
        if let Some(k) = key_of(item) {
            if is_usage(&k) {
                actual.insert(k, item);
            }
        }
    }
    for (key, want) in &truth.snapshots {
        let Some(item) = actual.remove(key) else {
            v.missing_items += 1;
            v.lost_cells += want.counters.len() as u64;
            v.lost_tokens += want.counters.values().map(|x| x.abs()).sum::<i128>();
            v.events_lost += want.total_events;
            v.problem(format!("missing snapshot item {key:?}; expected {want:?}"));
            continue;
        };
        let view = match reader_view(item) {
            Ok(Some(view)) => view,
            Ok(None) => {
                v.reader_mismatches += 1;
                v.problem(format!("the reader drops snapshot item {key:?}: {item}"));
                continue;
            }
            Err(e) => {
                v.reader_mismatches += 1;
                v.problem(format!("the reader would raise on {key:?}: {e}"));
                continue;
            }
        };
        let names: BTreeSet<&String> = want.counters.keys().chain(view.counters.keys()).collect();
        for name in names {
            let (got, expected) = (view.counters.get(name), want.counters.get(name));
            if expected.is_none() && (name.starts_with("wm") || name == "GSI4PK" || name == "GSI4SK") {
                v.reader_mismatches += 1;
                v.problem(format!("{key:?}: bookkeeping attribute {name} is read as a counter"));
                continue;
            }
            let diff = got.copied().unwrap_or(0) - expected.copied().unwrap_or(0);
            if got.is_none() || expected.is_none() || diff != 0 {
                if diff > 0 || (diff == 0 && expected.is_none()) {
                    v.double_counted_cells += 1;
                    v.double_counted_tokens += diff;
                } else if diff < 0 || got.is_none() {
                    v.lost_cells += 1;
                    v.lost_tokens += -diff;
                }
                v.problem(format!("{key:?} counter {name}: table {got:?}, truth {expected:?}"));
            }
        }
        let dt = view.total_events - want.total_events;
        if dt > 0 {
            v.events_double_counted += dt;
        } else if dt < 0 {
            v.events_lost += -dt;
        }
        if dt != 0 {
            v.problem(format!("{key:?} total_events: table {}, truth {}", view.total_events, want.total_events));
        }
        let meta = [
            ("entity_id", view.entity.as_str(), want.entity.clone()),
            ("resource", view.resource.as_str(), want.resource.clone()),
            ("window", view.window.as_str(), want.window.clone()),
            ("window_start", view.window_start.as_str(), want.window_start.clone()),
            ("GSI2PK", s(item, "GSI2PK").unwrap_or(""), format!("{}/RESOURCE#{}", want.ns, want.resource)),
            ("GSI2SK", s(item, "GSI2SK").unwrap_or(""), format!("USAGE#{}#{}", want.window_start, want.entity)),
            ("GSI4PK", s(item, "GSI4PK").unwrap_or(""), want.ns.clone()),
            ("GSI4SK", s(item, "GSI4SK").unwrap_or(""), format!("{}/ENTITY#{}", want.ns, want.entity)),
        ];
        for (name, got, expected) in meta {
            if got != expected {
                v.reader_mismatches += 1;
                v.problem(format!("{key:?} {name}: table {got:?}, expected {expected:?}"));
            }
        }
        match n(item, "ttl").and_then(int) {
            Some(ttl) if (ttl_range.0 as i128..=ttl_range.1 as i128).contains(&ttl) => {}
            other => {
                v.reader_mismatches += 1;
                v.problem(format!("{key:?} ttl {other:?} outside {ttl_range:?}"));
            }
        }
        let mut marks: BTreeMap<String, String> = BTreeMap::new();
        for (name, av) in item.as_object().into_iter().flatten() {
            if name.starts_with("wm#") {
                match av.get("S").and_then(Value::as_str) {
                    Some(x) => {
                        marks.insert(name.clone(), x.to_string());
                    }
                    None => {
                        v.watermark_mismatches += 1;
                        v.problem(format!("{key:?} watermark {name} is not a string: {av}"));
                    }
                }
            }
        }
        if marks != want.watermarks {
            v.watermark_mismatches += 1;
            v.problem(format!("{key:?} watermarks {marks:?}, expected {:?}", want.watermarks));
        }
    }
    for (key, item) in actual {
        v.unexpected_items += 1;
        if let Ok(Some(view)) = reader_view(item) {
            v.double_counted_cells += view.counters.len() as u64;
            v.double_counted_tokens += view.counters.values().map(|x| x.abs()).sum::<i128>();
            v.events_double_counted += view.total_events;
        }
        v.problem(format!("unexpected snapshot item {key:?}: {item}"));
    }
}

/// Compare archive objects (`(key, decompressed NDJSON)`) with the truth.
pub fn check_archive(truth: &Truth, objects: &[(String, Vec<u8>)], v: &mut Verdict) {
    let mut seen: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (key, body) in objects {
        let text = String::from_utf8_lossy(body);
        if !text.ends_with('\n') {
            v.audit_mismatches += 1;
            v.problem(format!("archive object {key} does not end with a newline"));
        }
        for line in text.lines() {
            let parsed: Value = match serde_json::from_str(line) {
                Ok(p) => p,
                Err(e) => {
                    v.audit_mismatches += 1;
                    v.problem(format!("archive object {key}: a line is not JSON ({e}): {line}"));
                    continue;
                }
            };
            let Some(id) = parsed["event_id"].as_str() else {
                v.audit_mismatches += 1;
                v.problem(format!("archive object {key}: a line has no event_id: {line}"));
                continue;
            };
            seen.entry(id.to_string()).or_default().push((key.clone(), line.to_string()));
        }
    }
    for (id, want) in &truth.audit {
        let Some(copies) = seen.remove(id) else {
            v.lost_audit_rows += 1;
            v.problem(format!("audit event {id} (sequence {}) is in no archive object", want.seq));
            continue;
        };
        v.audit_duplicates += copies.len() as u64 - 1;
        if copies.iter().any(|(_, line)| *line != copies[0].1) {
            v.audit_mismatches += 1;
            v.problem(format!("audit event {id} archived with different lines: {copies:?}"));
        }
        // W13: the object's day partition is the event's UTC day.
        if let Some(ts) = want.timestamp.as_deref().filter(|t| t.len() >= 10 && t.ends_with('Z')) {
            let day = format!("year={}/month={}/day={}/", &ts[0..4], &ts[5..7], &ts[8..10]);
            for (key, _) in &copies {
                if !key.contains(&day) {
                    v.audit_mismatches += 1;
                    v.problem(format!("audit event {id} ({ts}) archived in {key}, not under {day}"));
                }
            }
        }
    }
    for (id, copies) in seen {
        v.unexpected_audit_rows += 1;
        v.problem(format!("archived event {id} is not an audit deletion of the stream: {copies:?}"));
    }
}

/// One term of an applied update expression.
#[derive(Debug, Clone)]
enum Term {
    /// `SET #a = :v`
    Set(String, Value),
    /// `SET #a = if_not_exists(#a, :v)`
    SetIfMissing(String, Value),
    /// `ADD #a :v` (numbers)
    Add(String, i128),
    /// `REMOVE #a`
    Remove(String),
}

/// A successful (`200`) aggregator write to a non-snapshot item, as the
/// proxy saw it go to moto: an `UpdateItem`, a `PutItem`, or one item of an
/// applied `TransactWriteItems`.
#[derive(Debug, Clone)]
enum BucketWrite {
    Update {
        terms: Vec<Term>,
        /// The refill lock's `rf` value (`#rf = :rf_old` in the condition).
        refill_lock: Option<String>,
        /// The shard count a doubling started from (`#sc = :old`).
        doubled_from: Option<i128>,
    },
    Put {
        item: Value,
    },
    /// An expression this replay does not know: always a problem.
    Unknown(String),
}

fn names_values(body: &Value) -> (BTreeMap<String, String>, BTreeMap<String, Value>) {
    let names = body["ExpressionAttributeNames"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    let values = body["ExpressionAttributeValues"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    (names, values)
}

/// Split `s` at `sep` where no parenthesis is open.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let (mut out, mut depth, mut from) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&s[from..i]);
                from = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[from..]);
    out
}

/// The terms of an update expression with its placeholders resolved, or
/// the first part this replay cannot evaluate.
fn parse_update(
    expr: &str,
    names: &BTreeMap<String, String>,
    values: &BTreeMap<String, Value>,
) -> Result<Vec<Term>, String> {
    let name = |ph: &str| names.get(ph.trim()).cloned().ok_or_else(|| format!("unknown name {ph}"));
    let value = |ph: &str| values.get(ph.trim()).cloned().ok_or_else(|| format!("unknown value {ph}"));
    let mut terms = Vec::new();
    // Clauses start with their keyword; placeholders never spell one.
    let mut clauses: Vec<(&str, &str)> = Vec::new();
    let mut rest = expr.trim();
    while !rest.is_empty() {
        let kw = ["SET ", "ADD ", "REMOVE "]
            .into_iter()
            .find(|k| rest.starts_with(k))
            .ok_or_else(|| format!("at {rest:?}"))?;
        let body = &rest[kw.len()..];
        let next = [" SET ", " ADD ", " REMOVE "].iter().filter_map(|k| body.find(k)).min().unwrap_or(body.len());
        clauses.push((kw.trim(), &body[..next]));
        rest = body[next..].trim_start();
    }
    for (kw, body) in clauses {
        for term in split_top(body, ',') {
            let term = term.trim();
            match kw {
                "SET" => {
                    let (lhs, rhs) = term.split_once('=').ok_or_else(|| format!("SET term {term:?}"))?;
                    let attr = name(lhs)?;
                    let rhs = rhs.trim();
                    if let Some(args) = rhs.strip_prefix("if_not_exists(").and_then(|r| r.strip_suffix(')')) {
                        let (a, v) = args.split_once(',').ok_or_else(|| format!("SET term {term:?}"))?;
                        if name(a)? != attr {
                            return Err(format!("if_not_exists of another attribute: {term:?}"));
                        }
                        terms.push(Term::SetIfMissing(attr, value(v)?));
                    } else if rhs.starts_with(':') {
                        terms.push(Term::Set(attr, value(rhs)?));
                    } else {
                        return Err(format!("SET term {term:?}"));
                    }
                }
                "ADD" => {
                    let mut it = term.split_whitespace();
                    let (a, v) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                    let n = value(v)?
                        .get("N")
                        .and_then(Value::as_str)
                        .and_then(int)
                        .ok_or_else(|| format!("ADD term {term:?}"))?;
                    terms.push(Term::Add(name(a)?, n));
                }
                _ => terms.push(Term::Remove(name(term)?)),
            }
        }
    }
    Ok(terms)
}

/// The value a condition compares `attr` with by `attr = :v`, if it does.
fn compared_with(
    cond: &str,
    attr: &str,
    names: &BTreeMap<String, String>,
    values: &BTreeMap<String, Value>,
) -> Option<Value> {
    let ph = names.iter().find(|(_, n)| *n == attr)?.0;
    let pattern = format!("{ph} = :");
    // `#rf = :` must not match inside `#qrf = :`.
    let at = cond
        .match_indices(&pattern)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || !cond[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))?;
    let v: String =
        cond[at + pattern.len() - 1..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
    values.get(&v).cloned()
}

fn classify_update(body: &Value) -> Option<((String, String), BucketWrite)> {
    let key = key_of(&body["Key"])?;
    if is_usage(&key) {
        return None;
    }
    let (names, values) = names_values(body);
    let expr = body["UpdateExpression"].as_str().unwrap_or("");
    let cond = body["ConditionExpression"].as_str().unwrap_or("");
    let write = match parse_update(expr, &names, &values) {
        Ok(terms) => {
            let sets = |attr: &str| terms.iter().any(|t| matches!(t, Term::Set(a, _) if a == attr));
            // A refill applied without its lock could apply any number of
            // times: it counts under a lock of its own name.
            let refill_lock = if sets("rf") {
                Some(
                    compared_with(cond, "rf", &names, &values)
                        .and_then(|v| v["N"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "(no rf condition)".to_string()),
                )
            } else {
                None
            };
            let doubled_from = if sets("shard_count") {
                compared_with(cond, "shard_count", &names, &values).and_then(|v| v["N"].as_str().and_then(int))
            } else {
                None
            };
            BucketWrite::Update { terms, refill_lock, doubled_from }
        }
        Err(why) => BucketWrite::Unknown(format!("{expr} ({why})")),
    };
    Some((key, write))
}

/// The bucket writes of one applied request, in the order moto applied them.
fn classify(entry: &Logged) -> Vec<((String, String), BucketWrite)> {
    let Some(body) = entry.json() else { return Vec::new() };
    match entry.dynamodb_op() {
        Some("UpdateItem") => classify_update(&body).into_iter().collect(),
        Some("PutItem") => {
            key_of(&body["Item"]).map(|k| (k, BucketWrite::Put { item: body["Item"].clone() })).into_iter().collect()
        }
        Some("TransactWriteItems") => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                if let Some(put) = t.get("Put") {
                    Some((key_of(&put["Item"])?, BucketWrite::Put { item: put["Item"].clone() }))
                } else {
                    classify_update(t.get("Update")?)
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("N").and_then(Value::as_str), b.get("N").and_then(Value::as_str)) {
        (Some(x), Some(y)) => match (int(x), int(y)) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

fn apply(item: &mut Map<String, Value>, terms: &[Term]) {
    for t in terms {
        match t {
            Term::Set(a, v) => {
                item.insert(a.clone(), v.clone());
            }
            Term::SetIfMissing(a, v) => {
                item.entry(a.clone()).or_insert_with(|| v.clone());
            }
            Term::Add(a, d) => {
                let cur = item.get(a).and_then(|v| v["N"].as_str()).and_then(int).unwrap_or(0);
                item.insert(a.clone(), serde_json::json!({ "N": (cur + d).to_string() }));
            }
            Term::Remove(a) => {
                item.remove(a);
            }
        }
    }
}

/// Compare every non-snapshot item with its start state plus the writes
/// moto applied to it (from the proxy log, transactions included), replayed
/// in order: each refill lock (`rf` value) used by at most one applied
/// refill, each doubling from a given count applied at most once, each
/// clone created once and never over an existing item, and nothing else
/// changed.
pub fn check_buckets(initial: &[Value], items: &[Value], log: &[Logged], v: &mut Verdict) {
    let mut applied: BTreeMap<(String, String), Vec<BucketWrite>> = BTreeMap::new();
    let mut entries: Vec<&Logged> = log.iter().filter(|e| e.applied()).collect();
    entries.sort_by_key(|e| e.ordinal);
    for e in entries {
        let transaction = e.dynamodb_op() == Some("TransactWriteItems");
        for (key, w) in classify(e) {
            let kind = match &w {
                _ if transaction => "transaction item (clone put, donor debit)",
                BucketWrite::Update { refill_lock: Some(_), .. } => "refill",
                BucketWrite::Update { doubled_from: Some(_), .. } => "doubling",
                BucketWrite::Update { .. } => "other update (propagation)",
                BucketWrite::Put { .. } => "put (clone)",
                BucketWrite::Unknown(_) => "unknown",
            };
            *v.bucket_writes_replayed.entry(kind).or_default() += 1;
            applied.entry(key).or_default().push(w);
        }
    }
    let start: BTreeMap<(String, String), &Value> = initial.iter().filter_map(|i| Some((key_of(i)?, i))).collect();
    let finals: BTreeMap<(String, String), &Value> =
        items.iter().filter_map(|i| Some((key_of(i)?, i))).filter(|(k, _)| !is_usage(k)).collect();
    for (key, got) in &finals {
        let writes = applied.remove(key).unwrap_or_default();
        let mut expected: Option<Map<String, Value>> = start.get(key).and_then(|i| i.as_object().cloned());
        let mut locks: BTreeMap<&str, u64> = BTreeMap::new();
        let mut doublings: BTreeMap<i128, u64> = BTreeMap::new();
        for w in &writes {
            match w {
                BucketWrite::Put { item } => match expected {
                    Some(_) => {
                        v.bucket_mismatches += 1;
                        v.problem(format!("{key:?}: a put replaced an existing item"));
                    }
                    None => expected = item.as_object().cloned(),
                },
                BucketWrite::Update { terms, refill_lock, doubled_from } => {
                    if let Some(lock) = refill_lock {
                        *locks.entry(lock).or_default() += 1;
                    }
                    if let Some(from) = doubled_from {
                        *doublings.entry(*from).or_default() += 1;
                    }
                    match expected.as_mut() {
                        Some(item) => apply(item, terms),
                        None => {
                            v.bucket_mismatches += 1;
                            v.problem(format!("{key:?}: an update applied before the item existed: {terms:?}"));
                        }
                    }
                }
                BucketWrite::Unknown(expr) => {
                    v.bucket_mismatches += 1;
                    v.problem(format!("{key:?}: unexpected applied update {expr}"));
                }
            }
        }
        for (lock, n) in locks.into_iter().filter(|(_, n)| *n > 1) {
            v.refills_applied_twice += n - 1;
            v.problem(format!("{key:?}: {n} refills applied under the lock rf = {lock}"));
        }
        for (from, n) in doublings.into_iter().filter(|(_, n)| *n > 1) {
            v.bucket_mismatches += 1;
            v.problem(format!("{key:?}: shard_count doubled {n} times from {from}"));
        }
        let Some(e) = expected else {
            v.bucket_mismatches += 1;
            v.problem(format!("item {key:?} is neither in the start state nor created by an applied put"));
            continue;
        };
        let Some(g) = got.as_object() else { continue };
        let names: BTreeSet<&String> = e.keys().chain(g.keys()).collect();
        let differs: Vec<String> = names
            .into_iter()
            .filter(|n| match (e.get(*n), g.get(*n)) {
                (Some(a), Some(b)) => !same_value(a, b),
                _ => true,
            })
            .map(|n| format!("{n}: expected {:?}, table {:?}", e.get(n), g.get(n)))
            .collect();
        if !differs.is_empty() {
            v.bucket_mismatches += 1;
            v.problem(format!("bucket item {key:?} differs: {}", differs.join("; ")));
        }
    }
    for key in start.keys() {
        if !finals.contains_key(key) {
            v.bucket_mismatches += 1;
            v.problem(format!("item {key:?} of the start state is gone"));
        }
    }
    for (key, writes) in applied {
        v.bucket_mismatches += 1;
        v.problem(format!("writes applied to {key:?}, which is not in the table: {writes:?}"));
    }
}

/// The `wm#` attributes of an item: how many, and their size in bytes
/// (name + string value), for the cost measurement.
pub fn watermark_bytes(item: &Map<String, Value>) -> (usize, usize) {
    let mut count = 0;
    let mut bytes = 0;
    for (name, av) in item {
        if name.starts_with("wm#") {
            count += 1;
            bytes += name.len() + av.get("S").and_then(Value::as_str).map_or(0, str::len);
        }
    }
    (count, bytes)
}
