//! `workflow_failed`, `workflow_recovered` and `workflow_finished`: a workflow stopped
//! working, started working again, or completed a run (which, after a failure, is a
//! recovery: Kadoa sends no `workflow_recovered` when finished runs are subscribed too).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{check_id, deserialize_data};
use crate::error::Error;

/// Which health event this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthEventKind {
    /// `workflow_failed`
    Failed,
    /// `workflow_recovered`
    Recovered,
    /// `workflow_finished`
    Finished,
}

impl HealthEventKind {
    /// Kadoa's name for it.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Failed => super::FAILED,
            Self::Recovered => super::RECOVERED,
            Self::Finished => super::FINISHED,
        }
    }
}

/// A health event's fields; only the workflow is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// Which event.
    pub kind: HealthEventKind,
    /// `data.workflowId` (for a finished run, `data.id`).
    pub workflow_id: String,
    /// `data.workflowName`
    pub workflow_name: Option<String>,
    /// Kadoa's name for what was scraped; often the workflow's name again.
    pub source: Option<String>,
    /// `data.sourceUrl`
    pub source_url: Option<String>,
    /// `data.url`
    pub url: Option<String>,
    /// `data.reason` (failures)
    pub reason: Option<String>,
    /// `data.action` (failures): what the reader should do.
    pub action: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    id: Option<String>,
    workflow_id: Option<String>,
    workflow_name: Option<String>,
    source: Option<String>,
    source_url: Option<String>,
    url: Option<String>,
    reason: Option<String>,
    action: Option<String>,
}

impl HealthEvent {
    /// Parses `data` of a health event of `kind`.
    pub fn parse(kind: HealthEventKind, data: &RawValue) -> Result<Self, Error> {
        let wire: Wire = deserialize_data(data)?;
        let workflow_id = match kind {
            // Kadoa names the workflow of a finished run in `data.id`.
            HealthEventKind::Finished => wire
                .id
                .map(|id| check_id("data.id", &id))
                .or_else(|| wire.workflow_id.map(|id| check_id("data.workflowId", &id)))
                .ok_or_else(|| Error::invalid("data.id (the workflow id) is required"))??,
            _ => check_id(
                "data.workflowId",
                &wire.workflow_id.ok_or_else(|| Error::invalid("data.workflowId is required"))?,
            )?,
        };
        Ok(Self {
            kind,
            workflow_id,
            workflow_name: wire.workflow_name,
            // A finished run's `source` is what triggered it ("scheduler"), not a name.
            source: wire.source.filter(|_| kind != HealthEventKind::Finished),
            source_url: wire.source_url,
            url: wire.url,
            reason: wire.reason,
            action: wire.action,
        })
    }

    /// The name people know the workflow by.
    pub fn display_name(&self) -> &str {
        [&self.workflow_name, &self.source]
            .into_iter()
            .flatten()
            .map(|name| name.trim())
            .find(|name| !name.is_empty())
            .unwrap_or(&self.workflow_id)
    }

    /// The page the workflow watches.
    pub fn page_url(&self) -> Option<&str> {
        self.source_url.as_deref().or(self.url.as_deref()).filter(|url| !url.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: HealthEventKind, data: serde_json::Value) -> Result<HealthEvent, Error> {
        let text = data.to_string();
        let raw: &RawValue = serde_json::from_str(&text).unwrap();
        HealthEvent::parse(kind, raw)
    }

    #[test]
    fn parses_the_documented_failure() {
        let event = parse(
            HealthEventKind::Failed,
            json!({
                "workflowId": "wf_123", "workflowName": "Product Monitor", "source": "Product Monitor",
                "sourceUrl": "https://monitored-page.com", "url": "https://monitored-page.com",
                "reason": "Access blocked by bot protection",
                "action": "No action needed. We'll email you when the workflow recovers.",
                "screenshotUrl": "https://example.com/s.png"
            }),
        )
        .unwrap();
        assert_eq!(event.kind, HealthEventKind::Failed);
        assert_eq!(event.display_name(), "Product Monitor");
        assert_eq!(event.page_url(), Some("https://monitored-page.com"));
        assert_eq!(event.reason.as_deref(), Some("Access blocked by bot protection"));
    }

    #[test]
    fn only_the_workflow_id_is_required() {
        let event = parse(HealthEventKind::Recovered, json!({"workflowId": "wf_9"})).unwrap();
        assert_eq!(event.kind, HealthEventKind::Recovered);
        assert_eq!(event.display_name(), "wf_9");
        assert_eq!(event.page_url(), None);
        let error = parse(HealthEventKind::Failed, json!({"workflowName": "x"})).unwrap_err();
        assert_eq!(error.detail(), "data.workflowId is required");
    }

    #[test]
    fn a_finished_run_names_its_workflow_in_id() {
        let event =
            parse(HealthEventKind::Finished, json!({"id": "wf_1", "jobId": "job_456", "source": "scheduler"})).unwrap();
        assert_eq!((event.kind, event.workflow_id.as_str()), (HealthEventKind::Finished, "wf_1"));
        assert_eq!(event.display_name(), "wf_1", "the trigger is not the workflow's name");
    }

    #[test]
    fn blank_names_fall_back() {
        let event =
            parse(HealthEventKind::Failed, json!({"workflowId": "wf_9", "workflowName": " ", "source": "Shop"}))
                .unwrap();
        assert_eq!(event.display_name(), "Shop");
    }
}
