//! The behaviours zae-limiter 0.13.0's own aggregator tests pin, and the worked examples, as tests
//! against the planner's public API (docs/testing.md#upstream-pinned-behaviours).
//!
//! One test per pinned behaviour, or per small group of closely related ones,
//! grouped by upstream test module and function. Where docs/decisions.md fixes an upstream
//! behaviour, the test asserts ours and names the fix (`W…`).
//!
//! The planner plans writes; it does not execute them. So the integration tests (which
//! upstream runs against LocalStack) are checked by applying the planned
//! writes to a small in-memory model of a DynamoDB table ([`Table`]), which
//! evaluates the condition and update expressions the way DynamoDB does for
//! the subset the planner emits.
//!
//! Bullets that belong to the host (they are about executing writes, AWS
//! errors, or how logs and the Lambda response are rendered), not tested here:
//! * test_processor.py process_stream_records "An update_item exception gives one `Error
//!   updating snapshot` error", and Logging integration "A snapshot failure
//!   produces exactly one WARNING": a write can only fail when the host runs it.
//! * test_processor.py try_refill_bucket "A ValidationException is re-raised", and Refill
//!   inside process_stream_records "A failing conditional update_item produces
//!   an `Error refilling bucket` error": AWS error handling is the executor's.
//!   The planner's share (placeholders only, W9; condition failures marked
//!   `ignore`) is tested below.
//! * test_processor.py propagate_shard_count "All conditional failures: 0" and "A put that
//!   fails its condition counts 0": counting executed outcomes; the planner's
//!   share (`on_condition_failure = ignore`) is tested.
//! * test_processor.py StructuredLogger (timestamp, logger name, `exception` tracebacks),
//!   the `processing_time_ms` of "Batch processing completed", and the `": "`
//!   log spacing pinned by the "High shard count" test: the planner returns
//!   `(level, message, fields)` entries and has no clock; the host renders lines.
//! * test_handler.py statusCode 200 and the response body, `boto3.client("s3")` being
//!   built once, the request id handed to the archiver, and the error-list
//!   concatenation: the host builds the Lambda response (docs/decisions.md#w2 makes it
//!   `batchItemFailures`). The planner-side inputs (counters, outcomes, config)
//!   are tested.
//! * test_archiver.py archive_audit_events "An S3 exception: archived 1, objects 0, one
//!   error": executing PutObject.
//! * test_audit_archival.py E2E (stack deployment, TTL sweeps, stack outputs): deployment; only
//!   the planner part (a namespaced audit delete is archived, W15) is tested.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde_json::{json, Map, Value};
use zae_planner::bucket::{self, BucketState, Parsed};
use zae_planner::config::Config;
use zae_planner::event::{map_records, Seq};
use zae_planner::plan::{
    canonical_json, Attribute, Batch, Counters, ExpressionName, LogLevel, OnConditionFailure, Operation, Plan, Purpose,
    PutItem, PutObject, RecordStatus, UpdateItem, Write,
};
use zae_planner::pyjson::{self, PyValue};
use zae_planner::window::{window_end, window_key, Window};
use zae_planner::{archive, refill, snapshot};

/// 2024-01-01T00:00:00Z.
const JAN1: i64 = 1_704_067_200_000;
/// 2024-01-01T14:35:22Z (the upstream window tests' timestamp).
const JAN1_143522: i64 = 1_704_119_722_000;
/// 2024-01-01T15:00:00Z: the clock of most tests, after every `rf` they use.
const NOW: i64 = 1_704_121_200_000;
/// 2024-01-15T14:30:00Z in epoch seconds.
const JAN15_1430_S: i64 = 1_705_329_000;
/// 2024-03-20T00:00:00Z in epoch seconds.
const MAR20_S: i64 = 1_710_892_800;
const DAY_S: i128 = 86_400;

// ---------------------------------------------------------------------------
// Building events
// ---------------------------------------------------------------------------

fn n(v: impl Display) -> Value {
    json!({ "N": v.to_string() })
}

fn s(v: &str) -> Value {
    json!({ "S": v })
}

/// A bucket item change (MODIFY) under construction: both images.
#[derive(Clone)]
struct Bucket {
    new: Map<String, Value>,
    old: Map<String, Value>,
    approx_s: Option<i64>,
}

impl Bucket {
    fn with_keys(pk: &str, sk: &str, entity: &str) -> Self {
        let mut keys = Map::new();
        keys.insert("PK".into(), s(pk));
        keys.insert("SK".into(), s(sk));
        keys.insert("entity_id".into(), s(entity));
        Bucket { new: keys.clone(), old: keys, approx_s: None }
    }

    /// The old (pre-shard) layout most upstream processor tests use:
    /// `{ns}/ENTITY#{entity}` / `#BUCKET#{resource}`.
    fn old_format(ns: &str, entity: &str, resource: &str) -> Self {
        Bucket::with_keys(&format!("{ns}/ENTITY#{entity}"), &format!("#BUCKET#{resource}"), entity)
    }

    /// The current layout `{ns}/BUCKET#{entity}#{resource}#{shard}` / `#STATE`,
    /// with the secondary keys the client writes.
    fn new_format(ns: &str, entity: &str, resource: &str, shard: i64) -> Self {
        let mut b = Bucket::with_keys(&format!("{ns}/BUCKET#{entity}#{resource}#{shard}"), "#STATE", entity);
        for (k, v) in [
            ("resource", resource.to_string()),
            ("GSI2PK", format!("{ns}/RESOURCE#{resource}")),
            ("GSI2SK", format!("BUCKET#{entity}#{shard}")),
            ("GSI3PK", format!("{ns}/ENTITY#{entity}")),
            ("GSI3SK", format!("BUCKET#{resource}#{shard}")),
            ("GSI4PK", ns.to_string()),
            ("GSI4SK", format!("BUCKET#{entity}#{resource}#{shard}")),
        ] {
            b.new.insert(k.into(), s(&v));
            b.old.insert(k.into(), s(&v));
        }
        b
    }

    /// Replace the sort key in both images.
    fn sk(mut self, sk: &str) -> Self {
        self.new.insert("SK".into(), s(sk));
        self.old.insert("SK".into(), s(sk));
        self
    }

    /// `dynamodb.ApproximateCreationDateTime`, epoch seconds.
    fn at(mut self, secs: i64) -> Self {
        self.approx_s = Some(secs);
        self
    }

    /// `rf` in both images.
    fn rf(mut self, ms: i64) -> Self {
        self.new.insert("rf".into(), n(ms));
        self.old.insert("rf".into(), n(ms));
        self
    }

    /// `shard_count`: `old` in the OldImage, `new` in the NewImage.
    fn shards(mut self, old: i64, new: i64) -> Self {
        self.old.insert("shard_count".into(), n(old));
        self.new.insert("shard_count".into(), n(new));
        self
    }

    /// Only the consumption counter of a limit, in both images.
    fn tc(mut self, name: &str, old_tc: i64, new_tc: i64) -> Self {
        self.new.insert(format!("b_{name}_tc"), n(new_tc));
        self.old.insert(format!("b_{name}_tc"), n(old_tc));
        self
    }

    /// A full limit: `tc` in both images, `tk cp ra rp` in both (upstream reads them from NewImage).
    #[allow(clippy::too_many_arguments)]
    fn limit(mut self, name: &str, old_tc: i64, new_tc: i64, tk: i64, cp: i64, ra: i64, rp: i64) -> Self {
        self = self.tc(name, old_tc, new_tc);
        for (f, v) in [("tk", tk), ("cp", cp), ("ra", ra), ("rp", rp)] {
            self.new.insert(format!("b_{name}_{f}"), n(v));
            self.old.insert(format!("b_{name}_{f}"), n(v));
        }
        self
    }

    fn set_new(mut self, attr: &str, av: Value) -> Self {
        self.new.insert(attr.into(), av);
        self
    }

    fn drop_new(mut self, attr: &str) -> Self {
        self.new.remove(attr);
        self
    }

    fn drop_old(mut self, attr: &str) -> Self {
        self.old.remove(attr);
        self
    }

    fn new_image(&self) -> Value {
        Value::Object(self.new.clone())
    }

    /// The stream record, as Lambda delivers it.
    fn record(&self, seq: u64) -> Value {
        let mut ddb = Map::new();
        if let Some(t) = self.approx_s {
            ddb.insert("ApproximateCreationDateTime".into(), json!(t));
        }
        let mut keys = Map::new();
        for k in ["PK", "SK"] {
            if let Some(v) = self.new.get(k) {
                keys.insert(k.into(), v.clone());
            }
        }
        ddb.insert("Keys".into(), Value::Object(keys));
        ddb.insert("NewImage".into(), self.new_image());
        ddb.insert("OldImage".into(), Value::Object(self.old.clone()));
        ddb.insert("SequenceNumber".into(), json!(seq.to_string()));
        ddb.insert("SizeBytes".into(), json!(256));
        ddb.insert("StreamViewType".into(), json!("NEW_AND_OLD_IMAGES"));
        json!({
            "eventID": format!("ev-{seq}"),
            "eventName": "MODIFY",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": ddb,
        })
    }

    /// The same change delivered as another event type.
    fn record_as(&self, event_name: &str, seq: u64) -> Value {
        let mut r = self.record(seq);
        r["eventName"] = json!(event_name);
        r
    }
}

/// A deleted audit item's image (docs/specification.md#keys).
fn audit_image(ns: &str, entity: &str, id: &str, ts: &str) -> Value {
    let pk = if ns.is_empty() { format!("AUDIT#{entity}") } else { format!("{ns}/AUDIT#{entity}") };
    json!({
        "PK": s(&pk), "SK": s(&format!("#AUDIT#{id}")),
        "entity_id": s(entity), "event_id": s(id), "timestamp": s(ts), "action": s("entity_created"),
        "principal": s("admin"), "resource": {"NULL": true}, "details": {"M": {}},
        "ttl": n(1_700_000_000), "GSI4PK": s(ns), "GSI4SK": s(&format!("{ns}/AUDIT#{entity}")),
    })
}

/// A REMOVE record of `old`.
fn remove(seq: u64, old: Value) -> Value {
    let keys = json!({"PK": old["PK"].clone(), "SK": old["SK"].clone()});
    json!({"eventID": format!("ev-{seq}"), "eventName": "REMOVE", "eventSource": "aws:dynamodb",
           "dynamodb": {"Keys": keys, "OldImage": old, "SequenceNumber": seq.to_string(),
                        "StreamViewType": "NEW_AND_OLD_IMAGES"},
           "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}})
}

/// A REMOVE with an ApproximateCreationDateTime.
fn remove_at(seq: u64, old: Value, secs: i64) -> Value {
    let mut r = remove(seq, old);
    r["dynamodb"]["ApproximateCreationDateTime"] = json!(secs);
    r
}

// ---------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------

fn config(windows: &[Window]) -> Config {
    Config { windows: windows.to_vec(), ..Config::default() }
}

fn hourly() -> Config {
    config(&[Window::Hourly])
}

fn archiving() -> Config {
    Config { archive_bucket: Some("audit-bucket".into()), ..Config::default() }
}

fn plan_event(event: &str, cfg: &Config, now_ms: i64) -> Plan {
    zae_planner::plan(&Batch { event_json: event, config: cfg, now_ms, invocation_id: "req-1" }).expect("plan")
}

fn plan_at(records: &[Value], cfg: &Config, now_ms: i64) -> Plan {
    plan_event(&json!({ "Records": records }).to_string(), cfg, now_ms)
}

fn plan_with(records: &[Value], cfg: &Config) -> Plan {
    plan_at(records, cfg, NOW)
}

fn plan_hourly(records: &[Value]) -> Plan {
    plan_with(records, &hourly())
}

/// Parse records and fold them into bucket states, as the planner does.
fn with_states<R>(records: &[Value], f: impl FnOnce(&[BucketState]) -> R) -> R {
    let text = json!({ "Records": records }).to_string();
    let parsed = bucket::bucket_records(&text).expect("event");
    let refs: Vec<&bucket::BucketRecord> = parsed.iter().map(|b| &**b).collect();
    f(&bucket::aggregate(&refs))
}

/// What `bucket::parse` makes of one record, as a short string.
fn parse_one(record: &Value) -> String {
    let text = json!({ "Records": [record] }).to_string();
    let mut recs = map_records(&text, bucket::parse).expect("event");
    match recs.remove(0) {
        Parsed::Bucket(b) => {
            format!("bucket {} {} {} {} sc={}", b.ns, b.entity, b.resource, b.shard_id, b.shard_count)
        }
        Parsed::Skip(r) => format!("skip {r}"),
        Parsed::Invalid(r) => format!("invalid {r}"),
    }
}

// ---------------------------------------------------------------------------
// Inspecting plans
// ---------------------------------------------------------------------------

fn of(plan: &Plan, purpose: Purpose) -> Vec<&Write> {
    plan.writes.iter().filter(|w| w.purpose == purpose).collect()
}

fn upd(w: &Write) -> &UpdateItem {
    match &w.operation {
        Operation::UpdateItem(u) => u,
        other => panic!("not an UpdateItem: {other:?}"),
    }
}

fn put_item(w: &Write) -> &PutItem {
    match &w.operation {
        Operation::PutItem(p) => p,
        other => panic!("not a PutItem: {other:?}"),
    }
}

fn put_object(w: &Write) -> &PutObject {
    match &w.operation {
        Operation::PutObject(o) => o,
        other => panic!("not a PutObject: {other:?}"),
    }
}

fn av(json_text: &str) -> Value {
    serde_json::from_str(json_text).expect("attribute value JSON")
}

/// The string of an `{"S": …}` value.
fn s_of(json_text: &str) -> String {
    av(json_text)["S"].as_str().unwrap_or_else(|| panic!("not S: {json_text}")).to_string()
}

/// The integer of an `{"N": …}` value.
fn n_of(json_text: &str) -> i128 {
    av(json_text)["N"].as_str().unwrap_or_else(|| panic!("not N: {json_text}")).parse().expect("integer N")
}

fn key_of(key: &[Attribute]) -> (String, String) {
    let get = |name: &str| key.iter().find(|a| a.name == name).map(|a| s_of(&a.value)).expect("key attribute");
    (get("PK"), get("SK"))
}

fn key(u: &UpdateItem) -> (String, String) {
    key_of(&u.key)
}

fn item_attr<'a>(p: &'a PutItem, name: &str) -> Option<&'a str> {
    p.attributes().find(|a| a.name == name).map(|a| a.value.as_str())
}

