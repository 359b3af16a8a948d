//! Stored schedules: decoding and evaluation, as zae-limiter 0.17.0 does it.
//!
//! A bucket item may carry a *parameter schedule* (`sched`, or
//! `b_{limit}_sched` per limit) that changes a limit's capacity and refill
//! rate in cron-defined windows, and a *reset schedule* (`rsched` /
//! `b_{limit}_rsched`) whose rising edges put the balance back to the
//! effective capacity. Both are stored in a compact form with their time zone
//! hoisted to `sched_tz`; `docs/specification.md` ("Schedules") describes the
//! format and the evaluation rules. This module is pure: it reads no clock,
//! does no I/O, and returns an error rather than panicking on any input.
//!
//! # API
//!
//! ```text
//! BUCKET_SCHED_NONE: &str                     // "-": "this limit has no schedule"; the caller's to handle
//! decode(compact: &str, tz: &str)       -> Result<Schedule, String>   // `sched` / `b_{limit}_sched`
//! decode_reset(compact: &str, tz: &str) -> Result<Schedule, String>   // `rsched` / `b_{limit}_rsched`
//! effective_params(cp_milli: i128, ra_milli: i128, rp_ms: i128, sched: &Schedule, now_ms: i64)
//!                                       -> Result<(i128, i128, i128), EvalError>
//! entry_params(cp_milli, ra_milli, rp_ms, &Modifier) -> Result<(i128, i128, i128), EvalError>
//! next_boundary(sched: &Schedule, reset: &Schedule, now_ms: i64) -> Result<Option<i64>, EvalError>
//! prev_reset_edge(reset: &Schedule, now_ms: i64) -> Result<Option<i64>, EvalError>
//! next_reset_edge(reset: &Schedule, now_ms: i64) -> Result<Option<i64>, EvalError>
//! ```
//!
//! An empty compact string decodes to an empty [`Schedule`] (no time zone
//! check, as in the reference). Instants are epoch milliseconds.
//! [`EvalError::OutOfRange`] is returned exactly where the reference raises
//! because a `datetime` would leave years 1..=9999 (only reachable with
//! instants thousands of years away); [`EvalError::Overflow`] where a scaled
//! value leaves `i128` (the reference would return a larger integer).
//!
//! # Floating point
//!
//! One piece of the reference is float arithmetic and is reproduced as such:
//! a scale is stored as an integer per-mille `s` and read back as the double
//! `s / 1000`; a scaled capacity or rate is `int(value * scale)`, i.e. the
//! `i128` converted to the nearest double (ties to even, as Python's
//! `int.__float__`), multiplied in IEEE double precision, and truncated
//! toward zero. Everything else is integer arithmetic; the reference's
//! `datetime.fromtimestamp(ms / 1000)` and `timestamp() * 1000` are exact
//! integer floors and products over the whole `datetime` range.

mod cron;
mod pystr;
mod scan;
mod zone;

use std::fmt;

pub use cron::Cron;
use jiff::tz::TimeZone;

/// The stored value of `b_{limit}_sched` that means "this limit has no
/// schedule of its own" (zae-limiter's `BUCKET_SCHED_NONE`). It is not a
/// compact schedule: [`decode`] rejects it; callers test for it first.
pub const BUCKET_SCHED_NONE: &str = "-";

/// The highest compact-encoding version this build reads.
pub const ENCODING_VERSION: u32 = 1;

/// Largest `scale` a stored entry may carry (as per-mille, `10^9`).
const MAX_SCALE_PER_MILLE: i128 = 1_000_000_000;
/// Largest absolute capacity or refill amount, in tokens.
const MAX_TOKENS: i128 = 1_000_000_000_000_000;
/// Largest absolute refill period, in seconds.
const MAX_PERIOD_SECONDS: i128 = 1_000_000_000;

/// What an evaluation could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// An instant whose local time falls outside years 1..=9999, where the
    /// reference's `datetime` raises.
    OutOfRange,
    /// A scaled capacity or refill amount that does not fit in `i128`.
    Overflow,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EvalError::OutOfRange => "instant outside the datetime range (years 1..=9999)",
            EvalError::Overflow => "scaled value out of range",
        })
    }
}

impl std::error::Error for EvalError {}

