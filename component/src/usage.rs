//! The read side of the snapshots (docs/reading.md): snapshot items as the
//! host read them (DynamoDB JSON) and a query in; usage rows, summaries and
//! the average over the last complete months out. Pure: the host does every
//! read and passes the clock in.
//!
//! Key layouts understood (docs/specification.md#snapshots, docs/reading.md#key-layouts):
//! * this aggregator's, W4: hourly `#USAGE#{resource}#{YYYY-MM-DDTHH:00:00Z}`, daily and
//!   monthly with a `#daily` / `#monthly` suffix (both zae-limiter semantics write it);
//! * upstream's: every window unsuffixed, told apart by the `window` attribute (the item
//!   upstream's hour 00, day and day-1 month share is read as the window its attribute names).
//!
//! Counters are every N attribute but the snapshot metadata
//! (docs/specification.md#snapshot-reader), including 0.17's `{limit}#od`; watermarks (`wm#…`)
//! are skipped whatever their type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::plan::write_json_str;
use crate::snapshot::{RESERVED, WATERMARK_PREFIX};
use crate::window::{format_iso, from_epoch_ms, parse_key, window_key, DateTime, Window};

/// How an item's sort key names its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layout {
    /// `#daily` / `#monthly` suffix (W4): this aggregator's daily and monthly items.
    Suffixed,
    /// No suffix: hourly items of both, and upstream's daily and monthly items, whose window
    /// is their `window` attribute.
    Unsuffixed,
}

impl Layout {
    /// The WIT enum case name.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Suffixed => "suffixed",
            Layout::Unsuffixed => "unsuffixed",
        }
    }
}

/// One counter: a limit's tokens (or `{limit}#od`), or a sum of them.
pub type Counters = BTreeMap<String, i128>;

/// One snapshot item, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Namespace id (before `/` in the PK).
    pub namespace: String,
    /// Entity (after `ENTITY#` in the PK).
    pub entity: String,
    /// Resource (from the SK).
    pub resource: String,
    /// Window.
    pub window: Window,
    /// Window key (`window_start`), from the SK.
    pub window_start: String,
    /// Key layout.
    pub layout: Layout,
    /// Counters by name.
    pub counters: Counters,
    /// `total_events` (0 when absent).
    pub total_events: i128,
}

/// What to read: every filter is optional; `from` and `to` bound `window_start`, inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Namespace id.
    pub namespace: Option<String>,
    /// Entity.
    pub entity: Option<String>,
    /// Resource.
    pub resource: Option<String>,
    /// Window.
    pub window: Option<Window>,
    /// Earliest `window_start`: `YYYY-MM`, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`.
    pub from: Option<String>,
    /// Latest `window_start`, same forms; a month or a day alone covers all of it.
    pub to: Option<String>,
}

/// An item the reader did not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Index into the items given.
    pub index: u32,
    /// Why, in words.
    pub reason: String,
}

/// Why a question cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderError {
    /// A query time is not one of the accepted forms.
    BadTime {
        /// `from` or `to`.
        field: String,
        /// The value.
        value: String,
    },
    /// A month count outside 1..=1200.
    BadMonths(u32),
    /// The clock's month (or the period's first month) is outside years 1..=9999.
    ClockOutOfRange(i64),
    /// A sum does not fit 128 bits.
    Overflow {
        /// The counter.
        counter: String,
    },
}

impl ReaderError {
    /// The WIT variant case name.
    pub fn kind(&self) -> &'static str {
        match self {
            ReaderError::BadTime { .. } => "bad-time",
            ReaderError::BadMonths(_) => "bad-months",
            ReaderError::ClockOutOfRange(_) => "clock-out-of-range",
            ReaderError::Overflow { .. } => "overflow",
        }
    }
}

impl fmt::Display for ReaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderError::BadTime { field, value } => write!(
                f,
                "{field} = {value:?} is not a time: use YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC, years 0001 to 9999)"
            ),
            ReaderError::BadMonths(n) => write!(f, "months = {n}: use 1 to 1200"),
            ReaderError::ClockOutOfRange(ms) => {
                write!(f, "now = {ms} ms: the period it ends falls outside years 0001 to 9999")
            }
            ReaderError::Overflow { counter } => write!(f, "the sum of counter {counter} does not fit 128 bits"),
        }
    }
}

/// Rows matching a query, newest first, and the items left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rows {
    /// Rows: `window_start` descending, then namespace, entity, resource, window.
    pub rows: Vec<Row>,
    /// Items that are not readable snapshot items (items that are, but do not match the
    /// query, are neither rows nor skipped).
    pub skipped: Vec<Skipped>,
}

