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
#[derive(Clone)]
pub struct Secrets {
    backend: Arc<std::sync::OnceLock<Backend>>,
    file: PathBuf,
    /// This data dir's secrets are told apart from another's in the same keyring: from its
    /// canonical path, so `./data`, a link to it and its full path are one data dir.
    scope: String,
    /// The scope older builds used (the path as given), read when a secret is not found
    /// under the canonical one.
    legacy_scope: Option<String>,
    /// Values read or written in this process (a keyring read is a D-Bus round trip).
    cache: Arc<Mutex<HashMap<String, String>>>,
}

/// Where secrets go and how many this process holds; never a value.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("backend", &self.backend.get())
            .field("file", &self.file)
            .field("scope", &self.scope)
            .field("cached", &self.lock().len())
            .finish()
    }
}

fn scope_of(path: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(path.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Secrets {
    /// Secrets of the data dir at `data_dir`. `TUSKER_SECRETS=file` forces the 0600 file.
    pub fn open(data_dir: &Path) -> Secrets {
        let given = data_dir.display().to_string();
        let canonical = std::fs::canonicalize(data_dir)
            .or_else(|_| std::path::absolute(data_dir))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| given.clone());
        Secrets {
            backend: Arc::default(),
            file: data_dir.join("secrets.json"),
            scope: scope_of(&canonical),
            legacy_scope: (canonical != given).then(|| scope_of(&given)),
            cache: Arc::default(),
        }
    }

    /// Secrets of the data dir at `data_dir` kept in its 0600 file, whatever the keyring and
    /// the environment say (for tests that must not touch the person's keyring, without a
    /// process-wide variable).
    pub fn open_in_file(data_dir: &Path) -> Secrets {
        let s = Secrets::open(data_dir);
        let _ = s.backend.set(Backend::File);
        s
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
        self.keyring_in(&self.scope, key, op)
    }

    fn keyring_in<T: Send + 'static>(
        &self,
        scope: &str,
        key: &str,
        op: impl FnOnce(&keyring::Entry) -> keyring::Result<T> + Send + 'static,
    ) -> Result<keyring::Result<T>> {
        let account = format!("{scope}:{key}");
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
                let _held = FileLock::take(&self.file)?;
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
                Err(keyring::Error::NoEntry) => match &self.legacy_scope {
                    Some(old) => match self.keyring_in(old, key, |e| e.get_password())? {
                        Ok(v) => Some(v),
                        Err(keyring::Error::NoEntry) => None,
                        Err(e) => return Err(Error::Secrets(e.to_string())),
                    },
                    None => None,
                },
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
                let _held = FileLock::take(&self.file)?;
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
    /// [`crate::profiles::profile::Profile::is_secret`]) moves here under `owner:<name>` and a reference
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

/// The secrets file. A damaged one is an error, never read as empty: writing the next secret
/// over an empty map would throw the others away.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| {
            Error::Secrets(format!(
                "{} is damaged ({e}); it was left as it is: move it away and enter the credentials again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(Error::Io(e)),
    }
}

/// The secrets file's lock (`secrets.json.lock`): the app and the CLI beside it change the
/// file one at a time, each reading what the other wrote.
struct FileLock {
    _held: std::fs::File,
}

impl FileLock {
    fn take(path: &Path) -> Result<FileLock> {
        let lock = path.with_extension("json.lock");
        let f = owner_only_file(&lock, false)?;
        crate::platform::lock_exclusive(&f).map_err(Error::Io)?;
        Ok(FileLock { _held: f })
    }
}

/// Opens (creating) a file only this user may read; `fresh` insists it is new.
fn owner_only_file(path: &Path, fresh: bool) -> Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if fresh {
        o.create_new(true);
    } else {
        o.create(true);
    }
    Ok(crate::platform::owner_only_open(&mut o).open(path)?)
}

/// Written to a new 0600 temporary file of its own (a name no other writer uses), synced,
/// then renamed over the old one.
fn write_file(path: &Path, all: &BTreeMap<String, String>) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("json.{}.{}.tmp", std::process::id(), unique()));
    let mut f = owner_only_file(&tmp, true)?;
    let written = f
        .write_all(
            serde_json::to_string(all)
                .expect("map serialises")
                .as_bytes(),
        )
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_secrets_file_is_an_error_and_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.json");
        std::fs::write(&file, b"{\"profile:a\": \"tok").unwrap();
        let e = read_file(&file).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
        assert!(!e.contains("tok"), "no value in the message: {e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"{\"profile:a\": \"tok");
    }

    #[test]
    fn writers_take_turns_and_none_loses_another_ones_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.json");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let file = file.clone();
                std::thread::spawn(move || {
                    for j in 0..20 {
                        let _held = FileLock::take(&file).unwrap();
                        let mut all = read_file(&file).unwrap();
                        all.insert(format!("k{i}-{j}"), "v".into());
                        write_file(&file, &all).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read_file(&file).unwrap().len(), 160);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_debug_of_secrets_shows_no_value_and_the_scope_is_the_canonical_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = Secrets::open(dir.path());
        s.lock().insert("file:k".into(), "the-value-itself".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("the-value-itself"), "{shown}");
        assert!(shown.contains("cached: 1"), "{shown}");
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(dir.path(), &link).unwrap();
            assert_eq!(Secrets::open(&link).scope, s.scope);
            assert_eq!(Secrets::open(&dir.path().join(".")).scope, s.scope);
        }
    }
}
