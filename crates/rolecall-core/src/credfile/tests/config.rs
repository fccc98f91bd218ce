//! The splice writer on the AWS config file (`~/.aws/config`): `[profile NAME]` headers,
//! the same ownership, fingerprint, refusals and byte preservation as the credentials file
//! (issue 15).

use super::*;

const CONFIG_PATH: &str = "/home/user/.aws/config";

fn config_path() -> &'static Path {
    Path::new(CONFIG_PATH)
}

const PROCESS: &str = "'/usr/bin/rolecall' credential-process dev";

fn profile(name: &str, region: Option<&str>, process: Option<&str>) -> ProfileSection {
    ProfileSection {
        name: name.to_owned(),
        region: region.map(str::to_owned),
        credential_process: process.map(str::to_owned),
    }
}

fn put(name: &str, region: &str) -> Edit<ProfileSection> {
    Edit::Upsert {
        section: profile(name, Some(region), None),
        adopt: false,
    }
}

fn drop_profile(name: &str) -> Edit<ProfileSection> {
    Edit::Remove {
        name: name.to_owned(),
    }
}

fn apply_config(text: &str, edits: &[Edit<ProfileSection>]) -> String {
    splice_config(text, edits, config_path())
        .unwrap()
        .to_string()
}

/// The block `put(name, region)` writes, spelled out independently of the code.
fn config_block(header: &str, region: &str) -> String {
    let fp = fingerprint_of(&[("x_rolecall_managed", "true"), ("region", region)]);
    format!(
        "[{header}]\nx_rolecall_managed = true\nregion = {region}\nx_rolecall_fingerprint = {fp}\n"
    )
}

#[test]
fn issue_15_config_sections_are_written_as_profile_headers() {
    let user = "# mine\n[profile work]\nregion = us-east-1\n";
    let out = apply_config(user, &[put("dev", "eu-west-1")]);
    assert_eq!(
        out,
        format!("{}\n{user}", config_block("profile dev", "eu-west-1"))
    );
    let inv = inspect_as(FileKind::Config, &out);
    let names: Vec<(&str, bool)> = inv
        .sections
        .iter()
        .map(|s| (s.name.as_str(), s.managed))
        .collect();
    assert_eq!(names, [("dev", true), ("work", false)]);
    // updated in place, removed to the byte
    let updated = apply_config(&out, &[put("dev", "eu-west-2")]);
    assert_eq!(
        updated,
        format!("{}\n{user}", config_block("profile dev", "eu-west-2"))
    );
    assert_eq!(apply_config(&updated, &[drop_profile("dev")]), user);
}

#[test]
fn issue_15_default_is_written_as_default() {
    let out = apply_config("", &[put("default", "eu-west-1")]);
    assert_eq!(out, format!("{}\n", config_block("default", "eu-west-1")));
    assert_eq!(apply_config(&out, &[drop_profile("default")]), "");
}

#[rstest]
#[case::profile("[profile dev]\nregion = x\n", "dev")]
#[case::profile_extra_space("[profile   dev ]\nregion = x\n", "dev")]
#[case::default("[default]\nregion = x\n", "default")]
#[case::profile_default("[profile default]\nregion = x\n", "default")]
fn issue_15_a_users_config_profile_is_never_overwritten_or_removed(
    #[case] user: &str,
    #[case] name: &str,
) {
    for edit in [put(name, "eu-west-1"), drop_profile(name)] {
        let err = splice_config(user, &[edit], config_path()).unwrap_err();
        assert!(
            matches!(&err, Error::NotOwned { name: n, .. } if n == name),
            "{err:?}"
        );
    }
}

#[rstest]
#[case::bare_section("[dev]\nregion = x\n")]
#[case::sso_session("[sso-session dev]\nsso_region = x\n")]
#[case::services("[services dev]\ns3 =\n  endpoint_url = x\n")]
#[case::profile_without_space("[profiledev]\nregion = x\n")]
fn issue_15_config_sections_that_are_no_profile_are_left_alone(#[case] user: &str) {
    let out = apply_config(user, &[put("dev", "eu-west-1")]);
    assert_eq!(
        out,
        format!("{}\n{user}", config_block("profile dev", "eu-west-1"))
    );
    assert_eq!(apply_config(&out, &[drop_profile("dev")]), user);
    // and such a section's keys never count as the managed section's
    assert!(
        inspect_as(FileKind::Config, &out)
            .get("dev")
            .unwrap()
            .managed
    );
}

