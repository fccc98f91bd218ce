//! `rolecall daemon` and its agent, against moto through the fault proxy and a real keychain.

use std::time::{Duration, Instant, SystemTime};

use crate::support::credfile::{expect_key_id, expiration, key_id};
use crate::support::{Daemon, Fault, TEST_SECRET_ACCESS_KEY, World, wait_until};

/// Two role profiles living 15 minutes, renewed when less than 14m50s remain: every ~10 s.
const SHORT: &str = r#"[settings]
refresh_before = "14m50s"
sts_timeout = "2s"

[sources.bastion]
mfa_serial = "arn:aws:iam::123456789012:mfa/alice"

[profiles.dev-admin]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Admin"
duration = "15m"
region = "eu-west-1"

[profiles.ops]
source = "bastion"
role_arn = "arn:aws:iam::444444444444:role/Ops"
duration = "15m"
"#;

/// A world with [`SHORT`]'s profiles written by one refresh without an agent, so that the
/// MFA session is cached in the keychain before a daemon starts.
fn refreshed_world() -> World {
    let world = World::start();
    world.setup(SHORT);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    world
}

/// The role of `dev-admin` in [`SHORT`].
const ADMIN_ROLE: &str = "arn:aws:iam::222222222222:role/Admin";
/// The role of `ops` in [`SHORT`].
const OPS_ROLE: &str = "arn:aws:iam::444444444444:role/Ops";

/// When each AssumeRole for `role_arn` reached the proxy.
fn assume_role_times(world: &World, role_arn: &str) -> Vec<Instant> {
    world
        .proxy
        .requests_of("AssumeRole")
        .iter()
        .filter(|r| r.param("RoleArn") == Some(role_arn))
        .map(|r| r.at)
        .collect()
}

/// Waits until `profile` has been written with `count` keys other than the ones in `seen`
/// (each renewal brings a new key), checking on every look that no managed section in the file
/// has expired; returns the keys seen.
fn wait_for_renewals(
    world: &World,
    daemon: &Daemon,
    profile: &str,
    count: usize,
) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    let first = expect_key_id(&world.credentials(), profile);
    seen.insert(first);
    let done = wait_until(Duration::from_secs(120), || {
        let text = world.credentials();
        for p in ["dev-admin", "ops"] {
            if let Some(exp) = expiration(&text, p) {
                assert!(exp > SystemTime::now(), "[{p}] expired in the file");
            }
        }
        seen.insert(expect_key_id(&text, profile));
        (seen.len() > count).then_some(())
    });
    assert!(
        done.is_some(),
        "[{profile}] not renewed {count} times (keys seen: {}):\n{}",
        seen.len(),
        daemon.log()
    );
    seen
}

#[test]
fn daemon_keeps_short_lived_profiles_fresh() {
    let world = World::start();
    world.setup(SHORT);
    let daemon = Daemon::start(&world);
    // no session yet: the daemon waits for a code, and says so
    let status = world.rc(&["status", "--json"]).run().success().json();
    assert_eq!(status[0]["state"], "needs-mfa", "{status:#}");
    // the code goes to the agent, which resumes every profile of the source
    let out = world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    assert_contains!(out.stdout, "renewed");
    let text = world.credentials();
    for p in ["dev-admin", "ops"] {
        assert!(expiration(&text, p).is_some(), "no [{p}] in\n{text}");
    }
    let out = world.rolecall.caller_identity("dev-admin").run().success();
    assert_contains!(out.stdout, "assumed-role/Admin/");

    // Renewed on its own, twice (the second proves the daemon plans again after a renewal),
    // and the file never holds expired credentials meanwhile.
    for p in ["dev-admin", "ops"] {
        wait_for_renewals(&world, &daemon, p, 2);
    }
    let out = world.rolecall.caller_identity("dev-admin").run().success();
    assert_contains!(out.stdout, "assumed-role/Admin/");
    // Not before it is due: 15 min credentials renewed with 14m50s left are due ~10 s after
    // the previous renewal, less up to 1 s of jitter (a slower machine only makes the gaps
    // longer).
    for role in [ADMIN_ROLE, OPS_ROLE] {
        let times = assume_role_times(&world, role);
        assert!(times.len() >= 3, "{role}: {} AssumeRole", times.len());
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_secs(5),
                "{role} renewed {gap:?} after the previous renewal, before it was due:\n{}",
                daemon.log()
            );
        }
    }
    // one MFA session for all of it
    assert_eq!(world.proxy.count("GetSessionToken"), 1);
    // the daemon's log never holds a secret
    let log = daemon.log();
    assert_not_contains!(log, TEST_SECRET_ACCESS_KEY);
    let text = world.credentials();
    for p in ["dev-admin", "ops"] {
        assert_not_contains!(log, &expect_key_id(&text, p));
    }
}

