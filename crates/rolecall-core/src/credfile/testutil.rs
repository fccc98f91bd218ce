//! Helpers shared by the credentials-file unit tests.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Credentials, Edit, SecretString, Section, inspect, splice};

pub(crate) const PATH: &str = "/home/user/.aws/credentials";
/// `humantime::format_rfc3339_seconds` of [`expiration`].
pub(crate) const EXP_TEXT: &str = "2026-11-22T03:06:26Z";

pub(crate) fn path() -> &'static Path {
    Path::new(PATH)
}

pub(crate) fn expiration() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_316_786)
}

pub(crate) fn creds(tag: &str) -> Credentials {
    Credentials {
        access_key_id: format!("ASIA{tag}EXAMPLE"),
        secret_access_key: SecretString::from(format!("secret/{tag}+KEY")),
        session_token: Some(SecretString::from(format!("token{tag}//==="))),
        expiration: Some(expiration()),
    }
}

pub(crate) fn section(name: &str, tag: &str) -> Section {
    Section {
        name: name.to_owned(),
        credentials: creds(tag),
        region: None,
    }
}

pub(crate) fn upsert(name: &str, tag: &str) -> Edit {
    Edit::Upsert {
        section: section(name, tag),
        adopt: false,
    }
}

pub(crate) fn adopt(name: &str, tag: &str) -> Edit {
    Edit::Upsert {
        section: section(name, tag),
        adopt: true,
    }
}

pub(crate) fn remove(name: &str) -> Edit {
    Edit::Remove {
        name: name.to_owned(),
    }
}

/// The managed block `upsert(name, tag)` writes, spelled out independently of the code.
pub(crate) fn block(name: &str, tag: &str, eol: &str) -> String {
    format!(
        "[{name}]{eol}x_rolecall_managed = true{eol}x_rolecall_expiration = {EXP_TEXT}{eol}\
         aws_access_key_id = ASIA{tag}EXAMPLE{eol}aws_secret_access_key = secret/{tag}+KEY{eol}\
         aws_session_token = token{tag}//==={eol}"
    )
}

/// Expands `<dev:A>` to `block("dev", "A", "\n")` and `<dev:A:crlf>` to its CRLF form.
pub(crate) fn expand(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('>').unwrap();
        let parts: Vec<&str> = rest[open + 1..close].split(':').collect();
        let eol = if parts.get(2) == Some(&"crlf") {
            "\r\n"
        } else {
            "\n"
        };
        out.push_str(&block(parts[0], parts[1], eol));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn apply(text: &str, edits: &[Edit]) -> String {
    splice(text, edits, path()).unwrap()
}

/// The file with every managed section removed.
pub(crate) fn strip_managed(text: &str) -> String {
    let removes: Vec<Edit> = inspect(text).managed().map(|s| remove(&s.name)).collect();
    apply(text, &removes)
}

pub(crate) fn managed_names(text: &str) -> Vec<String> {
    inspect(text).managed().map(|s| s.name.clone()).collect()
}
