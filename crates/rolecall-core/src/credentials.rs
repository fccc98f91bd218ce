//! The value that flows from sources to sinks: one set of AWS credentials.
//!
//! Secrets are wrapped in [`SecretString`] so that they never show up in `Debug` output, logs,
//! events or error messages. Only sinks (the credentials file, `exec`, `export`,
//! `credential_process`) call [`ExposeSecret::expose_secret`].

use std::fmt;
use std::time::SystemTime;

pub use secrecy::{ExposeSecret, SecretString};

/// A set of AWS credentials: long-lived (no session token, no expiry) or temporary.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (`AKIA…` for long-lived keys, `ASIA…` for temporary ones).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// The session token of temporary credentials.
    pub session_token: Option<SecretString>,
    /// When temporary credentials stop working.
    pub expiration: Option<SystemTime>,
}

impl Credentials {
    /// Time left before expiry at `now`; `None` for credentials that do not expire, zero when
    /// already expired.
    pub fn time_left(&self, now: SystemTime) -> Option<std::time::Duration> {
        self.expiration
            .map(|exp| exp.duration_since(now).unwrap_or_default())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &KeyId(&self.access_key_id))
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "expiration",
                &self.expiration.map(humantime::format_rfc3339_seconds),
            )
            .finish()
    }
}

/// Displays an access key id the way logs and messages may show it: only its last four
/// characters (`…MPLE`), as aws-vault does.
pub struct KeyId<'a>(pub &'a str);

impl fmt::Display for KeyId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail: String = {
            let n = self.0.chars().count();
            self.0.chars().skip(n.saturating_sub(4)).collect()
        };
        write!(f, "…{tail}")
    }
}

impl fmt::Debug for KeyId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets_or_full_key_id() {
        let c = Credentials {
            access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG"),
            session_token: Some(SecretString::from("AQoEXAMPLEH4aoAH0gNCAPy")),
            expiration: None,
        };
        let s = format!("{c:?}");
        assert!(!s.contains("wJalr"), "{s}");
        assert!(!s.contains("AQoEX"), "{s}");
        assert!(!s.contains("ASIAIOSFODNN7"), "{s}");
        assert!(s.contains("…MPLE"), "{s}");
    }
}
