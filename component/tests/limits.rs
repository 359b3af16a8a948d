//! DynamoDB limits (docs/specification.md#dynamodb-limits): records whose
//! writes DynamoDB would reject are invalid, and snapshot items with many
//! sources are split into chunks that keep exactly-once per source.

use serde_json::{json, Value};
use zae_planner::config::Config;
use zae_planner::plan::{Operation, RecordStatus, UpdateItem};
use zae_planner::window::Window;
use zae_planner::{limits, plan, replan_snapshots, Batch, ObservedItem, Plan};

const NOW: i64 = 1_704_067_200_000;
const APPROX: i64 = 1_704_067_195;

/// A bucket MODIFY; limits: (name, old_tc, new_tc, tk, cp, ra, rp) as decimal text.
fn bucket(pk: &str, entity: &str, seq: u64, limits: &[(&str, &str, &str, &str, &str, &str, &str)]) -> Value {
    let mut new = json!({"PK": {"S": pk}, "SK": {"S": "#STATE"}, "entity_id": {"S": entity},
                         "rf": {"N": (NOW - 5000).to_string()}});
    let mut old = new.clone();
    for &(n, otc, ntc, tk, cp, ra, rp) in limits {
        for (f, v) in [("tc", ntc), ("tk", tk), ("cp", cp), ("ra", ra), ("rp", rp)] {
            new[format!("b_{n}_{f}")] = json!({ "N": v });
        }
        old[format!("b_{n}_tc")] = json!({ "N": otc });
    }
    json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": seq.to_string(),
           "ApproximateCreationDateTime": APPROX, "NewImage": new, "OldImage": old}})
}

fn rpm(delta: &str) -> (&'static str, &'static str, &str, &'static str, &'static str, &'static str, &'static str) {
    ("rpm", "0", delta, "0", "0", "0", "0")
}

fn event(records: Vec<Value>) -> String {
    json!({ "Records": records }).to_string()
}

fn cfg() -> Config {
    Config { windows: vec![Window::Hourly], ..Config::default() }
}

fn run(event: &str, cfg: &Config) -> Plan {
    plan(&Batch { event_json: event, config: cfg, now_ms: NOW, invocation_id: "t" }).expect("plan")
}

fn status(p: &Plan, i: u32) -> &RecordStatus {
    &p.outcomes.iter().find(|o| o.index == i).expect("outcome").status
}

fn invalid_reason(p: &Plan, i: u32) -> String {
    match status(p, i) {
        RecordStatus::Invalid(r) => r.clone(),
        other => panic!("record {i} is not invalid: {other:?}"),
    }
}

fn assert_never_written(p: &Plan, i: u32) {
    for w in &p.writes {
        assert!(!w.records.contains(&i), "record {i} is carried by write {}", w.id);
    }
}

fn update(w: &zae_planner::plan::Write) -> &UpdateItem {
    match &w.operation {
        Operation::UpdateItem(u) => u,
        other => panic!("not an update: {other:?}"),
    }
}

#[test]
fn a_resource_name_too_long_for_the_snapshot_sort_key_is_invalid() {
    let resource = "r".repeat(1000);
    let ok = "r".repeat(980);
    let text = event(vec![
        bucket(&format!("ns/BUCKET#u1#{resource}#0"), "u1", 100, &[rpm("5000")]),
        bucket(&format!("ns/BUCKET#u2#{ok}#0"), "u2", 200, &[rpm("5000")]),
    ]);
    let p = run(&text, &cfg());
    assert!(invalid_reason(&p, 0).contains("SK is 1028 bytes"), "{}", invalid_reason(&p, 0));
    assert_never_written(&p, 0);
    assert_eq!(status(&p, 1), &RecordStatus::Used, "980 bytes fit");
    assert_eq!(p.counters.invalid, 1);
    assert!(p.logs.iter().any(|l| l.message == "Invalid record" && l.fields[0].1 == "0"));
}

#[test]
fn an_entity_too_long_for_the_index_sort_keys_is_invalid() {
    let entity = "e".repeat(1010);
    let text = event(vec![bucket(&format!("ns/BUCKET#{entity}#gpt-4#0"), &entity, 100, &[rpm("5000")])]);
    let p = run(&text, &cfg());
    let why = invalid_reason(&p, 0);
    assert!(why.contains("GSI2SK is 1037 bytes"), "{why}");
    assert_never_written(&p, 0);
    assert!(p.writes.is_empty(), "no refill or doubling carries it either");
}

#[test]
fn an_empty_namespace_is_invalid_for_its_empty_gsi4pk() {
    let text = event(vec![bucket("/BUCKET#e#r#0", "e", 100, &[rpm("5000")])]);
    let p = run(&text, &cfg());
    assert!(invalid_reason(&p, 0).contains("GSI4PK is empty"), "{}", invalid_reason(&p, 0));
    assert!(p.writes.is_empty());
}

