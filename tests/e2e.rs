//! End to end through the real binary: key into the keychain → MFA session → role credentials
//! → managed sections → the real AWS CLI and boto3 use them.

use crate::support::credfile::expect_key_id;
use crate::support::{CONFIG, MFA_SERIAL, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, World};

/// `aws sts get-caller-identity --profile NAME` → the Arn it prints.
fn caller_arn(world: &World, profile: &str) -> String {
    let out = world
        .rolecall
        .caller_identity(profile)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", world.sandbox.path("no-aws-config"))
        .run()
        .success();
    out.json()["Arn"].as_str().unwrap_or_default().to_string()
}

#[test]
fn key_to_keychain_to_role_credentials_used_by_the_aws_cli() {
    let world = World::start();
    world.setup(CONFIG);

    // the key is in the real Secret Service, not in any file
    let stored = world
        .keyring
        .lookup("rolecall", "source:bastion")
        .expect("key in keychain");
    assert!(stored.contains(TEST_ACCESS_KEY_ID));
    let all_files = grep_sandbox(&world, TEST_SECRET_ACCESS_KEY);
    assert!(all_files.is_empty(), "secret found in files: {all_files:?}");

    let out = world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    assert_contains!(out.stdout, "dev-admin");
    assert_contains!(out.stdout, "renewed");
    // one MFA session, the code sent once, then one AssumeRole per role profile
    assert_eq!(world.proxy.count("GetSessionToken"), 1);
    let gst = world.proxy.first("GetSessionToken").unwrap();
    assert_eq!(gst.param("TokenCode"), Some("123456"));
    assert_eq!(gst.param("SerialNumber"), Some(MFA_SERIAL));
    assert_eq!(world.proxy.count("AssumeRole"), 2);

    // the session is cached in the keychain for the next process
    assert!(
        world
            .keyring
            .lookup("rolecall", "session:bastion")
            .is_some()
    );

    let text = world.credentials();
    for section in ["[dev-admin]", "[audit]", "[session]"] {
        assert_contains!(text, section);
    }
    assert_contains!(text, "x_rolecall_managed = true");
    assert_eq!(
        world.sandbox.mode(world.sandbox.credentials_path()) & 0o777,
        0o600
    );

    // the real AWS CLI, reading the credentials file, is the assumed role
    assert_eq!(
        caller_arn(&world, "dev-admin"),
        "arn:aws:sts::222222222222:assumed-role/Admin/rolecall-user"
    );
    // chained profile: assumed from dev-admin's credentials
    assert!(
        caller_arn(&world, "audit").starts_with("arn:aws:sts::333333333333:assumed-role/Audit/")
    );

    // a second refresh renews nothing and asks STS nothing
    let before = world.proxy.requests().len();
    let out = world.rc(&["refresh"]).run().success();
    assert_contains!(out.stdout, "still valid");
    assert_eq!(world.proxy.requests().len(), before);
    assert_eq!(world.credentials(), text);
}

fn grep_sandbox(world: &World, needle: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, needle: &[u8], out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                walk(&p, needle, out);
            } else if ft.is_file()
                && let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    // the keyring's own encrypted store is allowed to hold it; it is encrypted, so a plain
    // grep never matches there anyway
    walk(world.sandbox.root(), needle.as_bytes(), &mut out);
    out.retain(|p| !p.to_string_lossy().contains("/logs/"));
    out
}

