//! The app's watched folders: started from the settings at launch and again after each
//! change to them. What they take reaches the window like a drop (`ADDED_EVENT`), named by
//! folder; a folder that cannot be watched is said there too.

use std::path::PathBuf;
use tauri::{AppHandle, Emitter, Manager};
use tusker_core::watch::folder::{FolderWatch, IgnoreRules, WatchEvent, WatchSpec};
use tusker_core::{AddRequest, AppSettings};

use crate::errors::CmdError;
use crate::intake::Added;
use crate::state::AppState;

/// The running watches (replaced as a whole when the settings change).
#[derive(Default)]
pub struct Watching(tokio::sync::Mutex<Vec<FolderWatch>>);

impl Watching {
    /// Stops every watch (quit).
    pub async fn stop(&self) {
        for w in self.0.lock().await.drain(..) {
            w.stop().await;
        }
    }
}

/// (Re)starts the watches the settings list.
pub async fn apply(app: &AppHandle) {
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    let engine = state.engine.clone();
    let Some(watching) = app.try_state::<Watching>() else {
        return;
    };
    let mut running = watching.0.lock().await;
    for w in running.drain(..) {
        w.stop().await;
    }
    let mut settings = match AppSettings::load(engine.store()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "settings unreadable; no watched folders");
            return;
        }
    };
    let confirmed_before = settings.confirmed.clone();
    if settings.watched_folders.is_empty() {
        return;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for folder in settings.watched_folders.clone() {
        let folder = &folder;
        let dir = PathBuf::from(&folder.path);
        let started = spec(&engine, &mut settings, folder).and_then(|spec| {
            FolderWatch::start(engine.clone(), spec, tx.clone()).map_err(CmdError::from)
        });
        match started {
            Ok(w) => {
                tracing::info!(folder = %dir.display(), "watching folder");
                running.push(w);
            }
            Err(e) => {
                tracing::warn!(folder = %dir.display(), error = %e.message, "cannot watch folder");
                emit(app, &dir, Err(e.message));
            }
        }
    }
    if settings.confirmed != confirmed_before {
        if let Err(e) = settings.save(engine.store()) {
            tracing::warn!(error = %e, "could not record where the watched folders upload");
        }
    }
    drop(tx);
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        while let Some(ev) = rx.recv().await {
            match ev {
                WatchEvent::Added { dir, results } => emit(&app, &dir, Ok(results)),
                WatchEvent::Problem { dir, message } => {
                    tracing::warn!(folder = %dir.display(), %message, "watched folder");
                    emit(&app, &dir, Err(message));
                }
            }
        }
    });
}

/// Where a watched folder's files go, from its profile (or the drops' one): only where the
/// person confirmed, and only from the folder they picked, not from one since replaced by
/// a link to elsewhere. A folder from before such records takes today's on first use.
fn spec(
    engine: &tusker_core::Engine,
    settings: &mut AppSettings,
    folder: &tusker_core::journal::settings::WatchedFolder,
) -> Result<WatchSpec, CmdError> {
    let name = settings
        .folder_profile(folder)
        .map(str::to_string)
        .ok_or_else(|| CmdError::invalid("no profile to upload with: choose one in Settings"))?;
    let (key, profile) = AppSettings::destination_of(engine.store(), &name)?.ok_or_else(|| {
        CmdError::invalid(format!("its profile {name:?} does not exist any more"))
    })?;
    if let Some(real) = &folder.real {
        let now = std::fs::canonicalize(&folder.path).map(|p| p.display().to_string());
        if now.as_deref().ok() != Some(real.as_str()) {
            return Err(CmdError::invalid(
                "the folder is not the one picked any more (it was replaced, perhaps by a link to elsewhere): not watched; remove it and pick it again",
            ));
        }
    }
    if settings.admit(&folder.path, &key) == tusker_core::journal::settings::Admitted::Elsewhere {
        return Err(crate::intake::unconfirmed("Its files", &profile));
    }
    Ok(WatchSpec {
        dir: PathBuf::from(&folder.path),
        request: AddRequest::to_profile(&profile),
        ignore: IgnoreRules::new(&folder.ignore).map_err(CmdError::invalid)?,
        settle: std::time::Duration::from_secs(settings.watch_settle_secs.max(1).into()),
    })
}

fn emit(app: &AppHandle, dir: &std::path::Path, what: Result<Vec<tusker_core::AddResult>, String>) {
    let mut added = match what {
        Ok(results) => Added::of(&results),
        Err(message) => Added {
            error: Some(CmdError {
                code: "watched_folder",
                message,
            }),
            ..Added::default()
        },
    };
    added.folder = Some(dir.display().to_string());
    let _ = app.emit(crate::window::ADDED_EVENT, added);
}
