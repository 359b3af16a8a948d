//! DynamoDB's request limits, checked before a write is planned
//! (docs/specification.md#dynamodb-limits).
//!
//! The event source mapping retries a failed record until the stream drops it,
//! so a write DynamoDB can never accept would stall its shard for the stream's
//! retention. Every DynamoDB write the planner produces is checked here; a
//! write that breaks a limit is never planned and the records it would carry
//! become `invalid(reason)`. The limits (DynamoDB developer guide,
//! "Constraints"):
//!
//! * **Partition key**: 1 to 2,048 bytes (a string's UTF-8 length).
//! * **Sort key**: 1 to 1,024 bytes.
//! * **Index keys**: an index key attribute is subject to the same limits as a
//!   table key (`GSI{n}PK`, a partition key, up to 2,048 bytes; `GSI{n}SK`, a
//!   sort key, up to 1,024 bytes), and an empty string in a key attribute of an
//!   index is rejected.
//! * **Numbers**: at most 38 significant digits; a non-zero magnitude between
//!   1E-130 and 9.9999999999999999999999999999999999999E+125.
//! * **Expressions**: an expression string (UpdateExpression,
//!   ConditionExpression) is at most 4 KB (4,096 bytes) and holds at most 300
//!   operators or functions. Counted here, conservatively: every comparator
//!   (`=`, `<>`, `<`, `<=`, `>`, `>=`), every `+` and `-`, every `AND`, `OR`,
//!   `NOT`, `BETWEEN` and `IN`, every function call, and every action of an
//!   `ADD`, `DELETE` or `REMOVE` clause (a `SET` action is counted by its `=`).
//! * **Items**: at most 400 KB (409,600 bytes): attribute names (UTF-8 bytes)
//!   plus values; a string is its UTF-8 length, a number about one byte per two
//!   significant digits plus one, a binary its raw length, a boolean or null
//!   one byte, a map or list 3 bytes plus one byte and the size of each element
//!   (a map element also its name). A `PutItem` is the item; an `UpdateItem`
//!   cannot know the stored item, so what it checks is the key plus every
//!   attribute name and value its update expression writes, a lower bound of
//!   the resulting item.

use serde_json::Value;

use crate::plan::{Attribute, ExpressionName, Operation, Write};

/// Longest partition key value, bytes (table and index).
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// Longest sort key value, bytes (table and index).
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// Most significant digits of a number.
pub const MAX_NUMBER_DIGITS: usize = 38;
/// Longest expression string, bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Most operators and functions in one expression.
pub const MAX_EXPRESSION_OPERATORS: usize = 300;
/// Largest item, bytes.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Significant digits of an integer (trailing zeros do not count).
pub fn significant_digits(v: i128) -> usize {
    let mut u = v.unsigned_abs();
    if u == 0 {
        return 0;
    }
    while u.is_multiple_of(10) {
        u /= 10;
    }
    let mut n = 0;
    while u > 0 {
        u /= 10;
        n += 1;
    }
    n
}

/// Whether DynamoDB stores `v` as a number (every i128 is within the
/// magnitude range; only the digit count can break).
pub fn number(v: i128) -> Result<(), String> {
    let d = significant_digits(v);
    if d > MAX_NUMBER_DIGITS {
        return Err(format!("number {v} has {d} significant digits, more than DynamoDB's {MAX_NUMBER_DIGITS}"));
    }
    Ok(())
}

/// Whether `text` is in DynamoDB's number grammar: an optional `-`, digits
/// with an optional fraction (at least one digit in all), and an optional
/// exponent `e`/`E` with an optional sign and at least one digit. Nothing
/// else (no spaces, `+`, `_`, byte-order marks or other digits).
pub fn number_syntax(text: &str) -> bool {
    let t = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()) && exp_ok
}

