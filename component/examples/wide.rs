//! Time one `plan` call on a wide bucket record (docs/benchmarks.md#wide-images).
//!
//! ```text
//! cargo run --release -p zae-planner --example wide -- ATTRS [SHARDS] [REPS]
//! ```

use zae_planner::config::Config;
use zae_planner::plan::{canonical_json, Batch};
use zae_planner::window::Window;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("a number")).collect();
    let attrs = args.first().copied().unwrap_or(16_384);
    let shards = args.get(1).copied().unwrap_or(1);
    let reps = args.get(2).copied().unwrap_or(5);
    let event_json = zae_planner::vector::wide_event(attrs, shards as u32);
    let config = Config {
        table_name: "zae-limiter".into(),
        windows: vec![Window::Hourly, Window::Daily],
        snapshot_ttl_days: 90,
        archive_bucket: None,
        dead_letter_bucket: None,
        max_shard_count: shards.max(1) as u32,
        limiter: Some(zae_planner::config::Limiter::V013),
    };
    let batch = Batch { event_json: &event_json, config: &config, now_ms: 1_704_067_260_000, invocation_id: "bench" };
    let mut times = Vec::new();
    let mut plan = None;
    for _ in 0..reps {
        let t = std::time::Instant::now();
        plan = Some(zae_planner::plan(&batch).expect("plan"));
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let plan = plan.expect("at least one repetition");
    let json = canonical_json(&plan);
    println!(
        "attrs={attrs} shards={shards} event={} B writes={} plan_json={} B median={:.2} ms min={:.2} ms",
        event_json.len(),
        plan.writes.len(),
        json.len(),
        times[times.len() / 2],
        times[0]
    );
}
