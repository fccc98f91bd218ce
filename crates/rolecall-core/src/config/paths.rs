//! Where Rolecall's files are: the one place that reads the process environment.

use std::path::{Path, PathBuf};

use super::Settings;

/// Where Rolecall's files are. Built once from the environment by [`Paths::from_env`], or by
/// hand in tests.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The user's home directory (for `~` in settings).
    pub home: PathBuf,
    /// Rolecall's config file (`$ROLECALL_CONFIG`, else `<config dir>/rolecall/config.toml`).
    pub config_file: PathBuf,
    /// `$AWS_SHARED_CREDENTIALS_FILE`, if set.
    pub credentials_file_env: Option<PathBuf>,
    /// The AWS config file (`$AWS_CONFIG_FILE`, else `~/.aws/config`).
    pub aws_config_file: PathBuf,
    /// Per-user runtime directory for sockets (`$XDG_RUNTIME_DIR/rolecall`, else under the
    /// user's cache dir: see `fallback_runtime_dir`).
    pub runtime_dir: PathBuf,
    /// The OS user name, used for default role session names.
    pub user_name: Option<String>,
    /// The user's config base directory (`$XDG_CONFIG_HOME`, else `~/.config` on Linux), where
    /// `rolecall daemon --install-unit` puts the systemd user unit (`systemd/user/`).
    pub user_config_dir: PathBuf,
}

/// This process's real user id.
#[cfg(unix)]
pub(crate) fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The runtime directory without `XDG_RUNTIME_DIR` (cron, ssh without pam_systemd, macOS).
///
/// Unix: `<cache dir>/rolecall/run` (`$XDG_CACHE_HOME/rolecall/run`, else
/// `~/.cache/rolecall/run`; `~/Library/Caches/rolecall/run` on macOS), inside the user's own
/// home, which the agent creates 0700. Not a name in the shared temp dir: another local user
/// could create `/tmp/rolecall-<uid>` first and so keep the agent from ever starting. A socket
/// path longer than the OS allows (107 bytes on Linux, 103 on macOS) cannot be bound: the
/// agent then refuses to start, naming the path and how to choose a shorter one.
///
/// Windows: a per-user name in the temp dir, which is per user there (`%LOCALAPPDATA%\Temp`).
fn fallback_runtime_dir(
    base: Option<&directories::BaseDirs>,
    home: &Path,
    user_name: Option<&str>,
) -> PathBuf {
    #[cfg(unix)]
    {
        let _ = user_name;
        base.map(|b| b.cache_dir().to_path_buf())
            .unwrap_or_else(|| home.join(".cache"))
            .join("rolecall/run")
    }
    #[cfg(not(unix))]
    {
        let _ = (base, home);
        std::env::temp_dir().join(format!("rolecall-{}", user_name.unwrap_or("user")))
    }
}

impl Paths {
    /// Reads HOME, XDG_*, `ROLECALL_CONFIG`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`
    /// and the user name. The only function in the engine that reads the environment.
    #[allow(clippy::disallowed_methods)] // this is the one place allowed to read the environment
    pub fn from_env() -> Paths {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let base = directories::BaseDirs::new();
        let home = base
            .as_ref()
            .map(|b| b.home_dir().to_path_buf())
            .or_else(|| var("HOME"))
            .unwrap_or_else(|| PathBuf::from("."));
        let config_file = var("ROLECALL_CONFIG").unwrap_or_else(|| {
            directories::ProjectDirs::from("", "", "rolecall")
                .map(|d| d.config_dir().join("config.toml"))
                .unwrap_or_else(|| home.join(".config/rolecall/config.toml"))
        });
        let user_name = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .ok()
            .filter(|u| !u.is_empty());
        let runtime_dir = base
            .as_ref()
            .and_then(|b| b.runtime_dir().map(|d| d.join("rolecall")))
            .unwrap_or_else(|| fallback_runtime_dir(base.as_ref(), &home, user_name.as_deref()));
        Paths {
            aws_config_file: var("AWS_CONFIG_FILE").unwrap_or_else(|| home.join(".aws/config")),
            credentials_file_env: var("AWS_SHARED_CREDENTIALS_FILE"),
            config_file,
            runtime_dir,
            user_name,
            user_config_dir: base
                .as_ref()
                .map(|b| b.config_dir().to_path_buf())
                .unwrap_or_else(|| home.join(".config")),
            home,
        }
    }

    /// The credentials file Rolecall writes: `settings.credentials_file`, else
    /// `$AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    pub fn credentials_file(&self, settings: &Settings) -> PathBuf {
        if let Some(p) = &settings.credentials_file {
            return self.expand(p);
        }
        self.credentials_file_env
            .clone()
            .unwrap_or_else(|| self.home.join(".aws/credentials"))
    }

    /// Expands a leading `~/` to the home directory.
    pub fn expand(&self, p: &str) -> PathBuf {
        match p.strip_prefix("~/") {
            Some(rest) => self.home.join(rest),
            None if p == "~" => self.home.clone(),
            None => PathBuf::from(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_expand_tilde() {
        let p = Paths {
            home: PathBuf::from("/home/a"),
            config_file: PathBuf::new(),
            credentials_file_env: Some(PathBuf::from("/env/creds")),
            aws_config_file: PathBuf::new(),
            runtime_dir: PathBuf::new(),
            user_name: None,
            user_config_dir: PathBuf::new(),
        };
        let mut s = Settings::default();
        assert_eq!(p.credentials_file(&s), PathBuf::from("/env/creds"));
        s.credentials_file = Some("~/x/creds".into());
        assert_eq!(p.credentials_file(&s), PathBuf::from("/home/a/x/creds"));
    }
}
