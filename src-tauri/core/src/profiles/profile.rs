//! Endpoint profiles: where uploads go and how to talk to that server. Uploads refer to
//! their profile, and its credentials are read when a request is made, never frozen into
//! the upload: a token edited in the profile (or printed anew by its header command) reaches
//! queued, waiting and signed-out uploads alike.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Journal id of a profile.
pub type ProfileId = i64;

/// One named way of uploading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Profile {
    /// 0 until saved.
    #[serde(skip)]
    pub id: ProfileId,
    #[serde(skip)]
    pub name: String,
    pub endpoint: String,
    /// Request headers. Values may be secrets: never logged or shown.
    pub headers: crate::redact::Headers,
    pub metadata: BTreeMap<String, String>,
    pub chunk_size: Option<u64>,
    /// The server takes exactly `chunk_size` bytes per PATCH (all but the last): the size is
    /// never halved or capped.
    pub exact_chunk: bool,
    /// Hosts other than the endpoint's that uploads may move to (Location, redirects).
    pub allowed_hosts: Vec<String>,
    /// Hosts the user said no to when asked: uploads sent there fail without asking again.
    pub refused_hosts: Vec<String>,
    /// A shell command that prints `Name: value` lines: credentials fetched when needed.
    pub header_command: Option<String>,
    /// Fetch the command's headers again after this long.
    pub header_ttl_secs: Option<u64>,
    /// Send PATCH and DELETE as POST with `X-HTTP-Method-Override` (proxies that block them).
    pub method_override: bool,
    /// Header names the person marked secret, beyond those Tusker knows by name
    /// ([`crate::redact::is_sensitive`]).
    pub secret_headers: Vec<String>,
    /// The origins each secret header (by lower-case name) was given for: it goes there, and
    /// to the allowed hosts, and nowhere else. Set by [`Profile::bind`] when saved.
    pub bound: BTreeMap<String, Vec<String>>,
    /// The origins the header command was given (and confirmed) for.
    pub command_bound: Vec<String>,
}

