//! The process configuration, read from the environment once at start-up.
//!
//! Two parts:
//!
//! * the planner's [`Config`](PlannerConfig) (`TABLE_NAME`,
//!   `SNAPSHOT_WINDOWS`, `SNAPSHOT_TTL_DAYS`, `ENABLE_ARCHIVAL`,
//!   `ARCHIVE_BUCKET_NAME`, `MAX_SHARD_COUNT`, `DEAD_LETTER_BUCKET`), built and validated by the
//!   component's own `config-from-env`, so every host applies the same rules.
//!   Only these variables cross into the component ([`PLANNER_VARS`]): the
//!   rest of the environment (AWS credentials among it) never does;
//! * the host's own settings ([`HostSettings`]), validated here.
//!
//! | variable | range | default |
//! |---|---|---|
//! | `LOG_LEVEL` | `DEBUG`, `INFO`, `WARNING` (or `WARN`), `ERROR`, any case | `INFO` |
//! | `ZAE_WRITE_CONCURRENCY` | 1 to 256 | 16 |
//! | `ZAE_MAX_ATTEMPTS` | 1 to 20 | 5 |
//! | `ZAE_MAX_REPLAN_ROUNDS` | 1 to 50 | 5 |
//! | `ZAE_PLAN_MEMORY_MB` | 16 to 4096 | 256 |
//! | `ZAE_PLAN_TIMEOUT_MS` | 10 to 900000 | 10000 |
//! | `ZAE_REQUEST_TIMEOUT_MS` | 100 to 600000 | 10000 |
//! | `ZAE_DEADLINE_MARGIN_MS` | 0 to 60000 | 1000 |
//!
//! A host variable that is set but blank (only whitespace) counts as unset,
//! so deployment templates can pass an empty parameter to mean "default".
//! Every error names the variable, the value it had and what is accepted.

use std::time::Duration;

use crate::bindings::Config as PlannerConfig;
use crate::engine::{Limits, Planner};
use crate::executor::ExecutorOptions;
use crate::logging::LogLevel;

/// The variables `config-from-env` reads; no other variable is passed to it.
/// The host knows the planner only through the contract, so the list is
/// written here; a unit test holds it equal to the planner's own.
pub const PLANNER_VARS: &[&str] = &[
    "TABLE_NAME",
    "SNAPSHOT_WINDOWS",
    "SNAPSHOT_TTL_DAYS",
    "ENABLE_ARCHIVAL",
    "ARCHIVE_BUCKET_NAME",
    "MAX_SHARD_COUNT",
    "DEAD_LETTER_BUCKET",
    "ZAE_LIMITER_VERSION",
];

/// An inclusive range of accepted values and the default of one numeric variable.
#[derive(Debug, Clone, Copy)]
struct Bounded {
    name: &'static str,
    min: u64,
    max: u64,
    default: u64,
}

const WRITE_CONCURRENCY: Bounded = Bounded { name: "ZAE_WRITE_CONCURRENCY", min: 1, max: 256, default: 16 };
const MAX_ATTEMPTS: Bounded = Bounded { name: "ZAE_MAX_ATTEMPTS", min: 1, max: 20, default: 5 };
const MAX_REPLAN_ROUNDS: Bounded = Bounded { name: "ZAE_MAX_REPLAN_ROUNDS", min: 1, max: 50, default: 5 };
const PLAN_MEMORY_MB: Bounded = Bounded { name: "ZAE_PLAN_MEMORY_MB", min: 16, max: 4096, default: 256 };
const PLAN_TIMEOUT_MS: Bounded = Bounded { name: "ZAE_PLAN_TIMEOUT_MS", min: 10, max: 900_000, default: 10_000 };
const DEADLINE_MARGIN_MS: Bounded = Bounded { name: "ZAE_DEADLINE_MARGIN_MS", min: 0, max: 60_000, default: 1_000 };
const REQUEST_TIMEOUT_MS: Bounded = Bounded { name: "ZAE_REQUEST_TIMEOUT_MS", min: 100, max: 600_000, default: 10_000 };

