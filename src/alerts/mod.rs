//! Telling people: whether a health event alerts ([`health`], pure), what they read
//! ([`message`], pure), and the SNS adapter that sends it ([`sns`]).

pub mod health;
pub mod message;
pub mod sns;

pub use health::{decide, AlertReason, Decision, HealthRecord, WorkflowState};
pub use message::AlertMessage;
pub use sns::Publisher;
