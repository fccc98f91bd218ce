//! `rolecall man DIR` (hidden): the man pages, rendered by clap_mangen from the same clap
//! definition as `--help` ([`crate::cli::command`]), so they cannot drift from it: `rolecall.1`
//! and one page per subcommand (`rolecall-refresh.1`, `rolecall-keys-add.1`…). `make package`
//! ships them, gzipped, in `/usr/share/man/man1`.

use std::path::Path;

use anyhow::Context;

pub fn run(dir: &Path) -> anyhow::Result<u8> {
    std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(crate::cli::command(), dir))
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    Ok(crate::exit::OK)
}
