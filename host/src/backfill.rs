//! `zae-aggregator backfill --window daily|monthly` (docs/reading.md#backfill): the items of
//! a newly enabled window built from the next finer window's items.
//!
//! The host reads the snapshot items (one entity's partition with `--entity`, else every
//! entity's of the namespace through index GSI4), asks the component's `reader.backfill` for
//! the items to write, and puts each one only where no item with its key exists
//! (`attribute_not_exists(PK)`). That condition and the watermarks the component copies from
//! the finer items are the boundary with the live aggregator: an item the aggregator already
//! created is never touched, and once a built item exists, a live write of a record the
//! finer items already held fails its watermark condition and is re-planned away
//! (docs/specification.md#watermarks). Running twice, or again after an interruption, puts
//! nothing twice; the checkpoint file only saves the reads and puts of entities already done.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use clap::Args;
use serde_json::{json, Value};

use crate::bindings::{reader, Window};
use crate::cli::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use crate::dynamo_json;
use crate::engine::Reading;
use crate::usage::{self, fail, WindowArg};

/// Arguments of `backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The window to build: daily (from hourly items) or monthly (from daily items)
    #[arg(long, value_enum)]
    pub window: BuildWindow,
    /// Table, namespace, entity.
    #[command(flatten)]
    pub scope: usage::Scope,
    /// Only periods that start at or after this date: YYYY-MM or YYYY-MM-DD (UTC)
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Only periods that end on or before this date, same forms (a month or a day alone covers all of it)
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// The resumable checkpoint: the entities already done [default: zae-backfill-TABLE-WINDOW.json]
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Most write capacity units consumed per second, on average
    #[arg(long, value_name = "N", default_value_t = 100.0)]
    pub max_wcu: f64,
    /// The clock in epoch milliseconds [default: the system clock]
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub now_ms: Option<i64>,
}

/// A window `backfill` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuildWindow {
    /// Daily items, from hourly ones
    Daily,
    /// Monthly items, from daily ones
    Monthly,
}

impl BuildWindow {
    fn window(self) -> Window {
        match self {
            BuildWindow::Daily => WindowArg::Daily.into(),
            BuildWindow::Monthly => WindowArg::Monthly.into(),
        }
    }
}

/// The checkpoint: which entities are done, for which table, namespace and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The table.
    pub table: String,
    /// The namespace id.
    pub namespace: String,
    /// `daily` or `monthly`.
    pub window: String,
    /// Entities whose items were all put (or found already there).
    pub done: BTreeSet<String>,
}

impl Checkpoint {
    /// Read `path`; `None` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read the checkpoint {}: {e}", path.display())),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("checkpoint {}: {e}", path.display()))?;
        let s = |k: &str| v[k].as_str().map(str::to_string).ok_or(format!("checkpoint {}: no {k}", path.display()));
        let done = v["done"]
            .as_array()
            .ok_or(format!("checkpoint {}: no done list", path.display()))?
            .iter()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect();
        Ok(Some(Checkpoint { table: s("table")?, namespace: s("namespace")?, window: s("window")?, done }))
    }

    /// Write it to `path` atomically (a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = json!({"table": self.table, "namespace": self.namespace, "window": self.window, "done": self.done})
            .to_string();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write the checkpoint {}: {e}", path.display()))
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
struct Progress {
    total: u64,
    written: u64,
    existing: u64,
    units: f64,
}

impl Progress {
    fn line(&self, started: Instant) -> String {
        let done = self.written + self.existing;
        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{done}/{} items: {} written, {} already there, {:.1} write units, {rate:.1} items/s",
            self.total, self.written, self.existing, self.units
        )
    }
}

