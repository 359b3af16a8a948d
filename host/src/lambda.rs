//! The AWS Lambda custom-runtime loop (`provided.al2023`), with
//! `lambda_runtime`.
//!
//! Each event's raw JSON text is handed to the planner unchanged; the request
//! id comes from the invocation context, the time from the system clock. An
//! invocation that cannot produce a response ([`InvokeError`]: an unusable
//! event, or a planner trap, deadline or memory cap) is returned as a
//! function error (`/invocation/{id}/error`), so the event source mapping
//! retries the batch and bisects it; that is safe because every write is
//! idempotent. Failed writes are not function errors: they are reported in
//! the response's `batchItemFailures`.
//!
//! `lambda_runtime` 1.5 reports initialisation errors to
//! `/runtime/init/error` only from its SnapStart hooks, so start-up failures
//! (an invalid configuration) are reported by [`report_init_error`], a
//! minimal HTTP/1.1 client for that one request, before the process exits.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::handler::{self, App, InvokeError};

/// The variables `lambda_runtime` needs (it panics without them).
pub const REQUIRED_VARS: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// The variables of [`REQUIRED_VARS`] missing, empty, or (for
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`) not a whole number in `vars`.
pub fn missing_vars(vars: &[(String, String)]) -> Vec<&'static str> {
    let usable = |name: &str, value: &str| match name {
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => value.parse::<i32>().is_ok(),
        _ => !value.is_empty(),
    };
    REQUIRED_VARS
        .iter()
        .copied()
        .filter(|name| !vars.iter().rev().find(|(k, _)| k == name).is_some_and(|(_, v)| usable(name, v)))
        .collect()
}

/// Serve invocations until the runtime API goes away. Returns only on a
/// runtime error (the API is unreachable or answers nonsense).
pub async fn run(app: Arc<App>) -> Result<(), lambda_runtime::Error> {
    let service = service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let app = Arc::clone(&app);
        async move { handle(&app, event).await }
    });
    lambda_runtime::run(service).await
}

/// One invocation: the response on success, a function error otherwise.
async fn handle(app: &App, event: LambdaEvent<Box<RawValue>>) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    let function_name = context.env_config.function_name.as_str();
    // Lambda's deadline as an instant of this process's clock.
    let now = now_ms();
    let left = time_left_ms(context.deadline, now);
    let deadline = std::time::Instant::now().checked_add(Duration::from_millis(left));
    match handler::invoke_until(app, payload.get(), &context.request_id, function_name, now, deadline).await {
        Ok(invocation) => Ok(invocation.response),
        Err(e) => Err(diagnostic(&e)),
    }
}

/// The smallest `Lambda-Runtime-Deadline-Ms` read as an epoch time
/// (2001-09-09). Lambda sends the deadline in epoch milliseconds; some
/// emulators of the Runtime API send the function's timeout instead
/// (cargo-lambda 1.9's `cargo lambda watch` sends `600000`), which read as
/// an epoch time lies in 1970 and would leave the invocation no time at all.
const EPOCH_DEADLINE_MIN_MS: u64 = 1_000_000_000_000;

/// Milliseconds left until `deadline` (the `Lambda-Runtime-Deadline-Ms`
/// header) at `now_ms`: an epoch time as Lambda sends it (0 once passed), or
/// below [`EPOCH_DEADLINE_MIN_MS`] a duration from now, as an emulator's
/// timeout (docs/host.md#running-on-aws-lambda).
fn time_left_ms(deadline: u64, now_ms: i64) -> u64 {
    if deadline < EPOCH_DEADLINE_MIN_MS {
        return deadline;
    }
    u64::try_from(i64::try_from(deadline).unwrap_or(i64::MAX).saturating_sub(now_ms)).unwrap_or(0)
}

/// Lambda's error payload for an [`InvokeError`].
pub fn diagnostic(e: &InvokeError) -> Diagnostic {
    Diagnostic { error_type: e.error_type().to_string(), error_message: e.to_string() }
}

/// The system clock in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How long [`report_init_error`] waits for the runtime API.
const INIT_ERROR_TIMEOUT: Duration = Duration::from_secs(5);

/// Report a start-up failure to `http://{runtime_api}/2018-06-01/runtime/init/error`
/// (`runtime_api` is `AWS_LAMBDA_RUNTIME_API`: `host:port` on Lambda; an
/// `http://` scheme and a path prefix, as emulators such as cargo-lambda's
/// give, are accepted too) with Lambda's error payload and the
/// `Runtime.InitError` error type header. Returns the HTTP status of the
/// answer.
pub async fn report_init_error(runtime_api: &str, error_type: &str, message: &str) -> std::io::Result<u16> {
    let (authority, prefix) = split_runtime_api(runtime_api);
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string();
    let request = format!(
        "POST {prefix}/2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/json\r\nLambda-Runtime-Function-Error-Type: Runtime.InitError\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = TcpStream::connect(authority).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        let mut chunk = [0u8; 512];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        parse_status(&head)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no HTTP status line in the answer"))
    };
    tokio::time::timeout(INIT_ERROR_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the runtime API did not answer"))?
}

