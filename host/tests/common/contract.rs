//! The conformance vectors' native types as the contract's types, for the
//! tests and benches (which build batches from vectors). The host itself
//! never needs this: it only ever holds contract types.

#![allow(dead_code)]

use zae_aggregator::bindings as wit;
use zae_planner::vector::Vector;

/// A conformance vector's configuration in the contract's types.
pub fn wit_config(c: &zae_planner::config::Config) -> wit::Config {
    let window = |w: &zae_planner::window::Window| match w {
        zae_planner::window::Window::Hourly => wit::Window::Hourly,
        zae_planner::window::Window::Daily => wit::Window::Daily,
        zae_planner::window::Window::Monthly => wit::Window::Monthly,
    };
    wit::Config {
        table_name: c.table_name.clone(),
        windows: c.windows.iter().map(window).collect(),
        snapshot_ttl_days: c.snapshot_ttl_days,
        archive_bucket: c.archive_bucket.clone(),
        max_shard_count: c.max_shard_count,
        dead_letter_bucket: c.dead_letter_bucket.clone(),
        limiter: c.limiter.map(|l| match l {
            zae_planner::config::Limiter::V013 => wit::LimiterSemantics::V013,
            zae_planner::config::Limiter::V017 => wit::LimiterSemantics::V017,
        }),
    }
}

/// A configuration in the contract's types: `hourly,daily`, 90 days, no
/// archive, 32 shards at most.
pub fn config(table: &str) -> wit::Config {
    wit::Config {
        table_name: table.to_string(),
        windows: vec![wit::Window::Hourly, wit::Window::Daily],
        snapshot_ttl_days: 90,
        archive_bucket: None,
        max_shard_count: 32,
        dead_letter_bucket: None,
        limiter: Some(wit::LimiterSemantics::V013),
    }
}

/// The parts of a batch, owned, so a [`wit::Batch`] can borrow them.
#[derive(Debug, Clone)]
pub struct OwnedBatch {
    /// The event text.
    pub event_json: String,
    /// The configuration.
    pub config: wit::Config,
    /// The clock.
    pub now_ms: i64,
    /// The invocation id.
    pub invocation_id: String,
}

impl OwnedBatch {
    /// The batch as the contract takes it.
    pub fn batch(&self) -> wit::Batch<'_> {
        wit::Batch {
            event_json: &self.event_json,
            config: &self.config,
            now_ms: self.now_ms,
            invocation_id: &self.invocation_id,
        }
    }
}

/// A vector's batch.
pub fn vector_batch(v: &Vector) -> OwnedBatch {
    OwnedBatch {
        event_json: v.event_json.clone(),
        config: wit_config(&v.config),
        now_ms: v.now_ms,
        invocation_id: v.invocation_id.clone(),
    }
}
