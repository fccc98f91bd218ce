//! Rolecall's tray app: a thin shell over `rolecall-core`.
//!
//! One engine per user: when no agent runs, the app hosts the engine, its scheduler and its
//! agent (`rolecall status/refresh/use` then reach the app); when one runs, it attaches to it
//! ([`backend`]). The tray ([`tray`]) follows the engine's events; windows ([`windows`]) are
//! made on demand. The app keeps running with no window (it prevents the exit Tauri asks for
//! when the last window closes). At start it opens a window only when a code is already
//! needed, and not with `--hidden` (what the login entry runs). No AWS, keychain or file logic
//! lives here: every action is one call into the backend or core.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod backend;
mod commands;
mod error;
mod notify;
mod tray;
mod windows;

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use rolecall_core::config::Paths;
use rolecall_core::events::Event;
use rolecall_core::host;
use tauri::{AppHandle, Manager, RunEvent, WindowEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::Backend;
use crate::tray::{Action, Tray};
use crate::windows::{MfaPrompt, Windows};

/// How often the time left in the menu is redrawn when nothing else happens.
const REDRAW_EVERY: Duration = Duration::from_secs(60);

/// The app's state, managed by Tauri.
pub struct AppState {
    backend: Arc<Backend>,
    windows: Windows,
    notifier: notify::Notifier,
    tray: OnceLock<Tray>,
    /// Asks the redraw task to redraw now.
    redraw: mpsc::Sender<Option<Event>>,
    /// Every task the app spawns (actions, the redraw and event tasks); awaited on quit.
    tasks: TaskTracker,
    stop: CancellationToken,
    /// Started with `--hidden` (at login): open no window by itself.
    hidden: bool,
}

#[allow(
    clippy::disallowed_methods,
    reason = "tauri::generate_context! expands to a process::exit on a broken embedded asset"
)]
fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    without_gdk_gl();
    init_logging();
    let paths = Paths::from_env();
    let hidden = std::env::args().skip(1).any(|a| a == "--hidden");
    let app = tauri::Builder::default()
        // a second launch hands over to the first and exits
        .plugin(tauri_plugin_single_instance::init(|_app, _argv, _cwd| {
            tracing::info!("rolecall app launched again; the running one stays");
        }))
        .invoke_handler(tauri::generate_handler![
            commands::mfa::mfa_prompt,
            commands::mfa::submit_mfa_code,
            commands::settings::read_settings,
            commands::settings::change_settings,
            commands::settings::switch_profile,
            commands::settings::set_start_at_login,
        ])
        .setup(move |app| {
            // the tray's icon variants, in the app's private runtime directory
            let icons = paths.runtime_dir.join("tray-icons");
            let backend = Arc::new(tauri::async_runtime::block_on(Backend::start(paths))?);
            let (redraw, changes) = mpsc::channel(64);
            let state = AppState {
                backend: Arc::clone(&backend),
                windows: Windows::default(),
                notifier: notify::Notifier::default(),
                tray: OnceLock::new(),
                redraw: redraw.clone(),
                tasks: TaskTracker::new(),
                stop: CancellationToken::new(),
                hidden,
            };
            let tray = Tray::build(app.handle(), &icons, on_action)?;
            #[cfg(target_os = "linux")]
            {
                // setup runs on the main thread, where GTK's settings live
                tray.set_dark_panel(tray::panel_is_dark());
                let app = app.handle().clone();
                tray::on_theme_change(move || {
                    let state = app.state::<AppState>();
                    if let Some(tray) = state.tray.get() {
                        tray.set_dark_panel(tray::panel_is_dark());
                    }
                    let _ = state.redraw.try_send(None);
                });
            }
            // set before the state is managed: nothing else can have set it
            let _ = state.tray.set(tray);
            let (tasks, stop) = (state.tasks.clone(), state.stop.clone());
            app.manage(state);
            tauri::async_runtime::spawn(tasks.track_future(redraws(app.handle().clone(), changes)));
            tauri::async_runtime::spawn(tasks.track_future(async move {
                backend.watch(redraw, stop).await;
            }));
            tracing::info!(
                hosted = app.state::<AppState>().backend.is_hosted(),
                "rolecall app started"
            );
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::Destroyed = event {
                window.state::<AppState>().windows.destroyed(window.label());
            }
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("rolecall-app: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|_app, event| {
        // closing the last window must not quit a tray app; Quit exits with a code
        if let RunEvent::ExitRequested {
            code: None, api, ..
        } = event
        {
            api.prevent_exit();
        }
    });
    ExitCode::SUCCESS
}

