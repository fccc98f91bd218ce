//! `status`: every profile's state from the credentials file, the keychain (for profiles that
//! would need a new MFA session) and, when a scheduler runs, what it knows (parked errors, waits
//! for a code, its plan). The state itself is decided in [`crate::status`].

use std::collections::BTreeMap;

use super::{EngineHandle, sources};
use crate::credfile;
use crate::error::Error;
use crate::status::{ProfileStatus, State, profile_renew_before, session_renew_before, state_of};

/// The managed sections of the credentials file `text` that belong to no profile of `config`:
/// left by a profile removed from the config while no daemon ran (a running one removes them
/// on reload), or by a config that is gone. `[default]` is one while no profile is active.
/// Sections changed since rolecall wrote them are the user's, never orphans.
pub(crate) fn orphans(config: &crate::config::Config, text: &str) -> Vec<String> {
    credfile::inspect(text)
        .managed()
        .map(|s| s.name.clone())
        .filter(|name| {
            if name == super::DEFAULT_SECTION {
                config.settings.active.is_none()
            } else {
                !config.profiles.contains_key(name)
            }
        })
        .collect()
}

impl EngineHandle {
    /// The credentials file's orphaned managed sections (see [`orphans`]), in file order;
    /// `rolecall clear NAME` removes one.
    pub async fn orphaned_sections(&self) -> Result<Vec<String>, Error> {
        let config = self.config();
        let text = self.file_op(|f| f.read()).await?;
        Ok(orphans(&config, &text))
    }

    /// Every profile's state, read from the credentials file (and the keychain for profiles
    /// that would need a new MFA session).
    pub async fn status(&self) -> Result<Vec<ProfileStatus>, Error> {
        let config = self.config();
        let text = self.file_op(|f| f.read()).await?;
        let inventory = credfile::inspect(&text);
        let now = self.now();
        let mut session_ok: BTreeMap<String, Result<bool, String>> = BTreeMap::new();
        let mut out = Vec::new();
        for name in config.ordered_profiles() {
            let Some(p) = config.profiles.get(name) else {
                continue;
            };
            let source = config.root_source(name).unwrap_or_default().to_string();
            let info = inventory
                .sections
                .iter()
                .find(|s| s.name == name && s.managed);
            let expiration = info.and_then(|i| i.expiration);
            let left = expiration.map(|e| e.duration_since(now).unwrap_or_default());
            let renew_before = profile_renew_before(&config, name);
            let mut state = state_of(info.map(|i| i.expiration), now, renew_before);
            let mut message = None;
            let mfa = config
                .sources
                .get(&source)
                .and_then(|s| s.mfa_serial.clone());
            if state != State::Fresh && mfa.is_some() {
                if !session_ok.contains_key(&source) {
                    // only keychain sources read the keychain here
                    let ok = sources::usable_without_mfa_until(
                        self,
                        &config,
                        &source,
                        now + session_renew_before(&config, &source),
                    )
                    .await
                    .map_err(|e| e.to_string());
                    session_ok.insert(source.clone(), ok);
                }
                match session_ok.get(&source) {
                    Some(Ok(false)) => state = State::NeedsMfa,
                    Some(Err(e)) => {
                        state = State::Error;
                        message = Some(e.clone());
                    }
                    _ => {}
                }
            }
            // a running scheduler knows more: a parked error, a wait for a code, its plan
            let live = self.inner.board.live(name);
            if let Some(l) = &live {
                if let Some(s) = l.state {
                    state = s;
                }
                if l.message.is_some() {
                    message = l.message.clone();
                }
            }
            out.push(ProfileStatus {
                profile: name.to_string(),
                upstream: config
                    .upstream(name)
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                source,
                role_arn: p.role_arn.clone(),
                active: config.settings.active.as_deref() == Some(name),
                expiration,
                seconds_left: left.map(|d| d.as_secs()),
                state,
                message,
                // the scheduler's plan, or (without one) when the renewal is due
                next_renewal: match live {
                    Some(l) => l.next_renewal,
                    None => expiration.map(|e| e - renew_before),
                },
                renews_before: (renew_before < config.refresh_before(name))
                    .then_some(renew_before.as_secs()),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::orphans;
    use crate::config::Config;

    const MANAGED: &str = "x_rolecall_managed = true\naws_access_key_id = ASIAX\n\
                           aws_secret_access_key = s\n";

    fn file(names: &[&str]) -> String {
        names
            .iter()
            .map(|n| format!("[{n}]\n{MANAGED}\n"))
            .collect::<String>()
            + "[mine]\naws_access_key_id = AKIAX\naws_secret_access_key = s\n"
    }

    #[test]
    fn issue_14_orphans_are_managed_sections_no_profile_has() {
        let config = Config::parse(
            "[sources.s]\n[profiles.kept]\nsource = \"s\"\n",
            Path::new("config.toml"),
        )
        .unwrap();
        let text = file(&["kept", "gone", "default"]);
        // `[default]` too, while no profile is active; the user's own sections never
        assert_eq!(orphans(&config, &text), ["gone", "default"]);
        let active = Config::parse(
            "[settings]\nactive = \"kept\"\n[sources.s]\n[profiles.kept]\nsource = \"s\"\n",
            Path::new("config.toml"),
        )
        .unwrap();
        assert_eq!(orphans(&active, &text), ["gone"]);
        assert_eq!(
            orphans(&Config::default(), &text),
            ["kept", "gone", "default"]
        );
    }
}
