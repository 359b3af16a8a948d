//! `zae-aggregator reconcile` (docs/reading.md#reconcile): every daily item
//! against the sum of its hourly items, every monthly item against the sum of
//! its daily items, over the periods where both windows were maintained.
//!
//! The host reads the snapshot items (one entity's partition with `--entity`,
//! else the whole namespace through index GSI4: `GSI4PK = {ns}`, `GSI4SK`
//! beginning with `{ns}/ENTITY#`) and the component's `reader.reconcile`
//! decides which periods are compared and which drift.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use clap::Args;

use crate::bindings::reader;
use crate::engine::Reading;
use crate::usage::{self, default_format, fail, grid, strings, totals, Format};

/// Exit code: some item drifts.
pub const EXIT_DRIFT: u8 = 1;
/// Exit code: a read or the component failed.
pub const EXIT_READ_FAILED: u8 = 3;

/// Arguments of `reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Table, namespace, entity.
    #[command(flatten)]
    pub scope: usage::Scope,
    /// Only periods that start at or after this time: YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// Only periods that end at or before this time, same forms (a month or a day alone covers all of it)
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// Output format [default: table on a terminal, json otherwise]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print the items read and the read capacity consumed to standard error
    #[arg(long)]
    pub stats: bool,
}

/// Run `reconcile`; the exit code.
pub async fn run(args: &ReconcileArgs, vars: &[(String, String)]) -> u8 {
    let (planner, mut reader) = match usage::open(vars, args.scope.table.as_deref()).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let ns = match reader.namespace_id(&args.scope.namespace).await {
        Ok(id) => id,
        Err(m) => return fail(EXIT_READ_FAILED, &m),
    };
    let query = || crate::bindings::reader::UsageQuery {
        namespace: Some(&ns),
        entity: args.scope.entity.as_deref(),
        resource: None,
        window: None,
        from: args.from.as_deref(),
        to: args.to.as_deref(),
    };
    let format = default_format(args.format);
    // The query's times are checked by the reader before anything is read.
    let checked = match planner.reconcile(&[], query()).await {
        Ok(r) => r,
        Err(e) => return fail(EXIT_READ_FAILED, &e.to_string()),
    };
    if let Err(e) = checked {
        let reading = Reading::Reconciliation(Err(e));
        if let Ok(text) = usage::render(&planner, &reading, Format::Json).await {
            print!("{text}");
        }
        return crate::cli::EXIT_BAD_INPUT;
    }
    let mut items = match reader.snapshot_items(&ns, args.scope.entity.as_deref()).await {
        Ok(i) => i,
        Err(m) => return fail(EXIT_READ_FAILED, &m),
    };
    match reader.bucket_items(&ns, args.scope.entity.as_deref()).await {
        Ok(buckets) => items.extend(buckets),
        Err(m) => return fail(EXIT_READ_FAILED, &m),
    }
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    let answer = match planner.reconcile(&items, query()).await {
        Ok(a) => a,
        Err(e) => return fail(EXIT_READ_FAILED, &e.to_string()),
    };
    let reading = Reading::Reconciliation(answer);
    let text = match (&reading, format) {
        (Reading::Reconciliation(Ok(r)), Format::Table | Format::Csv) => reconciliation_text(r, format),
        _ => match usage::render(&planner, &reading, format).await {
            Ok(t) => t,
            Err(m) => return fail(EXIT_READ_FAILED, &m),
        },
    };
    print!("{text}");
    usage::warn_skipped(&reading);
    if args.stats {
        eprintln!("{}", reader.stats.line());
    }
    match &reading {
        Reading::Reconciliation(Ok(r)) if r.drifts.is_empty() && r.consumption.exceeding.is_empty() => {
            crate::cli::EXIT_OK
        }
        Reading::Reconciliation(Ok(_)) => EXIT_DRIFT,
        _ => crate::cli::EXIT_BAD_INPUT,
    }
}

/// `reconcile` as a table or CSV: one line per drifting counter of each
/// drifting item (`total_events` included), with both values; then one line
/// per hourly counter above its buckets' consumption, as window `buckets`:
/// `stored` their `tc` summed (tokens, three decimals), `summed` the hourly
/// sum, `items` the hourly items.
pub fn reconciliation_text(r: &reader::Reconciliation, format: Format) -> String {
    let header = strings(&[
        "namespace",
        "entity",
        "resource",
        "window",
        "window_start",
        "present",
        "finer",
        "items",
        "counter",
        "stored",
        "summed",
    ]);
    let right = [false, false, false, false, false, false, false, true, false, true, true];
    let mut rows = Vec::new();
    for d in &r.drifts {
        let stored = totals(&d.stored);
        let summed = totals(&d.summed);
        let mut names: BTreeSet<&String> = stored.keys().chain(summed.keys()).collect();
        let total_events = "total_events".to_string();
        names.insert(&total_events);
        for n in names {
            let (a, b) = if *n == total_events {
                (d.stored_events.clone(), d.summed_events.clone())
            } else {
                (stored.get(n).cloned().unwrap_or("0".into()), summed.get(n).cloned().unwrap_or("0".into()))
            };
            if a == b {
                continue;
            }
            rows.push(vec![
                d.namespace.clone(),
                d.entity.clone(),
                d.resource.clone(),
                d.window.name().to_string(),
                d.window_start.clone(),
                d.present.to_string(),
                d.finer.name().to_string(),
                d.finer_items.to_string(),
                n.clone(),
                a,
                b,
            ]);
        }
    }
    for e in &r.consumption.exceeding {
        rows.push(vec![
            e.namespace.clone(),
            e.entity.clone(),
            e.resource.clone(),
            "buckets".to_string(),
            String::new(),
            "true".to_string(),
            "hourly".to_string(),
            e.hourly_items.to_string(),
            e.limit.clone(),
            millitokens_as_tokens(&e.consumed_millitokens),
            e.hourly_tokens.clone(),
        ]);
    }
    let mut text = grid(&header, &rows, &right, format);
    if format == Format::Table {
        let c = &r.consumption;
        let _ = writeln!(text, "checked {} periods, {} drifting", r.checked, r.drifts.len());
        let _ = writeln!(
            text,
            "checked {} hourly counters against their buckets' consumption, {} above it, {} without a bucket",
            c.checked,
            c.exceeding.len(),
            c.unchecked
        );
    }
    text
}

/// A decimal count of millitokens as tokens with three decimals (`-1500` is `-1.500`).
fn millitokens_as_tokens(millitokens: &str) -> String {
    let (sign, digits) = match millitokens.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", millitokens),
    };
    let padded = format!("{digits:0>4}");
    let (whole, fraction) = padded.split_at(padded.len() - 3);
    format!("{sign}{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::millitokens_as_tokens;

    #[test]
    fn millitokens_print_as_tokens_with_three_decimals() {
        assert_eq!(millitokens_as_tokens("2999"), "2.999");
        assert_eq!(millitokens_as_tokens("7"), "0.007");
        assert_eq!(millitokens_as_tokens("-1500"), "-1.500");
        assert_eq!(millitokens_as_tokens("1000000"), "1000.000");
    }
}