impl Profile {
    /// Whether the value of header `name` is a secret in this profile.
    pub fn is_secret(&self, name: &str) -> bool {
        crate::redact::is_sensitive(name)
            || self
                .secret_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Whether the profile sends anything secret: a secret header or a header command.
    pub fn has_credentials(&self) -> bool {
        self.headers.keys().any(|k| self.is_secret(k)) || self.command().is_some()
    }

    /// The header command, if one is set.
    pub fn command(&self) -> Option<&str> {
        self.header_command
            .as_deref()
            .filter(|c| !c.trim().is_empty())
    }

    /// The origins the secret header `name` was given for. A profile saved before secrets
    /// were bound has them bound to its endpoint (where they have always gone).
    pub fn binding(&self, name: &str) -> Vec<String> {
        match self.bound.get(&name.to_ascii_lowercase()) {
            Some(b) => b.clone(),
            None => crate::origin::origin_of(&self.endpoint)
                .into_iter()
                .collect(),
        }
    }

    /// The origins the header command was given for (its endpoint's, for an older profile).
    pub fn command_binding(&self) -> Vec<String> {
        if self.command_bound.is_empty() {
            crate::origin::origin_of(&self.endpoint)
                .into_iter()
                .collect()
        } else {
            self.command_bound.clone()
        }
    }

    /// Sets the bindings of a profile about to be saved over `previous`: a secret value
    /// given now (not a reference yet) and a new header command are bound to the endpoint's
    /// origin, the one they were given for; a kept one keeps the origins it had, plus any the
    /// caller added after the person confirmed (a moved endpoint). Nothing else widens them.
    pub fn bind(&mut self, previous: Option<&Profile>) {
        let here: Vec<String> = crate::origin::origin_of(&self.endpoint)
            .into_iter()
            .collect();
        let mut bound = BTreeMap::new();
        for (name, value) in self.headers.iter() {
            if !self.is_secret(name) {
                continue;
            }
            let key = name.to_ascii_lowercase();
            let kept = value.starts_with(crate::profiles::secrets::REF)
                && previous.is_some_and(|p| p.headers.get(name) == Some(value));
            let mut origins = match previous {
                Some(p) if kept => p.binding(name),
                _ => here.clone(),
            };
            if kept {
                for o in self.bound.get(&key).into_iter().flatten() {
                    if !origins.contains(o) {
                        origins.push(o.clone());
                    }
                }
            }
            bound.insert(key, origins);
        }
        self.bound = bound;
        self.command_bound = match (self.command(), previous) {
            (None, _) => Vec::new(),
            (Some(c), Some(p)) if p.command() == Some(c) => {
                let mut origins = p.command_binding();
                for o in &self.command_bound {
                    if !origins.contains(o) {
                        origins.push(o.clone());
                    }
                }
                origins
            }
            (Some(_), _) => here,
        };
    }

    /// Whether every credential of the profile may go to `origin` (an upload's server): each
    /// secret header and the header command were given for it, or its host is allowed.
    /// Otherwise the reason, naming where the profile's credentials do go.
    pub fn credentials_reach(&self, origin: &str) -> Result<()> {
        let Ok(url) = url::Url::parse(origin) else {
            return Err(Error::Protocol(format!("{origin:?} is not a URL")));
        };
        let hosts = &self.allowed_hosts;
        let admits = |bound: Vec<String>| {
            crate::tus::gate::Reach {
                origins: bound,
                hosts: hosts.clone(),
                refused: Vec::new(),
            }
            .admits(&url)
        };
        let secret_ok = self
            .headers
            .keys()
            .filter(|k| self.is_secret(k))
            .all(|k| admits(self.binding(k)));
        let command_ok = self.command().is_none() || admits(self.command_binding());
        if secret_ok && command_ok {
            return Ok(());
        }
        Err(Error::CredentialsElsewhere {
            profile: self.name.clone(),
            here: crate::origin::host_of(origin),
            there: crate::origin::host_of(&self.endpoint),
        })
    }

    /// Records the user's answer about `host` (uploads may go there, or never): it moves
    /// from one list to the other, listed once.
    pub fn answer_host(&mut self, host: &str, allow: bool) {
        let (add, remove) = if allow {
            (&mut self.allowed_hosts, &mut self.refused_hosts)
        } else {
            (&mut self.refused_hosts, &mut self.allowed_hosts)
        };
        remove.retain(|h| !h.eq_ignore_ascii_case(host));
        if !add.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            add.push(host.to_ascii_lowercase());
        }
    }

    /// The profile with an endpoint's `user:password@` moved into an `Authorization: Basic`
    /// header (what would be sent anyway), so that the password is kept with the other
    /// secrets and never in the journal's URLs.
    pub fn with_userinfo_as_header(mut self) -> Result<Profile> {
        let Ok(mut url) = url::Url::parse(self.endpoint.trim()) else {
            return Ok(self);
        };
        if url.username().is_empty() && url.password().is_none() {
            return Ok(self);
        }
        if self
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("authorization"))
        {
            return Err(Error::InvalidHeader(
                "the endpoint has user:password@ and there is an Authorization header too: keep one of them".into(),
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let pair = format!(
            "{}:{}",
            decode(url.username()),
            decode(url.password().unwrap_or(""))
        );
        use base64::Engine as _;
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        self.headers.insert("Authorization".into(), value);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        self.endpoint = url.to_string();
        Ok(self)
    }

    /// The profile the CLI keeps for a bare `--endpoint`: named after it (without any
    /// `user:password@`), so a later run with new credentials refreshes every upload to it.
    pub fn implicit_name(endpoint: &str) -> String {
        crate::redact::strip_userinfo(endpoint.trim())
    }
}

/// Parses `Name: value` lines (a header command's output, a header file). Blank lines and
/// lines starting with `#` are skipped.
pub fn parse_header_lines(text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            // The line may hold a secret: only say where.
            return Err(Error::InvalidHeader(format!(
                "a line without ':' (line {})",
                text.lines().position(|l| l.trim() == line).unwrap_or(0) + 1
            )));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            // Not echoed: "Authorization Bearer xyz: ..." would put the token in the message.
            return Err(Error::InvalidHeader(format!(
                "a header name with a space (line {})",
                text.lines().position(|l| l.trim() == line).unwrap_or(0) + 1
            )));
        }
        out.insert(name.to_string(), value.trim().to_string());
    }
    Ok(out)
}

