//! What a person reads: an alert's subject, email and SMS, built from the event alone
//! (pure). Every text taken from the event is capped, so a publish always fits SNS's limits.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::health::AlertReason;
use crate::events::HealthEvent;
use crate::rules::Notify;
use crate::timestamp::Timestamp;

/// SNS refuses subjects of 100 characters or more.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// One SMS segment of 7-bit characters.
pub const MAX_SMS_CHARS: usize = 160;
/// Longest text taken from the event into an email line (a reason, an action, a URL).
pub const MAX_FIELD_CHARS: usize = 2_000;
/// Longest workflow name in an email.
pub const MAX_NAME_CHARS: usize = 200;
/// At most this many fields of an account event are listed in its email.
pub const MAX_DETAIL_FIELDS: usize = 20;

/// One alert, in every form SNS delivers it, and the attributes subscriptions filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMessage {
    /// ASCII, one line, under 100 characters.
    pub subject: String,
    /// The full text (email, and every subscriber without its own text).
    pub email: String,
    /// ASCII, at most 160 characters.
    pub sms: String,
    /// Message attribute `eventType`.
    pub event_type: String,
    /// Message attribute `workflowId`, when the event has a workflow.
    pub workflow_id: Option<String>,
    /// Message attribute `notify`: which subscriptions take it (their filter policies read
    /// it). Failures, recoveries and notices go to both; a rule's alert where it says.
    pub notify: Notify,
}

impl AlertMessage {
    /// The alert for a workflow's failure or recovery at `at`; `late` when it is
    /// delivered after the webhook could not pass it on (a replay).
    pub fn health(event: &HealthEvent, at: Timestamp, reason: AlertReason, late: bool) -> Self {
        Self {
            subject: health_subject(event, reason),
            email: health_email(event, at, reason, late),
            sms: health_sms(event, at, reason, late),
            event_type: reason.event_type().to_owned(),
            workflow_id: Some(event.workflow_id.clone()),
            notify: Notify::Both,
        }
    }

    /// The alert for an account or service event (`credits_low`, …) with its `data`.
    pub fn notice(event_type: &str, workflow_id: Option<&str>, at: Timestamp, data: &RawValue, late: bool) -> Self {
        let details = details(data);
        let title = notice_title(event_type);
        let name = details.get("workflowName").map(String::as_str).or(workflow_id);
        let about = name.map(|name| format!(" - {}", ascii_line(name))).unwrap_or_default();
        let subject = shorten(&format!("Kadoa: {title}{about}"), MAX_SUBJECT_CHARS);
        let summary = ["message", "description", "reason", "title"]
            .iter()
            .find_map(|key| details.get(*key))
            .map(|text| ascii_line(text))
            .filter(|text| !text.is_empty());
        let when = short_when(at, late);
        let sms = match summary {
            Some(summary) => {
                let head = format!("Kadoa: {title} ({when})");
                let room = MAX_SMS_CHARS.saturating_sub(head.len() + 2);
                shorten(&format!("{head}: {}", shorten(&summary, room)), MAX_SMS_CHARS)
            }
            None => shorten(&format!("Kadoa: {title}{about} ({when})"), MAX_SMS_CHARS),
        };
        let mut lines = vec![format!("Kadoa reports: {title}."), String::new()];
        lines.push(format!("What:     {event_type}"));
        lines.push(format!("When:     {} ({})", at.to_readable_string(), at.to_key_string()));
        if let Some(workflow_id) = workflow_id {
            lines.push(format!("Workflow: {} ({workflow_id})", capped(name.unwrap_or(workflow_id), MAX_NAME_CHARS)));
        }
        if late {
            lines.push(late_line());
        }
        if !details.is_empty() {
            lines.push(String::new());
            lines.push("Details:".to_owned());
            for (key, value) in details.iter().take(MAX_DETAIL_FIELDS) {
                lines.push(format!("  {}: {}", capped(key, 100), capped(value, MAX_FIELD_CHARS / 4)));
            }
        }
        lines.push(String::new());
        lines.push(FOOTER.to_owned());
        Self {
            subject,
            email: lines.join("\n"),
            sms,
            event_type: event_type.to_owned(),
            workflow_id: workflow_id.map(str::to_owned),
            notify: Notify::Both,
        }
    }

