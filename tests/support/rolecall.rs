//! `Rolecall`: builds commands for the `rolecall` binary under test, the AWS CLI and boto3,
//! all with the sandbox's clean environment plus what the test adds (keyring bus, STS
//! endpoint…).

use std::ffi::OsStr;
use std::path::PathBuf;

use super::command::TestCommand;
use super::keyring::Keyring;
use super::sandbox::{Env, Sandbox};
use super::tools::{rolecall_bin, venv_bin};

/// The static keys tests give the AWS CLI and Rolecall's stored long-term credentials.
pub const TEST_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const TEST_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Command factory for one sandbox. Variables set here apply to every command it makes.
#[derive(Clone, Debug)]
pub struct Rolecall {
    env: Env,
    home: PathBuf,
}

impl Rolecall {
    pub fn new(sandbox: &Sandbox) -> Rolecall {
        Rolecall {
            env: sandbox.env(),
            home: sandbox.home().to_path_buf(),
        }
    }

    /// Routes the children to this keyring's session bus.
    pub fn keyring(mut self, keyring: &Keyring) -> Self {
        self.env.extend(keyring.env());
        self
    }

    /// Sends STS calls to `url` (`AWS_ENDPOINT_URL_STS`), e.g. `moto.url()` or `proxy.url()`,
    /// and sets a region (`AWS_REGION`, `AWS_DEFAULT_REGION` = us-east-1) for signing.
    pub fn sts(mut self, url: &str) -> Self {
        self.env
            .insert("AWS_ENDPOINT_URL_STS".to_owned(), url.to_owned());
        self.env
            .insert("AWS_REGION".to_owned(), "us-east-1".to_owned());
        self.env
            .insert("AWS_DEFAULT_REGION".to_owned(), "us-east-1".to_owned());
        self
    }

    /// Sets a variable for every command made from now on.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        let value = value
            .as_ref()
            .to_str()
            .expect("test env values are UTF-8")
            .to_owned();
        self.env.insert(key.to_owned(), value);
        self
    }

    pub fn environment(&self) -> &Env {
        &self.env
    }

    /// The binary under test (`target/<profile>/rolecall`).
    pub fn binary() -> PathBuf {
        rolecall_bin()
    }

    /// `rolecall ARGS…`
    pub fn cmd(&self, args: &[&str]) -> TestCommand {
        TestCommand::new(rolecall_bin(), self.env.clone())
            .args(args)
            .current_dir(&self.home)
    }

    /// The AWS CLI (v1, from the venv) with `AWS_EC2_METADATA_DISABLED=true`, so a test without
    /// credentials fails at once instead of probing 169.254.169.254.
    pub fn aws(&self, args: &[&str]) -> TestCommand {
        TestCommand::new(venv_bin("aws"), self.env.clone())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(args)
            .current_dir(&self.home)
    }

    /// `aws sts get-caller-identity --profile PROFILE --output json`: who the AWS CLI is with
    /// that profile's credentials.
    pub fn caller_identity(&self, profile: &str) -> TestCommand {
        self.aws(&[
            "sts",
            "get-caller-identity",
            "--profile",
            profile,
            "--output",
            "json",
        ])
    }

    /// The AWS CLI with the static test keys in its environment.
    pub fn aws_with_test_keys(&self, args: &[&str]) -> TestCommand {
        self.aws(args)
            .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
    }

    /// `python -c CODE` from the venv (boto3 available), metadata service disabled as for `aws`.
    pub fn python(&self, code: &str) -> TestCommand {
        TestCommand::new(venv_bin("python"), self.env.clone())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(["-c", code])
            .current_dir(&self.home)
    }
}
