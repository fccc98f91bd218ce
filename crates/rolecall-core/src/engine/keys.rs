//! The keychain's long-lived keys: add, read, list and remove a source's key (and its
//! `[sources.NAME]` entry in the config), rotate it (`keys rotate`), and what IAM says of the
//! user owning it (`keys mfa-devices`, `roles`). Key import from the credentials file is in
//! `setup.rs`.

use std::time::Duration;

use super::{EngineHandle, SourceInfo, known, sources};
use crate::config::{self, Config, ConfigEditor, SourceKind};
use crate::credentials::{Credentials, KeyId};
use crate::error::{Error, RotationLeft};
use crate::iam;

/// Waits between checks that a new access key works (GetCallerIdentity), while IAM spreads it
/// (AWS documents "a few seconds", sometimes more): seven tries over about 15 s.
const PROPAGATION_WAITS: [Duration; 6] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(3),
    Duration::from_secs(4),
    Duration::from_secs(5),
];

/// The IAM user behind a source's key, and what IAM lists for it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IamUserInfo<T> {
    /// The IAM user's name.
    pub user: String,
    /// What was listed.
    pub items: T,
}

/// A finished `keys rotate`.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The IAM user.
    pub user: String,
    /// The old key's id, shortened (deleted from IAM).
    pub old_key: String,
    /// The new key's id, shortened (in the keychain now).
    pub new_key: String,
}

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
        self.inner.sources.forget_user(source);
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

    /// The long-lived IAM user key of `source` (a keychain source's stored key, an
    /// environment source's long-lived key) and the region to sign with.
    async fn long_lived_key(&self, source: &str) -> Result<(Credentials, Option<String>), Error> {
        let config = self.config();
        let src = config
            .sources
            .get(source)
            .ok_or_else(|| Error::UnknownSource {
                name: source.to_string(),
                config: self.config_path(),
            })?;
        let no_key = || Error::NoLongLivedKey {
            source_name: source.to_string(),
            kind: src.kind.as_str(),
        };
        let key = match src.kind {
            SourceKind::Keychain => {
                let s = source.to_string();
                self.blocking(move |v| v.source_key(&s))
                    .await?
                    .ok_or_else(|| Error::NoKey {
                        source_name: source.to_string(),
                    })?
            }
            SourceKind::Environment => {
                let key = sources::environment_credentials(self, source).await?;
                if key.session_token.is_some() {
                    return Err(no_key());
                }
                key
            }
            SourceKind::InstanceProfile => return Err(no_key()),
        };
        Ok((key, src.region.clone()))
    }

    /// The IAM user owning `key` (GetCallerIdentity, then the user name in its ARN).
    async fn iam_user_of(
        &self,
        source: &str,
        key: &Credentials,
        region: Option<&str>,
    ) -> Result<String, Error> {
        let who = self
            .sts()
            .await
            .caller_identity(key, region)
            .await
            .map_err(|error| Error::Session {
                source_name: source.to_string(),
                error,
            })?;
        let iam = |error| Error::SourceIam {
            source_name: source.to_string(),
            error,
        };
        iam::user_name(&who.arn)
            .map_err(iam)?
            .ok_or_else(|| iam(iam::Error::NotAUser { arn: who.arn }))
    }

    /// The MFA devices of the IAM user owning `source`'s key (`rolecall keys mfa-devices`):
    /// GetCallerIdentity names the user, ListMFADevices lists them.
    pub async fn mfa_devices(&self, source: &str) -> Result<IamUserInfo<Vec<String>>, Error> {
        let (key, region) = self.long_lived_key(source).await?;
        let user = self.iam_user_of(source, &key, region.as_deref()).await?;
        let items = iam::mfa_devices(&self.sts().await, &key, region.as_deref(), Some(&user))
            .await
            .map_err(|error| Error::SourceIam {
                source_name: source.to_string(),
                error,
            })?;
        Ok(IamUserInfo { user, items })
    }

    /// The roles the IAM user owning `source`'s key may assume by its own policies and its
    /// groups' (`rolecall roles`); see [`iam::assumable_roles`]. The roles' trust policies are
    /// not visible to the user, so a role listed may still refuse it.
    pub async fn assumable_roles(&self, source: &str) -> Result<IamUserInfo<iam::Roles>, Error> {
        let (key, region) = self.long_lived_key(source).await?;
        let user = self.iam_user_of(source, &key, region.as_deref()).await?;
        let items = iam::assumable_roles(&self.sts().await, &key, region.as_deref(), &user)
            .await
            .map_err(|error| Error::SourceIam {
                source_name: source.to_string(),
                error,
            })?;
        Ok(IamUserInfo { user, items })
    }

    /// Replaces the keychain source's key with a new one (`rolecall keys rotate`): refuses a
    /// user already at IAM's two keys, then CreateAccessKey, checks the new key works
    /// (GetCallerIdentity, tried again while IAM spreads it, at most about 15 s), stores it in
    /// the keychain, and only then deletes the old one. A failure before the store leaves the
    /// old key in the keychain and deletes the new one; a failure to delete the old key leaves
    /// it active (the error says so). The cached MFA session stays: it is the same user's.
    pub async fn rotate_key(&self, source: &str) -> Result<Rotated, Error> {
        self.ensure_keychain_source(source)?;
        let (old, region) = self.long_lived_key(source).await?;
        let region = region.as_deref();
        let user = self.iam_user_of(source, &old, region).await?;
        let sts = self.sts().await;
        let iam_err = |error| Error::SourceIam {
            source_name: source.to_string(),
            error,
        };
        let keys = iam::access_keys(&sts, &old, region, &user)
            .await
            .map_err(iam_err)?;
        if keys.len() >= 2 {
            return Err(iam_err(iam::Error::TooManyKeys {
                user,
                key_ids: keys.iter().map(|k| KeyId(k).to_string()).collect(),
            }));
        }
        let new = match iam::create_access_key(&sts, &old, region, &user).await {
            Err(iam::Error::TooManyKeys { user, .. }) => {
                // another key appeared since the listing
                return Err(iam_err(iam::Error::TooManyKeys {
                    user,
                    key_ids: keys.iter().map(|k| KeyId(k).to_string()).collect(),
                }));
            }
            other => other.map_err(iam_err)?,
        };
        let new_id = KeyId(&new.access_key_id).to_string();
        let old_id = KeyId(&old.access_key_id).to_string();
        tracing::info!(source, user = %user, new_key = %new_id, "created a new access key");
        let stored = async {
            self.wait_until_key_works(source, &new, region).await?;
            let (s, k) = (source.to_string(), new.clone());
            self.blocking(move |v| v.set_source_key(&s, &k)).await
        }
        .await;
        if let Err(cause) = stored {
            // the new key must not outlive the failure: the old one stays in use
            let left = match iam::delete_access_key(&sts, &old, region, &user, &new.access_key_id)
                .await
            {
                Ok(()) => RotationLeft::Unchanged,
                Err(error) => {
                    tracing::warn!(source, %error, new_key = %new_id, "could not delete the new key");
                    RotationLeft::NewKeyLeft {
                        new_key: new_id,
                        user,
                    }
                }
            };
            return Err(Error::Rotation {
                source_name: source.to_string(),
                cause: Box::new(cause),
                left,
            });
        }
        tracing::info!(source, new_key = %new_id, "stored the new key in the keychain");
        // signed with the new key: it is the one that stays
        if let Err(error) =
            iam::delete_access_key(&sts, &new, region, &user, &old.access_key_id).await
        {
            return Err(Error::Rotation {
                source_name: source.to_string(),
                cause: Box::new(iam_err(error)),
                left: RotationLeft::OldKeyLeft {
                    old_key: old_id,
                    user,
                },
            });
        }
        tracing::info!(source, old_key = %old_id, "deleted the old access key");
        Ok(Rotated {
            user,
            old_key: old_id,
            new_key: new_id,
        })
    }

    /// GetCallerIdentity with `key` until AWS accepts it: a new key is refused as unknown
    /// (`InvalidClientTokenId`) until IAM has spread it, so that answer is tried again after
    /// each of [`PROPAGATION_WAITS`]; any other error ends the wait.
    async fn wait_until_key_works(
        &self,
        source: &str,
        key: &Credentials,
        region: Option<&str>,
    ) -> Result<(), Error> {
        let sts = self.sts().await;
        let mut waits = PROPAGATION_WAITS.iter();
        let refused = |detail: String| Error::NewKeyNotWorking {
            source_name: source.to_string(),
            new_key: KeyId(&key.access_key_id).to_string(),
            detail,
        };
        loop {
            match sts.caller_identity(key, region).await {
                Ok(_) => return Ok(()),
                Err(crate::sts::Error::InvalidKey) => match waits.next() {
                    Some(wait) => {
                        tracing::debug!(source, "the new key is not accepted yet; waiting");
                        tokio::time::sleep(*wait).await;
                    }
                    None => {
                        let secs: u64 = PROPAGATION_WAITS.iter().map(Duration::as_secs).sum();
                        return Err(refused(format!(
                            "AWS still did not recognise it after about {secs} s"
                        )));
                    }
                },
                Err(error) => return Err(refused(error.to_string())),
            }
        }
    }
}
