//! The keychain's long-lived keys: add, read, list and remove a source's key (and its
//! `[sources.NAME]` entry in the config). Key import from the credentials file is in `setup.rs`.

use super::{EngineHandle, SourceInfo, known, sources};
use crate::config::{self, Config, ConfigEditor};
use crate::credentials::Credentials;
use crate::error::Error;

impl EngineHandle {
    /// Stores a long-lived key for `source` in the keychain and adds `[sources.NAME]` to the
    /// config (keeping an existing entry's settings).
    pub async fn add_key(
        &self,
        source: &str,
        key: Credentials,
        mfa_serial: Option<String>,
    ) -> Result<(), Error> {
        config::check_name(source).map_err(|message| {
            Error::Config(config::Error::Invalid {
                path: self.inner.paths.config_file.clone(),
                line: None,
                key: format!("sources.{source}"),
                message,
            })
        })?;
        self.ensure_keychain_source(source)?;
        if let Some(serial) = &mfa_serial {
            config::check_mfa_serial(serial).map_err(|message| {
                Error::Config(config::Error::Invalid {
                    path: self.inner.paths.config_file.clone(),
                    line: None,
                    key: format!("sources.{source}.mfa_serial"),
                    message,
                })
            })?;
        }
        let src = source.to_string();
        self.blocking(move |v| {
            v.set_source_key(&src, &key)?;
            // a new key invalidates the session made with the old one
            v.delete_session(&src).map(|_| ())
        })
        .await?;
        let path = self.inner.paths.config_file.clone();
        let name = source.to_string();
        let new_config = super::blocking::bounded(
            "the config file edit",
            move || -> Result<Config, config::Error> {
                let mut ed = ConfigEditor::open(&path)?;
                let mut values = Vec::new();
                if mfa_serial.is_some() || !ed.has_entry("sources", &name) {
                    values.push(("mfa_serial", mfa_serial));
                }
                ed.set_entry("sources", &name, &values);
                ed.save()
            },
        )
        .await??;
        self.set_config(new_config);
        Ok(())
    }

    /// Reads a source's stored key (used by `keys import --scrub` to check the copy).
    pub async fn source_key(&self, source: &str) -> Result<Option<Credentials>, Error> {
        let s = source.to_string();
        self.blocking(move |v| v.source_key(&s)).await
    }

    /// Lists configured sources with what the keychain holds for them.
    pub async fn list_keys(&self) -> Result<Vec<SourceInfo>, Error> {
        let config = self.config();
        let mut out = Vec::new();
        for (name, src) in &config.sources {
            // only keychain sources have anything in the keychain
            let (key_id, session_expiration) = if src.kind == config::SourceKind::Keychain {
                let n = name.clone();
                let (key, session) = self
                    .blocking(move |v| Ok((v.source_key(&n)?, v.session(&n)?)))
                    .await?;
                (
                    key.map(|k| crate::credentials::KeyId(&k.access_key_id).to_string()),
                    session.and_then(|s| s.credentials.expiration),
                )
            } else {
                (None, sources::memory_session_expiration(self, name))
            };
            out.push(SourceInfo {
                name: name.clone(),
                kind: src.kind,
                key_id,
                mfa_serial: src.mfa_serial.clone(),
                session_expiration,
            });
        }
        Ok(out)
    }

    /// The sources that have a key or a cached session in the keychain, with what each has;
    /// `None` when the keychain cannot list its entries. No secret is read.
    pub async fn keychain_entries(&self) -> Result<Option<Vec<crate::vault::Entries>>, Error> {
        self.blocking(|v| v.entries()).await
    }

    /// Deletes a source's key and session from the keychain and its config entry. Refuses
    /// while profiles use it.
    pub async fn remove_key(&self, source: &str) -> Result<bool, Error> {
        let config = self.config();
        let users: Vec<&String> = config
            .profiles
            .iter()
            .filter(|(_, p)| p.source == source)
            .map(|(n, _)| n)
            .collect();
        if !users.is_empty() {
            return Err(Error::Config(config::Error::Invalid {
                path: self.inner.paths.config_file.clone(),
                line: None,
                key: format!("sources.{source}"),
                message: format!(
                    "still used by profile(s) {}; remove or re-point them first",
                    known(users.into_iter())
                ),
            }));
        }
        let s = source.to_string();
        let in_keychain = config
            .sources
            .get(source)
            .is_none_or(|src| src.kind == config::SourceKind::Keychain);
        // a source of another kind has nothing in the keychain (which may not even exist)
        let existed = in_keychain
            && self
                .blocking(move |v| {
                    let a = v.delete_source_key(&s)?;
                    let b = v.delete_session(&s)?;
                    Ok(a || b)
                })
                .await?;
        let path = self.inner.paths.config_file.clone();
        let name = source.to_string();
        let (had, new_config) = super::blocking::bounded(
            "the config file edit",
            move || -> Result<(bool, Config), config::Error> {
                let mut ed = ConfigEditor::open(&path)?;
                let had = ed.remove_entry("sources", &name);
                Ok((had, ed.save()?))
            },
        )
        .await??;
        self.set_config(new_config);
        Ok(existed || had)
    }
}