/// What one entry puts in force while its expression matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modifier {
    /// A reset entry: overrides nothing (from [`decode_reset`]).
    Reset,
    /// Capacity and refill amount times `per_mille / 1000`.
    Scale {
        /// The stored per-mille, 1..=10^9.
        per_mille: i64,
    },
    /// Absolute overrides; `None` keeps the base value.
    Absolute {
        /// Capacity in tokens, 1..=10^15.
        capacity: Option<i64>,
        /// Refill amount in tokens, 1..=10^15.
        refill_amount: Option<i64>,
        /// Refill period in seconds, 1..=10^9.
        refill_period_seconds: Option<i64>,
    },
}

/// One schedule entry: when it matches, and what it does then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The parsed cron expression (a match pattern, not a fire time).
    pub cron: Cron,
    /// The entry's effect.
    pub modifier: Modifier,
}

/// A decoded schedule: its entries, in stored order, and their shared zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    entries: Vec<Entry>,
    tz: TimeZone,
}

impl Schedule {
    /// A schedule with no entries (what an empty stored string decodes to).
    pub fn empty() -> Schedule {
        Schedule { entries: Vec::new(), tz: TimeZone::UTC }
    }

    /// The entries, first-match-wins order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The IANA name of the shared time zone (`"UTC"` for an empty schedule).
    pub fn tz_name(&self) -> &str {
        self.tz.iana_name().unwrap_or("UTC")
    }

    fn crons(&self) -> Vec<&Cron> {
        self.entries.iter().map(|e| &e.cron).collect()
    }
}

/// Checks and removes the leading version marker (ASCII digits).
fn strip_version<'a>(compact: &'a str, what: &str) -> Result<&'a str, String> {
    let digits = compact.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("{what} {compact:?} carries no version marker"));
    }
    let (marker, body) = compact.split_at(digits);
    if body.is_empty() {
        return Err(format!("{what} {compact:?} is a version marker with no entries after it"));
    }
    let version = pystr::parse_ascii_digits(marker)
        .ok_or_else(|| format!("{what} {compact:?} has an unreadable version marker"))?;
    if version < 1 {
        return Err(format!("{what} {compact:?} has an invalid version marker {marker:?}"));
    }
    if version > u128::from(ENCODING_VERSION) {
        return Err(format!(
            "{what} {compact:?} is encoding version {version}; this build reads up to version {ENCODING_VERSION}"
        ));
    }
    Ok(body)
}

/// Cron field tags in field order, then modifier tags.
const FIELD_TAGS: [char; 5] = ['m', 'h', 'D', 'M', 'w'];
const MODIFIER_TAGS: [char; 4] = ['s', 'c', 'a', 'p'];

fn is_tag(c: char) -> bool {
    FIELD_TAGS.contains(&c) || MODIFIER_TAGS.contains(&c)
}

/// One entry's tokens: a tag letter followed by the (non-empty) run of
/// non-tag characters up to the next tag, each tag at most once.
fn tokenise(entry: &str) -> Result<Vec<(char, &str)>, String> {
    let mut tokens: Vec<(char, &str)> = Vec::new();
    let mut rest = entry;
    while let Some(tag) = rest.chars().next() {
        let after = &rest[tag.len_utf8()..];
        let value_len = after.find(is_tag).unwrap_or(after.len());
        if !is_tag(tag) || value_len == 0 {
            let offset = entry.len() - rest.len();
            return Err(format!("malformed compact schedule entry {entry:?}: cannot parse from offset {offset}"));
        }
        if tokens.iter().any(|(t, _)| *t == tag) {
            return Err(format!("duplicate {tag:?} tag in compact schedule entry {entry:?}"));
        }
        let (value, next) = after.split_at(value_len);
        tokens.push((tag, value));
        rest = next;
    }
    Ok(tokens)
}

fn token<'a>(tokens: &[(char, &'a str)], tag: char) -> Option<&'a str> {
    tokens.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
}

/// The canonical cron text of an entry's field tokens (`*` where absent).
fn cron_text(tokens: &[(char, &str)]) -> String {
    FIELD_TAGS.iter().map(|&t| token(tokens, t).unwrap_or("*")).collect::<Vec<_>>().join(" ")
}

