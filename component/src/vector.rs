//! Conformance vectors (`tests/conformance/<name>/`): loading, native replay
//! and blessing. The format is documented in `tests/conformance/README.md`.
//!
//! Each vector directory holds `input.json` (config, clock, invocation id,
//! optional observed items), `event.json` (the Lambda event, passed to the
//! planner byte for byte) and `plan.json` (the expected canonical plan, exact
//! bytes, with one trailing newline).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::Config;
use crate::plan::{canonical_json, error_json, Batch, ObservedItem, ReadOutcome, ReadResult};
use crate::window::Window;

/// One conformance vector.
#[derive(Debug, Clone)]
pub struct Vector {
    /// Directory name.
    pub name: String,
    /// Directory.
    pub dir: PathBuf,
    /// What it covers.
    pub description: String,
    /// Configuration.
    pub config: Config,
    /// Clock.
    pub now_ms: i64,
    /// Invocation id.
    pub invocation_id: String,
    /// The event text, verbatim.
    pub event_json: String,
    /// `Some` for a `replan-snapshots` vector.
    pub observed: Option<Vec<ObservedItem>>,
    /// `Some` for a `plan-after-reads` vector.
    pub read_results: Option<Vec<ReadResult>>,
    /// Expected canonical plan (without the trailing newline), or the error
    /// rendered as `{"error":{"kind":...,"message":...}}`.
    pub expected: Option<String>,
}

impl Vector {
    /// The batch to plan.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            event_json: &self.event_json,
            config: &self.config,
            now_ms: self.now_ms,
            invocation_id: &self.invocation_id,
        }
    }
}

/// Whether golden files are to be rewritten: `ZAE_BLESS=1` exactly. Unset
/// (or empty) means compare; any other value is refused, so a typo or
/// `ZAE_BLESS=0` never rewrites (and so passes) what it meant to check.
pub fn bless_requested(value: Option<&std::ffi::OsStr>) -> Result<bool, String> {
    match value.map(|v| v.to_str()) {
        None => Ok(false),
        Some(Some("")) => Ok(false),
        Some(Some("1")) => Ok(true),
        Some(other) => Err(format!("ZAE_BLESS={other:?}: set it to 1 to bless golden files, or leave it unset")),
    }
}

/// [`bless_requested`] of the process environment; panics on a value other
/// than `1` (tests only).
pub fn bless() -> bool {
    bless_requested(std::env::var_os("ZAE_BLESS").as_deref()).unwrap_or_else(|e| panic!("{e}"))
}

/// Run a vector with the native planner and render the canonical answer.
pub fn run_native(v: &Vector) -> String {
    let b = v.batch();
    let r = match (&v.observed, &v.read_results) {
        (Some(obs), _) => crate::replan_snapshots(&b, obs),
        (None, Some(results)) => crate::plan_after_reads(&b, results),
        (None, None) => crate::plan(&b),
    };
    match r {
        Ok(p) => canonical_json(&p),
        Err(e) => error_json(&e),
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, String> {
    v.get(name).ok_or_else(|| format!("missing field {name}"))
}

fn parse_config(v: &Value) -> Result<Config, String> {
    let windows = field(v, "windows")?
        .as_array()
        .ok_or("windows is not a list")?
        .iter()
        .map(|w| w.as_str().and_then(Window::parse).ok_or_else(|| format!("bad window {w}")))
        .collect::<Result<Vec<_>, _>>()?;
    let num = |name: &str| -> Result<u32, String> {
        field(v, name)?.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| format!("{name} is not a u32"))
    };
    Ok(Config {
        table_name: field(v, "table_name")?.as_str().ok_or("table_name is not a string")?.to_string(),
        windows,
        snapshot_ttl_days: num("snapshot_ttl_days")?,
        archive_bucket: match field(v, "archive_bucket")? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err("archive_bucket is not a string or null".into()),
        },
        max_shard_count: num("max_shard_count")?,
        dead_letter_bucket: match v.get("dead_letter_bucket") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("dead_letter_bucket is not a string or null".into()),
        },
        // Vectors written before contract 0.3.0 have no `limiter`: 0.13.
        limiter: match v.get("limiter") {
            None | Some(Value::Null) => Some(crate::config::Limiter::V013),
            Some(Value::String(s)) if s == "0.13" => Some(crate::config::Limiter::V013),
            Some(Value::String(s)) if s == "0.17" => Some(crate::config::Limiter::V017),
            Some(other) => return Err(format!("limiter {other} is not \"0.13\" or \"0.17\"")),
        },
    })
}

