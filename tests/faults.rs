//! Failures from outside: STS faults injected by the proxy in front of moto, missing MFA codes,
//! a locked or absent keychain. Each test checks what the user sees (the message on stderr, the
//! exit code), what Rolecall asked STS (exact request counts per action: only throttling, 5xx,
//! timeouts and dropped connections are retried) and that a failure leaves the credentials file
//! byte for byte as it was. No output, failing or not, may carry a secret.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::support::credfile::key_id;
use crate::support::{
    CONFIG, Fault, FaultProxy, MFA_SERIAL, Output, Process, Rolecall, Sandbox, TEST_ACCESS_KEY_ID,
    TEST_SECRET_ACCESS_KEY, TestCommand, World, wait_until,
};

/// The role of profile `dev-admin` in [`CONFIG`].
const ADMIN_ROLE: &str = "arn:aws:iam::222222222222:role/Admin";
/// The role of the extra profile `ops` in [`with_ops`].
const OPS_ROLE: &str = "arn:aws:iam::444444444444:role/Ops";
/// Any six digits do: moto accepts every MFA code.
const MFA_CODE: &str = "123456";

/// A world whose first refresh (every profile, with an MFA code) wrote the credentials file
/// and cached the MFA session in the keychain; the proxy's record is cleared afterwards, so
/// counts start from zero.
fn refreshed_world(config: &str) -> World {
    let world = World::start();
    world.setup(config);
    world
        .rc(&["refresh", "--mfa-code", MFA_CODE])
        .run()
        .success();
    let text = world.credentials();
    for profile in ["dev-admin", "audit", "session"] {
        assert!(
            section(&text, profile).is_some(),
            "the first refresh did not write [{profile}]:\n{text}"
        );
    }
    world.proxy.clear();
    world
}

/// [`CONFIG`] plus `ops`, a second role profile straight from the source.
fn with_ops() -> String {
    format!("{CONFIG}\n[profiles.ops]\nsource = \"bastion\"\nrole_arn = \"{OPS_ROLE}\"\n")
}

/// The credentials file's bytes (empty when absent).
fn credentials_bytes(world: &World) -> Vec<u8> {
    fs::read(world.sandbox.credentials_path()).unwrap_or_default()
}

/// Runs `rolecall ARGS…`, which must fail with exit code 1 without touching the credentials
/// file or printing a secret.
#[track_caller]
fn refresh_fails(world: &World, args: &[&str]) -> Output {
    let before = credentials_bytes(world);
    let secrets = secrets(world);
    let out = world.rc(args).run().code_is(1);
    let after = credentials_bytes(world);
    eqnice!(
        String::from_utf8_lossy(&before),
        String::from_utf8_lossy(&after),
        "`{}` changed the credentials file",
        out.cmdline
    );
    assert_eq!(before, after);
    assert_no_secrets(&secrets, &out);
    out
}

/// Runs `rolecall ARGS…`, which must succeed and change `[profile]`'s keys; no secret may
/// show in its output.
#[track_caller]
fn refresh_renews(world: &World, args: &[&str], profile: &str) -> Output {
    let before = world.credentials();
    let out = world.rc(args).run().success();
    let after = world.credentials();
    assert_ne!(
        key_id(&before, profile),
        key_id(&after, profile),
        "`{}` did not renew [{profile}]",
        out.cmdline
    );
    assert_no_secrets(&[secrets(world), secrets_in(&before)].concat(), &out);
    out
}

/// What must never be printed: the stored long-lived key and every key, secret and token in
/// the credentials file now.
fn secrets(world: &World) -> Vec<String> {
    let mut all = vec![
        TEST_ACCESS_KEY_ID.to_owned(),
        TEST_SECRET_ACCESS_KEY.to_owned(),
    ];
    all.extend(secrets_in(&world.credentials()));
    all
}

fn secrets_in(credentials: &str) -> Vec<String> {
    credentials
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| {
            matches!(
                key.trim(),
                "aws_access_key_id" | "aws_secret_access_key" | "aws_session_token"
            )
        })
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .collect()
}