#[test]
fn daemon_rides_out_throttling_and_stops_on_access_denied() {
    let world = refreshed_world();
    let daemon = Daemon::start(&world);
    // a burst of throttling and 503s: retried with backoff, old credentials stay meanwhile
    world.proxy.push_n(4, &Fault::Throttle);
    world.proxy.push_n(3, &Fault::Status(503));
    let before = expect_key_id(&world.credentials(), "dev-admin");
    let renewed = wait_until(Duration::from_secs(60), || {
        let text = world.credentials();
        assert!(expiration(&text, "dev-admin").unwrap() > std::time::SystemTime::now());
        (expect_key_id(&text, "dev-admin") != before && world.proxy.pending() == 0).then_some(())
    });
    assert!(
        renewed.is_some(),
        "not renewed after the burst:\n{}",
        daemon.log()
    );

    // AccessDenied for dev-admin's role: reported, and not retried in a loop
    world
        .proxy
        .set_rule_for_role(ADMIN_ROLE, Fault::AccessDenied);
    let failed = wait_until(Duration::from_secs(40), || {
        let status = world.rc(&["status", "--json"]).run().success().json();
        let dev = status
            .as_array()?
            .iter()
            .find(|p| p["profile"] == "dev-admin")?
            .clone();
        (dev["state"] == "error").then_some(dev)
    })
    .unwrap_or_else(|| panic!("no error state:\n{}", daemon.log()));
    assert_contains!(
        failed["message"].as_str().unwrap_or_default(),
        "access denied"
    );
    let denied = assume_role_times(&world, ADMIN_ROLE).len();
    // ops keeps renewing every ~10 s: two of its renewals are the clock over which a retry
    // loop (or a plain retry at the next due time) of dev-admin would show
    wait_for_renewals(&world, &daemon, "ops", 2);
    let after = assume_role_times(&world, ADMIN_ROLE).len();
    assert!(
        after <= denied + 1,
        "AccessDenied retried: {denied} -> {after}:\n{}",
        daemon.log()
    );
    // healed: a manual refresh through the agent recovers
    world.proxy.clear_rule();
    world.rc(&["refresh", "--force"]).run().success();
    let status = world.rc(&["status", "--json"]).run().success().json();
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "fresh" || p["state"] == "expiring"),
        "{status:#}"
    );
}

#[test]
fn a_second_daemon_is_refused_and_sigterm_cleans_up() {
    let world = refreshed_world();
    let mut daemon = Daemon::start(&world);
    let out = world
        .rc(&["daemon"])
        .timeout(Duration::from_secs(20))
        .run()
        .failure();
    assert_contains!(out.stderr, "already running");
    assert_contains!(out.stderr, &format!("pid {}", daemon.process.pid()));

    // SIGTERM mid-refresh: STS answers slowly, the daemon still stops promptly and the
    // credentials file is whole
    world
        .proxy
        .set_rule_for("AssumeRole", Fault::Delay(Duration::from_millis(1500)));
    world.rc(&["status"]).run().success();
    let asked = world.proxy.count("AssumeRole");
    std::thread::spawn({
        let rc = world.rolecall.clone();
        move || {
            let _ = rc
                .cmd(&["refresh", "--force"])
                .timeout(Duration::from_secs(30))
                .run();
        }
    });
    // mid-refresh: the agent has asked STS and waits for the (delayed) answer
    let mid = wait_until(Duration::from_secs(30), || {
        (world.proxy.count("AssumeRole") > asked).then_some(())
    });
    assert!(
        mid.is_some(),
        "the refresh never reached STS:\n{}",
        daemon.log()
    );
    let before = world.credentials();
    daemon.signal("TERM");
    let status = daemon.process.wait_timeout(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "daemon did not exit cleanly:\n{}",
        daemon.log()
    );
    assert!(!daemon.socket.exists(), "socket left behind");
    let after = world.credentials();
    for p in ["dev-admin", "ops"] {
        assert!(key_id(&after, p).is_some(), "[{p}] torn:\n{after}");
    }
    assert_eq!(
        after.matches("x_rolecall_managed").count(),
        before.matches("x_rolecall_managed").count()
    );
    // and a new daemon starts after the old one is gone
    world.proxy.clear_rule();
    let _again = Daemon::start(&world);
}