/// How long a header command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Most a header command may print: headers are short; a command that prints on and on
/// (or a mistake, `cat /dev/zero`) must not fill the memory.
pub const COMMAND_OUTPUT_CAP: usize = 64 * 1024;

/// What of a command's stderr is kept for the message.
const COMMAND_STDERR_CAP: usize = 8 * 1024;

/// Reads at most `cap` bytes; true when there was more.
async fn read_capped(
    mut from: impl tokio::io::AsyncRead + Unpin,
    cap: usize,
    into: &mut Vec<u8>,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                if into.len() > cap {
                    into.truncate(cap);
                    return true;
                }
            }
        }
    }
}

/// Runs a header command (`sh -c`) in a process group of its own, returning its headers;
/// its stderr names a failure. Past the timeout, or once it printed more than
/// [`COMMAND_OUTPUT_CAP`], the whole group is killed (a pipeline's other commands too).
pub async fn run_header_command(command: &str) -> Result<BTreeMap<String, String>> {
    run_within(command, COMMAND_TIMEOUT).await
}

async fn run_within(command: &str, limit: Duration) -> Result<BTreeMap<String, String>> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    crate::platform::own_process_group(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::HeaderCommand(format!("cannot run it: {e}")))?;
    let group = child.id();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let run = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (too_much, _) = tokio::join!(
            async {
                match stdout {
                    Some(o) => read_capped(o, COMMAND_OUTPUT_CAP, &mut out).await,
                    None => false,
                }
            },
            async {
                if let Some(e) = stderr {
                    read_capped(e, COMMAND_STDERR_CAP, &mut err).await;
                }
            }
        );
        if too_much {
            return Err(Error::HeaderCommand(format!(
                "it printed more than {} KiB",
                COMMAND_OUTPUT_CAP / 1024
            )));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| Error::HeaderCommand(format!("cannot run it: {e}")))?;
        Ok((status, out, err))
    };
    let finished = tokio::time::timeout(limit, run).await;
    let (status, out, err) = match finished {
        Ok(Ok(done)) => done,
        failed => {
            crate::platform::kill_group(group);
            return Err(match failed {
                Ok(Err(e)) => e,
                _ => Error::HeaderCommand(format!("no answer within {limit:?}")),
            });
        }
    };
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let err: String = err.trim().chars().take(500).collect();
        return Err(Error::HeaderCommand(format!(
            "{}{}",
            status,
            if err.is_empty() {
                String::new()
            } else {
                format!(": {err}")
            }
        )));
    }
    let text = String::from_utf8(out)
        .map_err(|_| Error::HeaderCommand("its output is not text".into()))?;
    let headers = parse_header_lines(&text)?;
    if headers.is_empty() {
        return Err(Error::HeaderCommand("it printed no header".into()));
    }
    Ok(headers)
}

#[derive(Clone)]
struct Fetched {
    headers: BTreeMap<String, String>,
    at: Instant,
    /// Bumped on every fetch, so a refresh after a refusal happens once however many
    /// uploads of the profile were refused by the same expired token.
    generation: u64,
}

/// Everything a command printed is a credential: only the names show.
impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("generation", &self.generation)
            .finish()
    }
}

