//! Tauri commands, one file per domain. Each is a thin translation to an engine call;
//! errors cross to the UI as `{code, message}`: the code for the UI to act on, the message
//! for the person.

pub mod app;
pub mod endpoints;
pub mod history;
pub mod profiles;
pub mod queue;
pub mod settings;

pub use crate::errors::{text, CmdError, CmdResult};
