//! The contract: host bindings generated from `wit/planner.wit` (package
//! `zae:aggregator@0.7.0`, world `aggregator`), and the few names and
//! renderings the host needs for logs. The host knows the planner only
//! through these types.
//!
//! Kept in a module of their own: the contract has a type named `config`,
//! whose generated Rust name (`Config`) would clash with `wasmtime::Config`.
//! Exports are called asynchronously (the store runs with epoch-based
//! yielding and an async WASI linker). Parameters borrow (`ownership:
//! Borrowing`): the event text goes from the host's buffer straight into the
//! guest's memory, without an intermediate copy (a 25 MB event would
//! otherwise be held three times at once).

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "aggregator",
    path: "../wit",
    exports: { default: async },
    ownership: Borrowing { duplicate_if_necessary: false },
    additional_derives: [PartialEq, Eq],
});

pub use zae::aggregator::types::*;

/// The reader interface: its types and exported functions (docs/reading.md).
pub use exports::zae::aggregator::reader;

/// The planner interface's exported functions.
pub use exports::zae::aggregator::planner::Guest as PlannerExports;

impl Window {
    /// The window's name in `SNAPSHOT_WINDOWS` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Window::Hourly => "hourly",
            Window::Daily => "daily",
            Window::Monthly => "monthly",
        }
    }
}

impl LimiterSemantics {
    /// The `ZAE_LIMITER_VERSION` spelling.
    pub fn name(self) -> &'static str {
        match self {
            LimiterSemantics::V013 => "0.13",
            LimiterSemantics::V017 => "0.17",
        }
    }
}

impl Purpose {
    /// The WIT (kebab-case) name.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Snapshot => "snapshot",
            Purpose::Refill => "refill",
            Purpose::ShardBump => "shard-bump",
            Purpose::ShardPropagate => "shard-propagate",
            Purpose::Archive => "archive",
            Purpose::DeadLetter => "dead-letter",
        }
    }
}

impl FailurePolicy {
    /// The WIT (kebab-case) name.
    pub fn name(self) -> &'static str {
        match self {
            FailurePolicy::Required => "required",
            FailurePolicy::BestEffort => "best-effort",
        }
    }
}

impl OnConditionFailure {
    /// The WIT (kebab-case) name.
    pub fn name(self) -> &'static str {
        match self {
            OnConditionFailure::Ignore => "ignore",
            OnConditionFailure::ResolveWatermarks => "resolve-watermarks",
        }
    }
}

impl PlanError {
    /// The error in words, for logs and Lambda's error payload. (The
    /// generated `Display` prints the variant's debug form.)
    pub fn message(&self) -> String {
        match self {
            PlanError::EventNotJson(e) => format!("event is not valid JSON: {}", e.message),
            PlanError::EventNotObject => "event is not a JSON object".into(),
            PlanError::RecordsNotList => "Records is not a list".into(),
            PlanError::BadConfig(e) => format!("bad config: {}", e.message),
            PlanError::UnknownWriteId(id) => format!("write {id} is not a write of this batch's plan"),
            PlanError::UnknownReadId(id) => format!("read {id} is not a read of this batch's plan"),
            PlanError::UnknownRecordIndex(i) => format!("record {i} is not a record of this batch"),
        }
    }
}
