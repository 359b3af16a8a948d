//! Reading a DynamoDB stream the way Lambda's event source mapping does: the
//! pure parts of `zae-aggregator poll` and `replay` (docs/poll.md).
//!
//! * [`lambda_record`]: a DynamoDB Streams API record as the record of a
//!   Lambda event (the shape the planner parses, docs/specification.md);
//! * [`passes_filter`]: the deployment template's `FilterCriteria`;
//! * [`ready_shards`]: shard lineage (a child only after its parent is done);
//! * [`Pending`]: Lambda-shaped batches (`--batch-size`,
//!   `--batching-window`) and the position a batch's outcome moves to;
//! * [`resume_index`]: where to resume after `batchItemFailures`;
//! * [`Checkpoint`]: the per-shard checkpoint document.
//!
//! Nothing here does I/O; `poll.rs` drives it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use serde_json::{json, Map, Value};

/// Partition key of the checkpoint item `poll` keeps in the table itself
/// (docs/poll.md#checkpoints). Neither a bucket, an audit row nor a
/// zae-limiter system record: the template's filter drops its stream
/// records and the planner would skip them anyway.
pub const CHECKPOINT_PK: &str = "_/AGGREGATOR#POLL";

/// Prefix of the checkpoint item's sort key; the stream label follows.
pub const CHECKPOINT_SK_PREFIX: &str = "#CHECKPOINT#";

/// Version of the checkpoint document's format.
pub const CHECKPOINT_VERSION: u64 = 1;

/// Compare two stream sequence numbers (decimal digit strings of up to 40
/// digits) numerically.
pub fn seq_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// `dynamodb.SequenceNumber` of a Lambda-shaped record (`""` when absent).
pub fn record_seq(record: &Value) -> &str {
    record["dynamodb"]["SequenceNumber"].as_str().unwrap_or("")
}

// `attribute_value_to_json` and `map_to_json` for the Streams API's values,
// as a Lambda event carries them.
crate::dynamo_json::attribute_value_json!(AttributeValue);

/// A Streams API record as Lambda delivers it in an event: `eventID`,
/// `eventName`, `eventVersion` "1.1", `eventSource` "aws:dynamodb",
/// `awsRegion`, `eventSourceARN` (the stream), `dynamodb` with
/// `ApproximateCreationDateTime` in epoch seconds (a fraction only when the
/// time has one), `Keys`, `NewImage`, `OldImage`, `SequenceNumber`,
/// `SizeBytes`, `StreamViewType`, and `userIdentity` (`type`,
/// `principalId`) when the record has one: TTL deletions carry
/// `{"type": "Service", "principalId": "dynamodb.amazonaws.com"}`, which the
/// archive depends on (docs/specification.md#archive).
pub fn lambda_record(r: &Record, stream_arn: &str, region: &str) -> Value {
    let mut ddb = Map::new();
    if let Some(d) = r.dynamodb() {
        if let Some(t) = d.approximate_creation_date_time() {
            let nanos = t.subsec_nanos();
            let at = if nanos == 0 { json!(t.secs()) } else { json!(t.secs() as f64 + f64::from(nanos) / 1e9) };
            ddb.insert("ApproximateCreationDateTime".into(), at);
        }
        for (name, image) in [("Keys", d.keys()), ("NewImage", d.new_image()), ("OldImage", d.old_image())] {
            if let Some(m) = image {
                ddb.insert(name.into(), Value::Object(map_to_json(m)));
            }
        }
        if let Some(s) = d.sequence_number() {
            ddb.insert("SequenceNumber".into(), json!(s));
        }
        if let Some(n) = d.size_bytes() {
            ddb.insert("SizeBytes".into(), json!(n));
        }
        if let Some(v) = d.stream_view_type() {
            ddb.insert("StreamViewType".into(), json!(v.as_str()));
        }
    }
    let mut out = Map::new();
    out.insert("eventID".into(), json!(r.event_id().unwrap_or_default()));
    out.insert("eventName".into(), json!(r.event_name().map(|n| n.as_str()).unwrap_or_default()));
    out.insert("eventVersion".into(), json!("1.1"));
    out.insert("eventSource".into(), json!("aws:dynamodb"));
    out.insert("awsRegion".into(), json!(r.aws_region().unwrap_or(region)));
    out.insert("eventSourceARN".into(), json!(stream_arn));
    out.insert("dynamodb".into(), Value::Object(ddb));
    if let Some(u) = r.user_identity() {
        out.insert(
            "userIdentity".into(),
            json!({"type": u.r#type().unwrap_or_default(), "principalId": u.principal_id().unwrap_or_default()}),
        );
    }
    Value::Object(out)
}

/// The deployment template's `FilterCriteria` (deploy/template.yaml): a
/// `MODIFY` whose `NewImage.SK` is `#STATE` (a bucket), or a `REMOVE` whose
/// `Keys.SK` starts with `#AUDIT#` (an audit row). Lambda drops every other
/// record before batching; so does `poll`.
pub fn passes_filter(record: &Value) -> bool {
    let d = &record["dynamodb"];
    match record["eventName"].as_str() {
        Some("MODIFY") => d["NewImage"]["SK"]["S"] == "#STATE",
        Some("REMOVE") => d["Keys"]["SK"]["S"].as_str().is_some_and(|sk| sk.starts_with("#AUDIT#")),
        _ => false,
    }
}

/// Whether a record is about `poll`'s own checkpoint item (whose writes
/// must not keep the poller busy, docs/poll.md#checkpoints).
pub fn is_checkpoint_record(record: &Value) -> bool {
    record["dynamodb"]["Keys"]["PK"]["S"] == CHECKPOINT_PK
}

/// What `poll` knows of a shard from `DescribeStream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// `ShardId`.
    pub id: String,
    /// `ParentShardId`.
    pub parent: Option<String>,
    /// Whether the shard is closed (it has an `EndingSequenceNumber`).
    pub closed: bool,
}

/// The shards that may be read now, in the order given: not `done`, not
/// `busy`, and whose parent is done or no longer listed (trimmed after 24
/// hours, so nothing of it is left to read). A child never starts before
/// its parent has been read to its end, so a bucket's records stay in order
/// across a split.
pub fn ready_shards<'a>(
    shards: &'a [ShardInfo],
    done: &BTreeSet<String>,
    busy: &BTreeSet<String>,
) -> Vec<&'a ShardInfo> {
    let listed: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    shards
        .iter()
        .filter(|s| !done.contains(&s.id) && !busy.contains(&s.id))
        .filter(|s| match &s.parent {
            None => true,
            Some(p) => done.contains(p) || !listed.contains(p.as_str()),
        })
        .collect()
}