/// `AWS_LAMBDA_RUNTIME_API` as (`host:port`, path prefix without a trailing
/// `/`): `127.0.0.1:9001` -> (`127.0.0.1:9001`, ``),
/// `http://127.0.0.1:9000/.rt` -> (`127.0.0.1:9000`, `/.rt`).
fn split_runtime_api(runtime_api: &str) -> (&str, &str) {
    let rest = runtime_api.strip_prefix("http://").unwrap_or(runtime_api);
    match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    }
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 202 Accepted`).
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_forms() {
        let now = 1_796_281_004_608;
        // Lambda: an epoch time, ahead or passed.
        assert_eq!(time_left_ms(1_796_281_064_608, now), 60_000);
        assert_eq!(time_left_ms(1_796_281_004_000, now), 0);
        assert_eq!(time_left_ms(u64::MAX, now), u64::try_from(i64::MAX - now).unwrap());
        // An emulator's timeout (cargo-lambda sends 600000).
        assert_eq!(time_left_ms(600_000, now), 600_000);
        assert_eq!(time_left_ms(0, now), 0);
    }

    #[test]
    fn runtime_api_forms() {
        assert_eq!(split_runtime_api("127.0.0.1:9001"), ("127.0.0.1:9001", ""));
        assert_eq!(split_runtime_api("http://127.0.0.1:9000/.rt"), ("127.0.0.1:9000", "/.rt"));
        assert_eq!(split_runtime_api("http://[::1]:9000/.rt/"), ("[::1]:9000", "/.rt"));
        assert_eq!(split_runtime_api("localhost:9001/"), ("localhost:9001", ""));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"), Some(202));
        assert_eq!(parse_status(b"HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(parse_status(b"garbage\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn missing_runtime_vars() {
        let vars = vec![
            ("AWS_LAMBDA_RUNTIME_API".to_string(), "127.0.0.1:9001".to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME".to_string(), String::new()),
            ("AWS_LAMBDA_FUNCTION_VERSION".to_string(), "$LATEST".to_string()),
        ];
        assert_eq!(missing_vars(&vars), ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]);
        let mut vars = vars;
        vars.push(("AWS_LAMBDA_FUNCTION_NAME".to_string(), "f".to_string()));
        vars.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_string(), "lots".to_string()));
        assert_eq!(missing_vars(&vars), ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]);
        vars.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_string(), "256".to_string()));
        assert!(missing_vars(&vars).is_empty());
    }

    #[tokio::test]
    async fn init_errors_are_posted() {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            s.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n").await.unwrap();
            String::from_utf8(got).unwrap()
        });
        let status =
            report_init_error(&addr, "InvalidConfiguration", "SNAPSHOT_WINDOWS=\"weekly\": bad").await.unwrap();
        assert_eq!(status, 202);
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /2018-06-01/runtime/init/error HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Lambda-Runtime-Function-Error-Type: Runtime.InitError\r\n"), "{request}");
        let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["errorType"], "InvalidConfiguration");
        assert_eq!(v["errorMessage"], "SNAPSHOT_WINDOWS=\"weekly\": bad");
    }
}
