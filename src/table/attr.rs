//! Values as DynamoDB holds them ([`Attr`]), built from JSON by DynamoDB's own rules, so
//! that what Kadoa sends is stored exactly when DynamoDB can hold it, and losslessly as
//! text when it cannot.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// One item: attribute name → value. Ordered, so items compare and print stably.
pub type Item = BTreeMap<String, Attr>;

/// A DynamoDB attribute value (the kinds this product writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    /// String
    S(String),
    /// Number, as its decimal text, in the form DynamoDB gives back
    N(String),
    /// A JSON number DynamoDB would not give back as sent: beyond its range or 38 digits,
    /// or not in the form it normalises to (`1.50` comes back `1.5`, `-0` as `0`, `1e5` as
    /// `100000`). Stored as a string set of its one exact text: no JSON value is stored as
    /// a set otherwise, so it reads back as that number, digit for digit.
    NumberText(String),
    /// Boolean
    Bool(bool),
    /// Null
    Null,
    /// List
    L(Vec<Attr>),
    /// Map: each key once, in key order. (A list of pairs rather than a tree: a field of
    /// a difference has three entries, and tree nodes would triple the plan's memory.)
    M(Vec<(String, Attr)>),
}

/// DynamoDB's limit on the significant digits of a number.
pub const MAX_NUMBER_DIGITS: usize = 38;
/// DynamoDB's limit on an attribute name (map keys included).
pub const MAX_NAME_BYTES: usize = 65_535;
/// DynamoDB's maximum nesting of maps and lists.
pub const MAX_NESTING: usize = 32;

impl Attr {
    /// A string value.
    pub fn s(text: impl Into<String>) -> Self {
        Self::S(text.into())
    }

    /// The value under `key`, when this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Attr> {
        match self {
            Self::M(entries) => entries.iter().find(|(name, _)| name == key).map(|(_, value)| value),
            _ => None,
        }
    }

    /// A whole number.
    pub fn n(number: impl Into<i128>) -> Self {
        Self::N(number.into().to_string())
    }

    /// The value of a JSON document, by these rules:
    /// - a number is a DynamoDB number when DynamoDB holds it and gives back the exact text
    ///   Kadoa sent (at most 38 significant digits, magnitude from 1e-130 to below 1e126,
    ///   written as DynamoDB writes it); otherwise [`Attr::NumberText`], its exact text;
    /// - an object with a key DynamoDB refuses (empty, or over 64 KB) is stored as a
    ///   string holding its JSON text;
    /// - everything else maps to its own type (string S, bool BOOL, null NULL, array L,
    ///   object M).
    ///
    /// Values nested deeper than DynamoDB's 32 levels are refused ([`FromJsonError::TooDeep`])
    /// as soon as the 33rd level is met, so no input can recurse without bound.
    pub fn from_json(raw: &RawValue) -> Result<Self, FromJsonError> {
        Self::from_json_at(raw, 0)
    }

    /// [`Attr::from_json`] for a value that sits `levels` maps and lists deep in its item:
    /// those count towards DynamoDB's 32.
    pub fn from_json_below(raw: &RawValue, levels: usize) -> Result<Self, FromJsonError> {
        Self::from_json_at(raw, levels)
    }

    fn from_json_at(raw: &RawValue, depth: usize) -> Result<Self, FromJsonError> {
        let text = raw.get().trim();
        let nested = matches!(text.as_bytes().first(), Some(b'{' | b'['));
        if nested && depth >= MAX_NESTING {
            return Err(FromJsonError::TooDeep);
        }
        Ok(match text.as_bytes().first() {
            Some(b'{') => {
                let map: BTreeMap<String, &RawValue> = serde_json::from_str(text)?;
                if map.keys().any(|key| key.is_empty() || key.len() > MAX_NAME_BYTES) {
                    return Ok(Self::S(text.to_owned()));
                }
                let entries = map.into_iter().map(|(key, value)| Ok((key, Self::from_json_at(value, depth + 1)?)));
                Self::M(entries.collect::<Result<_, FromJsonError>>()?)
            }
            Some(b'[') => {
                let list: Vec<&RawValue> = serde_json::from_str(text)?;
                Self::L(list.into_iter().map(|v| Self::from_json_at(v, depth + 1)).collect::<Result<_, _>>()?)
            }
            // Without escapes the text between the quotes is the string (serde_json checked
            // it is JSON, and JSON has no raw control characters).
            Some(b'"') if !text.contains('\\') => Self::S(text.get(1..text.len() - 1).unwrap_or_default().to_owned()),
            Some(b'"') => Self::S(serde_json::from_str(text)?),
            Some(b't') => Self::Bool(true),
            Some(b'f') => Self::Bool(false),
            Some(b'n') => Self::Null,
            // What is left is a number (serde_json read the value as JSON).
            _ if fits_dynamodb_number(text) && in_dynamodb_form(text) => Self::N(text.to_owned()),
            _ => Self::NumberText(text.to_owned()),
        })
    }
}

