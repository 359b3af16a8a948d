//! The planner's invariants, checked on any batch: used by the proptest suite
//! (`component/tests/invariants.rs`), the fuzz regression replays and every
//! cargo-fuzz target (`component/fuzz/`). A violation panics with a message
//! naming the rule. See `docs/testing.md#fuzzing`.
//!
//! Checked for every batch the planner accepts:
//!
//! * planning does not panic, and is deterministic (same canonical JSON twice);
//! * exactly one outcome per record, in record order, and counters that agree
//!   with the outcomes and writes;
//! * write ids are positions, purposes come in plan order, every write carries
//!   records (ascending, unique, in range), none of them skipped or invalid;
//! * every write's key lies inside the key space of its own records
//!   (`docs/specification.md#snapshots`, `#refill`, `#shard-doubling`,
//!   `#shard-propagation`, `#archive`);
//! * with [`Options::limits`]: every written key, number and expression is
//!   within DynamoDB's limits;
//! * `replan_snapshots` with observed items for any subset of the snapshot
//!   writes never panics and answers only with snapshot write ids of the plan;
//!   an id that is no snapshot write is `unknown-write-id`.

use std::collections::BTreeSet;

use zae_planner::plan::{
    canonical_json, Attribute, Batch, FailurePolicy, ObservedItem, OnConditionFailure, Operation, Plan, PlanError,
    Purpose, RecordStatus, Write,
};

use super::multi_json::MultiJson;

/// Largest partition key value (bytes).
pub const MAX_PK_BYTES: usize = 2048;
/// Largest sort key value (bytes).
pub const MAX_SK_BYTES: usize = 1024;
/// Largest value of a GSI partition key attribute (bytes).
pub const MAX_GSI_PK_BYTES: usize = 2048;
/// Largest value of a GSI sort key attribute (bytes).
pub const MAX_GSI_SK_BYTES: usize = 1024;
/// Largest UpdateExpression / ConditionExpression (bytes).
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Most significant digits of a DynamoDB number.
pub const MAX_NUMBER_DIGITS: usize = 38;

/// The GSI key attributes of the table (`docs/specification.md#keys`).
pub const GSI_KEYS: [&str; 6] = ["GSI2PK", "GSI2SK", "GSI3PK", "GSI3SK", "GSI4PK", "GSI4SK"];

/// Which optional checks run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Assert DynamoDB's key, number and expression limits.
    pub limits: bool,
    /// Assert that a re-plan's writes carry no record it reports invalid
    /// (a malformed watermark on one snapshot item invalidates records that
    /// another re-planned item still carries).
    pub replan_outcomes: bool,
    /// Assert the key space of writes whose SK is empty or not a string too.
    pub bucket_sk: bool,
}

impl Options {
    /// Every check on.
    pub fn all() -> Self {
        Options { limits: true, replan_outcomes: true, bucket_sk: true }
    }

    /// The checks every run makes: all of them (the planner enforces
    /// DynamoDB's limits, and the two bugs the checker found are fixed).
    pub fn from_env() -> Self {
        Self::all()
    }
}

/// What the checker knows of one record of the event, read independently of
/// the planner. Duplicate keys give several candidates; any one may match.
#[derive(Debug, Default)]
struct RecordKeys {
    pks: Vec<String>,
    sks: Vec<String>,
    entity_ids: Vec<String>,
}

/// The records of the event as the checker reads them (`None` if it is not
/// a usable event).
fn read_records(event: &str) -> Option<Vec<RecordKeys>> {
    let root = MultiJson::parse(event).ok()?;
    if !matches!(root, MultiJson::Object(_)) {
        return None;
    }
    let records = match root.last("Records") {
        None | Some(MultiJson::Null) => return Some(Vec::new()),
        Some(MultiJson::Array(items)) => items,
        Some(_) => return None,
    };
    Some(
        records
            .iter()
            .map(|r| RecordKeys {
                pks: r.strings_at(&["dynamodb", "NewImage", "PK", "S"]),
                sks: r.strings_at(&["dynamodb", "NewImage", "SK", "S"]),
                entity_ids: r.strings_at(&["dynamodb", "NewImage", "entity_id", "S"]),
            })
            .collect(),
    )
}

