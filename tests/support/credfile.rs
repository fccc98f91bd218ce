//! Reading a credentials file's text the way the tests check it: a value of one section, its
//! access key id, when rolecall says it expires. Plain line scanning, deliberately independent
//! of rolecall-core's parser, so that a bug there cannot hide itself.

use std::time::SystemTime;

/// The value of `key` in `[section]` of an INI text (the first, if repeated); `None` when the
/// section or the key is missing. The section ends at the next line starting with `[`.
pub fn value(text: &str, section: &str, key: &str) -> Option<String> {
    let header = format!("[{section}]");
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == header;
        } else if inside
            && let Some((k, v)) = t.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

/// [`value`] for a value the test cannot go on without: panics showing the text when missing.
#[track_caller]
pub fn expect_value(text: &str, section: &str, key: &str) -> String {
    value(text, section, key).unwrap_or_else(|| panic!("no {key} in [{section}] of:\n{text}"))
}

/// `aws_access_key_id` of `[section]`.
pub fn key_id(text: &str, section: &str) -> Option<String> {
    value(text, section, "aws_access_key_id")
}

/// [`key_id`], panicking with the text when missing.
#[track_caller]
pub fn expect_key_id(text: &str, section: &str) -> String {
    expect_value(text, section, "aws_access_key_id")
}

/// `x_rolecall_expiration` of managed `[section]`, parsed (RFC 3339).
pub fn expiration(text: &str, section: &str) -> Option<SystemTime> {
    value(text, section, "x_rolecall_expiration").and_then(|t| humantime::parse_rfc3339(&t).ok())
}
