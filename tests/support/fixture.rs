//! What a test stands on, built in one line: a real tus server (`@tus/server`), a fault proxy
//! in front of it when asked, and the folders the test and the app work in. Tests destructure
//! it in this order (server, proxy, files, data, home), each keeping its own names:
//!
//! ```ignore
//! let Fixture(server, proxy, files, data, home) = Fixture::new().proxied();
//! let Fixture(server, _, files, data, ..) = Fixture::new();
//! ```

use std::sync::Arc;
use tempfile::TempDir;

use super::proxy::FaultProxy;
use super::servers::{AnyServer, Kind};
use super::{ServerOpts, TusServer};

/// A server (`@tus/server`, or either real server by [`Kind`]), `proxy` (`()` until
/// [`Fixture::proxied`]), and three folders: the files a test uploads, Tusker's data
/// directory, and a home of the app's own (its dialogs, autostart entry and keyring files
/// stay in it).
pub struct Fixture<P = (), S = TusServer>(
    /// The server.
    pub S,
    /// The proxy in front of it.
    pub P,
    /// The files a test uploads.
    pub TempDir,
    /// Tusker's data directory.
    pub TempDir,
    /// The app's home.
    pub TempDir,
);

impl Fixture {
    /// `@tus/server` with its defaults, and fresh folders.
    pub fn new() -> Fixture {
        Fixture::with(ServerOpts::default())
    }

    /// `@tus/server` started with `opts`, and fresh folders.
    pub fn with(opts: ServerOpts) -> Fixture {
        Fixture(TusServer::start_with(opts), (), dir(), dir(), dir())
    }

    /// Either real server (rustus or `@tus/server`), and fresh folders.
    pub fn any(kind: Kind) -> Fixture<(), AnyServer> {
        Fixture(AnyServer::start(kind), (), dir(), dir(), dir())
    }
}

/// A server a proxy can stand in front of.
pub trait Listening {
    fn listening_on(&self) -> u16;
}

impl Listening for TusServer {
    fn listening_on(&self) -> u16 {
        self.port
    }
}

impl Listening for AnyServer {
    fn listening_on(&self) -> u16 {
        self.port()
    }
}

impl<S: Listening> Fixture<(), S> {
    /// A fault proxy in front of the server.
    pub fn proxied(self) -> Fixture<FaultProxy, S> {
        let proxy = FaultProxy::start(self.0.listening_on());
        self.with_proxy(proxy)
    }

    /// A fault proxy in front of the server, shared with tasks of the test.
    pub fn proxied_shared(self) -> Fixture<Arc<FaultProxy>, S> {
        let proxy = Arc::new(FaultProxy::start(self.0.listening_on()));
        self.with_proxy(proxy)
    }

    fn with_proxy<P>(self, proxy: P) -> Fixture<P, S> {
        let Fixture(server, (), files, data, home) = self;
        Fixture(server, proxy, files, data, home)
    }
}

fn dir() -> TempDir {
    tempfile::tempdir().unwrap()
}
