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

/// awscli_bastion's layout (its README): the long-lived key, the MFA session profile and the
/// role profiles all in `~/.aws/credentials`; aws-runas's duration attributes in
/// `~/.aws/config`.
const BASTION_CREDENTIALS_USER: &str = "\
# stores short-lived sts.get_session_token() credentials for the bastion account
[bastion-sts]
mfa_serial = arn:aws:iam::123456789012:mfa/alice
credential_process = bastion get-session-token
source_profile = bastion

# assume role profiles
[dev-admin]
role_arn = arn:aws:iam::234567890123:role/admin
source_profile = bastion-sts

[personal]
region = x
";

/// `BASTION_CREDENTIALS_USER` once imported: dev-admin's section is Rolecall's, its role
/// keys comments below the marker; not a byte elsewhere changed.
const BASTION_CREDENTIALS_IMPORTED: &str = "\
# stores short-lived sts.get_session_token() credentials for the bastion account
[bastion-sts]
mfa_serial = arn:aws:iam::123456789012:mfa/alice
credential_process = bastion get-session-token
source_profile = bastion

# assume role profiles
[dev-admin]
x_rolecall_managed = true
# moved to rolecall: role_arn = arn:aws:iam::234567890123:role/admin
# moved to rolecall: source_profile = bastion-sts

[personal]
region = x
";

const BASTION_AWS_CONFIG: &str = "\
[default]
region = us-west-2
output = json

[profile bastion-sts]
session_token_duration = 8h

[profile dev-admin]
credentials_duration = 2h
";

#[test]
fn issue_17_import_takes_role_profiles_from_the_credentials_file_with_the_aws_cli() {
    let world = World::start();
    let key = format!(
        "[bastion]\naws_access_key_id = {TEST_ACCESS_KEY_ID}\naws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n\n"
    );
    let credentials = world.sandbox.credentials_path();
    world
        .sandbox
        .write(&credentials, &format!("{key}{BASTION_CREDENTIALS_USER}"));
    world
        .sandbox
        .write(world.sandbox.aws_config_path(), BASTION_AWS_CONFIG);

    let out = world.rc(&["import", "--dry-run"]).run().success();
    assert_contains!(out.stdout, "would add profile dev-admin");
    assert_contains!(
        out.stdout,
        "+x_rolecall_managed = true\n-role_arn = arn:aws:iam::234567890123:role/admin\n\
         +# moved to rolecall: role_arn = arn:aws:iam::234567890123:role/admin\n"
    );
    eqnice!(
        format!("{key}{BASTION_CREDENTIALS_USER}"),
        world.sandbox.read(&credentials)
    );

    let out = world.rc(&["import"]).run().success();
    assert_contains!(
        out.stdout,
        "added source bastion (MFA arn:aws:iam::123456789012:mfa/alice)"
    );
    assert_contains!(
        out.stdout,
        "added profile dev-admin (arn:aws:iam::234567890123:role/admin from bastion)"
    );
    assert_contains!(
        out.stdout,
        "changed dev-admin: its source_profile bastion-sts is a session made from the key of [bastion]"
    );
    assert_contains!(
        out.stdout,
        "skipped bastion-sts: gets its credentials from credential_process"
    );
    assert_contains!(out.stdout, "next: rolecall keys import bastion --scrub");
    eqnice!(
        format!("{key}{BASTION_CREDENTIALS_IMPORTED}"),
        world.sandbox.read(&credentials)
    );
    let config = world.sandbox.read(world.sandbox.config_path());
    assert_contains!(config, "session_duration = \"8h\"");
    assert_contains!(config, "duration = \"2h\"");
    // aws-runas's attributes moved too; the SDKs ignore them either way
    assert_contains!(
        world.sandbox.read(world.sandbox.aws_config_path()),
        "[profile dev-admin]\n# moved to rolecall: credentials_duration = 2h\n"
    );

    world
        .rc(&["keys", "import", "bastion", "--scrub"])
        .run()
        .success();
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    // the 8h MFA session and the 2h role credentials were asked for
    let sts = world.proxy.requests();
    let asked = |action: &str| {
        sts.iter()
            .find(|r| r.param("Action") == Some(action))
            .and_then(|r| r.param("DurationSeconds").map(str::to_string))
    };
    assert_eq!(asked("GetSessionToken").as_deref(), Some("28800"));
    assert_eq!(asked("AssumeRole").as_deref(), Some("7200"));

    let out = world.rolecall.caller_identity("dev-admin").run().success();
    let arn = out.json()["Arn"].as_str().unwrap_or_default().to_string();
    assert_contains!(arn, "assumed-role/admin/");
    // the user's other sections and the commented role keys are still there
    let after = world.credentials();
    assert_contains!(
        after,
        "# moved to rolecall: role_arn = arn:aws:iam::234567890123:role/admin\n\
         # moved to rolecall: source_profile = bastion-sts\n\n[personal]\nregion = x\n"
    );
    assert_contains!(after, "[bastion-sts]\nmfa_serial =");
    assert!(!after.contains(TEST_SECRET_ACCESS_KEY), "{after}");
}

