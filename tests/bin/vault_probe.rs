//! `rolecall-vault-probe`: drives `rolecall_core::vault::KeychainStore` (and a `Vault` over it)
//! from stdin, one command a line, one answer a line on stdout, for `tests/vault.rs`. It runs as
//! its own process because libdbus finds the Secret Service only through
//! `DBUS_SESSION_BUS_ADDRESS`, which the test sets for this child (setting it in the
//! multi-threaded test process would be unsound).
//!
//! On start it opens the store and answers `ok` or an error line; after an error it exits 0.
//! Then, until EOF:
//!
//! | command                                          | answer                            |
//! |--------------------------------------------------|-----------------------------------|
//! | `get ACCOUNT`                                    | `none`, `some SECRET`             |
//! | `set ACCOUNT SECRET`                             | `ok`                              |
//! | `delete ACCOUNT`                                 | `true`, `false`                   |
//! | `set-source-key NAME KEY_ID SECRET`              | `ok`                              |
//! | `source-key NAME`                                | `none`, `some KEY_ID SECRET`      |
//! | `set-session NAME KEY_ID SECRET TOKEN NANOS MFA` | `ok`                              |
//! | `session NAME`                                   | `none`, `some KEY_ID SECRET TOKEN NANOS MFA` |
//! | `delete-session NAME`                            | `true`, `false`                   |
//!
//! NANOS is the expiration in nanoseconds since the Unix epoch; MFA is the serial or `-`.
//! Any failure answers `err KIND account=ACCOUNT needs_user=BOOL retryable=BOOL: MESSAGE`.
//! Test secrets only: this program prints what it reads back.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rolecall_core::credentials::{Credentials, ExposeSecret, SecretString};
use rolecall_core::vault::{CachedSession, Error, KeychainStore, SecretStore, Vault};

fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let store = match KeychainStore::open() {
        Ok(store) => Arc::new(store),
        Err(e) => {
            return answer(&mut out, &describe(&e));
        }
    };
    if answer(&mut out, "ok") != ExitCode::SUCCESS {
        return ExitCode::FAILURE;
    }
    let vault = Vault::new(store.clone());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            return ExitCode::FAILURE;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = run(&store, &vault, &words).unwrap_or_else(|e| describe(&e));
        if answer(&mut out, &reply) != ExitCode::SUCCESS {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn answer(out: &mut impl Write, line: &str) -> ExitCode {
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn run(store: &KeychainStore, vault: &Vault, words: &[&str]) -> Result<String, Error> {
    Ok(match words {
        ["get", account] => match store.get(account)? {
            Some(secret) => format!("some {}", secret.expose_secret()),
            None => "none".to_owned(),
        },
        ["set", account, secret] => {
            store.set(account, &SecretString::from(*secret))?;
            "ok".to_owned()
        }
        ["delete", account] => store.delete(account)?.to_string(),
        ["set-source-key", name, key_id, secret] => {
            let key = Credentials {
                access_key_id: (*key_id).to_owned(),
                secret_access_key: SecretString::from(*secret),
                session_token: None,
                expiration: None,
            };
            vault.set_source_key(name, &key)?;
            "ok".to_owned()
        }
        ["source-key", name] => match vault.source_key(name)? {
            Some(key) => format!(
                "some {} {}",
                key.access_key_id,
                key.secret_access_key.expose_secret()
            ),
            None => "none".to_owned(),
        },
        ["set-session", name, key_id, secret, token, nanos, mfa] => {
            let Some(expiration) = nanos
                .parse::<u64>()
                .ok()
                .and_then(|n| UNIX_EPOCH.checked_add(Duration::from_nanos(n)))
            else {
                return Ok(format!("usage: bad NANOS {nanos}"));
            };
            let session = CachedSession {
                credentials: Credentials {
                    access_key_id: (*key_id).to_owned(),
                    secret_access_key: SecretString::from(*secret),
                    session_token: Some(SecretString::from(*token)),
                    expiration: Some(expiration),
                },
                mfa_serial: (*mfa != "-").then(|| (*mfa).to_owned()),
                iam_user: None,
            };
            vault.set_session(name, &session)?;
            "ok".to_owned()
        }
        ["session", name] => match vault.session(name)? {
            Some(session) => {
                let c = &session.credentials;
                format!(
                    "some {} {} {} {} {}",
                    c.access_key_id,
                    c.secret_access_key.expose_secret(),
                    c.session_token.as_ref().map_or("-", |t| t.expose_secret()),
                    c.expiration
                        .map_or_else(|| "-".to_owned(), nanos_since_epoch),
                    session.mfa_serial.as_deref().unwrap_or("-")
                )
            }
            None => "none".to_owned(),
        },
        ["delete-session", name] => vault.delete_session(name)?.to_string(),
        _ => format!("usage: unknown command {words:?}"),
    })
}

fn nanos_since_epoch(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or_else(|_| "before-epoch".to_owned(), |d| d.as_nanos().to_string())
}

fn describe(e: &Error) -> String {
    let kind = match e {
        Error::Locked { .. } => "Locked",
        Error::Unavailable { .. } => "Unavailable",
        Error::Denied { .. } => "Denied",
        Error::Corrupt { .. } => "Corrupt",
        Error::Invalid { .. } => "Invalid",
        Error::Backend { .. } => "Backend",
        _ => "Other",
    };
    format!(
        "err {kind} account={} needs_user={} retryable={}: {e}",
        e.account().unwrap_or("-"),
        e.needs_user(),
        e.is_retryable()
    )
}
