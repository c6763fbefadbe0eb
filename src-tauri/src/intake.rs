//! Taking files in from the system: drops, the command line, a second launch, and "Upload
//! again". Each addition goes to the destination the person confirmed, and the window hears
//! what it came to (`ADDED_EVENT`).

use std::path::{Path, PathBuf};
use tauri::{AppHandle, Emitter, Manager};
use tusker_core::{AddRequest, AppSettings, Engine};

use crate::errors::{CmdError, CmdResult};
use crate::state::AppState;

/// A drop the app was still taking in when it died: the rest of its files come in now (or,
/// after it stopped the app each time, it is named in the window instead).
pub fn resume_interrupted(app: &AppHandle, engine: &Engine) {
    let e = engine.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        match e.resume_intake().await {
            Ok(results) if !results.is_empty() => {
                let _ = app.emit(crate::window::ADDED_EVENT, Added::of(&results));
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "taking in an interrupted drop failed"),
        }
    });
}

/// The request for adding paths to the profile drops go to (into `upload_url` when given).
pub fn add_request(
    engine: &Engine,
    paths: Vec<PathBuf>,
    upload_url: Option<String>,
) -> CmdResult<AddRequest> {
    let store = engine.store();
    let mut settings = AppSettings::load(store)?;
    let Some(name) = settings.drop_profile.clone() else {
        return Err(no_profile());
    };
    let Some((key, profile)) = AppSettings::destination_of(store, &name)? else {
        return Err(no_profile());
    };
    // Drops go only where the person confirmed (the window may have switched the profile,
    // or made one anew under the old name); the first use is the person's own.
    use tusker_core::journal::settings::{Admitted, DROPS};
    match settings.admit(DROPS, &key) {
        Admitted::FirstUse => settings.save(store)?,
        Admitted::Confirmed => {}
        Admitted::Elsewhere => return Err(unconfirmed("Drops", &profile)),
    }
    Ok(AddRequest {
        paths,
        upload_url,
        ..AddRequest::to_profile(&profile)
    })
}

/// Files that would go somewhere the person has not confirmed (`what`: drops, a folder's).
pub fn unconfirmed(what: &str, profile: &tusker_core::profiles::profile::Profile) -> CmdError {
    CmdError {
        code: "not_confirmed",
        message: format!(
            "{what} would now go to {} (profile “{}”), which you have not confirmed: open Settings and save to confirm it",
            tusker_core::origin::host_of(&profile.endpoint),
            profile.name
        ),
    }
}

/// The host drops go to now, for a system dialog's title.
pub fn drop_host(store: &tusker_core::journal::Store) -> String {
    AppSettings::load(store)
        .and_then(|s| s.drop_target(store))
        .ok()
        .flatten()
        .map(|p| tusker_core::origin::host_of(&p.endpoint))
        .unwrap_or_else(|| "no server yet".into())
}

fn no_profile() -> CmdError {
    CmdError {
        code: "no_endpoint",
        message: "Tusker does not know where to upload yet: open Settings and add your server's upload URL".into(),
    }
}

/// Adds the files named on a command line (this launch or a second one).
pub fn add_args(app: &AppHandle, argv: &[String], cwd: &Path) {
    let paths: Vec<PathBuf> = argv
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| cwd.join(a))
        // A path that does not exist is added too: the engine names it in the notice
        // (skipped, and why) instead of it vanishing without a word.
        .collect();
    add_from_system(app, paths);
}

/// What adding files from the system came to, for the window's notice: how many went each
/// way, and the files skipped with why. Counts, not one result per file: a dropped folder of
/// 100,000 files sent as many results, and the window froze for seconds reading them.
#[derive(Clone, Default, serde::Serialize, ts_rs::TS)]
pub struct Added {
    pub added: u32,
    pub resumed: u32,
    pub restarted: u32,
    pub already_uploaded: u32,
    /// The first [`REJECTED_SHOWN`] skipped files; `rejected_count` counts them all.
    pub rejected: Vec<RejectedFile>,
    pub rejected_count: u32,
    /// Set when files were already uploaded: the notice offers "Upload again" with it.
    pub again: Option<u64>,
    pub error: Option<CmdError>,
    /// The watched folder these files came from (None: a drop, a dialog, a command line).
    pub folder: Option<String>,
}

/// A file that was not added, and why.
#[derive(Clone, serde::Serialize, ts_rs::TS)]
pub struct RejectedFile {
    pub path: String,
    pub error: String,
}

