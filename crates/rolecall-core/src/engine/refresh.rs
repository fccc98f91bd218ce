//! One refresh pass: sessions first (each fetched at most once per pass, the cached one or a
//! new one with an MFA code), then role profiles level by level along their chains, each level
//! renewed concurrently with a bounded limit on the one shared STS client; then one locked,
//! atomic update of the credentials file for the whole pass. Also [`EngineHandle::credentials`]:
//! one profile's fresh credentials for `exec`, `export` and `credential_process`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::stream::{self, StreamExt};

use crate::config::{Config, Upstream};
use crate::credentials::Credentials;
use crate::credfile::{self, Edit};
use crate::error::Error;
use crate::events::Event;
use crate::sts::{self, AssumeRole};

use super::{
    EngineHandle, Outcome, RefreshOptions, Targets, active, chain_of, check_mfa_code, sources,
    upsert,
};

pub(super) struct FreshCreds {
    pub(super) credentials: Credentials,
    pub(super) written: bool,
}

/// How a profile of the pass failed, for the profiles chained on it.
#[derive(Debug, Clone)]
pub(super) struct Failed {
    message: String,
    needs_user: bool,
    mfa_source: Option<String>,
}

/// One refresh pass: caches sessions and renewed credentials so each is fetched once.
pub(super) struct Run<'a> {
    pub(super) handle: &'a EngineHandle,
    pub(super) config: &'a Config,
    pub(super) text: &'a str,
    pub(super) now: SystemTime,
    pub(super) opts: RefreshOptions,
    pub(super) sessions: BTreeMap<String, Credentials>,
    pub(super) fresh: BTreeMap<String, FreshCreds>,
    /// Sources whose session needed a code that nobody gave in this pass (→ MFA device).
    pub(super) unanswered: BTreeMap<String, String>,
    /// Profiles that failed in this pass, and how (for the profiles chained on them).
    pub(super) failed: BTreeMap<String, Failed>,
    /// Sources whose session was started (not read from the keychain) in this run.
    pub(super) started: BTreeSet<String>,
}

