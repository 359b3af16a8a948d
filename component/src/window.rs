//! Snapshot windows and the calendar math behind them.
//!
//! Everything here is pure: no clock, no time-zone database, no allocation beyond the returned
//! strings. Dates are proleptic Gregorian in UTC.
//!
//! * [`window_key`] is the start key of a snapshot window (docs/specification.md#windows), [`window_end`] its last
//!   second (docs/specification.md#windows, #snapshot-reader).
//! * [`civil_from_days`] / [`days_from_civil`] convert between days since 1970-01-01 and a
//!   calendar date for any `i64` day count; they never panic.
//! * [`parse_iso_to_utc_date`] reproduces what `datetime.fromisoformat(s.replace("Z", "+00:00"))`
//!   accepts in CPython 3.12 (the C implementation), followed by a conversion to UTC, and returns
//!   the UTC calendar date. It is used to place audit events into UTC day partitions (W13).

use std::fmt;

/// A snapshot window type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    /// One window per UTC hour; key `YYYY-MM-DDTHH:00:00Z`.
    Hourly,
    /// One window per UTC day; key `YYYY-MM-DDT00:00:00Z`.
    Daily,
    /// One window per UTC calendar month; key `YYYY-MM-01T00:00:00Z`.
    Monthly,
}

impl Window {
    /// All windows in the order hourly, daily, monthly.
    pub const ALL: [Window; 3] = [Window::Hourly, Window::Daily, Window::Monthly];

    /// The configuration name of the window: `"hourly"`, `"daily"` or `"monthly"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Window::Hourly => "hourly",
            Window::Daily => "daily",
            Window::Monthly => "monthly",
        }
    }

    /// Exact, case-sensitive match of the three names; `None` for anything else (for example
    /// `"weekly"`, `"Hourly"` or `" daily"`).
    #[must_use]
    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.name() == s)
    }
}

impl fmt::Display for Window {
    /// Writes [`Window::name`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A UTC calendar date-time broken down (proleptic Gregorian), to whole seconds.
///
/// The derived ordering is chronological because the fields are declared from the most to the
/// least significant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    /// Calendar year (astronomical numbering: year 0 precedes year 1).
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month, 1..=31.
    pub day: u32,
    /// Hour, 0..=23.
    pub hour: u32,
    /// Minute, 0..=59.
    pub minute: u32,
    /// Second, 0..=59.
    pub second: u32,
}

const MS_PER_SECOND: i64 = 1_000;
const SECONDS_PER_DAY: i64 = 86_400;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = SECONDS_PER_DAY * MICROS_PER_SECOND;

/// Days in a 400-year Gregorian cycle.
const DAYS_PER_ERA: i128 = 146_097;
/// Days from 0000-03-01 (the start of the March-based era used internally) to 1970-01-01.
const EPOCH_FROM_ERA_START: i128 = 719_468;
/// Days before each month of a March-based year (March first, February last).
const MARCH_YEAR_CUMULATIVE: [i128; 12] = [0, 31, 61, 92, 122, 153, 184, 214, 245, 275, 306, 337];

/// Smallest and largest year that Python's `datetime` (and therefore a window key) can hold.
const MIN_YEAR: i64 = 1;
const MAX_YEAR: i64 = 9999;

/// Break epoch milliseconds (may be negative) into a UTC date-time, flooring to whole seconds
/// (`div_euclid`), so `-1` ms is `1969-12-31T23:59:59`. Defined, and panic-free, for every `i64`.
#[must_use]
pub fn from_epoch_ms(ms: i64) -> DateTime {
    let seconds = ms.div_euclid(MS_PER_SECOND);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    // second_of_day is in 0..86_400, so these conversions are lossless.
    let sod = second_of_day as u32;
    DateTime { year, month, day, hour: sod / 3600, minute: sod / 60 % 60, second: sod % 60 }
}

/// Days since 1970-01-01 to the proleptic Gregorian `(year, month, day)`.
///
/// Exact for every `i64` input (the arithmetic runs in `i128`, and the resulting year always
/// fits an `i64`); never panics.
#[must_use]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Count from 0000-03-01 so that the leap day is the last day of its (March-based) year.
    let from_era_start = i128::from(days) + EPOCH_FROM_ERA_START;
    let era = from_era_start.div_euclid(DAYS_PER_ERA);
    let mut rest = from_era_start.rem_euclid(DAYS_PER_ERA); // 0..=146_096

    // Peel off whole centuries (36_524 days; the fourth one has an extra day, which the clamp
    // keeps inside it), then 4-year groups (1_461 days; the last group of a century may be one
    // day short, which never matters because the quotient tops out at 24), then single years
    // (365 days; the fourth has the leap day, again kept by the clamp).
    let centuries = (rest / 36_524).min(3);
    rest -= centuries * 36_524;
    let quads = rest / 1_461;
    rest -= quads * 1_461;
    let single = (rest / 365).min(3);
    rest -= single * 365;
    let year_of_era = centuries * 100 + quads * 4 + single;
    let day_of_year = rest; // 0 = March 1st, 365 = February 29th

    let mut month_index = 11;
    while MARCH_YEAR_CUMULATIVE[month_index] > day_of_year {
        month_index -= 1;
    }
    let day = day_of_year - MARCH_YEAR_CUMULATIVE[month_index] + 1;
    // March-based month index 0..=9 is March..December, 10..=11 is January..February of the
    // following calendar year.
    let (month, year_carry) = if month_index < 10 { (month_index + 3, 0) } else { (month_index - 9, 1) };
    let year = era * 400 + year_of_era + year_carry;
    // |days| < 2^63 gives |year| < 2^63 / 365, so the narrowing cannot fail; saturate anyway
    // rather than panic.
    let year = i64::try_from(year).unwrap_or(if year < 0 { i64::MIN } else { i64::MAX });
    (year, month as u32, day as u32)
}

/// Proleptic Gregorian date to days since 1970-01-01; the inverse of [`civil_from_days`].
///
/// Out-of-range fields are normalised rather than rejected: a month beyond 12 carries into the
/// following years (month 13 is January of `year + 1`, month 0 is December of `year - 1`), and
/// the day counts from the first of the month (day 0 is the last day of the previous month,
/// January 32 is February 1). Results beyond the `i64` range saturate. Never panics.
#[must_use]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let month_zero = i128::from(month) - 1; // may be -1 for month 0
    let year = i128::from(year) + month_zero.div_euclid(12);
    let month = month_zero.rem_euclid(12) + 1; // 1..=12

    // Move January and February to the end of the previous March-based year.
    let (march_year, month_index) = if month >= 3 { (year, month - 3) } else { (year - 1, month + 9) };
    let era = march_year.div_euclid(400);
    let year_of_era = march_year.rem_euclid(400); // 0..=399
    let day_of_era =
        year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + MARCH_YEAR_CUMULATIVE[month_index as usize];
    let total = era * DAYS_PER_ERA + day_of_era + i128::from(day) - 1 - EPOCH_FROM_ERA_START;
    saturate_i64(total)
}

