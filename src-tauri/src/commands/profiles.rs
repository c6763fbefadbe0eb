//! Profiles: where uploads go and with which credentials, shared with the CLI. Secret header
//! values never go back to the window; a saved profile keeps them unless they are replaced.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tauri::State;
use tusker_core::profile::Profile;
use tusker_core::redact::is_sensitive;
use tusker_core::AppSettings;

use super::{text, CmdError, CmdResult};
use crate::state::AppState;

/// A header as the UI sees it: a secret's value never goes back (`None`).
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

fn view(p: &Profile) -> ProfileView {
    ProfileView {
        name: p.name.clone(),
        endpoint: p.endpoint.clone(),
        headers: p
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = is_sensitive(k);
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

fn origin(url: &str) -> Option<(String, String, Option<u16>)> {
    let u = url::Url::parse(url.trim()).ok()?;
    Some((
        u.scheme().to_string(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default(),
    ))
}

/// Header values from the UI, with withheld secrets (value `None`) kept as the stored
/// profile's references. A stored secret is only ever sent to the origin it was saved for:
/// for another server the user has to enter it again.
pub fn merge_headers(
    incoming: &[HeaderSetting],
    stored: Option<&Profile>,
    endpoint: &str,
) -> Result<BTreeMap<String, String>, String> {
    let same_origin = stored
        .is_some_and(|s| origin(endpoint).is_some() && origin(endpoint) == origin(&s.endpoint));
    let mut out = BTreeMap::new();
    for h in incoming.iter().filter(|h| !h.name.trim().is_empty()) {
        let name = h.name.trim().to_string();
        match (&h.value, stored) {
            (Some(v), _) => {
                out.insert(name, v.clone());
            }
            (None, Some(stored)) if same_origin => {
                if let Some(v) = stored.headers.get(&name) {
                    out.insert(name, v.clone());
                }
            }
            (None, _) => {
                return Err(format!(
                    "enter the value of the {name} header again: saved secrets are only sent to the server they were saved for"
                ))
            }
        }
    }
    Ok(out)
}

/// The profile the window edited, checked, with withheld secrets taken from `stored`.
fn from_view(p: &ProfileView, stored: Option<&Profile>) -> CmdResult<Profile> {
    let name = p.name.trim().to_string();
    if name.is_empty() {
        return Err(CmdError::invalid("a profile needs a name"));
    }
    let endpoint = p.endpoint.trim().to_string();
    tusker_core::client::parse_endpoint(&endpoint).map_err(text)?;
    let headers = merge_headers(&p.headers, stored, &endpoint)?;
    tusker_core::client::header_map(&headers).map_err(text)?;
    for k in p.metadata.keys() {
        tusker_core::protocol::validate_metadata_key(k).map_err(text)?;
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
    let hosts = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect()
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
        allowed_hosts: hosts(&p.allowed_hosts),
        refused_hosts: hosts(&p.refused_hosts),
        header_ttl_secs: p.header_ttl_secs.filter(|t| *t > 0 && command.is_some()),
        header_command: command,
        method_override: p.method_override,
    })
}

#[tauri::command]
pub async fn list_profiles(state: State<'_, AppState>) -> CmdResult<Vec<ProfileView>> {
    let profiles = state.engine.store().profiles().map_err(text)?;
    Ok(profiles.iter().map(view).collect())
}

/// Saves a profile (renamed from `previous` when given). Its queued and waiting uploads use
/// it from their next request. The first profile becomes the one drops go to.
#[tauri::command]
pub async fn save_profile(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    previous: Option<String>,
    profile: ProfileView,
) -> CmdResult<ProfileView> {
    let store = state.engine.store();
    let stored = store
        .profile_by_name(previous.as_deref().unwrap_or(&profile.name))
        .map_err(text)?;
    let new = from_view(&profile, stored.as_ref())?;
    let known = stored.as_ref().and_then(|s| s.header_command.as_deref());
    if let Some(command) = new.header_command.as_deref().filter(|c| Some(*c) != known) {
        confirm_command(&app, &new.name, command).await?;
    }
    if let Some(old) = previous.as_deref().filter(|p| *p != new.name) {
        store.rename_profile(old, &new.name).map_err(text)?;
    } else if previous.is_none() && stored.is_some() {
        return Err(CmdError::invalid(format!(
            "a profile named {:?} exists already",
            new.name
        )));
    }
    state.engine.save_profile(&new).map_err(text)?;
    let mut settings = AppSettings::load(store).map_err(text)?;
    let follows = settings.drop_profile.is_none() || settings.drop_profile == previous;
    if follows && settings.drop_profile.as_deref() != Some(&new.name) {
        settings.drop_profile = Some(new.name.clone());
        settings.save(store).map_err(text)?;
    }
    tracing::info!(profile = %new.name, headers = ?new.headers.keys().collect::<Vec<_>>(), "profile saved");
    let saved = store.profile_by_name(&new.name).map_err(text)?;
    Ok(view(saved.as_ref().unwrap_or(&new)))
}

/// A header command runs on this machine: the person confirms a new one in a system dialog,
/// which the window cannot answer for them (a window that went wrong cannot make Tusker run
/// commands).
async fn confirm_command(app: &tauri::AppHandle, profile: &str, command: &str) -> CmdResult<()> {
    use tauri_plugin_dialog::{DialogExt, MessageDialogButtons, MessageDialogKind};
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .message(format!(
            "Profile “{profile}” gets its request headers by running:\n\n{command}\n\nTusker runs it before uploading and again when the server refuses the credentials. Use commands only from sources you trust."
        ))
        .title("Run this command for credentials?")
        .kind(MessageDialogKind::Warning)
        .buttons(MessageDialogButtons::OkCancelCustom(
            "Use this command".into(),
            "Cancel".into(),
        ))
        .show(move |ok| {
            let _ = tx.send(ok);
        });
    if rx.await.unwrap_or(false) {
        tracing::info!(%profile, "header command confirmed");
        Ok(())
    } else {
        Err(CmdError {
            code: "not_confirmed",
            message: "not saved: a header command needs your confirmation in the dialog".into(),
        })
    }
}

/// Forgets a profile and its secrets. Its uploads keep their place and go on without its
/// credentials; drops go nowhere until another profile is chosen.
#[tauri::command]
pub async fn remove_profile(state: State<'_, AppState>, name: String) -> CmdResult<()> {
    let store = state.engine.store();
    let Some(p) = store.profile_by_name(&name).map_err(text)? else {
        return Ok(());
    };
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

/// The answer to "upload to this host for this profile?" that a row asks.
#[tauri::command]
pub async fn answer_host(
    state: State<'_, AppState>,
    id: tusker_core::UploadId,
    allow: bool,
) -> CmdResult<()> {
    state.engine.answer_host(id, allow).map_err(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str) -> HeaderSetting {
        HeaderSetting {
            name: name.into(),
            value: None,
            secret: true,
        }
    }

    #[test]
    fn withheld_secrets_stay_with_their_server() {
        let stored = Profile {
            endpoint: "https://a.example/files".into(),
            headers: BTreeMap::from([(
                "Authorization".to_string(),
                "secret-ref:keyring:profile:x:authorization".to_string(),
            )])
            .into(),
            ..Default::default()
        };
        let same = merge_headers(
            &[secret("Authorization")],
            Some(&stored),
            "https://a.example/other",
        )
        .unwrap();
        assert_eq!(same["Authorization"], stored.headers["Authorization"]);
        let other = merge_headers(
            &[secret("Authorization")],
            Some(&stored),
            "https://b.example/files",
        )
        .unwrap_err();
        assert!(other.contains("again"), "{other}");
        assert!(
            merge_headers(&[secret("Authorization")], None, "https://a.example/files").is_err()
        );
    }
}
