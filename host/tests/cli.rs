//! The `zae-aggregator` binary's command line: help, `plan` against the
//! conformance vectors, `invoke` without AWS calls, and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use zae_planner::vector::{default_root, load_all, Vector};

/// The binary with a clean environment: no planner or host variables but
/// `ZAE_LIMITER_VERSION` (so `invoke` reads no version record: these tests
/// make no AWS call), a region and static credentials so the AWS SDK never
/// probes anything.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zae-aggregator"));
    c.env_clear()
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("ZAE_LIMITER_VERSION", "0.13");
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("the binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("the binary exits normally")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A scratch directory for this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zae-aggregator-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write_event(name: &str, content: &str) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The environment that makes `config-from-env` build `v.config`.
fn config_env(c: &mut Command, v: &Vector) {
    let windows: Vec<&str> = v.config.windows.iter().map(|w| w.name()).collect();
    c.env("TABLE_NAME", &v.config.table_name)
        .env("SNAPSHOT_WINDOWS", windows.join(","))
        .env("SNAPSHOT_TTL_DAYS", v.config.snapshot_ttl_days.to_string())
        .env("MAX_SHARD_COUNT", v.config.max_shard_count.to_string());
    match &v.config.archive_bucket {
        Some(b) => c.env("ENABLE_ARCHIVAL", "true").env("ARCHIVE_BUCKET_NAME", b),
        None => c.env("ENABLE_ARCHIVAL", "false"),
    };
    c.env("DEAD_LETTER_BUCKET", v.config.dead_letter_bucket.as_deref().unwrap_or("none"));
    if let Some(l) = v.config.limiter {
        c.env("ZAE_LIMITER_VERSION", l.name());
    }
}

#[test]
fn help_for_every_command() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["lambda", "--help"],
        &["plan", "--help"],
        &["invoke", "--help"],
        &["help", "invoke"],
    ] {
        let o = run(bin().args(args));
        assert_eq!(code(&o), 0, "{args:?}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(out.contains("Usage: zae-aggregator"), "{args:?}: {out}");
    }
    let top = text(&run(bin().arg("--help")).stdout);
    for word in ["lambda", "plan", "invoke", "AWS_LAMBDA_RUNTIME_API", "LOG_LEVEL", "Exit codes"] {
        assert!(top.contains(word), "{word} missing from:\n{top}");
    }
    let plan = text(&run(bin().args(["plan", "--help"])).stdout);
    for word in ["<EVENT_FILE>", "--now-ms", "--request-id"] {
        assert!(plan.contains(word), "{word} missing from:\n{plan}");
    }
    let invoke = text(&run(bin().args(["invoke", "--help"])).stdout);
    assert!(invoke.contains("--output <RESULT_FILE>"), "{invoke}");

    let o = run(bin().arg("--version"));
    assert_eq!(code(&o), 0);
    assert_eq!(text(&o.stdout), format!("zae-aggregator {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2() {
    // No subcommand outside Lambda: help on stderr.
    let o = run(&mut bin());
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("Usage: zae-aggregator"));
    // A missing argument, an unknown option.
    assert_eq!(code(&run(bin().arg("plan"))), 2);
    assert_eq!(code(&run(bin().args(["invoke", "x.json", "--bogus"]))), 2);
    // `lambda` outside Lambda.
    let o = run(bin().arg("lambda"));
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("AWS_LAMBDA_RUNTIME_API"), "{}", text(&o.stderr));
}

#[test]
fn plan_reproduces_every_conformance_vector() {
    let vectors = load_all(&default_root()).unwrap();
    let mut checked = 0;
    for v in &vectors {
        // Re-plan and after-reads vectors need observed items or read
        // results; a config without windows, or
        // with a NUL character (rendering vectors), cannot be written as
        // environment variables.
        let has_nul =
            v.config.table_name.contains('\0') || v.config.archive_bucket.as_deref().is_some_and(|b| b.contains('\0'));
        if v.observed.is_some() || v.read_results.is_some() || v.config.windows.is_empty() || has_nul {
            continue;
        }
        let expected = v.expected.as_ref().unwrap_or_else(|| panic!("{}: no plan.json", v.name));
        let mut c = bin();
        config_env(&mut c, v);
        let o = run(c.arg("plan").arg(v.dir.join("event.json")).args([
            "--now-ms",
            &v.now_ms.to_string(),
            "--request-id",
            &v.invocation_id,
        ]));
        let want_code = if expected.starts_with("{\"error\":") { 2 } else { 0 };
        assert_eq!(code(&o), want_code, "{}: {}", v.name, text(&o.stderr));
        assert_eq!(text(&o.stdout), format!("{expected}\n"), "{}", v.name);
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} vectors checked");
}

