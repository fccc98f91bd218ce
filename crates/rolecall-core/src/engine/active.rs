//! The active profile and the config's effect on the file: `use` (mirror a profile into
//! `[default]`), `clear`, and `reload` (a new config: removes the sections of removed profiles,
//! mirrors a newly active profile). [`mirror`] is the one place `[default]` is made from a
//! profile's credentials (the refresh pass uses it too).

use std::time::SystemTime;

use super::{DEFAULT_SECTION, EngineHandle, RefreshOptions, Targets, known, sources, upsert};
use crate::config::{self, Config, ConfigEditor};
use crate::credentials::Credentials;
use crate::credfile::{self, Edit};
use crate::error::Error;
use crate::events::Event;

/// What [`EngineHandle::clear_reported`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleared {
    /// The managed sections removed.
    pub removed: Vec<String>,
    /// The sources whose cached MFA session was in the keychain and is gone now.
    pub forgotten_sessions: Vec<String>,
}

/// The edit that mirrors `profile` into `[default]`, with the newer of `creds` and what `text`
/// (the credentials file) holds for it, and their expiry. `None`: neither has credentials.
pub(super) fn mirror(
    text: &str,
    profile: &str,
    creds: Option<Credentials>,
    region: Option<String>,
    provenance: Option<credfile::Provenance>,
    adopt: bool,
) -> Option<(Edit, Option<SystemTime>)> {
    let in_file = credfile::managed_credentials(text, profile).map(|(c, _)| c);
    let creds = match (creds, in_file) {
        (Some(given), Some(file)) if file.expiration > given.expiration => file,
        (Some(given), _) => given,
        (None, file) => file?,
    };
    let exp = creds.expiration;
    Some((
        upsert(DEFAULT_SECTION, &creds, region, provenance, adopt),
        exp,
    ))
}

impl EngineHandle {
    /// Makes `profile` the active one (mirrored into `[default]`), or none. `adopt` lets
    /// Rolecall take over a `[default]` section it did not write.
    pub async fn use_profile(
        &self,
        profile: Option<&str>,
        adopt: bool,
        opts: RefreshOptions,
    ) -> Result<Option<SystemTime>, Error> {
        let config = self.config();
        if let Some(name) = profile
            && !config.profiles.contains_key(name)
        {
            return Err(Error::UnknownProfile {
                name: name.to_string(),
                config: self.config_path(),
                known: known(config.profiles.keys()),
            });
        }
        let fresh = match profile {
            Some(name) => Some((name, self.credentials(name, opts).await?)),
            None => None,
        };
        // from here until the config names the new active profile, no refresh pass may run: one
        // that started with the old `active` would write that profile into `[default]` again
        let _serial = self.inner.refresh_lock.lock().await;
        let expiration = match fresh {
            Some((name, (creds, region))) => {
                // a pass may have renewed the profile between `credentials` and the lock
                let text = self.file_op(|f| f.read()).await?;
                let (edit, exp) = mirror(
                    &text,
                    name,
                    Some(creds),
                    region,
                    super::provenance(&config, name),
                    adopt,
                )
                .ok_or_else(|| Error::Internal(format!("no credentials of {name}")))?;
                self.file_op(move |f| f.apply(&[edit])).await?;
                exp
            }
            None => {
                let text = self.file_op(|f| f.read()).await?;
                // a [default] changed since rolecall wrote it is tried too, so the removal is
                // refused with the file's reason instead of passing in silence
                let managed = credfile::inspect(&text)
                    .sections
                    .iter()
                    .any(|s| s.name == DEFAULT_SECTION && (s.managed || s.changed));
                if managed {
                    let edit = Edit::Remove {
                        name: DEFAULT_SECTION.to_string(),
                    };
                    self.file_op(move |f| f.apply(&[edit])).await?;
                }
                None
            }
        };
        let path = self.inner.paths.config_file.clone();
        let active = profile.map(str::to_string);
        let new_config = super::blocking::bounded(
            "the config file edit",
            move || -> Result<Config, config::Error> {
                let mut ed = ConfigEditor::open(&path)?;
                ed.set_setting("active", active.as_deref());
                ed.save()
            },
        )
        .await??;
        self.set_config(new_config);
        self.emit(Event::ActiveChanged {
            profile: profile.map(str::to_string),
        });
        // a running scheduler shows the new active profile in its live view
        self.wake();
        Ok(expiration)
    }

