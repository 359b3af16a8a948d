//! The plan: native mirror of the WIT `plan` record, a builder used by the
//! stages, and the canonical JSON rendering every host reproduces.
//!
//! Canonical JSON (see `tests/conformance/README.md`): compact, fields in the
//! order written below, lists in plan order, attribute values and log field
//! values spliced verbatim (they are already compact JSON), bodies as standard
//! base64 with padding. Strings escape only `"`, `\` and characters below
//! U+0020 (`\b \t \n \f \r` short, the rest `\u00xx` lowercase); everything
//! else is raw UTF-8. Every number in the plan is a `u32`.

use std::sync::Arc;

use crate::config::Config;

/// A named DynamoDB attribute value; `value` is compact DynamoDB JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name or `:placeholder`.
    pub name: String,
    /// Compact DynamoDB JSON of the value.
    pub value: String,
}

impl Attribute {
    /// A string attribute.
    pub fn s(name: impl Into<String>, value: &str) -> Self {
        let mut v = String::with_capacity(value.len() + 8);
        v.push_str("{\"S\":");
        write_json_str(&mut v, value);
        v.push('}');
        Attribute { name: name.into(), value: v }
    }

    /// A number attribute from any integer.
    pub fn n(name: impl Into<String>, value: impl std::fmt::Display) -> Self {
        Attribute { name: name.into(), value: format!("{{\"N\":\"{value}\"}}") }
    }

    /// An attribute whose value is already DynamoDB JSON.
    pub fn raw(name: impl Into<String>, value: String) -> Self {
        Attribute { name: name.into(), value }
    }
}

/// An expression attribute-name placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpressionName {
    /// `#placeholder`.
    pub placeholder: String,
    /// The real attribute name.
    pub name: String,
}

/// DynamoDB UpdateItem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateItem {
    /// Target table.
    pub table_name: String,
    /// `PK`, `SK`.
    pub key: Vec<Attribute>,
    /// UpdateExpression.
    pub update_expression: String,
    /// ConditionExpression.
    pub condition_expression: Option<String>,
    /// ExpressionAttributeNames.
    pub names: Vec<ExpressionName>,
    /// ExpressionAttributeValues.
    pub values: Vec<Attribute>,
}

/// DynamoDB PutItem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutItem {
    /// Target table.
    pub table_name: String,
    /// An image several put-items of the plan start from (shard propagation: the raised image,
    /// once for every new shard; docs/specification.md#shard-propagation). `None`: `item` is
    /// the whole item.
    pub base: Option<Arc<Vec<Attribute>>>,
    /// The item; with `base`, the attributes put over it (see [`PutItem::attributes`]).
    pub item: Vec<Attribute>,
    /// ConditionExpression.
    pub condition_expression: Option<String>,
    /// ExpressionAttributeNames.
    pub names: Vec<ExpressionName>,
    /// ExpressionAttributeValues.
    pub values: Vec<Attribute>,
}

impl PutItem {
    /// The item written, attribute by attribute: `item` without a `base`; with one, `base` in
    /// its order with each attribute that `item` also names taking `item`'s value in place,
    /// then the attributes of `item` that `base` does not name, in `item`'s order. Nothing is
    /// copied: a plan holds a shared image once however many items start from it.
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> + Clone + '_ {
        let base: &[Attribute] = self.base.as_deref().map_or(&[], Vec::as_slice);
        let over = &self.item;
        let replaced = base.iter().map(move |a| over.iter().find(|o| o.name == a.name).unwrap_or(a));
        let added = over.iter().filter(move |o| !base.iter().any(|a| a.name == o.name));
        replaced.chain(added)
    }
}

/// S3 PutObject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Content-Type.
    pub content_type: String,
    /// Content-Encoding.
    pub content_encoding: String,
}

