//! Talking to AWS STS: GetSessionToken (with MFA) and AssumeRole, through `aws-sdk-sts`.
//!
//! One [`Sts`] holds the SDK configuration (region, retries, timeouts, and the endpoint from
//! the standard `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` variables, which is how tests reach
//! moto). Each call is signed with the credentials it is given; the SDK's default credential
//! chain is never consulted, so Rolecall cannot end up calling itself through
//! `credential_process`. Retries of throttling, 5xx and timeouts are the SDK's standard retry
//! strategy (exponential backoff with jitter); everything else fails at once and is mapped to
//! an [`Error`] that says what to do. This module knows nothing of files or the keychain.

use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use secrecy::ExposeSecret;

use crate::credentials::Credentials;

/// Region used for STS calls when neither the profile nor its source names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// What went wrong talking to STS. Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The MFA code was refused.
    #[error("the MFA code was not accepted; wait for the next code and try again")]
    WrongMfaCode,
    /// AWS refused the call.
    #[error("access denied{}: {message}", on_role(role_arn.as_deref()))]
    AccessDenied {
        /// The role, for AssumeRole.
        role_arn: Option<String>,
        /// AWS's message (names principals and resources, never secrets).
        message: String,
    },
    /// The long-lived key is unknown to AWS (deleted, deactivated, mistyped).
    #[error(
        "AWS does not recognise the access key; it may be deleted or inactive: store a working \
         key with `rolecall keys add SOURCE` (the source named above)"
    )]
    InvalidKey,
    /// The session or role credentials used for the call have expired.
    #[error("the credentials used for this call have expired; a new session is needed")]
    ExpiredToken,
    /// STS kept throttling after all retries.
    #[error("STS is throttling requests (still after {attempts} attempts); try again in a minute")]
    Throttled {
        /// Attempts made.
        attempts: u32,
    },
    /// STS kept failing with a server error after all retries.
    #[error("STS is unavailable (HTTP {status}, still after {attempts} attempts); try again later")]
    Unavailable {
        /// The last HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The request timed out after all retries.
    #[error("STS did not answer in time (after {attempts} attempts); check your network")]
    Timeout {
        /// Attempts made.
        attempts: u32,
    },
    /// The network failed (DNS, connection refused, TLS).
    #[error(
        "the connection to STS failed after {attempts} attempts ({detail}); check your network \
         (and AWS_ENDPOINT_URL_STS, if you set it)"
    )]
    Network {
        /// What the transport said (no secrets: it never sees them).
        detail: String,
        /// Attempts made.
        attempts: u32,
    },
    /// AWS rejected the request's time.
    #[error(
        "AWS rejected the request time: this computer's clock is off ({message}); sync it \
         (e.g. `timedatectl set-ntp true`) and try again"
    )]
    ClockSkew {
        /// AWS's message.
        message: String,
    },
    /// Any other error code from STS.
    #[error("STS error {code}: {message}")]
    Other {
        /// The AWS error code.
        code: String,
        /// AWS's message.
        message: String,
    },
}

fn on_role(role: Option<&str>) -> String {
    role.map(|r| format!(" assuming {r}")).unwrap_or_default()
}

impl Error {
    /// Whether trying again later may succeed without anything from the user.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Throttled { .. }
                | Error::Unavailable { .. }
                | Error::Timeout { .. }
                | Error::Network { .. }
        )
    }

    /// Whether only the user can fix it (a code, a key, a policy, the clock).
    pub fn needs_user(&self) -> bool {
        !self.is_retryable() && !matches!(self, Error::ExpiredToken)
    }

    fn from_sdk<E>(
        err: &SdkError<E, HttpResponse>,
        role_arn: Option<&str>,
        mfa: bool,
        attempts: u32,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match err {
            SdkError::TimeoutError(_) => return Error::Timeout { attempts },
            SdkError::DispatchFailure(d) => {
                if d.is_timeout() {
                    return Error::Timeout { attempts };
                }
                return Error::Network {
                    detail: error_chain(err),
                    attempts,
                };
            }
            SdkError::ResponseError(_) => {
                return Error::Network {
                    detail: error_chain(err),
                    attempts,
                };
            }
            _ => {}
        }
        let code = err.code().unwrap_or("").to_string();
        let message = err.message().unwrap_or("").trim().to_string();
        let status = err.raw_response().map(|r| r.status().as_u16());
        classify(&code, &message, status, role_arn, mfa, attempts)
    }
}

