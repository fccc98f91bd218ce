//! The credentials-file splice writer: puts rolecall's managed profiles into the user's shared
//! AWS credentials file (`~/.aws/credentials`) and takes them out again. The same scanner,
//! splicer and writer serve the AWS config file (`~/.aws/config`), where a profile's section is
//! `[profile NAME]` ([`FileKind`], [`ProfileSection`], [`splice_config`],
//! [`CredentialsFile::apply_config`]).
//!
//! The file belongs to the user. This module owns only the sections it wrote, recognised by the
//! key [`MANAGED_KEY`], and must not change one byte outside them: comments, blank lines,
//! spacing, key order, CRLF line endings, a missing final newline, a UTF-8 BOM and non-ASCII text
//! all survive. So it never re-serialises the file through an INI library; every edit is a text
//! splice over section spans found by a line scanner that follows configparser's rules as
//! botocore uses them. [`CredentialsFile::apply`] writes under an advisory lock, through a temp
//! file and a rename, so a concurrent rolecall never loses an update and nobody ever sees a
//! partial file. This module never logs or returns a secret in an error.
//!
//! Inside: `error` (the error type), `scan` (section spans and fingerprints; never changes
//! text), `splice` (managed blocks and batches of edits; pure), `file` (the locked atomic
//! write: races with tools that rewrite the file in place, ownership under root, hard links
//! and bind mounts).
//!
//! # Format of a managed section
//!
//! ```ini
//! [dev-admin]
//! x_rolecall_managed = true
//! x_rolecall_role = arn:aws:iam::222222222222:role/Admin
//! x_rolecall_source = bastion
//! x_rolecall_generated = 2026-11-22T02:06:26Z
//! x_rolecall_expiration = 2026-11-22T03:06:26Z
//! aws_access_key_id = ASIA...
//! aws_secret_access_key = ...
//! aws_session_token = ...
//! region = eu-west-1
//! x_rolecall_fingerprint = 0acb327e9145e6f8
//! ```
//!
//! Ownership is the key `x_rolecall_managed`: a key and not a comment, because
//! `aws configure set` keeps unknown keys but drops comments, and botocore ignores unknown keys.
//! `x_rolecall_fingerprint` (see `scan::fingerprint`) tells whether the section is still what
//! rolecall wrote; a marked section that someone changed since is the user's, and is never
//! overwritten or removed ([`Error::Changed`]). A marked section without one, written by an
//! older rolecall, is rolecall's.
//! `x_rolecall_role`, `x_rolecall_source` and `x_rolecall_generated` say where the credentials
//! came from (the role, the source or profile, when written), for a person reading the file;
//! nothing reads them back. `x_rolecall_expiration` (RFC 3339, seconds, UTC), `aws_session_token`,
//! `region` and the provenance keys are left out when there is nothing to say. New text uses the file's line ending (CRLF if its first line
//! ends in CRLF, else LF).
//!
//! # Spans, placement and round trips
//!
//! A header is a line that, after leading whitespace, starts with `[` and has a later `]`; its
//! name is the text between the first `[` and the last `]`, trimmed. A section's *span* runs from
//! the start of its header line through the line ending of its last key line (a line that is not
//! blank and not a `#`/`;` comment); blank lines and comments after that belong to whatever comes
//! next and are never touched. Keys match case-insensitively, as both botocore (configparser
//! lower-cases option names) and the Rust SDK read them.
//!
//! New managed sections go at the top of the file (after a BOM), each followed by one blank
//! separator line. The exception: when the file starts with a key outside any section or an
//! indented line, a section above it would swallow that line (configparser reads a deeper
//! indented line as a continuation of the key before it, the Rust SDK any indented line), so new
//! sections then go right before the first header that starts its line, or else at the end of a
//! file that ends with a newline ([`Error::NoRoom`] if neither exists). A replacement rewrites
//! only the span; a removal takes the span plus the one line after it if that line is blank. So
//! for any user file `U`, any sequence of upserts and removes of names `U` does not use, followed
//! by removing every managed section, gives back `U` byte for byte, and at every step both
//! readers see `U`'s profiles unchanged.

mod error;
mod file;
mod regions;
mod scan;
mod splice;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::credentials::{Credentials, KeyId, SecretString};

pub use error::{Error, IoOp, StaticKeyProblem};
pub use file::CredentialsFile;
pub use regions::sync_regions;
pub(crate) use regions::update_regions;
use scan::{Doc, fields};
pub use splice::{CREDENTIAL_PROCESS_KEY, ProfileSection, splice, splice_as, splice_config};

