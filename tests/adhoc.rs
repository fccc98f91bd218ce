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
