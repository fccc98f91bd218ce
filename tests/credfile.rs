//! The credentials file through the real binary: the user's bytes survive every cycle, two
//! writers never lose an update, and `kill -9` never leaves a torn file.

use std::time::Duration;

use proptest::prelude::*;

use crate::support::credfile::expect_key_id;
use crate::support::{Fault, Process, World, wait_until};

/// A config with `n` independent role profiles `r0..r{n-1}` on source bastion.
fn many_roles(n: usize) -> String {
    let mut c = String::from(
        "[settings]\nsts_timeout = \"5s\"\n\n[sources.bastion]\nmfa_serial = \"arn:aws:iam::123456789012:mfa/alice\"\n",
    );
    for i in 0..n {
        c.push_str(&format!(
            "\n[profiles.r{i}]\nsource = \"bastion\"\nrole_arn = \"arn:aws:iam::2222222222{:02}:role/R{i}\"\n",
            i % 100
        ));
    }
    c
}

/// The text with every managed section (and its separator line) cut out, using a reader
/// independent of the product's: a managed section is a header followed by
/// `x_rolecall_managed`, spanning to its last key line.
fn user_part(text: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let is_header = t.starts_with('[');
        let managed = is_header
            && lines
                .get(i + 1)
                .is_some_and(|l| l.trim_start().starts_with("x_rolecall_managed"));
        if !managed {
            out.push_str(lines[i]);
            i += 1;
            continue;
        }
        // skip the header and key lines up to the last key line before the next header
        let mut last_key = i;
        let mut j = i + 1;
        while j < lines.len() && !lines[j].trim_start().starts_with('[') {
            let l = lines[j].trim();
            if !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') {
                last_key = j;
            }
            j += 1;
        }
        i = last_key + 1;
        // and the blank separator after it
        if i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
    }
    out
}

/// Every managed section is whole: its four credential keys are all there.
fn assert_sections_whole(text: &str, names: &[&str]) {
    for name in names {
        let header = format!("[{name}]");
        let start = text
            .find(&header)
            .unwrap_or_else(|| panic!("no {header} in:\n{text}"));
        let body: String = text[start + header.len()..]
            .lines()
            .skip(1)
            .take_while(|l| !l.trim_start().starts_with('['))
            .collect::<Vec<_>>()
            .join("\n");
        for key in [
            "x_rolecall_expiration",
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        ] {
            assert!(body.contains(key), "{header} lacks {key}:\n{text}");
        }
        let token = body
            .lines()
            .find(|l| l.starts_with("aws_session_token"))
            .unwrap_or_default();
        assert!(token.len() > 40, "{header} has a torn token: {token:?}");
    }
}

/// User files made of what people really have: comments, CRLF, odd spacing, blank runs,
/// non-ASCII, with or without a final newline. Always a file botocore can read (every key under
/// a header, no duplicate section), since that is the file Rolecall must not break.
fn user_file() -> impl Strategy<Value = String> {
    let filler = prop_oneof![
        Just("# a comment".to_string()),
        Just("; another comment".to_string()),
        Just("".to_string()),
        Just("   ".to_string()),
        Just("# ünïcødé ☃ profile notes".to_string()),
    ];
    let body = prop_oneof![
        Just("aws_access_key_id=AKIAIOSFODNN7EXAMPLE".to_string()),
        Just("aws_secret_access_key =   wJalrXUtnFEMI/K7MDENG".to_string()),
        Just("region\t=\teu-central-1".to_string()),
        Just("output = json".to_string()),
        Just("# a comment inside".to_string()),
        Just("".to_string()),
    ];
    let headers = [
        "[personal]",
        "[spaced]  ",
        "[work] ; with a note",
        "[ünï]",
        "[prod]",
    ];
    let sections =
        prop::sample::subsequence(headers.to_vec(), 0..=headers.len()).prop_flat_map(move |hs| {
            let n = hs.len();
            (
                Just(hs),
                prop::collection::vec(prop::collection::vec(body.clone(), 0..5), n),
            )
        });
    (
        prop::collection::vec(filler, 0..4),
        sections,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(pre, (headers, bodies), crlf, final_newline)| {
            let mut lines: Vec<String> = pre;
            for (h, body) in headers.iter().zip(bodies) {
                lines.push((*h).to_string());
                lines.extend(body);
            }
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut s = lines.join(eol);
            if final_newline && !s.is_empty() {
                s.push_str(eol);
            }
            s
        })
}