/// The key that marks a section as written, and owned, by rolecall.
pub const MANAGED_KEY: &str = "x_rolecall_managed";
/// The key that holds when a managed section's credentials expire (RFC 3339, seconds, UTC).
pub const EXPIRATION_KEY: &str = "x_rolecall_expiration";
/// Provenance (issue 17): the role a managed section's credentials are of (absent for a
/// session-token profile). The SDKs ignore unknown keys, as they do [`MANAGED_KEY`].
pub const ROLE_KEY: &str = "x_rolecall_role";
/// Provenance: the source (or, chained, the profile) the credentials were made from.
pub const SOURCE_KEY: &str = "x_rolecall_source";
/// Provenance: when rolecall wrote the section (RFC 3339, seconds, UTC).
pub const GENERATED_KEY: &str = "x_rolecall_generated";
/// The key that holds a fingerprint of what rolecall wrote into a managed section (see
/// `scan::fingerprint`): a section whose key lines no longer match it was changed by someone
/// else and is the user's now.
pub const FINGERPRINT_KEY: &str = "x_rolecall_fingerprint";

const ACCESS_KEY_ID: &str = "aws_access_key_id";
const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
const SESSION_TOKEN: &str = "aws_session_token";
/// The pre-2014 name of the session token, which botocore still reads (and prefers).
const SECURITY_TOKEN: &str = "aws_security_token";
const REGION: &str = "region";
const BOM: char = '\u{feff}';
/// configparser's `default_section`: its keys are inherited by every other section, so a
/// managed section of that name would hand its credentials to every profile in botocore.
const CONFIGPARSER_DEFAULT_SECTION: &str = "DEFAULT";
/// `humantime` cannot format times from year 10000 on (the first second of that year).
const RFC3339_LIMIT_SECS: u64 = 253_402_300_800;

/// A managed profile to write: the section name, its credentials and an optional region.
#[derive(Debug, Clone)]
pub struct Section {
    /// The section name, written as `[name]`.
    pub name: String,
    /// The credentials to write.
    pub credentials: Credentials,
    /// Written as `region = …` when set.
    pub region: Option<String>,
    /// Where the credentials came from, written as [`ROLE_KEY`], [`SOURCE_KEY`] and
    /// [`GENERATED_KEY`] below the marker, so a reader of the file knows (issue 17).
    pub provenance: Option<Provenance>,
}

/// Where a managed section's credentials came from (see [`Section::provenance`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The role assumed; `None` for a session-token profile.
    pub role: Option<String>,
    /// The source, or for a chained profile the profile, it was made from.
    pub source: String,
    /// When the section was written.
    pub generated: SystemTime,
}

/// Which of the two shared AWS files a text is: it decides how a profile's section header is
/// read and written. One scanner, splicer and writer serve both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`): a profile is `[NAME]`.
    Credentials,
    /// `~/.aws/config` (`AWS_CONFIG_FILE`): a profile is `[profile NAME]`, except `[default]`
    /// (`[profile default]` also reads as `default`). Other sections (`[sso-session …]`,
    /// `[services …]`, or a bare `[NAME]`, which the AWS tools ignore there) are no profile's
    /// and are never touched.
    Config,
}

/// What a managed section holds, and so which file it goes to: [`Section`] (credentials, for
/// the credentials file) or [`ProfileSection`] (settings such as `region`, for the config
/// file). Sealed: the splicer relies on what the implementations write.
pub trait Block: splice::Sealed + fmt::Debug {
    /// The file this block is written to.
    const KIND: FileKind;
    /// The profile name.
    fn name(&self) -> &str;
}

/// One change to the credentials file (`Edit<Section>`, the default) or to the config file
/// (`Edit<ProfileSection>`).
#[derive(Debug, Clone)]
pub enum Edit<B: Block = Section> {
    /// Write the section: replace the managed section of that name, or insert it at the top.
    Upsert {
        /// The section to write.
        section: B,
        /// Take over a section of that name that the user wrote, instead of refusing.
        adopt: bool,
    },
    /// Remove the managed section of that name; a no-op when there is none.
    Remove {
        /// The section name.
        name: String,
    },
    /// Remove the section of that name even though the user wrote it, once
    /// `rolecall keys import --scrub` has moved its key into the keychain (managed or not,
    /// like [`Edit::Remove`] otherwise: span plus one following blank line; a no-op when
    /// there is none).
    Scrub {
        /// The section name.
        name: String,
    },
    /// In the section of that name the user wrote, turn each line of these keys (matched
    /// without regard to case, with its continuation lines) into a comment: the line as it
    /// was, after [`COMMENTED_OUT_PREFIX`]. Every other line of the file stays as it is, and
    /// no line is added or removed. A no-op when there is no such section, none of the keys
    /// is in it, the section is rolecall's (which holds no keys of the user's), or its header
    /// is indented (configparser may read it as part of a value above it). `rolecall
    /// import` uses it on `~/.aws/config`, so that the role settings it moved into rolecall
    /// stop shadowing rolecall's credentials (issue 14).
    CommentOut {
        /// The section name.
        name: String,
        /// The keys whose lines become comments.
        keys: Vec<String>,
    },
    /// Take over the section of that name the user wrote, for `rolecall import` of a role
    /// profile kept in the credentials file (awscli_bastion's layout, issue 17): the lines of
    /// these keys become comments as with [`Edit::CommentOut`], and the line
    /// `x_rolecall_managed = true` goes right below the header, so the section is rolecall's
    /// from then on and the next refresh writes its credentials there. The commented-out lines
    /// then follow rolecall's block, outside its span, so renewals keep them. Every other line
    /// stays. A no-op when there is no such section or it is rolecall's already; a section
    /// holding a long-lived key is [`Error::LongLivedKey`] (as adopting one is).
    TakeOver {
        /// The section name.
        name: String,
        /// The keys whose lines become comments.
        keys: Vec<String>,
    },
}