    /// Removes managed sections of `targets` (all of them, `[default]` included, and every
    /// cached session with [`Targets::All`]), and returns the names removed. Long-lived keys
    /// stay. A target may also name an orphaned section (see
    /// [`orphaned_sections`](Self::orphaned_sections)).
    pub async fn clear(&self, targets: &Targets) -> Result<Vec<String>, Error> {
        Ok(self.clear_reported(targets).await?.removed)
    }

    /// [`clear`](Self::clear), saying also whose cached MFA sessions were forgotten.
    pub async fn clear_reported(&self, targets: &Targets) -> Result<Cleared, Error> {
        let _serial = self.inner.refresh_lock.lock().await;
        let config = self.config();
        let text = self.file_op(|f| f.read()).await?;
        let inventory = credfile::inspect(&text);
        let managed: Vec<String> = inventory
            .sections
            .iter()
            .filter(|s| s.managed)
            .map(|s| s.name.clone())
            .collect();
        // sections changed since rolecall wrote them are the user's: never removed, said so
        let changed: Vec<String> = inventory
            .sections
            .iter()
            .filter(|s| s.changed)
            .map(|s| s.name.clone())
            .collect();
        let refused: Option<String>;
        let names: Vec<String> = match targets {
            Targets::All => {
                refused = changed.first().cloned();
                managed.clone()
            }
            Targets::Some(names) => {
                // a managed section no profile has any more (an orphan) may be named too
                let orphans = super::status::orphans(&config, &text);
                let (orphaned, configured): (Vec<String>, Vec<String>) = names
                    .iter()
                    .cloned()
                    .partition(|n| !config.profiles.contains_key(n) && orphans.contains(n));
                let mut v = self.resolve(&config, &Targets::Some(configured))?;
                v.extend(orphaned);
                if let Some(a) = &config.settings.active
                    && v.contains(a)
                {
                    v.push(DEFAULT_SECTION.to_string());
                }
                refused = v.iter().find(|n| changed.contains(n)).cloned();
                v.retain(|n| managed.contains(n));
                v
            }
        };
        let edits: Vec<Edit> = names
            .iter()
            .map(|n| Edit::Remove { name: n.clone() })
            .collect();
        if !edits.is_empty() {
            self.file_op(move |f| f.apply(&edits)).await?;
        }
        // and their regions' sections of ~/.aws/config
        credfile::update_regions(
            &self.inner.paths,
            names.iter().map(|n| (n.clone(), None)).collect(),
        )
        .await;
        let forgotten = if *targets == Targets::All {
            sources::forget_all_sessions(self, &config).await?
        } else {
            Vec::new()
        };
        self.emit(Event::Cleared {
            profiles: names.clone(),
        });
        // missing sections are due, and the live view changed
        self.wake();
        if let Some(name) = refused {
            return Err(Error::Credfile(credfile::Error::Changed {
                name,
                path: self.credentials_file().path().to_path_buf(),
            }));
        }
        Ok(Cleared {
            removed: names,
            forgotten_sessions: forgotten,
        })
    }

