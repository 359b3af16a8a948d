//! The zae-aggregator host: runs the planner component (`zae-planner`,
//! built for `wasm32-wasip2` and embedded at build time) with wasmtime and
//! executes its plans against DynamoDB and S3.
//!
//! * [`engine`]: compiling, limiting and calling the component ([`Planner`]).
//! * [`convert`]: mechanical conversions between the WIT types of
//!   [`bindings`] and the native planner types.
//! * [`bindings`]: the host bindings generated from `wit/planner.wit`.
//! * [`dynamo_json`]: DynamoDB JSON <-> SDK `AttributeValue`.
//! * [`executor`]: runs a plan's writes with aws-sdk-dynamodb / aws-sdk-s3.
//! * [`handler`]: one invocation: plan, execute, Lambda response.
//! * [`settings`]: the process configuration from the environment.
//! * [`logging`]: JSON-lines logs through tracing.
//! * [`lambda`]: the custom-runtime loop.
//! * [`cli`]: the command line.

pub mod bindings;
pub mod cli;
pub mod convert;
pub mod dynamo_json;
pub mod engine;
pub mod executor;
pub mod handler;
pub mod lambda;
pub mod logging;
pub mod settings;

pub use engine::{CallError, Limits, Planner};
