//! Serving the engine to other processes on this machine.
//!
//! [`agent`] is the per-user control socket that the CLI (and later the tray app) use to talk to
//! the process running the scheduler; [`client`] is its typed client; [`protocol`] is the wire
//! format they share; `transport` is the platform's local endpoint under them (a Unix socket,
//! or a named pipe on Windows). [`ecs`] and [`imds`] are the local credential endpoints (the
//! container credentials endpoint and IMDSv2) that SDKs poll for fresh credentials; they share
//! [`endpoint`] (connection loop, request checks, tokens) and get credentials only through
//! [`source::CredentialSource`]. Servers take a bound listener and a shutdown token or future,
//! so tests bind their own.

pub mod agent;
pub mod client;
pub mod ecs;
pub mod endpoint;
pub mod imds;
pub mod protocol;
pub mod source;
mod transport;
