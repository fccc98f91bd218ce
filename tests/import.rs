//! `rolecall import` (issue 14): README's path from role profiles in `~/.aws/config` to
//! Rolecall, end to end with the real AWS CLI; what it skips and changes, said in its output.

use std::fs;

use crate::support::{Rolecall, Sandbox, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, World};

/// A user's `~/.aws/config` as the AWS CLI docs teach it: a source with its MFA device, a role
/// profile using it (with `region`/`output`), other profiles, comments and an SSO session.
const AWS_CONFIG: &str = "\
# my aws config
[default]
region = us-east-1
output = json

[profile work]
region = us-east-1

; the admin role
[profile dev-admin]
role_arn = arn:aws:iam::222222222222:role/Admin
source_profile = work
mfa_serial = arn:aws:iam::123456789012:mfa/alice
region = eu-west-1
output = text   
duration_seconds = 3600

[profile other]
region = ap-south-1
# a comment inside

[sso-session corp]
sso_start_url = https://example.invalid/start
sso_region = us-east-1
";

/// `AWS_CONFIG` after import: only dev-admin's role keys are commented out.
const AWS_CONFIG_AFTER: &str = "\
# my aws config
[default]
region = us-east-1
output = json

[profile work]
region = us-east-1

; the admin role
[profile dev-admin]
# moved to rolecall: role_arn = arn:aws:iam::222222222222:role/Admin
# moved to rolecall: source_profile = work
# moved to rolecall: mfa_serial = arn:aws:iam::123456789012:mfa/alice
region = eu-west-1
output = text   
# moved to rolecall: duration_seconds = 3600

[profile other]
region = ap-south-1
# a comment inside

[sso-session corp]
sso_start_url = https://example.invalid/start
sso_region = us-east-1
";

/// Files in `dir` whose name starts with `prefix`.
fn files_starting(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

#[test]
fn issue_14_readme_import_path_works_with_the_aws_cli() {
    let world = World::start();
    let aws_config = world.sandbox.aws_config_path();
    world.sandbox.write(&aws_config, AWS_CONFIG);
    let user_credentials = format!(
        "# my keys\n[work]\naws_access_key_id = {TEST_ACCESS_KEY_ID}\naws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n\n[personal]\nregion = x\n"
    );
    world
        .sandbox
        .write(world.sandbox.credentials_path(), &user_credentials);

    // the dry run shows exactly what would change, and changes nothing
    let out = world.rc(&["import", "--dry-run"]).run().success();
    assert_contains!(out.stdout, "would add profile dev-admin");
    assert_contains!(
        out.stdout,
        "-role_arn = arn:aws:iam::222222222222:role/Admin\n\
         +# moved to rolecall: role_arn = arn:aws:iam::222222222222:role/Admin\n"
    );
    assert_contains!(out.stdout, "@@ line 11 [profile dev-admin] @@");
    eqnice!(AWS_CONFIG, world.sandbox.read(&aws_config));
    assert!(
        !world.sandbox.config_path().exists(),
        "dry run wrote the config"
    );

    let out = world.rc(&["import"]).run().success();
    assert_contains!(out.stdout, "added profile dev-admin");
    assert_contains!(out.stdout, "+# moved to rolecall: source_profile = work\n");
    assert_contains!(out.stdout, "next: rolecall keys import work --scrub");
    assert_contains!(out.stdout, "next: rolecall refresh");
    eqnice!(AWS_CONFIG_AFTER, world.sandbox.read(&aws_config));
    // the user's file as it was, kept beside it and named in the output
    let backups = files_starting(&world.sandbox.aws_dir(), "config.rolecall-");
    assert_eq!(backups.len(), 1, "{backups:?}");
    eqnice!(AWS_CONFIG, fs::read_to_string(&backups[0]).unwrap());
    assert_contains!(out.stdout, &backups[0].display().to_string());

    // a second import has nothing left to do and touches nothing
    let out = world.rc(&["import"]).run().success();
    assert_contains!(out.stdout, "nothing to import");
    eqnice!(AWS_CONFIG_AFTER, world.sandbox.read(&aws_config));
    assert_eq!(
        files_starting(&world.sandbox.aws_dir(), "config.rolecall-").len(),
        1
    );

    world
        .rc(&["keys", "import", "work", "--scrub"])
        .run()
        .success();
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();

    // the AWS CLI, reading the user's real ~/.aws/config, gets Rolecall's role credentials
    let out = world
        .rolecall
        .caller_identity("dev-admin")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .run()
        .success();
    let arn = out.json()["Arn"].as_str().unwrap_or_default().to_string();
    assert_contains!(arn, "assumed-role/Admin/");
    // the region stayed the user's, as did every other byte of the config file
    let out = world
        .rolecall
        .aws(&["configure", "get", "region", "--profile", "dev-admin"])
        .run()
        .success();
    assert_eq!(out.stdout.trim(), "eu-west-1");
    eqnice!(AWS_CONFIG_AFTER, world.sandbox.read(&aws_config));
    eqnice!(
        "# my keys\n[personal]\nregion = x\n",
        world
            .credentials()
            .split_once("# my keys\n")
            .map(|(_, user)| format!("# my keys\n{user}"))
            .unwrap_or_default()
    );
}

#[test]
fn issue_14_import_says_what_it_skipped_and_changed() {
    let sandbox = Sandbox::new();
    let rolecall = Rolecall::new(&sandbox);
    sandbox.write(
        sandbox.aws_config_path(),
        "[profile corp]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n\n\
         [sso-session corp]\nsso_start_url = https://example.invalid/start\nsso_region = us-east-1\n\n\
         [profile a]\nrole_arn = arn:aws:iam::222222222222:role/A\nsource_profile = work\n\
         mfa_serial = arn:aws:iam::123456789012:mfa/alice\n\n\
         [profile b]\nrole_arn = arn:aws:iam::222222222222:role/B\nsource_profile = work\n\
         mfa_serial = arn:aws:iam::123456789012:mfa/bob\n",
    );
    for args in [&["import", "--dry-run"][..], &["import"]] {
        let out = rolecall.cmd(args).run().success();
        assert_contains!(
            out.stdout,
            "skipped corp: an IAM Identity Center (SSO) profile"
        );
        assert_contains!(
            out.stdout,
            "changed b: its mfa_serial arn:aws:iam::123456789012:mfa/bob differs from \
             arn:aws:iam::123456789012:mfa/alice, the MFA device of source work"
        );
    }
    let config = sandbox.read(sandbox.config_path());
    assert_contains!(
        config,
        "[sources.work]\nmfa_serial = \"arn:aws:iam::123456789012:mfa/alice\""
    );
    // the SSO profile is the user's as it was
    assert_contains!(
        sandbox.read(sandbox.aws_config_path()),
        "[profile corp]\nsso_session = corp\n"
    );
}
