//! The small parts of Python's text handling that the stored schedule grammar
//! depends on: `str.isspace`, `str.split()` with no separator, and `int(s)` in
//! base 10 (signs, underscores, surrounding whitespace, decimal digits of any
//! script, the 4300-digit conversion limit).

/// Python's `str.isspace` for one character: general category `Zs` or
/// bidirectional class `WS`, `B` or `S`. That is Unicode's `White_Space` set
/// plus the four ASCII separators U+001C..U+001F.
pub(crate) fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Python's `s.split()`: runs of [`is_space`] separate, empty pieces dropped.
pub(crate) fn split_whitespace(s: &str) -> Vec<&str> {
    s.split(is_space).filter(|p| !p.is_empty()).collect()
}

/// The code points of every Unicode digit zero (general category `Nd`); each
/// starts a run of ten consecutive digits 0..9. Unicode 14, the database of
/// the Python that generated the conformance cases.
const DIGIT_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0,
    0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620,
    0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0,
    0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60,
    0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a decimal digit of any script (Python's `unicodedata.decimal`).
pub(crate) fn decimal_value(c: char) -> Option<u8> {
    let cp = u32::from(c);
    let i = DIGIT_ZEROS.partition_point(|&z| z <= cp);
    let zero = *DIGIT_ZEROS.get(i.checked_sub(1)?)?;
    let d = cp.checked_sub(zero)?;
    u8::try_from(d).ok().filter(|d| *d < 10)
}

/// Python's limit on the digits of an `int(str)` conversion
/// (`sys.get_int_max_str_digits()`, default 4300).
pub(crate) const MAX_STR_DIGITS: usize = 4300;

/// Python's `int(s)` (base 10). `None` where Python raises `ValueError`.
///
/// A magnitude beyond `i128` saturates to `i128::MAX` / `i128::MIN`: every
/// caller compares the result against bounds far inside `i128`, so a
/// saturated value is rejected exactly where Python's unbounded one is.
pub(crate) fn parse_int(s: &str) -> Option<i128> {
    // CPython first maps every non-ASCII whitespace character to a space and
    // every non-ASCII decimal digit to its ASCII digit; ASCII stays as is, so
    // U+001C..U+001F are *not* whitespace here, unlike in `str.split`.
    let mut bytes = Vec::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            bytes.push(c as u8);
        } else if is_space(c) {
            bytes.push(b' ');
        } else if let Some(d) = decimal_value(c) {
            bytes.push(b'0' + d);
        } else {
            return None;
        }
    }
    let ascii_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let start = bytes.iter().position(|b| !ascii_space(b))?;
    let end = bytes.iter().rposition(|b| !ascii_space(b))? + 1;
    let mut body = bytes.get(start..end)?;
    let negative = match body.first() {
        Some(b'-') => {
            body = &body[1..];
            true
        }
        Some(b'+') => {
            body = &body[1..];
            false
        }
        _ => false,
    };
    // Digits, with single underscores allowed only between two digits.
    if !body.first()?.is_ascii_digit() || !body.last()?.is_ascii_digit() {
        return None;
    }
    let mut value: i128 = 0;
    let mut digits = 0usize;
    let mut prev_underscore = false;
    for &b in body {
        if b == b'_' {
            if prev_underscore {
                return None;
            }
            prev_underscore = true;
            continue;
        }
        if !b.is_ascii_digit() {
            return None;
        }
        prev_underscore = false;
        digits += 1;
        let d = i128::from(b - b'0');
        value = value.saturating_mul(10).saturating_add(d);
    }
    if digits > MAX_STR_DIGITS {
        return None;
    }
    Some(if negative { value.saturating_neg() } else { value })
}

/// Python's `int(s)` for a string already known to hold only ASCII digits
/// (cronsim's field numbers, the version marker): `None` past the digit
/// limit, saturating at `u128::MAX` above that.
pub(crate) fn parse_ascii_digits(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > MAX_STR_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u128, |v, b| v.saturating_mul(10).saturating_add(u128::from(b - b'0'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_grammar() {
        assert_eq!(parse_int(" 1_0 "), Some(10));
        assert_eq!(parse_int("+5"), Some(5));
        assert_eq!(parse_int("-0"), Some(0));
        assert_eq!(parse_int("\u{663}"), Some(3));
        assert_eq!(parse_int("1\u{a0}"), Some(1));
        assert_eq!(parse_int("\u{3000}7\u{85}"), Some(7));
        for bad in ["", " ", "1__0", "_1", "1_", "- 5", "\u{1c}5", "5\0", "0x10", "1.0", "+", "²"] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
        let limit = format!("{}1", "0".repeat(MAX_STR_DIGITS - 1));
        assert_eq!(parse_int(&limit), Some(1));
        assert_eq!(parse_int(&format!("0{limit}")), None);
        assert_eq!(parse_int(&"9".repeat(60)), Some(i128::MAX));
        assert_eq!(parse_int(&format!("-{}", "9".repeat(60))), Some(-i128::MAX));
    }

    #[test]
    fn digits_and_spaces() {
        assert_eq!(decimal_value('0'), Some(0));
        assert_eq!(decimal_value('\u{1D7FF}'), Some(9));
        assert_eq!(decimal_value('\u{FF19}'), Some(9));
        assert_eq!(decimal_value('\u{FF1A}'), None);
        assert_eq!(decimal_value('a'), None);
        assert_eq!(decimal_value('\u{2F}'), None);
        assert_eq!(split_whitespace(" a\u{1c}b\u{3000}c  "), ["a", "b", "c"]);
        assert!(!is_space('\u{200b}'));
    }
}
