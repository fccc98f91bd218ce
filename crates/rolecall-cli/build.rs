//! Link flags for the `rolecall` binary only.
//!
//! `credential_process` runs `rolecall` once per AWS call, so process start is its cost, and
//! most of that start is the dynamic loader applying ~22,000 relative relocations from a
//! 0.5 MB table (page faults on every run). `-z pack-relative-relocs` stores them as DT_RELR,
//! a few KB. GNU ld enables it only when the glibc it links against supports DT_RELR (2.36+),
//! so a binary built on an older system stays loadable there.

#![allow(
    clippy::disallowed_methods,
    reason = "a build script's input is the environment cargo gives it"
)]

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
