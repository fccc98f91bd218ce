//! Tests of the test bed itself: each helper starts the real thing, the fault proxy answers
//! the way real clients understand, and every process is gone after Drop.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use serde_json::json;

use crate::support::{
    Fault, FaultProxy, Keyring, Moto, Rolecall, Sandbox, TEST_ACCESS_KEY_ID, TestCommand,
    http_request, pid_exists,
};

const SESSION_TOKEN: &[&str] = &["sts", "get-session-token", "--output", "json"];

/// Prints the access key ids of two AssumeRole calls.
const ASSUME_ROLE_TWICE: &str = r#"
import boto3, json
sts = boto3.client("sts", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="test")
keys = [
    sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/dev", RoleSessionName="bed")
    ["Credentials"]["AccessKeyId"]
    for _ in range(2)
]
print(json.dumps(keys))
"#;

/// Makes the STS calls named in argv (`GetSessionToken` with an MFA code, `GetCallerIdentity`)
/// with botocore's retries off; prints one JSON row per call: `["ok"]` or
/// `[status, code, message]`.
const STS_CALLS: &str = r#"
import boto3, botocore.config, botocore.exceptions, json, sys
sts = boto3.client(
    "sts",
    aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
    aws_secret_access_key="test",
    config=botocore.config.Config(retries={"total_max_attempts": 1}),
)
calls = {
    "GetSessionToken": lambda: sts.get_session_token(
        SerialNumber="arn:aws:iam::123456789012:mfa/alice", TokenCode="000000"
    ),
    "GetCallerIdentity": sts.get_caller_identity,
}
seen = []
for action in sys.argv[1:]:
    try:
        calls[action]()
        seen.append(["ok"])
    except botocore.exceptions.ClientError as e:
        error = e.response["Error"]
        seen.append([e.response["ResponseMetadata"]["HTTPStatusCode"], error["Code"], error["Message"]])
print(json.dumps(seen))
"#;

/// moto plus a fault proxy in front of it, and a command factory pointed at the proxy with
/// client retries off, so each CLI run is exactly one request.
fn proxied(sandbox: &Sandbox) -> (Moto, FaultProxy, Rolecall) {
    let moto = Moto::start(sandbox);
    let proxy = FaultProxy::start(&moto.url());
    let rolecall = Rolecall::new(sandbox)
        .sts(&proxy.url())
        .env("AWS_MAX_ATTEMPTS", "1");
    (moto, proxy, rolecall)
}

#[test]
fn sandbox_env_is_only_home_xdg_path_and_lang() {
    let sandbox = Sandbox::new();
    let out = TestCommand::new("env", sandbox.env()).run().success();

    let mut names: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name)
        .collect();
    names.sort_unstable();
    eqnice!(
        "HOME\nLANG\nPATH\nXDG_CACHE_HOME\nXDG_CONFIG_HOME\nXDG_DATA_HOME\nXDG_RUNTIME_DIR\n\
         XDG_STATE_HOME",
        names.join("\n")
    );
    assert_not_contains!(out.stdout, "AWS_");
    assert_not_contains!(out.stdout, "ROLECALL_");
    assert_contains!(out.stdout, &format!("HOME={}\n", sandbox.home().display()));
    assert_eq!(sandbox.mode(sandbox.runtime_dir()), 0o700);

    assert_eq!(
        sandbox.credentials_path(),
        sandbox.home().join(".aws/credentials")
    );
    assert_eq!(
        sandbox.aws_config_path(),
        sandbox.home().join(".aws/config")
    );
    assert_eq!(
        sandbox.config_path(),
        sandbox.home().join(".config/rolecall/config.toml")
    );
    sandbox.write(".config/rolecall/config.toml", "[profiles.dev]\n");
    eqnice!("[profiles.dev]\n", sandbox.read(sandbox.config_path()));
}

#[test]
fn moto_serves_sts_to_the_aws_cli_and_boto3() {
    let sandbox = Sandbox::new();
    let moto = Moto::start(&sandbox);
    let rolecall = Rolecall::new(&sandbox).sts(&moto.url());

    let out = rolecall
        .aws_with_test_keys(&[
            "sts",
            "get-session-token",
            "--serial-number",
            "arn:aws:iam::123456789012:mfa/alice",
            "--token-code",
            "123456",
            "--output",
            "json",
        ])
        .run()
        .success();
    let credentials = &out.json()["Credentials"];
    assert_eq!(
        credentials["AccessKeyId"],
        json!(TEST_ACCESS_KEY_ID),
        "{}",
        out.stdout
    );
    assert!(credentials["Expiration"].is_string(), "{}", out.stdout);

    // AssumeRole returns fresh ASIA… keys on every call.
    let out = rolecall.python(ASSUME_ROLE_TWICE).run().success();
    let keys: Vec<String> = serde_json::from_value(out.json()).expect("a list of key ids");
    assert!(keys.iter().all(|key| key.starts_with("ASIA")), "{keys:?}");
    assert_ne!(keys[0], keys[1]);

    moto.reset();
    assert_contains!(moto.log(), "\"POST / HTTP/1.1\" 200");
}

