//! NumericDate (RFC 7519 §2), read one way everywhere: the claims of every token class, the
//! `iat` a Txn-Token replacement is dated by, the decision cache's expiry, the CLI's displays.
//!
//! A NumericDate here is a JSON integer from 0 to [`MAX_NUMERIC_DATE`], written without a
//! fraction or an exponent. RFC 7519 allows non-integer values, but a date that two readers
//! can take differently (`1767225540.0` is an integer to one and a float to another) is how a
//! check gets skipped: one reader of every date, and a refusal for anything else.

use serde_json::Value;

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z. Anything later is an attempt to
/// overflow arithmetic on times, not a date.
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// Why a value is not a NumericDate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DateError {
    /// Not a JSON number written as an integer (a string, a fraction, an exponent, `-0`, …).
    NotAnInteger,
    /// An integer outside 0 to [`MAX_NUMERIC_DATE`].
    OutOfRange,
}

impl std::fmt::Display for DateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DateError::NotAnInteger => "not a whole number of seconds written as an integer",
            DateError::OutOfRange => "outside 0 to the end of year 9999",
        })
    }
}

impl std::error::Error for DateError {}

/// Reads a NumericDate. `serde_json` (without `arbitrary_precision`) keeps a number as an
/// integer exactly when its text has neither fraction nor exponent, so `as_i64`/`as_u64`
/// tell the written form apart; `-0` is read as a float and refused.
pub fn numeric_date(v: &Value) -> Result<i64, DateError> {
    let Value::Number(n) = v else {
        return Err(DateError::NotAnInteger);
    };
    if n.is_f64() {
        return Err(DateError::NotAnInteger);
    }
    match n.as_i64() {
        Some(d) if (0..=MAX_NUMERIC_DATE).contains(&d) => Ok(d),
        _ => Err(DateError::OutOfRange),
    }
}

/// Whether `d` (a date from another encoding, such as a Biscuit's integer terms) is in the
/// NumericDate range.
pub fn in_date_range(d: i64) -> bool {
    (0..=MAX_NUMERIC_DATE).contains(&d)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<i64, DateError> {
        numeric_date(&crate::json::parse(text.as_bytes(), 4).unwrap())
    }

    #[test]
    fn integers_only_in_range() {
        assert_eq!(read("0"), Ok(0));
        assert_eq!(read("1767225540"), Ok(1_767_225_540));
        assert_eq!(read("253402300799"), Ok(MAX_NUMERIC_DATE));
        assert_eq!(read("253402300800"), Err(DateError::OutOfRange));
        assert_eq!(read("-1"), Err(DateError::OutOfRange));
        assert_eq!(read("18446744073709551615"), Err(DateError::OutOfRange));
        for text in [
            "1767225540.0",
            "1.76722554e9",
            "1767225540e0",
            "1E3",
            "-0",
            "0.5",
            "\"1767225540\"",
            "true",
            "null",
            "[1]",
        ] {
            assert_eq!(read(text), Err(DateError::NotAnInteger), "{text}");
        }
    }
}
