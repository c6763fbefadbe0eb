//! Which file is which, and whether the server's bytes are this file's: a file's stamp
//! ([`fingerprint`]), walking what was dropped ([`files`]), hashes of what was sent ([`proof`]),
//! where it went ([`destination`]), and what the file system says changed ([`changes`]).

pub mod changes;
pub mod destination;
pub mod files;
pub mod fingerprint;
pub mod proof;
