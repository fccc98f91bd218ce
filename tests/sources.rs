//! Sources beyond keychain keys, through the real binary: an EC2 instance role over a strict
//! local IMDSv2 server, credentials from the environment (temporary, or a long-lived key with
//! MFA), `keys add --detect-mfa` against moto's IAM, and the config checks. Where a test needs no
//! keychain, the session bus points nowhere, so any keychain access would fail it.

use crate::support::credfile::expect_value;
use crate::support::{
    FaultProxy, Imds, ImdsCredentials, Moto, Rolecall, Sandbox, TEST_ACCESS_KEY_ID,
    TEST_SECRET_ACCESS_KEY, World, http_request,
};

/// A D-Bus address with nothing behind it: opening the keychain fails at once.
const NO_BUS: &str = "unix:path=/nonexistent/rolecall-test-no-bus";

/// The instance's own role (what IMDS hands out) and the role it assumes, as in gossamer.
const INSTANCE_ROLE: &str = "arn:aws:iam::987654321123:role/vESG-EC2";
const PUTTER_ROLE: &str = "arn:aws:iam::123456789101:role/collectd-cloudwatch-putter";

const EC2_CONFIG: &str = r#"[settings]
sts_timeout = "2s"

[sources.ec2]
kind = "instance-profile"

[profiles.putter]
source = "ec2"
role_arn = "arn:aws:iam::123456789101:role/collectd-cloudwatch-putter"
region = "us-east-1"

[profiles.instance]
source = "ec2"
"#;

/// moto behind the fault proxy, and a `rolecall` with no keychain that calls STS through the
/// proxy. Drop order stops rolecall's peers after the test.
struct Bed {
    rolecall: Rolecall,
    proxy: FaultProxy,
    moto: Moto,
    sandbox: Sandbox,
}

impl Bed {
    fn start(config: &str) -> Bed {
        let sandbox = Sandbox::new();
        let moto = Moto::start(&sandbox);
        let proxy = FaultProxy::start(&moto.url());
        let rolecall = Rolecall::new(&sandbox)
            .sts(&proxy.url())
            .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS);
        sandbox.write(sandbox.config_path(), config);
        Bed {
            rolecall,
            proxy,
            moto,
            sandbox,
        }
    }

    /// Fresh temporary credentials from moto's AssumeRole (not through the proxy).
    fn temporary_credentials(&self, role_arn: &str) -> ImdsCredentials {
        ImdsCredentials::from_moto(&self.rolecall, &self.moto.url(), role_arn)
    }

    fn credentials(&self) -> String {
        self.sandbox.read(self.sandbox.credentials_path())
    }

    /// `boto3.Session(profile_name=PROFILE)` → GetCallerIdentity's Arn, reading only the
    /// credentials file (no AWS variables in its environment).
    fn boto3_arn(&self, profile: &str) -> String {
        let code = format!(
            "import boto3\n\
             s = boto3.Session(profile_name={profile:?})\n\
             print(s.client('sts', region_name='us-east-1').get_caller_identity()['Arn'])\n"
        );
        let out = self
            .rolecall
            .python(&code)
            .env("AWS_CONFIG_FILE", self.sandbox.path("no-aws-config"))
            .run()
            .success();
        out.stdout.trim().to_owned()
    }
}