#[test]
fn user_bytes_survive_refresh_use_clear_cycles() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let path = world.sandbox.credentials_path();
    let config = proptest::test_runner::Config {
        cases: 12,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&user_file(), |original| {
            // a section named like a managed profile would be refused; the grammar has none
            std::fs::write(&path, &original).unwrap();
            for round in 0..3 {
                world
                    .rc(&["refresh", "--force", "--mfa-code", "123456"])
                    .run()
                    .success();
                let text = std::fs::read_to_string(&path).unwrap();
                prop_assert_eq!(
                    user_part(&text),
                    original.clone(),
                    "after refresh, round {}",
                    round
                );
                assert_sections_whole(&text, &["dev-admin", "audit", "session"]);
                world.rc(&["use", "audit"]).run().success();
                let text = std::fs::read_to_string(&path).unwrap();
                prop_assert_eq!(
                    user_part(&text),
                    original.clone(),
                    "after use, round {}",
                    round
                );
                world.rc(&["clear", "audit"]).run().success();
                world.rc(&["use", "--none"]).run().success();
            }
            world.rc(&["clear", "dev-admin", "session"]).run().success();
            let text = std::fs::read_to_string(&path).unwrap();
            prop_assert_eq!(text, original, "after clearing every managed section");
            Ok(())
        })
        .unwrap();
}

#[test]
fn two_processes_refreshing_at_once_lose_nothing() {
    let world = World::start();
    world.setup(&many_roles(12));
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let path = world.sandbox.credentials_path();
    let names: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
    let (a, b) = names.split_at(6);
    let logs = world.sandbox.log_dir();
    for round in 0..8 {
        let before = std::fs::read_to_string(&path).unwrap();
        let mut args_a = vec!["refresh", "--force"];
        args_a.extend(a.iter().map(String::as_str));
        let mut args_b = vec!["refresh", "--force"];
        args_b.extend(b.iter().map(String::as_str));
        let mut pa = world
            .rc(&args_a)
            .spawn("writer-a", &logs.join(format!("a{round}.log")));
        let mut pb = world
            .rc(&args_b)
            .spawn("writer-b", &logs.join(format!("b{round}.log")));
        let sa = pa
            .wait_timeout(Duration::from_secs(60))
            .expect("writer a finished");
        let sb = pb
            .wait_timeout(Duration::from_secs(60))
            .expect("writer b finished");
        assert!(
            sa.success() && sb.success(),
            "a: {}\nb: {}",
            pa.log(),
            pb.log()
        );
        let after = std::fs::read_to_string(&path).unwrap();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_sections_whole(&after, &refs);
        // every section was renewed: both writers' updates landed
        for name in &names {
            assert_ne!(
                expect_key_id(&before, name),
                expect_key_id(&after, name),
                "round {round}: [{name}] lost an update"
            );
        }
    }
}

