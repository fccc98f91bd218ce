//! Setting up: moving keys into the keychain, finding a key's MFA device, importing
//! `~/.aws/config`, `doctor`.

use crate::config::{self, Config, ConfigEditor, SourceKind};
use crate::credentials::Credentials;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::awsconfig::ImportPlan;
use crate::credfile::{self, CredentialsFile, Edit, ProfileSection};
use crate::error::Error;
use crate::sts::Sts;

use super::EngineHandle;

/// What `rolecall import` did (or, with `--dry-run`, would do).
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    /// The profiles and sources added, skipped and changed.
    pub plan: ImportPlan,
    /// The AWS config file read (and changed).
    pub aws_config: PathBuf,
    /// The lines of the AWS config file commented out (or to be), in file order.
    pub aws_config_changes: Vec<LineChange>,
    /// Where the AWS config file was kept as it was before it changed.
    pub backup: Option<PathBuf>,
    /// The credentials file read (and changed).
    pub credentials_file: PathBuf,
    /// The lines of the credentials file changed (or to be) by taking over the role profiles
    /// kept there: role keys commented out, Rolecall's marker added. Only those lines, never
    /// a line with a secret. No backup is made of that file: it holds the user's keys.
    pub credentials_file_changes: Vec<LineChange>,
    /// The new sources whose long-lived key sits in the credentials file (for `rolecall keys
    /// import NAME --scrub`); the others need `rolecall keys add NAME`.
    pub keys_in_credentials_file: Vec<String>,
}

/// One line changed in place: its number, the section it is in, and its text before and
/// after (without the line ending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChange {
    /// 1-based line number.
    pub line: usize,
    /// The header of the section the line is in (`[profile dev-admin]`), if any.
    pub section: Option<String>,
    /// The line before.
    pub old: String,
    /// The line after.
    pub new: String,
    /// The line is new (`old` is empty): added after the line before.
    pub inserted: bool,
}

/// The lines that differ between two texts with the same lines but for some replaced in
/// place (what [`Edit::CommentOut`] does). Texts whose line counts differ are compared up to
/// the shorter one's end; that never happens for this module's edits.
fn line_changes(old: &str, new: &str) -> Vec<LineChange> {
    let trim = |l: &str| l.strip_suffix('\r').unwrap_or(l).to_string();
    let mut section = None;
    let mut out = Vec::new();
    for (index, (o, n)) in old.split('\n').zip(new.split('\n')).enumerate() {
        let t = o.trim();
        if t.starts_with('[') && t.contains(']') {
            section = Some(trim(t));
        }
        if o != n {
            out.push(LineChange {
                line: index + 1,
                section: section.clone(),
                old: trim(o),
                new: trim(n),
                inserted: false,
            });
        }
    }
    out
}

/// The lines changed by [`Edit::TakeOver`]: lines replaced in place (comments) and marker
/// lines inserted; every other line is the same in both texts, in the same order. Line
/// numbers are the new text's.
fn take_over_changes(old: &str, new: &str) -> Vec<LineChange> {
    let trim = |l: &str| l.strip_suffix('\r').unwrap_or(l).to_string();
    let marker = format!("{} = true", credfile::MANAGED_KEY);
    let old: Vec<&str> = old.split('\n').collect();
    let mut section = None;
    let mut out = Vec::new();
    let mut i = 0;
    for (index, n) in new.split('\n').enumerate() {
        let t = n.trim();
        if t.starts_with('[') && t.contains(']') {
            section = Some(trim(t));
        }
        let o = old.get(i).copied();
        if o == Some(n) {
            i += 1;
            continue;
        }
        let inserted = trim(n) == marker;
        out.push(LineChange {
            line: index + 1,
            section: section.clone(),
            old: if inserted {
                String::new()
            } else {
                o.map(trim).unwrap_or_default()
            },
            new: trim(n),
            inserted,
        });
        if !inserted {
            i += 1;
        }
    }
    out
}

/// Where the AWS config file is kept before `import` changes it: beside it (beside the link,
/// for a symlink into a dotfiles folder), `NAME.rolecall-YYYYMMDDTHHMMSSZ.bak`.
fn backup_path(file: &Path, now: SystemTime) -> PathBuf {
    let stamp: String = crate::timestamp::format(now)
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".to_string());
    file.with_file_name(format!("{name}.rolecall-{stamp}.bak"))
}

/// What `rolecall keys import` did.
#[derive(Debug, Clone)]
pub struct KeyImport {
    /// The source the key was stored as.
    pub source: String,
    /// Whether the section was removed from the credentials file.
    pub scrubbed: bool,
    /// The MFA device stored with it, and where it came from, when the import set one.
    pub mfa_serial: Option<(String, MfaFrom)>,
}

