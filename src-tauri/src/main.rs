//! The Tusker desktop app: a thin Tauri shell over `tusker-core`. It opens the engine on the
//! platform data directory, restores (and by default resumes) the queue, forwards the
//! engine's batched events to the window, and translates UI commands into engine calls.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod autostart;
mod bindings;
mod commands;
mod confirm;
mod editing;
mod errors;
mod events;
mod folders;
mod intake;
mod logging;
mod rows;
mod state;
mod tray;
mod window;

use std::path::PathBuf;
use tauri::{Manager, RunEvent};

/// The app's identifier (tauri.conf.json), which names its single-instance D-Bus service.
const IDENTIFIER: &str = "dev.tusker.app";

fn main() {
    // Files the app makes (journal, logs, window state) are this user's alone.
    tusker_core::platform::private_files();
    paint_without_gl();
    if hand_over_to_running_app() {
        return;
    }
    // The shell's tasks (each queue batch's JSON for the window, commands) are batch work
    // for the kernel too, as the engine's threads are.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(window::yield_to_the_window)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tusker: no async runtime: {e}");
            std::process::exit(1);
        }
    };
    tauri::async_runtime::set(runtime.handle().clone());
    let builder = tauri::Builder::default()
        // A second launch hands its file arguments to the running app (must come first).
        .plugin(tauri_plugin_single_instance::init(|app, argv, cwd| {
            intake::add_args(app, &argv, &PathBuf::from(cwd));
            // Also the way back from the tray where a desktop shows none (but a login's
            // start while Tusker runs shows nothing).
            if !argv.iter().any(|a| a == autostart::IN_TRAY) {
                tray::show_window(app);
            }
        }))
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        // The window starts hidden (tauri.conf.json) and setup shows it, unless started at
        // login into the tray: its visibility is not restored from last time.
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::all()
                        - tauri_plugin_window_state::StateFlags::VISIBLE,
                )
                .build(),
        )
        .on_window_event(on_window_event)
        .setup(|app| {
            setup(app);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::queue::list_uploads,
            commands::queue::pick_and_add,
            commands::queue::pause_upload,
            commands::queue::upload_again,
            commands::queue::resume_upload,
            commands::queue::watch_queue,
            commands::queue::pause_all,
            commands::queue::try_now,
            commands::queue::resume_all,
            commands::queue::cancel_upload,
            commands::queue::retry_upload,
            commands::queue::restart_upload,
            commands::queue::remove_upload,
            commands::queue::reorder_upload,
            commands::queue::reveal_upload,
            commands::queue::add_pending,
            commands::queue::continue_upload_url,
            commands::history::upload_details,
            commands::history::list_history,
            commands::history::clear_completed,
            commands::history::clear_upload,
            commands::history::copy_upload_url,
            commands::settings::set_alt_speed,
            commands::settings::get_settings,
            commands::settings::save_settings,
            commands::settings::pick_watched_folder,
            commands::endpoints::check_endpoint,
            commands::profiles::list_profiles,
            commands::profiles::save_profile,
            commands::profiles::remove_profile,
            commands::profiles::answer_host,
            commands::app::app_info,
            commands::app::tray_action,
            commands::app::tray_status,
        ]);
    let app = builder
        .build(tauri::generate_context!())
        .expect("building the Tusker window");
    app.run(|handle, event| {
        if let RunEvent::Exit = event {
            quit(handle);
        }
    });
}

/// The window's events: focus is kept for notifications, closing may hide the window into
/// the tray, and drops are taken here, from the system, not from the window.
fn on_window_event(window: &tauri::Window, event: &tauri::WindowEvent) {
    match event {
        tauri::WindowEvent::Focused(f) => {
            window::FOCUSED.store(*f, std::sync::atomic::Ordering::Relaxed);
        }
        // With uploads going on, closing hides the window into the tray (a setting).
        tauri::WindowEvent::CloseRequested { api, .. }
            if tray::close_into_tray(window.app_handle()) =>
        {
            api.prevent_close();
            let _ = window.hide();
        }
        // Drops are taken here, from the system, not from the window.
        tauri::WindowEvent::DragDrop(tauri::DragDropEvent::Drop { paths, .. }) => {
            intake::add_from_system(window.app_handle(), paths.clone());
        }
        _ => {}
    }
}

