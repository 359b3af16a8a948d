//! Plan an event file with the native planner and print the canonical plan.
//!
//! ```text
//! cargo run -p zae-planner --example plan -- EVENT_FILE [NOW_MS]
//! ```
//! Configuration comes from the same environment variables as the Lambda
//! (`TABLE_NAME`, `SNAPSHOT_WINDOWS`, `SNAPSHOT_TTL_DAYS`, `ENABLE_ARCHIVAL`,
//! `ARCHIVE_BUCKET_NAME`, `MAX_SHARD_COUNT`); `NOW_MS` defaults to the clock.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: plan EVENT_FILE [NOW_MS]");
        return ExitCode::from(2);
    };
    let event = match std::fs::read_to_string(path) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let now_ms = match args.get(1) {
        Some(n) => match n.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("NOW_MS {n:?} is not a whole number of milliseconds");
                return ExitCode::from(2);
            }
        },
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
    };
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let config = match zae_planner::config::Config::from_env(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let batch = zae_planner::Batch { event_json: &event, config: &config, now_ms, invocation_id: "local" };
    match zae_planner::plan_json(&batch) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