#[test]
fn two_deltas_near_1e38_on_one_item_are_invalid_not_wrapped() {
    // Each delta (1.7e38) fits i128; their sum on the bucket item does not.
    // Without the checked fold this panics in a debug build and wraps in a
    // release build.
    let lo = format!("-85{}", "0".repeat(36));
    let hi = format!("85{}", "0".repeat(36));
    let text = event(vec![
        bucket("ns/BUCKET#u1#gpt-4#0", "u1", 100, &[("rpm", &lo, &hi, "0", "0", "0", "0")]),
        bucket("ns/BUCKET#u1#gpt-4#0", "u1", 200, &[("rpm", &lo, &hi, "0", "0", "0", "0")]),
        bucket("ns/BUCKET#u2#gpt-4#0", "u2", 300, &[rpm("5000")]),
    ]);
    let p = run(&text, &cfg());
    for i in [0, 1] {
        assert!(invalid_reason(&p, i).contains("overflow"), "{}", invalid_reason(&p, i));
        assert_never_written(&p, i);
    }
    assert_eq!(status(&p, 2), &RecordStatus::Used);
}

#[test]
fn a_snapshot_counter_beyond_38_digits_is_invalid() {
    // 601 deltas of ~1.7e35 tokens: the sum passes 1e38 with 39 significant digits.
    let lo = format!("-84{}", "9".repeat(36));
    let hi = format!("84{}", "9".repeat(36));
    let mut records = Vec::new();
    for i in 0..601u64 {
        records.push(bucket(
            &format!("ns/BUCKET#u1#gpt-4#{i}"),
            "u1",
            100 + i,
            &[("rpm", &lo, &hi, "0", "0", "0", "0")],
        ));
    }
    let p = run(&event(records), &cfg());
    let why = invalid_reason(&p, 0);
    assert!(why.contains("snapshot counter rpm") && why.contains("significant digits"), "{why}");
    assert!(p.writes.is_empty());
}

#[test]
fn a_refill_with_a_large_negative_capacity_is_invalid_not_wrapped() {
    // cap = -9.9e37 and tk = +9.9e37: `projected - tk` is below i128::MIN.
    let cp = format!("-{}", "9".repeat(38));
    let tk = "9".repeat(38);
    let text =
        event(vec![bucket("ns/BUCKET#u1#gpt-4#0", "u1", 100, &[("rpm", "0", "5000", &tk, &cp, "1000", "1000")])]);
    let p = run(&text, &cfg());
    let why = invalid_reason(&p, 0);
    assert!(why.starts_with("refill of ns/BUCKET#u1#gpt-4#0 #STATE: limit rpm: refill arithmetic overflows"), "{why}");
    assert!(p.writes.is_empty(), "neither the refill nor the snapshot carries it");
}

#[test]
fn a_propagated_shard_key_beyond_the_limits_is_invalid() {
    let resource = "r".repeat(1012);
    let pk = format!("ns/BUCKET#u1#{resource}#0");
    let mut rec = bucket(&pk, "u1", 100, &[]);
    rec["dynamodb"]["NewImage"]["shard_count"] = json!({"N": "16"});
    rec["dynamodb"]["OldImage"]["shard_count"] = json!({"N": "8"});
    let p = run(&event(vec![rec]), &cfg());
    // GSI4SK `BUCKET#{entity}#{resource}#{shard}` passes 1,024 bytes from shard 10 on.
    let why = invalid_reason(&p, 0);
    assert!(why.contains("GSI4SK is 1025 bytes"), "{why}");
    assert!(p.writes.is_empty());
}

/// `n` shards of one bucket, each consuming 1 rpm token (1000 + shard ms).
fn many_sources(n: u64) -> String {
    event(
        (0..n)
            .map(|i| {
                let d = (1000 + i).to_string();
                bucket(&format!("ns/BUCKET#u1#gpt-4#{i}"), "u1", 1000 + i, &[("rpm", "0", &d, "0", "0", "0", "0")])
            })
            .collect(),
    )
}

fn sum_of(p: &Plan, attr: &str) -> i128 {
    p.writes
        .iter()
        .map(|w| {
            let u = update(w);
            let ph = u.names.iter().find(|n| n.name == attr).map(|n| n.placeholder.replace('#', ":")).unwrap();
            let v = &u.values.iter().find(|a| a.name == ph).unwrap().value;
            v.trim_start_matches("{\"N\":\"").trim_end_matches("\"}").parse::<i128>().unwrap()
        })
        .sum()
}

