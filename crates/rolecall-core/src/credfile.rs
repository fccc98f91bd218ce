//! The credentials-file splice writer: puts rolecall's managed profiles into the user's shared
//! AWS credentials file (`~/.aws/credentials`) and takes them out again.
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
//! # Format of a managed section
//!
//! ```ini
//! [dev-admin]
//! x_rolecall_managed = true
//! x_rolecall_expiration = 2026-11-22T03:06:26Z
//! aws_access_key_id = ASIA...
//! aws_secret_access_key = ...
//! aws_session_token = ...
//! region = eu-west-1
//! ```
//!
//! Ownership is the key `x_rolecall_managed`: a key and not a comment, because
//! `aws configure set` keeps unknown keys but drops comments, and botocore ignores unknown keys.
//! `x_rolecall_expiration` (RFC 3339, seconds, UTC), `aws_session_token` and `region` are left
//! out when there is nothing to say. New text uses the file's line ending (CRLF if its first line
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

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::{Zeroize, Zeroizing};

use crate::credentials::{Credentials, ExposeSecret, KeyId, SecretString};

/// The key that marks a section as written, and owned, by rolecall.
pub const MANAGED_KEY: &str = "x_rolecall_managed";
/// The key that holds when a managed section's credentials expire (RFC 3339, seconds, UTC).
pub const EXPIRATION_KEY: &str = "x_rolecall_expiration";

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
/// Room for one managed block (a session token is up to ~1 KB), to size the output buffer once.
const BLOCK_CAPACITY: usize = 1_400;

/// What can go wrong while editing the credentials file. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The edit names a section that exists but was not written by rolecall.
    #[error(
        "section [{name}] in {path} was not written by rolecall; rename it, or pass --adopt to \
         let rolecall manage it"
    )]
    NotOwned {
        /// The section name.
        name: String,
        /// The credentials file.
        path: PathBuf,
    },
    /// The file has more than one section of that name, which configparser (so the AWS CLI)
    /// refuses to read; rolecall will not guess which one is meant.
    #[error(
        "found more than one section [{name}] in {path}, which the aws cli cannot read either; \
         merge them into one or rename one, then retry"
    )]
    Duplicate {
        /// The section name.
        name: String,
        /// The credentials file.
        path: PathBuf,
    },
    /// The profile has no long-lived access key that `rolecall keys import` could take.
    #[error("profile [{name}] in {path} {reason}")]
    NoStaticKey {
        /// The section name.
        name: String,
        /// The credentials file.
        path: PathBuf,
        /// Why there is no usable key.
        reason: StaticKeyProblem,
    },
    /// The profile name cannot be written as a section header that reads back as the same name.
    #[error(
        "profile name {name:?} cannot be a section of the credentials file: it must be non-empty, \
         without control characters or surrounding spaces, and not \"DEFAULT\" (which botocore \
         applies to every profile); rename the profile"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A value to write would corrupt the file or read back differently (the value itself is
    /// not shown: it may be a secret).
    #[error(
        "profile [{name}]: cannot write {key}: the value is empty, out of range, or contains \
         whitespace or control characters; the credentials file was not changed"
    )]
    InvalidValue {
        /// The section name.
        name: String,
        /// The key whose value was rejected.
        key: &'static str,
    },
    /// There is nowhere to add a new section without changing how the AWS tools read the
    /// user's lines: the file starts with a key outside any section or an indented line (which
    /// a section above it would swallow as a key or continuation line), has no header that
    /// starts a line to insert before, and does not end with a newline to append after.
    #[error(
        "cannot add a section to {path}: line {line} is outside any [section] or indented, so \
         the aws tools would read it as part of the new section; put a section header above it, \
         remove its indentation, or end the file with a newline, then retry"
    )]
    NoRoom {
        /// The credentials file.
        path: PathBuf,
        /// The 1-based line number of the line in the way.
        line: usize,
    },
    /// The file is not UTF-8, so it cannot be spliced without risking the user's bytes.
    #[error("credentials file {path} is not valid UTF-8; save it as UTF-8, then retry")]
    NotUtf8 {
        /// The credentials file.
        path: PathBuf,
    },
    /// The user made the file read-only; rolecall respects that.
    #[error(
        "credentials file {path} is read-only; make it writable (chmod u+w) to let rolecall \
         update it"
    )]
    ReadOnly {
        /// The credentials file.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("could not {op} {path}; {advice}", advice = .op.advice())]
    Io {
        /// What was being done.
        op: IoOp,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// The file-system operation behind an [`Error::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// Reading the credentials file (or resolving its symlink).
    Read,
    /// Creating the directory that holds the file.
    CreateDir,
    /// Taking the advisory lock.
    Lock,
    /// Writing the new content to a temp file.
    Write,
    /// Flushing the temp file to disk.
    Sync,
    /// Renaming the temp file over the credentials file.
    Rename,
}

impl IoOp {
    fn advice(self) -> &'static str {
        match self {
            IoOp::Read => "check that it exists and is readable by you",
            IoOp::CreateDir => "check the permissions of its parent directory",
            IoOp::Lock => {
                "the lock file lives beside the credentials file; check that its directory is \
                 writable"
            }
            IoOp::Write => {
                "check that the directory is writable and the disk is not full; the credentials \
                 file was not changed"
            }
            IoOp::Sync => "check the disk; the credentials file was not changed",
            IoOp::Rename => {
                "check that the directory is writable; the credentials file was not changed"
            }
        }
    }
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOp::Read => "read",
            IoOp::CreateDir => "create directory",
            IoOp::Lock => "lock",
            IoOp::Write => "write the new content of",
            IoOp::Sync => "flush to disk the new content of",
            IoOp::Rename => "replace",
        })
    }
}

/// Why [`static_key`] found no long-lived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaticKeyProblem {
    /// There is no section of that name.
    Missing,
    /// The section lacks `aws_access_key_id` or `aws_secret_access_key`.
    NoKey,
    /// The section has a session token: its key is temporary.
    Temporary,
    /// rolecall wrote the section: it holds temporary credentials.
    Managed,
}

impl fmt::Display for StaticKeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StaticKeyProblem::Missing => "does not exist; check the name (it is case-sensitive)",
            StaticKeyProblem::NoKey => {
                "has no aws_access_key_id and aws_secret_access_key pair; add the key to rolecall \
                 by hand instead"
            }
            StaticKeyProblem::Temporary => {
                "holds temporary credentials (it has a session token); import the long-lived key \
                 they came from instead"
            }
            StaticKeyProblem::Managed => {
                "was written by rolecall and holds temporary credentials; import the long-lived \
                 key they came from instead"
            }
        })
    }
}

/// A managed profile to write: the section name, its credentials and an optional region.
#[derive(Debug, Clone)]
pub struct Section {
    /// The section name, written as `[name]`.
    pub name: String,
    /// The credentials to write.
    pub credentials: Credentials,
    /// Written as `region = …` when set.
    pub region: Option<String>,
}

/// One change to the credentials file.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Write the section: replace the managed section of that name, or insert it at the top.
    Upsert {
        /// The section to write.
        section: Section,
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
}

impl Edit {
    fn name(&self) -> &str {
        match self {
            Edit::Upsert { section, .. } => &section.name,
            Edit::Remove { name } | Edit::Scrub { name } => name,
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
    /// Whether rolecall wrote it (it has the key [`MANAGED_KEY`]).
    pub managed: bool,
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

// ---------------------------------------------------------------------------------------------
// Scanning

/// One line: its byte range including the line ending, and its content without it.
#[derive(Clone, Copy)]
struct Line<'a> {
    start: usize,
    end: usize,
    content: &'a str,
}

/// The lines of `text` from byte `pos` (a line start). Only `\n` ends a line; a `\r` before it
/// is part of the ending.
fn lines_from(text: &str, mut pos: usize) -> impl Iterator<Item = Line<'_>> {
    std::iter::from_fn(move || {
        let rest = text.get(pos..).filter(|r| !r.is_empty())?;
        let start = pos;
        let (content_len, len) = match rest.find('\n') {
            Some(i) => (i, i + 1),
            None => (rest.len(), rest.len()),
        };
        let content = &rest[..content_len];
        pos = start + len;
        Some(Line {
            start,
            end: pos,
            content: content.strip_suffix('\r').unwrap_or(content),
        })
    })
}

enum Kind<'a> {
    Blank,
    Comment,
    Header(&'a str),
    Key,
}

fn classify(content: &str) -> Kind<'_> {
    let t = content.trim_start();
    if t.is_empty() {
        return Kind::Blank;
    }
    if t.starts_with(['#', ';']) {
        return Kind::Comment;
    }
    if let Some(rest) = t.strip_prefix('[')
        && let Some(close) = rest.rfind(']')
    {
        return Kind::Header(rest[..close].trim());
    }
    Kind::Key
}

/// A section as found in the text.
struct Span<'a> {
    name: &'a str,
    /// Start of the header line.
    start: usize,
    /// End of the header line (start of the body).
    body: usize,
    /// End of the last key line (or of the header line when there is none).
    end: usize,
    managed: bool,
}

/// The scanned file: where its sections are, and what new text must look like.
struct Doc<'a> {
    text: &'a str,
    /// Length of the BOM, if any (0 or 3).
    bom: usize,
    eol: &'static str,
    sections: Vec<Span<'a>>,
    /// 1-based line number of the first line that keeps new sections off the top: the first
    /// line that is not blank or a comment starting the line, unless it is a header starting
    /// the line.
    top_blocker: Option<usize>,
    /// Start of the first header that starts its line (no indentation).
    first_flush_header: Option<usize>,
}

