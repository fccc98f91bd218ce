//! Scanning: finds section spans and the values rolecall reads, following configparser's
//! rules as botocore uses them. Never changes text.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::{
    ACCESS_KEY_ID, BOM, EXPIRATION_KEY, FINGERPRINT_KEY, FileKind, MANAGED_KEY, REGION,
    SECRET_ACCESS_KEY, SECURITY_TOKEN, SESSION_TOKEN,
};

/// The profile a section header (the trimmed text between its brackets) names in a file of
/// that kind; `None` for a config-file section that is no profile's (`[sso-session x]`,
/// `[services x]`, a bare `[x]`). As botocore and the Rust SDK read the config file,
/// `[default]` and `[profile default]` both name `default`, and `profile` must be followed by
/// whitespace.
pub(super) fn profile_of(kind: FileKind, header: &str) -> Option<&str> {
    match kind {
        FileKind::Credentials => Some(header),
        FileKind::Config if header == "default" => Some(header),
        FileKind::Config => header
            .strip_prefix("profile")
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .map(str::trim),
    }
}

/// One line: its byte range including the line ending, and its content without it.
#[derive(Clone, Copy)]
pub(super) struct Line<'a> {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) content: &'a str,
}

/// The lines of `text` from byte `pos` (a line start). Only `\n` ends a line; a `\r` before it
/// is part of the ending.
pub(super) fn lines_from(text: &str, mut pos: usize) -> impl Iterator<Item = Line<'_>> {
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

pub(super) enum Kind<'a> {
    Blank,
    Comment,
    Header(&'a str),
    Key,
}

pub(super) fn classify(content: &str) -> Kind<'_> {
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
pub(super) struct Span<'a> {
    /// The profile name (for a config-file section that is no profile's, its header text).
    pub(super) name: &'a str,
    /// It is a profile's section (always, in the credentials file). Sections that are not are
    /// kept as spans only so that their lines are not taken for the section before them.
    pub(super) is_profile: bool,
    /// Start of the header line.
    pub(super) start: usize,
    /// End of the header line (start of the body).
    pub(super) body: usize,
    /// End of the last key line (or of the header line when there is none).
    pub(super) end: usize,
    /// It carries [`MANAGED_KEY`] and is still what rolecall wrote: its fingerprint matches,
    /// or it has none (written before fingerprints existed).
    pub(super) managed: bool,
    /// It carries [`MANAGED_KEY`] but its fingerprint no longer matches: the user's now.
    pub(super) changed: bool,
}

/// The scanned file: where its sections are, and what new text must look like.
pub(super) struct Doc<'a> {
    pub(super) text: &'a str,
    /// Length of the BOM, if any (0 or 3).
    pub(super) bom: usize,
    pub(super) eol: &'static str,
    pub(super) sections: Vec<Span<'a>>,
    /// 1-based line number of the first line that keeps new sections off the top: the first
    /// line that is not blank or a comment starting the line, unless it is a header starting
    /// the line.
    pub(super) top_blocker: Option<usize>,
    /// Start of the first header that starts its line (no indentation).
    pub(super) first_flush_header: Option<usize>,
}

