//! A compact JSON tree for one stream record at a time.
//!
//! serde_json does the lexing and validation (so syntax errors read exactly
//! as serde_json words them), and this module decides what is kept: strings
//! borrow from the event text unless they contain escapes, numbers stay
//! `serde_json::Number`, and every node of a record lives in one reusable
//! arena. An object's entries are contiguous in the arena, in first-seen
//! order; a repeated key replaces the value in place (JSON object semantics of
//! Python's `json` and of serde_json's ordered map). Building a record costs
//! no allocation once the arena has grown to the largest record, and nothing
//! has to be freed node by node.
//!
//! Objects with more than [`INDEXED`] entries also get a hash index (kept in
//! the arena next to the entries), used both to find a repeated key while the
//! object is read and by [`Obj::get`]: reading an object and looking up its
//! keys costs time linear in its size however wide it is, while small objects
//! (every envelope, every attribute value) stay on the plain scan
//! (docs/benchmarks.md#wide-images).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// One node. Arrays and objects point at a contiguous range of the arena.
#[derive(Debug, Clone)]
enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Array {
        start: u32,
        len: u32,
    },
    /// `index` is the offset of the object's hash index in [`Arena::tables`]
    /// ([`NO_INDEX`] for a small object).
    Object {
        start: u32,
        len: u32,
        index: u32,
    },
}

/// Objects with more entries than this are indexed by hash.
pub const INDEXED: usize = 16;

/// [`Node::Object`]'s `index` of an object without one.
const NO_INDEX: u32 = u32::MAX;

/// A slot of a [`StrIndex`] that holds no position.
const EMPTY: u32 = u32::MAX;

/// The hash of a key: FNV-1a over its bytes with a final mix. Fixed (no
/// random seed), so the planner stays deterministic and needs no entropy.
fn key_hash(k: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in k.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

/// An open-addressing hash index over a list of distinct strings: each slot
/// holds the position of one string in the list (or [`EMPTY`]). The list
/// itself is not kept: callers pass a function from a position to its
/// string. At most half the slots are used, so a probe ends after a few slots
/// on average.
#[derive(Debug, Default, Clone)]
pub struct StrIndex {
    slots: Vec<u32>,
}

impl StrIndex {
    /// An index of the first `len` strings of the list (`key_at(0..len)`),
    /// which must be distinct.
    pub fn build<'k>(len: usize, key_at: impl Fn(u32) -> &'k str) -> StrIndex {
        let mut ix = StrIndex { slots: vec![EMPTY; (len * 2).next_power_of_two().max(16)] };
        for pos in 0..len as u32 {
            if let Err(slot) = ix.find(key_at(pos), &key_at) {
                ix.slots[slot] = pos;
            }
        }
        ix
    }

    /// The position of `key`, or the free slot where it would go.
    pub fn find<'k>(&self, key: &str, key_at: impl Fn(u32) -> &'k str) -> Result<u32, usize> {
        find_in(&self.slots, key, key_at)
    }

    /// Record that `key_at(pos)` (the list's newest string, found absent at
    /// `slot`) is at `pos`; `pos + 1` strings are then indexed.
    pub fn insert<'k>(&mut self, slot: usize, pos: u32, key_at: impl Fn(u32) -> &'k str) {
        self.slots[slot] = pos;
        let len = pos as usize + 1;
        if len * 2 > self.slots.len() {
            *self = StrIndex::build(len, key_at);
        }
    }
}

/// Positions of the distinct strings of a growing list: a plain scan while
/// the list has at most [`INDEXED`] strings, a [`StrIndex`] beyond, so that
/// finding every string of a list costs time linear in its length.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    index: Option<StrIndex>,
}

impl Positions {
    /// The position of `key` in the list `key_at(0..len)`.
    pub fn find<'k>(&self, len: usize, key: &str, key_at: impl Fn(u32) -> &'k str) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.find(key, key_at).ok().map(|p| p as usize),
            None => (0..len as u32).position(|p| key_at(p) == key),
        }
    }

    /// The list now has `len` strings, the last of them new.
    pub fn pushed<'k>(&mut self, len: usize, key_at: impl Fn(u32) -> &'k str) {
        match &mut self.index {
            Some(ix) => {
                let pos = len as u32 - 1;
                if let Err(slot) = ix.find(key_at(pos), &key_at) {
                    ix.insert(slot, pos, key_at);
                }
            }
            None if len > INDEXED => self.index = Some(StrIndex::build(len, key_at)),
            None => {}
        }
    }
}

