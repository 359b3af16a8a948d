//! Audit archival (docs/specification.md#archive): deleted audit items become gzip NDJSON objects.
//!
//! Kept: the line content and bytes (field order, DynamoDB-JSON conversion,
//! Python `json.dumps` compact ASCII output, trailing newline), content type and
//! encoding, the `audit/year=/month=/day=` layout.
//! Fixed:
//! * W13: one object per UTC day; timestamps with offsets are converted to UTC.
//! * W14: the key is
//!   `audit/year=YYYY/month=MM/day=DD/audit-{first_seq}-{last_seq}-{crc32}.jsonl.gz`,
//!   from the events inside only (never the request id or the clock): the
//!   lowest and highest sequence numbers, and the CRC-32 (8 lowercase hex
//!   digits) of the uncompressed NDJSON. An identical retry overwrites the same
//!   object with the same bytes (gzip MTIME is 0); a retry that holds another
//!   set of events between the same two sequence numbers (batches split
//!   differently, another ParallelizationFactor) gets its own key instead of
//!   overwriting a fuller object.
//! * W15: namespaced (`{ns}/AUDIT#…`) and legacy (`AUDIT#…`) keys are archived.
//! * Nothing is dropped: an item without `action` is archived (warning); a number
//!   that does not parse is kept verbatim as its DynamoDB JSON (warning); an item
//!   without `event_id` gets the id from its sort key (`#AUDIT#{id}`).
//! * The partition of an event whose `timestamp` does not parse comes from the
//!   record's `ApproximateCreationDateTime`, and only without that from `now`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::event::{get_s, Record, Seq};
use crate::plan::{
    Counters, Log, LogEntry, LogLevel, OnConditionFailure, Operation, PlanError, Purpose, PutObject, Write,
};
use crate::pyjson::{crc32, from_dynamo_av, gzip, write_json, PyValue};
use crate::window::{from_epoch_ms, parse_iso_to_utc_date};

/// Content type of archive objects.
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// Content encoding of archive objects.
pub const CONTENT_ENCODING: &str = "gzip";

/// One audit event extracted from a REMOVE record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Record index.
    pub index: u32,
    /// Sequence number.
    pub seq: Seq,
    /// The NDJSON line, without newline.
    pub line: String,
    /// UTC date of the partition.
    pub date: (i64, u32, u32),
}

/// Result of looking at a REMOVE record.
#[derive(Debug)]
pub enum Extracted {
    /// An audit event.
    Event(AuditEvent),
    /// Not an audit item.
    Skip(String),
    /// An audit deletion that cannot be archived.
    Invalid(String),
}

fn is_audit_pk(pk: &str) -> bool {
    let rest = pk.split_once('/').map_or(pk, |(_, r)| r);
    rest.starts_with("AUDIT#")
}

/// Extract the audit event of a REMOVE record (docs/specification.md#audit-lines).
/// `warnings` receive notable conversions for the log.
pub fn extract(rec: &Record, now_ms: i64, logs: &mut Vec<LogEntry>) -> Extracted {
    let pk = rec.old_image.and_then(|o| get_s(o, "PK")).or_else(|| rec.keys.and_then(|k| get_s(k, "PK"))).unwrap_or("");
    if !is_audit_pk(pk) {
        return match rec.old_image {
            Some(_) => Extracted::Skip("not an audit item".into()),
            None if pk.is_empty() => Extracted::Invalid("REMOVE record has neither OldImage nor Keys.PK".into()),
            None => Extracted::Skip("not an audit item".into()),
        };
    }
    let Some(old) = rec.old_image else {
        return Extracted::Invalid(format!("audit REMOVE of {pk:?} has no OldImage; the row cannot be archived"));
    };
    // Audit rows are few; convert the image to a plain map once.
    let old = &old.to_map();
    let Some(seq) = rec.seq.clone() else {
        return Extracted::Invalid("audit record has no dynamodb.SequenceNumber".into());
    };
    let mut warnings = Vec::new();
    let line = match build_line(old, &mut warnings) {
        Ok(l) => l,
        Err(e) => return Extracted::Invalid(format!("audit item {pk:?}: {e}")),
    };
    if !matches!(old.get("action").and_then(|a| a.get("S")), Some(Value::String(_))) {
        Log::new(logs, LogLevel::Warning, "Audit record missing action field; archived without it")
            .s("pk", pk)
            .s("sequence_number", seq.raw());
    }
    for w in warnings {
        Log::new(logs, LogLevel::Warning, "Audit value kept verbatim")
            .s("pk", pk)
            .s("sequence_number", seq.raw())
            .s("detail", &w);
    }
    let ts = map_s(old, "timestamp");
    let date = match ts.and_then(parse_iso_to_utc_date) {
        Some(d) => d,
        None => {
            let (ms, source) = match rec.approx_ms {
                Some(ms) => (ms, "ApproximateCreationDateTime"),
                None => (now_ms, "now"),
            };
            let dt = from_epoch_ms(ms);
            Log::new(logs, LogLevel::Warning, "Invalid timestamp, using record time")
                .s("timestamp", ts.unwrap_or(""))
                .s("source", source)
                .s("sequence_number", seq.raw());
            (dt.year, dt.month, dt.day)
        }
    };
    Extracted::Event(AuditEvent { index: rec.index, seq, line, date })
}