/// Skipped files named in the window's notice (the log names them all).
pub const REJECTED_SHOWN: usize = 20;

impl Added {
    pub fn of(results: &[tusker_core::AddResult]) -> Added {
        use tusker_core::AddResult as R;
        let mut out = Added::default();
        for r in results {
            match r {
                R::Added { .. } => out.added += 1,
                R::Resumed { .. } => out.resumed += 1,
                R::Restarted { .. } => out.restarted += 1,
                R::AlreadyUploaded { .. } => out.already_uploaded += 1,
                // The engine logged each one.
                R::Rejected { path, error } => {
                    out.rejected_count += 1;
                    if out.rejected.len() < REJECTED_SHOWN {
                        out.rejected.push(RejectedFile {
                            path: path.clone(),
                            error: error.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// Adds paths that came from the system: the native drag and drop, a file dialog the shell
/// opened, a command line. The window never hands over paths (it could name any file); it
/// hears what happened (`ADDED_EVENT`). Before an endpoint is set the paths wait, and the
/// window asks for one (`PENDING_EVENT`, then `add_pending`).
pub fn add_from_system(app: &AppHandle, paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    let engine = state.engine.clone();
    let has_target = AppSettings::load(engine.store())
        .and_then(|s| s.drop_target(engine.store()))
        .is_ok_and(|p| p.is_some());
    if !has_target {
        state
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(paths);
        let _ = app.emit(crate::window::PENDING_EVENT, ());
        return;
    }
    add_in_background(app, paths, None);
}

/// Adds paths (one file into `upload_url` when given) to the drop profile; the window hears
/// the outcome as `ADDED_EVENT`.
pub fn add_in_background(app: &AppHandle, paths: Vec<PathBuf>, upload_url: Option<String>) {
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    let engine = state.engine.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let result = match add_request(&engine, paths, upload_url) {
            Ok(req) => engine
                .add(req.clone())
                .await
                .map(|r| (req, r))
                .map_err(CmdError::from),
            Err(e) => Err(e),
        };
        let added = match result {
            Ok((req, results)) => {
                let mut added = Added::of(&results);
                added.again = remember_again(&app, req, &results);
                added
            }
            Err(e) => {
                tracing::warn!(code = e.code, error = %e.message, "files were not added");
                Added {
                    error: Some(e),
                    ..Added::default()
                }
            }
        };
        let _ = app.emit(crate::window::ADDED_EVENT, added);
    });
}

/// Notices whose "Upload again" still works.
const AGAIN_KEPT: usize = 16;

/// Keeps the files `results` found already uploaded, for the notice's "Upload again".
fn remember_again(
    app: &AppHandle,
    req: AddRequest,
    results: &[tusker_core::AddResult],
) -> Option<u64> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let paths: Vec<PathBuf> = results
        .iter()
        .filter_map(|r| match r {
            tusker_core::AddResult::AlreadyUploaded { path, .. } => Some(PathBuf::from(path)),
            _ => None,
        })
        .collect();
    if paths.is_empty() {
        return None;
    }
    let state = app.try_state::<AppState>()?;
    let token = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut kept = state.again.lock().unwrap_or_else(|p| p.into_inner());
    kept.push_back((
        token,
        AddRequest {
            paths,
            again: true,
            ..req
        },
    ));
    while kept.len() > AGAIN_KEPT {
        kept.pop_front();
    }
    Some(token)
}

/// "Upload again" on a notice: its already uploaded files are sent anyway, to where they were
/// added; the window hears the outcome as `ADDED_EVENT`.
pub fn upload_again(app: &AppHandle, token: u64) -> CmdResult<()> {
    let state = app
        .try_state::<AppState>()
        .ok_or_else(|| CmdError::invalid("not ready"))?;
    let req = {
        let mut kept = state.again.lock().unwrap_or_else(|p| p.into_inner());
        let at = kept
            .iter()
            .position(|(t, _)| *t == token)
            .ok_or_else(|| CmdError::invalid("that notice is too old: add the files again"))?;
        kept.remove(at).map(|(_, r)| r)
    };
    let Some(req) = req else {
        return Ok(());
    };
    let engine = state.engine.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let added = match engine.add(req).await {
            Ok(results) => Added::of(&results),
            Err(e) => Added {
                error: Some(e.into()),
                ..Added::default()
            },
        };
        let _ = app.emit(crate::window::ADDED_EVENT, added);
    });
    Ok(())
}
