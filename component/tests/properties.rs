//! Property tests of the planner as a whole.
//!
//! * Coalescing: for random batches, every snapshot write's counters and
//!   `total_events` equal the sums of the per-delta writes the Python
//!   aggregator would make (W6/W7), computed here independently.
//! * Robustness: arbitrary JSON and arbitrary attribute maps never panic, and
//!   every record gets exactly one outcome.
//! * Determinism: planning twice gives the same canonical plan.
//! * Repeated keys: an image that writes attributes several times (first
//!   position, last value, shuffled among the others) plans exactly like the
//!   image written once.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use zae_planner::config::Config;
use zae_planner::plan::{canonical_json, Batch, ObservedItem, Operation, Purpose};
use zae_planner::window::{window_key, Window};

const NOW: i64 = 1_704_067_200_000;

fn batch<'a>(event: &'a str, config: &'a Config) -> Batch<'a> {
    Batch { event_json: event, config, now_ms: NOW, invocation_id: "prop" }
}

/// (entity, shard, limit, old_tc, delta, seconds offset)
type Change = (u8, u8, u8, i64, i64, i64);

fn record(seq: u64, c: &Change) -> Value {
    let (entity, shard, limit, old_tc, delta, offset) = *c;
    let pk = format!("ns/BUCKET#e{entity}#res#{shard}");
    let name = ["tpm", "rpm", "wcu", "my-limit"][limit as usize % 4];
    json!({"eventName": "MODIFY", "dynamodb": {
        "SequenceNumber": seq.to_string(),
        "ApproximateCreationDateTime": 1_704_060_000 + offset,
        "NewImage": {"PK": {"S": pk}, "SK": {"S": "#STATE"}, "entity_id": {"S": format!("e{entity}")},
                     "rf": {"N": "1704060000000"}, "shard_count": {"N": "2"},
                     (format!("b_{name}_tc")): {"N": (old_tc + delta).to_string()}},
        "OldImage": {(format!("b_{name}_tc")): {"N": old_tc.to_string()}}}})
}

fn change() -> impl Strategy<Value = Change> {
    (0u8..3, 0u8..2, 0u8..4, -5_000_000i64..5_000_000, -3_000_000i64..3_000_000, 0i64..20_000)
}

fn counters_of(plan: &zae_planner::Plan) -> BTreeMap<(String, String), BTreeMap<String, i128>> {
    let mut out = BTreeMap::new();
    for w in plan.writes.iter().filter(|w| w.purpose == Purpose::Snapshot) {
        let Operation::UpdateItem(u) = &w.operation else { panic!("snapshot write is not an UpdateItem") };
        let s = |v: &str| -> String { serde_json::from_str::<Value>(v).unwrap()["S"].as_str().unwrap().to_string() };
        let key = (s(&u.key[0].value), s(&u.key[1].value));
        let names: BTreeMap<&str, &str> = u.names.iter().map(|n| (n.placeholder.as_str(), n.name.as_str())).collect();
        let values: BTreeMap<&str, &str> = u.values.iter().map(|v| (v.name.as_str(), v.value.as_str())).collect();
        let add = u.update_expression.split(" ADD ").nth(1).expect("ADD clause");
        let mut m = BTreeMap::new();
        for term in add.split(", ") {
            let (n, v) = term.split_once(' ').unwrap();
            let num: Value = serde_json::from_str(values[v]).unwrap();
            m.insert(names[n].to_string(), num["N"].as_str().unwrap().parse::<i128>().unwrap());
        }
        assert!(out.insert(key, m).is_none(), "one write per snapshot item");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn coalesced_counters_equal_per_delta_sums(changes in prop::collection::vec(change(), 0..60)) {
        let config = Config { windows: vec![Window::Hourly, Window::Daily, Window::Monthly], ..Config::default() };
        let records: Vec<Value> = changes.iter().enumerate().map(|(i, c)| record(1000 + i as u64, c)).collect();
        let event = json!({ "Records": records }).to_string();
        let plan = zae_planner::plan(&batch(&event, &config)).unwrap();
        // Independent model of upstream: one ADD per delta per window.
        let mut want: BTreeMap<(String, String), BTreeMap<String, i128>> = BTreeMap::new();
        for c in &changes {
            let name = ["tpm", "rpm", "wcu", "my-limit"][c.2 as usize % 4];
            if name == "wcu" || c.4 == 0 {
                continue;
            }
            let ts = (1_704_060_000 + c.5) * 1000;
            for w in &config.windows {
                let k = window_key(*w, ts).unwrap();
                let sk = if *w == Window::Hourly { format!("#USAGE#res#{k}") } else { format!("#USAGE#res#{k}#{}", w.name()) };
                let item = want.entry((format!("ns/ENTITY#e{}", c.0), sk)).or_default();
                *item.entry(name.to_string()).or_default() += (c.4 as i128).div_euclid(1000);
                *item.entry("total_events".to_string()).or_default() += 1;
            }
        }
        prop_assert_eq!(counters_of(&plan), want);
        prop_assert_eq!(canonical_json(&plan), canonical_json(&zae_planner::plan(&batch(&event, &config)).unwrap()));
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-zA-Z0-9#/_ .:+-]{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["MODIFY", "REMOVE", "INSERT", "S", "N", "M", "L", "NULL", "BOOL", "SS", "PK", "SK"])
            .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Records",
            "eventName",
            "dynamodb",
            "NewImage",
            "OldImage",
            "Keys",
            "SequenceNumber",
            "ApproximateCreationDateTime",
            "PK",
            "SK",
            "S",
            "N",
            "M",
            "L",
            "BOOL",
            "NULL",
            "rf",
            "shard_count",
            "entity_id",
            "b_tpm_tc",
            "b_tpm_tk",
            "b_tpm_cp",
            "b_wcu_tk",
            "b_wcu_cp",
            "b_wcu_tc",
            "action",
            "timestamp",
            "details",
            "event_id",
        ])
        .prop_map(str::to_string),
        "[a-z_#]{0,6}",
    ]
}

