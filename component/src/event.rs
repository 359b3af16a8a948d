//! The Lambda DynamoDB-stream event, read one record at a time (W3).
//!
//! serde_json validates the whole event; each record is built into a reusable
//! [`Arena`](crate::json::Arena) (only `eventName` and the `dynamodb` fields
//! the planner reads), handed to the caller, and forgotten before the next
//! one, so memory does not grow with the batch beyond the event text itself.
//! Images keep attribute order because several outputs (limit order, cloned
//! items, archive lines) follow it.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::json::{Arena, Keep, NodeSeed, Obj, Val};
use crate::plan::{PlanError, SyntaxError};

/// A DynamoDB item image in stream JSON form (attribute name -> AV object).
pub type Image<'t, 'a> = Obj<'t, 'a>;

/// Width to which sequence numbers are zero-padded so that string order is
/// numeric order (DynamoDB sequence numbers have at most 40 digits).
pub const SEQ_WIDTH: usize = 40;

/// A stream sequence number. Equality and order are numeric (on the padded
/// form), whatever leading zeros it was written with.
#[derive(Debug, Clone)]
pub struct Seq {
    padded: [u8; SEQ_WIDTH],
    raw_start: u8,
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
        let mut padded = [b'0'; SEQ_WIDTH];
        padded[SEQ_WIDTH - s.len()..].copy_from_slice(s.as_bytes());
        Ok(Seq { padded, raw_start: (SEQ_WIDTH - s.len()) as u8 })
    }

    /// Parse a stored, zero-padded watermark.
    pub fn parse_padded(s: &str) -> Option<Seq> {
        if s.len() != SEQ_WIDTH || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut padded = [b'0'; SEQ_WIDTH];
        padded.copy_from_slice(s.as_bytes());
        Some(Seq { padded, raw_start: 0 })
    }

    /// Zero-padded to 40 digits (what watermarks store).
    pub fn padded(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.padded).unwrap_or_default()
    }

    /// As delivered in the event.
    pub fn raw(&self) -> &str {
        &self.padded()[self.raw_start as usize..]
    }
}

/// One stream record with its commonly used parts looked up once. `'t` is
/// the life of the record's arena, `'a` that of the event text.
#[derive(Debug)]
pub struct Record<'t, 'a> {
    /// Index in `Records`.
    pub index: u32,
    /// `eventName`, when it is a string.
    pub event_name: Option<&'t str>,
    /// Sequence number: absent, or parsed; a malformed one makes the record invalid.
    pub seq: Option<Seq>,
    /// `dynamodb.ApproximateCreationDateTime` in epoch milliseconds.
    pub approx_ms: Option<i64>,
    /// `dynamodb.NewImage`.
    pub new_image: Option<Image<'t, 'a>>,
    /// `dynamodb.OldImage`.
    pub old_image: Option<Image<'t, 'a>>,
    /// `dynamodb.Keys`.
    pub keys: Option<Image<'t, 'a>>,
    /// Whether the record has a `dynamodb` object at all.
    pub has_dynamodb: bool,
    /// Set when the record's envelope is malformed; the record is then invalid.
    pub shape_error: Option<String>,
}

impl Record<'_, '_> {
    /// Raw sequence number, for outcomes and logs.
    pub fn seq_raw(&self) -> Option<String> {
        self.seq.as_ref().map(|s| s.raw().to_string())
    }
}

/// Receives the records of an event, in order.
pub trait Sink<'a> {
    /// One record; its arena is reused once this returns.
    fn record(&mut self, rec: &Record<'_, 'a>);
    /// The event repeats its `Records` key: what was received so far is
    /// replaced by the records that follow (a repeated JSON key's last value wins).
    fn restart(&mut self);
}

/// What the root of the event turned out to be.
enum Shape {
    Object,
    NotObject,
}

/// What the (last) `Records` value was.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordsShape {
    Absent,
    List,
    NotList,
}

