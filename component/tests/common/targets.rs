//! One function per fuzz target, from the fuzzer's raw bytes: the cargo-fuzz
//! binaries (`component/fuzz/fuzz_targets/`) call these, and
//! `component/tests/fuzz_regressions.rs` replays saved inputs through the
//! same functions (`docs/testing.md#fuzzing`).

use arbitrary::{Arbitrary, Unstructured};
use zae_planner::config::Config;
use zae_planner::window::Window;

use super::config_check::check_config;
use super::gen::{Case, EnvVars, Observed};
use super::invariants::{check_plan, check_replan, Options};

/// The configuration of `event_text`: archival on, all three windows, a low
/// shard maximum, so every stage is reachable.
pub fn event_text_config() -> Config {
    Config {
        windows: vec![Window::Hourly, Window::Daily, Window::Monthly],
        archive_bucket: Some("audit-archive".into()),
        max_shard_count: 8,
        ..Config::default()
    }
}

/// `event_text`: the bytes, if UTF-8, are the event JSON.
pub fn event_text(data: &[u8], opts: Options) {
    let Ok(event) = std::str::from_utf8(data) else { return };
    let config = event_text_config();
    let batch =
        zae_planner::Batch { event_json: event, config: &config, now_ms: 1_704_067_200_000, invocation_id: "fuzz" };
    let _ = check_plan(&batch, opts);
}

/// `structured_event`: a generated batch.
pub fn structured_event(data: &[u8], opts: Options) {
    let Ok(case) = Case::arbitrary(&mut Unstructured::new(data)) else { return };
    let _ = check_plan(&case.batch(), opts);
}

/// `replan`: a generated batch, then observed items for its snapshot writes.
pub fn replan(data: &[u8], opts: Options) {
    let mut u = Unstructured::new(data);
    let Ok(case) = Case::arbitrary(&mut u) else { return };
    let Ok(observed) = Observed::arbitrary(&mut u) else { return };
    if let Ok(plan) = check_plan(&case.batch(), opts) {
        check_replan(&case.batch(), &plan, &observed, opts);
    }
}

/// `config`: generated environment variables.
pub fn config(data: &[u8]) {
    if let Ok(vars) = EnvVars::arbitrary(&mut Unstructured::new(data)) {
        check_config(&vars);
    }
}
