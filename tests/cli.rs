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

#[test]
fn issue_14_exec_takes_a_command_without_dashes_and_names_the_profile() {
    let world = refreshed_world();
    let out = world
        .rc(&[
            "exec",
            "dev-admin",
            "sh",
            "-c",
            "echo \"$ROLECALL_PROFILE $AWS_ACCESS_KEY_ID\"",
        ])
        .run()
        .success();
    assert_eq!(
        out.stdout.split_whitespace().next(),
        Some("dev-admin"),
        "{}",
        out.streams()
    );
    assert!(out.stdout.contains(" ASIA"), "{}", out.streams());
    // the old spelling, with `--`, and a command whose own options look like ours
    let out = world
        .rc(&[
            "exec",
            "dev-admin",
            "--",
            "sh",
            "-c",
            "echo \"$1\"",
            "sh",
            "--config",
        ])
        .run()
        .success();
    assert_eq!(out.stdout, "--config\n", "{}", out.streams());
}

#[test]
fn issue_14_exec_without_a_command_starts_the_users_shell() {
    let world = refreshed_world();
    let out = world
        .rc(&["exec", "dev-admin"])
        .env("SHELL", "/bin/sh")
        .stdin("echo \"in $ROLECALL_PROFILE\"\nexit 7\n")
        .run()
        .code_is(7);
    assert_eq!(out.stdout, "in dev-admin\n", "{}", out.streams());
}

#[test]
fn issue_14_export_names_the_profile() {
    let world = refreshed_world();
    let out = world.rc(&["export", "dev-admin"]).run().success();
    assert_contains!(out.stdout, "export ROLECALL_PROFILE='dev-admin'\n");
    let out = world
        .rc(&["export", "dev-admin", "--format", "json"])
        .run()
        .success();
    assert_eq!(out.json()["ROLECALL_PROFILE"], "dev-admin");
}

#[test]
fn issue_14_an_mfa_code_may_be_written_as_authenticator_apps_show_it() {
    let world = World::start();
    world.setup(CONFIG);
    world
        .rc(&["--no-agent", "refresh", "dev-admin", "--mfa-code", "-"])
        .stdin(" 123 456 \n")
        .run()
        .success();
    world
        .rc(&["--no-agent", "refresh", "--force", "--mfa-code", "654 321"])
        .run()
        .success();
    let codes: Vec<String> = world
        .proxy
        .requests_of("GetSessionToken")
        .iter()
        .filter_map(|r| r.param("TokenCode").map(str::to_string))
        .collect();
    assert_eq!(codes, ["123456", "654321"]);
}

#[test]
fn issue_14_subcommand_help_shows_its_own_options_and_an_example() {
    let world = World::start();
    let out = world.rc(&["status", "--help"]).run().success();
    assert_contains!(out.stdout, "--json");
    assert_contains!(out.stdout, "Example:\n  rolecall status");
    assert_not_contains!(out.stdout, "--log-format <");
    assert_not_contains!(out.stdout, "Do the work in this process");
    let out = world.rc(&["keys", "add", "--help"]).run().success();
    assert_contains!(out.stdout, "--replace");
    assert_contains!(out.stdout, "Example:");
    assert_not_contains!(out.stdout, "Do the work in this process");
    // said once, at the top, and still accepted after a subcommand
    let out = world.rc(&["--help"]).run().success();
    assert_contains!(out.stdout, "--log-format");
    assert_contains!(out.stdout, "--no-agent");
    world
        .rc(&["status", "--no-agent", "--log-format", "json"])
        .run()
        .success();
}

#[test]
fn issue_14_keys_remove_of_an_unknown_source_is_an_error() {
    let world = World::start();
    world.setup(CONFIG);
    let out = world.rc(&["keys", "remove", "nope"]).run().code_is(2);
    assert_contains!(out.stderr, "no source named nope");
}

#[test]
fn issue_14_keys_add_does_not_replace_a_key_unasked_and_says_what_it_added() {
    let world = World::start();
    let key = format!(
        "{}\n{}\n",
        crate::support::TEST_ACCESS_KEY_ID,
        crate::support::TEST_SECRET_ACCESS_KEY
    );
    let out = world
        .rc(&["keys", "add", "work"])
        .stdin(key)
        .run()
        .success();
    assert_contains!(out.stdout, "added [sources.work] to ");
    assert_contains!(out.stdout, "config.toml");

    let other = "AKIAI44QH8DHBEXAMPLE\nsecretsecretsecretsecretsecretsecret0000\n";
    let out = world
        .rc(&["keys", "add", "work"])
        .stdin(other)
        .run()
        .code_is(2);
    assert_contains!(out.stderr, "already has a key (…MPLE)");
    assert_contains!(out.stderr, "--replace");
    let stored = world
        .keyring
        .lookup("rolecall", "source:work")
        .expect("kept");
    assert_contains!(stored, crate::support::TEST_ACCESS_KEY_ID);

    let out = world
        .rc(&["keys", "add", "work", "--replace"])
        .stdin(other)
        .run()
        .success();
    assert_not_contains!(out.stdout, "added [sources.work]");
    let stored = world
        .keyring
        .lookup("rolecall", "source:work")
        .expect("kept");
    assert_contains!(stored, "AKIAI44QH8DHBEXAMPLE");
}

