//! Unit tests of the pure API: splicing, scanning and reading back, with property tests over
//! generated user files.

use super::testutil::*;
use super::*;
use proptest::prelude::*;
use rstest::rstest;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::credentials::ExposeSecret;

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
    "[default]\n\n<dev:B:nofinal>"
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
fn upsert_of_managed_section_replaces_only_its_span(#[case] input: &str, #[case] expected: &str) {
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
#[case::marker_in_continuation_line("[dev]\ns3 =\n  x_rolecall_managed = true\n", remove("dev"))]
fn edits_of_user_sections_are_refused(#[case] input: &str, #[case] edit: Edit) {
    let err = splice(input, &[edit], path()).unwrap_err();
    assert!(
        matches!(&err, Error::NotOwned { name, .. } if name == "dev"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "section [dev] in {PATH} was not written by rolecall; rename it, or delete it and \
             run \"rolecall refresh dev\" to let rolecall manage it"
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
        provenance: None,
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
        format!(
            "[ci]\nx_rolecall_managed = true\naws_access_key_id = AKIAEXAMPLE\n\
         aws_secret_access_key = s3cr3t\nregion = eu-west-1\nx_rolecall_fingerprint = {}\n\n",
            fingerprint_of(&[
                ("x_rolecall_managed", "true"),
                ("aws_access_key_id", "AKIAEXAMPLE"),
                ("aws_secret_access_key", "s3cr3t"),
                ("region", "eu-west-1"),
            ])
        )
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
        Error::Changed {
            name: "dev".into(),
            path: PathBuf::from(PATH),
        },
        Error::Busy {
            path: PathBuf::from(PATH),
        },
        Error::HardLinked {
            path: PathBuf::from(PATH),
            links: 2,
        },
        Error::MountPoint {
            path: PathBuf::from(PATH),
        },
        Error::ForeignOwner {
            path: PathBuf::from(PATH),
            uid: 4242,
            source: io::Error::from(io::ErrorKind::PermissionDenied),
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
        (
            "x_rolecall_role",
            format!("arn:aws:iam::222222222222:role/{tag}"),
        ),
        ("x_rolecall_source", "bastion".to_owned()),
        ("x_rolecall_generated", GENERATED_TEXT.to_owned()),
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
    // written in this order, so hashed in it
    let order = [
        "x_rolecall_managed",
        "x_rolecall_role",
        "x_rolecall_source",
        "x_rolecall_generated",
        "x_rolecall_expiration",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "region",
    ];
    let pairs: Vec<(&str, &str)> = order
        .iter()
        .filter_map(|k| p.get(*k).map(|v| (*k, v.as_str())))
        .collect();
    let fingerprint = fingerprint_of(&pairs);
    p.insert("x_rolecall_fingerprint".into(), fingerprint);
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
                Ok(out) => text = out.to_string(),
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
// Sections changed since rolecall wrote them (issue 13, item 1).

/// `<dev:A>` with one line changed as `aws configure set` or an editor would.
#[rstest]
#[case::secret_replaced("aws_secret_access_key = secret/A+KEY", "aws_secret_access_key = mine")]
#[case::key_id_replaced("aws_access_key_id = ASIAAEXAMPLE", "aws_access_key_id = AKIAUSERKEY")]
#[case::token_deleted("aws_session_token = tokenA//===\n", "")]
#[case::key_added(
    "aws_session_token = tokenA//===\n",
    "aws_session_token = tokenA//===\noutput = json\n"
)]
#[case::continuation_added(
    "aws_session_token = tokenA//===\n",
    "aws_session_token = tokenA//===\n  more\n"
)]
#[case::fingerprint_edited("x_rolecall_fingerprint = ", "x_rolecall_fingerprint = 0")]
fn issue_13_a_changed_managed_section_is_the_users_and_never_overwritten_or_removed(
    #[case] from: &str,
    #[case] to: &str,
) {
    let original = expand("<dev:A>\n[default]\n");
    assert!(original.contains(from), "{original}");
    let changed = original.replacen(from, to, 1);
    for edit in [upsert("dev", "B"), remove("dev")] {
        let err = splice(&changed, &[edit], path()).unwrap_err();
        assert!(
            matches!(&err, Error::Changed { name, .. } if name == "dev"),
            "{err:?}"
        );
    }
    let info = inspect(&changed);
    let dev = info.get("dev").unwrap();
    assert!(!dev.managed && dev.changed, "{dev:?}");
    assert_eq!(info.managed().count(), 0);
    assert!(managed_credentials(&changed, "dev").is_none());
    // handing it back: adopt (and scrub) still take it, unless it now holds the user's
    // long-lived key, which adopting would destroy (issue 14)
    match splice(&changed, &[adopt("dev", "B")], path()) {
        Ok(out) => assert_eq!(*out, expand("<dev:B>\n[default]\n")),
        Err(Error::LongLivedKey { .. }) => assert!(changed.contains("= AKIA"), "{changed}"),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(apply(&changed, &[scrub("dev")]), "[default]\n");
    // and the untouched text is still rolecall's
    assert!(inspect(&original).get("dev").unwrap().managed);
}

#[rstest]
#[case::spacing("aws_access_key_id = ASIAAEXAMPLE", "aws_access_key_id=ASIAAEXAMPLE")]
#[case::key_case("aws_access_key_id = ", "AWS_Access_Key_ID = ")]
#[case::comment_added("aws_session_token = ", "# a note\naws_session_token = ")]
#[case::crlf("\n", "\r\n")]
#[case::expiration_edited("2026-11-22T03:06:26Z", "2020-01-01T00:00:00Z")]
fn issue_13_changes_no_reader_sees_keep_a_section_rolecalls(#[case] from: &str, #[case] to: &str) {
    let text = expand("<dev:A>").replace(from, to);
    let dev = inspect(&text).get("dev").cloned().unwrap();
    assert!(dev.managed && !dev.changed, "{text:?}");
    assert!(splice(&text, &[upsert("dev", "B")], path()).is_ok());
}

#[test]
fn issue_13_a_section_from_before_fingerprints_stays_rolecalls() {
    let old = "[dev]\nx_rolecall_managed = true\naws_access_key_id = ASIAOLD\n\
               aws_secret_access_key = old\n\n[default]\n";
    assert!(inspect(old).get("dev").unwrap().managed);
    assert!(managed_credentials(old, "dev").is_some());
    assert_eq!(
        apply(old, &[upsert("dev", "A")]),
        expand("<dev:A>\n[default]\n")
    );
    assert_eq!(apply(old, &[remove("dev")]), "[default]\n");
}

#[test]
fn issue_13_changed_message_says_what_happened_and_how_to_hand_it_back() {
    let text = expand("<default:A><dev:A>").replace("secret/A+KEY", "mine");
    let msg = |name: &str| {
        splice(&text, &[remove(name)], path())
            .unwrap_err()
            .to_string()
    };
    let default = msg("default");
    assert!(
        default.starts_with(&format!(
            "section [default] in {PATH} was changed since rolecall wrote it"
        )),
        "{default}"
    );
    assert!(
        default.contains("\"rolecall use PROFILE --adopt\""),
        "{default}"
    );
    assert!(!default.contains("mine"), "{default}");
    let dev = msg("dev");
    assert!(
        dev.contains("delete it and run \"rolecall refresh dev\""),
        "{dev}"
    );
    assert!(!dev.contains("--adopt"), "{dev}");
}

/// Issue 13 (wipe buffers): the output grows in place, never into a new allocation that would
/// leave an unwiped copy of the secrets behind (a debug assertion in `splice_batch` checks it),
/// also for tokens far longer than usual and CRLF files.
#[rstest]
#[case::lf("[default]\nregion = x\n")]
#[case::crlf("[default]\r\nregion = x\r\n")]
fn issue_13_splice_output_buffer_never_moves(#[case] user: &str) {
    let mut section = section("dev", "A");
    section.credentials.session_token = Some(SecretString::from("t".repeat(4_000)));
    section.region = Some("eu-west-1".into());
    let edits = [
        Edit::Upsert {
            section,
            adopt: false,
        },
        upsert("other", "B"),
    ];
    let out = splice(user, &edits, path()).unwrap();
    assert!(out.ends_with(user), "{}", *out);
    let again = splice(&out, &edits, path()).unwrap();
    assert_eq!(*again, *out);
}

// -----------------------------------------------------------------------------------------
// The same writer for the AWS config file (issue 15).
mod config;

// -----------------------------------------------------------------------------------------
// Issue 14: never destroy a user's long-lived key.

#[rstest]
#[case::hand_written(
    "# mine\n[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = s3cr3t\nregion = eu-west-1\n"
)]
#[case::put_into_a_managed_section_by_aws_configure(
    &expand("<default:A>")
        .replace("ASIAAEXAMPLE", "AKIAIOSFODNN7EXAMPLE")
        .replace("aws_session_token = tokenA//===\n", "")
)]
#[case::beside_the_stale_token_aws_configure_leaves(
    &expand("<default:A>").replace("ASIAAEXAMPLE", "AKIAIOSFODNN7EXAMPLE")
)]
fn issue_14_adopting_a_section_with_a_long_lived_key_is_refused(#[case] user: &str) {
    let err = splice(user, &[adopt("default", "B")], path()).unwrap_err();
    assert!(
        matches!(&err, Error::LongLivedKey { name, .. } if name == "default"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("rolecall keys import default --scrub") && msg.contains("…MPLE"),
        "{msg}"
    );
    assert!(
        !msg.contains("AKIAIOSFODNN7EXAMPLE") && !msg.contains("s3cr3t"),
        "{msg}"
    );
    // and a removal never takes it either
    assert!(splice(user, &[remove("default")], path()).is_err());
}

#[rstest]
#[case::no_key("[default]\nregion = eu-west-1\n")]
#[case::temporary(
    "[default]\naws_access_key_id = ASIAX\naws_secret_access_key = s\naws_session_token = t\n"
)]
#[case::old_token_name(
    "[default]\naws_access_key_id = ASIAX\naws_secret_access_key = s\naws_security_token = t\n"
)]
fn issue_14_adopting_a_section_without_a_long_lived_key_still_works(#[case] user: &str) {
    assert_eq!(apply(user, &[adopt("default", "B")]), expand("<default:B>"));
}