/// A ConditionCheck inside a transaction (WIT `condition-check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionCheck {
    /// Target table.
    pub table_name: String,
    /// `PK`, `SK`.
    pub key: Vec<Attribute>,
    /// The condition.
    pub condition_expression: String,
    /// ExpressionAttributeNames.
    pub names: Vec<ExpressionName>,
    /// ExpressionAttributeValues.
    pub values: Vec<Attribute>,
}

/// One action of a TransactWriteItems request (WIT `transact-item`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactItem {
    /// Conditional Put.
    Put(PutItem),
    /// Conditional Update.
    Update(UpdateItem),
    /// ConditionCheck.
    ConditionCheck(ConditionCheck),
}

/// One AWS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// UpdateItem.
    UpdateItem(UpdateItem),
    /// PutItem.
    PutItem(PutItem),
    /// PutObject.
    PutObject(PutObject),
    /// TransactWriteItems.
    TransactWriteItems(Vec<TransactItem>),
}

/// A consistent GetItem the planner needs answered (WIT `read`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Identity within the batch.
    pub id: u32,
    /// Target table.
    pub table_name: String,
    /// `PK`, `SK`.
    pub key: Vec<Attribute>,
    /// Records whose writes wait on it, ascending.
    pub records: Vec<u32>,
    /// `{table} {PK=…, SK=…}`.
    pub target: String,
}

/// What a read found (WIT `read-outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The item as DynamoDB JSON.
    Found(String),
    /// No such item.
    Missing,
    /// The read failed; the error in words.
    Failed(String),
}

/// The answer to one read (WIT `read-result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The read's id.
    pub read_id: u32,
    /// What it found.
    pub outcome: ReadOutcome,
}

/// Why a write exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Purpose {
    /// Snapshot counters.
    Snapshot,
    /// Bucket refill.
    Refill,
    /// Shard doubling.
    ShardBump,
    /// Shard propagation.
    ShardPropagate,
    /// Audit archive object.
    Archive,
    /// Dead-letter object of records that can never be applied.
    DeadLetter,
}

impl Purpose {
    /// Kebab-case name, as in WIT.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Snapshot => "snapshot",
            Purpose::Refill => "refill",
            Purpose::ShardBump => "shard-bump",
            Purpose::ShardPropagate => "shard-propagate",
            Purpose::Archive => "archive",
            Purpose::DeadLetter => "dead-letter",
        }
    }
}

/// What a write that fails for good means for its records (WIT
/// `failure-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The records fail, so the stream delivers them again.
    Required,
    /// Counted and logged; the records do not fail.
    BestEffort,
}

impl FailurePolicy {
    /// The policy of every write of a purpose (`docs/architecture.md#failure-policy`):
    /// snapshot counters and archive objects are required, refill and shard
    /// writes are re-decided by the next batch.
    pub fn of(purpose: Purpose) -> Self {
        match purpose {
            Purpose::Snapshot | Purpose::Archive | Purpose::DeadLetter => FailurePolicy::Required,
            Purpose::Refill | Purpose::ShardBump | Purpose::ShardPropagate => FailurePolicy::BestEffort,
        }
    }

    /// Kebab-case name, as in WIT.
    pub fn name(self) -> &'static str {
        match self {
            FailurePolicy::Required => "required",
            FailurePolicy::BestEffort => "best-effort",
        }
    }
}

/// Meaning of a failed condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConditionFailure {
    /// Expected; count and move on.
    Ignore,
    /// Observe watermarks and re-plan.
    ResolveWatermarks,
}

impl OnConditionFailure {
    /// Kebab-case name, as in WIT.
    pub fn name(self) -> &'static str {
        match self {
            OnConditionFailure::Ignore => "ignore",
            OnConditionFailure::ResolveWatermarks => "resolve-watermarks",
        }
    }
}