/// [`StrIndex::find`] over the slots of an index (a power-of-two count).
fn find_in<'k>(slots: &[u32], key: &str, key_at: impl Fn(u32) -> &'k str) -> Result<u32, usize> {
    let mask = slots.len() - 1;
    let mut i = key_hash(key) as usize & mask;
    loop {
        match slots[i] {
            EMPTY => return Err(i),
            pos if compared(key_at(pos) == key) => return Ok(pos),
            _ => i = (i + 1) & mask,
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Key comparisons made while reading objects and finding keys (tests only).
    static COMPARISONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Count one key comparison (in tests) and return its result.
#[inline(always)]
fn compared(equal: bool) -> bool {
    #[cfg(test)]
    COMPARISONS.with(|c| c.set(c.get() + 1));
    equal
}

/// Entries of every array and object of the current record. Array elements
/// carry an empty key.
#[derive(Debug, Default)]
pub struct Arena<'a> {
    entries: Vec<(Cow<'a, str>, Node<'a>)>,
    scratch: Vec<(Cow<'a, str>, Node<'a>)>,
    /// The hash indexes of wide objects, each its slot count then its slots.
    tables: Vec<u32>,
}

impl<'a> Arena<'a> {
    /// Forget every node (keeps the capacity).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.scratch.clear();
        self.tables.clear();
    }

    /// Finish a container whose entries are `scratch[base..]`.
    fn close(&mut self, base: usize) -> Result<(u32, u32), String> {
        let start = self.entries.len();
        let len = self.scratch.len() - base;
        let (Ok(s), Ok(l)) = (u32::try_from(start), u32::try_from(len)) else {
            return Err("record has more than 2^32 JSON values".into());
        };
        self.entries.extend(self.scratch.drain(base..));
        Ok((s, l))
    }
}

/// Which keys of an object are worth keeping. Stream records carry envelope
/// fields (`eventID`, `awsRegion`, `SizeBytes`, …) the planner never reads;
/// those are validated by serde_json and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every key, at every depth below.
    All,
    /// A stream record: `eventName` and `dynamodb`.
    Record,
    /// A record's `dynamodb`: sequence number, time and the three images.
    Dynamodb,
}

impl Keep {
    /// Whether `key` is kept, and how the value below it is filtered.
    fn child(self, key: &str) -> Option<Keep> {
        match self {
            Keep::All => Some(Keep::All),
            Keep::Record => match key {
                "eventName" => Some(Keep::All),
                "dynamodb" => Some(Keep::Dynamodb),
                _ => None,
            },
            Keep::Dynamodb => match key {
                "SequenceNumber" | "ApproximateCreationDateTime" | "NewImage" | "OldImage" | "Keys" => Some(Keep::All),
                _ => None,
            },
        }
    }
}

/// A cheap 7-bit hash of a key, to skip the duplicate scan for keys not seen
/// (while an object is small).
fn key_bit(k: &str) -> u128 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in k.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    1u128 << ((h ^ (h >> 7) ^ (h >> 14)) & 127)
}

/// Parses one value into the arena and returns its root node.
pub struct NodeSeed<'s, 'a> {
    arena: &'s mut Arena<'a>,
    keep: Keep,
}

impl<'s, 'a> NodeSeed<'s, 'a> {
    /// A seed that keeps what `keep` says.
    pub fn new(arena: &'s mut Arena<'a>, keep: Keep) -> Self {
        NodeSeed { arena, keep }
    }
}

/// The root node of a value parsed by [`NodeSeed`].
#[derive(Debug)]
pub struct Root<'a>(Node<'a>);

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, 'de> {
    type Value = Root<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Root<'de>, D::Error> {
        d.deserialize_any(NodeVisitor { arena: self.arena, keep: self.keep }).map(Root)
    }
}

/// Builds one node (and everything below it) into the arena.
struct NodeVisitor<'s, 'a> {
    arena: &'s mut Arena<'a>,
    keep: Keep,
}

