//! Integration tests: one test crate, so the AWS SDK is linked once. Each module tests one
//! side of the product end to end, against moto over HTTP.

// Tests may unwrap and index: a panic here is a failing test, not a crashed function.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod alerts;
mod cli;
mod cost;
mod events;
mod hostile;
mod kadoa_events;
mod metrics;
mod queries;
mod reconcile;
mod rules;
mod spool;
mod startup;
mod support;
mod template;
mod views;
mod webhook;