/// Epoch seconds of a [`DateTime`]. Fields beyond their usual ranges are normalised as in
/// [`days_from_civil`] (and hours, minutes and seconds simply add up); results beyond the `i64`
/// range saturate. Never panics.
#[must_use]
pub fn to_epoch_seconds(dt: &DateTime) -> i64 {
    let days = i128::from(days_from_civil(dt.year, dt.month, dt.day));
    let within_day = i128::from(dt.hour) * 3600 + i128::from(dt.minute) * 60 + i128::from(dt.second);
    saturate_i64(days * i128::from(SECONDS_PER_DAY) + within_day)
}

fn saturate_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Why a window key cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowError {
    /// The timestamp falls in a year that Python's `datetime` cannot represent (outside
    /// 1..=9999); upstream raises `ValueError` there and counts a snapshot error.
    YearOutOfRange(i64),
}

impl fmt::Display for WindowError {
    /// `year {y} is outside 1..=9999`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::YearOutOfRange(y) => write!(f, "year {y} is outside 1..=9999"),
        }
    }
}

impl std::error::Error for WindowError {}

/// The window start key (docs/specification.md#windows) for a timestamp in epoch milliseconds, in UTC:
/// hourly `YYYY-MM-DDTHH:00:00Z`, daily `YYYY-MM-DDT00:00:00Z`, monthly `YYYY-MM-01T00:00:00Z`.
///
/// The timestamp is floored to whole seconds first (upstream divides by 1000 as a float; for
/// every representable year both give the same hour, day and month). Years outside 1..=9999
/// are an error, as Python's `datetime` cannot represent them. The year is always written with
/// four digits (upstream's `strftime("%Y")` on glibc would write years below 1000 unpadded).
///
/// # Errors
///
/// [`WindowError::YearOutOfRange`] when the timestamp's UTC year is outside 1..=9999.
pub fn window_key(window: Window, ts_ms: i64) -> Result<String, WindowError> {
    let dt = from_epoch_ms(ts_ms);
    if !(MIN_YEAR..=MAX_YEAR).contains(&dt.year) {
        return Err(WindowError::YearOutOfRange(dt.year));
    }
    let start = match window {
        Window::Hourly => DateTime { minute: 0, second: 0, ..dt },
        Window::Daily => DateTime { hour: 0, minute: 0, second: 0, ..dt },
        Window::Monthly => DateTime { day: 1, hour: 0, minute: 0, second: 0, ..dt },
    };
    Ok(format_iso(&start))
}

/// The window end (docs/specification.md#windows) for a key produced by [`window_key`] (or any strict
/// `YYYY-MM-DDTHH:MM:SSZ` string, see [`parse_key`]): hourly gives `HH:59:59` of the key's hour,
/// daily `23:59:59` of the key's day, monthly the last second of the key's month (February 29 in
/// leap years; December ends on the 31st of the same year). `None` if the key does not parse.
///
/// For keys that [`window_key`] produces this equals upstream `get_window_end`. For a monthly key
/// that is not at midnight upstream would keep the key's time of day before subtracting one
/// second; this function always returns `23:59:59` of the last day, as docs/specification.md#windows describes.
#[must_use]
pub fn window_end(window: Window, key: &str) -> Option<String> {
    let start = parse_key(key)?;
    let end = match window {
        Window::Hourly => DateTime { minute: 59, second: 59, ..start },
        Window::Daily => DateTime { hour: 23, minute: 59, second: 59, ..start },
        Window::Monthly => {
            DateTime { day: days_in_month(start.year, start.month), hour: 23, minute: 59, second: 59, ..start }
        }
    };
    Some(format_iso(&end))
}

/// Parse a `YYYY-MM-DDTHH:MM:SSZ` key back into a [`DateTime`].
///
/// Strict: exactly 20 ASCII characters of that shape, year 0001..=9999, a real calendar day,
/// hour 00..=23, minute and second 00..=59. `None` otherwise.
#[must_use]
pub fn parse_key(key: &str) -> Option<DateTime> {
    let b = key.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let year = fixed_digits(b, 0, 4)?;
    let month = fixed_digits(b, 5, 2)?;
    let day = fixed_digits(b, 8, 2)?;
    let hour = fixed_digits(b, 11, 2)?;
    let minute = fixed_digits(b, 14, 2)?;
    let second = fixed_digits(b, 17, 2)?;
    let year = i64::from(year);
    let valid = (MIN_YEAR..=MAX_YEAR).contains(&year)
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour <= 23
        && minute <= 59
        && second <= 59;
    valid.then_some(DateTime { year, month, day, hour, minute, second })
}

/// Format a [`DateTime`] as `YYYY-MM-DDTHH:MM:SSZ` with a four-digit zero-padded year.
///
/// Meant for years 1..=9999; other years are written with Rust's `{:04}` (more digits, or a
/// sign), which is not a valid key. Never panics.
#[must_use]
pub fn format_iso(dt: &DateTime) -> String {
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)
}

/// ASCII digits `b[start..start + count]` as a number; `None` if any is not a digit.
fn fixed_digits(b: &[u8], start: usize, count: usize) -> Option<u32> {
    b.get(start..start.checked_add(count)?)?
        .iter()
        .try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
}

fn is_leap_year(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

/// Days in `month` (1..=12) of `year`; 0 for a month outside 1..=12.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// ISO 8601 parsing with CPython 3.12 `datetime.fromisoformat` semantics.
//
// CPython's C parser works on the UTF-8 bytes of the string and relies on the NUL byte that
// terminates them: it peeks one byte past a field and compares with '\0'. `IsoBytes::at`
// reproduces that by answering 0 for any index at or past the end. An embedded U+0000 is a real
// byte 0 and behaves exactly like the terminator, as it does in CPython.
// ---------------------------------------------------------------------------------------------

/// The UTF-8 bytes being parsed, with a virtual NUL terminator.
struct IsoBytes<'a> {
    bytes: &'a [u8],
}

impl IsoBytes<'_> {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Byte at `i`, or 0 at and past the end (the C string terminator).
    fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    /// `count` ASCII digits starting at `p` as a number, and the index after them.
    fn digits(&self, p: usize, count: usize) -> Option<(u32, usize)> {
        let mut value = 0u32;
        for i in 0..count {
            let c = self.at(p.checked_add(i)?);
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(c - b'0');
        }
        Some((value, p + count))
    }
}

