//! Dead letters: records that can never be applied, stored in S3 with their
//! reasons so the stream shard moves on (docs/specification.md#dead-letters).
//!
//! One gzip NDJSON object per call, under
//! `dead-letter/year=YYYY/month=MM/day=DD/` (the UTC day of the batch's
//! clock), named after the lowest and highest sequence numbers it holds and
//! the CRC-32 of its NDJSON, so a retried batch writes the same key with the
//! same bytes. One line per record, keys in this order:
//!
//! * `sequence_number`: the record's `dynamodb.SequenceNumber`, or null;
//! * `record_index`: its index in the batch's `Records`;
//! * `reason`: why it can never be applied;
//! * `request`: the failed request in canonical plan JSON, or null when the
//!   planner refused the record before planning any write for it;
//! * `record`: the whole stream record, as delivered (key order kept).

use serde_json::Value;

use crate::plan::{write_json_str, OnConditionFailure, Operation, Purpose, PutObject, Write};
use crate::pyjson::{crc32, gzip};
use crate::window::civil_from_days;

/// Content type of dead-letter objects.
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// Content encoding of dead-letter objects.
pub const CONTENT_ENCODING: &str = "gzip";

/// One record to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Index in the event's `Records`.
    pub index: u32,
    /// Its sequence number, if it has one.
    pub sequence_number: Option<String>,
    /// Why it can never be applied.
    pub reason: String,
    /// The failed request, canonical JSON, if a write was made for it.
    pub request: Option<String>,
}

