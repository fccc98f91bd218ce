//! Splicing: writes managed blocks and applies a batch of edits to the text in one pass,
//! keeping every byte outside the managed sections.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use super::scan::{Doc, Kind, Span, classify, fields, fingerprint, indent_of, lines_from};
use super::{
    ACCESS_KEY_ID, BOM, Block, COMMENTED_OUT_PREFIX, CONFIGPARSER_DEFAULT_SECTION, EXPIRATION_KEY,
    Edit, Error, FINGERPRINT_KEY, FileKind, GENERATED_KEY, MANAGED_KEY, REGION, ROLE_KEY,
    SECRET_ACCESS_KEY, SESSION_TOKEN, SOURCE_KEY, Section, is_rfc3339_range,
};
use zeroize::Zeroizing;

use crate::credentials::ExposeSecret;

/// A value can be written when it reads back identical: not empty, no whitespace (values are
/// trimmed, and the Rust SDK cuts ` #…` as a comment) and no control characters (a line break
/// would start a new key or section). No AWS key, token or region has any of those.
fn is_writable_value(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The part of [`Block`] the splicer relies on; sealed, so only this module's blocks exist.
pub trait Sealed {
    /// Checks that every value reads back identical (the name is checked by the splicer).
    fn validate_values(&self) -> Result<(), Error>;
    /// At least the length of what [`write_body`](Self::write_body) appends.
    fn body_len(&self) -> usize;
    /// Appends the lines between the marker line and the fingerprint line, each *starting*
    /// with `eol`.
    fn write_body(&self, out: &mut String, eol: &str);
}

/// Header, marker, fingerprint and nine CRLF line endings, with room to spare (about 150
/// bytes).
const FRAME_LEN: usize = 256;

impl Block for Section {
    const KIND: FileKind = FileKind::Credentials;

    fn name(&self) -> &str {
        &self.name
    }
}

impl Sealed for Section {
    fn validate_values(&self) -> Result<(), Error> {
        let name = &self.name;
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
        if let Some(p) = &self.provenance {
            if p.role.as_deref().is_some_and(|r| !is_writable_value(r)) {
                return Err(invalid(ROLE_KEY));
            }
            if !is_writable_value(&p.source) {
                return Err(invalid(SOURCE_KEY));
            }
            if !is_rfc3339_range(p.generated) {
                return Err(invalid(GENERATED_KEY));
            }
        }
        Ok(())
    }

    fn body_len(&self) -> usize {
        let c = &self.credentials;
        c.access_key_id.len()
            + c.secret_access_key.expose_secret().len()
            + c.session_token
                .as_ref()
                .map_or(0, |t| t.expose_secret().len())
            + self.region.as_ref().map_or(0, String::len)
            + self.provenance.as_ref().map_or(0, |p| {
                // three keys, ` = `, a time and line endings: well under 128 bytes
                p.role.as_ref().map_or(0, String::len) + p.source.len() + 128
            })
    }

    fn write_body(&self, out: &mut String, eol: &str) {
        let c = &self.credentials;
        // Writing into a String cannot fail, and `validate_values` checked the expiration and
        // the generation time are in the range humantime formats.
        if let Some(p) = &self.provenance {
            if let Some(role) = &p.role {
                let _ = write!(out, "{eol}{ROLE_KEY} = {role}");
            }
            let _ = write!(out, "{eol}{SOURCE_KEY} = {}", p.source);
            let _ = write!(
                out,
                "{eol}{GENERATED_KEY} = {}",
                humantime::format_rfc3339_seconds(p.generated)
            );
        }
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
    }
}

/// A managed profile of the config file (`~/.aws/config`), written as `[profile NAME]` (or
/// `[default]`): the settings rolecall gives a profile there. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSection {
    /// The profile name.
    pub name: String,
    /// Written as `region = …` when set.
    pub region: Option<String>,
    /// Written as `credential_process = …` when set: a command line, already quoted (see
    /// `rolecall setup credential-process`).
    pub credential_process: Option<String>,
}

/// The key of the command the AWS tools run for a profile's credentials.
pub const CREDENTIAL_PROCESS_KEY: &str = "credential_process";