#[test]
fn use_mirrors_into_default_and_none_removes_it() {
    let world = World::start();
    world.setup(CONFIG);
    world.sandbox.write(
        world.sandbox.credentials_path(),
        "# mine\n[other]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = x\n",
    );
    let out = world
        .rc(&["use", "dev-admin", "--mfa-code", "123456"])
        .run()
        .success();
    assert_contains!(out.stdout, "[default] now mirrors dev-admin");
    let config = world.sandbox.read(world.sandbox.config_path());
    assert_contains!(config, "active = \"dev-admin\"");
    assert_contains!(config, "# test config"); // the user's comment survived the edit

    // [default] holds dev-admin's keys
    let text = world.credentials();
    let default_key = expect_key_id(&text, "default");
    assert_eq!(default_key, expect_key_id(&text, "dev-admin"));
    assert_eq!(
        caller_arn(&world, "default"),
        "arn:aws:sts::222222222222:assumed-role/Admin/rolecall-user"
    );

    // a forced refresh renews [default] too
    world
        .rc(&["refresh", "--force", "dev-admin"])
        .run()
        .success();
    let text2 = world.credentials();
    assert_ne!(expect_key_id(&text2, "dev-admin"), default_key);
    assert_eq!(
        expect_key_id(&text2, "default"),
        expect_key_id(&text2, "dev-admin")
    );

    let status = world.rc(&["status", "--json"]).run().success().json();
    let dev = status
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == "dev-admin")
        .unwrap();
    assert_eq!(dev["active"], true);
    assert_eq!(dev["state"], "fresh");

    world.rc(&["use", "--none"]).run().success();
    let text3 = world.credentials();
    assert!(!text3.contains("[default]"), "{text3}");
    assert!(
        text3.ends_with(
            "# mine\n[other]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = x\n"
        ),
        "{text3}"
    );
    assert!(
        !world
            .sandbox
            .read(world.sandbox.config_path())
            .contains("active =")
    );
}

#[test]
fn unowned_section_is_refused_and_adopt_takes_it_over() {
    let world = World::start();
    world.setup(CONFIG);
    let user = "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = mine\n\n[dev-admin]\nregion = us-west-2\n";
    world.sandbox.write(world.sandbox.credentials_path(), user);

    let out = world
        .rc(&["refresh", "--mfa-code", "123456", "dev-admin"])
        .run()
        .code_is(1);
    assert_contains!(out.stderr, "[dev-admin]");
    // refresh has no --adopt: the message must not send the user to it
    assert_contains!(
        out.stderr,
        "delete it and run \"rolecall refresh dev-admin\""
    );
    assert_eq!(world.credentials(), user, "refused write changed the file");

    let out = world
        .rc(&["use", "session", "--mfa-code", "123456"])
        .run()
        .failure();
    assert_contains!(out.stderr, "[default]");
    assert!(world.credentials().contains("aws_secret_access_key = mine"));

    // adopting would destroy the long-lived key in it (issue 14): refused, with the way out
    let out = world.rc(&["use", "session", "--adopt"]).run().code_is(1);
    assert_contains!(out.stderr, "rolecall keys import default --scrub");
    assert!(
        world.credentials().ends_with(user),
        "{}",
        world.credentials()
    );

    // a [default] without a key of the user's is taken over
    let user = user.replace(
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = mine\n",
        "output = json\n",
    );
    world.sandbox.write(world.sandbox.credentials_path(), &user);
    world.rc(&["use", "session", "--adopt"]).run().success();
    let text = world.credentials();
    assert!(!text.contains("output = json"), "{text}");
    assert_contains!(text, "[dev-admin]\nregion = us-west-2\n");
}

/// `active` set by editing the config while the user keeps their own `[default]`: that one
/// section is refused (and said so), every other profile of the pass is still written.
#[test]
fn a_section_the_file_refuses_fails_only_its_profile() {
    let world = World::start();
    world.setup(&CONFIG.replace("[settings]\n", "[settings]\nactive = \"session\"\n"));
    let user =
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = mine\n";
    world.sandbox.write(world.sandbox.credentials_path(), user);

    let out = world
        .rc(&["refresh", "--all", "--mfa-code", "123456"])
        .run()
        .code_is(1);
    assert_contains!(out.stderr, "[default]");
    assert_contains!(out.stderr, "--adopt");
    let text = world.credentials();
    assert!(
        text.ends_with(user),
        "the user's [default] changed:\n{text}"
    );
    for profile in ["dev-admin", "audit", "session"] {
        assert_contains!(text, format!("[{profile}]\n"));
    }
    // the written profiles work
    assert_contains!(caller_arn(&world, "audit"), "333333333333");
}

/// `rolecall status | head -1`: a reader that hangs up is no error (and never a panic).
#[test]
fn output_into_a_closed_pipe_is_dropped_quietly() {
    const HANG_UP: &str = r#"
import subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
p.stdout.close()  # before rolecall has written anything
err = p.stderr.read().decode()
print(p.wait())
sys.stdout.write(err)
"#;
    let world = World::start();
    world.setup(CONFIG);
    world
        .rc(&["refresh", "--all", "--mfa-code", "123456"])
        .run()
        .success();
    for args in [&["status"][..], &["status", "--json"], &["export", "audit"]] {
        let out = world
            .rolecall
            .python(HANG_UP)
            .arg(crate::support::rolecall_bin())
            .args(args)
            .run()
            .success();
        let (code, stderr) = out.stdout.split_once('\n').unwrap_or_default();
        assert_eq!(code, "0", "{args:?}: {}", out.stdout);
        assert_not_contains!(stderr, "panicked");
        assert_eq!(stderr, "", "{args:?}");
    }
}