impl Run<'_> {
    /// Renews the profiles of `order` (each after the profile it assumes from) and returns
    /// each one's outcome, in `order`.
    ///
    /// Sessions come first, one source after the other (a supplied MFA code is used once, by
    /// the first session that needs one, and each session is fetched once per pass); then the
    /// profiles of each chain level are renewed at the same time, at most `limit` at once, on
    /// the one shared STS client. A level only starts when the level it assumes from is done,
    /// so `fresh` and `failed` are complete for it.
    pub(super) async fn pass(
        &mut self,
        order: &[String],
        wanted: &BTreeSet<String>,
        limit: usize,
    ) -> Vec<(String, Outcome)> {
        let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
        for level in levels(self.config, order) {
            // role profiles ready to assume, with what they assume from
            let mut jobs: Vec<(String, Credentials)> = Vec::new();
            for name in level {
                let force = self.opts.force && wanted.contains(&name);
                if let Some(o) = self.still_valid(&name, force) {
                    outcomes.insert(name, o);
                    continue;
                }
                let Some(p) = self.config.profiles.get(&name) else {
                    let e = Error::Internal(format!("profile {name} vanished"));
                    let o = self.record(&name, Err(e));
                    outcomes.insert(name, o);
                    continue;
                };
                let from = match self.config.upstream(&name) {
                    Some(Upstream::Source(source)) => {
                        self.session(source, force && p.role_arn.is_none()).await
                    }
                    Some(Upstream::Profile(up)) => match self.fresh.get(up) {
                        Some(f) if !self.failed.contains_key(up) => Ok(f.credentials.clone()),
                        _ => {
                            let failed = self.failed.get(up).cloned().unwrap_or_else(|| Failed {
                                message: "it was not renewed".into(),
                                needs_user: false,
                                mfa_source: None,
                            });
                            Err(Error::Upstream {
                                profile: name.clone(),
                                upstream: up.to_string(),
                                reason: failed.message,
                                upstream_needs_user: failed.needs_user,
                                mfa_source: failed.mfa_source,
                            })
                        }
                    },
                    None => Err(Error::Internal(format!("profile {name} has no source"))),
                };
                match from {
                    Ok(creds) if p.role_arn.is_some() => jobs.push((name, creds)),
                    // a session-token profile: the session is its credentials
                    r => {
                        let o = self.record(&name, r);
                        outcomes.insert(name, o);
                    }
                }
            }
            let mut again: Vec<(String, Credentials)> = Vec::new();
            for (name, result) in self.assume_all(jobs, limit).await {
                let rejected = matches!(
                    result,
                    Err(Error::Sts {
                        error: sts::Error::ExpiredToken | sts::Error::InvalidKey,
                        ..
                    })
                );
                let source = match self.config.upstream(&name) {
                    Some(Upstream::Source(s)) if rejected => s,
                    _ => {
                        let o = self.record(&name, result);
                        outcomes.insert(name, o);
                        continue;
                    }
                };
                // a cached session that AWS no longer accepts: start a new one (once per
                // source: a later profile of the same source gets the one just started)
                let session = match self.sessions.get(source) {
                    Some(s) if self.started.contains(source) => Ok(s.clone()),
                    _ => {
                        tracing::info!(source, "cached session rejected; starting a new one");
                        // forget it everywhere, so that a failure to start a new one (no MFA
                        // code) is not followed by reusing it next time (the keychain only
                        // for keychain sources)
                        match sources::forget_session(self.handle, self.config, source).await {
                            Err(e) => Err(e),
                            Ok(_) => self.session(source, true).await,
                        }
                    }
                };
                match session {
                    Ok(s) => again.push((name, s)),
                    Err(e) => {
                        let o = self.record(&name, Err(e));
                        outcomes.insert(name, o);
                    }
                }
            }
            for (name, result) in self.assume_all(again, limit).await {
                let o = self.record(&name, result);
                outcomes.insert(name, o);
            }
        }
        order
            .iter()
            .filter_map(|n| outcomes.remove(n).map(|o| (n.clone(), o)))
            .collect()
    }

    /// The credentials in the file, when they have more than `refresh_before` left (or never
    /// expire) and no renewal is forced.
    fn still_valid(&mut self, name: &str, force: bool) -> Option<Outcome> {
        if force {
            return None;
        }
        let (creds, _) = credfile::managed_credentials(self.text, name)?;
        let left = creds.time_left(self.now);
        let renew_before = crate::status::profile_renew_before(self.config, name);
        if left.is_some_and(|l| l <= renew_before) {
            return None;
        }
        let expiration = creds.expiration;
        self.fresh.insert(
            name.to_string(),
            FreshCreds {
                credentials: creds,
                written: false,
            },
        );
        Some(Outcome::StillValid { expiration })
    }

    /// AssumeRole for each job, at most `limit` at once.
    async fn assume_all(
        &self,
        jobs: Vec<(String, Credentials)>,
        limit: usize,
    ) -> Vec<(String, Result<Credentials, Error>)> {
        stream::iter(jobs)
            .map(|(name, creds)| async move {
                let r = self.assume(&name, &creds).await;
                (name, r)
            })
            .buffer_unordered(limit.max(1))
            .collect()
            .await
    }

    fn record(&mut self, name: &str, result: Result<Credentials, Error>) -> Outcome {
        match result {
            Ok(creds) => {
                let expiration = creds.expiration;
                let until = expiration.map_or_else(|| "-".into(), crate::timestamp::format);
                tracing::info!(profile = name, expiration = %until, "renewed");
                self.fresh.insert(
                    name.to_string(),
                    FreshCreds {
                        credentials: creds,
                        written: true,
                    },
                );
                Outcome::Refreshed { expiration }
            }
            Err(e) => {
                tracing::warn!(profile = name, error = %e, "renewal failed");
                let failed = Failed {
                    message: e.to_string(),
                    needs_user: e.needs_user(),
                    mfa_source: e.mfa_source().map(str::to_string),
                };
                self.failed.insert(name.to_string(), failed);
                Outcome::Failed(e)
            }
        }
    }

    async fn assume(&self, name: &str, creds: &Credentials) -> Result<Credentials, Error> {
        let p = self
            .config
            .profiles
            .get(name)
            .ok_or_else(|| Error::Internal(format!("profile {name} vanished")))?;
        let role_arn = p
            .role_arn
            .as_deref()
            .ok_or_else(|| Error::Internal(format!("profile {name} has no role")))?;
        let session_name = match p.session_name.as_deref() {
            Some(template) if sts::uses_iam_user(template) => {
                let source = self.config.root_source(name).unwrap_or(&p.source);
                let user = sources::iam_user(self.handle, self.config, source)
                    .await
                    .map_err(|cause| Error::IamUser {
                        profile: name.to_string(),
                        source_name: source.to_string(),
                        cause: Box::new(cause),
                    })?;
                sts::session_name_for(template, &user)
            }
            Some(fixed) => fixed.to_string(),
            None => sts::default_session_name(self.handle.inner.paths.user_name.as_deref()),
        };
        let req = AssumeRole {
            role_arn,
            session_name: &session_name,
            duration: self.config.role_duration(p),
            external_id: p.external_id.as_deref(),
        };
        self.handle
            .sts()
            .await
            .assume_role(creds, self.config.region(name), &req)
            .await
            .map_err(|error| Error::Sts {
                profile: name.to_string(),
                error,
            })
    }

    /// The session of `source`: this run's, else what its source gives (see
    /// [`super::sources::session`]: a cached or new MFA session, the instance role's
    /// credentials, the environment's).
    async fn session(&mut self, source: &str, renew: bool) -> Result<Credentials, Error> {
        // a session started in this run is as new as it gets; one only read from a cache is
        // reused unless a renewal is asked for
        if let Some(s) = self.sessions.get(source)
            && (!renew || self.started.contains(source))
        {
            return Ok(s.clone());
        }
        // asked once per pass: without an answer the next profile of the source is not asked
        // again (a wrong code is, since the user may get the next one right)
        if !renew && let Some(mfa_serial) = self.unanswered.get(source) {
            return Err(Error::NeedsMfa {
                source_name: source.to_string(),
                mfa_serial: mfa_serial.clone(),
            });
        }
        let (handle, config, now) = (self.handle, self.config, self.now);
        let opts = &mut self.opts;
        let got =
            match sources::session(handle, config, source, renew, now, || opts.mfa_code.take())
                .await
            {
                Err(Error::NeedsMfa {
                    source_name,
                    mfa_serial,
                }) => {
                    // (a forced new session that got no code says nothing about the cached
                    // one, which the profiles after it may still use)
                    if !renew {
                        self.unanswered
                            .insert(source_name.clone(), mfa_serial.clone());
                    }
                    return Err(Error::NeedsMfa {
                        source_name,
                        mfa_serial,
                    });
                }
                r => r?,
            };
        if got.started {
            self.started.insert(source.to_string());
        }
        self.sessions
            .insert(source.to_string(), got.credentials.clone());
        Ok(got.credentials)
    }
}

