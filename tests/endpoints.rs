//! Issue 15's local endpoints (`rolecall serve --ecs/--imds`, `rolecall exec --endpoint`)
//! with real clients against moto: boto3, a small aws-config program, the AWS CLI; and what
//! they refuse, with raw requests.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use crate::support::credfile::{expect_key_id, expect_value, expiration};
use crate::support::{
    MFA_SERIAL, RawResponse, Served, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, World, raw_http,
    rolecall_bin, venv_bin, wait_until,
};

/// Role credentials living 15m10s, renewed when 15 minutes or less are left (the endpoints'
/// own floor too): due ~10 s after each renewal, so a test sees several.
const SHORT: &str = r#"[settings]
refresh_before = "15m"
sts_timeout = "2s"

[sources.bastion]
mfa_serial = "arn:aws:iam::123456789012:mfa/alice"

[profiles.dev-admin]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Admin"
duration = "15m10s"
region = "eu-west-1"
"#;

/// A world with [`SHORT`] whose MFA session is cached (one refresh with a code), so that the
/// endpoints renew the role without asking.
fn world() -> World {
    let world = World::start();
    world.setup(SHORT);
    assert!(SHORT.contains(MFA_SERIAL));
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    world
}

/// A boto3 program that keeps one session (and its container-credentials provider) for its
/// whole life, calling STS in a loop, until it has used `argv[1]` different access keys.
const BOTO3_LOOP: &str = r#"
import sys, time, boto3
want = int(sys.argv[1])
session = boto3.Session()
sts = session.client("sts")
creds = session.get_credentials()
keys = set()
start = time.time()
while len(keys) < want:
    if time.time() - start > 150:
        sys.exit("only %d keys in 150 s" % len(keys))
    arn = sts.get_caller_identity()["Arn"]
    key = creds.get_frozen_credentials().access_key
    print(key, arn, flush=True)
    keys.add(key)
    time.sleep(0.5)
"#;

/// Checks a client loop's `KEY ARN` lines: every call was made as the profile's role, with at
/// least `keys` different keys (so `keys - 1` renewals seen without a restart).
fn check_loop(stdout: &str, keys: usize) {
    let lines: Vec<&str> = stdout.lines().collect();
    let distinct: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(distinct.len() >= keys, "{} keys:\n{stdout}", distinct.len());
    for l in &lines {
        assert_contains!(l, "assumed-role/Admin/");
    }
}