/// Totals of one (namespace, entity, resource, window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Namespace id.
    pub namespace: String,
    /// Entity.
    pub entity: String,
    /// Resource.
    pub resource: String,
    /// Window.
    pub window: Window,
    /// Items summed.
    pub snapshots: u32,
    /// Earliest `window_start`.
    pub first_window_start: String,
    /// Latest `window_start`.
    pub last_window_start: String,
    /// Sums by counter.
    pub totals: Counters,
    /// Sum of `total_events`.
    pub total_events: i128,
    /// Each total divided by `snapshots` (see [`decimal`]).
    pub averages: BTreeMap<String, String>,
}

/// Summaries and the items left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summaries {
    /// One per (namespace, entity, resource, window), in that order.
    pub summaries: Vec<Summary>,
    /// As in [`Rows`].
    pub skipped: Vec<Skipped>,
}

/// The last N complete calendar months before the clock's month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Monthly window keys, oldest first.
    pub months: Vec<String>,
    /// The first month's key: the period's first `window_start`.
    pub from: String,
    /// The clock's month key: the period ends just before it (exclusive).
    pub until: String,
}

/// The average of one (namespace, entity, resource) over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAverage {
    /// Namespace id.
    pub namespace: String,
    /// Entity.
    pub entity: String,
    /// Resource.
    pub resource: String,
    /// The window whose items answered.
    pub window: Window,
    /// Whether that window is known to cover the whole period (docs/reading.md#average):
    /// `false` after a monthly-keys read that missed a month (the host then reads the period's
    /// range and asks again), or when no window covers every item found.
    pub complete: bool,
    /// Items of that window summed.
    pub items: u32,
    /// Sums by counter.
    pub totals: Counters,
    /// Sum of `total_events`.
    pub total_events: i128,
    /// Each total divided by the number of months (see [`decimal`]).
    pub averages: BTreeMap<String, String>,
}

/// Averages over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyAverage {
    /// The period.
    pub period: Period,
    /// One per (namespace, entity, resource) with items in the period and matching the query.
    pub resources: Vec<ResourceAverage>,
    /// As in [`Rows`].
    pub skipped: Vec<Skipped>,
}

/// Read one item (a DynamoDB JSON map). `Err` says why it is not a readable snapshot item.
pub fn read_item(text: &str) -> Result<Row, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(item) = value else { return Err("not a JSON object".into()) };
    let pk = string_attr(&item, "PK")?.ok_or("no PK")?;
    let sk = string_attr(&item, "SK")?.ok_or("no SK")?;
    let Some((namespace, entity)) = pk.split_once("/ENTITY#") else {
        return Err(format!("PK {pk:?} is not a namespaced entity partition ({{ns}}/ENTITY#{{entity}})"));
    };
    if namespace.contains('/') || entity.is_empty() {
        return Err(format!("PK {pk:?} is not a namespaced entity partition ({{ns}}/ENTITY#{{entity}})"));
    }
    let rest = sk.strip_prefix("#USAGE#").ok_or_else(|| format!("SK {sk:?} is not a usage snapshot"))?;
    let attr_window = match string_attr(&item, "window")? {
        None => None,
        Some(w) => Some(Window::parse(w).ok_or_else(|| format!("window attribute {w:?} is not a window"))?),
    };
    let (rest, layout, window) = match rest.rsplit_once('#') {
        Some((head, "daily")) => (head, Layout::Suffixed, Window::Daily),
        Some((head, "monthly")) => (head, Layout::Suffixed, Window::Monthly),
        _ => (rest, Layout::Unsuffixed, attr_window.unwrap_or(Window::Hourly)),
    };
    if layout == Layout::Suffixed && attr_window.is_some_and(|w| w != window) {
        let attr = attr_window.map_or("", Window::name);
        return Err(format!("SK {sk:?} names the {window} window but its window attribute says {attr}"));
    }
    let (resource, key) = rest.rsplit_once('#').ok_or_else(|| format!("SK {sk:?} has no window key"))?;
    if resource.is_empty() {
        return Err(format!("SK {sk:?} has no resource"));
    }
    if !is_window_key(window, key) {
        return Err(format!("SK {sk:?}: {key:?} is not the start of a {window} window"));
    }
    let mut counters = Counters::new();
    let mut total_events = 0;
    for (name, av) in &item {
        if name.starts_with(WATERMARK_PREFIX) {
            continue;
        }
        let Some(n) = av.get("N") else { continue };
        let Some(n) = n.as_str() else { return Err(format!("{name} is not DynamoDB JSON (N must be a string)")) };
        if name == "total_events" {
            total_events = integer(n).ok_or_else(|| format!("total_events holds {n}, not an integer"))?;
        } else if !RESERVED.contains(&name.as_str()) {
            let v = integer(n).ok_or_else(|| format!("counter {name} holds {n}, not an integer"))?;
            counters.insert(name.clone(), v);
        }
    }
    Ok(Row {
        namespace: namespace.to_string(),
        entity: entity.to_string(),
        resource: resource.to_string(),
        window,
        window_start: key.to_string(),
        layout,
        counters,
        total_events,
    })
}

fn string_attr<'a>(item: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(av) => match av.get("S").and_then(Value::as_str) {
            Some(s) => Ok(Some(s)),
            None => Err(format!("{name} is not a string attribute")),
        },
    }
}

