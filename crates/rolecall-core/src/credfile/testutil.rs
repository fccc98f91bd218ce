//! Helpers shared by the credentials-file unit tests.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Credentials, Edit, Provenance, SecretString, Section, inspect, splice};

pub(crate) const PATH: &str = "/home/user/.aws/credentials";
/// `humantime::format_rfc3339_seconds` of [`expiration`].
pub(crate) const EXP_TEXT: &str = "2026-11-22T03:06:26Z";
/// The time [`section`]'s provenance says it was written: an hour before [`expiration`].
pub(crate) const GENERATED_TEXT: &str = "2026-11-22T02:06:26Z";

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
        provenance: Some(Provenance {
            role: Some(format!("arn:aws:iam::222222222222:role/{tag}")),
            source: "bastion".to_owned(),
            generated: expiration() - Duration::from_secs(3600),
        }),
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

/// The fingerprint of a managed block whose key lines are `pairs`, computed here independently
/// of the code: SHA-256 of the domain tag and `key=value\n` per line but the expiration, first
/// 8 bytes as hex.
pub(crate) fn fingerprint_of(pairs: &[(&str, &str)]) -> String {
    use sha2::{Digest, Sha256};
    let mut input = String::from("rolecall credentials-file section fingerprint v1\n");
    // the expiration is left out of the hash
    for (key, value) in pairs.iter().filter(|(k, _)| *k != "x_rolecall_expiration") {
        input.push_str(&format!("{key}={value}\n"));
    }
    let digest = Sha256::digest(input.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The managed block `upsert(name, tag)` writes, spelled out independently of the code.
pub(crate) fn block(name: &str, tag: &str, eol: &str) -> String {
    let id = format!("ASIA{tag}EXAMPLE");
    let secret = format!("secret/{tag}+KEY");
    let token = format!("token{tag}//===");
    let role = format!("arn:aws:iam::222222222222:role/{tag}");
    let fp = fingerprint_of(&[
        ("x_rolecall_managed", "true"),
        ("x_rolecall_role", &role),
        ("x_rolecall_source", "bastion"),
        ("x_rolecall_generated", GENERATED_TEXT),
        ("x_rolecall_expiration", EXP_TEXT),
        ("aws_access_key_id", &id),
        ("aws_secret_access_key", &secret),
        ("aws_session_token", &token),
    ]);
    format!(
        "[{name}]{eol}x_rolecall_managed = true{eol}x_rolecall_role = {role}{eol}\
         x_rolecall_source = bastion{eol}x_rolecall_generated = {GENERATED_TEXT}{eol}\
         x_rolecall_expiration = {EXP_TEXT}{eol}\
         aws_access_key_id = {id}{eol}aws_secret_access_key = {secret}{eol}\
         aws_session_token = {token}{eol}x_rolecall_fingerprint = {fp}{eol}"
    )
}

/// Expands `<dev:A>` to `block("dev", "A", "\n")`, `<dev:A:crlf>` to its CRLF form and
/// `<dev:A:nofinal>` to it without its final line ending.
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
        let text = block(parts[0], parts[1], eol);
        match parts.get(2) {
            // the block as it replaces a span that ended the file without a newline
            Some(&"nofinal") => out.push_str(text.strip_suffix(eol).unwrap_or(&text)),
            _ => out.push_str(&text),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn apply(text: &str, edits: &[Edit]) -> String {
    splice(text, edits, path()).unwrap().to_string()
}

/// The file with every managed section removed.
pub(crate) fn strip_managed(text: &str) -> String {
    let removes: Vec<Edit> = inspect(text).managed().map(|s| remove(&s.name)).collect();
    apply(text, &removes)
}

pub(crate) fn managed_names(text: &str) -> Vec<String> {
    inspect(text).managed().map(|s| s.name.clone()).collect()
}
