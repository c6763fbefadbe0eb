//! What the shell keeps: the engine handle and the log guard. Opening it decides the data
//! directory (the platform one, or `TUSKER_DATA_DIR`, shared with the CLI).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tauri::{AppHandle, Emitter, Manager};
use tusker_core::{AddRequest, AppSettings, Engine, EngineConfig};

use crate::commands::{CmdError, CmdResult};

/// Managed state of the app.
pub struct AppState {
    pub engine: Engine,
    /// Paths from the command line that wait for an endpoint to be set.
    pub pending: std::sync::Mutex<Vec<PathBuf>>,
    /// Where the window hears the queue's batches (`watch_queue`; a reload replaces it).
    pub queue_feed: std::sync::Mutex<Option<tauri::ipc::Channel>>,
    pub watching: crate::watching::Watching,
    /// Folders the person picked in the system's dialog this session: the only new ones
    /// Settings may add to the watched folders (the window never names paths itself).
    /// With where each really was (no link on the way) when picked.
    pub picked_folders: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Files found already uploaded by recent additions, by the notice that named them, with
    /// the request that found them: "Upload again" sends them with `again` (the window only
    /// names the notice, never a path).
    pub again: std::sync::Mutex<std::collections::VecDeque<(u64, AddRequest)>>,
    /// Flushes the log file's buffered lines when dropped. The process exits without
    /// dropping managed state, so quitting takes it out and drops it (see `flush_log`).
    log: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>>,
}

impl AppState {
    /// Writes out the log lines still buffered; logging goes quiet afterwards.
    pub fn flush_log(&self) {
        let guard = self.log.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(guard);
    }
}

/// The data directory: `TUSKER_DATA_DIR` if set, else the platform app-data directory.
pub fn data_dir(app: &AppHandle) -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("TUSKER_DATA_DIR") {
        return Ok(PathBuf::from(d));
    }
    app.path()
        .app_data_dir()
        .context("no application data directory on this system")
}

/// Opens logging and the engine; restores the queue (auto-resuming per settings).
pub fn open(app: &AppHandle) -> Result<AppState> {
    let dir = data_dir(app)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = crate::logging::init(&dir);
    let settings = {
        let store = tusker_core::journal::Store::open(&dir.join("journal.sqlite"))
            .with_context(|| format!("opening the journal in {}", dir.display()))?;
        let secrets = tusker_core::profiles::secrets::Secrets::open(&dir);
        AppSettings::migrate_legacy(&store, &secrets)?;
        // First run with TUSKER_ENDPOINT set (scripts/app.sh): start with that server.
        if store.profiles()?.is_empty() {
            if let Ok(e) = std::env::var("TUSKER_ENDPOINT") {
                tusker_core::tus::client::parse_endpoint(&e)?;
                let profile = tusker_core::profiles::profile::Profile {
                    name: tusker_core::journal::settings::APP_PROFILE.into(),
                    endpoint: e,
                    ..Default::default()
                };
                AppSettings::use_profile(&store, &secrets, &profile)?;
            }
        }
        AppSettings::load(&store)?
    };
    let mut config = EngineConfig::new(&dir);
    config.concurrency = settings.parallel.max(1);
    config.upload.parts = settings.parts.max(1);
    config.upload.parts_min_size = settings.parts_min_mib.max(2) << 20;
    config.bandwidth = settings.effective_bandwidth();
    config.auto_resume = settings.auto_resume;
    // A desktop app waits out an offline day (laptop on a train, Wi-Fi gone) and carries on
    // when the network is back; server errors still fail after the attempt budget.
    config.upload.retry.network_patience = Some(std::time::Duration::from_secs(24 * 3600));
    let engine = open_engine(config)?;
    tracing::info!(data_dir = %dir.display(), auto_resume = settings.auto_resume, "engine opened");
    {
        // A drop the app was still taking in when it died: the rest of its files come in now
        // (or, after it stopped the app each time, it is named in the window instead).
        let e = engine.clone();
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            match e.resume_intake().await {
                Ok(results) if !results.is_empty() => {
                    let _ = app.emit(crate::events::ADDED_EVENT, Added::of(&results));
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "taking in an interrupted drop failed"),
            }
        });
    }
    if let Some(days) = settings.remove_completed_after_days {
        let e = engine.clone();
        tauri::async_runtime::spawn(async move {
            let cutoff = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
                - i64::from(days) * 86_400;
            match e.prune_completed(cutoff).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "removed old completed uploads"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "pruning completed uploads failed"),
            }
        });
    }
    Ok(AppState {
        engine,
        pending: Default::default(),
        queue_feed: Default::default(),
        watching: Default::default(),
        picked_folders: Default::default(),
        again: Default::default(),
        log: std::sync::Mutex::new(Some(log)),
    })
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
        let _ = app.emit(crate::events::PENDING_EVENT, ());
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
        let _ = app.emit(crate::events::ADDED_EVENT, added);
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
        let _ = app.emit(crate::events::ADDED_EVENT, added);
    });
    Ok(())
}

