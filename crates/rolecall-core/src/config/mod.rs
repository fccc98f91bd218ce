//! Rolecall's own settings: where files live ([`Paths`]) and what to manage ([`Config`]).
//!
//! [`Paths::from_env`] is the only place that reads the process environment; everything else
//! gets paths from it, so tests and the app decide what the engine sees. The TOML schema is a
//! public contract (other tools write it): keys may be added, never renamed. Loading is
//! parse → validate (every error names the file, the line and the key, and says what is
//! allowed) → `Arc<Config>`. Edits that Rolecall makes to the file (`keys add`, `use`, `import`,
//! the app's Settings window through [`change_settings`]) go through [`ConfigEditor`], which
//! keeps the user's comments and layout.
//!
//! The parts: `paths` (where files are), `schema` (the typed file and its queries, loading and
//! locating errors in the text), `validate` (everything TOML types cannot check), `editor`
//! (edits that keep the user's layout).

use std::path::{Path, PathBuf};

mod editor;
mod paths;
mod schema;
mod validate;

pub(crate) use editor::resolve_symlinks;
pub use editor::{ConfigEditor, SettingsChange, change_settings};
pub use paths::Paths;
#[cfg(unix)]
pub(crate) use paths::current_uid;
pub use schema::{
    Config, DEFAULT_ROLE_DURATION, DEFAULT_SESSION_DURATION, MAX_EXTENDS_DEPTH, ProfileConfig,
    Settings, SourceConfig, SourceKind, Upstream,
};
pub use validate::{
    check_mfa_serial, check_name, check_role_arn, check_role_duration, check_session_duration,
    format_duration, import_checks,
};

/// What went wrong with the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}; check that the file exists and is readable")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error(
        "cannot write config {path}: {source}; check the directory's permissions and free space"
    )]
    Write {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The lock that makes Rolecall's edits of the file one at a time could not be taken.
    #[error(
        "cannot lock config for editing ({path}): {source}; check the permissions of the \
         config file's directory"
    )]
    Lock {
        /// The lock file, beside the config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{}: {message}", location(path, *line, *column))]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// 1-based column of the problem, when known.
        column: Option<usize>,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A value is well-formed TOML but not allowed.
    #[error("{}: {key}: {message}", location(path, *line, None))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the key, when known.
        line: Option<usize>,
        /// Dotted path of the key (`profiles.dev-admin.duration`).
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

fn location(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}
