//! The one error type of every entry point, and what each kind of failure means for the
//! sender: the HTTP status it becomes, and whether trying again can help.

use std::fmt;

/// Longest message taken from a request into an answer or a log line.
pub const MAX_MESSAGE_BYTES: usize = 300;

/// Why an event was not applied. Each variant decides its status code once, in
/// [`Error::status`]; nothing else maps failures to statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// 405: only POST, PUT and PATCH carry events.
    MethodNotAllowed(String),
    /// 401: the credential is missing or matches no configured secret. Says nothing else.
    Unauthorized,
    /// 400: the request is not a Kadoa event; the message names the field.
    Invalid(String),
    /// 413: the event is valid but cannot be stored within DynamoDB's limits.
    TooLarge(String),
    /// 422: AWS refused the request as invalid (a `ValidationException`). Sending it again
    /// cannot succeed, so it is not answered as a passing outage.
    Refused(String),
    /// 503: an AWS call failed after the SDK's retries, or another delivery of the same
    /// workflow is being applied; the same delivery later succeeds.
    Unavailable(String),
    /// 500: a fault of our own (an item that cannot be built). Logged as an error.
    Internal(String),
}

/// A failed write to the terminal or a file (the `kadoa` command's output).
impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::internal("output", error)
    }
}

impl Error {
    /// A 400 naming the problem; text taken from the request is bounded.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(bounded(message.into()))
    }

    /// A 413 naming what does not fit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::TooLarge(bounded(message.into()))
    }

    /// A 503 whose detail (`context: error`) goes to the log only.
    pub fn unavailable(context: &str, error: impl fmt::Display) -> Self {
        Self::Unavailable(bounded(format!("{context}: {error}")))
    }

    /// A 500 for a fault of our own.
    pub fn internal(context: &str, error: impl fmt::Display) -> Self {
        Self::Internal(bounded(format!("{context}: {error}")))
    }

    /// The HTTP status this failure is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed(_) => 405,
            Self::Unauthorized => 401,
            Self::Invalid(_) => 400,
            Self::TooLarge(_) => 413,
            Self::Refused(_) => 422,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// Whether the same delivery can succeed later (an outage, a busy workflow), as opposed
    /// to a delivery that will be refused however often it is sent.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// What the log line says about the failure (never secrets, never payloads).
    pub fn detail(&self) -> &str {
        match self {
            Self::MethodNotAllowed(message)
            | Self::Invalid(message)
            | Self::TooLarge(message)
            | Self::Refused(message)
            | Self::Unavailable(message)
            | Self::Internal(message) => message,
            Self::Unauthorized => "unauthorized",
        }
    }

    /// What the sender is told: the problem for 4xx, nothing internal for 5xx.
    pub fn public_message(&self) -> &str {
        match self {
            Self::Unavailable(_) => "temporarily unavailable",
            Self::Internal(_) => "internal error",
            // AWS's own words stay in the log: they name tables, keys and limits.
            Self::Refused(_) => "AWS refused to store this delivery; retrying will not help",
            other => other.detail(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail(), self.status())
    }
}

impl std::error::Error for Error {}

/// `text`, cut to at most [`MAX_MESSAGE_BYTES`] on a character boundary.
pub fn bounded(mut text: String) -> String {
    if text.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_hides_the_aws_detail() {
        let error = Error::unavailable("PutItem", "dispatch failure: connection refused");
        assert_eq!(error.detail(), "PutItem: dispatch failure: connection refused");
        assert_eq!((error.status(), error.public_message()), (503, "temporarily unavailable"));
        assert!(error.is_transient());
    }

    #[test]
    fn internal_faults_are_500_and_not_retried() {
        let error = Error::internal("building the change item", "boom");
        assert_eq!((error.status(), error.public_message()), (500, "internal error"));
        assert!(!error.is_transient());
    }

    #[test]
    fn messages_from_requests_are_bounded() {
        let error = Error::invalid(format!("eventType {:?} is not valid", "é".repeat(100_000)));
        assert!(error.detail().len() <= MAX_MESSAGE_BYTES, "{}", error.detail().len());
        assert!(error.detail().ends_with("..."));
        assert_eq!(Error::invalid("data is required").detail(), "data is required");
    }
}
