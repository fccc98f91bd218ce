//! `rolecall completions SHELL`.

use clap::CommandFactory;

use crate::cli::Cli;

pub fn run(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "rolecall",
        &mut std::io::stdout(),
    );
    Ok(crate::exit::OK)
}