/// Records read from one shard and not yet handled, in order, with the
/// position they imply. Records the filter drops are never batched, but
/// they move the position: once everything before them is handled, the
/// checkpoint may pass them.
#[derive(Debug, Default)]
pub struct Pending {
    records: VecDeque<Value>,
    /// Sequence number of the last record read (filtered or not).
    read_to: Option<String>,
    /// When the oldest waiting record was read.
    since: Option<Instant>,
    /// Whether a record other than the checkpoint item's own was dropped by
    /// the filter after the last handled position.
    moved: bool,
}

impl Pending {
    /// Nothing read yet.
    pub fn new() -> Pending {
        Pending::default()
    }

    /// Records waiting to be handled.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record waits.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Take in one record read at `now`: batched if it passes the filter,
    /// else only its position counts. A record at or before the last one
    /// read is not taken (`false`): a shard's sequence numbers increase, so
    /// it was read already (a stream that hands records back, as a local
    /// emulator with duplicate sequence numbers can, never holds the reader
    /// in a loop; docs/poll.md#what-it-does).
    pub fn push(&mut self, record: Value, now: Instant) -> bool {
        let seq = record_seq(&record);
        if self.read_to.as_deref().is_some_and(|last| seq_cmp(seq, last).is_le()) {
            return false;
        }
        self.read_to = Some(seq.to_string());
        if passes_filter(&record) {
            self.records.push_back(record);
            self.since.get_or_insert(now);
        } else if !is_checkpoint_record(&record) {
            self.moved = true;
        }
        true
    }

    /// Whether a batch should be handled now: `batch_size` records wait, or
    /// the oldest has waited `window`, or `flush` (the shard ended, or the
    /// reader caught up and waits for nothing) and some record waits.
    pub fn ready(&self, now: Instant, batch_size: usize, window: Duration, flush: bool) -> bool {
        match self.since {
            None => false,
            Some(since) => self.records.len() >= batch_size || flush || now.saturating_duration_since(since) >= window,
        }
    }

    /// How long until the oldest waiting record has waited `window`.
    pub fn wait_left(&self, now: Instant, window: Duration) -> Option<Duration> {
        self.since.map(|s| window.saturating_sub(now.saturating_duration_since(s)))
    }

