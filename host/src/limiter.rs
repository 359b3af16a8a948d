//! Choosing the zae-limiter semantics at start-up
//! (`docs/specification.md#limiter-versions`).
//!
//! `ZAE_LIMITER_VERSION` decides when it is set (the planner's
//! `config-from-env` validates it). Unset, the host reads the table's own
//! version record (`PK = _/SYSTEM#`, `SK = #VERSION`) once, with a strongly
//! consistent GetItem, and the planner's `limiter-from-version-record`
//! decides from it; the host only moves the item. The choice and its reason
//! are logged once.

use serde_json::json;

use crate::bindings::{LimiterChoice, LimiterSemantics};
use crate::dynamo_json::item_to_json;
use crate::engine::Planner;
use crate::logging::{self, LogLevel};
use crate::settings::Settings;

/// PK of zae-limiter's version record.
pub const VERSION_RECORD_PK: &str = "_/SYSTEM#";
/// SK of zae-limiter's version record.
pub const VERSION_RECORD_SK: &str = "#VERSION";

/// Read the version record of `table` (`None` when the table has none).
pub async fn read_version_record(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Option<String>, String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = ddb
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S(VERSION_RECORD_PK.into()))
        .key("SK", AttributeValue::S(VERSION_RECORD_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read the version record of table {table} to choose the zae-limiter semantics ({}); \
                 set ZAE_LIMITER_VERSION to 0.13 or 0.17",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(out.item().map(item_to_json))
}

/// Make sure `settings` names the semantics to serve: keep
/// `ZAE_LIMITER_VERSION`'s choice, or read the table's version record and
/// let the planner choose. Logs the choice and why; an error means the
/// process cannot start.
pub async fn choose(planner: &Planner, ddb: &aws_sdk_dynamodb::Client, settings: &mut Settings) -> Result<(), String> {
    let choice = match settings.config.limiter {
        Some(limiter) => {
            LimiterChoice { limiter, lambda_version: None, reason: format!("ZAE_LIMITER_VERSION={}", limiter.name()) }
        }
        None => {
            let item = read_version_record(ddb, &settings.config.table_name).await?;
            match planner.limiter_from_version_record(item.as_deref()).await {
                Ok(Ok(choice)) => choice,
                Ok(Err(e)) => return Err(e.message),
                Err(e) => return Err(format!("the planner failed while reading the version record: {e}")),
            }
        }
    };
    settings.config.limiter = Some(choice.limiter);
    log_choice(&choice);
    Ok(())
}

/// `Serving zae-limiter semantics` with the version and the reason.
pub fn log_choice(choice: &LimiterChoice) {
    logging::emit(
        LogLevel::Info,
        "zae_aggregator.limiter",
        "Serving zae-limiter semantics",
        &[
            ("zae_limiter_version", json!(choice.limiter.name())),
            ("lambda_version", json!(choice.lambda_version)),
            ("reason", json!(choice.reason)),
        ],
        None,
    );
}

/// The semantics of a configuration that was never given a choice: the
/// `plan` command reads no table, so it plans with 0.13 unless told.
pub fn or_default(limiter: Option<LimiterSemantics>) -> LimiterSemantics {
    limiter.unwrap_or(LimiterSemantics::V013)
}