#[test]
fn sighup_picks_up_a_new_profile_and_drops_a_removed_one() {
    let world = refreshed_world();
    let mut daemon = Daemon::start(&world);
    let config = world.sandbox.read(world.sandbox.config_path());
    let without_ops = config.replace(
        "[profiles.ops]\nsource = \"bastion\"\nrole_arn = \"arn:aws:iam::444444444444:role/Ops\"\nduration = \"15m\"\n",
        "[profiles.audit]\nsource = \"dev-admin\"\nrole_arn = \"arn:aws:iam::333333333333:role/Audit\"\nduration = \"15m\"\n",
    );
    assert_ne!(config, without_ops);
    world
        .sandbox
        .write(world.sandbox.config_path(), &without_ops);
    daemon.signal("HUP");
    let done = wait_until(Duration::from_secs(20), || {
        let text = world.credentials();
        (text.contains("[audit]") && !text.contains("[ops]")).then_some(())
    });
    assert!(
        done.is_some(),
        "config change not applied:\n{}\n{}",
        world.credentials(),
        daemon.log()
    );
}

#[test]
fn once_renews_what_is_due_and_exits() {
    let world = refreshed_world();
    // fresh enough (just renewed, 15 min left > 14m50s): nothing due
    let out = world.rc(&["daemon", "--once"]).run().success();
    assert_contains!(out.stdout, "still valid");
    let calls = world.proxy.count("AssumeRole");
    // an expired section is due
    let text = world.credentials();
    let past = text.replacen(
        &format!(
            "x_rolecall_expiration = {}",
            humantime::format_rfc3339_seconds(expiration(&text, "ops").unwrap())
        ),
        "x_rolecall_expiration = 2020-01-01T00:00:00Z",
        1,
    );
    world.sandbox.write(world.sandbox.credentials_path(), &past);
    let out = world.rc(&["daemon", "--once"]).run().success();
    assert_contains!(out.stdout, "renewed");
    assert_eq!(world.proxy.count("AssumeRole"), calls + 1);
}

#[cfg(unix)]
#[test]
fn another_user_is_refused_by_the_agent() {
    use std::os::unix::fs::PermissionsExt;
    let world = refreshed_world();
    let daemon = Daemon::start(&world);
    // open the path for the test, so that only the agent's own peer check stands in the way
    let mut dir = daemon.socket.parent().unwrap().to_path_buf();
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    while dir.starts_with(world.sandbox.root()) {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        if !dir.pop() {
            break;
        }
    }
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.settimeout(10)\ns.connect({:?})\n\
         try:\n    s.sendall(b'{{\"v\":1,\"op\":\"status\"}}\\n')\n\
         except OSError:\n    pass  # refused before we could ask: the answer is already here\n\
         print(s.makefile().readline())",
        daemon.socket.display().to_string()
    );
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            &script,
        ])
        .env_clear()
        .output()
        .expect("setpriv runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("refused"),
        "stdout: {stdout}\nstderr: {}\ndaemon: {}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    assert_not_contains!(stdout, "dev-admin");
    // the same request as ourselves works
    let mine = world.rc(&["status", "--json"]).run().success().json();
    assert_eq!(mine[0]["profile"], "dev-admin");
}