impl EngineHandle {
    /// Renews the given profiles (and what they depend on) that are due, or all of them with
    /// `force`. Keeps going past failures; each profile gets its own [`Outcome`]. All new
    /// sections are written in one atomic update of the credentials file. Independent
    /// profiles are renewed concurrently (`settings.max_concurrent_refreshes`); a running
    /// scheduler is told, so it re-plans around what was renewed.
    pub async fn refresh(
        &self,
        targets: &Targets,
        opts: RefreshOptions,
    ) -> Result<Vec<(String, Outcome)>, Error> {
        let all = self.refresh_pass(targets, opts).await?;
        self.wake();
        Ok(all
            .into_iter()
            .filter(|(_, _, wanted)| *wanted)
            .map(|(name, outcome, _)| (name, outcome))
            .collect())
    }

    /// [`EngineHandle::refresh`], returning the outcome of every profile of the pass (what the
    /// targets assume from too), each marked with whether it was a target.
    pub(crate) async fn refresh_pass(
        &self,
        targets: &Targets,
        opts: RefreshOptions,
    ) -> Result<Vec<(String, Outcome, bool)>, Error> {
        let (outcomes, _) = self
            .pass(self.config(), targets, opts, Delivery::File, None)
            .await?;
        Ok(outcomes)
    }

