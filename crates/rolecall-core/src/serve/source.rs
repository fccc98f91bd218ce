//! Where the local credential endpoints ([`super::ecs`], [`super::imds`]) get what they serve.
//!
//! The endpoints see only [`CredentialSource`]: "a profile's current credentials". They never
//! call STS or the keychain themselves (sinks never call sources). [`EngineSource`] is the one
//! adapter from the engine's public API to that trait; it is the only place to change when the
//! engine grows a call that yields a profile's current credentials without the file.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::credentials::{Credentials, KeyId};
use crate::engine::{EngineHandle, RefreshOptions};
use crate::error::Error;

/// The least lifetime the endpoints hand out: with less left, the profile is renewed first.
/// The SDKs refresh credentials 15 minutes (botocore's advisory window) or 10 minutes (their
/// mandatory window) before expiry; credentials inside that window would be fetched again on
/// every call.
pub const MIN_LEFT: Duration = Duration::from_secs(15 * 60);

/// A boxed future, as [`CredentialSource`] returns it (object-safe, `Send`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Gives a profile's current credentials.
pub trait CredentialSource: Send + Sync + 'static {
    /// The profile's current credentials, renewed first when they have less than
    /// [`MIN_LEFT`] left.
    fn current<'a>(&'a self, profile: &'a str) -> BoxFuture<'a, Result<Credentials, Error>>;
}

/// [`CredentialSource`] over an [`EngineHandle`].
///
/// Today the engine's only call for one profile's credentials is
/// [`EngineHandle::credentials`], which renews what is due (less than `refresh_before` left)
/// and reads the credentials file: what a running scheduler renewed in the meantime (in this
/// process or in the daemon) is therefore what is served. When the user's `refresh_before` is
/// shorter than [`MIN_LEFT`], the engine would call credentials with 12 minutes left fresh:
/// they are renewed here with `force`. Credentials that a forced renewal just gave are served
/// even with less than [`MIN_LEFT`] left (a role whose lifetime is that short): renewing them
/// again would give no better.
///
/// Calls are served one at a time, so that many concurrent requests near expiry cause one
/// renewal: the first renews, the others then find fresh credentials in the file.
pub struct EngineSource {
    engine: EngineHandle,
    /// The key id and expiry of what this source's last forced renewal gave.
    last_forced: tokio::sync::Mutex<Option<(String, Option<SystemTime>)>>,
}

impl EngineSource {
    /// A source over `engine`.
    pub fn new(engine: EngineHandle) -> EngineSource {
        EngineSource {
            engine,
            last_forced: tokio::sync::Mutex::new(None),
        }
    }
}

/// Whether `creds` must be renewed (forced) before they are served at `now`: less than
/// [`MIN_LEFT`] left, and not what the last forced renewal (`last_forced`: key id, expiry) gave.
fn must_force(
    creds: &Credentials,
    now: SystemTime,
    last_forced: Option<&(String, Option<SystemTime>)>,
) -> bool {
    let short = creds.time_left(now).is_some_and(|left| left < MIN_LEFT);
    let same = last_forced
        .is_some_and(|(key, exp)| *key == creds.access_key_id && *exp == creds.expiration);
    short && !same
}

impl CredentialSource for EngineSource {
    fn current<'a>(&'a self, profile: &'a str) -> BoxFuture<'a, Result<Credentials, Error>> {
        Box::pin(async move {
            let mut last_forced = self.last_forced.lock().await;
            let (creds, _) = self
                .engine
                .credentials(profile, RefreshOptions::default())
                .await?;
            if !must_force(&creds, SystemTime::now(), last_forced.as_ref()) {
                return Ok(creds);
            }
            tracing::info!(
                profile,
                key = %KeyId(&creds.access_key_id),
                "less than 15 minutes left: renewing before serving"
            );
            let opts = RefreshOptions {
                force: true,
                mfa_code: None,
            };
            let (creds, _) = self.engine.credentials(profile, opts).await?;
            *last_forced = Some((creds.access_key_id.clone(), creds.expiration));
            Ok(creds)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::SecretString;

    fn creds(key: &str, left: Option<Duration>, now: SystemTime) -> Credentials {
        Credentials {
            access_key_id: key.into(),
            secret_access_key: SecretString::from("s"),
            session_token: Some(SecretString::from("t")),
            expiration: left.map(|l| now + l),
        }
    }

    #[test]
    fn only_credentials_inside_15_minutes_are_renewed_first_and_once() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let fresh = creds("ASIA1", Some(Duration::from_secs(16 * 60)), now);
        assert!(!must_force(&fresh, now, None));
        let long_lived = creds("AKIA1", None, now);
        assert!(!must_force(&long_lived, now, None));
        let short = creds("ASIA2", Some(Duration::from_secs(12 * 60)), now);
        assert!(must_force(&short, now, None));
        // what a forced renewal just gave (a role that lives less than 15 minutes) is served
        let given = (short.access_key_id.clone(), short.expiration);
        assert!(!must_force(&short, now, Some(&given)));
        // other short credentials are renewed again
        let other = creds("ASIA3", Some(Duration::from_secs(12 * 60)), now);
        assert!(must_force(&other, now, Some(&given)));
        // same key, other expiry (a session-token profile: moto and AWS may repeat the key id)
        let later = creds("ASIA2", Some(Duration::from_secs(11 * 60)), now);
        assert!(must_force(&later, now, Some(&given)));
    }
}
