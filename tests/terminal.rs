//! What a person at a terminal sees: `rolecall keys add` prompts without echoing the key, and
//! `rolecall refresh` asks for the MFA code. Driven through a real pseudo-terminal (Python's
//! `pty`), answering each prompt only once it is shown, as a person would.

use crate::support::{CONFIG, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, World};

/// Drives a program on a pseudo-terminal like a person: waits for each prompt, then types the
/// answer. argv: JSON list of [prompt, answer] pairs, then the program and its arguments.
const TYPIST: &str = r#"
import json, os, pty, select, sys, time
pairs = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out = b""
def read(until=None, timeout=20):
    global out
    end = time.time() + timeout
    while time.time() < end and (until is None or until not in out):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            out += chunk
for prompt, answer in pairs:
    read(prompt.encode())
    time.sleep(0.1)  # the prompt is printed before echo is turned off: let it settle
    os.write(fd, answer.encode())
read()
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// Runs `rolecall ARGS` on a pseudo-terminal, answering each prompt; returns the screen.
pub(crate) fn on_a_terminal(world: &World, args: &[&str], exchanges: &[(&str, &str)]) -> String {
    let bin = crate::support::rolecall_bin();
    let pairs = serde_json::to_string(exchanges).expect("JSON");
    let out = world
        .rolecall
        .python(TYPIST)
        .arg(pairs)
        .arg(bin)
        .args(args)
        .run();
    assert_eq!(out.code, Some(0), "{}", out.streams());
    out.stdout
}

#[test]
fn keys_add_on_a_terminal_prompts_without_echo() {
    let world = World::start();
    let screen = on_a_terminal(
        &world,
        &[
            "keys",
            "add",
            "bastion",
            "--mfa-serial",
            "arn:aws:iam::123456789012:mfa/alice",
        ],
        &[
            ("AWS access key id:", &format!("{TEST_ACCESS_KEY_ID}\n")),
            (
                "AWS secret access key:",
                &format!("{TEST_SECRET_ACCESS_KEY}\n"),
            ),
        ],
    );
    assert_contains!(screen, "AWS access key id:");
    assert_contains!(screen, "AWS secret access key:");
    assert_not_contains!(screen, TEST_SECRET_ACCESS_KEY);
    assert_not_contains!(screen, TEST_ACCESS_KEY_ID);
    let stored = world
        .keyring
        .lookup("rolecall", "source:bastion")
        .expect("stored");
    assert_contains!(stored, TEST_SECRET_ACCESS_KEY);
}

#[test]
fn refresh_on_a_terminal_asks_for_the_mfa_code() {
    let world = World::start();
    world.setup(CONFIG);
    let screen = on_a_terminal(
        &world,
        &["refresh", "dev-admin"],
        &[("MFA code", "123456\n")],
    );
    assert_contains!(
        screen,
        "MFA code for source bastion (arn:aws:iam::123456789012:mfa/alice)"
    );
    assert_contains!(screen, "renewed");
    assert_eq!(world.proxy.count("GetSessionToken"), 1);
    let gst = world
        .proxy
        .first("GetSessionToken")
        .expect("a GetSessionToken request");
    assert_eq!(gst.param("TokenCode"), Some("123456"));
}

/// Through a running agent (which cannot prompt): the CLI asks once, and the agent renews the
/// profile and the one chained on it with that code.
#[test]
fn refresh_through_the_agent_asks_once_for_a_chain() {
    let world = World::start();
    world.setup(CONFIG);
    let _daemon = crate::support::Daemon::start(&world);
    let screen = on_a_terminal(
        &world,
        &["refresh", "audit", "dev-admin"],
        &[("MFA code", "123456\n")],
    );
    assert_eq!(
        screen.matches("MFA code for source bastion").count(),
        1,
        "{screen}"
    );
    let renewed = screen.lines().filter(|l| l.contains("renewed")).count();
    assert_eq!(renewed, 2, "{screen}");
    assert_eq!(world.proxy.count("GetSessionToken"), 1);
    let text = world.credentials();
    assert_contains!(text, "[audit]");
    assert_contains!(text, "[dev-admin]");
}

/// `credential_process` runs with stdout and stderr piped to the AWS CLI: it asks on the
/// terminal itself, and only the credentials JSON goes to stdout.
#[test]
fn credential_process_asks_on_the_terminal() {
    let world = World::start();
    world.setup(CONFIG);
    let screen = on_a_terminal(
        &world,
        &["credential-process", "dev-admin"],
        &[("MFA code", "918273\n")],
    );
    assert_contains!(screen, "MFA code for source bastion");
    assert_contains!(screen, "\"SessionToken\"");
    // (not echoed; the serial's account id has 123456 in it, hence another code)
    assert_not_contains!(screen, "918273");
    assert_eq!(world.proxy.count("GetSessionToken"), 1);
}

#[test]
fn issue_14_a_mistyped_mfa_code_is_asked_again() {
    let world = World::start();
    world.setup(CONFIG);
    let screen = on_a_terminal(
        &world,
        &["refresh", "dev-admin"],
        &[("MFA code", "12345\n"), ("more tries)", " 123 456\n")],
    );
    assert_contains!(screen, "that is not an MFA code");
    assert_contains!(screen, "renewed");
    let gst = world
        .proxy
        .first("GetSessionToken")
        .expect("a GetSessionToken request");
    assert_eq!(gst.param("TokenCode"), Some("123456"));
}

#[test]
fn issue_14_keys_add_on_a_terminal_asks_before_replacing_a_key() {
    let world = World::start();
    world.setup(CONFIG);
    let screen = on_a_terminal(
        &world,
        &["keys", "add", "bastion"],
        &[
            ("replace it? [y/N]", "y\n"),
            ("AWS access key id:", "AKIAI44QH8DHBEXAMPLE\n"),
            (
                "AWS secret access key:",
                "secretsecretsecretsecretsecretsecret0000\n",
            ),
        ],
    );
    assert_contains!(
        screen,
        "source bastion already has a key (…MPLE) in the keychain; replace it? [y/N]"
    );
    let stored = world
        .keyring
        .lookup("rolecall", "source:bastion")
        .expect("stored");
    assert_contains!(stored, "AKIAI44QH8DHBEXAMPLE");
}

/// `credential_process`'s stderr goes to the AWS CLI: the note on a typo is shown on the
/// terminal, with the prompt.
#[test]
fn issue_14_credential_process_asks_again_on_the_terminal_after_a_typo() {
    let world = World::start();
    world.setup(CONFIG);
    let screen = on_a_terminal(
        &world,
        &["credential-process", "dev-admin"],
        &[("MFA code", "9182\n"), ("more tries)", "918 273\n")],
    );
    assert_contains!(screen, "that is not an MFA code");
    assert_contains!(screen, "\"SessionToken\"");
    let gst = world.proxy.first("GetSessionToken").expect("a session");
    assert_eq!(gst.param("TokenCode"), Some("918273"));
}
