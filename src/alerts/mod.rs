//! Telling people: whether a health event alerts ([`health`], pure), what they read
//! ([`message`], pure), and the SNS adapter that sends it ([`sns`]).

pub mod change;
pub mod health;
pub mod message;
pub mod sns;

pub use health::{decide, AlertReason, Decision, HealthRecord, WorkflowState};
pub use message::AlertMessage;
pub use sns::SnsPublisher;

use futures::future::BoxFuture;

use crate::error::Error;

/// Where alerts go: the seam between deciding to tell people and telling them. The stack
/// deploys [`SnsPublisher`]; another destination (a chat webhook, a second topic) is one
/// more implementation, composed in [`crate::components`].
pub trait Publisher: Send + Sync {
    /// Tells people `message`; an error means nobody was told, and the delivery is tried
    /// again (the claim is released).
    fn publish<'a>(&'a self, message: &'a AlertMessage) -> BoxFuture<'a, Result<(), Error>>;
}