    /// The next batch: the first `batch_size` waiting records (cloned; they
    /// stay until [`Pending::handled`]).
    pub fn batch(&self, batch_size: usize) -> Vec<Value> {
        self.records.iter().take(batch_size).cloned().collect()
    }

    /// The first `n` records of the last batch were handled: drop them and
    /// return the position the checkpoint may move to (`None`: it stays).
    /// When nothing waits any more, that is the last record read, filtered
    /// ones included; otherwise the last handled record.
    pub fn handled(&mut self, n: usize) -> Option<String> {
        let n = n.min(self.records.len());
        let last = self.records.drain(..n).next_back();
        if self.records.is_empty() {
            self.since = None;
            if last.is_some() || self.moved {
                self.moved = false;
                return self.read_to.clone();
            }
            return None;
        }
        last.map(|r| record_seq(&r).to_string())
    }

    /// Sequence number of the last record read.
    pub fn read_to(&self) -> Option<&str> {
        self.read_to.as_deref()
    }
}

/// Where to resume after a batch's response: `None` when every record was
/// handled, else the index of the first record to retry: the record the
/// first `batchItemFailures` entry names, or the whole batch (index 0) when
/// that identifier is empty or names no record of the batch (what Lambda
/// does with an identifier it cannot find).
pub fn resume_index(batch: &[Value], response: &Value) -> Option<usize> {
    let id = response["batchItemFailures"].as_array()?.first()?;
    let id = id["itemIdentifier"].as_str().unwrap_or("");
    Some(batch.iter().position(|r| !id.is_empty() && record_seq(r) == id).unwrap_or(0))
}

/// Delay before retrying a batch for the `attempt`-th time in a row (1, 2,
/// ...): 1 s doubling up to 60 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// How far one shard has been handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardPosition {
    /// Every record up to this sequence number (inclusive) is handled.
    pub sequence_number: Option<String>,
    /// The shard is closed and read to its end (its children may start).
    pub finished: bool,
}

/// The checkpoint document: per shard of one stream, how far it is
/// handled. Rendered as JSON
/// `{"version":1,"stream_arn":"...","shards":{"ID":{"sequence_number":"N","finished":false}}}`
/// (docs/poll.md#checkpoints).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The stream.
    pub stream_arn: String,
    /// Positions by shard id.
    pub shards: BTreeMap<String, ShardPosition>,
}

impl Checkpoint {
    /// An empty checkpoint of `stream_arn`.
    pub fn new(stream_arn: &str) -> Checkpoint {
        Checkpoint { stream_arn: stream_arn.to_string(), shards: BTreeMap::new() }
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        let shards: Map<String, Value> = self
            .shards
            .iter()
            .map(|(id, p)| (id.clone(), json!({"sequence_number": p.sequence_number, "finished": p.finished})))
            .collect();
        json!({"version": CHECKPOINT_VERSION, "stream_arn": self.stream_arn, "shards": shards}).to_string()
    }

    /// Parse a checkpoint document; a clear error for anything else.
    pub fn from_json(text: &str) -> Result<Checkpoint, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("the checkpoint is not JSON: {e}"))?;
        if v["version"] != json!(CHECKPOINT_VERSION) {
            return Err(format!("the checkpoint's version is {}, expected {CHECKPOINT_VERSION}", v["version"]));
        }
        let stream_arn = v["stream_arn"].as_str().ok_or("the checkpoint has no stream_arn string")?.to_string();
        let mut shards = BTreeMap::new();
        for (id, p) in v["shards"].as_object().ok_or("the checkpoint has no shards object")? {
            let sequence_number = match &p["sequence_number"] {
                Value::Null => None,
                Value::String(s) if !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_digit()) => {
                    Some(s.clone())
                }
                other => return Err(format!("shard {id}: sequence_number {other} is not a sequence number")),
            };
            let finished = p["finished"].as_bool().ok_or_else(|| format!("shard {id}: finished is not a boolean"))?;
            shards.insert(id.clone(), ShardPosition { sequence_number, finished });
        }
        Ok(Checkpoint { stream_arn, shards })
    }

    /// Record that shard `id` is handled up to `seq`; a position never
    /// moves back.
    pub fn advance(&mut self, id: &str, seq: &str) {
        let p = self.shards.entry(id.to_string()).or_default();
        if p.sequence_number.as_deref().is_none_or(|old| seq_cmp(seq, old) == Ordering::Greater) {
            p.sequence_number = Some(seq.to_string());
        }
    }

    /// Record that shard `id` is read to its end.
    pub fn finish(&mut self, id: &str) {
        self.shards.entry(id.to_string()).or_default().finished = true;
    }

    /// Shards read to their end.
    pub fn finished(&self) -> BTreeSet<String> {
        self.shards.iter().filter(|(_, p)| p.finished).map(|(id, _)| id.clone()).collect()
    }
}

