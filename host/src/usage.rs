//! `zae-aggregator usage list | summary | average` (docs/reading.md#commands).
//!
//! The host only reads: a Query of the entity partition on the base table
//! (`SK` beginning with `#USAGE#`, or `#USAGE#{resource}#` with a key range
//! when `--from` / `--to` are given), or of index `GSI2` for `--resource`
//! alone; every page, with `ReturnConsumedCapacity = TOTAL`. What the items
//! mean (key layouts, windows, filters, sums, averages, which window
//! answers) is decided by the component's `reader` interface.
//!
//! `usage average` reads the period's monthly keys first (at most N items per
//! resource, with `BatchGetItem`); only a resource the reader does not find
//! complete from those is read again over the period's key range, and the
//! reader then picks daily or hourly items (docs/reading.md#average).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::IsTerminal as _;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnConsumedCapacity};
use clap::{Args, Subcommand, ValueEnum};

use crate::bindings::{reader, Window};
use crate::cli::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use crate::dynamo_json::item_to_json;
use crate::engine::{Planner, Reading};
use crate::settings::HostSettings;

/// Arguments of `usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// What to answer.
    #[command(subcommand)]
    pub command: UsageCommand,
}

/// The `usage` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// One row per snapshot item, newest first
    List(ListArgs),
    /// Totals per entity, resource and window, with the average per window
    Summary(ListArgs),
    /// The average monthly usage over the last N complete months, from the coarsest window that covers them
    Average(AverageArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table (the default on a terminal)
    Table,
    /// The reader's canonical JSON (the default otherwise)
    Json,
    /// Comma-separated values with a header line
    Csv,
}

/// Where to read and how to print: shared by every `usage` subcommand.
#[derive(Debug, Args)]
pub struct Target {
    /// The table [default: TABLE_NAME]
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// The namespace: a name in zae-limiter's registry (item `_/SYSTEM#`,
    /// `#NAMESPACE#{name}`), else taken as the namespace id itself
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// The entity (reads its partition)
    #[arg(long, value_name = "E", required_unless_present = "resource")]
    pub entity: Option<String>,
    /// The resource (alone: reads index GSI2)
    #[arg(long, value_name = "R")]
    pub resource: Option<String>,
    /// Output format [default: table on a terminal, json otherwise]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print the items read and the read capacity consumed to standard error
    #[arg(long)]
    pub stats: bool,
}

/// What `backfill` and `reconcile` read: the table, the namespace, one
/// entity or all of them.
#[derive(Debug, Args)]
pub struct Scope {
    /// The table [default: TABLE_NAME]
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// The namespace: a name in zae-limiter's registry, else the namespace id itself
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// Only this entity (reads its partition; otherwise the namespace's items through GSI4)
    #[arg(long, value_name = "E")]
    pub entity: Option<String>,
}

/// Arguments of `usage list` and `usage summary`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Table, keys, format.
    #[command(flatten)]
    pub target: Target,
    /// Only this window
    #[arg(long, value_enum)]
    pub window: Option<WindowArg>,
    /// Earliest window_start: YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC), inclusive
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// Latest window_start, same forms, inclusive (a month or a day alone covers all of it)
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
}

/// Arguments of `usage average`.
#[derive(Debug, Args)]
pub struct AverageArgs {
    /// Table, keys, format.
    #[command(flatten)]
    pub target: Target,
    /// How many complete months before the current one
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1200))]
    pub months: u32,
    /// The clock in epoch milliseconds [default: the system clock]
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub now_ms: Option<i64>,
}

/// A `--window` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WindowArg {
    /// Hourly items
    Hourly,
    /// Daily items
    Daily,
    /// Monthly items
    Monthly,
}

impl From<WindowArg> for Window {
    fn from(w: WindowArg) -> Window {
        match w {
            WindowArg::Hourly => Window::Hourly,
            WindowArg::Daily => Window::Daily,
            WindowArg::Monthly => Window::Monthly,
        }
    }
}

/// What the reads cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Requests sent (each page counts).
    pub requests: u64,
    /// Items returned.
    pub items: u64,
    /// Read capacity units consumed (`ConsumedCapacity.CapacityUnits`, summed).
    pub read_units: f64,
}