#[test]
fn instance_profile_source_assumes_role_over_imdsv2_without_a_keychain() {
    let bed = Bed::start(EC2_CONFIG);
    let instance = bed.temporary_credentials(INSTANCE_ROLE);
    let imds = Imds::start("vESG-EC2", instance.clone());
    let rc = bed
        .rolecall
        .clone()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());

    let out = rc.cmd(&["refresh"]).run().success();
    assert_contains!(out.stdout, "putter");
    assert_contains!(out.stdout, "renewed");
    // straight from the instance credentials to the role: no session, no MFA
    assert_eq!(bed.proxy.count("GetSessionToken"), 0);
    assert_eq!(bed.proxy.count("AssumeRole"), 1);
    let assume = bed
        .proxy
        .first("AssumeRole")
        .expect("an AssumeRole request");
    assert_eq!(assume.param("RoleArn"), Some(PUTTER_ROLE));

    // IMDSv2 for real: a token PUT with a TTL first, then only GETs that carry a live token
    let requests = imds.requests();
    let first = requests.first().expect("IMDS was asked");
    assert_eq!(
        (first.method.as_str(), first.path.as_str(), first.status),
        ("PUT", "/latest/api/token", 200),
        "{requests:#?}"
    );
    assert!(first.ttl.is_some(), "{requests:#?}");
    let gets: Vec<_> = requests.iter().filter(|r| r.method == "GET").collect();
    assert!(
        gets.len() >= 2,
        "role listing and credentials: {requests:#?}"
    );
    assert!(
        gets.iter().all(|r| r.token.is_some() && r.status == 200),
        "{requests:#?}"
    );
    assert!(
        gets.iter()
            .any(|r| r.path == "/latest/meta-data/iam/security-credentials/vESG-EC2"),
        "{requests:#?}"
    );
    // and the server is strict: no token, no credentials; no TTL, no token
    let url = format!(
        "{}/latest/meta-data/iam/security-credentials/vESG-EC2",
        imds.url()
    );
    assert_eq!(http_request("GET", &url, "").unwrap().0, 401);
    let token_url = format!("{}/latest/api/token", imds.url());
    assert_eq!(http_request("PUT", &token_url, "").unwrap().0, 400);

    // the profile without a role holds the instance credentials themselves
    let text = bed.credentials();
    assert_eq!(
        expect_value(&text, "instance", "aws_access_key_id"),
        instance.access_key_id
    );
    assert!(expect_value(&text, "putter", "aws_access_key_id").starts_with("ASIA"));

    // the real AWS CLI, reading the credentials file, is the assumed role
    let out = rc
        .caller_identity("putter")
        .env("AWS_CONFIG_FILE", bed.sandbox.path("no-aws-config"))
        .run()
        .success();
    assert_eq!(
        out.json()["Arn"],
        "arn:aws:sts::123456789101:assumed-role/collectd-cloudwatch-putter/rolecall-user"
    );

    // status, keys list: no keychain involved
    let status = rc.cmd(&["status", "--json"]).run().success().json();
    for p in status.as_array().expect("a list") {
        assert_eq!(p["state"], "fresh", "{status:#}");
    }
    let keys = rc.cmd(&["keys", "list"]).run().success();
    assert_contains!(keys.stdout, "(instance profile)");

    // the instance role's credentials rotate: a forced refresh picks up the new ones
    let rotated = bed.temporary_credentials(INSTANCE_ROLE);
    assert_ne!(rotated.access_key_id, instance.access_key_id);
    imds.set_credentials(rotated.clone());
    rc.cmd(&["refresh", "--force"]).run().success();
    assert_eq!(
        expect_value(&bed.credentials(), "instance", "aws_access_key_id"),
        rotated.access_key_id
    );
    assert_eq!(bed.proxy.count("AssumeRole"), 2);

    // clear forgets sessions of every source: still no keychain
    rc.cmd(&["clear"]).run().success();
    assert!(!bed.credentials().contains("x_rolecall_managed"));
}

#[test]
fn instance_without_a_role_is_reported_with_what_to_do() {
    let sandbox = Sandbox::new();
    sandbox.write(sandbox.config_path(), EC2_CONFIG);
    let unused = ImdsCredentials {
        access_key_id: "ASIAIMDSEXAMPLE00000".into(),
        secret_access_key: "unused".into(),
        token: "unused".into(),
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    let imds = Imds::start("vESG-EC2", unused);
    imds.set_role(None);
    let rc = Rolecall::new(&sandbox)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url())
        .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS);
    let out = rc.cmd(&["refresh", "instance"]).run().code_is(1);
    assert_contains!(out.stderr, "source ec2");
    assert_contains!(out.stderr, "no IAM role");
    assert_contains!(out.stderr, "attach an instance profile");
    assert!(!out.stderr.contains("keychain"), "{}", out.stderr);
}