/// Headers printed by profiles' header commands, shared by every upload of a profile: fetched
/// when first needed, when the TTL ran out, and after the server refused them.
#[derive(Debug, Clone, Default)]
pub struct CommandHeaders {
    cache: Arc<Mutex<HashMap<ProfileId, Fetched>>>,
    /// One fetch at a time per profile (a refused token must not start one command per
    /// upload; one profile's slow command must not hold another's).
    fetching: Arc<Mutex<HashMap<ProfileId, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Request headers for one upload, and which fetch of its command they came from.
#[derive(Clone, Default)]
pub struct Credentials {
    pub headers: crate::redact::Headers,
    /// The command's fetch these came from (`None`: no command).
    pub generation: Option<u64>,
    /// Names of the headers the command printed: credentials, whatever their names.
    pub fetched: Vec<String>,
}

/// Values masked: those secret by name, and every one a command printed.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&String, String> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let v = if self.fetched.contains(k) {
                    "••••••".to_string()
                } else {
                    crate::redact::mask(k, v)
                };
                (k, v)
            })
            .collect();
        f.debug_struct("Credentials")
            .field("headers", &shown)
            .field("generation", &self.generation)
            .finish()
    }
}

impl CommandHeaders {
    fn cached(
        &self,
        id: ProfileId,
        ttl: Option<Duration>,
        newer_than: Option<u64>,
    ) -> Option<Fetched> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let f = cache.get(&id)?;
        let fresh = ttl.is_none_or(|t| f.at.elapsed() < t);
        let newer = newer_than.is_none_or(|g| f.generation > g);
        (fresh && newer).then(|| f.clone())
    }

    /// The profile's headers with its command's on top. `refused` is the generation the
    /// server refused: a fetch newer than it is used, otherwise the command runs again.
    pub async fn credentials(
        &self,
        profile: &Profile,
        refused: Option<u64>,
    ) -> Result<Credentials> {
        let mut headers = profile.headers.clone();
        let Some(command) = profile
            .header_command
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        else {
            return Ok(Credentials {
                headers,
                generation: None,
                fetched: Vec::new(),
            });
        };
        let ttl = profile.header_ttl_secs.map(Duration::from_secs);
        let fetched = match self.cached(profile.id, ttl, refused) {
            Some(f) => f,
            None => {
                let lock = self
                    .fetching
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(profile.id)
                    .or_default()
                    .clone();
                let _one = lock.lock().await;
                // Another upload may have fetched while this one waited.
                match self.cached(profile.id, ttl, refused) {
                    Some(f) => f,
                    None => {
                        tracing::info!(profile = %profile.name, "running the header command");
                        let got = run_header_command(command).await?;
                        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                        let generation = cache.get(&profile.id).map_or(1, |f| f.generation + 1);
                        let f = Fetched {
                            headers: got,
                            at: Instant::now(),
                            generation,
                        };
                        cache.insert(profile.id, f.clone());
                        f
                    }
                }
            }
        };
        let names = fetched.headers.keys().cloned().collect();
        headers.extend(fetched.headers);
        Ok(Credentials {
            headers,
            generation: Some(fetched.generation),
            fetched: names,
        })
    }

    /// Forgets a profile's fetched headers (it was edited).
    pub fn forget(&self, id: ProfileId) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_endpoint_becomes_a_basic_authorization_header() {
        let p = Profile {
            endpoint: "https://bob:p%40ss@files.example.com/tus/".into(),
            ..Default::default()
        }
        .with_userinfo_as_header()
        .unwrap();
        assert_eq!(p.endpoint, "https://files.example.com/tus/");
        // base64("bob:p@ss")
        assert_eq!(p.headers["Authorization"], "Basic Ym9iOnBAc3M=");
        let both = Profile {
            endpoint: "https://bob:x@h/f".into(),
            headers: BTreeMap::from([("authorization".to_string(), "Bearer t".to_string())]).into(),
            ..Default::default()
        }
        .with_userinfo_as_header()
        .unwrap_err()
        .to_string();
        assert!(
            both.contains("keep one") && !both.contains("Bearer"),
            "{both}"
        );
        let plain = Profile {
            endpoint: "http://h/files".into(),
            ..Default::default()
        };
        assert_eq!(plain.clone().with_userinfo_as_header().unwrap(), plain);
    }

    fn secret_profile(endpoint: &str, token_ref: &str) -> Profile {
        Profile {
            id: 1,
            name: "work".into(),
            endpoint: endpoint.into(),
            headers: BTreeMap::from([
                ("Authorization".to_string(), token_ref.to_string()),
                ("X-Tenant".to_string(), "acme".to_string()),
            ])
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_secret_is_bound_to_the_origin_it_was_given_for_and_a_move_does_not_widen_it() {
        // Given for A (a plain value, about to be sealed): bound to A's origin.
        let mut a = secret_profile("https://a.example/files", "Bearer given-for-a");
        a.bind(None);
        assert_eq!(a.bound["authorization"], vec!["https://a.example:443"]);
        assert!(!a.bound.contains_key("x-tenant"), "not a secret");
        // Saved as a reference; the profile then moves to B keeping it: still bound to A
        // alone unless the caller (after the person confirmed) adds B.
        let stored = Profile {
            bound: a.bound.clone(),
            ..secret_profile("https://a.example/files", "secret-ref:keyring:k1")
        };
        let mut moved = secret_profile("https://b.example/files", "secret-ref:keyring:k1");
        moved.bind(Some(&stored));
        assert_eq!(moved.bound["authorization"], vec!["https://a.example:443"]);
        assert!(moved.credentials_reach("https://b.example:443").is_err());
        assert!(moved.credentials_reach("https://a.example:443").is_ok());
        let mut confirmed = secret_profile("https://b.example/files", "secret-ref:keyring:k1");
        confirmed
            .bound
            .insert("authorization".into(), vec!["https://b.example:443".into()]);
        confirmed.bind(Some(&stored));
        assert_eq!(
            confirmed.bound["authorization"],
            vec!["https://a.example:443", "https://b.example:443"]
        );
        // A new value given with the move is B's alone: the uploads left on A get nothing.
        let mut replaced = secret_profile("https://b.example/files", "Bearer given-for-b");
        replaced
            .bound
            .insert("authorization".into(), vec!["https://a.example:443".into()]);
        replaced.bind(Some(&stored));
        assert_eq!(
            replaced.bound["authorization"],
            vec!["https://b.example:443"]
        );
        let why = replaced
            .credentials_reach("https://a.example:443")
            .unwrap_err();
        assert!(
            matches!(&why, Error::CredentialsElsewhere { here, there, .. } if here == "a.example" && there == "b.example"),
            "{why}"
        );
        // Allowing A's host in the profile is the person's way to let them go there.
        replaced.allowed_hosts = vec!["a.example".into()];
        assert!(replaced.credentials_reach("https://a.example:443").is_ok());
        assert!(
            replaced.credentials_reach("http://a.example:80").is_err(),
            "never from https to plain http"
        );
    }

    #[test]
    fn a_header_command_is_bound_like_a_secret_and_a_profile_without_credentials_goes_anywhere() {
        let stored = Profile {
            header_command: Some("get-token".into()),
            ..secret_profile("https://a.example/", "secret-ref:keyring:k1")
        };
        let mut moved = Profile {
            header_command: Some("get-token".into()),
            headers: Default::default(),
            ..secret_profile("https://b.example/", "")
        };
        moved.bind(Some(&stored));
        assert_eq!(moved.command_bound, vec!["https://a.example:443"]);
        assert!(moved.credentials_reach("https://b.example:443").is_err());
        let mut changed = Profile {
            header_command: Some("get-other-token".into()),
            ..moved.clone()
        };
        changed.bind(Some(&stored));
        assert_eq!(changed.command_bound, vec!["https://b.example:443"]);
        let plain = Profile {
            endpoint: "https://b.example/".into(),
            headers: BTreeMap::from([("X-Tenant".to_string(), "acme".to_string())]).into(),
            ..Default::default()
        };
        assert!(!plain.has_credentials());
        assert!(plain.credentials_reach("https://a.example:443").is_ok());
    }

    #[test]
    fn a_header_marked_secret_is_a_secret() {
        let p = Profile {
            secret_headers: vec!["X-Signed-Url-Part".into()],
            ..Default::default()
        };
        assert!(p.is_secret("x-signed-url-part"));
        assert!(p.is_secret("Authorization"));
        assert!(!p.is_secret("X-Tenant"));
    }

    #[tokio::test]
    async fn a_header_command_that_prints_on_and_on_is_stopped_at_the_cap() {
        let started = std::time::Instant::now();
        let e = run_within("yes 'X-Junk: y'", Duration::from_secs(20))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 64 KiB"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "stopped at the cap, not the timeout"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // A pipeline whose other process outlives the shell if only the shell is killed.
        let cmd = format!("sleep 300 & echo $! > {p}; wait", p = pid_file.display());
        let e = run_within(&cmd, Duration::from_millis(700))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no answer within"), "{e}");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut gone = false;
        for _ in 0..50 {
            // Reaped by init once killed; kill(pid, 0) then fails.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone, "the background sleep {pid} of the command still runs");
    }

    #[test]
    fn debug_of_credentials_masks_what_a_command_printed() {
        let c = Credentials {
            headers: BTreeMap::from([
                ("X-Cmd-Output".to_string(), "printed-value".to_string()),
                ("Authorization".to_string(), "Bearer static".to_string()),
                ("X-Tenant".to_string(), "acme".to_string()),
            ])
            .into(),
            generation: Some(1),
            fetched: vec!["X-Cmd-Output".into()],
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("printed-value") && !shown.contains("static"),
            "{shown}"
        );
        assert!(shown.contains("acme"), "{shown}");
        let f = Fetched {
            headers: BTreeMap::from([("X-Plain-Name".to_string(), "printed".to_string())]),
            at: Instant::now(),
            generation: 2,
        };
        assert!(!format!("{f:?}").contains("printed\""));
    }

    #[test]
    fn header_lines_parse_and_bad_ones_do_not_echo_values() {
        let h =
            parse_header_lines("# token\nAuthorization: Bearer abc\n\nX-Sig:  v=1:2 \n").unwrap();
        assert_eq!(h["Authorization"], "Bearer abc");
        assert_eq!(h["X-Sig"], "v=1:2");
        let e = parse_header_lines("Bearer secret-token")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[tokio::test]
    async fn a_command_runs_once_per_need_and_again_after_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("n");
        let cmd = format!(
            "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo \"Authorization: Bearer t$n\"",
            c = count.display()
        );
        let p = Profile {
            id: 1,
            name: "p".into(),
            header_command: Some(cmd),
            headers: BTreeMap::from([("X-Static".into(), "1".into())]).into(),
            ..Profile::default()
        };
        let ch = CommandHeaders::default();
        let a = ch.credentials(&p, None).await.unwrap();
        let b = ch.credentials(&p, None).await.unwrap();
        assert_eq!(a.headers["Authorization"], "Bearer t1");
        assert_eq!(b.headers["Authorization"], "Bearer t1", "cached");
        assert_eq!(a.headers["X-Static"], "1");
        // Refused: fetched again, once, however many uploads report the same refusal.
        let c = ch.credentials(&p, a.generation).await.unwrap();
        let d = ch.credentials(&p, a.generation).await.unwrap();
        assert_eq!(c.headers["Authorization"], "Bearer t2");
        assert_eq!(d.headers["Authorization"], "Bearer t2");
        // A failing command names its stderr.
        let bad = Profile {
            id: 2,
            header_command: Some("echo 'token service down' >&2; exit 3".into()),
            ..Profile::default()
        };
        let e = ch.credentials(&bad, None).await.unwrap_err().to_string();
        assert!(e.contains("token service down"), "{e}");
    }
}
