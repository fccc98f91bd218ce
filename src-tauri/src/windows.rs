//! The app's windows, created on demand and destroyed when closed (no hidden webview is kept:
//! a WebKit web process costs ~150 MB). The MFA popup: one window per source, labelled
//! `mfa-N`; the label → source map lives here, so a page never names the source it submits
//! for. The Settings window: at most one, labelled [`SETTINGS`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

/// The Settings window's label (its capability names it).
pub const SETTINGS: &str = "settings";

/// What an MFA popup asks for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MfaPrompt {
    /// The source whose session needs a code.
    pub source: String,
    /// Its MFA device, when known.
    pub mfa_serial: Option<String>,
}

/// An open MFA popup.
struct MfaWindow {
    prompt: MfaPrompt,
    /// A profile of its source was seen waiting for a code while it was open.
    awaited: bool,
}

/// The open MFA popups.
#[derive(Default)]
pub struct Windows {
    mfa: Mutex<BTreeMap<String, MfaWindow>>,
    next: std::sync::atomic::AtomicU64,
    /// Held while the Settings window is looked for and made, so two clicks make one.
    settings: Mutex<()>,
}

impl Windows {
    fn mfa(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MfaWindow>> {
        match self.mfa.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The prompt of the popup labelled `label`.
    pub fn mfa_prompt(&self, label: &str) -> Option<MfaPrompt> {
        self.mfa().get(label).map(|w| w.prompt.clone())
    }

    /// Closes the popups whose code was given some other way (`rolecall refresh --mfa-code`,
    /// another popup, the agent): their source was waiting for a code while they were open and
    /// now has every profile renewed. `source_state` says, per source, `Some(true)` while it
    /// waits for a code, `Some(false)` once all its profiles are fresh, `None` otherwise (a
    /// pass in flight, a failure: nothing to conclude). A popup opened from the tray while
    /// nothing waited stays: the user asked for it.
    pub fn close_answered(&self, app: &AppHandle, source_state: &dyn Fn(&str) -> Option<bool>) {
        let answered: Vec<String> = self
            .mfa()
            .iter_mut()
            .filter_map(|(label, w)| match source_state(&w.prompt.source) {
                Some(true) => {
                    w.awaited = true;
                    None
                }
                Some(false) => w.awaited.then(|| label.clone()),
                None => None,
            })
            .collect();
        for label in answered {
            if let Some(window) = app.get_webview_window(&label) {
                tracing::info!(window = %label, "the code was given elsewhere; closing the MFA popup");
                if let Err(e) = window.close() {
                    tracing::warn!(error = %e, "cannot close the MFA popup");
                }
            }
        }
    }

    /// Opens (or focuses) the MFA popup of `prompt.source`; `awaited`: the engine asked for
    /// this code (so the popup closes by itself when the code is given elsewhere).
    pub fn open_mfa(&self, app: &AppHandle, prompt: MfaPrompt, awaited: bool) -> tauri::Result<()> {
        let existing = self
            .mfa()
            .iter_mut()
            .find(|(_, w)| w.prompt.source == prompt.source)
            .map(|(l, w)| {
                w.awaited |= awaited;
                l.clone()
            });
        if let Some(window) = existing.and_then(|l| app.get_webview_window(&l)) {
            return window.set_focus();
        }
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let label = format!("mfa-{n}");
        self.mfa()
            .insert(label.clone(), MfaWindow { prompt, awaited });
        let built = WebviewWindowBuilder::new(app, &label, WebviewUrl::App("mfa.html".into()))
            .title("Rolecall: MFA code")
            .inner_size(380.0, 260.0)
            .resizable(false)
            .build();
        if let Err(e) = built {
            self.mfa().remove(&label);
            return Err(e);
        }
        Ok(())
    }

    /// Opens the Settings window, or brings the open one to the front.
    pub fn open_settings(&self, app: &AppHandle) -> tauri::Result<()> {
        let _one = match self.settings.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(window) = app.get_webview_window(SETTINGS) {
            window.unminimize()?;
            window.show()?;
            window.set_focus()?;
            tracing::info!("focused the open settings window");
            return Ok(());
        }
        WebviewWindowBuilder::new(app, SETTINGS, WebviewUrl::App("settings.html".into()))
            .title("Rolecall Settings")
            .inner_size(540.0, 720.0)
            .min_inner_size(440.0, 420.0)
            .build()?;
        tracing::info!("opened the settings window");
        Ok(())
    }

    /// Forgets a destroyed window.
    pub fn destroyed(&self, label: &str) {
        self.mfa().remove(label);
    }
}
