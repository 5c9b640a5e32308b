//! Numbers as Kadoa sent them, compared exactly: `24.99` is 2499 × 10⁻², never a double.
//! A value counts as a number when it is a JSON number, or a string holding one with at
//! most a currency sign before it (`"$19.99"`, `" 20 "`); anything else is not a number
//! and never meets a numeric condition.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use serde_json::value::RawValue;

/// Longest text read as a number, and the largest exponent (`1e400`): beyond them a value
/// is "not a number", so no scraped value can make a comparison allocate without bound.
const MAX_NUMBER_CHARS: usize = 100;
const MAX_EXPONENT: i64 = 400;
/// Signs that may stand before a number in a scraped price.
const CURRENCY_SIGNS: &[char] = &['$', '€', '£', '¥'];

/// An exact decimal number and the text it was read from (kept as that text in JSON).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Number {
    value: BigDecimal,
    text: String,
}

impl Number {
    /// `text` as a number: a plain decimal (`-1.5`, `2e3`), or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_NUMBER_CHARS || !plain_decimal(text) {
            return None;
        }
        let value = BigDecimal::from_str(text).ok()?;
        Some(Self { value, text: text.to_owned() })
    }

    /// A field's value as a number: a JSON number, or a string holding one (after an
    /// optional currency sign).
    pub fn of_value(raw: &RawValue) -> Option<Self> {
        let text = raw.get();
        if text.starts_with('"') {
            let unquoted: String = serde_json::from_str(text).ok()?;
            let trimmed = unquoted.trim();
            return Self::parse(trimmed.strip_prefix(CURRENCY_SIGNS).unwrap_or(trimmed));
        }
        Self::parse(text)
    }

    /// The text it was read from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `self - other`, exactly.
    pub fn minus(&self, other: &Number) -> BigDecimal {
        &self.value - &other.value
    }

    /// The value.
    pub fn value(&self) -> &BigDecimal {
        &self.value
    }
}

/// Sign, digits with at most one point, and an optional exponent within bounds.
fn plain_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let digits = mantissa.replacen('.', "", 1);
    let mantissa_ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && mantissa != ".";
    let exponent_ok = exponent.is_none_or(|exponent| {
        let digits = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && exponent.parse::<i64>().is_ok_and(|e| e.abs() <= MAX_EXPONENT)
    });
    mantissa_ok && exponent_ok
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for Number {}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value.cmp(&other.value)
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Number {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text).ok_or_else(|| format!("{text:?} is not a number (write it like 20, 19.99 or 1e3)"))
    }
}

impl TryFrom<String> for Number {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Number> for String {
    fn from(number: Number) -> String {
        number.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn n(text: &str) -> Number {
        Number::parse(text).unwrap()
    }

    #[test]
    fn numbers_compare_exactly_whatever_their_digits() {
        assert!(n("19.99") < n("20"));
        assert_eq!(n("20"), n("20.000"));
        assert_eq!(n("2e1"), n("20"));
        // A double cannot tell these apart; the rules can.
        assert!(n("0.30000000000000001") > n("0.3"));
        assert!(n("98765432109876543211") > n("98765432109876543210"));
        assert!(n("-5") < n("-4.999"));
        assert_eq!(n("24.99").minus(&n("19.99")), BigDecimal::from_str("5").unwrap());
    }

    #[test]
    fn values_are_numbers_when_kadoa_sent_one_or_a_string_holding_one() {
        assert_eq!(Number::of_value(&raw("19.99")), Some(n("19.99")));
        assert_eq!(Number::of_value(&raw("\"19.99\"")), Some(n("19.99")));
        assert_eq!(Number::of_value(&raw("\" $19.99 \"")), Some(n("19.99")));
        assert_eq!(Number::of_value(&raw("\"€1e2\"")), Some(n("100")));
        assert_eq!(Number::of_value(&raw("1e400")), Some(n("1e400")));
        for not_a_number in [
            "\"19,99\"",
            "\"about 20\"",
            "\"20 USD\"",
            "\"\"",
            "null",
            "true",
            "[1]",
            "{\"a\":1}",
            "\"$\"",
            "\".\"",
            "\"1e401\"",
            "1e99999999",
            "\"1..2\"",
            "\"--1\"",
            "\"0x10\"",
            "\"NaN\"",
            "\"inf\"",
            "\"1e\"",
        ] {
            assert_eq!(Number::of_value(&raw(not_a_number)), None, "{not_a_number}");
        }
        let long = format!("\"{}\"", "9".repeat(101));
        assert_eq!(Number::of_value(&raw(&long)), None);
    }

    #[test]
    fn an_operand_that_is_not_a_number_is_named_in_the_error() {
        let error = "twenty".parse::<Number>().unwrap_err();
        assert!(error.contains("\"twenty\" is not a number"), "{error}");
        assert_eq!(String::from(n("1.50")), "1.50", "the text is kept as written");
    }
}
