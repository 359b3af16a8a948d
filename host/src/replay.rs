//! `zae-aggregator replay`: re-run records through the same planner and
//! executor as `invoke` (docs/poll.md#replay).
//!
//! * `--stream-arn ARN --shard ID --from-seq N [--to-seq M]`: a sequence
//!   range still in the stream (what an on-failure destination records);
//! * `--dead-letter s3://BUCKET/PREFIX`: the records of every dead-letter
//!   object under the prefix (docs/specification.md#dead-letters), one
//!   object at a time; an object whose records were all applied is moved to
//!   `PREFIX/replayed/` afterwards, never before.
//!
//! Both are safe to repeat: the snapshot watermarks make a record already
//! counted a no-op (docs/architecture.md#exactly-once).

use std::io::Read as _;

use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use clap::Args;
use serde_json::{json, Value};

use crate::cli::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use crate::handler::{self, App};
use crate::lambda;
use crate::logging::{self, LogLevel};
use crate::poll::{fail, start_app, table_of};
use crate::stream::{backoff, lambda_record, passes_filter, record_seq, resume_index, seq_cmp};

/// Logger name of `replay`'s own lines.
pub const LOGGER: &str = "zae_aggregator.replay";

/// The function name the invocation log lines carry.
pub const FUNCTION_NAME: &str = "zae-aggregator-replay";

/// Attempts per batch before `replay` gives up on it (exit 1).
const ATTEMPTS: u32 = 5;

/// Arguments of `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Re-run every dead-letter object under this S3 prefix (s3://BUCKET/PREFIX)
    #[arg(long, value_name = "S3_URL", required_unless_present = "stream_arn", conflicts_with = "stream_arn")]
    pub dead_letter: Option<String>,
    /// Re-run records of this stream (with --shard and --from-seq)
    #[arg(long, value_name = "ARN", requires_all = ["shard", "from_seq"])]
    pub stream_arn: Option<String>,
    /// The shard the records are in
    #[arg(long, value_name = "ID", requires = "stream_arn")]
    pub shard: Option<String>,
    /// The first sequence number to re-run
    #[arg(long, value_name = "N", requires = "stream_arn")]
    pub from_seq: Option<String>,
    /// The last sequence number to re-run [default: the newest record]
    #[arg(long, value_name = "M", requires = "stream_arn")]
    pub to_seq: Option<String>,
    /// Largest number of records in one batch
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
}

/// The bucket and the prefix (with a trailing `/`, or empty) of an
/// `s3://BUCKET/PREFIX` URL.
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url:?} is not an s3://BUCKET/PREFIX URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?} names no bucket"));
    }
    let prefix = prefix.trim_end_matches('/');
    Ok((bucket.to_string(), if prefix.is_empty() { String::new() } else { format!("{prefix}/") }))
}

/// Where a replayed object goes: `PREFIX/replayed/` + the rest of its key.
pub fn replayed_key(prefix: &str, key: &str) -> String {
    format!("{prefix}replayed/{}", key.strip_prefix(prefix).unwrap_or(key))
}

/// The stream records of a dead-letter object's NDJSON (its `record`
/// fields), in sequence-number order; a clear error for a line that is not
/// one.
pub fn dead_letter_records(ndjson: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, line) in ndjson.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e})", i + 1))?;
        match v.get("record") {
            Some(r @ Value::Object(_)) => out.push(r.clone()),
            _ => return Err(format!("line {}: no record object", i + 1)),
        }
    }
    out.sort_by(|a, b| seq_cmp(record_seq(a), record_seq(b)));
    Ok(out)
}

/// Run `replay`; the exit code.
pub async fn run(args: &ReplayArgs, vars: &[(String, String)]) -> u8 {
    let mut vars = vars.to_vec();
    if let Some(arn) = &args.stream_arn {
        if let Err(m) = table_of(&mut vars, None, Some(arn)) {
            return fail(EXIT_BAD_INPUT, &m);
        }
    }
    let target = match &args.dead_letter {
        Some(url) => match parse_s3_url(url) {
            Ok(t) => Some(t),
            Err(m) => return fail(EXIT_BAD_INPUT, &m),
        },
        None => None,
    };
    let (app, sdk) = match start_app(&vars).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    match (target, &args.stream_arn, &args.shard, &args.from_seq) {
        (Some((bucket, prefix)), _, _, _) => replay_dead_letter(&app, &bucket, &prefix, args.batch_size as usize).await,
        (None, Some(arn), Some(shard), Some(from)) => {
            let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
            let region = sdk.region().map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
            let range = Range { arn, shard, from, to: args.to_seq.as_deref(), region: &region };
            replay_range(&app, &streams, &range, args.batch_size as usize).await
        }
        _ => fail(EXIT_BAD_INPUT, "give --dead-letter, or --stream-arn with --shard and --from-seq"),
    }
}

