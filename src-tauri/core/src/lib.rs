//! Tusker's upload engine: a tus 1.0.0 client whose every upload is journalled in SQLite so
//! that it survives crashes, restarts, renames and moves. No UI code lives here; the CLI and
//! the desktop shell both drive [`Engine`].
//!
//! The folders are the layers, from the bottom: the leaves ([`failpoint`], [`redact`],
//! [`origin`]), [`platform`], [`error`], [`tus`], [`profiles`], [`identity`], [`journal`],
//! [`upload`], [`queue`], [`watch`]. A module imports only from its own layer or below.

pub mod failpoint;
pub mod origin;
pub mod redact;

pub mod platform;

pub mod error;

pub mod tus;

pub mod profiles;

pub mod identity;

pub mod journal;

pub mod upload;

pub mod queue;

pub mod watch;

pub use error::{Error, Result};
pub use journal::record::{UploadId, UploadRecord, UploadState, UploadView};
pub use journal::settings::AppSettings;
pub use queue::engine::{
    default_data_dir, AddRequest, AddResult, Engine, EngineConfig, EventBatch,
};
pub use tus::protocol::ServerCaps;
pub use upload::UploadSettings;
