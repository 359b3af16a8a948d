//! Replays the schedule conformance table computed by zae-limiter 0.17.0
//! (`tests/schedule/make_cases.py`) and checks that no input panics.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::Value;
use zae_planner::schedule::{
    decode, decode_reset, effective_params, next_boundary, next_reset_edge, prev_reset_edge, EvalError, Modifier,
    Schedule, BUCKET_SCHED_NONE,
};

fn cases() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schedule-cases/cases.json");
    let text = std::fs::read_to_string(path).expect("read cases.json");
    serde_json::from_str(&text).expect("parse cases.json")
}

fn report(failures: &[String], total: usize, what: &str) {
    for f in failures.iter().take(25) {
        eprintln!("{f}");
    }
    assert!(failures.is_empty(), "{} of {total} {what} cases differ from the reference", failures.len());
}

fn opt_i64(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// The reference's modifier, in the table's spelling.
fn modifier_matches(m: &Modifier, expected: &Value) -> bool {
    let e = expected.as_array().expect("modifier");
    match (m, e[0].as_str().expect("kind")) {
        (Modifier::Reset, "r") => true,
        (Modifier::Scale { per_mille }, "s") => *per_mille as f64 / 1000.0 == e[1].as_f64().expect("scale"),
        (Modifier::Absolute { capacity, refill_amount, refill_period_seconds }, "a") => {
            *capacity == opt_i64(&e[1]) && *refill_amount == opt_i64(&e[2]) && *refill_period_seconds == opt_i64(&e[3])
        }
        _ => false,
    }
}

#[test]
fn decode_matches_reference() {
    let all = cases();
    assert_eq!(all["bucket_sched_none"].as_str(), Some(BUCKET_SCHED_NONE));
    let table = all["decode"].as_array().expect("decode cases");
    assert!(table.len() > 1000);
    let mut failures = Vec::new();
    for (i, case) in table.iter().enumerate() {
        let compact = case["compact"].as_str().unwrap();
        let tz = case["tz"].as_str().unwrap();
        let kind = case["kind"].as_str().unwrap();
        let got = if kind == "reset" { decode_reset(compact, tz) } else { decode(compact, tz) };
        let ok = case["ok"].as_bool().unwrap();
        let label = format!("decode #{i} {kind} {compact:?} tz={tz:?}");
        match (&got, ok) {
            (Err(_), false) => {}
            (Err(e), true) => failures.push(format!("{label}: reference decodes, we fail: {e}")),
            (Ok(_), false) => failures.push(format!("{label}: reference fails ({}), we decode", case["error"])),
            (Ok(s), true) => {
                let expected = case["entries"].as_array().unwrap();
                if s.entries().len() != expected.len() {
                    failures.push(format!("{label}: {} entries, reference {}", s.entries().len(), expected.len()));
                    continue;
                }
                for (j, (e, x)) in s.entries().iter().zip(expected).enumerate() {
                    let x = x.as_array().unwrap();
                    let c = &e.cron;
                    let masks = [c.minutes, c.hours, c.days, c.months, c.weekdays];
                    let want: Vec<u64> = x[..5].iter().map(|v| v.as_u64().unwrap()).collect();
                    if masks[..] != want[..] || c.day_and != x[5].as_bool().unwrap() {
                        failures.push(format!(
                            "{label}: entry {j} fields {masks:?}/{}, reference {want:?}/{}",
                            c.day_and, x[5]
                        ));
                    }
                    if !modifier_matches(&e.modifier, &x[6]) {
                        failures.push(format!("{label}: entry {j} modifier {:?}, reference {}", e.modifier, x[6]));
                    }
                }
            }
        }
    }
    report(&failures, table.len(), "decode");
}

#[test]
fn zone_names_match_reference() {
    let all = cases();
    let python: BTreeSet<&str> = all["zones"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(python.len() > 500);
    let mut failures = Vec::new();
    for name in &python {
        if decode_reset("1m0h0", name).is_err() {
            failures.push(format!("zone {name:?}: the reference knows it, we do not"));
        }
    }
    for name in jiff::tz::db().available() {
        let name = name.as_str();
        if !python.contains(name) && decode_reset("1m0h0", name).is_ok() {
            failures.push(format!("zone {name:?}: we accept it, the reference does not"));
        }
    }
    report(&failures, python.len(), "zone name");
}

/// The reference's integer result, or the error it raised.
enum Expect {
    Value(Value),
    Raised,
    /// The reference never returns (see `latest_where` in `schedule/scan.rs`);
    /// we must return an answer.
    Hang,
}

fn expect(v: &Value) -> Expect {
    if v.get("error").is_some() {
        Expect::Raised
    } else if v.get("hang").is_some() {
        Expect::Hang
    } else {
        Expect::Value(v.clone())
    }
}

fn check_edge(label: &str, got: Result<Option<i64>, EvalError>, want: &Value, failures: &mut Vec<String>) {
    let ok = match (expect(want), &got) {
        (Expect::Raised, Err(EvalError::OutOfRange)) => true,
        (Expect::Hang, Ok(_)) => true,
        (Expect::Value(Value::Null), Ok(None)) => true,
        (Expect::Value(v), Ok(Some(t))) => v.as_i64() == Some(*t),
        _ => false,
    };
    if !ok {
        failures.push(format!("{label}: got {got:?}, reference {want}"));
    }
}

#[test]
fn evaluation_matches_reference() {
    let all = cases();
    let table = all["eval"].as_array().expect("eval cases");
    assert!(table.len() > 1000);
    let mut failures = Vec::new();
    for (i, case) in table.iter().enumerate() {
        let tz = case["tz"].as_str().unwrap();
        let sched_text = case["sched"].as_str().unwrap();
        let rsched_text = case["rsched"].as_str().unwrap();
        let now = case["now"].as_i64().unwrap();
        let label = format!("eval #{i} sched={sched_text:?} rsched={rsched_text:?} tz={tz} now={now}");
        let (Ok(sched), Ok(rsched)) = (decode(sched_text, tz), decode_reset(rsched_text, tz)) else {
            failures.push(format!("{label}: does not decode"));
            continue;
        };
        let base: Vec<i128> =
            case["base"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().parse().unwrap()).collect();
        let got = effective_params(base[0], base[1], base[2], &sched, now);
        let ok = match (expect(&case["eff"]), &got) {
            (Expect::Raised, Err(EvalError::OutOfRange)) => true,
            (Expect::Value(v), _) => {
                let want: Vec<Option<i128>> =
                    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().parse::<i128>().ok()).collect();
                match (&got, want.iter().all(Option::is_some)) {
                    (Ok((a, b, c)), true) => want == [Some(*a), Some(*b), Some(*c)],
                    // A reference result beyond i128 is our documented overflow.
                    (Err(EvalError::Overflow), false) => true,
                    _ => false,
                }
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{label}: effective_params {got:?}, reference {}", case["eff"]));
        }
        check_edge(&format!("{label}: next_boundary"), next_boundary(&sched, &rsched, now), &case["nb"], &mut failures);
        check_edge(&format!("{label}: prev_reset_edge"), prev_reset_edge(&rsched, now), &case["prev"], &mut failures);
        check_edge(&format!("{label}: next_reset_edge"), next_reset_edge(&rsched, now), &case["next"], &mut failures);
    }
    report(&failures, table.len(), "evaluation");
}

fn fixed_schedules() -> Vec<(Schedule, Schedule)> {
    [
        ("1m*/15h9-17w1-5s500;h0-6c20", "1m0h0", "America/New_York"),
        ("1h2s2000", "1m30h2;D1m0h0", "Australia/Lord_Howe"),
        ("1w6,7a1p1", "1h0", "Pacific/Chatham"),
        ("", "1m0h0D1M1", "Asia/Kolkata"),
        ("1M2s1", "1D29M2m0h0", "UTC"),
    ]
    .into_iter()
    .map(|(s, r, tz)| (decode(s, tz).unwrap(), decode_reset(r, tz).unwrap()))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn decoding_never_panics(compact in "\\PC{0,40}", tz in "\\PC{0,20}") {
        let _ = decode(&compact, &tz);
        let _ = decode_reset(&compact, &tz);
    }

    #[test]
    fn grammar_shaped_input_never_panics(
        body in "[0-9]{0,2}([mhDMwscap][0-9,*/LW#A-Za-z \\-]{1,6}){0,6}(;[mhDMwscap][0-9,*/\\-]{1,4}){0,2}",
        tz in prop::sample::select(vec!["UTC", "Europe/Paris", "Pacific/Chatham", "nope"]),
        now in any::<i64>(),
    ) {
        for sched in [decode(&body, tz), decode_reset(&body, tz)].into_iter().flatten() {
            let _ = effective_params(i128::MAX, i128::MIN, 1, &sched, now);
            let _ = next_boundary(&sched, &sched, now);
            let _ = prev_reset_edge(&sched, now);
            let _ = next_reset_edge(&sched, now);
        }
    }

    #[test]
    fn evaluation_never_panics(
        now in prop_oneof![any::<i64>(), -62_135_596_800_000i64..253_402_300_800_000i64],
        cp in any::<i128>(),
        ra in any::<i128>(),
        rp in any::<i128>(),
        which in 0usize..5,
    ) {
        let (sched, reset) = &fixed_schedules()[which];
        let _ = effective_params(cp, ra, rp, sched, now);
        let _ = next_boundary(sched, reset, now);
        let _ = prev_reset_edge(reset, now);
        let _ = next_reset_edge(reset, now);
    }
}