    /// Why the last [`reload`](Self::reload) refused the config file, while the config in
    /// force is the last good one; `None` when the last reload worked (or there was none).
    pub fn config_error(&self) -> Option<String> {
        match self.inner.config_error.lock() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_config_error(&self, error: Option<String>) {
        match self.inner.config_error.lock() {
            Ok(mut e) => *e = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
    }

    /// Reads the config file again (on a change seen by the watcher, or SIGHUP). A valid config
    /// replaces the one in force: the managed sections of profiles it no longer has are
    /// removed (and `[default]` when `active` was removed), parked profiles get another try,
    /// `ConfigReloaded` is sent and the scheduler re-plans. An invalid (or vanished) file keeps
    /// the config in force and sends `ConfigInvalid`.
    pub async fn reload(&self) -> Result<(), Error> {
        let path = self.paths().config_file.clone();
        let loaded = super::blocking::bounded("reading the config file", move || {
            if !path.exists() {
                // an editor that moves the old file away before writing the new one would
                // otherwise make every profile disappear for a moment
                return Err(config::Error::Read {
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the file is gone; keeping the config in force",
                    ),
                    path,
                });
            }
            Config::load(&path)
        })
        .await?;
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "config not reloaded");
                self.set_config_error(Some(e.to_string()));
                self.emit(Event::ConfigInvalid {
                    message: e.to_string(),
                });
                return Err(Error::Config(e));
            }
        };
        // no refresh pass half-way through the old config while the file is edited
        let _serial = self.inner.refresh_lock.lock().await;
        let old = self.config();
        let added: Vec<String> = new
            .profiles
            .keys()
            .filter(|n| !old.profiles.contains_key(*n))
            .cloned()
            .collect();
        let removed: Vec<String> = old
            .profiles
            .keys()
            .filter(|n| !new.profiles.contains_key(*n))
            .cloned()
            .collect();
        let mut gone = removed.clone();
        if old.settings.active.is_some() && new.settings.active.is_none() {
            gone.push(DEFAULT_SECTION.to_string());
        }
        // `active` edited by hand: `[default]` mirrors the new one now, not at its next renewal
        let mirror = new
            .settings
            .active
            .clone()
            .filter(|a| old.settings.active.as_ref() != Some(a));
        let region = mirror
            .as_deref()
            .and_then(|a| new.region(a))
            .map(str::to_string);
        let provenance = mirror.as_deref().and_then(|a| super::provenance(&new, a));
        if !gone.is_empty() || mirror.is_some() {
            // from the file of the config in force: that is where those sections are
            let file = self.credentials_file();
            let result = super::blocking::bounded("the credentials file update", move || {
                let text = file.read()?;
                let inventory = credfile::inspect(&text);
                let mut edits: Vec<Edit> = gone
                    .into_iter()
                    .filter(|n| inventory.managed().any(|s| &s.name == n))
                    .map(|name| Edit::Remove { name })
                    .collect();
                // (not there yet: its first renewal writes `[default]` too; the user's own
                // `[default]` is left to the renewal, which says so, so that the removals above
                // are not refused with it)
                let users_default = inventory
                    .sections
                    .iter()
                    .any(|s| s.name == DEFAULT_SECTION && !s.managed);
                if let Some(active) = mirror
                    && !users_default
                    && let Some((edit, _)) =
                        self::mirror(&text, &active, None, region, provenance, false)
                {
                    edits.push(edit);
                }
                if edits.is_empty() {
                    Ok(false)
                } else {
                    file.apply(&edits)
                }
            })
            .await?;
            if let Err(e) = result {
                tracing::warn!(error = %e, "the credentials file was not updated for the new config");
            }
        }
        if !removed.is_empty() {
            credfile::update_regions(
                &self.inner.paths,
                removed.iter().map(|n| (n.clone(), None)).collect(),
            )
            .await;
        }
        // the STS client is built from two settings: a changed one takes effect now
        let (was, is) = (&old.settings, &new.settings);
        let sts_changed =
            (was.sts_timeout, was.sts_max_attempts) != (is.sts_timeout, is.sts_max_attempts);
        self.set_config(new);
        if sts_changed {
            // after the new settings are in force, so the next call builds from them
            self.reset_sts();
        }
        self.set_config_error(None);
        self.inner.board.reloaded();
        tracing::info!(?added, ?removed, "config reloaded");
        self.emit(Event::ConfigReloaded { added, removed });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::credfile;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn drain(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e);
        }
        out
    }

    // ---- with a real engine (no STS: the keychain is an empty in-memory store) ---------

    use crate::testutil::Sandbox;

    fn section(name: &str) -> Edit {
        use crate::credentials::{Credentials, SecretString};
        Edit::Upsert {
            section: credfile::Section {
                name: name.into(),
                credentials: Credentials {
                    access_key_id: "ASIAEXAMPLEEXAMPLE".into(),
                    secret_access_key: SecretString::from("secret"),
                    session_token: Some(SecretString::from("token")),
                    expiration: Some(SystemTime::now() + secs(3600)),
                },
                region: None,
                provenance: None,
            },
            adopt: false,
        }
    }

    const AB_ACTIVE: &str = r#"
