//! Profiles: where uploads go and with which credentials, shared with the CLI. Secret header
//! values never go back to the window; a saved profile keeps them unless they are replaced.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tusker_core::origin::origin;
use tusker_core::profiles::profile::Profile;
use tusker_core::redact::is_sensitive;
use tusker_core::tus::client::{parse_endpoint, TusClient};
use tusker_core::tus::gate::{Grant, Reach};
use tusker_core::AppSettings;
use tusker_core::ServerCaps;

use crate::errors::{text, CmdError, CmdResult};
use crate::state::AppState;

/// A header as the UI sees it: a secret's value never goes back (`None`). From the window,
/// `secret` marks a header of another name secret too (its value then goes to the keyring).
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct HeaderSetting {
    pub name: String,
    pub value: Option<String>,
    pub secret: bool,
}

/// A profile as the UI sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ProfileView {
    pub name: String,
    pub endpoint: String,
    pub headers: Vec<HeaderSetting>,
    #[ts(type = "Record<string, string>")]
    pub metadata: BTreeMap<String, String>,
    pub chunk_size: Option<u64>,
    /// The server takes exactly `chunk_size` bytes per request.
    pub exact_chunk: bool,
    pub allowed_hosts: Vec<String>,
    pub refused_hosts: Vec<String>,
    /// Prints `Name: value` lines: credentials fetched when needed.
    pub header_command: Option<String>,
    pub header_ttl_secs: Option<u64>,
    pub method_override: bool,
}

pub(crate) fn view(p: &Profile) -> ProfileView {
    ProfileView {
        name: p.name.clone(),
        endpoint: p.endpoint.clone(),
        headers: p
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = p.is_secret(k) || v.starts_with(SECRET_REF);
                HeaderSetting {
                    name: k.clone(),
                    value: (!secret).then(|| v.clone()),
                    secret,
                }
            })
            .collect(),
        metadata: p.metadata.clone(),
        chunk_size: p.chunk_size,
        exact_chunk: p.exact_chunk,
        allowed_hosts: p.allowed_hosts.clone(),
        refused_hosts: p.refused_hosts.clone(),
        header_command: p.header_command.clone(),
        header_ttl_secs: p.header_ttl_secs,
        method_override: p.method_override,
    }
}

/// How a stored value that stands for a secret starts (never a value the window may send).
const SECRET_REF: &str = "secret-ref:";

/// Header values from the UI, with withheld secrets (value `None`) kept as the stored
/// profile's references, and the names of those kept. Where a kept secret may go is the
/// caller's to settle (it stays bound to where it was given, unless the person confirms).
pub fn merge_headers(
    incoming: &[HeaderSetting],
    stored: Option<&Profile>,
) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let mut out = BTreeMap::new();
    let mut kept = Vec::new();
    for h in incoming.iter().filter(|h| !h.name.trim().is_empty()) {
        let name = h.name.trim().to_string();
        match (&h.value, stored.and_then(|s| s.headers.get(&name))) {
            (Some(v), _) if v.trim_start().starts_with(SECRET_REF) => {
                return Err(format!(
                    "the value of the {name} header is not a header value"
                ))
            }
            (Some(v), _) => {
                out.insert(name, v.clone());
            }
            (None, Some(v)) => {
                out.insert(name.clone(), v.clone());
                kept.push(name);
            }
            (None, None) => return Err(format!("enter the value of the {name} header")),
        }
    }
    Ok((out, kept))
}

