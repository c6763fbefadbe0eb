//! About the app itself.

use serde::Serialize;
use tauri::State;

use super::CmdResult;
use crate::state::AppState;

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
