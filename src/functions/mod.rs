//! The Lambda functions' entry points and their one start-up: logging, configuration read
//! once (a function that cannot be configured refuses to start, with one error line), then
//! the runtime's loop. `kadoa-lambda` (what `sam build` deploys for every function) picks
//! one by the function's `Handler`; `kadoa-webhook` and `kadoa-replay` are the same entry
//! points under names of their own, for `cargo lambda watch` (`make dev`).

mod outbox;
mod reconcile;
mod replay;
mod webhook;

use std::fmt::Display;

use lambda_http::lambda_runtime::Error;

use crate::logging;

/// One of the stack's functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// Kadoa's deliveries, through the function URL (and the hourly watch).
    Webhook,
    /// The spool's SQS consumer.
    Replay,
    /// The scheduled reconciliation against Kadoa's API.
    Reconcile,
    /// The table's stream → EventBridge.
    Outbox,
}

impl Function {
    /// Every function, by the `Handler` the template gives it.
    pub const ALL: [(&'static str, Function); 4] = [
        ("webhook", Function::Webhook),
        ("replay", Function::Replay),
        ("reconcile", Function::Reconcile),
        ("outbox", Function::Outbox),
    ];

    /// The function a `Handler` names (Lambda passes it as `_HANDLER`).
    pub fn from_handler(handler: &str) -> Option<Self> {
        Self::ALL.iter().find(|(name, _)| *name == handler).map(|(_, function)| *function)
    }
}

/// Runs `function` until Lambda stops the instance.
pub async fn run(function: Function) -> Result<(), Error> {
    logging::init();
    match function {
        Function::Webhook => webhook::run().await,
        Function::Replay => replay::run().await,
        Function::Reconcile => reconcile::run().await,
        Function::Outbox => outbox::run().await,
    }
}

/// Runs the function `_HANDLER` names (the deployed `kadoa-lambda`).
pub async fn run_handler(handler: Option<&str>) -> Result<(), Error> {
    match handler.and_then(Function::from_handler) {
        Some(function) => run(function).await,
        None => {
            logging::init();
            let known: Vec<&str> = Function::ALL.iter().map(|(name, _)| *name).collect();
            Err(refuse(format!("the function's Handler must be one of {}", known.join(", "))))
        }
    }
}

/// A configuration error, logged once and returned: the instance does not start
/// half-configured.
fn refuse(error: impl Display) -> Error {
    let error = error.to_string();
    tracing::error!(error = %error, "configuration is invalid; refusing to start");
    error.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handler_names_its_function_and_nothing_else_does() {
        for (name, function) in Function::ALL {
            assert_eq!(Function::from_handler(name), Some(function));
        }
        assert_eq!(Function::from_handler("bootstrap"), None);
        assert_eq!(Function::from_handler("Webhook"), None);
    }
}