/// Redraws the tray when the hosted engine's live view changes, after every engine event
/// (coalesced) and, when nothing else changes, once a minute (the time left); notifies what
/// needs the user, and opens the MFA popup when the engine asks for a code. Hosted, a redraw
/// reads the live view (no file or keychain read); attached, the agent's `status`.
async fn redraws(app: AppHandle, mut changes: mpsc::Receiver<Option<Event>>) {
    let state = app.state::<AppState>();
    // an engine that asked for a code before the app listened (an agent started earlier);
    // not at login, where the app opens no window by itself
    let mut first = !state.hidden;
    let mut live = state.backend.live();
    // every profile as last shown, and the events still to act on (after the redraw they
    // caused, so the profiles are as recent as can be)
    let mut shown: Vec<rolecall_core::ProfileStatus> = Vec::new();
    let mut pending: Vec<Event> = Vec::new();
    loop {
        if let Some(view) = live.as_mut() {
            view.mark_unchanged();
        }
        match state.backend.profiles().await {
            Ok(profiles) => {
                if std::mem::take(&mut first)
                    && profiles
                        .iter()
                        .any(|p| p.state == rolecall_core::State::NeedsMfa)
                {
                    on_action(&app, Action::EnterMfaCode);
                }
                let login = autostart_dir(&app).is_ok_and(|d| host::login::is_enabled(&d));
                if let Some(tray) = state.tray.get()
                    && let Err(e) = tray.show(&app, &profiles, login)
                {
                    tracing::warn!(error = %e, "cannot update the tray menu");
                }
                state.windows.close_answered(&app, &|source| {
                    let mut of_source = profiles.iter().filter(|p| p.source == source).peekable();
                    of_source.peek()?;
                    let states: Vec<_> = of_source.map(|p| p.state).collect();
                    if states.contains(&rolecall_core::State::NeedsMfa) {
                        Some(true)
                    } else if states.iter().all(|s| {
                        matches!(
                            s,
                            rolecall_core::State::Fresh | rolecall_core::State::Expiring
                        )
                    }) {
                        Some(false)
                    } else {
                        None
                    }
                });
                shown = profiles;
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot read the profiles' status"),
        }
        for event in pending.drain(..) {
            on_event(&app, event, &shown);
        }
        let view_changed = async {
            match live.as_mut() {
                Some(view) => view.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let first = tokio::select! {
            () = state.stop.cancelled() => return,
            () = tokio::time::sleep(REDRAW_EVERY) => continue,
            open = view_changed => {
                if !open {
                    // the engine is gone (quitting): events and the minute go on
                    live = None;
                }
                continue;
            }
            c = changes.recv() => match c {
                Some(c) => c,
                None => return,
            },
        };
        pending.extend(first);
        while let Ok(more) = changes.try_recv() {
            pending.extend(more);
        }
    }
}

/// Notifies what needs the user (once per profile and expiry), with a "Renew" that opens the
/// MFA popup; opens the popup when the engine asks for a code.
fn on_event(app: &AppHandle, event: Event, profiles: &[rolecall_core::ProfileStatus]) {
    let state = app.state::<AppState>();
    match state.notifier.take(&event, profiles) {
        Some(note) => {
            let (app, stop) = (app.clone(), state.stop.clone());
            tauri::async_runtime::spawn(state.tasks.track_future(async move {
                notify::show(note, stop, move |source| open_mfa_for(&app, source)).await;
            }));
        }
        None if notify::needs_user(&event) => {
            tracing::info!(%event, "already notified (same profile and expiry, or waits for a code)");
        }
        None => {}
    }
    if let Event::MfaRequired { source, mfa_serial } = event {
        let prompt = MfaPrompt {
            source,
            mfa_serial: Some(mfa_serial),
        };
        if let Err(e) = state.windows.open_mfa(app, prompt, true) {
            tracing::warn!(error = %e, "cannot open the MFA window");
        }
    }
}

/// Opens (or focuses) the MFA popup of `source` (a notification's "Renew").
fn open_mfa_for(app: &AppHandle, source: String) {
    let state = app.state::<AppState>();
    let prompt = MfaPrompt {
        mfa_serial: state.backend.mfa_serial(&source),
        source,
    };
    if let Err(e) = state.windows.open_mfa(app, prompt, false) {
        tracing::warn!(error = %e, "cannot open the MFA window");
    }
}

/// Runs a tray click's action as a task the app owns.
fn on_action(app: &AppHandle, action: Action) {
    let state = app.state::<AppState>();
    let app = app.clone();
    let task = state.tasks.track_future(async move {
        if let Err(e) = act(&app, action).await {
            tracing::warn!(error = %format!("{e:#}"), "tray action failed");
        }
        let _ = app.state::<AppState>().redraw.send(None).await;
    });
    tauri::async_runtime::spawn(task);
}

async fn act(app: &AppHandle, action: Action) -> anyhow::Result<()> {
    let state = app.state::<AppState>();
    let backend = &state.backend;
    match action {
        Action::Use(profile) => backend.use_profile(&profile).await?,
        Action::RefreshAll => {
            backend.refresh_all().await?;
        }
        Action::EnterMfaCode => {
            if let Some(prompt) = backend.mfa_target().await? {
                state.windows.open_mfa(app, prompt, false)?;
            }
        }
        Action::OpenConfig => open_in_editor(backend.config_file()).await?,
        Action::Settings => state.windows.open_settings(app)?,
        Action::StartAtLogin => set_start_at_login(app, !starts_at_login(app))?,
        Action::EndAllSessions => backend.clear_all().await?,
        Action::Quit => {
            backend.end_sessions_if_asked().await;
            state.stop.cancel();
            backend.stop().await;
            app.exit(0);
        }
    }
    Ok(())
}

/// The XDG autostart directory (`$XDG_CONFIG_HOME/autostart`), as the toolkit resolves it.
fn autostart_dir(app: &AppHandle) -> anyhow::Result<std::path::PathBuf> {
    Ok(app.path().config_dir()?.join("autostart"))
}

/// Whether the login entry exists.
fn starts_at_login(app: &AppHandle) -> bool {
    autostart_dir(app).is_ok_and(|d| host::login::is_enabled(&d))
}

/// Writes (`on`) or removes the login entry.
fn set_start_at_login(app: &AppHandle, on: bool) -> anyhow::Result<()> {
    let dir = autostart_dir(app)?;
    let exe = std::env::current_exe()?;
    host::login::set(&dir, &exe, on)
        .with_context(|| format!("cannot change the login entry in {}", dir.display()))
}

/// Opens `path` with the desktop's handler for it.
async fn open_in_editor(path: std::path::PathBuf) -> anyhow::Result<()> {
    #[cfg(target_os = "macos")]
    const OPENER: &str = "open";
    #[cfg(not(target_os = "macos"))]
    const OPENER: &str = "xdg-open";
    let status = tokio::process::Command::new(OPENER)
        .arg(&path)
        .status()
        .await
        .map_err(|e| anyhow::anyhow!("cannot run {OPENER} to open {}: {e}", path.display()))?;
    anyhow::ensure!(
        status.success(),
        "{OPENER} could not open {}",
        path.display()
    );
    Ok(())
}

fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let wanted = EnvFilter::try_from_env("ROLECALL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // these crates log signed requests and STS bodies (keys, tokens) below these levels
    let caps = rolecall_core::host::LOG_CAPS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, (target, level)| t.with_target(*target, *level),
    );
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(wanted)
                .with_filter(caps),
        )
        .init();
}

/// GDK probes OpenGL when it opens the display; under Mesa that maps the GL driver and LLVM into
/// the process: 32 MB of the idle tray app's 94 MB PSS (`make bench`), for windows that are small
/// HTML forms WebKit draws without GDK's GL. So, unless the user set `GDK_GL` themselves, GDK's
/// GL is off (`GDK_GL=disable`, a GDK 3 setting).
#[cfg(target_os = "linux")]
#[allow(
    clippy::disallowed_methods,
    reason = "a setting for GTK, not for rolecall: read before GTK starts"
)]
fn without_gdk_gl() {
    if std::env::var_os("GDK_GL").is_none() {
        // SAFETY: the first thing main does: no other thread exists yet that could read or
        // write the environment at the same time.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("GDK_GL", "disable");
        }
    }
}
