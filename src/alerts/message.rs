//! What a person reads: the alert's subject, email, and SMS, built from the event alone.

use serde::Serialize;

use crate::events::{HealthEvent, HealthEventKind};
use crate::timestamp::Timestamp;

/// SNS refuses subjects of 100 characters or more.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// One SMS segment of 7-bit characters.
pub const MAX_SMS_CHARS: usize = 160;

/// One alert, in every form SNS delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertMessage {
    pub subject: String,
    pub email: String,
    pub sms: String,
}

/// Why this alert is being sent, beyond the event itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertReason {
    /// First failure, or a recovery.
    Changed,
    /// Still failing since this time; re-alerted after the repeat interval.
    StillFailing { since: Timestamp },
}

impl AlertMessage {
    pub fn new(event: &HealthEvent, at: Timestamp, reason: AlertReason) -> Self {
        Self { subject: subject(event), email: email(event, at, reason), sms: sms(event, at, reason) }
    }

    /// The `Message` of an SNS publish with `MessageStructure=json`: one text per protocol,
    /// `default` for every other kind of subscriber (SQS, HTTP, Lambda).
    pub fn to_sns_json(&self) -> String {
        serde_json::json!({"default": self.email, "email": self.email, "sms": self.sms}).to_string()
    }
}

fn verb(kind: HealthEventKind) -> &'static str {
    match kind {
        HealthEventKind::Failed => "failed",
        HealthEventKind::Recovered => "recovered",
    }
}

/// `Kadoa: workflow failed - Product Monitor`: ASCII, one line, under 100 characters.
fn subject(event: &HealthEvent) -> String {
    let prefix = format!("Kadoa: workflow {} - ", verb(event.kind));
    let name = Some(ascii_line(event.display_name()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| ascii_line(&event.workflow_id));
    format!("{prefix}{}", shorten(&name, MAX_SUBJECT_CHARS - prefix.len()))
}

/// Fits in one SMS segment (ASCII, ≤ 160) and still says which workflow and what happened.
fn sms(event: &HealthEvent, at: Timestamp, reason: AlertReason) -> String {
    let name = shorten(&ascii_line(event.display_name()), 50);
    let head = match (event.kind, reason) {
        (HealthEventKind::Failed, AlertReason::StillFailing { .. }) => {
            format!("Kadoa: \"{name}\" still failing ({})", at.to_short_string())
        }
        (kind, _) => format!("Kadoa: \"{name}\" {} ({})", verb(kind), at.to_short_string()),
    };
    let detail = match event.kind {
        HealthEventKind::Failed => event.reason.as_deref().map(ascii_line).filter(|r| !r.is_empty()),
        HealthEventKind::Recovered => None,
    };
    match detail {
        Some(detail) if head.len() + 2 < MAX_SMS_CHARS => {
            let room = MAX_SMS_CHARS - head.len() - 2;
            format!("{head}: {}", shorten(&detail, room))
        }
        _ => shorten(&head, MAX_SMS_CHARS),
    }
}

fn email(event: &HealthEvent, at: Timestamp, reason: AlertReason) -> String {
    let name = event.display_name();
    let mut lines = vec![match (event.kind, reason) {
        (HealthEventKind::Failed, AlertReason::StillFailing { since }) => {
            format!("The Kadoa workflow \"{name}\" is still failing (since {}).", since.to_readable_string())
        }
        (HealthEventKind::Failed, AlertReason::Changed) => {
            format!("The Kadoa workflow \"{name}\" failed: it is not collecting data.")
        }
        (HealthEventKind::Recovered, _) => {
            format!("The Kadoa workflow \"{name}\" recovered: it is collecting data again.")
        }
    }];
    lines.push(String::new());
    lines.push(format!("Workflow: {name} ({})", event.workflow_id));
    lines.push(format!("What:     {}", verb(event.kind)));
    lines.push(format!("When:     {} ({})", at.to_readable_string(), at.to_key_string()));
    if let Some(reason) = event.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        lines.push(format!("Reason:   {}", reason.trim()));
    }
    if let Some(action) = event.action.as_deref().filter(|a| !a.trim().is_empty()) {
        lines.push(format!("Action:   {}", action.trim()));
    }
    if let Some(url) = event.page_url() {
        lines.push(format!("Page:     {}", url.trim()));
    }
    lines.push(String::new());
    lines.push("Sent by your Kadoa webhook receiver on AWS.".to_owned());
    lines.join("\n")
}

