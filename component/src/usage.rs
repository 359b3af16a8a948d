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

use crate::consumption::{self, ConsumptionCheck};
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
pub(crate) fn integer(n: &str) -> Option<i128> {
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

/// A daily or monthly item that does not equal the sum of its finer items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Namespace id.
    pub namespace: String,
    /// Entity.
    pub entity: String,
    /// Resource.
    pub resource: String,
    /// The coarser window (daily or monthly).
    pub window: Window,
    /// Its window key.
    pub window_start: String,
    /// The finer window summed (hourly for daily, daily for monthly).
    pub finer: Window,
    /// Finer items summed.
    pub finer_items: u32,
    /// Whether the coarser item exists (its values are 0 when it does not).
    pub present: bool,
    /// The coarser item's counters.
    pub stored: Counters,
    /// The sums of the finer items' counters.
    pub summed: Counters,
    /// The coarser item's `total_events`.
    pub stored_events: i128,
    /// The sum of the finer items' `total_events`.
    pub summed_events: i128,
}

/// The comparison of each coarser window with the next finer one, and of the hourly items with
/// the bucket items' consumption counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconciliation {
    /// Coarser periods compared (daily with hourly, monthly with daily).
    pub checked: u32,
    /// The periods that differ, by namespace, entity, resource, window and key.
    pub drifts: Vec<Drift>,
    /// The hourly sums against the bucket items' `tc` (docs/reading.md#consumption-bound).
    pub consumption: ConsumptionCheck,
    /// As in [`Rows`].
    pub skipped: Vec<Skipped>,
}

/// The coarser window's key of the period a finer key falls in.
fn period_key(coarse: Window, key: &str) -> String {
    match coarse {
        Window::Monthly => format!("{}-01T00:00:00Z", &key[..7]),
        _ => format!("{}T00:00:00Z", &key[..10]),
    }
}

/// The last second of the period a coarser key starts.
fn period_end(coarse: Window, key: &str) -> String {
    match parse_key(key) {
        Some(dt) if coarse == Window::Monthly => {
            format_iso(&DateTime { day: days_in(dt.year, dt.month), hour: 23, minute: 59, second: 59, ..dt })
        }
        Some(dt) => format_iso(&DateTime { hour: 23, minute: 59, second: 59, ..dt }),
        None => key.to_string(),
    }
}