/// Run `records` in batches; the number applied, or the sequence number of
/// the first record that could not be (after [`ATTEMPTS`] attempts).
/// `all_applied` is false when some record went to the dead letter again.
async fn run_batches(app: &App, records: &[Value], batch_size: usize, tag: &str) -> Result<(usize, bool), String> {
    let mut done = 0;
    let mut all_applied = true;
    while done < records.len() {
        let batch = &records[done..(done + batch_size).min(records.len())];
        let mut attempt = 0;
        let mut start = 0;
        while start < batch.len() {
            attempt += 1;
            let part = &batch[start..];
            let event = json!({"Records": part}).to_string();
            let request_id = format!("replay-{tag}-{}", record_seq(&part[0]));
            // A function error (the handler logged why) retries the rest.
            if let Ok(inv) =
                handler::invoke_until(app, &event, &request_id, FUNCTION_NAME, lambda::now_ms(), None).await
            {
                all_applied &= inv.report.dead_letter_records == 0;
                match resume_index(part, &inv.response) {
                    None => start = batch.len(),
                    Some(k) => start += k,
                }
            }
            if start < batch.len() {
                if attempt >= ATTEMPTS {
                    return Err(record_seq(&batch[start]).to_string());
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        done += batch.len();
    }
    Ok((done, all_applied))
}

struct Range<'a> {
    arn: &'a str,
    shard: &'a str,
    from: &'a str,
    to: Option<&'a str>,
    region: &'a str,
}

/// Read the range from the stream (records the template's filter drops are
/// left out, as Lambda never delivered them) and run it.
async fn replay_range(app: &App, streams: &aws_sdk_dynamodbstreams::Client, r: &Range<'_>, batch_size: usize) -> u8 {
    let got = streams
        .get_shard_iterator()
        .stream_arn(r.arn)
        .shard_id(r.shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(r.from)
        .send()
        .await;
    let mut iterator = match got {
        Ok(out) => out.shard_iterator().map(str::to_string),
        Err(e) => return fail(EXIT_FAILED, &format!("GetShardIterator {}: {}", r.shard, DisplayErrorContext(&e))),
    };
    let mut records = Vec::new();
    let mut read = 0usize;
    'read: while let Some(it) = iterator {
        let page = match streams.get_records().shard_iterator(it).limit(1000).send().await {
            Ok(p) => p,
            Err(e) => return fail(EXIT_FAILED, &format!("GetRecords {}: {}", r.shard, DisplayErrorContext(&e))),
        };
        if page.records().is_empty() {
            break;
        }
        for rec in page.records() {
            let l = lambda_record(rec, r.arn, r.region);
            if r.to.is_some_and(|to| seq_cmp(record_seq(&l), to).is_gt()) {
                break 'read;
            }
            read += 1;
            if passes_filter(&l) {
                records.push(l);
            }
        }
        iterator = page.next_shard_iterator().map(str::to_string);
    }
    let (code, applied, failed_at) = match run_batches(app, &records, batch_size, r.shard).await {
        Ok((n, _)) => (EXIT_OK, n, None),
        Err(seq) => (EXIT_FAILED, 0, Some(seq)),
    };
    logging::emit(
        if code == EXIT_OK { LogLevel::Info } else { LogLevel::Error },
        LOGGER,
        "Replay finished",
        &[
            ("stream_arn", json!(r.arn)),
            ("shard_id", json!(r.shard)),
            ("from_seq", json!(r.from)),
            ("to_seq", json!(r.to)),
            ("records_read", json!(read)),
            ("records_replayed", json!(applied)),
            ("first_unapplied", json!(failed_at)),
            ("exit_code", json!(code)),
        ],
        None,
    );
    code
}

/// Every dead-letter object under the prefix (not under `replayed/`), in
/// key order: run its records; when all were applied, copy the object to
/// `replayed/` and delete it.
async fn replay_dead_letter(app: &App, bucket: &str, prefix: &str, batch_size: usize) -> u8 {
    let s3 = app.executor.s3();
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3.list_objects_v2().bucket(bucket).prefix(prefix).set_continuation_token(token).send().await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                return fail(
                    EXIT_FAILED,
                    &format!("cannot list s3://{bucket}/{prefix}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)),
                )
            }
        };
        let skip = format!("{prefix}replayed/");
        keys.extend(page.contents().iter().filter_map(|o| o.key()).filter(|k| !k.starts_with(&skip)).map(String::from));
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    keys.sort();
    let (mut moved, mut kept, mut records_applied) = (0usize, 0usize, 0usize);
    for key in &keys {
        match replay_object(app, bucket, prefix, key, batch_size).await {
            Ok(n) => {
                moved += 1;
                records_applied += n;
            }
            Err(m) => {
                kept += 1;
                logging::emit(
                    LogLevel::Error,
                    LOGGER,
                    "Dead-letter object not replayed",
                    &[("bucket", json!(bucket)), ("key", json!(key))],
                    Some(&m),
                );
            }
        }
    }
    let code = if kept == 0 { EXIT_OK } else { EXIT_FAILED };
    logging::emit(
        if code == EXIT_OK { LogLevel::Info } else { LogLevel::Error },
        LOGGER,
        "Replay finished",
        &[
            ("dead_letter", json!(format!("s3://{bucket}/{prefix}"))),
            ("objects", json!(keys.len())),
            ("objects_replayed", json!(moved)),
            ("objects_kept", json!(kept)),
            ("records_replayed", json!(records_applied)),
            ("exit_code", json!(code)),
        ],
        None,
    );
    code
}

/// Replay one object; the number of records applied, or why it stays.
async fn replay_object(app: &App, bucket: &str, prefix: &str, key: &str, batch_size: usize) -> Result<usize, String> {
    let s3 = app.executor.s3();
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("cannot read it: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
    let body = object.body.collect().await.map_err(|e| format!("cannot read it: {e}"))?.into_bytes();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .map_err(|e| format!("not a gzip NDJSON dead-letter object: {e}"))?;
    let records = dead_letter_records(&text)?;
    let (n, all_applied) = run_batches(app, &records, batch_size, "dead-letter")
        .await
        .map_err(|seq| format!("record {seq} still fails; the object stays"))?;
    if !all_applied {
        return Err("some records went to the dead letter again (their cause is not fixed); the object stays".into());
    }
    let target = replayed_key(prefix, key);
    s3.copy_object().bucket(bucket).key(&target).copy_source(format!("{bucket}/{key}")).send().await.map_err(|e| {
        format!("applied, but cannot copy it to {target}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
    })?;
    s3.delete_object().bucket(bucket).key(key).send().await.map_err(|e| {
        format!("applied and copied to {target}, but cannot delete it: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
    })?;
    logging::emit(
        LogLevel::Info,
        LOGGER,
        "Dead-letter object replayed",
        &[("bucket", json!(bucket)), ("key", json!(key)), ("moved_to", json!(target)), ("records", json!(n))],
        None,
    );
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(parse_s3_url("s3://b/dead-letter").unwrap(), ("b".into(), "dead-letter/".into()));
        assert_eq!(parse_s3_url("s3://b/dead-letter/").unwrap(), ("b".into(), "dead-letter/".into()));
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), String::new()));
        assert!(parse_s3_url("b/x").is_err());
        assert!(parse_s3_url("s3:///x").is_err());
        assert_eq!(
            replayed_key("dead-letter/", "dead-letter/year=2026/month=01/day=02/d.jsonl.gz"),
            "dead-letter/replayed/year=2026/month=01/day=02/d.jsonl.gz"
        );
    }

    #[test]
    fn dead_letter_lines() {
        let text = concat!(
            r#"{"sequence_number":"20","record_index":1,"reason":"r","request":null,"record":{"dynamodb":{"SequenceNumber":"20"}}}"#,
            "\n",
            r#"{"sequence_number":"3","record_index":0,"reason":"r","request":{"a":1},"record":{"dynamodb":{"SequenceNumber":"3"}}}"#,
            "\n"
        );
        let r = dead_letter_records(text).unwrap();
        assert_eq!(r.iter().map(record_seq).collect::<Vec<_>>(), ["3", "20"]);
        assert!(dead_letter_records("{\"record\":null}").unwrap_err().contains("line 1: no record"));
        assert!(dead_letter_records("x").unwrap_err().contains("line 1: not JSON"));
    }
}
