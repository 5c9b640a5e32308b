//! A rule: which differences of which workflow's changes are worth a message, and to
//! whom. Kept in the table as JSON (`kadoa rules add` writes it); checked when it is made,
//! so a rule that could never match is refused with the reason.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::number::Number;

/// Longest rule name; names are also part of the rule's key.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest field pattern, and longest text of an `equals` or `contains`.
pub const MAX_TEXT_CHARS: usize = 200;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Its name: letters, digits, `-` and `_`.
    pub name: String,
    /// The workflow it watches; every workflow when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// A field key, exact (`price`) or a pattern where `*` stands for any text (`price*`).
    pub field: String,
    /// Which differences it looks at.
    pub difference: DifferenceKind,
    /// What the field's value must show; without one, every such difference matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// Who is told.
    pub notify: Notify,
}

/// The kind of difference a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DifferenceKind {
    /// A row that appeared.
    Added,
    /// A row that disappeared.
    Removed,
    /// A row whose field changed.
    Changed,
    /// Any of them.
    Any,
}

impl DifferenceKind {
    /// Whether a difference of Kadoa's `type` is one of these.
    pub fn admits(self, kind: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Added => kind == "added",
            Self::Removed => kind == "removed",
            Self::Changed => kind == "changed",
        }
    }

    /// As written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
            Self::Any => "any",
        }
    }
}

/// What a field's value must show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "is", content = "than")]
pub enum Condition {
    /// The value is this text (or, both being numbers, this number).
    Equals(String),
    /// The value contains this text, in any case.
    Contains(String),
    /// A number above this one.
    Above(Number),
    /// A number below this one.
    Below(Number),
    /// A changed number, down by at least this much.
    DecreasedBy(Amount),
    /// A changed number, up by at least this much.
    IncreasedBy(Amount),
}

impl Condition {
    /// Whether it compares a value with the one before it (a changed field only).
    pub fn needs_previous(&self) -> bool {
        matches!(self, Self::DecreasedBy(_) | Self::IncreasedBy(_))
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equals(text) => write!(f, "equals {text:?}"),
            Self::Contains(text) => write!(f, "contains {text:?}"),
            Self::Above(number) => write!(f, "above {number}"),
            Self::Below(number) => write!(f, "below {number}"),
            Self::DecreasedBy(amount) => write!(f, "down at least {amount}"),
            Self::IncreasedBy(amount) => write!(f, "up at least {amount}"),
        }
    }
}

/// How much a number moved: an amount (`5`) or a percentage of the previous value (`5%`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Amount {
    /// At least this much.
    By(Number),
    /// At least this share of the previous value, in percent.
    Percent(Number),
}

impl Amount {
    fn number(&self) -> &Number {
        match self {
            Self::By(number) | Self::Percent(number) => number,
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::By(number) => write!(f, "{number}"),
            Self::Percent(number) => write!(f, "{number}%"),
        }
    }
}

impl std::str::FromStr for Amount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().strip_suffix('%') {
            Some(percent) => Ok(Self::Percent(percent.parse()?)),
            None => Ok(Self::By(text.parse()?)),
        }
    }
}

impl TryFrom<String> for Amount {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Amount> for String {
    fn from(amount: Amount) -> String {
        amount.to_string()
    }
}

/// Who a rule's alert goes to: the alert topic's email subscription, its SMS one, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Notify {
    /// Email only.
    Email,
    /// SMS only.
    Sms,
    /// Email and SMS.
    Both,
}

impl Notify {
    /// Whether email subscribers are told.
    pub fn email(self) -> bool {
        matches!(self, Self::Email | Self::Both)
    }

    /// Whether SMS subscribers are told.
    pub fn sms(self) -> bool {
        matches!(self, Self::Sms | Self::Both)
    }

    /// As a rule writes it: `email`, `sms` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Both => "both",
        }
    }

    /// Both when `self` and `other` name different channels.
    pub fn and(self, other: Notify) -> Notify {
        match (self.email() || other.email(), self.sms() || other.sms()) {
            (true, true) => Self::Both,
            (false, true) => Self::Sms,
            _ => Self::Email,
        }
    }
}