impl Stats {
    /// `items read: N, read units: X, requests: K`.
    pub fn line(&self) -> String {
        format!("items read: {}, read units: {}, requests: {}", self.items, self.read_units, self.requests)
    }
}

/// A sort-key condition of a Query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// `begins_with(SK, prefix)`.
    Prefix(String),
    /// `SK BETWEEN low AND high`.
    Between(String, String),
}

/// Reads items of one table, counting what they cost.
pub struct TableReader {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// What was read so far.
    pub stats: Stats,
}

fn capacity(c: Option<&aws_sdk_dynamodb::types::ConsumedCapacity>) -> f64 {
    c.and_then(|c| c.capacity_units()).unwrap_or(0.0)
}

impl TableReader {
    /// A reader of `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> TableReader {
        TableReader { client, table: table.to_string(), stats: Stats::default() }
    }

    /// The table read.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    /// Every snapshot item (`#USAGE#` SK) of one entity's partition, or of
    /// every entity of the namespace through index GSI4 (which also holds the
    /// entities' other items, left out here). zae-limiter creates GSI3 and
    /// GSI4 with `KEYS_ONLY` projection: the index gives the keys, and the
    /// items are read from the table by key (docs/reading.md#commands).
    pub async fn snapshot_items(&mut self, ns: &str, entity: Option<&str>) -> Result<Vec<String>, String> {
        let items = match entity {
            Some(e) => self.query(None, &entity_pk(ns, e), &SortKey::Prefix("#USAGE#".into()), &[]).await?,
            None => {
                let keys = self.query(Some("GSI4"), ns, &SortKey::Prefix(format!("{ns}/ENTITY#")), &[]).await?;
                let keys: Vec<(String, String)> =
                    keys.iter().filter(|i| is_usage_item(i)).filter_map(|i| table_key(i)).collect();
                self.get(&keys).await?
            }
        };
        Ok(items.into_iter().filter(|i| is_usage_item(i)).collect())
    }

    /// The bucket items of one entity (their keys through index GSI3,
    /// `GSI3PK = {ns}/ENTITY#{entity}`, then the items by key, and old-format
    /// `#BUCKET#` items of its partition), or of the namespace (their keys
    /// through index GSI4, `GSI4PK = {ns}`, `begins_with(GSI4SK, "BUCKET#")`,
    /// then the items by key). `reconcile` checks the hourly sums against them
    /// (docs/reading.md#consumption-bound).
    pub async fn bucket_items(&mut self, ns: &str, entity: Option<&str>) -> Result<Vec<String>, String> {
        let (index, pk) = match entity {
            Some(e) => ("GSI3", entity_pk(ns, e)),
            None => ("GSI4", ns.to_string()),
        };
        let entries = self.query(Some(index), &pk, &SortKey::Prefix("BUCKET#".into()), &[]).await?;
        let keys: Vec<(String, String)> = entries.iter().filter_map(|i| table_key(i)).collect();
        let mut items = self.get(&keys).await?;
        if let Some(e) = entity {
            items.extend(self.query(None, &entity_pk(ns, e), &SortKey::Prefix("#BUCKET#".into()), &[]).await?);
        }
        Ok(items)
    }

    /// Every item of a Query (all pages) as DynamoDB JSON maps: `index`
    /// `None` is the base table (`PK`, `SK`), `Some("GSI2")` uses `GSI2PK`,
    /// `GSI2SK`. `projection`: attribute names to return (all when empty).
    pub async fn query(
        &mut self,
        index: Option<&str>,
        pk: &str,
        sk: &SortKey,
        projection: &[&str],
    ) -> Result<Vec<String>, String> {
        let (pk_name, sk_name) = match index {
            None => ("PK".to_string(), "SK".to_string()),
            Some(i) => (format!("{i}PK"), format!("{i}SK")),
        };
        let condition = match sk {
            SortKey::Prefix(_) => "#pk = :pk AND begins_with(#sk, :a)",
            SortKey::Between(..) => "#pk = :pk AND #sk BETWEEN :a AND :b",
        };
        let mut values = HashMap::from([(":pk".to_string(), AttributeValue::S(pk.to_string()))]);
        match sk {
            SortKey::Prefix(p) => {
                values.insert(":a".into(), AttributeValue::S(p.clone()));
            }
            SortKey::Between(a, b) => {
                values.insert(":a".into(), AttributeValue::S(a.clone()));
                values.insert(":b".into(), AttributeValue::S(b.clone()));
            }
        }
        let mut names = HashMap::from([("#pk".to_string(), pk_name), ("#sk".to_string(), sk_name)]);
        let projection_expression = if projection.is_empty() {
            None
        } else {
            let mut parts = Vec::new();
            for (i, p) in projection.iter().enumerate() {
                names.insert(format!("#p{i}"), (*p).to_string());
                parts.push(format!("#p{i}"));
            }
            Some(parts.join(", "))
        };
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression(condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_projection_expression(projection_expression.clone())
                .scan_index_forward(false)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| format!("query of {} ({pk}): {}", self.table, DisplayErrorContext(&e)))?;
            self.stats.requests += 1;
            self.stats.read_units += capacity(out.consumed_capacity());
            self.stats.items += out.items().len() as u64;
            items.extend(out.items().iter().map(item_to_json));
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// The id of a namespace: its registry item's `namespace_id` (zae-limiter
    /// keeps `PK = _/SYSTEM#`, `SK = #NAMESPACE#{name}`), else the name
    /// itself taken as an id (tables written without the registry).
    pub async fn namespace_id(&mut self, name: &str) -> Result<String, String> {
        let key = [("_/SYSTEM#".to_string(), format!("#NAMESPACE#{name}"))];
        let found = self.get(&key).await?;
        let id = found.first().and_then(|text| {
            let v: serde_json::Value = serde_json::from_str(text).ok()?;
            v["namespace_id"]["S"].as_str().map(str::to_string)
        });
        Ok(id.unwrap_or_else(|| name.to_string()))
    }

    /// The items of these `(PK, SK)` keys that exist (BatchGetItem, 100 keys
    /// a request, unprocessed keys sent again).
    pub async fn get(&mut self, keys: &[(String, String)]) -> Result<Vec<String>, String> {
        let mut items = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|(pk, sk)| {
                    HashMap::from([
                        ("PK".to_string(), AttributeValue::S(pk.clone())),
                        ("SK".to_string(), AttributeValue::S(sk.clone())),
                    ])
                })
                .collect();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .build()
                    .map_err(|e| format!("BatchGetItem request: {e}"))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| format!("BatchGetItem on {}: {}", self.table, DisplayErrorContext(&e)))?;
                self.stats.requests += 1;
                self.stats.read_units += out.consumed_capacity().iter().map(|c| capacity(Some(c))).sum::<f64>();
                if let Some(found) = out.responses().and_then(|r| r.get(&self.table)) {
                    self.stats.items += found.len() as u64;
                    items.extend(found.iter().map(item_to_json));
                }
                if let Some(rest) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    pending = rest.keys().to_vec();
                    attempt += 1;
                    tokio::time::sleep(crate::stream::backoff(attempt)).await;
                }
            }
        }
        Ok(items)
    }
}

