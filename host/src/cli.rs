//! The command line: `zae-aggregator lambda | plan | invoke | poll | replay | usage | reconcile |
//! backfill`.
//!
//! Exit codes of `plan` and `invoke`:
//!
//! * `0`: done (for `invoke`: every write applied, or deliberately ignored);
//! * `1`: some records failed (the response lists them), or the planner
//!   component trapped, ran out of time or memory (the result is Lambda's
//!   error payload, `{"errorType": ..., "errorMessage": ...}`);
//! * `2`: bad input (an unreadable event file, an event that is not JSON,
//!   not an object, or whose `Records` is not a list) or bad configuration,
//!   and command-line usage errors.
//!
//! `invoke` writes its response to `--output`, or to standard output; logs
//! go to standard output when the response goes to a file, and to standard
//! error when it goes to standard output, so standard output stays
//! parseable. `plan` prints the canonical plan JSON and logs to standard
//! error.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use serde_json::{json, Value};

use crate::bindings::Batch;
use crate::engine::Planner;
use crate::executor::Executor;
use crate::handler::{self, App, InvokeError};
use crate::lambda;
use crate::logging::{self, LogLevel, Output};
use crate::settings::{self, HostSettings, Settings};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: some records failed, or the planner failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad input, bad configuration or bad usage.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Request id of `plan` and `invoke` when `--request-id` is not given.
pub const DEFAULT_REQUEST_ID: &str = "local-invoke";

/// Function name `invoke` logs when `AWS_LAMBDA_FUNCTION_NAME` is not set.
pub const DEFAULT_FUNCTION_NAME: &str = "local";

const LONG_ABOUT: &str = "\
Usage aggregation for DynamoDB token-bucket rate limiters (zae-limiter): turns a DynamoDB \
Streams batch into snapshot counters, proactive refills, shard changes and S3 audit archives. \
A WebAssembly planner component decides every write; this host runs it and executes the writes.

Configuration comes from the environment and is validated at start-up:
  TABLE_NAME, SNAPSHOT_WINDOWS, SNAPSHOT_TTL_DAYS, ENABLE_ARCHIVAL, ARCHIVE_BUCKET_NAME,
  MAX_SHARD_COUNT, DEAD_LETTER_BUCKET (planner); LOG_LEVEL, ZAE_WRITE_CONCURRENCY, ZAE_MAX_ATTEMPTS,
  ZAE_MAX_REPLAN_ROUNDS, ZAE_PLAN_MEMORY_MB, ZAE_PLAN_TIMEOUT_MS, ZAE_REQUEST_TIMEOUT_MS,
  ZAE_DEADLINE_MARGIN_MS (host).
AWS endpoint, region and credentials come from the standard AWS environment (AWS_ENDPOINT_URL, \
AWS_REGION, ...).

With no subcommand, runs `lambda` when AWS_LAMBDA_RUNTIME_API is set.";

const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 some records failed or the planner failed; 2 bad input, bad \
configuration or bad usage.";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "zae-aggregator", version, about = "Usage aggregation for DynamoDB token-bucket rate limiters")]
#[command(long_about = LONG_ABOUT, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the AWS Lambda custom-runtime loop (the default when AWS_LAMBDA_RUNTIME_API is set)
    #[command(long_about = "\
Run the AWS Lambda custom-runtime loop (the default when AWS_LAMBDA_RUNTIME_API is set).

Needs AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_MEMORY_SIZE and \
AWS_LAMBDA_FUNCTION_VERSION (Lambda sets them). Responses carry batchItemFailures for \
ReportBatchItemFailures; an unusable event or a planner failure is a function error. An invalid \
configuration is reported to the runtime API's init/error endpoint and the process exits with \
code 2. Logs are JSON lines on standard output.")]
    Lambda,
    /// Print the canonical plan of an event file (no AWS calls)
    #[command(long_about = "\
