//! DynamoDB's per-item rules, checked before anything is written so that an event that
//! cannot be stored is refused whole instead of being half-written, and never reaches
//! DynamoDB to be refused there.

use super::attr::{Attr, Item, MAX_NAME_BYTES};
use super::keys::{MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES};

pub use super::attr::MAX_NESTING;

/// DynamoDB's maximum item size: 400 KB, attribute names included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Why an item cannot be written.
#[derive(Debug, PartialEq, Eq)]
pub enum LimitExceeded {
    /// Over [`MAX_ITEM_BYTES`].
    Size {
        /// The item's size by DynamoDB's rules (an upper bound).
        bytes: usize,
    },
    /// Over [`MAX_NESTING`].
    Nesting {
        /// Levels of maps and lists.
        depth: usize,
    },
    /// A key attribute missing, not a string, empty or too long.
    Key {
        /// `pk` or `sk`.
        name: &'static str,
        /// Its length in bytes.
        bytes: usize,
    },
    /// An attribute name that is empty or too long.
    Name,
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
            Self::Key { name, bytes } => write!(f, "makes a {bytes}-byte {name}, which DynamoDB does not accept"),
            Self::Name => write!(f, "has an attribute name DynamoDB does not accept"),
        }
    }
}

/// Checks every rule DynamoDB applies to one item.
pub fn check(item: &Item) -> Result<(), LimitExceeded> {
    check_leaving(item, 0)
}

/// [`check`] for an item that will later gain attributes of `reserved` bytes (names
/// included): it must fit with them.
pub fn check_leaving(item: &Item, reserved: usize) -> Result<(), LimitExceeded> {
    for (name, max) in [("pk", MAX_PARTITION_KEY_BYTES), ("sk", MAX_SORT_KEY_BYTES)] {
        match item.get(name) {
            Some(Attr::S(key)) if !key.is_empty() && key.len() <= max => {}
            Some(Attr::S(key)) => return Err(LimitExceeded::Key { name, bytes: key.len() }),
            _ => return Err(LimitExceeded::Key { name, bytes: 0 }),
        }
    }
    if item.keys().any(|name| name.is_empty() || name.len() > MAX_NAME_BYTES) {
        return Err(LimitExceeded::Name);
    }
    let depth = item.values().map(nesting).max().unwrap_or(0);
    if depth > MAX_NESTING {
        return Err(LimitExceeded::Nesting { depth });
    }
    let bytes = item_size(item) + reserved;
    if bytes > MAX_ITEM_BYTES {
        return Err(LimitExceeded::Size { bytes });
    }
    Ok(())
}

/// An upper bound of the size DynamoDB bills and limits, by its published rules.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

/// An upper bound of the size of one value (attribute names not included).
pub fn value_size(value: &Attr) -> usize {
    match value {
        Attr::S(s) => s.len(),
        // A number takes about one byte per two significant digits plus one; the length of
        // its text plus one never undercounts.
        Attr::N(n) => n.len() + 1,
        // A set of one string: the string, and the overhead of a list to be safe.
        Attr::NumberText(text) => text.len() + 3,
        Attr::Bool(_) | Attr::Null => 1,
        Attr::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        Attr::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
    }
}

/// How many levels of maps and lists `value` nests; 0 for a scalar.
pub fn nesting(value: &Attr) -> usize {
    match value {
        Attr::L(list) => 1 + list.iter().map(nesting).max().unwrap_or(0),
        Attr::M(map) => 1 + map.iter().map(|(_, v)| nesting(v)).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: Vec<(&str, Attr)>) -> Item {
        let mut item: Item = [("pk".to_owned(), Attr::s("p")), ("sk".to_owned(), Attr::s("s"))].into();
        item.extend(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)));
        item
    }

    fn nested(depth: usize) -> Attr {
        (0..depth).fold(Attr::s("leaf"), |inner, _| Attr::L(vec![inner]))
    }

    #[test]
    fn size_counts_names_and_values() {
        let small = item(vec![("n", Attr::N("12".into()))]);
        assert_eq!(item_size(&small), (2 + 1) + (2 + 1) + 1 + 3);
    }

    #[test]
    fn an_item_over_400_kb_is_refused() {
        assert_eq!(check(&item(vec![("v", Attr::s("x".repeat(MAX_ITEM_BYTES - 10)))])), Ok(()));
        let too_big = item(vec![("v", Attr::s("x".repeat(MAX_ITEM_BYTES)))]);
        assert!(matches!(check(&too_big), Err(LimitExceeded::Size { bytes }) if bytes > MAX_ITEM_BYTES));
    }

    #[test]
    fn nesting_beyond_32_levels_is_refused() {
        assert_eq!(check(&item(vec![("v", nested(32))])), Ok(()));
        assert_eq!(check(&item(vec![("v", nested(33))])), Err(LimitExceeded::Nesting { depth: 33 }));
    }

    #[test]
    fn keys_and_names_follow_dynamodb_rules() {
        let mut long_sk = item(vec![]);
        long_sk.insert("sk".into(), Attr::s("s".repeat(MAX_SORT_KEY_BYTES + 1)));
        assert_eq!(check(&long_sk), Err(LimitExceeded::Key { name: "sk", bytes: 1025 }));
        let mut no_pk = item(vec![]);
        no_pk.remove("pk");
        assert_eq!(check(&no_pk), Err(LimitExceeded::Key { name: "pk", bytes: 0 }));
        assert_eq!(check(&item(vec![("", Attr::Null)])), Err(LimitExceeded::Name));
    }
}