/// A key-range bound for a query time: the time text as given is a prefix
/// of every window key at or after it (`2024-03` <= `2024-03-01T00:00:00Z`),
/// and `~` sorts after every window key that starts with it, suffixes
/// included; the reader applies the exact bounds (docs/reading.md).
fn range(prefix: &str, from: Option<&str>, to: Option<&str>) -> SortKey {
    match (from, to) {
        (None, None) => SortKey::Prefix(prefix.to_string()),
        (f, t) => SortKey::Between(format!("{prefix}{}", f.unwrap_or("")), format!("{prefix}{}~", t.unwrap_or("~"))),
    }
}

/// The table key (`PK`, `SK`) of an item read as DynamoDB JSON.
fn table_key(text: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some((v["PK"]["S"].as_str()?.to_string(), v["SK"]["S"].as_str()?.to_string()))
}

/// Whether an item read as DynamoDB JSON is a snapshot item (`#USAGE#` SK).
fn is_usage_item(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["SK"]["S"].as_str().map(|sk| sk.starts_with("#USAGE#")))
        .unwrap_or(false)
}

/// The entity partition key.
pub fn entity_pk(namespace: &str, entity: &str) -> String {
    format!("{namespace}/ENTITY#{entity}")
}

/// Print `message` as the command's error; `code`.
pub fn fail(code: u8, message: &str) -> u8 {
    eprintln!("zae-aggregator: {message}");
    code
}