/// Read the event, giving every record to `sink`; returns the record count.
/// Only a non-JSON text, a non-object root or a non-list `Records` fail the
/// whole batch (and then what the sink received must be discarded); a missing
/// or null `Records` is empty.
pub fn read<'a>(json: &'a str, sink: &mut dyn Sink<'a>) -> Result<u32, PlanError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let mut root = RootVisitor { sink, records: RecordsShape::Absent, count: 0, arena: Arena::default() };
    let shape = de.deserialize_any(&mut root).and_then(|s| de.end().map(|()| s));
    let shape = shape.map_err(|e| {
        PlanError::EventNotJson(SyntaxError {
            line: u32::try_from(e.line()).unwrap_or(u32::MAX),
            column: u32::try_from(e.column()).unwrap_or(u32::MAX),
            message: e.to_string(),
        })
    })?;
    match (shape, root.records) {
        (Shape::NotObject, _) => Err(PlanError::EventNotObject),
        (Shape::Object, RecordsShape::NotList) => Err(PlanError::RecordsNotList),
        (Shape::Object, _) => Ok(root.count),
    }
}

/// Every record mapped through `f`, in order (for tests, benches and tools).
pub fn map_records<'a, T>(json: &'a str, f: impl FnMut(&Record<'_, 'a>) -> T) -> Result<Vec<T>, PlanError> {
    struct Collect<F, T>(F, Vec<T>);
    impl<'a, T, F: FnMut(&Record<'_, 'a>) -> T> Sink<'a> for Collect<F, T> {
        fn record(&mut self, rec: &Record<'_, 'a>) {
            self.1.push((self.0)(rec));
        }
        fn restart(&mut self) {
            self.1.clear();
        }
    }
    let mut c = Collect(f, Vec::new());
    read(json, &mut c)?;
    Ok(c.1)
}

struct RootVisitor<'s, 'a> {
    sink: &'s mut dyn Sink<'a>,
    records: RecordsShape,
    count: u32,
    arena: Arena<'a>,
}

impl<'de> Visitor<'de> for &mut RootVisitor<'_, 'de> {
    type Value = Shape;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Lambda DynamoDB-stream event")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }

    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::NotObject)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "Records" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if self.records != RecordsShape::Absent {
                self.sink.restart();
                self.count = 0;
            }
            self.records = map.next_value_seed(RecordsSeed(&mut *self))?;
        }
        Ok(Shape::Object)
    }
}

/// The `Records` value.
struct RecordsSeed<'r, 's, 'a>(&'r mut RootVisitor<'s, 'a>);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_, 'de> {
    type Value = RecordsShape;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RecordsShape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_, 'de> {
    type Value = RecordsShape;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of stream records")
    }

    fn visit_unit<E>(self) -> Result<RecordsShape, E> {
        Ok(RecordsShape::Absent)
    }

    fn visit_bool<E>(self, _: bool) -> Result<RecordsShape, E> {
        Ok(RecordsShape::NotList)
    }

    fn visit_i64<E>(self, _: i64) -> Result<RecordsShape, E> {
        Ok(RecordsShape::NotList)
    }

    fn visit_u64<E>(self, _: u64) -> Result<RecordsShape, E> {
        Ok(RecordsShape::NotList)
    }

    fn visit_f64<E>(self, _: f64) -> Result<RecordsShape, E> {
        Ok(RecordsShape::NotList)
    }

    fn visit_str<E>(self, _: &str) -> Result<RecordsShape, E> {
        Ok(RecordsShape::NotList)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RecordsShape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(RecordsShape::NotList)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RecordsShape, A::Error> {
        let root = self.0;
        loop {
            root.arena.clear();
            let Some(node) = seq.next_element_seed(NodeSeed::new(&mut root.arena, Keep::Record))? else { break };
            let index = root.count;
            root.count = index.checked_add(1).ok_or_else(|| de::Error::custom("more than 2^32 records"))?;
            let rec = read_record(index, Val::root(&root.arena, &node));
            root.sink.record(&rec);
        }
        root.arena.clear();
        Ok(RecordsShape::List)
    }
}