impl<'a> Doc<'a> {
    fn parse(text: &'a str) -> Self {
        let bom = if text.starts_with(BOM) {
            BOM.len_utf8()
        } else {
            0
        };
        let eol = match text.find('\n') {
            Some(i) if text[..i].ends_with('\r') => "\r\n",
            _ => "\n",
        };
        let mut sections: Vec<Span<'a>> = Vec::new();
        let mut top_blocker = None;
        let mut top_decided = false;
        let mut first_flush_header = None;
        for (index, line) in lines_from(text, bom).enumerate() {
            let kind = classify(line.content);
            let flush = !line.content.starts_with(char::is_whitespace);
            if !top_decided {
                match kind {
                    Kind::Blank => {}
                    Kind::Comment if flush => {}
                    Kind::Header(_) if flush => top_decided = true,
                    _ => {
                        top_decided = true;
                        top_blocker = Some(index + 1);
                    }
                }
            }
            match kind {
                Kind::Blank | Kind::Comment => {}
                Kind::Header(name) => {
                    if flush {
                        first_flush_header.get_or_insert(line.start);
                    }
                    sections.push(Span {
                        name,
                        start: line.start,
                        body: line.end,
                        end: line.end,
                        managed: false,
                    });
                }
                Kind::Key => {
                    if let Some(span) = sections.last_mut() {
                        span.end = line.end;
                    }
                }
            }
        }
        for span in &mut sections {
            span.managed = options(text, span).any(|(k, _)| k.eq_ignore_ascii_case(MANAGED_KEY));
        }
        Doc {
            text,
            bom,
            eol,
            sections,
            top_blocker,
            first_flush_header,
        }
    }

    /// The only section of that name; `None` when there is none or more than one.
    fn unique(&self, name: &str) -> Option<&Span<'a>> {
        let mut found = self.sections.iter().filter(|s| s.name == name);
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// End of the blank line right after the span, if there is one: the separator that goes
    /// with a managed section.
    fn separator_end(&self, span: &Span<'_>) -> Option<usize> {
        lines_from(self.text, span.end)
            .next()
            .filter(|line| matches!(classify(line.content), Kind::Blank))
            .map(|line| line.end)
    }
}

/// Number of whitespace characters that start the line (configparser's indent level).
fn indent_of(content: &str) -> usize {
    content.chars().take_while(|c| c.is_whitespace()).count()
}

/// The `key = value` pairs of a section, trimmed, in order. As in configparser, `:` also
/// separates, and a line indented deeper than the key line before it continues that key's
/// value instead of starting a key.
fn options<'a>(
    text: &'a str,
    span: &Span<'_>,
) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
    let mut key_indent: Option<usize> = None;
    lines_from(&text[..span.end], span.body).filter_map(move |line| {
        if !matches!(classify(line.content), Kind::Key) {
            return None;
        }
        let indent = indent_of(line.content);
        if key_indent.is_some_and(|k| indent > k) {
            return None;
        }
        key_indent = Some(indent);
        let content = line.content.trim();
        let split = content.find(['=', ':'])?;
        Some((content[..split].trim(), content[split + 1..].trim()))
    })
}

/// The values rolecall cares about in one section. Keys match case-insensitively, as both
/// botocore (configparser lower-cases option names) and the Rust SDK do; the last one wins.
#[derive(Default)]
struct Fields<'a> {
    managed: bool,
    expiration: Option<&'a str>,
    access_key_id: Option<&'a str>,
    secret_access_key: Option<&'a str>,
    session_token: Option<&'a str>,
    security_token: Option<&'a str>,
    region: Option<&'a str>,
}

fn fields<'a>(text: &'a str, span: &Span<'_>) -> Fields<'a> {
    let mut f = Fields::default();
    for (key, value) in options(text, span) {
        let value = Some(value).filter(|v| !v.is_empty());
        let is = |name: &str| key.eq_ignore_ascii_case(name);
        if is(MANAGED_KEY) {
            f.managed = true;
        } else if is(EXPIRATION_KEY) {
            f.expiration = value;
        } else if is(ACCESS_KEY_ID) {
            f.access_key_id = value;
        } else if is(SECRET_ACCESS_KEY) {
            f.secret_access_key = value;
        } else if is(SESSION_TOKEN) {
            f.session_token = value;
        } else if is(SECURITY_TOKEN) {
            f.security_token = value;
        } else if is(REGION) {
            f.region = value;
        }
    }
    f
}

// ---------------------------------------------------------------------------------------------
// Writing managed blocks

