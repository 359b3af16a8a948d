//! JSON-lines logs: one JSON object per line, in the shape of the Python
//! aggregator's log lines so that dashboards and queries keep working.
//!
//! ```text
//! {"timestamp":"2026-01-01T00:00:00.123456+00:00","level":"INFO","logger":"zae_aggregator.handler","message":"Lambda invocation started","request_id":"...",...}
//! ```
//!
//! * `timestamp`: UTC, ISO-8601 with microseconds and `+00:00`, as Python's
//!   `datetime.now(UTC).isoformat()` (which also leaves the fraction out
//!   when the microseconds are exactly 0).
//! * `level`: `DEBUG`, `INFO`, `WARNING` or `ERROR` (tracing's `WARN` is
//!   written `WARNING`, `TRACE` is written `DEBUG`).
//! * `logger`: the tracing target with `::` turned into `.`
//!   (`zae_aggregator::executor` becomes `zae_aggregator.executor`);
//!   `zae_aggregator.planner` for the component's log entries.
//! * `message`, then the event's fields in order, then `exception` (an
//!   error chain) when there is one. A field that would repeat one of the
//!   fixed keys is written as `field_{name}`.
//!
//! Unlike Python's `json.dumps` default, lines are compact (no space after
//! `,` and `:`) and non-ASCII text is written as UTF-8; JSON readers do not
//! care, and the ops docs' `processing_time_ms":(?<duration>[\d.]+)` pattern
//! matches.
//!
//! There are three entry points, all writing through one process-wide sink
//! set up by [`init`]:
//!
//! * a tracing [`Layer`] ([`JsonLayer`]), for `tracing` events from our
//!   crates and from the AWS SDK, filtered by [`filter`]: our crates at
//!   `LOG_LEVEL`, every other crate at `WARNING` or above;
//! * [`emit_plan_logs`], for the log entries the planner component returns
//!   (their field values are JSON text already and are spliced verbatim);
//! * [`emit`], for lines whose fields are JSON values (the handler's).
//!
//! Every line is written with a single `write_all` on the locked stream.

use std::fmt;
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::bindings::{self, LogEntry};

/// Severity of a log line, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Per-item detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something was skipped or looked wrong.
    Warning,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// Upper-case name, as the lines print it (the Python aggregator's names).
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

impl From<bindings::LogLevel> for LogLevel {
    fn from(l: bindings::LogLevel) -> Self {
        match l {
            bindings::LogLevel::Debug => LogLevel::Debug,
            bindings::LogLevel::Info => LogLevel::Info,
            bindings::LogLevel::Warning => LogLevel::Warning,
            bindings::LogLevel::Error => LogLevel::Error,
        }
    }
}

/// Logger name of the component's plan log entries.
pub const PLANNER_LOGGER: &str = "zae_aggregator.planner";

/// Crates whose events are filtered at `LOG_LEVEL`; every other crate's at
/// `WARNING` or above.
pub const OUR_CRATES: &[&str] = &["zae_aggregator"];

/// Where log lines go.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// Standard output (the Lambda default: CloudWatch reads it).
    #[default]
    Stdout,
    /// Standard error (used when standard output carries a result).
    Stderr,
    /// An in-memory buffer (tests, embedding).
    Memory(Arc<Mutex<Vec<u8>>>),
}

impl Output {
    /// Write one complete line (which ends with `\n`) with a single
    /// `write_all` on the locked stream. Write errors are ignored: there is
    /// nowhere left to report them.
    pub fn write_line(&self, line: &str) {
        match self {
            Output::Stdout => {
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
            Output::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Output::Memory(buf) => {
                if let Ok(mut b) = buf.lock() {
                    b.extend_from_slice(line.as_bytes());
                }
            }
        }
    }
}

#[derive(Debug)]
struct Sink {
    threshold: LogLevel,
    output: Output,
}

static SINK: OnceLock<Sink> = OnceLock::new();

fn sink() -> &'static Sink {
    SINK.get_or_init(|| Sink { threshold: LogLevel::Info, output: Output::Stdout })
}

/// Set up logging for the process: lines go to `output`; our crates log at
/// `threshold`, others at `WARNING` or above. Installs [`JsonLayer`] as the
/// global tracing subscriber. Only the first call has an effect (it returns
/// `false` afterwards, or when another global subscriber is already set).
pub fn init(threshold: LogLevel, output: Output) -> bool {
    if SINK.set(Sink { threshold, output: output.clone() }).is_err() {
        return false;
    }
    tracing_subscriber::registry().with(JsonLayer::new(output).with_filter(filter(threshold))).try_init().is_ok()
}