/// A DynamoDB N that is a whole number within 128 bits (`-`, digits; no exponent).
fn integer(n: &str) -> Option<i128> {
    let digits = n.strip_prefix('-').unwrap_or(n);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Whether `key` is the start key of a `window` (docs/specification.md#windows).
pub fn is_window_key(window: Window, key: &str) -> bool {
    let Some(dt) = parse_key(key) else { return false };
    match window {
        Window::Hourly => dt.minute == 0 && dt.second == 0,
        Window::Daily => dt.hour == 0 && dt.minute == 0 && dt.second == 0,
        Window::Monthly => dt.day == 1 && dt.hour == 0 && dt.minute == 0 && dt.second == 0,
    }
}

/// A query time as a `YYYY-MM-DDTHH:MM:SSZ` bound: a month or a day alone is its first second
/// for `from`, its last for `to` (string order is time order for years 0001 to 9999).
pub fn bound(field: &str, value: &str, end: bool) -> Result<String, ReaderError> {
    let bad = || ReaderError::BadTime { field: field.to_string(), value: value.to_string() };
    let full = match value.len() {
        7 => format!("{value}-01T00:00:00Z"),
        10 => format!("{value}T00:00:00Z"),
        20 => value.to_string(),
        _ => return Err(bad()),
    };
    let dt = parse_key(&full).ok_or_else(bad)?;
    if !end {
        return Ok(full);
    }
    Ok(match value.len() {
        7 => format_iso(&DateTime { day: days_in(dt.year, dt.month), hour: 23, minute: 59, second: 59, ..dt }),
        10 => format_iso(&DateTime { hour: 23, minute: 59, second: 59, ..dt }),
        _ => full,
    })
}

fn days_in(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

struct Filter {
    q: Query,
    from: Option<String>,
    to: Option<String>,
}

impl Filter {
    fn new(q: &Query) -> Result<Self, ReaderError> {
        Ok(Filter {
            q: q.clone(),
            from: q.from.as_deref().map(|v| bound("from", v, false)).transpose()?,
            to: q.to.as_deref().map(|v| bound("to", v, true)).transpose()?,
        })
    }

    fn matches(&self, r: &Row) -> bool {
        let q = &self.q;
        q.namespace.as_ref().is_none_or(|n| *n == r.namespace)
            && q.entity.as_ref().is_none_or(|e| *e == r.entity)
            && q.resource.as_ref().is_none_or(|x| *x == r.resource)
            && q.window.is_none_or(|w| w == r.window)
            && self.from.as_ref().is_none_or(|f| r.window_start >= *f)
            && self.to.as_ref().is_none_or(|t| r.window_start <= *t)
    }
}

/// Read every item; readable ones in `rows` (unfiltered, in item order), others skipped.
fn read_all(items: &[String]) -> (Vec<Row>, Vec<Skipped>) {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for (i, text) in items.iter().enumerate() {
        match read_item(text) {
            Ok(r) => rows.push(r),
            Err(reason) => skipped.push(Skipped { index: i as u32, reason }),
        }
    }
    (rows, skipped)
}

/// The rows of the items that match `q`, newest first.
pub fn rows(items: &[String], q: &Query) -> Result<Rows, ReaderError> {
    let filter = Filter::new(q)?;
    let (all, skipped) = read_all(items);
    let mut rows: Vec<Row> = all.into_iter().filter(|r| filter.matches(r)).collect();
    rows.sort_by(|a, b| {
        b.window_start.cmp(&a.window_start).then_with(|| {
            (&a.namespace, &a.entity, &a.resource, a.window).cmp(&(&b.namespace, &b.entity, &b.resource, b.window))
        })
    });
    Ok(Rows { rows, skipped })
}

fn add_counters(into: &mut Counters, from: &Counters) -> Result<(), ReaderError> {
    for (name, v) in from {
        let slot = into.entry(name.clone()).or_insert(0);
        *slot = slot.checked_add(*v).ok_or_else(|| ReaderError::Overflow { counter: name.clone() })?;
    }
    Ok(())
}

fn averages(totals: &Counters, divisor: u32) -> BTreeMap<String, String> {
    totals.iter().map(|(n, v)| (n.clone(), decimal(*v, divisor))).collect()
}

/// `value / divisor` in decimal with exactly two decimals, rounded half away from zero
/// (`divisor` 0 gives `"0.00"`).
pub fn decimal(value: i128, divisor: u32) -> String {
    if divisor == 0 {
        return "0.00".into();
    }
    let n = u128::from(divisor);
    let a = value.unsigned_abs();
    let (mut whole, rest) = (a / n, a % n);
    // rest < n <= u32::MAX, so rest * 200 + n fits easily.
    let mut cents = (rest * 200 + n) / (2 * n);
    if cents == 100 {
        whole += 1;
        cents = 0;
    }
    let sign = if value < 0 && (whole > 0 || cents > 0) { "-" } else { "" };
    format!("{sign}{whole}.{cents:02}")
}

/// Totals per (namespace, entity, resource, window) of the items that match `q`.
pub fn summaries(items: &[String], q: &Query) -> Result<Summaries, ReaderError> {
    let Rows { rows, skipped } = rows(items, q)?;
    let mut groups: BTreeMap<(String, String, String, Window), Summary> = BTreeMap::new();
    for r in rows {
        let key = (r.namespace.clone(), r.entity.clone(), r.resource.clone(), r.window);
        let s = groups.entry(key).or_insert_with(|| Summary {
            namespace: r.namespace.clone(),
            entity: r.entity.clone(),
            resource: r.resource.clone(),
            window: r.window,
            snapshots: 0,
            first_window_start: r.window_start.clone(),
            last_window_start: r.window_start.clone(),
            totals: Counters::new(),
            total_events: 0,
            averages: BTreeMap::new(),
        });
        s.snapshots += 1;
        if r.window_start < s.first_window_start {
            s.first_window_start = r.window_start.clone();
        }
        if r.window_start > s.last_window_start {
            s.last_window_start = r.window_start.clone();
        }
        add_counters(&mut s.totals, &r.counters)?;
        s.total_events = s
            .total_events
            .checked_add(r.total_events)
            .ok_or_else(|| ReaderError::Overflow { counter: "total_events".into() })?;
    }
    let summaries = groups
        .into_values()
        .map(|mut s| {
            s.averages = averages(&s.totals, s.snapshots);
            s
        })
        .collect();
    Ok(Summaries { summaries, skipped })
}

/// The last `months` complete calendar months before the month of `now_ms`.
pub fn period(months: u32, now_ms: i64) -> Result<Period, ReaderError> {
    if !(1..=1200).contains(&months) {
        return Err(ReaderError::BadMonths(months));
    }
    let until = window_key(Window::Monthly, now_ms).map_err(|_| ReaderError::ClockOutOfRange(now_ms))?;
    let now = from_epoch_ms(now_ms);
    let index = now.year * 12 + i64::from(now.month) - 1;
    let mut keys = Vec::with_capacity(months as usize);
    for back in (1..=i64::from(months)).rev() {
        let m = index - back;
        let year = m.div_euclid(12);
        if year < 1 {
            return Err(ReaderError::ClockOutOfRange(now_ms));
        }
        let month = m.rem_euclid(12) as u32 + 1;
        keys.push(format_iso(&DateTime { year, month, day: 1, hour: 0, minute: 0, second: 0 }));
    }
    Ok(Period { from: keys[0].clone(), months: keys, until })
}

/// The average monthly usage over the last `months` complete months, per (namespace, entity,
/// resource) matching `q` (its `window`, `from` and `to` are ignored: the period decides).
///
/// `whole_period`: the items are every snapshot item of the period (a key-range read), not
/// only the monthly items. Per resource, the answering window is the coarsest one that covers
/// every item found (docs/reading.md#average): monthly when each month of the period has its
/// monthly item, or (given the whole period) when every month with any finer item has one;
/// else daily when every day with an hourly item, and every month with a monthly item, has a
/// daily item; else hourly (then `complete` only if every coarser item's period has hourly
/// items).
pub fn monthly_average(
    items: &[String],
    q: &Query,
    months: u32,
    now_ms: i64,
    whole_period: bool,
) -> Result<MonthlyAverage, ReaderError> {
    let period = period(months, now_ms)?;
    let filter = Filter::new(&Query { window: None, from: None, to: None, ..q.clone() })?;
    let (all, skipped) = read_all(items);
    let mut groups: BTreeMap<(String, String, String), Vec<Row>> = BTreeMap::new();
    for r in all {
        if filter.matches(&r) && r.window_start >= period.from && r.window_start < period.until {
            groups.entry((r.namespace.clone(), r.entity.clone(), r.resource.clone())).or_default().push(r);
        }
    }
    let mut resources = Vec::with_capacity(groups.len());
    for ((namespace, entity, resource), rows) in groups {
        let (window, complete) = choose(&rows, &period, whole_period);
        let mut totals = Counters::new();
        let mut total_events: i128 = 0;
        let mut n = 0u32;
        for r in rows.iter().filter(|r| r.window == window) {
            n += 1;
            add_counters(&mut totals, &r.counters)?;
            total_events = total_events
                .checked_add(r.total_events)
                .ok_or_else(|| ReaderError::Overflow { counter: "total_events".into() })?;
        }
        resources.push(ResourceAverage {
            namespace,
            entity,
            resource,
            window,
            complete,
            items: n,
            averages: averages(&totals, months),
            totals,
            total_events,
        });
    }
    Ok(MonthlyAverage { period, resources, skipped })
}

/// The window that answers for one resource's rows, and whether it is known complete.
fn choose(rows: &[Row], period: &Period, whole_period: bool) -> (Window, bool) {
    let month_of = |k: &str| format!("{}-01T00:00:00Z", &k[..7]);
    let day_of = |k: &str| format!("{}T00:00:00Z", &k[..10]);
    let keys = |w: Window| -> BTreeSet<&str> {
        rows.iter().filter(|r| r.window == w).map(|r| r.window_start.as_str()).collect()
    };
    let (hourly, daily, monthly) = (keys(Window::Hourly), keys(Window::Daily), keys(Window::Monthly));
    if period.months.iter().all(|m| monthly.contains(m.as_str())) {
        return (Window::Monthly, true);
    }
    if !whole_period {
        return (Window::Monthly, false);
    }
    let finer_months: BTreeSet<String> = hourly.iter().chain(&daily).map(|k| month_of(k)).collect();
    if finer_months.iter().all(|m| monthly.contains(m.as_str())) {
        return (Window::Monthly, true);
    }
    let daily_covers = hourly.iter().all(|h| daily.contains(day_of(h).as_str()))
        && monthly.iter().all(|m| daily.iter().any(|d| month_of(d) == *m));
    if daily_covers {
        return (Window::Daily, true);
    }
    let hourly_covers = daily.iter().all(|d| hourly.iter().any(|h| day_of(h) == *d))
        && monthly.iter().all(|m| hourly.iter().any(|h| month_of(h) == *m));
    (Window::Hourly, hourly_covers)
}

// ---------------------------------------------------------------------------
// Canonical JSON (tests/conformance/README.md#reader-vectors)
// ---------------------------------------------------------------------------

fn write_counters(out: &mut String, c: &Counters) {
    out.push('{');
    for (i, (n, v)) in c.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, n);
        out.push_str(&format!(":\"{v}\""));
    }
    out.push('}');
}

fn write_decimals(out: &mut String, c: &BTreeMap<String, String>) {
    out.push('{');
    for (i, (n, v)) in c.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, n);
        out.push(':');
        write_json_str(out, v);
    }
    out.push('}');
}