#[test]
fn kill_9_mid_write_never_leaves_a_torn_or_empty_file() {
    let world = World::start();
    world.setup(&many_roles(30));
    // a big user file makes each write long enough to be interrupted
    let mut original = String::from("# the user's own, big file\n");
    for i in 0..20_000 {
        original.push_str(&format!(
            "[user{i}]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n# note {i}\n\n"
        ));
    }
    let path = world.sandbox.credentials_path();
    std::fs::write(&path, &original).unwrap();
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let names: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let logs = world.sandbox.log_dir();
    let check = |round: &str| {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.is_empty(), "{round}: empty file");
        assert_eq!(
            user_part(&text),
            original,
            "{round}: the user's part changed"
        );
        assert_sections_whole(&text, &refs);
    };
    let spawn = |round: &str| -> Process {
        world
            .rc(&["refresh", "--force"])
            .spawn("writer", &logs.join(format!("{round}.log")))
    };
    // Each kill lands at a moment a probe saw, not at a guessed delay: right after the start
    // (config, keychain), while STS holds its answer, and while the writer holds the file's
    // lock (reading, splicing, writing, renaming).
    for round in 0..3 {
        let name = format!("start{round}");
        spawn(&name).kill();
        check(&name);

        let name = format!("sts{round}");
        world
            .proxy
            .set_rule_for("AssumeRole", Fault::Delay(Duration::from_secs(120)));
        let asked = world.proxy.count("AssumeRole");
        let mut p = spawn(&name);
        let reached = wait_until(Duration::from_secs(30), || {
            (world.proxy.count("AssumeRole") > asked).then_some(())
        });
        assert!(reached.is_some(), "{name}: the writer never reached STS");
        assert!(p.is_running(), "{name}: the writer did not wait for STS");
        p.kill();
        world.proxy.clear_rule();
        check(&name);
    }
    // Mid-write: the probe spins until the writer starts changing the directory, a new entry
    // (an atomic writer's temp file) or the file itself (size or time: a writer in place),
    // and kills it then. A writer in place is caught with an empty or torn file this way.
    let dir = path.parent().unwrap().to_path_buf();
    let names = || -> std::collections::BTreeSet<std::ffi::OsString> {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect()
    };
    let stamp = || {
        std::fs::metadata(&path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let (mut killed_writing, mut runs) = (0, 0);
    while killed_writing < 5 {
        runs += 1;
        assert!(
            runs <= 100,
            "the writer was caught writing in only {killed_writing} of {runs} runs"
        );
        let name = format!("write{runs}");
        let (before_names, before_stamp) = (names(), stamp());
        let mut p = spawn(&name);
        while p.is_running() {
            if stamp() != before_stamp || !names().is_subset(&before_names) {
                p.kill();
                killed_writing += 1;
                break;
            }
        }
        p.kill();
        check(&name);
    }
    // a later writer cleans up the temp files the killed ones left
    world.rc(&["refresh", "--force", "r0"]).run().success();
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "stale temp files: {leftovers:?}");
}

#[cfg(unix)]
#[test]
fn symlinked_credentials_file_is_written_through() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let dotfiles = world.sandbox.path("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let target = dotfiles.join("aws-credentials");
    std::fs::write(&target, "# tracked in git\n").unwrap();
    let link = world.sandbox.credentials_path();
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();

    world
        .rc(&["refresh", "--mfa-code", "123456", "dev-admin"])
        .run()
        .success();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "link replaced"
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(
        text.contains("[dev-admin]") && text.ends_with("# tracked in git\n"),
        "{text}"
    );
}

#[test]
fn unreadable_credentials_file_is_a_clear_error_and_is_left_alone() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let path = world.sandbox.credentials_path();
    std::fs::write(&path, b"[x]\nregion = \xff\xfe broken utf8\n").unwrap();
    let out = world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .failure();
    assert_contains!(out.stderr, &path.display().to_string());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"[x]\nregion = \xff\xfe broken utf8\n"
    );
}

