//! IAM, for setup only: the MFA devices of the IAM user owning a key (`rolecall keys add
//! --detect-mfa`), with ListMFADevices.
//!
//! Calls use the same SDK configuration as [`crate::sts::Sts`] (retries, timeouts, and the
//! endpoint from `AWS_ENDPOINT_URL_IAM` / `AWS_ENDPOINT_URL`, which is how tests reach moto) and
//! are signed with the key given. This module knows nothing of files or the keychain, and is
//! never called while refreshing.
//!
//! The IAM SDK is behind the default cargo feature `iam`; a build without it keeps this
//! module's errors and parsing, and `--detect-mfa` says to give the device by hand.

#[cfg(feature = "iam")]
use aws_sdk_iam::config::Region;
#[cfg(feature = "iam")]
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
#[cfg(feature = "iam")]
use secrecy::ExposeSecret;

use crate::credentials::Credentials;
use crate::sts::Sts;

/// What went wrong finding an MFA device. Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key may not list MFA devices.
    #[error(
        "IAM refused to list MFA devices ({message}); allow iam:ListMFADevices on the user, or \
         give the device with --mfa-serial"
    )]
    AccessDenied {
        /// AWS's message (names principals, never secrets).
        message: String,
    },
    /// The key is not an IAM user's (an assumed role, a federated user).
    #[error(
        "the key belongs to {arn}, not to an IAM user; --detect-mfa needs an IAM user's \
         long-lived key: give the device with --mfa-serial instead"
    )]
    NotAUser {
        /// The caller's ARN.
        arn: String,
    },
    /// The user has no MFA device.
    #[error(
        "IAM user {user} has no MFA device; assign one (IAM console → Security credentials → \
         Multi-factor authentication) and try again, or store the key without --detect-mfa"
    )]
    NoDevice {
        /// The user.
        user: String,
    },
    /// The user has more than one MFA device.
    #[error(
        "IAM user {user} has several MFA devices: {}; choose one with --mfa-serial ARN \
         instead of --detect-mfa", serials.join(", ")
    )]
    SeveralDevices {
        /// The user.
        user: String,
        /// Their serial numbers (ARNs of virtual devices).
        serials: Vec<String>,
    },
    /// This build has no IAM client (built without the cargo feature `iam`).
    #[error(
        "this rolecall was built without IAM support (cargo feature \"iam\"), so it cannot \
         detect MFA devices; give the device with --mfa-serial ARN instead"
    )]
    NotBuiltIn,
    /// IAM knows no user of that name (`NoSuchEntity`): the key is not an IAM user's of the
    /// account IAM answered for (another account's, or an endpoint that does not know it).
    #[error(
        "IAM has no user {user} (NoSuchEntity): {message}; the key's owner cannot be looked up, \
         so give the MFA device with --mfa-serial ARN instead of --detect-mfa"
    )]
    NoSuchUser {
        /// The user name looked up.
        user: String,
        /// AWS's message.
        message: String,
    },
    /// IAM could not be reached or answered with an error.
    #[error("IAM ListMFADevices failed: {detail}{}", if *retryable {
        "; check your network (and AWS_ENDPOINT_URL_IAM, if you set it), then try again"
    } else {
        ""
    })]
    Unavailable {
        /// What the SDK said (never secrets).
        detail: String,
        /// Whether trying again later may help.
        retryable: bool,
    },
}

impl Error {
    /// Whether trying again later may succeed without anything from the user.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable {
                retryable: true,
                ..
            }
        )
    }
}

/// The IAM user name in a caller ARN (`arn:aws:iam::123456789012:user/path/alice` → `alice`),
/// `Ok(None)` for the account's root user (ListMFADevices then lists the root's devices), an
/// error for anything that is not a user.
pub fn user_name(arn: &str) -> Result<Option<String>, Error> {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    if resource == "root" {
        return Ok(None);
    }
    match resource.strip_prefix("user/") {
        Some(path) => match path.rsplit('/').next() {
            Some(name) if !name.is_empty() => Ok(Some(name.to_string())),
            _ => Err(Error::NotAUser {
                arn: arn.to_string(),
            }),
        },
        None => Err(Error::NotAUser {
            arn: arn.to_string(),
        }),
    }
}

