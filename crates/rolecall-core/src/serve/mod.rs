//! Serving the engine to other processes on this machine.
//!
//! [`agent`] is the per-user control socket that the CLI (and later the tray app) use to talk to
//! the process running the scheduler; [`client`] is its typed client; [`protocol`] is the wire
//! format they share; `transport` is the platform's local endpoint under them (a Unix socket,
//! or a named pipe on Windows). Servers take a bound listener and a shutdown token, so tests bind their
//! own. Credential delivery endpoints (ECS, IMDS) come here too, in a later issue.

pub mod agent;
pub mod client;
pub mod protocol;
mod transport;
