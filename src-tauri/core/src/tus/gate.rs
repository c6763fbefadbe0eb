//! The one gate every request passes before it leaves Tusker: which headers may go to the
//! origin it is sent to. Public headers go anywhere a request goes; secret ones (credentials)
//! only to the origins they were given for and to the hosts the person allowed for them. A
//! request that would carry a secret anywhere else is not sent at all
//! ([`Error::HostNotAllowed`]): the caller asks the person, or says why it stopped.
//!
//! [`crate::tus::client::TusClient`] applies the gate to each request and to each hop of a redirect,
//! so OPTIONS, POST, HEAD, PATCH, DELETE, parts, finals, background terminations and `check`
//! all meet the same rule in the same place.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::sync::Arc;
use url::Url;

use crate::error::{Error, Result};
use crate::origin::origin;

/// Where a grant's secrets may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Origins the secrets were given for (the upload's server).
    pub origins: Vec<String>,
    /// Other hosts the person allowed the profile's uploads, and so its secrets, to go to
    /// (a Location or redirect there): any port, never from https to plain http.
    pub hosts: Vec<String>,
    /// Hosts the person said no to: no request goes there.
    pub refused: Vec<String>,
}

impl Reach {
    /// Bound to one origin, with the profile's host lists.
    pub fn new(origin: Option<String>, hosts: &[String], refused: &[String]) -> Reach {
        Reach {
            origins: origin.into_iter().collect(),
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            refused: refused.iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    fn refuses(&self, host: &str) -> bool {
        self.refused.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// May a request go to `url`, carrying secrets or not? Never to a refused host; with
    /// secrets, only where they may go ([`Self::admits`]).
    pub fn check(&self, url: &Url, carries_secrets: bool) -> Result<()> {
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        if self.refuses(&host) || (carries_secrets && !self.admits(url)) {
            return Err(Error::HostNotAllowed(host));
        }
        Ok(())
    }

    /// Whether secrets may go to `url`: its origin is one they were given for, or its host
    /// is allowed (and the request would not fall from https to plain http).
    pub fn admits(&self, url: &Url) -> bool {
        let Some(o) = origin(url) else {
            return false;
        };
        if self.origins.contains(&o) {
            return true;
        }
        let host = url.host_str().unwrap_or("");
        let downgrade =
            url.scheme() != "https" && self.origins.iter().any(|b| b.starts_with("https://"));
        !downgrade && self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// The headers of one upload's (or one check's) requests, split into public and secret, and
/// where the secrets may go. Cheap to clone.
#[derive(Clone, Default)]
pub struct Grant {
    public: Arc<HeaderMap>,
    secret: Arc<HeaderMap>,
    reach: Arc<Reach>,
    /// The header command's fetch the secrets came from (`None`: no command).
    pub generation: Option<u64>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("public", &crate::redact::headers_for_log(&self.public))
            .field("secret", &self.secret.keys().collect::<Vec<_>>())
            .field("reach", &self.reach)
            .finish()
    }
}

/// A header pair the HTTP stack takes, or the header named as invalid (never its value).
fn pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let n = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| Error::InvalidHeader(name.to_string()))?;
    let v = HeaderValue::from_str(value.trim())
        .map_err(|_| Error::InvalidHeader(format!("{name}: <invalid value>")))?;
    Ok((n, v))
}

impl Grant {
    /// Headers without any secret: they may go anywhere a request goes.
    pub fn public(headers: &BTreeMap<String, String>) -> Result<Grant> {
        Self::new(headers, &|_| false, Reach::default(), None)
    }

    /// `headers` split by `is_secret`; the secret ones may go where `reach` says.
    pub fn new(
        headers: &BTreeMap<String, String>,
        is_secret: &dyn Fn(&str) -> bool,
        reach: Reach,
        generation: Option<u64>,
    ) -> Result<Grant> {
        let mut public = HeaderMap::new();
        let mut secret = HeaderMap::new();
        for (k, v) in headers {
            let (name, mut value) = pair(k, v)?;
            if is_secret(k) {
                value.set_sensitive(true);
                secret.insert(name, value);
            } else {
                public.insert(name, value);
            }
        }
        Ok(Grant {
            public: Arc::new(public),
            secret: Arc::new(secret),
            reach: Arc::new(reach),
            generation,
        })
    }

    /// Whether this grant carries any secret.
    pub fn has_secrets(&self) -> bool {
        !self.secret.is_empty()
    }

    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// Names of the secret headers (never their values).
    pub fn secret_names(&self) -> Vec<String> {
        self.secret.keys().map(|k| k.as_str().to_string()).collect()
    }

    /// May a request go to `url` at all? Never to a refused host; with secrets, only where
    /// they may go.
    pub fn check(&self, url: &Url) -> Result<()> {
        self.reach.check(url, self.has_secrets())
    }

    /// The headers a request to `url` carries, after [`Self::check`].
    pub fn headers_for(&self, url: &Url) -> Result<HeaderMap> {
        self.check(url)?;
        let mut all = (*self.public).clone();
        for (k, v) in self.secret.iter() {
            all.insert(k.clone(), v.clone());
        }
        Ok(all)
    }

    /// The public headers alone (for a log line or a test).
    pub fn public_headers(&self) -> &HeaderMap {
        &self.public
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::origin_of;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn grant(origin: &str, hosts: &[&str], refused: &[&str]) -> Grant {
        let headers = BTreeMap::from([
            ("Authorization".to_string(), "Bearer t".to_string()),
            ("X-Tenant".to_string(), "acme".to_string()),
        ]);
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let refused: Vec<String> = refused.iter().map(|h| h.to_string()).collect();
        Grant::new(
            &headers,
            &crate::redact::is_sensitive,
            Reach::new(origin_of(origin), &hosts, &refused),
            None,
        )
        .unwrap()
    }

    #[test]
    fn secrets_go_only_to_their_origin_and_allowed_hosts() {
        let g = grant(
            "https://a.example/files/",
            &["cdn.example"],
            &["evil.example"],
        );
        // Where they were given: every path, never another port or scheme.
        let h = g.headers_for(&u("https://a.example/files/x")).unwrap();
        assert_eq!(h["authorization"], "Bearer t");
        assert_eq!(h["x-tenant"], "acme");
        for other in [
            "https://a.example:8443/files/x",
            "http://a.example/files/x",
            "https://b.example/files/x",
            "https://a.example.evil.test/x",
        ] {
            let e = g.headers_for(&u(other)).unwrap_err();
            assert!(matches!(e, Error::HostNotAllowed(_)), "{other}: {e}");
        }
        // An allowed host: any port, but never from https to plain http.
        assert!(g.check(&u("https://CDN.example:9000/up/1")).is_ok());
        assert!(g.check(&u("http://cdn.example/up/1")).is_err());
        // Refused: no request at all, with or without secrets.
        assert!(g.check(&u("https://evil.example/x")).is_err());
        let public = Grant {
            reach: g.reach.clone(),
            ..Grant::public(&BTreeMap::new()).unwrap()
        };
        assert!(public.check(&u("https://evil.example/x")).is_err());
        assert!(public.check(&u("https://anywhere.example/x")).is_ok());
    }

    #[test]
    fn a_grant_without_secrets_goes_anywhere_and_its_debug_shows_no_secret() {
        let g = Grant::public(&BTreeMap::from([("X-Tenant".into(), "acme".into())])).unwrap();
        assert!(!g.has_secrets());
        assert_eq!(
            g.headers_for(&u("http://elsewhere.example/x")).unwrap()["x-tenant"],
            "acme"
        );
        let s = grant("https://a.example/", &[], &[]);
        let shown = format!("{s:?}");
        assert!(
            shown.contains("authorization") && !shown.contains("Bearer"),
            "{shown}"
        );
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://Files.Example.com/tus/").as_deref(),
            Some("https://files.example.com:443")
        );
        assert_eq!(
            origin_of("http://127.0.0.2:1080/files").as_deref(),
            Some("http://127.0.0.2:1080")
        );
        assert_eq!(origin_of("not a url"), None);
    }
}
