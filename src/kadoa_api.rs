//! The Kadoa REST API adapter: what reconciliation reads (the change list, one change, the
//! notification delivery log) and what `kadoa connect` writes (webhook channels, their
//! subscriptions, the test notification). Kadoa answering 429 or 5xx is retried with
//! backoff, honouring `Retry-After`; the API key is sent, never logged, and never follows
//! a redirect to another origin; an answer is read up to [`MAX_ANSWER_BYTES`], no further.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::timestamp::Timestamp;

/// Kadoa's API, unless `KADOA_API_URL` says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.kadoa.com";
/// Deliveries asked for per page of the log (its maximum).
pub const PAGE_SIZE: u32 = 100;
/// Changes asked for per page of the change list: each listed change carries Kadoa's full
/// dataset snapshot (`data`, megabytes for a large page), which a page holds twice at most
/// (the answer's text, and each change without `data` as it is read), so a page stays
/// well inside the reconcile function's memory.
pub const CHANGES_PAGE_SIZE: u32 = 10;
/// Pages a run reads of one list at most: more means the window is too wide for one run,
/// or Kadoa's pagination never ends.
pub const MAX_PAGES: u64 = 2_000;
/// Redirects followed, only to the same origin: the API key goes with every request.
const MAX_REDIRECTS: usize = 5;
/// The most of one answer read from Kadoa. The largest legitimate answer is a page of the
/// change list: [`CHANGES_PAGE_SIZE`] (10) changes, each with Kadoa's dataset snapshot
/// (`data`, a few MB for a large workflow), so 32 MiB leaves about 3 MiB a change. The
/// reconcile function holds an answer up to about three times while reading it (the
/// read buffer, a copy with lone surrogates repaired, what is parsed from it), which
/// stays inside its 256 MB. Past it the read stops and that request fails: a broken or
/// hostile API cannot grow the function's memory without end.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// `answer`'s body, read chunk by chunk and refused as soon as it passes `limit` bytes
/// (`what` names the sender in errors). A `Content-Length` above `limit` is refused
/// before anything is read.
pub async fn read_capped(mut answer: reqwest::Response, limit: usize, what: &str) -> Result<Vec<u8>, Error> {
    let too_large = || {
        Error::invalid(format!(
            "{what} answered more than {limit} bytes: not read further (no legitimate answer is that large)"
        ))
    };
    let announced = answer.content_length().map(|length| usize::try_from(length).unwrap_or(usize::MAX));
    if announced.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(announced.unwrap_or(0));
    while let Some(chunk) = answer.chunk().await.map_err(|e| Error::unavailable(what, e.without_url()))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How failed requests are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRetry {
    /// Tries per request, the first included.
    pub tries: u32,
    /// First wait; it doubles (or is what `Retry-After` says, up to `max_wait`).
    pub first_wait: Duration,
    /// Longest wait between two tries.
    pub max_wait: Duration,
}

impl Default for ApiRetry {
    fn default() -> Self {
        Self { tries: 5, first_wait: Duration::from_secs(1), max_wait: Duration::from_secs(30) }
    }
}

/// One page of `GET /v5/changes`.
#[derive(Debug, Deserialize)]
pub struct ChangesPage {
    /// The changes, as raw JSON (every digit kept), without their dataset snapshot.
    #[serde(default)]
    pub changes: Vec<ListedChange>,
    /// Where this page is.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// A change as the list has it, read without its `data` (Kadoa's full dataset snapshot,
/// which the receiver never stores): the rest, raw.
#[derive(Debug)]
pub struct ListedChange(pub Box<RawValue>);

impl<'de> Deserialize<'de> for ListedChange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields: std::collections::BTreeMap<String, &RawValue> = Deserialize::deserialize(deserializer)?;
        fields.remove("data");
        let text = serde_json::to_string(&fields).map_err(serde::de::Error::custom)?;
        RawValue::from_string(text).map(Self).map_err(serde::de::Error::custom)
    }
}

/// The pagination block of the change list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Pages in all.
    #[serde(default)]
    pub total_pages: Option<u64>,
    /// This page (1-based).
    #[serde(default)]
    pub page: Option<u64>,
}