/// The planner, a table reader and the table name, from the environment.
pub async fn open(vars: &[(String, String)], table: Option<&str>) -> Result<(Planner, TableReader), u8> {
    let table = match table.map(str::to_string).or_else(|| {
        vars.iter().rev().find(|(k, _)| k == "TABLE_NAME").map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    }) {
        Some(t) => t,
        None => return Err(fail(EXIT_BAD_INPUT, "give --table or set TABLE_NAME")),
    };
    let host =
        HostSettings::from_vars(vars).map_err(|m| fail(EXIT_BAD_INPUT, &format!("invalid configuration: {m}")))?;
    let planner = crate::cli::build_planner(&host)
        .map_err(|e| fail(EXIT_FAILED, &format!("could not load the planner component: {e:#}")))?;
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    Ok((planner, TableReader::new(aws_sdk_dynamodb::Client::new(&sdk), &table)))
}

/// Run `usage`; the exit code.
pub async fn run(args: &UsageArgs, vars: &[(String, String)]) -> u8 {
    let target = match &args.command {
        UsageCommand::List(a) | UsageCommand::Summary(a) => &a.target,
        UsageCommand::Average(a) => &a.target,
    };
    let (planner, mut reader) = match open(vars, target.table.as_deref()).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let namespace = match reader.namespace_id(&target.namespace).await {
        Ok(id) => id,
        Err(m) => return fail(EXIT_FAILED, &m),
    };
    let format = default_format(target.format);
    let answer = match &args.command {
        UsageCommand::List(a) => list(&planner, &mut reader, &namespace, a, false).await,
        UsageCommand::Summary(a) => list(&planner, &mut reader, &namespace, a, true).await,
        UsageCommand::Average(a) => average(&planner, &mut reader, &namespace, a).await,
    };
    let reading = match answer {
        Ok(r) => r,
        Err((code, m)) => return fail(code, &m),
    };
    let code = if is_error(&reading) { EXIT_BAD_INPUT } else { EXIT_OK };
    let text = match render(&planner, &reading, format).await {
        Ok(t) => t,
        Err(m) => return fail(EXIT_FAILED, &m),
    };
    print!("{text}");
    warn_skipped(&reading);
    if target.stats {
        eprintln!("{}", reader.stats.line());
    }
    code
}

/// Whether the reader refused the question.
pub fn is_error(reading: &Reading) -> bool {
    matches!(
        reading,
        Reading::Rows(Err(_))
            | Reading::Summaries(Err(_))
            | Reading::Average(Err(_))
            | Reading::Period(Err(_))
            | Reading::Reconciliation(Err(_))
            | Reading::Backfill(Err(_))
    )
}

/// The output of a reader answer: the component's canonical JSON (always for
/// an error), or a table or CSV made from the answer.
pub async fn render(planner: &Planner, reading: &Reading, format: Format) -> Result<String, String> {
    let text = match (format, reading) {
        (Format::Table | Format::Csv, Reading::Rows(Ok(r))) => rows_text(r, format),
        (Format::Table | Format::Csv, Reading::Summaries(Ok(s))) => summaries_text(s, format),
        (Format::Table | Format::Csv, Reading::Average(Ok(a))) => average_text(a, format),
        _ => format!("{}\n", planner.render_reading(reading).await.map_err(|e| e.to_string())?),
    };
    Ok(text)
}

/// The default format: a table on a terminal, JSON otherwise.
pub fn default_format(format: Option<Format>) -> Format {
    format.unwrap_or(if std::io::stdout().is_terminal() { Format::Table } else { Format::Json })
}

/// Print the reader's reasons for the items it skipped, to standard error.
pub fn warn_skipped(reading: &Reading) {
    let skipped = match reading {
        Reading::Rows(Ok(r)) => &r.skipped,
        Reading::Summaries(Ok(s)) => &s.skipped,
        Reading::Average(Ok(a)) => &a.skipped,
        Reading::Reconciliation(Ok(r)) => &r.skipped,
        Reading::Backfill(Ok(p)) => &p.skipped,
        _ => return,
    };
    for s in skipped {
        eprintln!("zae-aggregator: item {} not read: {}", s.index, s.reason);
    }
}