/// The host's own settings (everything except the planner configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSettings {
    /// `LOG_LEVEL`: the threshold for our own log lines (third-party crates
    /// log at `WARNING` or above whatever this is).
    pub log_level: LogLevel,
    /// `ZAE_WRITE_CONCURRENCY`: AWS requests in flight at once.
    pub write_concurrency: usize,
    /// `ZAE_MAX_ATTEMPTS`: attempts per AWS request, the first one included.
    pub max_attempts: u32,
    /// `ZAE_MAX_REPLAN_ROUNDS`: rounds of `replan-snapshots` per invocation.
    pub max_replan_rounds: u32,
    /// `ZAE_PLAN_MEMORY_MB`: memory cap of one planner call, in MiB.
    pub plan_memory_mb: u32,
    /// `ZAE_PLAN_TIMEOUT_MS`: deadline of one planner call.
    pub plan_timeout: Duration,
    /// `ZAE_REQUEST_TIMEOUT_MS`: timeout of one AWS request attempt.
    pub request_timeout: Duration,
    /// `ZAE_DEADLINE_MARGIN_MS`: how long before Lambda's deadline the
    /// invocation stops writing, to answer and log in time.
    pub deadline_margin: Duration,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            log_level: LogLevel::Info,
            write_concurrency: WRITE_CONCURRENCY.default as usize,
            max_attempts: MAX_ATTEMPTS.default as u32,
            max_replan_rounds: MAX_REPLAN_ROUNDS.default as u32,
            plan_memory_mb: PLAN_MEMORY_MB.default as u32,
            plan_timeout: Duration::from_millis(PLAN_TIMEOUT_MS.default),
            request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS.default),
            deadline_margin: Duration::from_millis(DEADLINE_MARGIN_MS.default),
        }
    }
}

impl HostSettings {
    /// Parse and validate the host settings from `(name, value)` pairs;
    /// unknown names are ignored and a name given twice takes its last value
    /// (as in `config-from-env`). Pure: it reads nothing but `vars`.
    pub fn from_vars(vars: &[(String, String)]) -> Result<HostSettings, String> {
        let get = |name: &str| {
            vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
        };
        let number = |b: Bounded| match get(b.name) {
            None => Ok(b.default),
            Some(v) => parse_bounded(b, v),
        };
        let log_level = match get("LOG_LEVEL") {
            None => LogLevel::Info,
            Some(v) => parse_log_level(v)?,
        };
        Ok(HostSettings {
            log_level,
            // The bounds keep every value within u32 (and usize).
            write_concurrency: number(WRITE_CONCURRENCY)? as usize,
            max_attempts: number(MAX_ATTEMPTS)? as u32,
            max_replan_rounds: number(MAX_REPLAN_ROUNDS)? as u32,
            plan_memory_mb: number(PLAN_MEMORY_MB)? as u32,
            plan_timeout: Duration::from_millis(number(PLAN_TIMEOUT_MS)?),
            request_timeout: Duration::from_millis(number(REQUEST_TIMEOUT_MS)?),
            deadline_margin: Duration::from_millis(number(DEADLINE_MARGIN_MS)?),
        })
    }

    /// The wasmtime limits of one planner call.
    pub fn limits(&self) -> Limits {
        Limits { memory_bytes: self.plan_memory_mb as usize * 1024 * 1024, deadline: self.plan_timeout }
    }

    /// The executor's options.
    pub fn executor_options(&self) -> ExecutorOptions {
        ExecutorOptions {
            concurrency: self.write_concurrency,
            max_attempts: self.max_attempts,
            max_replan_rounds: self.max_replan_rounds,
            request_timeout: Some(self.request_timeout),
        }
    }
}

/// The whole process configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The planner's configuration, as the component validated it.
    pub config: PlannerConfig,
    /// The host's own settings.
    pub host: HostSettings,
}

impl Settings {
    /// Read the process environment (once) and validate it: the host
    /// settings here, the planner configuration through the component's
    /// `config-from-env` (only [`PLANNER_VARS`] are passed).
    pub async fn from_env(planner: &Planner) -> Result<Settings, String> {
        Self::from_vars(planner, &env_vars()).await
    }

    /// [`Settings::from_env`] over explicit `(name, value)` pairs.
    pub async fn from_vars(planner: &Planner, vars: &[(String, String)]) -> Result<Settings, String> {
        let host = HostSettings::from_vars(vars)?;
        let planner_vars: Vec<(String, String)> =
            vars.iter().filter(|(k, _)| PLANNER_VARS.contains(&k.as_str())).cloned().collect();
        let config = match planner.config_from_env(&planner_vars).await {
            Ok(Ok(config)) => config,
            Ok(Err(e)) => return Err(e.message),
            Err(e) => return Err(format!("the planner component failed while validating the configuration: {e}")),
        };
        Ok(Settings { config, host })
    }

    /// The wasmtime limits of one planner call.
    pub fn limits(&self) -> Limits {
        self.host.limits()
    }

    /// The executor's options.
    pub fn executor_options(&self) -> ExecutorOptions {
        self.host.executor_options()
    }
}

/// The process environment as `(name, value)` pairs. Variables whose name or
/// value is not valid UTF-8 are converted lossily (none of ours can be).
pub fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect()
}

/// `LOG_LEVEL`: `DEBUG`, `INFO`, `WARNING` (or `WARN`), `ERROR`, any case,
/// surrounding whitespace ignored.
pub fn parse_log_level(value: &str) -> Result<LogLevel, String> {
    match value.trim().to_ascii_uppercase().as_str() {
        "DEBUG" => Ok(LogLevel::Debug),
        "INFO" => Ok(LogLevel::Info),
        "WARNING" | "WARN" => Ok(LogLevel::Warning),
        "ERROR" => Ok(LogLevel::Error),
        _ => Err(format!("LOG_LEVEL={value:?}: expected DEBUG, INFO, WARNING or ERROR")),
    }
}

