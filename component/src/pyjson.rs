//! Python-compatible conversion and serialisation of audit events (docs/specification.md#audit-lines).
//!
//! The upstream archiver turns DynamoDB stream JSON into plain Python objects and writes them with
//! `json.dumps(obj, separators=(",", ":"))`, one event per line, into a gzip member. This module
//! reproduces the bytes of those lines exactly:
//!
//! * [`from_dynamo_av`] converts one DynamoDB attribute value the way the archiver does (`N` goes
//!   through Python's `int()` and then `float()`, unknown types are kept verbatim);
//! * [`write_json`] writes a [`PyValue`] with Python's compact separators, `ensure_ascii` escaping
//!   and `float.__repr__` number layout;
//! * [`gzip`] wraps a body in a deterministic gzip member.
//!
//! Everything here is total: no input makes these functions panic, and nothing depends on a clock
//! or on randomness, so the module builds and behaves the same on `wasm32-wasip2`.
//!
//! `N` values go through [`parse_number`] on their original text, which accepts DynamoDB's number
//! grammar only and is exact there. Known limits, all outside `N` values: [`from_plain_json`] sees
//! numbers as serde_json parsed them, so an integer beyond the `u64`/`i64` range becomes a float and
//! `-0` becomes `-0.0` (Python keeps the int and writes `0`). Without serde_json's
//! `float_roundtrip` feature its float parsing is not guaranteed to be correctly rounded either.

use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write as _;

/// A value as Python's json module sees it after the archiver converted DynamoDB JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// Python `None`, written as `null`.
    Null,
    /// Python `bool`, written as `true` / `false`.
    Bool(bool),
    /// Arbitrary-precision integer as canonical decimal text: optional '-', no leading zeros, "0" for zero (never "-0").
    Int(String),
    /// Python `float`, written with `float.__repr__` rules (see [`write_python_float`]).
    Float(f64),
    /// Python `str`, written with `ensure_ascii` escaping (see [`write_json_string`]).
    Str(String),
    /// Python `list`.
    List(Vec<PyValue>),
    /// Object with keys in insertion order.
    Map(Vec<(String, PyValue)>),
}

/// Convert one DynamoDB AttributeValue in stream JSON form (e.g. {"S":"x"}, {"N":"1.5"}, {"M":{...}}) as docs/specification.md#audit-lines describes.
/// `warnings` receives one human-readable line per notable event (unknown type kept verbatim; unparsable number kept verbatim).
/// Errors (Err(reason)) only for shapes Python would crash on and that we cannot keep verbatim: AV that is not a JSON object,
/// M whose value is not an object, L whose value is not an array, N whose value is not a string.
///
/// The type keys are checked in the order `S`, `N`, `BOOL`, `NULL`, `M`, `L`; the first one present
/// wins, whatever the order of the keys in the input object.
pub fn from_dynamo_av(av: &Value, warnings: &mut Vec<String>) -> Result<PyValue, String> {
    let obj = match av {
        Value::Object(obj) => obj,
        other => return Err(format!("attribute value is not a JSON object (found {})", json_kind(other))),
    };
    if let Some(s) = obj.get("S") {
        return Ok(from_plain_json(s));
    }
    if let Some(n) = obj.get("N") {
        let text = match n {
            Value::String(text) => text,
            other => return Err(format!("N value is not a string (found {})", json_kind(other))),
        };
        match parse_number(text) {
            Ok(Number::Int(int)) => return Ok(PyValue::Int(int)),
            Ok(Number::Float(float)) => return Ok(PyValue::Float(float)),
            Err(NumberError::Syntax) => warnings.push(format!("number {av} is not a number; kept verbatim")),
            Err(e) => warnings.push(format!("number {av} is not a DynamoDB number ({e}); kept verbatim")),
        }
        return Ok(from_plain_json(av));
    }
    if let Some(b) = obj.get("BOOL") {
        return Ok(from_plain_json(b));
    }
    if obj.contains_key("NULL") {
        return Ok(PyValue::Null);
    }
    if let Some(m) = obj.get("M") {
        let entries = match m {
            Value::Object(entries) => entries,
            other => return Err(format!("M value is not a JSON object (found {})", json_kind(other))),
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, item) in entries {
            out.push((key.clone(), from_dynamo_av(item, warnings)?));
        }
        return Ok(PyValue::Map(out));
    }
    if let Some(l) = obj.get("L") {
        let items = match l {
            Value::Array(items) => items,
            other => return Err(format!("L value is not a JSON array (found {})", json_kind(other))),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(from_dynamo_av(item, warnings)?);
        }
        return Ok(PyValue::List(out));
    }
    warnings.push(format!("Unknown DynamoDB type: {av}"));
    Ok(from_plain_json(av))
}

/// Short name of a JSON value's type, for error messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Convert a plain JSON value (serde_json) the way Python's json.loads would have produced it (ints -> Int, floats -> Float, ...).
///
/// Numbers that serde_json holds as `i64`/`u64` become [`PyValue::Int`]; all others become
/// [`PyValue::Float`] (so `1.0` stays a float). Object keys keep their order (serde_json's
/// `preserve_order` feature).
pub fn from_plain_json(v: &Value) -> PyValue {
    match v {
        Value::Null => PyValue::Null,
        Value::Bool(b) => PyValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                PyValue::Int(i.to_string())
            } else if let Some(u) = n.as_u64() {
                PyValue::Int(u.to_string())
            } else {
                PyValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => PyValue::Str(s.clone()),
        Value::Array(items) => PyValue::List(items.iter().map(from_plain_json).collect()),
        Value::Object(entries) => {
            PyValue::Map(entries.iter().map(|(k, item)| (k.clone(), from_plain_json(item))).collect())
        }
    }
}

/// A DynamoDB number as the archiver reads it: Python `int()` when that succeeds, else `float()`.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    /// Plain digits (`int()` succeeds), as canonical decimal text (see [`PyValue::Int`]).
    Int(String),
    /// A fraction or an exponent (`int()` raises): `float()`, correctly rounded.
    Float(f64),
}

/// Why a string is not a DynamoDB number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// Not `-?(d+(.d*)?|.d+)([eE][+-]?d+)?`.
    Syntax,
    /// More than 38 significant digits.
    Precision,
    /// A non-zero magnitude below 1E-130 or above 9.99…E+125.
    Range,
}

impl std::fmt::Display for NumberError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NumberError::Syntax => "not a number",
            NumberError::Precision => "more than 38 significant digits",
            NumberError::Range => "magnitude outside 1E-130 to 9.99E+125",
        })
    }
}

/// Read the text of a DynamoDB `N` value the way the archiver does (`int()`, then `float()`).
///
/// Only DynamoDB's number grammar is accepted: an optional `-`, digits with an optional `.`
/// fraction, an optional exponent `e`/`E` with an optional sign; at most 38 significant digits;
/// zero or a magnitude from 1E-130 to 9.99…E+125. The stream delivers numbers normalised, but any
/// spelling of that grammar gives what Python gives. Everything else (whitespace, `+`, `_`,
/// non-ASCII digits, `inf`, `nan`, …) is an error: no DynamoDB number looks like that. Within
/// the grammar `float()` never overflows or underflows, so Rust's correctly rounded parser gives
/// Python's value.
pub fn parse_number(s: &str) -> Result<Number, NumberError> {
    let b = s.as_bytes();
    let (negative, body) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let digits_from = |from: usize| body.get(from..).map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
    let int_len = digits_from(0);
    let mut end = int_len;
    let mut frac: &[u8] = &[];
    let has_point = body.get(end) == Some(&b'.');
    if has_point {
        let n = digits_from(end + 1);
        frac = body.get(end + 1..end + 1 + n).unwrap_or(&[]);
        end += 1 + n;
    }
    if int_len + frac.len() == 0 {
        return Err(NumberError::Syntax);
    }
    let has_exp = matches!(body.get(end), Some(b'e' | b'E'));
    let mut exp: i64 = 0;
    if has_exp {
        end += 1;
        let exp_negative = body.get(end) == Some(&b'-');
        if matches!(body.get(end), Some(b'+' | b'-')) {
            end += 1;
        }
        let n = digits_from(end);
        if n == 0 {
            return Err(NumberError::Syntax);
        }
        // Saturate: any exponent this large is out of range anyway.
        for &d in body.get(end..end + n).unwrap_or(&[]) {
            exp = (exp * 10 + i64::from(d - b'0')).min(1 << 40);
        }
        if exp_negative {
            exp = -exp;
        }
        end += n;
    }
    if end != body.len() {
        return Err(NumberError::Syntax);
    }
    let int = body.get(..int_len).unwrap_or(&[]);
    // Positions of the first and last non-zero digits in `int` followed by `frac`.
    let nonzero = |d: &u8| *d != b'0';
    let first = int.iter().position(nonzero).or_else(|| frac.iter().position(nonzero).map(|i| int_len + i));
    let last = frac.iter().rposition(nonzero).map(|i| int_len + i).or_else(|| int.iter().rposition(nonzero));
    if let (Some(first), Some(last)) = (first, last) {
        if last - first >= 38 {
            return Err(NumberError::Precision);
        }
        // Decimal exponent of the first significant digit.
        let adjusted = int_len as i64 - 1 - first as i64 + exp;
        if !(-130..=125).contains(&adjusted) {
            return Err(NumberError::Range);
        }
    }
    if has_point || has_exp {
        return s.parse::<f64>().map(Number::Float).map_err(|_| NumberError::Syntax);
    }
    let significant = int.iter().position(nonzero).and_then(|i| int.get(i..)).unwrap_or(&[]);
    let mut text = String::with_capacity(significant.len() + 1);
    if significant.is_empty() {
        text.push('0');
    } else {
        if negative {
            text.push('-');
        }
        text.extend(significant.iter().map(|&d| char::from(d)));
    }
    Ok(Number::Int(text))
}