/// Check a DynamoDB `N` string: its syntax ([`number_syntax`]), digits and
/// magnitude. A stream image can hold text DynamoDB would never accept back
/// (a shard clone copies the image), so the syntax is checked too.
pub fn number_text(text: &str) -> Result<(), String> {
    if !number_syntax(text) {
        return Err(format!("{text:?} is not a DynamoDB number"));
    }
    let t = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).filter(u8::is_ascii_digit).collect();
    let Some(first) = digits.iter().position(|&d| d != b'0') else { return Ok(()) };
    let last = digits.iter().rposition(|&d| d != b'0').unwrap_or(first);
    let sig = last - first + 1;
    if sig > MAX_NUMBER_DIGITS {
        return Err(format!("number {text} has {sig} significant digits, more than DynamoDB's {MAX_NUMBER_DIGITS}"));
    }
    // x = d.ddd * 10^magnitude
    let magnitude = (int.len() as i64).saturating_sub(first as i64 + 1).saturating_add(exp);
    if !(-130..=125).contains(&magnitude) {
        return Err(format!("number {text} is outside DynamoDB's range (1E-130 to 1E+126)"));
    }
    Ok(())
}

/// The most bytes an index key attribute may hold, if `name` is one
/// (`GSI{n}PK`, `GSI{n}SK`).
pub fn index_key_limit(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("GSI")?;
    // `get`, not `split_at`: a name may end in non-ASCII characters.
    let cut = rest.len().checked_sub(2)?;
    let (n, kind) = (rest.get(..cut)?, rest.get(cut..)?);
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match kind {
        "PK" => Some(MAX_PARTITION_KEY_BYTES),
        "SK" => Some(MAX_SORT_KEY_BYTES),
        _ => None,
    }
}

/// A key attribute's string value: non-empty, at most `max` bytes.
pub fn key_value(attr: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("key attribute {attr} is empty"));
    }
    if value.len() > max {
        return Err(format!("key attribute {attr} is {} bytes, more than DynamoDB's {max}", value.len()));
    }
    Ok(())
}

