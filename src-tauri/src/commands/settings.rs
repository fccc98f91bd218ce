//! The Settings window's commands: what it shows (the config's settings, the login entry, the
//! sources and profiles with their state) and the changes it makes, each one call into core or
//! the backend. Config changes are edits of the file through core (its lock, the CLI's checks
//! and messages, refused values shown in the window); the engine reloads the file itself. No
//! secret is in what a page gets: names, ARNs, states, times and core's messages.

use rolecall_core::config::{Config, SourceKind, format_duration};
use rolecall_core::{ProfileStatus, SettingsChange};
use tauri::{AppHandle, State};

use crate::AppState;
use crate::error::CommandError;

/// What the Settings window shows.
#[derive(Debug, serde::Serialize)]
pub struct SettingsView {
    /// The config file the settings are written to.
    config_file: String,
    /// Whether the app hosts the engine (else it is attached to a running agent).
    hosted: bool,
    /// Whether the login entry exists.
    start_at_login: bool,
    /// `refresh_before`, as the config file writes durations ("15m").
    refresh_before: String,
    /// `notify_before`.
    notify_before: String,
    /// `end_sessions_on_quit`.
    end_sessions_on_quit: bool,
    /// The active profile.
    active: Option<String>,
    /// The sources, by name.
    sources: Vec<SourceView>,
    /// Every profile's status, as the tray shows it.
    profiles: Vec<ProfileStatus>,
    /// Why the profiles' status could not be read, if it could not.
    status_error: Option<String>,
}

/// One source, read-only.
#[derive(Debug, serde::Serialize)]
struct SourceView {
    name: String,
    kind: SourceKind,
    mfa_serial: Option<String>,
    region: Option<String>,
}

/// The window's content, from the config file and the engine's status.
#[tauri::command]
pub async fn read_settings(
    app: AppHandle,
    state: State<'_, AppState>,
) -> Result<SettingsView, CommandError> {
    let config = state.backend.config().await?;
    tracing::debug!("the settings window read the settings");
    Ok(view(&app, &state, &config).await)
}

/// Writes the changed settings into the config file; a refused value leaves the file as it
/// was and its message is the error.
#[tauri::command]
pub async fn change_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    change: SettingsChange,
) -> Result<SettingsView, CommandError> {
    let config = state.backend.change_settings(change).await?;
    Ok(view(&app, &state, &config).await)
}

/// Makes `profile` active, as the tray's profile items do.
#[tauri::command]
pub async fn switch_profile(
    app: AppHandle,
    state: State<'_, AppState>,
    profile: String,
) -> Result<SettingsView, CommandError> {
    state.backend.use_profile(&profile).await?;
    read_settings(app, state).await
}

/// Turns starting at login on or off (the login entry), as the tray's check item does.
#[tauri::command]
pub async fn set_start_at_login(
    app: AppHandle,
    state: State<'_, AppState>,
    on: bool,
) -> Result<SettingsView, CommandError> {
    crate::set_start_at_login(&app, on)?;
    // the tray's check item follows
    let _ = state.redraw.send(None).await;
    read_settings(app, state).await
}

async fn view(app: &AppHandle, state: &AppState, config: &Config) -> SettingsView {
    let (profiles, status_error) = match state.backend.status().await {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    let s = &config.settings;
    SettingsView {
        config_file: state.backend.config_file().display().to_string(),
        hosted: state.backend.is_hosted(),
        start_at_login: crate::starts_at_login(app),
        refresh_before: format_duration(s.refresh_before),
        notify_before: format_duration(s.notify_before),
        end_sessions_on_quit: s.end_sessions_on_quit,
        active: s.active.clone(),
        sources: config
            .sources
            .iter()
            .map(|(name, src)| SourceView {
                name: name.clone(),
                kind: src.kind,
                mfa_serial: src.mfa_serial.clone(),
                region: src.region.clone(),
            })
            .collect(),
        profiles,
        status_error,
    }
}