/// Issue 13, item 1: after `rolecall use`, the user puts their own long-lived key into
/// `[default]` with the real AWS CLI (which keeps rolecall's marker). Renewal, `clear` and
/// `use --none` leave it alone and say why; `use --adopt` hands it back.
#[test]
fn issue_13_a_section_changed_by_aws_configure_is_never_overwritten_or_removed() {
    const USER_KEY: &str = "AKIAI44QH8DHBEXAMPLE";
    const USER_SECRET: &str = "userSecret/K7MDENGbPxRfiCYEXAMPLEKEY42";
    let world = World::start();
    world.setup(crate::support::CONFIG);
    world
        .rc(&["use", "dev-admin", "--mfa-code", "123456"])
        .run()
        .success();
    for (key, value) in [
        ("aws_access_key_id", USER_KEY),
        ("aws_secret_access_key", USER_SECRET),
    ] {
        world
            .rolecall
            .aws(&["configure", "set", key, value])
            .run()
            .success();
    }
    let edited = world.credentials();
    let default_section = |text: &str| -> String {
        let start = text
            .find("[default]")
            .unwrap_or_else(|| panic!("no [default]:\n{text}"));
        let rest = &text[start + 1..];
        let end = rest.find("\n[").map_or(text.len(), |i| start + 1 + i);
        text[start..end].trim_end().to_string()
    };
    let user_default = default_section(&edited);
    assert_contains!(user_default, USER_KEY);
    assert_contains!(user_default, "x_rolecall_managed");

    // renewal: [default] fails alone, the other profiles are written
    let out = world
        .rc(&["refresh", "--force", "--mfa-code", "123456"])
        .run()
        .code_is(1);
    assert_contains!(out.stderr, "[default]");
    assert_contains!(out.stderr, "changed since rolecall wrote it");
    assert_contains!(out.stderr, "rolecall use PROFILE --adopt");
    let text = world.credentials();
    assert_eq!(default_section(&text), user_default, "renewal overwrote it");
    for profile in ["dev-admin", "audit", "session"] {
        assert_contains!(text, format!("[{profile}]\n"));
    }

    // clear and use --none refuse it too
    let out = world.rc(&["clear"]).run().code_is(1);
    assert_contains!(out.stderr, "changed since rolecall wrote it");
    assert_eq!(default_section(&world.credentials()), user_default);
    assert!(
        !world.credentials().contains("[dev-admin]"),
        "clear removed the others"
    );
    let out = world.rc(&["use", "--none"]).run().code_is(1);
    assert_contains!(out.stderr, "changed since rolecall wrote it");
    assert_eq!(default_section(&world.credentials()), user_default);

    // handing it back: --adopt will not overwrite the user's long-lived key (issue 14)
    let out = world
        .rc(&["use", "dev-admin", "--adopt", "--mfa-code", "123456"])
        .run()
        .code_is(1);
    assert_contains!(out.stderr, "rolecall keys import default --scrub");
    assert_eq!(default_section(&world.credentials()), user_default);
    // once the key is in the keychain, [default] is free
    world
        .rc(&["keys", "import", "default", "--scrub"])
        .run()
        .success();
    world
        .rc(&["use", "dev-admin", "--mfa-code", "123456"])
        .run()
        .success();
    let text = world.credentials();
    assert!(!text.contains(USER_KEY), "{text}");
    assert_contains!(default_section(&text), "x_rolecall_fingerprint");
    let stored = world
        .keyring
        .lookup("rolecall", "source:default")
        .expect("the user's key moved into the keychain");
    assert_contains!(stored, USER_KEY);
}

/// Issue 14: `use --adopt` on a hand-written `[default]` holding a long-lived key refuses and
/// says how to move the key into the keychain; `use --none` then leaves it too. Nothing
/// rolecall removes is ever the user's own key.
#[test]
fn issue_14_use_adopt_never_destroys_a_long_lived_key_in_default() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let user = "# mine\n[default]\naws_access_key_id = AKIAI44QH8DHBEXAMPLE\n\
                aws_secret_access_key = userSecret/K7MDENGbPxRfiCYEXAMPLEKEY42\n";
    world.sandbox.write(world.sandbox.credentials_path(), user);
    let out = world
        .rc(&["use", "dev-admin", "--adopt", "--mfa-code", "123456"])
        .run()
        .code_is(1);
    assert_contains!(out.stderr, "long-lived access key …MPLE");
    assert_contains!(out.stderr, "rolecall keys import default --scrub");
    assert_not_contains!(out.stderr, "AKIAI44QH8DHBEXAMPLE");
    assert!(
        world.credentials().ends_with(user),
        "{}",
        world.credentials()
    );
    world.rc(&["use", "--none"]).run();
    assert!(
        world.credentials().ends_with(user),
        "{}",
        world.credentials()
    );
}

