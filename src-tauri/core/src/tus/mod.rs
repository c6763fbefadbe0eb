//! The tus protocol as the wire sees it: header grammar ([`protocol`]), one request at a time
//! ([`client`]), which headers may go where ([`gate`]), and HTTP behind a seam ([`transport`]).
//! Nothing here keeps state between requests or decides a retry.

pub mod client;
pub mod gate;
pub mod protocol;
pub mod transport;
