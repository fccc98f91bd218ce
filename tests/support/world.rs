//! `World`: the usual set-up of an end-to-end test: a sandbox, moto behind a fault proxy, a
//! private keychain, and a `rolecall` command factory pointed at all three, with a helper to
//! store the test key and write a config.

use super::command::TestCommand;
use super::fault_proxy::FaultProxy;
use super::keyring::Keyring;
use super::moto::Moto;
use super::rolecall::{Rolecall, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use super::sandbox::Sandbox;

/// The MFA device the tests' source uses.
pub const MFA_SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";

/// A config with one MFA source `bastion`, a role profile, a chained profile and a plain
/// session-token profile.
pub const CONFIG: &str = r#"# test config
[settings]
sts_timeout = "2s"

[sources.bastion]
mfa_serial = "arn:aws:iam::123456789012:mfa/alice"

[profiles.dev-admin]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Admin"
region = "eu-west-1"

[profiles.audit]
source = "dev-admin"
role_arn = "arn:aws:iam::333333333333:role/Audit"

[profiles.session]
source = "bastion"
"#;

/// Everything an end-to-end test needs. Drop order stops rolecall's peers after the test.
pub struct World {
    pub rolecall: Rolecall,
    pub proxy: FaultProxy,
    pub keyring: Keyring,
    pub moto: Moto,
    pub sandbox: Sandbox,
}

impl World {
    /// Starts moto, the proxy in front of it and a keychain; `rolecall` talks to the proxy.
    pub fn start() -> World {
        let sandbox = Sandbox::new();
        let moto = Moto::start(&sandbox);
        let proxy = FaultProxy::start(&moto.url());
        let keyring = Keyring::start(&sandbox);
        let rolecall = Rolecall::new(&sandbox).keyring(&keyring).sts(&proxy.url());
        World {
            rolecall,
            proxy,
            keyring,
            moto,
            sandbox,
        }
    }

    /// `rolecall ARGS…`
    pub fn rc(&self, args: &[&str]) -> TestCommand {
        self.rolecall.cmd(args)
    }

    /// Stores the test key as source `bastion` (with MFA) through `rolecall keys add`, then
    /// writes `config` (which must declare `[sources.bastion]`).
    pub fn setup(&self, config: &str) {
        self.rc(&["keys", "add", "bastion", "--mfa-serial", MFA_SERIAL])
            .stdin(format!("{TEST_ACCESS_KEY_ID}\n{TEST_SECRET_ACCESS_KEY}\n"))
            .run()
            .success();
        self.sandbox.write(self.sandbox.config_path(), config);
    }

    /// The credentials file's text ("" when absent).
    pub fn credentials(&self) -> String {
        let p = self.sandbox.credentials_path();
        if p.exists() {
            self.sandbox.read(p)
        } else {
            String::new()
        }
    }
}
