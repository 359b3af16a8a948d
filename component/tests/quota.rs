//! Replays the quota-clone cases computed by zae-limiter 0.17.0
//! (`tests/quota/make_cases.py`, committed under `tests/quota-cases/`), and
//! checks that no input makes the quota planner panic.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, Value};
use zae_planner::quota::*;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/quota-cases/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn i(v: &Value) -> i128 {
    match v {
        Value::Number(n) => n.to_string().parse().unwrap(),
        other => panic!("not an integer: {other}"),
    }
}

fn oi(v: &Value) -> Option<i128> {
    (!v.is_null()).then(|| i(v))
}

fn obj(v: &Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn rule(v: &Value) -> ResetRule {
    if let Some(rsa) = v.get("session") {
        ResetRule::Session { reset_after_s: i(rsa) }
    } else {
        ResetRule::Calendar { prev_edge_ms: oi(&v["calendar"]).map(|e| e as i64) }
    }
}

fn str_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().to_string()))
        .collect()
}

fn request(v: &Value) -> RequestParts {
    RequestParts {
        pk: v["pk"].as_str().unwrap().into(),
        sk: v["sk"].as_str().unwrap().into(),
        update_expression: v["update"].as_str().map(str::to_string),
        condition_expression: v["condition"].as_str().unwrap().into(),
        names: str_pairs(&v["names"]),
        values: str_pairs(&v["values"]),
    }
}

fn debit(v: &Value) -> QuotaDonorDebit {
    QuotaDonorDebit {
        shard_id: i(&v[0]),
        limit_name: v[1].as_str().unwrap().into(),
        tokens_milli: i(&v[2]),
        grant_count: i(&v[3]),
        guard_rf_ms: oi(&v[4]).map(|e| e as i64),
        guard_wa_ms: oi(&v[5]),
        legacy_shard_count: oi(&v[6]),
    }
}

fn sibling(v: &Value) -> QuotaSibling {
    QuotaSibling { shard_id: i(&v[0]), tokens_milli: i(&v[1]), grant_count: i(&v[2]), current: v[3].as_bool().unwrap() }
}

#[test]
fn primitives_match_the_python_library() {
    let all = load("primitives");
    let mut count = 0;

    for c in all["plan_quota_grant"].as_array().unwrap() {
        let siblings: Vec<QuotaSibling> = c["siblings"].as_array().unwrap().iter().map(sibling).collect();
        let g = plan_quota_grant(&siblings, i(&c["shard"]), i(&c["count"]), i(&c["share"]));
        let e = &c["expect"];
        let want = QuotaGrant { donor_shard: oi(&e[0]), tokens_milli: i(&e[1]), donor_grant_count: oi(&e[2]) };
        assert_eq!(g, want, "{c}");
        count += 1;
    }

    for c in all["quota_period_is_current"].as_array().unwrap() {
        let got =
            quota_period_is_current(&rule(&c["rule"]), i(&c["rf"]), oi(&c["ws"]), oi(&c["wa"]), i(&c["now"]) as i64);
        assert_eq!(got, c["expect"].as_bool().unwrap(), "{c}");
        count += 1;
    }

    for c in all["sibling_from_item"].as_array().unwrap() {
        let item = obj(&c["item"]);
        let got = sibling_from_item(
            i(&c["shard"]),
            &item,
            c["limit"].as_str().unwrap(),
            &rule(&c["rule"]),
            i(&c["capacity"]),
            i(&c["now"]) as i64,
        )
        .unwrap();
        let want = (!c["expect"].is_null()).then(|| sibling(&c["expect"]));
        assert_eq!(got, want, "{c}");
        count += 1;
    }

    for c in all["donor_debit"].as_array().unwrap() {
        let item = obj(&c["item"]);
        let got = donor_debit(
            i(&c["shard"]),
            i(&c["grant_count"]),
            i(&c["tokens"]),
            c["limit"].as_str().unwrap(),
            &item,
            &rule(&c["rule"]),
        )
        .unwrap();
        assert_eq!(got, debit(&c["expect"]), "{c}");
        count += 1;
    }

    let key = BucketKey { ns: "ns1", entity: "e#1", resource: "gpt-4" };
    for c in all["donor_update_items"].as_array().unwrap() {
        let debits: Vec<QuotaDonorDebit> = c["debits"].as_array().unwrap().iter().map(debit).collect();
        let want: Vec<RequestParts> = c["expect"].as_array().unwrap().iter().map(request).collect();
        assert_eq!(donor_update_items(&key, &debits), want, "{c}");
        count += 1;
    }

    for c in all["quota_count_freeze"].as_array().unwrap() {
        let grants: Vec<(String, i128)> =
            c["grants"].as_array().unwrap().iter().map(|g| (g[0].as_str().unwrap().to_string(), i(&g[1]))).collect();
        let got = quota_count_freeze(c["pk"].as_str().unwrap(), SK_STATE, i(&c["count"]), &grants);
        assert_eq!(got, request(&c["expect"]), "{c}");
        count += 1;
    }

    for c in all["owner_meta_condition"].as_array().unwrap() {
        let got = owner_meta_condition(c["exists"].as_bool(), oi(&c["pgen"]), c["pinc"].as_str());
        let e = &c["expect"];
        let want = Condition {
            expression: e["expression"].as_str().unwrap().into(),
            names: str_pairs(&e["names"]),
            values: str_pairs(&e["values"]),
        };
        assert_eq!(got, want, "{c}");
        count += 1;
    }

    for c in all["is_quota_limit"].as_array().unwrap() {
        let image = obj(&c["image"]);
        assert_eq!(
            is_quota_limit(c["limit"].as_str().unwrap(), &image).unwrap(),
            c["expect"].as_bool().unwrap(),
            "{c}"
        );
        count += 1;
    }
    assert!(count >= 1000, "{count} primitive cases");
}