#[test]
fn exec_export_and_credential_process_hand_out_fresh_credentials() {
    let world = World::start();
    world.setup(CONFIG);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let key = expect_key_id(&world.credentials(), "dev-admin");

    // exec: the command sees the role's variables, AWS_PROFILE is gone, exit code passes through
    let out = world
        .rc(&["exec", "dev-admin", "--", "sh", "-c", "echo $AWS_ACCESS_KEY_ID $AWS_REGION ${AWS_PROFILE:-none} $AWS_CREDENTIAL_EXPIRATION; exit 7"])
        .env("AWS_PROFILE", "something-else")
        .run()
        .code_is(7);
    let fields: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(fields[..3], [key.as_str(), "eu-west-1", "none"]);
    assert!(fields[3].ends_with('Z'), "{}", out.stdout);

    // exec with the real AWS CLI
    let aws = crate::support::venv_bin("aws");
    let out = world
        .rc(&[
            "exec",
            "audit",
            "--",
            aws.to_str().unwrap(),
            "sts",
            "get-caller-identity",
            "--output",
            "json",
        ])
        .run()
        .success();
    assert_contains!(out.stdout, "assumed-role/Audit/");

    // export formats
    let sh = world.rc(&["export", "dev-admin"]).run().success().stdout;
    assert_contains!(sh, &format!("export AWS_ACCESS_KEY_ID='{key}'"));
    assert_contains!(sh, "unset AWS_PROFILE");
    let fish = world
        .rc(&["export", "dev-admin", "--format", "fish"])
        .run()
        .success()
        .stdout;
    assert_contains!(fish, &format!("set -gx AWS_ACCESS_KEY_ID '{key}'"));
    let ps = world
        .rc(&["export", "dev-admin", "--format", "powershell"])
        .run()
        .success()
        .stdout;
    assert_contains!(ps, &format!("$Env:AWS_ACCESS_KEY_ID = '{key}'"));
    let json = world
        .rc(&["export", "dev-admin", "--format", "json"])
        .run()
        .success()
        .json();
    assert_eq!(json["AWS_ACCESS_KEY_ID"], key.as_str());
    assert_eq!(json["AWS_REGION"], "eu-west-1");

    // credential_process, used by the real AWS CLI through ~/.aws/config
    let bin = crate::support::rolecall_bin();
    world.sandbox.write(
        world.sandbox.aws_config_path(),
        &format!("[profile via-process]\ncredential_process = {} credential-process dev-admin\nregion = us-east-1\n", bin.display()),
    );
    let out = world
        .rolecall
        .caller_identity("via-process")
        .run()
        .success();
    assert_contains!(out.stdout, "assumed-role/Admin/");
    let doc = world
        .rc(&["credential-process", "dev-admin"])
        .run()
        .success()
        .json();
    assert_eq!(doc["Version"], 1);
    assert_eq!(doc["AccessKeyId"], key.as_str());
    assert!(doc["SessionToken"].as_str().is_some_and(|t| !t.is_empty()));
}

#[test]
fn clear_removes_only_managed_sections_and_sessions() {
    let world = World::start();
    world.setup(CONFIG);
    let user = "; user's file\r\n[personal]\r\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\r\naws_secret_access_key = x";
    world.sandbox.write(world.sandbox.credentials_path(), user);
    world
        .rc(&["use", "dev-admin", "--mfa-code", "123456"])
        .run()
        .success();
    world.rc(&["refresh"]).run().success();
    assert!(
        world.credentials().contains("[audit]\r\n"),
        "CRLF kept for new sections"
    );

    let out = world.rc(&["clear", "audit"]).run().success();
    assert_contains!(out.stdout, "[audit]");
    assert!(!world.credentials().contains("[audit]"));
    assert!(world.credentials().contains("[dev-admin]"));

    world.rc(&["clear"]).run().success();
    assert_eq!(
        world.credentials(),
        user,
        "clear must give back the user's bytes"
    );
    assert!(
        world
            .keyring
            .lookup("rolecall", "session:bastion")
            .is_none(),
        "session forgotten"
    );
    assert!(
        world.keyring.lookup("rolecall", "source:bastion").is_some(),
        "key kept"
    );
    // without a session, the next refresh needs MFA again
    let out = world.rc(&["refresh"]).run().code_is(1);
    assert_contains!(out.stderr, "MFA");
}