/// A modifier value: Python's `int()`, then the entry's bounds.
fn bounded(tokens: &[(char, &str)], tag: char, name: &str, max: i128) -> Result<Option<i64>, String> {
    let Some(text) = token(tokens, tag) else {
        return Ok(None);
    };
    let v = pystr::parse_int(text).ok_or_else(|| format!("{name} {text:?} is not an integer"))?;
    if v <= 0 {
        return Err(format!("{name} must be positive, got {text:?}"));
    }
    if v > max {
        return Err(format!("{name} {text:?} exceeds its bound"));
    }
    // `max` is at most 10^15.
    Ok(Some(v as i64))
}

fn decode_entries(compact: &str, tz: &str, reset: bool) -> Result<Schedule, String> {
    if compact.is_empty() {
        return Ok(Schedule::empty());
    }
    let what = if reset { "compact reset schedule" } else { "compact schedule" };
    let body = strip_version(compact, what)?;
    let zone = zone::lookup(tz)?;
    let mut entries = Vec::new();
    for part in body.split(';') {
        let tokens = tokenise(part)?;
        let has_modifier = tokens.iter().any(|(t, _)| MODIFIER_TAGS.contains(t));
        let modifier = if reset {
            if has_modifier {
                return Err(format!(
                    "reset schedule entry {part:?} carries a modifier token; a reset overrides no parameters"
                ));
            }
            Modifier::Reset
        } else {
            let scale = bounded(&tokens, 's', "scale (per-mille)", MAX_SCALE_PER_MILLE)?;
            let capacity = bounded(&tokens, 'c', "capacity", MAX_TOKENS)?;
            let refill_amount = bounded(&tokens, 'a', "refill_amount", MAX_TOKENS)?;
            let refill_period_seconds = bounded(&tokens, 'p', "refill_period_seconds", MAX_PERIOD_SECONDS)?;
            let absolute = capacity.is_some() || refill_amount.is_some() || refill_period_seconds.is_some();
            match (scale, absolute) {
                (Some(per_mille), false) => Modifier::Scale { per_mille },
                (None, true) => Modifier::Absolute { capacity, refill_amount, refill_period_seconds },
                _ => {
                    return Err(format!(
                        "schedule entry {part:?} must set exactly one of a scale or absolute overrides"
                    ))
                }
            }
        };
        let cron = Cron::parse(&cron_text(&tokens))?;
        entries.push(Entry { cron, modifier });
    }
    Ok(Schedule { entries, tz: zone })
}

/// Decodes a stored parameter schedule (`sched` / `b_{limit}_sched`) with
/// its hoisted time zone (`sched_tz`). See the module docs for the grammar.
pub fn decode(compact: &str, tz: &str) -> Result<Schedule, String> {
    decode_entries(compact, tz, false)
}

/// Decodes a stored reset schedule (`rsched` / `b_{limit}_rsched`): the same
/// grammar without modifier tokens, which are rejected.
pub fn decode_reset(compact: &str, tz: &str) -> Result<Schedule, String> {
    decode_entries(compact, tz, true)
}

/// `int(value * scale)` in Python: double multiply, truncate toward zero.
fn scaled(value: i128, scale: f64) -> Result<i128, EvalError> {
    // `as f64` rounds to nearest, ties to even, like `int.__float__`.
    let product = value as f64 * scale;
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0; // 2^127
    if !(-LIMIT..LIMIT).contains(&product) {
        return Err(EvalError::Overflow);
    }
    Ok(product as i128)
}

/// The (capacity, refill amount, refill period) that an entry's modifier
/// puts in force over the base values (milli-tokens, milliseconds).
///
/// A scale multiplies capacity and refill amount (truncating, floored at 1
/// milli-token; a zero base refill amount stays zero) and keeps the period;
/// absolute overrides replace the values they name (tokens and seconds times
/// 1000); a reset entry changes nothing.
pub fn entry_params(
    cp_milli: i128,
    ra_milli: i128,
    rp_ms: i128,
    modifier: &Modifier,
) -> Result<(i128, i128, i128), EvalError> {
    Ok(match *modifier {
        Modifier::Reset => (cp_milli, ra_milli, rp_ms),
        Modifier::Scale { per_mille } => {
            let scale = per_mille as f64 / 1000.0;
            let cp = scaled(cp_milli, scale)?.max(1);
            let ra = if ra_milli == 0 { 0 } else { scaled(ra_milli, scale)?.max(1) };
            (cp, ra, rp_ms)
        }
        Modifier::Absolute { capacity, refill_amount, refill_period_seconds } => (
            capacity.map_or(cp_milli, |c| i128::from(c) * 1000),
            refill_amount.map_or(ra_milli, |a| i128::from(a) * 1000),
            refill_period_seconds.map_or(rp_ms, |p| i128::from(p) * 1000),
        ),
    })
}

