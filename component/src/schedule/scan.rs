//! The searches behind [`next_boundary`](super::next_boundary) and the reset
//! edges: probes on local calendar unit starts, minute refinement, unreachable
//! blocks skipped whole, and per-granularity horizons.
//!
//! All instants are epoch milliseconds. Every local-time reading may fail
//! with [`EvalError::OutOfRange`] exactly where the reference raises, and the
//! searches read the same instants in the same order, so they fail alike.

use jiff::tz::TimeZone;

use super::cron::Cron;
use super::zone;
use super::EvalError;

pub(crate) const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// The finest calendar unit a scan must resolve, and so its step.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Unit {
    Minute,
    Hour,
    Day,
}

impl Unit {
    fn seconds(self) -> i64 {
        match self {
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
        }
    }

    /// How far a scan at this unit looks, in milliseconds.
    fn cap_ms(self) -> i64 {
        match self {
            Unit::Minute => 7 * DAY_MS,
            Unit::Hour => 31 * DAY_MS,
            Unit::Day => 366 * DAY_MS,
        }
    }
}

fn ovf<T>(v: Option<T>) -> Result<T, EvalError> {
    v.ok_or(EvalError::OutOfRange)
}

fn floor_minute(t: i64) -> i64 {
    t.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// Unit and horizon from the finest field any expression constrains.
pub(crate) fn granularity<'a>(crons: impl IntoIterator<Item = &'a Cron>) -> (Unit, i64) {
    let mut unit = Unit::Day;
    for c in crons {
        if c.minutes.count_ones() < 60 {
            return (Unit::Minute, Unit::Minute.cap_ms());
        }
        if c.hours.count_ones() < 24 {
            unit = Unit::Hour;
        }
    }
    (unit, unit.cap_ms())
}

/// An upper bound on the gap between two firings of `c`, in seconds, read
/// off the coarsest field it constrains.
pub(crate) fn cycle_seconds(c: &Cron) -> i64 {
    const DAY: i64 = 86_400;
    if c.months.count_ones() < 12 {
        366 * DAY
    } else if c.days.count_ones() < 31 {
        31 * DAY
    } else if c.weekdays.count_ones() < 7 {
        7 * DAY
    } else if c.hours.count_ones() < 24 {
        DAY
    } else if c.minutes.count_ones() < 60 {
        3_600
    } else {
        60
    }
}

/// Step and horizon of one reset expression: step from the finest field,
/// horizon the larger of that step's cap and the expression's cycle.
pub(crate) fn reset_scan(c: &Cron) -> (Unit, i64) {
    let (unit, cap) = granularity([c]);
    (unit, cap.max(cycle_seconds(c) * 1000))
}

/// Whether `c` matches the local minute containing `t_ms`.
pub(crate) fn matches(c: &Cron, tz: &TimeZone, t_ms: i64) -> Result<bool, EvalError> {
    let l = zone::civil(zone::wall(tz, t_ms.div_euclid(1000))?);
    Ok(c.minute_matches(l.minute) && c.hour_matches(l.hour) && c.date_matches(l.month, l.day, l.weekday))
}

/// The largest local block around `t_ms` in which `c` cannot match: the day
/// when the date fields fail, the hour when only the hour fails.
fn unreachable_block(c: &Cron, tz: &TimeZone, t_ms: i64) -> Result<Option<Unit>, EvalError> {
    let l = zone::civil(zone::wall(tz, t_ms.div_euclid(1000))?);
    Ok(if !c.date_matches(l.month, l.day, l.weekday) {
        Some(Unit::Day)
    } else if !c.hour_matches(l.hour) {
        Some(Unit::Hour)
    } else {
        None
    })
}

/// Start of the local hour or day containing `t_ms` (the `fold` of `t_ms`
/// carried to the truncated wall time).
fn unit_start(tz: &TimeZone, t_ms: i64, unit: Unit) -> Result<i64, EvalError> {
    let l = zone::local(tz, t_ms.div_euclid(1000))?;
    let wall = l.wall - l.wall.rem_euclid(unit.seconds());
    ovf(zone::instant(tz, wall, l.fold)?.checked_mul(1000))
}

/// Start of the local hour or day after the one containing `t_ms` (wall
/// clock arithmetic, so the fold is dropped).
fn unit_after(tz: &TimeZone, t_ms: i64, unit: Unit) -> Result<i64, EvalError> {
    let wall = zone::wall(tz, t_ms.div_euclid(1000))? + unit.seconds();
    if wall > zone::MAX_SECS {
        return Err(EvalError::OutOfRange);
    }
    let wall = wall - wall.rem_euclid(unit.seconds());
    ovf(zone::instant(tz, wall, false)?.checked_mul(1000))
}

/// The first local unit start strictly after `t_ms`, on the minute grid.
fn next_probe(tz: &TimeZone, t_ms: i64, unit: Unit) -> Result<i64, EvalError> {
    let t0 = floor_minute(t_ms);
    let next_minute = ovf(t0.checked_add(MINUTE_MS))?;
    if unit == Unit::Minute {
        return Ok(next_minute);
    }
    Ok(floor_minute(unit_after(tz, t_ms, unit)?).max(next_minute))
}

/// The last local unit start strictly before `t_ms`, on the minute grid.
fn prev_probe(tz: &TimeZone, t_ms: i64, unit: Unit) -> Result<i64, EvalError> {
    let t0 = floor_minute(t_ms);
    let prev_minute = ovf(t0.checked_sub(MINUTE_MS))?;
    if unit == Unit::Minute {
        return Ok(prev_minute);
    }
    let mut s = unit_start(tz, t0, unit)?;
    if s >= t0 {
        s = unit_start(tz, prev_minute, unit)?;
    }
    Ok(floor_minute(s).min(prev_minute))
}