fn write_skipped(out: &mut String, s: &[Skipped]) {
    out.push_str(",\"skipped\":[");
    for (i, s) in s.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{{\"index\":{},\"reason\":", s.index));
        write_json_str(out, &s.reason);
        out.push('}');
    }
    out.push(']');
}

fn write_key(out: &mut String, namespace: &str, entity: &str, resource: &str) {
    out.push_str("\"namespace\":");
    write_json_str(out, namespace);
    out.push_str(",\"entity\":");
    write_json_str(out, entity);
    out.push_str(",\"resource\":");
    write_json_str(out, resource);
}

/// `{"rows":[...],"skipped":[...]}`.
pub fn rows_json(r: &Rows) -> String {
    let mut out = String::from("{\"rows\":[");
    for (i, row) in r.rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        write_key(&mut out, &row.namespace, &row.entity, &row.resource);
        out.push_str(&format!(
            ",\"window\":\"{}\",\"window_start\":\"{}\",\"layout\":\"{}\",\"counters\":",
            row.window,
            row.window_start,
            row.layout.name()
        ));
        write_counters(&mut out, &row.counters);
        out.push_str(&format!(",\"total_events\":\"{}\"}}", row.total_events));
    }
    out.push(']');
    write_skipped(&mut out, &r.skipped);
    out.push('}');
    out
}

