//! Packs the code a delivery runs at the start of the binary's code (link/hot-text.ld).
//!
//! The kernel maps a binary's code in 64 KiB windows around each page that runs, so code
//! spread through the whole binary makes all of it resident; packed, a warm instance maps
//! little more than the code it runs (README, Performance). Release builds on Linux only:
//! GNU ld, LLD and zig's linker (what cargo-lambda uses) all read the script.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=link/hot-text.ld");
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let release = env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let Ok(manifest_dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let script = Path::new(&manifest_dir).join("link/hot-text.ld");
    if linux && release && script.exists() {
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
