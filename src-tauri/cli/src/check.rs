//! `tusker-cli check`: what a server says it supports (OPTIONS), in words or as JSON.

use anyhow::Result;

use crate::{output, CheckArgs};

/// Asks the server and prints its answer.
pub async fn check(args: CheckArgs) -> Result<i32> {
    let CheckArgs {
        endpoint,
        json,
        creds,
    } = args;
    let url = tusker_core::tus::client::parse_endpoint(&endpoint)?;
    let mut headers = creds.headers()?;
    let mut secret: Vec<String> = creds.secret_headers.clone();
    if let Some(cmd) = &creds.header_command {
        let fetched = tusker_core::profiles::profile::run_header_command(cmd).await?;
        secret.extend(fetched.keys().cloned());
        headers.extend(fetched);
    }
    // Headers given here are given for this server: bound to its origin alone, so a
    // redirect elsewhere does not take them along.
    let grant = tusker_core::tus::gate::Grant::new(
        &headers,
        &|name| {
            tusker_core::redact::is_sensitive(name)
                || secret.iter().any(|s| s.eq_ignore_ascii_case(name))
        },
        tusker_core::tus::gate::Reach::new(tusker_core::origin::origin(&url), &[], &[]),
        None,
    )?;
    let caps = match tusker_core::tus::client::TusClient::new()
        .options(url.as_str(), &grant)
        .await
    {
        Ok(caps) => caps,
        Err(tusker_core::Error::NotTusServer { reason, .. }) => {
            eprintln!(
                "{reason}: the server does not say what it supports. Uploads will go ahead \
                 with tus core alone (POST, HEAD, PATCH; no checksums, no deferred length), \
                 as tus-js-client does; a POST the server refuses too fails as \"not a tus server\"."
            );
            tusker_core::ServerCaps::core_only(reason)
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&caps)?);
    } else {
        output::caps(&tusker_core::redact::strip_userinfo(url.as_str()), &caps);
    }
    Ok(0)
}