/// Which MFA device `rolecall keys import` stores with the key (issue 17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaChoice {
    /// `--mfa-serial ARN`.
    Given(String),
    /// `--detect-mfa`: IAM ListMFADevices, signed with the key.
    Detect,
    /// Neither: the source's own in Rolecall's config, else the one the AWS files give the
    /// imported section (see [`mfa_in_files`]).
    FromFiles,
}

/// Where the MFA device stored by `rolecall keys import` came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaFrom {
    /// `--mfa-serial`.
    Flag,
    /// IAM ListMFADevices.
    Detected,
    /// A profile of the AWS files: its name.
    Profile(String),
}

/// The MFA device the AWS files give the key of `profile`: its own `mfa_serial`, else that of
/// the only device named by the profiles using it as their `source_profile` (awscli_bastion's
/// `[bastion-sts]`, or role profiles as aws-runas reads them), with the profile it was found
/// in. `None` when there is none, or the profiles name several devices.
fn mfa_in_files(
    aws: &std::collections::BTreeMap<String, crate::awsconfig::AwsProfile>,
    profile: &str,
) -> Option<(String, String)> {
    if let Some(own) = aws.get(profile).and_then(|p| p.mfa_serial.clone()) {
        return Some((own, profile.to_string()));
    }
    let found: Vec<(&String, &String)> = aws
        .iter()
        .filter(|(_, p)| p.source_profile.as_deref() == Some(profile))
        .filter_map(|(name, p)| p.mfa_serial.as_ref().map(|m| (name, m)))
        .collect();
    let first = found.first()?;
    found
        .iter()
        .all(|(_, m)| *m == first.1)
        .then(|| (first.1.clone(), first.0.clone()))
}