/// The engine runs on a thread of its own with a single-threaded runtime, as in the CLI:
/// uploads and the journal then cost the app what they cost the CLI (on Tauri's
/// multi-threaded runtime a 1 GiB upload reached 88% of the CLI's speed, here 98%), and the
/// window's work never competes with them for that thread. The thread lives as long as the
/// app; quitting shuts the engine down through its handle first.
fn open_engine(config: EngineConfig) -> Result<Engine> {
    let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            yield_to_the_window();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_start(yield_to_the_window)
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = opened_tx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let opened = Engine::open(config).await.map_err(anyhow::Error::from);
                let ok = opened.is_ok();
                let _ = opened_tx.send(opened);
                if ok {
                    std::future::pending::<()>().await;
                }
            });
        })?;
    opened_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the engine's thread ended before opening it"))?
}

/// Marks the calling thread as batch work for the kernel (`SCHED_BATCH`): the same share of
/// the CPU, but its many wake-ups (sockets, file reads) no longer interrupt the window's
/// thread mid-task, which on a busy 2-core machine stretched a 30 ms task past 100 ms.
pub fn yield_to_the_window() {
    tusker_core::platform::batch_thread();
}

/// WebKit makes its IPC receive threads real-time (`SCHED_RR`: directly when it may, else
/// through rtkit or the portal). In this process, the window's, that starved the GTK main
/// thread: as 100,000 files arrived, one such thread spun on a core for 200 ms waiting on
/// the main thread it kept off that core, and the window drew no frame for 120–210 ms. With
/// the normal policy the same thread used 2–9 ms per half second instead of 120. Called when
/// the page opens its feed and with each batch, so that threads of a later connection are
/// caught too (a scan of /proc/self/task: some 30 system calls).
pub fn keep_webkit_threads_fair() {
    tusker_core::platform::no_realtime_threads();
}

/// Whether closing the window hides it into the tray instead of quitting: uploads go on and
/// the setting says so. The first time, a notification says where Tusker went.
pub fn close_into_tray(app: &AppHandle) -> bool {
    use tauri_plugin_notification::NotificationExt;
    if !crate::events::ACTIVE.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    let Some(state) = app.try_state::<AppState>() else {
        return false;
    };
    let store = state.engine.store();
    let mut settings = match AppSettings::load(store) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "settings unreadable; closing quits");
            return false;
        }
    };
    if !settings.keep_in_tray {
        return false;
    }
    if !settings.tray_explained {
        let _ = app
            .notification()
            .builder()
            .title("Tusker keeps uploading")
            .body(
                "Your uploads go on in the background. Open Tusker from its tray icon or start \
                 it again; quit from the tray's menu. (Settings: \"Keep uploading in the tray\".)",
            )
            .show();
        settings.tray_explained = true;
        if let Err(e) = settings.save(store) {
            tracing::warn!(error = %e, "could not note that the tray was explained");
        }
    }
    tracing::info!("window closed into the tray; the uploads go on");
    true
}