/// A command line can be written when it reads back identical in botocore and the Rust SDK:
/// not empty, no surrounding whitespace (values are trimmed), no control characters (a line
/// break would start a new key), and no `#` or `;` after whitespace (the Rust SDK cuts the
/// value there as a comment).
fn is_writable_command(value: &str) -> bool {
    !value.is_empty()
        && value.trim() == value
        && !value.chars().any(char::is_control)
        && !value
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_whitespace() && matches!(w[1], b'#' | b';'))
}

impl Block for ProfileSection {
    const KIND: FileKind = FileKind::Config;

    fn name(&self) -> &str {
        &self.name
    }
}

impl Sealed for ProfileSection {
    fn validate_values(&self) -> Result<(), Error> {
        let invalid = |key: &'static str| Error::InvalidValue {
            name: self.name.clone(),
            key,
        };
        if let Some(region) = &self.region
            && !is_writable_value(region)
        {
            return Err(invalid(REGION));
        }
        if let Some(command) = &self.credential_process
            && !is_writable_command(command)
        {
            return Err(invalid(CREDENTIAL_PROCESS_KEY));
        }
        Ok(())
    }

    fn body_len(&self) -> usize {
        self.region.as_ref().map_or(0, String::len)
            + self.credential_process.as_ref().map_or(0, String::len)
    }

    fn write_body(&self, out: &mut String, eol: &str) {
        // Writing into a String cannot fail.
        if let Some(region) = &self.region {
            let _ = write!(out, "{eol}{REGION} = {region}");
        }
        if let Some(command) = &self.credential_process {
            let _ = write!(out, "{eol}{CREDENTIAL_PROCESS_KEY} = {command}");
        }
    }
}

/// Checks that the name, written as a header of that file kind, reads back as the same name.
fn validate_name(kind: FileKind, name: &str) -> Result<(), Error> {
    let basic = !name.is_empty()
        && name.trim() == name
        && !name.chars().any(char::is_control)
        && !name.starts_with(BOM)
        && name != CONFIGPARSER_DEFAULT_SECTION;
    match kind {
        FileKind::Credentials if basic => Ok(()),
        FileKind::Credentials => Err(Error::InvalidName {
            name: name.to_owned(),
        }),
        // botocore splits `profile NAME` with shlex: whitespace, quotes and backslashes in
        // the name would read back as another name.
        FileKind::Config
            if basic
                && !name
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\')) =>
        {
            Ok(())
        }
        FileKind::Config => Err(Error::InvalidProfileName {
            name: name.to_owned(),
        }),
    }
}

/// Appends the managed block of `section`, in the header form of its file kind. Every line
/// ends in `eol` except the last when `final_eol` is false (replacing a span that ended the
/// file without a newline).
fn write_block<B: Block>(section: &B, out: &mut String, eol: &str, final_eol: bool) {
    let start = out.len();
    let name = section.name();
    // Writing into a String cannot fail.
    let _ = match B::KIND {
        FileKind::Config if name != "default" => write!(out, "[profile {name}]{eol}"),
        _ => write!(out, "[{name}]{eol}"),
    };
    let body = out.len();
    let _ = write!(out, "{MANAGED_KEY} = true");
    section.write_body(out, eol);
    // Last, so it covers every line above; the scanner reads it back the same way.
    let fingerprint = fingerprint(&out[start..], body - start, out.len() - start);
    let _ = write!(out, "{eol}{FINGERPRINT_KEY} = {fingerprint}");
    if final_eol {
        out.push_str(eol);
    }
}

/// Appends the section `span` of `text` with the lines of `keys` (and their continuation
/// lines) turned into comments: [`COMMENTED_OUT_PREFIX`], then the line as it was. Which line
/// is a key and which continues one follows `scan::options`, as configparser reads them. A
/// comment line leaves configparser's notion of the current key and its indentation as they
/// were, and the line after a commented-out key is indented no deeper than that key (else it
/// would be its continuation, commented too), so no other line reads differently.
fn comment_out(text: &str, span: &Span<'_>, keys: &[String], out: &mut String) {
    out.push_str(&text[span.start..span.body]);
    comment_out_body(text, span, keys, out);
}

