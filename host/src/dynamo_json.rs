//! Conversions between compact DynamoDB JSON and the SDK's [`AttributeValue`].
//!
//! DynamoDB JSON is the form the stream delivers and the plan carries: every
//! value is an object with exactly one type key, `{"S":"text"}`,
//! `{"N":"12"}`, `{"B":"<base64>"}`, `{"BOOL":true}`, `{"NULL":true}`,
//! `{"M":{..}}`, `{"L":[..]}`, `{"SS":[..]}`, `{"NS":[..]}` or `{"BS":[..]}`.
//! Numbers stay decimal strings (never parsed, so no precision is lost) and
//! binary values are standard base64 with padding.
//!
//! Parsing never panics: a malformed value is an `Err` whose text names the
//! offending place (`$` is the value itself, `$.M.limits.L[2]` a nested one)
//! and what is wrong with it. Rendering is deterministic: map keys are
//! written in ascending order.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::bindings::Attribute;

/// Parse one compact DynamoDB JSON value (`{"S":"x"}`, `{"M":{...}}`, ...).
pub fn to_attribute_value(json: &str) -> Result<AttributeValue, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON ({e}): {}", excerpt(json)))?;
    value_to_attribute_value(&v)
}

/// Convert one already-parsed DynamoDB JSON value.
pub fn value_to_attribute_value(v: &Value) -> Result<AttributeValue, String> {
    convert(v, &mut String::from("$"))
}

/// Convert a plan's attribute list (a key, an item, or expression values)
/// to the map the SDK takes. A repeated name is an error, since DynamoDB
/// would see only one of the values.
pub fn attrs_to_map(attrs: &[Attribute]) -> Result<HashMap<String, AttributeValue>, String> {
    let mut out = HashMap::with_capacity(attrs.len());
    for a in attrs {
        let v = to_attribute_value(&a.value).map_err(|e| format!("attribute {:?}: {e}", a.name))?;
        if out.insert(a.name.clone(), v).is_some() {
            return Err(format!("attribute {:?} appears more than once", a.name));
        }
    }
    Ok(out)
}

/// Render an item as a compact DynamoDB JSON map, keys in ascending order
/// (at every level), so equal items always render to equal text.
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> String {
    Value::Object(map_to_json(item)).to_string()
}

/// The DynamoDB JSON of an SDK `AttributeValue`, for each SDK crate that has
/// one (`aws-sdk-dynamodb` here, `aws-sdk-dynamodbstreams` in
/// [`crate::stream`]): the two enums have the same variants but are
/// different types. Defines `attribute_value_to_json` (pub) and
/// `map_to_json` in the calling module; map keys are in ascending order at
/// every level. A value of a type the SDK does not know renders as
/// `{"UNKNOWN":true}`, which [`value_to_attribute_value`] and the planner
/// reject (the record is invalid and dead-lettered, never silently dropped).
macro_rules! attribute_value_json {
    ($av:ty) => {
        /// One value as DynamoDB JSON (nested map keys in ascending order);
        /// an unknown type renders as `{"UNKNOWN":true}`.
        pub fn attribute_value_to_json(v: &$av) -> serde_json::Value {
            use base64::Engine as _;
            use serde_json::Value;
            type Av = $av;
            let encode = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
            let (tag, inner) = match v {
                Av::S(s) => ("S", Value::String(s.clone())),
                Av::N(n) => ("N", Value::String(n.clone())),
                Av::B(b) => ("B", encode(b.as_ref())),
                Av::Bool(b) => ("BOOL", Value::Bool(*b)),
                Av::Null(b) => ("NULL", Value::Bool(*b)),
                Av::M(m) => ("M", Value::Object(map_to_json(m))),
                Av::L(l) => ("L", Value::Array(l.iter().map(attribute_value_to_json).collect())),
                Av::Ss(l) => ("SS", Value::Array(l.iter().cloned().map(Value::String).collect())),
                Av::Ns(l) => ("NS", Value::Array(l.iter().cloned().map(Value::String).collect())),
                Av::Bs(l) => ("BS", Value::Array(l.iter().map(|b| encode(b.as_ref())).collect())),
                _ => ("UNKNOWN", Value::Bool(true)),
            };
            let mut m = serde_json::Map::with_capacity(1);
            m.insert(tag.to_string(), inner);
            Value::Object(m)
        }

        fn map_to_json(item: &std::collections::HashMap<String, $av>) -> serde_json::Map<String, serde_json::Value> {
            let mut names: Vec<&String> = item.keys().collect();
            names.sort();
            names.into_iter().map(|n| (n.clone(), attribute_value_to_json(&item[n]))).collect()
        }
    };
}
pub(crate) use attribute_value_json;

