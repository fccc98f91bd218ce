//! IAM, for setup only, signed with a source's long-lived key: the MFA devices of the IAM user
//! owning it (ListMFADevices: `rolecall keys mfa-devices`, `keys add --detect-mfa`), the roles
//! its identity-based policies let it assume (`rolecall roles`: attached and inline policies of
//! the user and of its groups), and its access keys (`rolecall keys rotate`: ListAccessKeys,
//! CreateAccessKey, DeleteAccessKey).
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

/// What went wrong calling IAM. Never contains a secret (an access key id appears only as its
/// last 4 characters).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key may not make this call.
    #[error(
        "IAM refused {action} ({message}); allow iam:{action} on the user{}",
        advice(action)
    )]
    AccessDenied {
        /// The IAM action refused (`ListMFADevices`, `CreateAccessKey`…).
        action: &'static str,
        /// AWS's message (names principals, never secrets).
        message: String,
    },
    /// The key is not an IAM user's (an assumed role, a federated user, the root user).
    #[error(
        "the key belongs to {arn}, not to an IAM user; this needs an IAM user's long-lived key \
         (for keys add, give the MFA device with --mfa-serial instead of --detect-mfa)"
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
    /// The user has more than one MFA device (and nobody at a terminal to choose one).
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
    /// The user already has two access keys, IAM's limit: no new one can be made.
    #[error(
        "IAM user {user} already has two access keys ({}), IAM's limit, so no new key can be \
         created; delete the one rolecall does not use (`rolecall keys list` shows the one it \
         uses; IAM console → Security credentials, or `aws iam list-access-keys --user-name \
         {user}` then `aws iam delete-access-key`), then run the rotation again",
        key_ids.join(", ")
    )]
    TooManyKeys {
        /// The user.
        user: String,
        /// Their key ids, shortened to the last 4 characters.
        key_ids: Vec<String>,
    },
    /// This build has no IAM client (built without the cargo feature `iam`).
    #[error(
        "this rolecall was built without IAM support (cargo feature \"iam\"), so it cannot \
         list MFA devices or roles, or rotate keys; give an MFA device with --mfa-serial ARN \
         instead of detecting it"
    )]
    NotBuiltIn,
    /// IAM knows no user of that name (`NoSuchEntity`): the key is not an IAM user's of the
    /// account IAM answered for (another account's, or an endpoint that does not know it).
    #[error(
        "IAM has no user {user} (NoSuchEntity): {message}; the key's owner cannot be looked up \
         (for keys add, give the MFA device with --mfa-serial ARN instead of --detect-mfa)"
    )]
    NoSuchUser {
        /// The user name looked up.
        user: String,
        /// AWS's message.
        message: String,
    },
    /// IAM could not be reached or answered with an error.
    #[error("IAM {action} failed: {detail}{}", if *retryable {
        "; check your network (and AWS_ENDPOINT_URL_IAM, if you set it), then try again"
    } else {
        ""
    })]
    Unavailable {
        /// The IAM action.
        action: &'static str,
        /// What the SDK said (never secrets).
        detail: String,
        /// Whether trying again later may help.
        retryable: bool,
    },
}

/// What else fixes an `AccessDenied` for `action`.
fn advice(action: &str) -> &'static str {
    match action {
        "ListMFADevices" => ", or give the device with --mfa-serial",
        "CreateAccessKey" | "ListAccessKeys" | "DeleteAccessKey" => {
            " (the \"manage own access keys\" permissions), or rotate the key in the IAM console \
             and store the new one with `rolecall keys add SOURCE --replace`"
        }
        _ => {
            " (listing roles reads the user's and its groups' policies: iam:ListAttachedUserPolicies, \
             ListUserPolicies, GetUserPolicy, ListGroupsForUser, ListAttachedGroupPolicies, \
             ListGroupPolicies, GetGroupPolicy, GetPolicy, GetPolicyVersion)"
        }
    }
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

/// An IAM client signed with `key`, on the SDK configuration of `sts` (endpoint overrides,
/// retries, timeouts).
#[cfg(feature = "iam")]
fn client(sts: &Sts, key: &Credentials, region: Option<&str>) -> aws_sdk_iam::Client {
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
    aws_sdk_iam::Client::from_conf(conf.build())
}

/// Pages of a list call: a user has few devices, keys, groups and policies; the bound only
/// guards against a server that never stops.
#[cfg(feature = "iam")]
const MAX_PAGES: usize = 50;