Print the canonical plan JSON of an event file, computed by the planner component: every \
DynamoDB and S3 request the batch needs, per-record outcomes, log entries and counters. Makes \
no AWS calls. The configuration comes from the environment.

An event the planner rejects prints {\"error\":{\"kind\":...,...,\"message\":...}} and exits with code 2.",
        after_help = EXIT_CODES)]
    Plan(PlanArgs),
    /// Plan and execute an event file exactly as one Lambda invocation
    #[command(long_about = "\
Plan and execute an event file exactly as one Lambda invocation, against the AWS endpoint of the \
environment (AWS_ENDPOINT_URL works), and write the Lambda response JSON.

The response goes to --output, or to standard output. Logs go to standard output when the \
response goes to a file, and to standard error otherwise. When the planner fails, the result is \
Lambda's error payload {\"errorType\":...,\"errorMessage\":...}.",
        after_help = EXIT_CODES)]
    Invoke(InvokeArgs),
    /// Consume the table's DynamoDB stream as Lambda's event source mapping would (docs/poll.md)
    #[command(long_about = "\
Consume the table's DynamoDB stream as Lambda's event source mapping would: shards in order, \
children after their parents, new shards discovered; the template's filter; Lambda-shaped \
batches through the same planner and executor as `invoke`; batchItemFailures honoured with \
backoff; a checkpoint per shard written after each batch (an item of the table, or --checkpoint \
FILE). Runs until SIGINT or SIGTERM (the batch in flight finishes, the checkpoint is written, \
exit 0), or with --until-caught-up until every open shard is read to its end. A progress line on \
a terminal, JSON log lines on standard output otherwise. See docs/poll.md.",
        after_help = EXIT_CODES)]
    Poll(crate::poll::PollArgs),
    /// Re-run a stream range or the dead letter's records (docs/poll.md#replay)
    #[command(long_about = "\
Re-run records through the same planner and executor as `invoke`: a sequence range still in the \
stream (--stream-arn, --shard, --from-seq, optionally --to-seq; what an on-failure destination \
records), or every dead-letter object under an S3 prefix (--dead-letter s3://BUCKET/PREFIX), \
each object moved to PREFIX/replayed/ once all its records are applied. Safe to repeat: records \
already counted are no-ops. See docs/poll.md.",
        after_help = EXIT_CODES)]
    Replay(crate::replay::ReplayArgs),
    /// Read the usage snapshots back: list, summary, average (docs/reading.md#commands)
    #[command(
        long_about = "\
Read the usage snapshots back. `list` prints one row per snapshot item, newest first; `summary` \
the totals per entity, resource and window; `average` the average monthly usage over the last \
--months complete months, from the coarsest window that covers them (monthly, else daily, else \
hourly), saying which window answered and how many items it summed. An entity's partition is \
read on the base table, a resource alone through index GSI2; the component's reader decides \
what the items mean. Output: an aligned table on a terminal, JSON otherwise, or --format. \
--stats prints the items read and the read capacity consumed to standard error. See \
docs/reading.md.",
        after_help = "Exit codes: 0 answered; 1 a read or the component failed; 2 bad usage or a bad query time."
    )]
    Usage(crate::usage::UsageArgs),
    /// Check that each daily item equals the sum of its hourly items and each monthly item the sum of its daily items (docs/reading.md#reconcile)
    #[command(
        long_about = "\
Check that each daily item equals the sum of its hourly items and each monthly item the sum of its \
daily items, over the periods where both windows were maintained (per entity and resource, the \
periods both windows' items span, less a first or last period where one window started later or \
stopped earlier). Reports each drifting item with both values: a table on a terminal, JSON \
otherwise, or --format. Reads one entity's partition with --entity, else the namespace's items \
through index GSI4. See docs/reading.md#reconcile.",
        after_help = "Exit codes: 0 no drift; 1 drift found; 2 bad usage or a bad time; 3 a read or the component failed."
    )]
    Reconcile(crate::reconcile::ReconcileArgs),
    /// Build a newly enabled window's items from the next finer window's (docs/reading.md#backfill)
    #[command(
        long_about = "\
Build the items of a newly enabled window from the next finer window's items: daily from hourly, \
monthly from daily. Each item is put only where no item with its key exists, carrying the finer \
items' watermarks, so it never double counts: not when run twice, not when interrupted and \
resumed, not while the aggregator writes the same window. Only periods that ended at least 25 \
hours ago are built (a record can reach the aggregator up to 24 hours late). A progress bar on a \
terminal, progress lines on standard error otherwise; a checkpoint file of the entities done; \
--max-wcu bounds the write rate. See docs/reading.md#backfill.",
        after_help = "Exit codes: 0 done; 1 a read, a write or the component failed (run again to resume); 2 bad usage, configuration or dates."
    )]
    Backfill(crate::backfill::BackfillArgs),
}