/// Append `json.dumps(v, separators=(",", ":"), ensure_ascii=True)` of v.
///
/// [`PyValue::Int`] text is written as it is; keep it canonical.
pub fn write_json(out: &mut String, v: &PyValue) {
    match v {
        PyValue::Null => out.push_str("null"),
        PyValue::Bool(true) => out.push_str("true"),
        PyValue::Bool(false) => out.push_str("false"),
        PyValue::Int(text) => out.push_str(text),
        PyValue::Float(f) => write_python_float(out, *f),
        PyValue::Str(s) => write_json_string(out, s),
        PyValue::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        PyValue::Map(entries) => {
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

/// Fixed-size buffer that receives `{:e}` output without allocating.
struct StackBuf {
    buf: [u8; 64],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf { buf: [0; 64], len: 0 }
    }

    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.buf.get(..self.len)?).ok()
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(std::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Scientific text `d[.ddd]e[-]x` of a positive finite float with the digits Python's `repr` picks.
///
/// Both pick the shortest digit string that round-trips and, among those, the one nearest to the
/// exact binary value. They differ on exact ties: Rust's shortest mode rounds the last digit half
/// up, CPython's dtoa rounds half to even (926658374615191.25 is `...191.2` in Python). Rust's
/// fixed-precision mode is correctly rounded with ties to even, so the same number of digits in
/// that mode gives Python's choice whenever it still round-trips.
fn python_sci(a: f64) -> Option<StackBuf> {
    let mut shortest = StackBuf::new();
    write!(shortest, "{a:e}").ok()?;
    let shortest_text = shortest.as_str()?;
    let (mantissa, _) = shortest_text.split_once('e')?;
    let digits = mantissa.bytes().filter(u8::is_ascii_digit).count();
    let mut nearest = StackBuf::new();
    if write!(nearest, "{:.*e}", digits.saturating_sub(1), a).is_err() {
        return Some(shortest);
    }
    let use_nearest = match nearest.as_str() {
        Some(text) if text != shortest_text => text.parse::<f64>().map(f64::to_bits).ok() == Some(a.to_bits()),
        _ => false,
    };
    Some(if use_nearest { nearest } else { shortest })
}

/// Append Python's repr() of a float: shortest round-trip digits; fixed notation when the decimal exponent x is -4 <= x < 16
/// (always with a fractional part: "100.0", "1.5", "0.0001"); else "d[.ddd]e±XX" with sign and at least 2 exponent digits
/// ("1e+16", "1e-05", "1.5e+125"); "-0.0"; json.dumps spellings "Infinity", "-Infinity", "NaN".
pub fn write_python_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let chosen = python_sci(f.abs());
    let sci: Cow<'_, str> = match chosen.as_ref().and_then(StackBuf::as_str) {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(format!("{:e}", f.abs())),
    };
    let parsed = sci.split_once('e').and_then(|(mantissa, exp)| Some((mantissa, exp.parse::<i32>().ok()?)));
    let Some((mantissa, exp)) = parsed else {
        // Unreachable for finite non-zero values; keep Rust's text rather than panic.
        if f < 0.0 {
            out.push('-');
        }
        out.push_str(&sci);
        return;
    };
    let (lead, rest) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The significant digits, e.g. "15" for 1.5e2; `lead` is always one digit.
    let digits = Digits { lead, rest };
    if f < 0.0 {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            // Integer part: the first exp+1 digits, padded with zeros; then the rest or "0".
            let int_len = exp.unsigned_abs() as usize + 1;
            let n = digits.len();
            digits.push_range(out, 0, int_len.min(n));
            for _ in n..int_len {
                out.push('0');
            }
            out.push('.');
            if n > int_len {
                digits.push_range(out, int_len, n);
            } else {
                out.push('0');
            }
        } else {
            out.push_str("0.");
            for _ in 1..exp.unsigned_abs() {
                out.push('0');
            }
            digits.push_range(out, 0, digits.len());
        }
    } else {
        out.push_str(lead);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let magnitude = exp.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        let _ = write!(out, "{magnitude}");
    }
}

/// The significant digits of a float as Rust's `{:e}` splits them around the decimal point.
struct Digits<'a> {
    lead: &'a str,
    rest: &'a str,
}

impl Digits<'_> {
    fn len(&self) -> usize {
        self.lead.len() + self.rest.len()
    }

    /// Append digits `from..to` of the concatenation `lead + rest`.
    fn push_range(&self, out: &mut String, from: usize, to: usize) {
        let split = self.lead.len();
        if from < split {
            out.push_str(self.lead.get(from..to.min(split)).unwrap_or(""));
        }
        if to > split {
            let start = from.max(split) - split;
            out.push_str(self.rest.get(start..to - split).unwrap_or(""));
        }
    }
}

/// Append a JSON string literal with Python's ensure_ascii escaping: \" \\ \n \r \t \b \f short escapes; every other char below
/// U+0020 and every char from U+007F up as \uXXXX with lowercase hex; non-BMP chars as a surrogate pair of escapes; '/' unescaped.
pub fn write_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut run_start = 0;
    for (i, c) in s.char_indices() {
        if matches!(c, ' '..='~') && c != '"' && c != '\\' {
            continue;
        }
        out.push_str(s.get(run_start..i).unwrap_or(""));
        run_start = i + c.len_utf8();
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            _ => {
                let cp = u32::from(c);
                if cp >= 0x1_0000 {
                    let v = cp - 0x1_0000;
                    push_u_escape(out, 0xd800 | (v >> 10));
                    push_u_escape(out, 0xdc00 | (v & 0x3ff));
                } else {
                    push_u_escape(out, cp);
                }
            }
        }
    }
    out.push_str(s.get(run_start..).unwrap_or(""));
    out.push('"');
}

/// Append `\uXXXX` (lowercase hex) for a UTF-16 code unit.
fn push_u_escape(out: &mut String, unit: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[((unit >> shift) & 0xf) as usize]));
    }
}