/// [`comment_out`] with the marker line right below the header ([`Edit::TakeOver`]): the
/// section is rolecall's from then on.
fn take_over(text: &str, span: &Span<'_>, keys: &[String], eol: &str, out: &mut String) {
    out.push_str(&text[span.start..span.body]);
    if !text[..span.body].ends_with('\n') {
        out.push_str(eol);
    }
    out.push_str(MANAGED_KEY);
    out.push_str(" = true");
    if span.end > span.body || text[..span.body].ends_with('\n') {
        out.push_str(eol);
    }
    comment_out_body(text, span, keys, out);
}

/// The body of `span` with the lines of `keys` turned into comments (see [`comment_out`]).
fn comment_out_body(text: &str, span: &Span<'_>, keys: &[String], out: &mut String) {
    let mut key_indent: Option<usize> = None;
    let mut commenting = false;
    for line in lines_from(&text[..span.end], span.body) {
        if matches!(classify(line.content), Kind::Key) {
            let indent = indent_of(line.content);
            if key_indent.is_none_or(|k| indent <= k) {
                key_indent = Some(indent);
                let content = line.content.trim();
                let key = content
                    .find(['=', ':'])
                    .map_or(content, |split| content[..split].trim());
                commenting = keys.iter().any(|k| k.eq_ignore_ascii_case(key));
            }
            if commenting {
                out.push_str(COMMENTED_OUT_PREFIX);
            }
        }
        out.push_str(&text[line.start..line.end]);
    }
}

/// At least the length of the block [`write_block`] appends, with its separator line.
fn block_len<B: Block>(section: &B) -> usize {
    section.name().len() + section.body_len() + FRAME_LEN
}

/// The access key id of a section that holds a long-lived key (see [`is_long_lived`]).
fn long_lived_key<'t>(text: &'t str, span: &Span<'_>) -> Option<&'t str> {
    let f = fields(text, span);
    let has_token = f.session_token.is_some() || f.security_token.is_some();
    match (f.access_key_id, f.secret_access_key) {
        (Some(id), Some(_)) if is_long_lived(id, has_token) => Some(id),
        _ => None,
    }
}

/// Whether an access key id (with a secret) is a long-lived key: AWS starts those with
/// `AKIA` (then a session token beside it is a stale leftover, as `aws configure set` leaves
/// one when it puts a key into a section rolecall wrote) and temporary ones with `ASIA`; any
/// other id counts as long-lived when no session token goes with it.
pub(super) fn is_long_lived(key_id: &str, has_token: bool) -> bool {
    key_id.starts_with("AKIA") || (!has_token && !key_id.starts_with("ASIA"))
}

/// The last 4 characters of an access key id, the most any message shows of it.
fn tail(key_id: &str) -> String {
    let n = key_id.chars().count();
    key_id.chars().skip(n.saturating_sub(4)).collect()
}

/// What happens to one name over a batch of edits.
struct Plan<'e, B> {
    /// Index of the section of that name in the original text.
    original: Option<usize>,
    /// How many sections of that name the original text has.
    count: usize,
    fate: Fate<'e, B>,
    /// A new block at the top, with the index of the edit that inserted it (for ordering).
    inserted: Option<(usize, &'e B)>,
}

impl<B> Default for Plan<'_, B> {
    fn default() -> Self {
        Plan {
            original: None,
            count: 0,
            fate: Fate::Keep,
            inserted: None,
        }
    }
}