/// One page of `GET /v5/notifications/logs`.
#[derive(Debug, Deserialize)]
pub struct LogsPage {
    /// The deliveries.
    #[serde(default)]
    pub events: Vec<LoggedDelivery>,
    /// Whether more pages follow.
    #[serde(default)]
    pub has_more: bool,
}

/// One delivery in Kadoa's log.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedDelivery {
    /// The event type.
    pub event_type: String,
    /// When Kadoa created the event.
    #[serde(default)]
    pub created_at: Option<String>,
    /// What was (or would have been) delivered.
    pub payload: Box<RawValue>,
}

#[derive(Deserialize)]
struct LogsAnswer {
    data: LogsData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogsData {
    #[serde(default)]
    events: Vec<LoggedDelivery>,
    #[serde(default)]
    pagination: Option<LogsPagination>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogsPagination {
    #[serde(default)]
    has_more: bool,
}

/// A client of Kadoa's API.
#[derive(Clone)]
pub struct KadoaApi {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    retry: ApiRetry,
    answer_limit: usize,
}

impl std::fmt::Debug for KadoaApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KadoaApi").field("base_url", &self.base_url).field("api_key", &"<redacted>").finish()
    }
}

impl KadoaApi {
    /// A client of the API at `base_url`, authenticated with `api_key`.
    pub fn new(base_url: &str, api_key: String, retry: ApiRetry) -> Result<Self, Error> {
        // Kadoa's answers are followed to the same origin only: the API key goes with the
        // request, and reqwest strips only the standard credential headers elsewhere.
        let same_origin = reqwest::redirect::Policy::custom(|attempt| {
            let origin = |url: &reqwest::Url| {
                (url.scheme().to_owned(), url.host_str().map(str::to_owned), url.port_or_known_default())
            };
            let first = attempt.previous().first().map(origin);
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if first == Some(origin(attempt.url())) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let http = reqwest::Client::builder()
            .redirect(same_origin)
            .timeout(Duration::from_secs(30))
            .user_agent("kadoa-webhook-receiver")
            .build()
            .map_err(|e| Error::internal("HTTP client", e))?;
        let base_url = base_url.trim_end_matches('/').to_owned();
        Ok(Self { http, base_url, api_key, retry, answer_limit: MAX_ANSWER_BYTES })
    }

    /// The same client, reading at most `bytes` of an answer instead of
    /// [`MAX_ANSWER_BYTES`] (for a function given less memory, and for tests).
    pub fn with_answer_limit(mut self, bytes: usize) -> Self {
        self.answer_limit = bytes;
        self
    }

    /// The changes created in `[from, to)`, `skip` of them skipped.
    pub async fn changes(&self, from: Timestamp, to: Timestamp, skip: u64) -> Result<ChangesPage, Error> {
        let query = [
            ("startDate", from.to_key_string()),
            ("endDate", to.to_key_string()),
            ("skip", skip.to_string()),
            ("limit", CHANGES_PAGE_SIZE.to_string()),
        ];
        let text = self.get("/v5/changes", &query).await?;
        serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("Kadoa's change list is not as documented: {e}")))
    }

