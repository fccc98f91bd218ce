//! The commands a page may call, one file per domain, each a call into the [`crate::backend`].
//! `capabilities/` allows exactly these and nothing else.

pub mod mfa;
pub mod settings;