/// `{"summaries":[...],"skipped":[...]}`.
pub fn summaries_json(s: &Summaries) -> String {
    let mut out = String::from("{\"summaries\":[");
    for (i, x) in s.summaries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        write_key(&mut out, &x.namespace, &x.entity, &x.resource);
        out.push_str(&format!(
            ",\"window\":\"{}\",\"snapshots\":{},\"first_window_start\":\"{}\",\"last_window_start\":\"{}\",\"totals\":",
            x.window, x.snapshots, x.first_window_start, x.last_window_start
        ));
        write_counters(&mut out, &x.totals);
        out.push_str(&format!(",\"total_events\":\"{}\",\"averages\":", x.total_events));
        write_decimals(&mut out, &x.averages);
        out.push('}');
    }
    out.push(']');
    write_skipped(&mut out, &s.skipped);
    out.push('}');
    out
}

/// `{"period":{...},"resources":[...],"skipped":[...]}`.
pub fn average_json(a: &MonthlyAverage) -> String {
    let mut out = String::from("{\"period\":");
    out.push_str(&period_json(&a.period));
    out.push_str(",\"resources\":[");
    for (i, x) in a.resources.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        write_key(&mut out, &x.namespace, &x.entity, &x.resource);
        out.push_str(&format!(
            ",\"window\":\"{}\",\"complete\":{},\"items\":{},\"totals\":",
            x.window, x.complete, x.items
        ));
        write_counters(&mut out, &x.totals);
        out.push_str(&format!(",\"total_events\":\"{}\",\"averages\":", x.total_events));
        write_decimals(&mut out, &x.averages);
        out.push('}');
    }
    out.push(']');
    write_skipped(&mut out, &a.skipped);
    out.push('}');
    out
}

