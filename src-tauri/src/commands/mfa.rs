//! The MFA popup's commands: what to ask for, and the code going in (the only value that ever
//! crosses from a page to the engine; nothing comes back but success or the engine's message).

use tauri::{State, WebviewWindow};

use crate::AppState;
use crate::error::CommandError;
use crate::windows::MfaPrompt;

/// The source and MFA device this popup asks a code for.
#[tauri::command]
#[allow(
    clippy::needless_pass_by_value,
    reason = "Tauri passes command arguments by value"
)]
pub fn mfa_prompt(window: WebviewWindow, state: State<'_, AppState>) -> Option<MfaPrompt> {
    state.windows.mfa_prompt(window.label())
}

/// Starts the popup's source session with `code`; closes the popup on success.
#[tauri::command]
pub async fn submit_mfa_code(
    window: WebviewWindow,
    state: State<'_, AppState>,
    code: String,
) -> Result<(), CommandError> {
    let Some(prompt) = state.windows.mfa_prompt(window.label()) else {
        return Err(anyhow::anyhow!("this window asks for no code; close it").into());
    };
    state.backend.supply_mfa(&prompt.source, code).await?;
    window.close()?;
    Ok(())
}