#[test]
fn keys_import_scrub_moves_a_static_key_into_the_keychain() {
    let world = World::start();
    let user = format!(
        "# keep me\n[work]\naws_access_key_id = {TEST_ACCESS_KEY_ID}\naws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n\n[other]\nregion = x\n"
    );
    world.sandbox.write(world.sandbox.credentials_path(), &user);
    let out = world
        .rc(&["keys", "import", "work", "--as", "bastion", "--scrub"])
        .run()
        .success();
    assert_contains!(out.stdout, "removed [work]");
    assert_eq!(world.credentials(), "# keep me\n[other]\nregion = x\n");
    let stored = world.keyring.lookup("rolecall", "source:bastion").unwrap();
    assert_contains!(stored, TEST_SECRET_ACCESS_KEY);
    assert!(
        world
            .sandbox
            .read(world.sandbox.config_path())
            .contains("[sources.bastion]")
    );

    let list = world.rc(&["keys", "list", "--json"]).run().success().json();
    assert_eq!(list[0]["name"], "bastion");
    assert_eq!(list[0]["key_id"], "…MPLE");

    // a profile without a static key is refused, the file untouched
    let out = world.rc(&["keys", "import", "other"]).run().failure();
    assert_contains!(out.stderr, "[other]");
    assert_eq!(world.credentials(), "# keep me\n[other]\nregion = x\n");

    // remove refuses while a profile uses the source, then works
    world.sandbox.write(
        world.sandbox.config_path(),
        &format!(
            "{}\n[profiles.p]\nsource = \"bastion\"\n",
            world.sandbox.read(world.sandbox.config_path())
        ),
    );
    let out = world.rc(&["keys", "remove", "bastion"]).run().failure();
    assert_contains!(out.stderr, "still used by profile(s) p");
}

#[test]
fn import_turns_aws_config_roles_into_profiles() {
    let world = World::start();
    world.sandbox.write(
        world.sandbox.aws_config_path(),
        "[profile bastion]\nregion = us-east-1\n\n[profile dev-admin]\nrole_arn = arn:aws:iam::222222222222:role/Admin\nsource_profile = bastion\nmfa_serial = arn:aws:iam::123456789012:mfa/alice\nduration_seconds = 1800\n\n[profile audit]\nrole_arn = arn:aws:iam::333333333333:role/Audit\nsource_profile = dev-admin\n",
    );
    let out = world.rc(&["import", "--dry-run"]).run().success();
    assert_contains!(out.stdout, "would add profile dev-admin");
    assert!(
        !world.sandbox.config_path().exists(),
        "dry run wrote the config"
    );

    let out = world.rc(&["import"]).run().success();
    assert_contains!(out.stdout, "added source bastion");
    let config = world.sandbox.read(world.sandbox.config_path());
    assert_contains!(config, "[profiles.audit]");
    assert_contains!(config, "duration = \"30m\"");

    // the imported setup works end to end once the key is stored
    world
        .rc(&["keys", "add", "bastion"])
        .stdin(format!("{TEST_ACCESS_KEY_ID}\n{TEST_SECRET_ACCESS_KEY}\n"))
        .run()
        .success();
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    assert!(caller_arn(&world, "audit").contains("assumed-role/Audit/"));
}

#[test]
fn doctor_explains_shadowing_profiles_and_checks_the_clock() {
    let world = World::start();
    world.setup(CONFIG);
    world.sandbox.write(
        world.sandbox.aws_config_path(),
        "[profile dev-admin]\nrole_arn = arn:aws:iam::222222222222:role/Other\nsource_profile = x\n",
    );
    let out = world.rc(&["doctor"]).run().code_is(1);
    assert_contains!(out.stdout, "[profile dev-admin]");
    assert_contains!(out.stdout, "role_arn");
    assert_contains!(out.stdout, "clock");
    assert_contains!(out.stdout, "keychain");
    // issue 14: the advice works: import comments out the role keys of a Rolecall profile
    assert_contains!(out.stdout, "run `rolecall import`");
    let out = world.rc(&["import"]).run().success();
    assert_contains!(out.stdout, "skipped dev-admin: already a Rolecall profile");
    assert_contains!(out.stdout, "+# moved to rolecall: role_arn = ");
    let out = world.rc(&["doctor"]).run().success();
    assert_contains!(out.stdout, "no profile shadows a managed section");
}