#[test]
fn environment_source_with_temporary_credentials_assumes_role_directly() {
    let bed = Bed::start(
        r#"[settings]
sts_timeout = "2s"

[sources.ci]
kind = "environment"

[profiles.deploy]
source = "ci"
role_arn = "arn:aws:iam::222222222222:role/Deploy"
"#,
    );
    let job = bed.temporary_credentials("arn:aws:iam::111111111111:role/ci-runner");
    bed.rolecall
        .cmd(&["refresh"])
        .env("AWS_ACCESS_KEY_ID", &job.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &job.secret_access_key)
        .env("AWS_SESSION_TOKEN", &job.token)
        .run()
        .success();
    assert_eq!(bed.proxy.count("GetSessionToken"), 0);
    assert_eq!(bed.proxy.count("AssumeRole"), 1);
    assert!(
        bed.boto3_arn("deploy")
            .starts_with("arn:aws:sts::222222222222:assumed-role/Deploy/")
    );
}

#[test]
fn environment_source_with_a_long_lived_key_needs_an_mfa_code() {
    let bed = Bed::start(
        r#"[settings]
sts_timeout = "2s"

[sources.env]
kind = "environment"
mfa_serial = "arn:aws:iam::123456789012:mfa/alice"

[profiles.ops]
source = "env"
role_arn = "arn:aws:iam::222222222222:role/Ops"
"#,
    );
    let rc = bed
        .rolecall
        .clone()
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY);

    let out = rc.cmd(&["refresh"]).run().code_is(1);
    assert_contains!(out.stderr, "--mfa-code");
    assert_eq!(bed.proxy.count("GetSessionToken"), 0);

    rc.cmd(&["refresh", "--mfa-code", "123456"]).run().success();
    let gst = bed.proxy.requests_of("GetSessionToken");
    assert_eq!(gst.len(), 1);
    assert_eq!(
        gst[0].param("SerialNumber"),
        Some("arn:aws:iam::123456789012:mfa/alice")
    );
    assert_eq!(gst[0].param("TokenCode"), Some("123456"));
    assert_eq!(bed.proxy.count("AssumeRole"), 1);
    assert!(
        bed.boto3_arn("ops")
            .starts_with("arn:aws:sts::222222222222:assumed-role/Ops/")
    );
    // the session lived only in that process's memory: nothing was written for it
    assert!(!bed.credentials().contains("[env]"));
}