/// The raw fields of a parsed date, before range validation.
struct RawDate {
    year: i64,
    month: u32,
    day: u32,
}

/// Where the date part ends (the index of the date/time separator). Mirrors CPython's
/// `_find_isoformat_datetime_separator`; `None` stands for its `-1` (which always ends in an
/// error). Requires `b.len() >= 7`.
fn find_separator(b: &IsoBytes<'_>) -> Option<usize> {
    let len = b.len();
    if len == 7 {
        return Some(7);
    }
    if b.at(4) == b'-' {
        if b.at(5) != b'W' {
            return Some(10); // YYYY-MM-DD
        }
        // YYYY-Www or YYYY-Www-D.
        if len > 8 && b.at(8) == b'-' {
            if len == 9 {
                return None;
            }
            if len > 10 && b.at(10).is_ascii_digit() {
                // YYYY-Www-##: taken as a '-' separator after the week and a time of ##.
                return Some(8);
            }
            return Some(10);
        }
        return Some(8);
    }
    if b.at(4) == b'W' {
        // YYYYWww (7) or YYYYWwwD (8): count the digits from index 7.
        let mut idx = 7;
        while idx < len && b.at(idx).is_ascii_digit() {
            idx += 1;
        }
        if idx < 9 {
            return Some(idx);
        }
        // Time fields come in pairs, so an even end index means no weekday digit.
        return Some(if idx % 2 == 0 { 7 } else { 8 });
    }
    Some(8) // YYYYMMDD
}

/// CPython's `parse_isoformat_date` over `b[..date_len]` (it may peek further, as the C code
/// does). ISO week dates are resolved to a calendar date; nothing is range-checked except the
/// week and weekday.
fn parse_date(b: &IsoBytes<'_>, date_len: usize) -> Option<RawDate> {
    let (year, mut p) = b.digits(0, 4)?;
    let year = i64::from(year);
    let uses_separator = b.at(p) == b'-';
    if uses_separator {
        p += 1;
    }
    if b.at(p) == b'W' {
        let (week, after_week) = b.digits(p + 1, 2)?;
        p = after_week;
        let weekday = if p < date_len {
            if uses_separator {
                if b.at(p) != b'-' {
                    return None;
                }
                p += 1;
            }
            b.digits(p, 1)?.0
        } else {
            1
        };
        return iso_week_date(year, week, weekday);
    }
    let (month, after_month) = b.digits(p, 2)?;
    p = after_month;
    if uses_separator {
        if b.at(p) != b'-' {
            return None;
        }
        p += 1;
    }
    let (day, _) = b.digits(p, 2)?;
    Some(RawDate { year, month, day })
}

/// ISO year / week / weekday (Monday = 1) to a calendar date, with CPython's checks: week 1..=52,
/// or 53 in years that have it; weekday 1..=7.
fn iso_week_date(year: i64, week: u32, weekday: u32) -> Option<RawDate> {
    let jan1 = days_from_civil(year, 1, 1);
    // 1970-01-01 was a Thursday; Monday = 0.
    let jan1_weekday = (jan1 + 3).rem_euclid(7);
    if !(1..=52).contains(&week) {
        let long_year = jan1_weekday == 3 || (jan1_weekday == 2 && is_leap_year(year));
        if !(week == 53 && long_year) {
            return None;
        }
    }
    if !(1..=7).contains(&weekday) {
        return None;
    }
    // Week 1 is the week containing the first Thursday of the year.
    let mut week1_monday = jan1 - jan1_weekday;
    if jan1_weekday > 3 {
        week1_monday += 7;
    }
    let days = week1_monday + i64::from(week - 1) * 7 + i64::from(weekday - 1);
    let (year, month, day) = civil_from_days(days);
    Some(RawDate { year, month, day })
}

/// Hour, minute, second and microsecond as parsed.
#[derive(Default)]
struct RawTime {
    hour: u32,
    minute: u32,
    second: u32,
    micro: u32,
}

/// CPython's `parse_hh_mm_ss_ff` over `[p, p_end)`: `[HH[:?MM[:?SS[{.,}ffffff...]]]]`, the colons
/// all present or all absent. `Ok((true, _))` means that parsing stopped on something other than
/// the terminator (fine only if a time-zone designator follows); `Err` is a syntax error.
fn parse_hh_mm_ss_ff(b: &IsoBytes<'_>, start: usize, p_end: usize) -> Result<(bool, RawTime), ()> {
    let mut vals = [0u32; 3];
    let mut p = start;
    let mut has_separator = true;
    for (i, slot) in vals.iter_mut().enumerate() {
        let (v, next) = b.digits(p, 2).ok_or(())?;
        *slot = v;
        let c = b.at(next);
        p = next + 1;
        if i == 0 {
            has_separator = c == b':';
        }
        if p >= p_end {
            let [hour, minute, second] = vals;
            let time = RawTime { hour, minute, second, micro: 0 };
            return Ok((c != 0, time));
        } else if has_separator && c == b':' {
            continue;
        } else if c == b'.' || c == b',' {
            break;
        } else if !has_separator {
            p -= 1;
        } else {
            return Err(());
        }
    }
    // Fraction: up to six digits are used, more are skipped (truncation, not rounding).
    // Here p < p_end always holds, so at least one digit is required.
    let to_parse = p_end.saturating_sub(p).min(6);
    let (mut micro, next) = b.digits(p, to_parse).ok_or(())?;
    for _ in to_parse..6 {
        micro *= 10;
    }
    p = next;
    while b.at(p).is_ascii_digit() {
        p += 1;
    }
    let [hour, minute, second] = vals;
    let time = RawTime { hour, minute, second, micro };
    Ok((b.at(p) != 0, time))
}

/// CPython's `parse_isoformat_time` over `b[start..]`: the time, then an optional `Z` or
/// `±HH[:?MM[:?SS[.ffffff]]]` offset. Returns the time and the offset in microseconds east of UTC
/// (`None` for a naive time), after CPython's offset checks (a zero whole-second part means UTC
/// whatever the fraction; otherwise the offset must be strictly within ±24 h).
fn parse_time(b: &IsoBytes<'_>, start: usize) -> Option<(RawTime, Option<i64>)> {
    let end = b.len();
    // The first '+', '-' or 'Z' (checked at `start` even when the time is empty).
    let mut tz = start;
    loop {
        if matches!(b.at(tz), b'Z' | b'+' | b'-') {
            break;
        }
        tz += 1;
        if tz >= end {
            break;
        }
    }
    let (trailing, time) = parse_hh_mm_ss_ff(b, start, tz).ok()?;
    if tz == end {
        return (!trailing).then_some((time, None));
    }
    if b.at(tz) == b'Z' {
        return (b.at(tz + 1) == 0).then_some((time, Some(0)));
    }
    let sign: i64 = if b.at(tz) == b'-' { -1 } else { 1 };
    let (trailing, off) = parse_hh_mm_ss_ff(b, tz + 1, end).ok()?;
    if trailing {
        return None;
    }
    let whole_seconds = i64::from(off.hour) * 3600 + i64::from(off.minute) * 60 + i64::from(off.second);
    if whole_seconds == 0 {
        // CPython returns the UTC singleton here and drops the fractional part.
        return Some((time, Some(0)));
    }
    let offset_us = sign * (whole_seconds * MICROS_PER_SECOND + i64::from(off.micro));
    (offset_us.abs() < MICROS_PER_DAY).then_some((time, Some(offset_us)))
}