/// Every REMOVE record of an event that extracts as an audit event, in order
/// (the others are left out; their logs go to `logs`): for tests, benches and
/// tools that look at archiving on its own.
pub fn audit_events(event_json: &str, now_ms: i64, logs: &mut Vec<LogEntry>) -> Result<Vec<AuditEvent>, PlanError> {
    let all = crate::event::map_records(event_json, |r| match r.event_name {
        Some("REMOVE") => match extract(r, now_ms, logs) {
            Extracted::Event(e) => Some(e),
            _ => None,
        },
        _ => None,
    })?;
    Ok(all.into_iter().flatten().collect())
}

/// The `S` string of attribute `name` of a plain map.
fn map_s<'m>(img: &'m Map<String, Value>, name: &str) -> Option<&'m str> {
    img.get(name)?.get("S")?.as_str()
}

fn build_line(old: &Map<String, Value>, warnings: &mut Vec<String>) -> Result<String, String> {
    let mut fields: Vec<(String, PyValue)> = Vec::with_capacity(7);
    for key in ["event_id", "entity_id", "action", "timestamp", "principal", "resource"] {
        match old.get(key) {
            Some(av) => {
                fields.push((key.to_string(), from_dynamo_av(av, warnings).map_err(|e| format!("{key}: {e}"))?))
            }
            None if key == "event_id" => {
                if let Some(id) = map_s(old, "SK").and_then(|sk| sk.strip_prefix("#AUDIT#")) {
                    fields.push((key.to_string(), PyValue::Str(id.to_string())));
                }
            }
            None => {}
        }
    }
    let details = match old.get("details").and_then(|d| d.as_object()).and_then(|d| d.get("M")) {
        Some(m) => from_dynamo_av(&serde_json::json!({ "M": m }), warnings).map_err(|e| format!("details: {e}"))?,
        None => PyValue::Map(Vec::new()),
    };
    fields.push(("details".to_string(), details));
    let mut line = String::with_capacity(256);
    write_json(&mut line, &PyValue::Map(fields));
    Ok(line)
}

/// Object key for a partition's events: their day, lowest and highest
/// sequence numbers, and the CRC-32 of their uncompressed NDJSON body.
pub fn object_key(date: (i64, u32, u32), first: &Seq, last: &Seq, body: &[u8]) -> String {
    format!(
        "audit/year={:04}/month={:02}/day={:02}/audit-{}-{}-{:08x}.jsonl.gz",
        date.0,
        date.1,
        date.2,
        first.raw(),
        last.raw(),
        crc32(body)
    )
}

/// The uncompressed NDJSON body of some events.
pub fn ndjson_body(events: &[&AuditEvent]) -> Vec<u8> {
    let mut body = String::with_capacity(events.iter().map(|e| e.line.len() + 1).sum());
    for e in events {
        body.push_str(&e.line);
        body.push('\n');
    }
    body.into_bytes()
}