/// Every daily item against the sum of its hourly items and every monthly item against the
/// sum of its daily items, over the periods where both windows were maintained
/// (docs/reading.md#reconcile). Per namespace, entity and resource, a window is maintained
/// from its first item's period to its last item's; the periods compared are those both spans
/// cover, less a first (last) period where the spans start (end) in different periods (the
/// window that started later, or ended earlier, holds only part of it). `query` selects the
/// items; its `from` and `to` select the coarser periods that lie entirely within them; its
/// `window` (daily or monthly) selects one comparison, `hourly` none.
pub fn reconcile(items: &[String], q: &Query) -> Result<Reconciliation, ReaderError> {
    let filter = Filter::new(&Query { window: None, from: None, to: None, ..q.clone() })?;
    let range = Filter::new(&Query { from: q.from.clone(), to: q.to.clone(), ..Query::default() })?;
    let mut all = Vec::new();
    let mut skipped = Vec::new();
    let mut buckets = Vec::new();
    for (i, text) in items.iter().enumerate() {
        match read_item(text) {
            Ok(r) => all.push(r),
            Err(reason) => match consumption::read_bucket(text) {
                Some(Ok(b)) => buckets.push(b),
                Some(Err(why)) => skipped.push(Skipped { index: i as u32, reason: why }),
                None => skipped.push(Skipped { index: i as u32, reason }),
            },
        }
    }
    let consumption = if q.window.is_none_or(|w| w == Window::Hourly) {
        consumption::check(&all, &buckets, q)?
    } else {
        ConsumptionCheck::default()
    };
    type Key = (String, String, String);
    let mut groups: BTreeMap<Key, Vec<Row>> = BTreeMap::new();
    for r in all.into_iter().filter(|r| filter.matches(r)) {
        groups.entry((r.namespace.clone(), r.entity.clone(), r.resource.clone())).or_default().push(r);
    }
    let mut out = Reconciliation { consumption, skipped, ..Reconciliation::default() };
    let pairs = [(Window::Hourly, Window::Daily), (Window::Daily, Window::Monthly)];
    for ((namespace, entity, resource), rows) in &groups {
        for (finer, coarse) in pairs {
            if q.window.is_some_and(|w| w != coarse) {
                continue;
            }
            let mut stored: BTreeMap<&str, &Row> = BTreeMap::new();
            let mut sums: BTreeMap<String, (u32, Counters, i128)> = BTreeMap::new();
            for r in rows {
                if r.window == coarse {
                    stored.insert(&r.window_start, r);
                } else if r.window == finer {
                    let s = sums.entry(period_key(coarse, &r.window_start)).or_default();
                    s.0 += 1;
                    add_counters(&mut s.1, &r.counters)?;
                    s.2 =
                        s.2.checked_add(r.total_events)
                            .ok_or_else(|| ReaderError::Overflow { counter: "total_events".into() })?;
                }
            }
            let (Some((c_first, _)), Some((c_last, _))) = (stored.first_key_value(), stored.last_key_value()) else {
                continue;
            };
            let (Some((f_first, _)), Some((f_last, _))) = (sums.first_key_value(), sums.last_key_value()) else {
                continue;
            };
            let (c_first, c_last) = (c_first.to_string(), c_last.to_string());
            let (f_first, f_last) = (f_first.clone(), f_last.clone());
            let low = c_first.clone().max(f_first.clone());
            let high = c_last.clone().min(f_last.clone());
            let periods: BTreeSet<String> = stored.keys().map(|k| k.to_string()).chain(sums.keys().cloned()).collect();
            for p in periods {
                let inside =
                    p >= low && p <= high && (c_first == f_first || p != low) && (c_last == f_last || p != high);
                let within = range.from.as_ref().is_none_or(|f| p >= *f)
                    && range.to.as_ref().is_none_or(|t| period_end(coarse, &p) <= *t);
                if !inside || !within {
                    continue;
                }
                out.checked += 1;
                let item = stored.get(p.as_str());
                let (n, summed, summed_events) = sums.remove(&p).unwrap_or_default();
                let kept = item.map(|r| r.counters.clone()).unwrap_or_default();
                let stored_events = item.map_or(0, |r| r.total_events);
                let names: BTreeSet<&String> = kept.keys().chain(summed.keys()).collect();
                let same = stored_events == summed_events
                    && names.iter().all(|n| kept.get(*n).unwrap_or(&0) == summed.get(*n).unwrap_or(&0));
                if !same {
                    out.drifts.push(Drift {
                        namespace: namespace.clone(),
                        entity: entity.clone(),
                        resource: resource.clone(),
                        window: coarse,
                        window_start: p,
                        finer,
                        finer_items: n,
                        present: item.is_some(),
                        stored: kept,
                        summed,
                        stored_events,
                        summed_events,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// How long after its end a period may still receive live records: the stream keeps a record
/// 24 hours and Lambda retries it until then; one hour of margin (docs/reading.md#backfill).
pub const SETTLE_MS: i64 = 25 * 3_600_000;

/// A coarser item built from the finer items of its period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Namespace id.
    pub namespace: String,
    /// Entity.
    pub entity: String,
    /// Resource.
    pub resource: String,
    /// The window built (daily or monthly).
    pub window: Window,
    /// Its window key.
    pub window_start: String,
    /// Finer items summed.
    pub finer_items: u32,
    /// The item, as a DynamoDB JSON map.
    pub item: String,
}

/// What a backfill writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackfillPlan {
    /// Items to put where no item with their key exists, by namespace, entity, resource and key.
    pub items: Vec<Built>,
    /// Periods not built, and why (finer items with a malformed watermark, periods not settled).
    pub held: Vec<String>,
    /// As in [`Rows`].
    pub skipped: Vec<Skipped>,
}

/// The watermarks of an item: every `wm#…` attribute; `Err` names one that is not a 40-digit
/// string (docs/specification.md#watermarks).
fn watermarks(text: &str) -> Result<BTreeMap<String, String>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = BTreeMap::new();
    if let Value::Object(item) = value {
        for (name, av) in item {
            if !name.starts_with(WATERMARK_PREFIX) {
                continue;
            }
            match av.get("S").and_then(Value::as_str) {
                Some(s) if s.len() == 40 && s.bytes().all(|b| b.is_ascii_digit()) => {
                    out.insert(name, s.to_string());
                }
                _ => return Err(format!("watermark {name} holds {av}, not a 40-digit sequence number")),
            }
        }
    }
    Ok(out)
}

/// The `window` items (daily or monthly) built from the next finer window's items among
/// `items` that match `query` (docs/reading.md#backfill): one item per period with finer
/// items, in this aggregator's layout (docs/specification.md#snapshots), its counters and
/// `total_events` the sums of the finer items', each watermark the highest of the finer
/// items' (so a live write of a record already summed fails its watermark condition and is
/// re-planned away), `ttl` = `now_ms // 1000 + ttl_days * 86400`. Only periods that ended at
/// least [`SETTLE_MS`] before `now_ms` are built, and only those entirely within `from` and
/// `to`; a period with a finer item whose watermark is malformed is held, not built.
/// `hourly` has no finer window: nothing is built.
pub fn backfill(
    items: &[String],
    window: Window,
    q: &Query,
    now_ms: i64,
    ttl_days: u32,
) -> Result<BackfillPlan, ReaderError> {
    let finer = match window {
        Window::Hourly => return Ok(BackfillPlan::default()),
        Window::Daily => Window::Hourly,
        Window::Monthly => Window::Daily,
    };
    let filter = Filter::new(&Query { window: None, from: None, to: None, ..q.clone() })?;
    let range = Filter::new(&Query { from: q.from.clone(), to: q.to.clone(), ..Query::default() })?;
    let settled = crate::window::window_key(Window::Hourly, now_ms.saturating_sub(SETTLE_MS))
        .map_err(|_| ReaderError::ClockOutOfRange(now_ms))?;
    let ttl = i128::from(now_ms).div_euclid(1000) + i128::from(ttl_days) * 86_400;
    struct Sum {
        n: u32,
        counters: Counters,
        events: i128,
        marks: BTreeMap<String, String>,
        held: Option<String>,
    }
    let mut out = BackfillPlan::default();
    let mut periods: BTreeMap<(String, String, String, String), Sum> = BTreeMap::new();
    for (i, text) in items.iter().enumerate() {
        let r = match read_item(text) {
            Ok(r) => r,
            Err(reason) => {
                out.skipped.push(Skipped { index: i as u32, reason });
                continue;
            }
        };
        if r.window != finer || !filter.matches(&r) {
            continue;
        }
        let key = (r.namespace.clone(), r.entity.clone(), r.resource.clone(), period_key(window, &r.window_start));
        let s = periods.entry(key).or_insert_with(|| Sum {
            n: 0,
            counters: Counters::new(),
            events: 0,
            marks: BTreeMap::new(),
            held: None,
        });
        s.n += 1;
        add_counters(&mut s.counters, &r.counters)?;
        s.events = s
            .events
            .checked_add(r.total_events)
            .ok_or_else(|| ReaderError::Overflow { counter: "total_events".into() })?;
        match watermarks(text) {
            Ok(marks) => {
                for (name, seq) in marks {
                    let slot = s.marks.entry(name).or_default();
                    if seq > *slot {
                        *slot = seq;
                    }
                }
            }
            Err(why) => s.held = Some(format!("{} {}: {why}", r.window, r.window_start)),
        }
    }
    for ((namespace, entity, resource, key), s) in periods {
        let end = period_end(window, &key);
        let within = range.from.as_ref().is_none_or(|f| key >= *f) && range.to.as_ref().is_none_or(|t| end <= *t);
        if !within {
            continue;
        }
        let name = format!("{namespace}/ENTITY#{entity} {resource} {window} {key}");
        if end >= settled {
            out.held.push(format!("{name}: the period may still receive live records until 25 hours after its end"));
            continue;
        }
        if let Some(why) = s.held {
            out.held.push(format!("{name}: a finer item cannot be read ({why})"));
            continue;
        }
        let mut item = Map::new();
        let mut put = |k: &str, t: &str, v: String| {
            item.insert(k.to_string(), serde_json::json!({ t: v }));
        };
        put("PK", "S", format!("{namespace}/ENTITY#{entity}"));
        put("SK", "S", crate::snapshot::snapshot_sk(&resource, window, &key));
        put("entity_id", "S", entity.clone());
        put("resource", "S", resource.clone());
        put("window", "S", window.name().to_string());
        put("window_start", "S", key.clone());
        put("GSI2PK", "S", format!("{namespace}/RESOURCE#{resource}"));
        put("GSI2SK", "S", format!("USAGE#{key}#{entity}"));
        put("GSI4PK", "S", namespace.clone());
        put("GSI4SK", "S", format!("{namespace}/ENTITY#{entity}"));
        put("ttl", "N", ttl.to_string());
        put("total_events", "N", s.events.to_string());
        for (c, v) in &s.counters {
            put(c, "N", v.to_string());
        }
        for (m, seq) in &s.marks {
            put(m, "S", seq.clone());
        }
        out.items.push(Built {
            namespace,
            entity,
            resource,
            window,
            window_start: key,
            finer_items: s.n,
            item: Value::Object(item).to_string(),
        });
    }
    Ok(out)
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

/// `{"checked":N,"drifts":[...],"consumption":{"checked":N,"unchecked":N,"exceeding":[...]},"skipped":[...]}`.
pub fn reconciliation_json(r: &Reconciliation) -> String {
    let mut out = format!("{{\"checked\":{},\"drifts\":[", r.checked);
    for (i, d) in r.drifts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        write_key(&mut out, &d.namespace, &d.entity, &d.resource);
        out.push_str(&format!(
            ",\"window\":\"{}\",\"window_start\":\"{}\",\"finer\":\"{}\",\"finer_items\":{},\"present\":{},\"stored\":",
            d.window, d.window_start, d.finer, d.finer_items, d.present
        ));
        write_counters(&mut out, &d.stored);
        out.push_str(",\"summed\":");
        write_counters(&mut out, &d.summed);
        out.push_str(&format!(
            ",\"stored_events\":\"{}\",\"summed_events\":\"{}\"}}",
            d.stored_events, d.summed_events
        ));
    }
    let c = &r.consumption;
    out.push_str(&format!(
        "],\"consumption\":{{\"checked\":{},\"unchecked\":{},\"exceeding\":[",
        c.checked, c.unchecked
    ));
    for (i, e) in c.exceeding.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        write_key(&mut out, &e.namespace, &e.entity, &e.resource);
        out.push_str(",\"limit\":");
        write_json_str(&mut out, &e.limit);
        out.push_str(&format!(
            ",\"hourly_items\":{},\"hourly_tokens\":\"{}\",\"shards\":{},\"consumed_millitokens\":\"{}\"}}",
            e.hourly_items, e.hourly_tokens, e.shards, e.consumed_millitokens
        ));
    }
    out.push_str("]}");
    write_skipped(&mut out, &r.skipped);
    out.push('}');
    out
}

/// `{"items":[...],"held":[...],"skipped":[...]}` (each item's DynamoDB JSON as a string).
pub fn backfill_json(p: &BackfillPlan) -> String {
    let mut out = String::from("{\"items\":[");
    for (i, b) in p.items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        write_key(&mut out, &b.namespace, &b.entity, &b.resource);
        out.push_str(&format!(
            ",\"window\":\"{}\",\"window_start\":\"{}\",\"finer_items\":{},\"item\":",
            b.window, b.window_start, b.finer_items
        ));
        write_json_str(&mut out, &b.item);
        out.push('}');
    }
    out.push_str("],\"held\":[");
    for (i, h) in p.held.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(&mut out, h);
    }
    out.push(']');
    write_skipped(&mut out, &p.skipped);
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

    /// A snapshot item whose `total_events` is its `tpm` (so sums of both agree).
    fn snap(window: Window, key: &str, tpm: i128) -> String {
        let sk = crate::snapshot::snapshot_sk("gpt-4", window, key);
        let tpm = tpm.to_string();
        item("ns1/ENTITY#u1", &sk, Some(window.name()), &[("tpm", "N", &tpm), ("total_events", "N", &tpm)])
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

    #[test]
    fn reconcile_finds_each_drift_inside_the_maintained_span() {
        let mut items = vec![
            snap(Window::Hourly, "2024-03-05T10:00:00Z", 10),
            snap(Window::Hourly, "2024-03-05T11:00:00Z", 5),
            snap(Window::Daily, "2024-03-05T00:00:00Z", 15),
            snap(Window::Hourly, "2024-03-06T10:00:00Z", 4),
            snap(Window::Daily, "2024-03-06T00:00:00Z", 4),
            snap(Window::Hourly, "2024-03-07T10:00:00Z", 1),
            snap(Window::Daily, "2024-03-07T00:00:00Z", 1),
            snap(Window::Monthly, "2024-03-01T00:00:00Z", 20),
        ];
        let r = reconcile(&items, &Query::default()).unwrap();
        assert_eq!((r.checked, r.drifts.len()), (4, 0), "{r:?}");
        // An hourly item edited: its day drifts (both values), and the month does not.
        items[3] = snap(Window::Hourly, "2024-03-06T10:00:00Z", 7);
        let r = reconcile(&items, &Query::default()).unwrap();
        assert_eq!(r.drifts.len(), 1);
        let d = &r.drifts[0];
        assert_eq!((d.window, d.window_start.as_str(), d.present), (Window::Daily, "2024-03-06T00:00:00Z", true));
        assert_eq!((d.stored["tpm"], d.summed["tpm"], d.finer_items), (4, 7, 1));
        // A daily item missing inside the span: a drift with the item absent; the month's
        // daily sum now misses it too.
        items[3] = snap(Window::Hourly, "2024-03-06T10:00:00Z", 4);
        items.remove(4);
        let r = reconcile(&items, &Query::default()).unwrap();
        let kinds: Vec<(Window, bool)> = r.drifts.iter().map(|d| (d.window, d.present)).collect();
        assert_eq!(kinds, [(Window::Daily, false), (Window::Monthly, true)], "{r:?}");
        assert_eq!(r.drifts[0].summed["tpm"], 4);
        // Only the daily comparison, and only periods entirely inside the range.
        let q = Query { window: Some(Window::Daily), to: Some("2024-03-05".into()), ..Query::default() };
        let r = reconcile(&items, &q).unwrap();
        assert_eq!((r.checked, r.drifts.len()), (1, 0));
    }

    #[test]
    fn reconcile_skips_a_window_switched_on_mid_period() {
        // Daily starts on the 6th while hourly ran since the 5th: the 6th may be partial
        // and is not compared; the 7th is.
        let items = vec![
            snap(Window::Hourly, "2024-03-05T10:00:00Z", 10),
            snap(Window::Hourly, "2024-03-06T01:00:00Z", 3),
            snap(Window::Hourly, "2024-03-06T10:00:00Z", 4),
            snap(Window::Daily, "2024-03-06T00:00:00Z", 4),
            snap(Window::Hourly, "2024-03-07T10:00:00Z", 1),
            snap(Window::Daily, "2024-03-07T00:00:00Z", 2),
        ];
        let r = reconcile(&items, &Query::default()).unwrap();
        assert_eq!(r.checked, 1);
        assert_eq!(r.drifts.len(), 1);
        assert_eq!((r.drifts[0].window_start.as_str(), r.drifts[0].stored["tpm"]), ("2024-03-07T00:00:00Z", 2));
        let j = reconciliation_json(&r);
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["drifts"][0]["summed"]["tpm"], "1");
        assert_eq!(v["checked"], 1);
    }

    #[test]
    fn backfill_sums_the_finer_items_and_keeps_the_highest_watermarks() {
        let wm = |n: u64| format!("{n:040}");
        let hourly = |key: &str, tpm: &str, marks: &[(&str, String)]| {
            let mut extra: Vec<(&str, &str, &str)> = vec![("tpm", "N", tpm), ("total_events", "N", "2")];
            for (m, v) in marks {
                extra.push((m, "S", v));
            }
            item("ns1/ENTITY#u1", &format!("#USAGE#r#{key}"), Some("hourly"), &extra)
        };
        let items = vec![
            hourly("2024-03-05T10:00:00Z", "10", &[("wm#0", wm(5)), ("wm#1", wm(9))]),
            hourly("2024-03-05T11:00:00Z", "5", &[("wm#0", wm(7))]),
            hourly("2024-03-06T11:00:00Z", "1", &[("wm#0", wm(8))]),
            hourly("2024-03-07T11:00:00Z", "1", &[("wm#0", "12".into())]),
            ours(Window::Daily, "2024-03-05T00:00:00Z", 99),
        ];
        let now = 1_710_504_000_000; // 2024-03-15T12:00:00Z
        let p = backfill(&items, Window::Daily, &Query::default(), now, 90).unwrap();
        assert_eq!(p.items.len(), 2, "{p:?}");
        let b = &p.items[0];
        assert_eq!((b.window_start.as_str(), b.finer_items), ("2024-03-05T00:00:00Z", 2));
        let v: Value = serde_json::from_str(&b.item).unwrap();
        assert_eq!(v["SK"]["S"], "#USAGE#r#2024-03-05T00:00:00Z#daily");
        assert_eq!((v["tpm"]["N"].as_str(), v["total_events"]["N"].as_str()), (Some("15"), Some("4")));
        assert_eq!((v["wm#0"]["S"].as_str(), v["wm#1"]["S"].as_str()), (Some(wm(7).as_str()), Some(wm(9).as_str())));
        assert_eq!(v["ttl"]["N"], (now / 1000 + 90 * 86_400).to_string());
        assert_eq!(read_item(&b.item).unwrap().window, Window::Daily);
        // The malformed watermark holds its day back.
        assert_eq!(p.held.len(), 1);
        assert!(p.held[0].contains("2024-03-07T00:00:00Z") && p.held[0].contains("watermark wm#0"), "{:?}", p.held);
        // A day that ended less than 25 hours ago is not built.
        let p = backfill(&items[..3], Window::Daily, &Query::default(), 1_709_776_800_000, 90).unwrap(); // 03-07T02:00
        assert_eq!(p.items.len(), 1);
        assert!(p.held[0].contains("2024-03-06T00:00:00Z"));
        // Monthly from daily; `to` keeps whole periods only; hourly builds nothing.
        let p = backfill(&items, Window::Monthly, &Query::default(), now + 40 * 86_400_000, 90).unwrap();
        assert_eq!((p.items.len(), p.items[0].finer_items), (1, 1));
        let q = Query { to: Some("2024-03-20".into()), ..Query::default() };
        assert!(backfill(&items, Window::Monthly, &q, now + 40 * 86_400_000, 90).unwrap().items.is_empty());
        assert!(backfill(&items, Window::Hourly, &Query::default(), now, 90).unwrap().items.is_empty());
        let j: Value = serde_json::from_str(&backfill_json(&p)).unwrap();
        assert!(j["items"][0]["item"].as_str().unwrap().contains("#monthly"));
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