fn parse_observed(v: &Value) -> Result<Vec<ObservedItem>, String> {
    let list = v.as_array().ok_or("observed is not a list")?;
    list.iter()
        .map(|o| {
            let write_id = field(o, "write_id")?
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("observed write_id is not a u32")?;
            let item = match field(o, "item")? {
                Value::Null => None,
                other => Some(other.to_string()),
            };
            Ok(ObservedItem { write_id, item })
        })
        .collect()
}

fn parse_read_results(v: &Value) -> Result<Vec<ReadResult>, String> {
    let list = v.as_array().ok_or("read_results is not a list")?;
    list.iter()
        .map(|r| {
            let read_id = field(r, "read_id")?
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("read_results read_id is not a u32")?;
            let outcome = match field(r, "outcome")?.as_str() {
                Some("found") => ReadOutcome::Found(field(r, "item")?.to_string()),
                Some("missing") => ReadOutcome::Missing,
                Some("failed") => ReadOutcome::Failed(
                    field(r, "error")?.as_str().ok_or("read_results error is not a string")?.to_string(),
                ),
                _ => return Err("read_results outcome is not found, missing or failed".into()),
            };
            Ok(ReadResult { read_id, outcome })
        })
        .collect()
}

/// Load one vector directory.
pub fn load(dir: &Path) -> Result<Vector, String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()));
    let input: Value = serde_json::from_str(&read("input.json")?).map_err(|e| format!("input.json: {e}"))?;
    let expected = read("plan.json").ok().map(|s| s.strip_suffix('\n').unwrap_or(&s).to_string());
    Ok(Vector {
        name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        dir: dir.to_path_buf(),
        description: field(&input, "description")?.as_str().unwrap_or_default().to_string(),
        config: parse_config(field(&input, "config")?)?,
        now_ms: field(&input, "now_ms")?
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or("now_ms must be a decimal string")?,
        invocation_id: field(&input, "invocation_id")?.as_str().unwrap_or_default().to_string(),
        event_json: read("event.json")?,
        observed: match input.get("observed") {
            None | Some(Value::Null) => None,
            Some(o) => Some(parse_observed(o)?),
        },
        read_results: match input.get("read_results") {
            None | Some(Value::Null) => None,
            Some(r) => Some(parse_read_results(r)?),
        },
        expected,
    })
}

/// Load every vector under `root`, sorted by name.
pub fn load_all(root: &Path) -> Result<Vec<Vector>, String> {
    vector_dirs(root)?.iter().map(|d| load(d)).collect()
}

/// The vector directories under `root` (those with an `input.json`), sorted.
fn vector_dirs(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("input.json").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The repository's `tests/conformance` directory (from this crate's manifest).
pub fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("tests").join("conformance")
}

/// A reader vector (`tests/conformance/reader/<name>/`): `input.json` names
/// the `reader` function and its arguments, `answer.json` holds the expected
/// canonical answer (tests/conformance/README.md#reader-vectors).
#[derive(Debug, Clone)]
pub struct ReaderVector {
    /// Directory name.
    pub name: String,
    /// Directory.
    pub dir: PathBuf,
    /// What it covers.
    pub description: String,
    /// The call.
    pub call: ReaderCall,
    /// Expected canonical answer (without the trailing newline).
    pub expected: Option<String>,
}

/// One call of the `reader` interface.
#[derive(Debug, Clone)]
pub enum ReaderCall {
    /// `rows(items, query)`.
    Rows {
        /// Items, as text.
        items: Vec<String>,
        /// Query.
        query: crate::usage::Query,
    },
    /// `summaries(items, query)`.
    Summaries {
        /// Items, as text.
        items: Vec<String>,
        /// Query.
        query: crate::usage::Query,
    },
    /// `average-period(months, now-ms)`.
    Period {
        /// Months.
        months: u32,
        /// Clock.
        now_ms: i64,
    },
    /// `monthly-average(items, query, months, now-ms, whole-period)`.
    Average {
        /// Items, as text.
        items: Vec<String>,
        /// Query.
        query: crate::usage::Query,
        /// Months.
        months: u32,
        /// Clock.
        now_ms: i64,
        /// Whether the items are the whole period.
        whole_period: bool,
    },
    /// `backfill(items, window, query, now-ms, ttl-days)`.
    Backfill {
        /// Items, as text.
        items: Vec<String>,
        /// The window to build.
        window: Window,
        /// Query.
        query: crate::usage::Query,
        /// Clock.
        now_ms: i64,
        /// `SNAPSHOT_TTL_DAYS`.
        ttl_days: u32,
    },
    /// `reconcile(items, query)`.
    Reconcile {
        /// Items, as text.
        items: Vec<String>,
        /// Query.
        query: crate::usage::Query,
    },
}