fn query_of<'a>(
    namespace: &'a str,
    t: &'a Target,
    window: Option<Window>,
    from: Option<&'a str>,
    to: Option<&'a str>,
) -> reader::UsageQuery<'a> {
    reader::UsageQuery {
        namespace: Some(namespace),
        entity: t.entity.as_deref(),
        resource: t.resource.as_deref(),
        window,
        from,
        to,
    }
}

type Failure = (u8, String);

fn call_failed(e: crate::CallError) -> Failure {
    (EXIT_FAILED, e.to_string())
}

/// Read the items a list or summary needs, and ask the reader.
async fn list(
    planner: &Planner,
    reader: &mut TableReader,
    ns: &str,
    a: &ListArgs,
    summary: bool,
) -> Result<Reading, Failure> {
    let t = &a.target;
    let (from, to) = (a.from.as_deref(), a.to.as_deref());
    let query = || query_of(ns, t, a.window.map(Window::from), from, to);
    // The query's times are checked by the reader before anything is read.
    if let Err(e) = planner.usage_rows(&[], query()).await.map_err(call_failed)? {
        return Ok(Reading::Rows(Err(e)));
    }
    let items = match (&t.entity, &t.resource) {
        (Some(e), Some(r)) => {
            reader.query(None, &entity_pk(ns, e), &range(&format!("#USAGE#{r}#"), from, to), &[]).await
        }
        (Some(e), None) => reader.query(None, &entity_pk(ns, e), &SortKey::Prefix("#USAGE#".into()), &[]).await,
        (None, Some(r)) => {
            reader.query(Some("GSI2"), &format!("{ns}/RESOURCE#{r}"), &range("USAGE#", from, to), &[]).await
        }
        (None, None) => Err("give --entity or --resource".to_string()),
    }
    .map_err(|m| (EXIT_FAILED, m))?;
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    Ok(if summary {
        Reading::Summaries(planner.usage_summaries(&refs, query()).await.map_err(call_failed)?)
    } else {
        Reading::Rows(planner.usage_rows(&refs, query()).await.map_err(call_failed)?)
    })
}

/// The resources of an entity, from its bucket items: current-format ones
/// through index GSI3 (`GSI3PK = {ns}/ENTITY#{entity}`; zae-limiter projects
/// only the keys there, so the resource is read from the bucket's key,
/// `{ns}/BUCKET#{entity}#{resource}#{shard}`), old-format ones in the entity
/// partition (`SK` beginning with `#BUCKET#`, their `resource` attribute).
async fn entity_resources(reader: &mut TableReader, namespace: &str, entity: &str) -> Result<BTreeSet<String>, String> {
    let pk = entity_pk(namespace, entity);
    let mut out = BTreeSet::new();
    let prefix = format!("{namespace}/BUCKET#{entity}#");
    for text in reader.query(Some("GSI3"), &pk, &SortKey::Prefix("BUCKET#".into()), &[]).await? {
        let key = table_key(&text).ok_or("a GSI3 entry without a PK and SK string")?;
        // The shard is the last `#` field; the resource may hold `#` itself.
        if let Some((resource, _shard)) = key.0.strip_prefix(&prefix).and_then(|rest| rest.rsplit_once('#')) {
            out.insert(resource.to_string());
        }
    }
    for text in reader.query(None, &pk, &SortKey::Prefix("#BUCKET#".into()), &["resource"]).await? {
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("bucket item: {e}"))?;
        if let Some(r) = v["resource"]["S"].as_str() {
            out.insert(r.to_string());
        }
    }
    Ok(out)
}

