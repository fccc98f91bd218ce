//! The tray app's MFA popup driven like a person would, through WebDriver (`tauri-driver` +
//! WebKitWebDriver, see `support::webdriver`): the real app under Xvfb on the keyring's private
//! bus, hosting the engine, with moto's STS behind the fault proxy.
//!
//! Each test starts the app with the key stored and no session yet, so the app opens the popup
//! by itself at start (that first window is the one the WebDriver session drives).

use crate::support::credfile::{expiration, key_id, value};
use crate::support::{
    CONFIG, Driver, Fault, MFA_SERIAL, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, World, Xvfb,
    wait_until,
};
use std::time::Duration;

const CODE: &str = "123456";
/// A second source's MFA device.
const BOB: &str = "arn:aws:iam::123456789012:mfa/bob";

/// A world whose key is stored and whose config is written, but no session started: the app
/// needs a code as soon as it runs.
fn world_needing_a_code() -> World {
    let world = World::start();
    world.setup(CONFIG);
    world
}

/// Waits until the popup names the source and its MFA device.
fn wait_for_prompt(driver: &Driver) -> String {
    driver.wait_for_text("#what", "the source and its device", |t| {
        t.contains("bastion") && t.contains(MFA_SERIAL)
    })
}

/// Waits until every profile of `CONFIG` is in the credentials file with an expiry.
fn wait_for_roles_written(world: &World, driver: &Driver) -> String {
    let written = wait_until(Duration::from_secs(30), || {
        let text = world.credentials();
        ["dev-admin", "audit", "session"]
            .iter()
            .all(|p| key_id(&text, p).is_some() && expiration(&text, p).is_some())
            .then_some(text)
    });
    written.unwrap_or_else(|| {
        panic!(
            "the roles were not written:\n{}\n{}",
            world.credentials(),
            driver.log()
        )
    })
}

/// Waits until `command` (a CLI command needing the popup's code) says `asked`, checks nothing
/// was written yet, types the code into the popup and waits for `command` to succeed; returns
/// what it printed.
fn answered_in_the_popup(
    world: &World,
    driver: &Driver,
    command: &mut crate::support::Process,
    asked: &str,
) -> String {
    let seen = wait_until(Duration::from_secs(30), || {
        command.log().contains(asked).then_some(())
    });
    assert!(
        seen.is_some(),
        "the command never said {asked:?}:\n{}",
        command.log()
    );
    assert_eq!(world.credentials(), "");

    driver.type_into("#code", CODE);
    let status = command.wait_timeout(Duration::from_secs(60));
    let out = command.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "the command did not complete after the code went into the popup ({status:?}):\n{out}\n{}",
        driver.log()
    );
    out
}