/// Maps an STS error code and message to an [`Error`].
fn classify(
    code: &str,
    message: &str,
    status: Option<u16>,
    role_arn: Option<&str>,
    mfa: bool,
    attempts: u32,
) -> Error {
    let lower = message.to_ascii_lowercase();
    match code {
        "AccessDenied" | "AccessDeniedException"
            if mfa && (lower.contains("multifactorauthentication") || lower.contains("mfa")) =>
        {
            Error::WrongMfaCode
        }
        "AccessDenied" | "AccessDeniedException" => Error::AccessDenied {
            role_arn: role_arn.map(str::to_string),
            message: message.to_string(),
        },
        "InvalidClientTokenId" | "UnrecognizedClientException" => Error::InvalidKey,
        "ExpiredToken" | "ExpiredTokenException" => Error::ExpiredToken,
        "RequestExpired" | "InvalidSignatureException" => Error::ClockSkew {
            message: message.to_string(),
        },
        "SignatureDoesNotMatch" if lower.contains("expired") || lower.contains("time") => {
            Error::ClockSkew {
                message: message.to_string(),
            }
        }
        "SignatureDoesNotMatch" => Error::InvalidKey,
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => Error::Throttled { attempts },
        _ if status.is_some_and(|s| s >= 500) => Error::Unavailable {
            status: status.unwrap_or(500),
            attempts,
        },
        "" => Error::Other {
            code: format!("HTTP {}", status.unwrap_or(0)),
            message: message.to_string(),
        },
        _ => Error::Other {
            code: code.to_string(),
            message: message.to_string(),
        },
    }
}

/// The `Display` texts of an SDK error and its sources, joined with ": ". Some SDK errors put a
/// `Debug` dump of the raw HTTP response into their `Display` (aws-config's IMDS errors do),
/// and a response body may hold credentials: such dumps are cut off.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let text = |e: &dyn std::error::Error| {
        let s = e.to_string();
        match s.find("Response {") {
            Some(at) => s[..at].trim_end().to_string(),
            None => s,
        }
    };
    let mut parts = vec![text(err)];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = text(e);
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// A role to assume.
#[derive(Debug, Clone)]
pub struct AssumeRole<'a> {
    /// The role ARN.
    pub role_arn: &'a str,
    /// The role session name.
    pub session_name: &'a str,
    /// Requested lifetime.
    pub duration: Duration,
    /// External id, if the role's trust policy wants one.
    pub external_id: Option<&'a str>,
}

/// The identity behind a set of credentials (GetCallerIdentity).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The account id.
    pub account: String,
    /// The caller's ARN.
    pub arn: String,
}

/// An STS client factory: one SDK configuration, calls signed with the credentials passed in.
#[derive(Clone, Debug)]
pub struct Sts {
    sdk: aws_config::SdkConfig,
    attempts: u32,
}

/// How STS calls behave.
#[derive(Debug, Clone, Copy)]
pub struct StsOptions {
    /// Time limit for one attempt.
    pub attempt_timeout: Duration,
    /// Attempts per call for retryable errors.
    pub max_attempts: u32,
    /// First retry delay (grows exponentially, with full jitter).
    pub initial_backoff: Duration,
}

impl Default for StsOptions {
    fn default() -> Self {
        StsOptions {
            attempt_timeout: Duration::from_secs(10),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
        }
    }
}

impl Sts {
    /// Its attempts per call and time limit per attempt (for tests of the engine).
    #[cfg(test)]
    pub(crate) fn limits(&self) -> (u32, Option<Duration>) {
        let timeout = self
            .sdk
            .timeout_config()
            .and_then(|t| t.operation_attempt_timeout());
        (self.attempts, timeout)
    }

    /// Loads the SDK configuration (endpoint overrides from the environment, as the AWS SDKs
    /// define them), with no credential provider of its own.
    pub async fn new(opts: StsOptions) -> Sts {
        let retry = RetryConfig::standard()
            .with_max_attempts(opts.max_attempts.max(1))
            .with_initial_backoff(opts.initial_backoff)
            .with_max_backoff(Duration::from_secs(20));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(opts.attempt_timeout.min(Duration::from_secs(5)))
            .operation_attempt_timeout(opts.attempt_timeout)
            .build();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .no_credentials()
            .region(Region::new(DEFAULT_REGION))
            .retry_config(retry)
            .timeout_config(timeouts)
            .load()
            .await;
        Sts {
            sdk,
            attempts: opts.max_attempts.max(1),
        }
    }

