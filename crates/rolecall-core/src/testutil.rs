//! Helpers shared by several modules' unit tests; compiled for tests only. Each module keeps
//! its own fixtures (a test's config is its input, written out beside it); what lives here is
//! how they are read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Engine;
use crate::config::{self, Config, Paths};

/// Where test configs say they were read from; error messages start with it.
pub(crate) const CONFIG_PATH: &str = "/cfg/config.toml";

/// Source `s` (with an MFA device), roles `a` and `b` from it, `chained` from `a`; renewed 10
/// minutes before expiry, warned 5 minutes before.
pub(crate) const TWO_ROLES_AND_A_CHAIN: &str = r#"
[settings]
refresh_before = "10m"
notify_before = "5m"

[sources.s]
mfa_serial = "arn:aws:iam::111111111111:mfa/alice"

[profiles.a]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/A"

[profiles.b]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/B"

[profiles.chained]
source = "a"
role_arn = "arn:aws:iam::333333333333:role/C"
"#;

/// `text` parsed and validated as if read from [`CONFIG_PATH`].
pub(crate) fn parse_config(text: &str) -> Result<Config, config::Error> {
    Config::parse(text, Path::new(CONFIG_PATH))
}

/// A config the test knows to be valid.
pub(crate) fn config(text: &str) -> Config {
    parse_config(text).expect("a valid test config")
}

/// A throwaway home for an engine: config, credentials file and runtime directory in a temp
/// dir; the keychain is an empty in-memory store (so no STS call can succeed).
pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    /// `name` inside the sandbox.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The engine's paths: config `rolecall/config.toml`, credentials file `credentials`,
    /// runtime directory `run`.
    pub(crate) fn paths(&self) -> Paths {
        Paths {
            home: self.dir.path().to_path_buf(),
            config_file: self.path("rolecall/config.toml"),
            credentials_file_env: Some(self.path("credentials")),
            aws_config_file: self.path("aws-config"),
            runtime_dir: self.path("run"),
            user_name: Some("tester".into()),
            user_config_dir: self.path("xdg-config"),
        }
    }

    /// Writes the config like an editor does: a new file renamed over the old one.
    pub(crate) fn write_config(&self, text: &str) {
        let p = self.path("rolecall/config.toml");
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("the config dir");
        let tmp = self.path("rolecall/.config.toml.swp");
        std::fs::write(&tmp, text).expect("the config written");
        std::fs::rename(&tmp, &p).expect("the config renamed");
    }

    /// An engine on the written config.
    pub(crate) async fn engine(&self) -> Engine {
        self.engine_with(
            Arc::new(crate::vault::MemoryStore::new()),
            Arc::new(crate::NoPrompt),
        )
        .await
    }

    /// An engine on the written config, with this keychain and MFA prompter.
    pub(crate) async fn engine_with(
        &self,
        store: Arc<dyn crate::vault::SecretStore>,
        prompter: Arc<dyn crate::MfaPrompter>,
    ) -> Engine {
        let config = Config::load(&self.path("rolecall/config.toml")).expect("a valid config");
        Engine::builder(self.paths())
            .config(Arc::new(config))
            .secret_store(store)
            .mfa_prompter(prompter)
            .build()
            .await
            .expect("an engine")
    }
}
