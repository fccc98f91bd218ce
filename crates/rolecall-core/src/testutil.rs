//! Helpers shared by several modules' unit tests; compiled for tests only. Each module keeps
//! its own fixtures (a test's config is its input, written out beside it); what lives here is
//! how they are read.

use std::path::Path;

use crate::config::{self, Config};

/// Where test configs say they were read from; error messages start with it.
pub(crate) const CONFIG_PATH: &str = "/cfg/config.toml";

/// `text` parsed and validated as if read from [`CONFIG_PATH`].
pub(crate) fn parse_config(text: &str) -> Result<Config, config::Error> {
    Config::parse(text, Path::new(CONFIG_PATH))
}

/// A config the test knows to be valid.
pub(crate) fn config(text: &str) -> Config {
    parse_config(text).expect("a valid test config")
}
