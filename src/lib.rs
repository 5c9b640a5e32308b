//! Receives Kadoa webhooks on AWS Lambda: data changes into DynamoDB, workflow failures,
//! recoveries and account events to people through SNS.
//!
//! The layout is the architecture; dependencies point inward, towards the pure core:
//!
//! - entry points: [`functions`] (each Lambda function's start-up), [`cli`] (the `kadoa` command), [`http`] (the webhook: method, authentication, answer, log line) and
//!   [`replay`] (the spool's SQS consumer), [`reconcile`] (Kadoa's API, by hand or on a
//!   schedule), [`outbox`] (the table's stream → EventBridge);
//! - the dispatch: [`receiver`], the one place an event is applied;
//! - the pure core: [`envelope`] and [`events`] (parse), [`table`] (keys, items and
//!   DynamoDB's rules), [`alerts::health`] and [`alerts::message`] (decide, write);
//! - adapters: [`store`] (DynamoDB), [`alerts::sns`] (SNS), [`spool`] (SQS and S3),
//!   [`kadoa_api`] (Kadoa's REST API),
//!   [`secrets`] (Secrets Manager), [`aws`] (SDK configuration);
//! - shared vocabulary: [`outcome`], [`error`], [`timestamp`], [`secret`]; set up once: [`config`],
//!   [`logging`]; each invocation's [`metrics`] line.

pub mod alerts;
pub mod aws;
#[cfg(feature = "cli")]
pub mod cli;
pub mod components;
pub mod config;
pub mod digest;
pub mod envelope;
pub mod error;
pub mod events;
pub mod functions;
pub mod http;
pub mod kadoa_api;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod outcome;
pub mod receiver;
pub mod reconcile;
pub mod replay;
pub mod rules;
pub mod secret;
pub mod secrets;
pub mod spool;
pub mod store;
pub mod table;
pub mod timestamp;

pub use aws::AwsClients;
pub use components::Components;
pub use config::Settings;
pub use http::App;
