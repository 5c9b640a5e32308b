//! Which differences of a change meet which rules (pure). A changed field meets a
//! condition when its new value does and its previous value did not: "price below 20"
//! tells people the price fell below 20, not again each time it moves while below.

use std::borrow::Cow;
use std::collections::BTreeSet;

use bigdecimal::{BigDecimal, Zero};
use serde_json::value::RawValue;

use super::number::Number;
use super::rule::{Amount, Condition, Notify, Rule};
use crate::events::{DataChange, Difference};

/// Matches kept with their details (the alert lists these); the rest are counted.
pub const MAX_KEPT: usize = 20;
/// Longest value kept in a match, in characters.
const MAX_VALUE_CHARS: usize = 100;

/// One difference's field that met one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The rule's name.
    pub rule: String,
    /// What the rule asks (`below 20`), if it has a condition.
    pub condition: Option<String>,
    /// The difference's position in the change.
    pub index: usize,
    /// `added`, `removed` or `changed`.
    pub kind: String,
    /// The field's key.
    pub field: String,
    /// The value before (a changed field), as text.
    pub previous: Option<String>,
    /// The value (for a removed row, the value it had), as text.
    pub value: Option<String>,
}

/// Everything a change met.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matches {
    /// How many (difference, field, rule) matches there were.
    pub total: usize,
    /// The first [`MAX_KEPT`] of them.
    pub kept: Vec<Match>,
    /// The rules that matched, by name.
    pub rules: BTreeSet<String>,
    /// Who is told: every matching rule's channels together.
    pub notify: Option<Notify>,
}

impl Matches {
    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn add(&mut self, rule: &Rule, found: impl FnOnce() -> Match) {
        self.total += 1;
        self.rules.insert(rule.name.clone());
        self.notify = Some(self.notify.map_or(rule.notify, |notify| notify.and(rule.notify)));
        if self.kept.len() < MAX_KEPT {
            self.kept.push(found());
        }
    }
}

/// A field of a difference, read once for every rule.
struct FieldSeen<'a> {
    key: String,
    value: Option<&'a RawValue>,
    previous: Option<&'a RawValue>,
}

/// The matches of `change` against `rules`.
pub fn evaluate(rules: &[Rule], change: &DataChange<'_>) -> Matches {
    let mut matches = Matches::default();
    let watching: Vec<&Rule> = rules.iter().filter(|rule| rule.watches(&change.workflow_id)).collect();
    if watching.is_empty() {
        return matches;
    }
    for (index, difference) in change.differences.iter().enumerate() {
        let applicable: Vec<&&Rule> = watching.iter().filter(|rule| rule.difference.admits(&difference.kind)).collect();
        if applicable.is_empty() {
            continue;
        }
        for field in fields_of(difference) {
            for rule in applicable.iter().filter(|rule| rule.names_field(&field.key)) {
                if meets(rule, &difference.kind, &field) {
                    matches.add(rule, || Match {
                        rule: rule.name.clone(),
                        condition: rule.condition.as_ref().map(ToString::to_string),
                        index,
                        kind: difference.kind.clone(),
                        field: field.key.clone(),
                        previous: field.previous.map(shown_value),
                        value: field.value.map(shown_value),
                    });
                }
            }
        }
    }
    matches
}

fn fields_of<'a>(difference: &'a Difference<'a>) -> impl Iterator<Item = FieldSeen<'a>> + 'a {
    difference.fields.iter().filter_map(|field| {
        let get = |name: &str| field.0.iter().find(|(key, _)| key == name).map(|(_, raw)| *raw);
        // The parser accepts a field only with a string `key`.
        let key = serde_json::from_str::<String>(get("key")?.get()).ok()?;
        Some(FieldSeen { key, value: get("value"), previous: get("previousValue") })
    })
}

