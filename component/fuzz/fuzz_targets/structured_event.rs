//! A structure-aware batch (`component/tests/common/gen.rs`) rendered to
//! JSON: every invariant of the plan holds (`docs/testing.md#fuzzing`).
#![no_main]

mod shared;

use libfuzzer_sys::fuzz_target;
use shared::common::invariants::Options;
use shared::common::targets;

fuzz_target!(|data: &[u8]| targets::structured_event(data, Options::from_env()));