/// Parse an audit-event timestamp with the leniency of CPython 3.12's
/// `datetime.fromisoformat(s.replace("Z", "+00:00"))` (the upstream archiver's call), convert it
/// to UTC (the offset applied; a naive value is taken as UTC) and return the UTC calendar date
/// `(year, month, day)`. `None` wherever Python would raise: `ValueError` from parsing or
/// construction, or `OverflowError` when the UTC instant leaves years 1..=9999.
///
/// Accepted shapes include `YYYY-MM-DD`, `YYYYMMDD`, ISO week dates (`YYYY-Www[-D]`,
/// `YYYYWww[D]`), followed by any single character as the date/time separator and a time
/// `HH[:MM[:SS[.f…]]]` or `HH[MM[SS[.f…]]]` (fraction of any length with `.` or `,`, truncated to
/// microseconds), and an offset `Z`, `±HH`, `±HH:MM`, `±HHMM`, `±HH:MM:SS[.ffffff]`. Every `Z` in
/// the input is first replaced by `+00:00`, exactly as upstream does, so `2024-01-15Z` parses (as
/// midnight) while `2024-01-15Z10:00` does not. CPython 3.11.7, 3.12.1 and 3.13.0 agree on every
/// input this module was compared on.
#[must_use]
pub fn parse_iso_to_utc_date(s: &str) -> Option<(i64, u32, u32)> {
    let replaced = s.replace('Z', "+00:00");
    // CPython rejects anything shorter than 7 code points up front.
    if replaced.chars().count() < 7 {
        return None;
    }
    let b = IsoBytes { bytes: replaced.as_bytes() };
    let separator = find_separator(&b)?;
    let date = parse_date(&b, separator)?;
    let (time, offset_us) = if b.len() > separator {
        // Skip the separator: one code point, whatever its UTF-8 length. Every byte before it was
        // ASCII (the date parsed), so it starts a character.
        let width = replaced.get(separator..).and_then(|rest| rest.chars().next()).map_or(1, char::len_utf8);
        parse_time(&b, separator + width)?
    } else {
        (RawTime::default(), None)
    };

    // The datetime constructor's range checks.
    let valid = (MIN_YEAR..=MAX_YEAR).contains(&date.year)
        && (1..=12).contains(&date.month)
        && date.day >= 1
        && date.day <= days_in_month(date.year, date.month)
        && time.hour <= 23
        && time.minute <= 59
        && time.second <= 59;
    if !valid {
        return None;
    }

    let Some(offset_us) = offset_us.filter(|&o| o != 0) else {
        return Some((date.year, date.month, date.day));
    };
    // astimezone(timezone.utc): local - offset, which must stay within years 1..=9999.
    let local_us = i64::from(time.hour) * 3_600 * MICROS_PER_SECOND
        + i64::from(time.minute) * 60 * MICROS_PER_SECOND
        + i64::from(time.second) * MICROS_PER_SECOND
        + i64::from(time.micro);
    let utc_us = local_us - offset_us; // |offset| < one day, so within (-1 day, 2 days)
    let day_shift = utc_us.div_euclid(MICROS_PER_DAY);
    let days = days_from_civil(date.year, date.month, date.day) + day_shift;
    let (year, month, day) = civil_from_days(days);
    (MIN_YEAR..=MAX_YEAR).contains(&year).then_some((year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2024-03-25T10:35:22Z (the example in docs/specification.md#windows).
    const WINDOWS_EXAMPLE_TS: i64 = 1_711_362_922_000;
    /// 2024-01-01T14:35:22Z (upstream test_processor.py get_window_key / get_window_end).
    const JAN1_143522: i64 = 1_704_119_722_000;
    /// 2024-01-01T00:00:00Z.
    const JAN1_MIDNIGHT: i64 = 1_704_067_200_000;
    /// 2024-01-01T23:59:59Z.
    const JAN1_235959: i64 = 1_704_153_599_000;
    /// 2024-12-31T15:20:00Z.
    const DEC31_1520: i64 = 1_735_658_400_000;
    /// 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z in epoch ms.
    const YEAR1_START_MS: i64 = -62_135_596_800_000;
    const YEAR10000_START_MS: i64 = 253_402_300_800_000;

    fn key(w: Window, ts: i64) -> String {
        window_key(w, ts).expect("in range")
    }

    fn end(w: Window, k: &str) -> String {
        window_end(w, k).expect("parsable key")
    }

    #[test]
    fn window_names_round_trip() {
        assert_eq!(Window::ALL, [Window::Hourly, Window::Daily, Window::Monthly]);
        for w in Window::ALL {
            assert_eq!(Window::parse(w.name()), Some(w));
            assert_eq!(w.to_string(), w.name());
        }
        assert_eq!(Window::Hourly.name(), "hourly");
        assert_eq!(Window::Daily.name(), "daily");
        assert_eq!(Window::Monthly.name(), "monthly");
        // Upstream test_processor.py: "weekly" is an unknown window type.
        for bad in ["weekly", "Hourly", "DAILY", " daily", "monthly ", "", "hour"] {
            assert_eq!(Window::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn spec_3_3_examples() {
        assert_eq!(key(Window::Hourly, WINDOWS_EXAMPLE_TS), "2024-03-25T10:00:00Z");
        assert_eq!(key(Window::Daily, WINDOWS_EXAMPLE_TS), "2024-03-25T00:00:00Z");
        assert_eq!(key(Window::Monthly, WINDOWS_EXAMPLE_TS), "2024-03-01T00:00:00Z");
    }

    #[test]
    fn spec_3_2_rf_example() {
        // rf = 1704067195000 (2023-12-31T23:59:55Z).
        assert_eq!(key(Window::Hourly, 1_704_067_195_000), "2023-12-31T23:00:00Z");
        assert_eq!(key(Window::Daily, 1_704_067_195_000), "2023-12-31T00:00:00Z");
        // A missing rf is 0: 1970-01-01.
        assert_eq!(key(Window::Hourly, 0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn spec_12_1_get_window_key() {
        assert_eq!(key(Window::Hourly, JAN1_143522), "2024-01-01T14:00:00Z");
        assert_eq!(key(Window::Daily, JAN1_143522), "2024-01-01T00:00:00Z");
        assert_eq!(key(Window::Monthly, WINDOWS_EXAMPLE_TS), "2024-03-01T00:00:00Z");
        // Midnight: hourly, daily (and, on day 1, monthly) give the same string (W4).
        assert_eq!(key(Window::Hourly, JAN1_MIDNIGHT), "2024-01-01T00:00:00Z");
        assert_eq!(key(Window::Daily, JAN1_MIDNIGHT), "2024-01-01T00:00:00Z");
        assert_eq!(key(Window::Hourly, JAN1_MIDNIGHT), key(Window::Daily, JAN1_MIDNIGHT));
        assert_eq!(key(Window::Monthly, JAN1_MIDNIGHT), key(Window::Daily, JAN1_MIDNIGHT));
        // 23:59:59.
        assert_eq!(key(Window::Hourly, JAN1_235959), "2024-01-01T23:00:00Z");
        assert_eq!(key(Window::Daily, JAN1_235959), "2024-01-01T00:00:00Z");
        assert_eq!(key(Window::Hourly, JAN1_235959 + 999), "2024-01-01T23:00:00Z");
        assert_eq!(key(Window::Hourly, JAN1_235959 + 1000), "2024-01-02T00:00:00Z");
        // Dec 31.
        assert_eq!(key(Window::Daily, DEC31_1520), "2024-12-31T00:00:00Z");
        assert_eq!(key(Window::Monthly, DEC31_1520), "2024-12-01T00:00:00Z");
        assert_eq!(key(Window::Hourly, DEC31_1520), "2024-12-31T15:00:00Z");
    }

    #[test]
    fn spec_12_1_get_window_end() {
        assert_eq!(end(Window::Hourly, "2024-01-01T14:00:00Z"), "2024-01-01T14:59:59Z");
        assert_eq!(end(Window::Daily, "2024-01-01T00:00:00Z"), "2024-01-01T23:59:59Z");
        assert_eq!(end(Window::Monthly, "2024-01-01T00:00:00Z"), "2024-01-31T23:59:59Z");
        assert_eq!(end(Window::Monthly, "2024-02-01T00:00:00Z"), "2024-02-29T23:59:59Z");
        assert_eq!(end(Window::Monthly, "2024-04-01T00:00:00Z"), "2024-04-30T23:59:59Z");
        assert_eq!(end(Window::Monthly, "2024-12-01T00:00:00Z"), "2024-12-31T23:59:59Z");
        // More February cases: common year, century rule, 400-year rule.
        assert_eq!(end(Window::Monthly, "2023-02-01T00:00:00Z"), "2023-02-28T23:59:59Z");
        assert_eq!(end(Window::Monthly, "1900-02-01T00:00:00Z"), "1900-02-28T23:59:59Z");
        assert_eq!(end(Window::Monthly, "2000-02-01T00:00:00Z"), "2000-02-29T23:59:59Z");
        assert_eq!(end(Window::Monthly, "9999-12-01T00:00:00Z"), "9999-12-31T23:59:59Z");
        // Keys that are not at the window start still give the end of their window.
        assert_eq!(end(Window::Hourly, "2024-01-01T14:35:22Z"), "2024-01-01T14:59:59Z");
        assert_eq!(end(Window::Daily, "2024-01-01T14:35:22Z"), "2024-01-01T23:59:59Z");
        assert_eq!(end(Window::Monthly, "2024-06-15T14:35:22Z"), "2024-06-30T23:59:59Z");
    }

    #[test]
    fn window_end_rejects_unparsable_keys() {
        for bad in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01 00:00:00Z",
            "2024-02-30T00:00:00Z",
        ] {
            for w in Window::ALL {
                assert_eq!(window_end(w, bad), None, "{w} {bad:?}");
            }
        }
    }

    #[test]
    fn negative_timestamps_floor() {
        assert_eq!(key(Window::Hourly, -1), "1969-12-31T23:00:00Z");
        assert_eq!(key(Window::Daily, -1), "1969-12-31T00:00:00Z");
        assert_eq!(key(Window::Monthly, -1), "1969-12-01T00:00:00Z");
        assert_eq!(key(Window::Hourly, -3_600_000), "1969-12-31T23:00:00Z");
        assert_eq!(key(Window::Hourly, -3_600_001), "1969-12-31T22:00:00Z");
        assert_eq!(key(Window::Daily, -86_400_000), "1969-12-31T00:00:00Z");
        assert_eq!(key(Window::Daily, -86_400_001), "1969-12-30T00:00:00Z");
        assert_eq!(from_epoch_ms(-1), DateTime { year: 1969, month: 12, day: 31, hour: 23, minute: 59, second: 59 });
        assert_eq!(from_epoch_ms(-999).second, 59);
        assert_eq!(from_epoch_ms(-1000).second, 59);
        assert_eq!(from_epoch_ms(-1001).second, 58);
    }

    #[test]
    fn year_bounds() {
        assert_eq!(window_key(Window::Hourly, YEAR10000_START_MS), Err(WindowError::YearOutOfRange(10000)));
        assert_eq!(WindowError::YearOutOfRange(10000).to_string(), "year 10000 is outside 1..=9999");
        assert_eq!(key(Window::Hourly, YEAR10000_START_MS - 1), "9999-12-31T23:00:00Z");
        assert_eq!(key(Window::Monthly, YEAR10000_START_MS - 1), "9999-12-01T00:00:00Z");
        assert_eq!(key(Window::Hourly, YEAR1_START_MS), "0001-01-01T00:00:00Z");
        assert_eq!(window_key(Window::Daily, YEAR1_START_MS - 1), Err(WindowError::YearOutOfRange(0)));
        assert_eq!(WindowError::YearOutOfRange(-5).to_string(), "year -5 is outside 1..=9999");
        // Years below 1000 are zero-padded.
        assert_eq!(key(Window::Daily, -30_610_224_000_001), "0999-12-31T00:00:00Z");
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
            for w in Window::ALL {
                assert!(matches!(window_key(w, ts), Err(WindowError::YearOutOfRange(_))));
            }
        }
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        for ms in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            let dt = from_epoch_ms(ms);
            assert_eq!(to_epoch_seconds(&dt), ms.div_euclid(1000), "{ms}");
            assert!((1..=12).contains(&dt.month) && (1..=31).contains(&dt.day));
        }
        for d in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(days_from_civil(i64::MAX, 12, 31), i64::MAX);
        assert_eq!(days_from_civil(i64::MIN, 1, 1), i64::MIN);
        assert_eq!(days_from_civil(i64::MAX, u32::MAX, u32::MAX), i64::MAX);
        let huge = DateTime {
            year: i64::MAX,
            month: u32::MAX,
            day: u32::MAX,
            hour: u32::MAX,
            minute: u32::MAX,
            second: u32::MAX,
        };
        assert_eq!(to_epoch_seconds(&huge), i64::MAX);
        assert_eq!(to_epoch_seconds(&DateTime { year: i64::MIN, ..huge }), i64::MIN);
        // Out-of-range years still format without panicking.
        assert_eq!(format_iso(&from_epoch_ms(i64::MAX)), "292278994-08-17T07:12:55Z");
        assert_eq!(format_iso(&from_epoch_ms(i64::MIN)), "-292275055-05-16T16:47:04Z");
    }

    #[test]
    fn civil_conversions_known_values() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-719_162), (1, 1, 1));
        assert_eq!(civil_from_days(-719_163), (0, 12, 31));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
        assert_eq!(days_from_civil(-1, 12, 31), -719_529);
        // Normalisation of out-of-range months and days.
        assert_eq!(days_from_civil(2024, 13, 1), days_from_civil(2025, 1, 1));
        assert_eq!(days_from_civil(2024, 0, 1), days_from_civil(2023, 12, 1));
        assert_eq!(days_from_civil(2024, 1, 32), days_from_civil(2024, 2, 1));
        assert_eq!(days_from_civil(2024, 3, 0), days_from_civil(2024, 2, 29));
        assert_eq!(days_from_civil(2024, 25, 1), days_from_civil(2026, 1, 1));
        let dt = DateTime { year: 2024, month: 3, day: 25, hour: 10, minute: 35, second: 22 };
        assert_eq!(to_epoch_seconds(&dt), WINDOWS_EXAMPLE_TS / 1000);
        assert_eq!(from_epoch_ms(WINDOWS_EXAMPLE_TS), dt);
        assert_eq!(from_epoch_ms(WINDOWS_EXAMPLE_TS + 999), dt);
    }

    #[test]
    fn parse_key_and_format_iso() {
        let dt = DateTime { year: 5, month: 7, day: 9, hour: 1, minute: 2, second: 3 };
        assert_eq!(format_iso(&dt), "0005-07-09T01:02:03Z");
        assert_eq!(parse_key("0005-07-09T01:02:03Z"), Some(dt));
        assert_eq!(
            parse_key("2024-02-29T23:59:59Z"),
            Some(DateTime { year: 2024, month: 2, day: 29, hour: 23, minute: 59, second: 59 })
        );
        for bad in [
            "",
            "2024-02-29T23:59:59",
            "2024-02-29T23:59:59ZZ",
            " 2024-02-29T23:59:59Z",
            "2024-02-29t23:59:59Z",
            "2024-02-29T23:59:59z",
            "2024/02/29T23:59:59Z",
            "2024-02-29T23-59-59Z",
            "0000-01-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:60Z",
            "2024-01-01T+0:00:00Z",
            "+024-01-01T00:00:00Z",
            "2024-01-01T00:00:\u{e9}Z",
            "2024-01-01T00:00\u{20ac}0Z",
            "\u{1f600}4-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_key(bad), None, "{bad:?}");
        }
    }

    /// A `(year, month, day)` triple as returned by [`parse_iso_to_utc_date`].
    type Ymd = (i64, u32, u32);

    /// `(input, UTC date per CPython 3.12.1)` for
    /// `datetime.fromisoformat(s.replace("Z", "+00:00"))`, made naive-as-UTC and then
    /// `.astimezone(timezone.utc)`; `None` where that raises `ValueError` or `OverflowError`.
    /// Generated with python3.12.1; python3.11.7 and 3.13.0 give the identical table.
    const ISO_CASES: &[(&str, Option<Ymd>)] = &[
        ("2024-01-15", Some((2024, 1, 15))),
        ("20240115", Some((2024, 1, 15))),
        ("2024-02-29", Some((2024, 2, 29))),
        ("2023-02-29", None),
        ("2024-13-01", None),
        ("2024-00-10", None),
        ("2024-01-00", None),
        ("2024-04-31", None),
        ("0000-01-01", None),
        ("0001-01-01", Some((1, 1, 1))),
        ("9999-12-31", Some((9999, 12, 31))),
        ("2024-1-15", None),
        ("2024-01-5", None),
        ("202401", None),
        ("2024-01", None),
        ("2024", None),
        ("2024/01/15", None),
        ("2024-0115", None),
        ("202401-15", None),
        ("", None),
        ("       ", None),
        ("2024-01-15 ", None),
        ("\u{ff12}\u{ff10}\u{ff12}\u{ff14}-01-15", None),
        ("2024-01-15T14:30", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00.1", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00.123456", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00.1234567", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00,5", Some((2024, 1, 15))),
        ("2024-01-15T14", Some((2024, 1, 15))),
        ("2024-01-15T1430", Some((2024, 1, 15))),
        ("2024-01-15T143000", Some((2024, 1, 15))),
        ("2024-01-15T143000.5", Some((2024, 1, 15))),
        ("20240115T143000", Some((2024, 1, 15))),
        ("20240115 1430", Some((2024, 1, 15))),
        ("2024-01-15 14:30", Some((2024, 1, 15))),
        ("2024-01-15t14:30", Some((2024, 1, 15))),
        ("2024-01-15x14:30", Some((2024, 1, 15))),
        ("2024-01-15_14:30", Some((2024, 1, 15))),
        ("2024-01-15\u{e9}14:30", Some((2024, 1, 15))),
        ("2024-01-15\u{20ac}14:30", Some((2024, 1, 15))),
        ("2024-01-15\u{1f600}14:30", Some((2024, 1, 15))),
        ("2024-01-15\u{0}14:30", Some((2024, 1, 15))),
        ("2024-01-15T", None),
        ("2024-01-15TT14:30", None),
        ("2024-01-15T14:3", None),
        ("2024-01-15T14:30:", None),
        ("2024-01-15T14:30:00.", None),
        ("2024-01-15T14:30:0", None),
        ("2024-01-15T1:30", None),
        ("2024-01-15T14:30:00:5", Some((2024, 1, 15))),
        ("2024-01-15T14:3000", None),
        ("2024-01-15T1430:00", None),
        ("2024-01-15T14.5", Some((2024, 1, 15))),
        ("2024-01-15T14:30.25", Some((2024, 1, 15))),
        ("2024-01-15T10300012", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00.12a", None),
        ("2024-01-15T14:30\u{0}", Some((2024, 1, 15))),
        ("2024-01-15T14:30\u{0}x", None),
        ("2024-01-15T24:00", None),
        ("2024-01-15T23:60", None),
        ("2024-01-15T23:59:60", None),
        ("2024-01-15T23:59:59.999999", Some((2024, 1, 15))),
        ("2024-01-15T99:99:99", None),
        ("2024-01-15T14:30:00Z", Some((2024, 1, 15))),
        ("2024-01-15T14:30Z", Some((2024, 1, 15))),
        ("2024-01-15T14Z", Some((2024, 1, 15))),
        ("2024-01-15Z", Some((2024, 1, 15))),
        ("20240115Z", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00.5Z", Some((2024, 1, 15))),
        ("2024-01-15Z14:30", None),
        ("2024-01-15T14:30ZZ", None),
        ("2024-01-15T14:30:00z", None),
        ("2024-01-15T14:30:00+01:00Z", None),
        ("Z2024-01-15", None),
        ("2024-W03Z", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+00:00", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00-00:00", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+05:30", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+0530", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+05", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+05:30:15", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+05:30:15.123456", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+053015", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+5", None),
        ("2024-01-15T14:30:00+05:3", None),
        ("2024-01-15T14:30:00+05:30:", None),
        ("2024-01-15T14:30:00+05:30x", None),
        ("2024-01-15T14:30:00++05:00", None),
        ("2024-01-15T14:30:00+05:00-01:00", None),
        ("2024-01-15T14:30:00+24:00", None),
        ("2024-01-15T14:30:00-24:00", None),
        ("2024-01-15T14:30:00+23:59:59.999999", Some((2024, 1, 14))),
        ("2024-01-15T00:00:00+23:59:59.999999", Some((2024, 1, 14))),
        ("2024-01-15T23:00:00-23:59:59.999999", Some((2024, 1, 16))),
        ("2024-01-15T14:30:00+12:99", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+01.5", Some((2024, 1, 15))),
        ("2024-01-15T14:30:00+", None),
        ("2024-01-15T14:30:00-", None),
        ("2024-01-15+01:00", Some((2024, 1, 15))),
        ("2024-01-15-05:00", Some((2024, 1, 15))),
        ("2024-01-15T-05:00", None),
        ("2024-01-15T23:30:00-05:00", Some((2024, 1, 16))),
        ("2024-03-01T00:30:00+01:00", Some((2024, 2, 29))),
        ("2023-03-01T00:30:00+01:00", Some((2023, 2, 28))),
        ("2024-12-31T20:00:00-04:00", Some((2025, 1, 1))),
        ("2025-01-01T03:00:00+05:00", Some((2024, 12, 31))),
        ("2024-02-28T23:59:59-00:00:01", Some((2024, 2, 29))),
        ("2024-01-15T23:59:59.7-00:00:00.5", Some((2024, 1, 15))),
        ("2024-01-15T23:59:59.7-00:00:01.5", Some((2024, 1, 16))),
        ("2024-01-15T00:00:00.2+00:00:01.5", Some((2024, 1, 14))),
        ("2024-01-15T12:00:00+12:00", Some((2024, 1, 15))),
        ("2024-01-15T11:59:59.999999+12:00", Some((2024, 1, 14))),
        ("2024-01-15T12:00:00-12:00", Some((2024, 1, 16))),
        ("2024-01-15T11:59:59-12:00", Some((2024, 1, 15))),
        ("2024-01-15T23:30:00.5-0030", Some((2024, 1, 16))),
        ("0001-01-01T00:30+01:00", None),
        ("0001-01-01T01:00+01:00", Some((1, 1, 1))),
        ("9999-12-31T23:30-01:00", None),
        ("9999-12-31T22:59:59-01:00", Some((9999, 12, 31))),
        ("1970-01-01T00:00:00+00:00:01", Some((1969, 12, 31))),
        ("1969-12-31T23:59:59-00:00:01", Some((1970, 1, 1))),
        ("2024-W01-1", Some((2024, 1, 1))),
        ("2024W011", Some((2024, 1, 1))),
        ("2024-W01", Some((2024, 1, 1))),
        ("2024W01", Some((2024, 1, 1))),
        ("2024-W52-7", Some((2024, 12, 29))),
        ("2020-W53-7", Some((2021, 1, 3))),
        ("2020W537", Some((2021, 1, 3))),
        ("2024-W53-1", None),
        ("2026-W53-1", Some((2026, 12, 28))),
        ("2015-W53-5", Some((2016, 1, 1))),
        ("2024-W00-1", None),
        ("2024-W01-0", None),
        ("2024-W01-8", None),
        ("2024-W1-1", None),
        ("2024-W01-", None),
        ("2024W0", None),
        ("2024-w01-1", None),
        ("2024-W011", None),
        ("2024-W01-1T10:00", Some((2024, 1, 1))),
        ("2024W011T10:00", Some((2024, 1, 1))),
        ("2024W01T10:00", Some((2024, 1, 1))),
        ("2024-W01T10:00", Some((2024, 1, 1))),
        ("2024-W01-10:00", Some((2024, 1, 1))),
        ("2024-W01-1-05:00", Some((2024, 1, 1))),
        ("2024W0110", None),
        ("2024W011030", None),
        ("2024W01103", Some((2024, 1, 1))),
        ("0000-W01-1", None),
        ("0001-W01-1", Some((1, 1, 1))),
        ("9999-W52-5", Some((9999, 12, 31))),
        ("9999-W52-6", None),
        ("2004-W53-7", Some((2005, 1, 2))),
        ("2024-W01\u{20ac}10:00", Some((2024, 1, 1))),
        ("2024-W05-3T23:00-02:00", Some((2024, 2, 1))),
    ];

    #[test]
    fn parse_iso_matches_python_table() {
        assert!(ISO_CASES.len() >= 150);
        let mut failures = Vec::new();
        for &(input, expected) in ISO_CASES {
            let got = parse_iso_to_utc_date(input);
            if got != expected {
                failures.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn parse_iso_accepts_window_keys() {
        for ts in [WINDOWS_EXAMPLE_TS, JAN1_MIDNIGHT, -1, YEAR1_START_MS] {
            for w in Window::ALL {
                let k = key(w, ts);
                let dt = parse_key(&k).expect("key parses");
                assert_eq!(parse_iso_to_utc_date(&k), Some((dt.year, dt.month, dt.day)));
            }
        }
    }

    fn slow_is_leap(y: i64) -> bool {
        let r = |n: i64| y.rem_euclid(n) == 0;
        (r(4) && !r(100)) || r(400)
    }

    /// Calendar date of a day count by walking whole years and months from 1970.
    fn slow_civil(mut days: i64) -> (i64, u32, u32) {
        let year_len = |y: i64| if slow_is_leap(y) { 366 } else { 365 };
        let mut y = 1970;
        while days < 0 {
            y -= 1;
            days += year_len(y);
        }
        while days >= year_len(y) {
            days -= year_len(y);
            y += 1;
        }
        let feb = if slow_is_leap(y) { 29 } else { 28 };
        let lengths = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut m = 0;
        while days >= lengths[m] {
            days -= lengths[m];
            m += 1;
        }
        (y, m as u32 + 1, days as u32 + 1)
    }

    /// An independent window key: integer division on seconds, then the slow calendar.
    fn slow_window_key(w: Window, ms: i64) -> Result<String, WindowError> {
        let secs = if ms >= 0 { ms / 1000 } else { -((-ms + 999) / 1000) };
        let days = if secs >= 0 { secs / 86_400 } else { -((-secs + 86_399) / 86_400) };
        let hour = (secs - days * 86_400) / 3600;
        let (y, m, d) = slow_civil(days);
        if !(1..=9999).contains(&y) {
            return Err(WindowError::YearOutOfRange(y));
        }
        Ok(match w {
            Window::Hourly => format!("{y:04}-{m:02}-{d:02}T{hour:02}:00:00Z"),
            Window::Daily => format!("{y:04}-{m:02}-{d:02}T00:00:00Z"),
            Window::Monthly => format!("{y:04}-{m:02}-01T00:00:00Z"),
        })
    }

    fn any_window() -> impl Strategy<Value = Window> {
        prop_oneof![Just(Window::Hourly), Just(Window::Daily), Just(Window::Monthly)]
    }

    proptest! {
        #[test]
        fn days_round_trip_full_range(d in any::<i64>()) {
            let (y, m, dd) = civil_from_days(d);
            prop_assert!((1..=12).contains(&m));
            prop_assert!(dd >= 1 && dd <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, dd), d);
        }

        #[test]
        fn days_round_trip_wide(d in -1_000_000_000_000i64..1_000_000_000_000) {
            let (y, m, dd) = civil_from_days(d);
            prop_assert_eq!(days_from_civil(y, m, dd), d);
            // Consecutive days are consecutive dates.
            let next = civil_from_days(d + 1);
            let expected_next = if dd < days_in_month(y, m) {
                (y, m, dd + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            prop_assert_eq!(next, expected_next);
        }

        #[test]
        fn civil_matches_slow_walk(d in -4_000_000i64..4_000_000) {
            prop_assert_eq!(civil_from_days(d), slow_civil(d));
        }

        #[test]
        fn window_key_matches_slow_computation(
            w in any_window(),
            ms in (YEAR1_START_MS - 400 * 86_400_000)..(YEAR10000_START_MS + 400 * 86_400_000),
        ) {
            prop_assert_eq!(window_key(w, ms), slow_window_key(w, ms));
        }

        #[test]
        fn window_key_near_boundaries(
            w in any_window(),
            base in prop_oneof![Just(YEAR1_START_MS), Just(YEAR10000_START_MS), Just(0i64), Just(JAN1_MIDNIGHT)],
            delta in -200_000_000i64..200_000_000,
        ) {
            prop_assert_eq!(window_key(w, base + delta), slow_window_key(w, base + delta));
        }

        #[test]
        fn epoch_round_trip(ms in any::<i64>()) {
            let dt = from_epoch_ms(ms);
            prop_assert_eq!(to_epoch_seconds(&dt), ms.div_euclid(1000));
            prop_assert!(dt.hour < 24 && dt.minute < 60 && dt.second < 60);
        }

        #[test]
        fn key_format_parse_and_end(w in any_window(), ms in YEAR1_START_MS..YEAR10000_START_MS) {
            let k = window_key(w, ms).unwrap();
            let start = parse_key(&k).unwrap();
            prop_assert_eq!(format_iso(&start), k.clone());
            let e = window_end(w, &k).unwrap();
            let end_dt = parse_key(&e).unwrap();
            // The end is the last second of the same window.
            let end_ms = to_epoch_seconds(&end_dt) * 1000;
            prop_assert_eq!(window_key(w, end_ms).unwrap(), k.clone());
            prop_assert_eq!(window_key(w, to_epoch_seconds(&start) * 1000).unwrap(), k.clone());
            if end_dt.year < 9999 || end_dt.month < 12 || end_dt.day < 31 || end_dt.hour < 23 {
                prop_assert_ne!(window_key(w, end_ms + 1000).unwrap(), k);
            }
            prop_assert!(start <= from_epoch_ms(ms) && from_epoch_ms(ms) <= end_dt);
        }

        #[test]
        fn parse_iso_never_panics(s in "\\PC{0,40}") {
            let _ = parse_iso_to_utc_date(&s);
            let _ = parse_key(&s);
            for w in Window::ALL {
                let _ = window_end(w, &s);
            }
        }

        #[test]
        fn parse_iso_never_panics_on_iso_like(s in "[0-9W:.,+\\-TZ \u{0}\u{e9}\u{20ac}]{0,32}") {
            let _ = parse_iso_to_utc_date(&s);
        }

        #[test]
        fn parse_iso_of_utc_timestamps(ms in YEAR1_START_MS..YEAR10000_START_MS) {
            let dt = from_epoch_ms(ms);
            let expected = Some((dt.year, dt.month, dt.day));
            let iso = format_iso(&dt);
            prop_assert_eq!(parse_iso_to_utc_date(&iso), expected);
            prop_assert_eq!(parse_iso_to_utc_date(&iso.replace('Z', "+00:00")), expected);
            prop_assert_eq!(parse_iso_to_utc_date(&iso[..19]), expected);
        }

        #[test]
        fn parse_iso_applies_offsets(
            ms in (YEAR1_START_MS + 86_400_000)..(YEAR10000_START_MS - 86_400_000),
            offset_min in -1439i64..=1439,
        ) {
            // Write the UTC instant as local time at the offset; the UTC date must come back.
            let utc = from_epoch_ms(ms);
            let local = from_epoch_ms(ms + offset_min * 60_000);
            let sign = if offset_min < 0 { '-' } else { '+' };
            let abs = offset_min.abs();
            let s = format!("{}{}{:02}:{:02}", &format_iso(&local)[..19], sign, abs / 60, abs % 60);
            prop_assert_eq!(parse_iso_to_utc_date(&s), Some((utc.year, utc.month, utc.day)));
        }
    }
}