/// Why a JSON value cannot become an attribute.
#[derive(Debug)]
pub enum FromJsonError {
    /// Nested deeper than DynamoDB's 32 levels.
    TooDeep,
    /// Not JSON (serde_json read it once already, so this would be our fault).
    Json(serde_json::Error),
}

impl From<serde_json::Error> for FromJsonError {
    fn from(error: serde_json::Error) -> Self {
        Self::Json(error)
    }
}

impl std::fmt::Display for FromJsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooDeep => write!(
                f,
                "nests more than {} levels of objects and arrays; DynamoDB stores at most {}",
                MAX_NESTING, MAX_NESTING
            ),
            Self::Json(error) => write!(f, "{error}"),
        }
    }
}

/// Whether DynamoDB stores `number` (JSON number text) as a number: zero, or at most 38
/// significant digits with a magnitude between 1e-130 and 9.99…e125.
pub fn fits_dynamodb_number(number: &str) -> bool {
    let unsigned = number.strip_prefix('-').unwrap_or(number);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => match unsigned[at + 1..].parse::<i64>() {
            Ok(exponent) => (&unsigned[..at], exponent),
            Err(_) => return false, // an exponent beyond i64 is beyond DynamoDB's range
        },
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return false;
    }
    // The digits without leading zeros: their count and the power of ten of the last one.
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).skip_while(|&b| b == b'0').collect();
    let Some(last_nonzero) = digits.iter().rposition(|&b| b != b'0') else {
        return true; // zero
    };
    let significant = last_nonzero + 1;
    let trailing_zeros = (digits.len() - significant) as i64;
    let Some(last_power) = exponent.checked_sub(fraction.len() as i64).and_then(|e| e.checked_add(trailing_zeros))
    else {
        return false;
    };
    let leading_power = last_power.saturating_add(significant as i64 - 1);
    significant <= MAX_NUMBER_DIGITS && (-130..=125).contains(&leading_power) && last_power >= -130
}

/// Whether `number` (JSON number text) is written as DynamoDB writes numbers back: no
/// exponent, no leading zeros, no trailing zeros after the point, no `-0`.
pub fn in_dynamodb_form(number: &str) -> bool {
    let unsigned = number.strip_prefix('-').unwrap_or(number);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let whole_ok = whole == "0" || (digits(whole) && !whole.starts_with('0'));
    let fraction_ok = fraction.is_none_or(|fraction| digits(fraction) && !fraction.ends_with('0'));
    whole_ok && fraction_ok && number != "-0"
}

/// A stored number (its exact text) as JSON: a JSON number with those very digits (serde_json
/// keeps them, `arbitrary_precision`; an exponent it writes `e+400`, `e-3`, the same
/// number); the text as a string only if it is no JSON number.
pub fn json_number(text: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Number>(text) {
        Ok(number) => serde_json::Value::Number(number),
        Err(_) => serde_json::Value::String(text.to_owned()),
    }
}