/// Shard 0's image as the clone `Put` of shard `t` (keys and count set as
/// upstream sets them, then the planned edits), attribute by attribute.
fn put_item(image: &Map<String, Value>, t: i128, new: i128, edits: &[ItemEdit]) -> Vec<(String, String)> {
    let mut item: Vec<(String, String)> =
        image.iter().map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap())).collect();
    let set = |item: &mut Vec<(String, String)>, k: &str, v: String| match item.iter_mut().find(|(n, _)| n == k) {
        Some(slot) => slot.1 = v,
        None => item.push((k.to_string(), v)),
    };
    let s = |v: String| serde_json::to_string(&serde_json::json!({ "S": v })).unwrap();
    set(&mut item, "PK", s(format!("ns1/BUCKET#user-1#gpt-4#{t}")));
    set(&mut item, "GSI2SK", s(format!("BUCKET#user-1#{t}")));
    set(&mut item, "GSI3SK", s(format!("BUCKET#gpt-4#{t}")));
    set(&mut item, "GSI4SK", s(format!("BUCKET#user-1#gpt-4#{t}")));
    set(&mut item, "shard_count", format!("{{\"N\":\"{new}\"}}"));
    for e in edits {
        match e {
            ItemEdit::Set(k, v) => set(&mut item, k, format!("{{\"N\":\"{v}\"}}")),
            ItemEdit::Remove(k) => item.retain(|(n, _)| n != k),
        }
    }
    item
}