#[test]
fn issue_14_static_key_takes_an_akia_key_beside_a_stale_session_token() {
    // what `aws configure set` leaves when it puts the user's key into a section rolecall wrote
    let text = expand("<default:A>")
        .replace("ASIAAEXAMPLE", "AKIAIOSFODNN7EXAMPLE")
        .replace("secret/A+KEY", "usersecret");
    let c = static_key(&text, "default", path()).unwrap();
    assert_eq!(c.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(c.secret_access_key.expose_secret(), "usersecret");
    assert!(c.session_token.is_none());
}

/// Issue 17: `rolecall import` takes over a role profile the user kept in the credentials file:
/// its role keys become comments, the marker goes below the header, nothing else changes; the
/// next upsert writes Rolecall's block there and the comments stay below it; a second take-over
/// is a no-op; a section with a long-lived key is refused.
#[test]
fn issue_17_take_over_marks_a_role_section_and_upserts_keep_its_comments() {
    let keys: Vec<String> = ["role_arn", "source_profile"]
        .iter()
        .map(|k| (*k).to_string())
        .collect();
    let take = |name: &str| Edit::TakeOver {
        name: name.into(),
        keys: keys.clone(),
    };
    let user = "# mine\r\n[dev]\r\nrole_arn = arn:aws:iam::1:role/A\r\n  ; note\r\nsource_profile = b\r\n\r\n[x]\r\ny = 1\r\n";
    let taken = apply(user, &[take("dev")]);
    assert_eq!(
        taken,
        "# mine\r\n[dev]\r\nx_rolecall_managed = true\r\n\
         # moved to rolecall: role_arn = arn:aws:iam::1:role/A\r\n  ; note\r\n\
         # moved to rolecall: source_profile = b\r\n\r\n[x]\r\ny = 1\r\n"
    );
    assert_eq!(managed_names(&taken), ["dev"]);
    assert_eq!(apply(&taken, &[take("dev")]), taken);
    let renewed = apply(&taken, &[upsert("dev", "A")]);
    assert_eq!(
        renewed,
        expand("# mine\r\n<dev:A:crlf>")
            + "# moved to rolecall: role_arn = arn:aws:iam::1:role/A\r\n  ; note\r\n\
               # moved to rolecall: source_profile = b\r\n\r\n[x]\r\ny = 1\r\n"
    );
    // the same again changes nothing; removing it leaves the user's comments and sections
    assert_eq!(apply(&renewed, &[upsert("dev", "A")]), renewed);
    assert_eq!(
        apply(&renewed, &[remove("dev")]),
        "# mine\r\n# moved to rolecall: role_arn = arn:aws:iam::1:role/A\r\n  ; note\r\n\
         # moved to rolecall: source_profile = b\r\n\r\n[x]\r\ny = 1\r\n"
    );
    // a header on the last line, without a newline
    assert_eq!(
        apply("[dev]", &[take("dev")]),
        "[dev]\nx_rolecall_managed = true"
    );
    let err = splice(
        "[dev]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s\nrole_arn = a\n",
        &[take("dev")],
        path(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::LongLivedKey { .. }), "{err:?}");
}

/// Issue 17: a user's role profile in the credentials file where a Rolecall profile is to be
/// written: the message says to run `rolecall import` (which takes it over), never a flag
/// `refresh` does not have; another section of the user's keeps the old advice.
#[test]
fn issue_17_not_owned_points_a_role_section_at_import() {
    let msg = |text: &str| {
        splice(text, &[upsert("dev", "A")], path())
            .unwrap_err()
            .to_string()
    };
    let role = msg("[dev]\nrole_arn = arn:aws:iam::1:role/A\nsource_profile = b\n");
    assert!(role.contains("run \"rolecall import\""), "{role}");
    assert!(!role.contains("--adopt"), "{role}");
    let plain = msg("[dev]\nregion = x\n");
    assert!(
        plain.contains("delete it and run \"rolecall refresh dev\""),
        "{plain}"
    );
    assert!(!plain.contains("rolecall import"), "{plain}");
    // the config file's sections are not taken over by import: no such advice there
    let config = super::splice_config(
        "[profile dev]\nrole_arn = arn:aws:iam::1:role/A\n",
        &[Edit::Upsert {
            section: ProfileSection {
                name: "dev".into(),
                region: Some("eu-west-1".into()),
                credential_process: None,
            },
            adopt: false,
        }],
        path(),
    )
    .unwrap_err()
    .to_string();
    assert!(!config.contains("rolecall import"), "{config}");
}