    /// The `Message` of an SNS publish with `MessageStructure=json`: the SMS text under
    /// `sms`, the full text under `default`, which SNS sends to every protocol without a key
    /// of its own (email, SQS, HTTP, Lambda). An `email` key would repeat it: the same text
    /// twice in every publish.
    pub fn to_sns_json(&self) -> String {
        serde_json::json!({"default": self.email, "sms": self.sms}).to_string()
    }
}

pub(super) const FOOTER: &str = "Sent by your Kadoa webhook receiver on AWS.";

pub(super) fn late_line() -> String {
    "Late:     Kadoa reported this at the time above; the receiver could not pass it on until now.".to_owned()
}

/// `15 Jan 10:30 UTC`, or `15 Jan 10:30 UTC, late`.
fn short_when(at: Timestamp, late: bool) -> String {
    match late {
        true => format!("{}, late", at.to_short_string()),
        false => at.to_short_string(),
    }
}

/// A readable name for an event type: `credits_low` → `credits low`.
fn notice_title(event_type: &str) -> String {
    match event_type {
        "credits_low" => "credits are running low".to_owned(),
        "free_trial_ending" => "free trial is ending".to_owned(),
        "service_degradation" => "service degradation".to_owned(),
        "system_maintenance" => "system maintenance".to_owned(),
        "workflow_health_degraded" => "workflow health degraded".to_owned(),
        other => other.replace(['_', '.', ':', '-'], " "),
    }
}

/// The scalar fields of an event's `data`, as text, in key order.
fn details(data: &RawValue) -> BTreeMap<String, String> {
    let fields: BTreeMap<String, serde_json::Value> = serde_json::from_str(data.get()).unwrap_or_default();
    fields
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::String(text) => Some((key, text)),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Some((key, value.to_string())),
            _ => None,
        })
        .collect()
}

fn verb(reason: AlertReason) -> &'static str {
    match reason {
        AlertReason::Failed | AlertReason::StillFailing { .. } => "failed",
        AlertReason::Recovered => "recovered",
    }
}

/// `Kadoa: workflow failed - Product Monitor`: ASCII, one line, under 100 characters.
fn health_subject(event: &HealthEvent, reason: AlertReason) -> String {
    let prefix = format!("Kadoa: workflow {} - ", verb(reason));
    let name = Some(ascii_line(event.display_name()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| ascii_line(&event.workflow_id));
    format!("{prefix}{}", shorten(&name, MAX_SUBJECT_CHARS - prefix.len()))
}

/// Fits in one SMS segment (ASCII, ≤ 160) and still says which workflow and what happened.
fn health_sms(event: &HealthEvent, at: Timestamp, reason: AlertReason, late: bool) -> String {
    let name = shorten(&ascii_line(event.display_name()), 50);
    let when = short_when(at, late);
    let head = match reason {
        AlertReason::StillFailing { .. } => format!("Kadoa: \"{name}\" still failing ({when})"),
        other => format!("Kadoa: \"{name}\" {} ({when})", verb(other)),
    };
    let detail = match reason {
        AlertReason::Recovered => None,
        _ => event.reason.as_deref().map(|r| ascii_line(&capped(r, MAX_FIELD_CHARS))).filter(|r| !r.is_empty()),
    };
    match detail {
        Some(detail) if head.len() + 2 < MAX_SMS_CHARS => {
            let room = MAX_SMS_CHARS - head.len() - 2;
            format!("{head}: {}", shorten(&detail, room))
        }
        _ => shorten(&head, MAX_SMS_CHARS),
    }
}

fn health_email(event: &HealthEvent, at: Timestamp, reason: AlertReason, late: bool) -> String {
    let name = capped(event.display_name(), MAX_NAME_CHARS);
    let mut lines = vec![match reason {
        AlertReason::StillFailing { since } => {
            format!("The Kadoa workflow \"{name}\" is still failing (since {}).", since.to_readable_string())
        }
        AlertReason::Failed => format!("The Kadoa workflow \"{name}\" failed: it is not collecting data."),
        AlertReason::Recovered => format!("The Kadoa workflow \"{name}\" recovered: it is collecting data again."),
    }];
    lines.push(String::new());
    lines.push(format!("Workflow: {name} ({})", event.workflow_id));
    lines.push(format!("What:     {}", verb(reason)));
    lines.push(format!("When:     {} ({})", at.to_readable_string(), at.to_key_string()));
    if late {
        lines.push(late_line());
    }
    let optional = [
        ("Reason:   ", event.reason.as_deref()),
        ("Action:   ", event.action.as_deref()),
        ("Page:     ", event.page_url()),
    ];
    for (label, text) in optional {
        if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
            lines.push(format!("{label}{}", capped(text, MAX_FIELD_CHARS)));
        }
    }
    lines.push(String::new());
    lines.push(FOOTER.to_owned());
    lines.join("\n")
}