attribute_value_json!(AttributeValue);

/// Up to 80 characters of `s`, for error messages.
fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// Short name of a JSON value's kind, for error messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Run `f` with `suffix` appended to `path`, restoring it afterwards.
fn nested<T>(path: &mut String, suffix: &str, f: impl FnOnce(&mut String) -> T) -> T {
    let len = path.len();
    path.push_str(suffix);
    let r = f(path);
    path.truncate(len);
    r
}

fn convert(v: &Value, path: &mut String) -> Result<AttributeValue, String> {
    let obj = v.as_object().ok_or_else(|| {
        format!("{path}: expected a DynamoDB JSON object such as {{\"S\":\"..\"}}, found {}", kind(v))
    })?;
    let mut entries = obj.iter();
    let (tag, inner) = match (entries.next(), entries.next()) {
        (Some(entry), None) => entry,
        (None, _) => return Err(format!("{path}: empty object, expected exactly one type key")),
        (Some(_), Some(_)) => {
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            return Err(format!("{path}: expected exactly one type key, found {keys:?}"));
        }
    };
    if !TYPES.contains(&tag.as_str()) {
        return Err(format!(
            "{path}: unknown DynamoDB type {tag:?} (expected S, N, B, BOOL, NULL, M, L, SS, NS or BS)"
        ));
    }
    nested(path, &format!(".{tag}"), |path| match tag.as_str() {
        "S" => Ok(AttributeValue::S(string(inner, path)?.to_string())),
        "N" => Ok(AttributeValue::N(number(inner, path)?)),
        "B" => Ok(AttributeValue::B(binary(inner, path)?)),
        "BOOL" => match inner {
            Value::Bool(b) => Ok(AttributeValue::Bool(*b)),
            other => Err(format!("{path}: expected a boolean, found {}", kind(other))),
        },
        "NULL" => match inner {
            Value::Bool(true) => Ok(AttributeValue::Null(true)),
            Value::Bool(false) => Err(format!("{path}: NULL must be true")),
            other => Err(format!("{path}: expected true, found {}", kind(other))),
        },
        "M" => {
            let m = inner.as_object().ok_or_else(|| format!("{path}: expected an object, found {}", kind(inner)))?;
            let mut out = HashMap::with_capacity(m.len());
            for (name, value) in m {
                let av = nested(path, &format!(".{name}"), |path| convert(value, path))?;
                out.insert(name.clone(), av);
            }
            Ok(AttributeValue::M(out))
        }
        "L" => Ok(AttributeValue::L(each(inner, path, convert)?)),
        "SS" => Ok(AttributeValue::Ss(each(inner, path, |v, p| string(v, p).map(str::to_string))?)),
        "NS" => Ok(AttributeValue::Ns(each(inner, path, number)?)),
        "BS" => Ok(AttributeValue::Bs(each(inner, path, binary)?)),
        _ => unreachable_type(tag, path),
    })
}

/// The type keys of DynamoDB JSON.
const TYPES: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"];

/// The fallback arm of [`convert`]'s match; [`TYPES`] is checked first, so
/// this only runs if the two ever disagree.
fn unreachable_type(tag: &str, path: &str) -> Result<AttributeValue, String> {
    Err(format!("{path}: DynamoDB type {tag:?} is not supported"))
}

fn each<T>(
    v: &Value,
    path: &mut String,
    mut f: impl FnMut(&Value, &mut String) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let list = v.as_array().ok_or_else(|| format!("{path}: expected a list, found {}", kind(v)))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        out.push(nested(path, &format!("[{i}]"), |path| f(item, path))?);
    }
    Ok(out)
}

fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| format!("{path}: expected a string, found {}", kind(v)))
}

/// A DynamoDB number: a decimal string, kept verbatim once it looks like one.
fn number(v: &Value, path: &mut String) -> Result<String, String> {
    let s = v.as_str().ok_or_else(|| format!("{path}: expected a number as a string, found {}", kind(v)))?;
    if !is_decimal(s) {
        return Err(format!("{path}: {s:?} is not a decimal number"));
    }
    Ok(s.to_string())
}