/// The event and the invocation's identity.
#[derive(Debug, Args)]
pub struct EventArgs {
    /// Lambda event JSON file ({"Records": [...]}); `-` reads standard input
    #[arg(value_name = "EVENT_FILE")]
    pub event_file: PathBuf,
    /// The current time in epoch milliseconds, used for everything that needs the clock
    /// [default: the system clock]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub now_ms: Option<i64>,
    /// The invocation id (Lambda's request id)
    #[arg(long, value_name = "ID", default_value = DEFAULT_REQUEST_ID)]
    pub request_id: String,
}

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The event.
    #[command(flatten)]
    pub event: EventArgs,
}

/// Arguments of `invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The event.
    #[command(flatten)]
    pub event: EventArgs,
    /// Write the response JSON to this file instead of standard output
    #[arg(long, short, value_name = "RESULT_FILE")]
    pub output: Option<PathBuf>,
}

/// Parse the command line and run it.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let vars = settings::env_vars();
    let code = match cli.command {
        Some(Command::Lambda) => run_lambda(&vars).await,
        Some(Command::Plan(args)) => run_plan(&args, &vars).await,
        Some(Command::Invoke(args)) => run_invoke(&args, &vars).await,
        Some(Command::Poll(args)) => crate::poll::run(&args, &vars).await,
        Some(Command::Replay(args)) => crate::replay::run(&args, &vars).await,
        Some(Command::Usage(args)) => crate::usage::run(&args, &vars).await,
        Some(Command::Reconcile(args)) => crate::reconcile::run(&args, &vars).await,
        Some(Command::Backfill(args)) => crate::backfill::run(&args, &vars).await,
        None if var(&vars, "AWS_LAMBDA_RUNTIME_API").is_some() => run_lambda(&vars).await,
        None => {
            eprintln!("{}", Cli::command().render_help());
            EXIT_BAD_INPUT
        }
    };
    ExitCode::from(code)
}

/// Build the planner for the process: the component precompiled at build
/// time (compiled from the embedded `.wasm` if this machine cannot run that
/// code), with the limits of `host`. The one place planners are made.
pub fn build_planner(host: &HostSettings) -> anyhow::Result<Planner> {
    Planner::load(host.limits())
}

/// Why the process could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupError {
    /// Exit code.
    pub code: u8,
    /// Short error type (Lambda's `errorType`).
    pub error_type: &'static str,
    /// What is wrong.
    pub message: String,
}

impl StartupError {
    fn config(message: String) -> StartupError {
        StartupError {
            code: EXIT_BAD_INPUT,
            error_type: "InvalidConfiguration",
            message: format!("invalid configuration: {message}"),
        }
    }
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Validate the host settings, set up logging to `output`, build the
/// planner and validate the planner configuration with it.
pub async fn start(vars: &[(String, String)], output: Output) -> Result<(Planner, Settings), StartupError> {
    let host = HostSettings::from_vars(vars).map_err(StartupError::config)?;
    logging::init(host.log_level, output);
    let planner = build_planner(&host).map_err(|e| StartupError {
        code: EXIT_FAILED,
        error_type: "PlannerLoadFailed",
        message: format!("could not load the planner component: {e:#}"),
    })?;
    let settings = Settings::from_vars(&planner, vars).await.map_err(StartupError::config)?;
    Ok((planner, settings))
}

fn var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Read an event file (`-`: standard input) as text.
fn read_event(path: &Path) -> Result<String, String> {
    let bytes = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).map(|_| b)
    } else {
        std::fs::read(path)
    };
    let bytes = bytes.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text, so not a JSON event", path.display()))
}

fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

async fn run_plan(args: &PlanArgs, vars: &[(String, String)]) -> u8 {
    let event = match read_event(&args.event.event_file) {
        Ok(e) => e,
        Err(m) => {
            eprintln!("zae-aggregator: {m}");
            return EXIT_BAD_INPUT;
        }
    };
    let (planner, settings) = match start(vars, Output::Stderr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zae-aggregator: {e}");
            return e.code;
        }
    };
    // The plan command reads no table: without ZAE_LIMITER_VERSION it plans
    // with the 0.13 semantics (docs/host.md#configuration).
    let mut config = settings.config.clone();
    config.limiter = Some(crate::limiter::or_default(config.limiter));
    let batch = Batch {
        event_json: &event,
        config: &config,
        now_ms: args.event.now_ms.unwrap_or_else(lambda::now_ms),
        invocation_id: &args.event.request_id,
    };
    let answer = match planner.plan(&batch).await {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("zae-aggregator: {e}");
            return EXIT_FAILED;
        }
    };
    let code = match &answer {
        Ok(_) => EXIT_OK,
        Err(e) => {
            eprintln!("zae-aggregator: {}", e.message());
            EXIT_BAD_INPUT
        }
    };
    // The canonical JSON comes from the component itself (`render-plan`,
    // `render-error`): one rendering for every host.
    let text = match planner.render(&answer).await {
        Ok(text) => text,
        Err(e) => {
            eprintln!("zae-aggregator: {e}");
            return EXIT_FAILED;
        }
    };
    match write_stdout(&format!("{text}\n")) {
        Ok(()) => code,
        Err(e) => {
            eprintln!("zae-aggregator: cannot write the plan: {e}");
            EXIT_FAILED
        }
    }
}

async fn run_invoke(args: &InvokeArgs, vars: &[(String, String)]) -> u8 {
    let event = match read_event(&args.event.event_file) {
        Ok(e) => e,
        Err(m) => {
            eprintln!("zae-aggregator: {m}");
            return EXIT_BAD_INPUT;
        }
    };
    let logs = if args.output.is_some() { Output::Stdout } else { Output::Stderr };
    let (planner, settings) = match start(vars, logs).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zae-aggregator: {e}");
            return e.code;
        }
    };
    let executor = Executor::from_env(settings.executor_options()).await;
    let mut settings = settings;
    if let Err(m) = crate::limiter::choose(&planner, executor.dynamodb(), &mut settings).await {
        eprintln!("zae-aggregator: {m}");
        return EXIT_BAD_INPUT;
    }
    let app = App { planner, executor, settings };
    let now_ms = args.event.now_ms.unwrap_or_else(lambda::now_ms);
    let function_name =
        var(vars, "AWS_LAMBDA_FUNCTION_NAME").filter(|v| !v.is_empty()).unwrap_or(DEFAULT_FUNCTION_NAME);
    let (result, code) =
        invocation_result(handler::invoke(&app, &event, &args.event.request_id, function_name, now_ms).await);
    let text = format!("{result}\n");
    let written = match &args.output {
        Some(path) => std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => write_stdout(&text).map_err(|e| format!("cannot write the response: {e}")),
    };
    match written {
        Ok(()) => code,
        Err(m) => {
            eprintln!("zae-aggregator: {m}");
            EXIT_FAILED
        }
    }
}