/// Run `backfill`; the exit code.
pub async fn run(args: &BackfillArgs, vars: &[(String, String)]) -> u8 {
    let (planner, mut reader) = match usage::open(vars, args.scope.table.as_deref()).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if !(args.max_wcu > 0.0 && args.max_wcu.is_finite()) {
        return fail(EXIT_BAD_INPUT, "--max-wcu must be a positive number");
    }
    let table = reader.table().to_string();
    // SNAPSHOT_TTL_DAYS as the aggregator reads it (the component validates it).
    let mut config_vars = vars.to_vec();
    config_vars.push(("TABLE_NAME".into(), table.clone()));
    let ttl_days = match planner.config_from_env(&config_vars).await {
        Ok(Ok(c)) => c.snapshot_ttl_days,
        Ok(Err(e)) => return fail(EXIT_BAD_INPUT, &format!("invalid configuration: {}", e.message)),
        Err(e) => return fail(EXIT_FAILED, &e.to_string()),
    };
    let ns = match reader.namespace_id(&args.scope.namespace).await {
        Ok(id) => id,
        Err(m) => return fail(EXIT_FAILED, &m),
    };
    let window = args.window.window();
    let now_ms = args.now_ms.unwrap_or_else(crate::lambda::now_ms);
    let query = || reader::UsageQuery {
        namespace: Some(&ns),
        entity: args.scope.entity.as_deref(),
        resource: None,
        window: None,
        from: args.from.as_deref(),
        to: args.to.as_deref(),
    };
    // The dates are checked by the component before anything is read or written.
    match planner.backfill(&[], window, query(), now_ms, ttl_days).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            if let Ok(text) = planner.render_reading(&Reading::Backfill(Err(e))).await {
                println!("{text}");
            }
            return EXIT_BAD_INPUT;
        }
        Err(e) => return fail(EXIT_FAILED, &e.to_string()),
    }
    let path = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("zae-backfill-{table}-{}.json", window.name())));
    let mut checkpoint = match Checkpoint::load(&path) {
        Ok(Some(c)) if c.table != table || c.namespace != ns || c.window != window.name() => {
            return fail(
                EXIT_BAD_INPUT,
                &format!(
                    "checkpoint {} is for table {}, namespace {}, window {}: give another --checkpoint",
                    path.display(),
                    c.table,
                    c.namespace,
                    c.window
                ),
            )
        }
        Ok(Some(c)) => c,
        Ok(None) => Checkpoint {
            table: table.clone(),
            namespace: ns.clone(),
            window: window.name().into(),
            done: BTreeSet::new(),
        },
        Err(m) => return fail(EXIT_BAD_INPUT, &m),
    };

    // Read every snapshot item, by entity.
    let items = match reader.snapshot_items(&ns, args.scope.entity.as_deref()).await {
        Ok(i) => i,
        Err(m) => return fail(EXIT_FAILED, &m),
    };
    let mut by_entity: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for text in items {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let (Some(pk), Some(sk)) = (v["PK"]["S"].as_str(), v["SK"]["S"].as_str()) else { continue };
        if sk.starts_with("#USAGE#") {
            by_entity.entry(pk.to_string()).or_default().push(text);
        }
    }
    // Plan every entity not done yet (pure), then write.
    let mut plans = Vec::new();
    let mut progress = Progress::default();
    let mut held = 0usize;
    for (pk, texts) in &by_entity {
        if checkpoint.done.contains(pk) {
            continue;
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let plan = match planner.backfill(&refs, window, query(), now_ms, ttl_days).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return fail(EXIT_FAILED, &format!("{pk}: {e:?}")),
            Err(e) => return fail(EXIT_FAILED, &e.to_string()),
        };
        for h in &plan.held {
            eprintln!("zae-aggregator: held: {h}");
        }
        held += plan.held.len();
        usage::warn_skipped(&Reading::Backfill(Ok(plan.clone())));
        progress.total += plan.items.len() as u64;
        plans.push((pk.clone(), plan));
    }
    let started = Instant::now();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(progress.total);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} items, {per_sec}, eta {eta} {msg}")
        {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let mut last_line = Instant::now();
    for (pk, plan) in plans {
        for built in &plan.items {
            match put(&reader, &table, &built.item).await {
                Ok(Put::Written(units)) => {
                    progress.written += 1;
                    progress.units += units;
                }
                Ok(Put::Existing(units)) => {
                    progress.existing += 1;
                    progress.units += units;
                }
                Err(m) => {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    eprintln!("backfill: {}", progress.line(started));
                    return fail(EXIT_FAILED, &format!("{pk} {} {}: {m}", built.resource, built.window_start));
                }
            }
            // The --max-wcu bound: never ahead of units / rate seconds.
            let due = Duration::from_secs_f64(progress.units / args.max_wcu);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
            match &bar {
                Some(bar) => {
                    bar.inc(1);
                    bar.set_message(format!("{} written, {} already there", progress.written, progress.existing));
                }
                None if last_line.elapsed() >= Duration::from_secs(5) => {
                    eprintln!("backfill: {}", progress.line(started));
                    last_line = Instant::now();
                }
                None => {}
            }
        }
        checkpoint.done.insert(pk);
        if let Err(m) = checkpoint.save(&path) {
            return fail(EXIT_FAILED, &m);
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    println!(
        "backfill {}: {}; {} periods held; {} entities done; checkpoint {}",
        window.name(),
        progress.line(started),
        held,
        checkpoint.done.len(),
        path.display()
    );
    EXIT_OK
}

enum Put {
    /// Written; the write units consumed.
    Written(f64),
    /// An item with its key existed; left as it is.
    Existing(f64),
}

/// Put one built item where no item with its key exists.
async fn put(reader: &usage::TableReader, table: &str, item: &str) -> Result<Put, String> {
    let map = match dynamo_json::to_attribute_value(&format!("{{\"M\":{item}}}")) {
        Ok(aws_sdk_dynamodb::types::AttributeValue::M(m)) => m,
        Ok(_) => return Err("the component built an item that is not a map".into()),
        Err(e) => return Err(format!("the component built an item that is not DynamoDB JSON: {e}")),
    };
    // A write unit per KB, when DynamoDB does not report the units.
    let estimate = (item.len() as f64 / 1024.0).ceil().max(1.0);
    let out = reader
        .client()
        .put_item()
        .table_name(table)
        .set_item(Some(map))
        .condition_expression("attribute_not_exists(PK)")
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await;
    match out {
        Ok(o) => Ok(Put::Written(o.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(estimate))),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
            Ok(Put::Existing(estimate))
        }
        Err(e) => Err(DisplayErrorContext(&e).to_string()),
    }
}
