//! What IAM says of a source's user, through the real binary against moto's IAM (reached through
//! the fault proxy with `AWS_ENDPOINT_URL_IAM`): `keys mfa-devices`, `keys add --detect-mfa`
//! choosing among several devices, `roles` (the user's and its groups' policies), `session_name
//! = "{iam_user}"`, and `keys rotate` with its failures.

use crate::support::{Fault, World};

/// Runs boto3 against moto (straight, not through the proxy) with `code` after `iam = …`;
/// returns what the code prints as JSON.
fn boto3(world: &World, code: &str) -> serde_json::Value {
    let script = format!(
        "import boto3, json\n\
         iam = boto3.client('iam', endpoint_url={moto:?}, region_name='us-east-1', \
         aws_access_key_id='AKIAIOSFODNN7EXAMPLE', aws_secret_access_key='x')\n\
         {code}\n",
        moto = world.moto.url(),
    );
    world.rolecall.python(&script).run().success().json()
}

/// Creates IAM user `user` with one access key and `devices` virtual MFA devices; returns the
/// key id and secret.
fn user_with_key(world: &World, user: &str, devices: usize) -> (String, String) {
    let out = boto3(
        world,
        &format!(
            "iam.create_user(UserName={user:?})\n\
             k = iam.create_access_key(UserName={user:?})['AccessKey']\n\
             for i in range({devices}):\n\
             \x20   name = {user:?} if i == 0 else f'{{{user:?}}}-{{i}}'\n\
             \x20   d = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)['VirtualMFADevice']\n\
             \x20   iam.enable_mfa_device(UserName={user:?}, SerialNumber=d['SerialNumber'], \
             AuthenticationCode1='123456', AuthenticationCode2='654321')\n\
             print(json.dumps([k['AccessKeyId'], k['SecretAccessKey']]))"
        ),
    );
    (
        out[0].as_str().unwrap().to_owned(),
        out[1].as_str().unwrap().to_owned(),
    )
}