/// The threshold set by [`init`] (`INFO` before it is called).
pub fn threshold() -> LogLevel {
    sink().threshold
}

/// The tracing filter: targets of [`OUR_CRATES`] at `threshold`, every
/// other target at `WARNING`, or at `ERROR` when `threshold` is `ERROR`.
pub fn filter(threshold: LogLevel) -> Targets {
    let ours = level_filter(threshold);
    let others = level_filter(threshold.max(LogLevel::Warning));
    OUR_CRATES.iter().fold(Targets::new().with_default(others), |t, c| t.with_target(*c, ours))
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// The line's `level` for a tracing level.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// The line's `logger` for a tracing target: `a::b::c` becomes `a.b.c`.
pub fn logger_name(target: &str) -> String {
    target.replace("::", ".")
}

/// Write one line through the process sink, if `level` passes the threshold
/// set by [`init`]. `fields` are written in order after `message`.
pub fn emit(level: LogLevel, logger: &str, message: &str, fields: &[(&str, Value)], exception: Option<&str>) {
    let sink = sink();
    if level < sink.threshold {
        return;
    }
    let mut line = Line::new(SystemTime::now(), level.name(), logger, message);
    for (name, value) in fields {
        line.field(name, value);
    }
    sink.output.write_line(&line.finish(exception));
}

/// Write the planner component's log entries (logger
/// [`PLANNER_LOGGER`]) whose level is at least `threshold`, in order,
/// through the process sink.
pub fn emit_plan_logs(entries: &[LogEntry], threshold: LogLevel) {
    let output = &sink().output;
    for entry in entries.iter().filter(|e| LogLevel::from(e.level) >= threshold) {
        output.write_line(&render_plan_entry(entry, SystemTime::now()));
    }
}

/// One plan log entry as a line (with its trailing `\n`). Field values are
/// spliced verbatim; one that is not valid JSON (which the component never
/// produces) is written as a string instead, so the line stays valid. A
/// string field named `exception` (a failed write's error, see the
/// contract's `on-failed`) becomes the line's own `exception`, last.
pub fn render_plan_entry(entry: &LogEntry, at: SystemTime) -> String {
    let mut line = Line::new(at, LogLevel::from(entry.level).name(), PLANNER_LOGGER, &entry.message);
    let mut exception = None;
    for f in &entry.fields {
        if f.name == "exception" {
            if let Ok(Value::String(text)) = serde_json::from_str::<Value>(&f.value) {
                exception = Some(text);
                continue;
            }
        }
        line.field_raw(&f.name, &f.value);
    }
    line.finish(exception.as_deref())
}

/// `timestamp` text: UTC ISO-8601 with microseconds and `+00:00`, the
/// fraction left out when it is zero (Python's `isoformat()`). Times before
/// 1970 are written as 1970-01-01T00:00:00+00:00.
pub fn format_timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let t = time::OffsetDateTime::UNIX_EPOCH.saturating_add(time::Duration::new(
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        since.subsec_nanos() as i32,
    ));
    let micros = t.microsecond();
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out.push_str("+00:00");
    out
}

/// Builder of one log line.
#[derive(Debug)]
pub struct Line {
    buf: String,
}

const FIXED_KEYS: [&str; 5] = ["timestamp", "level", "logger", "message", "exception"];

impl Line {
    /// Start a line with its fixed keys.
    pub fn new(at: SystemTime, level: &str, logger: &str, message: &str) -> Line {
        let mut buf = String::with_capacity(160 + message.len());
        buf.push_str("{\"timestamp\":\"");
        buf.push_str(&format_timestamp(at));
        buf.push_str("\",\"level\":");
        push_json_str(&mut buf, level);
        buf.push_str(",\"logger\":");
        push_json_str(&mut buf, logger);
        buf.push_str(",\"message\":");
        push_json_str(&mut buf, message);
        Line { buf }
    }

    fn key(&mut self, name: &str) {
        self.buf.push(',');
        if FIXED_KEYS.contains(&name) {
            push_json_str(&mut self.buf, &format!("field_{name}"));
        } else {
            push_json_str(&mut self.buf, name);
        }
        self.buf.push(':');
    }

    /// Add a field with a JSON value.
    pub fn field(&mut self, name: &str, value: &Value) {
        self.key(name);
        // Serialising a `Value` to a String cannot fail.
        self.buf.push_str(&serde_json::to_string(value).unwrap_or_else(|_| "null".into()));
    }