/// Plan one PutObject per UTC day.
pub fn plan(
    events: &[AuditEvent],
    bucket: &str,
    writes: &mut Vec<Write>,
    logs: &mut Vec<LogEntry>,
    counters: &mut Counters,
) {
    let mut by_day: BTreeMap<(i64, u32, u32), Vec<&AuditEvent>> = BTreeMap::new();
    for e in events {
        by_day.entry(e.date).or_default().push(e);
    }
    for (date, evs) in by_day {
        let (Some(first), Some(last)) = (evs.iter().map(|e| &e.seq).min(), evs.iter().map(|e| &e.seq).max()) else {
            continue;
        };
        let raw = ndjson_body(&evs);
        let key = object_key(date, first, last, &raw);
        let body = gzip(&raw);
        Log::new(logs, LogLevel::Info, "Archive object planned")
            .s("bucket", bucket)
            .s("key", &key)
            .n("events_count", evs.len())
            .n("size_bytes", body.len());
        let (mut applied, mut failed) = (Vec::new(), Vec::new());
        Log::new(&mut applied, LogLevel::Info, "S3 object created")
            .s("bucket", bucket)
            .s("key", &key)
            .n("events_count", evs.len())
            .n("size_bytes", body.len());
        Log::new(&mut failed, LogLevel::Error, "Error writing to S3").s("bucket", bucket).s("key", &key);
        counters.archive_objects += 1;
        counters.archived_events += evs.len() as u32;
        writes.push(
            Write::new(
                Purpose::Archive,
                Operation::PutObject(PutObject {
                    bucket: bucket.to_string(),
                    key,
                    body,
                    content_type: CONTENT_TYPE.into(),
                    content_encoding: CONTENT_ENCODING.into(),
                }),
                OnConditionFailure::Ignore,
                evs.iter().map(|e| e.index).collect(),
            )
            .with_logs(|a, f| {
                *a = applied;
                *f = failed;
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::map_records;
    use serde_json::json;

    fn audit_remove(seq: &str, old: serde_json::Value) -> serde_json::Value {
        json!({"eventName": "REMOVE", "dynamodb": {"SequenceNumber": seq, "ApproximateCreationDateTime": 1705363200,
               "OldImage": old}})
    }

    fn audit_image(id: &str, ts: &str) -> serde_json::Value {
        json!({"PK": {"S": "default/AUDIT#user-1"}, "SK": {"S": format!("#AUDIT#{id}")},
               "event_id": {"S": id}, "entity_id": {"S": "user-1"}, "action": {"S": "limits_set"},
               "timestamp": {"S": ts}, "principal": {"NULL": true},
               "details": {"M": {"z": {"N": "1.5"}, "a": {"SS": ["x", "y"]}, "n": {"NULL": true},
                                  "b": {"BOOL": false}, "l": {"L": [{"N": "1E+2"}, {"S": "é"}]}}},
               "ttl": {"N": "1"}, "GSI4PK": {"S": "default"}})
    }

    fn extract_all(records: Vec<serde_json::Value>) -> (Vec<Extracted>, Vec<LogEntry>) {
        let text = json!({ "Records": records }).to_string();
        let mut logs = Vec::new();
        let out = map_records(&text, |r| extract(r, 0, &mut logs)).unwrap();
        (out, logs)
    }

    #[test]
    fn line_bytes_match_spec_7_4_example() {
        let (out, _) = extract_all(vec![audit_remove("1", audit_image("01HX", "2024-01-15T14:30:00Z"))]);
        let Extracted::Event(e) = &out[0] else { panic!("{out:?}") };
        assert_eq!(
            e.line,
            r#"{"event_id":"01HX","entity_id":"user-1","action":"limits_set","timestamp":"2024-01-15T14:30:00Z","principal":null,"details":{"z":1.5,"a":{"SS":["x","y"]},"n":null,"b":false,"l":[100.0,"\u00e9"]}}"#
        );
        assert_eq!(e.date, (2024, 1, 15));
    }

    #[test]
    fn non_audit_and_malformed_removes() {
        let bucket = json!({"PK": {"S": "default/ENTITY#x"}, "SK": {"S": "#BUCKET#r"}});
        let (out, _) = extract_all(vec![
            audit_remove("1", bucket),
            json!({"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "2", "Keys": {"PK": {"S": "ns/AUDIT#x"}}}}),
            json!({"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "3"}}),
            audit_remove("4", json!({"PK": {"S": "ns/AUDIT#x"}, "details": {"M": {"l": {"L": 5}}}})),
        ]);
        assert!(matches!(&out[0], Extracted::Skip(r) if r == "not an audit item"));
        assert!(matches!(&out[1], Extracted::Invalid(r) if r.contains("no OldImage")));
        assert!(matches!(&out[2], Extracted::Invalid(r) if r.contains("neither")));
        assert!(matches!(&out[3], Extracted::Invalid(r) if r.contains("details")), "{:?}", out[3]);
    }

    #[test]
    fn legacy_keys_missing_action_and_bad_numbers_are_archived_with_warnings() {
        let mut img = audit_image("01HY", "2024-01-15T23:30:00-05:00");
        img["PK"] = json!({"S": "AUDIT#user-1"});
        img.as_object_mut().unwrap().remove("action");
        img.as_object_mut().unwrap().remove("event_id");
        img["details"] = json!({"M": {"bad": {"N": "1.2.3"}}});
        let (out, logs) = extract_all(vec![audit_remove("9", img)]);
        let Extracted::Event(e) = &out[0] else { panic!("{out:?}") };
        assert!(e.line.starts_with(r#"{"event_id":"01HY","entity_id":"user-1","timestamp":"#), "{}", e.line);
        assert!(e.line.ends_with(r#""details":{"bad":{"N":"1.2.3"}}}"#), "{}", e.line);
        assert_eq!(e.date, (2024, 1, 16), "UTC date, W13");
        let msgs: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
        assert!(msgs.contains(&"Audit record missing action field; archived without it"));
        assert!(msgs.contains(&"Audit value kept verbatim"));
    }

    #[test]
    fn unparsable_timestamp_uses_record_time() {
        let (out, logs) = extract_all(vec![audit_remove("5", audit_image("01HZ", "garbage"))]);
        let Extracted::Event(e) = &out[0] else { panic!() };
        assert_eq!(e.date, (2024, 1, 16));
        assert!(logs.iter().any(|l| l.message == "Invalid timestamp, using record time"));
    }

    #[test]
    fn one_object_per_utc_day_with_stable_keys_w13_w14() {
        let (out, _) = extract_all(vec![
            audit_remove("10", audit_image("A", "2024-01-15T14:30:00Z")),
            audit_remove("11", audit_image("B", "2024-01-14T23:59:00Z")),
            audit_remove("12", audit_image("C", "2024-01-15T01:00:00Z")),
        ]);
        let events: Vec<AuditEvent> = out
            .into_iter()
            .map(|x| match x {
                Extracted::Event(e) => e,
                other => panic!("{other:?}"),
            })
            .collect();
        let (mut writes, mut logs, mut c) = (Vec::new(), Vec::new(), Counters::default());
        plan(&events, "bkt", &mut writes, &mut logs, &mut c);
        assert_eq!(writes.len(), 2);
        let keys: Vec<String> = writes
            .iter()
            .map(|w| match &w.operation {
                Operation::PutObject(o) => o.key.clone(),
                _ => panic!(),
            })
            .collect();
        assert!(keys[0].starts_with("audit/year=2024/month=01/day=14/audit-11-11-"), "{}", keys[0]);
        assert!(keys[1].starts_with("audit/year=2024/month=01/day=15/audit-10-12-"), "{}", keys[1]);
        assert_eq!(writes[1].records, vec![0, 2]);
        let Operation::PutObject(o) = &writes[1].operation else { panic!() };
        assert_eq!(o.content_type, "application/x-ndjson");
        assert_eq!(o.content_encoding, "gzip");
        let raw = miniz_oxide::inflate::decompress_to_vec(&o.body[10..o.body.len() - 8]).unwrap();
        assert_eq!(keys[1], format!("audit/year=2024/month=01/day=15/audit-10-12-{:08x}.jsonl.gz", crc32(&raw)));
        let text = String::from_utf8(raw).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with("}\n"));
        assert!(text.lines().next().unwrap().contains("\"event_id\":\"A\""));
        assert_eq!((c.archive_objects, c.archived_events), (2, 3));
    }

    #[test]
    fn keys_tell_apart_event_sets_between_the_same_sequence_numbers() {
        let date = (2024, 1, 15);
        let (first, last) = (Seq::parse("10").unwrap(), Seq::parse("12").unwrap());
        let all =
            object_key(date, &first, &last, b"{\"event_id\":\"A\"}\n{\"event_id\":\"B\"}\n{\"event_id\":\"C\"}\n");
        let fewer = object_key(date, &first, &last, b"{\"event_id\":\"A\"}\n{\"event_id\":\"C\"}\n");
        assert_ne!(all, fewer, "a retry with other events must not overwrite the fuller object");
        // Only the day, the sequence numbers and the body's CRC-32 (zlib.crc32 of those bytes):
        // an identical retry overwrites the same object.
        assert_eq!(all, "audit/year=2024/month=01/day=15/audit-10-12-551f0a62.jsonl.gz");
    }
}
