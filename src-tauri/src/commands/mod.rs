//! Tauri commands, one file per domain. Each is a thin translation to an engine call;
//! errors cross to the UI as their display text.

pub mod app;
pub mod endpoints;
pub mod queue;
pub mod settings;

/// What a command returns to the UI: a value, or a message for a person.
pub type CmdResult<T> = Result<T, String>;

/// Converts any error into the text the UI shows.
pub fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}