/// `usage average`: the period's monthly keys first, then the period's key
/// range of each resource the reader could not answer completely from them.
async fn average(planner: &Planner, reader: &mut TableReader, ns: &str, a: &AverageArgs) -> Result<Reading, Failure> {
    let t = &a.target;
    let now_ms = a.now_ms.unwrap_or_else(crate::lambda::now_ms);
    let period = match planner.average_period(a.months, now_ms).await.map_err(call_failed)? {
        Ok(p) => p,
        Err(e) => return Ok(Reading::Period(Err(e))),
    };
    let query = || query_of(ns, t, None, None, None);
    let mut items: Vec<String> = Vec::new();
    let Some(entity) = &t.entity else {
        // A resource alone: every entity's items of the period, through GSI2
        // (its sort key holds no window, so no monthly-only read is possible).
        let pk = format!("{ns}/RESOURCE#{}", t.resource.as_deref().unwrap_or_default());
        let sk = SortKey::Between(format!("USAGE#{}", period.from), format!("USAGE#{}", period.until));
        items = reader.query(Some("GSI2"), &pk, &sk, &[]).await.map_err(|m| (EXIT_FAILED, m))?;
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let answer = planner.monthly_average(&refs, query(), a.months, now_ms, true).await.map_err(call_failed)?;
        return Ok(Reading::Average(answer));
    };
    let pk = entity_pk(ns, entity);
    let resources = match &t.resource {
        Some(r) => BTreeSet::from([r.clone()]),
        None => entity_resources(reader, ns, entity).await.map_err(|m| (EXIT_FAILED, m))?,
    };
    let keys: Vec<(String, String)> = resources
        .iter()
        .flat_map(|r| {
            let pk = &pk;
            period.months.iter().map(move |m| (pk.clone(), format!("#USAGE#{r}#{m}#monthly")))
        })
        .collect();
    items.extend(reader.get(&keys).await.map_err(|m| (EXIT_FAILED, m))?);
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let first = match planner.monthly_average(&refs, query(), a.months, now_ms, false).await.map_err(call_failed)? {
        Ok(x) => x,
        Err(e) => return Ok(Reading::Average(Err(e))),
    };
    let answered: BTreeSet<&str> = first.resources.iter().filter(|r| r.complete).map(|r| r.resource.as_str()).collect();
    let missing: Vec<&String> = resources.iter().filter(|r| !answered.contains(r.as_str())).collect();
    if missing.is_empty() {
        return Ok(Reading::Average(Ok(first)));
    }
    for r in missing {
        let sk = SortKey::Between(format!("#USAGE#{r}#{}", period.from), format!("#USAGE#{r}#{}", period.until));
        items.extend(reader.query(None, &pk, &sk, &[]).await.map_err(|m| (EXIT_FAILED, m))?);
    }
    // Every resource now has either all its monthly keys or its whole period
    // among the items, so the whole-period answer holds for all of them.
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let answer = planner.monthly_average(&refs, query(), a.months, now_ms, true).await.map_err(call_failed)?;
    Ok(Reading::Average(answer))
}

// ---------------------------------------------------------------------------
// Table and CSV output
// ---------------------------------------------------------------------------

/// Cells to an aligned table (columns padded to their widest cell, numbers
/// right-aligned) or to CSV.
pub(crate) fn grid(header: &[String], rows: &[Vec<String>], right: &[bool], format: Format) -> String {
    let mut out = String::new();
    if format == Format::Csv {
        for line in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
            let cells: Vec<String> = line.iter().map(|c| csv_cell(c)).collect();
            let _ = writeln!(out, "{}", cells.join(","));
        }
        return out;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for line in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if right.get(i).copied().unwrap_or(false) {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

fn counter_names<'a>(lists: impl Iterator<Item = &'a Vec<reader::Counter>>) -> Vec<String> {
    let mut names = BTreeSet::new();
    for l in lists {
        names.extend(l.iter().map(|c| c.name.clone()));
    }
    names.into_iter().collect()
}

fn value_of(list: &[reader::Counter], name: &str) -> String {
    list.iter().find(|c| c.name == name).map_or_else(String::new, |c| c.value.clone())
}

fn average_of(list: &[reader::Average], name: &str) -> String {
    list.iter().find(|c| c.name == name).map_or_else(String::new, |c| c.value.clone())
}

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

/// `usage list` as a table or CSV: one line per item, one column per counter.
pub fn rows_text(r: &reader::UsageRows, format: Format) -> String {
    let names = counter_names(r.rows.iter().map(|x| &x.counters));
    let mut header = strings(&["namespace", "entity", "resource", "window", "window_start", "total_events"]);
    header.extend(names.iter().cloned());
    let mut right = vec![false, false, false, false, false, true];
    right.extend(names.iter().map(|_| true));
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|x| {
            let mut row = vec![
                x.namespace.clone(),
                x.entity.clone(),
                x.resource.clone(),
                x.window.name().to_string(),
                x.window_start.clone(),
                x.total_events.clone(),
            ];
            row.extend(names.iter().map(|n| value_of(&x.counters, n)));
            row
        })
        .collect();
    grid(&header, &rows, &right, format)
}