/// Operators and functions of an expression (counted as the module docs say).
pub fn operators(expr: &str) -> usize {
    let b = expr.as_bytes();
    let mut count = 0;
    let mut i = 0;
    let mut depth = 0usize;
    let mut counting_actions = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'#' | b':' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                continue;
            }
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 && counting_actions => count += 1,
            b'<' | b'>' => {
                count += 1;
                if matches!(b.get(i + 1), Some(b'=') | Some(b'>')) {
                    i += 1;
                }
            }
            b'=' | b'+' | b'-' => count += 1,
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut j = i;
                while j < b.len() && b[j] == b' ' {
                    j += 1;
                }
                if b.get(j) == Some(&b'(') {
                    count += 1;
                } else {
                    match word.to_ascii_uppercase().as_str() {
                        "AND" | "OR" | "NOT" | "BETWEEN" | "IN" => count += 1,
                        "SET" => counting_actions = false,
                        "ADD" | "DELETE" | "REMOVE" => {
                            counting_actions = true;
                            count += 1;
                        }
                        _ => {}
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    count
}

/// An expression string within DynamoDB's length and operator limits.
pub fn expression(kind: &str, expr: &str) -> Result<(), String> {
    if expr.len() > MAX_EXPRESSION_BYTES {
        return Err(format!("{kind} is {} bytes, more than DynamoDB's {MAX_EXPRESSION_BYTES}", expr.len()));
    }
    let ops = operators(expr);
    if ops > MAX_EXPRESSION_OPERATORS {
        return Err(format!(
            "{kind} has {ops} operators or functions, more than DynamoDB's {MAX_EXPRESSION_OPERATORS}"
        ));
    }
    Ok(())
}

/// A compact DynamoDB JSON value: the text of a plain `{"S":"…"}` or
/// `{"N":"…"}` without escapes is read directly, anything else through serde.
enum Av<'v> {
    S(&'v str),
    N(&'v str),
    Other(Value),
}

fn read_av(json: &str) -> Av<'_> {
    for (prefix, s) in [("{\"S\":\"", true), ("{\"N\":\"", false)] {
        if let Some(body) = json.strip_prefix(prefix).and_then(|r| r.strip_suffix("\"}")) {
            if !body.contains(['\\', '"']) {
                return if s { Av::S(body) } else { Av::N(body) };
            }
        }
    }
    Av::Other(serde_json::from_str(json).unwrap_or(Value::Null))
}

/// Size in bytes of an attribute value (DynamoDB's rules, module docs).
pub fn value_size(v: &Value) -> usize {
    let Some((ty, inner)) = v.as_object().and_then(|m| m.iter().next()) else { return 0 };
    match (ty.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        ("N", Value::String(n)) => number_size(n),
        ("B", Value::String(b)) => base64_len(b),
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::len).sum(),
        ("NS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(number_size).sum(),
        ("BS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(base64_len).sum(),
        ("L", Value::Array(a)) => 3 + a.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        ("M", Value::Object(m)) => 3 + m.iter().map(|(k, e)| 1 + k.len() + value_size(e)).sum::<usize>(),
        _ => 0,
    }
}

fn number_size(n: &str) -> usize {
    let digits = n.bytes().take_while(|b| !matches!(b, b'e' | b'E')).filter(u8::is_ascii_digit).count();
    digits.div_ceil(2) + 1
}

fn base64_len(b: &str) -> usize {
    let pad = b.bytes().rev().take_while(|&c| c == b'=').count();
    (b.len() / 4 * 3).saturating_sub(pad)
}

fn attr_size(json: &str) -> usize {
    match read_av(json) {
        Av::S(s) => s.len(),
        Av::N(n) => number_size(n),
        Av::Other(v) => value_size(&v),
    }
}

/// Every number in a value, checked; an attribute value (at any depth) must have exactly one
/// type key, as DynamoDB requires (`{"": {}, "N": ""}` is none).
fn numbers_in(json: &str) -> Result<(), String> {
    fn walk(v: &Value) -> Result<(), String> {
        let Some(m) = v.as_object() else { return Ok(()) };
        let mut entries = m.iter();
        let (Some((ty, inner)), None) = (entries.next(), entries.next()) else {
            return Err(format!("an attribute value has {} type keys, not 1", m.len()));
        };
        match (ty.as_str(), inner) {
            ("N", Value::String(n)) => number_text(n),
            ("NS", Value::Array(a)) => a.iter().filter_map(Value::as_str).try_for_each(number_text),
            ("L", Value::Array(a)) => a.iter().try_for_each(walk),
            ("M", Value::Object(m)) => m.values().try_for_each(walk),
            _ => Ok(()),
        }
    }
    match read_av(json) {
        Av::S(_) => Ok(()),
        Av::N(n) => number_text(n),
        Av::Other(v) => walk(&v),
    }
}

/// The string of a key attribute value, or an error naming its type.
fn key_string(attr: &str, json: &str) -> Result<String, String> {
    match read_av(json) {
        Av::S(s) => Ok(s.to_string()),
        Av::Other(v) => match v.get("S").and_then(Value::as_str) {
            Some(s) => Ok(s.to_string()),
            None => Err(format!("key attribute {attr} is not a string")),
        },
        Av::N(_) => Err(format!("key attribute {attr} is not a string")),
    }
}

fn table_key<'a>(attrs: impl IntoIterator<Item = &'a Attribute> + Clone) -> Result<(), String> {
    for (name, max) in [("PK", MAX_PARTITION_KEY_BYTES), ("SK", MAX_SORT_KEY_BYTES)] {
        let Some(a) = attrs.clone().into_iter().find(|a| a.name == name) else {
            return Err(format!("key attribute {name} is missing"));
        };
        key_value(name, &key_string(name, &a.value)?, max)?;
    }
    Ok(())
}

/// Placeholders (`#x`, `:x`) an expression mentions, in order.
fn placeholders(expr: &str) -> Vec<&str> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'#' || b[i] == b':' {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(&expr[start..i]);
        } else {
            i += 1;
        }
    }
    out
}

/// The value placeholder an update expression assigns to `name_ph`:
/// `#a = :v` or `#a = if_not_exists(#a, :v)`.
fn assigned_value<'e>(expr: &'e str, name_ph: &str) -> Option<&'e str> {
    let pat = format!("{name_ph} = ");
    let mut from = 0;
    while let Some(pos) = expr[from..].find(&pat) {
        let at = from + pos;
        let before_ok = at == 0 || !expr.as_bytes()[at - 1].is_ascii_alphanumeric();
        let rest = &expr[at + pat.len()..];
        if before_ok {
            let rest = rest.strip_prefix(&format!("if_not_exists({name_ph}, ")).unwrap_or(rest);
            return placeholders(rest).into_iter().next().filter(|p| p.starts_with(':'));
        }
        from = at + pat.len();
    }
    None
}

fn find<'w>(values: &'w [Attribute], ph: &str) -> Option<&'w Attribute> {
    values.iter().find(|a| a.name == ph)
}