    /// Add a field whose value is JSON text, spliced verbatim when it is
    /// valid JSON, written as a string otherwise.
    pub fn field_raw(&mut self, name: &str, json: &str) {
        self.key(name);
        match serde_json::from_str::<&RawValue>(json) {
            Ok(raw) => self.buf.push_str(raw.get()),
            Err(_) => push_json_str(&mut self.buf, json),
        }
    }

    /// Close the line: `exception` last when present, then `}` and `\n`.
    pub fn finish(mut self, exception: Option<&str>) -> String {
        if let Some(e) = exception {
            self.buf.push_str(",\"exception\":");
            push_json_str(&mut self.buf, e);
        }
        self.buf.push_str("}\n");
        self.buf
    }
}

fn push_json_str(out: &mut String, s: &str) {
    // Serialising a `&str` cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// The text of an error and its causes, one per line after the first
/// (`caused by: ...`).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str("\ncaused by: ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The tracing layer that writes every event it sees as a log line. Span
/// fields are not included; filter it with [`filter`].
#[derive(Debug, Clone, Default)]
pub struct JsonLayer {
    output: Output,
}

impl JsonLayer {
    /// A layer writing to `output`.
    pub fn new(output: Output) -> JsonLayer {
        JsonLayer { output }
    }
}

impl<S: Subscriber> Layer<S> for JsonLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line =
            Line::new(SystemTime::now(), level_name(meta.level()), &logger_name(meta.target()), &fields.message);
        for (name, value) in &fields.fields {
            line.field(name, value);
        }
        self.output.write_line(&line.finish(fields.exception.as_deref()));
    }
}