/// Plan `batch`, check every invariant, and return the plan (or the error,
/// after checking that it is one the input explains).
pub fn check_plan(batch: &Batch, opts: Options) -> Result<Plan, PlanError> {
    let first = zae_planner::plan(batch);
    let second = zae_planner::plan(batch);
    let records = read_records(batch.event_json);
    let plan = match (first, second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(canonical_json(&a), canonical_json(&b), "planning is not deterministic");
            a
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "planning errors are not deterministic");
            check_error(batch, &a, records.is_some());
            return Err(a);
        }
        (a, b) => panic!("planning twice gave {:?} and then {:?}", a.err(), b.err()),
    };
    assert!(batch.config.validate().is_ok(), "a bad configuration was planned with: {:?}", batch.config);
    let records = records.expect("the planner accepted an event that is not a JSON object with a Records list");
    check_common(batch, &plan, &records, opts, false);
    check_counters(&plan);
    Ok(plan)
}

fn check_error(batch: &Batch, e: &PlanError, event_usable: bool) {
    match e {
        PlanError::BadConfig(_) => assert!(batch.config.validate().is_err(), "bad-config for a valid config: {e}"),
        PlanError::UnknownWriteId(_) => panic!("plan() answered unknown-write-id"),
        PlanError::UnknownRecordIndex(_) => panic!("plan() answered unknown-record-index"),
        PlanError::UnknownReadId(_) => panic!("plan() answered unknown-read-id"),
        PlanError::EventNotJson(_) | PlanError::EventNotObject | PlanError::RecordsNotList => {
            assert!(
                !event_usable || batch.config.validate().is_err(),
                "the planner refused an event the checker reads as a JSON object with a Records list: {e}"
            );
        }
    }
}

/// Invariants shared by a plan and a re-plan.
fn check_common(batch: &Batch, plan: &Plan, records: &[RecordKeys], opts: Options, replan: bool) {
    let n = records.len();
    assert_eq!(plan.outcomes.len(), n, "one outcome per record");
    for (i, o) in plan.outcomes.iter().enumerate() {
        assert_eq!(o.index as usize, i, "outcomes in record order");
    }
    let mut last_purpose = Purpose::Snapshot;
    for w in &plan.writes {
        assert!(w.purpose >= last_purpose, "write {} ({:?}) out of purpose order", w.id, w.purpose);
        last_purpose = w.purpose;
        assert_eq!(w.failure_policy, FailurePolicy::of(w.purpose), "write {} failure policy", w.id);
        let want = match w.purpose {
            Purpose::Snapshot => OnConditionFailure::ResolveWatermarks,
            _ => OnConditionFailure::Ignore,
        };
        assert_eq!(w.on_condition_failure, want, "write {} on_condition_failure", w.id);
        assert_eq!(w.target, w.describe_target(), "write {} target", w.id);
        assert!(!w.records.is_empty(), "write {} carries no record", w.id);
        assert!(w.records.windows(2).all(|p| p[0] < p[1]), "write {} records not ascending and unique", w.id);
        if w.purpose == Purpose::DeadLetter {
            // The dead letter carries exactly the invalid records, and only them.
            let invalid: Vec<u32> = plan
                .outcomes
                .iter()
                .filter(|o| matches!(o.status, RecordStatus::Invalid(_)))
                .map(|o| o.index)
                .collect();
            assert!(!replan, "a re-plan has no dead-letter write");
            assert_eq!(
                w.records, invalid,
                "the dead-letter write {} carries other records than the invalid ones",
                w.id
            );
            check_key_space(batch, w, records, opts);
            continue;
        }
        for &r in &w.records {
            let Some(o) = plan.outcomes.get(r as usize) else { panic!("write {} carries record {r} of {n}", w.id) };
            if replan && !opts.replan_outcomes && matches!(o.status, RecordStatus::Invalid(_)) {
                continue;
            }
            assert!(
                matches!(o.status, RecordStatus::Used),
                "write {} carries record {r}, whose outcome is {:?}",
                w.id,
                o.status
            );
        }
        check_key_space(batch, w, records, opts);
        if opts.limits {
            check_limits(w);
        }
    }
}

