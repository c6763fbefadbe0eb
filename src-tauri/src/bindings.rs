//! The UI's TypeScript types (`ui/src/lib/types.ts`) are generated from the Rust types that
//! cross to the window (ts-rs), with the per-state actions of the lifecycle, so the two sides
//! cannot drift. The test fails when the file is stale; `UPDATE_BINDINGS=1 cargo test
//! bindings` rewrites it.

#[cfg(test)]
mod tests {
    use crate::commands::app::AppInfo;
    use crate::commands::CmdError;
    use crate::editing::profiles::{HeaderSetting, ProfileView};
    use crate::editing::settings::SettingsView;
    use ts_rs::TS;
    use tusker_core::queue::lifecycle::{self, Action};
    use tusker_core::{AddResult, ServerCaps, UploadState};

    const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ui/src/lib/types.ts");

    fn render() -> String {
        // Ids, sizes and offsets stay below 2^53: numbers, not bigints.
        let cfg = ts_rs::Config::new().with_large_int("number");
        let decls = [
            UploadState::decl(&cfg),
            tusker_core::UploadView::decl(&cfg),
            crate::rows::QueueBatch::decl(&cfg),
            AddResult::decl(&cfg),
            ServerCaps::decl(&cfg),
            AppInfo::decl(&cfg),
            HeaderSetting::decl(&cfg),
            ProfileView::decl(&cfg),
            tusker_core::journal::settings::WatchedFolder::decl(&cfg),
            SettingsView::decl(&cfg),
            CmdError::decl(&cfg),
            crate::intake::Added::decl(&cfg),
            crate::commands::history::UploadDetails::decl(&cfg),
            crate::commands::history::HistoryEntry::decl(&cfg),
            crate::intake::RejectedFile::decl(&cfg),
            Action::decl(&cfg),
        ];
        let mut out = String::from(
            "// Generated from the Rust types by src-tauri/src/bindings.rs (ts-rs): do not edit.\n\
             // After changing a type: UPDATE_BINDINGS=1 cargo test bindings\n\n",
        );
        for d in decls {
            out.push_str("export ");
            out.push_str(&d);
            out.push_str("\n\n");
        }
        out.push_str(
            "/** What a row offers in each state (tusker_core::queue::lifecycle::actions); Remove is always offered. */\n\
             export const ACTIONS: Record<UploadState, Action[]> = {\n",
        );
        for s in UploadState::ALL {
            let names: Vec<String> = lifecycle::actions(s)
                .iter()
                .map(|a| serde_json::to_string(a).unwrap().replace('"', "'"))
                .collect();
            out.push_str(&format!("  {}: [{}],\n", s.as_str(), names.join(", ")));
        }
        out.push_str("};\n");
        out
    }

    #[test]
    fn typescript_types_are_generated_from_the_rust_ones() {
        let want = render();
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            std::fs::write(FILE, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(FILE).unwrap_or_default();
        assert!(
            have == want,
            "ui/src/lib/types.ts is stale: run UPDATE_BINDINGS=1 cargo test bindings"
        );
    }
}