/// One planned request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Identity within the batch: the index in the plan's writes (set when the
    /// plan is finished; a re-plan reuses the id of the write it replaces).
    pub id: u32,
    /// Why.
    pub purpose: Purpose,
    /// What a failure means for the records.
    pub failure_policy: FailurePolicy,
    /// Condition failure semantics.
    pub on_condition_failure: OnConditionFailure,
    /// `{table} {PK=…, SK=…}` or `s3://bucket/key`, for logs (set when the
    /// plan is finished).
    pub target: String,
    /// Source record indices, ascending, unique.
    pub records: Vec<u32>,
    /// What.
    pub operation: Operation,
    /// Log entries for the host to emit once the write is applied.
    pub on_applied: Vec<LogEntry>,
    /// Log entries for the host to emit, with the error, if the write fails for good.
    pub on_failed: Vec<LogEntry>,
}

impl Write {
    /// A write whose failure policy follows from its purpose; `id` and
    /// `target` are filled in by [`Plan::finish_writes`].
    pub fn new(
        purpose: Purpose,
        operation: Operation,
        on_condition_failure: OnConditionFailure,
        records: Vec<u32>,
    ) -> Self {
        Write {
            id: 0,
            purpose,
            failure_policy: FailurePolicy::of(purpose),
            on_condition_failure,
            target: String::new(),
            records,
            operation,
            on_applied: Vec::new(),
            on_failed: Vec::new(),
        }
    }

    /// The write with the log entries its outcome calls for, built with
    /// [`Log`] into the two lists.
    pub fn with_logs(mut self, build: impl FnOnce(&mut Vec<LogEntry>, &mut Vec<LogEntry>)) -> Self {
        build(&mut self.on_applied, &mut self.on_failed);
        self
    }

    /// The `(PK, SK)` strings of the item a DynamoDB write addresses.
    pub fn item_key(&self) -> Option<(String, String)> {
        let put = |p: &PutItem| {
            let get = |name: &str| p.attributes().find(|a| a.name == name).and_then(|a| string_value(&a.value));
            Some((get("PK")?, get("SK")?))
        };
        let attrs = match &self.operation {
            Operation::UpdateItem(u) => &u.key,
            Operation::PutItem(p) => return put(p),
            Operation::TransactWriteItems(items) => match items.first()? {
                TransactItem::Put(p) => return put(p),
                TransactItem::Update(u) => &u.key,
                TransactItem::ConditionCheck(c) => &c.key,
            },
            Operation::PutObject(_) => return None,
        };
        let get = |name: &str| attrs.iter().find(|a| a.name == name).and_then(|a| string_value(&a.value));
        Some((get("PK")?, get("SK")?))
    }

    /// Where the write goes, in words.
    pub fn describe_target(&self) -> String {
        match &self.operation {
            Operation::PutObject(o) => format!("s3://{}/{}", o.bucket, o.key),
            Operation::UpdateItem(UpdateItem { table_name, .. }) | Operation::PutItem(PutItem { table_name, .. }) => {
                let (pk, sk) = self.item_key().unwrap_or_default();
                format!("{table_name} {{PK={pk}, SK={sk}}}")
            }
            Operation::TransactWriteItems(items) => {
                let (pk, sk) = self.item_key().unwrap_or_default();
                let table = match items.first() {
                    Some(TransactItem::Put(p)) => p.table_name.as_str(),
                    Some(TransactItem::Update(u)) => u.table_name.as_str(),
                    Some(TransactItem::ConditionCheck(c)) => c.table_name.as_str(),
                    None => "",
                };
                format!("{table} {{PK={pk}, SK={sk}}} (transaction of {} actions)", items.len())
            }
        }
    }
}