/// Placeholder tables of a write.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    names: &'a [ExpressionName],
    values: &'a [Attribute],
}

impl<'a> Ctx<'a> {
    fn of(u: &'a UpdateItem) -> Self {
        Ctx { names: &u.names, values: &u.values }
    }

    /// Attribute name of `#x` (or a bare name as it is).
    fn name(&self, token: &str) -> String {
        match token.strip_prefix('#') {
            Some(_) => self
                .names
                .iter()
                .find(|n| n.placeholder == token)
                .map(|n| n.name.clone())
                .unwrap_or_else(|| panic!("undefined name placeholder {token}")),
            None => token.to_string(),
        }
    }

    /// Value of `:x`.
    fn value(&self, token: &str) -> Value {
        let a = self.values.iter().find(|v| v.name == token).unwrap_or_else(|| panic!("undefined value {token}"));
        av(&a.value)
    }

    /// `text` with every `#name` replaced by the attribute name and every
    /// `:value` by its compact DynamoDB JSON.
    fn resolve(&self, text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '#' || c == ':' {
                let mut end = i + 1;
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let token = &text[i..end];
                if c == '#' {
                    out.push_str(&self.name(token));
                } else {
                    out.push_str(&self.value(token).to_string());
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// Split at `sep` outside parentheses.
fn split_top<'t>(text: &'t str, sep: &str) -> Vec<&'t str> {
    let mut out = Vec::new();
    let (mut depth, mut start, mut i) = (0i32, 0usize, 0usize);
    let b = text.as_bytes();
    while i < b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ if depth == 0 && text[i..].starts_with(sep) => {
                out.push(&text[start..i]);
                i += sep.len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&text[start..]);
    out
}

/// One SET action: target, `if_not_exists` source (if any), value.
#[derive(Debug, Clone, PartialEq)]
struct SetAction {
    target: String,
    if_not_exists: Option<String>,
    value: Value,
}

/// An UpdateExpression's SET and ADD actions, placeholders resolved.
#[derive(Debug, Clone, PartialEq)]
struct Actions {
    set: Vec<SetAction>,
    add: Vec<(String, Value)>,
}

fn actions_of(ctx: Ctx, expr: &str) -> Actions {
    let (set_part, add_part) = match expr.find(" ADD ") {
        Some(i) => (&expr[..i], Some(&expr[i + 5..])),
        None => match expr.strip_prefix("ADD ") {
            Some(rest) => ("", Some(rest)),
            None => (expr, None),
        },
    };
    let mut set = Vec::new();
    if let Some(body) = set_part.strip_prefix("SET ") {
        for term in split_top(body, ", ") {
            let (lhs, rhs) = term.split_once(" = ").unwrap_or_else(|| panic!("SET term {term:?}"));
            let (ine, val) = match rhs.strip_prefix("if_not_exists(").and_then(|r| r.strip_suffix(')')) {
                Some(inner) => {
                    let (path, v) = inner.split_once(", ").expect("if_not_exists(path, value)");
                    (Some(ctx.name(path)), v)
                }
                None => (None, rhs),
            };
            set.push(SetAction { target: ctx.name(lhs), if_not_exists: ine, value: ctx.value(val) });
        }
    } else {
        assert!(set_part.is_empty(), "unexpected clause {set_part:?}");
    }
    let mut add = Vec::new();
    if let Some(body) = add_part {
        for term in split_top(body, ", ") {
            let (path, v) = term.split_once(' ').unwrap_or_else(|| panic!("ADD term {term:?}"));
            add.push((ctx.name(path), ctx.value(v)));
        }
    }
    Actions { set, add }
}

fn actions(u: &UpdateItem) -> Actions {
    actions_of(Ctx::of(u), &u.update_expression)
}

/// The SET action on `attr`.
fn set_of(u: &UpdateItem, attr: &str) -> SetAction {
    actions(u).set.into_iter().find(|a| a.target == attr).unwrap_or_else(|| panic!("no SET of {attr}"))
}

/// The ADD amount on `attr`, if any.
fn add_of(u: &UpdateItem, attr: &str) -> Option<i128> {
    actions(u).add.into_iter().find(|(a, _)| a == attr).map(|(_, v)| n_of(&v.to_string()))
}

/// The condition with placeholders resolved.
fn condition(u: &UpdateItem) -> String {
    Ctx::of(u).resolve(u.condition_expression.as_deref().unwrap_or(""))
}

/// Every per-limit snapshot contribution: `(PK, SK, limit, tokens)`.
fn deltas(plan: &Plan) -> Vec<(String, String, String, i128)> {
    let mut out = Vec::new();
    for w in of(plan, Purpose::Snapshot) {
        let u = upd(w);
        let (pk, sk) = key(u);
        for (attr, v) in actions(u).add {
            if attr != "total_events" {
                out.push((pk.clone(), sk.clone(), attr, n_of(&v.to_string())));
            }
        }
    }
    out
}

fn snapshot_keys(plan: &Plan) -> Vec<(String, String)> {
    of(plan, Purpose::Snapshot).into_iter().map(|w| key(upd(w))).collect()
}

fn only(plan: &Plan, purpose: Purpose) -> &UpdateItem {
    let ws = of(plan, purpose);
    assert_eq!(ws.len(), 1, "expected one {purpose:?} write, got {}", ws.len());
    upd(ws[0])
}

fn status(plan: &Plan, index: u32) -> &RecordStatus {
    &plan.outcomes.iter().find(|o| o.index == index).expect("outcome").status
}

fn assert_skipped(plan: &Plan, index: u32) {
    assert!(matches!(status(plan, index), RecordStatus::Skipped(_)), "record {index}: {:?}", status(plan, index));
}

/// The reason of an invalid record.
fn invalid_reason(plan: &Plan, index: u32) -> String {
    match status(plan, index) {
        RecordStatus::Invalid(r) => r.clone(),
        other => panic!("record {index} is not invalid: {other:?}"),
    }
}

/// Shard bumps as `(old, new)`.
fn bumps(plan: &Plan) -> Vec<(i128, i128)> {
    of(plan, Purpose::ShardBump)
        .into_iter()
        .map(|w| {
            let u = upd(w);
            let c = Ctx::of(u);
            (n_of(&c.value(":old").to_string()), n_of(&c.value(":new").to_string()))
        })
        .collect()
}

/// Log entries with a message.
fn logs<'p>(plan: &'p Plan, message: &str) -> Vec<&'p zae_planner::plan::LogEntry> {
    plan.logs.iter().filter(|l| l.message == message).collect()
}

fn field<'e>(entry: &'e zae_planner::plan::LogEntry, name: &str) -> &'e str {
    entry.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no field {name}"))
}

/// Decompress a gzip member, checking its header and trailer.
fn gunzip(body: &[u8]) -> String {
    assert!(body.len() >= 18, "too short for gzip");
    assert_eq!(&body[..3], &[0x1f, 0x8b, 0x08], "gzip magic and deflate method");
    let raw = miniz_oxide::inflate::decompress_to_vec(&body[10..body.len() - 8]).expect("deflate stream");
    let trailer = &body[body.len() - 8..];
    assert_eq!(u32::from_le_bytes(trailer[..4].try_into().unwrap()), pyjson::crc32(&raw), "CRC-32");
    assert_eq!(u32::from_le_bytes(trailer[4..].try_into().unwrap()) as usize, raw.len(), "ISIZE");
    String::from_utf8(raw).expect("UTF-8 body")
}

/// Archive objects as `(key, body text)`.
fn objects(plan: &Plan) -> Vec<(String, String)> {
    of(plan, Purpose::Archive)
        .into_iter()
        .map(|w| {
            let o = put_object(w);
            (o.key.clone(), gunzip(&o.body))
        })
        .collect()
}

/// Every archived NDJSON line, parsed.
fn audit_lines(plan: &Plan) -> Vec<Value> {
    objects(plan)
        .iter()
        .flat_map(|(_, body)| body.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect::<Vec<_>>())
        .collect()
}

/// Convert an AV and serialise it as the archiver does.
fn convert(av: Value) -> (PyValue, String, Vec<String>) {
    let mut warnings = Vec::new();
    let v = pyjson::from_dynamo_av(&av, &mut warnings).expect("convertible");
    let mut out = String::new();
    pyjson::write_json(&mut out, &v);
    (v, out, warnings)
}

// ---------------------------------------------------------------------------
// A small model of a DynamoDB table, for the integration tests (test_update_snapshot.py / test_bucket_refill.py)
// ---------------------------------------------------------------------------

type Item = Map<String, Value>;

#[derive(Default)]
struct Table {
    items: BTreeMap<(String, String), Item>,
}

fn compare(a: Option<&Value>, b: Option<&Value>, op: &str) -> bool {
    let (Some(a), Some(b)) = (a, b) else { return false };
    let ord = match (a.get("N").and_then(Value::as_str), b.get("N").and_then(Value::as_str)) {
        (Some(x), Some(y)) => x.parse::<i128>().unwrap().cmp(&y.parse::<i128>().unwrap()),
        _ => match (a.get("S").and_then(Value::as_str), b.get("S").and_then(Value::as_str)) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => return false,
        },
    };
    match op {
        "=" => ord.is_eq(),
        "<>" => ord.is_ne(),
        "<" => ord.is_lt(),
        "<=" => ord.is_le(),
        ">" => ord.is_gt(),
        ">=" => ord.is_ge(),
        _ => panic!("operator {op}"),
    }
}

fn eval_or(ctx: Ctx, item: Option<&Item>, expr: &str) -> bool {
    split_top(expr, " OR ").into_iter().any(|t| eval_and(ctx, item, t))
}

fn eval_and(ctx: Ctx, item: Option<&Item>, expr: &str) -> bool {
    split_top(expr, " AND ").into_iter().all(|t| eval_atom(ctx, item, t.trim()))
}

fn eval_atom(ctx: Ctx, item: Option<&Item>, t: &str) -> bool {
    let attr = |tok: &str| item.and_then(|i| i.get(&ctx.name(tok))).cloned();
    if let Some(inner) = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        return eval_or(ctx, item, inner);
    }
    if let Some(p) = t.strip_prefix("attribute_not_exists(").and_then(|r| r.strip_suffix(')')) {
        return attr(p).is_none();
    }
    if let Some(p) = t.strip_prefix("attribute_exists(").and_then(|r| r.strip_suffix(')')) {
        return attr(p).is_some();
    }
    for op in ["<=", ">=", "<>", "=", "<", ">"] {
        if let Some((l, r)) = t.split_once(&format!(" {op} ")) {
            let operand = |tok: &str| if tok.starts_with(':') { Some(ctx.value(tok)) } else { attr(tok) };
            return compare(operand(l).as_ref(), operand(r).as_ref(), op);
        }
    }
    panic!("condition term {t:?}")
}

impl Table {
    fn seed(&mut self, image: &Value) {
        let item = image.as_object().expect("image").clone();
        let k = (item["PK"]["S"].as_str().unwrap().to_string(), item["SK"]["S"].as_str().unwrap().to_string());
        self.items.insert(k, item);
    }

    fn get(&self, pk: &str, sk: &str) -> Option<&Item> {
        self.items.get(&(pk.to_string(), sk.to_string()))
    }

    fn attr(&self, pk: &str, sk: &str, name: &str) -> Option<&Value> {
        self.get(pk, sk).and_then(|i| i.get(name))
    }

    /// Apply one DynamoDB write; false when its condition fails.
    fn apply(&mut self, w: &Write) -> bool {
        match &w.operation {
            Operation::UpdateItem(u) => {
                let ctx = Ctx::of(u);
                let k = key(u);
                let current = self.items.get(&k);
                if let Some(c) = &u.condition_expression {
                    if !eval_or(ctx, current, c) {
                        return false;
                    }
                }
                let mut item = current.cloned().unwrap_or_else(|| {
                    let mut m = Map::new();
                    m.insert("PK".into(), s(&k.0));
                    m.insert("SK".into(), s(&k.1));
                    m
                });
                let a = actions(u);
                for set in a.set {
                    if let Some(src) = &set.if_not_exists {
                        if item.contains_key(src) {
                            let kept = item[src].clone();
                            item.insert(set.target, kept);
                            continue;
                        }
                    }
                    item.insert(set.target, set.value);
                }
                for (attr, v) in a.add {
                    let cur = item.get(&attr).map(|x| n_of(&x.to_string())).unwrap_or(0);
                    item.insert(attr, n(cur + n_of(&v.to_string())));
                }
                self.items.insert(k, item);
                true
            }
            Operation::PutItem(p) => {
                let whole: Vec<Attribute> = p.attributes().cloned().collect();
                let item: Item = whole.iter().map(|a| (a.name.clone(), av(&a.value))).collect();
                let k = key_of(&whole);
                let ctx = Ctx { names: &p.names, values: &p.values };
                if let Some(c) = &p.condition_expression {
                    if !eval_or(ctx, self.items.get(&k), c) {
                        return false;
                    }
                }
                self.items.insert(k, item);
                true
            }
            // The 0.13 semantics this table model replays plan no transactions.
            Operation::TransactWriteItems(_) => panic!("write {} is a transaction; the model applies none", w.id),
            Operation::PutObject(_) => true,
        }
    }

    /// Apply every DynamoDB write of a plan, in order; how many applied.
    fn apply_all(&mut self, plan: &Plan) -> usize {
        plan.writes.iter().filter(|w| self.apply(w)).count()
    }
}

// ===========================================================================
// Upstream test_processor.py: Dataclasses
// ===========================================================================

#[test]
fn consumption_delta_fields_are_kept() {
    // ConsumptionDelta{namespace_id, entity_id, resource, limit_name, tokens_delta, timestamp_ms}:
    // the parsed bucket record carries each of them.
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let text = json!({ "Records": [rec] }).to_string();
    let mut recs = map_records(&text, bucket::parse).unwrap();
    let Parsed::Bucket(b) = recs.remove(0) else { panic!("not a bucket") };
    assert_eq!((&*b.ns, &*b.entity, &*b.resource), ("default", "entity-1", "gpt-4"));
    assert_eq!(b.limits.len(), 1);
    assert_eq!((b.limits[0].name.as_str(), b.limits[0].tc_delta), ("tpm", 5_000_000));
    // W5: without ApproximateCreationDateTime the window time is rf (and that is counted).
    assert_eq!(snapshot::window_time(&b), (JAN1_143522, true));
}