/// A value can be written when it reads back identical: not empty, no whitespace (values are
/// trimmed, and the Rust SDK cuts ` #…` as a comment) and no control characters (a line break
/// would start a new key or section). No AWS key, token or region has any of those.
fn is_writable_value(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Section {
    fn validate(&self) -> Result<(), Error> {
        let name = &self.name;
        if name.is_empty()
            || name.trim() != name
            || name.chars().any(char::is_control)
            || name.starts_with(BOM)
            || name == CONFIGPARSER_DEFAULT_SECTION
        {
            return Err(Error::InvalidName { name: name.clone() });
        }
        let invalid = |key: &'static str| Error::InvalidValue {
            name: name.clone(),
            key,
        };
        let c = &self.credentials;
        if !is_writable_value(&c.access_key_id) {
            return Err(invalid(ACCESS_KEY_ID));
        }
        if !is_writable_value(c.secret_access_key.expose_secret()) {
            return Err(invalid(SECRET_ACCESS_KEY));
        }
        if let Some(token) = &c.session_token
            && !is_writable_value(token.expose_secret())
        {
            return Err(invalid(SESSION_TOKEN));
        }
        if let Some(region) = &self.region
            && !is_writable_value(region)
        {
            return Err(invalid(REGION));
        }
        if c.expiration.is_some_and(|exp| !is_rfc3339_range(exp)) {
            return Err(invalid(EXPIRATION_KEY));
        }
        Ok(())
    }

    /// Appends the managed block. Every line ends in `eol` except the last when
    /// `final_eol` is false (replacing a span that ended the file without a newline).
    fn write_block(&self, out: &mut String, eol: &str, final_eol: bool) {
        let c = &self.credentials;
        // Writing into a String cannot fail, and `validate` checked the expiration is in the
        // range humantime formats.
        let _ = write!(out, "[{}]{eol}{MANAGED_KEY} = true", self.name);
        if let Some(exp) = c.expiration {
            let _ = write!(
                out,
                "{eol}{EXPIRATION_KEY} = {}",
                humantime::format_rfc3339_seconds(exp)
            );
        }
        let _ = write!(out, "{eol}{ACCESS_KEY_ID} = {}", c.access_key_id);
        let _ = write!(
            out,
            "{eol}{SECRET_ACCESS_KEY} = {}",
            c.secret_access_key.expose_secret()
        );
        if let Some(token) = &c.session_token {
            let _ = write!(out, "{eol}{SESSION_TOKEN} = {}", token.expose_secret());
        }
        if let Some(region) = &self.region {
            let _ = write!(out, "{eol}{REGION} = {region}");
        }
        if final_eol {
            out.push_str(eol);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pure API

/// What happens to one name over a batch of edits.
#[derive(Default)]
struct Plan<'e> {
    /// Index of the section of that name in the original text.
    original: Option<usize>,
    /// How many sections of that name the original text has.
    count: usize,
    fate: Fate<'e>,
    /// A new block at the top, with the index of the edit that inserted it (for ordering).
    inserted: Option<(usize, &'e Section)>,
}

#[derive(Default, Clone, Copy)]
enum Fate<'e> {
    #[default]
    Keep,
    Replace(&'e Section),
    Remove,
}

/// Applies `edits` in order to the text of a credentials file and returns the new text. Pure:
/// `path` only names the file in errors.
///
/// All edits are applied in one pass over the text, and either all apply or none (the first
/// error is returned). Upserting replaces a managed section in place, or inserts a new one at
/// the top of the file (new sections of one batch in edit order); removing a name that is not
/// present is a no-op. Upserting or removing a section the user wrote is
/// [`Error::NotOwned`], unless an upsert has `adopt` (or it is an [`Edit::Scrub`]); any edit of
/// a name that has several sections is [`Error::Duplicate`].
pub fn splice(text: &str, edits: &[Edit], path: &Path) -> Result<String, Error> {
    let is_scrub = |e: &Edit| matches!(e, Edit::Scrub { .. });
    if edits.len() < 2 || !edits.iter().any(is_scrub) {
        return splice_batch(text, edits, path);
    }
    // Taking out a user's section changes which lines follow the places new sections can go,
    // so each scrub is a step of its own, and the runs of edits between them one pass each.
    let mut text = text.to_owned();
    let mut rest = edits;
    while !rest.is_empty() {
        let run = match rest.iter().position(is_scrub) {
            Some(0) => 1,
            Some(next) => next,
            None => rest.len(),
        };
        text = splice_batch(&text, &rest[..run], path)?;
        rest = &rest[run..];
    }
    Ok(text)
}

/// [`splice`] for a batch with no scrub, or only one edit: a single pass over the text.
fn splice_batch(text: &str, edits: &[Edit], path: &Path) -> Result<String, Error> {
    if edits.is_empty() {
        return Ok(text.to_owned());
    }
    for edit in edits {
        if let Edit::Upsert { section, .. } = edit {
            section.validate()?;
        }
    }
    let doc = Doc::parse(text);

    let mut plans: HashMap<&str, Plan<'_>> =
        edits.iter().map(|e| (e.name(), Plan::default())).collect();
    for (index, span) in doc.sections.iter().enumerate() {
        if let Some(plan) = plans.get_mut(span.name) {
            plan.count += 1;
            plan.original.get_or_insert(index);
        }
    }

    for (order, edit) in edits.iter().enumerate() {
        let name = edit.name();
        let Some(plan) = plans.get_mut(name) else {
            continue; // every edit's name was entered above
        };
        if plan.count > 1 {
            return Err(Error::Duplicate {
                name: name.to_owned(),
                path: path.to_owned(),
            });
        }
        let not_owned = || Error::NotOwned {
            name: name.to_owned(),
            path: path.to_owned(),
        };
        // The original section still stands (possibly already rewritten by this batch).
        let original_present = plan.original.is_some() && !matches!(plan.fate, Fate::Remove);
        // A user's section that this batch has not adopted.
        let foreign = |plan: &Plan<'_>| {
            matches!(plan.fate, Fate::Keep)
                && plan.original.is_some_and(|i| !doc.sections[i].managed)
        };
        match edit {
            Edit::Upsert { section, adopt } => {
                if original_present {
                    if foreign(plan) && !adopt {
                        return Err(not_owned());
                    }
                    plan.fate = Fate::Replace(section);
                } else {
                    match &mut plan.inserted {
                        Some((_, current)) => *current = section,
                        None => plan.inserted = Some((order, section)),
                    }
                }
            }
            Edit::Remove { .. } | Edit::Scrub { .. } => {
                if plan.inserted.is_some() {
                    plan.inserted = None;
                } else if original_present {
                    if foreign(plan) && matches!(edit, Edit::Remove { .. }) {
                        return Err(not_owned());
                    }
                    plan.fate = Fate::Remove;
                }
            }
        }
    }

    let mut inserts: Vec<(usize, &Section)> = plans.values().filter_map(|p| p.inserted).collect();
    inserts.sort_unstable_by_key(|(order, _)| *order);
    // Per original section: the block that replaces it, or `None` to remove it.
    let mut changes: Vec<(usize, Option<&Section>)> = plans
        .values()
        .filter_map(|p| match (p.original, p.fate) {
            (_, Fate::Keep) | (None, _) => None,
            (Some(index), Fate::Replace(section)) => Some((index, Some(section))),
            (Some(index), Fate::Remove) => Some((index, None)),
        })
        .collect();
    changes.sort_unstable_by_key(|(index, _)| *index);

    // New sections go at the top. But what follows a new section's last key must not read as
    // part of it: a key line before the first header would become its key, and an indented
    // line its continuation (configparser treats any line indented deeper than the key before
    // it as a continuation, the Rust SDK any indented line, comments included). Then they go
    // right before the first header that starts its line, or else at the end of the file.
    let insert_at = match doc.top_blocker {
        _ if inserts.is_empty() => doc.bom,
        None => doc.bom,
        Some(line) => match doc.first_flush_header {
            Some(header) => header,
            None if text.ends_with('\n') => text.len(),
            None => {
                return Err(Error::NoRoom {
                    path: path.to_owned(),
                    line,
                });
            }
        },
    };

    let mut out = String::with_capacity(text.len() + edits.len() * BLOCK_CAPACITY);
    out.push_str(&text[..insert_at]);
    for (_, section) in &inserts {
        section.write_block(&mut out, doc.eol, true);
        out.push_str(doc.eol);
    }
    let mut cursor = insert_at;
    for (index, replacement) in changes {
        let span = &doc.sections[index];
        out.push_str(&text[cursor..span.start]);
        cursor = match replacement {
            Some(section) => {
                section.write_block(&mut out, doc.eol, text[..span.end].ends_with('\n'));
                span.end
            }
            None => doc.separator_end(span).unwrap_or(span.end),
        };
    }
    out.push_str(&text[cursor..]);
    Ok(out)
}

/// Lists the sections of a credentials file: names, whether rolecall wrote them, expiry and
/// access key id.
pub fn inspect(text: &str) -> Inventory {
    let doc = Doc::parse(text);
    let sections = doc
        .sections
        .iter()
        .map(|span| {
            let f = fields(text, span);
            SectionInfo {
                name: span.name.to_owned(),
                managed: span.managed,
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
    let doc = Doc::parse(text);
    let problem = |reason| Error::NoStaticKey {
        name: name.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let mut found = doc.sections.iter().filter(|s| s.name == name);
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
    if f.session_token.is_some() || f.security_token.is_some() {
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
    let doc = Doc::parse(text);
    let span = doc.unique(name)?;
    fields(text, span).region.map(str::to_owned)
}

/// The credentials and region of a managed section, for `exec` and `export` to reuse while
/// they are fresh. `None` when the section is missing, duplicated, not managed, lacks a key,
/// or has an expiration that does not parse (better to refresh than to trust it).
pub fn managed_credentials(text: &str, name: &str) -> Option<(Credentials, Option<String>)> {
    let doc = Doc::parse(text);
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

// ---------------------------------------------------------------------------------------------
// The file

/// The shared credentials file at one path, read and written safely.
#[derive(Debug, Clone)]
pub struct CredentialsFile {
    path: PathBuf,
}

impl CredentialsFile {
    /// The file at `path` (usually `~/.aws/credentials` or `AWS_SHARED_CREDENTIALS_FILE`,
    /// from `config::Paths`). Nothing is touched until [`read`](Self::read) or
    /// [`apply`](Self::apply).
    pub fn new(path: PathBuf) -> Self {
        CredentialsFile { path }
    }

    /// The path given to [`new`](Self::new).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text; empty when it does not exist.
    pub fn read(&self) -> Result<String, Error> {
        read_text(&self.path)
    }

    /// Applies `edits` under an advisory lock: read, [`splice`], and if the text changed, write
    /// it atomically (temp file, fsync, rename, fsync of the directory). Returns whether the
    /// file changed; nothing is written when it did not. A symlink is followed and left in
    /// place. A new file is created with mode 0600 (its directory 0700); an existing one keeps
    /// its mode. Blocks while another rolecall holds the lock, so call it off the async
    /// runtime.
    pub fn apply(&self, edits: &[Edit]) -> Result<bool, Error> {
        let target = resolve_symlinks(&self.path)?;
        let only_removes = edits.iter().all(|e| !matches!(e, Edit::Upsert { .. }));
        if only_removes && !target.exists() {
            return Ok(false);
        }
        let file_name = target
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Io {
                op: IoOp::Read,
                path: target.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            })?;
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_dir(&dir)?;

        let _lock = Lock::acquire(&dir.join(format!(".{file_name}.rolecall.lock")))?;
        let temp_prefix = format!(".{file_name}.rolecall.");
        remove_stale_temp_files(&dir, &temp_prefix);

        let existing = match fs::metadata(&target) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(Error::Io {
                    op: IoOp::Read,
                    path: target,
                    source,
                });
            }
        };
        let old = Zeroizing::new(read_text(&target)?);
        let new = Zeroizing::new(splice(&old, edits, &self.path)?);
        if *new == *old {
            return Ok(false);
        }
        if existing
            .as_ref()
            .is_some_and(|m| m.permissions().readonly())
        {
            return Err(Error::ReadOnly { path: target });
        }
        write_atomically(
            &dir,
            &target,
            &temp_prefix,
            new.as_bytes(),
            existing.as_ref(),
        )?;
        tracing::debug!(path = %target.display(), "credentials file updated");
        Ok(true)
    }
}

fn read_text(path: &Path) -> Result<String, Error> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
            e.into_bytes().zeroize();
            Error::NotUtf8 {
                path: path.to_owned(),
            }
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(Error::Io {
            op: IoOp::Read,
            path: path.to_owned(),
            source,
        }),
    }
}

/// The file the path finally names. Dotfile managers make `~/.aws/credentials` a symlink;
/// writing through a rename onto the link would replace the link with a plain file, so the
/// rename must target the real file (and the temp file live in its directory).
fn resolve_symlinks(path: &Path) -> Result<PathBuf, Error> {
    // Linux's own limit (MAXSYMLINKS) on links followed in one lookup.
    const MAX_LINKS: usize = 40;
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let read_error = |path: &Path, source| Error::Io {
            op: IoOp::Read,
            path: path.to_owned(),
            source,
        };
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(real) = fs::canonicalize(&current) {
                    return Ok(real);
                }
                // A dangling link: follow it one step; the file will be created at its target.
                let target = fs::read_link(&current).map_err(|e| read_error(&current, e))?;
                current = match current.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(_) => return Ok(current),
            // Not there (yet): creating the directory will report what is wrong.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(current);
            }
            Err(e) => return Err(read_error(&current, e)),
        }
    }
    Err(Error::Io {
        op: IoOp::Read,
        path: path.to_owned(),
        source: io::Error::other("too many levels of symbolic links"),
    })
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| Error::Io {
        op: IoOp::CreateDir,
        path: dir.to_owned(),
        source,
    })
}

/// An exclusive advisory lock on the sidecar lock file, released on drop. The lock file is
/// never deleted: deleting it would let two writers lock two different inodes.
struct Lock(File);

impl Lock {
    fn acquire(path: &Path) -> Result<Lock, Error> {
        let lock_error = |source| Error::Io {
            op: IoOp::Lock,
            path: path.to_owned(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(lock_error)?;
        file.lock().map_err(lock_error)?;
        Ok(Lock(file))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first just makes it prompt.
        let _ = self.0.unlock();
    }
}

/// Deletes temp files a killed writer left behind. Only called under the lock, when no other
/// writer can be midway.
fn remove_stale_temp_files(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(prefix) && name.ends_with(".tmp") {
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::debug!(file = name, "removed a stale temp file"),
                Err(e) => {
                    tracing::warn!(file = name, error = %e, "could not remove a stale temp file");
                }
            }
        }
    }
}