enum Fate<'e, B> {
    Keep,
    Replace(&'e B),
    Remove,
    /// The user's section stays, with these keys' lines commented out.
    CommentOut(&'e [String]),
    /// The user's section becomes rolecall's, with these keys' lines commented out.
    TakeOver(&'e [String]),
}

impl<B> Clone for Fate<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for Fate<'_, B> {}

/// Applies `edits` in order to the text of a credentials file and returns the new text. Pure:
/// `path` only names the file in errors.
///
/// All edits are applied in one pass over the text, and either all apply or none (the first
/// error is returned). Upserting replaces a managed section in place, or inserts a new one at
/// the top of the file (new sections of one batch in edit order); removing a name that is not
/// present is a no-op. Upserting or removing a section the user wrote is
/// [`Error::NotOwned`], unless an upsert has `adopt` (or it is an [`Edit::Scrub`]); any edit of
/// a name that has several sections is [`Error::Duplicate`].
///
/// The result holds secrets, so it is wiped when dropped; so are the texts between the steps,
/// and the output buffer is sized once for the largest result, so that it never moves (which
/// would leave an unwiped copy behind).
///
/// For the config file, see [`splice_config`]; both are [`splice_as`].
pub fn splice(text: &str, edits: &[Edit], path: &Path) -> Result<Zeroizing<String>, Error> {
    splice_as(text, edits, path)
}

/// [`splice`] for the config file: `[profile NAME]` (and `[default]`) sections holding
/// [`ProfileSection`]s.
pub fn splice_config(
    text: &str,
    edits: &[Edit<ProfileSection>],
    path: &Path,
) -> Result<Zeroizing<String>, Error> {
    splice_as(text, edits, path)
}

/// [`splice`] for either file: the kind of block decides which, and so the header form
/// (`Edit<Section>`: the credentials file, `[NAME]`; `Edit<ProfileSection>`: the config file,
/// `[profile NAME]` and `[default]`). One splicer for both.
pub fn splice_as<B: Block>(
    text: &str,
    edits: &[Edit<B>],
    path: &Path,
) -> Result<Zeroizing<String>, Error> {
    let is_scrub = |e: &Edit<B>| matches!(e, Edit::Scrub { .. });
    if edits.len() < 2 || !edits.iter().any(is_scrub) {
        return splice_batch(text, edits, path);
    }
    // Taking out a user's section changes which lines follow the places new sections can go,
    // so each scrub is a step of its own, and the runs of edits between them one pass each.
    let mut text = Zeroizing::new(text.to_owned());
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
fn splice_batch<B: Block>(
    text: &str,
    edits: &[Edit<B>],
    path: &Path,
) -> Result<Zeroizing<String>, Error> {
    if edits.is_empty() {
        return Ok(Zeroizing::new(text.to_owned()));
    }
    for edit in edits {
        if let Edit::Upsert { section, .. } = edit {
            validate_name(B::KIND, section.name())?;
            section.validate_values()?;
        }
    }
    let doc = Doc::parse(text, B::KIND);

    let mut plans: HashMap<&str, Plan<'_, B>> =
        edits.iter().map(|e| (e.name(), Plan::default())).collect();
    for (index, span) in doc.sections.iter().enumerate() {
        if !span.is_profile {
            continue;
        }
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
        // A section with rolecall's marker that someone changed gets its own message.
        let not_owned = || match plan.original.map(|i| doc.sections[i].changed) {
            Some(true) => Error::Changed {
                name: name.to_owned(),
                path: path.to_owned(),
            },
            _ => Error::NotOwned {
                name: name.to_owned(),
                path: path.to_owned(),
                // (the credentials file's: import takes those sections over)
                role_profile: B::KIND == FileKind::Credentials
                    && plan.original.is_some_and(|i| {
                        super::scan::options(text, &doc.sections[i]).any(|(key, _)| {
                            key.eq_ignore_ascii_case("role_arn")
                                || key.eq_ignore_ascii_case("source_profile")
                        })
                    }),
            },
        };
        // The original section still stands (possibly already rewritten by this batch).
        let original_present = plan.original.is_some() && !matches!(plan.fate, Fate::Remove);
        // A user's section that this batch has not adopted.
        let foreign = |plan: &Plan<'_, B>| {
            matches!(plan.fate, Fate::Keep | Fate::CommentOut(_))
                && plan.original.is_some_and(|i| !doc.sections[i].managed)
        };
        match edit {
            Edit::Upsert { section, adopt } => {
                if original_present {
                    if foreign(plan) && !adopt {
                        return Err(not_owned());
                    }
                    // Adopting takes over the section's text: never a long-lived key of the
                    // user's, which would be gone for good (issue 14).
                    if foreign(plan)
                        && let Some(index) = plan.original
                        && let Some(key_id) = long_lived_key(text, &doc.sections[index])
                    {
                        return Err(Error::LongLivedKey {
                            name: name.to_owned(),
                            path: path.to_owned(),
                            key_tail: tail(key_id),
                        });
                    }
                    plan.fate = Fate::Replace(section);
                } else {
                    match &mut plan.inserted {
                        Some((_, current)) => *current = section,
                        None => plan.inserted = Some((order, section)),
                    }
                }
            }
            Edit::CommentOut { keys, .. } => {
                // Only a user's section that still stands as it is in the text.
                if plan.inserted.is_none()
                    && foreign(plan)
                    && let Some(index) = plan.original
                {
                    // configparser reads an indented `[x]` below a key as part of that key's
                    // value: then where this section's keys are is not clear.
                    let indented = [Some(index), doc.sections.get(index + 1).map(|_| index + 1)]
                        .into_iter()
                        .flatten()
                        .map(|i| doc.sections[i].start)
                        .find(|&start| text[start..].starts_with(char::is_whitespace));
                    if let Some(start) = indented {
                        return Err(Error::IndentedHeader {
                            name: name.to_owned(),
                            path: path.to_owned(),
                            line: text[..start].matches('\n').count() + 1,
                        });
                    }
                    plan.fate = Fate::CommentOut(keys);
                }
            }
            Edit::TakeOver { keys, .. } => {
                if plan.inserted.is_none()
                    && foreign(plan)
                    && let Some(index) = plan.original
                {
                    let span = &doc.sections[index];
                    if let Some(key_id) = long_lived_key(text, span) {
                        return Err(Error::LongLivedKey {
                            name: name.to_owned(),
                            path: path.to_owned(),
                            key_tail: tail(key_id),
                        });
                    }
                    if text[span.start..].starts_with(char::is_whitespace) {
                        return Err(Error::IndentedHeader {
                            name: name.to_owned(),
                            path: path.to_owned(),
                            line: text[..span.start].matches('\n').count() + 1,
                        });
                    }
                    plan.fate = Fate::TakeOver(keys);
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

    let mut inserts: Vec<(usize, &B)> = plans.values().filter_map(|p| p.inserted).collect();
    inserts.sort_unstable_by_key(|(order, _)| *order);
    // Per original section: what becomes of it (never `Fate::Keep`).
    let mut changes: Vec<(usize, Fate<'_, B>)> = plans
        .values()
        .filter_map(|p| match (p.original, p.fate) {
            (_, Fate::Keep) | (None, _) => None,
            (Some(index), fate) => Some((index, fate)),
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

    let capacity = text.len()
        + edits
            .iter()
            .map(|e| match e {
                Edit::Upsert { section, .. } => block_len(section),
                Edit::Remove { .. } | Edit::Scrub { .. } => 0,
                // at most every line of the file
                Edit::CommentOut { .. } => COMMENTED_OUT_PREFIX.len() * (text.lines().count() + 1),
                Edit::TakeOver { .. } => {
                    COMMENTED_OUT_PREFIX.len() * (text.lines().count() + 1) + MANAGED_KEY.len() + 16
                }
            })
            .sum::<usize>();
    let mut out = Zeroizing::new(String::with_capacity(capacity));
    let allocated = out.capacity();
    out.push_str(&text[..insert_at]);
    for (_, section) in &inserts {
        write_block(*section, &mut out, doc.eol, true);
        out.push_str(doc.eol);
    }
    let mut cursor = insert_at;
    for (index, fate) in changes {
        let span = &doc.sections[index];
        out.push_str(&text[cursor..span.start]);
        cursor = match fate {
            Fate::Replace(section) => {
                write_block(section, &mut out, doc.eol, text[..span.end].ends_with('\n'));
                span.end
            }
            Fate::Remove => doc.separator_end(span).unwrap_or(span.end),
            Fate::CommentOut(keys) => {
                comment_out(text, span, keys, &mut out);
                span.end
            }
            Fate::TakeOver(keys) => {
                take_over(text, span, keys, doc.eol, &mut out);
                span.end
            }
            Fate::Keep => span.start,
        };
    }
    out.push_str(&text[cursor..]);
    debug_assert_eq!(
        out.capacity(),
        allocated,
        "the output buffer moved: block_len is short"
    );
    Ok(out)
}