#[test]
fn watch_prints_the_agents_events_as_they_happen() {
    let world = refreshed_world();
    // without an agent there is nothing to watch, and it says how to start one
    let out = world.rc(&["watch"]).run().failure();
    assert_contains!(out.stderr, "rolecall daemon");
    let _daemon = Daemon::start(&world);
    let log = world.sandbox.log_dir().join("watch.log");
    let mut watch = world.rc(&["watch", "--json"]).spawn("rolecall watch", &log);
    let human_log = world.sandbox.log_dir().join("watch-human.log");
    let mut human = world.rc(&["watch"]).spawn("rolecall watch", &human_log);
    // the watchers subscribe asynchronously: trigger renewals until one is seen
    let seen = wait_until(Duration::from_secs(20), || {
        world.rc(&["refresh", "--force", "ops"]).run().success();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.contains("\"credentials_refreshed\"") && text.contains("\"ops\"")).then_some(text)
    })
    .unwrap_or_else(|| panic!("no event seen:\n{}", watch.log()));
    let first = seen
        .lines()
        .find(|l| l.contains("credentials_refreshed"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(first).unwrap();
    assert_eq!(v["v"], 1);
    assert!(
        v["event"]["expiration"]
            .as_str()
            .is_some_and(|e| e.ends_with('Z')),
        "{first}"
    );
    let human_text = wait_until(Duration::from_secs(10), || {
        let t = std::fs::read_to_string(&human_log).unwrap_or_default();
        t.contains("ops: renewed, expires").then_some(t)
    });
    assert!(human_text.is_some(), "{}", human.log());
    // events never carry credentials
    let creds = world.credentials();
    let key = expect_key_id(&creds, "ops");
    assert_not_contains!(seen, &key);
    assert_not_contains!(seen, "ASIA");
    assert_not_contains!(seen, "aws_secret_access_key");
    watch.kill();
    human.kill();
}

#[test]
fn clear_while_a_daemon_runs_says_it_will_renew() {
    let world = refreshed_world();
    // without an agent: no note
    let out = world.rc(&["clear", "ops"]).run().success();
    assert_not_contains!(out.stderr, "agent");
    let _daemon = Daemon::start(&world);
    let out = world.rc(&["clear", "dev-admin"]).run().success();
    assert_contains!(out.stdout, "removed [dev-admin]");
    assert_contains!(out.stderr, "will write these profiles again");
}

/// A runtime directory others can write to (someone may have put their socket there): the CLI
/// sends nothing to it, says so, and does the work itself.
#[test]
fn a_socket_directory_others_can_write_is_not_used_and_the_user_is_told() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let dir = world.sandbox.runtime_dir().join("rolecall");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = world.rc(&["status"]).run().success();
    assert_contains!(out.stderr, "warning: not using the rolecall agent socket");
    assert_contains!(out.stderr, "mode 777");
    assert_contains!(out.stdout, "dev-admin");
}

/// `rolecall clear` while a daemon runs is done by the daemon (the app's "End all sessions"
/// attached to it goes the same way): the managed sections go, the user's own bytes stay, the
/// daemon's sessions are forgotten (it cannot renew without a code) and its subscribers see
/// `cleared`.
#[test]
fn clear_through_the_agent_removes_sections_keeps_user_bytes_and_forgets_sessions() {
    let world = World::start();
    world.setup(SHORT);
    let user = "# my own profile\r\n[personal]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
                aws_secret_access_key = not-a-real-secret\n";
    world.sandbox.write(world.sandbox.credentials_path(), user);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let daemon = Daemon::start(&world);
    let log = world.sandbox.log_dir().join("watch-clear.log");
    let mut watch = world.rc(&["watch", "--json"]).spawn("rolecall watch", &log);
    // the watcher subscribes asynchronously: renew through the daemon until it sees one
    wait_until(Duration::from_secs(20), || {
        world.rc(&["refresh", "--force", "ops"]).run().success();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("\"credentials_refreshed\"").then_some(())
    })
    .unwrap_or_else(|| panic!("no event seen:\n{}", watch.log()));

    let out = world.rc(&["clear"]).run().success();
    assert_contains!(out.stdout, "removed [");
    assert_contains!(
        out.stdout,
        "forgot the cached MFA session of source bastion"
    );
    // done by the daemon: its subscribers hear of it
    let cleared = wait_until(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("\"cleared\"").then_some(())
    });
    assert!(
        cleared.is_some(),
        "no cleared event:\n{}\n{}",
        watch.log(),
        daemon.log()
    );
    assert_eq!(world.credentials(), user, "the user's own bytes changed");
    // the sessions are gone: the daemon asks for a code instead of renewing
    let status = world.rc(&["status", "--json"]).run().success().json();
    assert_eq!(status[0]["state"], "needs-mfa", "{status:#}");
    assert_eq!(world.credentials(), user, "renewed without a session");
    watch.kill();
}