#[test]
fn fault_proxy_throttles_the_first_requests_then_passes_through() {
    let sandbox = Sandbox::new();
    let (_moto, proxy, rolecall) = proxied(&sandbox);
    proxy.push_n(2, &Fault::Throttle);

    for _ in 0..2 {
        let out = rolecall.aws_with_test_keys(SESSION_TOKEN).run().failure();
        assert_contains!(out.stderr, "(Throttling)");
        assert_contains!(out.stderr, "Rate exceeded");
    }
    let out = rolecall.aws_with_test_keys(SESSION_TOKEN).run().success();
    assert_eq!(
        out.json()["Credentials"]["AccessKeyId"],
        json!(TEST_ACCESS_KEY_ID)
    );

    assert_eq!(proxy.statuses(), [Some(400), Some(400), Some(200)]);
    assert_eq!(proxy.count("GetSessionToken"), 3);
    assert_eq!(proxy.pending(), 0);
    let faults: Vec<_> = proxy
        .requests()
        .into_iter()
        .map(|request| request.fault)
        .collect();
    assert_eq!(faults, [Some(Fault::Throttle), Some(Fault::Throttle), None]);
}

#[test]
fn fault_for_one_action_lets_other_actions_pass_and_shows_in_cli_stderr() {
    let sandbox = Sandbox::new();
    let (_moto, proxy, rolecall) = proxied(&sandbox);
    proxy.push_for("AssumeRole", Fault::AccessDenied);

    rolecall
        .aws_with_test_keys(&["sts", "get-caller-identity"])
        .run()
        .success();
    let role = "arn:aws:iam::123456789012:role/admin";
    let out = rolecall
        .aws_with_test_keys(&[
            "sts",
            "assume-role",
            "--role-arn",
            role,
            "--role-session-name",
            "bed",
        ])
        .run()
        .failure();
    assert_contains!(out.stderr, "(AccessDenied)");
    assert_contains!(
        out.stderr,
        &format!("user/alice is not authorized to perform: sts:AssumeRole on resource: {role}")
    );

    let requests = proxy.requests();
    let actions: Vec<_> = requests
        .iter()
        .map(|request| request.action.as_deref())
        .collect();
    assert_eq!(actions, [Some("GetCallerIdentity"), Some("AssumeRole")]);
    assert_eq!(proxy.statuses(), [Some(200), Some(403)]);
    assert_eq!(requests[1].param("RoleArn"), Some(role));
    assert_eq!(requests[1].param("RoleSessionName"), Some("bed"));
}

#[test]
fn fault_proxy_drops_connections_and_applies_a_rule_until_cleared() {
    let sandbox = Sandbox::new();
    let (_moto, proxy, rolecall) = proxied(&sandbox);

    proxy.push(Fault::Drop);
    let out = rolecall.aws_with_test_keys(SESSION_TOKEN).run().failure();
    assert_contains!(
        out.stderr,
        "Connection was closed before we received a valid response"
    );

    // A rule stays until cleared and skips other actions.
    proxy.set_rule_for("GetSessionToken", Fault::Status(503));
    let out = rolecall
        .python(STS_CALLS)
        .args(["GetSessionToken", "GetCallerIdentity", "GetSessionToken"])
        .run()
        .success();
    let unavailable = json!([503, "ServiceUnavailable", "Service Unavailable"]);
    assert_eq!(out.json(), json!([unavailable, ["ok"], unavailable]));
    proxy.clear_rule();
    rolecall.aws_with_test_keys(SESSION_TOKEN).run().success();

    assert_eq!(
        proxy.statuses(),
        [None, Some(503), Some(200), Some(503), Some(200)]
    );
    proxy.clear();
    assert!(proxy.requests().is_empty());
}

