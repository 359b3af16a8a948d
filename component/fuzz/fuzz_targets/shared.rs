//! The checker and generator shared with the stable test suites
//! (`component/tests/common/`, `docs/testing.md#fuzzing`).

#[allow(dead_code)]
#[path = "../../tests/common/mod.rs"]
pub mod common;