fn check_counters(plan: &Plan) {
    let c = &plan.counters;
    let count = |f: fn(&RecordStatus) -> bool| plan.outcomes.iter().filter(|o| f(&o.status)).count() as u32;
    assert_eq!(c.records as usize, plan.outcomes.len(), "counters.records");
    assert_eq!(c.skipped, count(|s| matches!(s, RecordStatus::Skipped(_))), "counters.skipped");
    assert_eq!(c.invalid, count(|s| matches!(s, RecordStatus::Invalid(_))), "counters.invalid");
    let writes = |p: Purpose| plan.writes.iter().filter(|w| w.purpose == p).count() as u32;
    assert_eq!(c.snapshot_writes, writes(Purpose::Snapshot), "counters.snapshot_writes");
    assert_eq!(c.refill_writes, writes(Purpose::Refill), "counters.refill_writes");
    assert_eq!(c.shard_bump_writes, writes(Purpose::ShardBump), "counters.shard_bump_writes");
    assert_eq!(c.shard_propagate_writes, writes(Purpose::ShardPropagate), "counters.shard_propagate_writes");
    assert_eq!(c.archive_objects, writes(Purpose::Archive), "counters.archive_objects");
    for (i, w) in plan.writes.iter().enumerate() {
        assert_eq!(w.id as usize, i, "write ids are positions");
    }
}

/// The text of a compact `{"S":"..."}`.
fn s_value(a: &Attribute) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(&a.value).ok()? {
        serde_json::Value::Object(m) if m.len() == 1 => m.get("S")?.as_str().map(str::to_string),
        _ => None,
    }
}

fn attr<'w>(attrs: &'w [Attribute], name: &str) -> Option<&'w Attribute> {
    attrs.iter().find(|a| a.name == name)
}

/// `(PK, SK)` of a DynamoDB write, or panic.
fn key_of(w: &Write) -> (String, String) {
    let attrs = match &w.operation {
        Operation::UpdateItem(u) => &u.key,
        Operation::PutItem(_) => return w.item_key().unwrap_or_else(|| panic!("put {} names no PK and SK", w.id)),
        Operation::PutObject(_) => panic!("write {} ({:?}) is a PutObject", w.id, w.purpose),
        Operation::TransactWriteItems(_) => {
            let (pk, sk) = w.item_key().unwrap_or_else(|| panic!("transaction {} names no item", w.id));
            return (pk, sk);
        }
    };
    let get = |name| {
        attr(attrs, name).and_then(s_value).unwrap_or_else(|| panic!("write {} has no string {name}: {attrs:?}", w.id))
    };
    (get("PK"), get("SK"))
}

/// `ns/BUCKET#entity#resource#` of a current-format bucket PK: everything up
/// to and including the last `#`.
fn bucket_prefix(pk: &str) -> Option<&str> {
    if !pk.contains("/BUCKET#") {
        return None;
    }
    pk.rfind('#').map(|i| &pk[..=i])
}