/// The serial numbers of the MFA devices of `user` (the caller's own with `None`), signed with
/// `key`.
#[cfg(feature = "iam")]
pub async fn mfa_devices(
    sts: &Sts,
    key: &Credentials,
    region: Option<&str>,
    user: Option<&str>,
) -> Result<Vec<String>, Error> {
    let provider = aws_credential_types::Credentials::new(
        key.access_key_id.clone(),
        key.secret_access_key.expose_secret().to_string(),
        key.session_token
            .as_ref()
            .map(|t| t.expose_secret().to_string()),
        key.expiration,
        "rolecall",
    );
    let mut conf =
        aws_sdk_iam::config::Builder::from(sts.sdk_config()).credentials_provider(provider);
    if let Some(r) = region {
        conf = conf.region(Region::new(r.to_string()));
    }
    let client = aws_sdk_iam::Client::from_conf(conf.build());
    let mut serials = Vec::new();
    let mut marker: Option<String> = None;
    // a user has at most 8 devices; the bound only guards against a server that never stops
    for _ in 0..20 {
        let out = client
            .list_mfa_devices()
            .set_user_name(user.map(str::to_string))
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| classify(&e, user.unwrap_or("root")))?;
        serials.extend(
            out.mfa_devices()
                .iter()
                .map(|d| d.serial_number().to_string()),
        );
        match out.marker() {
            Some(m) if out.is_truncated() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    Ok(serials)
}

/// Without the `iam` feature: always [`Error::NotBuiltIn`].
#[cfg(not(feature = "iam"))]
pub async fn mfa_devices(
    _sts: &Sts,
    _key: &Credentials,
    _region: Option<&str>,
    _user: Option<&str>,
) -> Result<Vec<String>, Error> {
    Err(Error::NotBuiltIn)
}

#[cfg(feature = "iam")]
fn classify<E>(
    err: &SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    user: &str,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = crate::sts::error_chain(err);
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return Error::Unavailable {
                detail,
                retryable: true,
            };
        }
        _ => {}
    }
    let code = err.code().unwrap_or_default();
    let message = err.message().unwrap_or_default().trim().to_string();
    let status = err.raw_response().map(|r| r.status().as_u16());
    match code {
        "AccessDenied" | "AccessDeniedException" => Error::AccessDenied { message },
        "NoSuchEntity" => Error::NoSuchUser {
            user: user.to_string(),
            message: message.trim_end_matches('.').to_string(),
        },
        _ => Error::Unavailable {
            detail: if code.is_empty() {
                detail
            } else {
                format!("{code}: {message}")
            },
            retryable: status.is_some_and(|s| s >= 500) || code.starts_with("Throttling"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_come_from_user_arns_only() {
        assert_eq!(
            user_name("arn:aws:iam::123456789012:user/alice").unwrap(),
            Some("alice".into())
        );
        assert_eq!(
            user_name("arn:aws:iam::123456789012:user/team/ops/bob").unwrap(),
            Some("bob".into())
        );
        // moto answers GetCallerIdentity for unknown keys with an sts-flavoured user ARN
        assert_eq!(
            user_name("arn:aws:sts::123456789012:user/moto").unwrap(),
            Some("moto".into())
        );
        assert_eq!(user_name("arn:aws:iam::123456789012:root").unwrap(), None);
        let e = user_name("arn:aws:sts::123456789012:assumed-role/Admin/x").unwrap_err();
        assert!(e.to_string().contains("--mfa-serial"), "{e}");
    }

    #[test]
    fn a_build_without_iam_says_to_give_the_device_by_hand() {
        let s = Error::NotBuiltIn.to_string();
        assert!(
            s.contains("--mfa-serial ARN") && s.contains("\"iam\""),
            "{s}"
        );
    }

    #[test]
    fn several_devices_are_listed() {
        let e = Error::SeveralDevices {
            user: "alice".into(),
            serials: vec!["arn:a".into(), "arn:b".into()],
        };
        let s = e.to_string();
        assert!(
            s.contains("arn:a, arn:b") && s.contains("--mfa-serial"),
            "{s}"
        );
    }
}