#[test]
fn issue_15_a_changed_managed_config_profile_is_the_users() {
    let out = apply_config("", &[put("dev", "eu-west-1")]).replace("eu-west-1", "us-east-1");
    let err = splice_config(&out, &[drop_profile("dev")], config_path()).unwrap_err();
    assert!(matches!(err, Error::Changed { .. }), "{err:?}");
    let dev = inspect_as(FileKind::Config, &out)
        .get("dev")
        .cloned()
        .unwrap();
    assert!(dev.changed && !dev.managed, "{dev:?}");
}

#[test]
fn issue_15_both_default_headers_are_a_duplicate() {
    let user = "[default]\nregion = a\n[profile default]\nregion = b\n";
    let err = splice_config(user, &[put("default", "x")], config_path()).unwrap_err();
    assert!(matches!(err, Error::Duplicate { .. }), "{err:?}");
}

#[rstest]
#[case::space("team ro")]
#[case::quote("it's")]
#[case::double_quote("a\"b")]
#[case::backslash("a\\b")]
#[case::configparser_default("DEFAULT")]
#[case::empty("")]
fn issue_15_names_the_aws_tools_would_read_differently_are_refused(#[case] name: &str) {
    let err = splice_config("", &[put(name, "x")], config_path()).unwrap_err();
    assert!(matches!(err, Error::InvalidProfileName { .. }), "{err:?}");
    assert!(err.to_string().contains("choose another name"), "{err}");
}

#[rstest]
#[case::comment_hash("'/bin/rolecall' credential-process dev #x")]
#[case::comment_semicolon("'/bin/rolecall'\t;x")]
#[case::newline("'/bin/rolecall'\nregion = x")]
#[case::surrounding_space(" '/bin/rolecall'")]
#[case::empty("")]
fn issue_15_a_command_that_would_read_back_differently_is_refused(#[case] command: &str) {
    let edit = Edit::Upsert {
        section: profile("dev", None, Some(command)),
        adopt: false,
    };
    let err = splice_config("", &[edit], config_path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidValue {
                key: CREDENTIAL_PROCESS_KEY,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn issue_15_the_config_file_is_written_under_the_same_lock_and_rename() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".aws/config");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "[profile work]\nregion = us-east-1\n").unwrap();
    let file = CredentialsFile::new(path.clone());
    let edit = Edit::Upsert {
        section: profile("dev", Some("eu-west-1"), Some(PROCESS)),
        adopt: false,
    };
    assert!(file.apply_config(&[edit]).unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(
            "[profile dev]\nx_rolecall_managed = true\nregion = eu-west-1\n\
                          credential_process = '/usr/bin/rolecall' credential-process dev\n"
        ),
        "{text}"
    );
    assert!(file.apply_config(&[drop_profile("dev")]).unwrap());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[profile work]\nregion = us-east-1\n"
    );
    assert!(!file.apply_config(&[drop_profile("dev")]).unwrap());
}

// Property test: the user's bytes of a config file survive any sequence of add, update and
// remove, and both readers see the user's profiles unchanged.

/// The profile a generated section header names in the config file, if any.
fn config_profile(raw_name: &str) -> Option<String> {
    super::scan::profile_of(FileKind::Config, raw_name).map(str::to_owned)
}

fn config_op_edit(op: &Op) -> Edit<ProfileSection> {
    match *op {
        Op::Upsert { name, tag, region } => Edit::Upsert {
            section: profile(
                OP_NAMES[name],
                region.then(|| format!("eu-west-{tag}")).as_deref(),
                Some(&format!("'/usr/bin/rolecall' credential-process p{tag}")),
            ),
            adopt: false,
        },
        Op::Remove { name } => drop_profile(OP_NAMES[name]),
    }
}

