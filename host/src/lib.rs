//! The zae-aggregator host: runs the planner component (`zae-planner`,
//! built for `wasm32-wasip2` and embedded at build time) with wasmtime.
//!
//! * [`engine`]: compiling, limiting and calling the component ([`Planner`]).
//! * [`convert`]: mechanical conversions between the WIT types of
//!   [`bindings`] and the native planner types.
//! * [`bindings`]: the host bindings generated from `wit/planner.wit`.

pub mod bindings;
pub mod convert;
pub mod engine;

pub use engine::{CallError, Limits, Planner};
