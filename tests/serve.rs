//! The agent's socket as a client sees it, through a real `rolecall daemon`: bounded
//! connections, a stopped agent, where the socket lives without `XDG_RUNTIME_DIR`, and the
//! daemon's protection against core dumps.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::support::{CONFIG, Daemon, TestCommand, World, rolecall_bin, wait_until};

/// A world with the test key stored and [`CONFIG`] written.
fn world() -> World {
    let world = World::start();
    world.setup(CONFIG);
    world
}

/// Connects to the agent's socket with a read timeout that only detects a hang.
fn raw_client(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket).expect("connecting to the agent");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

/// Reads until the agent closes the connection; panics when it does not (the read timeout).
fn read_until_closed(stream: &mut UnixStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&all).into_owned(),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            // the agent closed while our over-long line was still arriving
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&all).into_owned();
            }
            Err(e) => panic!(
                "the agent did not close the connection: {e}; read so far: {}",
                String::from_utf8_lossy(&all)
            ),
        }
    }
}

#[test]
fn issue_13_a_client_that_sends_nothing_is_disconnected() {
    let world = world();
    let daemon = Daemon::start(&world);
    let mut silent = raw_client(&daemon.socket);
    let said = read_until_closed(&mut silent);
    assert_contains!(said, "no request in time");
    // the agent still serves others
    world.rc(&["status"]).run().success();
}

#[test]
fn issue_13_over_long_lines_end_the_connection_also_after_subscribe() {
    let world = world();
    let daemon = Daemon::start(&world);
    let long = vec![b'x'; 200 * 1024];

    let mut client = raw_client(&daemon.socket);
    // the agent answers and hangs up before it has read it all: our write may then fail
    let _ = client.write_all(&long);
    assert_contains!(read_until_closed(&mut client), "request too long");

    let mut subscriber = raw_client(&daemon.socket);
    subscriber
        .write_all(b"{\"v\":1,\"op\":\"subscribe\"}\n")
        .unwrap();
    let mut ack = [0u8; 256];
    let n = subscriber.read(&mut ack).unwrap();
    assert_contains!(String::from_utf8_lossy(&ack[..n]), "subscribed");
    let _ = subscriber.write_all(&long);
    let _ = read_until_closed(&mut subscriber);
}

#[test]
fn issue_13_a_stopped_agent_is_reported_and_status_is_answered_in_process() {
    let world = world();
    let mut daemon = Daemon::start(&world);
    daemon.signal("STOP");
    // resumes the daemon however the test ends, so that its Drop can stop it
    struct Resume<'a>(&'a mut Daemon);
    impl Drop for Resume<'_> {
        fn drop(&mut self) {
            self.0.signal("CONT");
        }
    }
    let _resume = Resume(&mut daemon);
    // the timeout only detects a hang: before the fix this never returned
    let out = world
        .rc(&["status"])
        .timeout(Duration::from_secs(45))
        .run()
        .success();
    assert_contains!(out.stderr, "the rolecall agent did not answer ping");
    assert_contains!(out.stderr, "kill -STOP");
    assert_contains!(out.stderr, "working in-process");
    assert_contains!(out.stdout, "dev-admin");
}

#[test]
fn issue_13_without_xdg_runtime_dir_the_agent_lives_in_the_users_cache_dir() {
    let world = world();
    let log = world.sandbox.log_path("daemon-no-runtime-dir");
    let mut daemon = world
        .rc(&["-v", "daemon"])
        .env_remove("XDG_RUNTIME_DIR")
        .spawn("rolecall daemon", &log);
    let dir = world.sandbox.cache_home().join("rolecall/run");
    let socket = dir.join("agent.sock");
    let up = wait_until(Duration::from_secs(30), || {
        if !daemon.is_running() {
            return Some(false);
        }
        socket.exists().then_some(true)
    });
    assert_eq!(
        up,
        Some(true),
        "no socket at {}:\n{}",
        socket.display(),
        daemon.log()
    );
    assert_eq!(world.sandbox.mode(&dir) & 0o777, 0o700);
    // a client without XDG_RUNTIME_DIR finds the same agent: a second one is refused
    let out = world
        .rc(&["daemon"])
        .env_remove("XDG_RUNTIME_DIR")
        .run()
        .failure();
    assert_contains!(out.stderr, "already running");
    assert_contains!(out.stderr, socket.to_str().unwrap());
}

#[test]
fn issue_13_the_daemon_cannot_dump_core() {
    let world = world();
    let log = world.sandbox.log_path("daemon-core");
    // started with core dumps allowed, as a user's shell may have them
    let mut daemon = TestCommand::new("sh", world.rolecall.environment().clone())
        .args(["-c", "ulimit -c 1024; exec \"$@\"", "sh"])
        .arg(rolecall_bin())
        .args(["-v", "daemon"])
        .current_dir(world.sandbox.home())
        .spawn("rolecall daemon", &log);
    let socket = world.sandbox.runtime_dir().join("rolecall/agent.sock");
    let up = wait_until(Duration::from_secs(30), || {
        if !daemon.is_running() {
            return Some(false);
        }
        socket.exists().then_some(true)
    });
    assert_eq!(
        up,
        Some(true),
        "the daemon did not start:\n{}",
        daemon.log()
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("a core limit line");
    let soft = core.split_whitespace().nth(4);
    assert_eq!(soft, Some("0"), "{core}");
}
