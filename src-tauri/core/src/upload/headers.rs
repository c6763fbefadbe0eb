//! The headers an upload's requests carry: its profile's credentials (a header command run
//! when needed) and where the gate lets them go.

use super::*;

/// The headers for an upload's requests and where they may go, read now: its profile may
/// have been edited since it was queued. `refused` is the command fetch the server just
/// refused (fetch a newer one).
pub async fn credentials(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    refused: Option<u64>,
) -> Result<Grant> {
    let profile = profile_of(ctx, rec)?;
    credentials_from(ctx, rec, profile.as_ref(), refused).await
}

/// How requests for an upload talk to the server, from its profile as it is now (method
/// override): uploads and terminations alike.
pub fn client_for(ctx: &UploadCtx, rec: &UploadRecord) -> TusClient {
    let profile = profile_of(ctx, rec).ok().flatten().unwrap_or_default();
    ctx.client.for_profile(profile.method_override)
}

/// Why a DELETE of `url` for this upload may not be sent, judged before any secret is read:
/// a host the person refused, or one its credentials may not go to (a URL a service handed
/// over on a host never allowed; a profile that moved to another server). `None`: it may.
pub fn termination_blocked(ctx: &UploadCtx, rec: &UploadRecord, url: &str) -> Option<Error> {
    let Ok(target) = url::Url::parse(url) else {
        return Some(Error::Protocol("the upload URL is not a URL".into()));
    };
    let profile = match profile_of(ctx, rec) {
        Ok(p) => p,
        Err(e) => return Some(e),
    };
    let has_credentials = match &profile {
        Some(p) => p.has_credentials(),
        None => rec.headers.keys().any(|k| crate::redact::is_sensitive(k)),
    };
    reach_of(rec, profile.as_ref())
        .and_then(|reach| reach.check(&target, has_credentials))
        .err()
}

/// Where an upload's secrets may go: its own server, when its profile's credentials were
/// given for it (otherwise the reason), and the hosts the profile allows.
pub(super) fn reach_of(
    rec: &UploadRecord,
    profile: Option<&crate::profiles::profile::Profile>,
) -> Result<Reach> {
    let here = crate::origin::origin_of(&rec.endpoint);
    Ok(match profile {
        Some(p) => {
            if let Some(origin) = &here {
                p.credentials_reach(origin)?;
            }
            Reach::new(here, &p.allowed_hosts, &p.refused_hosts)
        }
        None => Reach::new(here, &[], &[]),
    })
}

/// The upload's profile as the journal holds it now (`None`: none, or removed).
pub(super) fn profile_of(
    ctx: &UploadCtx,
    rec: &UploadRecord,
) -> Result<Option<crate::profiles::profile::Profile>> {
    match rec.profile_id {
        Some(pid) => ctx.store.profile(pid),
        None => Ok(None),
    }
}

/// [`credentials`] from a profile already read. Its secrets go only to the upload's own
/// server, and only when they were given for it (or the person allowed its host): a profile
/// that moved to another server since never sends that server's credentials here.
pub(super) async fn credentials_from(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    profile: Option<&crate::profiles::profile::Profile>,
    refused: Option<u64>,
) -> Result<Grant> {
    let reach = reach_of(rec, profile)?;
    match profile {
        Some(p) => {
            let mut opened = p.clone();
            opened.headers = ctx.secrets.open_headers(&p.headers)?;
            let creds = ctx.command_headers.credentials(&opened, refused).await?;
            // A command's headers are credentials, whatever their names.
            let is_secret = |k: &str| p.is_secret(k) || creds.fetched.iter().any(|f| f == k);
            Grant::new(&creds.headers, &is_secret, reach, creds.generation)
        }
        None => Grant::new(
            &ctx.secrets.open_headers(&rec.headers)?.0,
            &crate::redact::is_sensitive,
            reach,
            None,
        ),
    }
}
