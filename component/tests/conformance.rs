//! Replays every conformance vector with the native planner and compares the
//! canonical plan byte for byte. `ZAE_BLESS=1` (exactly; any other value is refused) writes `plan.json` instead
//! (review the diff before committing it).

use zae_planner::vector::{bless, default_root, load_all, run_native};

#[test]
fn native_planner_matches_every_vector() {
    let vectors = load_all(&default_root()).expect("load vectors");
    assert!(vectors.len() >= 40, "expected at least 40 vectors, found {}", vectors.len());
    let bless = bless();
    let mut failures = Vec::new();
    for v in &vectors {
        let got = run_native(v);
        assert_eq!(got, run_native(v), "{}: planning twice gave different plans", v.name);
        if bless {
            std::fs::write(v.dir.join("plan.json"), format!("{got}\n")).expect("write plan.json");
            continue;
        }
        match &v.expected {
            None => failures.push(format!("{}: no plan.json (run with ZAE_BLESS=1)", v.name)),
            Some(want) if *want != got => {
                let at = want.bytes().zip(got.bytes()).position(|(a, b)| a != b).unwrap_or(want.len().min(got.len()));
                let lo = at.saturating_sub(80);
                failures.push(format!(
                    "{}: differs at byte {at}\n  want …{}\n  got  …{}",
                    v.name,
                    want.get(lo..(at + 80).min(want.len())).unwrap_or(""),
                    got.get(lo..(at + 80).min(got.len())).unwrap_or("")
                ));
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{} of {} vectors differ:\n{}", failures.len(), vectors.len(), failures.join("\n"));
}

/// Every reader vector (`tests/conformance/reader/`) with the native reader;
/// `ZAE_BLESS=1` writes `answer.json`.
#[test]
fn native_reader_matches_every_reader_vector() {
    use zae_planner::vector::{load_reader_all, run_reader_native};
    let vectors = load_reader_all(&default_root().join("reader")).expect("load reader vectors");
    assert!(vectors.len() >= 8, "expected at least 8 reader vectors, found {}", vectors.len());
    let bless = bless();
    let mut failures = Vec::new();
    for v in &vectors {
        let got = run_reader_native(v);
        if bless {
            std::fs::write(v.dir.join("answer.json"), format!("{got}\n")).expect("write answer.json");
            continue;
        }
        match &v.expected {
            None => failures.push(format!("reader/{}: no answer.json (run with ZAE_BLESS=1)", v.name)),
            Some(want) if *want != got => {
                failures.push(format!("reader/{}: differs\n  want {want}\n  got  {got}", v.name))
            }
            Some(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} reader vectors differ:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}
