//! Watched folders: a folder whose new and changed files are handed to the engine.

pub mod folder;