/// The raw JSON of each record of the event, by index (`Value::Null` for an
/// event that cannot be read again, which a planned event never is).
fn records(event_json: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(event_json) {
        Ok(Value::Object(mut root)) => match root.remove("Records") {
            Some(Value::Array(records)) => records,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The NDJSON body for `entries` (in the given order).
pub fn ndjson(event_json: &str, entries: &[Entry]) -> Vec<u8> {
    let records = records(event_json);
    let mut out = String::new();
    for e in entries {
        out.push_str("{\"sequence_number\":");
        match &e.sequence_number {
            Some(s) => write_json_str(&mut out, s),
            None => out.push_str("null"),
        }
        out.push_str(&format!(",\"record_index\":{},\"reason\":", e.index));
        write_json_str(&mut out, &e.reason);
        out.push_str(",\"request\":");
        out.push_str(e.request.as_deref().unwrap_or("null"));
        out.push_str(",\"record\":");
        match records.get(e.index as usize) {
            Some(r) => out.push_str(&r.to_string()),
            None => out.push_str("null"),
        }
        out.push_str("}\n");
    }
    out.into_bytes()
}

/// The object key: the batch's UTC day, the lowest and highest sequence
/// numbers of the entries (their record indices as `i{n}` when none has
/// one), and the CRC-32 of the NDJSON body.
pub fn object_key(now_ms: i64, entries: &[Entry], body: &[u8]) -> String {
    let (year, month, day) = civil_from_days(now_ms.div_euclid(86_400_000));
    // Sequence numbers are decimal strings: shorter is smaller.
    let seqs = || entries.iter().filter_map(|e| e.sequence_number.as_deref()).map(|s| (s.len(), s));
    let (first, last) = match (seqs().min(), seqs().max()) {
        (Some((_, a)), Some((_, b))) => (a.to_string(), b.to_string()),
        _ => {
            let first = entries.iter().map(|e| e.index).min().unwrap_or(0);
            let last = entries.iter().map(|e| e.index).max().unwrap_or(0);
            (format!("i{first}"), format!("i{last}"))
        }
    };
    format!(
        "dead-letter/year={year:04}/month={month:02}/day={day:02}/dead-letter-{first}-{last}-{:08x}.jsonl.gz",
        crc32(body)
    )
}

/// The dead-letter write for `entries` (sorted by record index, one per
/// record: the first reason given for a record wins), or `None` when there
/// is nothing to store. The write is `required`: if it fails, its records
/// fail and the stream delivers them again.
pub fn write(event_json: &str, now_ms: i64, bucket: &str, entries: &[Entry], id: u32) -> Option<Write> {
    let mut entries: Vec<Entry> = entries.to_vec();
    entries.sort_by_key(|e| e.index);
    entries.dedup_by_key(|e| e.index);
    if entries.is_empty() {
        return None;
    }
    let raw = ndjson(event_json, &entries);
    let key = object_key(now_ms, &entries, &raw);
    let records: Vec<u32> = entries.iter().map(|e| e.index).collect();
    let count = records.len();
    let mut w = Write::new(
        Purpose::DeadLetter,
        Operation::PutObject(PutObject {
            bucket: bucket.to_string(),
            key: key.clone(),
            body: gzip(&raw),
            content_type: CONTENT_TYPE.into(),
            content_encoding: CONTENT_ENCODING.into(),
        }),
        OnConditionFailure::Ignore,
        records,
    )
    .with_logs(|applied, failed| {
        crate::plan::Log::new(applied, crate::plan::LogLevel::Error, "Records sent to the dead letter")
            .s("bucket", bucket)
            .s("key", &key)
            .n("records", count);
        crate::plan::Log::new(failed, crate::plan::LogLevel::Error, "Error writing the dead letter")
            .s("bucket", bucket)
            .s("key", &key)
            .n("records", count);
    });
    w.id = id;
    w.target = w.describe_target();
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"Records":[{"eventName":"MODIFY","dynamodb":{"SequenceNumber":"200","z":1,"a":2}},{"eventName":"X"},{"eventName":"REMOVE","dynamodb":{"SequenceNumber":"100"}}]}"#;

    fn entry(index: u32, seq: Option<&str>, reason: &str) -> Entry {
        Entry { index, sequence_number: seq.map(str::to_string), reason: reason.into(), request: None }
    }

    #[test]
    fn lines_hold_the_whole_record_in_its_own_key_order() {
        let mut e = entry(0, Some("200"), "bad");
        e.request = Some("{\"type\":\"put-object\"}".into());
        let body = String::from_utf8(ndjson(EVENT, &[e, entry(1, None, "why \"x\"")])).unwrap();
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"sequence_number":"200","record_index":0,"reason":"bad","request":{"type":"put-object"},"record":{"eventName":"MODIFY","dynamodb":{"SequenceNumber":"200","z":1,"a":2}}}"#
        );
        assert_eq!(
            lines[1],
            r#"{"sequence_number":null,"record_index":1,"reason":"why \"x\"","request":null,"record":{"eventName":"X"}}"#
        );
        assert!(body.ends_with('\n'));
    }

    #[test]
    fn keys_are_deterministic_and_partitioned_by_the_batch_day() {
        let entries = [entry(0, Some("200"), "a"), entry(2, Some("100"), "b"), entry(1, None, "c")];
        let w = write(EVENT, 1_704_067_200_000, "dl", &entries, 7).unwrap();
        let Operation::PutObject(o) = &w.operation else { panic!("an object") };
        assert!(o.key.starts_with("dead-letter/year=2024/month=01/day=01/dead-letter-100-200-"), "{}", o.key);
        assert!(o.key.ends_with(".jsonl.gz"));
        assert_eq!(w.records, [0, 1, 2]);
        assert_eq!((w.id, w.purpose, w.failure_policy), (7, Purpose::DeadLetter, crate::plan::FailurePolicy::Required));
        assert_eq!(w.target, format!("s3://dl/{}", o.key));
        let again = write(EVENT, 1_704_067_200_000, "dl", &entries, 7).unwrap();
        assert_eq!(again, w, "a retried batch writes the same key and bytes");
        assert_eq!(write(EVENT, 0, "dl", &[], 0), None);
    }

    #[test]
    fn one_line_per_record_first_reason_wins() {
        let w = write(EVENT, 0, "dl", &[entry(1, None, "first"), entry(1, None, "second")], 0).unwrap();
        let Operation::PutObject(o) = &w.operation else { panic!("an object") };
        // Our gzip writes a 10-byte header without options and an 8-byte trailer.
        let raw = miniz_oxide::inflate::decompress_to_vec(&o.body[10..o.body.len() - 8]).unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains("\"reason\":\"first\""), "{text}");
    }
}