/// The (capacity, refill amount, refill period) in force at `now_ms`: the
/// first entry whose expression matches the local minute wins; the base
/// values when none does (or the schedule is empty).
pub fn effective_params(
    cp_milli: i128,
    ra_milli: i128,
    rp_ms: i128,
    sched: &Schedule,
    now_ms: i64,
) -> Result<(i128, i128, i128), EvalError> {
    for entry in &sched.entries {
        if scan::matches(&entry.cron, &sched.tz, now_ms)? {
            return entry_params(cp_milli, ra_milli, rp_ms, &entry.modifier);
        }
    }
    Ok((cp_milli, ra_milli, rp_ms))
}

/// The earliest instant after `now_ms` at which a bucket must be
/// re-materialised: the earlier of the next change of the active parameter
/// entry (or `now_ms` + the scan cap when none is found) and the next reset
/// edge (or `now_ms` + that entry's horizon). `None` only when both
/// schedules are empty.
pub fn next_boundary(sched: &Schedule, reset: &Schedule, now_ms: i64) -> Result<Option<i64>, EvalError> {
    let mut best: Option<i64> = None;
    if !sched.is_empty() {
        best = Some(scan::next_param_change(&sched.crons(), &sched.tz, now_ms)?);
    }
    if !reset.is_empty() {
        let mut edge = i64::MAX;
        for entry in &reset.entries {
            let (found, cap) = scan::next_rising_edge(&entry.cron, &reset.tz, now_ms)?;
            let e = match found {
                Some(e) => e,
                None => now_ms.checked_add(cap).ok_or(EvalError::OutOfRange)?,
            };
            edge = edge.min(e);
        }
        best = Some(best.map_or(edge, |b| b.min(edge)));
    }
    Ok(best)
}

/// The most recent reset edge (the instant an entry starts matching) at or
/// before `now_ms`, the latest across entries; `None` when no entry has an
/// edge within its horizon.
pub fn prev_reset_edge(reset: &Schedule, now_ms: i64) -> Result<Option<i64>, EvalError> {
    let mut best = None;
    for entry in &reset.entries {
        if let Some(e) = scan::prev_rising_edge(&entry.cron, &reset.tz, now_ms)? {
            best = Some(best.map_or(e, |b: i64| b.max(e)));
        }
    }
    Ok(best)
}