fn opt_str(v: &Value, name: &str) -> Result<Option<String>, String> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{name} is {other}, not a string or null")),
    }
}

fn parse_query(v: Option<&Value>) -> Result<crate::usage::Query, String> {
    let Some(v) = v else { return Ok(crate::usage::Query::default()) };
    Ok(crate::usage::Query {
        namespace: opt_str(v, "namespace")?,
        entity: opt_str(v, "entity")?,
        resource: opt_str(v, "resource")?,
        window: match opt_str(v, "window")? {
            None => None,
            Some(w) => Some(Window::parse(&w).ok_or_else(|| format!("bad window {w}"))?),
        },
        from: opt_str(v, "from")?,
        to: opt_str(v, "to")?,
    })
}

/// A reader vector's items: an object is passed as its compact JSON text,
/// a string verbatim.
fn parse_items(v: &Value) -> Result<Vec<String>, String> {
    field(v, "items")?
        .as_array()
        .ok_or("items is not a list")?
        .iter()
        .map(|i| match i {
            Value::String(s) => Ok(s.clone()),
            Value::Object(_) => Ok(i.to_string()),
            other => Err(format!("item {other} is not an object or a string")),
        })
        .collect()
}

/// Load one reader vector directory.
pub fn load_reader(dir: &Path) -> Result<ReaderVector, String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()));
    let input: Value = serde_json::from_str(&read("input.json")?).map_err(|e| format!("input.json: {e}"))?;
    let months = || -> Result<u32, String> {
        field(&input, "months")?
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| "months is not a u32".into())
    };
    let now_ms = || -> Result<i64, String> {
        field(&input, "now_ms")?
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "now_ms must be a decimal string".into())
    };
    let call = match field(&input, "function")?.as_str() {
        Some("rows") => ReaderCall::Rows { items: parse_items(&input)?, query: parse_query(input.get("query"))? },
        Some("summaries") => {
            ReaderCall::Summaries { items: parse_items(&input)?, query: parse_query(input.get("query"))? }
        }
        Some("average-period") => ReaderCall::Period { months: months()?, now_ms: now_ms()? },
        Some("monthly-average") => ReaderCall::Average {
            items: parse_items(&input)?,
            query: parse_query(input.get("query"))?,
            months: months()?,
            now_ms: now_ms()?,
            whole_period: field(&input, "whole_period")?.as_bool().ok_or("whole_period is not a boolean")?,
        },
        Some("backfill") => ReaderCall::Backfill {
            items: parse_items(&input)?,
            window: field(&input, "window")?
                .as_str()
                .and_then(Window::parse)
                .ok_or("window is not hourly, daily or monthly")?,
            query: parse_query(input.get("query"))?,
            now_ms: now_ms()?,
            ttl_days: field(&input, "ttl_days")?
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("ttl_days is not a u32")?,
        },
        Some("reconcile") => {
            ReaderCall::Reconcile { items: parse_items(&input)?, query: parse_query(input.get("query"))? }
        }
        other => return Err(format!("function {other:?} is not a reader function")),
    };
    Ok(ReaderVector {
        name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        dir: dir.to_path_buf(),
        description: field(&input, "description")?.as_str().unwrap_or_default().to_string(),
        call,
        expected: read("answer.json").ok().map(|s| s.strip_suffix('\n').unwrap_or(&s).to_string()),
    })
}

/// Load every reader vector under `root` (`tests/conformance/reader`), sorted by name.
pub fn load_reader_all(root: &Path) -> Result<Vec<ReaderVector>, String> {
    vector_dirs(root)?.iter().map(|d| load_reader(d)).collect()
}

/// Run a reader vector natively and render the canonical answer.
pub fn run_reader_native(v: &ReaderVector) -> String {
    use crate::usage;
    let answer = match &v.call {
        ReaderCall::Rows { items, query } => usage::rows(items, query).map(|r| usage::rows_json(&r)),
        ReaderCall::Summaries { items, query } => usage::summaries(items, query).map(|s| usage::summaries_json(&s)),
        ReaderCall::Period { months, now_ms } => usage::period(*months, *now_ms).map(|p| usage::period_json(&p)),
        ReaderCall::Average { items, query, months, now_ms, whole_period } => {
            usage::monthly_average(items, query, *months, *now_ms, *whole_period).map(|a| usage::average_json(&a))
        }
        ReaderCall::Reconcile { items, query } => {
            usage::reconcile(items, query).map(|r| usage::reconciliation_json(&r))
        }
        ReaderCall::Backfill { items, window, query, now_ms, ttl_days } => {
            usage::backfill(items, *window, query, *now_ms, *ttl_days).map(|p| usage::backfill_json(&p))
        }
    };
    answer.unwrap_or_else(|e| usage::reader_error_json(&e))
}

