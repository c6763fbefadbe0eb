//! Where files go and with which credentials: a [`profile`] names a server, its headers and
//! the hosts it may reach; [`secrets`] keeps the secret values out of the journal.

pub mod profile;
pub mod secrets;