/// An event's fields, in order, with `message` and `exception` set apart.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, Value)>,
    exception: Option<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                }
            }
            "exception" => {
                self.exception = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
            }
            name => self.fields.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let v = i64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.put(field, v);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let v = u64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.put(field, v);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(error_chain(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::bindings::LogField;

    fn parse(line: &str) -> serde_json::Map<String, Value> {
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "{line:?}");
        match serde_json::from_str::<Value>(line).unwrap() {
            Value::Object(m) => m,
            other => panic!("{other}"),
        }
    }

    fn keys(m: &serde_json::Map<String, Value>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }

    #[test]
    fn timestamps_look_like_python_isoformat() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_312_114_710_008);
        assert_eq!(format_timestamp(t), "2026-11-22T01:48:34.710008+00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        assert_eq!(format_timestamp(t), "2024-01-01T00:00:00+00:00");
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_nanos(999)), "1970-01-01T00:00:00+00:00");
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_micros(1)), "1970-01-01T00:00:00.000001+00:00");
        assert_eq!(format_timestamp(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00+00:00");
    }

    #[test]
    fn lines_keep_key_order_and_put_exception_last() {
        let at = UNIX_EPOCH + Duration::from_millis(1_704_067_200_123);
        let mut line = Line::new(at, "INFO", "zae_aggregator.handler", "Lambda invocation completed");
        line.field("request_id", &json!("r-1"));
        line.field("processed", &json!(3));
        line.field("processing_time_ms", &json!(12.5));
        line.field("archive_bucket", &Value::Null);
        line.field("level", &json!("shadowed"));
        let text = line.finish(Some("boom\ncaused by: io"));
        assert_eq!(
            text,
            "{\"timestamp\":\"2024-01-01T00:00:00.123000+00:00\",\"level\":\"INFO\",\
             \"logger\":\"zae_aggregator.handler\",\"message\":\"Lambda invocation completed\",\
             \"request_id\":\"r-1\",\"processed\":3,\"processing_time_ms\":12.5,\"archive_bucket\":null,\
             \"field_level\":\"shadowed\",\"exception\":\"boom\\ncaused by: io\"}\n"
        );
        let m = parse(&text);
        assert_eq!(
            keys(&m),
            [
                "timestamp",
                "level",
                "logger",
                "message",
                "request_id",
                "processed",
                "processing_time_ms",
                "archive_bucket",
                "field_level",
                "exception"
            ]
        );
    }

    #[test]
    fn strings_are_escaped() {
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é 😀 </script>";
        let mut line = Line::new(UNIX_EPOCH, "WARNING", "a.b", nasty);
        line.field(nasty, &json!(nasty));
        let m = parse(&line.finish(Some(nasty)));
        assert_eq!(m["message"], nasty);
        assert_eq!(m[nasty], nasty);
        assert_eq!(m["exception"], nasty);
    }

    #[test]
    fn plan_entries_splice_their_values() {
        let entry = LogEntry {
            level: bindings::LogLevel::Warning,
            message: "Skipping record".into(),
            fields: vec![
                LogField { name: "request_id".into(), value: "\"req-1\"".into() },
                LogField { name: "windows".into(), value: "[\"hourly\",\"daily\"]".into() },
                LogField { name: "token_ratio".into(), value: "0.15".into() },
                LogField { name: "broken".into(), value: "{not json".into() },
                LogField { name: "message".into(), value: "\"inner\"".into() },
            ],
        };
        let text = render_plan_entry(&entry, UNIX_EPOCH);
        assert!(text.contains(",\"windows\":[\"hourly\",\"daily\"],\"token_ratio\":0.15,"), "{text}");
        let m = parse(&text);
        assert_eq!(
            keys(&m),
            [
                "timestamp",
                "level",
                "logger",
                "message",
                "request_id",
                "windows",
                "token_ratio",
                "broken",
                "field_message"
            ]
        );
        assert_eq!(m["level"], "WARNING");
        assert_eq!(m["logger"], PLANNER_LOGGER);
        assert_eq!(m["message"], "Skipping record");
        assert_eq!(m["broken"], "{not json");
        assert_eq!(m["field_message"], "inner");
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("request failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_failed_writes_exception_field_is_the_lines_exception() {
        let entry = LogEntry {
            level: bindings::LogLevel::Error,
            message: "Error writing to S3: NoSuchBucket".into(),
            fields: vec![
                LogField { name: "bucket".into(), value: "\"b\"".into() },
                LogField { name: "exception".into(), value: "\"NoSuchBucket: gone\"".into() },
            ],
        };
        let m = parse(&render_plan_entry(&entry, UNIX_EPOCH));
        assert_eq!(keys(&m), ["timestamp", "level", "logger", "message", "bucket", "exception"]);
        assert_eq!(m["exception"], "NoSuchBucket: gone");
    }
    #[test]
    fn tracing_events_become_lines() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(JsonLayer::new(Output::Memory(buf.clone())).with_filter(filter(LogLevel::Info)));
        tracing::subscriber::with_default(subscriber, || {
            let id = "req-9";
            tracing::info!(target: "zae_aggregator::handler", request_id = %id, count = 3u32, ok = true,
                ratio = 0.25, big = u128::MAX, dbg = ?Some(1), "Lambda invocation started");
            tracing::debug!(target: "zae_aggregator::executor", "hidden at INFO");
            tracing::info!(target: "aws_smithy_runtime::client", "hidden: third party below WARNING");
            let err = Outer(std::io::Error::other("connection refused"));
            tracing::warn!(target: "aws_smithy_runtime::client", exception = &err as &dyn std::error::Error,
                attempt = 2, "Retrying");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = parse(lines[0]);
        assert_eq!(
            keys(&first),
            ["timestamp", "level", "logger", "message", "request_id", "count", "ok", "ratio", "big", "dbg"]
        );
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["logger"], "zae_aggregator.handler");
        assert_eq!(first["message"], "Lambda invocation started");
        assert_eq!(first["request_id"], "req-9");
        assert_eq!(first["count"], 3);
        assert_eq!(first["ok"], true);
        assert_eq!(first["ratio"], 0.25);
        assert_eq!(first["big"], u128::MAX.to_string());
        assert_eq!(first["dbg"], "Some(1)");
        let second = parse(lines[1]);
        assert_eq!(keys(&second), ["timestamp", "level", "logger", "message", "attempt", "exception"]);
        assert_eq!(second["level"], "WARNING");
        assert_eq!(second["logger"], "aws_smithy_runtime.client");
        assert_eq!(second["exception"], "request failed\ncaused by: connection refused");
    }

    #[test]
    fn the_filter_keeps_third_parties_at_warning_or_above() {
        let debug = filter(LogLevel::Debug);
        assert!(debug.would_enable("zae_aggregator::executor", &Level::DEBUG));
        assert!(!debug.would_enable("zae_aggregator::executor", &Level::TRACE));
        assert!(!debug.would_enable("aws_config", &Level::INFO));
        assert!(debug.would_enable("aws_config", &Level::WARN));
        let error = filter(LogLevel::Error);
        assert!(!error.would_enable("zae_aggregator::handler", &Level::WARN));
        assert!(!error.would_enable("hyper", &Level::WARN));
        assert!(error.would_enable("hyper", &Level::ERROR));
    }

    #[test]
    fn names() {
        assert_eq!(logger_name("zae_aggregator::executor"), "zae_aggregator.executor");
        assert_eq!(logger_name("lambda_runtime"), "lambda_runtime");
        assert_eq!(level_name(&Level::WARN), "WARNING");
        assert_eq!(level_name(&Level::TRACE), "DEBUG");
    }
}
