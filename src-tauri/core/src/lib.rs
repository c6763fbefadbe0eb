//! Tusker's upload engine: a tus 1.0.0 client whose every upload is journalled in SQLite so
//! that it survives crashes, restarts, renames and moves. No UI code lives here; the CLI and
//! the desktop shell both drive [`Engine`].

pub mod client;
pub mod destination;
pub mod engine;
pub mod error;
pub mod explain;
pub mod failpoint;
pub mod files;
pub mod fingerprint;
pub mod gate;
pub mod lifecycle;
pub mod lock;
pub mod model;
pub mod platform;
pub mod profile;
pub mod progress;
pub mod proof;
pub mod protocol;
pub mod ratelimit;
pub mod redact;
pub mod retry;
mod row;
pub mod secrets;
pub mod settings;
pub mod source;
pub mod store;
pub mod transport;
pub mod upload;
pub mod watched;
pub mod watcher;

pub use engine::{default_data_dir, AddRequest, AddResult, Engine, EngineConfig, EventBatch};
pub use error::{Error, Result};
pub use model::{ServerCaps, UploadId, UploadRecord, UploadState, UploadView};
pub use settings::AppSettings;
pub use upload::UploadSettings;