/// A command given another credentials file (`AWS_SHARED_CREDENTIALS_FILE`) than the running
/// agent writes is not sent to the agent (it would report success for a file it never
/// touched): it works in-process on its own file, and says so.
#[test]
fn a_command_on_another_credentials_file_works_in_process_and_says_so() {
    let world = refreshed_world();
    let daemon = Daemon::start(&world);
    let other = world.sandbox.log_dir().join("other-credentials");
    let out = world
        .rc(&["refresh", "--force", "--mfa-code", "123456", "ops"])
        .env("AWS_SHARED_CREDENTIALS_FILE", &other)
        .run()
        .success();
    assert_contains!(out.stderr, "another credentials file");
    let written = std::fs::read_to_string(&other).unwrap_or_default();
    assert!(
        expiration(&written, "ops").is_some(),
        "no [ops] in the file the command was given:\n{written}\n{}",
        daemon.log()
    );
    // the same file as the agent's: through the agent, no note
    let out = world.rc(&["status"]).run().success();
    assert_not_contains!(out.stderr, "another credentials file");
}

/// The daemon's log (`-v`) shows times as RFC 3339, never Rust's Debug output.
#[test]
fn issue_14_the_daemon_log_shows_no_rust_internals() {
    let world = World::start();
    world.setup(SHORT);
    let daemon = Daemon::start(&world);
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    wait_for_renewals(&world, &daemon, "dev-admin", 1);
    let log = daemon.log();
    for internal in ["SystemTime {", "Rfc3339Timestamp(", "expiration=Some("] {
        assert!(!log.contains(internal), "{internal} in the log:\n{log}");
    }
}

/// Issue 14: a config typo made while the daemon runs: `status` (answered by the daemon) says
/// that the daemon runs on the last good config and why the new one was refused, until the
/// file is fixed.
#[test]
fn issue_14_status_says_the_daemon_runs_on_the_last_good_config_after_a_typo() {
    let world = refreshed_world();
    let daemon = Daemon::start(&world);
    let typo = SHORT.replace("refresh_before", "refresh_befor");
    world.sandbox.write(world.sandbox.config_path(), &typo);
    // the daemon reloads when it sees the file change: ask until it has
    let out = wait_until(Duration::from_secs(20), || {
        let out = world.rc(&["status"]).run().success();
        out.stderr.contains("last good config").then_some(out)
    })
    .unwrap_or_else(|| panic!("status never named the refused config:\n{}", daemon.log()));
    assert_contains!(out.stderr, "refresh_befor");
    assert_contains!(
        out.stderr,
        &world.sandbox.config_path().display().to_string()
    );
    // the profiles are still shown, from the daemon
    assert_contains!(out.stdout, "dev-admin");

    world.sandbox.write(world.sandbox.config_path(), SHORT);
    wait_until(Duration::from_secs(20), || {
        let out = world.rc(&["status"]).run().success();
        (!out.stderr.contains("last good config")).then_some(())
    })
    .unwrap_or_else(|| panic!("status kept naming the fixed config:\n{}", daemon.log()));
}

/// Issue 14: an MFA code handed to a running daemon (`refresh --mfa-code`) renews each
/// profile once: the daemon, woken by the session the request started, must not renew them
/// again from the file as it was before that pass wrote it (which also asked for a second MFA
/// session for the plain session profile, and so a code, at once).
#[test]
fn issue_14_one_mfa_code_to_the_daemon_is_one_pass() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let daemon = Daemon::start(&world);
    // the daemon waits for a code
    wait_until(Duration::from_secs(20), || {
        let status = world.rc(&["status", "--json"]).run().success().json();
        (status[0]["state"] == "needs-mfa").then_some(())
    })
    .unwrap_or_else(|| panic!("the daemon never asked for a code:\n{}", daemon.log()));
    // the code comes seconds later, as a person types it: past the scheduler's guard between
    // two attempts at a profile (MIN_GAP, 1 s), so the session the code starts makes the
    // waiting profiles due again at once (a precondition, not a wait for something to happen)
    std::thread::sleep(Duration::from_secs(2));
    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    // settled: every profile fresh and planned by the daemon
    let settled = wait_until(Duration::from_secs(20), || {
        let status = world.rc(&["status", "--json"]).run().success().json();
        let all = status.as_array()?;
        all.iter()
            .all(|p| p["state"] == "fresh" && p["next_renewal"].is_string())
            .then_some(())
    });
    let status = world.rc(&["status", "--json"]).run().success().json();
    assert!(
        settled.is_some(),
        "not every profile fresh and planned: {status:#}\n{}",
        daemon.log()
    );
    // one session, one AssumeRole per role profile (dev-admin, audit)
    assert_eq!(world.proxy.count("GetSessionToken"), 1, "{}", daemon.log());
    assert_eq!(world.proxy.count("AssumeRole"), 2, "{}", daemon.log());
}

