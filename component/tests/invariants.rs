//! The planner's invariants (`common/invariants.rs`) on structure-aware
//! random batches (`common/gen.rs`), the same checker and generator the
//! cargo-fuzz targets use (`docs/testing.md#fuzzing`).
//!
//! Every assertion runs, DynamoDB's limits included.

mod common;

use arbitrary::{Arbitrary, Unstructured};
use common::gen::Case;
use common::invariants::{valid_number, Options};
use common::targets;
use proptest::prelude::*;

/// Random bytes for the generator; long enough for a few wide records.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4096)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn plan_invariants_hold(data in bytes()) {
        // A batch, its plan, and a re-plan against observed items.
        targets::replan(&data, Options::from_env());
    }

    #[test]
    fn config_from_env_is_total(data in prop::collection::vec(any::<u8>(), 0..256)) {
        targets::config(&data);
    }
}

#[test]
fn dynamodb_number_rule() {
    for ok in [
        "0",
        "-0",
        "1",
        "99999999999999999999999999999999999999",
        "1E+125",
        "9.9E125",
        "1e-130",
        "0.5",
        ".5",
        "100000000000000000000000000000000000000000",
    ] {
        assert!(valid_number(ok), "{ok}");
    }
    for bad in
        ["", "-", "1e", "abc", "1_000", " 1", "170141183460469231731687303715884105728", "1E+126", "1e-131", "1.2.3"]
    {
        assert!(!valid_number(bad), "{bad}");
    }
}

#[test]
fn generator_covers_wide_images_and_duplicates() {
    // A few fixed seeds exercise the generator's rarer branches.
    let mut wide = false;
    let mut dup = false;
    for seed in 0u64..400 {
        let data: Vec<u8> = (0..4096u64)
            .map(|i| {
                (seed.wrapping_mul(6364136223846793005).wrapping_add(i.wrapping_mul(1442695040888963407)) >> 33) as u8
            })
            .collect();
        let case = Case::arbitrary(&mut Unstructured::new(&data)).unwrap();
        wide |= case.event.matches("attr").count() >= 200;
        dup |= case.event.contains("\"Records\":[1]");
    }
    assert!(wide && dup, "wide images {wide}, duplicate Records {dup}");
}