/// What starts a line [`Edit::CommentOut`] turned into a comment, before the line as it was.
pub const COMMENTED_OUT_PREFIX: &str = "# moved to rolecall: ";

impl<B: Block> Edit<B> {
    fn name(&self) -> &str {
        match self {
            Edit::Upsert { section, .. } => section.name(),
            Edit::Remove { name }
            | Edit::Scrub { name }
            | Edit::CommentOut { name, .. }
            | Edit::TakeOver { name, .. } => name,
        }
    }
}

/// What the credentials file holds, section by section in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Every section, managed or not, in file order (duplicates included).
    pub sections: Vec<SectionInfo>,
}

impl Inventory {
    /// The first section of that name.
    pub fn get(&self, name: &str) -> Option<&SectionInfo> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The sections rolecall wrote.
    pub fn managed(&self) -> impl Iterator<Item = &SectionInfo> {
        self.sections.iter().filter(|s| s.managed)
    }
}

/// One section of the credentials file, without its secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct SectionInfo {
    /// The section name.
    pub name: String,
    /// Whether rolecall wrote it and owns it: it has the key [`MANAGED_KEY`], and its
    /// [`FINGERPRINT_KEY`] matches (or it has none, written by an older rolecall).
    pub managed: bool,
    /// Whether it has the key [`MANAGED_KEY`] but was changed since rolecall wrote it (its
    /// fingerprint does not match): the user's now, never overwritten or removed.
    pub changed: bool,
    /// When its credentials expire, from [`EXPIRATION_KEY`]; `None` when absent or unreadable.
    pub expiration: Option<SystemTime>,
    /// Its `aws_access_key_id`, if any. Show it with [`KeyId`].
    pub access_key_id: Option<String>,
}

impl fmt::Debug for SectionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectionInfo")
            .field("name", &self.name)
            .field("managed", &self.managed)
            .field("changed", &self.changed)
            .field("expiration", &self.expiration.map(Rfc3339))
            .field("access_key_id", &self.access_key_id.as_deref().map(KeyId))
            .finish()
    }
}

/// Shows a time as RFC 3339 where humantime can (1970 to 9999), else as `SystemTime` does.
struct Rfc3339(SystemTime);

impl fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_rfc3339_range(self.0) {
            write!(f, "{}", humantime::format_rfc3339_seconds(self.0))
        } else {
            fmt::Debug::fmt(&self.0, f)
        }
    }
}

fn is_rfc3339_range(time: SystemTime) -> bool {
    time.duration_since(UNIX_EPOCH)
        .is_ok_and(|d| d.as_secs() < RFC3339_LIMIT_SECS)
}

/// Lists the sections of a credentials file: names, whether rolecall wrote them, expiry and
/// access key id.
pub fn inspect(text: &str) -> Inventory {
    inspect_as(FileKind::Credentials, text)
}

/// Lists the profiles of a file of that kind (for the config file: `[default]` and
/// `[profile NAME]` sections, by profile name; other sections are left out).
pub fn inspect_as(kind: FileKind, text: &str) -> Inventory {
    let doc = Doc::parse(text, kind);
    let sections = doc
        .profiles()
        .map(|span| {
            let f = fields(text, span);
            SectionInfo {
                name: span.name.to_owned(),
                managed: span.managed,
                changed: span.changed,
                expiration: f
                    .expiration
                    .and_then(|v| humantime::parse_rfc3339_weak(v).ok()),
                access_key_id: f.access_key_id.map(str::to_owned),
            }
        })
        .collect();
    Inventory { sections }
}