/// `{"months":[...],"from":...,"until":...}`.
pub fn period_json(p: &Period) -> String {
    let months: Vec<String> = p.months.iter().map(|m| format!("\"{m}\"")).collect();
    format!("{{\"months\":[{}],\"from\":\"{}\",\"until\":\"{}\"}}", months.join(","), p.from, p.until)
}

/// `{"error":{"kind":...,"message":...}}`.
pub fn reader_error_json(e: &ReaderError) -> String {
    let mut out = format!("{{\"error\":{{\"kind\":\"{}\",\"message\":", e.kind());
    write_json_str(&mut out, &e.to_string());
    out.push_str("}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(pk: &str, sk: &str, window: Option<&str>, extra: &[(&str, &str, &str)]) -> String {
        let mut m = Map::new();
        m.insert("PK".into(), serde_json::json!({"S": pk}));
        m.insert("SK".into(), serde_json::json!({"S": sk}));
        if let Some(w) = window {
            m.insert("window".into(), serde_json::json!({"S": w}));
        }
        for (n, t, v) in extra {
            m.insert((*n).into(), serde_json::json!({ *t: v }));
        }
        Value::Object(m).to_string()
    }

    fn ours(window: Window, key: &str, tpm: i128) -> String {
        let sk = crate::snapshot::snapshot_sk("gpt-4", window, key);
        let tpm = tpm.to_string();
        item(
            "ns1/ENTITY#u1",
            &sk,
            Some(window.name()),
            &[
                ("tpm", "N", &tpm),
                ("total_events", "N", "2"),
                ("wm#0", "S", "0000000000000000000000000000000000000001"),
                ("ttl", "N", "99"),
                ("GSI2PK", "S", "ns1/RESOURCE#gpt-4"),
            ],
        )
    }

    #[test]
    fn reads_every_layout_and_skips_watermarks() {
        let h = read_item(&ours(Window::Hourly, "2024-03-05T10:00:00Z", 7)).unwrap();
        assert_eq!(
            (h.window, h.layout, h.window_start.as_str()),
            (Window::Hourly, Layout::Unsuffixed, "2024-03-05T10:00:00Z")
        );
        assert_eq!(h.counters, Counters::from([("tpm".to_string(), 7)]));
        assert_eq!(h.total_events, 2);
        let d = read_item(&ours(Window::Daily, "2024-03-05T00:00:00Z", 9)).unwrap();
        assert_eq!((d.window, d.layout, d.resource.as_str()), (Window::Daily, Layout::Suffixed, "gpt-4"));
        let m = read_item(&ours(Window::Monthly, "2024-03-01T00:00:00Z", 9)).unwrap();
        assert_eq!((m.window, m.entity.as_str(), m.namespace.as_str()), (Window::Monthly, "u1", "ns1"));
        // Upstream's daily item: no suffix, window attribute.
        let up =
            read_item(&item("ns1/ENTITY#u1", "#USAGE#gpt-4#2024-03-05T00:00:00Z", Some("daily"), &[("rpm", "N", "3")]))
                .unwrap();
        assert_eq!((up.window, up.layout), (Window::Daily, Layout::Unsuffixed));
        // 0.17's overdraw counter is a counter; a numeric watermark is still skipped.
        let od = read_item(&item(
            "ns1/ENTITY#u1",
            "#USAGE#r#2024-03-05T01:00:00Z",
            None,
            &[("tpm#od", "N", "1"), ("wm#3", "N", "5")],
        ))
        .unwrap();
        assert_eq!(od.counters, Counters::from([("tpm#od".to_string(), 1)]));
    }

    #[test]
    fn unreadable_items_say_why() {
        for (text, why) in [
            ("{", "not JSON"),
            ("[]", "not a JSON object"),
            (&item("ns1/BUCKET#u1#r#0", "#STATE", None, &[]) as &str, "not a namespaced entity partition"),
            (&item("ns1/ENTITY#u1", "#BUCKET#r", None, &[]), "is not a usage snapshot"),
            (&item("ns1/ENTITY#u1", "#USAGE#r#2024-03-05T10:30:00Z", None, &[]), "is not the start of a hourly window"),
            (
                &item("ns1/ENTITY#u1", "#USAGE#r#2024-03-05T00:00:00Z#monthly", None, &[]),
                "is not the start of a monthly window",
            ),
            (
                &item("ns1/ENTITY#u1", "#USAGE#r#2024-03-05T10:00:00Z", None, &[("tpm", "N", "1.5")]),
                "counter tpm holds 1.5",
            ),
            (
                &item("ns1/ENTITY#u1", "#USAGE#r#2024-03-05T00:00:00Z#daily", Some("hourly"), &[]),
                "its window attribute says hourly",
            ),
        ] {
            let e = read_item(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn rows_filter_and_order_newest_first() {
        let items = vec![
            ours(Window::Hourly, "2024-03-05T10:00:00Z", 1),
            ours(Window::Hourly, "2024-03-06T10:00:00Z", 2),
            ours(Window::Daily, "2024-03-05T00:00:00Z", 1),
            "garbage".to_string(),
        ];
        let r = rows(&items, &Query { window: Some(Window::Hourly), ..Query::default() }).unwrap();
        assert_eq!(
            r.rows.iter().map(|r| r.window_start.as_str()).collect::<Vec<_>>(),
            ["2024-03-06T10:00:00Z", "2024-03-05T10:00:00Z"]
        );
        assert_eq!(r.skipped.len(), 1);
        assert_eq!(r.skipped[0].index, 3);
        let r = rows(&items, &Query { to: Some("2024-03-05".into()), ..Query::default() }).unwrap();
        assert_eq!(r.rows.len(), 2, "a day alone as `to` covers the whole day");
        let r = rows(&items, &Query { from: Some("2024-03-06".into()), entity: Some("u1".into()), ..Query::default() })
            .unwrap();
        assert_eq!(r.rows.len(), 1);
        assert_eq!(rows(&items, &Query { entity: Some("u2".into()), ..Query::default() }).unwrap().rows.len(), 0);
        let e = rows(&items, &Query { from: Some("2024-3-5".into()), ..Query::default() }).unwrap_err();
        assert_eq!(e.kind(), "bad-time");
        assert!(e.to_string().contains("\"2024-3-5\""));
    }

    #[test]
    fn bounds() {
        assert_eq!(bound("to", "2024-02", true).unwrap(), "2024-02-29T23:59:59Z");
        assert_eq!(bound("to", "2023-02", true).unwrap(), "2023-02-28T23:59:59Z");
        assert_eq!(bound("from", "2023-02", false).unwrap(), "2023-02-01T00:00:00Z");
        assert!(bound("from", "2023-13", false).is_err());
        assert!(bound("from", "2023-02-30", false).is_err());
    }

    #[test]
    fn summaries_total_and_average() {
        let items = vec![
            ours(Window::Hourly, "2024-03-05T10:00:00Z", 10),
            ours(Window::Hourly, "2024-03-05T11:00:00Z", 5),
            ours(Window::Daily, "2024-03-05T00:00:00Z", 15),
        ];
        let s = summaries(&items, &Query::default()).unwrap();
        assert_eq!(s.summaries.len(), 2);
        let h = &s.summaries[0];
        assert_eq!((h.window, h.snapshots, h.totals["tpm"], h.total_events), (Window::Hourly, 2, 15, 4));
        assert_eq!(h.averages["tpm"], "7.50");
        assert_eq!(
            (h.first_window_start.as_str(), h.last_window_start.as_str()),
            ("2024-03-05T10:00:00Z", "2024-03-05T11:00:00Z")
        );
    }

    #[test]
    fn decimals_round_half_away_from_zero() {
        for (v, d, want) in [
            (15, 2, "7.50"),
            (1, 3, "0.33"),
            (2, 3, "0.67"),
            (-2, 3, "-0.67"),
            (0, 7, "0.00"),
            (-1, 1000, "0.00"),
            (199_999, 200_000, "1.00"),
            (i128::MAX, 1, "170141183460469231731687303715884105727.00"),
            (i128::MIN, 1, "-170141183460469231731687303715884105728.00"),
        ] {
            assert_eq!(decimal(v, d), want, "{v}/{d}");
        }
    }

    #[test]
    fn period_is_the_last_complete_months() {
        // 2024-03-15T12:00:00Z
        let p = period(3, 1_710_504_000_000).unwrap();
        assert_eq!(p.months, ["2023-12-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"]);
        assert_eq!((p.from.as_str(), p.until.as_str()), ("2023-12-01T00:00:00Z", "2024-03-01T00:00:00Z"));
        assert_eq!(period(0, 0).unwrap_err(), ReaderError::BadMonths(0));
        assert_eq!(period(1201, 0).unwrap_err(), ReaderError::BadMonths(1201));
        // January of year 1 has no complete month before it.
        assert_eq!(period(1, -62_135_596_800_000).unwrap_err().kind(), "clock-out-of-range");
    }

    const NOW: i64 = 1_710_504_000_000; // 2024-03-15T12:00:00Z

    #[test]
    fn average_from_monthly_when_every_month_has_its_item() {
        let items: Vec<String> = ["2023-12", "2024-01", "2024-02", "2024-03"]
            .iter()
            .enumerate()
            .map(|(i, m)| ours(Window::Monthly, &format!("{m}-01T00:00:00Z"), 100 * (i as i128 + 1)))
            .collect();
        let a = monthly_average(&items, &Query::default(), 3, NOW, false).unwrap();
        assert_eq!(a.resources.len(), 1);
        let r = &a.resources[0];
        assert_eq!((r.window, r.complete, r.items, r.totals["tpm"]), (Window::Monthly, true, 3, 600));
        assert_eq!(r.averages["tpm"], "200.00");
        // One month missing: from keys alone the answer is not known complete.
        let a = monthly_average(&items[1..], &Query::default(), 3, NOW, false).unwrap();
        assert!(!a.resources[0].complete);
    }

    #[test]
    fn average_falls_back_to_daily_then_hourly() {
        let mut items = vec![
            ours(Window::Monthly, "2024-02-01T00:00:00Z", 5),
            ours(Window::Daily, "2024-02-10T00:00:00Z", 5),
            ours(Window::Daily, "2024-01-10T00:00:00Z", 7),
            ours(Window::Hourly, "2024-01-10T03:00:00Z", 7),
        ];
        // January has a daily item but no monthly one: daily answers.
        let a = monthly_average(&items, &Query::default(), 3, NOW, true).unwrap();
        let r = &a.resources[0];
        assert_eq!((r.window, r.complete, r.items, r.totals["tpm"]), (Window::Daily, true, 2, 12));
        assert_eq!(r.averages["tpm"], "4.00");
        // An hour whose day has no daily item: hourly answers, incomplete (the daily items'
        // days of February have no hourly items).
        items.push(ours(Window::Hourly, "2023-12-24T03:00:00Z", 1));
        let r = &monthly_average(&items, &Query::default(), 3, NOW, true).unwrap().resources[0];
        assert_eq!((r.window, r.complete, r.totals["tpm"]), (Window::Hourly, false, 8));
        // Monthly covers when each month with finer items has its monthly item.
        let items =
            vec![ours(Window::Monthly, "2024-02-01T00:00:00Z", 5), ours(Window::Hourly, "2024-02-10T03:00:00Z", 5)];
        let r = &monthly_average(&items, &Query::default(), 3, NOW, true).unwrap().resources[0];
        assert_eq!((r.window, r.complete, r.items), (Window::Monthly, true, 1));
    }

    #[test]
    fn canonical_json_shapes() {
        let items = vec![ours(Window::Hourly, "2024-03-05T10:00:00Z", 1), "x".into()];
        let r = rows(&items, &Query::default()).unwrap();
        let j = rows_json(&r);
        assert!(
            j.starts_with(
                "{\"rows\":[{\"namespace\":\"ns1\",\"entity\":\"u1\",\"resource\":\"gpt-4\",\"window\":\"hourly\""
            ),
            "{j}"
        );
        assert!(
            j.ends_with("\"skipped\":[{\"index\":1,\"reason\":\"not JSON: expected value at line 1 column 1\"}]}"),
            "{j}"
        );
        let _: Value = serde_json::from_str(&j).unwrap();
        let _: Value = serde_json::from_str(&summaries_json(&summaries(&items, &Query::default()).unwrap())).unwrap();
        let _: Value =
            serde_json::from_str(&average_json(&monthly_average(&items, &Query::default(), 2, NOW, true).unwrap()))
                .unwrap();
        assert_eq!(
            reader_error_json(&ReaderError::BadMonths(0)),
            "{\"error\":{\"kind\":\"bad-months\",\"message\":\"months = 0: use 1 to 1200\"}}"
        );
    }

    proptest! {
        /// Summaries add up exactly what rows list, and rows never lose a readable item.
        #[test]
        fn summaries_equal_the_sum_of_rows(values in proptest::collection::vec((0u8..3, 0u32..2000, -1_000_000i64..1_000_000), 0..40)) {
            let items: Vec<String> = values.iter().map(|(w, h, v)| {
                let w = Window::ALL[*w as usize];
                let key = window_key(w, 1_704_067_200_000 + i64::from(*h) * 3_600_000).unwrap();
                ours(w, &key, i128::from(*v))
            }).collect();
            let r = rows(&items, &Query::default()).unwrap();
            prop_assert_eq!(r.rows.len(), items.len());
            prop_assert!(r.rows.windows(2).all(|p| p[0].window_start >= p[1].window_start));
            let s = summaries(&items, &Query::default()).unwrap();
            for w in Window::ALL {
                let want: i128 = r.rows.iter().filter(|x| x.window == w).map(|x| x.counters["tpm"]).sum();
                let got: i128 = s.summaries.iter().filter(|x| x.window == w).map(|x| x.totals["tpm"]).sum();
                prop_assert_eq!(want, got);
            }
        }

        /// The average times the months is the total, to the cent.
        #[test]
        fn decimal_times_divisor_is_the_value(v in any::<i64>(), d in 1u32..10_000) {
            let s = decimal(i128::from(v), d);
            let (whole, cents) = s.trim_start_matches('-').split_once('.').unwrap();
            let scaled: i128 = whole.parse::<i128>().unwrap() * 100 + cents.parse::<i128>().unwrap();
            let exact = i128::from(v).abs() * 100;
            prop_assert!((scaled * i128::from(d) - exact).abs() * 2 <= i128::from(d));
        }
    }
}
