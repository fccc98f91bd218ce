//! Setting up: moving keys into the keychain, finding a key's MFA device, importing
//! `~/.aws/config`, `doctor`.

use crate::config::{self, Config, ConfigEditor, SourceKind};
use crate::credentials::Credentials;
use crate::credfile::{self, Edit};
use crate::error::Error;
use crate::sts::Sts;

use super::EngineHandle;

/// What `rolecall keys import` did.
#[derive(Debug, Clone)]
pub struct KeyImport {
    /// The source the key was stored as.
    pub source: String,
    /// Whether the section was removed from the credentials file.
    pub scrubbed: bool,
}

impl EngineHandle {
    /// Copies the static key of credentials-file section `profile` into the keychain as source
    /// `as_name` (default: the same name). With `scrub`, removes the section afterwards, but
    /// only once the key has been read back from the keychain and matches.
    pub async fn import_key(
        &self,
        profile: &str,
        as_name: Option<&str>,
        scrub: bool,
    ) -> Result<KeyImport, Error> {
        let source = as_name.unwrap_or(profile).to_string();
        let text = self.file_op(|f| f.read()).await?;
        let path = self.credentials_file().path().to_path_buf();
        let key = credfile::static_key(&text, profile, &path)?;
        let mfa = self
            .config()
            .sources
            .get(&source)
            .and_then(|s| s.mfa_serial.clone());
        self.add_key(&source, key.clone(), mfa).await?;
        if !scrub {
            return Ok(KeyImport {
                source,
                scrubbed: false,
            });
        }
        let back = self.source_key(&source).await?;
        let same = back.as_ref().is_some_and(|b| {
            use secrecy::ExposeSecret;
            b.access_key_id == key.access_key_id
                && b.secret_access_key.expose_secret() == key.secret_access_key.expose_secret()
        });
        if !same {
            return Err(Error::Internal(format!(
                "the key read back from the keychain for source {source} does not match; \
                 section [{profile}] was left in {}",
                path.display()
            )));
        }
        let edit = Edit::Scrub {
            name: profile.to_string(),
        };
        self.file_op(move |f| f.apply(&[edit])).await?;
        Ok(KeyImport {
            source,
            scrubbed: true,
        })
    }

    /// Refuses to store a key for a configured source whose kind is not `keychain` (its
    /// credentials come from elsewhere). Unknown sources are fine: `keys add` creates them.
    pub fn ensure_keychain_source(&self, source: &str) -> Result<(), Error> {
        let config = self.config();
        match config.sources.get(source) {
            Some(src) if src.kind != SourceKind::Keychain => {
                Err(Error::Config(config::Error::Invalid {
                    path: self.inner.paths.config_file.clone(),
                    line: None,
                    key: format!("sources.{source}.kind"),
                    message: format!(
                        "source {source} is of kind {:?}: its credentials come from {}, so \
                         there is no key to store; store a key under another name (`rolecall \
                         keys add OTHER`), or set kind = \"keychain\"",
                        src.kind.as_str(),
                        match src.kind {
                            SourceKind::InstanceProfile => "the EC2 instance metadata service",
                            _ => "rolecall's environment",
                        }
                    ),
                }))
            }
            _ => Ok(()),
        }
    }

    /// The MFA device of the IAM user owning `key` (`rolecall keys add --detect-mfa`):
    /// GetCallerIdentity names the user, IAM ListMFADevices lists its devices. Exactly one
    /// device is the answer; none, or several, is an error that says what to do. Uses the
    /// region of `source` when it is configured.
    pub async fn detect_mfa_serial(
        &self,
        source: &str,
        key: &Credentials,
    ) -> Result<String, Error> {
        let config = self.config();
        let region = config.sources.get(source).and_then(|s| s.region.clone());
        let sts = self.sts();
        let who = sts
            .caller_identity(key, region.as_deref())
            .await
            .map_err(|error| Error::Session {
                source_name: source.to_string(),
                error,
            })?;
        // moto (and only moto) needs the user name; AWS would also take none, but naming the
        // user works for both and for policies scoped to `user/${aws:username}`
        let user = crate::iam::user_name(&who.arn)?;
        let mut serials =
            crate::iam::mfa_devices(&sts, key, region.as_deref(), user.as_deref()).await?;
        let user = user.unwrap_or_else(|| "root".to_string());
        match serials.len() {
            0 => Err(crate::iam::Error::NoDevice { user }.into()),
            1 => Ok(serials.remove(0)),
            _ => Err(crate::iam::Error::SeveralDevices { user, serials }.into()),
        }
    }

    /// Plans (and unless `dry_run`, applies) the import of `~/.aws/config` role profiles.
    pub async fn import_aws_config(
        &self,
        dry_run: bool,
    ) -> Result<crate::awsconfig::ImportPlan, Error> {
        let path = self.inner.paths.aws_config_file.clone();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(Error::Config(config::Error::Read { path, source })),
        };
        let aws = crate::awsconfig::parse(&text).map_err(|message| {
            Error::Config(config::Error::Syntax {
                path: path.clone(),
                line: None,
                column: None,
                message,
            })
        })?;
        let plan = crate::awsconfig::plan_import(&aws, &self.config());
        if dry_run || (plan.sources.is_empty() && plan.profiles.is_empty()) {
            return Ok(plan);
        }
        let cfg_path = self.inner.paths.config_file.clone();
        let p = plan.clone();
        let new_config = super::blocking::bounded(
            "the config file edit",
            move || -> Result<Config, config::Error> {
                let mut ed = ConfigEditor::open(&cfg_path)?;
                for s in &p.sources {
                    ed.set_entry(
                        "sources",
                        &s.name,
                        &[
                            ("mfa_serial", s.mfa_serial.clone()),
                            ("region", s.region.clone()),
                        ],
                    );
                }
                for n in &p.profiles {
                    ed.set_entry(
                        "profiles",
                        &n.name,
                        &[
                            ("source", Some(n.source.clone())),
                            ("role_arn", Some(n.role_arn.clone())),
                            (
                                "duration",
                                n.duration
                                    .map(|d| humantime::format_duration(d).to_string()),
                            ),
                            ("region", n.region.clone()),
                            ("external_id", n.external_id.clone()),
                            ("session_name", n.session_name.clone()),
                        ],
                    );
                }
                ed.save()
            },
        )
        .await??;
        self.set_config(new_config);
        Ok(plan)
    }

    /// Checks the setup and explains what to fix.
    pub async fn doctor(&self) -> Vec<crate::doctor::Check> {
        crate::doctor::run(self).await
    }

    /// The STS client in force (rebuilt by a reload that changes its settings).
    pub(crate) fn sts(&self) -> Sts {
        match self.inner.sts.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Builds the STS client for `settings`.
    pub(crate) async fn new_sts(settings: &crate::config::Settings) -> Sts {
        Sts::new(crate::sts::StsOptions {
            attempt_timeout: settings.sts_timeout,
            max_attempts: settings.sts_max_attempts,
            ..crate::sts::StsOptions::default()
        })
        .await
    }

    pub(crate) fn set_sts(&self, sts: Sts) {
        match self.inner.sts.write() {
            Ok(mut s) => *s = sts,
            Err(poisoned) => *poisoned.into_inner() = sts,
        }
    }

    pub(crate) async fn read_credentials_text(&self) -> Result<zeroize::Zeroizing<String>, Error> {
        self.file_op(|f| f.read()).await
    }
}
