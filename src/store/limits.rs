//! DynamoDB's per-item limits, checked before anything is written so that an event that
//! cannot be stored is refused whole instead of being half-written.

use aws_sdk_dynamodb::types::AttributeValue;

use super::Item;
use crate::error::RequestError;

/// DynamoDB's maximum item size: 400 KB, attribute names included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's maximum nesting of maps and lists.
pub const MAX_NESTING: usize = 32;

/// Why an item cannot be written.
#[derive(Debug, PartialEq, Eq)]
pub enum LimitExceeded {
    Size { bytes: usize },
    Nesting { depth: usize },
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Size { bytes } => write!(
                f,
                "needs {bytes} bytes as a DynamoDB item; DynamoDB stores at most {MAX_ITEM_BYTES} bytes per item"
            ),
            Self::Nesting { depth } => {
                write!(f, "nests {depth} levels of objects and arrays; DynamoDB stores at most {MAX_NESTING}")
            }
        }
    }
}

/// Checks `item`, naming what it holds (`path`, such as `data.differences[3]`) in the 413.
pub fn ensure_storable(item: &Item, path: &str) -> Result<(), RequestError> {
    check(item).map_err(|exceeded| RequestError::TooLarge(format!("{path} {exceeded}")))
}

pub fn check(item: &Item) -> Result<(), LimitExceeded> {
    let depth = item.values().map(nesting).max().unwrap_or(0);
    if depth > MAX_NESTING {
        return Err(LimitExceeded::Nesting { depth });
    }
    let bytes = item_size(item);
    if bytes > MAX_ITEM_BYTES {
        return Err(LimitExceeded::Size { bytes });
    }
    Ok(())
}

/// An upper bound of the size DynamoDB bills and limits, by its published rules.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        // A number takes about one byte per two significant digits plus one; the length of
        // its text plus one never undercounts.
        AttributeValue::N(n) => n.len() + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| n.len() + 1).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// How many levels of maps and lists `value` nests; 0 for a scalar.
fn nesting(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::L(list) => 1 + list.iter().map(nesting).max().unwrap_or(0),
        AttributeValue::M(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: Vec<(&str, AttributeValue)>) -> Item {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn nested(depth: usize) -> AttributeValue {
        (0..depth).fold(AttributeValue::S("leaf".into()), |inner, _| AttributeValue::L(vec![inner]))
    }

    #[test]
    fn size_counts_names_and_values() {
        let small = item(vec![("pk", AttributeValue::S("abc".into())), ("n", AttributeValue::N("12".into()))]);
        assert_eq!(item_size(&small), 2 + 3 + 1 + 3);
    }

    #[test]
    fn an_item_over_400_kb_is_refused() {
        let ok = item(vec![("v", AttributeValue::S("x".repeat(MAX_ITEM_BYTES - 10)))]);
        assert_eq!(check(&ok), Ok(()));
        let too_big = item(vec![("v", AttributeValue::S("x".repeat(MAX_ITEM_BYTES)))]);
        assert!(matches!(check(&too_big), Err(LimitExceeded::Size { bytes }) if bytes > MAX_ITEM_BYTES));
    }

    #[test]
    fn nesting_beyond_32_levels_is_refused() {
        assert_eq!(check(&item(vec![("v", nested(32))])), Ok(()));
        assert_eq!(check(&item(vec![("v", nested(33))])), Err(LimitExceeded::Nesting { depth: 33 }));
    }
}