/// A number-ish or garbage N/S payload.
fn av_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        "-?[0-9]{1,45}",
        "[0-9 ._eE+-]{0,10}",
        prop::sample::select(vec![
            "ns/BUCKET#e#r#0",
            "ns/BUCKET#e#0",
            "BUCKET#e#r#0",
            "#STATE",
            "#BUCKET#r",
            "ns/AUDIT#x",
            "AUDIT#x",
            "2024-01-15T14:30:00Z",
            "2024-01-15T23:30:00-05:00",
            "9999-12-31T23:59:59+00:00",
            "",
        ])
        .prop_map(str::to_string),
    ]
}

fn av() -> impl Strategy<Value = Value> {
    prop_oneof![av_text().prop_map(|s| json!({ "S": s })), av_text().prop_map(|s| json!({ "N": s })), arb_json(),]
}

fn image() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), av()), 0..12).prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

fn structured_record() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["MODIFY", "REMOVE", "INSERT", "X"]),
        prop::option::of("[0-9]{1,42}"),
        prop::option::of(any::<i64>()),
        image(),
        image(),
    )
        .prop_map(|(name, seq, t, new, old)| {
            json!({"eventName": name, "dynamodb": {"SequenceNumber": seq, "ApproximateCreationDateTime": t,
                                                   "NewImage": new, "OldImage": old}})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let config = Config { archive_bucket: Some("b".into()), ..Config::default() };
        let text = v.to_string();
        let _ = zae_planner::plan(&batch(&text, &config));
        let wrapped = json!({ "Records": [v] }).to_string();
        let plan = zae_planner::plan(&batch(&wrapped, &config)).unwrap();
        prop_assert_eq!(plan.outcomes.len(), 1);
    }

    #[test]
    fn arbitrary_attribute_maps_never_panic(records in prop::collection::vec(structured_record(), 0..8),
                                            observed in prop::collection::vec(image(), 0..3)) {
        let config = Config {
            windows: vec![Window::Monthly, Window::Hourly],
            archive_bucket: Some("b".into()),
            dead_letter_bucket: Some("dl".into()),
            max_shard_count: 8,
            ..Config::default()
        };
        let event = json!({ "Records": records }).to_string();
        let plan = zae_planner::plan(&batch(&event, &config)).unwrap();
        prop_assert_eq!(plan.outcomes.len(), records.len());
        for w in &plan.writes {
            prop_assert!(w.records.windows(2).all(|p| p[0] < p[1]), "records ascending and unique");
            prop_assert!(w.records.iter().all(|&i| (i as usize) < records.len()));
        }
        prop_assert_eq!(canonical_json(&plan), canonical_json(&zae_planner::plan(&batch(&event, &config)).unwrap()));
        // Re-planning against arbitrary observed items never panics either.
        let observed: Vec<ObservedItem> = plan.writes.iter().zip(observed.iter().cycle()).filter_map(|(w, item)| match &w.operation {
            Operation::UpdateItem(_) if w.purpose == Purpose::Snapshot =>
                Some(ObservedItem { write_id: w.id, item: Some(item.to_string()) }),
            _ => None,
        }).collect();
        let replan = zae_planner::replan_snapshots(&batch(&event, &config), &observed).unwrap();
        // Every re-planned write replaces a snapshot write of the plan, under its id and for its item.
        for w in &replan.writes {
            let original = &plan.writes[w.id as usize];
            prop_assert_eq!(original.purpose, Purpose::Snapshot);
            prop_assert_eq!(&original.target, &w.target);
        }
        for (i, w) in plan.writes.iter().enumerate() {
            prop_assert_eq!(w.id as usize, i);
        }
    }
}

