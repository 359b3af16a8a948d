//! The Lambda DynamoDB-stream event: parsed once into records (W3).
//!
//! The event is read with an order-preserving map because several outputs
//! (limit order, cloned items, archive lines) follow image attribute order.

use serde_json::{Map, Value};

use crate::plan::PlanError;

/// A DynamoDB item image in stream JSON form (attribute name -> AV object).
pub type Image = Map<String, Value>;

/// Width to which sequence numbers are zero-padded so that string order is
/// numeric order (DynamoDB sequence numbers have at most 40 digits).
pub const SEQ_WIDTH: usize = 40;

/// A stream sequence number. Equality and order are numeric (on the padded
/// form), whatever leading zeros it was written with.
#[derive(Debug, Clone)]
pub struct Seq {
    padded: String,
    raw_start: usize,
}

impl PartialEq for Seq {
    fn eq(&self, other: &Self) -> bool {
        self.padded == other.padded
    }
}

impl Eq for Seq {}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Seq {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.padded.cmp(&other.padded)
    }
}

impl Seq {
    /// Parse a sequence number: 1 to 40 ASCII digits.
    pub fn parse(s: &str) -> Result<Seq, String> {
        if s.is_empty() || s.len() > SEQ_WIDTH || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("dynamodb.SequenceNumber {s:?} is not 1 to {SEQ_WIDTH} decimal digits"));
        }
        let mut padded = String::with_capacity(SEQ_WIDTH);
        for _ in s.len()..SEQ_WIDTH {
            padded.push('0');
        }
        padded.push_str(s);
        Ok(Seq { raw_start: SEQ_WIDTH - s.len(), padded })
    }

    /// Parse a stored, zero-padded watermark.
    pub fn parse_padded(s: &str) -> Option<Seq> {
        if s.len() != SEQ_WIDTH || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Seq { padded: s.to_string(), raw_start: 0 })
    }

    /// Zero-padded to 40 digits (what watermarks store).
    pub fn padded(&self) -> &str {
        &self.padded
    }

    /// As delivered in the event.
    pub fn raw(&self) -> &str {
        &self.padded[self.raw_start..]
    }
}

/// One stream record with its commonly used parts looked up once.
#[derive(Debug)]
pub struct Record<'a> {
    /// Index in `Records`.
    pub index: u32,
    /// `eventName`, when it is a string.
    pub event_name: Option<&'a str>,
    /// Sequence number: absent, or parsed; a malformed one makes the record invalid.
    pub seq: Option<Seq>,
    /// `dynamodb.ApproximateCreationDateTime` in epoch milliseconds.
    pub approx_ms: Option<i64>,
    /// `dynamodb.NewImage`.
    pub new_image: Option<&'a Image>,
    /// `dynamodb.OldImage`.
    pub old_image: Option<&'a Image>,
    /// `dynamodb.Keys`.
    pub keys: Option<&'a Image>,
    /// Whether the record has a `dynamodb` object at all.
    pub has_dynamodb: bool,
    /// Set when the record's envelope is malformed; the record is then invalid.
    pub shape_error: Option<String>,
}

impl Record<'_> {
    /// Raw sequence number, for outcomes and logs.
    pub fn seq_raw(&self) -> Option<String> {
        self.seq.as_ref().map(|s| s.raw().to_string())
    }
}

/// The parsed event: the JSON tree and its records.
#[derive(Debug)]
pub struct Event {
    root: Value,
}

impl Event {
    /// Parse the event JSON. Only a non-JSON text, a non-object root or a
    /// non-list `Records` fail the whole batch; a missing `Records` is empty.
    pub fn parse(json: &str) -> Result<Event, PlanError> {
        let root: Value =
            serde_json::from_str(json).map_err(|e| PlanError::BadEvent(format!("event is not valid JSON: {e}")))?;
        match &root {
            Value::Object(m) => match m.get("Records") {
                None | Some(Value::Array(_)) | Some(Value::Null) => {}
                Some(_) => return Err(PlanError::BadEvent("Records is not a list".into())),
            },
            _ => return Err(PlanError::BadEvent("event is not a JSON object".into())),
        }
        Ok(Event { root })
    }

    /// The records, envelope fields looked up.
    pub fn records(&self) -> Vec<Record<'_>> {
        let list = match self.root.get("Records") {
            Some(Value::Array(a)) => a.as_slice(),
            _ => &[],
        };
        list.iter().enumerate().map(|(i, r)| read_record(i as u32, r)).collect()
    }
}

