//! `rolecall setup …`: writes the AWS config file's side of an integration.
//!
//! `rolecall setup credential-process PROFILE [--as NAME]` writes a managed `[profile NAME]`
//! into `~/.aws/config` (`AWS_CONFIG_FILE`) whose `credential_process` runs this binary, so
//! every AWS tool asks Rolecall for fresh credentials on each call (issue 15). The section is
//! spliced by the credentials writer (same marker, fingerprint, lock and atomic write): a
//! profile the user wrote is never overwritten.

use anyhow::Context;
use clap::Subcommand;
use rolecall_core::config::{Config, Paths};
use rolecall_core::credfile::{self, CredentialsFile, Edit, ProfileSection};

/// `rolecall setup`.
#[derive(Debug, Subcommand)]
pub enum Setup {
    /// Write a [profile NAME] with credential_process = "rolecall credential-process PROFILE"
    /// into ~/.aws/config (or $AWS_CONFIG_FILE), so AWS tools ask Rolecall on each call.
    ///
    /// Example: rolecall setup credential-process dev-admin --as dev-admin-process
    CredentialProcess {
        /// The Rolecall profile whose credentials the AWS tools get.
        profile: String,
        /// The name of the profile in ~/.aws/config (default: PROFILE). It must not be a
        /// section of the credentials file (whose keys the AWS tools would use instead) nor a
        /// profile you wrote.
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
    },
}

pub async fn run(paths: Paths, setup: Setup) -> anyhow::Result<u8> {
    match setup {
        Setup::CredentialProcess { profile, name } => {
            credential_process(paths, profile, name).await
        }
    }
}

async fn credential_process(
    paths: Paths,
    profile: String,
    name: Option<String>,
) -> anyhow::Result<u8> {
    let config = Config::load(&paths.config_file).map_err(rolecall_core::Error::from)?;
    if !config.profiles.contains_key(&profile) {
        return Err(rolecall_core::Error::UnknownProfile {
            name: profile,
            config: paths.config_file.display().to_string(),
            known: config
                .profiles
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into());
    }
    let name = name.unwrap_or_else(|| profile.clone());
    let exe = std::env::current_exe().context("finding the path of the rolecall binary")?;
    let exe = exe
        .to_str()
        .context("the path of the rolecall binary is not UTF-8, so ~/.aws/config cannot name it")?;
    let command = format!(
        "{} credential-process {}",
        shell_quote(exe),
        shell_quote(&profile)
    );
    let credentials = CredentialsFile::new(paths.credentials_file(&config.settings));
    let config_file = CredentialsFile::new(paths.aws_config_file.clone())
        .with_lock_dir(paths.runtime_dir.clone());
    let section = ProfileSection {
        name: name.clone(),
        region: None,
        credential_process: Some(command.clone()),
    };
    let written_name = name.clone();
    let outcome = tokio::task::spawn_blocking(
        move || -> Result<Result<bool, Collision>, credfile::Error> {
            // Keys in the credentials file win over credential_process in botocore and the SDKs,
            // so a section of that name there would make this profile a lie.
            let text = credentials.read()?;
            if let Some(section) = credfile::inspect(&text).get(&written_name) {
                return Ok(Err(Collision {
                    path: credentials.path().to_owned(),
                    managed: section.managed,
                }));
            }
            config_file
                .apply_config(&[Edit::Upsert {
                    section,
                    adopt: false,
                }])
                .map(Ok)
        },
    )
    .await
    .context("writing the aws config file")?;
    let changed = match outcome {
        Ok(Ok(changed)) => changed,
        Ok(Err(Collision { path, managed })) => {
            let whose = if managed {
                "a section rolecall manages"
            } else {
                "a section you wrote"
            };
            eprintln!(
                "rolecall: cannot set up profile {name:?}: {} has {whose} of that name, and the \
                 aws tools would use its keys instead of credential_process; choose another \
                 name with --as NAME (for example --as {name}-process)",
                path.display()
            );
            return Ok(crate::exit::USAGE);
        }
        // the name is taken, or cannot be written: the user picks another one
        Err(
            e @ (credfile::Error::NotOwned { .. }
            | credfile::Error::Changed { .. }
            | credfile::Error::Duplicate { .. }
            | credfile::Error::InvalidProfileName { .. }),
        ) => {
            eprintln!("rolecall: {e}");
            eprintln!(
                "rolecall: hint: choose a free name with --as NAME (for example --as \
                 {name}-process)"
            );
            return Ok(crate::exit::USAGE);
        }
        Err(e) => return Err(e).context("writing the aws config file"),
    };
    let path = paths.aws_config_file.display();
    if changed {
        outln!("wrote [profile {name}] to {path}: credential_process = {command}");
    } else {
        outln!("[profile {name}] in {path} is already set up: credential_process = {command}");
    }
    outln!("next: aws sts get-caller-identity --profile {name}");
    Ok(crate::exit::OK)
}

/// The credentials file has a section of the name asked for.
struct Collision {
    path: std::path::PathBuf,
    managed: bool,
}

/// `s` as one word for both readers of `credential_process`: botocore splits it with Python's
/// `shlex.split` (POSIX rules), the Rust SDK runs it with `sh -c`. Words of safe characters
/// stay as they are; anything else is single-quoted, a `'` inside written as `'\''`, which
/// both read back as the same text.
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn issue_15_shell_quote_gives_one_word() {
        for (input, quoted) in [
            ("/usr/bin/rolecall", "/usr/bin/rolecall"),
            ("/opt/my tools/rolecall", "'/opt/my tools/rolecall'"),
            ("/home/o'brien/rolecall", r"'/home/o'\''brien/rolecall'"),
            ("/tmp/$x", "'/tmp/$x'"),
            ("", "''"),
        ] {
            assert_eq!(shell_quote(input), quoted, "{input}");
        }
    }
}