/// One attribute of a bucket image: its name and compact DynamoDB JSON value.
type Attr = (String, String);

/// A shard-0 bucket image of `n` attributes besides its keys: limit numbers
/// `b_l{k}_{field}` (some fields missing, some `cp` written as a string),
/// `shard_count`, `rf` and other attributes, in the order given by `order`.
fn image_attrs(n: usize, tc: i64, shard_count: u32, order: &[usize]) -> Vec<Attr> {
    let mut attrs: Vec<Attr> = vec![
        ("PK".into(), r#"{"S":"ns/BUCKET#e#r#0"}"#.into()),
        ("SK".into(), r##"{"S":"#STATE"}"##.into()),
        ("entity_id".into(), r#"{"S":"e"}"#.into()),
        ("rf".into(), r#"{"N":"1704067000000"}"#.into()),
        ("shard_count".into(), format!(r#"{{"N":"{shard_count}"}}"#)),
    ];
    let mut rest: Vec<Attr> = (0..n)
        .map(|i| {
            let k = i / 7;
            match i % 7 {
                0 => (format!("b_l{k}_tc"), format!(r#"{{"N":"{}"}}"#, tc + k as i64 * 1_000)),
                1 => (format!("b_l{k}_tk"), r#"{"N":"5000"}"#.into()),
                2 if k % 5 == 4 => (format!("b_l{k}_cp"), r#"{"S":"not a number"}"#.into()),
                2 => (format!("b_l{k}_cp"), format!(r#"{{"N":"{}"}}"#, 1_000_000 + k)),
                3 => (format!("b_l{k}_ra"), r#"{"N":"1000000"}"#.into()),
                4 if k % 3 == 2 => (format!("GSI{}SK", 2 + k % 3), r#"{"S":"BUCKET#x"}"#.into()),
                4 => (format!("b_l{k}_rp"), r#"{"N":"60000"}"#.into()),
                5 => (format!("x{k}"), format!(r#"{{"S":"v{i}"}}"#)),
                _ => (format!("m{k}"), format!(r#"{{"M":{{"a":{{"N":"{i}"}},"b":{{"L":[]}}}}}}"#)),
            }
        })
        .collect();
    // Distinct names only (a GSI name can come up twice): the first stays.
    let mut seen = std::collections::BTreeSet::new();
    rest.retain(|(name, _)| seen.insert(name.clone()));
    let mut keyed: Vec<(usize, Attr)> =
        rest.into_iter().enumerate().map(|(i, a)| (order[i % order.len()] ^ i, a)).collect();
    keyed.sort_by_key(|(k, _)| *k);
    attrs.extend(keyed.into_iter().map(|(_, a)| a));
    attrs
}

/// The image as a JSON object, each attribute preceded by `repeats[i]`
/// earlier occurrences of the same key with junk values, which the later one
/// replaces (first position, last value). Repeats go right after the key's
/// first occurrence or after a later attribute, as `spread` says.
fn object_text(attrs: &[Attr], repeats: &[u8], spread: &[usize]) -> String {
    let junk = [r#"{"N":"junk"}"#, r#"{"S":"x","S":"y"}"#, "null", r#"[1,{"N":"2"}]"#, r#"{"M":{}}"#];
    // (slot, text): entries are written in slot order; equal slots keep their order.
    let mut entries: Vec<(usize, String)> = Vec::new();
    let key = |name: &str| serde_json::to_string(name).unwrap();
    for (i, (name, value)) in attrs.iter().enumerate() {
        let r = repeats.get(i).copied().unwrap_or(0) as usize;
        if r == 0 {
            entries.push((i, format!("{}:{value}", key(name))));
            continue;
        }
        // First occurrence at the attribute's own place, with junk.
        entries.push((i, format!("{}:{}", key(name), junk[i % junk.len()])));
        for j in 1..r {
            let slot = i + spread.get(i + j).copied().unwrap_or(0) % (attrs.len() - i);
            entries.push((slot, format!("{}:{}", key(name), junk[(i + j) % junk.len()])));
        }
        // The last occurrence, after every other one of this key, has the value.
        let last = entries.iter().filter(|(_, t)| t.starts_with(&format!("{}:", key(name)))).map(|(s, _)| *s).max();
        entries.push((last.unwrap_or(i), format!("{}:{value}", key(name))));
    }
    entries.sort_by_key(|(slot, _)| *slot);
    let body: Vec<String> = entries.into_iter().map(|(_, t)| t).collect();
    format!("{{{}}}", body.join(","))
}

fn wide_event_text(new: &str, old: &str) -> String {
    format!(
        r#"{{"Records":[{{"eventName":"MODIFY","dynamodb":{{"SequenceNumber":"100","ApproximateCreationDateTime":1704067200,"NewImage":{new},"OldImage":{old}}}}}]}}"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A record's plan depends only on its images as JSON objects: writing an
    /// attribute several times (first position, last value), with junk in the
    /// earlier occurrences and the occurrences shuffled among the other
    /// attributes, gives the same canonical plan byte for byte, for images
    /// below and above the width at which objects are indexed
    /// (docs/benchmarks.md#wide-images). Covers usage, refill and the
    /// propagation clones (`shard_count` raised from 1 to 4).
    #[test]
    fn repeated_attributes_keep_the_first_position_and_the_last_value(
        n in 0usize..160,
        order in prop::collection::vec(0usize..1_000, 1..40),
        repeats in prop::collection::vec(prop_oneof![6 => Just(0u8), 3 => 1u8..3, 1 => 3u8..6], 0..200),
        spread in prop::collection::vec(0usize..1_000, 0..400),
    ) {
        let config = Config { max_shard_count: 8, ..Config::default() };
        let new = image_attrs(n, 5_000, 4, &order);
        let old = image_attrs(n, 0, 1, &order);
        let plain = wide_event_text(&object_text(&new, &[], &[]), &object_text(&old, &[], &[]));
        let old_repeats: Vec<u8> = spread.iter().map(|&s| (s % 3) as u8).collect();
        let old_spread: Vec<usize> = repeats.iter().map(|&r| r as usize * 7).collect();
        let repeated =
            wide_event_text(&object_text(&new, &repeats, &spread), &object_text(&old, &old_repeats, &old_spread));
        prop_assert!(repeats.iter().take(new.len()).all(|&r| r == 0) || plain != repeated, "keys are repeated");
        prop_assert_eq!(
            serde_json::from_str::<Value>(&plain).unwrap(),
            serde_json::from_str::<Value>(&repeated).unwrap(),
            "serde_json reads both texts as the same object"
        );
        let a = canonical_json(&zae_planner::plan(&batch(&plain, &config)).unwrap());
        let b = canonical_json(&zae_planner::plan(&batch(&repeated, &config)).unwrap());
        prop_assert!(a.contains("\"shard-propagate\""), "the clones are covered");
        prop_assert_eq!(a, b);
    }
}