fn config_header(name: &str) -> String {
    if name == "default" {
        name.to_owned()
    } else {
        format!("profile {name}")
    }
}

/// What a reader must see in a managed section written by `config_op_edit`.
fn managed_config_profile(tag: u8, region: bool) -> BTreeMap<String, String> {
    let process = format!("'/usr/bin/rolecall' credential-process p{tag}");
    let region_value = format!("eu-west-{tag}");
    let mut pairs = vec![("x_rolecall_managed", "true")];
    if region {
        pairs.push(("region", region_value.as_str()));
    }
    pairs.push(("credential_process", process.as_str()));
    let fingerprint = fingerprint_of(&pairs);
    let mut p: BTreeMap<String, String> = pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    p.insert("x_rolecall_fingerprint".into(), fingerprint);
    p
}

fn strip_managed_config(text: &str) -> String {
    let removes: Vec<Edit<ProfileSection>> = inspect_as(FileKind::Config, text)
        .managed()
        .map(|s| drop_profile(&s.name))
        .collect();
    apply_config(text, &removes)
}

fn check_config_state(
    user: &UserFile,
    user_profiles: &[String],
    text: &str,
    model: &BTreeMap<&str, (u8, bool)>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&strip_managed_config(text), &user.text);
    let inv = inspect_as(FileKind::Config, text);
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
        user_profiles.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for reader in [
        configparser as fn(&str) -> Result<Profiles, String>,
        rust_sdk,
    ] {
        if let Ok(mut expected) = reader(&user.text) {
            for (name, (tag, region)) in model {
                expected.insert(config_header(name), managed_config_profile(*tag, *region));
            }
            prop_assert_eq!(reader(text), Ok(expected), "{:?}", text);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn issue_15_any_op_sequence_leaves_the_users_config_bytes_intact(user in user_file(), ops in prop::collection::vec(op(), 1..12)) {
        let user_profiles: Vec<String> =
            user.names.iter().filter_map(|n| config_profile(n)).collect();
        let no_room = !user.text.is_empty()
            && !user.text.ends_with('\n')
            && !user.text.lines().any(|l| l.trim_start_matches(BOM).starts_with('['));
        let ops: Vec<Op> = ops
            .into_iter()
            .filter(|op| {
                let (Op::Upsert { name, .. } | Op::Remove { name }) = op;
                !user_profiles.iter().any(|n| n == OP_NAMES[*name])
            })
            .collect();
        let mut text = user.text.clone();
        let mut model: BTreeMap<&str, (u8, bool)> = BTreeMap::new();
        for op in &ops {
            match splice_config(&text, &[config_op_edit(op)], config_path()) {
                Ok(out) => text = out.to_string(),
                Err(Error::NoRoom { .. }) => {
                    prop_assert!(no_room && model.is_empty());
                    continue;
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            }
            match *op {
                Op::Upsert { name, tag, region } => { model.insert(OP_NAMES[name], (tag, region)); }
                Op::Remove { name } => { model.remove(OP_NAMES[name]); }
            }
            check_config_state(&user, &user_profiles, &text, &model)?;
        }
        let edits: Vec<Edit<ProfileSection>> = ops.iter().map(config_op_edit).collect();
        match splice_config(&user.text, &edits, config_path()) {
            Ok(batch) => check_config_state(&user, &user_profiles, &batch, &model)?,
            Err(Error::NoRoom { .. }) => prop_assert!(no_room),
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        }
    }

    #[test]
    fn issue_15_edits_of_the_users_config_profiles_are_refused(user in user_file(), pick in any::<prop::sample::Index>(), up in any::<bool>()) {
        let user_profiles: Vec<String> =
            user.names.iter().filter_map(|n| config_profile(n)).collect();
        prop_assume!(!user_profiles.is_empty());
        let name = pick.get(&user_profiles);
        prop_assume!(!name.contains(' '));
        let edit = if up { put(name, "x") } else { drop_profile(name) };
        let err = splice_config(&user.text, &[edit], config_path());
        // `[default]` and `[profile default]` both name `default`: one is ambiguous.
        if user_profiles.iter().filter(|n| *n == name).count() > 1 {
            prop_assert!(matches!(err, Err(Error::Duplicate { .. })), "{:?}", err);
        } else {
            prop_assert!(matches!(err, Err(Error::NotOwned { .. })), "{:?}", err);
        }
    }
}

// Issue 14: `rolecall import` comments out the role keys of the user's config profiles.

fn comment_out(name: &str, keys: &[&str]) -> Edit<ProfileSection> {
    Edit::CommentOut {
        name: name.to_owned(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    }
}

const M: &str = COMMENTED_OUT_PREFIX;

#[rstest]
#[case::role_keys_only(
    "# mine\n[profile dev]\nrole_arn = arn:x\nregion = eu-west-1\nsource_profile = work\noutput = json\n\n[profile work]\nrole_arn = keep\n",
    "# mine\n[profile dev]\n{M}role_arn = arn:x\nregion = eu-west-1\n{M}source_profile = work\noutput = json\n\n[profile work]\nrole_arn = keep\n"
)]
#[case::crlf_spacing_and_key_case(
    "[profile dev]\r\n  ROLE_ARN   :  arn:x  \r\nregion=x\r\n",
    "[profile dev]\r\n{M}  ROLE_ARN   :  arn:x  \r\nregion=x\r\n"
)]
#[case::continuation_lines_go_with_their_key(
    "[profile dev]\nrole_arn = a\n  b\n\n  c\n# note\nregion = x\n",
    "[profile dev]\n{M}role_arn = a\n{M}  b\n\n{M}  c\n# note\nregion = x\n"
)]
#[case::last_line_without_newline(
    "[profile dev]\nregion = x\nrole_arn = a",
    "[profile dev]\nregion = x\n{M}role_arn = a"
)]
#[case::default_section("[default]\nrole_arn = a\n", "[default]\n{M}role_arn = a\n")]
#[case::no_such_key("[profile dev]\nregion = x\n", "[profile dev]\nregion = x\n")]
#[case::no_such_profile(
    "[dev]\nrole_arn = a\n[sso-session dev]\nrole_arn = a\n",
    "[dev]\nrole_arn = a\n[sso-session dev]\nrole_arn = a\n"
)]
fn issue_14_comment_out_turns_only_those_keys_into_comments(
    #[case] user: &str,
    #[case] expected: &str,
) {
    let name = if user.contains("[default]") {
        "default"
    } else {
        "dev"
    };
    let edit = comment_out(name, &["role_arn", "source_profile"]);
    assert_eq!(apply_config(user, &[edit]), expected.replace("{M}", M));
}