impl<'de> Visitor<'de> for NodeVisitor<'_, 'de> {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node<'de>, E> {
        Number::from_f64(v).map(Node::Number).ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let base = self.arena.scratch.len();
        while let Some(Root(node)) = seq.next_element_seed(NodeSeed { arena: &mut *self.arena, keep: Keep::All })? {
            self.arena.scratch.push((Cow::Borrowed(""), node));
        }
        let (start, len) = self.arena.close(base).map_err(de::Error::custom)?;
        Ok(Node::Array { start, len })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let base = self.arena.scratch.len();
        let mut seen: u128 = 0;
        let mut index: Option<StrIndex> = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let Some(keep) = self.keep.child(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let Root(node) = map.next_value_seed(NodeSeed { arena: &mut *self.arena, keep })?;
            let entries = &mut self.arena.scratch;
            // A repeated key keeps its first position and takes the last value.
            if let Some(ix) = &mut index {
                let key_at = |pos: u32| &*entries[base + pos as usize].0;
                match ix.find(&key, key_at) {
                    Ok(pos) => entries[base + pos as usize].1 = node,
                    Err(slot) => {
                        let pos = (entries.len() - base) as u32;
                        entries.push((key, node));
                        let entries = &*entries;
                        ix.insert(slot, pos, |pos| &*entries[base + pos as usize].0);
                    }
                }
                continue;
            }
            let bit = key_bit(&key);
            if seen & bit != 0 {
                if let Some(slot) = entries[base..].iter_mut().find(|(k, _)| compared(*k == key)) {
                    slot.1 = node;
                    continue;
                }
            }
            seen |= bit;
            entries.push((key, node));
            let len = entries.len() - base;
            if len > INDEXED {
                let entries = &*entries;
                index = Some(StrIndex::build(len, |pos| &*entries[base + pos as usize].0));
            }
        }
        let (start, len) = self.arena.close(base).map_err(de::Error::custom)?;
        let index = match index {
            None => NO_INDEX,
            Some(ix) => {
                let tables = &mut self.arena.tables;
                let (Ok(at), Ok(n)) = (u32::try_from(tables.len()), u32::try_from(ix.slots.len())) else {
                    return Err(de::Error::custom("record has more than 2^32 JSON values"));
                };
                tables.push(n);
                tables.extend_from_slice(&ix.slots);
                at
            }
        };
        Ok(Node::Object { start, len, index })
    }
}

/// Object keys, borrowed when they have no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// A value in an arena.
#[derive(Debug, Clone, Copy)]
pub struct Val<'t, 'a> {
    arena: &'t Arena<'a>,
    node: &'t Node<'a>,
}

/// An object in an arena.
#[derive(Debug, Clone, Copy)]
pub struct Obj<'t, 'a> {
    entries: &'t [(Cow<'a, str>, Node<'a>)],
    arena: &'t Arena<'a>,
    /// The slots of the object's hash index, if it is wide.
    index: Option<&'t [u32]>,
}

impl<'t, 'a> Val<'t, 'a> {
    /// The root of a value parsed into `arena`.
    pub fn root(arena: &'t Arena<'a>, root: &'t Root<'a>) -> Self {
        Val { arena, node: &root.0 }
    }

