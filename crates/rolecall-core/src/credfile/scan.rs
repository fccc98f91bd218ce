//! Scanning: finds section spans and the values rolecall reads, following configparser's
//! rules as botocore uses them. Never changes text.

use super::{
    ACCESS_KEY_ID, BOM, EXPIRATION_KEY, MANAGED_KEY, REGION, SECRET_ACCESS_KEY, SECURITY_TOKEN,
    SESSION_TOKEN,
};

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
    pub(super) name: &'a str,
    /// Start of the header line.
    pub(super) start: usize,
    /// End of the header line (start of the body).
    pub(super) body: usize,
    /// End of the last key line (or of the header line when there is none).
    pub(super) end: usize,
    pub(super) managed: bool,
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
    pub(super) fn parse(text: &'a str) -> Self {
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
    pub(super) fn unique(&self, name: &str) -> Option<&Span<'a>> {
        let mut found = self.sections.iter().filter(|s| s.name == name);
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
        }
    }
    f
}

// ---------------------------------------------------------------------------------------------
// Writing managed blocks
