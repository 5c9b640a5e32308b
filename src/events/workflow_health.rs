//! `workflow_failed` and `workflow_recovered`: a workflow stopped or started working again.
//! These are the events that reach people (see `crate::alerts`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{check_id, deserialize_data};
use crate::error::RequestError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthEventKind {
    Failed,
    Recovered,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthEvent {
    #[serde(skip_deserializing, default = "failed")]
    pub kind: HealthEventKind,
    pub workflow_id: String,
    pub workflow_name: Option<String>,
    /// Kadoa's name for what was scraped; often the workflow's name again.
    pub source: Option<String>,
    pub source_url: Option<String>,
    pub url: Option<String>,
    pub reason: Option<String>,
    pub action: Option<String>,
}

impl HealthEventKind {
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Failed => super::FAILED,
            Self::Recovered => super::RECOVERED,
        }
    }
}

fn failed() -> HealthEventKind {
    HealthEventKind::Failed
}

impl HealthEvent {
    pub fn parse(kind: HealthEventKind, data: &Map<String, Value>) -> Result<Self, RequestError> {
        let mut event: Self = deserialize_data(data)?;
        event.kind = kind;
        event.workflow_id = check_id("data.workflowId", &event.workflow_id)?;
        Ok(event)
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

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn parses_the_documented_failure() {
        let event = HealthEvent::parse(
            HealthEventKind::Failed,
            &data(json!({
                "workflowId": "wf_123", "workflowName": "Product Monitor", "source": "Product Monitor",
                "sourceUrl": "https://monitored-page.com", "url": "https://monitored-page.com",
                "reason": "Access blocked by bot protection",
                "action": "No action needed. We'll email you when the workflow recovers.",
                "screenshotUrl": "https://example.com/s.png"
            })),
        )
        .unwrap();
        assert_eq!(event.kind, HealthEventKind::Failed);
        assert_eq!(event.display_name(), "Product Monitor");
        assert_eq!(event.page_url(), Some("https://monitored-page.com"));
        assert_eq!(event.reason.as_deref(), Some("Access blocked by bot protection"));
    }

    #[test]
    fn only_the_workflow_id_is_required() {
        let event = HealthEvent::parse(HealthEventKind::Recovered, &data(json!({"workflowId": "wf_9"}))).unwrap();
        assert_eq!(event.kind, HealthEventKind::Recovered);
        assert_eq!(event.display_name(), "wf_9");
        assert_eq!(event.page_url(), None);
        let error = HealthEvent::parse(HealthEventKind::Failed, &data(json!({"workflowName": "x"}))).unwrap_err();
        assert_eq!(error.detail(), "data.workflowId is required");
    }

    #[test]
    fn blank_names_fall_back() {
        let event = HealthEvent::parse(
            HealthEventKind::Failed,
            &data(json!({"workflowId": "wf_9", "workflowName": " ", "source": "Shop"})),
        )
        .unwrap();
        assert_eq!(event.display_name(), "Shop");
    }
}