fn check_key_space(batch: &Batch, w: &Write, records: &[RecordKeys], opts: Options) {
    let carried = || w.records.iter().map(|&r| &records[r as usize]);
    let table = match &w.operation {
        Operation::UpdateItem(u) => Some(&u.table_name),
        Operation::PutItem(p) => Some(&p.table_name),
        Operation::PutObject(_) => None,
        Operation::TransactWriteItems(items) => items.first().map(|i| match i {
            zae_planner::plan::TransactItem::Put(p) => &p.table_name,
            zae_planner::plan::TransactItem::Update(u) => &u.table_name,
            zae_planner::plan::TransactItem::ConditionCheck(c) => &c.table_name,
        }),
    };
    if let Some(t) = table {
        assert_eq!(t, &batch.config.table_name, "write {} goes to another table", w.id);
    }
    if !opts.bucket_sk && !matches!(w.operation, Operation::PutObject(_)) {
        match w.item_key() {
            Some((_, sk)) if !sk.is_empty() => {}
            _ => return,
        }
    }
    match w.purpose {
        Purpose::Snapshot => {
            assert!(matches!(w.operation, Operation::UpdateItem(_)), "snapshot write {} is not an UpdateItem", w.id);
            let (pk, sk) = key_of(w);
            assert!(sk.starts_with("#USAGE#"), "snapshot write {} SK {sk:?} is not #USAGE#", w.id);
            let ok = carried().any(|r| {
                r.pks.iter().any(|rpk| {
                    let Some((ns, rest)) = rpk.split_once('/') else { return false };
                    let mut entities: Vec<&str> = r.entity_ids.iter().map(String::as_str).collect();
                    if let Some(e) = rest.strip_prefix("BUCKET#").and_then(|b| b.split('#').next()) {
                        entities.push(e);
                    }
                    if let Some(e) = rest.strip_prefix("ENTITY#") {
                        entities.push(e);
                    }
                    entities.iter().any(|e| pk == format!("{ns}/ENTITY#{e}"))
                })
            });
            assert!(ok, "snapshot write {} PK {pk:?} is no {{ns}}/ENTITY#{{entity}} of its records", w.id);
        }
        Purpose::Refill | Purpose::ShardBump => {
            assert!(matches!(w.operation, Operation::UpdateItem(_)), "write {} is not an UpdateItem", w.id);
            let (pk, sk) = key_of(w);
            let ok = carried().any(|r| r.pks.contains(&pk) && r.sks.contains(&sk));
            assert!(ok, "{:?} write {} key ({pk:?}, {sk:?}) is no bucket item of its records", w.purpose, w.id);
        }
        Purpose::ShardPropagate => {
            let (pk, sk) = key_of(w);
            let prefix = bucket_prefix(&pk).unwrap_or_else(|| panic!("propagation write {} PK {pk:?}", w.id));
            let shard = &pk[prefix.len()..];
            assert!(
                !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()),
                "propagation write {} shard {shard:?}",
                w.id
            );
            let ok = carried().any(|r| {
                r.pks.iter().any(|rpk| bucket_prefix(rpk) == Some(prefix)) && (sk == "#STATE" || r.sks.contains(&sk))
            });
            assert!(ok, "propagation write {} key ({pk:?}, {sk:?}) is no shard of its records' buckets", w.id);
        }
        Purpose::Archive => {
            let Operation::PutObject(o) = &w.operation else { panic!("archive write {} is not a PutObject", w.id) };
            assert_eq!(Some(&o.bucket), batch.config.archive_bucket.as_ref(), "archive write {} bucket", w.id);
            assert!(o.key.starts_with("audit/year="), "archive write {} key {:?}", w.id, o.key);
        }
        Purpose::DeadLetter => {
            let Operation::PutObject(o) = &w.operation else { panic!("dead-letter write {} is not a PutObject", w.id) };
            assert_eq!(Some(&o.bucket), batch.config.dead_letter_bucket.as_ref(), "dead-letter write {} bucket", w.id);
            assert!(o.key.starts_with("dead-letter/year="), "dead-letter write {} key {:?}", w.id, o.key);
        }
    }
}