/// Issue 14: the config directory deleted and made again while the daemon runs: its later
/// edits are still picked up, each of them (the watch follows the new directory).
#[test]
fn issue_14_edits_in_a_recreated_config_directory_are_picked_up() {
    let world = refreshed_world();
    let daemon = Daemon::start(&world);
    let profiles = || -> Vec<String> {
        let status = world.rc(&["status", "--json"]).run().success().json();
        status
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|p| p["profile"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(profiles(), ["dev-admin", "ops"]);
    let dir = world.sandbox.config_path().parent().unwrap().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    // the daemon keeps its config while the file is gone
    assert_eq!(profiles(), ["dev-admin", "ops"]);
    let without_ops = SHORT.split("[profiles.ops]").next().unwrap().to_string();
    world
        .sandbox
        .write(world.sandbox.config_path(), &without_ops);
    wait_until(Duration::from_secs(20), || {
        (profiles() == ["dev-admin"]).then_some(())
    })
    .unwrap_or_else(|| panic!("the first edit was not picked up:\n{}", daemon.log()));
    // and the one after it
    world.sandbox.write(world.sandbox.config_path(), SHORT);
    wait_until(Duration::from_secs(20), || {
        (profiles() == ["dev-admin", "ops"]).then_some(())
    })
    .unwrap_or_else(|| panic!("the second edit was not picked up:\n{}", daemon.log()));
    // the watcher's own chatter about the vanished directory (inotify's EINVAL, in Rust's
    // Debug form) is not the user's business (issue 14)
    let log = daemon.log();
    assert!(
        !log.contains("watch descriptor") && !log.contains("Os {"),
        "watcher noise in the daemon's log:\n{log}"
    );
}

/// `--log-file` (issue 17, for cron and init systems that keep no stderr): the log goes to the
/// file, appended, mode 0600, through the same filters as stderr (no secret, even at trace),
/// and a command's error is in it too.
#[cfg(unix)]
#[test]
fn issue_17_log_file_is_appended_private_and_secret_free() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let log = world.sandbox.path("state/logs/rolecall.log");
    let log_arg = log.display().to_string();
    let out = world
        .rc(&["--log-file", &log_arg, "daemon", "--once", "-vvv"])
        .env("ROLECALL_LOG", "trace")
        .run();
    // no MFA code without a terminal: the daemon says so and renews what it can
    let first = world.sandbox.read(&log);
    assert!(!first.is_empty(), "{}", out.streams());
    assert_eq!(world.sandbox.mode(&log) & 0o777, 0o600);
    assert_eq!(world.sandbox.mode(log.parent().unwrap()) & 0o777, 0o700);
    assert!(!out.stderr.contains(" INFO "), "{}", out.stderr);

    world
        .rc(&["--log-file", &log_arg, "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    world.proxy.push_for("AssumeRole", Fault::AccessDenied);
    let out = world
        .rc(&["--log-file", &log_arg, "refresh", "dev-admin", "--force"])
        .run()
        .failure();
    let text = world.sandbox.read(&log);
    assert!(text.starts_with(&first), "not appended:\n{text}");
    assert_contains!(
        text,
        "renewal failed profile=\"dev-admin\" error=profile dev-admin: access denied"
    );
    assert_contains!(out.stderr, "access denied");
    let credentials = world.credentials();
    for section in ["dev-admin", "audit", "session"] {
        for key in ["aws_secret_access_key", "aws_session_token"] {
            let secret = crate::support::credfile::expect_value(&credentials, section, key);
            assert!(!text.contains(&secret), "{section} {key} in the log");
        }
    }
    assert!(!text.contains(TEST_SECRET_ACCESS_KEY));
    // a file someone opened up is made private again
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    world
        .rc(&["--log-file", &log_arg, "status"])
        .run()
        .success();
    assert_eq!(world.sandbox.mode(&log) & 0o777, 0o600);
}
