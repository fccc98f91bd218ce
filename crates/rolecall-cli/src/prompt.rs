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
            tokio::task::spawn_blocking(move || read_code(&source, &serial))
                .await
                .ok()
                .flatten()
        })
    }
}

/// Prompts on stderr and reads the code from stdin (blocking).
fn read_code(source: &str, serial: &str) -> Option<String> {
    ask_code(|note| {
        if let Some(note) = note {
            eprintln!("{note}");
        }
        eprint!("MFA code for source {source} ({serial}): ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).ok()?;
        Some(line)
    })
}

/// How many times a person may mistype a code before the prompt gives up.
const ATTEMPTS: usize = 3;

/// An MFA code as people type it: authenticator apps show `123 456`, and a paste often brings
/// a space or a newline along, so whitespace anywhere is dropped. `None` unless six digits
/// are left.
pub fn mfa_code(input: &str) -> Option<String> {
    let code: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Asks with `read_line` (which prints the prompt, after the note on the last answer when there
/// is one) until a well-formed code comes, at most [`ATTEMPTS`] times: a typo is asked again
/// instead of failing the whole run. An empty answer or no terminal means no code; after the
/// last typo the answer is returned as typed, so that the engine's error says what is wrong
/// with it. The note goes where the prompt goes (the terminal for `credential_process`, whose
/// stderr the AWS CLI swallows).
fn ask_code(mut read_line: impl FnMut(Option<&str>) -> Option<String>) -> Option<String> {
    let mut note = None;
    for attempt in 1..=ATTEMPTS {
        let line = read_line(note.as_deref())?;
        match judge(&line, attempt) {
            Ok(answer) => return answer,
            Err(again) => note = Some(again),
        }
    }
    None
}

/// What the `attempt`-th answer `line` means: the final answer (`Ok`; `None` for no code), or
/// the note to ask again with (`Err`).
fn judge(line: &str, attempt: usize) -> Result<Option<String>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    if let Some(code) = mfa_code(line) {
        return Ok(Some(code));
    }
    if attempt >= ATTEMPTS {
        return Ok(Some(line.trim().to_string()));
    }
    let left = ATTEMPTS - attempt;
    Err(format!(
        "that is not an MFA code: type the 6 digits your authenticator shows ({left} more {})",
        if left == 1 { "try" } else { "tries" }
    ))
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
            tokio::task::spawn_blocking(move || {
                ask_code(|note| {
                    let prompt = match note {
                        Some(note) => format!("{note}\n{prompt}"),
                        None => prompt.clone(),
                    };
                    match rpassword::prompt_password(prompt) {
                        Ok(line) => Some(line),
                        Err(e) => {
                            tracing::debug!(error = %e, "no terminal to ask for an MFA code");
                            None
                        }
                    }
                })
            })
            .await
            .ok()
            .flatten()
        })
    }
}

/// Asks the terminal for `source`'s MFA code (`None` without a terminal or an answer), as
/// [`TerminalPrompt`] does. The caller may stop waiting (the code came another way): lines are
/// read by one thread for the whole process ([`typed_lines`]), so a dropped question leaves no
/// reader behind to swallow the answer to the next one, and the exit does not wait for it (a
/// runtime waits for its blocking pool).
pub async fn ask_mfa(source: &str, mfa_serial: &str) -> Option<String> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let mut lines = typed_lines().lock().await;
    let mut note: Option<String> = None;
    for attempt in 1..=ATTEMPTS {
        if let Some(note) = &note {
            eprintln!("{note}");
        }
        eprint!("MFA code for source {source} ({mfa_serial}): ");
        let _ = std::io::stderr().flush();
        let line = lines.recv().await?;
        match judge(&line, attempt) {
            Ok(answer) => return answer,
            Err(again) => note = Some(again),
        }
    }
    None
}

/// Lines typed on stdin, read by one detached thread started on first use.
fn typed_lines() -> &'static tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>> {
    static LINES: std::sync::OnceLock<
        tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
    > = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            loop {
                let mut line = String::new();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if tx.send(line).is_err() => return,
                    Ok(_) => {}
                }
            }
        });
        tokio::sync::Mutex::new(rx)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_taken_as_authenticator_apps_show_them() {
        assert_eq!(mfa_code("123456").as_deref(), Some("123456"));
        assert_eq!(mfa_code(" 123 456 \n").as_deref(), Some("123456"));
        assert_eq!(mfa_code("12345"), None);
        assert_eq!(mfa_code("12345a"), None);
        assert_eq!(mfa_code("1234567"), None);
    }

    #[test]
    fn a_typo_is_asked_again_up_to_three_times() {
        let mut answers = vec!["12345\n", "123 456\n"].into_iter();
        assert_eq!(
            ask_code(|_| answers.next().map(str::to_string)).as_deref(),
            Some("123456")
        );
        let mut asked = 0;
        let mut notes = Vec::new();
        let got = ask_code(|note| {
            notes.push(note.map(str::to_string));
            asked += 1;
            Some("nope\n".to_string())
        });
        assert_eq!((asked, got.as_deref()), (3, Some("nope")));
        assert_eq!(notes[0], None);
        assert!(
            notes[1]
                .as_deref()
                .is_some_and(|n| n.contains("2 more tries"))
        );
        assert!(
            notes[2]
                .as_deref()
                .is_some_and(|n| n.contains("1 more try"))
        );
        assert_eq!(ask_code(|_| Some("\n".to_string())), None);
    }
}