/// Issue 13: a bind-mounted credentials file (as `docker -v ~/.aws/credentials:…` makes) cannot
/// be replaced by a rename (EBUSY). Rolecall says so, names what to do, and leaves the file;
/// a hard-linked one is refused too instead of being split from its other name. Runs the
/// binary in a private mount namespace (`unshare -m`, root), with a real `mount --bind`.
#[cfg(unix)]
#[test]
fn issue_13_bind_mounted_and_hard_linked_files_are_refused_with_what_to_do() {
    use crate::support::{TestCommand, rolecall_bin};
    const USER: &str = "[personal]\nregion = eu-west-1\n";
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let path = world.sandbox.credentials_path();
    world.sandbox.write(&path, USER);
    let outside = world.sandbox.path("host-credentials");
    std::fs::write(&outside, USER).unwrap();

    let out = TestCommand::new("unshare", world.rolecall.environment().clone())
        .args([
            "-m",
            "sh",
            "-c",
            r#"mount --bind "$0" "$1" && shift && exec "$@""#,
        ])
        .arg(&outside)
        .arg(&path)
        .arg(rolecall_bin())
        .args(["refresh", "--mfa-code", "123456"])
        .run()
        .failure();
    assert_contains!(out.stderr, "is a mount point");
    assert_contains!(out.stderr, "mount its directory instead");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), USER);
    assert_eq!(world.credentials(), USER);

    let other = world.sandbox.path("second-name");
    std::fs::hard_link(&path, &other).unwrap();
    let out = world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .failure();
    assert_contains!(out.stderr, "2 hard links");
    assert_eq!(world.credentials(), USER);
    assert_eq!(std::fs::read_to_string(&other).unwrap(), USER);
}

/// Issue 14: the lock file is not left in `~/.aws` (nor beside a symlinked file's target in
/// a dotfiles folder): it lives in the runtime dir, keyed by the file's real path.
#[test]
fn issue_14_no_lock_file_is_left_beside_the_credentials_file() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let aws_dir = world
        .sandbox
        .credentials_path()
        .parent()
        .unwrap()
        .to_path_buf();
    let names: Vec<String> = std::fs::read_dir(&aws_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains("rolecall")),
        "left in {}: {names:?}",
        aws_dir.display()
    );
}

/// Provenance in each managed section (issue 17): the role, the source (or parent profile) and
/// when it was written, as keys the SDKs ignore; the AWS CLI, boto3 and aws-config still read
/// every profile.
#[test]
fn issue_17_managed_sections_say_where_they_came_from_and_every_client_reads_them() {
    let world = crate::support::World::start();
    world.setup(crate::support::CONFIG);
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let after = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    let text = world.credentials();
    let value = |section: &str, key: &str| crate::support::credfile::value(&text, section, key);
    assert_eq!(
        value("dev-admin", "x_rolecall_role").as_deref(),
        Some("arn:aws:iam::222222222222:role/Admin")
    );
    assert_eq!(
        value("dev-admin", "x_rolecall_source").as_deref(),
        Some("bastion")
    );
    assert_eq!(
        value("audit", "x_rolecall_role").as_deref(),
        Some("arn:aws:iam::333333333333:role/Audit")
    );
    assert_eq!(
        value("audit", "x_rolecall_source").as_deref(),
        Some("dev-admin")
    );
    // a session-token profile assumes no role
    assert_eq!(value("session", "x_rolecall_role"), None);
    assert_eq!(
        value("session", "x_rolecall_source").as_deref(),
        Some("bastion")
    );
    for section in ["dev-admin", "audit", "session"] {
        let generated = value(section, "x_rolecall_generated").unwrap_or_default();
        let at = humantime::parse_rfc3339(&generated)
            .unwrap_or_else(|e| panic!("{section}: {generated:?}: {e}"));
        assert!(before <= at && at <= after, "{section}: {generated}");
    }

    for profile in ["dev-admin", "audit", "session"] {
        // the AWS CLI
        let out = world.rolecall.caller_identity(profile).run().success();
        let arn = out.json()["Arn"].as_str().unwrap_or_default().to_string();
        // boto3
        let out = world
            .rolecall
            .python(&format!(
                "import boto3; print(boto3.Session(profile_name={profile:?}).get_credentials().access_key)"
            ))
            .run()
            .success();
        assert_eq!(
            out.stdout.trim(),
            crate::support::credfile::expect_key_id(&text, profile)
        );
        // Rust aws-config's profile provider
        let probe = crate::support::rolecall_bin().with_file_name("rolecall-sdk-probe");
        let out = crate::support::TestCommand::new(probe, world.rolecall.environment().clone())
            .args(["profile", "1"])
            .env("AWS_PROFILE", profile)
            .run();
        assert_eq!(out.code, Some(0), "{}", out.streams());
        assert_contains!(out.stdout, &arn);
    }
}