#[test]
fn a_boto3_loop_through_the_ecs_endpoint_keeps_working_across_renewals() {
    let world = world();
    let served = Served::start(&world, &["--ecs", "dev-admin"]);
    let out = world
        .rolecall
        .python(BOTO3_LOOP)
        .arg("4")
        .envs(served.env.iter().map(|(k, v)| (k, v)))
        .timeout(Duration::from_secs(180))
        .run();
    assert_eq!(
        out.code,
        Some(0),
        "{}\nserve:\n{}",
        out.streams(),
        served.log()
    );
    check_loop(&out.stdout, 4);
    // the token never reached the log
    assert!(
        !served
            .log()
            .contains(served.var("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
    );
}

/// Runs the aws-config probe (`tests/bin/sdk_probe.rs`) with `env` until it saw `keys` keys.
fn sdk_probe(world: &World, kind: &str, keys: usize, env: &[(String, String)]) {
    let probe = rolecall_bin().with_file_name("rolecall-sdk-probe");
    let out = crate::support::TestCommand::new(probe, world.rolecall.environment().clone())
        .args([kind, &keys.to_string()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .timeout(Duration::from_secs(180))
        .run();
    assert_eq!(out.code, Some(0), "{}", out.streams());
    check_loop(&out.stdout, keys);
}

#[test]
fn aws_config_through_the_ecs_endpoint_sees_renewed_keys() {
    let world = world();
    let served = Served::start(&world, &["--ecs", "dev-admin"]);
    sdk_probe(&world, "ecs", 3, &served.env);
}

#[test]
fn aws_config_through_the_imds_endpoint_sees_renewed_keys() {
    let world = world();
    let served = Served::start(&world, &["--imds", "dev-admin"]);
    sdk_probe(&world, "imds", 3, &served.env);
}

#[test]
fn exec_endpoint_gives_the_aws_cli_the_profile_through_the_endpoint() {
    let world = world();
    // static keys in the caller's environment would win over the endpoint in the child's SDK
    // if they were passed on: they are not
    let out = world
        .rc(&["exec", "--endpoint", "dev-admin", "--"])
        .arg(venv_bin("aws"))
        .args(["sts", "get-caller-identity", "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .run();
    assert_eq!(out.code, Some(0), "{}", out.streams());
    assert_contains!(out.stdout, "assumed-role/Admin/");
    // what the child sees: the endpoint, no keys, no credentials file
    let out = world
        .rc(&["exec", "--endpoint", "dev-admin", "--"])
        .arg(venv_bin("python"))
        .args([
            "-c",
            "import os\nfor k in sorted(os.environ):\n    print(k, '=', os.environ[k] if k != 'AWS_CONTAINER_AUTHORIZATION_TOKEN' else len(os.environ[k]))",
        ])
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .run()
        .success();
    assert_contains!(
        out.stdout,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI = http://127.0.0.1:"
    );
    assert_contains!(out.stdout, "AWS_CONTAINER_AUTHORIZATION_TOKEN = 64");
    assert_contains!(out.stdout, "AWS_SHARED_CREDENTIALS_FILE = /dev/null");
    assert_contains!(out.stdout, "AWS_REGION = eu-west-1");
    assert!(!out.stdout.contains("AWS_ACCESS_KEY_ID"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("AWS_SECRET_ACCESS_KEY"),
        "{}",
        out.stdout
    );
}

#[test]
fn exec_endpoint_serves_a_long_running_child_across_renewals() {
    let world = world();
    let out = world
        .rc(&["exec", "--endpoint", "dev-admin", "--"])
        .arg(venv_bin("python"))
        .args(["-c", BOTO3_LOOP, "3"])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .timeout(Duration::from_secs(180))
        .run();
    assert_eq!(out.code, Some(0), "{}", out.streams());
    check_loop(&out.stdout, 3);
}

/// `GET / HTTP/1.1` to the ECS endpoint with `extra` header lines.
fn ecs_get(addr: SocketAddr, host: &str, extra: &str) -> RawResponse {
    raw_http(
        None,
        addr,
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn the_ecs_endpoint_refuses_missing_or_wrong_tokens_foreign_hosts_and_oversized_requests() {
    let world = world();
    let served = Served::start(&world, &["--ecs", "dev-admin"]);
    let addr = Served::addr(served.var("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    let token = served.var("AWS_CONTAINER_AUTHORIZATION_TOKEN").to_string();
    let host = addr.to_string();
    // the right request works, so the refusals below are about what they change
    let ok = ecs_get(addr, &host, &format!("Authorization: {token}\r\n"));
    assert_eq!(ok.status, 200, "{ok:?}\n{}", served.log());
    let key = expect_key_id(&world.credentials(), "dev-admin");
    assert_contains!(ok.body, &key);

    let cases: Vec<(&str, RawResponse, u16)> =
        vec![
        ("no token", ecs_get(addr, &host, ""), 401),
        (
            "wrong token",
            ecs_get(addr, &host, &format!("Authorization: {}0\r\n", &token[1..])),
            401,
        ),
        (
            "token with a suffix",
            ecs_get(addr, &host, &format!("Authorization: {token}x\r\n")),
            401,
        ),
        (
            "foreign Host (DNS rebinding)",
            ecs_get(
                addr,
                &format!("rebind.example:{}", addr.port()),
                &format!("Authorization: {token}\r\n"),
            ),
            403,
        ),
        (
            "oversized headers",
            ecs_get(
                addr,
                &host,
                &format!("Authorization: {token}\r\nX-Pad: {}\r\n", "a".repeat(64 * 1024)),
            ),
            431,
        ),
        (
            "a body",
            raw_http(
                None,
                addr,
                format!(
                    "GET / HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\nContent-Length: \
                     100000\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            ),
            413,
        ),
    ];
    for (what, r, status) in &cases {
        assert_eq!(r.status, *status, "{what}: {r:?}");
        // generic answers: no credentials, no reason
        assert!(!r.body.contains(&key), "{what}: {r:?}");
        assert!(!r.body.contains("ASIA"), "{what}: {r:?}");
    }
    let log = served.log();
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    let text = world.credentials();
    for key in ["aws_secret_access_key", "aws_session_token"] {
        let secret = expect_value(&text, "dev-admin", key);
        assert!(!log.contains(&secret), "{key} is in the log:\n{log}");
    }
    assert!(!log.contains(&key), "a whole key id is in the log:\n{log}");
    assert_contains!(log, "refused");
}

/// One request to the IMDS endpoint.
fn imds(addr: SocketAddr, method: &str, path: &str, headers: &str) -> RawResponse {
    raw_http(
        None,
        addr,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

const CREDS: &str = "/latest/meta-data/iam/security-credentials/";
const TTL: &str = "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n";

#[test]
fn the_imds_endpoint_is_imdsv2_only_and_refuses_forwarded_and_foreign_requests() {
    let world = world();
    let served = Served::start(&world, &["--imds", "dev-admin"]);
    let addr = Served::addr(served.var("AWS_EC2_METADATA_SERVICE_ENDPOINT"));
    // IMDSv2 works: a token, the role's name, its credentials
    let t = imds(addr, "PUT", "/latest/api/token", TTL);
    assert_eq!(t.status, 200, "{t:?}\n{}", served.log());
    assert_contains!(
        t.head.to_ascii_lowercase(),
        "x-aws-ec2-metadata-token-ttl-seconds: 60"
    );
    let token = t.body;
    let with = format!("X-aws-ec2-metadata-token: {token}\r\n");
    let name = imds(addr, "GET", CREDS, &with);
    assert_eq!(
        (name.status, name.body.as_str()),
        (200, "dev-admin"),
        "{name:?}"
    );
    let creds = imds(addr, "GET", &format!("{CREDS}dev-admin"), &with);
    assert_eq!(creds.status, 200, "{creds:?}");
    let doc: serde_json::Value = serde_json::from_str(&creds.body).expect("JSON credentials");
    assert_eq!(doc["Code"], "Success");
    assert_eq!(
        doc["AccessKeyId"],
        expect_key_id(&world.credentials(), "dev-admin")
    );

    let cases: Vec<(&str, RawResponse, u16)> = vec![
        ("IMDSv1 (no token)", imds(addr, "GET", CREDS, ""), 401),
        (
            "IMDSv1 credentials",
            imds(addr, "GET", &format!("{CREDS}dev-admin"), ""),
            401,
        ),
        (
            "wrong token",
            imds(
                addr,
                "GET",
                CREDS,
                &format!("X-aws-ec2-metadata-token: {}x\r\n", &token[1..]),
            ),
            401,
        ),
        (
            "token without a TTL",
            imds(addr, "PUT", "/latest/api/token", ""),
            400,
        ),
        (
            "token with too long a TTL",
            imds(
                addr,
                "PUT",
                "/latest/api/token",
                "X-aws-ec2-metadata-token-ttl-seconds: 21601\r\n",
            ),
            400,
        ),
        (
            "X-Forwarded-For on the token",
            imds(
                addr,
                "PUT",
                "/latest/api/token",
                &format!("{TTL}X-Forwarded-For: 10.0.0.1\r\n"),
            ),
            403,
        ),
        (
            "X-Forwarded-For on a read",
            imds(
                addr,
                "GET",
                CREDS,
                &format!("{with}X-Forwarded-For: 10.0.0.1\r\n"),
            ),
            403,
        ),
        (
            "foreign Host",
            raw_http(
                None,
                addr,
                format!(
                    "PUT /latest/api/token HTTP/1.1\r\nHost: rebind.example\r\n{TTL}\
                     Connection: close\r\n\r\n"
                )
                .as_bytes(),
            ),
            403,
        ),
        (
            "another role",
            imds(addr, "GET", &format!("{CREDS}other"), &with),
            404,
        ),
    ];
    for (what, r, status) in &cases {
        assert_eq!(r.status, *status, "{what}: {r:?}");
        assert!(!r.body.contains("ASIA"), "{what}: {r:?}");
    }
    let log = served.log();
    assert!(!log.contains(&token), "an IMDS token is in the log:\n{log}");
}

/// This machine's first non-loopback address (`hostname -I`).
fn own_address() -> IpAddr {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .expect("running hostname -I");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|a| !a.is_loopback())
        .expect("a non-loopback address on this machine (hostname -I)")
}

#[test]
fn the_imds_endpoint_refuses_a_peer_that_is_not_loopback() {
    let world = world();
    let served = Served::start(&world, &["--imds", "dev-admin", "--bind", "0.0.0.0"]);
    let port = Served::addr(served.var("AWS_EC2_METADATA_SERVICE_ENDPOINT")).port();
    let own = own_address();
    let request = format!(
        "PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\n{TTL}Connection: close\r\n\r\n"
    );
    // from loopback, the same request is served…
    let lo = raw_http(
        None,
        SocketAddr::from(([127, 0, 0, 1], port)),
        request.as_bytes(),
    );
    assert_eq!(lo.status, 200, "{lo:?}\n{}", served.log());
    // …from this machine's own network address, it is not
    let r = raw_http(
        Some(SocketAddr::new(own, 0)),
        SocketAddr::new(own, port),
        request.as_bytes(),
    );
    assert_eq!(r.status, 403, "{r:?}\n{}", served.log());
    assert_eq!(r.body, "forbidden\n");
    assert_contains!(served.log(), "not on this machine's loopback");
}

#[test]
fn concurrent_requests_near_expiry_cause_one_renewal() {
    let world = world();
    let served = Served::start(&world, &["--ecs", "dev-admin"]);
    let addr = Served::addr(served.var("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    let token = served.var("AWS_CONTAINER_AUTHORIZATION_TOKEN").to_string();
    // wait until the credentials are due (15 minutes or less left)
    let due = wait_until(Duration::from_secs(60), || {
        let exp = expiration(&world.credentials(), "dev-admin")?;
        (exp <= SystemTime::now() + Duration::from_secs(15 * 60)).then_some(())
    });
    assert!(due.is_some(), "never due:\n{}", world.credentials());
    let before = world.proxy.count("AssumeRole");
    let host = addr.to_string();
    let answers: Vec<RawResponse> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| s.spawn(|| ecs_get(addr, &host, &format!("Authorization: {token}\r\n"))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    let keys: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{r:?}");
            let doc: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
            doc["AccessKeyId"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(
        world.proxy.count("AssumeRole") - before,
        1,
        "\n{}",
        served.log()
    );
    assert_eq!(keys.len(), 1, "{keys:?}");
}

/// Role credentials that stay fresh for the whole test (no STS call needed after the first).
const LONG: &str = r#"[settings]
sts_timeout = "2s"

[sources.bastion]
mfa_serial = "arn:aws:iam::123456789012:mfa/alice"

[profiles.dev-admin]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Admin"
duration = "1h"
"#;

/// In a private network namespace (we are root in the test container): the IMDS address on
/// its loopback, `rolecall serve --imds --bind 169.254.169.254` on port 80, and boto3 with
/// nothing configured, which finds the instance role there as on EC2. A private PID namespace
/// too, so that nothing started in it outlives the test.
const IMDS_NAMESPACE: &str = r#"
set -e
ip link set lo up
ip addr add 169.254.169.254/32 dev lo
"$ROLECALL" -v serve --imds dev-admin --bind 169.254.169.254 --env-file "$ENV_FILE" \
    >"$SERVE_LOG" 2>&1 &
for i in $(seq 1 200); do [ -s "$ENV_FILE" ] && break; kill -0 $! || exit 3; sleep 0.05; done
"$PYTHON" -c '
import boto3
c = boto3.Session().get_credentials()
print("METHOD", c.method)
print("KEY", c.get_frozen_credentials().access_key)
'
"#;

#[test]
fn boto3_finds_the_profile_on_the_real_imds_address_with_nothing_configured() {
    let world = World::start();
    world.setup(LONG);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let key = expect_key_id(&world.credentials(), "dev-admin");
    let env_file = world.sandbox.path("imds-ns.env");
    let serve_log = world.sandbox.log_path("serve-imds-ns");
    let out = crate::support::TestCommand::new("unshare", world.rolecall.environment().clone())
        .args([
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            IMDS_NAMESPACE,
        ])
        .env("ROLECALL", rolecall_bin())
        .env("PYTHON", venv_bin("python"))
        .env("ENV_FILE", &env_file)
        .env("SERVE_LOG", &serve_log)
        .timeout(Duration::from_secs(60))
        .run();
    let log = std::fs::read_to_string(&serve_log).unwrap_or_default();
    assert_eq!(out.code, Some(0), "{}\nserve:\n{log}", out.streams());
    assert_contains!(out.stdout, "METHOD iam-role");
    assert_contains!(out.stdout, &format!("KEY {key}"));
    assert_contains!(
        std::fs::read_to_string(&env_file).unwrap_or_default(),
        "http://169.254.169.254:80/"
    );
}

/// [`SHORT`] with `refresh_before` at 5 minutes: the engine alone would call 14-minute-old
/// credentials fresh.
const LATE: &str = r#"[settings]
refresh_before = "5m"
sts_timeout = "2s"

[sources.bastion]
mfa_serial = "arn:aws:iam::123456789012:mfa/alice"

[profiles.dev-admin]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Admin"
duration = "15m10s"
"#;

/// The `AccessKeyId` and `Expiration` the ECS endpoint at `addr` serves now.
fn served_key(addr: SocketAddr, token: &str) -> (String, SystemTime) {
    let r = ecs_get(
        addr,
        &addr.to_string(),
        &format!("Authorization: {token}\r\n"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let doc: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    let exp = doc["Expiration"].as_str().expect("Expiration");
    let exp = humantime::parse_rfc3339(exp).expect("RFC 3339");
    (
        doc["AccessKeyId"].as_str().unwrap_or_default().to_string(),
        exp,
    )
}

#[test]
fn credentials_with_less_than_15_minutes_left_are_renewed_before_being_served() {
    let world = World::start();
    world.setup(LATE);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let served = Served::start(&world, &["--ecs", "dev-admin"]);
    let addr = Served::addr(served.var("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    let token = served.var("AWS_CONTAINER_AUTHORIZATION_TOKEN").to_string();
    let (first, _) = served_key(addr, &token);
    let floor = Duration::from_secs(15 * 60);
    let due = wait_until(Duration::from_secs(60), || {
        let exp = expiration(&world.credentials(), "dev-admin")?;
        (exp < SystemTime::now() + floor).then_some(())
    });
    assert!(
        due.is_some(),
        "never inside 15 minutes:\n{}",
        world.credentials()
    );
    let before = world.proxy.count("AssumeRole");
    let (second, exp) = served_key(addr, &token);
    assert_ne!(first, second, "served inside 15 minutes:\n{}", served.log());
    assert!(
        exp > SystemTime::now() + floor,
        "renewed, yet inside 15 minutes"
    );
    // fresh now: served as they are
    let (third, _) = served_key(addr, &token);
    assert_eq!(third, second);
    assert_eq!(
        world.proxy.count("AssumeRole") - before,
        1,
        "\n{}",
        served.log()
    );
}

#[test]
fn serve_prints_the_variables_on_stdout_only_and_never_overwrites_an_env_file() {
    let world = world();
    let log = world.sandbox.log_path("serve-stdout");
    let mut process = world
        .rc(&["serve", "--ecs", "dev-admin"])
        .spawn("rolecall serve", &log);
    let text = wait_until(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("export AWS_CONTAINER_AUTHORIZATION_TOKEN=")
            .then_some(text)
    });
    let text = text.unwrap_or_else(|| panic!("no variables printed:\n{}", process.log()));
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("export AWS_CONTAINER_AUTHORIZATION_TOKEN="))
        .map(|v| v.trim_matches('\'').to_string())
        .expect("the token line");
    assert_eq!(token.len(), 64, "{text}");
    assert_contains!(
        text,
        "export AWS_CONTAINER_CREDENTIALS_FULL_URI='http://127.0.0.1:"
    );
    // the token is on its own line, once: not repeated in a log line
    assert_eq!(text.matches(&token).count(), 1, "{text}");
    process.signal("TERM");
    let status = process.wait_timeout(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", process.log());

    let existing = world.sandbox.path("taken.env");
    std::fs::write(&existing, "mine\n").expect("writing a file");
    let out = world
        .rc(&["serve", "--ecs", "dev-admin", "--env-file"])
        .arg(&existing)
        .run()
        .failure();
    assert_contains!(out.stderr, "must not exist");
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap_or_default(),
        "mine\n"
    );
}
