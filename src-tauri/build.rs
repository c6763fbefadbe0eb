// Generates the app's command permissions (allow-<command>), so the capability file can grant
// the UI exactly the commands it uses and nothing else.
fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .capabilities_path_pattern("src-tauri/capabilities/**/*")
            .app_manifest(tauri_build::AppManifest::new().commands(&[
                "list_uploads",
                "watch_queue",
                "pick_and_add",
                "pause_upload",
                "resume_upload",
                "pause_all",
                "resume_all",
                "cancel_upload",
                "retry_upload",
                "restart_upload",
                "remove_upload",
                "reorder_upload",
                "reveal_upload",
                "add_pending",
                "continue_upload_url",
                "list_profiles",
                "save_profile",
                "remove_profile",
                "answer_host",
                "get_settings",
                "save_settings",
                "pick_watched_folder",
                "check_endpoint",
                "app_info",
                "tray_action",
                "tray_status",
            ])),
    )
    .expect("tauri-build");
}