impl Rule {
    /// Refuses a rule that is malformed or could never match, saying why.
    pub fn check(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.chars().count() <= MAX_NAME_CHARS
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            let shown: String = self.name.chars().take(MAX_NAME_CHARS + 1).collect();
            return Err(format!("rule name {shown:?}: use 1 to {MAX_NAME_CHARS} letters, digits, '-' or '_'"));
        }
        if let Some(workflow_id) = &self.workflow_id {
            crate::events::check_id("--workflow", workflow_id).map_err(|e| e.detail().to_owned())?;
        }
        if self.field.trim().is_empty() || self.field.chars().count() > MAX_TEXT_CHARS {
            return Err(format!("--field: name a field key (at most {MAX_TEXT_CHARS} characters), such as price"));
        }
        let Some(condition) = &self.condition else { return Ok(()) };
        if condition.needs_previous() && !matches!(self.difference, DifferenceKind::Changed | DifferenceKind::Any) {
            let row = if self.difference == DifferenceKind::Added { "an added" } else { "a removed" };
            return Err(format!(
                "can never match: {row} row has no previous value to have gone up or down from (use --type changed)"
            ));
        }
        match condition {
            Condition::Equals(text) | Condition::Contains(text) if text.chars().count() > MAX_TEXT_CHARS => {
                Err(format!("the text to look for is longer than {MAX_TEXT_CHARS} characters"))
            }
            Condition::Contains(text) if text.is_empty() => {
                Err("--contains \"\" would match every value: leave the condition out instead".to_owned())
            }
            Condition::DecreasedBy(amount) | Condition::IncreasedBy(amount)
                if amount.number().value() < &bigdecimal::BigDecimal::from(0) =>
            {
                Err(format!("can never match: a move of at least {amount} (negative); give the size of the move"))
            }
            _ => Ok(()),
        }
    }

    /// Whether it watches `workflow_id`.
    pub fn watches(&self, workflow_id: &str) -> bool {
        self.workflow_id.as_deref().is_none_or(|watched| watched == workflow_id)
    }

    /// Whether `key` is the field it names (`*` standing for any text).
    pub fn names_field(&self, key: &str) -> bool {
        glob_matches(&self.field, key)
    }

    /// What it asks, in a few words: `price below 20 (changed rows)`.
    pub fn describe(&self) -> String {
        let mut text = self.field.clone();
        if let Some(condition) = &self.condition {
            text.push(' ');
            text.push_str(&condition.to_string());
        }
        let workflow = self.workflow_id.as_deref().unwrap_or("every workflow");
        format!("{text} ({} rows of {workflow}; {})", self.difference.as_str(), notify_text(self.notify))
    }
}

fn notify_text(notify: Notify) -> &'static str {
    match notify {
        Notify::Email => "email",
        Notify::Sms => "SMS",
        Notify::Both => "email and SMS",
    }
}

/// `*` matches any run of characters (none too); everything else matches itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else { return rest.is_empty() };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rule(field: &str, difference: DifferenceKind, condition: Option<Condition>) -> Rule {
        Rule { name: "r".into(), workflow_id: None, field: field.into(), difference, condition, notify: Notify::Email }
    }

    #[test]
    fn field_patterns_match_exact_keys_and_stars() {
        let cases = [
            ("price", "price", true),
            ("price", "Price", false),
            ("price", "price2", false),
            ("price*", "price_eur", true),
            ("price*", "price", true),
            ("*price", "salePrice", false),
            ("*Price", "salePrice", true),
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("**", "x", true),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(glob_matches(pattern, key), expected, "{pattern} ~ {key}");
        }
    }

    #[test]
    fn a_rule_that_can_never_match_is_refused_with_the_reason() {
        let down = Some(Condition::DecreasedBy("5%".parse().unwrap()));
        let error = rule("price", DifferenceKind::Added, down.clone()).check().unwrap_err();
        assert!(error.contains("can never match") && error.contains("added"), "{error}");
        assert!(rule("price", DifferenceKind::Changed, down.clone()).check().is_ok());
        assert!(rule("price", DifferenceKind::Any, down).check().is_ok());

        let negative = Some(Condition::IncreasedBy("-3".parse().unwrap()));
        assert!(rule("price", DifferenceKind::Changed, negative).check().unwrap_err().contains("negative"));
        let everything = Some(Condition::Contains(String::new()));
        assert!(rule("title", DifferenceKind::Added, everything).check().unwrap_err().contains("every value"));
        assert!(rule(" ", DifferenceKind::Any, None).check().unwrap_err().contains("--field"));

        let mut named = rule("price", DifferenceKind::Any, None);
        named.name = "price drop!".into();
        assert!(named.check().unwrap_err().contains("rule name"));
        named.name = "price-drop_2".into();
        assert!(named.check().is_ok());
        named.workflow_id = Some("  ".into());
        assert!(named.check().is_err());
    }

    #[test]
    fn a_rule_keeps_its_numbers_as_written_in_json() {
        let mut below = rule("price", DifferenceKind::Changed, Some(Condition::Below("20.00".parse().unwrap())));
        below.workflow_id = Some("wf_1".into());
        let json = serde_json::to_value(&below).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "r", "workflowId": "wf_1", "field": "price", "difference": "changed",
                "condition": {"is": "below", "than": "20.00"}, "notify": "email"})
        );
        assert_eq!(serde_json::from_value::<Rule>(json).unwrap(), below);
        let percent = rule("price", DifferenceKind::Changed, Some(Condition::DecreasedBy("12.5%".parse().unwrap())));
        let json = serde_json::to_value(&percent).unwrap();
        assert_eq!(json["condition"], serde_json::json!({"is": "decreasedBy", "than": "12.5%"}));
        assert_eq!(serde_json::from_value::<Rule>(json).unwrap(), percent);
    }

    #[test]
    fn channels_combine() {
        assert_eq!(Notify::Email.and(Notify::Sms), Notify::Both);
        assert_eq!(Notify::Sms.and(Notify::Sms), Notify::Sms);
        assert_eq!(Notify::Email.and(Notify::Email), Notify::Email);
        assert!(Notify::Both.email() && Notify::Both.sms());
    }
}
