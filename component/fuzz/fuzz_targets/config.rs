//! Arbitrary environment variables into `Config::from_env`: never panics,
//! deterministic, and whatever it accepts validates and plans
//! (`docs/testing.md#fuzzing`).
#![no_main]

mod shared;

use libfuzzer_sys::fuzz_target;
use shared::common::targets;

fuzz_target!(|data: &[u8]| targets::config(data));