/// Every DynamoDB number and key of a write within DynamoDB's limits.
fn check_limits(w: &Write) {
    let (item_like, exprs): (Vec<&Attribute>, Vec<&str>) = match &w.operation {
        Operation::UpdateItem(u) => {
            let mut exprs = vec![u.update_expression.as_str()];
            exprs.extend(u.condition_expression.as_deref());
            (u.key.iter().collect(), exprs)
        }
        Operation::PutItem(p) => (p.attributes().collect(), p.condition_expression.as_deref().into_iter().collect()),
        Operation::PutObject(o) => {
            assert!(o.key.len() <= 1024, "write {}: S3 key of {} bytes", w.id, o.key.len());
            return;
        }
        Operation::TransactWriteItems(_) => {
            assert!(
                zae_planner::limits::check_write(w).is_ok(),
                "write {}: a transaction beyond DynamoDB's limits",
                w.id
            );
            return;
        }
    };
    for e in exprs {
        assert!(e.len() <= MAX_EXPRESSION_BYTES, "write {}: expression of {} bytes", w.id, e.len());
    }
    let (pk, sk) = key_of(w);
    assert!(!pk.is_empty() && pk.len() <= MAX_PK_BYTES, "write {}: PK of {} bytes", w.id, pk.len());
    assert!(!sk.is_empty() && sk.len() <= MAX_SK_BYTES, "write {}: SK of {} bytes", w.id, sk.len());
    // GSI keys: in a PutItem's item, or SET from a value in an UpdateItem.
    let mut gsi: Vec<(String, &Attribute)> = Vec::new();
    match &w.operation {
        Operation::PutItem(p) => {
            for a in p.attributes() {
                if GSI_KEYS.contains(&a.name.as_str()) {
                    gsi.push((a.name.clone(), a));
                }
            }
        }
        Operation::UpdateItem(u) => {
            let set = u.update_expression.strip_prefix("SET ").unwrap_or("");
            let set = set.split(" ADD ").next().unwrap_or("");
            for term in set.split(", ") {
                let Some((lhs, rhs)) = term.split_once(" = ") else { continue };
                let Some(name) = u.names.iter().find(|n| n.placeholder == lhs.trim()) else { continue };
                if !GSI_KEYS.contains(&name.name.as_str()) {
                    continue;
                }
                let placeholder = rhs.split([' ', '(', ')', ',']).rfind(|t| t.starts_with(':'));
                if let Some(v) = placeholder.and_then(|p| attr(&u.values, p)) {
                    gsi.push((name.name.clone(), v));
                }
            }
        }
        Operation::PutObject(_) | Operation::TransactWriteItems(_) => {}
    }
    for (name, a) in gsi {
        if let Some(v) = s_value(a) {
            let max = if name.ends_with("PK") { MAX_GSI_PK_BYTES } else { MAX_GSI_SK_BYTES };
            assert!(!v.is_empty() && v.len() <= max, "write {}: {name} of {} bytes", w.id, v.len());
        }
    }
    let values: &[Attribute] = match &w.operation {
        Operation::UpdateItem(u) => &u.values,
        Operation::PutItem(p) => &p.values,
        Operation::PutObject(_) | Operation::TransactWriteItems(_) => &[],
    };
    for a in item_like.into_iter().chain(values) {
        let v: serde_json::Value = serde_json::from_str(&a.value)
            .unwrap_or_else(|e| panic!("write {}: attribute {:?} is not JSON ({e}): {}", w.id, a.name, a.value));
        check_numbers(w.id, &a.name, &v);
    }
}

fn check_numbers(id: u32, name: &str, v: &serde_json::Value) {
    let Some(m) = v.as_object() else { return };
    for (tag, inner) in m {
        match (tag.as_str(), inner) {
            ("N", serde_json::Value::String(n)) => {
                assert!(valid_number(n), "write {id}: attribute {name:?} number {n:?} is not a DynamoDB number")
            }
            ("NS", serde_json::Value::Array(l)) => {
                for n in l {
                    let n = n.as_str().unwrap_or("");
                    assert!(valid_number(n), "write {id}: attribute {name:?} number {n:?} is not a DynamoDB number");
                }
            }
            ("M", serde_json::Value::Object(m)) => m.values().for_each(|x| check_numbers(id, name, x)),
            ("L", serde_json::Value::Array(l)) => l.iter().for_each(|x| check_numbers(id, name, x)),
            _ => {}
        }
    }
}