fn read_record<'t, 'a>(index: u32, r: Val<'t, 'a>) -> Record<'t, 'a> {
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
    let Some(obj) = r.as_object() else {
        rec.shape_error = Some("record is not a JSON object".into());
        return rec;
    };
    rec.event_name = obj.get("eventName").and_then(Val::as_str);
    let ddb = match obj.get("dynamodb") {
        None => return rec,
        Some(v) if v.is_null() => return rec,
        Some(v) => match v.as_object() {
            Some(d) => d,
            None => {
                rec.shape_error = Some("dynamodb is not a JSON object".into());
                return rec;
            }
        },
    };
    rec.has_dynamodb = true;
    let mut errors: Vec<String> = Vec::new();
    match ddb.get("SequenceNumber") {
        None => {}
        Some(v) if v.is_null() => {}
        Some(v) => match v.as_str() {
            Some(s) => match Seq::parse(s) {
                Ok(s) => rec.seq = Some(s),
                Err(e) => errors.push(e),
            },
            None => errors.push("dynamodb.SequenceNumber is not a string".into()),
        },
    }
    match ddb.get("ApproximateCreationDateTime") {
        None => {}
        Some(v) if v.is_null() => {}
        Some(v) => match v.as_number() {
            Some(n) => {
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
            None => errors.push("dynamodb.ApproximateCreationDateTime is not a number".into()),
        },
    }
    for (name, slot) in [("NewImage", &mut rec.new_image), ("OldImage", &mut rec.old_image), ("Keys", &mut rec.keys)] {
        match ddb.get(name) {
            None => {}
            Some(v) if v.is_null() => {}
            Some(v) => match v.as_object() {
                Some(m) => *slot = Some(m),
                None => errors.push(format!("dynamodb.{name} is not a JSON object")),
            },
        }
    }
    if !errors.is_empty() {
        rec.shape_error = Some(errors.join("; "));
    }
    rec
}

/// The `S` string of attribute `name`, if present with that type.
pub fn get_s<'t>(img: Image<'t, '_>, name: &str) -> Option<&'t str> {
    img.get(name)?.as_object()?.get("S")?.as_str()
}

/// Like [`get_s`], with the event's lifetime (copied only if it had escapes).
pub fn get_s_cow<'a>(img: Image<'_, 'a>, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    img.get(name)?.as_object()?.get("S")?.as_cow()
}

/// The `N` string of attribute `name`, if present with that type.
pub fn get_n<'t>(img: Image<'t, '_>, name: &str) -> Option<&'t str> {
    img.get(name)?.as_object()?.get("N")?.as_str()
}

/// The `N` string of an attribute value.
pub fn av_n<'t>(av: Val<'t, '_>) -> Option<&'t str> {
    av.as_object()?.get("N")?.as_str()
}

/// Python `int()` of a DynamoDB number, as i128: plain digits with an optional `-`. Every other
/// number (fraction, exponent) and every string outside DynamoDB's number grammar is an error.
pub fn parse_int(attr: &str, s: &str) -> Result<i128, String> {
    // Fast path: plain decimal digits (what DynamoDB itself writes).
    let b = s.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if !digits.is_empty() && digits.len() <= 38 && digits.iter().all(u8::is_ascii_digit) {
        let mut v: i128 = 0;
        for &d in digits {
            v = v * 10 + i128::from(d - b'0');
        }
        return Ok(if digits.len() < b.len() { -v } else { v });
    }
    use crate::pyjson::{parse_number, Number, NumberError};
    match parse_number(s) {
        Ok(Number::Int(canon)) => canon.parse::<i128>().map_err(|_| format!("{attr}: {s:?} is out of range")),
        Ok(Number::Float(_)) | Err(NumberError::Syntax) => Err(format!("{attr}: {s:?} is not an integer")),
        Err(e) => Err(format!("{attr}: {s:?} is not a DynamoDB number ({e})")),
    }
}