#[test]
fn process_result_fields_are_plan_counters_and_outcomes() {
    // ProcessResult{processed_count, snapshots_updated, refills_written, errors} maps to
    // counters.records, counters.snapshot_writes, counters.refill_writes and invalid outcomes.
    let consuming = Bucket::new_format("ns", "u1", "gpt-4", 0)
        .rf(NOW - 5_000)
        .limit("tpm", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)
        .record(1);
    let insert = Bucket::old_format("default", "e", "gpt-4").tc("tpm", 0, 1).record_as("INSERT", 2);
    let bad = Bucket::old_format("default", "e", "gpt-4").tc("tpm", 0, 1).set_new("rf", n("x")).record(3);
    let plan = plan_hourly(&[consuming, insert, bad]);
    assert_eq!(plan.counters.records, 3);
    assert_eq!(plan.counters.snapshot_writes, 1);
    assert_eq!(plan.counters.refill_writes, 1);
    assert_eq!(plan.counters.invalid, 1);
    assert!(invalid_reason(&plan, 2).contains("rf"));
    assert_eq!(plan.outcomes.len(), 3);
}

// ===========================================================================
// Upstream test_processor.py: extract_deltas
// ===========================================================================

#[test]
fn extract_consume_gives_one_delta() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let plan = plan_hourly(&[rec]);
    assert_eq!(
        deltas(&plan),
        vec![(
            "default/ENTITY#entity-1".to_string(),
            "#USAGE#gpt-4#2024-01-01T14:00:00Z".to_string(),
            "tpm".to_string(),
            5000
        )]
    );
    assert_eq!(plan.counters.deltas, 1);
    // timestamp = rf (no ApproximateCreationDateTime on the record, W5 fallback, counted).
    let u = only(&plan, Purpose::Snapshot);
    assert_eq!(set_of(u, "window_start").value, s("2024-01-01T14:00:00Z"));
    assert_eq!(plan.counters.window_time_from_rf, 1);
}

#[test]
fn extract_refund_gives_negative_delta() {
    let rec =
        Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 10_000_000, 5_000_000).record(1);
    let d = deltas(&plan_hourly(&[rec]));
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].2.as_str(), d[0].3), ("tpm", -5000));
}

#[test]
fn extract_two_limits_give_two_deltas() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4")
        .rf(JAN1_143522)
        .tc("tpm", 0, 5_000_000)
        .tc("rpm", 0, 1_000_000)
        .record(1);
    let plan = plan_hourly(&[rec]);
    let d: Vec<(String, i128)> = deltas(&plan).into_iter().map(|d| (d.2, d.3)).collect();
    assert_eq!(d, vec![("tpm".to_string(), 5000), ("rpm".to_string(), 1000)]);
    assert_eq!(plan.counters.deltas, 2);
}

#[test]
fn extract_non_bucket_sort_keys_give_nothing() {
    let records: Vec<Value> = ["#LIMIT#tpm", "#META", "#RESOURCE#gpt-4"]
        .iter()
        .enumerate()
        .map(|(i, sk)| {
            Bucket::old_format("default", "entity-1", "gpt-4")
                .sk(sk)
                .rf(JAN1_143522)
                .tc("tpm", 0, 5)
                .record(i as u64 + 1)
        })
        .collect();
    let plan = plan_hourly(&records);
    assert!(plan.writes.is_empty());
    for i in 0..3 {
        assert_skipped(&plan, i);
    }
}

#[test]
fn extract_unchanged_tc_gives_nothing() {
    let rec =
        Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 5_000_000, 5_000_000).record(1);
    let plan = plan_hourly(&[rec]);
    assert!(of(&plan, Purpose::Snapshot).is_empty());
    assert_eq!(plan.counters.deltas, 0);
}

#[test]
fn extract_empty_resource_sk_is_invalid_w3() {
    // Upstream silently skips `#BUCKET#`; we report the record as invalid (W3: never lose silently).
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").sk("#BUCKET#").tc("tpm", 0, 5_000_000).record(1);
    let plan = plan_hourly(&[rec]);
    assert!(plan.writes.is_empty());
    assert!(invalid_reason(&plan, 0).contains("no resource"));
}

#[test]
fn extract_without_tc_attributes_gives_nothing() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4")
        .rf(JAN1_143522)
        .set_new("b_tpm_tk", n(5))
        .set_new("b_tpm_cp", n(10))
        .record(1);
    let plan = plan_hourly(&[rec]);
    assert!(plan.writes.is_empty());
    assert_skipped(&plan, 0);
}

#[test]
fn extract_tc_in_only_one_image_gives_nothing() {
    let full = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000);
    let only_new = full.clone().drop_old("b_tpm_tc").record(1);
    let only_old = full.drop_new("b_tpm_tc").record(2);
    let plan = plan_hourly(&[only_new, only_old]);
    assert!(plan.writes.is_empty());
    assert_eq!(plan.counters.deltas, 0);
}

#[test]
fn extract_missing_or_empty_entity_id_is_skipped_and_counted() {
    // Upstream skips both silently; we skip them with the reason, and count them.
    let base = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000);
    let missing = base.clone().drop_new("entity_id").record(1);
    let empty = base.set_new("entity_id", s("")).record(2);
    let plan = plan_hourly(&[missing, empty]);
    assert!(plan.writes.is_empty());
    for o in &plan.outcomes {
        match &o.status {
            RecordStatus::Skipped(reason) => assert!(reason.contains("no entity_id"), "{reason}"),
            other => panic!("record {}: {other:?}", o.index),
        }
    }
    assert_eq!((plan.counters.skipped, plan.counters.invalid), (2, 0));
}

#[test]
fn extract_record_without_dynamodb_is_invalid_w3() {
    // The one record shape here that cannot carry a SequenceNumber: it has no `dynamodb` at all.
    let plan = plan_hourly(&[json!({"eventID": "1", "eventName": "MODIFY"})]);
    assert!(plan.writes.is_empty());
    assert!(invalid_reason(&plan, 0).contains("no dynamodb"));
}

#[test]
fn extract_record_without_new_image_is_invalid_w3() {
    let mut rec = Bucket::old_format("default", "entity-1", "gpt-4").tc("tpm", 0, 5_000_000).record(1);
    rec["dynamodb"].as_object_mut().unwrap().remove("NewImage");
    let plan = plan_hourly(&[rec]);
    assert!(plan.writes.is_empty());
    assert!(invalid_reason(&plan, 0).contains("NewImage"));
}

#[test]
fn extract_timestamp_from_approximate_creation_time_w5() {
    // W5: the stream record's time wins over a stale rf.
    let rec = Bucket::old_format("default", "entity-1", "gpt-4")
        .rf(JAN1 - 3 * 86_400_000)
        .at(JAN1_143522 / 1000)
        .tc("tpm", 0, 5_000_000)
        .record(1);
    let plan = plan_hourly(&[rec]);
    assert_eq!(snapshot_keys(&plan)[0].1, "#USAGE#gpt-4#2024-01-01T14:00:00Z");
    assert_eq!(plan.counters.window_time_from_rf, 0);
}

// ===========================================================================
// Upstream test_processor.py: get_window_key
// ===========================================================================

#[test]
fn window_key_hourly_daily_monthly() {
    assert_eq!(window_key(Window::Hourly, JAN1_143522).unwrap(), "2024-01-01T14:00:00Z");
    assert_eq!(window_key(Window::Daily, JAN1_143522).unwrap(), "2024-01-01T00:00:00Z");
    // 2024-03-25T10:35:22Z
    assert_eq!(window_key(Window::Monthly, 1_711_362_922_000).unwrap(), "2024-03-01T00:00:00Z");
}

#[test]
fn window_key_unknown_window_is_a_config_error_w18() {
    // Upstream raises ValueError per delta; we reject the name once, at start-up (W18).
    assert_eq!(Window::parse("weekly"), None);
    let e = Config::from_env([("SNAPSHOT_WINDOWS", "hourly,weekly")]).unwrap_err();
    assert!(e.message.contains("SNAPSHOT_WINDOWS") && e.message.contains("weekly"), "{e}");
}

#[test]
fn window_key_midnight_hourly_equals_daily_but_items_differ_w4() {
    // The keys are equal strings (upstream's pinned collision) ...
    assert_eq!(window_key(Window::Hourly, JAN1).unwrap(), "2024-01-01T00:00:00Z");
    assert_eq!(window_key(Window::Daily, JAN1).unwrap(), "2024-01-01T00:00:00Z");
    // ... but W4: daily gets its own item.
    let k = "2024-01-01T00:00:00Z";
    assert_ne!(snapshot::snapshot_sk("gpt-4", Window::Hourly, k), snapshot::snapshot_sk("gpt-4", Window::Daily, k));
}

#[test]
fn window_key_last_second_of_day() {
    let t = JAN1 + 86_399_000; // 2024-01-01T23:59:59Z
    assert_eq!(window_key(Window::Hourly, t).unwrap(), "2024-01-01T23:00:00Z");
    assert_eq!(window_key(Window::Daily, t).unwrap(), "2024-01-01T00:00:00Z");
}

#[test]
fn window_key_december_31() {
    let t = 1_735_658_400_000; // 2024-12-31T15:20:00Z
    assert_eq!(window_key(Window::Daily, t).unwrap(), "2024-12-31T00:00:00Z");
    assert_eq!(window_key(Window::Monthly, t).unwrap(), "2024-12-01T00:00:00Z");
}

// ===========================================================================
// Upstream test_processor.py: get_window_end
// ===========================================================================

#[test]
fn window_end_hourly_and_daily() {
    assert_eq!(window_end(Window::Hourly, "2024-01-01T14:00:00Z").unwrap(), "2024-01-01T14:59:59Z");
    assert_eq!(window_end(Window::Daily, "2024-01-01T00:00:00Z").unwrap(), "2024-01-01T23:59:59Z");
}

#[test]
fn window_end_monthly_month_lengths() {
    assert_eq!(window_end(Window::Monthly, "2024-01-01T00:00:00Z").unwrap(), "2024-01-31T23:59:59Z");
    assert_eq!(window_end(Window::Monthly, "2024-02-01T00:00:00Z").unwrap(), "2024-02-29T23:59:59Z");
    assert_eq!(window_end(Window::Monthly, "2023-02-01T00:00:00Z").unwrap(), "2023-02-28T23:59:59Z");
    assert_eq!(window_end(Window::Monthly, "2024-04-01T00:00:00Z").unwrap(), "2024-04-30T23:59:59Z");
}

#[test]
fn window_end_december_rolls_over() {
    assert_eq!(window_end(Window::Monthly, "2024-12-01T00:00:00Z").unwrap(), "2024-12-31T23:59:59Z");
}

#[test]
fn window_end_unknown_window_cannot_occur_w18() {
    // Upstream returns the start for an unknown window type. Window types are a closed enum here and
    // unknown names fail configuration (W18); what remains is an unparsable key, which gives None.
    assert_eq!(Window::parse("weekly"), None);
    assert_eq!(window_end(Window::Hourly, "not-a-key"), None);
}

// ===========================================================================
// Upstream test_processor.py: calculate_snapshot_ttl
// ===========================================================================

fn ttl_with_days(days: u32) -> i128 {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let cfg = Config { snapshot_ttl_days: days, ..hourly() };
    let plan = plan_with(&[rec], &cfg);
    n_of(&set_of(only(&plan, Purpose::Snapshot), "ttl").value.to_string())
}

#[test]
fn snapshot_ttl_is_about_90_days_ahead() {
    let ttl = ttl_with_days(90);
    let now_s = (NOW / 1000) as i128;
    assert!(ttl > now_s);
    assert_eq!(ttl, now_s + 90 * DAY_S, "floor(now) + 90 days, from the batch clock");
}

#[test]
fn snapshot_ttl_days_differ_by_whole_days() {
    let (t30, t90, t365) = (ttl_with_days(30), ttl_with_days(90), ttl_with_days(365));
    assert_eq!(t90 - t30, 60 * DAY_S);
    assert_eq!(t365 - t90, 275 * DAY_S);
}

// ===========================================================================
// Upstream test_processor.py: update_snapshot
// ===========================================================================

/// The snapshot write for one `tpm` delta of `entity-1` on `gpt-4` at 14:35:22.
fn update_snapshot(delta_milli: i64) -> UpdateItem {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, delta_milli).record(1);
    only(&plan_hourly(&[rec]), Purpose::Snapshot).clone()
}

#[test]
fn update_snapshot_key() {
    assert_eq!(
        key(&update_snapshot(5_000_000)),
        ("default/ENTITY#entity-1".to_string(), "#USAGE#gpt-4#2024-01-01T14:00:00Z".to_string())
    );
}

#[test]
fn update_snapshot_delta_in_tokens() {
    assert_eq!(add_of(&update_snapshot(5_000_000), "tpm"), Some(5000));
}

#[test]
fn update_snapshot_gsi_keys() {
    let u = update_snapshot(5_000_000);
    let g2pk = set_of(&u, "GSI2PK");
    assert_eq!((g2pk.if_not_exists, g2pk.value), (None, s("default/RESOURCE#gpt-4")));
    assert_eq!(set_of(&u, "GSI2SK").value, s("USAGE#2024-01-01T14:00:00Z#entity-1"));
}

#[test]
fn update_snapshot_ttl_in_future() {
    let ttl = n_of(&set_of(&update_snapshot(5_000_000), "ttl").value.to_string());
    assert!(ttl > (NOW / 1000) as i128);
}

#[test]
fn update_snapshot_expression_fragments() {
    let u = update_snapshot(5_000_000);
    let a = actions(&u);
    // Plain SETs: entity_id, GSI2PK, GSI2SK (and our watermark, a string attribute).
    let plain: Vec<&str> = a
        .set
        .iter()
        .filter(|x| x.if_not_exists.is_none() && !x.target.starts_with(snapshot::WATERMARK_PREFIX))
        .map(|x| x.target.as_str())
        .collect();
    assert_eq!(plain, ["entity_id", "GSI2PK", "GSI2SK"]);
    for attr in ["resource", "window", "window_start", "GSI4PK", "GSI4SK", "ttl"] {
        assert_eq!(set_of(&u, attr).if_not_exists.as_deref(), Some(attr), "{attr} = if_not_exists({attr}, …)");
    }
    let adds: Vec<&str> = a.add.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(adds, ["tpm", "total_events"], "ADD #limit_name :delta, #total_events :one");
    // W9: no attribute name is written into the expression directly.
    let resolved = Ctx::of(&u).resolve(&u.update_expression);
    assert!(resolved.contains("resource = if_not_exists(resource, {\"S\":\"gpt-4\"})"), "{resolved}");
    for word in u.update_expression.split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '#' && c != ':') {
        assert!(
            word.is_empty() || word.starts_with(['#', ':']) || ["SET", "ADD", "if_not_exists"].contains(&word),
            "raw name {word:?} in {}",
            u.update_expression
        );
    }
}

