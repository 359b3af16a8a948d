//! The `zae-aggregator` binary as a Lambda custom runtime, driven by a local
//! stand-in of the Lambda Runtime API (hand-written HTTP/1.1 on 127.0.0.1).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
const WAIT: Duration = Duration::from_secs(60);

/// A request the runtime posted.
#[derive(Debug)]
struct Posted {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Posted {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The stand-in: serves `event` to the first `GET .../invocation/next`,
/// leaves later ones pending, and forwards every POST.
struct RuntimeApi {
    addr: SocketAddr,
    posted: mpsc::UnboundedReceiver<Posted>,
}

impl RuntimeApi {
    async fn start(event: String) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, posted) = mpsc::unbounded_channel();
        let served = Arc::new(AtomicBool::new(false));
        let event = Arc::new(event);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&event), Arc::clone(&served), tx.clone()));
            }
        });
        RuntimeApi { addr, posted }
    }

    async fn next_post(&mut self) -> Posted {
        tokio::time::timeout(WAIT, self.posted.recv())
            .await
            .expect("the runtime posts within the time limit")
            .expect("the stand-in is running")
    }
}

/// One connection: requests one after another (keep-alive).
async fn serve(stream: TcpStream, event: Arc<String>, served: Arc<AtomicBool>, tx: mpsc::UnboundedSender<Posted>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            read_chunked(&mut reader).await
        } else {
            let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut b = vec![0; len];
            if reader.read_exact(&mut b).await.is_err() {
                return;
            }
            b
        };

        let answer = if method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
            if served.swap(true, Ordering::SeqCst) {
                // One event per test: later polls wait until the process is killed.
                std::future::pending::<()>().await;
            }
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Lambda-Runtime-Aws-Request-Id: {REQUEST_ID}\r\n\
                 Lambda-Runtime-Deadline-Ms: 4102444800000\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:zae-test\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n\
                 Content-Length: {}\r\n\r\n{}",
                event.len(),
                event
            )
        } else if method == "POST" {
            let _ = tx.send(Posted { path, headers, body: String::from_utf8_lossy(&body).into_owned() });
            "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}"
                .to_string()
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
        };
        if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn read_chunked(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).await.unwrap_or(0) == 0 {
            return body;
        }
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        let mut chunk = vec![0; size + 2];
        if reader.read_exact(&mut chunk).await.is_err() {
            return body;
        }
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// The binary in Lambda mode (no subcommand) against `api`, with a clean
/// environment plus `extra`; `ZAE_LIMITER_VERSION` is set (`extra` may
/// blank it), so the runtime reads no version record from a table.
fn spawn(api: &RuntimeApi, args: &[&str], extra: &[(&str, &str)]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zae-aggregator"));
    c.args(args)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "zae-test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("ZAE_LIMITER_VERSION", "0.13")
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c.spawn().expect("the binary starts")
}

/// Stop the runtime (it would otherwise wait for the next event) and return
/// its standard output.
async fn stop(mut child: Child) -> String {
    child.kill().await.expect("kill the runtime");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).await.unwrap();
    out
}

/// An address nothing listens on.
async fn unused_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

fn golden_event() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance/golden-1-spec13/event.json");
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn an_empty_batch_is_answered() {
    let mut api = RuntimeApi::start("{\"Records\": []}".into()).await;
    let child = spawn(&api, &[], &[]);
    let posted = api.next_post().await;
    let stdout = stop(child).await;

    assert_eq!(posted.path, format!("/2018-06-01/runtime/invocation/{REQUEST_ID}/response"));
    let response = posted.json();
    assert_eq!(response["batchItemFailures"], Value::Array(vec![]));
    assert_eq!(response["statusCode"], 200);
    assert_eq!(response["body"]["processed"], 0);
    assert_eq!(response["body"]["errors"], Value::Array(vec![]));

    // The logs are JSON lines on stdout, with the request id from the context.
    let logs: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let started = logs.iter().find(|l| l["message"] == "Lambda invocation started").expect(&stdout);
    assert_eq!(started["request_id"], REQUEST_ID);
    assert_eq!(started["function_name"], "zae-test");
    assert_eq!(started["record_count"], 0);
    let completed = logs.iter().find(|l| l["message"] == "Lambda invocation completed").expect(&stdout);
    assert_eq!(completed["level"], "INFO");
    assert_eq!(completed["logger"], "zae_aggregator.handler");
}

#[tokio::test]
async fn an_unusable_event_is_a_function_error() {
    let mut api = RuntimeApi::start("{\"Records\": 5}".into()).await;
    let child = spawn(&api, &["lambda"], &[]);
    let posted = api.next_post().await;
    stop(child).await;

    assert_eq!(posted.path, format!("/2018-06-01/runtime/invocation/{REQUEST_ID}/error"));
    let error = posted.json();
    assert_eq!(error["errorType"], "InvalidEvent");
    assert_eq!(error["errorMessage"], "invalid event: Records is not a list");
}

#[tokio::test]
async fn a_failed_write_reports_its_record() {
    let mut api = RuntimeApi::start(golden_event()).await;
    let endpoint = format!("http://{}", unused_port().await);
    let child = spawn(
        &api,
        &[],
        &[("AWS_ENDPOINT_URL", &endpoint), ("ZAE_MAX_ATTEMPTS", "1"), ("ZAE_REQUEST_TIMEOUT_MS", "1000")],
    );
    let posted = api.next_post().await;
    stop(child).await;

    assert_eq!(posted.path, format!("/2018-06-01/runtime/invocation/{REQUEST_ID}/response"));
    let response = posted.json();
    assert_eq!(response["batchItemFailures"], serde_json::json!([{"itemIdentifier": "10000000000000000100"}]));
    assert_eq!(response["body"]["processed"], 1);
    assert_eq!(response["body"]["snapshots_updated"], 0);
    assert!(!response["body"]["errors"].as_array().unwrap().is_empty(), "{response}");
}

#[tokio::test]
async fn an_invalid_configuration_is_an_init_error() {
    let mut api = RuntimeApi::start("{\"Records\": []}".into()).await;
    let mut child = spawn(&api, &[], &[("SNAPSHOT_WINDOWS", "weekly")]);
    let posted = api.next_post().await;
    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("the process exits").unwrap();

    assert_eq!(posted.path, "/2018-06-01/runtime/init/error");
    assert_eq!(posted.header("Lambda-Runtime-Function-Error-Type"), Some("Runtime.InitError"));
    let error = posted.json();
    assert_eq!(error["errorType"], "InvalidConfiguration");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(message.contains("SNAPSHOT_WINDOWS=\"weekly\""), "{message}");
    assert_eq!(status.code(), Some(2));
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    assert!(stderr.contains("invalid configuration: SNAPSHOT_WINDOWS"), "{stderr}");
}

#[tokio::test]
async fn an_unreadable_version_record_is_an_init_error() {
    let mut api = RuntimeApi::start("{\"Records\": []}".into()).await;
    let endpoint = format!("http://{}", unused_port().await);
    let extra = [("ZAE_LIMITER_VERSION", ""), ("AWS_ENDPOINT_URL", endpoint.as_str()), ("ZAE_MAX_ATTEMPTS", "1")];
    let mut child = spawn(&api, &[], &extra);
    let posted = api.next_post().await;
    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("the process exits").unwrap();

    assert_eq!(posted.path, "/2018-06-01/runtime/init/error");
    let error = posted.json();
    assert_eq!(error["errorType"], "InvalidConfiguration");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(message.contains("version record") && message.contains("ZAE_LIMITER_VERSION"), "{message}");
    assert_eq!(status.code(), Some(2));
}