#[test]
fn an_item_with_200_sources_is_split_into_chunks_within_the_limits() {
    let text = many_sources(200);
    let p = run(&text, &cfg());
    assert_eq!(p.counters.invalid, 0);
    assert!(p.writes.len() >= 3, "{} writes", p.writes.len());
    assert_eq!(p.counters.snapshot_writes as usize, p.writes.len());
    let mut sources = Vec::new();
    let mut records = Vec::new();
    for (i, w) in p.writes.iter().enumerate() {
        assert_eq!(w.id as usize, i);
        limits::check_write(w).expect("each chunk is within the limits");
        let u = update(w);
        assert_eq!(w.item_key().unwrap(), ("ns/ENTITY#u1".into(), "#USAGE#gpt-4#2023-12-31T23:00:00Z".into()));
        let cond = u.condition_expression.as_deref().unwrap();
        assert!(limits::operators(cond) <= 300 && cond.len() <= 4096);
        let marks: Vec<&str> = u.names.iter().filter(|n| n.name.starts_with("wm#")).map(|n| n.name.as_str()).collect();
        let mut sorted = marks.clone();
        sorted.sort();
        assert_eq!(marks, sorted, "a chunk's sources are sorted by watermark name");
        sources.extend(marks.iter().map(|s| s.to_string()));
        records.extend(w.records.iter().copied());
    }
    let mut unique = sources.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 200, "every source in exactly one chunk");
    assert_eq!(sources.len(), 200);
    records.sort_unstable();
    assert_eq!(records, (0..200).collect::<Vec<u32>>());
    assert_eq!(sum_of(&p, "rpm"), 200, "the chunks add up to the unsplit sums");
    assert_eq!(sum_of(&p, "total_events"), 200);
    // Determinism: the same batch, in another record order, gives the same writes.
    assert_eq!(run(&text, &cfg()), p);
    let mut shuffled: Value = serde_json::from_str(&text).unwrap();
    shuffled["Records"].as_array_mut().unwrap().reverse();
    let q = run(&shuffled.to_string(), &cfg());
    let ops = |p: &Plan| p.writes.iter().map(|w| w.operation.clone()).collect::<Vec<_>>();
    assert_eq!(ops(&q).len(), ops(&p).len());
    for (a, b) in ops(&q).iter().zip(ops(&p).iter()) {
        assert_eq!(update_sets(a), update_sets(b), "chunks hold the same sources whatever the record order");
    }
}

fn update_sets(op: &Operation) -> Vec<String> {
    let Operation::UpdateItem(u) = op else { panic!() };
    let mut v: Vec<String> = u.names.iter().filter(|n| n.name.starts_with("wm#")).map(|n| n.name.clone()).collect();
    v.sort();
    v
}

#[test]
fn an_item_with_few_sources_is_one_write_in_first_seen_order() {
    let p = run(&many_sources(60), &cfg());
    assert_eq!(p.writes.len(), 1);
    let u = update(&p.writes[0]);
    assert_eq!(u.names.iter().find(|n| n.placeholder == "#w2").unwrap().name, "wm#2", "not sorted (wm#10 < wm#2)");
}

#[test]
fn replanning_one_chunk_replans_every_chunk_of_the_item_with_its_own_id() {
    let text = many_sources(200);
    let c = cfg();
    let batch = Batch { event_json: &text, config: &c, now_ms: NOW, invocation_id: "t" };
    let first = plan(&batch).unwrap();
    let chunk1 = &first.writes[1];
    // The item as a conflict on chunk 1 returns it: chunk 0 applied (its
    // watermarks at their highest), shard 150's source counted up to its record.
    let mut item = json!({"PK": {"S": "ns/ENTITY#u1"}, "SK": {"S": "#USAGE#gpt-4#2023-12-31T23:00:00Z"}});
    for n in &update(&first.writes[0]).names {
        if n.name.starts_with("wm#") {
            let shard: u64 = n.name[3..].parse().unwrap();
            item[&n.name] = json!({"S": format!("{:040}", 1000 + shard)});
        }
    }
    let some_source = update(chunk1).names.iter().find(|n| n.name.starts_with("wm#")).unwrap().name.clone();
    let shard: u64 = some_source[3..].parse().unwrap();
    item[&some_source] = json!({"S": format!("{:040}", 1000 + shard)});
    let observed = [ObservedItem { write_id: chunk1.id, item: Some(item.to_string()) }];
    let re = replan_snapshots(&batch, &observed).unwrap();
    assert_eq!(re.counters.invalid, 0);
    // Chunk 0 is fully counted: no write. Every other chunk: a write with its
    // own id, guarded by exactly the observed watermarks of its sources.
    let ids: Vec<u32> = re.writes.iter().map(|w| w.id).collect();
    assert_eq!(ids, (1..first.writes.len() as u32).collect::<Vec<_>>());
    for w in &re.writes {
        limits::check_write(w).unwrap();
        let orig = &first.writes[w.id as usize];
        assert_eq!(update_sets(&w.operation).len() + (w.id == 1) as usize, update_sets(&orig.operation).len());
        let u = update(w);
        let cond = u.condition_expression.as_deref().unwrap();
        assert!(!cond.contains(":f"), "re-planned guards are exact");
        for r in &w.records {
            assert!(orig.records.contains(r), "a chunk's re-plan carries only that chunk's records");
        }
    }
    let u1 = update(&re.writes[0]);
    assert!(!u1.names.iter().any(|n| n.name == some_source), "the counted source is left out");
    assert_eq!(sum_of(&re, "rpm") + sum_of(&first, "rpm") - sum_of(&re, "rpm"), 200);
    assert_eq!(sum_of(&re, "total_events"), 200 - update_sets(&first.writes[0].operation).len() as i128 - 1);
}