/// Compact DynamoDB JSON of an AV (as it appears in the stream).
pub fn av_json(v: &serde_json::Value) -> String {
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

    fn count(json: &str) -> Result<usize, PlanError> {
        map_records(json, |_| ()).map(|v| v.len())
    }

    #[test]
    fn event_level_errors_fail_the_batch_only_for_unusable_roots() {
        assert!(
            matches!(count("nope"), Err(PlanError::EventNotJson(e)) if e.message.starts_with("expected") && e.line == 1)
        );
        assert!(count(r#"{"Records": []} x"#).unwrap_err().to_string().contains("trailing characters"));
        assert!(count(r#"{"Records": [{"a": 1,}]}"#).is_err(), "syntax errors inside records fail the batch");
        assert_eq!(count(r#"{"Records": [{"a": 1e999}]}"#).unwrap(), 1, "fields the planner never reads: syntax only");
        let huge = r#"{"Records": [{"dynamodb": {"NewImage": {"x": 1e999}}}]}"#;
        assert!(count(huge).unwrap_err().to_string().contains("number out of range"), "fields it reads: values too");
        assert_eq!(count("[]").unwrap_err(), PlanError::EventNotObject);
        assert_eq!(count("7").unwrap_err(), PlanError::EventNotObject);
        assert_eq!(count(r#"{"Records": 3}"#).unwrap_err(), PlanError::RecordsNotList);
        assert_eq!(count(r#"{"Records": {"a": [1]}}"#).unwrap_err(), PlanError::RecordsNotList);
        assert_eq!(count("{}").unwrap(), 0);
        assert_eq!(count(r#"{"Records": null}"#).unwrap(), 0);
        assert_eq!(count(r#"{"Records": [1, 2], "Records": [3]}"#).unwrap(), 1, "the last Records wins");
        assert!(count(r#"{"Records": [1, 2], "Records": "x"}"#).is_err());
        let deep = format!("{{\"Records\": [{}{}]}}", "[".repeat(200), "]".repeat(200));
        assert!(
            count(&deep).unwrap_err().to_string().contains("recursion limit"),
            "deep nesting is an error, not a crash"
        );
    }

    #[test]
    fn errors_match_serde_json_word_for_word() {
        for text in ["", "{", r#"{"Records": [}"#, r#"{"Records": [{"x": tru}]}"#, "{\"a\":\"\\q\"}", "{} {}"] {
            let ours = count(text).unwrap_err();
            let theirs = serde_json::from_str::<serde_json::Value>(text).unwrap_err();
            assert_eq!(ours.to_string(), format!("event is not valid JSON: {theirs}"), "{text:?}");
            let PlanError::EventNotJson(e) = ours else { panic!("{text:?}: {ours:?}") };
            assert_eq!((e.line as usize, e.column as usize), (theirs.line(), theirs.column()), "{text:?}");
        }
    }

    #[test]
    fn record_shape_errors_are_per_record() {
        let json = r#"{"Records": [1, {"dynamodb": "invalid"}, {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "x1"}},
                {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "12", "ApproximateCreationDateTime": 1704067200.5,
                 "NewImage": {"PK": {"S": "a"}}}}]}"#;
        let recs = map_records(json, |r| {
            let new = r.new_image.map(|n| (get_s(n, "PK").map(str::to_string), get_n(n, "PK").map(str::to_string)));
            (r.index, r.shape_error.clone(), r.approx_ms, new)
        })
        .unwrap();
        assert!(recs[0].1.as_deref().unwrap().contains("not a JSON object"));
        assert!(recs[1].1.as_deref().unwrap().contains("dynamodb"));
        assert!(recs[2].1.as_deref().unwrap().contains("SequenceNumber"));
        assert!(recs[3].1.is_none());
        assert_eq!(recs[3].0, 3);
        assert_eq!(recs[3].2, Some(1_704_067_200_500));
        assert_eq!(recs[3].3, Some((Some("a".to_string()), None)));
    }

    #[test]
    fn ints_follow_python_int() {
        assert!(parse_int("x", "1.5").unwrap_err().contains("not an integer"));
        assert!(parse_int("x", "1E+2").unwrap_err().contains("not an integer"));
        for not_dynamodb in [" -12 ", "1_000", "+5", "١٢", ""] {
            assert!(parse_int("x", not_dynamodb).unwrap_err().contains("not an integer"), "{not_dynamodb:?}");
        }
        assert!(parse_int("x", &"9".repeat(39)).unwrap_err().contains("38 significant digits"));
        let big = format!("1{}", "0".repeat(60));
        assert!(parse_int("x", &big).unwrap_err().contains("out of range"), "a DynamoDB number beyond i128");
        assert_eq!(parse_int("x", "007").unwrap(), 7, "the fast path agrees with Python int()");
        assert_eq!(parse_int("x", "-0").unwrap(), 0);
        assert_eq!(parse_int("x", &"9".repeat(38)).unwrap(), 10i128.pow(38) - 1);
        assert_eq!(
            parse_int("x", &format!("-000{}", "1".repeat(38))).unwrap(),
            -"1".repeat(38).parse::<i128>().unwrap()
        );
        assert!(parse_int("x", "-").is_err());
    }
}
