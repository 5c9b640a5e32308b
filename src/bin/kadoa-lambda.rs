//! Every function of the stack in one binary: `sam build` compiles and links it once, and
//! each function's `Handler` (which Lambda passes as `_HANDLER`) picks what it runs:
//! `webhook`, `replay`, `reconcile` or `outbox` (see [`kadoa_webhook::functions`]).

#![recursion_limit = "256"]

use lambda_http::lambda_runtime::Error;

/// mimalloc: fewer instructions per allocation than glibc's malloc (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time: one thread is enough (fewer instructions, less memory).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    kadoa_webhook::functions::run_handler(std::env::var("_HANDLER").ok().as_deref()).await
}