    /// One refresh pass over `config` (the engine's, or an ad-hoc copy of it); with
    /// [`Delivery::Caller`], the file is written when it can be, and the fresh credentials of
    /// every profile of the pass are returned either way. `unsaved` (an ad-hoc profile) is
    /// never written to the file nor announced.
    async fn pass(
        &self,
        config: Arc<Config>,
        targets: &Targets,
        opts: RefreshOptions,
        delivery: Delivery,
        unsaved: Option<&str>,
    ) -> Result<(Vec<(String, Outcome, bool)>, BTreeMap<String, Credentials>), Error> {
        let _serial = self.inner.refresh_lock.lock().await;
        // and across processes: what another pass renews meanwhile is then read, not renewed
        // again (fifty `credential_process` calls at once, a daemon's pass)
        let _renewing = self.renewal_lock().await;
        let wanted = self.resolve(&config, targets)?;
        if let Some(code) = &opts.mfa_code {
            check_mfa_code(code)?;
        }
        let text = match self.file_op(|f| f.read()).await {
            Ok(t) => t,
            Err(e) if delivery == Delivery::Caller => {
                // nothing to reuse from it: renew what is asked for
                tracing::warn!(error = %e, "cannot read the credentials file; renewing anyway");
                zeroize::Zeroizing::new(String::new())
            }
            Err(e) => return Err(e),
        };
        let now = self.now();
        let mut run = Run {
            handle: self,
            config: &config,
            text: &text,
            now,
            opts,
            sessions: BTreeMap::new(),
            fresh: BTreeMap::new(),
            unanswered: BTreeMap::new(),
            failed: BTreeMap::new(),
            started: BTreeSet::new(),
        };
        // profiles the targets assume from come first (chains), each done once
        let mut order: Vec<String> = Vec::new();
        for name in config.ordered_profiles() {
            let needed = wanted
                .iter()
                .any(|w| w == name || chain_of(&config, w).contains(&name));
            if needed {
                order.push(name.to_string());
            }
        }
        let wanted: BTreeSet<String> = wanted.into_iter().collect();
        let limit = config.settings.max_concurrent_refreshes;
        let mut outcomes = run.pass(&order, &wanted, limit).await;
        let mut edits: Vec<(&str, Edit)> = Vec::new();
        let active = config.settings.active.as_deref();
        for (name, creds) in &run.fresh {
            if !creds.written || Some(name.as_str()) == unsaved {
                continue;
            }
            let region = config.region(name).map(str::to_string);
            edits.push((
                name,
                upsert(
                    name,
                    &creds.credentials,
                    region.clone(),
                    super::provenance(&config, name),
                    false,
                ),
            ));
            if active == Some(name.as_str())
                && let Some((edit, _)) = active::mirror(
                    &text,
                    name,
                    Some(creds.credentials.clone()),
                    region,
                    super::provenance(&config, name),
                    false,
                )
            {
                edits.push((name, edit));
            }
        }
        let (edits, refused) = self.writable(&text, edits);
        for (profile, e) in refused {
            tracing::warn!(profile, error = %e, "a section of this profile cannot be written");
            if delivery == Delivery::Caller {
                // the caller gets the credentials all the same
                continue;
            }
            if let Some((_, o)) = outcomes.iter_mut().find(|(n, _)| *n == profile) {
                *o = Outcome::Failed(Error::Credfile(e));
            }
        }
        let mut written = true;
        if !edits.is_empty() {
            let result = self.file_op(move |f| f.apply(&edits)).await;
            match result {
                Ok(_) => {}
                Err(e) if delivery == Delivery::Caller => {
                    tracing::warn!(error = %e, "the credentials file was not updated; the credentials are handed over all the same");
                    written = false;
                }
                Err(e) => {
                    // nothing was written: report every renewed profile as failed
                    let msg = e.to_string();
                    for (_, o) in outcomes.iter_mut() {
                        if matches!(o, Outcome::Refreshed { .. }) {
                            *o = Outcome::Failed(Error::Internal(msg.clone()));
                        }
                    }
                    return Err(e);
                }
            }
        }
        if written {
            // each written profile's region into ~/.aws/config (where the CLI v2 and the SDKs
            // read it), under the refresh lock; a failure there is logged, never fatal
            let regions = run
                .fresh
                .iter()
                .filter(|(n, c)| c.written && Some(n.as_str()) != unsaved)
                .map(|(n, _)| (n.clone(), config.region(n).map(str::to_string)))
                .collect();
            credfile::update_regions(&self.inner.paths, regions).await;
        }
        // every profile of the pass: one renewed only as a dependency was written too
        for (name, o) in &outcomes {
            if Some(name.as_str()) == unsaved {
                continue;
            }
            match o {
                Outcome::Refreshed { .. } if !written => {}
                Outcome::Refreshed { expiration } => self.emit(Event::CredentialsRefreshed {
                    profile: name.clone(),
                    expiration: *expiration,
                }),
                Outcome::Failed(e) => self.emit(Event::RefreshFailed {
                    profile: name.clone(),
                    message: e.to_string(),
                    needs_user: e.needs_user(),
                }),
                Outcome::StillValid { .. } => {}
            }
        }
        let fresh = run
            .fresh
            .into_iter()
            .map(|(n, f)| (n, f.credentials))
            .collect();
        let outcomes = outcomes
            .into_iter()
            .map(|(name, o)| {
                let w = wanted.contains(&name);
                (name, o, w)
            })
            .collect();
        Ok((outcomes, fresh))
    }

