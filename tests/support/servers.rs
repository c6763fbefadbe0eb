//! The second real server, rustus 0.5.10 (file data storage, file info storage), and one type
//! over both servers so a scenario runs against each. rustus must be installed
//! (`cargo install rustus --version 0.5.10 --locked --features hashers`; `.ci/run` does it):
//! without it the tests fail, naming the command.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{terminate, TusServer};

/// Which real server a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The official `@tus/server` with `@tus/file-store`.
    Node,
    /// rustus 0.5.10.
    Rustus,
}

/// A running rustus on a free loopback port; stopped on drop.
pub struct RustusServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// The rustus binary: on PATH, or where `cargo install` puts it.
fn rustus_bin() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("CARGO_HOME").map(|h| PathBuf::from(h).join("bin")))
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")));
    for dir in candidates {
        let p = dir.join("rustus");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "rustus is not installed: run `cargo install rustus --version 0.5.10 --locked --features hashers` (.ci/run does)"
    );
}

impl RustusServer {
    pub fn start() -> RustusServer {
        let bin = rustus_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let info = dir.path().join("info");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&info).unwrap();
        // Port 0: it takes a free one itself, and its own sockets say which (a port picked
        // here and handed over could be taken by another process in between).
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--url", "/files"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--info-dir")
            .arg(&info)
            .args([
                "--tus-extensions",
                "getting,creation,termination,creation-with-upload,creation-defer-length,concatenation,checksum",
            ])
            .args(["--log-level", "ERROR"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting rustus");
        let port = super::listening_port(
            &mut child,
            "rustus (see its output above)",
            Duration::from_secs(10),
        );
        // Accepting, not only bound.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rustus does not accept on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RustusServer { child, port, dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/files", self.port)
    }

    /// Stored bytes of an upload, by its URL (the file data storage keeps one file per id).
    pub fn stored(&self, upload_url: &str) -> Vec<u8> {
        let id = upload_url.trim_end_matches('/').rsplit('/').next().unwrap();
        std::fs::read(self.dir.path().join("data").join(id)).expect("stored upload")
    }
}

impl Drop for RustusServer {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// One of the two real servers.
pub enum AnyServer {
    Node(TusServer),
    Rustus(RustusServer),
}

impl AnyServer {
    pub fn start(kind: Kind) -> AnyServer {
        match kind {
            Kind::Node => AnyServer::Node(TusServer::start()),
            Kind::Rustus => AnyServer::Rustus(RustusServer::start()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            AnyServer::Node(_) => "@tus/server",
            AnyServer::Rustus(_) => "rustus",
        }
    }

    pub fn endpoint(&self) -> String {
        match self {
            AnyServer::Node(s) => s.endpoint(),
            AnyServer::Rustus(s) => s.endpoint(),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            AnyServer::Node(s) => s.port,
            AnyServer::Rustus(s) => s.port,
        }
    }

    pub fn stored(&self, upload_url: &str) -> Vec<u8> {
        match self {
            AnyServer::Node(s) => s.stored(upload_url),
            AnyServer::Rustus(s) => s.stored(upload_url),
        }
    }
}