fn name_of<'w>(names: &'w [ExpressionName], ph: &str) -> Option<&'w str> {
    names.iter().find(|n| n.placeholder == ph).map(|n| n.name.as_str())
}

/// Check one planned write against every limit; `Err` names the first broken.
pub fn check_write(w: &Write) -> Result<(), String> {
    check_operation(&w.operation)
}

/// [`check_write`] of one operation; a transaction's actions are checked
/// one by one (each is an item write or a condition on one item).
pub fn check_operation(op: &Operation) -> Result<(), String> {
    match op {
        Operation::PutObject(_) => Ok(()),
        Operation::TransactWriteItems(items) => {
            if items.is_empty() || items.len() > 100 {
                return Err(format!("a transaction holds 1 to 100 actions, not {}", items.len()));
            }
            for item in items {
                match item {
                    crate::plan::TransactItem::Put(p) => check_operation(&Operation::PutItem(p.clone()))?,
                    crate::plan::TransactItem::Update(u) => check_operation(&Operation::UpdateItem(u.clone()))?,
                    crate::plan::TransactItem::ConditionCheck(c) => {
                        table_key(&c.key)?;
                        expression("ConditionExpression", &c.condition_expression)?;
                        for v in &c.values {
                            numbers_in(&v.value)?;
                        }
                    }
                }
            }
            Ok(())
        }
        Operation::UpdateItem(u) => {
            table_key(&u.key)?;
            for n in &u.names {
                let Some(max) = index_key_limit(&n.name) else { continue };
                let Some(v) = assigned_value(&u.update_expression, &n.placeholder).and_then(|p| find(&u.values, p))
                else {
                    continue;
                };
                if let Ok(s) = key_string(&n.name, &v.value) {
                    key_value(&n.name, &s, max)?;
                }
            }
            expression("UpdateExpression", &u.update_expression)?;
            if let Some(c) = &u.condition_expression {
                expression("ConditionExpression", c)?;
            }
            for v in &u.values {
                numbers_in(&v.value)?;
            }
            let mut size: usize = u.key.iter().map(|a| a.name.len() + attr_size(&a.value)).sum();
            let mut seen: Vec<&str> = Vec::new();
            for ph in placeholders(&u.update_expression) {
                if seen.contains(&ph) {
                    continue;
                }
                seen.push(ph);
                if ph.starts_with('#') {
                    size += name_of(&u.names, ph).map_or(0, str::len);
                } else if let Some(v) = find(&u.values, ph) {
                    size += attr_size(&v.value);
                }
            }
            item_size(size)
        }
        Operation::PutItem(p) => {
            table_key(p.attributes())?;
            for a in p.attributes() {
                if let Some(max) = index_key_limit(&a.name) {
                    if let Ok(s) = key_string(&a.name, &a.value) {
                        key_value(&a.name, &s, max)?;
                    }
                }
            }
            if let Some(c) = &p.condition_expression {
                expression("ConditionExpression", c)?;
            }
            for v in p.attributes().chain(&p.values) {
                numbers_in(&v.value)?;
            }
            item_size(p.attributes().map(|a| a.name.len() + attr_size(&a.value)).sum())
        }
    }
}

