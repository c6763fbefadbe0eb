//! Secrets (Authorization-like header values) live outside the journal: in the OS keyring
//! (Secret Service on Linux) or, where no keyring answers, in a 0600 file in the data
//! directory, with one warning. The journal and settings keep only a reference.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// The service name secrets are filed under in the keyring.
const SERVICE: &str = "dev.tusker.app";

/// A stored value that stands for a secret: `secret-ref:keyring:<key>` or
/// `secret-ref:file:<key>`, so reading one needs no probe of where secrets go.
pub(crate) const REF: &str = "secret-ref:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Keyring,
    /// `secrets.json` in the data dir, mode 0600.
    File,
}

impl Backend {
    fn tag(self) -> &'static str {
        match self {
            Backend::Keyring => "keyring:",
            Backend::File => "file:",
        }
    }
}

/// Where secrets are kept; clone freely. Opening costs nothing: the keyring is probed only
/// when a secret is first stored (a launch with nothing to store never waits for D-Bus).
#[derive(Debug, Clone)]
pub struct Secrets {
    backend: Arc<std::sync::OnceLock<Backend>>,
    file: PathBuf,
    /// This data dir's secrets are told apart from another's in the same keyring.
    scope: String,
    /// Values read or written in this process (a keyring read is a D-Bus round trip).
    cache: Arc<Mutex<HashMap<String, String>>>,
}

impl Secrets {
    /// Secrets of the data dir at `data_dir`. `TUSKER_SECRETS=file` forces the 0600 file.
    pub fn open(data_dir: &Path) -> Secrets {
        use sha2::Digest;
        let scope: String = sha2::Sha256::digest(data_dir.display().to_string().as_bytes())
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Secrets {
            backend: Arc::default(),
            file: data_dir.join("secrets.json"),
            scope,
            cache: Arc::default(),
        }
    }

    /// Where new secrets go: the keyring when it answers (a write, read and delete of a
    /// probe entry), the 0600 file otherwise, with one warning.
    fn backend(&self) -> Backend {
        *self.backend.get_or_init(|| {
            if std::env::var("TUSKER_SECRETS").is_ok_and(|v| v == "file") {
                return Backend::File;
            }
            match probe(&self.scope) {
                Ok(()) => Backend::Keyring,
                Err(why) => {
                    tracing::warn!(reason = %why, "no OS keyring answers: secrets are kept in a file only this user can read (secrets.json, mode 0600)");
                    Backend::File
                }
            }
        })
    }

    /// Whether new secrets go to the OS keyring.
    pub fn in_keyring(&self) -> bool {
        self.backend() == Backend::Keyring
    }