impl EngineHandle {
    /// Copies the static key of credentials-file section `profile` into the keychain as source
    /// `as_name` (default: the same name). With `scrub`, removes the section afterwards, but
    /// only once the key has been read back from the keychain and matches.
    ///
    /// The MFA device stored with it: `mfa` (see [`MfaChoice`]); by default the source's own,
    /// else the one the AWS files give the section (its own `mfa_serial`, else that of the
    /// profiles using it as `source_profile`, in either file).
    pub async fn import_key(
        &self,
        profile: &str,
        as_name: Option<&str>,
        scrub: bool,
        mfa: MfaChoice,
    ) -> Result<KeyImport, Error> {
        let source = as_name.unwrap_or(profile).to_string();
        self.ensure_keychain_source(&source)?;
        let text = self.file_op(|f| f.read()).await?;
        let path = self.credentials_file().path().to_path_buf();
        let key = credfile::static_key(&text, profile, &path)?;
        let configured = self
            .config()
            .sources
            .get(&source)
            .and_then(|s| s.mfa_serial.clone());
        let mfa = match mfa {
            MfaChoice::Given(serial) => Some((serial, MfaFrom::Flag)),
            MfaChoice::Detect => Some((
                self.detect_mfa_serial(&source, &key).await?,
                MfaFrom::Detected,
            )),
            MfaChoice::FromFiles if configured.is_some() => None,
            MfaChoice::FromFiles => {
                let aws_path = self.inner.paths.aws_config_file.clone();
                let aws_text = std::fs::read_to_string(&aws_path).unwrap_or_default();
                let config_profiles = crate::awsconfig::parse(&aws_text).unwrap_or_default();
                let aws = crate::awsconfig::merge(
                    config_profiles,
                    crate::awsconfig::parse_credentials(&text),
                );
                mfa_in_files(&aws, profile).map(|(m, from)| (m, MfaFrom::Profile(from)))
            }
        };
        self.add_key(&source, key.clone(), mfa.as_ref().map(|(m, _)| m.clone()))
            .await?;
        if !scrub {
            return Ok(KeyImport {
                source,
                scrubbed: false,
                mfa_serial: mfa,
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
            mfa_serial: mfa,
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
        let sts = self.sts().await;
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

    /// Plans (and unless `dry_run`, applies) the import of `~/.aws/config` role profiles:
    /// adds them (and their sources) to Rolecall's config, then comments out their
    /// [`ROLE_KEYS`](crate::awsconfig::ROLE_KEYS) in `~/.aws/config`, through the config-file
    /// splice writer, after keeping the file as it was in a backup beside it (issue 14: else
    /// botocore and the SDKs keep assuming the role themselves from the source profile's key,
    /// and fail once `keys import --scrub` took it). Rolecall's config is written first, so
    /// an import stopped between the two loses nothing: the next one comments out what is
    /// left. A config file the splice writer cannot change safely (a duplicate profile, an
    /// indented header) fails the import before anything is written.
    pub async fn import_aws_config(&self, dry_run: bool) -> Result<ImportOutcome, Error> {
        let aws_path = self.inner.paths.aws_config_file.clone();
        let aws_file = CredentialsFile::new(aws_path.clone())
            .with_lock_dir(self.inner.paths.runtime_dir.clone());
        let read_file = aws_file.clone();
        let text =
            super::blocking::bounded("reading the aws config file", move || read_file.read())
                .await??;
        let aws = crate::awsconfig::parse(&text).map_err(|message| {
            Error::Config(config::Error::Syntax {
                path: aws_path.clone(),
                line: None,
                column: None,
                message,
            })
        })?;
        let credentials = self.read_credentials_text().await.unwrap_or_default();
        let aws = crate::awsconfig::merge(aws, crate::awsconfig::parse_credentials(&credentials));
        let plan = crate::awsconfig::plan_import(&aws, &self.config());
        let role_keys = || -> Vec<String> {
            crate::awsconfig::ROLE_KEYS
                .iter()
                .map(|k| (*k).to_string())
                .collect()
        };
        let edits: Vec<Edit<ProfileSection>> = plan
            .unshadow
            .iter()
            .map(|name| Edit::CommentOut {
                name: name.clone(),
                keys: role_keys(),
            })
            .collect();
        let new_text = credfile::splice_config(&text, &edits, &aws_path)?;
        let aws_config_changes = line_changes(&text, &new_text);
        let credentials_path = self.credentials_file().path().to_path_buf();
        let takeovers: Vec<Edit> = plan
            .take_over
            .iter()
            .map(|name| Edit::TakeOver {
                name: name.clone(),
                keys: role_keys(),
            })
            .collect();
        let new_credentials = credfile::splice(&credentials, &takeovers, &credentials_path)?;
        let credentials_file_changes = take_over_changes(&credentials, &new_credentials);
        drop(new_credentials);
        let keys_in_credentials_file = plan
            .sources
            .iter()
            .filter(|s| {
                credfile::static_key(&credentials, &s.name, std::path::Path::new("")).is_ok()
            })
            .map(|s| s.name.clone())
            .collect();
        let mut outcome = ImportOutcome {
            plan,
            aws_config: aws_path.clone(),
            aws_config_changes,
            backup: None,
            credentials_file: credentials_path,
            credentials_file_changes,
            keys_in_credentials_file,
        };
        if dry_run {
            return Ok(outcome);
        }
        let p = outcome.plan.clone();
        if !p.sources.is_empty() || !p.profiles.is_empty() {
            let cfg_path = self.inner.paths.config_file.clone();
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
                                (
                                    "session_duration",
                                    s.session_duration.map(config::format_duration),
                                ),
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
                                ("duration", n.duration.map(config::format_duration)),
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
        }
        if !outcome.aws_config_changes.is_empty() {
            let backup = backup_path(&aws_path, std::time::SystemTime::now());
            let at = backup.clone();
            let changed = super::blocking::bounded("the aws config file edit", move || {
                aws_file.apply_config_with_backup(&edits, &at)
            })
            .await??;
            outcome.backup = changed.then_some(backup);
        }
        if !takeovers.is_empty() {
            self.file_op(move |f| f.apply(&takeovers)).await?;
        }
        Ok(outcome)
    }

    /// Checks the setup and explains what to fix.
    pub async fn doctor(&self) -> Vec<crate::doctor::Check> {
        crate::doctor::run(self).await
    }

    /// The STS client in force, built at first use from the settings in force (and again
    /// after a reload that changes them).
    pub(crate) async fn sts(&self) -> Sts {
        let built = match self.inner.sts.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(sts) = built {
            return sts;
        }
        let sts = EngineHandle::new_sts(&self.config().settings).await;
        let mut slot = match self.inner.sts.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        // two first calls at once: both built one, the first stored wins
        slot.get_or_insert(sts).clone()
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

    /// Drops the STS client: the next call builds one from the settings then in force.
    pub(crate) fn reset_sts(&self) {
        match self.inner.sts.write() {
            Ok(mut s) => *s = None,
            Err(poisoned) => *poisoned.into_inner() = None,
        }
    }

    pub(crate) async fn read_credentials_text(&self) -> Result<zeroize::Zeroizing<String>, Error> {
        self.file_op(|f| f.read()).await
    }

    /// The credentials file's text once no refresh pass runs (for the scheduler). A pass that
    /// a request started (the agent's `refresh --mfa-code`) wakes the scheduler as soon as it
    /// starts a session, before it writes the file: the file read then would make the
    /// scheduler renew the same profiles again, forced (issue 14: every profile renewed twice,
    /// and a second MFA session asked for at once).
    pub(crate) async fn read_credentials_text_between_passes(
        &self,
    ) -> Result<zeroize::Zeroizing<String>, Error> {
        let _serial = self.inner.refresh_lock.lock().await;
        self.file_op(|f| f.read()).await
    }
}