    /// The shared SDK configuration (endpoint overrides, retries, timeouts), for other AWS
    /// clients made the same way (IAM in `keys add --detect-mfa`).
    #[cfg(feature = "iam")]
    pub(crate) fn sdk_config(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    fn client(&self, creds: &Credentials, region: Option<&str>) -> aws_sdk_sts::Client {
        let provider = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose_secret().to_string(),
            creds
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            creds.expiration,
            "rolecall",
        );
        let mut conf = aws_sdk_sts::config::Builder::from(&self.sdk).credentials_provider(provider);
        if let Some(r) = region {
            conf = conf.region(Region::new(r.to_string()));
        }
        aws_sdk_sts::Client::from_conf(conf.build())
    }

    /// GetSessionToken with the long-lived `key`, and the MFA device and code when given.
    pub async fn session_token(
        &self,
        key: &Credentials,
        region: Option<&str>,
        mfa: Option<(&str, &str)>,
        duration: Duration,
    ) -> Result<Credentials, Error> {
        let mut req = self
            .client(key, region)
            .get_session_token()
            .duration_seconds(secs(duration));
        if let Some((serial, code)) = mfa {
            req = req.serial_number(serial).token_code(code);
        }
        let out = req
            .send()
            .await
            .map_err(|e| Error::from_sdk(&e, None, mfa.is_some(), self.attempts))?;
        convert(out.credentials())
    }

    /// AssumeRole with `creds` (a session or another role's credentials).
    pub async fn assume_role(
        &self,
        creds: &Credentials,
        region: Option<&str>,
        role: &AssumeRole<'_>,
    ) -> Result<Credentials, Error> {
        let out = self
            .client(creds, region)
            .assume_role()
            .role_arn(role.role_arn)
            .role_session_name(role.session_name)
            .duration_seconds(secs(role.duration))
            .set_external_id(role.external_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| Error::from_sdk(&e, Some(role.role_arn), false, self.attempts))?;
        convert(out.credentials())
    }

    /// GetCallerIdentity: who `creds` are.
    pub async fn caller_identity(
        &self,
        creds: &Credentials,
        region: Option<&str>,
    ) -> Result<Identity, Error> {
        let out = self
            .client(creds, region)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| Error::from_sdk(&e, None, false, self.attempts))?;
        Ok(Identity {
            account: out.account().unwrap_or_default().to_string(),
            arn: out.arn().unwrap_or_default().to_string(),
        })
    }
}

/// Captures the `Date` header of STS's answer, to measure clock skew.
#[derive(Debug, Default, Clone)]
struct DateProbe(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for DateProbe {
    fn name(&self) -> &'static str {
        "rolecall-date-probe"
    }

    fn read_after_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(date) = context.response().headers().get("date")
            && let Ok(mut slot) = self.0.lock()
        {
            *slot = Some(date.to_string());
        }
        Ok(())
    }
}

impl Sts {
    /// STS's clock, read from the `Date` header of an unauthenticated-looking request (the
    /// answer may be an error; only its header matters), to detect clock skew.
    pub async fn server_time(&self, region: Option<&str>) -> Result<SystemTime, Error> {
        let probe = DateProbe::default();
        let dummy = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "rolecall-clock-probe".to_string().into(),
            session_token: None,
            expiration: None,
        };
        let result = self
            .client(&dummy, region)
            .get_caller_identity()
            .customize()
            .interceptor(probe.clone())
            .send()
            .await;
        let date = probe.0.lock().ok().and_then(|d| d.clone());
        match (date, result) {
            (Some(d), _) => aws_smithy_types::DateTime::from_str(
                &d,
                aws_smithy_types::date_time::Format::HttpDate,
            )
            .ok()
            .and_then(|t| SystemTime::try_from(t).ok())
            .ok_or_else(|| Error::Other {
                code: "BadDate".into(),
                message: format!("STS sent an unreadable Date header {d:?}"),
            }),
            (None, Err(e)) => Err(Error::from_sdk(&e, None, false, self.attempts)),
            (None, Ok(_)) => Err(Error::Other {
                code: "NoDate".into(),
                message: "STS sent no Date header".into(),
            }),
        }
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn convert(c: Option<&aws_sdk_sts::types::Credentials>) -> Result<Credentials, Error> {
    let c = c.ok_or_else(|| Error::Other {
        code: "MissingCredentials".into(),
        message: "STS answered without credentials".into(),
    })?;
    let expiration = SystemTime::try_from(*c.expiration()).map_err(|_| Error::Other {
        code: "BadExpiration".into(),
        message: "STS answered with an unreadable expiration time".into(),
    })?;
    Ok(Credentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string().into(),
        session_token: Some(c.session_token().to_string().into()),
        expiration: Some(expiration),
    })
}