/// The user's access key ids, as IAM lists them.
fn iam_keys(world: &World, user: &str) -> Vec<String> {
    let out = boto3(
        world,
        &format!(
            "print(json.dumps([k['AccessKeyId'] for k in \
             iam.list_access_keys(UserName={user:?})['AccessKeyMetadata']]))"
        ),
    );
    let mut keys: Vec<String> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

/// Stores `key` as keychain source `source` (no MFA) with `rolecall keys add`.
fn store(world: &World, source: &str, (id, secret): &(String, String)) {
    world
        .rc(&["keys", "add", source])
        .stdin(format!("{id}\n{secret}\n"))
        .run()
        .success();
}

/// The key id stored for `source` in the keychain.
fn stored_key(world: &World, source: &str) -> (String, String) {
    let record = world
        .keyring
        .lookup("rolecall", &format!("source:{source}"))
        .expect("a stored key");
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    (
        record["aws_access_key_id"].as_str().unwrap().to_owned(),
        record["aws_secret_access_key"].as_str().unwrap().to_owned(),
    )
}

/// `rolecall ARGS` with IAM calls sent through the proxy.
fn rc_iam(world: &World, args: &[&str]) -> crate::support::TestCommand {
    world
        .rc(args)
        .env("AWS_ENDPOINT_URL_IAM", world.proxy.url())
}

#[test]
fn keys_mfa_devices_lists_the_devices_of_the_sources_user() {
    let world = World::start();
    let bob = user_with_key(&world, "bob", 2);
    let carol = user_with_key(&world, "carol", 0);
    store(&world, "bob", &bob);
    store(&world, "carol", &carol);

    let out = rc_iam(&world, &["keys", "mfa-devices", "bob"])
        .run()
        .success();
    eqnice!(
        "arn:aws:iam::123456789012:mfa/bob\narn:aws:iam::123456789012:mfa/bob-1\n",
        out.stdout
    );
    let list = world.proxy.first("ListMFADevices").expect("ListMFADevices");
    assert_eq!(list.param("UserName"), Some("bob"));

    let json = rc_iam(&world, &["keys", "mfa-devices", "bob", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(json["user"], "bob");
    assert_eq!(
        json["mfa_devices"][1],
        "arn:aws:iam::123456789012:mfa/bob-1"
    );

    let out = rc_iam(&world, &["keys", "mfa-devices", "carol"])
        .run()
        .success();
    assert_eq!(out.stdout, "");
    assert_contains!(out.stderr, "IAM user carol has no MFA device");

    let out = rc_iam(&world, &["keys", "mfa-devices", "nobody"])
        .run()
        .code_is(2);
    assert_contains!(out.stderr, "no source named \"nobody\"");
}

#[test]
fn detect_mfa_with_several_devices_asks_which_one_on_a_terminal() {
    let mut world = World::start();
    let (id, secret) = user_with_key(&world, "bob", 3);
    world.rolecall = world
        .rolecall
        .clone()
        .env("AWS_ENDPOINT_URL_IAM", world.proxy.url());
    let screen = crate::terminal::on_a_terminal(
        &world,
        &["keys", "add", "bob", "--detect-mfa"],
        &[
            ("AWS access key id:", &format!("{id}\n")),
            ("AWS secret access key:", &format!("{secret}\n")),
            ("which one? [1-3]", "7\n"),
            ("number from 1 to 3", "3\n"),
        ],
    );
    assert_contains!(screen, "IAM user bob has several MFA devices:");
    assert_contains!(screen, "  2) arn:aws:iam::123456789012:mfa/bob-1");
    assert_contains!(screen, "answer with a number from 1 to 3");
    assert_contains!(
        screen,
        "found MFA device arn:aws:iam::123456789012:mfa/bob-2"
    );
    let config = world.sandbox.read(world.sandbox.config_path());
    assert_contains!(
        config,
        "mfa_serial = \"arn:aws:iam::123456789012:mfa/bob-2\""
    );
    assert_eq!(stored_key(&world, "bob").0, id);
}

#[test]
fn roles_lists_what_the_users_and_its_groups_policies_allow() {
    let world = World::start();
    let key = user_with_key(&world, "carol", 0);
    boto3(
        &world,
        r#"
def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
def allow(action, resource):
    return {"Effect": "Allow", "Action": action, "Resource": resource}
iam.put_user_policy(UserName="carol", PolicyName="own", PolicyDocument=doc(
    allow("sts:AssumeRole", "arn:aws:iam::222222222222:role/Admin"),
    allow("s3:*", "*"),
    {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::1:role/Never"}))
p = iam.create_policy(PolicyName="assume-ops", PolicyDocument=doc(
    allow(["sts:Assume*"], ["arn:aws:iam::*:role/ops-*", "arn:aws:s3:::bucket"])))["Policy"]["Arn"]
iam.attach_user_policy(UserName="carol", PolicyArn=p)
iam.create_group(GroupName="auditors")
iam.add_user_to_group(GroupName="auditors", UserName="carol")
iam.put_group_policy(GroupName="auditors", PolicyName="audit", PolicyDocument=doc(
    allow("sts:AssumeRole", ["arn:aws:iam::333333333333:role/Audit",
                             "arn:aws:iam::222222222222:role/Admin"])))
g = iam.create_policy(PolicyName="readonly", PolicyDocument=doc(
    allow("ec2:Describe*", "*")))["Policy"]["Arn"]
iam.attach_group_policy(GroupName="auditors", PolicyArn=g)
iam.attach_group_policy(GroupName="auditors", PolicyArn=p)
print(json.dumps(None))
"#,
    );
    store(&world, "carol", &key);

    let out = rc_iam(&world, &["roles", "carol"]).run().success();
    let roles: Vec<&str> = out.stdout.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(
        roles,
        [
            "arn:aws:iam::*:role/ops-*",
            "arn:aws:iam::222222222222:role/Admin",
            "arn:aws:iam::333333333333:role/Audit",
        ],
        "{}",
        out.streams()
    );
    assert_contains!(
        out.stdout,
        "arn:aws:iam::222222222222:role/Admin\n    from inline policy own of user carol\n    \
         from inline policy audit of group auditors\n"
    );
    assert_contains!(
        out.stdout,
        "    from managed policy arn:aws:iam::123456789012:policy/assume-ops (attached to user)\n    \
         from managed policy arn:aws:iam::123456789012:policy/assume-ops (attached to group \
         auditors)\n"
    );
    assert_not_contains!(out.stdout, "Never");
    assert_not_contains!(out.stdout, "bucket");
    assert_contains!(out.stderr, "trust policy");
    assert_contains!(out.stderr, "not visible");
    // the managed policy attached twice is read once
    assert_eq!(world.proxy.count("GetPolicyVersion"), 2);

    let json = rc_iam(&world, &["roles", "carol", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(json["user"], "carol");
    assert_eq!(json["roles"].as_array().unwrap().len(), 3);
    assert_eq!(
        json["roles"][2]["role"],
        "arn:aws:iam::333333333333:role/Audit"
    );
    assert_eq!(
        json["roles"][2]["via"][0],
        "inline policy audit of group auditors"
    );
    assert_eq!(json["unreadable_policies"], serde_json::json!([]));
}

#[test]
fn session_name_iam_user_names_role_sessions_after_the_sources_user() {
    let world = World::start();
    let key = user_with_key(&world, "alice", 0);
    store(&world, "work", &key);
    world.sandbox.write(
        world.sandbox.config_path(),
        r#"[sources.work]

[profiles.dev]
source = "work"
role_arn = "arn:aws:iam::222222222222:role/Admin"
session_name = "{iam_user}"

[profiles.audit]
source = "dev"
role_arn = "arn:aws:iam::333333333333:role/Audit"
session_name = "rc-{iam_user}"
"#,
    );
    world.rc(&["refresh"]).run().success();
    let names: Vec<String> = world
        .proxy
        .requests_of("AssumeRole")
        .iter()
        .map(|r| r.param("RoleSessionName").unwrap().to_owned())
        .collect();
    assert_eq!(names, ["alice", "rc-alice"]);
    // found once, with the source's key, and kept beside the session
    assert_eq!(world.proxy.count("GetCallerIdentity"), 1);
    let session = world
        .keyring
        .lookup("rolecall", "session:work")
        .expect("a cached session");
    assert_contains!(session, "\"iam_user\":\"alice\"");

    let who = world.rolecall.caller_identity("dev").run().success().json();
    assert_eq!(
        who["Arn"],
        "arn:aws:sts::222222222222:assumed-role/Admin/alice"
    );
    let who = world
        .rolecall
        .caller_identity("audit")
        .run()
        .success()
        .json();
    assert_eq!(
        who["Arn"],
        "arn:aws:sts::333333333333:assumed-role/Audit/rc-alice"
    );

    // another process renews the roles from the cached session: no new lookup (the AWS CLI's
    // two calls above went through the proxy too)
    let lookups = world.proxy.count("GetCallerIdentity");
    world.rc(&["refresh", "--force"]).run().success();
    assert_eq!(world.proxy.count("AssumeRole"), 4);
    assert_eq!(world.proxy.count("GetCallerIdentity"), lookups);
}

#[test]
fn session_name_iam_user_of_a_source_without_a_user_says_why() {
    let world = World::start();
    world.setup(
        r#"[sources.bastion]

[profiles.dev]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Admin"
session_name = "{iam_user}"
"#,
    );
    // STS does not know who the key is: the profile fails, saying why, and assumes nothing
    world
        .proxy
        .set_rule_for("GetCallerIdentity", Fault::InvalidClientTokenId);
    let out = world.rc(&["refresh"]).run().code_is(1);
    assert_contains!(
        out.stderr,
        "profile dev: session_name uses {iam_user}, and the IAM user of source bastion could not \
         be found"
    );
    assert_eq!(world.proxy.count("AssumeRole"), 0);
}

#[test]
fn keys_rotate_replaces_the_key_and_deletes_the_old_one() {
    let world = World::start();
    let old = user_with_key(&world, "alice", 0);
    store(&world, "work", &old);

    let out = rc_iam(&world, &["keys", "rotate", "work"]).run().success();
    let new = stored_key(&world, "work");
    assert_ne!(new.0, old.0);
    assert_contains!(
        out.stdout,
        "rotated the key of source work (IAM user alice)"
    );
    assert_contains!(out.stdout, &new.0[new.0.len() - 4..]);
    assert_not_contains!(out.streams(), &new.1);
    assert_not_contains!(out.streams(), &new.0);
    assert_eq!(iam_keys(&world, "alice"), vec![new.0.clone()]);
    let delete = world
        .proxy
        .first("DeleteAccessKey")
        .expect("DeleteAccessKey");
    assert_eq!(delete.param("AccessKeyId"), Some(old.0.as_str()));
    assert_eq!(delete.param("UserName"), Some("alice"));

    // the AWS CLI with the new key is alice
    let who = world
        .rolecall
        .aws(&["sts", "get-caller-identity", "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", &new.0)
        .env("AWS_SECRET_ACCESS_KEY", &new.1)
        .run()
        .success()
        .json();
    assert_eq!(who["Arn"], "arn:aws:iam::123456789012:user/alice");
}

#[test]
fn keys_rotate_refuses_a_user_who_already_has_two_keys() {
    let world = World::start();
    let old = user_with_key(&world, "alice", 0);
    boto3(
        &world,
        "iam.create_access_key(UserName='alice')\nprint(json.dumps(None))",
    );
    store(&world, "work", &old);
    let before = iam_keys(&world, "alice");

    let out = rc_iam(&world, &["keys", "rotate", "work"]).run().code_is(1);
    assert_contains!(out.stderr, "IAM user alice already has two access keys");
    assert_contains!(out.stderr, "IAM's limit");
    assert_contains!(out.stderr, &old.0[old.0.len() - 4..]);
    assert_not_contains!(out.stderr, &old.0);
    assert_eq!(world.proxy.count("CreateAccessKey"), 0);
    assert_eq!(stored_key(&world, "work").0, old.0);
    assert_eq!(iam_keys(&world, "alice"), before);
}

#[test]
fn keys_rotate_waits_while_iam_spreads_the_new_key() {
    let world = World::start();
    let old = user_with_key(&world, "alice", 0);
    store(&world, "work", &old);
    // the first lookup (the old key's user) passes; the new key is unknown twice, then works
    world
        .proxy
        .push_for("GetCallerIdentity", Fault::Delay(std::time::Duration::ZERO));
    world
        .proxy
        .push_for("GetCallerIdentity", Fault::InvalidClientTokenId);
    world
        .proxy
        .push_for("GetCallerIdentity", Fault::InvalidClientTokenId);

    rc_iam(&world, &["keys", "rotate", "work"]).run().success();
    assert_eq!(world.proxy.count("GetCallerIdentity"), 4);
    let new = stored_key(&world, "work");
    assert_eq!(iam_keys(&world, "alice"), [new.0]);
}

#[test]
fn keys_rotate_that_cannot_verify_the_new_key_deletes_it_and_keeps_the_old() {
    let world = World::start();
    let old = user_with_key(&world, "alice", 0);
    store(&world, "work", &old);
    world
        .proxy
        .push_for("GetCallerIdentity", Fault::Delay(std::time::Duration::ZERO));
    world
        .proxy
        .set_rule_for("GetCallerIdentity", Fault::InvalidClientTokenId);

    let out = rc_iam(&world, &["keys", "rotate", "work"]).run().code_is(1);
    assert_contains!(out.stderr, "key rotation of source work failed");
    assert_contains!(out.stderr, "does not work: AWS still did not recognise it");
    assert_contains!(out.stderr, "nothing changed");
    // bounded: the first lookup, then seven tries of the new key
    assert_eq!(world.proxy.count("GetCallerIdentity"), 8);
    assert_eq!(stored_key(&world, "work").0, old.0);
    assert_eq!(iam_keys(&world, "alice"), vec![old.0.clone()]);
    let created = world.proxy.count("CreateAccessKey");
    assert_eq!(created, 1);
    let delete = world
        .proxy
        .first("DeleteAccessKey")
        .expect("DeleteAccessKey");
    assert_ne!(delete.param("AccessKeyId"), Some(old.0.as_str()));
}

#[test]
fn keys_rotate_that_cannot_delete_the_old_key_keeps_the_new_one_and_says_so() {
    let world = World::start();
    let old = user_with_key(&world, "alice", 0);
    store(&world, "work", &old);
    world.proxy.push_for("DeleteAccessKey", Fault::AccessDenied);

    let out = rc_iam(&world, &["keys", "rotate", "work"]).run().code_is(1);
    let new = stored_key(&world, "work");
    assert_ne!(new.0, old.0);
    assert_contains!(out.stderr, "IAM refused DeleteAccessKey");
    assert_contains!(
        out.stderr,
        &format!(
            "the new key is in the keychain and works, but the old key …{}",
            &old.0[old.0.len() - 4..]
        )
    );
    assert_contains!(out.stderr, "aws iam delete-access-key --user-name alice");
    let mut both = vec![old.0, new.0];
    both.sort();
    assert_eq!(iam_keys(&world, "alice"), both);
}

#[test]
fn keys_rotate_whose_new_key_cannot_be_stored_deletes_it() {
    let world = World::start();
    let old = user_with_key(&world, "alice", 0);
    store(&world, "work", &old);
    // the new key's check waits at the proxy (5 s: ample for a lock call, and within the 10 s
    // STS attempt timeout) while the keychain is locked under it
    world
        .proxy
        .push_for("GetCallerIdentity", Fault::Delay(std::time::Duration::ZERO));
    world.proxy.push_for(
        "GetCallerIdentity",
        Fault::Delay(std::time::Duration::from_secs(10)),
    );
    let mut child = rc_iam(&world, &["keys", "rotate", "work"])
        .spawn("rotate", &world.sandbox.log_path("rotate"));
    crate::support::wait_until(std::time::Duration::from_secs(30), || {
        (world.proxy.count("GetCallerIdentity") == 2).then_some(())
    })
    .expect("the new key's check");
    world.keyring.lock();
    let status = child
        .wait_timeout(std::time::Duration::from_secs(60))
        .expect("rotate ends");
    world.keyring.unlock();
    let log = child.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert_contains!(log, "keychain is locked");
    assert_contains!(log, "nothing changed");
    assert_eq!(stored_key(&world, "work").0, old.0);
    assert_eq!(iam_keys(&world, "alice"), vec![old.0]);
}