#[test]
fn issue_14_refresh_prints_one_line_per_profile_and_a_shared_cause_once() {
    let world = World::start();
    // a config, and no key stored for its source
    world.sandbox.write(world.sandbox.config_path(), CONFIG);
    let out = world.rc(&["--no-agent", "refresh"]).run().code_is(1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.streams());
    for line in &lines {
        assert!(line.contains("  FAILED: "), "{}", out.streams());
    }
    assert!(
        lines.iter().any(|l| l.starts_with("dev-admin")
            && l.ends_with("FAILED: source bastion: no key in the keychain")),
        "{}",
        out.streams()
    );
    assert_eq!(
        out.stderr.matches("rolecall keys add bastion").count(),
        1,
        "{}",
        out.streams()
    );
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

#[test]
fn issue_14_doctor_reports_the_credentials_files_real_mode() {
    let world = refreshed_world();
    let path = world.sandbox.credentials_path();
    chmod(&path, 0o400);
    let out = world.rc(&["doctor"]).run().code_is(1);
    assert_contains!(out.stdout, "(mode 0400) is read-only");
    assert_not_contains!(out.stdout, "private");
    chmod(&path, 0o640);
    let out = world.rc(&["doctor"]).run();
    assert_contains!(out.stdout, "(mode 0640) is readable by the group;");
    assert_not_contains!(out.stdout, "others");
    chmod(&path, 0o600);
    let out = world.rc(&["doctor"]).run();
    assert_contains!(out.stdout, "(mode 0600) is private and writable");
}

#[test]
fn issue_14_doctor_points_a_key_in_the_credentials_file_at_keys_import() {
    let world = World::start();
    world.sandbox.write(world.sandbox.config_path(), CONFIG);
    world.sandbox.write(
        world.sandbox.credentials_path(),
        &format!(
            "[bastion]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            crate::support::TEST_ACCESS_KEY_ID,
            crate::support::TEST_SECRET_ACCESS_KEY
        ),
    );
    let out = world.rc(&["doctor"]).run();
    assert_contains!(out.stdout, "`rolecall keys import bastion --scrub`");
    assert_not_contains!(out.stdout, "rolecall keys add");
}

/// botocore tries the credentials file before `credential_process`, the Rust SDK the other
/// way round: the AWS CLI really uses Rolecall's section, and doctor warns instead of failing.
#[test]
fn issue_14_doctor_warns_of_a_credential_process_beside_a_managed_section() {
    let world = refreshed_world();
    world.sandbox.write(
        world.sandbox.aws_config_path(),
        "[profile dev-admin]\ncredential_process = /bin/false\n",
    );
    let out = world.rolecall.caller_identity("dev-admin").run().success();
    assert_contains!(out.stdout, "assumed-role/Admin/");
    let out = world.rc(&["doctor"]).run();
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("[profile dev-admin]"))
        .unwrap_or_else(|| panic!("no line about the profile:\n{}", out.streams()));
    assert!(line.starts_with("warn"), "{line}");
    assert_contains!(
        line,
        "the AWS CLI, boto3 and the JS SDK use Rolecall's keys"
    );
    assert_contains!(line, "the Rust SDK runs the credential_process");
    assert_eq!(out.code, Some(0), "{}", out.streams());
}

#[test]
fn issue_14_credential_process_without_a_terminal_names_what_runs() {
    let world = World::start();
    world.setup(CONFIG);
    let out = world
        .rc(&["credential-process", "dev-admin"])
        .run()
        .code_is(1);
    assert_contains!(out.stderr, "no rolecall agent is running");
    assert_not_contains!(out.stderr, "tray app");
}