/// The `TokenCode`s of the `GetSessionToken` calls STS got, in order.
fn codes_sent(world: &World) -> Vec<String> {
    world
        .proxy
        .requests_of("GetSessionToken")
        .iter()
        .map(|r| r.param("TokenCode").unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_code_typed_in_the_popup_starts_the_session_and_writes_the_roles() {
    let world = world_needing_a_code();
    let xvfb = Xvfb::start(&world);
    let driver = Driver::launch_app(&world, &xvfb);
    let what = wait_for_prompt(&driver);
    assert_contains!(what, "Source");
    assert_contains!(what, "Device");

    // five digits are not a code yet: nothing is sent
    driver.type_into("#code", &CODE[..5]);
    assert_eq!(
        driver.eval("return document.getElementById('code').value", vec![]),
        Some(serde_json::json!(&CODE[..5]))
    );
    assert_eq!(codes_sent(&world), Vec::<String>::new());
    assert_eq!(world.credentials(), "");

    // the sixth digit submits: no Enter, no button
    driver.type_into("#code", &CODE[5..]);
    let text = wait_for_roles_written(&world, &driver);
    assert_eq!(codes_sent(&world), vec![CODE.to_owned()]);
    let request = world.proxy.first("GetSessionToken").expect("one call");
    assert_eq!(request.param("SerialNumber"), Some(MFA_SERIAL));
    for profile in ["dev-admin", "audit", "session"] {
        assert!(
            value(&text, profile, "aws_session_token").is_some(),
            "[{profile}] holds no temporary credentials:\n{text}"
        );
    }
    // the roles were assumed with the session (moto gives assumed roles ASIA ids)
    for role in ["dev-admin", "audit"] {
        assert!(
            key_id(&text, role).is_some_and(|id| id.starts_with("ASIA")),
            "[{role}] is not an assumed role's:\n{text}"
        );
    }
    driver.wait_closed();
}

#[test]
fn a_wrong_code_shows_the_error_in_the_popup_and_a_pasted_retry_succeeds() {
    let world = world_needing_a_code();
    // once: STS's answer to a wrong code; the retry reaches moto
    world.proxy.push_for("GetSessionToken", Fault::WrongMfa);
    let xvfb = Xvfb::start(&world);
    let driver = Driver::launch_app(&world, &xvfb);
    wait_for_prompt(&driver);

    driver.type_into("#code", "654321");
    let error = driver.wait_for_text("#error", "the wrong code's error", |t| !t.is_empty());
    assert_contains!(error, "the MFA code was not accepted");
    assert_eq!(codes_sent(&world), vec!["654321".to_owned()]);
    // the window stays, emptied and ready for another code
    assert_eq!(driver.windows().len(), 1, "{}", driver.log());
    let state = driver.eval(
        "const c = document.getElementById('code'); \
         return [c.value, c.disabled, document.activeElement === c]",
        vec![],
    );
    assert_eq!(state, Some(serde_json::json!(["", false, true])));
    assert_eq!(world.credentials(), "");

    // an authenticator shows "123 456": pasted as is, it is six digits and submits
    driver.paste_into("#code", "123 456");
    wait_for_roles_written(&world, &driver);
    assert_eq!(
        codes_sent(&world),
        vec!["654321".to_owned(), CODE.to_owned()]
    );
    driver.wait_closed();
}

/// Runs a program on a pseudo-terminal and copies what it prints to stdout as it comes; exits
/// with the program's status. argv: a JSON list of [prompt, answer] pairs (each answer typed
/// once its prompt shows, in order), then the program and its arguments.
const ON_A_TERMINAL: &str = r#"
import json, os, pty, sys
pairs = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    if pairs and pairs[0][0].encode() in out:
        out = b""
        os.write(fd, pairs.pop(0)[1].encode())
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn a_terminal_refresh_needing_a_code_completes_once_the_popup_gets_it() {
    let world = world_needing_a_code();
    let xvfb = Xvfb::start(&world);
    let driver = Driver::launch_app(&world, &xvfb);
    wait_for_prompt(&driver);

    // `rolecall refresh` at a terminal while the app hosts the agent: it asks the app, which
    // needs a code for bastion too
    let mut refresh = world
        .rolecall
        .python(ON_A_TERMINAL)
        .arg("[]")
        .arg(crate::support::rolecall_bin())
        .arg("refresh")
        .spawn(
            "rolecall refresh",
            &world.sandbox.log_path("refresh-on-a-terminal"),
        );
    let screen =
        answered_in_the_popup(&world, &driver, &mut refresh, "MFA code for source bastion");
    assert_contains!(screen, "given in the Rolecall app");
    assert_not_contains!(screen, "FAILED");
    // the popup's code renewed them all; the command reports each as valid
    for profile in ["dev-admin", "audit", "session"] {
        assert!(
            screen.lines().any(|l| l.starts_with(profile)
                && (l.contains("renewed") || l.contains("still valid until"))),
            "{profile} not reported valid:\n{screen}"
        );
    }
    wait_for_roles_written(&world, &driver);
    // one session, started by the popup's code: the terminal was never answered
    assert_eq!(codes_sent(&world), vec![CODE.to_owned()]);
    driver.wait_closed();
}

#[test]
fn a_terminal_refresh_asks_the_next_source_after_the_popup_answered_one() {
    let world = world_needing_a_code();
    world
        .rc(&["keys", "add", "second", "--mfa-serial", BOB])
        .stdin(format!("{TEST_ACCESS_KEY_ID}\n{TEST_SECRET_ACCESS_KEY}\n"))
        .run()
        .success();
    world.sandbox.write(
        world.sandbox.config_path(),
        &format!("{CONFIG}\n[sources.second]\nmfa_serial = \"{BOB}\"\n\n[profiles.other]\nsource = \"second\"\n"),
    );
    let xvfb = Xvfb::start(&world);
    let driver = Driver::launch_app(&world, &xvfb);
    // the session drives the app's first popup: bastion's (the first profile's source)
    wait_for_prompt(&driver);

    // the command asks bastion first: the popup answers it; then the terminal gets second's
    let pairs = serde_json::json!([["MFA code for source second", "234567\n"]]).to_string();
    let mut refresh = world
        .rolecall
        .python(ON_A_TERMINAL)
        .arg(pairs)
        .arg(crate::support::rolecall_bin())
        .arg("refresh")
        .spawn(
            "rolecall refresh",
            &world.sandbox.log_path("refresh-on-a-terminal"),
        );
    let asked = wait_until(Duration::from_secs(30), || {
        refresh
            .log()
            .contains("MFA code for source bastion")
            .then_some(())
    });
    assert!(asked.is_some(), "refresh did not ask:\n{}", refresh.log());
    driver.type_into("#code", CODE);

    // the line typed for second goes to second's question, not to the dropped one's reader
    let status = refresh.wait_timeout(Duration::from_secs(30));
    let screen = refresh.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "refresh did not complete ({status:?}):\n{screen}\n{}",
        driver.log()
    );
    assert_not_contains!(screen, "FAILED");
    let mut sent = codes_sent(&world);
    sent.sort();
    assert_eq!(sent, vec![CODE.to_owned(), "234567".to_owned()]);
    assert!(
        key_id(&world.credentials(), "other").is_some(),
        "{}",
        world.credentials()
    );
}

/// Issue 12: a command with no terminal (a script, an IDE's task) needing a code while the app
/// runs waits for the code given in the popup instead of failing at once.
#[test]
fn a_refresh_without_a_terminal_waits_for_the_popup() {
    let world = world_needing_a_code();
    let xvfb = Xvfb::start(&world);
    let driver = Driver::launch_app(&world, &xvfb);
    wait_for_prompt(&driver);

    let mut refresh = world.rc(&["refresh"]).stdin("").spawn(
        "rolecall refresh",
        &world.sandbox.log_path("refresh-without-a-terminal"),
    );
    let out = answered_in_the_popup(
        &world,
        &driver,
        &mut refresh,
        "waiting up to 2m for it in the Rolecall app's window",
    );
    assert_contains!(out, "given in the Rolecall app");
    assert_not_contains!(out, "FAILED");
    wait_for_roles_written(&world, &driver);
    assert_eq!(codes_sent(&world), vec![CODE.to_owned()]);
    driver.wait_closed();
}

/// Issue 15: `credential_process` run by an SDK (no terminal) while the app runs: the popup
/// asks for the code, the call waits for it and then prints the credentials.
#[test]
fn credential_process_waits_for_the_code_typed_in_the_popup() {
    let world = world_needing_a_code();
    let xvfb = Xvfb::start(&world);
    let driver = Driver::launch_app(&world, &xvfb);
    wait_for_prompt(&driver);

    let mut call = world.rc(&["credential-process", "dev-admin"]).spawn(
        "rolecall credential-process",
        &world.sandbox.log_path("credential-process"),
    );
    let out = answered_in_the_popup(
        &world,
        &driver,
        &mut call,
        "waiting up to 2m for it in the Rolecall app's window",
    );
    let json = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in:\n{out}"));
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(doc["Version"], 1);
    assert!(
        doc["AccessKeyId"]
            .as_str()
            .is_some_and(|k| k.starts_with("ASIA")),
        "{json}"
    );
    assert_eq!(codes_sent(&world), vec![CODE.to_owned()]);
    driver.wait_closed();
}