/// Whether `field`, in a difference of `kind`, meets `rule` (its workflow, kind and field
/// already checked).
fn meets(rule: &Rule, kind: &str, field: &FieldSeen<'_>) -> bool {
    let changed = kind == "changed";
    if changed {
        // A field of a changed row that did not change is context, not news.
        let moved = match (field.previous, field.value) {
            (Some(previous), Some(value)) => previous.get() != value.get(),
            // A previous value and none now: it went.
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !moved {
            return false;
        }
    }
    let Some(condition) = &rule.condition else { return true };
    let value = if kind == "removed" { field.value.or(field.previous) } else { field.value };
    if condition.needs_previous() {
        return changed && moved_enough(condition, field.previous, value);
    }
    let now = value.is_some_and(|value| holds(condition, value));
    // Became true: a changed field meets the condition only if it did not before.
    now && !(changed && field.previous.is_some_and(|previous| holds(condition, previous)))
}

/// Whether `value` meets a condition on one value.
fn holds(condition: &Condition, value: &RawValue) -> bool {
    match condition {
        Condition::Equals(text) => match (Number::parse(text), Number::of_value(value)) {
            (Some(wanted), Some(number)) => wanted == number,
            _ => text_of(value).is_some_and(|value| value == text.as_str()),
        },
        Condition::Contains(text) => {
            text_of(value).is_some_and(|value| value.to_lowercase().contains(&text.to_lowercase()))
        }
        Condition::Above(limit) => Number::of_value(value).is_some_and(|number| &number > limit),
        Condition::Below(limit) => Number::of_value(value).is_some_and(|number| &number < limit),
        Condition::DecreasedBy(_) | Condition::IncreasedBy(_) => false,
    }
}

/// Whether a changed number moved down (or up) by at least the condition's amount.
fn moved_enough(condition: &Condition, previous: Option<&RawValue>, value: Option<&RawValue>) -> bool {
    let (Some(previous), Some(value)) = (previous.and_then(Number::of_value), value.and_then(Number::of_value)) else {
        return false;
    };
    let (movement, amount) = match condition {
        Condition::DecreasedBy(amount) => (previous.minus(&value), amount),
        Condition::IncreasedBy(amount) => (value.minus(&previous), amount),
        _ => return false,
    };
    if movement <= BigDecimal::zero() {
        return false;
    }
    match amount {
        Amount::By(at_least) => &movement >= at_least.value(),
        // movement / |previous| × 100 ≥ p, without dividing: movement × 100 ≥ p × |previous|.
        Amount::Percent(percent) => {
            let base = previous.value().abs();
            !base.is_zero() && movement * BigDecimal::from(100) >= percent.value() * base
        }
    }
}

/// A value as text: a string's content, a number or other JSON as sent; `null` is none.
fn text_of(value: &RawValue) -> Option<Cow<'_, str>> {
    let text = value.get();
    match text {
        "null" => None,
        _ if text.starts_with('"') => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
        _ => Some(Cow::Borrowed(text)),
    }
}