/// Index of the first expression matching at `t_ms`.
fn active(crons: &[&Cron], tz: &TimeZone, t_ms: i64) -> Result<Option<usize>, EvalError> {
    for (i, c) in crons.iter().enumerate() {
        if matches(c, tz, t_ms)? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// The first instant after `now_ms` at which the first-matching expression
/// changes, or `now_ms + cap` when none does within the cap. `crons` must not
/// be empty.
pub(crate) fn next_param_change(crons: &[&Cron], tz: &TimeZone, now_ms: i64) -> Result<i64, EvalError> {
    let (unit, cap) = granularity(crons.iter().copied());
    let current = active(crons, tz, now_ms)?;
    let horizon = ovf(now_ms.checked_add(cap))?;
    let mut lo = floor_minute(now_ms);
    let mut probe = next_probe(tz, now_ms, unit)?;
    while probe <= horizon {
        if active(crons, tz, probe)? != current {
            // The change lies in (lo, probe]: walk it minute by minute.
            let mut fine = lo + MINUTE_MS;
            while fine < probe {
                if active(crons, tz, fine)? != current {
                    return Ok(fine);
                }
                fine += MINUTE_MS;
            }
            return Ok(probe);
        }
        lo = probe;
        probe = next_probe(tz, probe, unit)?;
    }
    Ok(horizon)
}

/// The earliest minute at or after `start_ms` (and not past `horizon_ms`)
/// whose match state is `want`.
fn earliest_where(
    c: &Cron,
    tz: &TimeZone,
    want: bool,
    start_ms: i64,
    horizon_ms: i64,
    unit: Unit,
) -> Result<Option<i64>, EvalError> {
    let minutes = start_ms.div_euclid(MINUTE_MS) + i64::from(start_ms.rem_euclid(MINUTE_MS) != 0);
    let t = ovf(minutes.checked_mul(MINUTE_MS))?;
    if t <= horizon_ms && matches(c, tz, t)? == want {
        return Ok(Some(t));
    }
    let mut probe = next_probe(tz, t, unit)?;
    while probe <= horizon_ms {
        if matches(c, tz, probe)? == want {
            return Ok(Some(probe));
        }
        let block = if want { unreachable_block(c, tz, probe)? } else { None };
        probe = match block {
            None => next_probe(tz, probe, unit)?,
            Some(b) => floor_minute(unit_after(tz, probe, b)?).max(probe + MINUTE_MS),
        };
    }
    Ok(None)
}

/// The latest minute at or before `start_ms` (and not before `floor_ms`)
/// whose match state is `want`.
fn latest_where(
    c: &Cron,
    tz: &TimeZone,
    want: bool,
    start_ms: i64,
    floor_ms: i64,
    unit: Unit,
) -> Result<Option<i64>, EvalError> {
    let t = floor_minute(start_ms);
    if t < floor_ms {
        return Ok(None);
    }
    if matches(c, tz, t)? == want {
        return Ok(Some(t));
    }
    // Every instant in [probe, hi) shares probe's match state.
    let mut hi = t;
    let mut probe = prev_probe(tz, t, unit)?;
    while probe >= floor_ms {
        if matches(c, tz, probe)? == want {
            return Ok(Some(hi - MINUTE_MS));
        }
        let block = if want { unreachable_block(c, tz, probe)? } else { None };
        hi = match block {
            None => probe,
            Some(b) => {
                let start = floor_minute(unit_start(tz, probe, b)?);
                // The one divergence from the reference. A block whose local
                // start lies in a spring-forward gap that does not begin on the
                // hour (Pacific/Chatham's 02:45 -> 03:45) maps, with fold 0,
                // to an instant *after* the probe; the reference then keeps
                // `hi`, computes the same probe again and never returns.
                // Moving `hi` to the probe keeps the invariant and makes
                // progress.
                if start < hi {
                    start
                } else {
                    probe
                }
            }
        };
        probe = prev_probe(tz, hi, unit)?;
    }
    Ok(None)
}

/// The first rising edge (entry into matching) strictly after `now_ms`.
pub(crate) fn next_rising_edge(c: &Cron, tz: &TimeZone, now_ms: i64) -> Result<(Option<i64>, i64), EvalError> {
    let (unit, cap) = reset_scan(c);
    let horizon = ovf(now_ms.checked_add(cap))?;
    let mut start = ovf((now_ms.div_euclid(MINUTE_MS) + 1).checked_mul(MINUTE_MS))?;
    if matches(c, tz, now_ms)? {
        match earliest_where(c, tz, false, start, horizon, unit)? {
            None => return Ok((None, cap)),
            Some(gap) => start = gap,
        }
    }
    Ok((earliest_where(c, tz, true, start, horizon, unit)?, cap))
}

/// The latest rising edge at or before `now_ms`.
pub(crate) fn prev_rising_edge(c: &Cron, tz: &TimeZone, now_ms: i64) -> Result<Option<i64>, EvalError> {
    let (unit, cap) = reset_scan(c);
    let floor = ovf(now_ms.checked_sub(cap))?;
    let Some(on) = latest_where(c, tz, true, now_ms, floor, unit)? else {
        return Ok(None);
    };
    let Some(off) = latest_where(c, tz, false, on - MINUTE_MS, floor, unit)? else {
        return Ok(None);
    };
    Ok(Some(off + MINUTE_MS))
}
