//! A structure-aware batch plus arbitrary observed items for a subset of its
//! snapshot writes: `replan_snapshots` never panics and answers only for
//! observed snapshot writes (`docs/testing.md#fuzzing`).
#![no_main]

mod shared;

use libfuzzer_sys::fuzz_target;
use shared::common::invariants::Options;
use shared::common::targets;

fuzz_target!(|data: &[u8]| targets::replan(data, Options::from_env()));
