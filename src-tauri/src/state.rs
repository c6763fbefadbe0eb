//! What the shell keeps: the engine handle and the log guard. Opening it decides the data
//! directory (the platform one, or `TUSKER_DATA_DIR`, shared with the CLI).

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use tauri::{AppHandle, Manager};
use tusker_core::{AddRequest, AppSettings, Engine, EngineConfig};

/// Managed state of the app.
pub struct AppState {
    pub engine: Engine,
    /// Paths from the command line that wait for an endpoint to be set.
    pub pending: std::sync::Mutex<Vec<PathBuf>>,
    /// Where the window hears the queue's batches (`watch_queue`; a reload replaces it).
    pub queue_feed: std::sync::Mutex<Option<tauri::ipc::Channel>>,
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
        picked_folders: Default::default(),
        again: Default::default(),
        log: std::sync::Mutex::new(Some(log)),
    })
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
            crate::window::yield_to_the_window();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_start(crate::window::yield_to_the_window)
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