/// Runs a paginated IAM list call (`$call` with `.set_marker(…)` appended) until the last page,
/// collecting `$items` of each answer.
#[cfg(feature = "iam")]
macro_rules! all_pages {
    ($action:literal, $user:expr, $call:expr, |$out:ident| $items:expr) => {{
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let $out = $call
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| classify(&e, $action, $user))?;
            all.extend($items);
            match $out.marker() {
                Some(m) if $out.is_truncated() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        all
    }};
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
    let client = client(sts, key, region);
    let who = user.unwrap_or("root");
    Ok(all_pages!(
        "ListMFADevices",
        who,
        client
            .list_mfa_devices()
            .set_user_name(user.map(str::to_string)),
        |out| out
            .mfa_devices()
            .iter()
            .map(|d| d.serial_number().to_string())
    ))
}

/// The access key ids of `user`, signed with `key`.
#[cfg(feature = "iam")]
pub async fn access_keys(
    sts: &Sts,
    key: &Credentials,
    region: Option<&str>,
    user: &str,
) -> Result<Vec<String>, Error> {
    let client = client(sts, key, region);
    Ok(all_pages!(
        "ListAccessKeys",
        user,
        client.list_access_keys().user_name(user),
        |out| out
            .access_key_metadata()
            .iter()
            .filter_map(|k| k.access_key_id().map(str::to_string))
    ))
}

/// CreateAccessKey for `user`, signed with `key`: the new long-lived key. A user at IAM's
/// limit of two keys is [`Error::TooManyKeys`] (with no key ids: the caller lists them).
#[cfg(feature = "iam")]
pub async fn create_access_key(
    sts: &Sts,
    key: &Credentials,
    region: Option<&str>,
    user: &str,
) -> Result<Credentials, Error> {
    let out = client(sts, key, region)
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .map_err(|e| classify(&e, "CreateAccessKey", user))?;
    let k = out.access_key().ok_or_else(|| Error::Unavailable {
        action: "CreateAccessKey",
        detail: "IAM answered without the new key".into(),
        retryable: false,
    })?;
    Ok(Credentials {
        access_key_id: k.access_key_id().to_string(),
        secret_access_key: k.secret_access_key().to_string().into(),
        session_token: None,
        expiration: None,
    })
}

/// DeleteAccessKey of `key_id` (of `user`), signed with `key`.
#[cfg(feature = "iam")]
pub async fn delete_access_key(
    sts: &Sts,
    key: &Credentials,
    region: Option<&str>,
    user: &str,
    key_id: &str,
) -> Result<(), Error> {
    client(sts, key, region)
        .delete_access_key()
        .user_name(user)
        .access_key_id(key_id)
        .send()
        .await
        .map_err(|e| classify(&e, "DeleteAccessKey", user))?;
    Ok(())
}

/// The roles `user`'s identity-based policies allow it to assume: every `Allow` statement of
/// its attached and inline policies, and of its groups' attached and inline policies, whose
/// `Action` matches `sts:AssumeRole` (wildcards included), with each `Resource` that can name
/// a role as it is written (wildcards kept). Signed with `key`.
#[cfg(feature = "iam")]
pub async fn assumable_roles(
    sts: &Sts,
    key: &Credentials,
    region: Option<&str>,
    user: &str,
) -> Result<Roles, Error> {
    let client = client(sts, key, region);
    let mut roles = Roles::default();
    let mut managed: Vec<(String, String)> = Vec::new();
    let attached = all_pages!(
        "ListAttachedUserPolicies",
        user,
        client.list_attached_user_policies().user_name(user),
        |out| out
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
    );
    managed.extend(attached.into_iter().map(|arn| (arn, "user".to_string())));
    let inline = all_pages!(
        "ListUserPolicies",
        user,
        client.list_user_policies().user_name(user),
        |out| out.policy_names().to_vec()
    );
    for name in inline {
        let out = client
            .get_user_policy()
            .user_name(user)
            .policy_name(&name)
            .send()
            .await
            .map_err(|e| classify(&e, "GetUserPolicy", user))?;
        roles.add_document(
            out.policy_document(),
            &format!("inline policy {name} of user {user}"),
        );
    }
    let groups = all_pages!(
        "ListGroupsForUser",
        user,
        client.list_groups_for_user().user_name(user),
        |out| out.groups().iter().map(|g| g.group_name().to_string())
    );
    for group in groups {
        let attached = all_pages!(
            "ListAttachedGroupPolicies",
            user,
            client.list_attached_group_policies().group_name(&group),
            |out| out
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string))
        );
        managed.extend(
            attached
                .into_iter()
                .map(|arn| (arn, format!("group {group}"))),
        );
        let inline = all_pages!(
            "ListGroupPolicies",
            user,
            client.list_group_policies().group_name(&group),
            |out| out.policy_names().to_vec()
        );
        for name in inline {
            let out = client
                .get_group_policy()
                .group_name(&group)
                .policy_name(&name)
                .send()
                .await
                .map_err(|e| classify(&e, "GetGroupPolicy", user))?;
            roles.add_document(
                out.policy_document(),
                &format!("inline policy {name} of group {group}"),
            );
        }
    }
    // a managed policy attached twice (to the user and a group) is read once
    let mut read: Vec<(String, Vec<String>)> = Vec::new();
    for (arn, holder) in managed {
        let via = format!("managed policy {arn} (attached to {holder})");
        if let Some((_, allowed)) = read.iter().find(|(a, _)| *a == arn) {
            for role in allowed {
                roles.add_via(role, &via);
            }
            continue;
        }
        let policy = client
            .get_policy()
            .policy_arn(&arn)
            .send()
            .await
            .map_err(|e| classify(&e, "GetPolicy", user))?;
        let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else {
            roles.unreadable.push(via);
            continue;
        };
        let out = client
            .get_policy_version()
            .policy_arn(&arn)
            .version_id(version)
            .send()
            .await
            .map_err(|e| classify(&e, "GetPolicyVersion", user))?;
        let allowed = match out.policy_version().and_then(|v| v.document()) {
            Some(doc) => roles.add_document(doc, &via),
            None => {
                roles.unreadable.push(via);
                Vec::new()
            }
        };
        read.push((arn, allowed));
    }
    roles.grants.sort_by(|a, b| a.role.cmp(&b.role));
    Ok(roles)
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