/// A value as a person reads it, at most [`MAX_VALUE_CHARS`] characters.
fn shown_value(value: &RawValue) -> String {
    let text = text_of(value).unwrap_or(Cow::Borrowed("null"));
    crate::alerts::message::shorten(&text, MAX_VALUE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::rules::rule::DifferenceKind;
    use serde_json::json;

    fn rule(name: &str, field: &str, difference: DifferenceKind, condition: Option<&str>) -> Rule {
        let condition = condition.map(|c| {
            let (is, than) = c.split_once(' ').unwrap();
            serde_json::from_value(json!({"is": is, "than": than})).unwrap()
        });
        Rule { name: name.into(), workflow_id: None, field: field.into(), difference, condition, notify: Notify::Email }
    }

    /// Evaluates `rules` against a change of `differences` (Kadoa's JSON).
    fn evaluate_on(rules: &[Rule], differences: serde_json::Value) -> Matches {
        let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
            "data": {"id": "c1", "workflowId": "wf_1", "differences": differences}})
        .to_string();
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let change = DataChange::parse(&envelope).unwrap();
        evaluate(rules, &change)
    }

    fn changed(key: &str, previous: impl serde::Serialize, value: impl serde::Serialize) -> serde_json::Value {
        json!({"type": "changed", "fields": [{"key": key, "previousValue": previous, "value": value}]})
    }

    fn count(rule: &Rule, differences: serde_json::Value) -> usize {
        evaluate_on(std::slice::from_ref(rule), differences).total
    }

    #[test]
    fn below_and_above_match_when_a_number_crosses_them_exactly() {
        let below = rule("cheap", "price", DifferenceKind::Changed, Some("below 20"));
        assert_eq!(count(&below, json!([changed("price", 24.99, 19.99)])), 1);
        assert_eq!(count(&below, json!([changed("price", "$24.99", "$19.99")])), 1, "prices as text");
        assert_eq!(count(&below, json!([changed("price", 24.99, 20)])), 0, "20 is not below 20");
        assert_eq!(count(&below, json!([changed("price", 24.99, 20.000)])), 0);
        assert_eq!(count(&below, json!([changed("price", 18, 17)])), 0, "already below: not news");
        assert_eq!(count(&below, json!([changed("price", 24.99, "n/a")])), 0, "not a number");
        assert_eq!(count(&below, json!([changed("price", "n/a", 5)])), 1);
        let tiny = rule("tiny", "price", DifferenceKind::Changed, Some("below 0.30000000000000001"));
        assert_eq!(count(&tiny, json!([changed("price", 1, "0.3")])), 1, "no double would see this");
        let above = rule("dear", "price", DifferenceKind::Any, Some("above 98765432109876543210"));
        assert_eq!(count(&above, json!([changed("price", 1, "98765432109876543211")])), 1);
        assert_eq!(count(&above, json!([changed("price", 1, "98765432109876543210")])), 0);
    }

    #[test]
    fn moves_are_measured_in_amounts_and_percentages_of_the_previous_value() {
        let down5 = rule("d", "price", DifferenceKind::Changed, Some("decreasedBy 5"));
        assert_eq!(count(&down5, json!([changed("price", 24.99, 19.99)])), 1, "exactly 5");
        assert_eq!(count(&down5, json!([changed("price", 24.99, 19.991)])), 0);
        assert_eq!(count(&down5, json!([changed("price", 19.99, 24.99)])), 0, "up, not down");
        let down20pct = rule("d", "price", DifferenceKind::Changed, Some("decreasedBy 20%"));
        assert_eq!(count(&down20pct, json!([changed("price", 25, 20)])), 1, "exactly 20%");
        assert_eq!(count(&down20pct, json!([changed("price", 25, "20.01")])), 0);
        assert_eq!(count(&down20pct, json!([changed("price", 0, -5)])), 0, "no percentage of nothing");
        assert_eq!(count(&down20pct, json!([changed("price", -10, -12)])), 1, "of |previous|");
        let up10pct = rule("u", "price", DifferenceKind::Any, Some("increasedBy 10%"));
        assert_eq!(count(&up10pct, json!([changed("price", 10, 11)])), 1);
        assert_eq!(count(&up10pct, json!([changed("price", 10, "10.99")])), 0);
        assert_eq!(count(&up10pct, json!([{"type": "added", "fields": [{"key": "price", "value": 50}]}])), 0);
        let up0 = rule("u", "stock", DifferenceKind::Changed, Some("increasedBy 0"));
        assert_eq!(count(&up0, json!([changed("stock", 1, 2)])), 1, "any rise");
        assert_eq!(count(&up0, json!([changed("stock", "1", "1.0")])), 0, "the same number");
    }

    #[test]
    fn text_conditions_and_patterns_find_new_rows() {
        let engineer = rule("eng", "title", DifferenceKind::Added, Some("contains engineer"));
        let added = |title: &str| json!([{"type": "added", "fields": [{"key": "id", "value": 7}, {"key": "title", "value": title}]}]);
        assert_eq!(count(&engineer, added("Senior ENGINEER")), 1, "any case");
        assert_eq!(count(&engineer, added("Designer")), 0);
        assert_eq!(count(&engineer, json!([changed("title", "x", "Engineer")])), 0, "added rows only");
        let sold_out = rule("s", "status", DifferenceKind::Changed, Some("equals Sold out"));
        assert_eq!(count(&sold_out, json!([changed("status", "In stock", "Sold out")])), 1);
        assert_eq!(count(&sold_out, json!([changed("status", "In stock", "sold out")])), 0, "equals is exact");
        let twenty = rule("t", "price", DifferenceKind::Any, Some("equals 20"));
        assert_eq!(count(&twenty, json!([changed("price", 19, "20.00")])), 1, "numbers equal as numbers");
        let any_price = rule("p", "price*", DifferenceKind::Any, None);
        let row = json!([{"type": "removed", "fields": [{"key": "price_eur", "value": 1}, {"key": "price_usd", "value": 2}, {"key": "name", "value": "x"}]}]);
        assert_eq!(count(&any_price, row), 2);
    }

    #[test]
    fn a_changed_row_matches_only_on_fields_that_changed() {
        let any_change = rule("c", "*", DifferenceKind::Changed, None);
        let row = json!([{"type": "changed", "fields": [
            {"key": "id", "value": 1},
            {"key": "price", "previousValue": 2, "value": 3},
            {"key": "name", "previousValue": "a", "value": "a"}]}]);
        let matches = evaluate_on(&[any_change], row);
        assert_eq!(matches.total, 1);
        assert_eq!(matches.kept[0].field, "price");
        assert_eq!((matches.kept[0].previous.as_deref(), matches.kept[0].value.as_deref()), (Some("2"), Some("3")));
    }

    #[test]
    fn many_matches_are_counted_and_the_first_few_kept_with_every_rule_and_channel() {
        let mut sms = rule("sms", "price", DifferenceKind::Changed, Some("below 20"));
        sms.notify = Notify::Sms;
        let mut other = rule("other", "price", DifferenceKind::Any, None);
        other.workflow_id = Some("wf_2".into());
        let email = rule("email", "price", DifferenceKind::Changed, Some("decreasedBy 1"));
        let differences: Vec<_> = (0..500).map(|_| changed("price", 25, 10)).collect();
        let matches = evaluate_on(&[sms, other, email], json!(differences));
        assert_eq!(matches.total, 1000, "two rules on 500 rows; the other workflow's rule not at all");
        assert_eq!(matches.kept.len(), MAX_KEPT);
        assert_eq!(matches.rules.iter().map(String::as_str).collect::<Vec<_>>(), ["email", "sms"]);
        assert_eq!(matches.notify, Some(Notify::Both));
        assert_eq!(matches.kept[0].condition.as_deref(), Some("below 20"));
    }

    #[test]
    fn long_values_are_cut_for_people() {
        let any = rule("a", "text", DifferenceKind::Added, None);
        let long = "word ".repeat(100);
        let matches = evaluate_on(&[any], json!([{"type": "added", "fields": [{"key": "text", "value": long}]}]));
        assert!(matches.kept[0].value.as_ref().unwrap().chars().count() <= MAX_VALUE_CHARS);
    }
}
