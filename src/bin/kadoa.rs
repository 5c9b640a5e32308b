//! `kadoa`: the operator's command (see [`kadoa_webhook::cli`]). The scheduled
//! reconciliation it can also run by hand is deployed as `kadoa-lambda`'s `reconcile`.

#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::Parser;
use kadoa_webhook::cli::{self, Cli};
use kadoa_webhook::logging;

/// mimalloc, as the functions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Usage errors exit 2 and `--help` 0, from clap, before anything else.
    let cli = Cli::parse();
    logging::init_for_command(cli.verbose);
    cli::run(cli).await
}