    /// One change as Kadoa has it now.
    pub async fn change(&self, change_id: &str) -> Result<Box<RawValue>, Error> {
        let path = format!("/v5/changes/{}", urlencode(change_id));
        let text = self.get(&path, &[]).await?;
        // The change itself, or wrapped as `{"change": …}` / `{"data": …}`.
        #[derive(Deserialize)]
        struct Wrapped {
            change: Option<Box<RawValue>>,
            data: Option<Box<RawValue>>,
            id: Option<Box<RawValue>>,
        }
        let wrapped: Wrapped = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("Kadoa's change is not as documented: {e}")))?;
        match (wrapped.id, wrapped.change, wrapped.data) {
            (Some(_), _, _) => RawValue::from_string(text).map_err(|e| Error::internal("change", e)),
            (None, Some(change), _) | (None, None, Some(change)) => Ok(change),
            (None, None, None) => Err(Error::invalid("Kadoa's change has no id")),
        }
    }

    /// The deliveries logged in `[from, to)`, `offset` of them skipped.
    pub async fn deliveries(&self, from: Timestamp, to: Timestamp, offset: u64) -> Result<LogsPage, Error> {
        let query = [
            ("startDate", from.to_key_string()),
            ("endDate", to.to_key_string()),
            ("offset", offset.to_string()),
            ("limit", PAGE_SIZE.to_string()),
        ];
        let text = self.get("/v5/notifications/logs", &query).await?;
        let answer: LogsAnswer = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("Kadoa's delivery log is not as documented: {e}")))?;
        let has_more = answer.data.pagination.is_some_and(|p| p.has_more);
        Ok(LogsPage { events: answer.data.events, has_more })
    }

    /// Every notification channel of the workspace.
    pub async fn channels(&self) -> Result<Vec<serde_json::Value>, Error> {
        let text = self.get("/v5/notifications/channels", &[]).await?;
        let answer: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("Kadoa's channel list is not as documented: {e}")))?;
        // `{"data": {"channels": [...]}}`, `{"data": [...]}` or `[...]`.
        let list = [answer.pointer("/data/channels"), answer.get("data"), answer.get("channels"), Some(&answer)]
            .into_iter()
            .find_map(|v| v.and_then(serde_json::Value::as_array).cloned())
            .unwrap_or_default();
        Ok(list)
    }

    /// Creates a channel; its id.
    pub async fn create_channel(&self, channel: &serde_json::Value) -> Result<String, Error> {
        let text = self.send(reqwest::Method::POST, "/v5/notifications/channels", channel).await?;
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let id = [answer.pointer("/data/channel/id"), answer.pointer("/data/id"), answer.get("id")]
            .into_iter()
            .find_map(|id| id.and_then(serde_json::Value::as_str).map(str::to_owned));
        id.ok_or_else(|| Error::invalid("Kadoa created the channel but named no id"))
    }

    /// Replaces channel `id`'s settings.
    pub async fn update_channel(&self, id: &str, channel: &serde_json::Value) -> Result<(), Error> {
        let path = format!("/v5/notifications/channels/{}", urlencode(id));
        self.send(reqwest::Method::PUT, &path, channel).await.map(|_| ())
    }

    /// The workspace-wide notification settings of `event_type` (Kadoa keeps one per
    /// event type, or none): `workflowId=null` asks for the workspace's, and a setting of
    /// one workflow is left out here too, whatever the answer holds.
    pub async fn workspace_settings(&self, event_type: &str) -> Result<Vec<serde_json::Value>, Error> {
        let query = [("eventType", event_type.to_owned()), ("workflowId", "null".to_owned())];
        let text = self.get("/v5/notifications/settings", &query).await?;
        let answer: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("Kadoa's notification settings are not as documented: {e}")))?;
        let list = [answer.pointer("/data/settings"), answer.get("settings"), answer.get("data")]
            .into_iter()
            .find_map(|v| v.and_then(serde_json::Value::as_array).cloned())
            .ok_or_else(|| Error::invalid("Kadoa's notification settings are not as documented: no list"))?;
        Ok(list
            .into_iter()
            .filter(|s| s.get("eventType").is_none_or(|t| t == event_type))
            .filter(|s| s.get("workflowId").is_none_or(serde_json::Value::is_null))
            .collect())
    }

    /// Creates the settings of a (workflow or workspace, event type) pair that has none.
    pub async fn create_settings(&self, settings: &serde_json::Value) -> Result<(), Error> {
        self.send(reqwest::Method::POST, "/v5/notifications/settings", settings).await.map(|_| ())
    }

    /// Replaces settings `id` (its channels, `enabled`, `eventConfiguration`).
    pub async fn update_settings(&self, id: &str, settings: &serde_json::Value) -> Result<(), Error> {
        let path = format!("/v5/notifications/settings/{}", urlencode(id));
        self.send(reqwest::Method::PUT, &path, settings).await.map(|_| ())
    }

    /// Asks Kadoa to send a test notification of `event_type` through the channels.
    pub async fn test_notification(&self, event_type: &str) -> Result<serde_json::Value, Error> {
        let body = serde_json::json!({"eventType": event_type});
        let text = self.send(reqwest::Method::POST, "/v5/notifications/test", &body).await?;
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(answer.get("data").cloned().unwrap_or(answer))
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<String, Error> {
        self.request(reqwest::Method::GET, path, query, None).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &serde_json::Value) -> Result<String, Error> {
        self.request(method, path, &[], Some(body)).await
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<String, Error> {
        let url = format!("{}{path}", self.base_url);
        // A POST that failed with 5xx or no answer may have been done: creating a channel
        // twice is worse than asking the operator to run the command again. A 429 was not
        // done, whatever the method.
        let idempotent = method != reqwest::Method::POST;
        let mut wait = self.retry.first_wait;
        for attempt in 1..=self.retry.tries {
            let mut request = self.http.request(method.clone(), &url).query(query).header("x-api-key", &self.api_key);
            if let Some(body) = body {
                request = request.json(body);
            }
            let sent = request.send().await;
            let retry_after = match sent {
                Ok(answer) if answer.status().is_success() => return self.read_text(answer, path).await,
                Ok(answer) if matches!(answer.status().as_u16(), 401 | 403) => {
                    return Err(Error::invalid(format!(
                        "Kadoa refused the API key ({}): check KADOA_API_KEY",
                        answer.status().as_u16()
                    )));
                }
                Ok(answer) if answer.status().as_u16() == 429 || (idempotent && answer.status().is_server_error()) => {
                    let header =
                        answer.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
                    tracing::warn!(status = answer.status().as_u16(), path, attempt, "Kadoa API busy; trying again");
                    header.map(Duration::from_secs)
                }
                Ok(answer) if answer.status().is_redirection() => {
                    return Err(Error::invalid(format!(
                        "Kadoa answered {} for {path}, to another origin: not followed (the API key would go with it)",
                        answer.status().as_u16()
                    )));
                }
                Ok(answer) => {
                    return Err(Error::invalid(format!("Kadoa answered {} for {path}", answer.status().as_u16())));
                }
                Err(error) if idempotent => {
                    tracing::warn!(error = %error.without_url(), path, attempt, "Kadoa API unreachable; trying again");
                    None
                }
                Err(error) => {
                    return Err(Error::Unavailable(crate::error::bounded(format!(
                        "Kadoa API {path}: {} (not sent again: it may have been done; check, then run again)",
                        error.without_url()
                    ))));
                }
            };
            if attempt < self.retry.tries {
                tokio::time::sleep(retry_after.unwrap_or(wait).min(self.retry.max_wait)).await;
                wait = (wait * 2).min(self.retry.max_wait);
            }
        }
        Err(Error::Unavailable(format!("Kadoa API {path}: no answer after {} tries", self.retry.tries)))
    }
}

impl KadoaApi {
    /// A successful answer's text, read within the cap.
    async fn read_text(&self, answer: reqwest::Response, path: &str) -> Result<String, Error> {
        let body = read_capped(answer, self.answer_limit, &format!("Kadoa API {path}")).await?;
        let text = String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        // As the webhook reads its bodies (see `repair_lone_surrogates`).
        Ok(match crate::envelope::repair_lone_surrogates(text.as_bytes()) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(repaired) => String::from_utf8_lossy(&repaired).into_owned(),
        })
    }
}

/// Every byte but RFC 3986's unreserved characters is escaped: an id is one path segment.
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, PATH_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(urlencode("change_123"), "change_123");
        assert_eq!(urlencode("a/b c#"), "a%2Fb%20c%23");
    }

    #[test]
    fn listed_changes_are_read_without_their_dataset() {
        let page: ChangesPage =
            serde_json::from_str(r#"{"changes":[{"id":"c1","data":[{"big":"x"}],"n":98765432109876543210}]}"#).unwrap();
        assert_eq!(page.changes[0].0.get(), r#"{"id":"c1","n":98765432109876543210}"#, "data gone, digits kept");
    }

    #[test]
    fn the_key_is_never_printed() {
        let api = KadoaApi::new("https://api.kadoa.com/", "sk-secret".into(), ApiRetry::default()).unwrap();
        let printed = format!("{api:?}");
        assert!(!printed.contains("sk-secret") && printed.contains("https://api.kadoa.com"), "{printed}");
    }
}