fn write_atomically(
    dir: &Path,
    target: &Path,
    prefix: &str,
    bytes: &[u8],
    existing: Option<&fs::Metadata>,
) -> Result<(), Error> {
    let io_error = |op| {
        move |source| Error::Io {
            op,
            path: target.to_owned(),
            source,
        }
    };
    let mut temp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_error(IoOp::Write))?;
    temp.write_all(bytes).map_err(io_error(IoOp::Write))?;
    set_permissions(temp.as_file(), existing).map_err(io_error(IoOp::Write))?;
    temp.as_file().sync_all().map_err(io_error(IoOp::Sync))?;
    persist(temp, target).map_err(io_error(IoOp::Rename))?;
    sync_dir(dir);
    Ok(())
}

/// Renames the temp file over the target. On Windows a rename onto a file that another
/// program has open without delete sharing (Python's `open`, so the AWS CLI reading its
/// credentials) fails with "access denied" until that program closes it: retried for up to
/// about 2.5 s. Elsewhere the rename is atomic whatever else has the file open.
fn persist(temp: tempfile::NamedTempFile, target: &Path) -> io::Result<()> {
    const RETRIES: u32 = 8;
    let mut temp = temp;
    let mut delay = std::time::Duration::from_millis(10);
    let mut attempt = 0;
    loop {
        match temp.persist(target) {
            Ok(_) => return Ok(()),
            Err(e)
                if cfg!(windows)
                    && e.error.kind() == io::ErrorKind::PermissionDenied
                    && attempt < RETRIES =>
            {
                temp = e.file;
                attempt += 1;
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(e.error),
        }
    }
}

/// An existing file keeps its permission bits; a new one is private (0600), since it holds
/// secrets.
#[cfg(unix)]
fn set_permissions(file: &File, existing: Option<&fs::Metadata>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = existing.map_or(0o600, |m| m.permissions().mode() & 0o7777);
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_permissions(_file: &File, _existing: Option<&fs::Metadata>) -> io::Result<()> {
    Ok(())
}

/// Makes the rename durable: without an fsync of the directory, a crash can bring back the old
/// file (or none). The new content is already in place, so a failure is only logged.
#[cfg(unix)]
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not fsync the credentials directory");
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;
    use std::collections::{BTreeMap, HashSet};
    use std::time::Duration;

    const PATH: &str = "/home/user/.aws/credentials";
    /// `humantime::format_rfc3339_seconds` of [`expiration`].
    const EXP_TEXT: &str = "2026-11-22T03:06:26Z";

    fn path() -> &'static Path {
        Path::new(PATH)
    }

    fn expiration() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_316_786)
    }

    fn creds(tag: &str) -> Credentials {
        Credentials {
            access_key_id: format!("ASIA{tag}EXAMPLE"),
            secret_access_key: SecretString::from(format!("secret/{tag}+KEY")),
            session_token: Some(SecretString::from(format!("token{tag}//==="))),
            expiration: Some(expiration()),
        }
    }

    fn section(name: &str, tag: &str) -> Section {
        Section {
            name: name.to_owned(),
            credentials: creds(tag),
            region: None,
        }
    }

    fn upsert(name: &str, tag: &str) -> Edit {
        Edit::Upsert {
            section: section(name, tag),
            adopt: false,
        }
    }

    fn adopt(name: &str, tag: &str) -> Edit {
        Edit::Upsert {
            section: section(name, tag),
            adopt: true,
        }
    }

    fn remove(name: &str) -> Edit {
        Edit::Remove {
            name: name.to_owned(),
        }
    }

    /// The managed block `upsert(name, tag)` writes, spelled out independently of the code.
    fn block(name: &str, tag: &str, eol: &str) -> String {
        format!(
            "[{name}]{eol}x_rolecall_managed = true{eol}x_rolecall_expiration = {EXP_TEXT}{eol}\
             aws_access_key_id = ASIA{tag}EXAMPLE{eol}aws_secret_access_key = secret/{tag}+KEY{eol}\
             aws_session_token = token{tag}//==={eol}"
        )
    }

    /// Expands `<dev:A>` to `block("dev", "A", "\n")` and `<dev:A:crlf>` to its CRLF form.
    fn expand(template: &str) -> String {
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

    fn apply(text: &str, edits: &[Edit]) -> String {
        splice(text, edits, path()).unwrap()
    }

    /// The file with every managed section removed.
    fn strip_managed(text: &str) -> String {
        let removes: Vec<Edit> = inspect(text).managed().map(|s| remove(&s.name)).collect();
        apply(text, &removes)
    }

    fn managed_names(text: &str) -> Vec<String> {
        inspect(text).managed().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn block_helper_matches_humantime_format() {
        assert_eq!(
            humantime::format_rfc3339_seconds(expiration()).to_string(),
            EXP_TEXT
        );
    }

    #[rstest]
    #[case::empty_file("", "<dev:A>\n")]
    #[case::comments_only("# my keys\n; more\n", "<dev:A>\n# my keys\n; more\n")]
    #[case::user_section(
        "[default]\naws_access_key_id = AKIAUSER\n",
        "<dev:A>\n[default]\naws_access_key_id = AKIAUSER\n"
    )]
    #[case::crlf(
        "# c\r\n[default]\r\nregion = eu-west-1\r\n",
        "<dev:A:crlf>\r\n# c\r\n[default]\r\nregion = eu-west-1\r\n"
    )]
    #[case::crlf_decided_by_first_line_ending(
        "# c\r\n[default]\nregion = eu-west-1\n",
        "<dev:A:crlf>\r\n# c\r\n[default]\nregion = eu-west-1\n"
    )]
    #[case::no_final_newline(
        "[default]\nregion = eu-west-1",
        "<dev:A>\n[default]\nregion = eu-west-1"
    )]
    #[case::comment_without_final_newline("# only", "<dev:A>\n# only")]
    #[case::bom(
        "\u{feff}[default]\nregion = x\n",
        "\u{feff}<dev:A>\n[default]\nregion = x\n"
    )]
    #[case::non_ascii(
        "# Schlüssel für Köln ☕\n[köln]\nregion = eu-central-1 # ü\n",
        "<dev:A>\n# Schlüssel für Köln ☕\n[köln]\nregion = eu-central-1 # ü\n"
    )]
    #[case::odd_spacing(
        "[default]\nkey=value\n  key2 =  value  \n\t\n\n[other]\t\n",
        "<dev:A>\n[default]\nkey=value\n  key2 =  value  \n\t\n\n[other]\t\n"
    )]
    #[case::blank_lines_first("\n\n[default]\n", "<dev:A>\n\n\n[default]\n")]
    #[case::stray_key_before_first_header(
        "orphan = 1\n[default]\nregion = x\n",
        "orphan = 1\n<dev:A>\n[default]\nregion = x\n"
    )]
    #[case::indented_comment_first(
        "  # c\n[default]\nregion = x\n",
        "  # c\n<dev:A>\n[default]\nregion = x\n"
    )]
    #[case::indented_header_first("\t[a]\nk=v\n[b]\n", "\t[a]\nk=v\n<dev:A>\n[b]\n")]
    #[case::only_indented_lines_appends_at_end("  [a]\n  k = v\n", "  [a]\n  k = v\n<dev:A>\n")]
    #[case::stray_key_without_header_appends_at_end(
        "# c\norphan = 1\r\n",
        "# c\norphan = 1\r\n<dev:A>\n"
    )]
    #[case::next_to_existing_managed("<old:B>\n[default]\n", "<dev:A>\n<old:B>\n[default]\n")]
    fn upsert_of_new_name_goes_on_top_and_keeps_user_bytes(
        #[case] input: &str,
        #[case] expected: &str,
    ) {
        let input = expand(input);
        let out = apply(&input, &[upsert("dev", "A")]);
        assert_eq!(out, expand(expected));
        assert!(inspect(&out).get("dev").is_some_and(|s| s.managed));
        assert_eq!(apply(&out, &[remove("dev")]), input);
    }

    #[rstest]
    #[case::middle_with_trailing_comment(
        "[default]\nregion = x\n\n<dev:A>\n# about prod\n[prod]\nregion = y\n",
        "[default]\nregion = x\n\n<dev:B>\n# about prod\n[prod]\nregion = y\n"
    )]
    #[case::crlf("<dev:A:crlf>\r\n[default]\r\n", "<dev:B:crlf>\r\n[default]\r\n")]
    #[case::last_section("[default]\n\n<dev:A>", "[default]\n\n<dev:B>")]
    #[case::last_section_without_final_newline(
        "[default]\n\n[dev]\nx_rolecall_managed = true\naws_access_key_id = OLD",
        "[default]\n\n[dev]\nx_rolecall_managed = true\nx_rolecall_expiration = \
         2026-11-22T03:06:26Z\naws_access_key_id = ASIABEXAMPLE\naws_secret_access_key = \
         secret/B+KEY\naws_session_token = tokenB//==="
    )]
    #[case::comments_and_blanks_inside_span_are_ours(
        "[dev]\nx_rolecall_managed=true\n# inside\n\naws_access_key_id=OLD\n\n# after\n[x]\n",
        "<dev:B>\n# after\n[x]\n"
    )]
    #[case::spaced_header("[ dev ]\nx_rolecall_managed = true\n\n[x]\n", "<dev:B>\n[x]\n")]
    #[case::header_with_comment("[dev] ; note\nx_rolecall_managed: true\n[x]\n", "<dev:B>[x]\n")]
    #[case::indented_header(
        "  [dev]\n  x_rolecall_managed = true\n  aws_access_key_id = OLD\n; c\n",
        "<dev:B>; c\n"
    )]
    #[case::upper_case_marker_key("[dev]\nX_Rolecall_Managed = true\n\n", "<dev:B>\n")]
    fn upsert_of_managed_section_replaces_only_its_span(
        #[case] input: &str,
        #[case] expected: &str,
    ) {
        let out = apply(&expand(input), &[upsert("dev", "B")]);
        assert_eq!(out, expand(expected));
    }

    #[rstest]
    #[case::with_separator("<dev:A>\n[default]\n", "[default]\n")]
    #[case::keeps_comment_after_separator(
        "<dev:A>\n# about default\n[default]\n",
        "# about default\n[default]\n"
    )]
    #[case::keeps_comment_right_after_span("<dev:A># about x\n[x]\n", "# about x\n[x]\n")]
    #[case::removes_exactly_one_blank_line("<dev:A>\n\n\n[x]\n", "\n\n[x]\n")]
    #[case::whitespace_only_line_counts_as_blank("<dev:A> \t\n[x]\n", "[x]\n")]
    #[case::at_end("[default]\nregion = x\n\n<dev:A>", "[default]\nregion = x\n\n")]
    #[case::crlf("[x]\r\n\r\n<dev:A:crlf>\r\n[y]\r\n", "[x]\r\n\r\n[y]\r\n")]
    #[case::bom("\u{feff}<dev:A>\n[x]\n", "\u{feff}[x]\n")]
    #[case::absent_name_is_noop("[x]\nregion = y\n", "[x]\nregion = y\n")]
    #[case::managed_name_elsewhere_untouched("<other:A>\n", "<other:A>\n")]
    fn remove_takes_span_and_one_following_blank_line(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(apply(&expand(input), &[remove("dev")]), expand(expected));
    }

    #[rstest]
    #[case::upsert_over_user_section("[dev]\nregion = x\n", upsert("dev", "A"))]
    #[case::upsert_over_spaced_user_section("[ dev ] ; mine\nregion = x\n", upsert("dev", "A"))]
    #[case::remove_of_user_section("[dev]\nregion = x\n", remove("dev"))]
    #[case::marker_only_in_a_comment("[dev]\n# x_rolecall_managed = true\n", upsert("dev", "A"))]
    #[case::marker_in_continuation_line(
        "[dev]\ns3 =\n  x_rolecall_managed = true\n",
        remove("dev")
    )]
    fn edits_of_user_sections_are_refused(#[case] input: &str, #[case] edit: Edit) {
        let err = splice(input, &[edit], path()).unwrap_err();
        assert!(
            matches!(&err, Error::NotOwned { name, .. } if name == "dev"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "section [dev] in {PATH} was not written by rolecall; rename it, or pass --adopt \
                 to let rolecall manage it"
            )
        );
    }

    #[rstest]
    #[case::two_user_sections("[dev]\nregion = x\n[dev]\nregion = y\n", upsert("dev", "A"))]
    #[case::managed_and_user("<dev:A>\n[dev]\nregion = y\n", upsert("dev", "B"))]
    #[case::spelled_differently("<dev:A>\n[ dev ]\nregion = y\n", remove("dev"))]
    #[case::two_managed("<dev:A>\n<dev:B>\n", remove("dev"))]
    #[case::even_with_adopt("[dev]\n[dev]\n", adopt("dev", "A"))]
    fn duplicate_sections_are_refused(#[case] input: &str, #[case] edit: Edit) {
        let err = splice(&expand(input), &[edit], path()).unwrap_err();
        assert!(
            matches!(&err, Error::Duplicate { name, .. } if name == "dev"),
            "{err:?}"
        );
    }

    #[test]
    fn adopt_replaces_user_section_span_and_then_it_is_managed() {
        let input = "[default]\n\n[dev]\nregion = x\n# keep me\n[prod]\n";
        let out = apply(input, &[adopt("dev", "A")]);
        assert_eq!(out, expand("[default]\n\n<dev:A># keep me\n[prod]\n"));
        assert!(inspect(&out).get("dev").is_some_and(|s| s.managed));
        // Managed from now on: no adopt needed, and it can be removed.
        assert_eq!(
            apply(&out, &[upsert("dev", "B")]),
            expand("[default]\n\n<dev:B># keep me\n[prod]\n")
        );
        assert_eq!(
            apply(&out, &[remove("dev")]),
            "[default]\n\n# keep me\n[prod]\n"
        );
    }

    fn scrub(name: &str) -> Edit {
        Edit::Scrub {
            name: name.to_owned(),
        }
    }

    #[rstest]
    #[case::user_section_and_its_separator(
        "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n# prod\n[prod]\n",
        "# prod\n[prod]\n"
    )]
    #[case::managed_section("<default:A>\n[prod]\n", "[prod]\n")]
    #[case::absent_is_noop("[prod]\n", "[prod]\n")]
    fn scrub_removes_the_section_even_when_the_user_wrote_it(
        #[case] input: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(apply(&expand(input), &[scrub("default")]), expand(expected));
    }

    #[test]
    fn scrub_refuses_duplicates() {
        let err = splice("[default]\n[default]\n", &[scrub("default")], path()).unwrap_err();
        assert!(matches!(err, Error::Duplicate { .. }), "{err:?}");
    }

    #[test]
    fn scrub_in_a_batch_acts_like_its_own_step() {
        // Once [a] is gone, the indented [b] heads the file; a section put above it would make
        // configparser read `  [b]` as a continuation of the new section's last key.
        let input = "[a]\nk = v\n\n  [b]\nx = y\n";
        let batch = apply(input, &[scrub("a"), upsert("m", "A"), upsert("n", "B")]);
        let stepwise = apply(
            &apply(input, &[scrub("a")]),
            &[upsert("m", "A"), upsert("n", "B")],
        );
        assert_eq!(batch, stepwise);
        assert_eq!(batch, expand("  [b]\nx = y\n<m:A>\n<n:B>\n"));
    }

    #[test]
    fn adopt_of_absent_or_managed_name_is_a_plain_upsert() {
        assert_eq!(apply("", &[adopt("dev", "A")]), expand("<dev:A>\n"));
        assert_eq!(
            apply(&expand("<dev:A>\n"), &[adopt("dev", "B")]),
            expand("<dev:B>\n")
        );
    }

    #[test]
    fn batch_applies_edits_in_order_in_one_pass() {
        let user = "# mine\n[default]\nregion = x\n";
        // New sections in edit order.
        let out = apply(user, &[upsert("a", "A"), upsert("b", "B")]);
        assert_eq!(
            out,
            format!(
                "{}\n{}\n{user}",
                block("a", "A", "\n"),
                block("b", "B", "\n")
            )
        );
        // Upsert then remove of a new name: nothing happens.
        assert_eq!(apply(user, &[upsert("a", "A"), remove("a")]), user);
        // Several upserts of one name: the last wins.
        assert_eq!(
            apply(user, &[upsert("a", "A"), upsert("a", "B")]),
            expand(&format!("<a:B>\n{user}"))
        );
        // Remove then upsert of a managed name: it moves to the top, like two separate calls.
        let two = apply(user, &[upsert("b", "B"), upsert("a", "A")]);
        let batch = apply(&two, &[remove("b"), upsert("b", "C")]);
        let sequential = apply(&apply(&two, &[remove("b")]), &[upsert("b", "C")]);
        assert_eq!(batch, sequential);
        // Adopt then remove in one batch.
        let adopted = apply(
            "[dev]\nregion = x\n\n[y]\n",
            &[adopt("dev", "A"), remove("dev")],
        );
        assert_eq!(adopted, "[y]\n");
    }

    #[test]
    fn failing_batch_changes_nothing_and_reports_first_error() {
        let input = "[user]\nregion = x\n";
        let err = splice(input, &[upsert("dev", "A"), upsert("user", "B")], path()).unwrap_err();
        assert!(matches!(err, Error::NotOwned { .. }));
    }

    #[rstest]
    #[case::empty("")]
    #[case::leading_space(" dev")]
    #[case::trailing_tab("dev\t")]
    #[case::line_break("dev\n[evil]")]
    #[case::carriage_return("dev\r")]
    #[case::configparser_default_section("DEFAULT")]
    #[case::bom("\u{feff}dev")]
    fn names_that_would_not_read_back_are_refused(#[case] name: &str) {
        let err = splice("", &[upsert(name, "A")], path()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidName { name: n } if n == name),
            "{err:?}"
        );
    }

    #[rstest]
    #[case::odd_but_fine_names("a]b")]
    #[case::leading_bracket("[x")]
    #[case::hash("#dev")]
    #[case::profile_prefix("profile dev")]
    #[case::non_ascii("Köln-admin")]
    fn odd_names_round_trip(#[case] name: &str) {
        let out = apply("[default]\n", &[upsert(name, "A")]);
        assert_eq!(managed_names(&out), [name]);
        assert_eq!(apply(&out, &[remove(name)]), "[default]\n");
    }

    #[test]
    fn values_that_would_corrupt_the_file_are_refused_without_showing_them() {
        let secret = "wJalrXUtnFEMI/K7MDENG\n[default]";
        let mut bad_secret = section("dev", "A");
        bad_secret.credentials.secret_access_key = SecretString::from(secret);
        let mut bad_token = section("dev", "A");
        bad_token.credentials.session_token = Some(SecretString::from("AQoE tail"));
        let mut bad_region = section("dev", "A");
        bad_region.region = Some("eu-west-1\nx = y".into());
        let mut empty_key = section("dev", "A");
        empty_key.credentials.access_key_id = String::new();
        let mut ancient = section("dev", "A");
        ancient.credentials.expiration = Some(UNIX_EPOCH - Duration::from_secs(1));
        let mut far = section("dev", "A");
        far.credentials.expiration = Some(UNIX_EPOCH + Duration::from_secs(RFC3339_LIMIT_SECS));
        for (section, key) in [
            (bad_secret, SECRET_ACCESS_KEY),
            (bad_token, SESSION_TOKEN),
            (bad_region, REGION),
            (empty_key, ACCESS_KEY_ID),
            (ancient, EXPIRATION_KEY),
            (far, EXPIRATION_KEY),
        ] {
            let edit = Edit::Upsert {
                section,
                adopt: false,
            };
            let err = splice("", &[edit], path()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidValue { key: k, .. } if *k == key),
                "{err:?}"
            );
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains("wJalr") && !shown.contains("AQoE"),
                "{shown}"
            );
        }
    }

    #[test]
    fn no_room_for_a_new_section_is_refused_but_remove_still_works() {
        // A key outside any section, no header to insert before, no final newline to append
        // after: anywhere else the new section would swallow that key.
        let input = "# c\norphan = 1";
        let err = splice(input, &[upsert("dev", "A")], path()).unwrap_err();
        assert!(matches!(err, Error::NoRoom { line: 2, .. }), "{err:?}");
        assert_eq!(apply(input, &[remove("dev")]), input);
        let err = splice("  [a]\n  k = v", &[upsert("dev", "A")], path()).unwrap_err();
        assert!(matches!(err, Error::NoRoom { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn region_and_no_expiry_and_no_token_are_written_as_documented() {
        let s = Section {
            name: "ci".into(),
            credentials: Credentials {
                access_key_id: "AKIAEXAMPLE".into(),
                secret_access_key: SecretString::from("s3cr3t"),
                session_token: None,
                expiration: None,
            },
            region: Some("eu-west-1".into()),
        };
        let out = apply(
            "",
            &[Edit::Upsert {
                section: s,
                adopt: false,
            }],
        );
        assert_eq!(
            out,
            "[ci]\nx_rolecall_managed = true\naws_access_key_id = AKIAEXAMPLE\n\
             aws_secret_access_key = s3cr3t\nregion = eu-west-1\n\n"
        );
        let (c, region) = managed_credentials(&out, "ci").unwrap();
        assert_eq!(c.access_key_id, "AKIAEXAMPLE");
        assert!(c.session_token.is_none() && c.expiration.is_none());
        assert_eq!(region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn inspect_lists_every_section_with_expiry_and_key_id() {
        let text = expand(
            "\u{feff}# top\n[default]\naws_access_key_id=AKIAUSER\n\n<dev:A>\n[ spaced ] ; c\n\
             \t[indented]\n[a]b]\n",
        );
        let inv = inspect(&text);
        let names: Vec<&str> = inv.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["default", "dev", "spaced", "indented", "a]b"]);
        let default = inv.get("default").unwrap();
        assert!(!default.managed);
        assert_eq!(default.access_key_id.as_deref(), Some("AKIAUSER"));
        let dev = inv.get("dev").unwrap();
        assert!(dev.managed);
        assert_eq!(dev.expiration, Some(expiration()));
        assert_eq!(dev.access_key_id.as_deref(), Some("ASIAAEXAMPLE"));
        let debug = format!("{dev:?}");
        assert!(
            debug.contains("…MPLE") && !debug.contains("ASIAAEXAMPLE"),
            "{debug}"
        );
    }

    #[test]
    fn managed_credentials_reads_back_what_was_written() {
        let mut s = section("dev", "A");
        s.region = Some("eu-west-1".into());
        let text = apply(
            "[default]\n",
            &[Edit::Upsert {
                section: s,
                adopt: false,
            }],
        );
        let (c, region) = managed_credentials(&text, "dev").unwrap();
        assert_eq!(c.access_key_id, "ASIAAEXAMPLE");
        assert_eq!(c.secret_access_key.expose_secret(), "secret/A+KEY");
        assert_eq!(
            c.session_token.as_ref().map(|t| t.expose_secret()),
            Some("tokenA//===")
        );
        assert_eq!(c.expiration, Some(expiration()));
        assert_eq!(region.as_deref(), Some("eu-west-1"));
    }

    #[rstest]
    #[case::absent("[x]\n")]
    #[case::unmanaged("[dev]\naws_access_key_id = A\naws_secret_access_key = B\n")]
    #[case::duplicate("<dev:A>\n<dev:B>\n")]
    #[case::no_secret("[dev]\nx_rolecall_managed = true\naws_access_key_id = A\n")]
    #[case::bad_expiry(
        "[dev]\nx_rolecall_managed = true\nx_rolecall_expiration = soon\naws_access_key_id = A\n\
         aws_secret_access_key = B\n"
    )]
    fn managed_credentials_is_none_unless_a_usable_managed_section(#[case] input: &str) {
        assert!(managed_credentials(&expand(input), "dev").is_none());
    }

    #[test]
    fn static_key_reads_user_profile_key_and_region() {
        // Upper-case key, `:` delimiter, odd spacing; the indented line continues `region`.
        let text = "[default]\nAWS_ACCESS_KEY_ID=AKIAUSER\naws_secret_access_key :  abc/def \n\
                    region = eu-west-1\n    aws_access_key_id = AKIANOTME\n";
        let c = static_key(text, "default", path()).unwrap();
        assert_eq!(c.access_key_id, "AKIAUSER");
        assert_eq!(c.secret_access_key.expose_secret(), "abc/def");
        assert!(c.session_token.is_none() && c.expiration.is_none());
        assert_eq!(region(text, "default").as_deref(), Some("eu-west-1"));
    }

    #[rstest]
    #[case::missing("[x]\n", StaticKeyProblem::Missing)]
    #[case::no_secret("[dev]\naws_access_key_id = A\n", StaticKeyProblem::NoKey)]
    #[case::empty_secret(
        "[dev]\naws_access_key_id = A\naws_secret_access_key =\n",
        StaticKeyProblem::NoKey
    )]
    #[case::temporary(
        "[dev]\naws_access_key_id = A\naws_secret_access_key = B\naws_session_token = C\n",
        StaticKeyProblem::Temporary
    )]
    #[case::managed("<dev:A>", StaticKeyProblem::Managed)]
    fn static_key_explains_why_there_is_none(#[case] input: &str, #[case] want: StaticKeyProblem) {
        let err = static_key(&expand(input), "dev", path()).unwrap_err();
        assert!(
            matches!(err, Error::NoStaticKey { reason, .. } if reason == want),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("profile [dev] in {PATH} ")),
            "{err}"
        );
        assert!(!err.to_string().contains("secret/A"), "{err}");
    }

    #[test]
    fn error_messages_are_lower_case_and_never_end_with_a_period() {
        let io = Error::Io {
            op: IoOp::Rename,
            path: PathBuf::from(PATH),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let errors = [
            io,
            Error::NotUtf8 {
                path: PathBuf::from(PATH),
            },
            Error::ReadOnly {
                path: PathBuf::from(PATH),
            },
            Error::NoRoom {
                path: PathBuf::from(PATH),
                line: 3,
            },
            Error::Duplicate {
                name: "dev".into(),
                path: PathBuf::from(PATH),
            },
        ];
        for err in errors {
            let msg = err.to_string();
            assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
            assert!(msg.contains(PATH), "{msg}");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Property tests: round trips over generated user files.

    /// Names the op sequences use; user files may use some of them too, and then the ops skip
    /// those names.
    const OP_NAMES: [&str; 4] = ["m1", "m2", "dev-admin", "prod.ro"];

    fn text_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 _./+=:#;\\[\\]äöüß€☕-]{0,12}"
    }

    fn indent() -> impl Strategy<Value = String> {
        "[ \t]{0,2}"
    }

    fn comment_line() -> impl Strategy<Value = String> {
        (indent(), prop_oneof![Just('#'), Just(';')], text_strategy())
            .prop_map(|(i, c, t)| format!("{i}{c}{t}"))
    }

    fn blank_line() -> impl Strategy<Value = String> {
        "[ \t]{0,2}"
    }

    fn key_line() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("aws_access_key_id".to_owned()),
            Just("aws_secret_access_key".to_owned()),
            Just("region".to_owned()),
            Just("output".to_owned()),
            Just("schlüssel".to_owned()),
            "[a-z_]{1,10}",
        ];
        let delimiter = prop_oneof![
            Just("=".to_owned()),
            Just(" = ".to_owned()),
            Just("  =  ".to_owned()),
            Just(":".to_owned()),
            Just(" =".to_owned()),
        ];
        (indent(), key, delimiter, text_strategy(), "[ \t]{0,2}")
            .prop_map(|(i, k, d, v, trail)| format!("{i}{k}{d}{v}{trail}"))
    }

    fn header_line() -> impl Strategy<Value = (String, String)> {
        let name = prop_oneof![
            Just("default"),
            Just("prod"),
            Just("köln"),
            Just("team ro"),
            Just("m1"),
            Just("dev-admin"),
        ];
        (name, 0..5u8).prop_map(|(n, style)| {
            let line = match style {
                0 => format!("[{n}]"),
                1 => format!("[ {n} ]"),
                2 => format!("  [{n}]"),
                3 => format!("[{n}] ; note"),
                _ => format!("[profile {n}]"),
            };
            let name = if style == 4 {
                format!("profile {n}")
            } else {
                n.to_owned()
            };
            (line, name)
        })
    }

    fn body_line() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => key_line(),
            1 => comment_line(),
            1 => blank_line(),
            1 => Just("s3 =\n  max_concurrent_requests = 10".to_owned()),
        ]
    }

    #[derive(Debug, Clone)]
    struct UserFile {
        text: String,
        names: Vec<String>,
    }

    fn user_file() -> impl Strategy<Value = UserFile> {
        let preamble = prop::collection::vec(
            prop_oneof![3 => comment_line(), 3 => blank_line(), 1 => key_line()],
            0..3,
        );
        let sections = prop::collection::vec(
            (header_line(), prop::collection::vec(body_line(), 0..4)),
            0..5,
        );
        (
            preamble,
            sections,
            0..3u8,
            any::<bool>(),
            prop::bool::weighted(0.15),
        )
            .prop_map(|(preamble, sections, eol_style, final_newline, bom)| {
                let mut lines = preamble;
                // A user file with a section name twice cannot be read by configparser; keep
                // each name once so the op names' presence is well defined.
                let mut names = Vec::new();
                for ((header, name), body) in sections {
                    if names.contains(&name) {
                        continue;
                    }
                    names.push(name);
                    lines.push(header);
                    lines.extend(body);
                }
                let mut text = String::new();
                if bom {
                    text.push(BOM);
                }
                for (i, line) in lines.iter().enumerate() {
                    let crlf = match eol_style {
                        0 => false,
                        1 => true,
                        _ => i % 3 == 1, // mixed
                    };
                    text.push_str(&line.replace('\n', if crlf { "\r\n" } else { "\n" }));
                    text.push_str(if crlf { "\r\n" } else { "\n" });
                }
                if !final_newline {
                    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
                    text = trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned();
                }
                UserFile { text, names }
            })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert { name: usize, tag: u8, region: bool },
        Remove { name: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0..OP_NAMES.len(), 0..4u8, any::<bool>())
                .prop_map(|(name, tag, region)| Op::Upsert { name, tag, region }),
            1 => (0..OP_NAMES.len()).prop_map(|name| Op::Remove { name }),
        ]
    }

    fn op_edit(op: &Op) -> Edit {
        match *op {
            Op::Upsert { name, tag, region } => {
                let mut s = section(OP_NAMES[name], &tag.to_string());
                s.region = region.then(|| format!("eu-west-{tag}"));
                Edit::Upsert {
                    section: s,
                    adopt: false,
                }
            }
            Op::Remove { name } => remove(OP_NAMES[name]),
        }
    }

    /// rust-ini, standing in for configparser. Its file loader skips a BOM but its string
    /// loader does not, so skip it here as reading the file would.
    fn ini_load(text: &str) -> Result<ini::Ini, ini::ParseError> {
        ini::Ini::load_from_str_noescape(text.strip_prefix(BOM).unwrap_or(text))
    }

    /// Whether rust-ini reads the file the way configparser does. It does not for an indented
    /// comment: it reads `  # c` as the start of a key that runs on to the next `=`.
    fn ini_comparable(text: &str) -> bool {
        !text
            .strip_prefix(BOM)
            .unwrap_or(text)
            .lines()
            .any(|line| line.starts_with([' ', '\t']) && line.trim_start().starts_with(['#', ';']))
    }

    /// Section name to (key to value), as a reader of the file sees it.
    type Profiles = BTreeMap<String, BTreeMap<String, String>>;

    /// Python's `configparser.RawConfigParser` (strict, as botocore's `raw_config_parse`
    /// builds it) reading a file: comments only on their own line; `=` or `:`; option names
    /// lower-cased; a line indented deeper than the line that started the current option
    /// continues its value, even after blank lines; trailing blank lines of a value dropped;
    /// section names not trimmed; a BOM is not skipped.
    fn configparser(text: &str) -> Result<Profiles, String> {
        /// A section's name and its options, each with the lines of its value.
        type Sections = Vec<(String, Vec<(String, Vec<String>)>)>;
        let mut sections: Sections = Vec::new();
        let mut has_option = false;
        let mut indent_level = 0;
        let mut pieces: Vec<&str> = text.split('\n').collect();
        if text.ends_with('\n') {
            pieces.pop();
        }
        for (n, raw) in pieces.into_iter().enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let stripped = line.trim();
            let comment = stripped.starts_with(['#', ';']);
            if comment || stripped.is_empty() {
                if !comment && has_option {
                    let option = sections.last_mut().unwrap().1.last_mut().unwrap();
                    option.1.push(String::new());
                }
                continue;
            }
            let indent = line.chars().take_while(|c| c.is_whitespace()).count();
            if has_option && indent > indent_level {
                let option = sections.last_mut().unwrap().1.last_mut().unwrap();
                option.1.push(stripped.to_owned());
                continue;
            }
            indent_level = indent;
            let header = stripped
                .rfind(']')
                .filter(|&close| stripped.starts_with('[') && close >= 2)
                .map(|close| &stripped[1..close]);
            if let Some(name) = header {
                if sections.iter().any(|(s, _)| s == name) {
                    return Err(format!("line {}: duplicate section {name:?}", n + 1));
                }
                sections.push((name.to_owned(), Vec::new()));
                has_option = false;
            } else {
                let Some((_, options)) = sections.last_mut() else {
                    return Err(format!("line {}: missing section header", n + 1));
                };
                let split = stripped
                    .find(['=', ':'])
                    .ok_or(format!("line {}: no '='", n + 1))?;
                let key = stripped[..split].trim_end().to_lowercase();
                if key.is_empty() || options.iter().any(|(k, _)| *k == key) {
                    return Err(format!("line {}: empty or duplicate option", n + 1));
                }
                options.push((key, vec![stripped[split + 1..].trim().to_owned()]));
                has_option = true;
            }
        }
        Ok(sections
            .into_iter()
            .map(|(name, options)| {
                let options = options
                    .into_iter()
                    .map(|(k, v)| (k, v.join("\n").trim_end().to_owned()))
                    .collect();
                (name, options)
            })
            .collect())
    }

    /// The Rust SDK's profile parser (aws-runtime `env_config/parse.rs`, then the trimming of
    /// names): a header starts its line; any line starting with a space or tab continues the
    /// value before it (or is an error); comments start their line, or follow whitespace in a
    /// value; only `=` separates; duplicate sections merge.
    fn rust_sdk(text: &str) -> Result<Profiles, String> {
        const WS: &[char] = &[' ', '\t'];
        fn prepare(line: &str, comment_needs_space: bool) -> &str {
            let line = line.trim_matches(WS);
            let mut prev_space = false;
            for (i, c) in line.char_indices() {
                if (c == '#' || c == ';') && (prev_space || !comment_needs_space) {
                    return line[..i].trim_matches(WS);
                }
                prev_space = c.is_whitespace();
            }
            line
        }
        let mut out = Profiles::new();
        let mut profile: Option<String> = None;
        let mut property: Option<(String, bool)> = None;
        for (n, line) in text.lines().enumerate() {
            let err = |what: &str| Err(format!("line {}: {what}", n + 1));
            if line.trim_matches(WS).is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            if line.starts_with('[') {
                let Some(name) = prepare(line, false)
                    .strip_prefix('[')
                    .and_then(|l| l.strip_suffix(']'))
                else {
                    return err("bad profile line");
                };
                let name = name.trim_matches(WS).to_owned();
                out.entry(name.clone()).or_default();
                profile = Some(name);
                property = None;
            } else if line.starts_with(WS) {
                let (Some(p), Some((key, sub))) = (&profile, &property) else {
                    return err("continuation without a property");
                };
                let cont = prepare(line, true);
                if *sub
                    && !cont.is_empty()
                    && cont
                        .split_once('=')
                        .is_none_or(|(k, _)| k.trim_matches(WS).is_empty())
                {
                    return err("bad sub-property");
                }
                let value = out.get_mut(p).unwrap().get_mut(key).unwrap();
                value.push('\n');
                value.push_str(line.trim_matches(WS));
            } else {
                let Some(p) = &profile else {
                    return err("property outside a profile");
                };
                let Some((k, v)) = prepare(line, true).split_once('=') else {
                    return err("no '='");
                };
                let k = k.trim_matches(WS).to_ascii_lowercase();
                let v = v.trim_matches(WS);
                if k.is_empty() {
                    return err("no key");
                }
                out.get_mut(p).unwrap().insert(k.clone(), v.to_owned());
                property = Some((k, v.is_empty()));
            }
        }
        Ok(out)
    }

    /// What a reader must see in a managed section written by `op_edit`.
    fn managed_profile(tag: u8, region: bool) -> BTreeMap<String, String> {
        let mut p: BTreeMap<String, String> = [
            ("x_rolecall_managed", "true".to_owned()),
            ("x_rolecall_expiration", EXP_TEXT.to_owned()),
            ("aws_access_key_id", format!("ASIA{tag}EXAMPLE")),
            ("aws_secret_access_key", format!("secret/{tag}+KEY")),
            ("aws_session_token", format!("token{tag}//===")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if region {
            p.insert("region".into(), format!("eu-west-{tag}"));
        }
        p
    }

    /// Whenever a reader could read the user's file, it reads the new file as exactly the
    /// user's profiles plus the managed ones: nothing of the user's changed meaning, and every
    /// managed section reads back whole.
    fn check_reader(
        reader: fn(&str) -> Result<Profiles, String>,
        user: &str,
        text: &str,
        model: &BTreeMap<&str, (u8, bool)>,
    ) -> Result<(), TestCaseError> {
        if let Ok(mut expected) = reader(user) {
            for (name, (tag, region)) in model {
                expected.insert((*name).to_owned(), managed_profile(*tag, *region));
            }
            prop_assert_eq!(reader(text), Ok(expected), "{:?}", text);
        }
        Ok(())
    }

    /// Checks everything the file must satisfy given the model of managed sections.
    fn check_state(
        user: &UserFile,
        text: &str,
        model: &BTreeMap<&str, (u8, bool)>,
        ini_before: bool,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(&strip_managed(text), &user.text);
        let inv = inspect(text);
        let managed: HashSet<&str> = inv.managed().map(|s| s.name.as_str()).collect();
        let expected: HashSet<&str> = model.keys().copied().collect();
        prop_assert_eq!(managed, expected);
        let unmanaged: Vec<&str> = inv
            .sections
            .iter()
            .filter(|s| !s.managed)
            .map(|s| s.name.as_str())
            .collect();
        prop_assert_eq!(
            unmanaged,
            user.names.iter().map(String::as_str).collect::<Vec<_>>()
        );
        for (name, (tag, region)) in model {
            let (c, r) = managed_credentials(text, name).expect("managed section reads back");
            prop_assert_eq!(c.access_key_id, format!("ASIA{tag}EXAMPLE"));
            prop_assert_eq!(r, region.then(|| format!("eu-west-{tag}")));
        }
        check_reader(configparser, &user.text, text, model)?;
        check_reader(rust_sdk, &user.text, text, model)?;
        if ini_before {
            let parsed = ini_load(text);
            prop_assert!(
                parsed.is_ok(),
                "rust-ini could parse the input but not {:?}",
                text
            );
            if let Ok(ini) = parsed {
                for (name, (tag, _)) in model {
                    let id = ini.get_from(Some(*name), "aws_access_key_id");
                    let want = format!("ASIA{tag}EXAMPLE");
                    prop_assert_eq!(id, Some(want.as_str()));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_op_sequence_leaves_user_bytes_intact(user in user_file(), ops in prop::collection::vec(op(), 1..12)) {
            let ini_before = ini_comparable(&user.text) && ini_load(&user.text).is_ok();
            // The top is taken by a stray key or an indented line, no header starts a line, and
            // there is no final newline to append after.
            let no_room = !user.text.is_empty()
                && !user.text.ends_with('\n')
                && !user.text.lines().any(|l| l.trim_start_matches(BOM).starts_with('['));
            let ops: Vec<Op> = ops
                .into_iter()
                .filter(|op| {
                    let (Op::Upsert { name, .. } | Op::Remove { name }) = op;
                    !user.names.iter().any(|n| n == OP_NAMES[*name])
                })
                .collect();
            let mut text = user.text.clone();
            let mut model: BTreeMap<&str, (u8, bool)> = BTreeMap::new();
            for op in &ops {
                match splice(&text, &[op_edit(op)], path()) {
                    Ok(out) => text = out,
                    Err(Error::NoRoom { .. }) => {
                        // Only when there never was anywhere to put a section.
                        prop_assert!(no_room && model.is_empty());
                        continue;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
                }
                match *op {
                    Op::Upsert { name, tag, region } => { model.insert(OP_NAMES[name], (tag, region)); }
                    Op::Remove { name } => { model.remove(OP_NAMES[name]); }
                }
                check_state(&user, &text, &model, ini_before)?;
            }

            // The same ops in one batch end in the same managed state.
            let edits: Vec<Edit> = ops.iter().map(op_edit).collect();
            match splice(&user.text, &edits, path()) {
                Ok(batch) => check_state(&user, &batch, &model, ini_before)?,
                Err(Error::NoRoom { .. }) => prop_assert!(no_room),
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            }
        }

        #[test]
        fn edits_of_user_section_names_are_refused_and_change_nothing(user in user_file(), pick in any::<prop::sample::Index>(), up in any::<bool>()) {
            prop_assume!(!user.names.is_empty());
            let name = pick.get(&user.names);
            let edit = if up { upsert(name, "A") } else { remove(name) };
            let err = splice(&user.text, &[edit], path());
            prop_assert!(matches!(err, Err(Error::NotOwned { .. })), "{:?}", err);
        }
    }

    // -----------------------------------------------------------------------------------------
    // The file: locking, atomic writes, permissions, symlinks.

    fn file_in(dir: &tempfile::TempDir) -> CredentialsFile {
        CredentialsFile::new(dir.path().join("credentials"))
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn read_of_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(file_in(&dir).read().unwrap(), "");
    }

    #[test]
    fn read_of_non_utf8_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), b"[x]\nregion = \xff\n").unwrap();
        assert!(matches!(file.read(), Err(Error::NotUtf8 { .. })));
        assert!(matches!(
            file.apply(&[upsert("dev", "A")]),
            Err(Error::NotUtf8 { .. })
        ));
        assert_eq!(fs::read(file.path()).unwrap(), b"[x]\nregion = \xff\n");
    }

    #[test]
    fn apply_writes_and_reports_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "# mine\r\n[default]\r\nregion = x").unwrap();
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        assert_eq!(
            file.read().unwrap(),
            expand("<dev:A:crlf>\r\n# mine\r\n[default]\r\nregion = x")
        );
        assert!(temp_files(dir.path()).is_empty());
        assert!(file.apply(&[remove("dev")]).unwrap());
        assert_eq!(file.read().unwrap(), "# mine\r\n[default]\r\nregion = x");
    }

    #[cfg(unix)]
    #[test]
    fn new_file_is_0600_in_new_0700_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(dir.path().join("home/.aws/credentials"));
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(file.path()), 0o600);
        assert_eq!(mode(&dir.path().join("home/.aws")), 0o700);
        assert_eq!(
            mode(&dir.path().join("home/.aws/.credentials.rolecall.lock")),
            0o600
        );
    }

    #[cfg(unix)]
    #[test]
    fn existing_file_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[default]\n").unwrap();
        fs::set_permissions(file.path(), fs::Permissions::from_mode(0o640)).unwrap();
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        assert_eq!(
            fs::metadata(file.path()).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn remove_from_missing_file_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(dir.path().join(".aws/credentials"));
        assert!(!file.apply(&[remove("dev")]).unwrap());
        assert!(!dir.path().join(".aws").exists());
    }

    #[cfg(unix)]
    #[test]
    fn symlink_is_kept_and_its_target_updated() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("dotfiles");
        fs::create_dir(&real_dir).unwrap();
        let real = real_dir.join("aws-credentials");
        fs::write(&real, "[default]\n").unwrap();
        fs::create_dir(dir.path().join(".aws")).unwrap();
        let link = dir.path().join(".aws/credentials");
        std::os::unix::fs::symlink("../dotfiles/aws-credentials", &link).unwrap();

        let file = CredentialsFile::new(link.clone());
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(&real).unwrap(),
            expand("<dev:A>\n[default]\n")
        );
        assert!(real_dir.join(".aws-credentials.rolecall.lock").exists());
        assert!(!dir.path().join(".aws/.credentials.rolecall.lock").exists());
    }

    #[cfg(unix)]
    #[test]
    fn dangling_symlink_gets_its_target_created() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("credentials");
        std::os::unix::fs::symlink("store/creds", &link).unwrap();
        let file = CredentialsFile::new(link.clone());
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("store/creds")).unwrap(),
            expand("<dev:A>\n")
        );
    }

    #[cfg(unix)]
    #[test]
    fn unchanged_content_is_not_written() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        file.apply(&[upsert("dev", "A")]).unwrap();
        let before = fs::metadata(file.path()).unwrap();
        assert!(!file.apply(&[upsert("dev", "A")]).unwrap());
        assert!(!file.apply(&[remove("absent")]).unwrap());
        let after = fs::metadata(file.path()).unwrap();
        assert_eq!(before.ino(), after.ino());
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());
    }

    #[test]
    fn stale_temp_files_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[default]\n").unwrap();
        let stale = dir.path().join(".credentials.rolecall.Ab12Cd.tmp");
        fs::write(&stale, "[half").unwrap();
        let foreign = dir.path().join(".config.rolecall.Ab12Cd.tmp");
        fs::write(&foreign, "").unwrap();
        file.apply(&[upsert("dev", "A")]).unwrap();
        assert!(!stale.exists());
        assert!(foreign.exists());
        assert_eq!(file.read().unwrap(), expand("<dev:A>\n[default]\n"));
    }

    #[test]
    fn read_only_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[default]\n").unwrap();
        let mut perms = fs::metadata(file.path()).unwrap().permissions();
        perms.set_readonly(true);
        fs::set_permissions(file.path(), perms).unwrap();
        let err = file.apply(&[upsert("dev", "A")]).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
        assert!(err.to_string().contains("chmod u+w"), "{err}");
        assert_eq!(file.read().unwrap(), "[default]\n");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn unusable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("not-a-dir"), "").unwrap();
        let file = CredentialsFile::new(dir.path().join("not-a-dir/credentials"));
        let err = file.apply(&[upsert("dev", "A")]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Io {
                    op: IoOp::CreateDir,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("could not create directory ") && msg.contains("not-a-dir"),
            "{msg}"
        );
    }

    #[test]
    fn refused_edit_leaves_file_and_directory_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[dev]\nregion = x\n").unwrap();
        assert!(matches!(
            file.apply(&[upsert("dev", "A")]),
            Err(Error::NotOwned { .. })
        ));
        assert_eq!(file.read().unwrap(), "[dev]\nregion = x\n");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn concurrent_applies_lose_no_update() {
        const THREADS: usize = 8;
        const ROUNDS: usize = 20;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        fs::write(&path, "# user\n[default]\nregion = x\n").unwrap();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let file = CredentialsFile::new(path.clone());
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        let tag = format!("{t}x{round}");
                        file.apply(&[upsert(&format!("p{t}"), &tag)]).unwrap();
                    }
                });
            }
        });
        let text = fs::read_to_string(&path).unwrap();
        for t in 0..THREADS {
            let (c, _) = managed_credentials(&text, &format!("p{t}")).unwrap();
            assert_eq!(c.access_key_id, format!("ASIA{t}x{}EXAMPLE", ROUNDS - 1));
        }
        assert_eq!(strip_managed(&text), "# user\n[default]\nregion = x\n");
        assert!(temp_files(dir.path()).is_empty());
    }
}
