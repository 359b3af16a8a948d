//! Raw bytes as the event JSON: `plan` never panics and every invariant of
//! `component/tests/common/invariants.rs` holds (`docs/testing.md#fuzzing`).
#![no_main]

mod shared;

use libfuzzer_sys::fuzz_target;
use shared::common::invariants::Options;
use shared::common::targets;

fuzz_target!(|data: &[u8]| targets::event_text(data, Options::from_env()));