fn read_record(index: u32, r: &Value) -> Record<'_> {
    let mut rec = Record {
        index,
        event_name: None,
        seq: None,
        approx_ms: None,
        new_image: None,
        old_image: None,
        keys: None,
        has_dynamodb: false,
        shape_error: None,
    };
    let obj = match r {
        Value::Object(o) => o,
        _ => {
            rec.shape_error = Some("record is not a JSON object".into());
            return rec;
        }
    };
    rec.event_name = obj.get("eventName").and_then(Value::as_str);
    let ddb = match obj.get("dynamodb") {
        None | Some(Value::Null) => return rec,
        Some(Value::Object(d)) => d,
        Some(_) => {
            rec.shape_error = Some("dynamodb is not a JSON object".into());
            return rec;
        }
    };
    rec.has_dynamodb = true;
    let mut errors: Vec<String> = Vec::new();
    match ddb.get("SequenceNumber") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => match Seq::parse(s) {
            Ok(s) => rec.seq = Some(s),
            Err(e) => errors.push(e),
        },
        Some(_) => errors.push("dynamodb.SequenceNumber is not a string".into()),
    }
    match ddb.get("ApproximateCreationDateTime") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            let ms = if let Some(i) = n.as_i64() {
                i.checked_mul(1000)
            } else {
                n.as_f64().filter(|f| f.is_finite() && f.abs() < 9.0e15).map(|f| (f * 1000.0).floor() as i64)
            };
            match ms {
                Some(ms) => rec.approx_ms = Some(ms),
                None => errors.push(format!("dynamodb.ApproximateCreationDateTime {n} is out of range")),
            }
        }
        Some(_) => errors.push("dynamodb.ApproximateCreationDateTime is not a number".into()),
    }
    for (name, slot) in [("NewImage", &mut rec.new_image), ("OldImage", &mut rec.old_image), ("Keys", &mut rec.keys)] {
        match ddb.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => *slot = Some(m),
            Some(_) => errors.push(format!("dynamodb.{name} is not a JSON object")),
        }
    }
    if !errors.is_empty() {
        rec.shape_error = Some(errors.join("; "));
    }
    rec
}

/// The `S` string of attribute `name`, if present with that type.
pub fn get_s<'a>(img: &'a Image, name: &str) -> Option<&'a str> {
    img.get(name)?.as_object()?.get("S")?.as_str()
}

/// The `N` string of attribute `name`, if present with that type.
pub fn get_n<'a>(img: &'a Image, name: &str) -> Option<&'a str> {
    img.get(name)?.as_object()?.get("N")?.as_str()
}

/// Python `int()` of a DynamoDB number, as i128.
pub fn parse_int(attr: &str, s: &str) -> Result<i128, String> {
    let canon = crate::pyjson::parse_python_int(s).ok_or_else(|| format!("{attr}: {s:?} is not an integer"))?;
    canon.parse::<i128>().map_err(|_| format!("{attr}: {s:?} is out of range"))
}

/// Compact DynamoDB JSON of an AV (as it appears in the stream).
pub fn av_json(v: &Value) -> String {
    // serde_json's compact writer never fails on a Value.
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_pads_and_orders_numerically() {
        let a = Seq::parse("99").unwrap();
        let b = Seq::parse("100").unwrap();
        assert!(a < b);
        assert_eq!(a.padded().len(), 40);
        assert_eq!(a.raw(), "99");
        assert!(Seq::parse("").is_err());
        assert!(Seq::parse("12a").is_err());
        assert!(Seq::parse(&"1".repeat(41)).is_err());
        assert_eq!(Seq::parse_padded(b.padded()).unwrap(), b, "a stored watermark equals the sequence number");
        assert!(Seq::parse_padded(b.padded()).unwrap() >= b);
    }

    #[test]
    fn event_level_errors_fail_the_batch_only_for_unusable_roots() {
        assert!(Event::parse("nope").is_err());
        assert!(Event::parse("[]").is_err());
        assert!(Event::parse(r#"{"Records": 3}"#).is_err());
        assert_eq!(Event::parse("{}").unwrap().records().len(), 0);
        assert_eq!(Event::parse(r#"{"Records": null}"#).unwrap().records().len(), 0);
    }

    #[test]
    fn record_shape_errors_are_per_record() {
        let ev = Event::parse(
            r#"{"Records": [1, {"dynamodb": "invalid"}, {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "x1"}},
                {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "12", "ApproximateCreationDateTime": 1704067200.5,
                 "NewImage": {"PK": {"S": "a"}}}}]}"#,
        )
        .unwrap();
        let recs = ev.records();
        assert!(recs[0].shape_error.as_deref().unwrap().contains("not a JSON object"));
        assert!(recs[1].shape_error.as_deref().unwrap().contains("dynamodb"));
        assert!(recs[2].shape_error.as_deref().unwrap().contains("SequenceNumber"));
        assert!(recs[3].shape_error.is_none());
        assert_eq!(recs[3].approx_ms, Some(1_704_067_200_500));
        assert_eq!(get_s(recs[3].new_image.unwrap(), "PK"), Some("a"));
        assert_eq!(get_n(recs[3].new_image.unwrap(), "PK"), None);
    }

    #[test]
    fn ints_follow_python_int() {
        assert_eq!(parse_int("x", " -12 ").unwrap(), -12);
        assert_eq!(parse_int("x", "1_000").unwrap(), 1000);
        assert!(parse_int("x", "1.5").unwrap_err().contains("not an integer"));
        assert!(parse_int("x", &"9".repeat(40)).unwrap_err().contains("out of range"));
    }
}
