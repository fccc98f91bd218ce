//! Rolecall's integration tests: one test binary, one module per area.
//!
//! Every test runs real components (the `rolecall` binary, moto's STS, gnome-keyring on a private
//! D-Bus, the AWS CLI) inside a throwaway HOME; see `support` for the helpers. `make test` builds
//! the binary and installs the Python tools first.
// test code: an unwrap is an assertion (clippy's allow-unwrap-in-tests does not reach helpers)
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

mod adhoc;
mod cli;
mod credfile;
mod daemon;
mod desktop;
mod desktop_mfa;
mod e2e;
mod endpoints;
mod faults;
mod iam;
mod import;
mod package;
mod serve;
mod settings;
mod sources;
mod terminal;
mod testbed;
mod vault;
