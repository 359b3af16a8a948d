//! Five-field cron expressions, parsed to the field sets cronsim 2.8 yields
//! and narrowed the way zae-limiter's `parse_cron` narrows them.
//!
//! The grammar, per field, after the whole expression is upper-cased and
//! split on whitespace:
//!
//! - `*` is the field's whole range;
//! - a `,`-separated list is the union of its items (checked first, so a list
//!   item may itself be a step or a range);
//! - `a/n` takes every `n`th value: of `a`'s set sorted when it has several
//!   members, of `a..=field maximum` when it has one (so `5/15` and even
//!   `5-5/15` mean 5, 20, 35, 50); `n` is ASCII digits, at least 1, unbounded;
//! - `a-b` is the inclusive range, `b >= a`;
//! - a number is ASCII digits inside the field's range (leading zeros fine);
//!   months also take `JAN`..`DEC`, weekdays `SUN`..`SAT` (Sunday is 0 by
//!   name and both 0 and 7 by number).
//!
//! The extended tokens (`L`, `LW` in the day of month, `nL` and `n#k` in the
//! day of week) parse in cronsim but are refused here, as zae-limiter refuses
//! them. So is an expression whose days can never exist when the day of week
//! is unconstrained (`* * 30 2 *`).
//!
//! The day rule: when the day-of-month or the day-of-week field *starts with*
//! `*`, both must match; otherwise either may (`day_and`).

use super::pystr::{parse_ascii_digits, split_whitespace};

/// Which of the five fields (plus cronsim's implicit seconds) is parsed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    Minute,
    Hour,
    Day,
    Month,
    Weekday,
}

impl Field {
    /// The inclusive range of plain numbers the field accepts.
    fn range(self) -> (u32, u32) {
        match self {
            Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::Day => (1, 31),
            Field::Month => (1, 12),
            Field::Weekday => (0, 7),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::Day => "day-of-month",
            Field::Month => "month",
            Field::Weekday => "day-of-week",
        }
    }
}

const MONTH_NAMES: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// The longest each month can be, February counted as 29; index 0 unused.
const MONTH_MAX_DAYS: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A set of small numbers (0..=63) as a bit mask.
type Set = u64;

/// A parsed expression: the values each field matches.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cron {
    /// Bit `n` set when minute `n` (0..=59) matches.
    pub minutes: u64,
    /// Bit `n` set when hour `n` (0..=23) matches.
    pub hours: u64,
    /// Bit `n` set when day of month `n` (1..=31) matches.
    pub days: u64,
    /// Bit `n` set when month `n` (1..=12) matches.
    pub months: u64,
    /// Bit `n` set when ISO weekday `n` (1 = Monday ..= 7 = Sunday) matches.
    pub weekdays: u64,
    /// Whether day of month and day of week must both match (else either).
    pub day_and: bool,
}

fn err(field: Field) -> String {
    format!("bad {} field", field.name())
}

fn full(field: Field) -> Set {
    let (lo, hi) = field.range();
    (lo..=hi).fold(0, |s, v| s | 1 << v)
}

/// One number or name of `field` (cronsim's `Field.int`).
fn number(field: Field, s: &str) -> Result<u32, String> {
    if field == Field::Month {
        if let Some(i) = MONTH_NAMES.iter().position(|n| *n == s) {
            return Ok(i as u32 + 1);
        }
    }
    if field == Field::Weekday {
        if let Some(i) = DAY_NAMES.iter().position(|n| *n == s) {
            return Ok(i as u32);
        }
    }
    let v = parse_ascii_digits(s).ok_or_else(|| err(field))?;
    let (lo, hi) = field.range();
    if v < u128::from(lo) || v > u128::from(hi) {
        return Err(err(field));
    }
    Ok(v as u32)
}

fn members(set: Set) -> impl Iterator<Item = u32> {
    (0..64u32).filter(move |v| set & (1 << v) != 0)
}

/// One field spec (cronsim's `Field.parse`), on upper-cased text.
fn parse_field(field: Field, s: &str) -> Result<Set, String> {
    if s == "*" {
        return Ok(full(field));
    }
    if s.contains(',') {
        let mut set = 0;
        for term in s.split(',') {
            set |= parse_field(field, term)?;
        }
        return Ok(set);
    }
    if field == Field::Weekday && (s.contains('L') || s.contains('#')) {
        // `nL` / `n#k`: either malformed or an extended token; both refused.
        return Err(format!("{} field uses an unsupported extended token (L or #)", field.name()));
    }
    if let Some((term, step)) = s.split_once('/') {
        let step = parse_ascii_digits(step).ok_or_else(|| err(field))?;
        if step == 0 {
            return Err(err(field));
        }
        let items = parse_field(field, term)?;
        let step = usize::try_from(step).unwrap_or(usize::MAX);
        let sorted: Vec<u32> = if items.count_ones() == 1 {
            let start = items.trailing_zeros();
            (start..=field.range().1).collect()
        } else {
            members(items).collect()
        };
        return Ok(sorted.into_iter().step_by(step).fold(0, |s, v| s | 1 << v));
    }
    if let Some((a, b)) = s.split_once('-') {
        let start = number(field, a)?;
        let end = number(field, b)?;
        if end < start {
            return Err(err(field));
        }
        return Ok((start..=end).fold(0, |s, v| s | 1 << v));
    }
    if field == Field::Day && (s == "L" || s == "LW") {
        return Err(format!("{} field uses an unsupported extended token (L or W)", field.name()));
    }
    Ok(1 << number(field, s)?)
}