/// The table name and stream label of a stream ARN
/// (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`).
pub fn parse_stream_arn(arn: &str) -> Result<(String, String), String> {
    let resource = arn.splitn(6, ':').nth(5).filter(|_| arn.starts_with("arn:")).unwrap_or("");
    let parts: Vec<&str> = resource.split('/').collect();
    match parts.as_slice() {
        ["table", name, "stream", label] if !name.is_empty() && !label.is_empty() => {
            Ok((name.to_string(), label.to_string()))
        }
        _ => Err(format!(
            "{arn:?} is not a DynamoDB stream ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::primitives::DateTime;
    use aws_sdk_dynamodbstreams::types::{Identity, OperationType, StreamRecord, StreamViewType};
    use std::collections::HashMap;

    fn rec(seq: u64, name: &str, pk: &str, sk: &str) -> Value {
        let mut r = json!({
            "eventName": name,
            "dynamodb": {"SequenceNumber": seq.to_string(), "Keys": {"PK": {"S": pk}, "SK": {"S": sk}}}
        });
        if name == "MODIFY" {
            r["dynamodb"]["NewImage"] = json!({"PK": {"S": pk}, "SK": {"S": sk}});
        }
        r
    }

    fn bucket(seq: u64) -> Value {
        rec(seq, "MODIFY", "ns/BUCKET#e#r#0", "#STATE")
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(seq_cmp("9", "10"), Ordering::Less);
        assert_eq!(seq_cmp("1100000000017454423010", "1100000000017454423009"), Ordering::Greater);
        assert_eq!(seq_cmp("007", "7"), Ordering::Equal);
    }

    #[test]
    fn a_streams_record_becomes_a_lambda_record() {
        let image: HashMap<String, AttributeValue> = [
            ("PK".to_string(), AttributeValue::S("ns/AUDIT#u".into())),
            ("SK".to_string(), AttributeValue::S("#AUDIT#01H".into())),
            ("n".to_string(), AttributeValue::N("1.50".into())),
            ("m".to_string(), AttributeValue::M([("b".to_string(), AttributeValue::Bool(true))].into())),
            (
                "l".to_string(),
                AttributeValue::L(vec![AttributeValue::Null(true), AttributeValue::Ss(vec!["x".into()])]),
            ),
            ("bin".to_string(), AttributeValue::B(aws_sdk_dynamodbstreams::primitives::Blob::new(b"hi".to_vec()))),
        ]
        .into();
        let keys: HashMap<String, AttributeValue> =
            image.iter().filter(|(k, _)| k.ends_with('K')).map(|(k, v)| (k.clone(), v.clone())).collect();
        let r = Record::builder()
            .event_id("e1")
            .event_name(OperationType::Remove)
            .event_version("1.0")
            .aws_region("eu-west-1")
            .dynamodb(
                StreamRecord::builder()
                    .approximate_creation_date_time(DateTime::from_secs(1705363200))
                    .set_keys(Some(keys))
                    .set_old_image(Some(image))
                    .sequence_number("4500")
                    .size_bytes(400)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build(),
            )
            .user_identity(Identity::builder().r#type("Service").principal_id("dynamodb.amazonaws.com").build())
            .build();
        let arn = "arn:aws:dynamodb:eu-west-1:1:table/t/stream/2026";
        assert_eq!(
            lambda_record(&r, arn, "us-east-1"),
            json!({
                "eventID": "e1", "eventName": "REMOVE", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                "awsRegion": "eu-west-1", "eventSourceARN": arn,
                "dynamodb": {
                    "ApproximateCreationDateTime": 1705363200,
                    "Keys": {"PK": {"S": "ns/AUDIT#u"}, "SK": {"S": "#AUDIT#01H"}},
                    "OldImage": {
                        "PK": {"S": "ns/AUDIT#u"}, "SK": {"S": "#AUDIT#01H"}, "bin": {"B": "aGk="},
                        "l": {"L": [{"NULL": true}, {"SS": ["x"]}]}, "m": {"M": {"b": {"BOOL": true}}},
                        "n": {"N": "1.50"}
                    },
                    "SequenceNumber": "4500", "SizeBytes": 400, "StreamViewType": "NEW_AND_OLD_IMAGES"
                },
                "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
            })
        );
        // A fractional time keeps its fraction; no identity, no userIdentity.
        let r = Record::builder()
            .event_name(OperationType::Modify)
            .dynamodb(StreamRecord::builder().approximate_creation_date_time(DateTime::from_millis(1500)).build())
            .build();
        let l = lambda_record(&r, arn, "us-east-1");
        assert_eq!(l["dynamodb"]["ApproximateCreationDateTime"], json!(1.5));
        assert_eq!(l["awsRegion"], "us-east-1");
        assert!(l.get("userIdentity").is_none());
    }

    #[test]
    fn the_filter_is_the_templates() {
        assert!(passes_filter(&bucket(1)));
        assert!(passes_filter(&rec(1, "REMOVE", "ns/AUDIT#u", "#AUDIT#x")));
        assert!(passes_filter(&rec(1, "REMOVE", "ns/AUDIT#u", "#AUDIT#ns2#x")));
        assert!(!passes_filter(&rec(1, "INSERT", "ns/BUCKET#e#r#0", "#STATE")));
        assert!(!passes_filter(&rec(1, "MODIFY", "ns/ENTITY#e", "#CONFIG")));
        assert!(!passes_filter(&rec(1, "REMOVE", "ns/BUCKET#e#r#0", "#STATE")));
        assert!(!passes_filter(&rec(1, "MODIFY", CHECKPOINT_PK, "#CHECKPOINT#x")));
        // The template's patterns are these two (the test reads the file).
        let template = include_str!("../../deploy/template.yaml");
        assert!(template.contains(r##"'{"eventName":["MODIFY"],"dynamodb":{"NewImage":{"SK":{"S":["#STATE"]}}}}'"##));
        assert!(template
            .contains(r##"'{"eventName":["REMOVE"],"dynamodb":{"Keys":{"SK":{"S":[{"prefix":"#AUDIT#"}]}}}}'"##));
    }

    #[test]
    fn children_wait_for_their_parents() {
        let s =
            |id: &str, parent: Option<&str>| ShardInfo { id: id.into(), parent: parent.map(Into::into), closed: false };
        let shards = vec![s("a", Some("gone")), s("b", Some("a")), s("c", Some("a")), s("d", Some("b")), s("e", None)];
        let ids = |done: &[&str], busy: &[&str]| -> Vec<String> {
            let done = done.iter().map(|x| x.to_string()).collect();
            let busy = busy.iter().map(|x| x.to_string()).collect();
            ready_shards(&shards, &done, &busy).into_iter().map(|s| s.id.clone()).collect()
        };
        assert_eq!(ids(&[], &[]), ["a", "e"], "a parent no longer listed is done");
        assert_eq!(ids(&[], &["a"]), ["e"]);
        assert_eq!(ids(&["a"], &[]), ["b", "c", "e"], "a split's children start together");
        assert_eq!(ids(&["a", "b", "c", "e"], &[]), ["d"]);
        assert!(ids(&["a", "b", "c", "d", "e"], &[]).is_empty());
    }

    #[test]
    fn batches_are_lambda_shaped() {
        let t0 = Instant::now();
        let w = Duration::from_secs(5);
        let mut p = Pending::new();
        assert!(!p.ready(t0, 3, w, true), "nothing waits");
        p.push(bucket(1), t0);
        assert!(!p.ready(t0, 3, w, false));
        assert!(p.ready(t0 + w, 3, w, false), "the window has passed");
        assert!(p.ready(t0, 3, w, true), "flushed");
        assert_eq!(p.wait_left(t0 + Duration::from_secs(2), w), Some(Duration::from_secs(3)));
        p.push(rec(2, "INSERT", "ns/BUCKET#e#r#0", "#STATE"), t0);
        p.push(bucket(3), t0);
        p.push(bucket(4), t0);
        assert!(p.ready(t0, 3, w, false), "a full batch");
        let b = p.batch(3);
        assert_eq!(b.iter().map(record_seq).collect::<Vec<_>>(), ["1", "3", "4"], "the INSERT is filtered out");
        p.push(bucket(5), t0);
        p.push(rec(6, "MODIFY", "ns/ENTITY#e", "#CONFIG"), t0);
        // The whole batch handled; record 5 still waits: the position is 4.
        assert_eq!(p.handled(3).as_deref(), Some("4"));
        assert_eq!(p.len(), 1);
        // Record 5 handled: nothing waits, the position passes the filtered 6.
        assert_eq!(p.handled(1).as_deref(), Some("6"));
        assert!(p.is_empty() && !p.ready(t0 + w, 1, w, true));
        // Only filtered records of others: the position moves without a batch.
        p.push(rec(7, "INSERT", "x", "y"), t0);
        assert_eq!(p.handled(0).as_deref(), Some("7"));
        // Only the checkpoint item's own records: it does not move, so writing
        // the checkpoint never feeds itself.
        p.push(rec(8, "MODIFY", CHECKPOINT_PK, "#CHECKPOINT#l"), t0);
        assert_eq!(p.handled(0), None);
        assert_eq!(p.read_to(), Some("8"));
    }

    #[test]
    fn records_handed_back_are_not_taken_again() {
        let t0 = Instant::now();
        let mut p = Pending::new();
        assert!(p.push(bucket(1), t0) && p.push(bucket(2), t0));
        // A page repeating what was read (duplicate sequence numbers of an
        // emulator): nothing is taken, so the reader sees no progress.
        assert!(!p.push(bucket(2), t0));
        assert!(!p.push(bucket(1), t0));
        assert_eq!(p.batch(10).iter().map(record_seq).collect::<Vec<_>>(), ["1", "2"]);
        assert!(p.push(bucket(3), t0));
        assert_eq!(p.read_to(), Some("3"));
    }

    #[test]
    fn a_partial_failure_resumes_at_the_failed_record() {
        let t0 = Instant::now();
        let mut p = Pending::new();
        for s in 1..=4 {
            p.push(bucket(s), t0);
        }
        let batch = p.batch(10);
        let response = json!({"batchItemFailures": [{"itemIdentifier": "3"}]});
        let k = resume_index(&batch, &response).unwrap();
        assert_eq!(k, 2);
        assert_eq!(p.handled(k).as_deref(), Some("2"));
        assert_eq!(p.batch(10).iter().map(record_seq).collect::<Vec<_>>(), ["3", "4"]);
        // The first record failed: the position stays.
        assert_eq!(p.handled(0), None);
        assert_eq!(resume_index(&batch, &json!({"batchItemFailures": []})), None);
        assert_eq!(resume_index(&batch, &json!({"batchItemFailures": [{"itemIdentifier": ""}]})), Some(0));
        assert_eq!(resume_index(&batch, &json!({"batchItemFailures": [{"itemIdentifier": "99"}]})), Some(0));
    }

    #[test]
    fn backoff_doubles_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn checkpoint_round_trip_and_errors() {
        let mut c = Checkpoint::new("arn:s");
        c.advance("a", "100");
        c.advance("a", "99");
        c.advance("b", "7");
        c.finish("b");
        let text = c.to_json();
        assert_eq!(
            text,
            r#"{"version":1,"stream_arn":"arn:s","shards":{"a":{"sequence_number":"100","finished":false},"b":{"sequence_number":"7","finished":true}}}"#
        );
        assert_eq!(Checkpoint::from_json(&text).unwrap(), c);
        assert_eq!(c.finished(), ["b".to_string()].into());
        for (bad, why) in [
            ("nope", "not JSON"),
            (r#"{"version":2,"stream_arn":"s","shards":{}}"#, "version is 2"),
            (r#"{"version":1,"shards":{}}"#, "no stream_arn"),
            (r#"{"version":1,"stream_arn":"s"}"#, "no shards"),
            (r#"{"version":1,"stream_arn":"s","shards":{"a":{"sequence_number":"x1","finished":false}}}"#, "shard a"),
            (r#"{"version":1,"stream_arn":"s","shards":{"a":{"sequence_number":null}}}"#, "finished is not"),
        ] {
            let e = Checkpoint::from_json(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn stream_arns() {
        assert_eq!(
            parse_stream_arn(
                "arn:aws:dynamodb:us-east-1:123456789012:table/rate-limits/stream/2026-01-01T00:00:00.000"
            )
            .unwrap(),
            ("rate-limits".to_string(), "2026-01-01T00:00:00.000".to_string())
        );
        assert!(parse_stream_arn("arn:aws:dynamodb:us-east-1:1:table/t").is_err());
        assert!(parse_stream_arn("table/t/stream/x").is_err());
    }
}