/// Without the `iam` feature: always [`Error::NotBuiltIn`].
#[cfg(not(feature = "iam"))]
pub async fn access_keys(
    _sts: &Sts,
    _key: &Credentials,
    _region: Option<&str>,
    _user: &str,
) -> Result<Vec<String>, Error> {
    Err(Error::NotBuiltIn)
}

/// Without the `iam` feature: always [`Error::NotBuiltIn`].
#[cfg(not(feature = "iam"))]
pub async fn create_access_key(
    _sts: &Sts,
    _key: &Credentials,
    _region: Option<&str>,
    _user: &str,
) -> Result<Credentials, Error> {
    Err(Error::NotBuiltIn)
}

/// Without the `iam` feature: always [`Error::NotBuiltIn`].
#[cfg(not(feature = "iam"))]
pub async fn delete_access_key(
    _sts: &Sts,
    _key: &Credentials,
    _region: Option<&str>,
    _user: &str,
    _key_id: &str,
) -> Result<(), Error> {
    Err(Error::NotBuiltIn)
}

/// Without the `iam` feature: always [`Error::NotBuiltIn`].
#[cfg(not(feature = "iam"))]
pub async fn assumable_roles(
    _sts: &Sts,
    _key: &Credentials,
    _region: Option<&str>,
    _user: &str,
) -> Result<Roles, Error> {
    Err(Error::NotBuiltIn)
}

/// What an IAM user's own policies say it may assume (see [`assumable_roles`]).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Roles {
    /// Each role ARN (or pattern) allowed, sorted, with the policies allowing it.
    pub grants: Vec<RoleGrant>,
    /// Policies that could not be read as JSON policy documents (named as in `via`).
    pub unreadable: Vec<String>,
}

/// One role ARN, as a policy writes it (`*` and `?` wildcards kept), and where it is allowed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoleGrant {
    /// The `Resource` value: a role ARN, an ARN pattern, or `*`.
    pub role: String,
    /// The policies allowing it (`inline policy X of user U`, `managed policy ARN (attached
    /// to group G)`…).
    pub via: Vec<String>,
}

impl Roles {
    /// Adds what one policy document (`text`: JSON, or URL-encoded JSON as IAM's API sends
    /// it) allows, found through `via`; returns the roles it allows.
    pub fn add_document(&mut self, text: &str, via: &str) -> Vec<String> {
        let parsed = serde_json::from_str::<serde_json::Value>(text)
            .or_else(|_| serde_json::from_str(&percent_decode(text)));
        match parsed {
            Ok(doc) => {
                let roles = assumable_in(&doc);
                for role in &roles {
                    self.add_via(role, via);
                }
                roles
            }
            Err(_) => {
                self.unreadable.push(via.to_string());
                Vec::new()
            }
        }
    }

