//! The app's own settings (how many at once, bandwidth, where drops go) read and applied to
//! the running engine.

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager, State};
use tusker_core::settings::WatchedFolder;
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
    /// The alternative limit (the status bar's turtle), bytes per second, 0 = none.
    pub alt_bandwidth: u64,
    pub alt_speed: bool,
    pub auto_resume: bool,
    pub remove_completed_after_days: Option<u32>,
    /// Closing the window while uploads are active keeps them going in the tray.
    pub keep_in_tray: bool,
    /// Start at login, in the tray.
    pub start_at_login: bool,
    pub watched_folders: Vec<WatchedFolder>,
    /// Seconds a watched file must stay unchanged before it is taken.
    pub watch_settle_secs: u32,
}

fn view(s: &AppSettings) -> SettingsView {
    SettingsView {
        drop_profile: s.drop_profile.clone(),
        parallel: s.parallel,
        parts: s.parts,
        parts_min_mib: s.parts_min_mib,
        bandwidth: s.bandwidth,
        alt_bandwidth: s.alt_bandwidth,
        alt_speed: s.alt_speed,
        auto_resume: s.auto_resume,
        remove_completed_after_days: s.remove_completed_after_days,
        keep_in_tray: s.keep_in_tray,
        start_at_login: s.start_at_login,
        watched_folders: s.watched_folders.clone(),
        watch_settle_secs: s.watch_settle_secs,
    }
}

/// Opens the system's folder dialog; the folder picked may then be saved as a watched one
/// (with the default ignore patterns), and only such a folder: the window never names paths.
#[tauri::command]
pub async fn pick_watched_folder(
    app: AppHandle,
    state: State<'_, AppState>,
) -> CmdResult<Option<WatchedFolder>> {
    use tauri_plugin_dialog::DialogExt;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut dialog = app.dialog().file().set_title("Watch a folder");
    // Opens in the home folder, not in "Recent" (which holds files, not folders to choose).
    if let Ok(home) = app.path().home_dir() {
        dialog = dialog.set_directory(home);
    }
    dialog.pick_folder(move |picked| {
        let _ = tx.send(picked.and_then(|p| p.into_path().ok()));
    });
    let Some(path) = rx.await.ok().flatten() else {
        return Ok(None);
    };
    let path = path.display().to_string();
    state
        .picked_folders
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path.clone());
    Ok(Some(WatchedFolder {
        path,
        profile: None,
        ignore: tusker_core::watched::DEFAULT_IGNORE
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }))
}

/// The watched folders from the window, checked: each one already watched or picked in the
/// dialog, an existing profile, patterns that are names. Blank patterns are dropped.
fn checked_folders(
    state: &AppState,
    before: &AppSettings,
    folders: Vec<WatchedFolder>,
) -> CmdResult<Vec<WatchedFolder>> {
    let picked = state
        .picked_folders
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut out: Vec<WatchedFolder> = Vec::new();
    for mut f in folders {
        let known = before.watched_folders.iter().any(|b| b.path == f.path);
        if !known && !picked.contains(&f.path) {
            return Err(CmdError::invalid(format!(
                "{} was not chosen in the folder dialog",
                f.path
            )));
        }
        if out.iter().any(|o| o.path == f.path) {
            continue;
        }
        if let Some(name) = &f.profile {
            if state
                .engine
                .store()
                .profile_by_name(name)
                .map_err(text)?
                .is_none()
            {
                return Err(CmdError::invalid(format!(
                    "watched folder {}: there is no profile named {name:?}",
                    f.path
                )));
            }
        }
        let rules = tusker_core::watched::IgnoreRules::new(&f.ignore)
            .map_err(|e| CmdError::invalid(format!("watched folder {}: {e}", f.path)))?;
        f.ignore = rules.patterns().to_vec();
        out.push(f);
    }
    Ok(out)
}

/// A watched folder's path, and the server's origin and profile its files go to (if any).
type FolderDestination = (String, Option<(String, String)>);

/// Where each watched folder's files go under `s` (its profile, or the drops' one).
fn destinations(state: &AppState, s: &AppSettings) -> CmdResult<Vec<FolderDestination>> {
    let store = state.engine.store();
    let mut out = Vec::new();
    for f in &s.watched_folders {
        let name = f.profile.clone().or_else(|| s.drop_profile.clone());
        let dest = match name {
            Some(name) => store
                .profile_by_name(&name)
                .map_err(text)?
                .and_then(|p| tusker_core::gate::origin_of(&p.endpoint).map(|o| (o, p.name))),
            None => None,
        };
        out.push((f.path.clone(), dest));
    }
    Ok(out)
}