/// A DynamoDB number: decimal syntax, at most 38 significant digits, and a
/// magnitude from 1E-130 to below 1E+126 (or zero).
pub fn valid_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let mut digits = String::new();
    let mut int_len = 0i64;
    while i < b.len() && b[i].is_ascii_digit() {
        digits.push(b[i] as char);
        int_len += 1;
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            digits.push(b[i] as char);
            i += 1;
        }
    }
    if digits.is_empty() {
        return false;
    }
    let mut exp: i64 = 0;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        let neg = i < b.len() && b[i] == b'-';
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            exp = (exp * 10 + i64::from(b[i] - b'0')).min(1_000_000);
            i += 1;
        }
        if i == start {
            return false;
        }
        if neg {
            exp = -exp;
        }
    }
    if i != b.len() {
        return false;
    }
    let lead = digits.len() - digits.trim_start_matches('0').len();
    let sig = digits.trim_matches('0');
    if sig.is_empty() {
        return true;
    }
    // Decimal exponent of the leading significant digit.
    let magnitude = int_len - lead as i64 - 1 + exp;
    sig.len() <= MAX_NUMBER_DIGITS && (-130..=125).contains(&magnitude)
}

/// Re-plan `batch` against `observed` (its selectors taken modulo the
/// snapshot writes of `plan`) and check every invariant.
pub fn check_replan(batch: &Batch, plan: &Plan, observed: &super::gen::Observed, opts: Options) {
    let snapshot_ids: Vec<u32> = plan.writes.iter().filter(|w| w.purpose == Purpose::Snapshot).map(|w| w.id).collect();
    let mut items: Vec<ObservedItem> = Vec::new();
    if !snapshot_ids.is_empty() {
        for (sel, item) in &observed.items {
            let write_id = snapshot_ids[*sel as usize % snapshot_ids.len()];
            items.push(ObservedItem { write_id, item: item.clone() });
        }
    }
    let unknown = observed.unknown_id.map(|x| snapshot_ids.len() as u32 + x % 1000);
    if let Some(id) = unknown {
        items.push(ObservedItem { write_id: id, item: None });
    }
    let first = zae_planner::replan_snapshots(batch, &items);
    let second = zae_planner::replan_snapshots(batch, &items);
    if let Some(id) = unknown {
        assert_eq!(first, Err(PlanError::UnknownWriteId(id)), "re-plan naming write {id}, no snapshot write");
        return;
    }
    let (a, b) = (first.expect("re-plan of a planned batch failed"), second.expect("re-plan failed"));
    assert_eq!(canonical_json(&a), canonical_json(&b), "re-planning is not deterministic");
    let records = read_records(batch.event_json).expect("event read");
    check_common(batch, &a, &records, opts, true);
    let observed_ids: BTreeSet<u32> = items.iter().map(|o| o.write_id).collect();
    let mut seen = BTreeSet::new();
    for w in &a.writes {
        assert!(observed_ids.contains(&w.id), "re-plan answered write {}, which was not observed", w.id);
        assert!(seen.insert(w.id), "re-plan answered write {} twice", w.id);
        let original = &plan.writes[w.id as usize];
        assert_eq!(original.purpose, Purpose::Snapshot, "re-plan write {} is no snapshot write", w.id);
        assert_eq!(w.purpose, Purpose::Snapshot, "re-plan write {} purpose", w.id);
        assert_eq!(original.target, w.target, "re-plan write {} addresses another item", w.id);
    }
    assert_eq!(a.counters.snapshot_writes as usize, a.writes.len(), "re-plan counters.snapshot_writes");
}
