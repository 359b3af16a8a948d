//! IANA time zones (the tz database embedded by `jiff`), read the way
//! Python's `datetime` + `zoneinfo` read them.
//!
//! Instants are whole epoch seconds (a millisecond instant is floored first:
//! that is what `datetime.fromtimestamp(ms / 1000, tz)` yields for every
//! instant a `datetime` can hold). Local times are "wall seconds": seconds
//! since 1970-01-01T00:00 on the local clock, so that `datetime` arithmetic
//! on naive fields (`+ timedelta`, `replace(minute=0, ...)`) is plain integer
//! arithmetic.
//!
//! Two `zoneinfo` behaviours matter:
//!
//! - **fold**: converting an instant to local time marks the second pass
//!   through a repeated (fall-back) local time with `fold = 1`, and
//!   `replace(...)` keeps that mark while `+ timedelta` clears it;
//! - **local to instant**: a repeated local time takes the offset in force
//!   before the transition when `fold = 0` and the one after it when
//!   `fold = 1`; a skipped (spring-forward) local time does the same, so with
//!   `fold = 0` it is read with the pre-transition offset and lands *after*
//!   the gap.

use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

use super::EvalError;

/// 0001-01-01T00:00:00 in epoch seconds: `datetime.min`.
pub(crate) const MIN_SECS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59 in epoch seconds: `datetime.max`, whole seconds.
pub(crate) const MAX_SECS: i64 = 253_402_300_799;

/// Looks up an IANA zone by its exact (case-sensitive) name, as
/// `zoneinfo.ZoneInfo(key)` does against the `tzdata` package.
pub(crate) fn lookup(name: &str) -> Result<TimeZone, String> {
    let tz = jiff::tz::db().get(name).map_err(|e| format!("unknown timezone {name:?}: {e}"))?;
    // jiff matches names case-insensitively; zoneinfo does not.
    if tz.iana_name() != Some(name) {
        return Err(format!("unknown timezone {name:?}"));
    }
    Ok(tz)
}

/// A civil date and time, the fields `matches` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// ISO weekday, 1 = Monday ..= 7 = Sunday.
    pub weekday: u32,
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift to a calendar whose years start on March 1st so that the leap
    // day is the last day of a year; 146_097 days make 400 years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The civil fields of wall seconds.
pub(crate) fn civil(wall: i64) -> Civil {
    let days = wall.div_euclid(86_400);
    let sod = wall.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: (sod / 3600) as u32,
        minute: (sod / 60 % 60) as u32,
        second: (sod % 60) as u32,
        weekday: ((days + 3).rem_euclid(7) + 1) as u32,
    }
}

fn in_range(secs: i64) -> Result<i64, EvalError> {
    if (MIN_SECS..=MAX_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(EvalError::OutOfRange)
    }
}

fn offset_at(tz: &TimeZone, utc: i64) -> i64 {
    // jiff's timestamps stop a day short of `datetime`'s range so that every
    // offset stays civil; the last day of year 9999 (and the first of year 1)
    // borrow the offset of the nearest instant jiff can hold. No zone changes
    // offset on those days.
    let clamped = utc.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    let ts = Timestamp::from_second(clamped).unwrap_or(Timestamp::UNIX_EPOCH);
    i64::from(tz.to_offset(ts).seconds())
}

/// A local time as `datetime.fromtimestamp` yields it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Local {
    /// Wall seconds.
    pub wall: i64,
    /// `datetime.fold`: the second pass through a repeated local time.
    pub fold: bool,
}

/// Wall seconds of the instant `utc` (epoch seconds); `OutOfRange` where
/// `datetime.fromtimestamp` raises.
pub(crate) fn wall(tz: &TimeZone, utc: i64) -> Result<i64, EvalError> {
    in_range(utc)?;
    in_range(utc + offset_at(tz, utc))
}

fn jiff_datetime(wall: i64) -> Option<jiff::civil::DateTime> {
    let c = civil(wall);
    jiff::civil::DateTime::new(
        i16::try_from(c.year).ok()?,
        c.month as i8,
        c.day as i8,
        c.hour as i8,
        c.minute as i8,
        c.second as i8,
        0,
    )
    .ok()
}