impl Cron {
    /// Parses a 5-field expression as zae-limiter's `parse_cron` does.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        if split_whitespace(expr).len() != 5 {
            return Err(format!("invalid cron expression {expr:?}: exactly 5 fields are required"));
        }
        let upper = expr.to_uppercase();
        let parts = split_whitespace(&upper);
        let [minute, hour, day, month, weekday] = parts[..] else {
            return Err(format!("invalid cron expression {expr:?}: wrong number of fields"));
        };
        let bad = |e: String| format!("invalid cron expression {expr:?}: {e}");
        let minutes = parse_field(Field::Minute, minute).map_err(bad)?;
        let hours = parse_field(Field::Hour, hour).map_err(bad)?;
        let days = parse_field(Field::Day, day).map_err(bad)?;
        let months = parse_field(Field::Month, month).map_err(bad)?;
        let mut weekdays = parse_field(Field::Weekday, weekday).map_err(bad)?;
        let day_and = day.starts_with('*') || weekday.starts_with('*');
        let min_day = days.trailing_zeros();
        if day_and && min_day > 29 {
            let longest = members(months).map(|m| MONTH_MAX_DAYS[m as usize]).max().unwrap_or(0);
            if min_day > longest {
                return Err(bad(err(Field::Day)));
            }
        }
        // Sunday: 0 folds into ISO's 7.
        if weekdays & 1 != 0 {
            weekdays = (weekdays & !1) | 1 << 7;
        }
        Ok(Cron { minutes, hours, days, months, weekdays, day_and })
    }

    /// Whether the date fields admit this local date (the day-of-month /
    /// day-of-week rule included).
    pub fn date_matches(&self, month: u32, day: u32, iso_weekday: u32) -> bool {
        if self.months & (1 << month) == 0 {
            return false;
        }
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << iso_weekday) != 0;
        if self.day_and {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether the hour field admits `hour`.
    pub fn hour_matches(&self, hour: u32) -> bool {
        self.hours & (1 << hour) != 0
    }

    /// Whether the minute field admits `minute`.
    pub fn minute_matches(&self, minute: u32) -> bool {
        self.minutes & (1 << minute) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> u64 {
        v.iter().fold(0, |s, x| s | 1 << x)
    }

    #[test]
    fn steps_ranges_lists() {
        let c = Cron::parse("5/15 9-17 */10 JAN,jul-Sep mon-fri").unwrap();
        assert_eq!(c.minutes, set(&[5, 20, 35, 50]));
        assert_eq!(c.hours, set(&(9..=17).collect::<Vec<_>>()));
        assert_eq!(c.days, set(&[1, 11, 21, 31]));
        assert_eq!(c.months, set(&[1, 7, 8, 9]));
        assert_eq!(c.weekdays, set(&[1, 2, 3, 4, 5]));
        assert!(c.day_and);
        // A one-member term before `/` runs to the field's end.
        assert_eq!(Cron::parse("5-5/20 * * * *").unwrap().minutes, set(&[5, 25, 45]));
        // Several members: every n-th of the sorted set.
        assert_eq!(Cron::parse("1-10/3 * * * *").unwrap().minutes, set(&[1, 4, 7, 10]));
        assert_eq!(Cron::parse("0 0 * * SUN/2").unwrap().weekdays, set(&[2, 4, 6, 7]));
        assert_eq!(Cron::parse("0 0 * * 7/2").unwrap().weekdays, set(&[7]));
        assert_eq!(Cron::parse("0 0 * * 0-7").unwrap().weekdays, set(&[1, 2, 3, 4, 5, 6, 7]));
        assert_eq!(Cron::parse("0 0 * * */99999999999999999999999999999999999999999").unwrap().weekdays, set(&[7]));
        assert_eq!(Cron::parse("007 0 * * *").unwrap().minutes, set(&[7]));
    }

    #[test]
    fn day_rule() {
        assert!(!Cron::parse("0 0 1 * 1").unwrap().day_and);
        assert!(Cron::parse("0 0 */2 * 1").unwrap().day_and);
        assert!(Cron::parse("0 0 1 * *").unwrap().day_and);
        assert!(Cron::parse("0 0 30 2 *").is_err());
        assert!(Cron::parse("0 0 31 4,6 *").is_err());
        assert!(Cron::parse("0 0 30 2 1").is_ok());
        assert!(Cron::parse("0 0 30 1,2 *").is_ok());
    }

    #[test]
    fn refused() {
        for bad in [
            "* * L * *",
            "* * LW * *",
            "* * 15W * *",
            "* * * * 5L",
            "* * * * FRI#2",
            "* * L/2 * *",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "1,,2 * * * *",
            "-5 * * * *",
            "** * * * *",
            "* * * * SAT-SUN",
            "\u{663} * * * *",
            "1/2/3 * * * *",
            "* * * JANUARY *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
        // Long s upper-cases to S.
        assert_eq!(Cron::parse("0 0 * * \u{17f}un").unwrap().weekdays, set(&[7]));
    }
}