impl<'a> Doc<'a> {
    pub(super) fn parse(text: &'a str, file: FileKind) -> Self {
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
                    let profile = profile_of(file, name);
                    sections.push(Span {
                        name: profile.unwrap_or(name),
                        is_profile: profile.is_some(),
                        start: line.start,
                        body: line.end,
                        end: line.end,
                        managed: false,
                        changed: false,
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
            let mut marked = false;
            let mut stored = None;
            for (key, value) in options(text, span) {
                if key.eq_ignore_ascii_case(MANAGED_KEY) {
                    marked = true;
                } else if key.eq_ignore_ascii_case(FINGERPRINT_KEY) {
                    stored = Some(value);
                }
            }
            span.changed =
                marked && stored.is_some_and(|s| s != fingerprint(text, span.body, span.end));
            span.managed = marked && !span.changed;
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

    /// The profiles' sections, in file order.
    pub(super) fn profiles(&self) -> impl Iterator<Item = &Span<'a>> {
        self.sections.iter().filter(|s| s.is_profile)
    }

    /// The only section of that name; `None` when there is none or more than one.
    pub(super) fn unique(&self, name: &str) -> Option<&Span<'a>> {
        let mut found = self.profiles().filter(|s| s.name == name);
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// End of the blank line right after the span, if there is one: the separator that goes
    /// with a managed section.
    pub(super) fn separator_end(&self, span: &Span<'_>) -> Option<usize> {
        lines_from(self.text, span.end)
            .next()
            .filter(|line| matches!(classify(line.content), Kind::Blank))
            .map(|line| line.end)
    }
}

/// Number of whitespace characters that start the line (configparser's indent level).
pub(super) fn indent_of(content: &str) -> usize {
    content.chars().take_while(|c| c.is_whitespace()).count()
}

/// The `key = value` pairs of a section, trimmed, in order. As in configparser, `:` also
/// separates, and a line indented deeper than the key line before it continues that key's
/// value instead of starting a key.
pub(super) fn options<'a>(
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

/// Domain separation: these bytes start every fingerprint's hash input, so the value can never
/// be mistaken for (or reused as) a hash of the same bytes made for another purpose.
const FINGERPRINT_DOMAIN: &[u8] = b"rolecall credentials-file section fingerprint v1\n";
/// Bytes of SHA-256 kept: 8 bytes, written as 16 hex digits.
const FINGERPRINT_BYTES: usize = 8;

/// The fingerprint of a section's key lines between `body` (the start of the line after the
/// header) and `end`: SHA-256 over the domain tag and each key line in order, as
/// `lower-case key = trimmed value`, a continuation line as its trimmed text, the
/// [`FINGERPRINT_KEY`] line itself and [`EXPIRATION_KEY`] left out; truncated to 64 bits, as
/// hex.
///
/// It tells whether the section is still what rolecall wrote, so it sees every change a reader
/// would see (a key, a value, a continuation line, an added or removed key) and ignores what
/// no reader sees (spacing around `=`, the key's case, comments, blank lines, line endings).
/// The expiration is rolecall's own bookkeeping, not credentials: editing it (to make a
/// profile due, say) hands nothing of the user's to rolecall, so it does not count.
/// It guards against accidents, not attackers: whoever can write the file can also write a
/// matching fingerprint.
///
/// Why it reveals nothing about the secret: while the section is unchanged the secret is in
/// plain text on the lines beside it. Once the user has changed the section, the fingerprint
/// is of rolecall's old temporary credentials, never of what the user wrote. And it cannot
/// help guess even those: the hash input holds a secret access key of 40 random base64
/// characters (240 bits) and, for temporary credentials, a session token of hundreds more,
/// while only 64 bits are kept, so some 2^176 secret keys share each fingerprint: even
/// unlimited computing cannot tell which one it was, and a guess it "confirms" is wrong but
/// for a 2^-176 chance. 64 bits still leave an accidental edit a 2^-64 chance of going unseen.
pub(super) fn fingerprint(text: &str, body: usize, end: usize) -> String {
    let mut hash = Sha256::new();
    hash.update(FINGERPRINT_DOMAIN);
    let mut key_indent: Option<usize> = None;
    for line in lines_from(&text[..end], body) {
        if !matches!(classify(line.content), Kind::Key) {
            continue;
        }
        let indent = indent_of(line.content);
        let content = line.content.trim();
        if key_indent.is_some_and(|k| indent > k) {
            hash.update(b"\t");
            hash.update(content.as_bytes());
            hash.update(b"\n");
            continue;
        }
        key_indent = Some(indent);
        match content.find(['=', ':']) {
            Some(split) => {
                let key = content[..split].trim();
                if key.eq_ignore_ascii_case(FINGERPRINT_KEY)
                    || key.eq_ignore_ascii_case(EXPIRATION_KEY)
                {
                    continue;
                }
                hash.update(key.to_ascii_lowercase().as_bytes());
                hash.update(b"=");
                hash.update(content[split + 1..].trim().as_bytes());
            }
            None => hash.update(content.as_bytes()),
        }
        hash.update(b"\n");
    }
    let digest = hash.finalize();
    let mut hex = String::with_capacity(2 * FINGERPRINT_BYTES);
    for byte in &digest[..FINGERPRINT_BYTES] {
        // Writing into a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The values rolecall cares about in one section. Keys match case-insensitively, as both
/// botocore (configparser lower-cases option names) and the Rust SDK do; the last one wins.
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) managed: bool,
    pub(super) expiration: Option<&'a str>,
    pub(super) access_key_id: Option<&'a str>,
    pub(super) secret_access_key: Option<&'a str>,
    pub(super) session_token: Option<&'a str>,
    pub(super) security_token: Option<&'a str>,
    pub(super) region: Option<&'a str>,
    pub(super) credential_process: Option<&'a str>,
}

pub(super) fn fields<'a>(text: &'a str, span: &Span<'_>) -> Fields<'a> {
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
        } else if is(super::CREDENTIAL_PROCESS_KEY) {
            f.credential_process = value;
        }
    }
    f
}