/// The offsets a wall time can be read with, as (before, after) the
/// transition it falls in; equal when it is unambiguous.
fn candidate_offsets(tz: &TimeZone, wall: i64) -> Result<(i64, i64), EvalError> {
    let dt = jiff_datetime(wall).ok_or(EvalError::OutOfRange)?;
    Ok(match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            let o = i64::from(offset.seconds());
            (o, o)
        }
        AmbiguousOffset::Gap { before, after } | AmbiguousOffset::Fold { before, after } => {
            (i64::from(before.seconds()), i64::from(after.seconds()))
        }
    })
}

/// `datetime.fromtimestamp(utc, tz)` with its `fold`.
pub(crate) fn local(tz: &TimeZone, utc: i64) -> Result<Local, EvalError> {
    in_range(utc)?;
    let off = offset_at(tz, utc);
    let wall = in_range(utc + off)?;
    let (before, after) = candidate_offsets(tz, wall)?;
    // A repeated wall time reached with the post-transition offset is the
    // second pass. (In a gap no instant maps to the wall time at all.)
    let fold = before > after && off == after;
    Ok(Local { wall, fold })
}

/// `datetime.timestamp()` of a wall time carrying `fold`, in epoch seconds.
pub(crate) fn instant(tz: &TimeZone, wall: i64, fold: bool) -> Result<i64, EvalError> {
    let (before, after) = candidate_offsets(tz, wall)?;
    Ok(wall - if fold { after } else { before })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_fields() {
        assert_eq!(civil(0), Civil { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0, weekday: 4 });
        let c = civil(1_709_164_800 + 3_661); // 2024-02-29T01:01:01
        assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second, c.weekday), (2024, 2, 29, 1, 1, 1, 4));
        let c = civil(MIN_SECS);
        assert_eq!((c.year, c.month, c.day, c.weekday), (1, 1, 1, 1));
        let c = civil(MAX_SECS);
        assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second, c.weekday), (9999, 12, 31, 23, 59, 59, 5));
    }

    #[test]
    fn fold_and_gap() {
        let ny = lookup("America/New_York").unwrap();
        // 2024-11-03 05:30Z is 01:30 EDT (first pass); an hour later, 01:30 EST.
        let first = local(&ny, 1_730_611_800).unwrap();
        let second = local(&ny, 1_730_611_800 + 3600).unwrap();
        assert_eq!(first.wall, second.wall);
        assert!(!first.fold && second.fold);
        assert_eq!(instant(&ny, first.wall, false).unwrap(), 1_730_611_800);
        assert_eq!(instant(&ny, first.wall, true).unwrap(), 1_730_611_800 + 3600);
        // 2024-03-10 02:30 does not exist: fold 0 reads it as EST (07:30Z),
        // fold 1 as EDT (06:30Z).
        let gap = 1_710_037_800; // 2024-03-10T02:30 as wall seconds
        assert_eq!(instant(&ny, gap, false).unwrap(), gap + 5 * 3600);
        assert_eq!(instant(&ny, gap, true).unwrap(), gap + 4 * 3600);
    }

    #[test]
    fn names_are_exact() {
        assert!(lookup("Europe/Paris").is_ok());
        assert!(lookup("UTC").is_ok());
        assert!(lookup("europe/paris").is_err());
        assert!(lookup("utc").is_err());
        assert!(lookup("Etc/Unknown").is_err());
        assert!(lookup("").is_err());
        assert!(lookup("Europe").is_err());
    }

    #[test]
    fn range_edges() {
        let utc = lookup("UTC").unwrap();
        assert!(wall(&utc, MAX_SECS).is_ok());
        assert_eq!(wall(&utc, MAX_SECS + 1), Err(EvalError::OutOfRange));
        assert_eq!(wall(&utc, MIN_SECS - 1), Err(EvalError::OutOfRange));
        let ny = lookup("America/New_York").unwrap();
        assert_eq!(wall(&ny, MIN_SECS), Err(EvalError::OutOfRange));
        let tokyo = lookup("Asia/Tokyo").unwrap();
        assert_eq!(wall(&tokyo, MAX_SECS), Err(EvalError::OutOfRange));
        assert!(wall(&tokyo, MIN_SECS).is_ok());
    }
}