/// The first reset edge strictly after `now_ms`, the earliest across
/// entries; `None` when no entry has an edge within its horizon.
pub fn next_reset_edge(reset: &Schedule, now_ms: i64) -> Result<Option<i64>, EvalError> {
    let mut best = None;
    for entry in &reset.entries {
        if let (Some(e), _) = scan::next_rising_edge(&entry.cron, &reset.tz, now_ms)? {
            best = Some(best.map_or(e, |b: i64| b.min(e)));
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-06-01T12:00:00Z, a Saturday.
    const NOON: i64 = 1_717_243_200_000;
    const MIDNIGHT: i64 = 1_717_200_000_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn decode_shapes() {
        assert!(decode("", "Not/AZone").unwrap().is_empty());
        assert!(decode(BUCKET_SCHED_NONE, "UTC").is_err());
        assert!(decode("1", "UTC").is_err());
        assert!(decode("m5s1000", "UTC").is_err());
        assert!(decode("0m5s1000", "UTC").is_err());
        assert!(decode("2m5s1000", "UTC").is_err());
        assert!(decode("01m5s1000", "UTC").is_ok());
        let s = decode("1h9-17w1-5s500;h0-6c2000", "Europe/Paris").unwrap();
        assert_eq!(s.tz_name(), "Europe/Paris");
        assert_eq!(s.entries().len(), 2);
        assert_eq!(s.entries()[0].modifier, Modifier::Scale { per_mille: 500 });
        assert_eq!(
            s.entries()[1].modifier,
            Modifier::Absolute { capacity: Some(2000), refill_amount: None, refill_period_seconds: None }
        );
        // Exactly one of scale / absolutes; reset entries carry neither.
        assert!(decode("1m5", "UTC").is_err());
        assert!(decode("1s5c5", "UTC").is_err());
        assert!(decode("1s1s1", "UTC").is_err());
        assert!(decode_reset("1m0h0s1", "UTC").is_err());
        assert_eq!(decode_reset("1;", "UTC").unwrap().entries().len(), 2);
        // Multi-byte characters where a tag is expected.
        assert!(decode("1\u{e9}", "UTC").is_err());
        assert!(decode("1m0\u{e9}s5", "UTC").is_err());
    }

    #[test]
    fn entry_arithmetic() {
        let half = Modifier::Scale { per_mille: 500 };
        assert_eq!(entry_params(1_000_000, 1_000, 60_000, &half), Ok((500_000, 500, 60_000)));
        // Truncated, floored at one milli-token; a zero rate stays zero.
        let tiny = Modifier::Scale { per_mille: 1 };
        assert_eq!(entry_params(999, 999, 1, &tiny), Ok((1, 1, 1)));
        assert_eq!(entry_params(10_000, 0, 1, &tiny), Ok((10, 0, 1)));
        let abs = Modifier::Absolute { capacity: None, refill_amount: Some(7), refill_period_seconds: Some(60) };
        assert_eq!(entry_params(5, 5, 5, &abs), Ok((5, 7_000, 60_000)));
        assert_eq!(entry_params(5, 5, 5, &Modifier::Reset), Ok((5, 5, 5)));
        let huge = Modifier::Scale { per_mille: 1_000_000_000 };
        assert_eq!(entry_params(i128::MAX, 1, 1, &huge), Err(EvalError::Overflow));
        assert_eq!(entry_params(i128::MIN, 1, 1, &huge), Err(EvalError::Overflow));
    }

    #[test]
    fn first_match_wins() {
        let s = decode("1h12s500;s2000", "UTC").unwrap();
        assert_eq!(effective_params(1000, 1000, 1, &s, NOON), Ok((500, 500, 1)));
        assert_eq!(effective_params(1000, 1000, 1, &s, NOON + HOUR), Ok((2000, 2000, 1)));
        assert_eq!(effective_params(1000, 1000, 1, &Schedule::empty(), i64::MAX), Ok((1000, 1000, 1)));
        assert_eq!(effective_params(1000, 1000, 1, &s, i64::MAX), Err(EvalError::OutOfRange));
    }

    #[test]
    fn boundaries_and_edges() {
        let empty = Schedule::empty();
        assert_eq!(next_boundary(&empty, &empty, NOON), Ok(None));
        // Business hours end at 13:00 for an hour-granular window 9-12.
        let s = decode("1h9-12s500", "UTC").unwrap();
        assert_eq!(next_boundary(&s, &empty, NOON), Ok(Some(NOON + HOUR)));
        let daily = decode_reset("1m0h0", "UTC").unwrap();
        assert_eq!(prev_reset_edge(&daily, NOON), Ok(Some(MIDNIGHT)));
        assert_eq!(prev_reset_edge(&daily, MIDNIGHT), Ok(Some(MIDNIGHT)));
        assert_eq!(next_reset_edge(&daily, NOON), Ok(Some(MIDNIGHT + 24 * HOUR)));
        assert_eq!(next_reset_edge(&daily, MIDNIGHT), Ok(Some(MIDNIGHT + 24 * HOUR)));
        assert_eq!(next_boundary(&s, &daily, NOON - 4 * HOUR), Ok(Some(NOON - 3 * HOUR)));
        // No leap day within reach: no edge, and the boundary is the horizon.
        let leap = decode_reset("1m0h0D29M2", "UTC").unwrap();
        assert_eq!(next_reset_edge(&leap, NOON), Ok(None));
        assert_eq!(next_boundary(&empty, &leap, NOON), Ok(Some(NOON + 366 * 24 * HOUR)));
    }

    #[test]
    fn chatham_gap_terminates() {
        // 2027-09-26 in Pacific/Chatham: 02:45 +1245 jumps to 03:45 +1345.
        // From 04:18 local, the last `* 2 * * *` window opened at 02:00
        // +1245 (13:15Z the day before); the reference loops forever here.
        let reset = decode_reset("1h2", "Pacific/Chatham").unwrap();
        assert_eq!(prev_reset_edge(&reset, 1_821_887_580_000), Ok(Some(1_821_878_100_000)));
    }
}