/// The dialog line for drops, the file dialogs and command lines going to another server
/// than before (`None`: the same one, or none before: the first profile is the person's).
fn drop_move(
    state: &AppState,
    before: &AppSettings,
    new: &AppSettings,
) -> CmdResult<Option<String>> {
    let store = state.engine.store();
    let origin_of = |name: &Option<String>| -> CmdResult<Option<(String, String)>> {
        Ok(match name {
            Some(n) => store
                .profile_by_name(n)
                .map_err(text)?
                .and_then(|p| tusker_core::gate::origin_of(&p.endpoint).map(|o| (o, p.name))),
            None => None,
        })
    };
    let (was, now) = (
        origin_of(&before.drop_profile)?,
        origin_of(&new.drop_profile)?,
    );
    Ok(match (was, now) {
        (Some((a, _)), Some((b, name))) if a != b => Some(format!(
            "• files you drop or add go to {} (profile “{}”)",
            tusker_core::gate::host_of(&b),
            crate::confirm::visible(&name)
        )),
        _ => None,
    })
}

/// The watched folders whose files would go to another server than before (or that are new),
/// as dialog lines: a window cannot send a folder's files elsewhere without the person.
fn watched_moves(
    state: &AppState,
    before: &AppSettings,
    new: &AppSettings,
) -> CmdResult<Vec<String>> {
    let was = destinations(state, before)?;
    let mut lines = Vec::new();
    for (path, dest) in destinations(state, new)? {
        let Some((origin, profile)) = dest else {
            continue;
        };
        let old = was
            .iter()
            .find(|(p, _)| *p == path)
            .and_then(|(_, d)| d.as_ref());
        if old.map(|(o, _)| o) != Some(&origin) {
            lines.push(format!(
                "• {} → {} (profile “{}”)",
                crate::confirm::visible(&path),
                tusker_core::gate::host_of(&origin),
                crate::confirm::visible(&profile)
            ));
        }
    }
    Ok(lines)
}

/// The status bar's turtle: the alternative speed limit on or off, at once.
#[tauri::command]
pub async fn set_alt_speed(state: State<'_, AppState>, on: bool) -> CmdResult<SettingsView> {
    let store = state.engine.store();
    let mut s = AppSettings::load(store).map_err(text)?;
    s.alt_speed = on;
    s.save(store).map_err(text)?;
    state
        .engine
        .set_bandwidth(s.effective_bandwidth())
        .map_err(text)?;
    tracing::info!(
        on,
        limit = s.effective_bandwidth(),
        "alternative speed limit"
    );
    Ok(view(&s))
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
    let watched_folders = checked_folders(&state, &before, settings.watched_folders)?;
    let new = AppSettings {
        watched_folders,
        watch_settle_secs: settings.watch_settle_secs.clamp(1, 3600),
        drop_profile: settings.drop_profile,
        parallel: settings.parallel.clamp(1, 64),
        parts: settings.parts.clamp(1, 16),
        parts_min_mib: settings.parts_min_mib.max(2),
        bandwidth: settings.bandwidth,
        alt_bandwidth: settings.alt_bandwidth,
        alt_speed: settings.alt_speed,
        auto_resume: settings.auto_resume,
        remove_completed_after_days: settings.remove_completed_after_days.filter(|d| *d > 0),
        keep_in_tray: settings.keep_in_tray,
        tray_explained: before.tray_explained,
        start_at_login: settings.start_at_login,
    };
    let mut moves = watched_moves(&state, &before, &new)?;
    if let Some(line) = drop_move(&state, &before, &new)? {
        moves.insert(0, line);
    }
    if !moves.is_empty() {
        crate::confirm::ask(
            &app,
            "Upload somewhere new?",
            format!(
                "From now on:\n\n{}\n\nConfirm only a change you made yourself.",
                moves.join("\n")
            ),
            "Save",
            "not saved: where a watched folder uploads to needs your confirmation in the dialog",
        )
        .await?;
    }
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
    state
        .engine
        .set_bandwidth(new.effective_bandwidth())
        .map_err(text)?;
    // Watches follow their folders' profiles (and the drops' one), so any save restarts them.
    crate::watching::apply(&app).await;
    tracing::info!(parallel = new.parallel, parts = new.parts, bandwidth = new.bandwidth, drop_profile = ?new.drop_profile, "settings saved");
    Ok(view(&new))
}
