//! Issue 16: what `make package` takes from the CLI itself, so that the packages have one source
//! of truth: the man pages (rendered from the clap definition) and the systemd user unit naming
//! the installed binary. The installed package is tested by `installers/test-deb.sh`.

use crate::support::{Sandbox, TestCommand, rolecall_bin};

fn rc(sandbox: &Sandbox, args: &[&str]) -> TestCommand {
    TestCommand::new(rolecall_bin(), sandbox.env()).args(args)
}

#[test]
fn issue_16_man_pages_come_from_the_clap_definition_and_man_renders_them() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("man1");
    rc(&sandbox, &["man", dir.to_str().unwrap()])
        .run()
        .success();

    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in ["rolecall.1", "rolecall-refresh.1", "rolecall-keys-add.1"] {
        assert!(pages.iter().any(|p| p == page), "no {page} in {pages:?}");
    }
    // hidden commands and clap's `help` are no pages
    assert!(
        !pages
            .iter()
            .any(|p| p.starts_with("rolecall-man") || p.contains("help")),
        "{pages:?}"
    );

    // man itself reads the page: the subcommands and their one-line help, as --help has them
    let shown = TestCommand::new("man", sandbox.env())
        .env("MANWIDTH", "200")
        .args(["-P", "cat", "-l"])
        .arg(dir.join("rolecall.1"))
        .run()
        .success();
    assert_contains!(shown.stdout, "rolecall-refresh(1)");
    let help = rc(&sandbox, &["--help"]).run().success();
    let line = "Renew profiles that are due";
    assert_contains!(help.stdout, line);
    assert_contains!(shown.stdout, line);
    assert!(!shown.stdout.contains("rolecall-man"), "{}", shown.stdout);
}

#[test]
fn issue_16_the_packaged_unit_runs_the_installed_binary() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("unit");
    let d = dir.to_str().unwrap();
    let out = rc(
        &sandbox,
        &[
            "daemon",
            "--install-unit",
            "--unit-dir",
            d,
            "--unit-exec",
            "/usr/bin/rolecall",
        ],
    )
    .run()
    .success();
    assert_contains!(out.stdout, "/usr/bin/rolecall");
    let text = std::fs::read_to_string(dir.join("rolecall.service")).unwrap();
    assert_contains!(
        text,
        "\nExecStart=\"/usr/bin/rolecall\" daemon --log-format json\n"
    );
    assert!(!text.contains("%h/.cargo"), "{text}");

    // a relative path would be resolved from nowhere systemd knows: a usage error
    let bad = rc(
        &sandbox,
        &[
            "daemon",
            "--install-unit",
            "--unit-dir",
            d,
            "--unit-exec",
            "bin/rolecall",
        ],
    )
    .run()
    .code_is(2);
    assert_contains!(bad.stderr, "absolute path");
}