/// The profile the window edited, checked, with withheld secrets taken from `stored`.
fn from_view(p: &ProfileView, stored: Option<&Profile>) -> CmdResult<Profile> {
    let name = p.name.trim().to_string();
    if name.is_empty() {
        return Err(CmdError::invalid("a profile needs a name"));
    }
    let endpoint = p.endpoint.trim().to_string();
    tusker_core::tus::client::parse_endpoint(&endpoint).map_err(text)?;
    let (headers, _) = merge_headers(&p.headers, stored)?;
    tusker_core::tus::client::header_map(&headers).map_err(text)?;
    // Headers the person marked secret; one kept from the stored profile stays secret.
    let secret_headers: Vec<String> = p
        .headers
        .iter()
        .filter(|h| !h.name.trim().is_empty() && !is_sensitive(h.name.trim()))
        .filter(|h| h.secret || stored.is_some_and(|s| s.is_secret(h.name.trim())))
        .map(|h| h.name.trim().to_string())
        .collect();
    for k in p.metadata.keys() {
        tusker_core::tus::protocol::validate_metadata_key(k).map_err(text)?;
    }
    if p.chunk_size == Some(0) {
        return Err(CmdError::invalid(
            "the chunk size must be at least one byte",
        ));
    }
    if p.exact_chunk && p.chunk_size.is_none() {
        return Err(CmdError::invalid(
            "an exact chunk size needs a chunk size (Supabase: 6 MiB)",
        ));
    }
    let hosts = |list: &[String]| -> CmdResult<Vec<String>> {
        let mut out = Vec::new();
        for h in list.iter().map(|h| h.trim().to_ascii_lowercase()) {
            if h.is_empty() {
                continue;
            }
            // A host name, nothing else: no scheme, path, port or spaces.
            if url::Host::parse(&h).is_err() || h.contains([':', '/', '@', ' ']) {
                return Err(CmdError::invalid(format!(
                    "{:?} is not a host name",
                    crate::confirm::visible(&h)
                )));
            }
            out.push(h);
        }
        Ok(out)
    };
    let command = p
        .header_command
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(Profile {
        id: 0,
        name,
        endpoint,
        headers: headers.into(),
        metadata: p.metadata.clone(),
        chunk_size: p.chunk_size,
        exact_chunk: p.exact_chunk,
        allowed_hosts: hosts(&p.allowed_hosts)?,
        refused_hosts: hosts(&p.refused_hosts)?,
        header_ttl_secs: p.header_ttl_secs.filter(|t| *t > 0 && command.is_some()),
        header_command: command,
        method_override: p.method_override,
        secret_headers,
        bound: Default::default(),
        command_bound: Vec::new(),
    })
}

