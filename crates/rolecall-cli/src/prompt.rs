//! Asking the person at the terminal: MFA codes and keys. Never echoes secrets.

use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::pin::Pin;

use rolecall_core::MfaPrompter;

/// Prompts on the terminal when stdin is one; otherwise has no code.
pub struct TerminalPrompt;

impl MfaPrompter for TerminalPrompt {
    fn mfa_code<'a>(
        &'a self,
        source: &'a str,
        mfa_serial: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
        let (source, serial) = (source.to_string(), mfa_serial.to_string());
        Box::pin(async move {
            if !std::io::stdin().is_terminal() {
                return None;
            }
            tokio::task::spawn_blocking(move || {
                eprint!("MFA code for source {source} ({serial}): ");
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).ok()?;
                let code = line.trim().to_string();
                (!code.is_empty()).then_some(code)
            })
            .await
            .ok()
            .flatten()
        })
    }
}

/// Prompts on the controlling terminal (`/dev/tty`; the console on Windows), whatever stdin,
/// stdout and stderr are: for `credential_process`, whose caller (botocore) pipes stdout and
/// stderr and leaves stdin as it was, so a prompt on stderr would never be seen and the AWS CLI
/// would wait forever. Without a terminal it asks nobody and has no code (the engine then
/// fails with its "needs MFA" error). The code is not echoed; the engine checks it.
pub struct TtyPrompt;

impl MfaPrompter for TtyPrompt {
    fn mfa_code<'a>(
        &'a self,
        source: &'a str,
        mfa_serial: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
        let prompt = format!("MFA code for source {source} ({mfa_serial}): ");
        Box::pin(async move {
            // rpassword opens the terminal for writing (the prompt) and for reading (the
            // answer), and fails before writing anything when there is none
            tokio::task::spawn_blocking(move || match rpassword::prompt_password(prompt) {
                Ok(line) => {
                    let code = line.trim().to_string();
                    (!code.is_empty()).then_some(code)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no terminal to ask for an MFA code");
                    None
                }
            })
            .await
            .ok()
            .flatten()
        })
    }
}

/// Asks the terminal for `source`'s MFA code (`None` without a terminal or an answer).
pub async fn ask_mfa(source: &str, mfa_serial: &str) -> Option<String> {
    TerminalPrompt.mfa_code(source, mfa_serial).await
}

/// Reads the access key id and secret: prompted without echo on a terminal, else two lines
/// from stdin.
pub fn read_key() -> anyhow::Result<(String, String)> {
    use anyhow::Context;
    if std::io::stdin().is_terminal() {
        let id = rpassword::prompt_password("AWS access key id: ").context("reading the key id")?;
        let secret =
            rpassword::prompt_password("AWS secret access key: ").context("reading the secret")?;
        Ok((id.trim().to_string(), secret.trim().to_string()))
    } else {
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        let mut next = |what: &str| -> anyhow::Result<String> {
            lines
                .next()
                .transpose()
                .context("reading stdin")?
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .with_context(|| {
                    format!("expected the {what} on stdin (two lines: key id, secret)")
                })
        };
        let id = next("access key id")?;
        let secret = next("secret access key")?;
        Ok((id, secret))
    }
}