/// Neither stream holds one of `secrets` or any full `AKIA…`/`ASIA…` key id (even one that was
/// never written, such as a role key obtained in a pass that then failed).
#[track_caller]
fn assert_no_secrets(secrets: &[String], out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        for secret in secrets {
            assert!(
                !stream.contains(secret.as_str()),
                "`{}` printed a secret ({}…)\n{}",
                out.cmdline,
                secret.get(..4).unwrap_or_default(),
                out.streams()
            );
        }
        let ids = full_key_ids(stream);
        assert!(
            ids.is_empty(),
            "`{}` printed full access key ids {ids:?}\n{}",
            out.cmdline,
            out.streams()
        );
    }
}

/// `AKIA`/`ASIA` followed by 16 upper-case letters or digits: a whole access key id.
fn full_key_ids(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(19))
        .filter(|&at| {
            matches!(&bytes[at..at + 4], b"AKIA" | b"ASIA")
                && bytes[at + 4..at + 20]
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
        .map(|at| &text[at..at + 20])
        .collect()
}

/// The lines of section `[name]` (header to the next header), if present.
fn section(text: &str, name: &str) -> Option<String> {
    let header = format!("[{name}]");
    let mut lines = text.lines().skip_while(|line| line.trim() != header);
    let first = lines.next()?;
    let rest: Vec<&str> = lines.take_while(|line| !line.starts_with('[')).collect();
    Some(format!("{first}\n{}", rest.join("\n")))
}

/// The proxy's record, one `Action status` line per request (`-`: no answer yet or dropped).
fn trace(proxy: &FaultProxy) -> String {
    proxy
        .requests()
        .iter()
        .map(|request| {
            let status = request
                .status
                .map_or_else(|| "-".to_owned(), |s| s.to_string());
            format!("{} {status}", request.action.as_deref().unwrap_or("?"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts how many requests of each STS action the proxy saw.
#[track_caller]
fn assert_counts(proxy: &FaultProxy, assume_role: usize, session_token: usize) {
    assert_eq!(
        (proxy.count("AssumeRole"), proxy.count("GetSessionToken")),
        (assume_role, session_token),
        "(AssumeRole, GetSessionToken) requests; the proxy saw:\n{}",
        trace(proxy)
    );
}

// --- STS faults on `rolecall refresh --force dev-admin` -------------------------------------

#[test]
fn throttling_on_every_attempt_is_retried_three_times_then_reported() {
    let world = refreshed_world(CONFIG);
    world.proxy.set_rule_for("AssumeRole", Fault::Throttle);

    let out = refresh_fails(&world, &["refresh", "--force", "dev-admin"]);
    assert_contains!(out.stdout, "dev-admin  FAILED");
    assert_contains!(
        out.stderr,
        "profile dev-admin: STS is throttling requests (still after 3 attempts)"
    );
    assert_contains!(out.stderr, "try again");
    assert_counts(&world.proxy, 3, 0);
}

#[test]
fn service_unavailable_on_every_attempt_is_retried_three_times_then_reported() {
    let world = refreshed_world(CONFIG);
    world.proxy.set_rule_for("AssumeRole", Fault::Status(503));

    let out = refresh_fails(&world, &["refresh", "--force", "dev-admin"]);
    assert_contains!(
        out.stderr,
        "profile dev-admin: STS is unavailable (HTTP 503, still after 3 attempts)"
    );
    assert_contains!(out.stderr, "try again later");
    assert_counts(&world.proxy, 3, 0);
}

#[test]
fn two_internal_errors_then_success_renews_the_profile() {
    let world = refreshed_world(CONFIG);
    world.proxy.push_for("AssumeRole", Fault::Status(500));
    world.proxy.push_for("AssumeRole", Fault::Status(500));

    let out = refresh_renews(&world, &["refresh", "--force", "dev-admin"], "dev-admin");
    assert_contains!(out.stdout, "dev-admin  renewed");
    eqnice!(
        "AssumeRole 500\nAssumeRole 500\nAssumeRole 200",
        trace(&world.proxy)
    );
}

#[test]
fn two_throttles_then_success_renews_the_profile() {
    let world = refreshed_world(CONFIG);
    world.proxy.push_for("AssumeRole", Fault::Throttle);
    world.proxy.push_for("AssumeRole", Fault::Throttle);

    let out = refresh_renews(&world, &["refresh", "--force", "dev-admin"], "dev-admin");
    assert_contains!(out.stdout, "dev-admin  renewed");
    eqnice!(
        "AssumeRole 400\nAssumeRole 400\nAssumeRole 200",
        trace(&world.proxy)
    );
}

#[test]
fn an_sts_slower_than_sts_timeout_is_retried_three_times_then_reported() {
    let world = refreshed_world(CONFIG);
    // Answers held far beyond sts_timeout = "2s": only the timeout can end an attempt (without
    // one, the first attempt alone would outlast the command's deadline).
    world
        .proxy
        .set_rule_for("AssumeRole", Fault::Delay(Duration::from_secs(120)));

    let out = refresh_fails(&world, &["refresh", "--force", "dev-admin"]);
    assert_contains!(
        out.stderr,
        "profile dev-admin: STS did not answer in time (after 3 attempts)"
    );
    assert_counts(&world.proxy, 3, 0);
}

#[test]
fn a_dropped_connection_is_retried_then_reported_as_a_network_failure() {
    let world = refreshed_world(CONFIG);
    world.proxy.set_rule_for("AssumeRole", Fault::Drop);

    let out = refresh_fails(&world, &["refresh", "--force", "dev-admin"]);
    assert_contains!(
        out.stderr,
        "profile dev-admin: the connection to STS failed"
    );
    assert_contains!(out.stderr, "check your network");
    eqnice!(
        "AssumeRole -\nAssumeRole -\nAssumeRole -",
        trace(&world.proxy)
    );
}

#[test]
fn access_denied_is_not_retried_and_names_the_role() {
    let world = refreshed_world(CONFIG);
    world.proxy.set_rule_for("AssumeRole", Fault::AccessDenied);

    let out = refresh_fails(&world, &["refresh", "--force", "dev-admin"]);
    assert_contains!(
        out.stderr,
        &format!("profile dev-admin: access denied assuming {ADMIN_ROLE}")
    );
    assert_counts(&world.proxy, 1, 0);
}

#[test]
fn an_unknown_access_key_is_not_retried_and_says_to_store_a_new_key() {
    let world = refreshed_world(CONFIG);
    world
        .proxy
        .set_rule_for("GetSessionToken", Fault::InvalidClientTokenId);

    let out = refresh_fails(
        &world,
        &["refresh", "--force", "session", "--mfa-code", MFA_CODE],
    );
    assert_contains!(
        out.stderr,
        "source bastion: AWS does not recognise the access key"
    );
    assert_contains!(out.stderr, "rolecall keys add");
    assert_counts(&world.proxy, 0, 1);
}

#[test]
fn a_wrong_mfa_code_is_not_retried_and_says_so() {
    let world = refreshed_world(CONFIG);
    world.proxy.set_rule_for("GetSessionToken", Fault::WrongMfa);

    let out = refresh_fails(
        &world,
        &["refresh", "--force", "session", "--mfa-code", MFA_CODE],
    );
    assert_contains!(out.stderr, "source bastion: the MFA code was not accepted");
    assert_counts(&world.proxy, 0, 1);
    assert_eq!(
        world.proxy.requests()[0].param("TokenCode"),
        Some(MFA_CODE),
        "the code given was not the one sent"
    );
}

#[test]
fn a_skewed_clock_is_not_retried_and_says_to_fix_the_clock() {
    let world = refreshed_world(CONFIG);
    world
        .proxy
        .set_rule_for("AssumeRole", Fault::SignatureExpired);

    let out = refresh_fails(&world, &["refresh", "--force", "dev-admin"]);
    assert_contains!(
        out.stderr,
        "profile dev-admin: AWS rejected the request time"
    );
    assert_contains!(out.stderr, "clock");
    assert_counts(&world.proxy, 1, 0);
}

#[test]
fn an_expired_cached_session_is_replaced_with_a_new_one_when_a_code_is_given() {
    let world = refreshed_world(CONFIG);
    // Once: a retry with the same rejected session would pass, so only the trace tells whether
    // Rolecall really started a new session.
    world.proxy.push_for("AssumeRole", Fault::ExpiredToken);

    refresh_renews(
        &world,
        &["refresh", "--force", "dev-admin", "--mfa-code", MFA_CODE],
        "dev-admin",
    );
    eqnice!(
        "AssumeRole 400\nGetSessionToken 200\nAssumeRole 200",
        trace(&world.proxy)
    );
    let requests = world.proxy.requests();
    assert_eq!(requests[1].param("TokenCode"), Some(MFA_CODE));
    assert_eq!(requests[2].param("RoleArn"), Some(ADMIN_ROLE));
}

#[test]
fn an_expired_cached_session_without_a_code_fails_asking_for_one() {
    let world = refreshed_world(CONFIG);
    // Once, as above: exit 0 here means the rejected session was used a second time.
    world.proxy.push_for("AssumeRole", Fault::ExpiredToken);

    let out = refresh_fails(&world, &["refresh", "--force", "dev-admin"]);
    assert_contains!(
        out.stderr,
        &format!("source bastion: a new session needs an MFA code from {MFA_SERIAL}")
    );
    assert_contains!(out.stderr, "--mfa-code");
    assert_counts(&world.proxy, 1, 0);
}

// --- keep going ------------------------------------------------------------------------------

#[test]
fn a_denied_profile_fails_alone_while_the_others_are_renewed() {
    let world = refreshed_world(&with_ops());
    let before = world.credentials();
    // Profiles run in chain order (dev-admin, audit, ops, session): the first AssumeRole is
    // dev-admin's; the RoleArn check below makes sure of it.
    world.proxy.push_for("AssumeRole", Fault::AccessDenied);

    let out = world
        .rc(&["refresh", "--force", "--mfa-code", MFA_CODE])
        .run()
        .code_is(1);
    let after = world.credentials();
    assert_no_secrets(&[secrets(&world), secrets_in(&before)].concat(), &out);

    let lines: Vec<&str> = out.stdout.lines().collect();
    for (profile, result) in [
        ("dev-admin", "FAILED"),
        ("audit", "FAILED"),
        ("ops", "renewed"),
        ("session", "renewed"),
    ] {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with(profile) && line.contains(result)),
            "expected `{profile} … {result}`\n{}",
            out.streams()
        );
    }
    assert_contains!(
        out.stderr,
        &format!("profile dev-admin: access denied assuming {ADMIN_ROLE}")
    );
    // the chained profile's line says why in short; the shared cause is said once (issue 14)
    assert_contains!(
        out.stdout,
        "audit      FAILED: not renewed because profile dev-admin failed\n"
    );
    assert_eq!(
        out.stderr.matches("access denied assuming").count(),
        1,
        "{}",
        out.streams()
    );
    let roles: Vec<_> = world
        .proxy
        .requests_of("AssumeRole")
        .iter()
        .map(|request| request.param("RoleArn").unwrap_or("").to_owned())
        .collect();
    assert_eq!(roles, [ADMIN_ROLE, OPS_ROLE], "{}", trace(&world.proxy));

    for kept in ["dev-admin", "audit"] {
        eqnice!(
            section(&before, kept).unwrap_or_default(),
            section(&after, kept).unwrap_or_default(),
            "[{kept}] failed but was changed"
        );
    }
    assert_ne!(
        key_id(&before, "ops"),
        key_id(&after, "ops"),
        "[ops] was not renewed:\n{after}"
    );
}

// --- MFA ------------------------------------------------------------------------------------

#[test]
fn a_first_refresh_without_a_code_or_terminal_asks_for_one_naming_the_source() {
    let world = World::start();
    world.setup(CONFIG);

    let out = world.rc(&["refresh"]).run().code_is(1);
    assert_contains!(
        out.stderr,
        &format!("source bastion: a new session needs an MFA code from {MFA_SERIAL}")
    );
    assert_contains!(out.stderr, "--mfa-code");
    assert_no_secrets(&secrets(&world), &out);
    assert!(world.proxy.requests().is_empty(), "{}", trace(&world.proxy));
    eqnice!("", world.credentials());
}

#[test]
fn a_malformed_mfa_code_is_rejected_before_any_sts_request() {
    let world = World::start();
    world.setup(CONFIG);

    for code in ["12ab", "12345", "1234567", ""] {
        let out = world
            .rc(&["refresh", "--force", "--mfa-code", code])
            .run()
            .code_is(2);
        assert_contains!(out.stderr, "6 digits");
        assert_no_secrets(&secrets(&world), &out);
    }
    assert!(world.proxy.requests().is_empty(), "{}", trace(&world.proxy));
    eqnice!("", world.credentials());
}

#[test]
fn a_second_forced_refresh_reuses_the_cached_session_and_needs_no_code() {
    let world = World::start();
    world.setup(CONFIG);
    world
        .rc(&["refresh", "dev-admin", "--mfa-code", MFA_CODE])
        .run()
        .success();
    assert_counts(&world.proxy, 1, 1);

    // No code and no terminal: only the session cached in the keychain can make this work.
    refresh_renews(&world, &["refresh", "--force", "dev-admin"], "dev-admin");
    assert_counts(&world.proxy, 2, 1);
}

#[test]
fn status_shows_needs_mfa_until_a_session_is_cached() {
    let world = World::start();
    world.setup(CONFIG);
    let states = || -> Vec<(String, String)> {
        let out = world.rc(&["status", "--json"]).run().success();
        let rows = out.json();
        let rows = rows.as_array().expect("status --json is a list");
        rows.iter()
            .map(|row| {
                (
                    row["profile"].as_str().unwrap_or("?").to_owned(),
                    row["state"].as_str().unwrap_or("?").to_owned(),
                )
            })
            .collect()
    };
    let pairs = |state: &str| -> Vec<(String, String)> {
        ["dev-admin", "audit", "session"]
            .iter()
            .map(|profile| ((*profile).to_owned(), state.to_owned()))
            .collect()
    };

    assert_eq!(states(), pairs("needs-mfa"));
    world
        .rc(&["refresh", "--mfa-code", MFA_CODE])
        .run()
        .success();
    assert_eq!(states(), pairs("fresh"));
}

// --- keychain -------------------------------------------------------------------------------

#[test]
fn a_locked_keychain_fails_fast_says_how_to_unlock_and_leaves_the_file_alone() {
    let world = refreshed_world(CONFIG);
    world.keyring.lock();

    // fails instead of waiting for an unlock prompt (which nobody answers here: a wait would
    // run into the command's deadline)
    let out = refresh_fails(&world, &["refresh", "--force", "--mfa-code", MFA_CODE]);
    assert_contains!(out.stderr, "keychain is locked");
    assert_contains!(out.stderr, "unlock your login keyring");
    assert!(
        world.proxy.requests().is_empty(),
        "STS was called without keys:\n{}",
        trace(&world.proxy)
    );

    let out = world.rc(&["keys", "list"]).run().failure();
    assert_contains!(out.stderr, "keychain is locked");
    assert_contains!(out.stderr, "unlock your login keyring");
    assert_no_secrets(&secrets(&world), &out);

    world.keyring.unlock();
    world.rc(&["keys", "list"]).run().success();
}

#[test]
fn without_a_secret_service_keys_add_fails_and_stores_the_key_nowhere() {
    let sandbox = Sandbox::new();
    let bus = BareBus::start(&sandbox);
    for address in [bus.address.as_str(), "unix:path=/nonexistent"] {
        let out = Rolecall::new(&sandbox)
            .env("DBUS_SESSION_BUS_ADDRESS", address)
            .cmd(&["keys", "add", "bastion", "--mfa-serial", MFA_SERIAL])
            .stdin(format!("{TEST_ACCESS_KEY_ID}\n{TEST_SECRET_ACCESS_KEY}\n"))
            .run()
            .failure();
        assert_contains!(out.stderr, "no keychain (Secret Service) is reachable");
        assert_contains!(out.stderr, "gnome-keyring");
        // The advice must be something the config accepts, and `keychain` is the only kind.
        assert!(
            !out.stderr.contains("instance-profile"),
            "the advice names a source kind the config rejects\n{}",
            out.streams()
        );
        let stored = [
            TEST_ACCESS_KEY_ID.to_owned(),
            TEST_SECRET_ACCESS_KEY.to_owned(),
        ];
        assert_no_secrets(&stored, &out);
        assert!(
            !sandbox.config_path().exists(),
            "`{}` wrote a config for a key it could not store",
            out.cmdline
        );
    }
    drop(bus);
    let leaks = files_containing(sandbox.root(), TEST_SECRET_ACCESS_KEY.as_bytes());
    assert!(leaks.is_empty(), "the secret is in plaintext in {leaks:?}");
}

/// A private session bus with nothing on it: no Secret Service, no service activation.
struct BareBus {
    address: String,
    _daemon: Process,
}

impl BareBus {
    fn start(sandbox: &Sandbox) -> BareBus {
        let socket = sandbox.runtime_dir().join("bare-bus");
        let address = format!("unix:path={}", socket.display());
        let config = sandbox.bed_dir().join("bare-bus.conf");
        sandbox.write(
            &config,
            &format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n  \
                 <type>session</type>\n  <listen>{address}</listen>\n  <auth>EXTERNAL</auth>\n  \
                 <policy context=\"default\">\n    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n    \
                 <allow eavesdrop=\"true\"/>\n    <allow own=\"*\"/>\n  </policy>\n</busconfig>\n"
            ),
        );
        let daemon = TestCommand::new("dbus-daemon", sandbox.env())
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile"])
            .spawn("dbus-daemon", &sandbox.log_path("bare-bus"));
        let ready = wait_until(Duration::from_secs(15), || {
            let out = TestCommand::new("gdbus", sandbox.env())
                .env("DBUS_SESSION_BUS_ADDRESS", &address)
                .args([
                    "call",
                    "--session",
                    "--dest",
                    "org.freedesktop.DBus",
                    "--object-path",
                    "/org/freedesktop/DBus",
                    "--method",
                    "org.freedesktop.DBus.NameHasOwner",
                    "org.freedesktop.secrets",
                ])
                .timeout(Duration::from_secs(5))
                .run();
            (out.code == Some(0)).then_some(out.stdout)
        });
        let owned =
            ready.unwrap_or_else(|| panic!("the bare bus did not come up:\n{}", daemon.log()));
        assert_eq!(
            owned.trim(),
            "(false,)",
            "something owns the Secret Service name"
        );
        BareBus {
            address,
            _daemon: daemon,
        }
    }
}

/// Every regular file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(kind) if kind.is_file() => {
                    let bytes = fs::read(&path).unwrap_or_default();
                    if bytes.windows(needle.len()).any(|window| window == needle) {
                        found.push(path.display().to_string());
                    }
                }
                _ => {}
            }
        }
    }
    found
}

// --- secrets in logs ------------------------------------------------------------------------

#[test]
fn trace_logs_of_a_successful_refresh_show_no_secret() {
    let world = World::start();
    world.setup(CONFIG);

    let first = world
        .rc(&["-vvv", "refresh", "--mfa-code", MFA_CODE])
        .run()
        .success();
    let second = world
        .rc(&[
            "-vvv",
            "--log-format",
            "json",
            "refresh",
            "--force",
            "dev-admin",
        ])
        .run()
        .success();
    let secrets = secrets(&world);
    for out in [&first, &second] {
        assert_contains!(out.stderr, "DEBUG");
        assert_no_secrets(&secrets, out);
    }
    // The one-time code is a credential too, for its 30 seconds.
    assert_not_contains!(first.stderr, MFA_CODE);
    let leaks = files_containing(world.sandbox.root(), TEST_SECRET_ACCESS_KEY.as_bytes());
    assert!(leaks.is_empty(), "the secret is in plaintext in {leaks:?}");
}