/// What saving `new` over `stored` would send somewhere new, as the lines of a dialog; the
/// secrets and command kept from `stored` are bound to the new origin when the person
/// agrees. Empty: nothing goes anywhere new (a new profile without a command, an edit that
/// keeps its server and hosts).
fn what_moves(new: &mut Profile, stored: Option<&Profile>) -> Vec<String> {
    use tusker_core::origin::{host_of, origin_of};
    let mut lines = Vec::new();
    let known_command = stored.and_then(|s| s.command());
    if let Some(command) = new.command().filter(|c| Some(*c) != known_command) {
        let mut hosts = vec![host_of(&new.endpoint)];
        hosts.extend(new.allowed_hosts.iter().cloned());
        lines.push(format!(
            "gets its request headers by running this command on this computer, and sends what it prints to {}:\n\n{}\n\nTusker runs it before uploading and again when the server refuses the credentials. Use commands only from sources you trust.",
            crate::confirm::visible(&hosts.join(", ")),
            crate::confirm::visible(command)
        ));
    }
    let Some(stored) = stored else {
        return lines;
    };
    let (from, to) = (origin_of(&stored.endpoint), origin_of(&new.endpoint));
    if from == to && stored.endpoint.trim() != new.endpoint.trim() {
        // Another path on the same server may be another tenant's (`/tenant-a/files`).
        lines.push(format!(
            "uploads go to {} (until now {})",
            crate::confirm::visible(new.endpoint.trim()),
            crate::confirm::visible(stored.endpoint.trim())
        ));
    }
    if from != to {
        let host = host_of(&new.endpoint);
        lines.push(format!(
            "uploads go to {host} (until now {})",
            host_of(&stored.endpoint)
        ));
        // Kept from the stored profile: still its references (the window cannot type one).
        let secrets: Vec<String> = new
            .headers
            .iter()
            .filter(|(k, v)| new.is_secret(k) && v.starts_with(SECRET_REF))
            .map(|(k, _)| k.clone())
            .collect();
        if !secrets.is_empty() {
            lines.push(format!(
                "its saved credentials ({}) are sent to {host} too",
                secrets
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if known_command.is_some() && new.command() == known_command {
            lines.push(format!(
                "the headers its command prints are sent to {host} too"
            ));
        }
        if let Some(to) = to {
            for name in secrets {
                new.bound
                    .insert(name.to_ascii_lowercase(), vec![to.clone()]);
            }
            if new.command().is_some() && new.command() == known_command {
                new.command_bound = vec![to];
            }
        }
    }
    // The same server, another place on it: credentials of another account, another tenant
    // header or bucket. The files would go where the person did not say.
    let host = host_of(&new.endpoint);
    let given: Vec<&str> = new
        .headers
        .iter()
        .filter(|(k, v)| new.is_secret(k) && !v.starts_with(SECRET_REF))
        .map(|(k, _)| k.as_str())
        .collect();
    if !given.is_empty() {
        lines.push(format!(
            "new credentials ({}) are sent to {host}",
            crate::confirm::visible(&given.join(", "))
        ));
    }
    let public = |p: &Profile| -> BTreeMap<String, String> {
        p.headers
            .iter()
            .filter(|(k, _)| !p.is_secret(k))
            .map(|(k, v)| (format!("header {}", k.to_ascii_lowercase()), v.clone()))
            .chain(
                p.metadata
                    .iter()
                    .map(|(k, v)| (format!("metadata {k}"), v.clone())),
            )
            .collect()
    };
    let (was, now) = (public(stored), public(new));
    let changed: Vec<String> = was
        .keys()
        .chain(now.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| was.get(*k) != now.get(*k))
        .map(|k| {
            format!(
                "{k}: {} → {}",
                was.get(k).map_or("(none)", String::as_str),
                now.get(k).map_or("(none)", String::as_str)
            )
        })
        .collect();
    if !changed.is_empty() {
        lines.push(format!(
            "uploads go to another place on {host}: {}",
            crate::confirm::visible(&changed.join("; "))
        ));
    }
    let added: Vec<&String> = new
        .allowed_hosts
        .iter()
        .filter(|h| {
            !stored
                .allowed_hosts
                .iter()
                .any(|s| s.eq_ignore_ascii_case(h))
        })
        .collect();
    let added = crate::confirm::visible(
        &added
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    if !added.is_empty() && new.has_credentials() {
        lines.push(format!(
            "uploads, and its credentials, may also go to {added}"
        ));
    } else if !added.is_empty() {
        lines.push(format!("uploads may also go to {added}"));
    }
    lines
}

pub async fn list(state: &AppState) -> CmdResult<Vec<ProfileView>> {
    let profiles = state.engine.store().profiles().map_err(text)?;
    Ok(profiles.iter().map(view).collect())
}

/// Saves a profile (renamed from `previous` when given). Its queued and waiting uploads use
/// it from their next request. The first profile becomes the one drops go to.
pub async fn save(
    app: &tauri::AppHandle,
    state: &AppState,
    previous: Option<String>,
    profile: ProfileView,
) -> CmdResult<ProfileView> {
    let store = state.engine.store();
    let stored = store
        .profile_by_name(previous.as_deref().unwrap_or(&profile.name))
        .map_err(text)?;
    let mut new = from_view(&profile, stored.as_ref())?;
    let moves = what_moves(&mut new, stored.as_ref());
    if !moves.is_empty() {
        let message = format!(
            "Profile “{}”:\n\n{}\n\nConfirm only a change you made yourself.",
            crate::confirm::visible(&new.name),
            moves
                .iter()
                .map(|l| format!("• {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        crate::confirm::ask(
            app,
            "Send uploads or credentials somewhere new?",
            message,
            "Save",
            "not saved: this change needs your confirmation in the dialog",
        )
        .await?;
    }
    let first = store.profiles().map_err(text)?.is_empty();
    if let Some(old) = previous.as_deref().filter(|p| *p != new.name) {
        store.rename_profile(old, &new.name).map_err(text)?;
        // Its watched folders follow it (the same profile, the same destination).
        let mut settings = AppSettings::load(store).map_err(text)?;
        let mut renamed = false;
        for f in settings.watched_folders.iter_mut() {
            if f.profile.as_deref() == Some(old) {
                f.profile = Some(new.name.clone());
                renamed = true;
            }
        }
        if renamed {
            settings.save(store).map_err(text)?;
        }
    } else if previous.is_none() && stored.is_some() {
        return Err(CmdError::invalid(format!(
            "a profile named {:?} exists already",
            new.name
        )));
    }
    state.engine.save_profile(&new).map_err(text)?;
    let mut settings = AppSettings::load(store).map_err(text)?;
    // What the person confirmed for this profile (drops, watched folders) follows its save:
    // every change that sends files elsewhere was in the dialog above.
    if let (Some(before), Some((after, _))) = (
        stored
            .as_ref()
            .map(tusker_core::identity::destination::of_profile),
        AppSettings::destination_of(store, &new.name).map_err(text)?,
    ) {
        if before != after {
            for key in settings.confirmed.values_mut().filter(|k| **k == before) {
                *key = after.clone();
            }
            settings.save(store).map_err(text)?;
        }
    }
    // Drops follow a rename; a profile becomes the drop target by itself only when it is the
    // first (a window that cleared the target must not make its own profile it).
    let follows = (settings.drop_profile.is_none() && first)
        || (previous.is_some() && settings.drop_profile == previous);
    if follows && settings.drop_profile.as_deref() != Some(&new.name) {
        settings.drop_profile = Some(new.name.clone());
        settings.save(store).map_err(text)?;
    }
    tracing::info!(profile = %new.name, headers = ?new.headers.keys().collect::<Vec<_>>(), "profile saved");
    let saved = store.profile_by_name(&new.name).map_err(text)?;
    Ok(view(saved.as_ref().unwrap_or(&new)))
}

/// Forgets a profile and its secrets. Its uploads keep their place and go on without its
/// credentials; drops go nowhere until another profile is chosen.
pub async fn remove(state: &AppState, name: String) -> CmdResult<()> {
    let store = state.engine.store();
    let Some(p) = store.profile_by_name(&name).map_err(text)? else {
        return Ok(());
    };
    // A watched folder's files must not end up wherever a profile made next points.
    let settings = AppSettings::load(store).map_err(text)?;
    if let Some(f) = settings
        .watched_folders
        .iter()
        .find(|f| f.profile.as_deref().or(settings.drop_profile.as_deref()) == Some(name.as_str()))
    {
        return Err(CmdError::invalid(format!(
            "the watched folder {} uploads with {name:?}: give it another profile, or stop watching it, first",
            f.path
        )));
    }
    state.engine.secrets().forget(&p.headers).map_err(text)?;
    store.delete_profile(&name).map_err(text)?;
    let mut settings = AppSettings::load(store).map_err(text)?;
    if settings.drop_profile.as_deref() == Some(&name) {
        settings.drop_profile = None;
        settings.save(store).map_err(text)?;
    }
    tracing::info!(profile = %name, "profile removed");
    Ok(())
}

/// The answer to "upload to this host for this profile?" that a row asks. A yes is the
/// person's only in a system dialog (the window cannot give it); a no needs none.
pub async fn answer_host(
    app: &tauri::AppHandle,
    state: &AppState,
    id: tusker_core::UploadId,
    allow: bool,
) -> CmdResult<()> {
    if allow {
        let rec = state.engine.store().get(id).map_err(text)?;
        let (Some(host), Some(profile)) = (rec.asks_host.as_deref(), rec.profile.as_deref()) else {
            return Err(CmdError::invalid(
                "this upload is not waiting for an answer about a host",
            ));
        };
        let (profile, host) = (
            crate::confirm::visible(profile),
            crate::confirm::visible(host),
        );
        // An upload URL was entered in the window, not sent by the server: say so.
        let cause = if rec.given_url {
            format!(
                "The upload URL entered for {} is on {host}, which profile “{profile}” does not list.",
                crate::confirm::visible(&rec.name)
            )
        } else {
            format!(
                "The server sends uploads of profile “{profile}” to {host}, which the profile does not list."
            )
        };
        crate::confirm::ask(
            app,
            "Upload to another host?",
            format!(
                "{cause}\n\nUpload there? The profile's credentials then go to {host} too, for every upload of the profile."
            ),
            "Upload there",
            "nothing changed: allowing another host needs your confirmation in the dialog",
        )
        .await?;
    }
    state.engine.answer_host(id, allow).map_err(text)
}

/// `profile`: the saved profile being edited, whose withheld secrets the check may use, but
/// only on a server they were given for (or a host the profile allows): the window cannot
/// make a check carry them anywhere else. Values typed in the window are its own.
pub async fn check_endpoint(
    state: &AppState,
    endpoint: String,
    headers: Vec<HeaderSetting>,
    profile: Option<String>,
) -> CmdResult<ServerCaps> {
    let url = parse_endpoint(&endpoint).map_err(text)?;
    let stored = match &profile {
        Some(name) => state.engine.store().profile_by_name(name).map_err(text)?,
        None => None,
    };
    let (merged, kept) = merge_headers(&headers, stored.as_ref())?;
    if let Some(stored) = &stored {
        for name in kept.iter().filter(|k| stored.is_secret(k)) {
            let reach = Reach {
                origins: stored.binding(name),
                hosts: stored.allowed_hosts.clone(),
                refused: Vec::new(),
            };
            if !reach.admits(&url) {
                return Err(CmdError::invalid(format!(
                    "enter the value of the {name} header again: its saved value is only sent to the server it was given for"
                )));
            }
        }
    }
    let secret = |name: &str| {
        headers.iter().any(|h| h.secret && h.name.trim() == name)
            || stored.as_ref().is_some_and(|s| s.is_secret(name))
            || tusker_core::redact::is_sensitive(name)
    };
    let opened = state.engine.secrets().open_headers(&merged).map_err(text)?;
    // Bound to the checked server alone: a redirect elsewhere does not take them along.
    let grant =
        Grant::new(&opened, &secret, Reach::new(origin(&url), &[], &[]), None).map_err(text)?;
    TusClient::with_timeout(std::time::Duration::from_secs(10))
        .options(url.as_str(), &grant)
        .await
        .map_err(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn withheld(name: &str) -> HeaderSetting {
        HeaderSetting {
            name: name.into(),
            value: None,
            secret: true,
        }
    }

    fn given(name: &str, value: &str, secret: bool) -> HeaderSetting {
        HeaderSetting {
            name: name.into(),
            value: Some(value.into()),
            secret,
        }
    }

    fn stored() -> Profile {
        Profile {
            id: 3,
            name: "work".into(),
            endpoint: "https://a.example/files".into(),
            headers: BTreeMap::from([
                (
                    "Authorization".to_string(),
                    "secret-ref:keyring:profile:work:authorization:1".to_string(),
                ),
                (
                    "X-Signed".to_string(),
                    "secret-ref:keyring:profile:work:x-signed:2".to_string(),
                ),
                ("X-Tenant".to_string(), "acme".to_string()),
            ])
            .into(),
            secret_headers: vec!["X-Signed".into()],
            header_command: Some("get-token".into()),
            ..Default::default()
        }
    }

    fn edit(p: &Profile) -> ProfileView {
        view(p)
    }

    #[test]
    fn the_view_of_a_profile_holds_no_secret_value_and_marks_every_secret() {
        let mut p = stored();
        // Even a plain value of a secret header (an older journal) stays out.
        p.headers.insert("X-Api-Key".into(), "plain-key-123".into());
        let v = view(&p);
        let json = serde_json::to_string(&v).unwrap();
        for leak in ["secret-ref", "plain-key-123", "keyring:"] {
            assert!(!json.contains(leak), "{leak} in {json}");
        }
        let by_name = |n: &str| v.headers.iter().find(|h| h.name == n).unwrap().clone();
        assert!(by_name("Authorization").secret && by_name("Authorization").value.is_none());
        // Marked secret by the person, not by its name.
        assert!(by_name("X-Signed").secret && by_name("X-Signed").value.is_none());
        assert!(by_name("X-Api-Key").secret && by_name("X-Api-Key").value.is_none());
        assert_eq!(by_name("X-Tenant").value.as_deref(), Some("acme"));
        assert!(!by_name("X-Tenant").secret);
    }

    #[test]
    fn withheld_secrets_are_kept_as_references_and_the_window_cannot_name_one() {
        let s = stored();
        let (headers, kept) = merge_headers(
            &[withheld("Authorization"), given("X-Tenant", "b", false)],
            Some(&s),
        )
        .unwrap();
        assert_eq!(headers["Authorization"], s.headers["Authorization"]);
        assert_eq!(kept, vec!["Authorization".to_string()]);
        // A reference typed in would make another profile's secret this one's.
        let forged = merge_headers(
            &[given(
                "Authorization",
                "secret-ref:keyring:profile:other:authorization:9",
                true,
            )],
            Some(&s),
        )
        .unwrap_err();
        assert!(forged.contains("not a header value"), "{forged}");
        assert!(merge_headers(&[withheld("Authorization")], None).is_err());
    }

    #[test]
    fn a_header_marked_secret_in_the_window_is_secret_and_stays_so() {
        let mut v = edit(&stored());
        v.headers.push(given("X-Signature-Key2", "s3cr3t", true));
        v.headers.push(given("X-Plain", "p", false));
        let p = from_view(&v, Some(&stored())).unwrap();
        assert!(p.is_secret("X-Signed"), "kept from the stored profile");
        assert!(p.is_secret("X-Signature-Key2"));
        assert!(!p.is_secret("X-Plain"));
    }

    #[test]
    fn what_moves_names_every_new_destination_and_binds_kept_secrets_only_then() {
        let s = stored();
        // Same server, hosts, command, headers and metadata: nothing to ask.
        let mut same = from_view(&edit(&s), Some(&s)).unwrap();
        assert!(what_moves(&mut same, Some(&s)).is_empty());
        assert!(same.bound.is_empty(), "no new binding without a move");
        // Another server: the person is told what goes there, and only then are the kept
        // secrets and the command bound to it.
        let mut v = edit(&s);
        v.endpoint = "https://b.example/tus".into();
        v.allowed_hosts = vec!["cdn.example".into()];
        let mut moved = from_view(&v, Some(&s)).unwrap();
        let lines = what_moves(&mut moved, Some(&s)).join("\n");
        for want in [
            "uploads go to b.example (until now a.example)",
            "Authorization, X-Signed",
            "its command prints",
            "may also go to cdn.example",
        ] {
            assert!(lines.contains(want), "{want:?} not in {lines}");
        }
        assert_eq!(moved.bound["authorization"], vec!["https://b.example:443"]);
        assert_eq!(moved.command_bound, vec!["https://b.example:443"]);
        // A new command is shown as it will run, hidden characters made visible.
        let mut v = edit(&s);
        v.header_command = Some("get-token\u{202E}\n curl evil".into());
        let mut cmd = from_view(&v, Some(&s)).unwrap();
        let lines = what_moves(&mut cmd, Some(&s)).join("\n");
        assert!(lines.contains("get-token<U+202E><LF> curl evil"), "{lines}");
        // Another account or tenant on the same server is asked about too.
        let mut v = edit(&s);
        for h in v.headers.iter_mut() {
            if h.name == "Authorization" {
                h.value = Some("Bearer someone-elses".into());
            }
            if h.name == "X-Tenant" {
                h.value = Some("globex".into());
            }
        }
        let mut other = from_view(&v, Some(&s)).unwrap();
        let lines = what_moves(&mut other, Some(&s)).join("\n");
        assert!(
            lines.contains("new credentials (Authorization) are sent to a.example"),
            "{lines}"
        );
        assert!(lines.contains("header x-tenant: acme → globex"), "{lines}");
        assert!(!lines.contains("someone-elses"), "{lines}");
        // A new profile asks only for a command.
        let mut fresh = from_view(
            &edit(&Profile {
                header_command: None,
                ..s.clone()
            }),
            None,
        );
        assert!(fresh.is_err(), "withheld secrets need a stored profile");
        let mut v = edit(&s);
        v.headers.clear();
        v.header_command = None;
        fresh = from_view(&v, None);
        assert!(what_moves(&mut fresh.unwrap(), None).is_empty());
    }
}