fn binary(v: &Value, path: &mut String) -> Result<Blob, String> {
    let s = v.as_str().ok_or_else(|| format!("{path}: expected a base64 string, found {}", kind(v)))?;
    STANDARD.decode(s).map(Blob::new).map_err(|e| format!("{path}: not valid base64 ({e})"))
}

/// `[+-]digits[.digits][(e|E)[+-]digits]`, or with the integer part omitted
/// before a fraction (`.5`): the number syntax DynamoDB accepts.
fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(json: &str) {
        let av = to_attribute_value(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(attribute_value_to_json(&av).to_string(), json, "{av:?}");
    }

    #[test]
    fn every_scalar_type_round_trips() {
        for json in [
            r#"{"S":"gpt-4"}"#,
            r#"{"S":""}"#,
            r#"{"S":"quote \" backslash \\ newline \n é 😀"}"#,
            r#"{"N":"12"}"#,
            r#"{"N":"-0.5"}"#,
            r#"{"N":"1.50"}"#,
            r#"{"N":"123456789012345678901234567890123456789"}"#,
            r#"{"N":"1E+10"}"#,
            r#"{"B":"AAEC/w=="}"#,
            r#"{"B":""}"#,
            r#"{"BOOL":true}"#,
            r#"{"BOOL":false}"#,
            r#"{"NULL":true}"#,
        ] {
            round_trip(json);
        }
    }

    #[test]
    fn every_collection_type_round_trips() {
        for json in [
            r#"{"SS":["a","b"]}"#,
            r#"{"NS":["1","2.5"]}"#,
            r#"{"BS":["AQ==","Ag=="]}"#,
            r#"{"L":[]}"#,
            r#"{"M":{}}"#,
            r#"{"L":[{"S":"x"},{"N":"1"},{"NULL":true},{"L":[{"BOOL":false}]}]}"#,
            r#"{"M":{"a":{"M":{"b":{"L":[{"M":{"c":{"B":"AA=="}}}]}}},"z":{"SS":["q"]}}}"#,
        ] {
            round_trip(json);
        }
    }

    #[test]
    fn values_convert_to_the_sdk_types() {
        assert_eq!(to_attribute_value(r#"{"S":"x"}"#).unwrap(), AttributeValue::S("x".into()));
        assert_eq!(to_attribute_value(r#"{"N":"7"}"#).unwrap(), AttributeValue::N("7".into()));
        assert_eq!(to_attribute_value(r#"{"B":"AAEC"}"#).unwrap(), AttributeValue::B(Blob::new(vec![0, 1, 2])));
        assert_eq!(to_attribute_value(r#"{"BS":["AQ=="]}"#).unwrap(), AttributeValue::Bs(vec![Blob::new(vec![1])]));
        let m = to_attribute_value(r#"{"M":{"k":{"L":[{"N":"1"}]}}}"#).unwrap();
        let expected = HashMap::from([("k".to_string(), AttributeValue::L(vec![AttributeValue::N("1".into())]))]);
        assert_eq!(m, AttributeValue::M(expected));
    }

    #[test]
    fn item_rendering_sorts_keys_at_every_level() {
        let inner = HashMap::from([
            ("y".to_string(), AttributeValue::N("2".into())),
            ("b".to_string(), AttributeValue::N("1".into())),
        ]);
        let item = HashMap::from([
            ("SK".to_string(), AttributeValue::S("#STATE".into())),
            ("PK".to_string(), AttributeValue::S("ns/BUCKET#u#r#0".into())),
            ("wm#0".to_string(), AttributeValue::S("0001".into())),
            ("m".to_string(), AttributeValue::M(inner)),
            ("Z".to_string(), AttributeValue::Null(true)),
        ]);
        assert_eq!(
            item_to_json(&item),
            r##"{"PK":{"S":"ns/BUCKET#u#r#0"},"SK":{"S":"#STATE"},"Z":{"NULL":true},"m":{"M":{"b":{"N":"1"},"y":{"N":"2"}}},"wm#0":{"S":"0001"}}"##
        );
        assert_eq!(item_to_json(&HashMap::new()), "{}");
    }

    #[test]
    fn rendered_items_parse_back() {
        let json = r#"{"M":{"a":{"NS":["1"]},"b":{"BOOL":true},"c":{"L":[{"S":"x"}]}}}"#;
        let AttributeValue::M(item) = to_attribute_value(json).unwrap() else { panic!("not a map") };
        let text = item_to_json(&item);
        let back = to_attribute_value(&format!("{{\"M\":{text}}}")).unwrap();
        assert_eq!(back, AttributeValue::M(item));
    }

    fn attr(name: &str, value: &str) -> Attribute {
        Attribute { name: name.into(), value: value.into() }
    }

    #[test]
    fn attribute_lists_become_maps() {
        let attrs = vec![attr("PK", r#"{"S":"ns/ENTITY#u1"}"#), attr(":v0", r#"{"N":"5"}"#)];
        let map = attrs_to_map(&attrs).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["PK"], AttributeValue::S("ns/ENTITY#u1".into()));
        assert_eq!(map[":v0"], AttributeValue::N("5".into()));
        assert!(attrs_to_map(&[]).unwrap().is_empty());
    }

    #[test]
    fn attribute_list_errors_name_the_attribute() {
        let bad = vec![attr("PK", r#"{"S":"x"}"#), attr(":v0", r#"{"N":5}"#)];
        let e = attrs_to_map(&bad).unwrap_err();
        assert!(e.starts_with("attribute \":v0\": $.N: expected a number as a string"), "{e}");
        let dup = vec![attr("PK", r#"{"S":"x"}"#), attr("PK", r#"{"S":"y"}"#)];
        assert_eq!(attrs_to_map(&dup).unwrap_err(), "attribute \"PK\" appears more than once");
    }

    #[test]
    fn malformed_values_are_clear_errors() {
        let cases = [
            ("", "not JSON"),
            ("{\"S\":", "not JSON"),
            ("\"x\"", "$: expected a DynamoDB JSON object such as {\"S\":\"..\"}, found a string"),
            ("{}", "$: empty object, expected exactly one type key"),
            (r#"{"S":"a","N":"1"}"#, "$: expected exactly one type key, found [\"S\", \"N\"]"),
            (r#"{"X":"a"}"#, "$: unknown DynamoDB type \"X\" (expected S, N, B, BOOL, NULL, M, L, SS, NS or BS)"),
            (r#"{"S":1}"#, "$.S: expected a string, found a number"),
            (r#"{"N":"abc"}"#, "$.N: \"abc\" is not a decimal number"),
            (r#"{"N":""}"#, "$.N: \"\" is not a decimal number"),
            (r#"{"N":"1e"}"#, "$.N: \"1e\" is not a decimal number"),
            (r#"{"N":1}"#, "$.N: expected a number as a string, found a number"),
            (r#"{"B":"!!"}"#, "$.B: not valid base64"),
            (r#"{"BOOL":"true"}"#, "$.BOOL: expected a boolean, found a string"),
            (r#"{"NULL":false}"#, "$.NULL: NULL must be true"),
            (r#"{"NULL":null}"#, "$.NULL: expected true, found null"),
            (r#"{"M":[]}"#, "$.M: expected an object, found a list"),
            (r#"{"L":{}}"#, "$.L: expected a list, found an object"),
            (r#"{"SS":["a",2]}"#, "$.SS[1]: expected a string, found a number"),
            (r#"{"NS":["1","x"]}"#, "$.NS[1]: \"x\" is not a decimal number"),
            (r#"{"BS":["AQ==","%"]}"#, "$.BS[1]: not valid base64"),
            (r#"{"M":{"a":{"L":[{"S":"x"},{"Q":1}]}}}"#, "$.M.a.L[1]: unknown DynamoDB type \"Q\""),
            (r#"{"M":{"a":{"M":{"b":{"N":true}}}}}"#, "$.M.a.M.b.N: expected a number as a string, found a boolean"),
        ];
        for (json, want) in cases {
            let e = to_attribute_value(json).unwrap_err();
            assert!(e.starts_with(want), "{json}: got {e:?}, want prefix {want:?}");
        }
    }

    #[test]
    fn decimal_syntax() {
        for ok in ["0", "-1", "+1", "1.", ".5", "1.5e3", "1E-7", "00012"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", "-", ".", "e5", "1e", "1e+", "1.2.3", " 1", "1 ", "0x10", "NaN", "Infinity"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
