//! Issue 17, for users coming from aws-runas, assume-role, IMSA and gossamer: profiles that
//! take values from another (`extends`), a profile's own `refresh_before`, and `exec`/`export`
//! without editing the config (`--role-arn`, `--duration`, `--session`, `$AWS_PROFILE`).

use crate::support::credfile::expiration;
use crate::support::{CONFIG, World};

/// A world whose `bastion` session is cached, so later commands need no code.
fn world_with(config: &str) -> World {
    let world = World::start();
    world.setup(config);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    world
}

/// The `Arn` the AWS CLI prints for `aws sts get-caller-identity` run by `rolecall ARGS…`.
fn caller_arn(world: &World, args: &[&str]) -> String {
    let aws = crate::support::venv_bin("aws");
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--",
        aws.to_str().unwrap(),
        "sts",
        "get-caller-identity",
        "--output",
        "json",
    ]);
    let out = world
        .rc(&all)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .run()
        .success();
    out.json()["Arn"].as_str().unwrap_or_default().to_string()
}

const EXTENDS: &str = r#"
[sources.bastion]
mfa_serial = "arn:aws:iam::123456789012:mfa/alice"

[profiles.base]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Admin"
session_name = "alice-base"
external_id = "ext-17"
duration = "2h"
region = "eu-west-1"

[profiles.child]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/ReadOnly"
extends = "base"
"#;

#[test]
fn issue_17_extends_gives_a_profile_the_session_name_external_id_duration_and_region() {
    let world = world_with(EXTENDS);
    let arn = caller_arn(&world, &["exec", "child"]);
    assert!(arn.ends_with("assumed-role/ReadOnly/alice-base"), "{arn}");
    let assumed = world
        .proxy
        .requests_of("AssumeRole")
        .into_iter()
        .find(|r| r.param("RoleArn") == Some("arn:aws:iam::222222222222:role/ReadOnly"))
        .expect("child's AssumeRole");
    assert_eq!(assumed.param("ExternalId"), Some("ext-17"));
    assert_eq!(assumed.param("DurationSeconds"), Some("7200"));
    let out = world.rc(&["export", "child"]).run().success();
    assert_contains!(out.stdout, "export AWS_REGION='eu-west-1'\n");
}

#[test]
fn issue_17_extends_cycles_and_long_chains_are_refused_with_file_and_line() {
    let world = World::start();
    world.setup(CONFIG);
    // base extends child (line 12), child extends base
    let cycle = EXTENDS.replace(
        "region = \"eu-west-1\"\n",
        "region = \"eu-west-1\"\nextends = \"child\"\n",
    );
    world.sandbox.write(world.sandbox.config_path(), &cycle);
    let out = world.rc(&["--no-agent", "status"]).run().code_is(2);
    assert_contains!(out.stderr, "config.toml:12: profiles.base.extends");
    assert_contains!(out.stderr, "cycle (base → child → base)");

    let mut long = String::from("[sources.bastion]\n");
    for i in 0..6 {
        long.push_str(&format!(
            "[profiles.p{i}]\nsource = \"bastion\"\nextends = \"p{}\"\n",
            i + 1
        ));
    }
    long.push_str("[profiles.p6]\nsource = \"bastion\"\n");
    world.sandbox.write(world.sandbox.config_path(), &long);
    let out = world.rc(&["--no-agent", "status"]).run().code_is(2);
    assert_contains!(out.stderr, "config.toml:4: profiles.p0.extends");
    assert_contains!(out.stderr, "longer than 5 profiles");
}

#[test]
fn issue_17_a_profile_refresh_before_makes_it_due_earlier_than_the_others() {
    let config = r#"
[sources.bastion]
mfa_serial = "arn:aws:iam::123456789012:mfa/alice"

[profiles.early]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Early"
refresh_before = "50m"

[profiles.usual]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Usual"
"#;
    let world = world_with(config);
    // both have 40 minutes left: within early's 50m, outside the global 15m
    let in_40m = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(40 * 60),
    )
    .to_string();
    let mut text = world.credentials();
    for p in ["early", "usual"] {
        let was = humantime::format_rfc3339_seconds(expiration(&text, p).unwrap()).to_string();
        text = text.replacen(
            &format!("x_rolecall_expiration = {was}"),
            &format!("x_rolecall_expiration = {in_40m}"),
            1,
        );
    }
    world.sandbox.write(world.sandbox.credentials_path(), &text);
    let calls = world.proxy.count("AssumeRole");
    let out = world.rc(&["--no-agent", "refresh"]).run().success();
    assert_eq!(
        world.proxy.count("AssumeRole"),
        calls + 1,
        "{}",
        out.streams()
    );
    let renewed = world.proxy.requests_of("AssumeRole").pop().unwrap();
    assert_eq!(
        renewed.param("RoleArn"),
        Some("arn:aws:iam::222222222222:role/Early")
    );
    let status = world
        .rc(&["--no-agent", "status", "--json"])
        .run()
        .success()
        .json();
    let usual = status
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["profile"] == "usual")
        .cloned()
        .unwrap_or_default();
    assert_eq!(usual["state"], "fresh", "{status}");
}