#[test]
fn broken_config_names_file_line_and_key() {
    let world = World::start();
    world.sandbox.write(
        world.sandbox.config_path(),
        "[settings]\nrefresh_before = \"15m\"\n\n[profiles.x]\nsource = \"nope\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n",
    );
    let out = world.rc(&["status"]).run().code_is(2);
    let path = world.sandbox.config_path();
    assert_contains!(out.stderr, &format!("{}:5", path.display()));
    assert_contains!(out.stderr, "profiles.x.source");
    world.sandbox.write(
        world.sandbox.config_path(),
        "[settings]\nrefresh_befor = \"15m\"\n",
    );
    let out = world.rc(&["refresh"]).run().code_is(2);
    assert_contains!(out.stderr, "refresh_befor");
    assert_contains!(out.stderr, ":2");
}

/// Issue 13: `exec`, `export` and `credential-process` hand out credentials without a
/// writable credentials file (read-only here; the user's bytes stay as they are).
#[test]
fn issue_13_exec_export_and_credential_process_work_with_a_read_only_credentials_file() {
    use std::os::unix::fs::PermissionsExt;

    let world = World::start();
    world.setup(CONFIG);
    let user = "[mine]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = mine\n";
    let path = world.sandbox.credentials_path();
    world.sandbox.write(&path, user);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))
        .expect("making the credentials file read-only");

    let out = world
        .rc(&[
            "exec",
            "dev-admin",
            "--mfa-code",
            "123456",
            "--",
            "sh",
            "-c",
            "echo $AWS_ACCESS_KEY_ID",
        ])
        .run()
        .success();
    assert!(out.stdout.trim().starts_with("ASIA"), "{}", out.stdout);

    let sh = world.rc(&["export", "dev-admin"]).run().success().stdout;
    assert_contains!(sh, "export AWS_ACCESS_KEY_ID='ASIA");

    let doc = world
        .rc(&["credential-process", "dev-admin"])
        .run()
        .success()
        .json();
    assert_eq!(doc["Version"], 1);
    assert!(
        doc["AccessKeyId"]
            .as_str()
            .is_some_and(|k| k.starts_with("ASIA"))
    );

    // the real AWS CLI through credential_process
    let bin = crate::support::rolecall_bin();
    world.sandbox.write(
        world.sandbox.aws_config_path(),
        &format!("[profile via-process]\ncredential_process = {} credential-process dev-admin\nregion = us-east-1\n", bin.display()),
    );
    let out = world
        .rolecall
        .caller_identity("via-process")
        .run()
        .success();
    assert_contains!(out.stdout, "assumed-role/Admin/");
    assert_eq!(world.credentials(), user, "the read-only file was written");
}