fn item_size(size: usize) -> Result<(), String> {
    if size > MAX_ITEM_BYTES {
        return Err(format!("the item is at least {size} bytes, more than DynamoDB's {MAX_ITEM_BYTES}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{OnConditionFailure, Purpose, PutItem, UpdateItem};

    #[test]
    fn significant_digits_ignore_trailing_zeros() {
        assert_eq!(significant_digits(0), 0);
        assert_eq!(significant_digits(-1200), 2);
        assert_eq!(significant_digits(10i128.pow(38)), 1);
        assert_eq!(significant_digits(i128::MIN), 39);
        assert!(number(10i128.pow(38) - 1).is_ok(), "38 nines");
        assert!(number(10i128.pow(38) + 1).unwrap_err().contains("39 significant digits"));
        assert!(number(i128::MAX).is_err());
    }

    #[test]
    fn number_text_checks_digits_and_magnitude() {
        for ok in ["0", "-0", "12", "1.50", "1E+125", "9.9999999999999999999999999999999999999E+125", "1E-130", "0.000"]
        {
            assert!(number_text(ok).is_ok(), "{ok}");
        }
        for bad in
            ["1E+126", "1E-131", "123456789012345678901234567890123456789", "0.123456789012345678901234567890123456789"]
        {
            assert!(number_text(bad).is_err(), "{bad}");
        }
        assert!(number_text("1000000000000000000000000000000000000000").is_ok(), "40 digits, 1 significant");
    }

    #[test]
    fn attribute_values_need_exactly_one_type_key() {
        assert!(numbers_in(r#"{"N":"5"}"#).is_ok());
        assert!(numbers_in(r#"{"M":{"a":{"N":"1"},"b":{"L":[{"S":"x"}]}}}"#).is_ok());
        for bad in [r#"{"":{},"N":""}"#, r#"{}"#, r#"{"M":{"a":{"N":"1","S":"x"}}}"#, r#"{"L":[{}]}"#] {
            assert!(numbers_in(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn index_key_names() {
        assert_eq!(index_key_limit("GSI2PK"), Some(2048));
        assert_eq!(index_key_limit("GSI12SK"), Some(1024));
        for no in ["GSIPK", "GSI2", "gsi2pk", "GSI2PKX", "PK", "GSIxSK", "GSI\u{3ab}a", "GSIa\u{3ab}", "GSI\u{3ab}"] {
            assert_eq!(index_key_limit(no), None, "{no}");
        }
    }

    #[test]
    fn operator_counting() {
        assert_eq!(operators("SET a = :val1 + :val2 + :val3"), 3);
        assert_eq!(
            operators("(attribute_not_exists(#w0) OR #w0 < :f0) AND (attribute_not_exists(#w1) OR #w1 < :f1)"),
            7
        );
        assert_eq!(operators("SET #rf = :rf_new ADD #k0 :d0, #k1 :d1"), 3);
        assert_eq!(operators("#k0 <= :c0 AND #a <> :b"), 3);
        assert_eq!(operators("attribute_not_exists(#pk)"), 1);
        assert_eq!(operators("#sc < :new"), 1);
    }

    fn update(key: (&str, &str), expr: &str, cond: &str, names: &[(&str, &str)], values: Vec<Attribute>) -> Write {
        Write::new(
            Purpose::Snapshot,
            Operation::UpdateItem(UpdateItem {
                table_name: "t".into(),
                key: vec![Attribute::s("PK", key.0), Attribute::s("SK", key.1)],
                update_expression: expr.into(),
                condition_expression: Some(cond.into()),
                names: names
                    .iter()
                    .map(|(p, n)| ExpressionName { placeholder: p.to_string(), name: n.to_string() })
                    .collect(),
                values,
            }),
            OnConditionFailure::Ignore,
            vec![0],
        )
    }

    #[test]
    fn keys_are_checked() {
        let ok = update(("p", "s"), "SET #a = :a", "#a < :a", &[("#a", "x")], vec![Attribute::n(":a", 1)]);
        assert!(check_write(&ok).is_ok());
        let long_sk = "s".repeat(1025);
        let w = update(("p", &long_sk), "SET #a = :a", "#a < :a", &[("#a", "x")], vec![Attribute::n(":a", 1)]);
        assert!(check_write(&w).unwrap_err().contains("SK is 1025 bytes"));
        let w = update(("", "s"), "SET #a = :a", "#a < :a", &[("#a", "x")], vec![Attribute::n(":a", 1)]);
        assert!(check_write(&w).unwrap_err().contains("PK is empty"));
        let long_pk = "é".repeat(1025);
        let w = update((&long_pk, "s"), "SET #a = :a", "#a < :a", &[("#a", "x")], vec![Attribute::n(":a", 1)]);
        assert!(check_write(&w).unwrap_err().contains("PK is 2050 bytes"), "bytes, not characters");
    }

    #[test]
    fn index_keys_an_update_assigns_are_checked() {
        let expr = "SET #g = :g, #h = if_not_exists(#h, :h)";
        let names = [("#g", "GSI2SK"), ("#h", "GSI4PK")];
        let w = update(("p", "s"), expr, "#g < :g", &names, vec![Attribute::s(":g", "x"), Attribute::s(":h", "")]);
        assert!(check_write(&w).unwrap_err().contains("GSI4PK is empty"));
        let w = update(
            ("p", "s"),
            expr,
            "#g < :g",
            &names,
            vec![Attribute::s(":g", &"x".repeat(1025)), Attribute::s(":h", "ns")],
        );
        assert!(check_write(&w).unwrap_err().contains("GSI2SK is 1025 bytes"));
        let w = update(("p", "s"), expr, "#g < :g", &names, vec![Attribute::s(":g", "x"), Attribute::s(":h", "n")]);
        assert!(check_write(&w).is_ok());
    }

    #[test]
    fn numbers_expressions_and_size_are_checked() {
        let w = update(("p", "s"), "ADD #a :a", "#a < :b", &[("#a", "x")], vec![Attribute::n(":a", i128::MAX)]);
        assert!(check_write(&w).unwrap_err().contains("significant digits"));
        let cond = vec!["#a < :a"; 151].join(" AND ");
        let w = update(("p", "s"), "ADD #a :a", &cond, &[("#a", "x")], vec![Attribute::n(":a", 1)]);
        assert!(check_write(&w).unwrap_err().contains("301 operators"));
        let cond = format!("#a < :a{}", " ".repeat(4096));
        let w = update(("p", "s"), "ADD #a :a", &cond, &[("#a", "x")], vec![Attribute::n(":a", 1)]);
        assert!(check_write(&w).unwrap_err().contains("ConditionExpression is 4103 bytes"));
        let big = "v".repeat(MAX_ITEM_BYTES);
        let w = update(("p", "s"), "SET #a = :a", "#a < :b", &[("#a", "x")], vec![Attribute::s(":a", &big)]);
        assert!(check_write(&w).unwrap_err().contains("at least"));
        let w = update(("p", "s"), "SET #a = :b", "#a < :a", &[("#a", "x")], vec![Attribute::s(":a", &big)]);
        assert!(check_write(&w).is_ok(), "a value only the condition uses is not stored");
    }

    #[test]
    fn put_items_check_every_index_key_number_and_size() {
        let put = |item: Vec<Attribute>| {
            Write::new(
                Purpose::ShardPropagate,
                Operation::PutItem(PutItem {
                    table_name: "t".into(),
                    base: None,
                    item,
                    condition_expression: Some("attribute_not_exists(#pk)".into()),
                    names: vec![],
                    values: vec![],
                }),
                OnConditionFailure::Ignore,
                vec![0],
            )
        };
        let base = || vec![Attribute::s("PK", "p"), Attribute::s("SK", "s")];
        assert!(check_write(&put(base())).is_ok());
        let mut item = base();
        item.push(Attribute::s("GSI3PK", ""));
        assert!(check_write(&put(item)).unwrap_err().contains("GSI3PK is empty"));
        let mut item = base();
        item.push(Attribute::raw("m", r#"{"M":{"x":{"L":[{"N":"1E+200"}]}}}"#.into()));
        assert!(check_write(&put(item)).unwrap_err().contains("outside DynamoDB's range"));
        let mut item = base();
        item.push(Attribute::raw("b", format!("{{\"B\":\"{}\"}}", "AAAA".repeat(MAX_ITEM_BYTES / 3 + 1))));
        assert!(check_write(&put(item)).unwrap_err().contains("at least"));
    }

    #[test]
    fn value_sizes_follow_dynamodb_rules() {
        let size = |j: &str| value_size(&serde_json::from_str(j).unwrap());
        assert_eq!(size(r#"{"S":"héllo"}"#), 6);
        assert_eq!(size(r#"{"N":"12345"}"#), 4);
        assert_eq!(size(r#"{"B":"AAEC"}"#), 3);
        assert_eq!(size(r#"{"BOOL":true}"#), 1);
        assert_eq!(size(r#"{"M":{"ab":{"S":"x"}}}"#), 3 + 1 + 2 + 1);
        assert_eq!(size(r#"{"L":[{"S":"x"},{"NULL":true}]}"#), 3 + 2 + 2);
    }

    #[test]
    fn number_syntax_is_dynamodbs() {
        for ok in ["0", "-1", "1.5", ".5", "5.", "1e5", "1E-5", "-1.2e+3", "00012"] {
            assert!(number_syntax(ok), "{ok}");
        }
        for bad in ["", "-", ".", "+1", " 1", "1 ", "1_000", "\u{feff}1", "1e", "1e+", "0x10", "inf", "NaN", "１"] {
            assert!(!number_syntax(bad), "{bad:?}");
            assert!(number_text(bad).is_err(), "{bad:?}");
        }
    }
}