/// The text of a compact `{"S":"..."}` value.
fn string_value(json: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(json).ok()? {
        serde_json::Value::Object(m) if m.len() == 1 => m.get("S")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// Verdict for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordStatus {
    /// Acted on.
    Used,
    /// Deliberately not acted on.
    Skipped(String),
    /// Malformed.
    Invalid(String),
}

/// Outcome of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Record index.
    pub index: u32,
    /// Sequence number, if any.
    pub sequence_number: Option<String>,
    /// Verdict.
    pub status: RecordStatus,
}

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Detail.
    Debug,
    /// Progress.
    Info,
    /// Suspicious, nothing lost.
    Warning,
    /// Could not plan something.
    Error,
}

impl LogLevel {
    /// Upper-case name as the Python aggregator prints it.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

/// A structured log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Severity.
    pub level: LogLevel,
    /// Message.
    pub message: String,
    /// `(name, compact JSON value)` pairs.
    pub fields: Vec<(String, String)>,
}

/// Plan counters (see WIT `counters`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records in the event.
    pub records: u32,
    /// Bucket MODIFY records parsed.
    pub bucket_records: u32,
    /// Audit REMOVEs archived.
    pub audit_records: u32,
    /// Skipped records.
    pub skipped: u32,
    /// Invalid records.
    pub invalid: u32,
    /// Consumption deltas.
    pub deltas: u32,
    /// Deltas timed by `rf`.
    pub window_time_from_rf: u32,
    /// Deltas of reserved limit names.
    pub reserved_limit_deltas: u32,
    /// Snapshot writes.
    pub snapshot_writes: u32,
    /// Refill writes.
    pub refill_writes: u32,
    /// Shard bump writes.
    pub shard_bump_writes: u32,
    /// Propagation writes.
    pub shard_propagate_writes: u32,
    /// Archive objects.
    pub archive_objects: u32,
    /// Archived events.
    pub archived_events: u32,
}

impl Counters {
    /// `(name, value)` pairs in canonical order.
    pub fn fields(&self) -> [(&'static str, u32); 14] {
        [
            ("records", self.records),
            ("bucket_records", self.bucket_records),
            ("audit_records", self.audit_records),
            ("skipped", self.skipped),
            ("invalid", self.invalid),
            ("deltas", self.deltas),
            ("window_time_from_rf", self.window_time_from_rf),
            ("reserved_limit_deltas", self.reserved_limit_deltas),
            ("snapshot_writes", self.snapshot_writes),
            ("refill_writes", self.refill_writes),
            ("shard_bump_writes", self.shard_bump_writes),
            ("shard_propagate_writes", self.shard_propagate_writes),
            ("archive_objects", self.archive_objects),
            ("archived_events", self.archived_events),
        ]
    }
}

/// The planner's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Writes, stable order.
    pub writes: Vec<Write>,
    /// Reads whose results `plan-after-reads` needs.
    pub reads: Vec<Read>,
    /// One per record.
    pub outcomes: Vec<RecordOutcome>,
    /// Logs, in order.
    pub logs: Vec<LogEntry>,
    /// Counters.
    pub counters: Counters,
}

impl Plan {
    /// Number the writes by position and describe their targets.
    pub fn finish_writes(&mut self) {
        for (i, w) in self.writes.iter_mut().enumerate() {
            w.id = i as u32;
            w.target = w.describe_target();
        }
    }
}

/// Where JSON text stopped being JSON (WIT `syntax-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// serde_json's message, with the position.
    pub message: String,
}

/// The kind of problem a setting has (WIT `config-problem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigProblem {
    /// Set but empty.
    Empty,
    /// Listed twice.
    Duplicate,
    /// Not an accepted value.
    UnknownValue,
    /// Not a whole decimal number.
    NotANumber,
    /// Outside the accepted range.
    OutOfRange,
    /// Needs another setting.
    RequiresOther,
}

impl ConfigProblem {
    /// Kebab-case name, as in WIT.
    pub fn name(self) -> &'static str {
        match self {
            ConfigProblem::Empty => "empty",
            ConfigProblem::Duplicate => "duplicate",
            ConfigProblem::UnknownValue => "unknown-value",
            ConfigProblem::NotANumber => "not-a-number",
            ConfigProblem::OutOfRange => "out-of-range",
            ConfigProblem::RequiresOther => "requires-other",
        }
    }
}

