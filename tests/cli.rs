//! The `rolecall` command's own process: what `exec` hands its child (umask, core limit,
//! signals, exit status), how an MFA code is given without showing it, and the process's
//! protection while it holds credentials.

use std::time::Duration;

use crate::support::{CONFIG, TestCommand, World, rolecall_bin, wait_until};

/// `sh -c 'SETUP; exec rolecall ARGS…'`: rolecall started by a shell that set `setup` first
/// (a umask, a core limit), as a user's shell would have.
fn rolecall_after(world: &World, setup: &str, args: &[&str]) -> TestCommand {
    let bin = rolecall_bin();
    TestCommand::new("sh", world.rolecall.environment().clone())
        .args(["-c", &format!("{setup}; exec \"$@\""), "sh"])
        .arg(bin)
        .args(args)
        .current_dir(world.sandbox.home())
}

/// A world whose `bastion` session is cached, so `exec` needs no code.
fn refreshed_world() -> World {
    let world = World::start();
    world.setup(CONFIG);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    world
}

#[test]
fn issue_13_exec_children_get_the_callers_umask_and_core_limit() {
    let world = refreshed_world();
    let out = rolecall_after(
        &world,
        "umask 022; ulimit -c 1024",
        &["exec", "dev-admin", "--", "sh", "-c", "umask; ulimit -c"],
    )
    .run()
    .success();
    assert_eq!(out.stdout, "0022\n1024\n", "{}", out.streams());
    // what the child creates is not private
    let file = world.sandbox.path("made-by-child");
    rolecall_after(
        &world,
        "umask 022",
        &["exec", "dev-admin", "--", "touch", file.to_str().unwrap()],
    )
    .run()
    .success();
    assert_eq!(world.sandbox.mode(&file) & 0o777, 0o644);
}

#[test]
fn issue_13_the_cli_cannot_dump_core_while_it_holds_credentials() {
    let world = refreshed_world();
    // the child looks at its parent (rolecall, credentials in memory) while it waits for it
    let script = r#"i=0; while [ $i -lt 200 ]; do
        grep -Eq '^Max core file size +0 ' /proc/$PPID/limits && { echo no-core; exit 0; }
        sleep 0.05; i=$((i+1)); done; grep '^Max core' /proc/$PPID/limits; exit 1"#;
    let out = rolecall_after(
        &world,
        "ulimit -c 1024",
        &["exec", "dev-admin", "--", "sh", "-c", script],
    )
    .run();
    assert_eq!(out.stdout, "no-core\n", "{}", out.streams());
}

/// `rolecall exec` started in the background with a child that writes `ready`, then runs
/// `body`; returns the process and the ready file.
fn exec_in_background(
    world: &World,
    name: &str,
    body: &str,
) -> (crate::support::Process, std::path::PathBuf) {
    let ready = world.sandbox.path(format!("{name}.ready"));
    let script = format!("{body}; echo up > '{}'; wait_loop", ready.display());
    // the loop ends by itself after 30 s: a child that was never told must not outlive the test
    let script = format!(
        "wait_loop() {{ i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; exit 3; }}; {script}"
    );
    let process = world
        .rc(&["exec", "dev-admin", "--", "sh", "-c", &script])
        .spawn(name, &world.sandbox.log_path(name));
    (process, ready)
}

#[test]
fn issue_13_exec_passes_sigterm_to_its_child_and_returns_the_childs_status() {
    let world = refreshed_world();
    let marker = world.sandbox.path("got-term");
    let trap = format!("trap 'echo TERM > \"{}\"; exit 0' TERM", marker.display());
    let (mut process, ready) = exec_in_background(&world, "exec-trap", &trap);
    assert!(
        wait_until(Duration::from_secs(30), || ready.exists().then_some(())).is_some(),
        "the child did not start:\n{}",
        process.log()
    );
    process.signal("TERM");
    let status = process
        .wait_timeout(Duration::from_secs(30))
        .expect("rolecall exec ends when its child does");
    assert_eq!(world.sandbox.read(&marker), "TERM\n", "{}", process.log());
    assert_eq!(
        status.code(),
        Some(0),
        "the child's own exit code: {status:?}"
    );
}

#[test]
fn issue_13_exec_exits_128_plus_the_signal_that_ended_its_child() {
    let world = refreshed_world();
    // no trap: SIGHUP, passed on, ends the child
    let (mut process, ready) = exec_in_background(&world, "exec-hup", "true");
    assert!(
        wait_until(Duration::from_secs(30), || ready.exists().then_some(())).is_some(),
        "the child did not start:\n{}",
        process.log()
    );
    process.signal("HUP");
    let status = process
        .wait_timeout(Duration::from_secs(30))
        .expect("rolecall exec ends when its child does");
    assert_eq!(
        status.code(),
        Some(128 + 1),
        "{status:?}\n{}",
        process.log()
    );
}

#[test]
fn issue_13_an_mfa_code_can_come_from_stdin_and_messages_do_not_ask_for_it_in_argv() {
    let world = World::start();
    world.setup(CONFIG);
    let out = world.rc(&["--no-agent", "refresh"]).run().code_is(1);
    assert_contains!(out.stderr, "run `rolecall refresh` on a terminal");
    assert_not_contains!(out.stderr, "--mfa-code CODE");

    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "-"])
        .stdin("123456\n")
        .run()
        .success();
    let gst = world.proxy.first("GetSessionToken").expect("a session");
    assert_eq!(gst.param("TokenCode"), Some("123456"));

    let out = world
        .rc(&["--no-agent", "refresh", "--force", "--mfa-code", "-"])
        .stdin("\n")
        .run()
        .code_is(2);
    assert_contains!(out.stderr, "stdin had no MFA code");
}