/// `usage summary` as a table or CSV: per counter its total and its average per window.
pub fn summaries_text(s: &reader::UsageSummaries, format: Format) -> String {
    let names = counter_names(s.summaries.iter().map(|x| &x.totals));
    let mut header = strings(&["namespace", "entity", "resource", "window", "items", "first", "last", "total_events"]);
    let mut right = vec![false, false, false, false, true, false, false, true];
    for n in &names {
        header.push(n.clone());
        header.push(format!("{n}/window"));
        right.extend([true, true]);
    }
    let rows: Vec<Vec<String>> = s
        .summaries
        .iter()
        .map(|x| {
            let mut row = vec![
                x.namespace.clone(),
                x.entity.clone(),
                x.resource.clone(),
                x.window.name().to_string(),
                x.snapshots.to_string(),
                x.first_window_start.clone(),
                x.last_window_start.clone(),
                x.total_events.clone(),
            ];
            for n in &names {
                row.push(value_of(&x.totals, n));
                row.push(average_of(&x.averages, n));
            }
            row
        })
        .collect();
    grid(&header, &rows, &right, format)
}

/// `usage average` as a table or CSV: per resource the window that answered,
/// whether it covers the period, the items summed, and per counter its
/// monthly average and total.
pub fn average_text(a: &reader::MonthlyAverages, format: Format) -> String {
    let names = counter_names(a.resources.iter().map(|x| &x.totals));
    let mut header = strings(&["namespace", "entity", "resource", "window", "complete", "items", "total_events"]);
    let mut right = vec![false, false, false, false, false, true, true];
    for n in &names {
        header.push(format!("{n}/month"));
        header.push(n.clone());
        right.extend([true, true]);
    }
    let rows: Vec<Vec<String>> = a
        .resources
        .iter()
        .map(|x| {
            let mut row = vec![
                x.namespace.clone(),
                x.entity.clone(),
                x.resource.clone(),
                x.window.name().to_string(),
                x.complete.to_string(),
                x.items.to_string(),
                x.total_events.clone(),
            ];
            for n in &names {
                row.push(average_of(&x.averages, n));
                row.push(value_of(&x.totals, n));
            }
            row
        })
        .collect();
    let mut text = grid(&header, &rows, &right, format);
    if format == Format::Table {
        let months: Vec<&str> = a.period.months.iter().map(|m| &m[..7]).collect();
        let _ = writeln!(text, "period: {} ({} months)", months.join(", "), months.len());
    }
    text
}

/// Counter totals by name, for tests and tools comparing answers.
pub fn totals(list: &[reader::Counter]) -> BTreeMap<String, String> {
    list.iter().map(|c| (c.name.clone(), c.value.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_cover_the_reader_bounds() {
        assert_eq!(range("#USAGE#r#", None, None), SortKey::Prefix("#USAGE#r#".into()));
        let SortKey::Between(low, high) = range("#USAGE#r#", Some("2024-03"), Some("2024-03-05")) else {
            panic!("a range")
        };
        assert!(low.as_str() <= "#USAGE#r#2024-03-01T00:00:00Z");
        for inside in ["2024-03-05T23:00:00Z", "2024-03-05T00:00:00Z#daily", "2024-03-01T00:00:00Z#monthly"] {
            let sk = format!("#USAGE#r#{inside}");
            assert!(low <= sk && sk <= high, "{sk} in [{low}, {high}]");
        }
        assert!("#USAGE#r#2024-03-06T00:00:00Z" > high.as_str());
        let SortKey::Between(_, high) = range("USAGE#", Some("2024-03"), None) else { panic!("a range") };
        assert!("USAGE#9999-12-31T23:00:00Z#someone" < high.as_str());
    }

    #[test]
    fn tables_align_and_csv_quotes() {
        let header = strings(&["a", "n"]);
        let rows = vec![strings(&["x,y", "5"]), strings(&["long", "12345"])];
        let t = grid(&header, &rows, &[false, true], Format::Table);
        assert_eq!(t, "a         n\nx,y       5\nlong  12345\n");
        let c = grid(&header, &rows, &[false, true], Format::Csv);
        assert_eq!(c, "a,n\n\"x,y\",5\nlong,12345\n");
    }
}