#[test]
fn update_snapshot_values() {
    let u = update_snapshot(1_000_000);
    assert_eq!(set_of(&u, "entity_id").value, s("entity-1"));
    assert_eq!(set_of(&u, "resource").value, s("gpt-4"));
    assert_eq!(set_of(&u, "window").value, s("hourly"));
    assert_eq!(set_of(&u, "window_start").value, s("2024-01-01T14:00:00Z"));
    assert_eq!(add_of(&u, "tpm"), Some(1000), ":delta = 1000");
    assert_eq!(add_of(&u, "total_events"), Some(1), ":one = 1");
}

#[test]
fn update_snapshot_names() {
    let u = update_snapshot(5_000_000);
    let names: Vec<&str> = u.names.iter().map(|x| x.name.as_str()).collect();
    for want in ["resource", "window", "window_start", "tpm", "total_events", "ttl"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}

// ===========================================================================
// Upstream test_processor.py: process_stream_records
// ===========================================================================

#[test]
fn process_empty_input_gives_zero_counts() {
    for event in [r#"{"Records": []}"#, "{}"] {
        let plan = plan_event(event, &hourly(), NOW);
        assert!(plan.writes.is_empty());
        assert!(plan.outcomes.is_empty());
        assert_eq!(plan.counters, Counters::default());
    }
}

#[test]
fn process_insert_and_remove_ignored_but_counted() {
    let b = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000);
    let plan = plan_hourly(&[b.record_as("INSERT", 1), b.record_as("REMOVE", 2)]);
    assert!(plan.writes.is_empty());
    assert_eq!(plan.counters.records, 2);
    assert_skipped(&plan, 0);
    assert_skipped(&plan, 1);
}

#[test]
fn process_two_valid_records_give_two_snapshots_and_no_refill() {
    let r1 = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let r2 = Bucket::old_format("default", "entity-2", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 3_000_000).record(2);
    let plan = plan_hourly(&[r1, r2]);
    assert_eq!(of(&plan, Purpose::Snapshot).len(), 2);
    assert_eq!(plan.counters.snapshot_writes, 2);
    assert!(of(&plan, Purpose::Refill).is_empty(), "no rp/ra, no refill");
}

#[test]
fn process_two_windows_give_two_snapshots() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let plan = plan_with(&[rec], &config(&[Window::Hourly, Window::Daily]));
    assert_eq!(plan.counters.snapshot_writes, 2);
    let sks: Vec<String> = snapshot_keys(&plan).into_iter().map(|k| k.1).collect();
    assert_eq!(sks, ["#USAGE#gpt-4#2024-01-01T14:00:00Z", "#USAGE#gpt-4#2024-01-01T00:00:00Z#daily"]);
}

#[test]
fn process_malformed_number_invalidates_only_that_record_w1_w3() {
    // Upstream: one "Error processing record", then a crash in aggregation when a valid record
    // shares the batch (W1). Here: that record is invalid, naming the attribute; the rest is planned.
    let bad = Bucket::old_format("default", "entity-1", "gpt-4")
        .rf(JAN1_143522)
        .tc("limit", 0, 1)
        .set_new("b_limit_tc", n("not_a_number"))
        .record(1);
    let good = Bucket::old_format("default", "entity-2", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(2);
    let plan = plan_hourly(&[bad, good]);
    assert!(invalid_reason(&plan, 0).contains("b_limit_tc"), "{}", invalid_reason(&plan, 0));
    assert_eq!(plan.counters.invalid, 1);
    assert_eq!(*status(&plan, 1), RecordStatus::Used);
    assert_eq!(deltas(&plan).len(), 1);
    assert_eq!(of(&plan, Purpose::Snapshot)[0].records, vec![1]);
}

#[test]
fn process_zero_delta_gives_no_snapshot() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 7, 7).record(1);
    let plan = plan_hourly(&[rec]);
    assert_eq!(plan.counters.snapshot_writes, 0);
}

#[test]
fn process_mixed_batch_gives_one_snapshot_and_no_errors() {
    let valid = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let meta = Bucket::old_format("default", "entity-1", "gpt-4").sk("#META").tc("tpm", 0, 5).record(2);
    let zero = Bucket::old_format("default", "entity-2", "gpt-4").rf(JAN1_143522).tc("tpm", 3, 3).record(3);
    let plan = plan_hourly(&[valid, meta, zero]);
    assert_eq!(plan.counters.snapshot_writes, 1);
    assert_eq!(plan.counters.invalid, 0);
}

// ===========================================================================
// Upstream test_processor.py: StructuredLogger (planner part; rendering is the host's)
// ===========================================================================

#[test]
fn structured_log_entries_have_level_message_and_json_fields() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let plan = plan_hourly(&[rec, json!({"eventName": "MODIFY", "dynamodb": "invalid"})]);
    let levels: Vec<LogLevel> = plan.logs.iter().map(|l| l.level).collect();
    for want in [LogLevel::Info, LogLevel::Warning, LogLevel::Debug] {
        assert!(levels.contains(&want), "{want:?} in {levels:?}");
    }
    for entry in &plan.logs {
        assert!(["DEBUG", "INFO", "WARNING", "ERROR"].contains(&entry.level.name()));
        assert!(!entry.message.is_empty());
        for (k, v) in &entry.fields {
            serde_json::from_str::<Value>(v).unwrap_or_else(|e| panic!("field {k} of {:?}: {e}", entry.message));
        }
    }
    let rendered: Value = serde_json::from_str(&canonical_json(&plan)).unwrap();
    assert!(rendered["logs"].as_array().unwrap().iter().all(|l| l["fields"].is_object()));
}

// ===========================================================================
// Upstream test_processor.py: Logging integration
// ===========================================================================

#[test]
fn logs_start_with_batch_started_and_end_with_summary() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let plan = plan_hourly(&[rec]);
    let infos: Vec<_> = plan.logs.iter().filter(|l| l.level == LogLevel::Info).collect();
    let first = infos.first().unwrap();
    assert_eq!(first.message, "Batch processing started");
    assert_eq!(field(first, "record_count"), "1");
    assert_eq!(field(first, "table_name"), "\"rate-limits\"");
    // The planner's closing summary; processing_time_ms is measured by the host.
    let last = infos.last().unwrap();
    assert_eq!(last.message, "Batch planned");
    assert_eq!(field(last, "records"), "1");
    assert_eq!(field(last, "snapshot_writes"), "1");
}

#[test]
fn logs_one_debug_per_planned_snapshot() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let plan = plan_with(&[rec], &config(&[Window::Hourly, Window::Daily]));
    let lines = logs(&plan, "Snapshot planned");
    assert_eq!(lines.len(), plan.counters.snapshot_writes as usize);
    assert!(lines.iter().all(|l| l.level == LogLevel::Debug));
    let keys: Vec<&str> = lines.iter().map(|l| field(l, "window_key")).collect();
    assert_eq!(keys, ["\"2024-01-01T14:00:00Z\"", "\"2024-01-01T00:00:00Z\""]);
}

// ===========================================================================
// Upstream test_processor.py: aggregate_bucket_states
// ===========================================================================

#[test]
fn aggregate_one_record_one_limit() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4")
        .rf(JAN1_143522)
        .limit("tpm", 0, 5_000_000, 7_000, 100_000_000, 100_000, 60_000)
        .record(1);
    with_states(&[rec], |states| {
        assert_eq!(states.len(), 1);
        let st = &states[0];
        let r = st.latest;
        assert_eq!((&*r.ns, &*r.entity, &*r.resource, r.shard_id), ("default", "entity-1", "gpt-4", 0));
        let l = &st.limits[0];
        assert_eq!((l.name.as_str(), l.tc_delta, l.tk, l.ra, l.rp), ("tpm", 5_000_000, 7_000, 100_000, 60_000));
    });
}

#[test]
fn aggregate_two_limits_in_one_record() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4")
        .rf(JAN1_143522)
        .limit("tpm", 0, 5_000_000, 1, 2, 3, 4)
        .limit("rpm", 0, 1_000, 5, 6, 7, 8)
        .record(1);
    with_states(&[rec], |states| {
        let names: Vec<(&str, i128, i128)> =
            states[0].limits.iter().map(|l| (l.name.as_str(), l.tc_delta, l.tk)).collect();
        assert_eq!(names, [("tpm", 5_000_000, 1), ("rpm", 1_000, 5)]);
    });
}

#[test]
fn aggregate_same_bucket_sums_deltas_and_keeps_last_image_w17() {
    let b = Bucket::old_format("default", "entity-1", "gpt-4");
    let first = b.clone().rf(JAN1).limit("tpm", 0, 2_000_000, 8_000_000, 100_000_000, 100_000_000, 60_000).record(1);
    let second = b.rf(JAN1 + 1000).limit("tpm", 2_000_000, 5_000_000, 0, 100_000_000, 100_000_000, 60_000).record(2);
    for records in [vec![first.clone(), second.clone()], vec![second, first]] {
        with_states(&records, |states| {
            assert_eq!(states.len(), 1);
            assert_eq!(states[0].limits[0].tc_delta, 5_000_000);
            // "Last" is the highest sequence number, whatever the list order (W17).
            assert_eq!(states[0].limits[0].tk, 0);
            assert_eq!(states[0].latest.rf_ms, Some((JAN1 + 1000) as i128));
        });
    }
}

#[test]
fn aggregate_different_entities_are_separate() {
    let r1 = Bucket::old_format("default", "entity-1", "gpt-4").tc("tpm", 0, 1).record(1);
    let r2 = Bucket::old_format("default", "entity-2", "gpt-4").tc("tpm", 0, 1).record(2);
    with_states(&[r1, r2], |states| {
        let entities: Vec<&str> = states.iter().map(|s| &*s.latest.entity).collect();
        assert_eq!(entities, ["entity-1", "entity-2"]);
    });
}

#[test]
fn aggregate_skips_insert() {
    // A depleted bucket delivered as INSERT produces no state, so no refill.
    let rec = Bucket::new_format("ns", "entity-1", "gpt-4", 0)
        .rf(NOW - 5000)
        .limit("tpm", 0, 20_000_000, 0, 100_000_000, 100_000_000, 60_000)
        .record_as("INSERT", 1);
    with_states(std::slice::from_ref(&rec), |states| assert!(states.is_empty()));
    let plan = plan_hourly(&[rec]);
    assert!(plan.writes.is_empty());
    assert_skipped(&plan, 0);
}

#[test]
fn aggregate_skips_meta() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4").sk("#META").tc("tpm", 0, 5).record(1);
    assert_eq!(parse_one(&rec), "skip not a rate-limiter bucket item");
    with_states(&[rec], |states| assert!(states.is_empty()));
}

#[test]
fn aggregate_limit_without_tc_gives_state_without_limits() {
    let rec = Bucket::old_format("default", "entity-1", "gpt-4")
        .rf(JAN1)
        .set_new("b_tpm_tk", n(5))
        .set_new("b_tpm_cp", n(10))
        .record(1);
    with_states(&[rec], |states| {
        assert!(states.iter().all(|s| s.limits.is_empty()));
    });
}

// ===========================================================================
// Upstream test_processor.py: try_refill_bucket
// ===========================================================================

/// The refill example of docs/specification.md#worked-examples on `ns/BUCKET#entity-1#gpt-4#0`: rf 5 s before now,
/// tpm tc 0→20M, tk 5M, cp = ra = 100M per 60 s.
fn depleted() -> Bucket {
    Bucket::new_format("ns", "entity-1", "gpt-4", 0).rf(NOW - 5_000).limit(
        "tpm",
        0,
        20_000_000,
        5_000_000,
        100_000_000,
        100_000_000,
        60_000,
    )
}

#[test]
fn refill_low_tokens_high_consumption_writes_conditioned_on_rf() {
    let plan = plan_hourly(&[depleted().record(1)]);
    let u = only(&plan, Purpose::Refill);
    assert_eq!(key(u), ("ns/BUCKET#entity-1#gpt-4#0".to_string(), "#STATE".to_string()));
    let rf = set_of(u, "rf");
    assert_eq!((rf.if_not_exists, rf.value), (None, n(NOW)), "SET rf = :new_rf");
    assert_eq!(add_of(u, "b_tpm_tk"), Some(8_333_333));
    // rf = :expected_rf, plus the W19 guard that keeps tk at or below capacity.
    assert_eq!(
        condition(u),
        format!("rf = {{\"N\":\"{}\"}} AND b_tpm_tk <= {{\"N\":\"{}\"}}", NOW - 5_000, 100_000_000 - 8_333_333)
    );
}

#[test]
fn refill_enough_tokens_no_write() {
    let rec = Bucket::new_format("ns", "entity-1", "gpt-4", 0)
        .rf(NOW - 5_000)
        .limit("tpm", 0, 1_000_000, 90_000_000, 100_000_000, 100_000_000, 60_000)
        .record(1);
    let plan = plan_hourly(std::slice::from_ref(&rec));
    assert!(of(&plan, Purpose::Refill).is_empty());
    with_states(&[rec], |states| {
        assert_eq!(refill::decide(&states[0], NOW), refill::Decision::Skip("Refill skipped - sufficient tokens"));
    });
    assert_eq!(logs(&plan, "Refill skipped - sufficient tokens").len(), 1);
}

#[test]
fn refill_zero_elapsed_no_write() {
    let rec = depleted().rf(NOW).record(1);
    assert!(of(&plan_hourly(&[rec]), Purpose::Refill).is_empty());
}

#[test]
fn refill_condition_failure_is_ignored() {
    // Upstream: ConditionalCheckFailed returns false after one call.
    let plan = plan_hourly(&[depleted().record(1)]);
    let ws = of(&plan, Purpose::Refill);
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0].on_condition_failure, OnConditionFailure::Ignore);
}

#[test]
fn refill_empty_limits_no_write() {
    let rec = Bucket::new_format("ns", "entity-1", "gpt-4", 0).rf(NOW - 5_000).record(1);
    with_states(std::slice::from_ref(&rec), |states| {
        assert!(states[0].limits.is_empty());
        assert!(matches!(refill::decide(&states[0], NOW), refill::Decision::Skip(_)));
    });
    assert!(of(&plan_hourly(&[rec]), Purpose::Refill).is_empty());
}