fn parse_bounded(b: Bounded, value: &str) -> Result<u64, String> {
    let range = format!("{} to {}", b.min, b.max);
    let n: u64 =
        value.trim().parse().map_err(|_| format!("{}={value:?}: not a whole number (expected {range})", b.name))?;
    if n < b.min || n > b.max {
        return Err(format!("{}={value:?}: must be between {range}", b.name));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planner_variables_are_the_planners_own() {
        assert_eq!(PLANNER_VARS, zae_planner::config::VARIABLES);
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults() {
        let s = HostSettings::from_vars(&[]).unwrap();
        assert_eq!(s, HostSettings::default());
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.write_concurrency, 16);
        assert_eq!(s.max_attempts, 5);
        assert_eq!(s.max_replan_rounds, 5);
        assert_eq!(s.plan_memory_mb, 256);
        assert_eq!(s.plan_timeout, Duration::from_secs(10));
        assert_eq!(s.request_timeout, Duration::from_secs(10));
        assert_eq!(s.limits(), Limits::default());
        assert_eq!(s.executor_options(), ExecutorOptions::default());
    }

    #[test]
    fn every_variable_is_read() {
        let s = HostSettings::from_vars(&vars(&[
            ("LOG_LEVEL", "debug"),
            ("ZAE_WRITE_CONCURRENCY", "64"),
            ("ZAE_MAX_ATTEMPTS", " 1 "),
            ("ZAE_MAX_REPLAN_ROUNDS", "50"),
            ("ZAE_PLAN_MEMORY_MB", "16"),
            ("ZAE_PLAN_TIMEOUT_MS", "900000"),
            ("ZAE_REQUEST_TIMEOUT_MS", "100"),
            ("ZAE_DEADLINE_MARGIN_MS", "250"),
            ("UNRELATED", "x"),
        ]))
        .unwrap();
        assert_eq!(
            s,
            HostSettings {
                log_level: LogLevel::Debug,
                write_concurrency: 64,
                max_attempts: 1,
                max_replan_rounds: 50,
                plan_memory_mb: 16,
                plan_timeout: Duration::from_secs(900),
                request_timeout: Duration::from_millis(100),
                deadline_margin: Duration::from_millis(250),
            }
        );
        assert_eq!(s.limits().memory_bytes, 16 << 20);
    }

    #[test]
    fn log_levels_are_case_insensitive() {
        for (v, want) in [
            ("DEBUG", LogLevel::Debug),
            ("Info", LogLevel::Info),
            ("warning", LogLevel::Warning),
            ("WARN", LogLevel::Warning),
            (" error ", LogLevel::Error),
        ] {
            assert_eq!(parse_log_level(v), Ok(want), "{v}");
        }
        let e = HostSettings::from_vars(&vars(&[("LOG_LEVEL", "verbose")])).unwrap_err();
        assert!(e.starts_with("LOG_LEVEL=\"verbose\""), "{e}");
    }

    #[test]
    fn bounds_are_enforced_with_errors_naming_the_variable() {
        for (name, bad) in [
            ("ZAE_WRITE_CONCURRENCY", "0"),
            ("ZAE_WRITE_CONCURRENCY", "257"),
            ("ZAE_MAX_ATTEMPTS", "21"),
            ("ZAE_MAX_REPLAN_ROUNDS", "0"),
            ("ZAE_PLAN_MEMORY_MB", "15"),
            ("ZAE_PLAN_MEMORY_MB", "4097"),
            ("ZAE_PLAN_TIMEOUT_MS", "9"),
            ("ZAE_REQUEST_TIMEOUT_MS", "600001"),
        ] {
            let e = HostSettings::from_vars(&vars(&[(name, bad)])).unwrap_err();
            assert!(e.starts_with(&format!("{name}=\"{bad}\": must be between ")), "{e}");
        }
        for bad in ["abc", "-1", "1.5", "1e3", "99999999999999999999999"] {
            let e = HostSettings::from_vars(&vars(&[("ZAE_MAX_ATTEMPTS", bad)])).unwrap_err();
            assert_eq!(e, format!("ZAE_MAX_ATTEMPTS={bad:?}: not a whole number (expected 1 to 20)"));
        }
    }

    #[test]
    fn blank_means_default_and_the_last_value_wins() {
        let s = HostSettings::from_vars(&vars(&[("LOG_LEVEL", " "), ("ZAE_MAX_ATTEMPTS", "")])).unwrap();
        assert_eq!(s, HostSettings::default());
        let s = HostSettings::from_vars(&vars(&[("ZAE_MAX_ATTEMPTS", "abc"), ("ZAE_MAX_ATTEMPTS", "3")])).unwrap();
        assert_eq!(s.max_attempts, 3);
    }
}
