//! The app's own settings (how many at once, bandwidth, where drops go) read and applied to
//! the running engine.

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager, State};
use tusker_core::AppSettings;

use super::{text, CmdError, CmdResult};
use crate::state::AppState;

/// Settings as the UI sees them.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
#[ts(rename = "Settings")]
pub struct SettingsView {
    /// The profile drops, the file dialogs and command lines upload with.
    pub drop_profile: Option<String>,
    /// Connections at once.
    pub parallel: usize,
    /// Connections per file (parts of a large file).
    pub parts: usize,
    /// Files from this many MiB on are split into parts.
    pub parts_min_mib: u64,
    pub bandwidth: u64,
    pub auto_resume: bool,
    pub remove_completed_after_days: Option<u32>,
    /// Closing the window while uploads are active keeps them going in the tray.
    pub keep_in_tray: bool,
    /// Start at login, in the tray.
    pub start_at_login: bool,
}

fn view(s: &AppSettings) -> SettingsView {
    SettingsView {
        drop_profile: s.drop_profile.clone(),
        parallel: s.parallel,
        parts: s.parts,
        parts_min_mib: s.parts_min_mib,
        bandwidth: s.bandwidth,
        auto_resume: s.auto_resume,
        remove_completed_after_days: s.remove_completed_after_days,
        keep_in_tray: s.keep_in_tray,
        start_at_login: s.start_at_login,
    }
}

#[tauri::command]
pub async fn get_settings(state: State<'_, AppState>) -> CmdResult<SettingsView> {
    AppSettings::load(state.engine.store())
        .map(|s| view(&s))
        .map_err(text)
}

#[tauri::command]
pub async fn save_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: SettingsView,
) -> CmdResult<SettingsView> {
    let store = state.engine.store();
    if let Some(name) = &settings.drop_profile {
        if store.profile_by_name(name).map_err(text)?.is_none() {
            return Err(CmdError::invalid(format!(
                "there is no profile named {name:?}"
            )));
        }
    }
    let before = AppSettings::load(store).map_err(text)?;
    let new = AppSettings {
        drop_profile: settings.drop_profile,
        parallel: settings.parallel.clamp(1, 64),
        parts: settings.parts.clamp(1, 16),
        parts_min_mib: settings.parts_min_mib.max(2),
        bandwidth: settings.bandwidth,
        auto_resume: settings.auto_resume,
        remove_completed_after_days: settings.remove_completed_after_days.filter(|d| *d > 0),
        keep_in_tray: settings.keep_in_tray,
        tray_explained: before.tray_explained,
        start_at_login: settings.start_at_login,
    };
    if new.start_at_login != before.start_at_login {
        let config = app
            .path()
            .config_dir()
            .map_err(|e| CmdError::invalid(format!("no config folder for the login item: {e}")))?;
        crate::autostart::apply(&config, new.start_at_login).map_err(|e| {
            CmdError::invalid(format!(
                "could not change {}: {e}",
                crate::autostart::entry_path(&config).display()
            ))
        })?;
    }
    new.save(store).map_err(text)?;
    state.engine.set_concurrency(new.parallel).map_err(text)?;
    state
        .engine
        .set_parts(new.parts, new.parts_min_mib << 20)
        .map_err(text)?;
    state.engine.set_bandwidth(new.bandwidth).map_err(text)?;
    tracing::info!(parallel = new.parallel, parts = new.parts, bandwidth = new.bandwidth, drop_profile = ?new.drop_profile, "settings saved");
    Ok(view(&new))
}