/// Opens the engine and everything around it once the app runs; a failure is said in a
/// native dialog, and the app exits.
fn setup(app: &mut tauri::App) {
    let handle = app.handle().clone();
    let in_tray = std::env::args().any(|a| a == autostart::IN_TRAY);
    if !in_tray {
        tray::show_window(&handle);
    }
    match state::open(&handle) {
        Ok(s) => {
            let engine = s.engine.clone();
            app.manage(s);
            app.manage(folders::Watching::default());
            intake::resume_interrupted(&handle, &engine);
            if let Err(e) = tray::install(&handle) {
                tracing::warn!(error = %e, "no tray icon");
                // Nowhere to start into: show the window after all.
                tray::show_window(&handle);
            }
            events::forward(&handle, engine);
            let argv: Vec<String> = std::env::args().collect();
            let cwd = std::env::current_dir().unwrap_or_default();
            intake::add_args(&handle, &argv, &cwd);
            let h = handle.clone();
            tauri::async_runtime::spawn(async move { folders::apply(&h).await });
            quit_on_signals(&handle);
        }
        Err(e) => {
            use tauri_plugin_dialog::{DialogExt, MessageDialogKind};
            tracing::error!(error = %e, "cannot open the engine");
            eprintln!("Tusker cannot start: {e:#}");
            app.dialog()
                .message(format!("Tusker cannot start:\n\n{e:#}"))
                .kind(MessageDialogKind::Error)
                .title("Tusker")
                .show(|_| std::process::exit(1));
        }
    }
}

/// Quit = pause cleanly: running uploads are journalled as queued.
fn quit(handle: &tauri::AppHandle) {
    if let Some(s) = handle.try_state::<state::AppState>() {
        let engine = s.engine.clone();
        // Bounded: a quit never hangs on a stuck engine (the journal is safe anyway).
        let done = tauri::async_runtime::block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                if let Some(w) = handle.try_state::<folders::Watching>() {
                    w.stop().await;
                }
                engine.shutdown().await
            })
            .await
        });
        match done {
            Ok(_) => tracing::info!("quit: uploads paused, journal closed"),
            Err(_) => tracing::warn!("quit: the engine did not stop within 5 s"),
        }
        s.flush_log();
    }
}

/// A second launch hands its command line to the running app, the way the single-instance
/// plugin does (same D-Bus service and method), but before GTK and WebKit start: exiting
/// once their threads run crashed the second process now and then (SIGSEGV at exit, after
/// the hand-over). Without a running app (or a session bus) it returns false and the app
/// starts; the plugin still covers two launches racing.
fn hand_over_to_running_app() -> bool {
    let Ok(connection) = zbus::blocking::Connection::session() else {
        return false;
    };
    let name = format!("{IDENTIFIER}.SingleInstance");
    let path = format!("/{}", name.replace('.', "/").replace('-', "_"));
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cwd = std::env::current_dir()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    connection
        .call_method(
            Some(name.as_str()),
            path.as_str(),
            Some("org.SingleInstance.DBus"),
            "ExecuteCallback",
            &(argv, cwd.as_str()),
        )
        .is_ok()
}

/// SIGTERM (logout, `kill`, a service manager) and SIGINT quit like the window's close: the
/// engine pauses the running uploads and the log is flushed, instead of the process simply
/// vanishing mid-write.
fn quit_on_signals(handle: &tauri::AppHandle) {
    let handle = handle.clone();
    tauri::async_runtime::spawn(async move {
        match tusker_core::platform::stop_requested().await {
            Ok(stop) => {
                let name = match stop {
                    tusker_core::platform::Stop::Terminate => "SIGTERM",
                    tusker_core::platform::Stop::Interrupt => "SIGINT",
                };
                tracing::info!(signal = name, "quitting");
                handle.exit(0);
            }
            Err(_) => {
                tracing::warn!("cannot listen for SIGTERM/SIGINT; they will end the app abruptly")
            }
        }
    });
}

/// The window is text and bars; WebKit's GL compositing gains it nothing, and where there is
/// no GPU (VMs, remote desktops, Xvfb) Mesa runs it on the CPU: each queue update cost the
/// web process about 40 ms, so a 1 GiB upload's window took 0.2-0.28 s of CPU (0.07-0.09 s
/// without). A person's own setting of the variable wins.
fn paint_without_gl() {
    const VAR: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
    if std::env::var_os(VAR).is_none() {
        // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
        unsafe { std::env::set_var(VAR, "1") };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_identifier_is_the_configs() {
        let conf: serde_json::Value =
            serde_json::from_str(include_str!("../../tauri.conf.json")).unwrap();
        assert_eq!(conf["identifier"], super::IDENTIFIER);
    }
}