/// Creates IAM users in moto with keys and virtual MFA devices (`devices` per user); returns
/// each user's key id and secret, in order.
fn iam_users(world: &World, users: &[(&str, usize)]) -> Vec<(String, String)> {
    let spec: Vec<String> = users.iter().map(|(u, n)| format!("({u:?}, {n})")).collect();
    let code = format!(
        "import boto3, json\n\
         iam = boto3.client('iam', endpoint_url={moto:?}, region_name='us-east-1')\n\
         out = []\n\
         for user, n in [{spec}]:\n\
         \x20   iam.create_user(UserName=user)\n\
         \x20   k = iam.create_access_key(UserName=user)['AccessKey']\n\
         \x20   for i in range(n):\n\
         \x20       name = user if i == 0 else f'{{user}}-{{i}}'\n\
         \x20       d = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)['VirtualMFADevice']\n\
         \x20       iam.enable_mfa_device(UserName=user, SerialNumber=d['SerialNumber'], \
         AuthenticationCode1='123456', AuthenticationCode2='654321')\n\
         \x20   out.append([k['AccessKeyId'], k['SecretAccessKey']])\n\
         print(json.dumps(out))\n",
        moto = world.moto.url(),
        spec = spec.join(", "),
    );
    let out = world
        .rolecall
        .python(&code)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .run()
        .success();
    out.json()
        .as_array()
        .expect("a list of keys")
        .iter()
        .map(|k| {
            (
                k[0].as_str().unwrap_or_default().to_owned(),
                k[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn keys_add_detect_mfa_stores_the_users_only_device() {
    let world = World::start();
    let keys = iam_users(&world, &[("alice", 1), ("bob", 2), ("carol", 0)]);
    let add = |source: &str, (id, secret): &(String, String)| {
        world
            .rc(&["keys", "add", source, "--detect-mfa"])
            .env("AWS_ENDPOINT_URL_IAM", world.proxy.url())
            .stdin(format!("{id}\n{secret}\n"))
            .run()
    };

    let out = add("work", &keys[0]).success();
    assert_contains!(
        out.stdout,
        "found MFA device arn:aws:iam::123456789012:mfa/alice"
    );
    let config = world.sandbox.read(world.sandbox.config_path());
    assert_contains!(
        config,
        "mfa_serial = \"arn:aws:iam::123456789012:mfa/alice\""
    );
    assert!(world.keyring.lookup("rolecall", "source:work").is_some());
    let list = world
        .proxy
        .first("ListMFADevices")
        .expect("a ListMFADevices request");
    assert_eq!(list.param("UserName"), Some("alice"));

    // several devices: listed, nothing stored, --mfa-serial suggested
    let out = add("bob", &keys[1]).code_is(1);
    assert_contains!(out.stderr, "arn:aws:iam::123456789012:mfa/bob");
    assert_contains!(out.stderr, "arn:aws:iam::123456789012:mfa/bob-1");
    assert_contains!(out.stderr, "--mfa-serial");
    assert!(world.keyring.lookup("rolecall", "source:bob").is_none());

    // none: said so, nothing stored
    let out = add("carol", &keys[2]).code_is(1);
    assert_contains!(out.stderr, "IAM user carol has no MFA device");
    assert!(world.keyring.lookup("rolecall", "source:carol").is_none());
    let config = world.sandbox.read(world.sandbox.config_path());
    assert!(!config.contains("[sources.bob]"), "{config}");
    assert!(!config.contains("[sources.carol]"), "{config}");
}

#[test]
fn keys_add_is_refused_for_an_instance_profile_source() {
    let sandbox = Sandbox::new();
    sandbox.write(sandbox.config_path(), EC2_CONFIG);
    let rc = Rolecall::new(&sandbox).env("DBUS_SESSION_BUS_ADDRESS", NO_BUS);
    let out = rc
        .cmd(&["keys", "add", "ec2"])
        .stdin(format!("{TEST_ACCESS_KEY_ID}\n{TEST_SECRET_ACCESS_KEY}\n"))
        .run()
        .code_is(2);
    assert_contains!(out.stderr, "sources.ec2.kind");
    assert_contains!(out.stderr, "\"instance-profile\"");
    assert_contains!(out.stderr, "no key to store");
    assert_eq!(sandbox.read(sandbox.config_path()), EC2_CONFIG);
}

#[test]
fn config_rejects_mfa_serial_on_an_instance_profile_source() {
    let sandbox = Sandbox::new();
    sandbox.write(
        sandbox.config_path(),
        "[sources.ec2]\nkind = \"instance-profile\"\nregion = \"us-east-1\"\n\
         mfa_serial = \"arn:aws:iam::123456789012:mfa/alice\"\n",
    );
    let rc = Rolecall::new(&sandbox).env("DBUS_SESSION_BUS_ADDRESS", NO_BUS);
    let out = rc.cmd(&["status"]).run().code_is(2);
    assert_contains!(out.stderr, "config.toml:4");
    assert_contains!(out.stderr, "sources.ec2.mfa_serial");
    assert_contains!(
        out.stderr,
        "only applies to sources of kind \"keychain\" or \"environment\""
    );
}

#[test]
fn issue_14_detect_mfa_for_a_user_iam_does_not_know_says_so_once() {
    let world = World::start();
    // moto's GetCallerIdentity names the test key's owner `moto`, a user its IAM does not have
    let out = world
        .rc(&["keys", "add", "work", "--detect-mfa"])
        .env("AWS_ENDPOINT_URL_IAM", world.proxy.url())
        .stdin(format!("{TEST_ACCESS_KEY_ID}\n{TEST_SECRET_ACCESS_KEY}\n"))
        .run()
        .code_is(1);
    assert_contains!(out.stderr, "IAM has no user moto (NoSuchEntity)");
    assert_contains!(out.stderr, "--mfa-serial");
    assert_not_contains!(out.stderr, "check your network");
    assert_eq!(
        out.stderr.matches("NoSuchEntity").count(),
        1,
        "{}",
        out.streams()
    );
    assert!(world.keyring.lookup("rolecall", "source:work").is_none());
}