    /// The string, if this is one.
    pub fn as_str(self) -> Option<&'t str> {
        match self.node {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The string with the event's lifetime (a copy only when it had escapes).
    pub fn as_cow(self) -> Option<Cow<'a, str>> {
        match self.node {
            Node::Str(Cow::Borrowed(s)) => Some(Cow::Borrowed(s)),
            Node::Str(Cow::Owned(s)) => Some(Cow::Owned(s.clone())),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_number(self) -> Option<&'t Number> {
        match self.node {
            Node::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub fn as_object(self) -> Option<Obj<'t, 'a>> {
        match *self.node {
            Node::Object { start, len, index } => Some(self.arena.object(start, len, index)),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(self) -> bool {
        matches!(self.node, Node::Null)
    }

    /// Copy into a `serde_json::Value` (same order, same numbers).
    pub fn to_value(self) -> Value {
        match self.node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.to_string()),
            Node::Array { start, len } => Value::Array(
                self.arena
                    .range(*start, *len)
                    .iter()
                    .map(|(_, n)| Val { arena: self.arena, node: n }.to_value())
                    .collect(),
            ),
            Node::Object { start, len, index } => Value::Object(self.arena.object(*start, *len, *index).to_map()),
        }
    }
}

impl<'a> Arena<'a> {
    fn range(&self, start: u32, len: u32) -> &[(Cow<'a, str>, Node<'a>)] {
        let start = start as usize;
        self.entries.get(start..start + len as usize).unwrap_or(&[])
    }

    fn object<'t>(&'t self, start: u32, len: u32, index: u32) -> Obj<'t, 'a> {
        let index = (index != NO_INDEX).then(|| {
            let at = index as usize + 1;
            let n = self.tables.get(index as usize).copied().unwrap_or(0) as usize;
            self.tables.get(at..at + n).unwrap_or(&[])
        });
        // An index is never empty (so `find_in` has a slot count to mask with).
        Obj { entries: self.range(start, len), arena: self, index: index.filter(|s| !s.is_empty()) }
    }
}

impl<'t, 'a> Obj<'t, 'a> {
    /// The value of `name`.
    pub fn get(self, name: &str) -> Option<Val<'t, 'a>> {
        let entries = self.entries;
        let node = match self.index {
            Some(slots) => {
                let pos = find_in(slots, name, |pos| entries.get(pos as usize).map_or("", |(k, _)| &**k)).ok()?;
                &entries.get(pos as usize)?.1
            }
            None => &entries.iter().find(|(k, _)| compared(k == name))?.1,
        };
        Some(Val { arena: self.arena, node })
    }

    /// Entries in order.
    pub fn iter(self) -> impl Iterator<Item = (&'t str, Val<'t, 'a>)> {
        let arena = self.arena;
        self.entries.iter().map(move |(k, node)| (&**k, Val { arena, node }))
    }

    /// Keys in order.
    pub fn keys(self) -> impl Iterator<Item = &'t str> {
        self.entries.iter().map(|(k, _)| &**k)
    }

    /// Number of entries.
    pub fn len(self) -> usize {
        self.entries.len()
    }

    /// Whether the object has no entries.
    pub fn is_empty(self) -> bool {
        self.entries.is_empty()
    }

    /// Copy into a `serde_json` map (same order).
    pub fn to_map(self) -> Map<String, Value> {
        self.iter().map(|(k, v)| (k.to_string(), v.to_value())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(arena: &mut Arena<'a>, text: &'a str) -> Root<'a> {
        let mut de = serde_json::Deserializer::from_str(text);
        let root = NodeSeed::new(arena, Keep::All).deserialize(&mut de).unwrap();
        de.end().unwrap();
        root
    }

    #[test]
    fn round_trips_through_serde_json_values() {
        let text = r#"{"b":[1,-2,3.5,1e3,18446744073709551615,true,null,"x\u00e9\n"],"a":{"M":{"k":{"S":"v"}}},"":{}}"#;
        let mut arena = Arena::default();
        let root = parse(&mut arena, text);
        let v = Val::root(&arena, &root).to_value();
        assert_eq!(v, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"b":[1,-2,3.5,1000.0,18446744073709551615,true,null,"xé\n"],"a":{"M":{"k":{"S":"v"}}},"":{}}"#,
            "numbers keep their kind, keys their order"
        );
        let keys: Vec<&str> = Val::root(&arena, &root).as_object().unwrap().keys().collect();
        assert_eq!(keys, ["b", "a", ""], "first-seen order");
    }

    #[test]
    fn repeated_keys_keep_the_first_position_and_the_last_value() {
        let text = r#"{"x":1,"y":2,"x":{"deep":[1,2]},"z":3,"y":"last"}"#;
        let mut arena = Arena::default();
        let root = parse(&mut arena, text);
        let obj = Val::root(&arena, &root).as_object().unwrap();
        let keys: Vec<&str> = obj.keys().collect();
        assert_eq!(keys, ["x", "y", "z"]);
        assert_eq!(obj.get("y").unwrap().as_str(), Some("last"));
        assert_eq!(Val::root(&arena, &root).to_value(), serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn many_keys_with_colliding_hashes_are_all_kept() {
        let mut text = String::from("{");
        for i in 0..500 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str("\"k7\":\"again\"}");
        let mut arena = Arena::default();
        let root = parse(&mut arena, &text);
        let obj = Val::root(&arena, &root).as_object().unwrap();
        assert_eq!(obj.len(), 500);
        assert_eq!(obj.get("k7").unwrap().as_str(), Some("again"));
        assert_eq!(obj.get("k499").unwrap().as_number().unwrap().as_u64(), Some(499));
    }

    /// An object of `n` distinct keys `k0…`, then every tenth key again with
    /// a string value, then (escaped) a key that repeats `k1`.
    fn wide_object(n: usize) -> String {
        let mut text = String::from("{");
        for i in 0..n {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        for i in (0..n).step_by(10) {
            text.push_str(&format!("\"k{i}\":\"again {i}\","));
        }
        text.push_str("\"\\u006b1\":\"escaped\"}");
        text
    }

    #[test]
    fn wide_objects_keep_the_first_position_and_the_last_value() {
        for n in [INDEXED - 1, INDEXED, INDEXED + 1, 100, 1_000] {
            let text = wide_object(n);
            let mut arena = Arena::default();
            let root = parse(&mut arena, &text);
            let obj = Val::root(&arena, &root).as_object().unwrap();
            let keys: Vec<String> = obj.keys().map(str::to_string).collect();
            assert_eq!(keys, (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>(), "{n}");
            for i in 0..n {
                let v = obj.get(&format!("k{i}")).unwrap();
                match i {
                    1 => assert_eq!(v.as_str(), Some("escaped")),
                    i if i % 10 == 0 => assert_eq!(v.as_str(), Some(format!("again {i}").as_str())),
                    i => assert_eq!(v.as_number().unwrap().as_u64(), Some(i as u64)),
                }
            }
            assert!(obj.get("k").is_none() && obj.get("").is_none() && obj.get(&format!("k{n}")).is_none());
            assert_eq!(Val::root(&arena, &root).to_value(), serde_json::from_str::<Value>(&text).unwrap(), "{n}");
        }
    }

    #[test]
    fn reading_and_looking_up_wide_objects_is_linear_in_their_keys() {
        // Key comparisons, not time: reading an object of n keys (plus n/10
        // repeats) and looking every key up once stays under a fixed multiple
        // of n at every width (it was about n^2/2 past 128 keys).
        for n in [1_024, 4_096, 16_384] {
            let text = wide_object(n);
            let mut arena = Arena::default();
            COMPARISONS.with(|c| c.set(0));
            let root = parse(&mut arena, &text);
            let obj = Val::root(&arena, &root).as_object().unwrap();
            for i in 0..n {
                assert!(obj.get(&format!("k{i}")).is_some());
            }
            let comparisons = COMPARISONS.with(|c| c.get());
            assert!(comparisons <= 4 * n as u64, "{n} keys: {comparisons} comparisons");
        }
    }

    #[test]
    fn positions_find_each_string_of_a_growing_list() {
        let names: Vec<String> = (0..200).map(|i| format!("n{i}")).collect();
        let mut list: Vec<&str> = Vec::new();
        let mut ix = Positions::default();
        for n in &names {
            assert_eq!(ix.find(list.len(), n, |p| list[p as usize]), None);
            list.push(n);
            ix.pushed(list.len(), |p| list[p as usize]);
            for (i, m) in list.iter().enumerate() {
                assert_eq!(ix.find(list.len(), m, |p| list[p as usize]), Some(i));
            }
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let text = r#"{"plain":"abc","esc":"a\"b"}"#;
        let mut arena = Arena::default();
        let root = parse(&mut arena, text);
        let obj = Val::root(&arena, &root).as_object().unwrap();
        assert!(matches!(obj.get("plain").unwrap().as_cow(), Some(Cow::Borrowed("abc"))));
        assert!(matches!(obj.get("esc").unwrap().as_cow(), Some(Cow::Owned(s)) if s == "a\"b"));
    }

    #[test]
    fn record_filter_keeps_only_what_the_planner_reads() {
        let text = r#"{"eventID":"1","eventName":"MODIFY","awsRegion":"x","dynamodb":{"SizeBytes":3,
            "SequenceNumber":"5","NewImage":{"PK":{"S":"a"}},"StreamViewType":"NEW_AND_OLD_IMAGES"}}"#;
        let mut arena = Arena::default();
        let mut de = serde_json::Deserializer::from_str(text);
        let root = NodeSeed::new(&mut arena, Keep::Record).deserialize(&mut de).unwrap();
        let rec = Val::root(&arena, &root).as_object().unwrap();
        assert_eq!(rec.keys().collect::<Vec<_>>(), ["eventName", "dynamodb"]);
        let ddb = rec.get("dynamodb").unwrap().as_object().unwrap();
        assert_eq!(ddb.keys().collect::<Vec<_>>(), ["SequenceNumber", "NewImage"]);
    }
}