[settings]
active = "a"
[sources.s]
[profiles.a]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/A"
[profiles.b]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/B"
"#;

    #[tokio::test]
    async fn reload_mirrors_a_new_active_profile_into_default_at_once() {
        use crate::credentials::{Credentials, SecretString};
        let sb = Sandbox::new();
        sb.write_config(AB_ACTIVE);
        let engine = sb.engine().await;
        let h = engine.handle();
        let keyed = |name: &str, key: &str| Edit::Upsert {
            section: credfile::Section {
                name: name.into(),
                credentials: Credentials {
                    access_key_id: key.into(),
                    secret_access_key: SecretString::from("secret"),
                    session_token: Some(SecretString::from("token")),
                    expiration: Some(SystemTime::now() + secs(3600)),
                },
                region: None,
                provenance: None,
            },
            adopt: false,
        };
        h.credentials_file()
            .apply(&[
                keyed("a", "ASIAAAAAEXAMPLE"),
                keyed("b", "ASIABBBBEXAMPLE"),
                keyed(DEFAULT_SECTION, "ASIAAAAAEXAMPLE"),
            ])
            .unwrap();
        let default_key = || {
            let text = std::fs::read_to_string(sb.path("credentials")).unwrap();
            credfile::managed_credentials(&text, DEFAULT_SECTION).map(|(c, _)| c.access_key_id)
        };
        sb.write_config(&AB_ACTIVE.replace("active = \"a\"", "active = \"b\""));
        h.reload().await.unwrap();
        assert_eq!(default_key().as_deref(), Some("ASIABBBBEXAMPLE"));
        // the same active profile again: nothing to do
        h.reload().await.unwrap();
        assert_eq!(default_key().as_deref(), Some("ASIABBBBEXAMPLE"));
    }

    #[tokio::test]
    async fn a_users_own_default_does_not_stop_the_removals_of_a_reload() {
        let sb = Sandbox::new();
        sb.write_config(AB_ACTIVE);
        let mine = "[default]\naws_access_key_id = AKIAMINE\n";
        std::fs::write(sb.path("credentials"), mine).unwrap();
        let engine = sb.engine().await;
        let h = engine.handle();
        h.credentials_file()
            .apply(&[section("a"), section("b")])
            .unwrap();
        // `active` moves to b and a is removed, in one edit
        sb.write_config(
            &AB_ACTIVE
                .replace("active = \"a\"", "active = \"b\"")
                .replace(
                    "[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n",
                    "",
                ),
        );
        h.reload().await.unwrap();
        assert!(!h.config().profiles.contains_key("a"));
        let text = std::fs::read_to_string(sb.path("credentials")).unwrap();
        let names: Vec<String> = credfile::inspect(&text)
            .sections
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["b", "default"], "{text}");
        assert!(text.ends_with(mine), "{text}");
    }

    #[tokio::test]
    async fn reload_removes_sections_of_removed_profiles_and_keeps_the_config_when_invalid() {
        let sb = Sandbox::new();
        sb.write_config(AB_ACTIVE);
        std::fs::write(
            sb.path("credentials"),
            "[mine]\naws_access_key_id = AKIAMINE\n",
        )
        .unwrap();
        let engine = sb.engine().await;
        let h = engine.handle();
        h.credentials_file()
            .apply(&[section("a"), section("b"), section(DEFAULT_SECTION)])
            .unwrap();
        let mut rx = h.subscribe();

        sb.write_config(&AB_ACTIVE.replace("active = \"a\"\n", "").replace(
            "[profiles.b]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/B\"\n",
            "[profiles.c]\nsource = \"s\"\n",
        ));
        h.reload().await.unwrap();
        let text = std::fs::read_to_string(sb.path("credentials")).unwrap();
        let names: Vec<String> = credfile::inspect(&text)
            .sections
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["a", "mine"], "{text}");
        assert!(
            text.ends_with("[mine]\naws_access_key_id = AKIAMINE\n"),
            "{text}"
        );
        assert_eq!(
            drain(&mut rx),
            [Event::ConfigReloaded {
                added: vec!["c".into()],
                removed: vec!["b".into()]
            }]
        );
        assert!(h.config().profiles.contains_key("c"));

        sb.write_config("[settings]\nrefresh_before = \"soon\"\n");
        assert!(h.reload().await.is_err());
        assert!(
            h.config().profiles.contains_key("c"),
            "the old config stays"
        );
        match drain(&mut rx).as_slice() {
            [Event::ConfigInvalid { message }] => {
                assert!(message.contains("refresh_before"), "{message}");
            }
            other => panic!("{other:?}"),
        }

        std::fs::remove_file(sb.path("rolecall/config.toml")).unwrap();
        assert!(h.reload().await.is_err());
        assert!(
            h.config().profiles.contains_key("c"),
            "a vanished file is no empty config"
        );
    }

    /// Issue 13: a reload that changes `sts_timeout` or `sts_max_attempts` takes effect.
    #[tokio::test]
    async fn issue_13_reload_rebuilds_the_sts_client_with_new_settings() {
        let sb = Sandbox::new();
        sb.write_config(AB_ACTIVE);
        let engine = sb.engine().await;
        let h = engine.handle();
        assert_eq!(h.sts().await.limits(), (3, Some(secs(10))));
        sb.write_config(&AB_ACTIVE.replace(
            "active = \"a\"",
            "active = \"a\"\nsts_timeout = \"3s\"\nsts_max_attempts = 5",
        ));
        h.reload().await.unwrap();
        assert_eq!(h.sts().await.limits(), (5, Some(secs(3))));
    }
}