#[test]
fn refill_two_limits_one_update() {
    let rec = depleted().limit("rpm", 0, 5_000, 0, 10_000, 10_000, 60_000).record(1);
    let plan = plan_hourly(&[rec]);
    let u = only(&plan, Purpose::Refill);
    let targets: Vec<String> = actions(u).add.into_iter().map(|(t, _)| t).collect();
    assert_eq!(targets, ["b_tpm_tk", "b_rpm_tk"]);
    assert_eq!(add_of(u, "b_rpm_tk"), Some(833));
}

#[test]
fn refill_expression_adds_tokens_and_sets_rf() {
    let u = only(&plan_hourly(&[depleted().record(1)]), Purpose::Refill).clone();
    let resolved = Ctx::of(&u).resolve(&u.update_expression);
    assert_eq!(resolved, format!("SET rf = {{\"N\":\"{NOW}\"}} ADD b_tpm_tk {{\"N\":\"8333333\"}}"));
    assert!(add_of(&u, "b_tpm_tk").unwrap() > 0, ":rd_tpm > 0");
}

#[test]
fn refill_negative_tc_delta_no_write() {
    let rec = Bucket::new_format("ns", "entity-1", "gpt-4", 0)
        .rf(NOW - 5_000)
        .limit("tpm", 20_000_000, 0, 5_000_000, 100_000_000, 100_000_000, 60_000)
        .record(1);
    assert!(of(&plan_hourly(&[rec]), Purpose::Refill).is_empty());
}

#[test]
fn refill_limit_names_cannot_break_the_expression_w9() {
    // Upstream writes `ADD b_my-limit_tk :rd_my-limit`, which DynamoDB rejects (ValidationException).
    let rec = Bucket::new_format("ns", "entity-1", "gpt-4", 0)
        .rf(NOW - 5_000)
        .limit("my-limit", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)
        .limit("a.b", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)
        .record(1);
    let u = only(&plan_hourly(&[rec]), Purpose::Refill).clone();
    assert!(!u.update_expression.contains('-') && !u.update_expression.contains('.'), "{}", u.update_expression);
    let targets: Vec<String> = actions(&u).add.into_iter().map(|(t, _)| t).collect();
    assert_eq!(targets, ["b_my-limit_tk", "b_a.b_tk"]);
}

#[test]
fn refill_moving_rf_credits_limits_without_consumption_counter_w10() {
    // tpm needs a refill, so rf moves to now. rpm has tk 0 and accrued 5 s x 10,000/60 s = 833
    // millitokens since rf, but has no tc in the OldImage (a limit added by this write) or none at
    // all (an item written before tc existed). Limits are discovered through tc in both images
    // only, so rpm is not in the bucket state and loses its accrual when rf moves.
    let with_new_tc_only = depleted().limit("rpm", 0, 0, 0, 10_000, 10_000, 60_000).drop_old("b_rpm_tc");
    let without_tc = depleted().limit("rpm", 0, 0, 0, 10_000, 10_000, 60_000).drop_old("b_rpm_tc").drop_new("b_rpm_tc");
    for b in [with_new_tc_only, without_tc] {
        let plan = plan_hourly(&[b.record(1)]);
        let u = only(&plan, Purpose::Refill);
        assert_eq!(set_of(u, "rf").value, n(NOW));
        assert_eq!(add_of(u, "b_rpm_tk"), Some(833), "{}", Ctx::of(u).resolve(&u.update_expression));
    }
}

// ===========================================================================
// Upstream test_processor.py: Refill inside process_stream_records
// ===========================================================================

#[test]
fn process_refill_counted_at_mocked_time() {
    // time mocked at 1704067200 s.
    let rec = Bucket::new_format("ns", "entity-1", "gpt-4", 0)
        .rf(JAN1 - 5_000)
        .limit("tpm", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)
        .record(1);
    let plan = plan_at(&[rec], &hourly(), JAN1);
    assert_eq!(plan.counters.refill_writes, 1);
    assert_eq!(set_of(only(&plan, Purpose::Refill), "rf").value, n(JAN1));
}

// ===========================================================================
// Upstream test_processor.py: Namespaces
// ===========================================================================

#[test]
fn namespace_taken_from_pk() {
    let rec = Bucket::old_format("a7x3kq", "entity-1", "gpt-4").tc("tpm", 0, 1).record(1);
    assert_eq!(parse_one(&rec), "bucket a7x3kq entity-1 gpt-4 0 sc=1");
}

#[test]
fn unprefixed_pk_is_skipped_with_one_warning() {
    let rec = Bucket::with_keys("ENTITY#user-123", "#BUCKET#gpt-4", "user-123").tc("tpm", 0, 5_000_000).record(1);
    let plan = plan_hourly(&[rec]);
    assert!(plan.writes.is_empty());
    assert_skipped(&plan, 0);
    let warnings: Vec<_> = plan.logs.iter().filter(|l| l.level == LogLevel::Warning).collect();
    assert_eq!(warnings.len(), 1, "parsed once, warned once (W18)");
    assert!(warnings[0].message.contains("pre-migration"));
    assert_eq!(field(warnings[0], "pk"), "\"ENTITY#user-123\"");
}