/// A role session name derived from the OS user: `rolecall-<user>`, cut to STS's alphabet
/// (`[\w+=,.@-]`) and length (64).
pub fn default_session_name(user: Option<&str>) -> String {
    let user: String = user
        .unwrap_or("user")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("rolecall-{user}");
    name.truncate(64);
    name
}

/// The placeholder a profile's `session_name` may hold for the name of the IAM user owning
/// its root source's key (found with GetCallerIdentity): `session_name = "{iam_user}"`.
pub const IAM_USER: &str = "{iam_user}";

/// Whether a configured session name needs the IAM user's name.
pub fn uses_iam_user(session_name: &str) -> bool {
    session_name.contains(IAM_USER)
}

/// `session_name` with [`IAM_USER`] replaced by `user`, cut to STS's 64 characters (IAM user
/// names and role session names share the alphabet `[\w+=,.@-]`).
pub fn session_name_for(session_name: &str, user: &str) -> String {
    let mut name = session_name.replace(IAM_USER, user);
    if let Some((cut, _)) = name.char_indices().nth(64) {
        name.truncate(cut);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn iam_user_placeholders_become_the_user_name() {
        assert!(uses_iam_user("{iam_user}"));
        assert!(!uses_iam_user("alice"));
        assert_eq!(session_name_for("{iam_user}", "alice"), "alice");
        assert_eq!(session_name_for("rc-{iam_user}", "bob@x"), "rc-bob@x");
        assert_eq!(session_name_for("{iam_user}", &"u".repeat(80)).len(), 64);
    }

    #[rstest]
    #[case("Throttling", "Rate exceeded", Some(400), false, "throttling", true)]
    #[case("ServiceUnavailable", "", Some(503), false, "unavailable", true)]
    #[case("InternalFailure", "", Some(500), false, "unavailable", true)]
    #[case(
        "AccessDenied",
        "MultiFactorAuthentication failed with invalid MFA one time pass code.",
        Some(403),
        true,
        "MFA code",
        false
    )]
    #[case(
        "AccessDenied",
        "User: x is not authorized to perform: sts:AssumeRole",
        Some(403),
        false,
        "access denied assuming arn:aws:iam::222222222222:role/A",
        false
    )]
    #[case(
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
        Some(403),
        false,
        "rolecall keys add",
        false
    )]
    #[case(
        "SignatureDoesNotMatch",
        "Signature expired: 20261122T010000Z is now earlier than …",
        Some(403),
        false,
        "clock",
        false
    )]
    #[case(
        "ExpiredToken",
        "The security token included in the request is expired",
        Some(400),
        false,
        "expired",
        false
    )]
    fn errors_are_classified_with_advice(
        #[case] code: &str,
        #[case] message: &str,
        #[case] status: Option<u16>,
        #[case] mfa: bool,
        #[case] needle: &str,
        #[case] retryable: bool,
    ) {
        let e = classify(
            code,
            message,
            status,
            Some("arn:aws:iam::222222222222:role/A"),
            mfa,
            3,
        );
        assert!(e.to_string().contains(needle), "{e}");
        assert_eq!(e.is_retryable(), retryable, "{e}");
    }

    #[test]
    fn session_names_fit_sts_rules() {
        assert_eq!(
            default_session_name(Some("alice smith")),
            "rolecall-alice-smith"
        );
        assert_eq!(default_session_name(None), "rolecall-user");
        assert!(default_session_name(Some(&"x".repeat(100))).len() <= 64);
    }
}