/// Why a configuration is unusable (WIT `config-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Variable or field name.
    pub setting: String,
    /// Kind of problem.
    pub problem: ConfigProblem,
    /// A sentence for people.
    pub message: String,
}

impl ConfigError {
    /// An error of `setting`.
    pub fn new(setting: &str, problem: ConfigProblem, message: impl Into<String>) -> Self {
        ConfigError { setting: setting.to_string(), problem, message: message.into() }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A whole-batch failure (WIT `plan-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The event is not JSON.
    EventNotJson(SyntaxError),
    /// The event is not an object.
    EventNotObject,
    /// `Records` is not a list.
    RecordsNotList,
    /// Config unusable.
    BadConfig(ConfigError),
    /// An observed item or a record failure names no write of the plan.
    UnknownWriteId(u32),
    /// A record failure names no record of the batch.
    UnknownRecordIndex(u32),
    /// A read result names no read of the plan.
    UnknownReadId(u32),
}

impl PlanError {
    /// Kebab-case name of the variant, as in WIT.
    pub fn kind(&self) -> &'static str {
        match self {
            PlanError::EventNotJson(_) => "event-not-json",
            PlanError::EventNotObject => "event-not-object",
            PlanError::RecordsNotList => "records-not-list",
            PlanError::BadConfig(_) => "bad-config",
            PlanError::UnknownWriteId(_) => "unknown-write-id",
            PlanError::UnknownRecordIndex(_) => "unknown-record-index",
            PlanError::UnknownReadId(_) => "unknown-read-id",
        }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::EventNotJson(e) => write!(f, "event is not valid JSON: {}", e.message),
            PlanError::EventNotObject => f.write_str("event is not a JSON object"),
            PlanError::RecordsNotList => f.write_str("Records is not a list"),
            PlanError::BadConfig(e) => write!(f, "bad config: {}", e.message),
            PlanError::UnknownWriteId(id) => write!(f, "write {id} is not a write of this batch's plan"),
            PlanError::UnknownRecordIndex(i) => write!(f, "record {i} is not a record of this batch"),
            PlanError::UnknownReadId(id) => write!(f, "read {id} is not a read of this batch's plan"),
        }
    }
}

impl std::error::Error for PlanError {}

/// Input of one planning call.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    /// Lambda event JSON.
    pub event_json: &'a str,
    /// Configuration.
    pub config: &'a Config,
    /// Now, epoch ms.
    pub now_ms: i64,
    /// Invocation id (logs only).
    pub invocation_id: &'a str,
}

/// A snapshot item observed by the host after a watermark conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedItem {
    /// The id of the write whose condition failed.
    pub write_id: u32,
    /// The item as DynamoDB JSON, if it exists.
    pub item: Option<String>,
}

/// Structured log builder: fields are rendered to compact JSON on insertion.
#[derive(Debug)]
pub struct Log<'p> {
    entry: LogEntry,
    sink: &'p mut Vec<LogEntry>,
}

impl<'p> Log<'p> {
    /// Start a log entry; it is pushed when dropped.
    pub fn new(sink: &'p mut Vec<LogEntry>, level: LogLevel, message: impl Into<String>) -> Self {
        Log { entry: LogEntry { level, message: message.into(), fields: Vec::new() }, sink }
    }

    /// Add a string field.
    pub fn s(mut self, name: &str, value: &str) -> Self {
        let mut v = String::with_capacity(value.len() + 2);
        write_json_str(&mut v, value);
        self.entry.fields.push((name.to_string(), v));
        self
    }

    /// Add a numeric field.
    pub fn n(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.entry.fields.push((name.to_string(), value.to_string()));
        self
    }

    /// Add a field whose value is already compact JSON.
    pub fn raw(mut self, name: &str, json: String) -> Self {
        self.entry.fields.push((name.to_string(), json));
        self
    }

    /// Add a list-of-strings field.
    pub fn list(self, name: &str, items: &[&str]) -> Self {
        let mut v = String::from("[");
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                v.push(',');
            }
            write_json_str(&mut v, it);
        }
        v.push(']');
        self.raw(name, v)
    }
}

impl Drop for Log<'_> {
    fn drop(&mut self) {
        let entry = std::mem::replace(
            &mut self.entry,
            LogEntry { level: LogLevel::Debug, message: String::new(), fields: Vec::new() },
        );
        self.sink.push(entry);
    }
}

/// Append a JSON string literal with the canonical escaping (see module docs):
/// exactly serde_json's compact escaping, written straight into `out`.
pub fn write_json_str(out: &mut String, s: &str) {
    // serde_json feeds its writer only whole UTF-8 sequences, and serialising
    // a `str` cannot fail, so the error branch is never taken.
    let _ = serde_json::to_writer(StrWriter(out), s);
}

/// An `io::Write` that appends to a `String` (no intermediate buffer).
struct StrWriter<'a>(&'a mut String);

impl std::io::Write for StrWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.0.push_str(text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn write_attr_map<'a>(out: &mut String, attrs: impl IntoIterator<Item = &'a Attribute>) {
    out.push('{');
    for (i, a) in attrs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, &a.name);
        out.push(':');
        out.push_str(&a.value);
    }
    out.push('}');
}

fn write_names(out: &mut String, names: &[ExpressionName]) {
    out.push('{');
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, &n.placeholder);
        out.push(':');
        write_json_str(out, &n.name);
    }
    out.push('}');
}

fn write_opt_str(out: &mut String, s: &Option<String>) {
    match s {
        Some(s) => write_json_str(out, s),
        None => out.push_str("null"),
    }
}

/// One operation in canonical JSON (as inside a plan's write).
pub fn operation_json(op: &Operation) -> String {
    let mut out = String::new();
    write_operation(&mut out, op);
    out
}

fn write_update(out: &mut String, kind: &str, u: &UpdateItem) {
    out.push_str("{\"type\":\"");
    out.push_str(kind);
    out.push_str("\",\"table_name\":");
    write_json_str(out, &u.table_name);
    out.push_str(",\"key\":");
    write_attr_map(out, &u.key);
    out.push_str(",\"update_expression\":");
    write_json_str(out, &u.update_expression);
    out.push_str(",\"condition_expression\":");
    write_opt_str(out, &u.condition_expression);
    out.push_str(",\"names\":");
    write_names(out, &u.names);
    out.push_str(",\"values\":");
    write_attr_map(out, &u.values);
    out.push('}');
}

fn write_put(out: &mut String, kind: &str, p: &PutItem) {
    out.push_str("{\"type\":\"");
    out.push_str(kind);
    out.push_str("\",\"table_name\":");
    write_json_str(out, &p.table_name);
    out.push_str(",\"item\":");
    write_attr_map(out, p.attributes());
    out.push_str(",\"condition_expression\":");
    write_opt_str(out, &p.condition_expression);
    out.push_str(",\"names\":");
    write_names(out, &p.names);
    out.push_str(",\"values\":");
    write_attr_map(out, &p.values);
    out.push('}');
}

fn write_operation(out: &mut String, op: &Operation) {
    match op {
        Operation::TransactWriteItems(items) => {
            out.push_str("{\"type\":\"transact-write-items\",\"items\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    TransactItem::Put(p) => write_put(out, "put", p),
                    TransactItem::Update(u) => write_update(out, "update", u),
                    TransactItem::ConditionCheck(c) => {
                        out.push_str("{\"type\":\"condition-check\",\"table_name\":");
                        write_json_str(out, &c.table_name);
                        out.push_str(",\"key\":");
                        write_attr_map(out, &c.key);
                        out.push_str(",\"condition_expression\":");
                        write_json_str(out, &c.condition_expression);
                        out.push_str(",\"names\":");
                        write_names(out, &c.names);
                        out.push_str(",\"values\":");
                        write_attr_map(out, &c.values);
                        out.push('}');
                    }
                }
            }
            out.push_str("]}");
        }
        Operation::UpdateItem(u) => write_update(out, "update-item", u),
        Operation::PutItem(p) => write_put(out, "put-item", p),
        Operation::PutObject(o) => {
            out.push_str("{\"type\":\"put-object\",\"bucket\":");
            write_json_str(out, &o.bucket);
            out.push_str(",\"key\":");
            write_json_str(out, &o.key);
            out.push_str(",\"content_type\":");
            write_json_str(out, &o.content_type);
            out.push_str(",\"content_encoding\":");
            write_json_str(out, &o.content_encoding);
            out.push_str(",\"body_base64\":\"");
            out.push_str(&base64(&o.body));
            out.push_str("\"}");
        }
    }
}

fn write_u32_list(out: &mut String, xs: &[u32]) {
    out.push('[');
    for (i, x) in xs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&x.to_string());
    }
    out.push(']');
}

/// `[{"level":…,"message":…,"fields":{…}},…]`, field values spliced verbatim.
fn write_log_list(out: &mut String, logs: &[LogEntry]) {
    out.push('[');
    for (i, l) in logs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"level\":\"");
        out.push_str(l.level.name());
        out.push_str("\",\"message\":");
        write_json_str(out, &l.message);
        out.push_str(",\"fields\":{");
        for (j, (k, v)) in l.fields.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            write_json_str(out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push_str("}}");
    }
    out.push(']');
}

/// Render a plan as canonical JSON (no trailing newline).
pub fn canonical_json(plan: &Plan) -> String {
    let mut out = String::with_capacity(256 + plan.writes.len() * 700 + plan.outcomes.len() * 64);
    out.push_str("{\"writes\":[");
    for (i, w) in plan.writes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"id\":");
        out.push_str(&w.id.to_string());
        out.push_str(",\"purpose\":\"");
        out.push_str(w.purpose.name());
        out.push_str("\",\"failure_policy\":\"");
        out.push_str(w.failure_policy.name());
        out.push_str("\",\"on_condition_failure\":\"");
        out.push_str(w.on_condition_failure.name());
        out.push_str("\",\"target\":");
        write_json_str(&mut out, &w.target);
        out.push_str(",\"records\":");
        write_u32_list(&mut out, &w.records);
        out.push_str(",\"operation\":");
        write_operation(&mut out, &w.operation);
        out.push_str(",\"on_applied\":");
        write_log_list(&mut out, &w.on_applied);
        out.push_str(",\"on_failed\":");
        write_log_list(&mut out, &w.on_failed);
        out.push('}');
    }
    out.push(']');
    // Only plans that read carry the member, so plans of contract 0.2.0
    // render byte for byte as they did.
    if !plan.reads.is_empty() {
        out.push_str(",\"reads\":[");
        for (i, r) in plan.reads.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"id\":");
            out.push_str(&r.id.to_string());
            out.push_str(",\"table_name\":");
            write_json_str(&mut out, &r.table_name);
            out.push_str(",\"key\":");
            write_attr_map(&mut out, &r.key);
            out.push_str(",\"records\":");
            write_u32_list(&mut out, &r.records);
            out.push_str(",\"target\":");
            write_json_str(&mut out, &r.target);
            out.push('}');
        }
        out.push(']');
    }
    out.push_str(",\"outcomes\":[");
    for (i, o) in plan.outcomes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"index\":");
        out.push_str(&o.index.to_string());
        out.push_str(",\"sequence_number\":");
        write_opt_str(&mut out, &o.sequence_number);
        match &o.status {
            RecordStatus::Used => out.push_str(",\"status\":\"used\",\"reason\":null}"),
            RecordStatus::Skipped(r) => {
                out.push_str(",\"status\":\"skipped\",\"reason\":");
                write_json_str(&mut out, r);
                out.push('}');
            }
            RecordStatus::Invalid(r) => {
                out.push_str(",\"status\":\"invalid\",\"reason\":");
                write_json_str(&mut out, r);
                out.push('}');
            }
        }
    }
    out.push_str("],\"logs\":");
    write_log_list(&mut out, &plan.logs);
    out.push_str(",\"counters\":{");
    for (i, (k, v)) in plan.counters.fields().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(k);
        out.push_str("\":");
        out.push_str(&v.to_string());
    }
    out.push_str("}}");
    out
}

/// Render a whole-batch error as canonical JSON: `{"error":{"kind":…,…}}`
/// with the variant's payload fields, then `message` (the error in words).
pub fn error_json(e: &PlanError) -> String {
    let mut out = String::from("{\"error\":{\"kind\":\"");
    out.push_str(e.kind());
    out.push('"');
    match e {
        PlanError::EventNotJson(s) => {
            out.push_str(&format!(",\"line\":{},\"column\":{}", s.line, s.column));
        }
        PlanError::BadConfig(c) => {
            out.push_str(",\"setting\":");
            write_json_str(&mut out, &c.setting);
            out.push_str(",\"problem\":\"");
            out.push_str(c.problem.name());
            out.push('"');
        }
        PlanError::UnknownWriteId(id) => out.push_str(&format!(",\"write_id\":{id}")),
        PlanError::UnknownRecordIndex(i) => out.push_str(&format!(",\"record_index\":{i}")),
        PlanError::UnknownReadId(id) => out.push_str(&format!(",\"read_id\":{id}")),
        PlanError::EventNotObject | PlanError::RecordsNotList => {}
    }
    out.push_str(",\"message\":");
    write_json_str(&mut out, &e.to_string());
    out.push_str("}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_escaping_is_canonical() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}/é😀\u{7f}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/é😀\u{7f}\"");

        // Every character below U+0020, against the rule written out here.
        for c in (0u8..0x20).map(char::from) {
            let want = match c {
                '\u{8}' => "\\b".to_string(),
                '\t' => "\\t".to_string(),
                '\n' => "\\n".to_string(),
                '\u{c}' => "\\f".to_string(),
                '\r' => "\\r".to_string(),
                _ => format!("\\u{:04x}", c as u32),
            };
            let mut s = String::from("x");
            write_json_str(&mut s, &c.to_string());
            assert_eq!(s, format!("x\"{want}\""), "{:#x}", c as u32);
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn attribute_constructors_render_dynamodb_json() {
        assert_eq!(Attribute::s("PK", "a\"b").value, "{\"S\":\"a\\\"b\"}");
        assert_eq!(Attribute::n(":v", -12i128).value, "{\"N\":\"-12\"}");
    }

    #[test]
    fn empty_plan_renders_every_section() {
        let json = canonical_json(&Plan::default());
        assert!(json.starts_with("{\"writes\":[],\"outcomes\":[],\"logs\":[],\"counters\":{\"records\":0,"));
        assert!(json.ends_with("\"archived_events\":0}}"));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["counters"].as_object().unwrap().len(), 14);
    }

    #[test]
    fn log_builder_pushes_on_drop() {
        let mut logs = Vec::new();
        Log::new(&mut logs, LogLevel::Info, "m").s("a", "x").n("b", 3).list("c", &["p", "q"]);
        assert_eq!(logs.len(), 1);
        assert_eq!(
            logs[0].fields,
            vec![
                ("a".to_string(), "\"x\"".to_string()),
                ("b".to_string(), "3".to_string()),
                ("c".to_string(), "[\"p\",\"q\"]".to_string())
            ]
        );
    }
}