    /// The edits that `text` can take, and the profiles whose section it cannot take (the
    /// user's own section of that name, a duplicated one), with the file's reason: those fail
    /// alone instead of the whole pass. For `[default]` of the active profile, the profile's own
    /// section is still written. The batch is tried first, so the per-section checks only run
    /// when something is wrong.
    fn writable<'n>(
        &self,
        text: &str,
        edits: Vec<(&'n str, Edit)>,
    ) -> (Vec<Edit>, Vec<(&'n str, credfile::Error)>) {
        let file = self.credentials_file();
        let batch: Vec<Edit> = edits.iter().map(|(_, e)| e.clone()).collect();
        if credfile::splice(text, &batch, file.path()).is_ok() {
            return (batch, Vec::new());
        }
        let mut ok = Vec::with_capacity(edits.len());
        let mut refused = Vec::new();
        for (profile, edit) in edits {
            match credfile::splice(text, std::slice::from_ref(&edit), file.path()) {
                Ok(_) => ok.push(edit),
                Err(e) => refused.push((profile, e)),
            }
        }
        (ok, refused)
    }

    /// Fresh credentials of one profile (renewed first if due), for `exec`, `export` and
    /// `credential_process`, with the profile's region. They do not need the credentials file:
    /// renewed credentials are written to it when it can take them (a read-only or unwritable
    /// file is only logged), and handed over either way; sessions are cached as always.
    pub async fn credentials(
        &self,
        profile: &str,
        opts: RefreshOptions,
    ) -> Result<(Credentials, Option<String>), Error> {
        let region = self.config().region(profile).map(str::to_string);
        let creds = self.fresh_of(self.config(), profile, opts, None).await?;
        Ok((creds, region))
    }

    /// The fresh credentials of `profile` of an ad-hoc copy of the config, which are never
    /// written to the credentials file (what it assumes from may be, as always).
    pub(super) async fn credentials_of(
        &self,
        config: Arc<Config>,
        profile: &str,
        opts: RefreshOptions,
    ) -> Result<Credentials, Error> {
        self.fresh_of(config, profile, opts, Some(profile)).await
    }

    async fn fresh_of(
        &self,
        config: Arc<Config>,
        profile: &str,
        opts: RefreshOptions,
        unsaved: Option<&str>,
    ) -> Result<Credentials, Error> {
        let targets = Targets::Some(vec![profile.to_string()]);
        let (outcomes, mut fresh) = self
            .pass(config, &targets, opts, Delivery::Caller, unsaved)
            .await?;
        self.wake();
        for (name, outcome, _) in outcomes {
            if name == profile
                && let Outcome::Failed(e) = outcome
            {
                return Err(e);
            }
        }
        fresh.remove(profile).ok_or_else(|| {
            Error::Internal(format!(
                "profile {profile} was renewed but its credentials are missing"
            ))
        })
    }
}

/// How long a pass waits for another process's pass before it renews without waiting.
const RENEWAL_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl EngineHandle {
    /// Holds `renewal.lock` in the runtime directory for one pass, so that passes of several
    /// processes (the daemon or the app, `credential_process`, `exec`, `refresh`) run one at a
    /// time and each reads what the one before wrote. Waits at most [`RENEWAL_LOCK_WAIT`] (a
    /// pass waiting for someone to type an MFA code must not stall the others for longer);
    /// `None` then, or when the lock cannot be had at all (said in the log): the pass goes on.
    async fn renewal_lock(&self) -> Option<std::fs::File> {
        let dir = self.inner.paths.runtime_dir.clone();
        let path = dir.join("renewal.lock");
        let shown = path.clone();
        let got = tokio::task::spawn_blocking(move || -> std::io::Result<Option<std::fs::File>> {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&dir)?;
            let mut options = std::fs::OpenOptions::new();
            options.read(true).write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&path)?;
            let deadline = std::time::Instant::now() + RENEWAL_LOCK_WAIT;
            loop {
                match file.try_lock() {
                    Ok(()) => return Ok(Some(file)),
                    Err(std::fs::TryLockError::WouldBlock)
                        if std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => return Err(e),
                }
            }
        })
        .await;
        match got {
            Ok(Ok(Some(file))) => Some(file),
            Ok(Ok(None)) => {
                tracing::warn!(
                    lock = %shown.display(),
                    "another rolecall process has been renewing for 30s; renewing alongside it"
                );
                None
            }
            Ok(Err(e)) => {
                tracing::warn!(lock = %shown.display(), error = %e, "cannot take the renewal lock; renewing without it");
                None
            }
            Err(_) => None,
        }
    }
}