#[test]
fn plan_reads_standard_input() {
    let v = zae_planner::vector::load(&default_root().join("golden-1-spec13")).unwrap();
    let mut c = bin();
    config_env(&mut c, &v);
    let mut child = c
        .args(["plan", "-", "--now-ms", &v.now_ms.to_string(), "--request-id", &v.invocation_id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(v.event_json.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0);
    assert_eq!(text(&o.stdout), format!("{}\n", v.expected.unwrap()));
}

#[test]
fn bad_input_and_bad_configuration_exit_2() {
    let good = write_event("good.json", "{\"Records\":[]}");
    let not_json = write_event("not-json.json", "{not json");
    let not_list = write_event("not-list.json", "{\"Records\": 5}");
    let missing = Path::new("/nonexistent/zae-aggregator/event.json");

    for cmd in ["plan", "invoke"] {
        let o = run(bin().arg(cmd).arg(missing));
        assert_eq!(code(&o), 2, "{cmd} missing file");
        assert!(text(&o.stderr).contains("cannot read /nonexistent/"), "{}", text(&o.stderr));

        for event in [&not_json, &not_list] {
            let o = run(bin().arg(cmd).arg(event));
            assert_eq!(code(&o), 2, "{cmd} {}: {}", event.display(), text(&o.stderr));
        }

        for (name, value, needle) in [
            ("SNAPSHOT_WINDOWS", "weekly", "SNAPSHOT_WINDOWS=\"weekly\""),
            ("LOG_LEVEL", "chatty", "LOG_LEVEL=\"chatty\""),
            ("ZAE_MAX_ATTEMPTS", "0", "ZAE_MAX_ATTEMPTS=\"0\""),
            ("ENABLE_ARCHIVAL", "true", "ARCHIVE_BUCKET_NAME"),
        ] {
            let o = run(bin().env(name, value).arg(cmd).arg(&good));
            assert_eq!(code(&o), 2, "{cmd} {name}={value}");
            let err = text(&o.stderr);
            assert!(err.contains("invalid configuration") && err.contains(needle), "{err}");
            assert!(o.stdout.is_empty(), "{cmd} {name}: {}", text(&o.stdout));
        }
    }

    // `plan` prints the planner's verdict as the vectors render it.
    let o = run(bin().arg("plan").arg(&not_list));
    assert_eq!(text(&o.stdout), "{\"error\":{\"kind\":\"records-not-list\",\"message\":\"Records is not a list\"}}\n");
    // `invoke` prints Lambda's error payload.
    let o = run(bin().arg("invoke").arg(&not_list));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, json!({"errorType": "InvalidEvent", "errorMessage": "invalid event: Records is not a list"}));
}

/// Parse JSON lines, asserting each is one object.
fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

#[test]
fn invoke_an_empty_batch() {
    let event = write_event("empty.json", "{\"Records\":[]}");
    let expected = json!({
        "batchItemFailures": [],
        "statusCode": 200,
        "body": {"processed": 0, "snapshots_updated": 0, "refills_written": 0, "events_archived": 0, "errors": []}
    });

    // Response on stdout, logs on stderr.
    let o = run(bin().args(["invoke", "--request-id", "req-42", "--now-ms", "1704067200000"]).arg(&event));
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let response: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(response, expected);
    let logs = json_lines(&text(&o.stderr));
    let messages: Vec<&str> = logs.iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(
        messages,
        [
            "Serving zae-limiter semantics",
            "Lambda invocation started",
            "Batch processing started",
            "Batch planned",
            "Batch processing completed",
            "Lambda invocation completed"
        ]
    );
    assert_eq!(logs[0]["zae_limiter_version"], "0.13");
    assert_eq!(logs[0]["reason"], "ZAE_LIMITER_VERSION=0.13");
    let logs = &logs[1..];
    assert_eq!(logs[0]["request_id"], "req-42");
    assert_eq!(logs[0]["now_ms"], 1_704_067_200_000i64);
    assert_eq!(logs[0]["logger"], "zae_aggregator.handler");
    assert_eq!(logs[1]["logger"], "zae_aggregator.planner");
    // zae-limiter's summary line, with its field names, for existing dashboards.
    let keys: Vec<&str> = logs[3].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "timestamp",
            "level",
            "logger",
            "message",
            "processed_count",
            "deltas_extracted",
            "snapshots_updated",
            "refills_written",
            "error_count",
            "processing_time_ms"
        ]
    );
    assert!(logs[4]["processing_time_ms"].is_f64());

    // Response in a file, logs on stdout; LOG_LEVEL filters them.
    let out = scratch("empty-response.json");
    let o = run(bin().env("LOG_LEVEL", "warning").args(["invoke", "-o"]).arg(&out).arg(&event));
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let response: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(response, expected);
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    let o = run(bin().args(["invoke", "-o"]).arg(&out).arg(&event));
    assert_eq!(json_lines(&text(&o.stdout)).len(), 6);
}