#[test]
fn propagations_match_the_python_library() {
    let all = load("propagation");
    let key = BucketKey { ns: "ns1", entity: "user-1", resource: "gpt-4" };
    let mut clones = 0;
    let mut moves = 0;
    for (n, c) in all.as_array().unwrap().iter().enumerate() {
        let image = obj(&c["image"]);
        let (old, new, now) = (i(&c["old_count"]), i(&c["new_count"]), i(&c["now"]) as i64);
        let limits: Vec<ImageLimit> = c["limits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| ImageLimit {
                name: l["name"].as_str().unwrap().into(),
                cp_milli: i(&l["cp"]),
                effective_cp_milli: i(&l["effective_cp"]),
                quota: (!l["quota"].is_null()).then(|| rule(&l["quota"])),
            })
            .collect();
        let schedule_error = c["schedule_error"].as_str();
        // The shape test agrees with the library's on every limit it resolved.
        let attrs = extract_limit_attrs(&image).unwrap();
        for (l, a) in limits.iter().zip(&attrs) {
            assert_eq!(l.name, a.name, "case {n}");
            if l.name != WCU_LIMIT_NAME {
                assert_eq!(is_quota_limit(&l.name, &image).unwrap(), l.quota.is_some(), "case {n} {}", l.name);
            }
        }
        let items: BTreeMap<i128, Map<String, Value>> =
            c["old_items"].as_object().unwrap().iter().map(|(s, v)| (s.parse().unwrap(), obj(v))).collect();
        let caps = c["legacy_capacity"].as_object().unwrap();
        let capacity =
            |l: &LegacyLimit| caps.get(&format!("{}:{}", l.shard, l.limit.name)).map(i).unwrap_or(l.limit.cp_milli);
        let read_failed = c["read_failed"].as_bool().unwrap();
        let needs = needs_sibling_read(&limits, schedule_error);
        let input = PropagationInput {
            key,
            image: &image,
            limits: &limits,
            schedule_error,
            old_count: old,
            new_count: new,
            max_shard_count: MAX_SHARD_COUNT,
            old_items: if read_failed && needs { None } else { Some(&items) },
            now_ms: now,
            legacy_capacity: &capacity,
        };
        let plan = plan_propagation(&input).unwrap();
        let e = &c["expect"];

        // Path 1.
        let path1: Vec<&Value> = e["path1"].as_array().unwrap().iter().collect();
        assert_eq!(plan.existing.len(), path1.len(), "case {n}");
        for (x, want) in plan.existing.iter().zip(path1) {
            let pk = key.shard_pk(x.shard);
            if want.get("plain").is_some() {
                assert!(x.freeze.is_empty(), "case {n}: shard {} {:?}", x.shard, x.freeze);
                assert_eq!(want["pk"].as_str().unwrap(), pk);
            } else {
                assert_eq!(quota_count_freeze(&pk, SK_STATE, new, &x.freeze), request(want), "case {n}");
            }
        }

        // Skips.
        let all_reason = e["skipped_all"].as_str();
        let stale: Vec<i128> = e["stale_moves"].as_array().unwrap().iter().map(i).collect();
        for d in &plan.clones {
            if let CloneDecision::Skip { shard, reason } = d {
                match (reason, all_reason) {
                    (SkipReason::ScheduleError(_), Some("schedule_error"))
                    | (SkipReason::SiblingReadFailed, Some("read_failed"))
                    | (SkipReason::Overtaken { .. }, Some("overtaken")) => {}
                    (SkipReason::StaleMove { .. }, None) => assert!(stale.contains(shard), "case {n}: {shard}"),
                    other => panic!("case {n}: shard {shard}: {other:?}"),
                }
            }
        }
        let planned_stale: Vec<i128> = plan
            .clones
            .iter()
            .filter_map(|d| match d {
                CloneDecision::Skip { shard, reason: SkipReason::StaleMove { .. } } => Some(*shard),
                _ => None,
            })
            .collect();
        assert_eq!(planned_stale, stale, "case {n}");

        // Path 2: every created clone's transaction.
        let created: Vec<&PlannedClone> = plan
            .clones
            .iter()
            .filter_map(|d| match d {
                CloneDecision::Create(p) => Some(p),
                CloneDecision::Skip { .. } => None,
            })
            .collect();
        let txs = e["transactions"].as_array().unwrap();
        assert_eq!(created.len(), txs.len(), "case {n}");
        for (p, tx) in created.iter().zip(txs) {
            assert_eq!(put_item(&image, p.shard, new, &p.edits), str_pairs(&tx["put"]), "case {n} shard {}", p.shard);
            let updates: Vec<RequestParts> = tx["updates"].as_array().unwrap().iter().map(request).collect();
            assert_eq!(p.donor_updates, updates, "case {n} shard {}", p.shard);
            assert_eq!(plan.owner_check.as_ref(), Some(&request(&tx["check"])), "case {n}");
            clones += 1;
            moves += p.debits.len();
        }

        // The repair.
        let shards: Vec<i128> = plan.created().collect();
        let repairs = !shards.is_empty() && !plan.quota_names.is_empty();
        assert_eq!(repairs, e["repair_read"].as_bool().unwrap(), "case {n}");
        let later: Option<Map<String, Value>> = oi(&c["later_count"]).map(|count| {
            serde_json::from_value(serde_json::json!({ "shard_count": { "N": count.to_string() } })).unwrap()
        });
        let later_item = later.as_ref().map(|m| m as &dyn Item);
        let got = plan_repair(&key, new, plan.seen_count, later_item, &shards, &plan.quota_names).unwrap();
        let want: Vec<RequestParts> = e["repair"].as_array().unwrap().iter().map(request).collect();
        assert_eq!(got, want, "case {n}");
    }
    assert!(clones >= 300 && moves >= 100, "{clones} clones, {moves} moves");
}