/// Printable ASCII on one line: accents transliterated (é → e), what has no ASCII form
/// (emoji) dropped, runs of white space and control characters folded to one space.
pub fn ascii_line(text: &str) -> String {
    let ascii: String = text
        .chars()
        .map(|c| match c {
            c if c.is_ascii() => c.to_string(),
            // Letters of any script have a spelling; symbols and emoji ("fire") do not.
            c if c.is_alphanumeric() => deunicode::deunicode_char(c).unwrap_or(" ").to_owned(),
            _ => " ".to_owned(),
        })
        .collect();
    ascii
        .split(|c: char| c.is_whitespace() || c.is_control() || !c.is_ascii())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most `max` characters; longer text is cut at a word boundary and ends with `...`.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(3);
    let cut: String = text.chars().take(keep).collect();
    let at_word = match cut.rfind(' ') {
        // Cut at the last space, unless that throws away most of the text.
        Some(space) if space >= keep / 2 => cut[..space].trim_end().to_owned(),
        _ => cut,
    };
    format!("{at_word}...")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: HealthEventKind, data: serde_json::Value) -> HealthEvent {
        HealthEvent::parse(kind, data.as_object().unwrap()).unwrap()
    }

    fn documented_failure() -> HealthEvent {
        event(
            HealthEventKind::Failed,
            json!({
                "workflowId": "wf_123", "workflowName": "Product Monitor", "source": "Product Monitor",
                "sourceUrl": "https://monitored-page.com", "url": "https://monitored-page.com",
                "reason": "Access blocked by bot protection",
                "action": "No action needed. We'll email you when the workflow recovers."
            }),
        )
    }

    fn at() -> Timestamp {
        Timestamp::parse_rfc3339("2025-01-15T10:30:00Z").unwrap()
    }

    fn named(name: &str) -> HealthEvent {
        event(HealthEventKind::Failed, json!({"workflowId": "wf_1", "workflowName": name}))
    }

    fn assert_valid_subject(subject: &str) {
        assert!(subject.len() < 100, "{} chars: {subject}", subject.len());
        assert!(subject.chars().all(|c| c.is_ascii() && !c.is_ascii_control()), "{subject:?}");
    }

    #[test]
    fn subject_names_what_happened_and_the_workflow() {
        let message = AlertMessage::new(&documented_failure(), at(), AlertReason::Changed);
        assert_eq!(message.subject, "Kadoa: workflow failed - Product Monitor");
        let recovered =
            event(HealthEventKind::Recovered, json!({"workflowId": "wf_123", "workflowName": "Product Monitor"}));
        assert_eq!(subject(&recovered), "Kadoa: workflow recovered - Product Monitor");
    }

    #[test]
    fn subject_transliterates_accents_and_drops_emoji() {
        assert_eq!(subject(&named("Café Préçis Überwachung")), "Kadoa: workflow failed - Cafe Precis Uberwachung");
        let with_emoji = subject(&named("🚀 Launch Tracker 🔥"));
        assert_valid_subject(&with_emoji);
        assert!(with_emoji.ends_with("Launch Tracker") || with_emoji.contains("Launch Tracker"), "{with_emoji}");
        assert_eq!(subject(&named("Preise\nund\tLinks")), "Kadoa: workflow failed - Preise und Links");
    }

    #[test]
    fn subject_falls_back_to_the_id_when_the_name_has_no_ascii() {
        assert_eq!(subject(&named("🔥🔥")), "Kadoa: workflow failed - wf_1");
    }

    #[test]
    fn long_names_are_cut_at_a_word_boundary() {
        let long = "Competitor price watch ".repeat(14); // 322 characters
        let subject = subject(&named(&long));
        assert_valid_subject(&subject);
        assert!(subject.ends_with("..."), "{subject}");
        assert!(
            subject.trim_end_matches("...").ends_with("watch")
                || subject.trim_end_matches("...").ends_with("price")
                || subject.trim_end_matches("...").ends_with("Competitor"),
            "{subject}"
        );
        let unbroken = "x".repeat(300);
        assert_valid_subject(&self::subject(&named(&unbroken)));
    }

    #[test]
    fn sms_fits_160_chars_and_says_which_workflow_and_what() {
        let message = AlertMessage::new(&documented_failure(), at(), AlertReason::Changed);
        assert_eq!(
            message.sms,
            "Kadoa: \"Product Monitor\" failed (15 Jan 10:30 UTC): Access blocked by bot protection"
        );
        let long = event(
            HealthEventKind::Failed,
            json!({"workflowId": "wf_1", "workflowName": "Ünïcode 🚀 ".repeat(30), "reason": "timeout ".repeat(50)}),
        );
        let sms = AlertMessage::new(&long, at(), AlertReason::Changed).sms;
        assert!(sms.len() <= MAX_SMS_CHARS, "{} chars: {sms}", sms.len());
        assert!(sms.is_ascii());
        assert!(sms.starts_with("Kadoa: \"Unicode"), "{sms}");
        assert!(sms.contains("failed (15 Jan 10:30 UTC): timeout"), "{sms}");
    }

    #[test]
    fn sms_for_recovery_and_repeat() {
        let recovered =
            event(HealthEventKind::Recovered, json!({"workflowId": "wf_123", "workflowName": "Product Monitor"}));
        assert_eq!(
            AlertMessage::new(&recovered, at(), AlertReason::Changed).sms,
            "Kadoa: \"Product Monitor\" recovered (15 Jan 10:30 UTC)"
        );
        let since = Timestamp::parse_rfc3339("2025-01-15T08:00:00Z").unwrap();
        let sms = AlertMessage::new(&documented_failure(), at(), AlertReason::StillFailing { since }).sms;
        assert!(sms.starts_with("Kadoa: \"Product Monitor\" still failing (15 Jan 10:30 UTC): Access"), "{sms}");
    }

    #[test]
    fn email_is_complete() {
        let email = AlertMessage::new(&documented_failure(), at(), AlertReason::Changed).email;
        for expected in [
            "The Kadoa workflow \"Product Monitor\" failed",
            "Workflow: Product Monitor (wf_123)",
            "What:     failed",
            "When:     Wed 15 Jan 2025, 10:30 UTC (2025-01-15T10:30:00.000Z)",
            "Reason:   Access blocked by bot protection",
            "Action:   No action needed. We'll email you when the workflow recovers.",
            "Page:     https://monitored-page.com",
        ] {
            assert!(email.contains(expected), "missing {expected:?} in\n{email}");
        }
    }

    #[test]
    fn email_keeps_the_real_name_and_omits_what_is_unknown() {
        let email = AlertMessage::new(&named("Café 🚀"), at(), AlertReason::Changed).email;
        assert!(email.contains("Workflow: Café 🚀 (wf_1)"), "{email}");
        assert!(!email.contains("Reason:") && !email.contains("Page:"), "{email}");
    }

    #[test]
    fn sns_message_has_every_protocol() {
        let message = AlertMessage::new(&documented_failure(), at(), AlertReason::Changed);
        let json: serde_json::Value = serde_json::from_str(&message.to_sns_json()).unwrap();
        assert_eq!(json["default"], message.email);
        assert_eq!(json["email"], message.email);
        assert_eq!(json["sms"], message.sms);
    }

    #[test]
    fn shorten_cuts_at_words() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("one two three four", 12), "one two...");
        assert_eq!(shorten("abcdefghijklmnop", 10), "abcdefg...");
    }
}
