//! The replay function under a name of its own, for `cargo lambda watch` (`make dev`);
//! the deployed stack runs the same entry point from `kadoa-lambda`.

#![recursion_limit = "256"]

use kadoa_webhook::functions::{self, Function};
use lambda_http::lambda_runtime::Error;

/// mimalloc, as deployed (see `kadoa-lambda`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    functions::run(Function::Replay).await
}