/// Issue 15: `rolecall setup credential-process` writes a managed `[profile NAME]` into
/// `~/.aws/config` whose `credential_process` names this binary (quoted: its path here has a
/// space and a quote), and the real AWS CLI gets the assumed role through it. Names that
/// collide with a section of the credentials file or a profile the user wrote are refused,
/// and the user's bytes of the config file are kept.
#[test]
fn issue_15_setup_credential_process_writes_a_profile_the_aws_cli_uses() {
    let world = World::start();
    world.setup(CONFIG);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let dir = world.sandbox.path("my tools/it's here");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("rolecall");
    std::fs::copy(crate::support::rolecall_bin(), &bin).unwrap();
    let setup = |args: &[&str]| {
        crate::support::TestCommand::new(&bin, world.rolecall.environment().clone())
            .args(["setup", "credential-process"])
            .args(args)
            .current_dir(world.sandbox.home())
    };
    let user = "# mine\r\n[profile work]\r\nregion = us-east-1\r\n";
    world.sandbox.write(world.sandbox.aws_config_path(), user);

    // dev-admin has a managed section in the credentials file, whose keys would win
    let out = setup(&["dev-admin"]).run().code_is(2);
    assert_contains!(out.stderr, "a section rolecall manages");
    assert_contains!(out.stderr, "--as dev-admin-process");
    // a profile the user wrote
    let out = setup(&["dev-admin", "--as", "work"]).run().code_is(2);
    assert_contains!(out.stderr, "was not written by rolecall");
    // an unknown profile
    setup(&["nope", "--as", "x"]).run().code_is(2);
    assert_eq!(world.sandbox.read(world.sandbox.aws_config_path()), user);

    let out = setup(&["dev-admin", "--as", "dev-process"]).run().success();
    assert_contains!(out.stdout, "wrote [profile dev-process]");
    let text = world.sandbox.read(world.sandbox.aws_config_path());
    assert!(text.ends_with(user), "{text}");
    assert_contains!(
        text,
        &format!(
            "credential_process = '{}' credential-process dev-admin\r\n",
            bin.display().to_string().replace('\'', r"'\''")
        )
    );
    // again: nothing to change
    let out = setup(&["dev-admin", "--as", "dev-process"]).run().success();
    assert_contains!(out.stdout, "already set up");

    let out = world
        .rolecall
        .caller_identity("dev-process")
        .run()
        .success();
    assert_eq!(
        out.json()["Arn"].as_str().unwrap_or_default(),
        "arn:aws:sts::222222222222:assumed-role/Admin/rolecall-user"
    );
}

/// Issue 15: a profile's region is written as a managed `[profile NAME]` of `~/.aws/config`,
/// which the AWS CLI and boto3 read (the credentials file's `region` is ignored by the CLI v2
/// and the SDKs), and removed by `clear`; the user's bytes of the file are kept.
#[test]
fn issue_15_regions_are_written_to_the_aws_config_file_and_removed_with_clear() {
    let world = World::start();
    world.setup(CONFIG);
    let user = "# mine\n[profile work]\nregion = us-west-2\n";
    world.sandbox.write(world.sandbox.aws_config_path(), user);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let text = world.sandbox.read(world.sandbox.aws_config_path());
    assert!(text.ends_with(user), "{text}");
    assert_contains!(
        text,
        "[profile dev-admin]\nx_rolecall_managed = true\nregion = eu-west-1\n"
    );
    // session has no region (audit inherits dev-admin's, as in the credentials file)
    assert_not_contains!(text, "[profile session]");

    let out = world
        .rolecall
        .aws(&["configure", "get", "region", "--profile", "dev-admin"])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .run()
        .success();
    assert_eq!(out.stdout.trim(), "eu-west-1");
    let out = world
        .rolecall
        .python("import boto3; print(boto3.Session(profile_name='dev-admin').region_name)")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .run()
        .success();
    assert_eq!(out.stdout.trim(), "eu-west-1");
    // usable without --region
    let out = world
        .rolecall
        .caller_identity("dev-admin")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .run()
        .success();
    assert_contains!(out.stdout, "assumed-role/Admin/");

    world.rc(&["clear"]).run().success();
    assert_eq!(world.sandbox.read(world.sandbox.aws_config_path()), user);
}

