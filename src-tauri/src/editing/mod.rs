//! What the window edits, checked before it is saved: profiles (a new server, host or
//! credential is confirmed in a system dialog first) and the app's settings.

pub mod profiles;
pub mod settings;