    /// Records that `via` allows `role` (once).
    fn add_via(&mut self, role: &str, via: &str) {
        match self.grants.iter_mut().find(|g| g.role == role) {
            Some(g) if g.via.iter().any(|v| v == via) => {}
            Some(g) => g.via.push(via.to_string()),
            None => self.grants.push(RoleGrant {
                role: role.to_string(),
                via: vec![via.to_string()],
            }),
        }
    }
}

/// The role resources a policy document allows `sts:AssumeRole` on. `Deny` statements,
/// `NotAction` and `NotResource` are not evaluated (what they take away cannot be told without
/// the whole picture: the role's trust policy, boundaries, SCPs).
fn assumable_in(doc: &serde_json::Value) -> Vec<String> {
    let statements: Vec<&serde_json::Value> = match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.iter().collect(),
        Some(one @ serde_json::Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
        match v {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    for st in statements {
        if st.get("Effect").and_then(|e| e.as_str()) != Some("Allow") {
            continue;
        }
        let allows = strings(st.get("Action"))
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), "sts:assumerole"));
        if !allows {
            continue;
        }
        for r in strings(st.get("Resource")) {
            if names_roles(&r) && !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// Whether a `Resource` value can match a role ARN (`arn:PARTITION:iam::ACCOUNT:role/…`):
/// `*`, or an ARN whose service and resource parts allow IAM roles.
fn names_roles(resource: &str) -> bool {
    if resource == "*" {
        return true;
    }
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    let [arn, _partition, service, _region, _account, rest] = parts[..] else {
        return false;
    };
    let rest = rest.to_ascii_lowercase();
    arn == "arn"
        && glob(&service.to_ascii_lowercase(), "iam")
        && (rest.starts_with("role/") || glob(&rest, "role/x"))
}

/// IAM's wildcard match: `*` any run, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Decodes IAM's URL-encoded policy documents (`%7B%22Version%22…`; `+` is a space).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(feature = "iam")]
fn classify<E>(
    err: &SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    action: &'static str,
    user: &str,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = crate::sts::error_chain(err);
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return Error::Unavailable {
                action,
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
        "AccessDenied" | "AccessDeniedException" => Error::AccessDenied { action, message },
        "NoSuchEntity" if action == "ListMFADevices" => Error::NoSuchUser {
            user: user.to_string(),
            message: message.trim_end_matches('.').to_string(),
        },
        "LimitExceeded" if action == "CreateAccessKey" => Error::TooManyKeys {
            user: user.to_string(),
            key_ids: Vec::new(),
        },
        _ => Error::Unavailable {
            action,
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
    fn roles_come_from_allow_statements_on_sts_assume_role() {
        let mut roles = Roles::default();
        roles.add_document(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"sts:AssumeRole",
                 "Resource":["arn:aws:iam::222222222222:role/Admin","arn:aws:s3:::bucket"]},
                {"Effect":"Allow","Action":["s3:*"],"Resource":"*"},
                {"Effect":"Deny","Action":"sts:AssumeRole","Resource":"arn:aws:iam::1:role/No"},
                {"Effect":"Allow","Action":"STS:Assume*","Resource":"arn:aws:iam::*:role/ops-*"}
            ]}"#,
            "inline policy p of user alice",
        );
        // IAM's API sends documents URL-encoded; a single statement needs no array
        roles.add_document(
            "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22*%22%2C\
             %22Resource%22%3A%22*%22%7D%7D",
            "managed policy arn:aws:iam::aws:policy/AdministratorAccess (attached to user)",
        );
        roles.add_document(
            r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole",
                "Resource":"arn:aws:iam::222222222222:role/Admin"}]}"#,
            "inline policy q of group ops",
        );
        roles.add_document("not json", "inline policy broken of user alice");
        let got: Vec<(&str, usize)> = roles
            .grants
            .iter()
            .map(|g| (g.role.as_str(), g.via.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("arn:aws:iam::222222222222:role/Admin", 2),
                ("arn:aws:iam::*:role/ops-*", 1),
                ("*", 1),
            ]
        );
        assert_eq!(roles.unreadable, vec!["inline policy broken of user alice"]);
    }

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(glob("sts:*", "sts:assumerole"));
        assert!(glob("*", "sts:assumerole"));
        assert!(glob("sts:assume?ole", "sts:assumerole"));
        assert!(!glob("sts:assumerolewithsaml", "sts:assumerole"));
        assert!(!glob("iam:*", "sts:assumerole"));
        assert!(names_roles("arn:aws:iam::*:role/*"));
        assert!(names_roles("arn:aws:*:*:*:*"));
        assert!(!names_roles("arn:aws:iam::1:user/alice"));
        assert!(!names_roles("arn:aws:s3:::role/x"));
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