/// A Rolecall profile whose name the user's credentials file already uses for a role profile:
/// refresh and doctor both say so and point at `rolecall import`, which takes the section
/// over; no message suggests a flag the command does not have.
#[test]
fn issue_17_a_same_named_role_section_is_reported_and_import_takes_it_over() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let credentials = world.sandbox.credentials_path();
    let user =
        "[dev-admin]\nrole_arn = arn:aws:iam::222222222222:role/Admin\nsource_profile = bastion\n";
    world.sandbox.write(&credentials, user);

    let out = world
        .rc(&["refresh", "dev-admin", "--mfa-code", "123456"])
        .run()
        .failure();
    assert_contains!(out.stderr, "section [dev-admin]");
    assert_contains!(out.stderr, "rolecall import");
    assert!(!out.stderr.contains("--adopt"), "{}", out.stderr);

    let out = world.rc(&["doctor"]).run();
    assert_contains!(out.stdout, "[dev-admin]");
    assert_contains!(out.stdout, "rolecall import");
    assert!(!out.stdout.contains("--adopt"), "{}", out.stdout);

    let out = world.rc(&["import"]).run().success();
    assert_contains!(out.stdout, "skipped dev-admin: already a Rolecall profile");
    assert_contains!(out.stdout, "+x_rolecall_managed = true");
    world
        .rc(&["refresh", "dev-admin", "--mfa-code", "123456"])
        .run()
        .success();
    let out = world.rolecall.caller_identity("dev-admin").run().success();
    let arn = out.json()["Arn"].as_str().unwrap_or_default().to_string();
    assert_contains!(arn, "assumed-role/Admin/");
    let out = world.rc(&["doctor"]).run();
    assert!(!out.stdout.contains("[dev-admin] in"), "{}", out.stdout);
}

/// `keys import` stores the MFA device with the key: the one the AWS files give the section
/// (awscli_bastion's `[bastion-sts]`), `--mfa-serial`, or `--detect-mfa` from moto's IAM.
#[test]
fn issue_17_keys_import_takes_the_mfa_device_from_the_files_a_flag_or_iam() {
    let world = World::start();
    // an IAM user with one MFA device, for --detect-mfa
    let code = format!(
        "import boto3, json\n\
         iam = boto3.client('iam', endpoint_url={moto:?}, region_name='us-east-1')\n\
         iam.create_user(UserName='dana')\n\
         k = iam.create_access_key(UserName='dana')['AccessKey']\n\
         d = iam.create_virtual_mfa_device(VirtualMFADeviceName='dana')['VirtualMFADevice']\n\
         iam.enable_mfa_device(UserName='dana', SerialNumber=d['SerialNumber'], \
         AuthenticationCode1='123456', AuthenticationCode2='654321')\n\
         print(json.dumps([k['AccessKeyId'], k['SecretAccessKey']]))\n",
        moto = world.moto.url(),
    );
    let out = world
        .rolecall
        .python(&code)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .run()
        .success();
    let dana = out.json();
    let (dana_id, dana_secret) = (
        dana[0].as_str().unwrap_or_default().to_string(),
        dana[1].as_str().unwrap_or_default().to_string(),
    );
    let section = |name: &str, id: &str, secret: &str| {
        format!("[{name}]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n\n")
    };
    world.sandbox.write(
        world.sandbox.credentials_path(),
        &format!(
            "{}{}{}{BASTION_CREDENTIALS_USER}",
            section("bastion", TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY),
            section("flagged", TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY),
            section("dana", &dana_id, &dana_secret),
        ),
    );

    let out = world
        .rc(&["keys", "import", "bastion", "--scrub"])
        .run()
        .success();
    assert_contains!(
        out.stdout,
        "MFA device arn:aws:iam::123456789012:mfa/alice (the mfa_serial of [bastion-sts])"
    );
    let out = world
        .rc(&[
            "keys",
            "import",
            "flagged",
            "--mfa-serial",
            "arn:aws:iam::123456789012:mfa/flag",
        ])
        .run()
        .success();
    assert_contains!(out.stdout, "stored the key of [flagged] as source flagged");
    let out = world
        .rc(&["keys", "import", "dana", "--detect-mfa"])
        .env("AWS_ENDPOINT_URL_IAM", world.proxy.url())
        .run()
        .success();
    assert_contains!(
        out.stdout,
        "found MFA device arn:aws:iam::123456789012:mfa/dana"
    );
    let config = world.sandbox.read(world.sandbox.config_path());
    for (source, device) in [("bastion", "alice"), ("flagged", "flag"), ("dana", "dana")] {
        assert_contains!(
            config,
            &format!("[sources.{source}]\nmfa_serial = \"arn:aws:iam::123456789012:mfa/{device}\"")
        );
    }
    // the device from [bastion-sts] works: the session asks for it, the AWS CLI gets a role
    world.sandbox.write(
        world.sandbox.config_path(),
        &format!(
            "{config}\n[profiles.dev-admin]\nsource = \"bastion\"\n\
             role_arn = \"arn:aws:iam::234567890123:role/admin\"\n"
        ),
    );
    world.sandbox.write(world.sandbox.credentials_path(), "");
    world
        .rc(&["refresh", "dev-admin", "--mfa-code", "123456"])
        .run()
        .success();
    let session = world
        .proxy
        .first("GetSessionToken")
        .expect("a GetSessionToken request");
    assert_eq!(
        session.param("SerialNumber"),
        Some("arn:aws:iam::123456789012:mfa/alice")
    );
    let out = world.rolecall.caller_identity("dev-admin").run().success();
    let arn = out.json()["Arn"].as_str().unwrap_or_default().to_string();
    assert_contains!(arn, "assumed-role/admin/");
}
