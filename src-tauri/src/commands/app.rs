//! About the app itself.

use serde::Serialize;
use tauri::{AppHandle, State};

use super::{CmdError, CmdResult};
use crate::state::AppState;
use crate::tray::TrayAction;

#[derive(Serialize, ts_rs::TS)]
pub struct AppInfo {
    pub version: &'static str,
    pub data_dir: String,
}

#[tauri::command]
pub async fn app_info(state: State<'_, AppState>) -> CmdResult<AppInfo> {
    Ok(AppInfo {
        version: env!("CARGO_PKG_VERSION"),
        data_dir: state.engine.data_dir().display().to_string(),
    })
}

/// Runs an entry of the tray's menu (`show`, `pause-all`, `resume-all`, `quit`) with the
/// menu's own code: the window's way to quit while closing it keeps uploads in the tray.
#[tauri::command]
pub fn tray_action(app: AppHandle, action: String) -> CmdResult<()> {
    let action = TrayAction::from_id(&action)
        .ok_or_else(|| CmdError::invalid(format!("there is no tray action {action:?}")))?;
    crate::tray::run(&app, action);
    Ok(())
}

/// The line the tray's menu starts with (the uploads' overall progress).
#[tauri::command]
pub fn tray_status(app: AppHandle) -> String {
    crate::tray::status_line(&app)
}
