//! Packs the code a delivery runs at the start of the binary's code (link/hot-text.ld).
//!
//! The kernel maps a binary's code in 64 KiB windows around each page that runs, so code
//! spread through the whole binary makes all of it resident; packed, a warm instance maps
//! little more than the code it runs (README, Performance). Release builds on Linux only,
//! linked by LLD (rustc's default on x86_64, zig's as cargo-lambda uses it) or GNU ld;
//! mold and gold cannot read the script, so a build that asks for them links unpacked, as
//! does one with `KADOA_HOT_TEXT=off`.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=link/hot-text.ld");
    println!("cargo::rerun-if-env-changed=KADOA_HOT_TEXT");
    let var = |name| env::var(name).unwrap_or_default();
    let linux = var("CARGO_CFG_TARGET_OS") == "linux";
    let release = var("PROFILE") == "release";
    let linker = format!("{} {}", var("RUSTC_LINKER"), var("CARGO_ENCODED_RUSTFLAGS"));
    let script_reader = !["mold", "gold"].iter().any(|other| linker.contains(other));
    let wanted = var("KADOA_HOT_TEXT") != "off";
    let script = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/hot-text.ld");
    if linux && release && script_reader && wanted && script.is_file() {
        // Two arguments, so a comma in the path cannot split it (as `-Wl,-T,<path>` would).
        println!("cargo::rustc-link-arg-bins=-T");
        println!("cargo::rustc-link-arg-bins={}", script.display());
    }
}