/// `text` trimmed and cut to `max` characters (keeping any script: this is for email).
pub(super) fn capped(text: &str, max: usize) -> String {
    shorten(text.trim(), max)
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
    use crate::events::HealthEventKind;
    use serde_json::json;

    fn raw(data: &serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(data.to_string()).unwrap()
    }

    fn event(kind: HealthEventKind, data: serde_json::Value) -> HealthEvent {
        HealthEvent::parse(kind, &raw(&data)).unwrap()
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

    fn failed(event: &HealthEvent) -> AlertMessage {
        AlertMessage::health(event, at(), AlertReason::Failed, false)
    }

    fn assert_valid_subject(subject: &str) {
        assert!(subject.len() < 100, "{} chars: {subject}", subject.len());
        assert!(subject.chars().all(|c| c.is_ascii() && !c.is_ascii_control()), "{subject:?}");
    }

    #[test]
    fn subject_names_what_happened_and_the_workflow() {
        assert_eq!(failed(&documented_failure()).subject, "Kadoa: workflow failed - Product Monitor");
        let recovered =
            event(HealthEventKind::Recovered, json!({"workflowId": "wf_123", "workflowName": "Product Monitor"}));
        let message = AlertMessage::health(&recovered, at(), AlertReason::Recovered, false);
        assert_eq!(message.subject, "Kadoa: workflow recovered - Product Monitor");
        assert_eq!(
            (message.event_type.as_str(), message.workflow_id.as_deref()),
            ("workflow_recovered", Some("wf_123"))
        );
    }

    #[test]
    fn subject_transliterates_accents_and_drops_emoji() {
        assert_eq!(
            failed(&named("Café Préçis Überwachung")).subject,
            "Kadoa: workflow failed - Cafe Precis Uberwachung"
        );
        assert_eq!(failed(&named("🚀 Launch Tracker 🔥")).subject, "Kadoa: workflow failed - Launch Tracker");
        assert_eq!(failed(&named("Preise\nund\tLinks")).subject, "Kadoa: workflow failed - Preise und Links");
    }

    #[test]
    fn subject_falls_back_to_the_id_when_the_name_has_no_ascii() {
        assert_eq!(failed(&named("🔥🔥")).subject, "Kadoa: workflow failed - wf_1");
    }

    #[test]
    fn long_names_are_cut_at_a_word_boundary() {
        let long = "Competitor price watch ".repeat(14); // 322 characters
        let subject = failed(&named(&long)).subject;
        assert_valid_subject(&subject);
        assert_eq!(
            subject,
            "Kadoa: workflow failed - Competitor price watch Competitor price watch Competitor price watch..."
        );
        assert_valid_subject(&failed(&named(&"x".repeat(300))).subject);
    }

    #[test]
    fn sms_fits_160_chars_and_says_which_workflow_and_what() {
        assert_eq!(
            failed(&documented_failure()).sms,
            "Kadoa: \"Product Monitor\" failed (15 Jan 10:30 UTC): Access blocked by bot protection"
        );
        let long = event(
            HealthEventKind::Failed,
            json!({"workflowId": "wf_1", "workflowName": "Ünïcode 🚀 ".repeat(30), "reason": "timeout ".repeat(50)}),
        );
        let sms = failed(&long).sms;
        assert!(sms.len() <= MAX_SMS_CHARS, "{} chars: {sms}", sms.len());
        assert!(sms.is_ascii());
        assert!(sms.starts_with("Kadoa: \"Unicode"), "{sms}");
        assert!(sms.contains("failed (15 Jan 10:30 UTC): timeout"), "{sms}");
    }

    #[test]
    fn sms_for_recovery_repeat_and_late_delivery() {
        let recovered =
            event(HealthEventKind::Recovered, json!({"workflowId": "wf_123", "workflowName": "Product Monitor"}));
        assert_eq!(
            AlertMessage::health(&recovered, at(), AlertReason::Recovered, false).sms,
            "Kadoa: \"Product Monitor\" recovered (15 Jan 10:30 UTC)"
        );
        let since = Timestamp::parse_rfc3339("2025-01-15T08:00:00Z").unwrap();
        let sms = AlertMessage::health(&documented_failure(), at(), AlertReason::StillFailing { since }, false).sms;
        assert_eq!(
            sms,
            "Kadoa: \"Product Monitor\" still failing (15 Jan 10:30 UTC): Access blocked by bot protection"
        );
        let late = AlertMessage::health(&documented_failure(), at(), AlertReason::Failed, true);
        assert_eq!(
            late.sms,
            "Kadoa: \"Product Monitor\" failed (15 Jan 10:30 UTC, late): Access blocked by bot protection"
        );
        assert!(late.email.contains("\nLate:     Kadoa reported this at the time above"), "{}", late.email);
    }

    #[test]
    fn email_is_complete() {
        assert_eq!(
            failed(&documented_failure()).email,
            "The Kadoa workflow \"Product Monitor\" failed: it is not collecting data.\n\
             \n\
             Workflow: Product Monitor (wf_123)\n\
             What:     failed\n\
             When:     Wed 15 Jan 2025, 10:30 UTC (2025-01-15T10:30:00.000Z)\n\
             Reason:   Access blocked by bot protection\n\
             Action:   No action needed. We'll email you when the workflow recovers.\n\
             Page:     https://monitored-page.com\n\
             \n\
             Sent by your Kadoa webhook receiver on AWS."
        );
    }

    #[test]
    fn email_keeps_the_real_name_and_omits_what_is_unknown() {
        let email = failed(&named("Café 🚀")).email;
        assert!(email.contains("Workflow: Café 🚀 (wf_1)"), "{email}");
        assert!(!email.contains("Reason:") && !email.contains("Page:"), "{email}");
    }

    #[test]
    fn a_huge_reason_still_fits_one_publish() {
        let huge = event(
            HealthEventKind::Failed,
            json!({"workflowId": "wf_1", "workflowName": "n".repeat(100_000), "reason": "r".repeat(140 * 1024),
                   "action": "a".repeat(100_000), "url": "u".repeat(100_000)}),
        );
        let message = failed(&huge);
        let publish = message.to_sns_json().len() + message.subject.len();
        assert!(publish < 32 * 1024, "{publish} bytes");
        assert!(message.email.contains(&format!("Reason:   {}...", "r".repeat(MAX_FIELD_CHARS - 3))));
    }

    #[test]
    fn sns_message_has_the_full_text_by_default_and_the_short_one_for_sms() {
        let message = failed(&documented_failure());
        let json: serde_json::Value = serde_json::from_str(&message.to_sns_json()).unwrap();
        assert_eq!(json, serde_json::json!({"default": message.email, "sms": message.sms}));
    }

    #[test]
    fn account_events_read_like_the_failure_alerts() {
        let data = json!({"message": "Only 50 credits left", "remainingCredits": 50});
        let message = AlertMessage::notice("credits_low", None, at(), &raw(&data), false);
        assert_eq!(message.subject, "Kadoa: credits are running low");
        assert_eq!(message.sms, "Kadoa: credits are running low (15 Jan 10:30 UTC): Only 50 credits left");
        assert_eq!(
            message.email,
            "Kadoa reports: credits are running low.\n\
             \n\
             What:     credits_low\n\
             When:     Wed 15 Jan 2025, 10:30 UTC (2025-01-15T10:30:00.000Z)\n\
             \n\
             Details:\n  message: Only 50 credits left\n  remainingCredits: 50\n\
             \n\
             Sent by your Kadoa webhook receiver on AWS."
        );
        assert_eq!((message.event_type.as_str(), message.workflow_id), ("credits_low", None));
        let degraded = AlertMessage::notice("workflow_health_degraded", Some("wf_9"), at(), &raw(&json!({})), false);
        assert_eq!(degraded.subject, "Kadoa: workflow health degraded - wf_9");
        assert_eq!(degraded.sms, "Kadoa: workflow health degraded - wf_9 (15 Jan 10:30 UTC)");
    }

    #[test]
    fn shorten_cuts_at_words() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("one two three four", 12), "one two...");
        assert_eq!(shorten("abcdefghijklmnop", 10), "abcdefg...");
    }
}