/// Real bash, zsh and fish, each with the script `rolecall completions SHELL` prints,
/// completing as they would on TAB: bash runs the function `complete -p rolecall` names with
/// the COMP_* variables it sets, zsh the registered completer with `words`/`CURRENT`, and fish
/// answers `complete -C`.
#[test]
fn issue_14_bash_zsh_and_fish_complete_profile_and_source_names() {
    let world = World::start();
    world.sandbox.write(world.sandbox.config_path(), CONFIG);
    let bin_dir = rolecall_bin()
        .parent()
        .expect("the binary is in a directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        world.rolecall.environment()["PATH"]
    );
    let script = r#"
source <(rolecall completions bash) || exit 9
fn=$(complete -p rolecall | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || { echo "not registered: $(complete -p rolecall)"; exit 8; }
tab() {
    COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    COMP_TYPE=9; COMPREPLY=()
    "$fn" rolecall "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}" | grep -v '^-' | sort | tr '\n' ' '; echo
}
tab rolecall use ""
tab rolecall exec d
tab rolecall keys remove ""
tab rolecall st
"#;
    let out = TestCommand::new("bash", world.rolecall.environment().clone())
        .env("PATH", &path)
        .args(["-c", script])
        .current_dir(world.sandbox.home())
        .run()
        .success();
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["audit dev-admin session", "dev-admin", "bastion", "status"],
        "{}",
        out.streams()
    );

    // zsh: the registered completer runs with the `words` and `CURRENT` zsh's completion
    // system sets; `_describe` (which would draw the menu) prints the candidates instead
    let zsh = r#"
autoload -Uz compinit && compinit -u -D
eval "$(rolecall completions zsh)" || exit 9
(( $+functions[_clap_dynamic_completer_rolecall] )) || { print "not registered"; exit 8 }
_describe() { local a; for a in "$@"; do [[ $a == (other|dirs) ]] && print -l -- ${(P)a}; done }
tab() {
    local -a words=("$@"); local CURRENT=$#
    _clap_dynamic_completer_rolecall | cut -d: -f1 | grep -v '^-' | sort | tr '\n' ' '; echo
}
tab rolecall use ""
tab rolecall exec d
tab rolecall keys remove ""
tab rolecall st
"#;
    // fish: its own `complete -C` asks the registered completion what a TAB would offer
    let fish = r#"
rolecall completions fish | source; or exit 9
for line in 'rolecall use ' 'rolecall exec d' 'rolecall keys remove ' 'rolecall st'
    complete -C "$line" | cut -f1 | string match -v -- '-*' | sort | string join ' '
end
exit 0  # the output is what is checked, not the status the loop ends with
"#;
    for (shell, args) in [
        ("zsh", ["-f", "-c", zsh]),
        ("fish", ["--no-config", "-c", fish]),
    ] {
        let out = TestCommand::new(shell, world.rolecall.environment().clone())
            .env("PATH", &path)
            .args(args)
            .current_dir(world.sandbox.home())
            .run()
            .success();
        let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
        assert_eq!(
            lines,
            ["audit dev-admin session", "dev-admin", "bastion", "status"],
            "{shell}: {}",
            out.streams()
        );
    }
}

#[test]
fn issue_14_duration_messages_show_the_format_and_write_durations_as_people_do() {
    let world = World::start();
    let profile = "[sources.work]\n\n[profiles.p]\nsource = \"work\"\n\
                   role_arn = \"arn:aws:iam::222222222222:role/A\"\n";
    world.sandbox.write(
        world.sandbox.config_path(),
        &format!("{profile}duration = 900\n"),
    );
    let out = world.rc(&["status"]).run().code_is(2);
    assert_contains!(out.stderr, "profiles.p.duration");
    assert_contains!(out.stderr, "e.g. duration = \"1h\"");
    world.sandbox.write(
        world.sandbox.config_path(),
        "[sources.work]\nsession_duration = \"40h\"\n",
    );
    let out = world.rc(&["status"]).run().code_is(2);
    assert_contains!(out.stderr, "40h is out of range: must be from 15m to 36h");
    assert_not_contains!(out.stderr, "day");
}

#[test]
fn issue_14_use_none_leaves_no_empty_settings_and_a_table_written_twice_is_named() {
    let world = World::start();
    let config = CONFIG.replace("[settings]\nsts_timeout = \"2s\"\n", "");
    world.setup(&config);
    world
        .rc(&["--no-agent", "use", "dev-admin", "--mfa-code", "123456"])
        .run()
        .success();
    assert_contains!(
        world.sandbox.read(world.sandbox.config_path()),
        "[settings]"
    );
    world.rc(&["--no-agent", "use", "--none"]).run().success();
    let text = world.sandbox.read(world.sandbox.config_path());
    assert_not_contains!(text, "[settings]");
    // README's block, appended, works
    world.sandbox.write(
        world.sandbox.config_path(),
        &format!("{text}\n[settings]\nrefresh_before = \"20m\"\n"),
    );
    world.rc(&["--no-agent", "status"]).run().success();
    // and a table written twice says which, and where the first one is
    world.sandbox.write(
        world.sandbox.config_path(),
        &format!("[settings]\n\n{config}\n[settings]\nrefresh_before = \"20m\"\n"),
    );
    let out = world.rc(&["--no-agent", "status"]).run().code_is(2);
    assert_contains!(
        out.stderr,
        "table [settings] is written twice (first at line 1); merge the two into one"
    );
}