/// The long-lived key of a profile the user wrote (`aws_access_key_id` and
/// `aws_secret_access_key`), for `rolecall keys import`. A managed section, or one with a
/// session token, holds temporary credentials and is refused. For the profile's region, see
/// [`region`].
pub fn static_key(text: &str, name: &str, path: &Path) -> Result<Credentials, Error> {
    let doc = Doc::parse(text, FileKind::Credentials);
    let problem = |reason| Error::NoStaticKey {
        name: name.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let mut found = doc.profiles().filter(|s| s.name == name);
    let span = found
        .next()
        .ok_or_else(|| problem(StaticKeyProblem::Missing))?;
    if found.next().is_some() {
        return Err(Error::Duplicate {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    }
    if span.managed {
        return Err(problem(StaticKeyProblem::Managed));
    }
    let f = fields(text, span);
    let has_token = f.session_token.is_some() || f.security_token.is_some();
    // An AKIA key is long-lived even beside a session token (a stale one that `aws configure
    // set` left in a section rolecall wrote): importing it is how the user gets it back.
    if has_token
        && !f
            .access_key_id
            .is_some_and(|id| splice::is_long_lived(id, true))
    {
        return Err(problem(StaticKeyProblem::Temporary));
    }
    match (f.access_key_id, f.secret_access_key) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: SecretString::from(secret),
            session_token: None,
            expiration: None,
        }),
        _ => Err(problem(StaticKeyProblem::NoKey)),
    }
}

/// The `region` of the only section of that name, managed or not.
pub fn region(text: &str, name: &str) -> Option<String> {
    let doc = Doc::parse(text, FileKind::Credentials);
    let span = doc.unique(name)?;
    fields(text, span).region.map(str::to_owned)
}

/// The `region` of the only profile of that name in an AWS config file (`[profile NAME]`, or
/// `[default]`), managed or not.
pub fn region_of_config(text: &str, name: &str) -> Option<String> {
    let doc = Doc::parse(text, FileKind::Config);
    let span = doc.unique(name)?;
    fields(text, span).region.map(str::to_owned)
}

/// The `credential_process` of rolecall's own (managed) config-file profile of that name
/// (written by `rolecall setup credential-process`).
pub(crate) fn managed_credential_process(text: &str, name: &str) -> Option<String> {
    let doc = Doc::parse(text, FileKind::Config);
    let span = doc.unique(name).filter(|s| s.managed)?;
    fields(text, span).credential_process.map(str::to_owned)
}

/// The credentials and region of a managed section, for `exec` and `export` to reuse while
/// they are fresh. `None` when the section is missing, duplicated, not managed, lacks a key,
/// or has an expiration that does not parse (better to refresh than to trust it).
pub fn managed_credentials(text: &str, name: &str) -> Option<(Credentials, Option<String>)> {
    let doc = Doc::parse(text, FileKind::Credentials);
    let span = doc.unique(name).filter(|s| s.managed)?;
    let f = fields(text, span);
    let expiration = match f.expiration {
        Some(v) => Some(humantime::parse_rfc3339_weak(v).ok()?),
        None => None,
    };
    let credentials = Credentials {
        access_key_id: f.access_key_id?.to_owned(),
        secret_access_key: SecretString::from(f.secret_access_key?),
        session_token: f.session_token.or(f.security_token).map(SecretString::from),
        expiration,
    };
    Some((credentials, f.region.map(str::to_owned)))
}

/// The values of `keys` (lower case) in each profile section of a file of that kind, in file
/// order, with whether rolecall wrote the section: for `rolecall import`, which reads role
/// settings from both shared files. Only the keys asked for are copied out, so a secret of
/// the credentials file is never copied (ask for no secret key). Keys match
/// case-insensitively, the last one of a section wins, empty values are left out.
pub fn settings_of(kind: FileKind, text: &str, keys: &[&str]) -> Vec<ProfileSettings> {
    let doc = Doc::parse(text, kind);
    doc.profiles()
        .map(|span| {
            let mut values: Vec<(String, String)> = Vec::new();
            for (key, value) in scan::options(text, span) {
                let Some(wanted) = keys.iter().find(|k| k.eq_ignore_ascii_case(key)) else {
                    continue;
                };
                values.retain(|(k, _)| k != wanted);
                if !value.is_empty() {
                    values.push(((*wanted).to_owned(), value.to_owned()));
                }
            }
            ProfileSettings {
                name: span.name.to_owned(),
                managed: span.managed || span.changed,
                values,
            }
        })
        .collect()
}

/// Some settings of one profile section (see [`settings_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSettings {
    /// The profile name.
    pub name: String,
    /// It carries rolecall's marker.
    pub managed: bool,
    /// The keys asked for that it has, with their values.
    pub values: Vec<(String, String)>,
}
