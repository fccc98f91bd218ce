//! The one error the app's commands return to a page: the message (the core error's
//! `Display`, its cause chain joined), serialised as a string. Never `{:?}`, never a secret:
//! core messages carry none.

/// An error a page can show.
#[derive(Debug)]
pub struct CommandError(String);

impl From<anyhow::Error> for CommandError {
    fn from(e: anyhow::Error) -> Self {
        CommandError(format!("{e:#}"))
    }
}

impl From<tauri::Error> for CommandError {
    fn from(e: tauri::Error) -> Self {
        CommandError(e.to_string())
    }
}

impl serde::Serialize for CommandError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