/// Issue 14: after `rm -rf ~/.config/rolecall`, Rolecall's sections stay in the credentials
/// file: `status` and `doctor` name them and the command that removes them, `clear NAME`
/// removes one, and `clear` claims no forgotten session it did not forget.
#[test]
fn issue_14_orphaned_sections_are_reported_and_cleared_after_the_config_is_gone() {
    let world = World::start();
    world.setup(CONFIG);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    std::fs::remove_dir_all(world.sandbox.config_path().parent().unwrap()).unwrap();

    let out = world.rc(&["status"]).run().success();
    for name in ["dev-admin", "audit", "session"] {
        assert_contains!(
            out.stdout,
            &format!("[{name}] belongs to no profile of the config: rolecall clear {name}")
        );
    }
    // a warning (the files are as they should be otherwise): whatever else doctor finds
    let out = world.rc(&["doctor"]).run();
    assert_contains!(out.stdout, "warn  orphaned section");
    assert_contains!(out.stdout, "rolecall clear dev-admin");
    // and what the keychain still holds of the source the config had
    assert_contains!(
        out.stdout,
        "the keychain holds the key and a cached MFA session of source bastion"
    );
    assert_contains!(out.stdout, "`rolecall keys remove bastion`");

    let out = world.rc(&["clear", "dev-admin"]).run().success();
    assert_contains!(out.stdout, "removed [dev-admin]");
    assert_not_contains!(world.credentials(), "[dev-admin]");
    assert_contains!(world.credentials(), "[audit]");

    // clear removes what it can see: the sections, and the session of the source the config
    // had (the keychain lists it), saying so
    let out = world.rc(&["clear"]).run().success();
    assert_not_contains!(world.credentials(), "x_rolecall_managed");
    assert_contains!(
        out.stdout,
        "forgot the cached MFA session of source bastion"
    );
    assert!(
        world
            .keyring
            .lookup("rolecall", "session:bastion")
            .is_none()
    );
    assert!(
        world.keyring.lookup("rolecall", "source:bastion").is_some(),
        "key kept"
    );
    let out = world.rc(&["status"]).run().success();
    assert_not_contains!(out.stdout, "belongs to no profile");
    // the command doctor gave removes the keychain's orphans
    world.rc(&["keys", "remove", "bastion"]).run().success();
    assert!(world.keyring.lookup("rolecall", "source:bastion").is_none());
    assert!(
        world
            .keyring
            .lookup("rolecall", "session:bastion")
            .is_none()
    );
    let out = world.rc(&["doctor"]).run();
    assert_not_contains!(
        out.stdout,
        "of source bastion, which the config does not have"
    );
}

/// Issue 14: a profile removed from the config while no daemon ran keeps its section until
/// `clear NAME`; `status` says so meanwhile. `clear` says whose sessions it forgot.
#[test]
fn issue_14_a_removed_profiles_section_is_reported_until_cleared() {
    let world = World::start();
    world.setup(CONFIG);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let without_session = CONFIG.replace("[profiles.session]\nsource = \"bastion\"\n", "");
    world
        .sandbox
        .write(world.sandbox.config_path(), &without_session);
    let out = world.rc(&["status"]).run().success();
    assert_contains!(
        out.stdout,
        "[session] belongs to no profile of the config: rolecall clear session"
    );
    assert_not_contains!(out.stdout, "[dev-admin] belongs");
    let out = world.rc(&["doctor"]).run().success();
    assert_contains!(out.stdout, "warn  orphaned section");
    assert_contains!(out.stdout, "rolecall clear session");

    let out = world.rc(&["clear", "session"]).run().success();
    assert_contains!(out.stdout, "removed [session]");
    let out = world.rc(&["status"]).run().success();
    assert_not_contains!(out.stdout, "belongs to no profile");
    // an unknown name that is no section either is still an error
    world.rc(&["clear", "nope"]).run().code_is(2);

    let out = world.rc(&["clear"]).run().success();
    assert_contains!(
        out.stdout,
        "forgot the cached MFA session of source bastion"
    );
    assert!(
        world
            .keyring
            .lookup("rolecall", "session:bastion")
            .is_none()
    );
}

/// Issue 15: the AWS CLI with a `credential_process` profile, fifty calls at once while the
/// role's credentials must be renewed: every call gets the role's identity, and the role is
/// assumed once (the first call renews under the credentials file's lock; the others find its
/// credentials there).
#[test]
fn issue_15_fifty_parallel_credential_process_calls_cause_one_renewal() {
    let world = World::start();
    world.setup(CONFIG);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    // the role's credentials gone; the MFA session stays cached in the keychain
    world.rc(&["clear", "dev-admin"]).run().success();
    world
        .rc(&[
            "setup",
            "credential-process",
            "dev-admin",
            "--as",
            "dev-process",
        ])
        .run()
        .success();
    let before = world.proxy.count("AssumeRole");

    let outs: Vec<_> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..50)
            .map(|_| s.spawn(|| world.rolecall.caller_identity("dev-process").run()))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for out in &outs {
        assert_eq!(out.code, Some(0), "{}", out.streams());
        assert_contains!(out.stdout, "assumed-role/");
    }
    assert_eq!(
        world.proxy.count("AssumeRole") - before,
        1,
        "fifty calls, one renewal"
    );
    assert_eq!(
        world.proxy.count("GetSessionToken"),
        1,
        "the cached session was used"
    );
}
