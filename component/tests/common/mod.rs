//! Test code shared by the proptest suites, the fuzz regression replays and
//! the cargo-fuzz targets in `component/fuzz/` (which include these files by
//! path). See `docs/testing.md#fuzzing`.

#![allow(dead_code)]

pub mod config_check;
pub mod gen;
pub mod invariants;
pub mod multi_json;
pub mod targets;
