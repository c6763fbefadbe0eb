//! The app's own settings (how many at once, bandwidth, where drops go) read and applied to
//! the running engine.

use serde::{Deserialize, Serialize};
use tauri::Manager;
use tusker_core::journal::settings::WatchedFolder;
use tusker_core::AppSettings;

use crate::errors::{text, CmdError, CmdResult};
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
pub async fn pick_watched_folder(
    app: &tauri::AppHandle,
    state: &AppState,
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
    let real = std::fs::canonicalize(&path)
        .map_err(|e| CmdError::invalid(format!("{}: {e}", path.display())))?
        .display()
        .to_string();
    let path = path.display().to_string();
    state
        .picked_folders
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path.clone(), real);
    Ok(Some(WatchedFolder {
        path,
        profile: None,
        real: None,
        ignore: tusker_core::watch::folder::DEFAULT_IGNORE
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
        let known = before.watched_folders.iter().find(|b| b.path == f.path);
        // Where it really was when picked: the shell's own record, never the window's.
        f.real = match known {
            Some(b) => b.real.clone(),
            None => picked.get(&f.path).cloned(),
        };
        if known.is_none() && !picked.contains_key(&f.path) {
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
        let rules = tusker_core::watch::folder::IgnoreRules::new(&f.ignore)
            .map_err(|e| CmdError::invalid(format!("watched folder {}: {e}", f.path)))?;
        f.ignore = rules.patterns().to_vec();
        out.push(f);
    }
    Ok(out)
}

/// Where `new` would send files that the person has not confirmed, as dialog lines, with the
/// destinations it records in `new.confirmed` (kept only when saved). Compared with what was
/// confirmed, not with a fresh look at the old settings: a profile renamed and made anew
/// under its name, a drop target cleared and set again, or another account's profile on the
/// same server all differ from it. A folder or drop target that never had one (an older
/// build's settings) takes the present one without a dialog; a new watched folder asks.
fn unconfirmed(
    state: &AppState,
    before: &AppSettings,
    new: &mut AppSettings,
) -> CmdResult<Vec<String>> {
    use tusker_core::journal::settings::DROPS;
    let store = state.engine.store();
    let mut lines = Vec::new();
    let mut confirmed = std::collections::BTreeMap::new();
    let mut wants: Vec<(String, Option<String>, bool)> =
        vec![(DROPS.to_string(), new.drop_profile.clone(), false)];
    for f in &new.watched_folders {
        let is_new = !before.watched_folders.iter().any(|b| b.path == f.path);
        wants.push((
            f.path.clone(),
            new.folder_profile(f).map(str::to_string),
            is_new,
        ));
    }
    for (what, profile, is_new) in wants {
        let Some((key, p)) = (match &profile {
            Some(name) => AppSettings::destination_of(store, name).map_err(text)?,
            None => None,
        }) else {
            continue;
        };
        let was = before.confirmed.get(&what);
        if was != Some(&key) && (was.is_some() || is_new) {
            let host = tusker_core::origin::host_of(&p.endpoint);
            lines.push(if what == DROPS {
                format!(
                    "• files you drop or add go to {host} (profile “{}”)",
                    crate::confirm::visible(&p.name)
                )
            } else {
                format!(
                    "• new files in {} go to {host} (profile “{}”)",
                    crate::confirm::visible(&what),
                    crate::confirm::visible(&p.name)
                )
            });
        }
        confirmed.insert(what, key);
    }
    new.confirmed = confirmed;
    Ok(lines)
}

/// The status bar's turtle: the alternative speed limit on or off, at once.
pub async fn set_alt_speed(state: &AppState, on: bool) -> CmdResult<SettingsView> {
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

pub async fn get(state: &AppState) -> CmdResult<SettingsView> {
    AppSettings::load(state.engine.store())
        .map(|s| view(&s))
        .map_err(text)
}

pub async fn save(
    app: &tauri::AppHandle,
    state: &AppState,
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
    let watched_folders = checked_folders(state, &before, settings.watched_folders)?;
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
        confirmed: Default::default(),
    };
    let mut new = new;
    let moves = unconfirmed(state, &before, &mut new)?;
    if !moves.is_empty() {
        crate::confirm::ask(
            app,
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
    crate::folders::apply(app).await;
    tracing::info!(parallel = new.parallel, parts = new.parts, bandwidth = new.bandwidth, drop_profile = ?new.drop_profile, "settings saved");
    Ok(view(&new))
}