/// A stored string set as JSON: the one text of an [`Attr::NumberText`] is that number;
/// any other set is a list of its strings.
pub fn json_of_string_set(texts: &[String]) -> serde_json::Value {
    match texts {
        [text] if serde_json::from_str::<serde_json::Number>(text).is_ok() => json_number(text),
        _ => serde_json::Value::Array(texts.iter().cloned().map(serde_json::Value::String).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(json: &str) -> Attr {
        Attr::from_json(serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn numbers_keep_every_digit_kadoa_sent() {
        assert_eq!(attr("98765432109876543210"), Attr::N("98765432109876543210".into()));
        assert_eq!(attr("29.99"), Attr::N("29.99".into()));
        assert_eq!(attr("-0.000001"), Attr::N("-0.000001".into()));
        assert_eq!(attr("1e5"), Attr::NumberText("1e5".into()));
        let digits38 = "12345678901234567890123456789012345678";
        assert_eq!(attr(digits38), Attr::N(digits38.into()));
    }

    #[test]
    fn numbers_dynamodb_cannot_hold_or_would_rewrite_are_kept_as_their_exact_text() {
        for text in ["1e200", "123456789012345678901234567890123456789", "1e-131", "-9e126", "1e99999999999999999999"] {
            assert_eq!(attr(text), Attr::NumberText(text.into()), "{text}");
        }
        // DynamoDB holds these, but gives them back as 1e+125 … 0, 0, 1.5, 100000.
        for text in ["1e125", "1e-130", "0e999", "0.0", "-0", "1.50", "1e5", "1E5", "-0.0"] {
            assert_eq!(attr(text), Attr::NumberText(text.into()), "{text}");
        }
        for text in ["0", "-7", "19.99", "0.001", "-0.5", "98765432109876543210", "100"] {
            assert_eq!(attr(text), Attr::N(text.into()), "{text}");
        }
        // Trailing zeros are not significant digits.
        assert!(fits_dynamodb_number("1000000000000000000000000000000000000000000000000"));
    }

    #[test]
    fn json_types_map_to_dynamodb_types() {
        let value = attr(r#"{"a": [1, "two", null, true], "b": {"c": false}}"#);
        let expected = Attr::M(vec![
            ("a".to_owned(), Attr::L(vec![Attr::N("1".into()), Attr::s("two"), Attr::Null, Attr::Bool(true)])),
            ("b".to_owned(), Attr::M(vec![("c".to_owned(), Attr::Bool(false))])),
        ]);
        assert_eq!(value, expected);
        assert_eq!(attr(r#""tab\there""#), Attr::s("tab\there"));
    }

    #[test]
    fn strings_are_read_exactly_with_or_without_escapes() {
        for json in [r#""""#, r#""plain Prodükt 🚀""#, r#""quote \" back \\ slash \u00e9 \n""#, r#""\\""#] {
            assert_eq!(attr(json), Attr::S(serde_json::from_str(json).unwrap()), "{json}");
        }
    }

    #[test]
    fn nesting_is_cut_at_dynamodb_limit_without_recursing_further() {
        let deep = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        assert!(Attr::from_json(serde_json::from_str(&deep(32)).unwrap()).is_ok());
        assert!(matches!(Attr::from_json(serde_json::from_str(&deep(33)).unwrap()), Err(FromJsonError::TooDeep)));
        // Far past serde_json's own recursion limit: refused, not a stack overflow.
        let hostile = deep(200_000);
        let raw: Box<RawValue> = serde_json::from_str(&hostile).unwrap();
        assert!(matches!(Attr::from_json(&raw), Err(FromJsonError::TooDeep)));
    }

    #[test]
    fn objects_with_names_dynamodb_refuses_are_kept_as_json_text() {
        assert_eq!(attr(r#"{"": 1, "a": 2}"#), Attr::s(r#"{"": 1, "a": 2}"#));
        let nested = attr(r#"[{"ok": {"": 1}}]"#);
        assert_eq!(nested, Attr::L(vec![Attr::M(vec![("ok".to_owned(), Attr::s(r#"{"": 1}"#))])]));
    }

    #[test]
    fn stored_numbers_leave_as_json_numbers_with_their_exact_text() {
        // Every digit and sign as sent; an exponent as serde_json writes one (same number).
        for (text, leaves) in [
            ("98765432109876543210", "98765432109876543210"),
            ("1.50", "1.50"),
            ("-0", "-0"),
            ("1e400", "1e+400"),
            ("19.99", "19.99"),
            ("-2.50E-3", "-2.50e-3"),
        ] {
            let json = match attr(text) {
                Attr::N(n) => json_number(&n),
                Attr::NumberText(n) => json_of_string_set(&[n]),
                other => panic!("{other:?}"),
            };
            assert!(json.is_number(), "{text}");
            assert_eq!(json.to_string(), leaves);
        }
        assert_eq!(json_of_string_set(&["a".into()]), serde_json::json!(["a"]));
        assert_eq!(json_of_string_set(&["1".into(), "2".into()]), serde_json::json!(["1", "2"]));
    }
}
