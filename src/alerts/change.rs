//! What a person reads when a change meets their rules (pure): a subject and an SMS that
//! read like "Product Monitor: price 24.99 -> 19.99 (below 20)", with the page's URL in
//! the SMS, and an email listing each matching difference (the first few, and a count).

use super::message::{
    ascii_line, capped, late_line, shorten, FOOTER, MAX_NAME_CHARS, MAX_SMS_CHARS, MAX_SUBJECT_CHARS,
};
use super::AlertMessage;
use crate::events::DataChange;
use crate::rules::{Match, Matches, Notify};

/// The message attribute `eventType` of a rule's alert (the bus calls it `Kadoa Change
/// Matched`).
pub const CHANGE_MATCHED: &str = "change_matched";
/// A URL longer than this is left out of the SMS rather than cut (a cut link is broken).
const MAX_SMS_URL_CHARS: usize = 80;
/// Longest URL in an email.
const MAX_URL_CHARS: usize = 2_000;

impl AlertMessage {
    /// The alert for `change`, which met the rules in `matches` (not empty); `late` when
    /// it is stored after the webhook could not pass it on.
    pub fn change_matched(change: &DataChange<'_>, matches: &Matches, late: bool) -> Self {
        let name = change.workflow_name.as_deref().unwrap_or(&change.workflow_id);
        let first = matches.kept.first().map(|found| line(found, " -> ")).unwrap_or_default();
        let more = match matches.total {
            0 | 1 => String::new(),
            total => format!(" +{} more", total - 1),
        };
        let head = ascii_line(&format!("{name}: {first}"));
        let subject = format!("{}{more}", shorten(&head, MAX_SUBJECT_CHARS - more.len()));
        let url = change.url.as_deref().map(ascii_line).filter(|url| url.len() <= MAX_SMS_URL_CHARS);
        let sms = match url {
            Some(url) => {
                let room = MAX_SMS_CHARS - more.len() - url.len() - 1;
                format!("{}{more} {url}", shorten(&head, room))
            }
            None => format!("{}{more}", shorten(&head, MAX_SMS_CHARS - more.len())),
        };
        Self {
            subject,
            email: email(change, name, matches, late),
            sms,
            event_type: CHANGE_MATCHED.to_owned(),
            workflow_id: Some(change.workflow_id.clone()),
            notify: matches.notify.unwrap_or(Notify::Email),
        }
    }
}

/// `price 24.99 -> 19.99 (below 20)`, `new title Senior Engineer (contains "engineer")`.
fn line(found: &Match, arrow: &str) -> String {
    let value = found.value.as_deref().unwrap_or("(none)");
    let what = match found.kind.as_str() {
        "changed" => format!("{} {}{arrow}{value}", found.field, found.previous.as_deref().unwrap_or("(none)")),
        "added" => format!("new {} {value}", found.field),
        "removed" => format!("removed {} {value}", found.field),
        _ => format!("{} {value}", found.field),
    };
    match &found.condition {
        Some(condition) => format!("{what} ({condition})"),
        None => what,
    }
}

fn email(change: &DataChange<'_>, name: &str, matches: &Matches, late: bool) -> String {
    let differences = match matches.total {
        1 => "One difference".to_owned(),
        total => format!("{total} differences"),
    };
    let mut lines =
        vec![format!("{differences} in a change to {} met your rules.", capped(name, MAX_NAME_CHARS)), String::new()];
    lines.push(format!("Workflow: {} ({})", capped(name, MAX_NAME_CHARS), change.workflow_id));
    if let Some(url) = &change.url {
        lines.push(format!("Page:     {}", capped(url, MAX_URL_CHARS)));
    }
    lines.push(format!("Change:   {} ({})", change.change_id, change.created_at.to_readable_string()));
    let rules: Vec<&str> = matches.rules.iter().map(String::as_str).collect();
    lines.push(format!("Rules:    {}", rules.join(", ")));
    if late {
        lines.push(late_line());
    }
    lines.push(String::new());
    for found in &matches.kept {
        let text = one_line(&line(found, " → "));
        lines.push(format!("  - {text}  [rule {}, row {}]", found.rule, found.index + 1));
    }
    let listed = matches.kept.len();
    if matches.total > listed {
        lines.push(format!("  ... and {} more.", matches.total - listed));
    }
    lines.push(String::new());
    lines.push(format!("Every difference: kadoa changes show {} {}", change.workflow_id, change.change_id));
    lines.push(FOOTER.to_owned());
    lines.join("\n")
}

