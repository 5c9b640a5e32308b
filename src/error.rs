//! The one error type of the request path, and the HTTP response each variant becomes.

use lambda_http::{http::StatusCode, Body, Response};
use serde_json::json;

/// Why a request was not acknowledged. The status code of every failure is decided here.
#[derive(Debug)]
pub enum RequestError {
    /// 405: only POST, PUT and PATCH carry events.
    MethodNotAllowed(String),
    /// 401: the credential is missing or matches no configured secret. Says nothing else.
    Unauthorized,
    /// 400: the body is not a Kadoa event; the message names the field.
    BadRequest(String),
    /// 413: the event is valid but cannot be stored within DynamoDB's limits.
    TooLarge(String),
    /// 503: an AWS call failed after the SDK's retries; Kadoa will retry the delivery.
    /// The detail goes to the log only.
    Unavailable(String),
}

impl RequestError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn unavailable(context: &str, error: impl std::fmt::Display) -> Self {
        Self::Unavailable(format!("{context}: {error}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the log line says about the failure (never secrets, never payloads).
    pub fn detail(&self) -> &str {
        match self {
            Self::MethodNotAllowed(message)
            | Self::BadRequest(message)
            | Self::TooLarge(message)
            | Self::Unavailable(message) => message,
            Self::Unauthorized => "unauthorized",
        }
    }

    /// What the caller is told: the problem for 4xx, nothing internal for 503.
    fn public_message(&self) -> &str {
        match self {
            Self::Unavailable(_) => "temporarily unavailable",
            other => other.detail(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status(), &json!({ "error": self.public_message() }));
        if let Self::MethodNotAllowed(_) = self {
            response.headers_mut().insert("allow", lambda_http::http::HeaderValue::from_static("POST, PUT, PATCH"));
        }
        response
    }
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", lambda_http::http::HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: &Response<Body>) -> serde_json::Value {
        match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn unavailable_hides_the_aws_detail() {
        let error = RequestError::unavailable("PutItem", "dispatch failure: connection refused");
        assert_eq!(error.detail(), "PutItem: dispatch failure: connection refused");
        let response = error.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(body_of(&response), json!({"error": "temporarily unavailable"}));
    }

    #[test]
    fn bad_request_names_the_problem() {
        let response = RequestError::bad_request("data.workflowId is required").into_response();
        assert_eq!(response.status(), 400);
        assert_eq!(body_of(&response), json!({"error": "data.workflowId is required"}));
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_methods() {
        let response = RequestError::MethodNotAllowed("GET is not allowed".into()).into_response();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "POST, PUT, PATCH");
    }
}