/// The `KEY=VALUE` lines of `export --format env`, as a map.
fn env_lines(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const DEPLOY: &str = "arn:aws:iam::444444444444:role/Deploy";

#[test]
fn issue_17_role_arn_assumes_ad_hoc_from_the_cached_session_and_writes_nothing() {
    let world = world_with(CONFIG);
    let file = world.credentials();
    let sessions = world.proxy.count("GetSessionToken");
    let arn = caller_arn(&world, &["exec", "--role-arn", DEPLOY, "--duration", "2h"]);
    assert!(arn.contains(":assumed-role/Deploy/"), "{arn}");
    let assumed = world.proxy.requests_of("AssumeRole").pop().unwrap();
    assert_eq!(assumed.param("RoleArn"), Some(DEPLOY));
    assert_eq!(assumed.param("DurationSeconds"), Some("7200"));
    // the source's cached MFA session: no new one, no code asked
    assert_eq!(world.proxy.count("GetSessionToken"), sessions);
    assert_eq!(world.credentials(), file, "the credentials file changed");
    let out = world
        .rc(&["export", "--role-arn", DEPLOY, "--format", "env"])
        .run()
        .success();
    let vars = env_lines(&out.stdout);
    assert_eq!(vars["ROLECALL_PROFILE"], "Deploy", "{}", out.stdout);
    assert!(vars["AWS_ACCESS_KEY_ID"].starts_with("ASIA"));
    assert_eq!(world.credentials(), file, "the credentials file changed");
    // from a profile (chaining): one hour at most
    let out = world
        .rc(&[
            "export",
            "--role-arn",
            DEPLOY,
            "--source",
            "dev-admin",
            "--duration",
            "2h",
        ])
        .run()
        .code_is(2);
    assert_contains!(out.stderr, "--duration: 2h is out of range");
    assert_contains!(out.stderr, "role chaining is limited to 1h");
}

#[test]
fn issue_17_an_ad_hoc_mfa_serial_starts_a_session_once_then_reuses_it() {
    let world = World::start();
    world.setup("[sources.bastion]\n");
    let mfa = crate::support::MFA_SERIAL;
    let args = [
        "export",
        "--role-arn",
        DEPLOY,
        "--mfa-serial",
        mfa,
        "--format",
        "json",
    ];
    let mut with_code = args.to_vec();
    with_code.extend(["--mfa-code", "123456"]);
    world.rc(&with_code).run().success();
    let gst = world.proxy.first("GetSessionToken").expect("a session");
    assert_eq!(gst.param("SerialNumber"), Some(mfa));
    assert_eq!(gst.param("TokenCode"), Some("123456"));
    let out = world.rc(&args).run().success();
    assert_eq!(out.json()["ROLECALL_PROFILE"], "Deploy");
    assert_eq!(world.proxy.count("GetSessionToken"), 1);
    assert_eq!(world.credentials(), "");
    // several sources: say which
    world.sandbox.write(
        world.sandbox.config_path(),
        "[sources.bastion]\n[sources.other]\n",
    );
    let out = world.rc(&args).run().code_is(2);
    assert_contains!(out.stderr, "--source: needed with --role-arn");
}

#[test]
fn issue_17_duration_flags_and_variables_are_checked_against_the_aws_limits() {
    let world = world_with(CONFIG);
    let file = world.credentials();
    let out = world
        .rc(&["export", "dev-admin", "--duration", "13h"])
        .run()
        .code_is(2);
    assert_contains!(
        out.stderr,
        "--duration: 13h is out of range: must be from 15m to 12h"
    );
    let out = world
        .rc(&["export", "dev-admin"])
        .env("ROLECALL_DURATION", "10m")
        .run()
        .code_is(2);
    assert_contains!(out.stderr, "10m is out of range");
    let out = world
        .rc(&["export", "dev-admin"])
        .env("ROLECALL_SESSION_DURATION", "40h")
        .run()
        .code_is(2);
    assert_contains!(
        out.stderr,
        "--session-duration: 40h is out of range: must be from 15m to 36h"
    );
    let out = world
        .rc(&["export", "dev-admin", "--duration", "soon"])
        .run()
        .code_is(2);
    assert_contains!(out.stderr, "write it like \"1h\"");
    let out = world
        .rc(&["export", "session", "--duration", "1h"])
        .run()
        .code_is(2);
    assert_contains!(out.stderr, "give --session-duration instead");
    // an endpoint serves the profile as configured
    let out = world
        .rc(&[
            "exec",
            "--endpoint",
            "dev-admin",
            "--duration",
            "2h",
            "--",
            "true",
        ])
        .run()
        .code_is(2);
    assert_contains!(
        out.stderr,
        "--endpoint: serves a configured profile as configured"
    );
    // a good one from the environment: fresh role credentials of that lifetime, file untouched
    let out = world
        .rc(&["export", "dev-admin", "--format", "env"])
        .env("ROLECALL_DURATION", "3h")
        .run()
        .success();
    let assumed = world.proxy.requests_of("AssumeRole").pop().unwrap();
    assert_eq!(assumed.param("DurationSeconds"), Some("10800"));
    let vars = env_lines(&out.stdout);
    assert_eq!(vars["ROLECALL_PROFILE"], "dev-admin");
    assert_eq!(vars["AWS_REGION"], "eu-west-1");
    assert_eq!(world.credentials(), file, "the credentials file changed");
}

#[test]
fn issue_17_session_hands_over_the_root_sources_session() {
    let world = world_with(CONFIG);
    let calls = world.proxy.requests().len();
    let out = world
        .rc(&["export", "audit", "--session", "--format", "json"])
        .run()
        .success();
    let vars = out.json();
    let file = world.credentials();
    // the session-token profile `session` holds the same source's session
    let key = crate::support::credfile::value(&file, "session", "aws_access_key_id").unwrap();
    let token = crate::support::credfile::value(&file, "session", "aws_session_token").unwrap();
    assert_eq!(vars["AWS_ACCESS_KEY_ID"], key.as_str());
    assert_eq!(vars["AWS_SESSION_TOKEN"], token.as_str());
    assert_eq!(vars["ROLECALL_PROFILE"], "audit");
    // audit's region (from its chain)
    assert_eq!(vars["AWS_REGION"], "eu-west-1");
    assert_eq!(
        world.proxy.requests().len(),
        calls,
        "no STS call: the cached session"
    );
    // the AWS CLI takes them
    let aws = crate::support::venv_bin("aws");
    world
        .rc(&[
            "exec",
            "audit",
            "--session",
            "--",
            aws.to_str().unwrap(),
            "sts",
            "get-caller-identity",
        ])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .run()
        .success();
}

#[test]
fn issue_17_without_a_profile_aws_profile_is_used_and_said() {
    let world = world_with(CONFIG);
    let out = world
        .rc(&["export", "--format", "env"])
        .env("AWS_PROFILE", "dev-admin")
        .run()
        .success();
    assert_eq!(env_lines(&out.stdout)["ROLECALL_PROFILE"], "dev-admin");
    assert_contains!(out.stderr, "using profile dev-admin from $AWS_PROFILE");
    // exec: the words are the command (`--` since the command's second word is an option)
    let out = world
        .rc(&[
            "exec",
            "--",
            "sh",
            "-c",
            "echo \"$ROLECALL_PROFILE ${AWS_PROFILE:-unset}\"",
        ])
        .env("AWS_PROFILE", "audit")
        .run()
        .success();
    assert_eq!(out.stdout, "audit unset\n", "{}", out.streams());
    assert_contains!(out.stderr, "using profile audit from $AWS_PROFILE");
    // a named profile wins, without a word
    let out = world
        .rc(&[
            "exec",
            "dev-admin",
            "--",
            "sh",
            "-c",
            "echo \"$ROLECALL_PROFILE\"",
        ])
        .env("AWS_PROFILE", "audit")
        .run()
        .success();
    assert_eq!(out.stdout, "dev-admin\n");
    assert_not_contains!(out.stderr, "AWS_PROFILE");
    // an AWS_PROFILE that is not Rolecall's does not count
    let out = world
        .rc(&["export"])
        .env("AWS_PROFILE", "someone-elses")
        .run()
        .code_is(2);
    assert_contains!(out.stderr, "no profile given");
}

#[test]
fn issue_17_an_env_file_from_export_is_read_by_the_aws_cli() {
    let world = world_with(CONFIG);
    let out = world
        .rc(&["export", "dev-admin", "--format", "env"])
        .run()
        .success();
    assert!(
        out.stdout
            .lines()
            .all(|l| !l.contains('\'') && l.contains('=')),
        "{}",
        out.stdout
    );
    let file = world.sandbox.home().join("dev-admin.env");
    std::fs::write(&file, &out.stdout).unwrap();
    let aws = crate::support::venv_bin("aws");
    let script = format!(
        "set -a; . '{}'; exec '{}' sts get-caller-identity --output json",
        file.display(),
        aws.display()
    );
    let out = crate::support::TestCommand::new("sh", world.rolecall.environment().clone())
        .args(["-c", &script])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .run()
        .success();
    let arn = out.json()["Arn"].as_str().unwrap_or_default().to_string();
    assert!(arn.contains(":assumed-role/Admin/"), "{arn}");
}