/// One line, any script: runs of white space and control characters become one space.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::rules::{evaluate, DifferenceKind, Rule};
    use serde_json::json;

    fn rule(name: &str, field: &str, difference: DifferenceKind, condition: serde_json::Value, notify: Notify) -> Rule {
        let condition = Some(serde_json::from_value(condition).unwrap());
        Rule { name: name.into(), workflow_id: None, field: field.into(), difference, condition, notify }
    }

    fn message(rules: &[Rule], data: serde_json::Value) -> AlertMessage {
        let body =
            json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z", "data": data}).to_string();
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let change = DataChange::parse(&envelope).unwrap();
        let matches = evaluate(rules, &change);
        AlertMessage::change_matched(&change, &matches, false)
    }

    fn price_drop() -> Rule {
        rule("cheap", "price", DifferenceKind::Changed, json!({"is": "below", "than": "20"}), Notify::Sms)
    }

    #[test]
    fn a_price_drop_reads_like_a_sentence_on_a_phone() {
        let alert = message(
            &[price_drop()],
            json!({"id": "c1", "workflowId": "wf_123", "url": "https://shop.example/p/1",
            "metadata": {"workflowName": "Product Monitor"},
            "differences": [{"type": "changed", "fields": [{"key": "price", "previousValue": 24.99, "value": 19.99}]}]}),
        );
        assert_eq!(alert.subject, "Product Monitor: price 24.99 -> 19.99 (below 20)");
        assert_eq!(alert.sms, "Product Monitor: price 24.99 -> 19.99 (below 20) https://shop.example/p/1");
        assert!(alert.email.contains("  - price 24.99 → 19.99 (below 20)  [rule cheap, row 1]"), "{}", alert.email);
        assert!(alert.email.contains("Page:     https://shop.example/p/1"));
        assert!(alert.email.contains("kadoa changes show wf_123 c1"));
        assert_eq!((alert.event_type.as_str(), alert.notify), (CHANGE_MATCHED, Notify::Sms));
    }

    #[test]
    fn many_matches_make_one_message_with_the_first_few_and_a_count() {
        let differences: Vec<_> = (0..3000)
            .map(|i| json!({"type": "changed", "fields": [{"key": "price", "previousValue": 30, "value": if i % 6 == 0 { 10 } else { 25 }}]}))
            .collect();
        let long_name = "Ünïcödé Shop ".repeat(20);
        let alert = message(
            &[price_drop()],
            json!({"id": "c1", "workflowId": "wf_1", "url": format!("https://shop.example/{}", "x".repeat(200)),
            "metadata": {"workflowName": long_name}, "differences": differences}),
        );
        assert!(alert.subject.ends_with(" +499 more"), "{}", alert.subject);
        assert!(alert.subject.len() <= MAX_SUBJECT_CHARS && alert.subject.is_ascii());
        assert!(alert.sms.len() <= MAX_SMS_CHARS && alert.sms.is_ascii(), "{}", alert.sms);
        assert!(alert.sms.ends_with(" +499 more"), "a long URL is left out, not cut: {}", alert.sms);
        assert!(alert.email.starts_with("500 differences in a change to"));
        assert_eq!(alert.email.matches("  - price").count(), crate::rules::matching::MAX_KEPT);
        assert!(alert.email.contains("  ... and 480 more."));
    }

    #[test]
    fn new_and_removed_rows_and_odd_values_stay_on_one_line() {
        let jobs =
            rule("eng", "title", DifferenceKind::Added, json!({"is": "contains", "than": "engineer"}), Notify::Email);
        let alert = message(
            &[jobs],
            json!({"id": "c2", "workflowId": "wf_jobs",
            "differences": [{"type": "added", "fields": [{"key": "title", "value": "Senior\nEngineer \u{1b}[31m"}]}]}),
        );
        assert_eq!(alert.subject, "wf_jobs: new title Senior Engineer [31m (contains \"engineer\")");
        assert!(
            alert.email.contains("  - new title Senior Engineer [31m (contains \"engineer\")  [rule eng, row 1]"),
            "{}",
            alert.email
        );
        assert!(!alert.email.contains('\u{1b}'));
        assert!(!alert.sms.contains("http"), "no URL, none shown");
    }
}