/// One gzip member: raw deflate at level 9 (miniz_oxide::deflate::compress_to_vec), header 1f 8b 08, FLG 00, MTIME 0 (four zero
/// bytes: deterministic output, no clock), XFL 02, OS ff; trailer CRC-32 (IEEE, little-endian) and ISIZE (len mod 2^32, LE).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x02, 0xff];
    let deflated = miniz_oxide::deflate::compress_to_vec(data, 9);
    let mut out = Vec::with_capacity(HEADER.len() + deflated.len() + 8);
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    // ISIZE is the input length modulo 2^32: truncation is the intent.
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected, init/xorout 0xFFFFFFFF): the gzip trailer's checksum and the
/// one in archive object keys.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn conv(av: Value) -> (Result<PyValue, String>, Vec<String>) {
        let mut warnings = Vec::new();
        let result = from_dynamo_av(&av, &mut warnings);
        (result, warnings)
    }

    fn conv_ok(av: Value) -> PyValue {
        let (result, warnings) = conv(av);
        assert!(warnings.is_empty(), "unexpected warnings {warnings:?}");
        result.expect("conversion should succeed")
    }

    fn dumps(v: &PyValue) -> String {
        let mut out = String::new();
        write_json(&mut out, v);
        out
    }

    fn float_text(f: f64) -> String {
        let mut out = String::new();
        write_python_float(&mut out, f);
        out
    }

    fn string_text(s: &str) -> String {
        let mut out = String::new();
        write_json_string(&mut out, s);
        out
    }

    fn int(s: &str) -> PyValue {
        PyValue::Int(s.to_string())
    }

    fn text(s: &str) -> PyValue {
        PyValue::Str(s.to_string())
    }

    /// docs/specification.md#audit-lines: the fixed key order, keys only when present, details always.
    fn audit_event(old_image: &Value, warnings: &mut Vec<String>) -> PyValue {
        let mut entries = Vec::new();
        for key in ["event_id", "entity_id", "action", "timestamp", "principal", "resource"] {
            if let Some(av) = old_image.get(key) {
                entries.push((key.to_string(), from_dynamo_av(av, warnings).unwrap()));
            }
        }
        let details = match old_image.get("details") {
            Some(av) if av.get("M").is_some() => from_dynamo_av(av, warnings).unwrap(),
            _ => PyValue::Map(Vec::new()),
        };
        entries.push(("details".to_string(), details));
        PyValue::Map(entries)
    }

    // ---- conversion table (docs/specification.md#audit-lines) ----

    #[test]
    fn n_examples_from_spec() {
        assert_eq!(conv_ok(json!({"N": "42"})), int("42"));
        assert_eq!(conv_ok(json!({"N": "-0"})), int("0"));
        assert_eq!(conv_ok(json!({"N": "3.14"})), PyValue::Float(314.0 / 100.0));
        assert_eq!(conv_ok(json!({"N": "1.50"})), PyValue::Float(1.5));
        assert_eq!(conv_ok(json!({"N": "1E+2"})), PyValue::Float(100.0));
        assert_eq!(conv_ok(json!({"N": "0.0"})), PyValue::Float(0.0));
        let written: Vec<String> =
            ["42", "-0", "3.14", "1.50", "1E+2", "0.0"].iter().map(|n| dumps(&conv_ok(json!({ "N": n })))).collect();
        assert_eq!(written, ["42", "0", "3.14", "1.5", "100.0", "0.0"]);
    }

    #[test]
    fn n_38_digit_integer_stays_exact() {
        let n = "12345678901234567890123456789012345678";
        assert_eq!(conv_ok(json!({ "N": n })), int(n));
        let neg = "-99999999999999999999999999999999999999";
        assert_eq!(dumps(&conv_ok(json!({ "N": neg }))), neg);
        assert_eq!(dumps(&conv_ok(json!({"N": "0000012345678901234567890123456789012345678"}))), n);
    }

    #[test]
    fn n_long_fraction_loses_precision_like_f64() {
        assert_eq!(dumps(&conv_ok(json!({"N": "0.1234567890123456789012345678901234567"}))), "0.12345678901234568");
    }

    #[test]
    fn n_outside_dynamodb_grammar_is_kept_verbatim_with_warning() {
        for (n, reason) in [
            ("inf", None),
            ("-Infinity", None),
            ("nan", None),
            (" 12 ", None),
            ("+5", None),
            ("1_000", None),
            ("١٢", None),
            ("1e999", Some("magnitude outside 1E-130 to 9.99E+125")),
            ("1E-131", Some("magnitude outside 1E-130 to 9.99E+125")),
            ("1234567890123456789012345678901234567891", Some("more than 38 significant digits")),
        ] {
            let (result, warnings) = conv(json!({ "N": n }));
            assert_eq!(dumps(&result.unwrap()), format!("{{\"N\":{}}}", string_text(n)), "{n:?}");
            let detail = reason.map_or("is not a number".to_string(), |r| format!("is not a DynamoDB number ({r})"));
            assert_eq!(warnings, [format!("number {{\"N\":\"{n}\"}} {detail}; kept verbatim")], "{n:?}");
        }
    }

    #[test]
    fn n_unparsable_is_kept_verbatim_with_warning() {
        let (result, warnings) = conv(json!({"N": "1.2.3"}));
        assert_eq!(result.unwrap(), PyValue::Map(vec![("N".into(), text("1.2.3"))]));
        assert_eq!(warnings, [r#"number {"N":"1.2.3"} is not a number; kept verbatim"#]);
        let (result, warnings) = conv(json!({"N": ""}));
        assert_eq!(dumps(&result.unwrap()), r#"{"N":""}"#);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn s_bool_null() {
        assert_eq!(conv_ok(json!({"S": "hello"})), text("hello"));
        assert_eq!(conv_ok(json!({"S": ""})), text(""));
        assert_eq!(conv_ok(json!({"BOOL": true})), PyValue::Bool(true));
        assert_eq!(conv_ok(json!({"BOOL": false})), PyValue::Bool(false));
        assert_eq!(conv_ok(json!({"NULL": true})), PyValue::Null);
        assert_eq!(conv_ok(json!({"NULL": false})), PyValue::Null);
        assert_eq!(conv_ok(json!({"NULL": "whatever"})), PyValue::Null);
        // Odd payloads are copied as Python's json.loads would have produced them.
        assert_eq!(conv_ok(json!({"S": 5})), int("5"));
        assert_eq!(conv_ok(json!({"BOOL": "yes"})), text("yes"));
    }

    #[test]
    fn type_key_priority_is_s_n_bool_null_m_l() {
        assert_eq!(conv_ok(json!({"L": [], "N": "1", "S": "x"})), text("x"));
        assert_eq!(conv_ok(json!({"BOOL": true, "N": "1"})), int("1"));
        assert_eq!(conv_ok(json!({"NULL": true, "BOOL": true})), PyValue::Bool(true));
        assert_eq!(conv_ok(json!({"M": {}, "NULL": true})), PyValue::Null);
        assert_eq!(conv_ok(json!({"L": [], "M": {}})), PyValue::Map(vec![]));
        assert_eq!(conv_ok(json!({"SS": ["a"], "L": []})), PyValue::List(vec![]));
    }

    #[test]
    fn nested_map_and_list() {
        let v = conv_ok(json!({"M": {
            "z": {"N": "1"},
            "a": {"L": [{"S": "x"}, {"N": "2.5"}, {"BOOL": true}, {"NULL": true},
                        {"M": {"deep": {"L": [{"N": "100"}]}}}]},
            "m": {"M": {}}
        }}));
        assert_eq!(
            v,
            PyValue::Map(vec![
                ("z".into(), int("1")),
                (
                    "a".into(),
                    PyValue::List(vec![
                        text("x"),
                        PyValue::Float(2.5),
                        PyValue::Bool(true),
                        PyValue::Null,
                        PyValue::Map(vec![("deep".into(), PyValue::List(vec![int("100")]))]),
                    ])
                ),
                ("m".into(), PyValue::Map(vec![])),
            ])
        );
        assert_eq!(dumps(&v), r#"{"z":1,"a":["x",2.5,true,null,{"deep":[100]}],"m":{}}"#);
    }

    #[test]
    fn unknown_types_are_kept_verbatim_with_warning() {
        let cases = [
            (json!({"SS": ["x", "y"]}), r#"{"SS":["x","y"]}"#),
            (json!({"NS": ["1", "2"]}), r#"{"NS":["1","2"]}"#),
            (json!({"BS": ["AAE="]}), r#"{"BS":["AAE="]}"#),
            (json!({"B": "aGVsbG8="}), r#"{"B":"aGVsbG8="}"#),
            (json!({"UNKNOWN": "value"}), r#"{"UNKNOWN":"value"}"#),
            (json!({}), "{}"),
            (json!({"X": 1, "Y": [1.0, -2]}), r#"{"X":1,"Y":[1.0,-2]}"#),
        ];
        for (av, expected) in cases {
            let (result, warnings) = conv(av.clone());
            assert_eq!(dumps(&result.unwrap()), expected);
            assert_eq!(warnings, [format!("Unknown DynamoDB type: {expected}")]);
        }
    }

    #[test]
    fn warnings_accumulate_through_nesting() {
        let (result, warnings) = conv(json!({"L": [{"SS": ["a"]}, {"M": {"k": {"N": "x"}}}]}));
        assert_eq!(dumps(&result.unwrap()), r#"[{"SS":["a"]},{"k":{"N":"x"}}]"#);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].starts_with("Unknown DynamoDB type"));
        assert!(warnings[1].contains("is not a number"));
    }

    #[test]
    fn malformed_shapes_are_errors() {
        for av in [
            json!("S"),
            json!(5),
            json!(null),
            json!(true),
            json!(["S"]),
            json!({"M": []}),
            json!({"M": "x"}),
            json!({"L": {}}),
            json!({"L": "abc"}),
            json!({"N": 5}),
            json!({"N": null}),
            json!({"M": {"a": {"L": [{"N": 1.5}]}}}),
            json!({"L": [{"S": "ok"}, "bare"]}),
        ] {
            let (result, _) = conv(av.clone());
            assert!(result.is_err(), "{av} should be an error");
        }
        let (result, _) = conv(json!({"M": {"a": 1}}));
        assert_eq!(result.unwrap_err(), "attribute value is not a JSON object (found number)");
    }

    #[test]
    fn plain_json_numbers() {
        assert_eq!(from_plain_json(&json!(1)), int("1"));
        assert_eq!(from_plain_json(&json!(-5)), int("-5"));
        assert_eq!(from_plain_json(&json!(1.0)), PyValue::Float(1.0));
        assert_eq!(from_plain_json(&json!(u64::MAX)), int("18446744073709551615"));
        assert_eq!(from_plain_json(&json!(i64::MIN)), int("-9223372036854775808"));
        let parsed: Value = serde_json::from_str(r#"{"z":1,"a":[1.0,2,"s",null,true]}"#).unwrap();
        assert_eq!(dumps(&from_plain_json(&parsed)), r#"{"z":1,"a":[1.0,2,"s",null,true]}"#);
    }

    /// Known differences from Python's json.loads that come from serde_json's number model
    /// (see the module docs). They only concern numbers outside `N` values.
    #[test]
    fn plain_json_serde_limits() {
        for (input, ours, python) in [
            ("-0", "-0.0", "0"),
            ("-0.0", "-0.0", "-0.0"),
            ("18446744073709551616", "1.8446744073709552e+19", "18446744073709551616"),
        ] {
            let v: Value = serde_json::from_str(input).unwrap();
            assert_eq!(dumps(&from_plain_json(&v)), ours, "python gives {python}");
        }
    }

    // ---- serialisation (docs/specification.md#audit-lines) ----

    #[test]
    fn two_event_example_from_spec() {
        let first: Value = serde_json::from_str(
            r##"{
                "PK": {"S": "ns/AUDIT#user-1"}, "SK": {"S": "#AUDIT#01HX"},
                "ttl": {"N": "1713000000"}, "GSI4PK": {"S": "ns"},
                "event_id": {"S": "01HX"}, "entity_id": {"S": "user-1"},
                "action": {"S": "limits_set"}, "timestamp": {"S": "2024-01-15T14:30:00Z"},
                "principal": {"NULL": true},
                "details": {"M": {
                    "z": {"N": "1.5"},
                    "a": {"SS": ["x", "y"]},
                    "n": {"NULL": true},
                    "b": {"BOOL": false},
                    "l": {"L": [{"N": "1E+2"}, {"S": "é"}]}
                }}
            }"##,
        )
        .unwrap();
        let second: Value = serde_json::from_str(
            r#"{
                "event_id": {"S": "01HX"}, "entity_id": {"S": "user-1"},
                "action": {"S": "entity_created"}, "timestamp": {"S": "2024-01-14T23:59:00Z"},
                "resource": {"S": "gpt-4"}, "details": {"NULL": true}
            }"#,
        )
        .unwrap();
        let mut warnings = Vec::new();
        let mut body = String::new();
        for (i, image) in [&first, &second].into_iter().enumerate() {
            if i > 0 {
                body.push('\n');
            }
            write_json(&mut body, &audit_event(image, &mut warnings));
        }
        body.push('\n');
        let line1 = r#"{"event_id":"01HX","entity_id":"user-1","action":"limits_set","timestamp":"2024-01-15T14:30:00Z","principal":null,"details":{"z":1.5,"a":{"SS":["x","y"]},"n":null,"b":false,"l":[100.0,"\u00e9"]}}"#;
        let line2 = r#"{"event_id":"01HX","entity_id":"user-1","action":"entity_created","timestamp":"2024-01-14T23:59:00Z","resource":"gpt-4","details":{}}"#;
        assert_eq!(body, format!("{line1}\n{line2}\n"));
        assert!(body.is_ascii());
        assert!(!body.contains(": ") && !body.contains(", "));
        assert_eq!(warnings, [r#"Unknown DynamoDB type: {"SS":["x","y"]}"#]);

        let gz = gzip(body.as_bytes());
        let inflated = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
        assert_eq!(inflated, body.as_bytes());
    }

    #[test]
    fn compact_separators_and_mixed_values() {
        let v = PyValue::Map(vec![(
            "k\u{e9}y".into(),
            PyValue::List(vec![
                int("1"),
                PyValue::Float(-2.5),
                PyValue::Bool(true),
                PyValue::Null,
                PyValue::Map(vec![]),
                PyValue::List(vec![]),
                text(""),
                int("12345678901234567890123456789012345678"),
            ]),
        )]);
        assert_eq!(dumps(&v), r#"{"k\u00e9y":[1,-2.5,true,null,{},[],"",12345678901234567890123456789012345678]}"#);
    }

    #[test]
    fn string_escaping() {
        assert_eq!(
            string_text("a\"b\\c/d\n\r\t\u{8}\u{c}\u{0}\u{1f} ~\u{7f}\u{80}é\u{2028}\u{ffff}😀\u{10ffff}"),
            r#""a\"b\\c/d\n\r\t\b\f\u0000\u001f ~\u007f\u0080\u00e9\u2028\uffff\ud83d\ude00\udbff\udfff""#
        );
        assert_eq!(string_text(""), r#""""#);
        assert_eq!(string_text("plain ascii / text"), r#""plain ascii / text""#);
        assert_eq!(string_text("é"), r#""\u00e9""#);
        assert_eq!(string_text("😀"), r#""\ud83d\ude00""#);
        assert_eq!(string_text("\u{7f}"), r#""\u007f""#);
        assert_eq!(string_text("\u{1}\u{b}\u{1b}"), r#""\u0001\u000b\u001b""#);
        assert_eq!(string_text("\"\\"), r#""\"\\""#);
        assert_eq!(string_text("日本"), r#""\u65e5\u672c""#);
        // Appends: existing content is kept.
        let mut out = String::from("x=");
        write_json_string(&mut out, "y");
        assert_eq!(out, "x=\"y\"");
    }

    #[test]
    fn float_examples() {
        let cases: [(f64, &str); 23] = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (100.0, "100.0"),
            (1e16, "1e+16"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e125, "1.5e+125"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1000000000000000.0"),
            (-1e-7, "-1e-07"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.00012345, "0.00012345"),
            (-12.34, "-12.34"),
            // Exact ties between two shortest candidates go to the even digit.
            (926658374615191.0 + 0.25, "926658374615191.2"),
            (15704027566631.0 + 0.5625, "15704027566631.562"),
            (-(95749267960472.0 + 0.125), "-95749267960472.12"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (f, expected) in cases {
            assert_eq!(float_text(f), expected, "{f:?}");
        }
    }

    #[test]
    fn float_table_matches_python_json_dumps() {
        assert!(FLOAT_TABLE.len() >= 300);
        let mut failures = Vec::new();
        for &(bits, expected) in FLOAT_TABLE {
            let got = float_text(f64::from_bits(bits));
            if got != expected {
                failures.push(format!("{bits:#018x}: got {got}, want {expected}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    // ---- DynamoDB numbers ----

    #[test]
    fn number_grammar_cases() {
        let ints: [(&str, &str); 8] = [
            ("42", "42"),
            ("-0", "0"),
            ("007", "7"),
            ("-007", "-7"),
            ("000", "0"),
            ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
            ("-99999999999999999999999999999999999999", "-99999999999999999999999999999999999999"),
            (
                "1200000000000000000000000000000000000000000000000000",
                "1200000000000000000000000000000000000000000000000000",
            ),
        ];
        for (input, want) in ints {
            assert_eq!(parse_number(input), Ok(Number::Int(want.to_string())), "{input:?}");
        }
        let floats: [(&str, f64); 16] = [
            ("1.5", 1.5),
            ("1E+3", 1000.0),
            ("1e3", 1000.0),
            ("-0.0", -0.0),
            ("0e5", 0.0),
            ("-0E-7", -0.0),
            (".5", 0.5),
            ("-.5", -0.5),
            ("5.", 5.0),
            ("2.50e-1", 0.25),
            ("1E-130", 1e-130),
            ("-1E-130", -1e-130),
            ("0.01E-128", 1e-130),
            ("9.9999999999999999999999999999999999999E+125", 1e126),
            ("99999999999999999999999999999999999999E88", 1e126),
            ("0.00000000000000000000000000000000000000000000000123", 1.23e-48),
        ];
        for (input, want) in floats {
            assert_eq!(
                parse_number(input).map(|n| match n {
                    Number::Float(f) => f.to_bits(),
                    Number::Int(i) => panic!("{input:?} read as int {i}"),
                }),
                Ok(want.to_bits()),
                "{input:?}"
            );
        }
        assert_eq!(parse_number(&format!("1{}", "0".repeat(125))), Ok(Number::Int(format!("1{}", "0".repeat(125)))));
        for (bad, why) in [
            ("", NumberError::Syntax),
            ("-", NumberError::Syntax),
            (".", NumberError::Syntax),
            ("-.", NumberError::Syntax),
            ("+5", NumberError::Syntax),
            ("--1", NumberError::Syntax),
            (" 1", NumberError::Syntax),
            ("1 ", NumberError::Syntax),
            ("1_000", NumberError::Syntax),
            ("1.2.3", NumberError::Syntax),
            ("1e", NumberError::Syntax),
            ("1e+", NumberError::Syntax),
            ("e5", NumberError::Syntax),
            ("1e5.0", NumberError::Syntax),
            ("0x10", NumberError::Syntax),
            ("inf", NumberError::Syntax),
            ("NaN", NumberError::Syntax),
            ("١", NumberError::Syntax),
            ("１２", NumberError::Syntax),
            ("1\0", NumberError::Syntax),
            ("1234567890123456789012345678901234567891", NumberError::Precision),
            ("1.000000000000000000000000000000000000001", NumberError::Precision),
            ("1E+126", NumberError::Range),
            ("10E+125", NumberError::Range),
            ("1E-131", NumberError::Range),
            ("0.1E-130", NumberError::Range),
            ("1e99999999999999999999999", NumberError::Range),
            ("-1e-99999999999999999999999", NumberError::Range),
        ] {
            assert_eq!(parse_number(bad), Err(why), "{bad:?}");
        }
        assert_eq!(parse_number(&format!("1{}", "0".repeat(126))), Err(NumberError::Range));
        // Zero has no magnitude to check, however it is spelled.
        assert_eq!(parse_number(&format!("0.{}e-999999", "0".repeat(200))), Ok(Number::Float(0.0)));
    }

    /// One spelling of a DynamoDB number and the value it stands for.
    #[derive(Debug, Clone)]
    struct Spelled {
        text: String,
        negative: bool,
        /// Significant digits, without leading or trailing zeros; empty for zero.
        digits: String,
        /// Decimal exponent of the first significant digit.
        adjusted: i64,
        /// Zeros after the significant digits in an integer spelling.
        trailing: usize,
        /// No `.` and no exponent: Python's `int()` reads it.
        integer: bool,
    }

    /// Numbers across DynamoDB's whole grammar: either sign, leading zeros, fractions with the
    /// point anywhere, exponents with and without sign in either case, 1 to 38 significant
    /// digits, adjusted exponents from -130 to 125, zeros, integers of up to 126 digits.
    fn dynamodb_number() -> impl Strategy<Value = Spelled> {
        (
            any::<bool>(),
            prop_oneof![1 => Just(String::new()), 9 => "[1-9]([0-9]{0,36}[1-9])?"],
            0usize..4,
            0usize..200,
            prop::option::of(0usize..48),
            prop::option::of((any::<bool>(), 0u8..3, 0usize..3)),
            -130i64..=125,
        )
            .prop_map(|(negative, digits, lead, trail_pick, point, exponent, target)| {
                let integer = point.is_none() && exponent.is_none();
                let max_trail = if digits.is_empty() { 3 } else { 126 - digits.len() };
                let trailing = if integer { trail_pick % (max_trail + 1) } else { trail_pick % 4 };
                let zeros_for_zero = if digits.is_empty() { 1 } else { 0 };
                let mut mantissa = format!("{}{}{}", "0".repeat(lead + zeros_for_zero), digits, "0".repeat(trailing));
                let int_len = point.map_or(mantissa.len(), |p| p.min(mantissa.len()));
                if point.is_some() {
                    mantissa.insert(int_len, '.');
                }
                let layout_adjusted = int_len as i64 - 1 - lead as i64;
                let mut text = format!("{}{mantissa}", if negative { "-" } else { "" });
                let adjusted = match exponent {
                    None => layout_adjusted,
                    Some((upper, sign, exp_zeros)) => {
                        let exp = target - layout_adjusted;
                        text.push(if upper { 'E' } else { 'e' });
                        if exp < 0 {
                            text.push('-');
                        } else if sign == 1 {
                            text.push('+');
                        }
                        text.push_str(&"0".repeat(exp_zeros));
                        text.push_str(&exp.unsigned_abs().to_string());
                        target
                    }
                };
                Spelled { text, negative, digits, adjusted, trailing, integer }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Every spelling is accepted with the value the spelling stands for: for integers the
        /// canonical text built from the parts; for the rest Python's `float()`, which is
        /// correctly rounded, so it equals the parse of the canonical scientific spelling, and
        /// (where that is exact) plain f64 arithmetic on the significand and a power of ten.
        #[test]
        fn dynamodb_numbers_read_as_python_reads_them(n in dynamodb_number()) {
            let got = parse_number(&n.text);
            if n.integer {
                let want = if n.digits.is_empty() {
                    "0".to_string()
                } else {
                    format!("{}{}{}", if n.negative { "-" } else { "" }, n.digits, "0".repeat(n.trailing))
                };
                prop_assert_eq!(got, Ok(Number::Int(want)), "{}", n.text);
                return Ok(());
            }
            let Ok(Number::Float(f)) = got else {
                return Err(TestCaseError::fail(format!("{}: {got:?}", n.text)));
            };
            let sign = if n.negative { -1.0 } else { 1.0 };
            if n.digits.is_empty() {
                prop_assert_eq!(f.to_bits(), (sign * 0.0f64).to_bits(), "{}", n.text);
                return Ok(());
            }
            let (head, tail) = n.digits.split_at(1);
            let point = if tail.is_empty() { "" } else { "." };
            let scientific = format!("{}{head}{point}{tail}e{}", if n.negative { "-" } else { "" }, n.adjusted);
            prop_assert_eq!(f.to_bits(), scientific.parse::<f64>().unwrap().to_bits(), "{} vs {}", n.text, scientific);
            let k = n.adjusted - (n.digits.len() as i64 - 1);
            if n.digits.len() <= 15 && k.abs() <= 22 {
                // Both operands are exact f64 values, so one IEEE operation rounds correctly.
                let m: f64 = n.digits.parse::<u64>().unwrap() as f64;
                let p = 10f64.powi(k.abs() as i32);
                let exact = sign * if k >= 0 { m * p } else { m / p };
                prop_assert_eq!(f.to_bits(), exact.to_bits(), "{}", n.text);
            }
        }

        #[test]
        fn ints_match_rust_formatting(i in any::<i64>()) {
            prop_assert_eq!(parse_number(&i.to_string()), Ok(Number::Int(i.to_string())));
        }

        #[test]
        fn parser_never_panics(s in "[ _+\\-.eE0-9a-zA-Z\u{a0}\u{660}-\u{669}]{0,24}") {
            let _ = parse_number(&s);
            let _ = parse_number(&s.replace('x', "\u{10ffff}"));
        }
    }

    // ---- gzip / CRC-32 ----

    #[test]
    fn crc32_check_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414f_a339);
    }

    fn check_gzip(data: &[u8]) {
        let gz = gzip(data);
        assert!(gz.len() >= 18);
        // MTIME (bytes 4..8) is zero: no clock in the header, so the bytes depend on `data` only.
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x02, 0xff]);
        let (payload, trailer) = gz[10..].split_at(gz.len() - 18);
        let inflated = miniz_oxide::inflate::decompress_to_vec(payload).unwrap();
        assert_eq!(inflated, data);
        assert_eq!(trailer[..4], crc32(data).to_le_bytes());
        assert_eq!(trailer[4..], (data.len() as u32).to_le_bytes());
    }

    #[test]
    fn gzip_round_trips() {
        check_gzip(b"");
        check_gzip(b"{\"a\":1}\n");
        let mut big = Vec::new();
        let mut x: u32 = 12345;
        for i in 0..200_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            big.push(if i % 3 == 0 { (x >> 24) as u8 } else { b'a' + (i % 7) as u8 });
        }
        check_gzip(&big);
        // Level 9 actually compresses repetitive NDJSON.
        let body = "{\"event_id\":\"01HX\",\"details\":{}}\n".repeat(1000);
        assert!(gzip(body.as_bytes()).len() < body.len() / 20);
    }

    // ---- properties ----

    proptest! {
        #[test]
        fn finite_floats_round_trip(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            prop_assume!(f.is_finite());
            let written = float_text(f);
            let back: f64 = written.parse().unwrap();
            prop_assert_eq!(back.to_bits(), f.to_bits(), "{}", written);
            prop_assert!(written.contains('.') || written.contains('e'));
        }

        #[test]
        fn any_f64_round_trips(f in any::<f64>()) {
            prop_assume!(f.is_finite());
            let written = float_text(f);
            prop_assert_eq!(written.parse::<f64>().unwrap().to_bits(), f.to_bits());
        }

        #[test]
        fn strings_round_trip_through_a_json_parser(s in any::<String>()) {
            let written = string_text(&s);
            prop_assert!(written.is_ascii());
            let back: String = serde_json::from_str(&written).unwrap();
            prop_assert_eq!(back, s);
        }
    }

    /// `(f64 bits, Python json.dumps output)`, generated by `gen/floats.py` with CPython 3.11
    /// (random bit patterns, powers of ten, neighbours of 1e-5, 1e-4, 1e15, 1e16, 1e17, short
    /// decimals, exact decimal ties, binary fractions, specials).
    const FLOAT_TABLE: &[(u64, &str)] = &[
        (0xa5ff1cdb8fc5b912, "-1.1490525076868366e-125"),
        (0xc954d3c84e25866f, "-1.8578550266008934e+45"),
        (0x92f1814fe8877ded, "-1.9835738276214495e-217"),
        (0xcc3ac74513f4a06a, "-1.6809072727545684e+59"),
        (0x1e950b426ce00450, "2.33878479123809e-161"),
        (0xe53f23ffa0b00fa9, "-5.0475970581470657e+179"),
        (0xa945283f322c15cf, "-7.038013186811108e-110"),
        (0x9f7d1c0f36648c25, "-5.3005216914404e-157"),
        (0x5a52290ff3aa40a5, "1.2293161561929317e+127"),
        (0x2f6e3fb9d962efed, "3.188902032371478e-80"),
        (0x7ab52f93effa7b3e, "1.2306140156242164e+283"),
        (0xf8f5fae65c46f8bc, "-4.756256665034055e+274"),
        (0x55eea66b8ff32338, "8.786989155017133e+105"),
        (0xc2f6ea45abaeed04, "-403127152602832.25"),
        (0xc8d5b4455053f366, "-7.562803857723664e+42"),
        (0xa74faa086e68482c, "-2.4524498128401311e-119"),
        (0x1c370e51ec30b63b, "9.321918131628882e-173"),
        (0x5dd4577d87a2bf92, "9.922165193888097e+143"),
        (0x5c0d29ee139a7bb9, "2.649671399979868e+135"),
        (0x844bf4ea238945ab, "-5.7374647224421515e-288"),
        (0x9ed778e91ebe0442, "-4.1738620835460386e-160"),
        (0xefc6b34c5570c136, "-2.753340320499727e+230"),
        (0xbfd049cc9041cbd7, "-0.2545043381462028"),
        (0x5c07aa304ecde3e9, "2.1500615957208562e+135"),
        (0x93e96f1fb85b6740, "-9.443849751548205e-213"),
        (0xaa3efbe5b4e97d46, "-3.3773700123337e-105"),
        (0x0851ee2039eee0fb, "1.3575896154585496e-268"),
        (0x8b02992def391aa3, "-1.2386490485746004e-255"),
        (0x481451779db0ac6e, "1.7284839719348355e+39"),
        (0xd0df8d755bb28e08, "-3.74122314955404e+81"),
        (0xf64660422d1999ad, "-5.504639627972371e+261"),
        (0x721a0573944167dd, "4.337759240126815e+241"),
        (0xdc2126bf3e89a550, "-6.233134732563428e+135"),
        (0x4046b4ad74b10cae, "45.411543451738325"),
        (0xb84aa24d1eef2e44, "-1.5654051963717488e-37"),
        (0xd7b08fa6ed4e2cb6, "-2.548992869251728e+114"),
        (0xc1a7ef0bd0ec0a8d, "-200771048.461018"),
        (0x9a17fc767a70f75b, "-5.644997900633337e-183"),
        (0xebe6d748631b3bd5, "-6.007324606285412e+211"),
        (0xd0943cbf99b5932f, "-1.499724213960406e+80"),
        (0x2233a4e384c86536, "6.292658214768786e-144"),
        (0x35112b15fc4b7c4a, "4.481136490045699e-53"),
        (0xd49c9668a8aba77c, "-3.908006592752346e+99"),
        (0xdc0d0da6d47fd5c2, "-2.639635380289944e+135"),
        (0xe7825491bcafa49c, "-4.083551160542528e+190"),
        (0x9ebd22866c73c27b, "-1.2951954615056883e-160"),
        (0x13fa8bc4129fb9b0, "1.9713399133995893e-212"),
        (0x111e39e4b0733706, "3.189819009327135e-226"),
        (0xa8e1d452c16fade2, "-9.26718957679988e-112"),
        (0xc17e7dd06f371144, "-31972614.9509442"),
        (0x711f74d9b78e0aad, "8.001405458688367e+236"),
        (0xc67cb7e43f3200ba, "-3.6404803851440923e+31"),
        (0xa6b839c974d008f9, "-3.6647018365950273e-122"),
        (0xeb25bd2b079e56d0, "-1.3958711834934173e+208"),
        (0xe438a3078597f77d, "-6.093437926597024e+174"),
        (0xbc3c53852597cc81, "-1.5355691116261212e-18"),
        (0xcb6116e3ce65160d, "-1.309472502855619e+55"),
        (0x068cd2e354400bcd, "4.0650412370328226e-277"),
        (0xcc5a43add5d5c436, "-6.594565218123154e+59"),
        (0xc227bcbb92807352, "-50975328576.225235"),
        (0xf575db51308e92fa, "-6.563584007012179e+257"),
        (0x91b9c7b97c962c28, "-2.7859227582053587e-223"),
        (0xa31d44789babad82, "-1.5360562975949745e-139"),
        (0xffb98a718afdb4c1, "-1.7935356203194524e+307"),
        (0xc5c18ce5ea31d2e9, "-1.0863161047523585e+28"),
        (0x591454457f63d1a8, "1.3123759162128963e+121"),
        (0x664241936dabf8d1, "3.878615185413072e+184"),
        (0x47fb76d952af7d09, "5.841000759904671e+38"),
        (0xf8766b0294f1c0be, "-1.894929776343169e+272"),
        (0xc87f141d14b7ccb6, "-1.6920782290054382e+41"),
        (0xe0fba3ba35790a5d, "-1.517919898474096e+159"),
        (0x2e64573e42a558f1, "3.2720439791501524e-85"),
        (0x6cc273165da614f8, "7.950106055200228e+215"),
        (0xe536e66bbf2b486d, "-3.7118845728741916e+179"),
        (0xf758386a208b3419, "-7.809746509397243e+266"),
        (0x68f66aa52e69a828, "4.189156500895962e+197"),
        (0x49cb7c941075b62b, "3.1384188287232556e+47"),
        (0xdbff8c387f3c2ed3, "-1.4331323106703534e+135"),
        (0x2df47a52d02842ee, "2.5735055981490885e-87"),
        (0x68e6850ac2f12c19, "2.104212956181879e+197"),
        (0x50eef8a6f17e47d4, "7.344601552704054e+81"),
        (0x0d071913963c0c5d, "6.607042256063986e-246"),
        (0x01fa257dafe10fb9, "3.904244748981528e-299"),
        (0x39e078dba597742f, "6.497098467775156e-30"),
        (0x6bb0151c3ec6473a, "5.287246062629303e+210"),
        (0xd05c630fa5a0e124, "-1.3147940465944069e+79"),
        (0x951cc30fc2d2ed29, "-5.5991416984948096e-207"),
        (0x5a71f6e0a5a546f1, "4.864184702917194e+127"),
        (0x260b87f975d34a4d, "2.033556169800324e-125"),
        (0xfa45e4bf3b1155c3, "-9.935323654868692e+280"),
        (0x37d81daa5bc20f26, "1.1073469352985407e-39"),
        (0xccdf22a26cee286f, "-2.0012993397169655e+62"),
        (0x208e812ae43898c1, "7.280429047090666e-152"),
        (0x94805c7300beb271, "-6.22080117752328e-210"),
        (0x0cadc63d3972cb39, "1.3307491061007602e-247"),
        (0x730ead5bcad040b6, "1.6757218639227735e+246"),
        (0x5c009490056eb1b8, "1.50640256491307e+135"),
        (0xe863e95a98695017, "-7.26761700672547e+194"),
        (0xd40ab0d3bdd8b7fa, "-7.126381903107761e+96"),
        (0x31be0a408378da8e, "4.3525283876617806e-69"),
        (0xf476ff9c0c3dbe66, "-1.0538417784342165e+253"),
        (0x04527d2d1e8e15a1, "7.588865662040449e-288"),
        (0x5ec220f00b7a8f75, "2.89756809190243e+148"),
        (0xb86167511bb353a6, "-4.091562315254684e-37"),
        (0xf9ae87aa61427420, "-1.3529819923857173e+278"),
        (0xbe11640886cdef97, "-1.0122751761974701e-09"),
        (0x6bae059b2c1773c6, "4.934977147246914e+210"),
        (0x5d04dad7c7c81db9, "1.241752882228642e+140"),
        (0x437062aea0e38796, "7.379362864748784e+16"),
        (0xa73522d56ab7383e, "-8.185136985457323e-120"),
        (0xe0e415517d600d09, "-5.514704682575011e+158"),
        (0x63907d6a1850e928, "3.982864862938775e+171"),
        (0xc231ad09e5b48cd5, "-75917551028.55013"),
        (0x3986994de2db1d59, "1.3927613348240567e-31"),
        (0x0524acb02e478f6a, "6.951690726406747e-284"),
        (0x3b3814abfcd01342, "1.9919128974698142e-23"),
        (0xeab27f3999c08db8, "-9.278925894432686e+205"),
        (0xe10e1c74f604ef11, "-3.3073122966172597e+159"),
        (0x825cff674581076d, "-2.7711969290813974e-297"),
        (0x95778077a5f12039, "-2.928090979088888e-205"),
        (0x3abef2d0f5da7dd9, "1e-25"),
        (0x3af357c299a88ea7, "1e-24"),
        (0x3b282db34012b251, "1e-23"),
        (0x3b5e392010175ee6, "1e-22"),
        (0x3b92e3b40a0e9b4f, "1e-21"),
        (0x3bc79ca10c924223, "1e-20"),
        (0x3bfd83c94fb6d2ac, "1e-19"),
        (0x3c32725dd1d243ac, "1e-18"),
        (0x3c670ef54646d497, "1e-17"),
        (0x3c9cd2b297d889bc, "1e-16"),
        (0x3cd203af9ee75616, "1e-15"),
        (0x3d06849b86a12b9b, "1e-14"),
        (0x3d3c25c268497682, "1e-13"),
        (0x3d719799812dea11, "1e-12"),
        (0x3da5fd7fe1796495, "1e-11"),
        (0x3ddb7cdfd9d7bdbb, "1e-10"),
        (0x3e112e0be826d695, "1e-09"),
        (0x3e45798ee2308c3a, "1e-08"),
        (0x3e7ad7f29abcaf48, "1e-07"),
        (0x3eb0c6f7a0b5ed8d, "1e-06"),
        (0x3ee4f8b588e368f1, "1e-05"),
        (0x3f1a36e2eb1c432d, "0.0001"),
        (0x3f50624dd2f1a9fc, "0.001"),
        (0x3f847ae147ae147b, "0.01"),
        (0x3fb999999999999a, "0.1"),
        (0x3ff0000000000000, "1.0"),
        (0x4024000000000000, "10.0"),
        (0x4059000000000000, "100.0"),
        (0x408f400000000000, "1000.0"),
        (0x40c3880000000000, "10000.0"),
        (0x40f86a0000000000, "100000.0"),
        (0x412e848000000000, "1000000.0"),
        (0x416312d000000000, "10000000.0"),
        (0x4197d78400000000, "100000000.0"),
        (0x41cdcd6500000000, "1000000000.0"),
        (0x4202a05f20000000, "10000000000.0"),
        (0x42374876e8000000, "100000000000.0"),
        (0x426d1a94a2000000, "1000000000000.0"),
        (0x42a2309ce5400000, "10000000000000.0"),
        (0x42d6bcc41e900000, "100000000000000.0"),
        (0x430c6bf526340000, "1000000000000000.0"),
        (0x4341c37937e08000, "1e+16"),
        (0x4376345785d8a000, "1e+17"),
        (0x43abc16d674ec800, "1e+18"),
        (0x43e158e460913d00, "1e+19"),
        (0x4415af1d78b58c40, "1e+20"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x4480f0cf064dd592, "1e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44ea784379d99db4, "1e+24"),
        (0x45208b2a2c280291, "1e+25"),
        (0x3ee4f8b588e368f0, "9.999999999999999e-06"),
        (0x3ee4f8b588e368f2, "1.0000000000000003e-05"),
        (0x3f1a36e2eb1c432c, "9.999999999999999e-05"),
        (0x3f1a36e2eb1c432e, "0.00010000000000000002"),
        (0x430c6bf52633ffff, "999999999999999.9"),
        (0x430c6bf526340001, "1000000000000000.1"),
        (0x4341c37937e07fff, "9999999999999998.0"),
        (0x4341c37937e08001, "1.0000000000000002e+16"),
        (0x4376345785d89fff, "9.999999999999998e+16"),
        (0x4376345785d8a001, "1.0000000000000002e+17"),
        (0x3ee4f8b588e368eb, "9.99999999999999e-06"),
        (0x43118b54f22aeb03, "1234567890123456.8"),
        (0x4345ee2a2eb5a5c4, "1.2345678901234568e+16"),
        (0x3f202e4b6ce5dc68, "0.00012345"),
        (0x3ee9e3abe16fc70d, "1.2345e-05"),
        (0x43102e81bcf051c3, "1138683595723888.8"),
        (0xc19547b7211a9fbe, "-89255368.276"),
        (0xc2ccf28c4f334fcb, "-63656123328159.586"),
        (0x44123e597979abec, "8.413353724838327e+19"),
        (0x42441f9e3343599a, "172859614854.7"),
        (0x43668c4d663deeb1, "5.0773708346717576e+16"),
        (0x42f5aa6ef237c45b, "381147999861829.7"),
        (0x432aae7a45516a0d, "3755094783341830.5"),
        (0x43aa7cd838e250c8, "9.543190404624804e+17"),
        (0x4321d621165bde30, "2510256100732696.0"),
        (0x43727317d783df78, "8.308953308764352e+16"),
        (0xc1849ee9ee4fb00c, "-43244861.78891"),
        (0xc327cfe6fe3cdba0, "-3351257739587024.0"),
        (0x432529b33c2f0259, "2978412148261164.5"),
        (0x42ffd89372b63fa4, "560240754648058.25"),
        (0x419255e587a9ad43, "76904801.9157"),
        (0xc3998cce36980b64, "-4.6026827039053235e+17"),
        (0xc1e5b0bf94662c40, "-2911239331.1929016"),
        (0xc19125dfb6666666, "-71923693.6"),
        (0xc3f2abc65d38a758, "-2.152619227815959e+19"),
        (0x432188d0b057f479, "2467752248605244.5"),
        (0xc171e27f40000000, "-18753524.0"),
        (0x4307b4e956172bd6, "834104841135482.8"),
        (0x42ca0f703aa9bff1, "57307219448703.88"),
        (0x4320f440b916a26c, "2386079223861558.0"),
        (0x43dc2b9f387c6b85, "8.119564488059786e+18"),
        (0xc33c47a43155ceb2, "-7960069875814066.0"),
        (0x43385f58fe4a77ad, "6860235269109677.0"),
        (0x43a3fbeb858747d4, "7.200017323039073e+17"),
        (0x43d39d2b0ed56a0b, "5.653332803096948e+18"),
        (0xc3aba0b743adbbc8, "-9.95396268301608e+17"),
        (0x4340e4c1cbfa766b, "9510241258761430.0"),
        (0x42b9939e56ac7b80, "28121807367291.5"),
        (0x4298ab702833fcb8, "6781150039295.18"),
        (0x41208751426698bb, "541608.629689"),
        (0x429953ae37ba8f2c, "6961798966947.793"),
        (0x4340fba1a6c23aac, "9560542666847576.0"),
        (0x4295af407d9dbbe9, "5960611358574.978"),
        (0xc3a3e000fbf36300, "-7.160728818119803e+17"),
        (0x43b8548bec098e3a, "1.7531800008428242e+18"),
        (0x42eb7c13a9f2c9c1, "241757758395982.03"),
        (0x43655835f8a6db7f, "4.8063706712955896e+16"),
        (0x43d4a28b45081126, "5.947615822360123e+18"),
        (0xc22dbc77c69a999a, "-63858008909.3"),
        (0x414d7d0480000000, "3865097.0"),
        (0xc0f524db5c28f5c3, "-86605.71"),
        (0x43da83f694d57f96, "7.642567144130894e+18"),
        (0xc33b03fc5cdeb2a6, "-7604206795928230.0"),
        (0xc377e16c9af1e558, "-1.0754849658570893e+17"),
        (0x4213a6d364326171, "21100812556.595158"),
        (0xc4066965b8796e90, "-5.167788109999073e+19"),
        (0xc1147092343a2164, "-334884.551003"),
        (0x4304723862f8a9c6, "719385754801464.8"),
        (0xc35af7953a2d3ffe, "-3.036227877083545e+16"),
        (0xc1fa89be1576d6c1, "-7123755351.42743"),
        (0x425b93c4493ba6ec, "473772926190.60815"),
        (0xc366db8a2a16c81e, "-5.147068756592254e+16"),
        (0xc232dbf39ca55eb8, "-80999586981.37"),
        (0x41e73fbf4a0f0ff9, "3120429648.4707"),
        (0x41b01bf0f3313402, "270266611.1921998"),
        (0xc3701f725699b6f5, "-7.261080907228347e+16"),
        (0xbfeceb1c432ca57a, "-0.9037"),
        (0xc3659fb9d95da0d8, "-4.869276060385453e+16"),
        (0xc36dca739195bfca, "-6.708297629735278e+16"),
        (0x43685c0e2de1ab19, "5.485292328093921e+16"),
        (0xc40f00fcb21193dd, "-7.149002422096151e+19"),
        (0x42e8aaea75d4011c, "216978856779784.88"),
        (0x41c5bd48fb0652bd, "729453046.0494"),
        (0xc1a975b87728640c, "-213572667.5788883"),
        (0x4226536272db3d71, "47944120685.62"),
        (0xc370a3c6e33a0795, "-7.493878781525845e+16"),
        (0xc0e7fbf328e0c9da, "-49119.59874"),
        (0x446ae4da190e2846, "3.968846931604918e+21"),
        (0x3cbbd50df422afda, "3.862499787491885e-16"),
        (0x3cd013ea275f8455, "8.924967239399305e-16"),
        (0x4290c373f292b661, "4607912486061.595"),
        (0x3dcc1bdd0beb667c, "5.112968511246857e-11"),
        (0x3fa0ac2721c8a6b0, "0.03256342208289931"),
        (0x408ee2e22727308a, "988.360426241082"),
        (0x39edb3ee0511e49a, "1.1715708823329707e-29"),
        (0x3ccd3de9c55f1475, "8.116243319673561e-16"),
        (0x44ab3d60b9709c8f, "6.431805807584638e+22"),
        (0x3abc8d8b3ca9d54a, "9.225941461262805e-26"),
        (0x3a16fec682848f23, "7.256010927794121e-29"),
        (0x3ea925f5277dc97a, "7.494769098516861e-07"),
        (0x3e723d953c942513, "6.795137532182654e-08"),
        (0x3ea8ef4ef1fda3fc, "7.431148993766773e-07"),
        (0x3e6915f3cc882a81, "4.672585302366567e-08"),
        (0x3a0ccf4d985d468f, "4.5453814723385596e-29"),
        (0x45f0327e8288c03c, "8.020486198767625e+28"),
        (0x4356ea1d152457e8, "2.5799440469155744e+16"),
        (0x4557c6bddbd22e5d, "1.1497529875659363e+26"),
        (0x430a5653b9fa04ba, "926658374615191.2"),
        (0xc30a5653b9fa04ba, "-926658374615191.2"),
        (0x42ac90c1f8244f20, "15704027566631.562"),
        (0xc2d5c55746aca608, "-95749267960472.12"),
        (0x42e7ef2445cdf674, "210526985416627.62"),
        (0x431ea91f029f4f29, "2157549988598730.2"),
        (0x3fe0000000002000, "0.5000000000009095"),
        (0x43b6ca8cc1e679e4, "1.6422797785532918e+18"),
        (0x42a8bee78bc4d680, "13604103774827.25"),
        (0x4212588fca330000, "19698807436.75"),
        (0x430e0c3f851a8820, "1057214532112644.0"),
        (0x41fb6ebb3f9e8000, "7363867641.90625"),
        (0x42a96921923f0000, "13969662746496.0"),
        (0x41ec322d2be6a000, "3784403295.2070312"),
        (0x42c2e5c7543d6ea8, "41556201994973.31"),
        (0x41d5b57695956000, "1456855638.3339844"),
        (0x41ea2d224ee08000, "3513324151.015625"),
        (0x42f406e1f27b9ab8, "352316689988011.5"),
        (0x43fe4d1f07d1a074, "3.493496820458791e+19"),
        (0x0000000000000000, "0.0"),
        (0x8000000000000000, "-0.0"),
        (0x3ff8000000000000, "1.5"),
        (0x3fd3333333333334, "0.30000000000000004"),
        (0x3fd5555555555555, "0.3333333333333333"),
        (0x3fe5555555555555, "0.6666666666666666"),
        (0x437b69b4ba630f35, "1.2345678901234568e+17"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x0010000000000000, "2.2250738585072014e-308"),
        (0x000fffffffffffff, "2.225073858507201e-308"),
        (0x4340000000000000, "9007199254740992.0"),
        (0x43e0000000000000, "9.223372036854776e+18"),
        (0x43f0000000000000, "1.8446744073709552e+19"),
        (0x59ec5d1c1e7f26b3, "1.5e+125"),
        (0x7ff0000000000000, "Infinity"),
        (0xfff0000000000000, "-Infinity"),
        (0x7ff8000000000000, "NaN"),
        (0x3fe0000000000000, "0.5"),
        (0xc004000000000000, "-2.5"),
        (0x40091eb851eb851f, "3.14"),
        (0x4011666666666666, "4.35"),
        (0x3fd3333333333333, "0.3"),
    ];
}