/// `make demo` (installers/demo.sh) shows the config it used, and removes its throwaway HOME,
/// which holds live demo credentials, when it ends.
#[test]
fn issue_14_the_demo_shows_its_config_and_removes_its_home() {
    let sandbox = crate::support::Sandbox::new();
    let script = crate::support::workspace_root().join("installers/demo.sh");
    let out = TestCommand::new("bash", sandbox.env())
        .arg(&script)
        .env("ROLECALL_VENV", crate::support::venv_dir())
        .current_dir(sandbox.home())
        .timeout(Duration::from_secs(120))
        .run()
        .success();
    let home = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("demo HOME: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the demo names its HOME:\n{}", out.streams()))
        .to_owned();
    assert!(home.starts_with("/tmp/rolecall-demo."), "{home}");
    assert_contains!(out.stdout, "/rolecall/config.toml\n[sources.demo]\n");
    assert_contains!(out.stdout, "[profiles.dev-admin]");
    let left = std::path::Path::new(&home).exists();
    if left {
        // not to litter /tmp with demo credentials when this fails
        let _ = std::fs::remove_dir_all(&home);
    }
    assert!(!left, "{home} is left behind:\n{}", out.streams());
    assert_contains!(out.stdout, &format!("removed {home}"));
}

/// Before any key is stored, `status` says so (and how to store one) instead of `needs MFA`.
#[test]
fn issue_14_status_before_any_key_is_stored_says_there_is_no_key() {
    let world = World::start();
    world.sandbox.write(world.sandbox.config_path(), CONFIG);
    let out = world.rc(&["status", "--json"]).run().success();
    let rows = out.json();
    let rows = rows.as_array().expect("status --json is a list");
    assert_eq!(rows.len(), 3, "{}", out.streams());
    for row in rows {
        assert_eq!(row["state"], "error", "{row:#}");
        let message = row["message"].as_str().unwrap_or_default();
        assert_contains!(message, "no key in the keychain");
        assert_contains!(message, "rolecall keys add bastion");
    }
    let out = world.rc(&["status"]).run().success();
    assert!(!out.stdout.contains("needs MFA"), "{}", out.streams());
    assert_contains!(out.stderr, "rolecall keys add bastion");
}

/// `status` shows when each profile is renewed (README says so): without a daemon, when its
/// renewal is due.
#[test]
fn issue_14_status_shows_when_each_profile_is_renewed() {
    let world = refreshed_world();
    let out = world.rc(&["--no-agent", "status"]).run().success();
    let header = out.stdout.lines().next().unwrap_or_default();
    assert_contains!(header, "RENEWS");
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("dev-admin "))
        .unwrap_or_else(|| panic!("no dev-admin row:\n{}", out.streams()));
    assert_contains!(row, "due ");
    let json = world
        .rc(&["--no-agent", "status", "--json"])
        .run()
        .success()
        .json();
    let due = json[0]["next_renewal"].as_str().unwrap_or_default();
    let expires = json[0]["expiration"].as_str().unwrap_or_default();
    assert!(!due.is_empty() && due < expires, "{json:#}");
}

/// Issue 14: the systemd user unit installed by `rolecall daemon --install-unit` runs the
/// binary that installed it (not `~/.cargo/bin/rolecall`), and systemd accepts it.
#[test]
fn issue_14_daemon_install_unit_names_this_binary_and_systemd_accepts_it() {
    let world = World::start();
    let out = world.rc(&["daemon", "--install-unit"]).run().success();
    let unit = world
        .sandbox
        .config_home()
        .join("systemd/user/rolecall.service");
    let text = std::fs::read_to_string(&unit).expect("the unit file");
    let exe = rolecall_bin().canonicalize().unwrap();
    let exec = format!(
        "\nExecStart=\"{}\" daemon --log-format json\n",
        exe.display()
    );
    assert!(text.contains(&exec), "no {exec:?} in:\n{text}");
    assert_contains!(out.stdout, "systemctl --user daemon-reload");
    // systemd's own check: syntax, and that ExecStart is an executable
    let verify = TestCommand::new("systemd-analyze", world.sandbox.env())
        .args(["verify", unit.to_str().unwrap()])
        .run();
    assert_eq!(verify.code, Some(0), "{}", verify.streams());

    // a unit naming a binary that is not there is what systemd refuses: the check can fail
    let broken = unit.with_file_name("broken.service");
    std::fs::write(
        &broken,
        text.replace(&exe.display().to_string(), "/nonexistent/rolecall"),
    )
    .unwrap();
    let verify = TestCommand::new("systemd-analyze", world.sandbox.env())
        .args(["verify", broken.to_str().unwrap()])
        .run();
    assert_ne!(verify.code, Some(0), "{}", verify.streams());
}
