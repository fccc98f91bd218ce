//! Rolecall's engine: keeps AWS temporary credentials fresh.
//!
//! Long-lived IAM user keys live in the OS keychain ([`vault`]); [`sts`] turns them into MFA
//! sessions and role credentials; [`credfile`] splices them into the shared credentials file as
//! managed sections without touching anything else in it. [`Engine`] wires these together for
//! the CLI, the daemon and the tray app, and reports what happens on a typed event stream
//! ([`events`]). This crate has no GUI dependencies, never prints, prompts or exits.
#![warn(missing_docs)]
// the engine never prints: it reports through events, errors and `tracing`
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod awsconfig;
pub mod config;
pub mod credentials;
pub mod credfile;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod events;
pub mod host;
pub mod iam;
pub mod scheduler;
pub mod serve;
pub mod status;
pub mod sts;
#[cfg(test)]
mod testutil;
pub mod timestamp;
pub mod vault;

pub use config::{SettingsChange, change_settings};
pub use engine::{
    Clock, CodeAsker, Engine, EngineBuilder, EngineHandle, KeyImport, MfaPrompter, NoPrompt,
    Outcome, ProfileStatus, RefreshOptions, SourceInfo, State, SystemClock, Targets,
};
pub use error::Error;
pub use host::Host;
pub use status::LiveView;