/// `event_json`'s records repeated to `n` records, each copy with its own
/// sequence numbers (copy k adds k x 10^7, above every original), so no
/// record is deduplicated: how the benchmarks build batches larger than the
/// real ones. Panics on an event without a `Records` list or with a
/// non-numeric sequence number (benchmark input only).
pub fn repeated_event(event_json: &str, n: usize) -> String {
    let event: serde_json::Value = serde_json::from_str(event_json).expect("event");
    let records = event["Records"].as_array().expect("Records");
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut r = records[i % records.len()].clone();
        let copy = (i / records.len()) as u128;
        if let Some(seq) = r["dynamodb"]["SequenceNumber"].as_str() {
            let seq: u128 = seq.parse().expect("numeric sequence number");
            r["dynamodb"]["SequenceNumber"] = serde_json::Value::String((seq + copy * 10_000_000).to_string());
        }
        out.push(r);
    }
    serde_json::json!({ "Records": out }).to_string()
}

/// One bucket MODIFY record (shard 0 of `ns/BUCKET#e#r#…`) whose NewImage
/// and OldImage each have exactly `attrs` attributes (at least 16): the keys,
/// GSI keys, `entity_id`, `rf` and `shard_count`, then, in turns of ten,
/// the five `b_l{k}_{tc|tk|cp|ra|rp}` numbers of one limit and five other
/// string attributes. Every limit's `tc` grows by 1,000 millitokens between
/// the images. `shard_count` goes from 1 to `raise_to` (no propagation when
/// it is 1). How the benchmarks and tests build wide images
/// (docs/benchmarks.md#wide-images).
pub fn wide_event(attrs: usize, raise_to: u32) -> String {
    use serde_json::{json, Map};
    assert!(attrs >= 16, "a wide image has at least 16 attributes");
    let image = |tc: i64, shard_count: u32| {
        let mut m = Map::new();
        let s = |m: &mut Map<String, Value>, k: &str, v: &str| m.insert(k.to_string(), json!({ "S": v }));
        s(&mut m, "PK", "ns/BUCKET#e#r#0");
        s(&mut m, "SK", "#STATE");
        s(&mut m, "entity_id", "e");
        s(&mut m, "resource", "r");
        s(&mut m, "GSI2PK", "ns/RESOURCE#r");
        s(&mut m, "GSI2SK", "BUCKET#e#0");
        s(&mut m, "GSI3PK", "ns/ENTITY#e");
        s(&mut m, "GSI3SK", "BUCKET#r#0");
        s(&mut m, "GSI4PK", "ns");
        s(&mut m, "GSI4SK", "BUCKET#e#r#0");
        m.insert("rf".into(), json!({"N": "1704067200000"}));
        m.insert("shard_count".into(), json!({"N": shard_count.to_string()}));
        let mut i = 0usize;
        while m.len() < attrs {
            let k = i / 10;
            let field = ["tc", "tk", "cp", "ra", "rp"].get(i % 10);
            match field {
                Some(&f) => {
                    let v = match f {
                        "tc" => tc + k as i64,
                        "rp" => 60_000,
                        _ => 1_000_000,
                    };
                    m.insert(format!("b_l{k}_{f}"), json!({ "N": v.to_string() }));
                }
                None => {
                    m.insert(format!("x{k}_{}", i % 10), json!({ "S": format!("v{i}") }));
                }
            }
            i += 1;
        }
        Value::Object(m)
    };
    json!({"Records": [{
        "eventID": "wide-1",
        "eventName": "MODIFY",
        "dynamodb": {
            "ApproximateCreationDateTime": 1704067200,
            "SequenceNumber": "100",
            "NewImage": image(1_000, raise_to),
            "OldImage": image(0, 1),
        }
    }]})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn only_zae_bless_1_blesses() {
        assert_eq!(bless_requested(None), Ok(false));
        assert_eq!(bless_requested(Some(OsStr::new(""))), Ok(false));
        assert_eq!(bless_requested(Some(OsStr::new("1"))), Ok(true));
        for v in ["0", "true", "yes", " 1", "2"] {
            assert!(bless_requested(Some(OsStr::new(v))).unwrap_err().contains("set it to 1"), "{v}");
        }
    }
}