#[test]
fn issue_14_comment_out_leaves_rolecalls_own_sections_alone() {
    let ours = config_block("profile dev", "eu-west-1");
    let edit = comment_out("dev", &["region", "x_rolecall_managed"]);
    assert_eq!(apply_config(&ours, &[edit]), ours);
}

#[rstest]
#[case::own_header("[profile x]\nregion = a\n  [profile dev]\nrole_arn = a\n", 3)]
#[case::next_header("[profile dev]\nregion = a\n  [profile x]\nrole_arn = a\n", 3)]
fn issue_14_comment_out_next_to_an_indented_header_is_refused(
    #[case] user: &str,
    #[case] line: usize,
) {
    let err = splice_config(user, &[comment_out("dev", &["role_arn"])], config_path());
    assert!(
        matches!(err, Err(Error::IndentedHeader { line: l, .. }) if l == line),
        "{err:?}"
    );
}

#[test]
fn issue_14_comment_out_of_an_ambiguous_profile_is_refused() {
    let user = "[default]\nrole_arn = a\n[profile default]\nrole_arn = b\n";
    let err = splice_config(
        user,
        &[comment_out("default", &["role_arn"])],
        config_path(),
    );
    assert!(matches!(err, Err(Error::Duplicate { .. })), "{err:?}");
}

#[test]
fn issue_14_a_commented_out_profile_cannot_be_taken_over_without_adopt() {
    let user = "[profile dev]\nrole_arn = a\nregion = x\n";
    let err = splice_config(
        user,
        &[comment_out("dev", &["role_arn"]), put("dev", "y")],
        config_path(),
    );
    assert!(matches!(err, Err(Error::NotOwned { .. })), "{err:?}");
}