    /// One keyring call on this data dir's entry for `key`, bounded in time.
    fn keyring<T: Send + 'static>(
        &self,
        key: &str,
        op: impl FnOnce(&keyring::Entry) -> keyring::Result<T> + Send + 'static,
    ) -> Result<keyring::Result<T>> {
        let account = format!("{}:{key}", self.scope);
        bounded(move || keyring::Entry::new(SERVICE, &account).and_then(|e| op(&e)))
    }

    /// Stores a secret; returns the reference to keep instead.
    fn put(&self, key: &str, value: &str) -> Result<String> {
        let backend = self.backend();
        match backend {
            Backend::Keyring => {
                let value = value.to_string();
                self.keyring(key, move |e| e.set_password(&value))?
                    .map_err(|e| Error::Secrets(e.to_string()))?
            }
            Backend::File => {
                let mut all = read_file(&self.file)?;
                all.insert(key.to_string(), value.to_string());
                write_file(&self.file, &all)?;
            }
        }
        let reference = format!("{}{key}", backend.tag());
        self.lock().insert(reference.clone(), value.to_string());
        Ok(reference)
    }

    /// The secret a reference (`keyring:<key>` or `file:<key>`) stands for.
    fn get(&self, reference: &str) -> Result<Option<String>> {
        if let Some(v) = self.lock().get(reference) {
            return Ok(Some(v.clone()));
        }
        let v = match locate(reference) {
            (Backend::File, key) => read_file(&self.file)?.remove(key),
            (Backend::Keyring, key) => match self.keyring(key, |e| e.get_password())? {
                Ok(v) => Some(v),
                Err(keyring::Error::NoEntry) => None,
                Err(e) => return Err(Error::Secrets(e.to_string())),
            },
        };
        if let Some(v) = &v {
            self.lock().insert(reference.to_string(), v.clone());
        }
        Ok(v)
    }

    /// Forgets the secrets that stored headers refer to (a removed profile's).
    pub fn forget(&self, headers: &BTreeMap<String, String>) -> Result<()> {
        for key in headers.values().filter_map(|v| v.strip_prefix(REF)) {
            self.delete(key)?;
        }
        Ok(())
    }

    fn delete(&self, reference: &str) -> Result<()> {
        self.lock().remove(reference);
        match locate(reference) {
            (Backend::File, key) => {
                let mut all = read_file(&self.file)?;
                if all.remove(key).is_some() {
                    write_file(&self.file, &all)?;
                }
                Ok(())
            }
            (Backend::Keyring, key) => match self.keyring(key, |e| e.delete_credential())? {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(Error::Secrets(e.to_string())),
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Headers as they may be stored: each secret value (by `is_secret`, usually
    /// [`crate::profile::Profile::is_secret`]) moves here under `owner:<name>` and a reference
    /// takes its place.
    pub fn seal(
        &self,
        owner: &str,
        headers: &BTreeMap<String, String>,
        is_secret: &dyn Fn(&str) -> bool,
    ) -> Result<crate::redact::Headers> {
        let mut out = BTreeMap::new();
        for (name, value) in headers {
            if is_secret(name) && !value.starts_with(REF) {
                // A key of its own: a renamed profile keeps referring to its entries, so a
                // new profile of the old name must not write over them.
                let key = format!("{owner}:{}:{}", name.to_ascii_lowercase(), unique());
                let reference = self.put(&key, value)?;
                out.insert(name.clone(), format!("{REF}{reference}"));
            } else {
                out.insert(name.clone(), value.clone());
            }
        }
        Ok(out.into())
    }

    /// Like [`Self::open_headers`], but a secret that is gone (a reset keyring) drops its
    /// header with a warning instead of failing: the settings still open, the user enters
    /// it again.
    pub fn open_headers_lossy(&self, headers: &BTreeMap<String, String>) -> crate::redact::Headers {
        let mut out = BTreeMap::new();
        for (name, value) in headers {
            match self.open_headers(&BTreeMap::from([(name.clone(), value.clone())])) {
                Ok(one) => out.extend(one),
                Err(e) => {
                    tracing::warn!(header = %name, error = %e, "a saved secret is gone; enter it again")
                }
            }
        }
        out.into()
    }

    /// Whether any value is a secret still in plain text (stored before secrets moved out).
    pub fn any_unsealed(
        headers: &BTreeMap<String, String>,
        is_secret: &dyn Fn(&str) -> bool,
    ) -> bool {
        headers
            .iter()
            .any(|(k, v)| is_secret(k) && !v.starts_with(REF))
    }

    /// Stored headers with their references replaced by the secrets.
    pub fn open_headers(
        &self,
        headers: &BTreeMap<String, String>,
    ) -> Result<crate::redact::Headers> {
        let mut out = BTreeMap::new();
        for (name, value) in headers {
            match value.strip_prefix(REF) {
                Some(key) => {
                    let v = self.get(key)?.ok_or_else(|| {
                        Error::Secrets(format!(
                            "the value of the {name} header is missing from the keyring"
                        ))
                    })?;
                    out.insert(name.clone(), v);
                }
                None => {
                    out.insert(name.clone(), value.clone());
                }
            }
        }
        Ok(out.into())
    }
}

/// A suffix no other key of this process or an earlier one has: the time in nanoseconds and
/// a counter.
fn unique() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:x}-{n}")
}

/// How long one keyring call may take: a keyring that waits on a prompt nobody answers
/// (a locked collection on a headless machine) must not freeze the queue.
const KEYRING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a keyring call on its own thread, giving up after [`KEYRING_TIMEOUT`].
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(KEYRING_TIMEOUT).map_err(|_| {
        Error::Secrets(format!(
            "the keyring did not answer within {KEYRING_TIMEOUT:?} (locked, or waiting for a password prompt)"
        ))
    })
}

/// Where a reference (`keyring:<key>`, `file:<key>`) points; untagged ones are the keyring's.
fn locate(reference: &str) -> (Backend, &str) {
    match reference.strip_prefix(Backend::File.tag()) {
        Some(key) => (Backend::File, key),
        None => (
            Backend::Keyring,
            reference
                .strip_prefix(Backend::Keyring.tag())
                .unwrap_or(reference),
        ),
    }
}

/// Whether the keyring takes, gives back and forgets a value.
fn probe(scope: &str) -> std::result::Result<(), String> {
    let scope = scope.to_string();
    bounded(move || probe_now(&scope)).map_err(|e| e.to_string())?
}

fn probe_now(scope: &str) -> std::result::Result<(), String> {
    let account = format!("{scope}:probe");
    let entry = keyring::Entry::new(SERVICE, &account).map_err(|e| e.to_string())?;
    entry.set_password("probe").map_err(|e| e.to_string())?;
    let back = entry.get_password().map_err(|e| e.to_string())?;
    let _ = entry.delete_credential();
    if back == "probe" {
        Ok(())
    } else {
        Err("the keyring gave back another value".into())
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(serde_json::from_str(&t).unwrap_or_default()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(Error::Io(e)),
    }
}

/// Written to a 0600 temporary file, then renamed over the old one.
fn write_file(path: &Path, all: &BTreeMap<String, String>) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(
        serde_json::to_string(all)
            .expect("map serialises")
            .as_bytes(),
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