#[test]
fn deltas_carry_namespace() {
    let rec = Bucket::old_format("a7x3kq", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let u = only(&plan_hourly(&[rec]), Purpose::Snapshot).clone();
    assert_eq!(key(&u).0, "a7x3kq/ENTITY#entity-1");
    assert_eq!(set_of(&u, "GSI4PK").value, s("a7x3kq"));
}

#[test]
fn states_carry_namespace() {
    let rec = Bucket::old_format("a7x3kq", "entity-1", "gpt-4").tc("tpm", 0, 1).record(1);
    with_states(&[rec], |states| assert_eq!(states[0].latest.ns, "a7x3kq"));
}

#[test]
fn same_entity_in_two_namespaces_is_separate() {
    let r1 = Bucket::old_format("ns1", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 1_000_000).record(1);
    let r2 = Bucket::old_format("ns2", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 2_000_000).record(2);
    with_states(&[r1.clone(), r2.clone()], |states| {
        let ns: Vec<&str> = states.iter().map(|s| &*s.latest.ns).collect();
        assert_eq!(ns, ["ns1", "ns2"]);
    });
    let pks: Vec<String> = snapshot_keys(&plan_hourly(&[r1, r2])).into_iter().map(|k| k.0).collect();
    assert_eq!(pks, ["ns1/ENTITY#entity-1", "ns2/ENTITY#entity-1"]);
}

#[test]
fn snapshot_uses_namespaced_keys() {
    let rec = Bucket::old_format("a7x3kq", "entity-1", "gpt-4").rf(JAN1_143522).tc("tpm", 0, 5_000_000).record(1);
    let u = only(&plan_hourly(&[rec]), Purpose::Snapshot).clone();
    assert_eq!(key(&u).0, "a7x3kq/ENTITY#entity-1");
    assert_eq!(set_of(&u, "GSI2PK").value, s("a7x3kq/RESOURCE#gpt-4"));
    assert_eq!(set_of(&u, "GSI4SK").value, s("a7x3kq/ENTITY#entity-1"));
}

#[test]
fn refill_uses_namespaced_bucket_key() {
    let rec = Bucket::new_format("a7x3kq", "entity-1", "gpt-4", 0)
        .rf(NOW - 5_000)
        .limit("tpm", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)
        .record(1);
    let u = only(&plan_hourly(&[rec]), Purpose::Refill).clone();
    assert_eq!(key(&u), ("a7x3kq/BUCKET#entity-1#gpt-4#0".to_string(), "#STATE".to_string()));
}

#[test]
fn pre_migration_records_skipped_by_every_stage() {
    let rec = Bucket::with_keys("BUCKET#entity-1#gpt-4#0", "#STATE", "entity-1")
        .rf(NOW - 5_000)
        .limit("tpm", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)
        .limit("wcu", 0, 1000, 0, 1_000_000, 1_000_000, 1000)
        .record(1);
    let plan = plan_hourly(&[rec]);
    assert!(plan.writes.is_empty(), "no snapshot, refill or shard write");
    assert_skipped(&plan, 0);
}

// ===========================================================================
// Upstream test_processor.py: New PK parsing
// ===========================================================================

#[test]
fn new_pk_parses_shard_zero() {
    let rec = Bucket::new_format("ns1", "user-1", "gpt-4", 0).tc("tpm", 0, 1).record(1);
    assert_eq!(parse_one(&rec), "bucket ns1 user-1 gpt-4 0 sc=1");
}

#[test]
fn new_pk_parses_shard_two_of_four() {
    let rec = Bucket::new_format("ns1", "user-1", "gpt-4", 2).shards(4, 4).tc("tpm", 0, 1).record(1);
    assert_eq!(parse_one(&rec), "bucket ns1 user-1 gpt-4 2 sc=4");
}

#[test]
fn old_format_with_shard_count_parses_as_shard_zero() {
    let rec = Bucket::old_format("ns1", "user-1", "gpt-4").shards(2, 2).tc("tpm", 0, 1).record(1);
    assert_eq!(parse_one(&rec), "bucket ns1 user-1 gpt-4 0 sc=2");
}

#[test]
fn shards_zero_and_one_are_separate_states() {
    let r0 = Bucket::new_format("ns1", "user-1", "gpt-4", 0).shards(2, 2).tc("tpm", 0, 1).record(1);
    let r1 = Bucket::new_format("ns1", "user-1", "gpt-4", 1).shards(2, 2).tc("tpm", 0, 1).record(2);
    with_states(&[r0, r1], |states| {
        let shards: Vec<(i128, i128)> = states.iter().map(|s| (s.latest.shard_id, s.latest.shard_count)).collect();
        assert_eq!(shards, [(0, 2), (1, 2)]);
    });
}

#[test]
fn refill_sharded_empty_bucket_targets_shard_zero() {
    // shard_count 2: cp and ra are halved; 5 s of 50M/60 s accrue 4,166,666.
    let rec = Bucket::new_format("ns1", "user-1", "gpt-4", 0)
        .shards(2, 2)
        .rf(NOW - 5_000)
        .limit("tpm", 0, 10_000_000, 0, 100_000_000, 100_000_000, 60_000)
        .record(1);
    let u = only(&plan_hourly(&[rec]), Purpose::Refill).clone();
    assert_eq!(key(&u), ("ns1/BUCKET#user-1#gpt-4#0".to_string(), "#STATE".to_string()));
    assert_eq!(add_of(&u, "b_tpm_tk"), Some(4_166_666));
    assert!(condition(&u).ends_with(&format!("b_tpm_tk <= {{\"N\":\"{}\"}}", 50_000_000 - 4_166_666)));
}

#[test]
fn wcu_excluded_from_deltas() {
    let rec = Bucket::new_format("ns1", "user-1", "gpt-4", 0)
        .rf(JAN1_143522)
        .tc("tpm", 0, 5_000_000)
        .tc("wcu", 0, 1_000)
        .record(1);
    let plan = plan_hourly(&[rec]);
    let limits: Vec<String> = deltas(&plan).into_iter().map(|d| d.2).collect();
    assert_eq!(limits, ["tpm"]);
    assert_eq!(plan.counters.deltas, 1);
}

#[test]
fn old_format_state_refills_its_own_item_w20() {
    // Upstream addresses `{ns}/BUCKET#…#0`; we address the item the record came from (W20).
    let rec = Bucket::old_format("ns1", "user-1", "gpt-4")
        .rf(NOW - 5_000)
        .limit("tpm", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)
        .record(1);
    let u = only(&plan_hourly(&[rec]), Purpose::Refill).clone();
    assert_eq!(key(&u), ("ns1/ENTITY#user-1".to_string(), "#BUCKET#gpt-4".to_string()));
    assert_eq!(add_of(&u, "b_tpm_tk"), Some(8_333_333));
}

// ===========================================================================
// Upstream test_processor.py: try_proactive_shard
// ===========================================================================

/// A bucket shard whose stored wcu balance is `tk` of capacity `cp`; rf = now, so no refill.
fn wcu_bucket(shard: i64, count: i64, tk: i64, cp: i64) -> Value {
    Bucket::new_format("ns", "u1", "gpt-4", shard)
        .rf(NOW)
        .shards(count, count)
        .limit("tpm", 0, 1_000_000, 50_000_000, 100_000_000, 100_000_000, 60_000)
        .limit("wcu", 0, 1_000, tk, cp, 1_000_000, 1_000)
        .record(1)
}

fn bumps_for(shard: i64, count: i64, tk: i64, cp: i64) -> Vec<(i128, i128)> {
    bumps(&plan_hourly(&[wcu_bucket(shard, count, tk, cp)]))
}

#[test]
fn shard_bump_at_15_percent() {
    let plan = plan_hourly(&[wcu_bucket(0, 1, 150_000, 1_000_000)]);
    assert_eq!(bumps(&plan), [(1, 2)]);
    let u = only(&plan, Purpose::ShardBump);
    assert_eq!(key(u).0, "ns/BUCKET#u1#gpt-4#0");
    assert_eq!(set_of(u, "shard_count").value, n(2));
    assert_eq!(condition(u), "shard_count = {\"N\":\"1\"}");
}

#[test]
fn shard_no_bump_at_25_percent() {
    assert!(bumps_for(0, 1, 250_000, 1_000_000).is_empty());
}

#[test]
fn shard_no_bump_on_shard_one() {
    assert!(bumps_for(1, 2, 0, 1_000_000).is_empty());
}

#[test]
fn shard_bump_condition_failure_is_ignored() {
    let plan = plan_hourly(&[wcu_bucket(0, 1, 150_000, 1_000_000)]);
    assert_eq!(of(&plan, Purpose::ShardBump)[0].on_condition_failure, OnConditionFailure::Ignore);
}

#[test]
fn shard_no_bump_when_capacity_is_zero() {
    assert!(bumps_for(0, 1, 0, 0).is_empty());
}

#[test]
fn shard_bump_at_zero_tokens() {
    assert_eq!(bumps_for(0, 1, 0, 1_000_000), [(1, 2)]);
}

#[test]
fn shard_no_bump_at_exactly_20_percent() {
    assert!(bumps_for(0, 1, 200_000, 1_000_000).is_empty());
}

#[test]
fn shard_bump_at_negative_tokens() {
    assert_eq!(bumps_for(0, 1, -5_000, 1_000_000), [(1, 2)]);
}

#[test]
fn shard_bump_just_below_20_percent() {
    assert_eq!(bumps_for(0, 1, 199_999, 1_000_000), [(1, 2)]);
}

#[test]
fn shard_bump_from_two_to_four() {
    assert_eq!(bumps_for(0, 2, 100_000, 1_000_000), [(2, 4)]);
}

#[test]
fn shard_bump_from_32_is_capped_w12() {
    // Upstream bumps 32 → 64 and warns "High shard count". W12: bounded by MAX_SHARD_COUNT (default 32).
    let plan = plan_hourly(&[wcu_bucket(0, 32, 100_000, 1_000_000)]);
    assert!(bumps(&plan).is_empty());
    let warn = logs(&plan, "Proactive shard doubling capped at maximum shard count");
    assert_eq!(warn.len(), 1);
    assert_eq!(warn[0].level, LogLevel::Warning);
    assert_eq!(field(warn[0], "shard_count"), "32");
    // With a higher bound the doubling to 64 is planned.
    let cfg = Config { max_shard_count: 64, ..hourly() };
    assert_eq!(bumps(&plan_with(&[wcu_bucket(0, 32, 100_000, 1_000_000)], &cfg)), [(32, 64)]);
}

#[test]
fn shard_bump_at_10_percent() {
    assert_eq!(bumps_for(0, 1, 100_000, 1_000_000), [(1, 2)]);
}

// ===========================================================================
// Upstream test_processor.py: propagate_shard_count
// ===========================================================================

/// Shard 0 of `ns/BUCKET#u1#gpt-4#…` raising shard_count from `old` to `new`.
fn raised(old: i64, new: i64) -> Bucket {
    Bucket::new_format("ns", "u1", "gpt-4", 0)
        .rf(NOW)
        .shards(old, new)
        .set_new("cascade", json!({"BOOL": false}))
        .limit("rpm", 5, 5, 40_000_000, 100_000_000, 100_000_000, 60_000)
        .limit("wcu", 1_000, 1_000, 900_000, 1_000_000, 1_000_000, 1_000)
}

fn propagation(plan: &Plan) -> Vec<(&'static str, String)> {
    of(plan, Purpose::ShardPropagate)
        .into_iter()
        .map(|w| match &w.operation {
            Operation::UpdateItem(u) => ("update", key(u).0),
            Operation::PutItem(p) => ("put", key_of(&p.attributes().cloned().collect::<Vec<_>>()).0),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn propagate_two_to_four() {
    let plan = plan_hourly(&[raised(2, 4).record(1)]);
    assert_eq!(
        propagation(&plan),
        [
            ("update", "ns/BUCKET#u1#gpt-4#1".to_string()),
            ("put", "ns/BUCKET#u1#gpt-4#2".to_string()),
            ("put", "ns/BUCKET#u1#gpt-4#3".to_string()),
        ]
    );
    assert_eq!(plan.counters.shard_propagate_writes, 3);
}

#[test]
fn propagate_unchanged_count_gives_nothing() {
    let plan = plan_hourly(&[raised(2, 2).record(1)]);
    assert!(of(&plan, Purpose::ShardPropagate).is_empty());
}

#[test]
fn propagate_condition_failures_are_ignored() {
    // "All conditional failures: 0" and "a put that fails its condition counts 0": the host
    // counts; every propagation write is marked so that a failed condition is not an error.
    let plan = plan_hourly(&[raised(2, 4).record(1)]);
    let ws = of(&plan, Purpose::ShardPropagate);
    assert_eq!(ws.len(), 3);
    assert!(ws.iter().all(|w| w.on_condition_failure == OnConditionFailure::Ignore));
    // And an existing shard 2 (created by the client) is left alone.
    let mut table = Table::default();
    let mut existing = raised(4, 4).new_image();
    existing["PK"] = s("ns/BUCKET#u1#gpt-4#2");
    existing["b_rpm_tk"] = n(123);
    table.seed(&existing);
    let put2 = ws.iter().find(|w| matches!(&w.operation, Operation::PutItem(p) if key_of(&p.attributes().cloned().collect::<Vec<_>>()).0.ends_with("#2")));
    assert!(!table.apply(put2.unwrap()));
    assert_eq!(table.attr("ns/BUCKET#u1#gpt-4#2", "#STATE", "b_rpm_tk"), Some(&n(123)));
}

#[test]
fn propagate_from_shard_one_gives_nothing() {
    let mut b = raised(2, 4);
    b.new.insert("PK".into(), s("ns/BUCKET#u1#gpt-4#1"));
    let plan = plan_hourly(&[b.record(1)]);
    assert!(of(&plan, Purpose::ShardPropagate).is_empty());
}

#[test]
fn propagate_from_old_format_gives_nothing_w20() {
    let rec = Bucket::old_format("ns", "u1", "gpt-4")
        .rf(NOW)
        .shards(2, 4)
        .limit("rpm", 5, 5, 40_000_000, 100_000_000, 100_000_000, 60_000)
        .record(1);
    let plan = plan_hourly(&[rec]);
    assert!(of(&plan, Purpose::ShardPropagate).is_empty());
}

#[test]
fn propagate_new_shard_puts_keep_attributes() {
    let plan = plan_hourly(&[raised(2, 4).record(1)]);
    let ws = of(&plan, Purpose::ShardPropagate);
    assert_eq!(ws.len(), 3);
    let update = upd(ws[0]);
    assert_eq!(set_of(update, "shard_count").value, n(4));
    assert_eq!(condition(update), "shard_count < {\"N\":\"4\"}");
    for w in &ws[1..] {
        let p = put_item(w);
        let shard = key_of(&p.attributes().cloned().collect::<Vec<_>>()).0.rsplit('#').next().unwrap().to_string();
        assert_eq!(item_attr(p, "GSI2PK"), Some(r#"{"S":"ns/RESOURCE#gpt-4"}"#));
        assert_eq!(item_attr(p, "GSI3PK"), Some(r#"{"S":"ns/ENTITY#u1"}"#));
        assert_eq!(s_of(item_attr(p, "GSI2SK").unwrap()), format!("BUCKET#u1#{shard}"));
        assert_eq!(s_of(item_attr(p, "GSI3SK").unwrap()), format!("BUCKET#gpt-4#{shard}"));
        assert_eq!(s_of(item_attr(p, "GSI4SK").unwrap()), format!("BUCKET#u1#gpt-4#{shard}"));
        assert_eq!(n_of(item_attr(p, "shard_count").unwrap()), 4);
        assert_eq!(n_of(item_attr(p, "b_rpm_tk").unwrap()), 25_000_000);
        assert_eq!(n_of(item_attr(p, "b_wcu_tk").unwrap()), 1_000_000);
        assert_eq!(item_attr(p, "cascade"), Some(r#"{"BOOL":false}"#));
        assert_eq!(
            Ctx { names: &p.names, values: &p.values }.resolve(p.condition_expression.as_deref().unwrap()),
            "attribute_not_exists(PK)"
        );
    }
    assert_eq!(plan.counters.shard_propagate_writes, 3);
}

#[test]
fn propagate_existing_shard_gets_update_only() {
    let plan = plan_hourly(&[raised(2, 4).record(1)]);
    let shard1: Vec<&str> =
        propagation(&plan).into_iter().filter(|(_, pk)| pk.ends_with("#1")).map(|(kind, _)| kind).collect();
    assert_eq!(shard1, ["update"]);
}

#[test]
fn propagate_one_to_two_put_values() {
    let plan = plan_hourly(&[raised(1, 2).record(1)]);
    assert_eq!(propagation(&plan), [("put", "ns/BUCKET#u1#gpt-4#1".to_string())]);
    let mut table = Table::default();
    assert_eq!(table.apply_all(&plan), plan.writes.len());
    let get = |a: &str| table.attr("ns/BUCKET#u1#gpt-4#1", "#STATE", a).cloned();
    assert_eq!(get("b_rpm_tk"), Some(n(100_000_000 / 2)));
    assert_eq!(get("b_rpm_tc"), Some(n(0)));
    assert_eq!(get("b_wcu_tk"), Some(n(1_000_000)), "wcu is not divided");
    assert_eq!(get("b_wcu_tc"), Some(n(0)));
    assert_eq!(get("shard_count"), Some(n(2)));
}

// ===========================================================================
// Upstream test_handler.py (planner side: counters, outcomes, Config::from_env)
// ===========================================================================

#[test]
fn handler_body_fields_come_from_counters() {
    // processed, snapshots_updated, refills_written, events_archived and errors.
    let plan = plan_hourly(&[depleted().record(1)]);
    let c = &plan.counters;
    assert_eq!((c.records, c.snapshot_writes, c.refill_writes, c.archived_events), (1, 1, 1, 0));
    assert!(plan.outcomes.iter().all(|o| !matches!(o.status, RecordStatus::Invalid(_))), "errors []");
}

#[test]
fn handler_archival_enabled_plans_one_object_in_the_bucket() {
    let cfg = Config::from_env([
        ("ENABLE_ARCHIVAL", "true"),
        ("ARCHIVE_BUCKET_NAME", "audit-bkt"),
        ("ZAE_LIMITER_VERSION", "0.13"),
    ])
    .unwrap();
    assert_eq!(cfg.archive_bucket.as_deref(), Some("audit-bkt"));
    let rec = remove(7, audit_image("default", "user-1", "01HX", "2024-01-15T14:30:00Z"));
    let plan = plan_with(&[rec], &cfg);
    let ws = of(&plan, Purpose::Archive);
    assert_eq!(ws.len(), 1);
    let o = put_object(ws[0]);
    assert_eq!(o.bucket, "audit-bkt");
    assert!(!o.key.contains("req-1"), "W14: the key does not depend on the request id");
    assert_eq!(plan.counters.archived_events, 1);
}

#[test]
fn handler_errors_listed_in_record_order() {
    // Upstream: processor errors, then archiver errors. Ours: one outcome per record, in record order.
    let bad_bucket = Bucket::old_format("default", "e", "gpt-4").tc("tpm", 0, 1).set_new("rf", n("x")).record(1);
    let bad_audit = json!({"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "2",
                           "Keys": {"PK": s("default/AUDIT#e"), "SK": s("#AUDIT#01")}}});
    let plan = plan_with(&[bad_bucket, bad_audit], &archiving());
    let indices: Vec<u32> = plan.outcomes.iter().map(|o| o.index).collect();
    assert_eq!(indices, [0, 1]);
    assert!(invalid_reason(&plan, 0).contains("rf"));
    assert!(invalid_reason(&plan, 1).contains("OldImage"));
}

#[test]
fn handler_archival_disabled_plans_no_object() {
    let cfg = Config::from_env([
        ("ENABLE_ARCHIVAL", "false"),
        ("ARCHIVE_BUCKET_NAME", "audit-bkt"),
        ("ZAE_LIMITER_VERSION", "0.13"),
    ])
    .unwrap();
    assert_eq!(cfg.archive_bucket, None);
    let plan = plan_with(&[remove(7, audit_image("default", "user-1", "01HX", "2024-01-15T14:30:00Z"))], &cfg);
    assert!(of(&plan, Purpose::Archive).is_empty());
    assert_skipped(&plan, 0);
}

#[test]
fn handler_archival_without_bucket_is_a_config_error_w18() {
    // Upstream silently skips archival; we refuse to start (W18).
    let e = Config::from_env([("ENABLE_ARCHIVAL", "true"), ("ARCHIVE_BUCKET_NAME", "")]).unwrap_err();
    assert!(e.message.contains("ARCHIVE_BUCKET_NAME"), "{e}");
}

// ===========================================================================
// Upstream test_archiver.py: extract_audit_event
// ===========================================================================

#[test]
fn audit_remove_gives_event() {
    let plan = plan_with(&[remove(7, audit_image("default", "user-1", "01HX", "2024-01-15T14:30:00Z"))], &archiving());
    let lines = audit_lines(&plan);
    assert_eq!(lines.len(), 1);
    let keys: Vec<&str> = lines[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["event_id", "entity_id", "action", "timestamp", "principal", "resource", "details"]);
    assert_eq!(lines[0]["event_id"], "01HX");
    assert_eq!(lines[0]["entity_id"], "user-1");
    assert_eq!(lines[0]["action"], "entity_created");
    assert_eq!(lines[0]["timestamp"], "2024-01-15T14:30:00Z");
    assert_eq!(lines[0]["principal"], "admin");
}

#[test]
fn audit_modify_and_insert_give_nothing() {
    let img = audit_image("default", "user-1", "01HX", "2024-01-15T14:30:00Z");
    let as_event = |name: &str, seq: u64| json!({"eventName": name, "dynamodb": {"SequenceNumber": seq.to_string(), "NewImage": img, "OldImage": img}});
    let plan = plan_with(&[as_event("MODIFY", 1), as_event("INSERT", 2)], &archiving());
    assert!(plan.writes.is_empty());
    assert_skipped(&plan, 0);
    assert_skipped(&plan, 1);
}

#[test]
fn audit_remove_of_entity_item_gives_nothing() {
    let old = json!({"PK": s("default/ENTITY#user-1"), "SK": s("#META"), "entity_id": s("user-1")});
    let plan = plan_with(&[remove(1, old)], &archiving());
    assert!(plan.writes.is_empty());
    assert_skipped(&plan, 0);
}

#[test]
fn audit_without_action_is_archived_with_warning_w2() {
    // Upstream drops it (the row is already gone from DynamoDB); we keep it and warn (W2: never lose).
    let mut img = audit_image("default", "user-1", "01HX", "2024-01-15T14:30:00Z");
    img.as_object_mut().unwrap().remove("action");
    let plan = plan_with(&[remove(1, img)], &archiving());
    let lines = audit_lines(&plan);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].get("action").is_none());
    let warn = logs(&plan, "Audit record missing action field; archived without it");
    assert_eq!(warn.len(), 1);
    assert_eq!(warn[0].level, LogLevel::Warning);
}

#[test]
fn audit_nested_details_convert() {
    let mut img = audit_image("default", "user-1", "01HX", "2024-01-15T14:30:00Z");
    img["details"] = json!({"M": {"limits": {"L": [{"M": {"name": s("tpm"), "capacity": n(100)}}]}}});
    let lines = audit_lines(&plan_with(&[remove(1, img)], &archiving()));
    assert_eq!(lines[0]["details"], json!({"limits": [{"name": "tpm", "capacity": 100}]}));
    assert!(lines[0]["details"]["limits"][0]["capacity"].is_u64(), "N → int");
}

#[test]
fn audit_null_principal_and_resource() {
    let mut img = audit_image("default", "user-1", "01HX", "2024-01-15T14:30:00Z");
    img["principal"] = json!({"NULL": true});
    let lines = audit_lines(&plan_with(&[remove(1, img)], &archiving()));
    assert_eq!(lines[0]["principal"], Value::Null);
    assert_eq!(lines[0]["resource"], Value::Null);
}

// ===========================================================================
// Upstream test_archiver.py: Converting values
// ===========================================================================

#[test]
fn convert_string_int_and_float() {
    assert_eq!(convert(json!({"S": "hello"})).0, PyValue::Str("hello".into()));
    let (v, text, _) = convert(json!({"N": "42"}));
    assert_eq!((v, text.as_str()), (PyValue::Int("42".into()), "42"));
    let (v, text, _) = convert(json!({"N": "3.14"}));
    assert!(matches!(v, PyValue::Float(_)), "{v:?}");
    assert_eq!(text, "3.14");
}

#[test]
fn convert_bool() {
    assert_eq!(convert(json!({"BOOL": true})).1, "true");
    assert_eq!(convert(json!({"BOOL": false})).1, "false");
}

#[test]
fn convert_null() {
    assert_eq!(convert(json!({"NULL": true})).0, PyValue::Null);
}

#[test]
fn convert_nested_map() {
    let (_, text, _) = convert(json!({"M": {"a": {"M": {"b": {"N": "1"}, "c": {"S": "x"}}}}}));
    assert_eq!(text, r#"{"a":{"b":1,"c":"x"}}"#);
}

#[test]
fn convert_mixed_list() {
    let (_, text, _) = convert(json!({"L": [{"S": "a"}, {"N": "1"}, {"N": "2.5"}, {"BOOL": false}, {"NULL": true}]}));
    assert_eq!(text, r#"["a",1,2.5,false,null]"#);
}

#[test]
fn convert_unknown_type_unchanged() {
    let (_, text, warnings) = convert(json!({"UNKNOWN": "value"}));
    assert_eq!(text, r#"{"UNKNOWN":"value"}"#);
    assert_eq!(warnings.len(), 1);
}

// ===========================================================================
// Upstream test_archiver.py: create_jsonl_gzip
// ===========================================================================

fn same_day_events(count: u64) -> Vec<Value> {
    (0..count)
        .map(|i| remove(10 + i, audit_image("default", "user-1", &format!("E{i}"), "2024-01-15T14:30:00Z")))
        .collect()
}

#[test]
fn jsonl_one_event_one_line() {
    let objs = objects(&plan_with(&same_day_events(1), &archiving()));
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0].1.lines().count(), 1);
    assert!(objs[0].1.ends_with("}\n"), "one trailing newline");
}

#[test]
fn jsonl_three_events_in_order() {
    let lines = audit_lines(&plan_with(&same_day_events(3), &archiving()));
    let ids: Vec<&str> = lines.iter().map(|l| l["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["E0", "E1", "E2"]);
}

#[test]
fn jsonl_is_valid_gzip() {
    let plan = plan_with(&same_day_events(2), &archiving());
    let o = put_object(of(&plan, Purpose::Archive)[0]);
    let text = gunzip(&o.body); // checks magic, CRC-32 and ISIZE
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn jsonl_is_compact() {
    let objs = objects(&plan_with(&same_day_events(3), &archiving()));
    assert!(!objs[0].1.contains(": ") && !objs[0].1.contains(", "), "{}", objs[0].1);
}

// ===========================================================================
// Upstream test_archiver.py: Partition (W13: the UTC day)
// ===========================================================================

fn partition_of(ts: &str, approx_s: Option<i64>) -> String {
    let img = audit_image("default", "user-1", "01HX", ts);
    let rec = match approx_s {
        Some(t) => remove_at(1, img, t),
        None => remove(1, img),
    };
    let objs = objects(&plan_with(&[rec], &archiving()));
    assert_eq!(objs.len(), 1);
    let k = &objs[0].0;
    k[..k.rfind('/').unwrap()].to_string()
}

#[test]
fn partition_from_z_timestamp() {
    assert_eq!(partition_of("2024-01-15T14:30:00Z", None), "audit/year=2024/month=01/day=15");
}

#[test]
fn partition_from_plus_zero_offset() {
    assert_eq!(partition_of("2024-03-25T10:00:00+00:00", None), "audit/year=2024/month=03/day=25");
}

#[test]
fn partition_is_zero_padded() {
    assert_eq!(partition_of("2024-03-05T08:00:00Z", None), "audit/year=2024/month=03/day=05");
}

#[test]
fn partition_invalid_timestamp_falls_back() {
    // Upstream falls back to now; we use the record's ApproximateCreationDateTime, then now.
    assert_eq!(partition_of("not-a-timestamp", Some(MAR20_S)), "audit/year=2024/month=03/day=20");
    assert_eq!(partition_of("not-a-timestamp", None), "audit/year=2024/month=01/day=01", "NOW is 2024-01-01");
}

#[test]
fn partition_empty_timestamp_falls_back() {
    assert_eq!(partition_of("", Some(MAR20_S)), "audit/year=2024/month=03/day=20");
    assert_eq!(partition_of("", None), "audit/year=2024/month=01/day=01");
}

// ===========================================================================
// Upstream test_archiver.py: Object key (W14: from stream positions, not the request id)
// ===========================================================================

#[test]
fn object_key_exact_w14() {
    // The CRC-32 of the NDJSON body tells apart other event sets between the
    // same two sequence numbers.
    let (first, last) = (Seq::parse("100").unwrap(), Seq::parse("102").unwrap());
    assert_eq!(
        archive::object_key((2024, 1, 15), &first, &last, b"123456789"),
        "audit/year=2024/month=01/day=15/audit-100-102-cbf43926.jsonl.gz"
    );
    let plan = plan_with(
        &[
            remove(100, audit_image("default", "u", "A", "2024-01-15T14:30:00Z")),
            remove(102, audit_image("default", "u", "B", "2024-01-15T16:00:00Z")),
        ],
        &archiving(),
    );
    let (key, body) = &objects(&plan)[0];
    let crc = zae_planner::pyjson::crc32(body.as_bytes());
    assert_eq!(key, &format!("audit/year=2024/month=01/day=15/audit-100-102-{crc:08x}.jsonl.gz"));
}

#[test]
fn object_key_has_no_colon() {
    let k = &objects(&plan_with(&same_day_events(1), &archiving()))[0].0;
    assert!(!k.contains(':'), "{k}");
}

#[test]
fn object_key_has_no_plus() {
    let plan = plan_with(&[remove(1, audit_image("default", "u", "A", "2024-01-15T14:30:00+00:00"))], &archiving());
    let k = &objects(&plan)[0].0;
    assert!(!k.contains('+'), "{k}");
}

// ===========================================================================
// Upstream test_archiver.py: archive_audit_events
// ===========================================================================

#[test]
fn archive_one_event() {
    let plan = plan_with(&same_day_events(1), &archiving());
    let c = &plan.counters;
    assert_eq!((c.records, c.archived_events, c.archive_objects, c.invalid), (1, 1, 1, 0));
    assert_eq!(of(&plan, Purpose::Archive).len(), 1);
}

#[test]
fn archive_three_events_one_object() {
    let plan = plan_with(&same_day_events(3), &archiving());
    assert_eq!(plan.counters.archive_objects, 1);
    assert_eq!(plan.counters.archived_events, 3);
}

#[test]
fn archive_skips_non_audit_records() {
    let entity = json!({"PK": s("default/ENTITY#u"), "SK": s("#META"), "entity_id": s("u")});
    let modify = Bucket::old_format("default", "u", "gpt-4").tc("tpm", 0, 0).record(1);
    let records = [modify, remove(2, entity), remove(3, audit_image("default", "u", "A", "2024-01-15T14:30:00Z"))];
    let plan = plan_with(&records, &archiving());
    assert_eq!(plan.counters.archived_events, 1);
    assert_eq!(of(&plan, Purpose::Archive)[0].records, vec![2]);
}

#[test]
fn archive_no_events_no_put() {
    let entity = json!({"PK": s("default/ENTITY#u"), "SK": s("#META"), "entity_id": s("u")});
    let plan = plan_with(&[remove(1, entity)], &archiving());
    assert!(of(&plan, Purpose::Archive).is_empty());
}

#[test]
fn archive_empty_input() {
    let plan = plan_with(&[], &archiving());
    assert!(plan.writes.is_empty());
    assert_eq!((plan.counters.archived_events, plan.counters.archive_objects), (0, 0));
}

#[test]
fn archive_bad_record_does_not_stop_the_others() {
    // `"dynamodb": "invalid"` is the bullet's subject, so that record has no SequenceNumber.
    let records = [
        remove(1, audit_image("default", "u", "A", "2024-01-15T14:30:00Z")),
        json!({"eventName": "REMOVE", "dynamodb": "invalid"}),
        remove(3, audit_image("default", "u", "C", "2024-01-15T15:30:00Z")),
    ];
    let plan = plan_with(&records, &archiving());
    assert!(invalid_reason(&plan, 1).contains("dynamodb"));
    assert_eq!(plan.counters.invalid, 1);
    assert_eq!(plan.counters.archived_events, 2);
}

#[test]
fn archive_body_decompresses_to_expected_json() {
    let mut img = audit_image("default", "user-1", "01HX", "2024-03-20T10:00:00Z");
    img["action"] = s("limits_set");
    img["resource"] = s("gpt-4");
    img["details"] = json!({"M": {"limit": s("tpm"), "capacity": n(100), "ratio": n("1.50"), "on": {"BOOL": true}}});
    let objs = objects(&plan_with(&[remove(1, img)], &archiving()));
    assert_eq!(
        objs[0].1,
        concat!(
            r#"{"event_id":"01HX","entity_id":"user-1","action":"limits_set","timestamp":"2024-03-20T10:00:00Z","#,
            r#""principal":"admin","resource":"gpt-4","details":{"limit":"tpm","capacity":100,"ratio":1.5,"on":true}}"#,
            "\n"
        )
    );
}

#[test]
fn archive_key_partition_from_timestamp() {
    let k =
        &objects(&plan_with(&[remove(1, audit_image("default", "u", "A", "2024-03-20T10:00:00Z"))], &archiving()))[0].0;
    assert!(k.contains("year=2024") && k.contains("month=03") && k.contains("day=20"), "{k}");
}

#[test]
fn archive_content_type_and_encoding() {
    let plan = plan_with(&same_day_events(1), &archiving());
    let o = put_object(of(&plan, Purpose::Archive)[0]);
    assert_eq!(o.content_type, "application/x-ndjson");
    assert_eq!(o.content_encoding, "gzip");
}

#[test]
fn archive_unconvertible_event_is_invalid_and_others_archived() {
    // Upstream: a failing create_jsonl_gzip loses the whole object. Serialisation here cannot fail;
    // a value that cannot be converted makes that record invalid, with the reason, before any object
    // is built (W2: nothing else is lost).
    let mut bad = audit_image("default", "u", "B", "2024-01-15T14:30:00Z");
    bad["details"] = json!({"M": {"l": {"L": 5}}});
    let records = [remove(1, audit_image("default", "u", "A", "2024-01-15T14:30:00Z")), remove(2, bad)];
    let plan = plan_with(&records, &archiving());
    assert!(invalid_reason(&plan, 1).contains("details"), "{}", invalid_reason(&plan, 1));
    assert_eq!(plan.counters.archived_events, 1);
    assert_eq!(of(&plan, Purpose::Archive)[0].records, vec![0]);
}

// ===========================================================================
// Upstream test_update_snapshot.py (integration): the snapshot item the writes produce
// ===========================================================================

/// A `gpt-4` bucket shard 0 of `user-1` at 2024-01-15T14:30:00Z.
fn usage() -> Bucket {
    Bucket::new_format("default", "user-1", "gpt-4", 0).rf(JAN15_1430_S * 1000).at(JAN15_1430_S)
}

const USER1: &str = "default/ENTITY#user-1";
const HOUR_SK: &str = "#USAGE#gpt-4#2024-01-15T14:00:00Z";

#[test]
fn integration_first_write_creates_flat_item() {
    let plan = plan_hourly(&[usage().tc("tpm", 0, 5_000_000).record(1)]);
    let mut table = Table::default();
    assert_eq!(table.apply_all(&plan), 1);
    let item = table.get(USER1, HOUR_SK).expect("item created");
    assert_eq!(item["entity_id"], s("user-1"));
    assert_eq!(item["resource"], s("gpt-4"));
    assert_eq!(item["window"], s("hourly"));
    assert_eq!(item["window_start"], s("2024-01-15T14:00:00Z"));
    assert_eq!(item["tpm"], n(5000));
    assert_eq!(item["total_events"], n(1));
    assert_eq!(item["GSI2PK"], s("default/RESOURCE#gpt-4"));
    assert!(item["ttl"].get("N").is_some());
    // docs/specification.md#snapshot-reader: besides ttl and total_events, every N attribute is a counter.
    let numbers: Vec<&str> = item.iter().filter(|(_, v)| v.get("N").is_some()).map(|(k, _)| k.as_str()).collect();
    assert_eq!(numbers, ["ttl", "tpm", "total_events"]);
}

#[test]
fn integration_two_writes_in_one_hour_add_up() {
    let first = usage().tc("rpm", 0, 1_000_000).record(1);
    let second = usage().tc("rpm", 1_000_000, 3_000_000).record(2);
    // Two batches, one write each.
    let mut table = Table::default();
    table.apply_all(&plan_hourly(std::slice::from_ref(&first)));
    table.apply_all(&plan_hourly(std::slice::from_ref(&second)));
    assert_eq!(table.attr(USER1, HOUR_SK, "rpm"), Some(&n(3000)));
    assert_eq!(table.attr(USER1, HOUR_SK, "total_events"), Some(&n(2)));
    // One batch: one coalesced write (W6) with the same result (W7).
    let plan = plan_hourly(&[first, second]);
    assert_eq!(plan.counters.snapshot_writes, 1);
    let mut table = Table::default();
    table.apply_all(&plan);
    assert_eq!(table.attr(USER1, HOUR_SK, "rpm"), Some(&n(3000)));
    assert_eq!(table.attr(USER1, HOUR_SK, "total_events"), Some(&n(2)));
}

#[test]
fn integration_two_limits_in_one_item() {
    let plan = plan_hourly(&[usage().tc("tpm", 0, 10_000_000).tc("rpm", 0, 1_000_000).record(1)]);
    let mut table = Table::default();
    table.apply_all(&plan);
    assert_eq!(table.attr(USER1, HOUR_SK, "tpm"), Some(&n(10_000)));
    assert_eq!(table.attr(USER1, HOUR_SK, "rpm"), Some(&n(1000)));
    assert_eq!(table.attr(USER1, HOUR_SK, "total_events"), Some(&n(2)), "W7 kept: one per changed limit");
}

#[test]
fn integration_consume_then_refund() {
    let mut table = Table::default();
    table.apply_all(&plan_hourly(&[usage().tc("rph", 0, 5_000_000).record(1)]));
    table.apply_all(&plan_hourly(&[usage().tc("rph", 5_000_000, 3_000_000).record(2)]));
    assert_eq!(table.attr(USER1, HOUR_SK, "rph"), Some(&n(3000)));
    assert_eq!(table.attr(USER1, HOUR_SK, "total_events"), Some(&n(2)));
}

#[test]
fn integration_daily_write_has_its_own_item_w4() {
    let plan = plan_with(&[usage().tc("tpm", 0, 5_000_000).record(1)], &config(&[Window::Daily]));
    let mut table = Table::default();
    table.apply_all(&plan);
    let sk = "#USAGE#gpt-4#2024-01-15T00:00:00Z#daily";
    assert_eq!(table.attr(USER1, sk, "window"), Some(&s("daily")));
    assert_eq!(table.attr(USER1, sk, "window_start"), Some(&s("2024-01-15T00:00:00Z")));
    assert!(table.get(USER1, "#USAGE#gpt-4#2024-01-15T00:00:00Z").is_none());
}

// ===========================================================================
// Upstream test_bucket_refill.py (integration): the bucket after a refill
// ===========================================================================

const BUCKET_PK: &str = "ns/BUCKET#entity-1#gpt-4#0";

/// A depleted bucket (tk 0) whose rf is 1 s old, with 10M consumed.
fn seeded() -> Bucket {
    Bucket::new_format("ns", "entity-1", "gpt-4", 0).rf(NOW - 1_000).limit(
        "tpm",
        0,
        10_000_000,
        0,
        100_000_000,
        100_000_000,
        60_000,
    )
}

fn refill_write(plan: &Plan) -> &Write {
    let ws = of(plan, Purpose::Refill);
    assert_eq!(ws.len(), 1);
    ws[0]
}

#[test]
fn integration_refill_of_depleted_bucket() {
    let b = seeded();
    let mut table = Table::default();
    table.seed(&b.new_image());
    let plan = plan_hourly(&[b.record(1)]);
    assert!(table.apply(refill_write(&plan)));
    assert_eq!(table.attr(BUCKET_PK, "#STATE", "b_tpm_tk"), Some(&n(1_666_666)));
    assert_eq!(table.attr(BUCKET_PK, "#STATE", "rf"), Some(&n(NOW)));
}

#[test]
fn integration_sufficient_tokens_no_write() {
    let b = seeded().limit("tpm", 0, 1_000_000, 90_000_000, 100_000_000, 100_000_000, 60_000);
    let mut table = Table::default();
    table.seed(&b.new_image());
    let plan = plan_hourly(&[b.record(1)]);
    assert!(of(&plan, Purpose::Refill).is_empty());
    table.apply_all(&plan);
    assert_eq!(table.attr(BUCKET_PK, "#STATE", "rf"), Some(&n(NOW - 1_000)));
}

#[test]
fn integration_stale_rf_loses_the_lock() {
    let b = seeded();
    let mut table = Table::default();
    table.seed(&b.new_image());
    let plan = plan_hourly(&[b.record(1)]);
    assert!(table.apply(refill_write(&plan)));
    assert!(!table.apply(refill_write(&plan)), "second refill against the old rf fails its condition");
    assert_eq!(table.attr(BUCKET_PK, "#STATE", "b_tpm_tk"), Some(&n(1_666_666)));
}

#[test]
fn integration_concurrent_add_commutes_with_refill() {
    let b = seeded();
    let mut table = Table::default();
    table.seed(&b.new_image());
    let plan = plan_hourly(&[b.record(1)]);
    // A client consumes concurrently: ADD b_tpm_tk -1000000, b_tpm_tc +1000000.
    let item = table.items.get_mut(&(BUCKET_PK.to_string(), "#STATE".to_string())).unwrap();
    item.insert("b_tpm_tk".into(), n(-1_000_000));
    item.insert("b_tpm_tc".into(), n(11_000_000));
    assert!(table.apply(refill_write(&plan)), "the W19 guard still holds after a consume");
    let tk = n_of(&table.attr(BUCKET_PK, "#STATE", "b_tpm_tk").unwrap().to_string());
    assert!(tk > -1_000_000, "final tk {tk} above initial - consumed");
    assert_eq!(tk, -1_000_000 + 1_666_666);
}

#[test]
fn integration_two_limits_refill_in_one_update() {
    let b = seeded().limit("rpm", 0, 5_000, 0, 10_000, 10_000, 60_000);
    let mut table = Table::default();
    table.seed(&b.new_image());
    let plan = plan_hourly(&[b.record(1)]);
    assert!(table.apply(refill_write(&plan)));
    assert_eq!(table.attr(BUCKET_PK, "#STATE", "b_tpm_tk"), Some(&n(1_666_666)));
    assert_eq!(table.attr(BUCKET_PK, "#STATE", "b_rpm_tk"), Some(&n(166)));
    assert_eq!(table.attr(BUCKET_PK, "#STATE", "rf"), Some(&n(NOW)));
}

#[test]
fn integration_pipeline_aggregate_then_refill() {
    let base = Bucket::new_format("ns", "entity-1", "gpt-4", 0).rf(NOW - 1_000);
    let r1 = base.clone().limit("tpm", 0, 2_000_000, 3_000_000, 100_000_000, 100_000_000, 60_000);
    let r2 = base.limit("tpm", 2_000_000, 5_000_000, 0, 100_000_000, 100_000_000, 60_000);
    let records = [r1.record(1), r2.record(2)];
    with_states(&records, |states| {
        assert_eq!((states[0].limits[0].tc_delta, states[0].limits[0].tk), (5_000_000, 0));
    });
    let mut table = Table::default();
    table.seed(&r2.new_image());
    let plan = plan_hourly(&records);
    assert!(table.apply(refill_write(&plan)));
    assert_eq!(table.attr(BUCKET_PK, "#STATE", "rf"), Some(&n(NOW)));
}

// ===========================================================================
// Upstream test_audit_archival.py (E2E) (planner part only; deployment is the host's)
// ===========================================================================

#[test]
fn e2e_namespaced_audit_delete_is_archived_w15() {
    let rec = remove(1, audit_image("tenant-a", "user-1", "01HX", "2024-01-15T14:30:00Z"));
    let lines = audit_lines(&plan_with(&[rec], &archiving()));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].get("action").is_some() || lines[0].get("timestamp").is_some());
}

// ===========================================================================
// Worked examples (docs/specification.md#worked-examples)
// ===========================================================================

#[test]
fn golden_1_full_batch() {
    let rec = Bucket::new_format("ns", "u1", "gpt-4", 0)
        .rf(1_704_067_195_000)
        .shards(1, 1)
        .limit("tpm", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)
        .limit("wcu", 0, 1_000, 150_000, 1_000_000, 1_000_000, 1_000)
        .record(1);
    let plan = plan_at(&[rec], &config(&[Window::Hourly, Window::Daily]), JAN1);
    let purposes: Vec<Purpose> = plan.writes.iter().map(|w| w.purpose).collect();
    assert_eq!(purposes, [Purpose::Snapshot, Purpose::Snapshot, Purpose::Refill, Purpose::ShardBump]);

    // Snapshots: window time is rf here (no ApproximateCreationDateTime, W5 fallback).
    let hourly = upd(&plan.writes[0]);
    assert_eq!(key(hourly), ("ns/ENTITY#u1".to_string(), "#USAGE#gpt-4#2023-12-31T23:00:00Z".to_string()));
    assert_eq!(add_of(hourly, "tpm"), Some(20_000));
    assert_eq!(set_of(hourly, "window").value, s("hourly"));
    let daily = upd(&plan.writes[1]);
    // W4: the daily item has its own sort key.
    assert_eq!(key(daily), ("ns/ENTITY#u1".to_string(), "#USAGE#gpt-4#2023-12-31T00:00:00Z#daily".to_string()));
    assert_eq!(add_of(daily, "tpm"), Some(20_000));
    assert_eq!(set_of(daily, "window").value, s("daily"));

    // Refill: tpm as upstream; W10: wcu also receives what it accrued (capped: 850,000).
    let r = upd(&plan.writes[2]);
    assert_eq!(key(r), ("ns/BUCKET#u1#gpt-4#0".to_string(), "#STATE".to_string()));
    assert_eq!(
        Ctx::of(r).resolve(&r.update_expression),
        r#"SET rf = {"N":"1704067200000"} ADD b_tpm_tk {"N":"8333333"}, b_wcu_tk {"N":"850000"}"#
    );
    assert_eq!(
        condition(r),
        r#"rf = {"N":"1704067195000"} AND b_tpm_tk <= {"N":"91666667"} AND b_wcu_tk <= {"N":"150000"}"#
    );

    // Shard bump 1 → 2 at ratio 0.15.
    let b = upd(&plan.writes[3]);
    assert_eq!(Ctx::of(b).resolve(&b.update_expression), r#"SET shard_count = {"N":"2"}"#);
    assert_eq!(condition(b), r#"shard_count = {"N":"1"}"#);
    let bump_log = logs(&plan, "Proactive shard doubling planned");
    assert_eq!(field(bump_log[0], "token_ratio"), "0.15");

    // Result body {processed:1, snapshots_updated:2, refills_written:1, events_archived:0, errors:[]}.
    let c = &plan.counters;
    assert_eq!((c.records, c.snapshot_writes, c.refill_writes, c.archived_events, c.invalid), (1, 2, 1, 0, 0));
}

#[test]
fn golden_2_midnight_hourly_and_daily_items_differ_w4() {
    let rec = Bucket::new_format("ns", "u1", "gpt-4", 0).rf(JAN1 + 1_800_000).tc("tpm", 0, 1_000_000).record(1);
    let plan = plan_with(&[rec], &config(&[Window::Hourly, Window::Daily]));
    let sks: Vec<String> = snapshot_keys(&plan).into_iter().map(|k| k.1).collect();
    // Upstream: both calls use `#USAGE#gpt-4#2024-01-01T00:00:00Z`.
    assert_eq!(sks, ["#USAGE#gpt-4#2024-01-01T00:00:00Z", "#USAGE#gpt-4#2024-01-01T00:00:00Z#daily"]);
    let mut table = Table::default();
    table.apply_all(&plan);
    assert_eq!(table.attr("ns/ENTITY#u1", &sks[0], "tpm"), Some(&n(1000)), "hour 00 holds only its own usage");
}

#[test]
fn golden_3_bucket_pk_parse() {
    assert_eq!(bucket::split_bucket_pk("a#b#c#3"), Some(("a", "b#c", "3", 3)));
    assert_eq!(bucket::split_bucket_pk("a#0"), None);
    assert_eq!(bucket::split_bucket_pk("a#b#x"), None);
    assert_eq!(bucket::split_bucket_pk("a#b#-1"), Some(("a", "b", "-1", -1)));
    let rec = |pk: &str| Bucket::with_keys(pk, "#STATE", "a").tc("tpm", 0, 1).record(1);
    assert_eq!(parse_one(&rec("ns/BUCKET#a#b#c#3")), "bucket ns a b#c 3 sc=1");
    assert_eq!(parse_one(&rec("ns/BUCKET#a#b#-1")), "bucket ns a b -1 sc=1");
    // Upstream skips these; they claim to be buckets, so we report them invalid (W3).
    assert!(parse_one(&rec("ns/BUCKET#a#0")).starts_with("invalid bucket PK"));
    assert!(parse_one(&rec("ns/BUCKET#a#b#x")).starts_with("invalid bucket PK"));
}

#[test]
fn golden_4_archive_key_w13_w14() {
    // Upstream: one object `audit/year=2024/month=01/day=14/audit-req-1-2024-01-14T23-59-00Z.jsonl.gz`
    // holding both events. Ours: one object per UTC day (W13), named by sequence numbers (W14).
    let records = [
        remove(5, audit_image("default", "user-1", "A", "2024-01-15T14:30:00Z")),
        remove(6, audit_image("default", "user-1", "B", "2024-01-14T23:59:00Z")),
    ];
    let plan = plan_with(&records, &archiving());
    let keys: Vec<String> = objects(&plan)
        .into_iter()
        .map(|(key, body)| key.replace(&format!("-{:08x}.", zae_planner::pyjson::crc32(body.as_bytes())), "."))
        .collect();
    assert_eq!(
        keys,
        ["audit/year=2024/month=01/day=14/audit-6-6.jsonl.gz", "audit/year=2024/month=01/day=15/audit-5-5.jsonl.gz"]
    );
}

#[test]
fn golden_5_floor_division_and_float_formatting() {
    // docs/specification.md#consumption-deltas: per delta, floor to tokens.
    for (milli, tokens) in [(5_000_000, 5000), (999, 0), (-1, -1), (-1500, -2), (-2_000_000, -2000)] {
        assert_eq!(snapshot::floor_div(milli, 1000), tokens, "{milli}");
        let rec = Bucket::new_format("ns", "u1", "gpt-4", 0).rf(JAN1).tc("tpm", 10_000_000, 10_000_000 + milli as i64);
        let u = only(&plan_hourly(&[rec.record(1)]), Purpose::Snapshot).clone();
        assert_eq!(add_of(&u, "tpm"), Some(tokens), "{milli}");
        assert_eq!(add_of(&u, "total_events"), Some(1), "{milli}: the write happens even at 0 tokens");
    }
    // Conventions: Python `//`, including a negative divisor.
    for (a, b, q) in [(-1500, 1000, -2), (-1, 1000, -1), (999, 1000, 0), (7, -2, -4)] {
        assert_eq!(refill::floor_div(a, b), Some(q), "{a} // {b}");
    }
    // docs/specification.md#audit-lines: Python float repr.
    for (f, text) in [
        (100.0, "100.0"),
        (1.5, "1.5"),
        (0.0001, "0.0001"),
        (1e16, "1e+16"),
        (1e-5, "1e-05"),
        (1.5e125, "1.5e+125"),
        (-0.0, "-0.0"),
    ] {
        let mut out = String::new();
        pyjson::write_python_float(&mut out, f);
        assert_eq!(out, text);
    }
    // docs/specification.md#audit-lines: ensure_ascii escaping.
    let mut out = String::new();
    pyjson::write_json_string(&mut out, "é😀\"/");
    assert_eq!(out, r#""\u00e9\ud83d\ude00\"/""#);
}