/// `profiles` without the `keys` of the section that `header` names (as the reader shows it).
fn without_keys(mut profiles: Profiles, header: &str, keys: &[&str]) -> Profiles {
    for (name, options) in profiles.iter_mut() {
        if name.trim() == header {
            options.retain(|k, _| !keys.iter().any(|gone| gone.eq_ignore_ascii_case(k)));
        }
    }
    profiles
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn issue_14_comment_out_changes_only_what_readers_see_of_those_keys(
        user in user_file(),
        pick in any::<prop::sample::Index>(),
        keys in prop::sample::subsequence(vec!["region", "output", "aws_access_key_id", "s3", "schlüssel"], 1..3),
    ) {
        prop_assume!(!user.names.is_empty());
        let header = pick.get(&user.names).clone();
        // sections that are no profile's are never touched (see the cases above)
        let Some(name) = config_profile(&header) else {
            return Ok(());
        };
        let out = match splice_config(&user.text, &[comment_out(&name, &keys)], config_path()) {
            Ok(out) => out.to_string(),
            // configparser may read an indented header as part of a value: refused
            Err(Error::IndentedHeader { line, .. }) => {
                let text = user.text.trim_start_matches(BOM);
                let l = text.split('\n').nth(line - 1).unwrap_or_default();
                prop_assert!(l.starts_with([' ', '\t']) && l.trim_start().starts_with('['), "{:?}", l);
                return Ok(());
            }
            Err(Error::Duplicate { .. }) => {
                let count = user.names.iter().filter(|n| config_profile(n).as_deref() == Some(&name)).count();
                prop_assert!(count > 1);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        // line for line: a line is kept, or commented out whole
        let (before, after): (Vec<&str>, Vec<&str>) =
            (user.text.split('\n').collect(), out.split('\n').collect());
        prop_assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(a == b || a.strip_prefix(M) == Some(*b), "{:?} -> {:?}", b, a);
        }
        // configparser (botocore) sees the section without those keys, and nothing else moved
        if let Ok(expected) = configparser(&user.text) {
            prop_assert_eq!(configparser(&out), Ok(without_keys(expected, &header, &keys)), "{:?}", out);
        }
        // the Rust SDK too, where it reads the file's keys as configparser does: no indented
        // lines (it takes them for continuations wherever they are), and the same key names
        // (it splits a line at its first `=` only: `output:=` is key `output:` to it, key
        // `output` to configparser, whose reading the edit follows, since botocore's is the
        // one that shadows)
        let flush = user.text.lines().all(|l| l.trim().is_empty() || !l.starts_with([' ', '\t']));
        let names = |p: &Profiles| -> Vec<(String, Vec<String>)> {
            p.iter().map(|(s, kv)| (s.clone(), kv.keys().cloned().collect())).collect()
        };
        let same_names = match (rust_sdk(&user.text), configparser(&user.text)) {
            (Ok(r), Ok(c)) => names(&r) == names(&c),
            _ => false,
        };
        if flush && same_names && let Ok(expected) = rust_sdk(&user.text) {
            prop_assert_eq!(rust_sdk(&out), Ok(without_keys(expected, &header, &keys)), "{:?}", out);
        }
    }
}

#[cfg(unix)]
#[test]
fn issue_14_a_changed_config_file_is_backed_up_first_with_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".aws/config");
    let backup = dir.path().join(".aws/config.rolecall-backup");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let user = "# mine\n[profile dev]\nrole_arn = a\nregion = x\n";
    std::fs::write(&path, user).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let file = CredentialsFile::new(path.clone());
    let edit = comment_out("dev", &["role_arn"]);
    assert!(
        file.apply_config_with_backup(std::slice::from_ref(&edit), &backup)
            .unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("# mine\n[profile dev]\n{M}role_arn = a\nregion = x\n")
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), user);
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // nothing to change: nothing written, no backup made
    std::fs::remove_file(&backup).unwrap();
    assert!(!file.apply_config_with_backup(&[edit], &backup).unwrap());
    assert!(!backup.exists());
}
