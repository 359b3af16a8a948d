//! A JSON tree that keeps every member of an object, duplicates included, in
//! text order. The invariant checker reads the event with it so that it does
//! not have to guess which of two equal keys the planner reads
//! (`docs/specification.md#stream-records`): it accepts any of them.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One JSON value; objects keep duplicate keys.
#[derive(Debug, Clone, PartialEq)]
pub enum MultiJson {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any number (its value is not needed).
    Number,
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<MultiJson>),
    /// An object, every member in text order.
    Object(Vec<(String, MultiJson)>),
}

impl MultiJson {
    /// Parse JSON text (serde_json's grammar and nesting limit). A number is only a number
    /// here, whatever its value: one beyond `f64`'s range (`9e415`), which the planner takes
    /// as JSON grammar allows (serde_json range-checks only the numbers it converts), is read
    /// as `0` instead of failing the parse.
    pub fn parse(text: &str) -> Result<MultiJson, serde_json::Error> {
        serde_json::from_str(text).or_else(|e| match finite_numbers(text) {
            Some(rewritten) => serde_json::from_str(&rewritten),
            None => Err(e),
        })
    }

    /// Every value of member `key` (empty unless this is an object).
    pub fn all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s MultiJson> + 's {
        let members: &'s [(String, MultiJson)] = match self {
            MultiJson::Object(m) => m,
            _ => &[],
        };
        members.iter().filter(move |(k, _)| k == key).map(|(_, v)| v)
    }

    /// The last value of member `key` (what a last-wins reader sees).
    pub fn last<'s>(&'s self, key: &'s str) -> Option<&'s MultiJson> {
        self.all(key).last()
    }

    /// Every string reachable through the member path `path` (any duplicate at
    /// every step).
    pub fn strings_at(&self, path: &[&str]) -> Vec<String> {
        let mut level: Vec<&MultiJson> = vec![self];
        for key in path {
            level = level.iter().flat_map(|v| v.all(key)).collect();
        }
        level
            .into_iter()
            .filter_map(|v| match v {
                MultiJson::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for MultiJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MultiVisitor)
    }
}

struct MultiVisitor;

impl<'de> Visitor<'de> for MultiVisitor {
    type Value = MultiJson;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<MultiJson, E> {
        Ok(MultiJson::Bool(v))
    }

    fn visit_i64<E>(self, _: i64) -> Result<MultiJson, E> {
        Ok(MultiJson::Number)
    }

    fn visit_u64<E>(self, _: u64) -> Result<MultiJson, E> {
        Ok(MultiJson::Number)
    }

    fn visit_f64<E>(self, _: f64) -> Result<MultiJson, E> {
        Ok(MultiJson::Number)
    }

    fn visit_str<E>(self, v: &str) -> Result<MultiJson, E> {
        Ok(MultiJson::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<MultiJson, E> {
        Ok(MultiJson::Str(v))
    }

    fn visit_unit<E>(self) -> Result<MultiJson, E> {
        Ok(MultiJson::Null)
    }

    fn visit_none<E>(self) -> Result<MultiJson, E> {
        Ok(MultiJson::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MultiJson, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(MultiJson::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MultiJson, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, MultiJson>()? {
            out.push((k, v));
        }
        Ok(MultiJson::Object(out))
    }
}

/// `text` with every number token outside strings whose value overflows `f64` replaced by
/// `0`; `None` when there is none.
fn finite_numbers(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut chars = text.char_indices().peekable();
    let mut in_string = false;
    while let Some((i, c)) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some((_, next)) = chars.next() {
                        out.push(next);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == '-' || c.is_ascii_digit() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E' | '+' | '-') {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let token = &text[i..end];
            if token.parse::<f64>().is_ok_and(f64::is_infinite) {
                out.push('0');
                changed = true;
            } else {
                out.push_str(token);
            }
        } else {
            out.push(c);
        }
    }
    changed.then_some(out)
}