fn av() -> impl Strategy<Value = Value> {
    prop_oneof![
        "-?[0-9]{1,40}".prop_map(|n| serde_json::json!({ "N": n })),
        prop_oneof![Just("1.5"), Just("1e3"), Just(""), Just("x"), Just("-")]
            .prop_map(|n| serde_json::json!({ "N": n })),
        ".{0,6}".prop_map(|s| serde_json::json!({ "S": s })),
        Just(serde_json::json!({ "NULL": true })),
        Just(serde_json::json!({ "BOOL": true })),
        Just(serde_json::json!(7)),
    ]
}

fn item() -> impl Strategy<Value = Map<String, Value>> {
    let names = prop_oneof![
        Just("shard_count".to_string()),
        Just("rf".to_string()),
        Just("rsched".to_string()),
        Just("sched".to_string()),
        Just("sched_tz".to_string()),
        Just("pgen".to_string()),
        Just("pinc".to_string()),
        (
            prop_oneof![Just("q"), Just("wcu"), Just("r")],
            prop_oneof![
                Just("tk"),
                Just("cp"),
                Just("ra"),
                Just("rp"),
                Just("tc"),
                Just("gc"),
                Just("tu"),
                Just("ws"),
                Just("wa"),
                Just("rsa"),
                Just("wtc"),
                Just("rsched"),
                Just("sched")
            ]
        )
            .prop_map(|(l, f)| format!("b_{l}_{f}")),
    ];
    proptest::collection::vec((names, av()), 0..24).prop_map(|kv| kv.into_iter().collect())
}

fn any_rule() -> impl Strategy<Value = ResetRule> {
    prop_oneof![
        any::<Option<i64>>().prop_map(|prev_edge_ms| ResetRule::Calendar { prev_edge_ms }),
        any::<i128>().prop_map(|reset_after_s| ResetRule::Session { reset_after_s }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_input_panics(
        image in item(),
        olds in proptest::collection::vec((-2i128..10, item()), 0..6),
        rules in proptest::collection::vec(proptest::option::of(any_rule()), 3),
        caps in proptest::collection::vec(any::<i128>(), 3),
        old in -3i128..12,
        new in -3i128..40,
        max in 0i128..40,
        now in any::<i64>(),
        read in any::<bool>(),
        later in proptest::option::of(item()),
        siblings in proptest::collection::vec((any::<i128>(), any::<i128>(), any::<i128>(), any::<bool>()), 0..5),
        shard in any::<i128>(),
        share in any::<i128>(),
    ) {
        let limits: Vec<ImageLimit> = ["q", "wcu", "r"]
            .iter()
            .zip(rules.iter().zip(&caps))
            .map(|(n, (r, c))| ImageLimit { name: n.to_string(), cp_milli: *c, effective_cp_milli: c / 3, quota: *r })
            .collect();
        let items: BTreeMap<i128, Map<String, Value>> = olds.into_iter().collect();
        let capacity = |l: &LegacyLimit| l.limit.cp_milli;
        let key = BucketKey { ns: "n", entity: "e", resource: "r" };
        let input = PropagationInput {
            key,
            image: &image,
            limits: &limits,
            schedule_error: None,
            old_count: old,
            new_count: new,
            max_shard_count: max,
            old_items: read.then_some(&items),
            now_ms: now,
            legacy_capacity: &capacity,
        };
        if let Ok(plan) = plan_propagation(&input) {
            let created: Vec<i128> = plan.created().collect();
            let later = later.as_ref().map(|m| m as &dyn Item);
            let _ = plan_repair(&key, new, plan.seen_count, later, &created, &plan.quota_names);
        }
        let sibs: Vec<QuotaSibling> = siblings
            .iter()
            .map(|&(shard_id, tokens_milli, grant_count, current)| QuotaSibling { shard_id, tokens_milli, grant_count, current })
            .collect();
        let _ = plan_quota_grant(&sibs, shard, new, share);
        for r in rules.iter().flatten() {
            let _ = sibling_from_item(shard, &image, "q", r, share, now);
            let _ = donor_debit(shard, new, share, "q", &image, r);
            let _ = quota_period_is_current(r, share, Some(shard), None, now);
        }
        let _ = legacy_quota_sizes(0, &image, &[], now, &capacity);
        let _ = clone_owner_check(&key, &image);
        let src = quota_reset_source("q", &image);
        let _ = src.rule(read, None);
    }
}