/// Where a pass delivers what it renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Into the credentials file: a pass it refuses fails.
    File,
    /// To the caller (`exec`, `export`, `credential_process`); into the file too when it can.
    Caller,
}

/// `order` split into chain levels: profiles that assume from a source, then those that
/// assume from one of them, and so on (each level in `order`'s order).
fn levels(config: &Config, order: &[String]) -> Vec<Vec<String>> {
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out: Vec<Vec<String>> = Vec::new();
    for name in order {
        let d = match config.upstream(name) {
            Some(Upstream::Profile(up)) => depth.get(up).map_or(0, |d| d + 1),
            _ => 0,
        };
        depth.insert(name, d);
        if out.len() <= d {
            out.resize_with(d + 1, Vec::new);
        }
        out[d].push(name.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    /// Counts the questions and never answers.
    struct Silent(std::sync::atomic::AtomicUsize);

    impl crate::MfaPrompter for Silent {
        fn mfa_code<'a>(
            &'a self,
            _source: &'a str,
            _mfa_serial: &'a str,
        ) -> std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { None })
        }
    }

    #[tokio::test]
    async fn an_unanswered_code_is_asked_for_once_per_pass() {
        use std::sync::Arc;

        use crate::credentials::{Credentials, SecretString};
        use crate::{Outcome, RefreshOptions, Targets};

        let sb = testutil::Sandbox::new();
        sb.write_config(testutil::TWO_ROLES_AND_A_CHAIN);
        let store = Arc::new(crate::vault::MemoryStore::new());
        let key = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretString::from("secret"),
            session_token: None,
            expiration: None,
        };
        crate::vault::Vault::new(store.clone())
            .set_source_key("s", &key)
            .unwrap();
        let prompter = Arc::new(Silent(0.into()));
        let engine = sb.engine_with(store, prompter.clone()).await;
        let outcomes = engine
            .handle()
            .refresh(&Targets::All, RefreshOptions::default())
            .await
            .unwrap();
        assert_eq!(prompter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(outcomes.len(), 3);
        for (name, outcome) in &outcomes {
            match outcome {
                Outcome::Failed(e) => assert_eq!(e.mfa_source(), Some("s"), "{name}: {e}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn levels_put_each_profile_after_the_one_it_assumes_from() {
        let config = testutil::config(
            r#"
[sources.s]
[profiles.a]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/A"
[profiles.b]
source = "s"
[profiles.c]
source = "a"
role_arn = "arn:aws:iam::222222222222:role/C"
[profiles.d]
source = "c"
role_arn = "arn:aws:iam::222222222222:role/D"
[profiles.e]
source = "a"
role_arn = "arn:aws:iam::222222222222:role/E"
"#,
        );
        let order: Vec<String> = config
            .ordered_profiles()
            .into_iter()
            .map(str::to_string)
            .collect();
        assert_eq!(
            levels(&config, &order),
            [vec!["a", "b"], vec!["c", "e"], vec!["d"]]
        );
    }

    /// Issue 13: a cached MFA session whose `session_duration` is not longer than
    /// `refresh_before` is used while it has more than a third of its lifetime left, instead of
    /// asking for a new code at every renewal.
    #[tokio::test]
    async fn issue_13_a_short_session_is_reused_without_asking_for_a_code() {
        use std::sync::Arc;
        use std::time::Duration;

        use crate::credentials::{Credentials, SecretString};
        use crate::vault::{CachedSession, MemoryStore, Vault};
        use crate::{Engine, Outcome, RefreshOptions, Targets};

        let serial = "arn:aws:iam::111111111111:mfa/alice";
        let sb = testutil::Sandbox::new();
        sb.write_config(&format!(
            "[sources.s]\nmfa_serial = \"{serial}\"\n[profiles.p]\nsource = \"s\"\n"
        ));
        let mut config = Config::load(&sb.path("rolecall/config.toml")).unwrap();
        // (the config's own validation of this is another change's)
        config.sources.get_mut("s").unwrap().session_duration = Some(Duration::from_secs(900));
        let store = Arc::new(MemoryStore::new());
        let vault = Vault::new(store.clone());
        let key = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretString::from("secret"),
            session_token: None,
            expiration: None,
        };
        vault.set_source_key("s", &key).unwrap();
        // started a minute ago: 14 of its 15 minutes left
        let session = CachedSession {
            credentials: Credentials {
                access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: SecretString::from("session"),
                session_token: Some(SecretString::from("token")),
                expiration: Some(SystemTime::now() + Duration::from_secs(14 * 60)),
            },
            mfa_serial: Some(serial.into()),
            iam_user: None,
        };
        vault.set_session("s", &session).unwrap();
        let prompter = Arc::new(Silent(0.into()));
        let engine = Engine::builder(sb.paths())
            .config(Arc::new(config))
            .secret_store(store)
            .mfa_prompter(prompter.clone())
            .build()
            .await
            .unwrap();
        let outcomes = engine
            .handle()
            .refresh(&Targets::All, RefreshOptions::default())
            .await
            .unwrap();
        assert!(
            matches!(outcomes[..], [(_, Outcome::Refreshed { .. })]),
            "{outcomes:?}"
        );
        assert_eq!(prompter.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        // and `status` says when it is renewed
        let status = engine.handle().status().await.unwrap();
        assert_eq!(status[0].state, crate::State::Fresh);
        assert_eq!(status[0].renews_before, Some(300));
    }
}