#[test]
fn delay_fault_makes_the_client_time_out() {
    let sandbox = Sandbox::new();
    let (_moto, proxy, rolecall) = proxied(&sandbox);
    proxy.set_rule(Fault::Delay(Duration::from_secs(30)));

    let mut args = SESSION_TOKEN.to_vec();
    args.extend(["--cli-read-timeout", "1"]);
    let out = rolecall.aws_with_test_keys(&args).run().failure();
    assert_contains!(out.stderr, "Read timeout on endpoint URL");
    assert_eq!(proxy.count("GetSessionToken"), 1);
    // Dropping the proxy with a delayed request in flight must not hang.
    drop(proxy);
}

/// Each error fault, through botocore: the status, code and message a client sees.
#[test]
fn every_error_fault_reaches_botocore_as_its_sts_error() {
    let sandbox = Sandbox::new();
    let (_moto, proxy, rolecall) = proxied(&sandbox);
    let faults = [
        Fault::Throttle,
        Fault::Status(500),
        Fault::Status(503),
        Fault::ExpiredToken,
        Fault::AccessDenied,
        Fault::InvalidClientTokenId,
        Fault::SignatureExpired,
        Fault::WrongMfa,
    ];
    for fault in &faults {
        proxy.push(fault.clone());
    }
    let calls = vec!["GetSessionToken"; faults.len()];
    let out = rolecall.python(STS_CALLS).args(&calls).run().success();

    let expected: Vec<_> = faults
        .iter()
        .map(|fault| json!([fault.status(), fault.code(), fault.message()]))
        .collect();
    let expected = serde_json::to_string_pretty(&expected).expect("JSON");
    let got = serde_json::to_string_pretty(&out.json()).expect("JSON");
    eqnice!(expected, got);
    assert_eq!(proxy.pending(), 0);
    assert_eq!(proxy.requests()[7].param("TokenCode"), Some("000000"));
}

#[test]
fn keyring_stores_reads_and_hides_secrets_while_locked() {
    let sandbox = Sandbox::new();
    let keyring = Keyring::start(&sandbox);

    keyring.store("rolecall", "default", "s3cr3t");
    assert_eq!(
        keyring.lookup("rolecall", "default").as_deref(),
        Some("s3cr3t")
    );
    assert_contains!(
        keyring.search_all("rolecall"),
        "attribute.username = default"
    );
    assert!(sandbox.data_home().join("keyrings/login.keyring").is_file());

    keyring.lock();
    assert!(keyring.is_locked());
    assert_eq!(keyring.lookup("rolecall", "default"), None);

    keyring.unlock();
    assert_eq!(
        keyring.lookup("rolecall", "default").as_deref(),
        Some("s3cr3t")
    );
}

#[test]
fn drop_stops_every_process_it_started() {
    let sandbox = Sandbox::new();
    let moto = Moto::start(&sandbox);
    let keyring = Keyring::start(&sandbox);
    let proxy = FaultProxy::start(&moto.url());
    let pids = [moto.pid(), keyring.bus_pid(), keyring.daemon_pid()];
    assert!(pids.iter().all(|&pid| pid_exists(pid)), "{pids:?}");
    let proxy_url = format!("{}/", proxy.url());
    http_request("GET", &proxy_url, "").expect("the proxy answers before Drop");

    drop(proxy);
    drop(keyring);
    drop(moto);
    for pid in pids {
        assert!(!pid_exists(pid), "process {pid} outlived its helper");
    }
    assert!(
        http_request("GET", &proxy_url, "").is_err(),
        "the proxy still answers after Drop"
    );

    let root = sandbox.root().to_path_buf();
    drop(sandbox);
    assert!(!root.exists(), "{} outlived the sandbox", root.display());
}

#[test]
fn drop_stops_processes_when_the_test_panics() {
    let sandbox = Sandbox::new();
    let mut pids = Vec::new();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let keyring = Keyring::start(&sandbox);
        pids.extend([keyring.bus_pid(), keyring.daemon_pid()]);
        panic!("a failing test");
    }));
    assert!(result.is_err());
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(!pid_exists(pid), "process {pid} outlived a panicking test");
    }
}

#[test]
fn rolecall_binary_runs_in_the_sandbox() {
    let sandbox = Sandbox::new();
    assert!(Rolecall::binary().is_file());
    Rolecall::new(&sandbox).cmd(&["--help"]).run().success();
}

#[test]
#[should_panic(expected = "did not finish within")]
fn a_hanging_command_fails_the_test_after_its_timeout() {
    let sandbox = Sandbox::new();
    TestCommand::new("sleep", sandbox.env())
        .arg("30")
        .timeout(Duration::from_millis(200))
        .run();
}

#[test]
#[should_panic(expected = "printed outputs differ")]
fn eqnice_fails_on_a_difference() {
    eqnice!("one\ntwo\n", "one\nthree\n");
}
