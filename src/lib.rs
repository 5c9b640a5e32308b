//! Receives Kadoa webhooks on AWS Lambda: data changes into DynamoDB, workflow failures
//! and recoveries to people through SNS.
//!
//! Layout: `app` is the request path; `events` holds one module per Kadoa event type
//! (parse → plan → apply); `alerts` tells people about failures and recoveries (SNS);
//! `store` is DynamoDB; `auth` and `secrets` guard the door;
//! `config`, `aws` and `logging` are set up once at init.

pub mod alerts;
pub mod app;
pub mod auth;
pub mod aws;
pub mod config;
pub mod envelope;
pub mod error;
pub mod events;
pub mod logging;
pub mod secrets;
pub mod store;
pub mod timestamp;

pub use app::{App, AwsClients};
pub use config::Settings;
