//! Timestamps on the wire and in files: RFC 3339 in UTC, whole seconds
//! (`2026-11-22T03:06:26Z`), as AWS writes them.

use std::time::SystemTime;

/// Formats a time as RFC 3339 UTC seconds.
pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses RFC 3339 (fractions and offsets allowed).
pub fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim().trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(s.trim()).ok())
}

/// `#[serde(with = "crate::timestamp::option")]` for `Option<SystemTime>`.
pub mod option {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as an RFC 3339 string or null.
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(*t)),
            None => s.serialize_none(),
        }
    }

    /// Reads an RFC 3339 string or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn round_trips_whole_seconds() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_358_602);
        assert_eq!(super::format(t), "2026-11-22T14:43:22Z");
        assert_eq!(super::parse("2026-11-22T14:43:22Z"), Some(t));
        assert_eq!(super::parse("2026-11-22T14:43:22.000Z"), Some(t));
        assert_eq!(super::parse("soon"), None);
    }
}
