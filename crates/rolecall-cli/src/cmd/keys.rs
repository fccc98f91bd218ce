//! `rolecall keys add|import|list|mfa-devices|rotate|remove`.

use std::io::{BufRead, IsTerminal, Write};

use rolecall_core::config::{Paths, SourceKind};
use rolecall_core::credentials::{Credentials, KeyId};
use rolecall_core::engine::{MfaChoice, MfaFrom};
use rolecall_core::iam;
use rolecall_core::timestamp;

use crate::cli::Keys;
use crate::cmd::engine;
use crate::prompt::read_key;

pub async fn run(paths: Paths, keys: Keys) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    match keys {
        Keys::Add {
            name,
            mfa_serial,
            detect_mfa,
            replace,
        } => {
            // refuse before asking for a key that could not be stored
            engine.ensure_keychain_source(&name)?;
            // a long-lived key may exist nowhere else: never replace it unasked
            if let Some(old) = engine.source_key(&name).await?
                && !replace
                && !confirm_replace(&name, &old.access_key_id)?
            {
                return Ok(crate::exit::USAGE);
            }
            let new_source = !engine.config().sources.contains_key(&name);
            let (id, secret) = read_key()?;
            let key = Credentials {
                access_key_id: id,
                secret_access_key: secret.into(),
                session_token: None,
                expiration: None,
            };
            let mfa_serial = if detect_mfa {
                let serial = match engine.detect_mfa_serial(&name, &key).await {
                    Ok(serial) => serial,
                    // a person can pick one; without a terminal the error lists them and the flag
                    Err(rolecall_core::Error::Iam(iam::Error::SeveralDevices {
                        user,
                        serials,
                    })) if std::io::stdin().is_terminal() => choose_device(&user, &serials)?,
                    Err(e) => return Err(e.into()),
                };
                outln!("found MFA device {serial}");
                Some(serial)
            } else {
                mfa_serial
            };
            engine.add_key(&name, key, mfa_serial).await?;
            outln!("stored the key of source {name} in the keychain");
            if new_source {
                outln!(
                    "added [sources.{name}] to {}",
                    engine.paths().config_file.display()
                );
            }
        }
        Keys::Import {
            profile,
            as_name,
            scrub,
            mfa_serial,
            detect_mfa,
        } => {
            let mfa = match (mfa_serial, detect_mfa) {
                (Some(serial), _) => MfaChoice::Given(serial),
                (None, true) => MfaChoice::Detect,
                (None, false) => MfaChoice::FromFiles,
            };
            let done = engine
                .import_key(&profile, as_name.as_deref(), scrub, mfa)
                .await?;
            outln!(
                "stored the key of [{profile}] as source {} in the keychain",
                done.source
            );
            match &done.mfa_serial {
                Some((serial, MfaFrom::Detected)) => outln!("found MFA device {serial}"),
                Some((serial, MfaFrom::Profile(from))) => {
                    outln!("MFA device {serial} (the mfa_serial of [{from}])");
                }
                _ => {}
            }
            if done.scrubbed {
                outln!(
                    "removed [{profile}] from {}",
                    engine.credentials_file().path().display()
                );
            }
        }
        Keys::List { json } => {
            let list = engine.list_keys().await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                outln!("no sources; add one with `rolecall keys add NAME`");
            } else {
                for s in list {
                    let key = match s.kind {
                        SourceKind::Keychain => s.key_id.as_deref().unwrap_or("(no key stored)"),
                        SourceKind::InstanceProfile => "(instance profile)",
                        SourceKind::Environment => "(environment)",
                    };
                    let mfa = s.mfa_serial.as_deref().unwrap_or("no MFA");
                    let session = s
                        .session_expiration
                        .map(|e| format!("session until {}", timestamp::format(e)))
                        .unwrap_or_else(|| "no session".into());
                    outln!("{}  {key}  {mfa}  {session}", s.name);
                }
            }
        }
        Keys::MfaDevices { name, json } => {
            let found = engine.mfa_devices(&name).await?;
            if json {
                let out = serde_json::json!({"user": found.user, "mfa_devices": found.items});
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else if found.items.is_empty() {
                eprintln!("rolecall: IAM user {} has no MFA device", found.user);
            } else {
                for serial in &found.items {
                    outln!("{serial}");
                }
            }
        }
        Keys::Rotate { name } => {
            let done = engine.rotate_key(&name).await?;
            outln!(
                "rotated the key of source {name} (IAM user {}): {} is in the keychain, {} is \
                 deleted",
                done.user,
                done.new_key,
                done.old_key
            );
        }
        Keys::Remove { name } => {
            if engine.remove_key(&name).await? {
                outln!("removed source {name}");
            } else {
                eprintln!(
                    "rolecall: no source named {name}; `rolecall keys list` shows the sources"
                );
                return Ok(crate::exit::USAGE);
            }
        }
    }
    Ok(crate::exit::OK)
}

/// Asks the person at the terminal whether to replace source `name`'s key; without a terminal
/// says how to (`--replace`) and answers no.
fn confirm_replace(name: &str, old_key_id: &str) -> anyhow::Result<bool> {
    let old = KeyId(old_key_id);
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "rolecall: source {name} already has a key ({old}) in the keychain; to replace it, \
             run `rolecall keys add {name} --replace`"
        );
        return Ok(false);
    }
    eprint!("source {name} already has a key ({old}) in the keychain; replace it? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    if !yes {
        eprintln!("rolecall: kept the key of source {name}");
    }
    Ok(yes)
}

/// Asks the person at the terminal which of `serials` (the MFA devices of IAM user `user`) to
/// use; a wrong answer is asked again, at most three times, and no answer gives up, naming the
/// flag that chooses one.
fn choose_device(user: &str, serials: &[String]) -> anyhow::Result<String> {
    eprintln!("IAM user {user} has several MFA devices:");
    for (i, serial) in serials.iter().enumerate() {
        eprintln!("  {}) {serial}", i + 1);
    }
    for _ in 0..3 {
        eprint!("which one? [1-{}] ", serials.len());
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        let answer = answer.trim();
        if answer.is_empty() {
            break;
        }
        match answer.parse::<usize>() {
            Ok(n) if (1..=serials.len()).contains(&n) => return Ok(serials[n - 1].clone()),
            _ => eprintln!("rolecall: answer with a number from 1 to {}", serials.len()),
        }
    }
    anyhow::bail!(
        "no MFA device chosen; give one with --mfa-serial ARN instead of --detect-mfa ({})",
        serials.join(", ")
    )
}