/// The result document and exit code of an invocation: the response and 0
/// (or 1 when records failed), or Lambda's error payload and 2 for a bad
/// event, 1 for a planner failure.
pub fn invocation_result(outcome: Result<handler::Invocation, InvokeError>) -> (Value, u8) {
    match outcome {
        Ok(inv) => {
            let code = if inv.failed_records > 0 { EXIT_FAILED } else { EXIT_OK };
            (inv.response, code)
        }
        Err(e @ (InvokeError::BadEvent(_) | InvokeError::BadConfig(_))) => (e.payload(), EXIT_BAD_INPUT),
        Err(e) => (e.payload(), EXIT_FAILED),
    }
}

async fn run_lambda(vars: &[(String, String)]) -> u8 {
    let started = Instant::now();
    let missing = lambda::missing_vars(vars);
    if !missing.is_empty() {
        eprintln!(
            "zae-aggregator: the lambda command runs inside AWS Lambda; missing or invalid: {}",
            missing.join(", ")
        );
        return EXIT_BAD_INPUT;
    }
    let (planner, settings) = match start(vars, Output::Stdout).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zae-aggregator: {e}");
            let api = var(vars, "AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
            if let Err(report) = lambda::report_init_error(api, e.error_type, &e.to_string()).await {
                eprintln!("zae-aggregator: could not report the error to the runtime API at {api}: {report}");
            }
            return e.code;
        }
    };
    let executor = Executor::from_env(settings.executor_options()).await;
    let mut settings = settings;
    if let Err(m) = crate::limiter::choose(&planner, executor.dynamodb(), &mut settings).await {
        eprintln!("zae-aggregator: {m}");
        let api = var(vars, "AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
        if let Err(report) = lambda::report_init_error(api, "InvalidConfiguration", &m).await {
            eprintln!("zae-aggregator: could not report the error to the runtime API at {api}: {report}");
        }
        return EXIT_BAD_INPUT;
    }
    let app = Arc::new(App { planner, executor, settings });
    logging::emit(
        LogLevel::Info,
        "zae_aggregator.lambda",
        "Lambda runtime started",
        &[
            ("version", json!(env!("CARGO_PKG_VERSION"))),
            ("init_ms", json!((started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0)),
        ],
        None,
    );
    match lambda::run(app).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            logging::emit(
                LogLevel::Error,
                "zae_aggregator.lambda",
                "Lambda runtime failed",
                &[],
                Some(&logging::error_chain(e.as_ref())),
            );
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments_parse() {
        let cli =
            Cli::try_parse_from(["zae-aggregator", "plan", "e.json", "--now-ms", "-5", "--request-id", "r"]).unwrap();
        match cli.command {
            Some(Command::Plan(PlanArgs { event })) => {
                assert_eq!(event.event_file, PathBuf::from("e.json"));
                assert_eq!(event.now_ms, Some(-5));
                assert_eq!(event.request_id, "r");
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["zae-aggregator", "invoke", "-", "-o", "out.json"]).unwrap();
        match cli.command {
            Some(Command::Invoke(InvokeArgs { event, output })) => {
                assert_eq!(event.request_id, DEFAULT_REQUEST_ID);
                assert_eq!(event.now_ms, None);
                assert_eq!(output, Some(PathBuf::from("out.json")));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["zae-aggregator"]).unwrap().command.is_none());
        assert!(Cli::try_parse_from(["zae-aggregator", "plan"]).is_err());
    }

    #[test]
    fn error_results() {
        let (v, code) = invocation_result(Err(InvokeError::BadEvent("Records is not a list".into())));
        assert_eq!(code, EXIT_BAD_INPUT);
        assert_eq!(v["errorType"], "InvalidEvent");
        let (v, code) = invocation_result(Err(InvokeError::Component(crate::CallError::Instantiate("x".into()))));
        assert_eq!(code, EXIT_FAILED);
        assert_eq!(v["errorType"], "PlannerInstantiationFailed");
    }
}
