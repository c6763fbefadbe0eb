//! A URL's origin and host: the unit secrets are bound to, and the name sentences give it.

use url::Url;

/// `scheme://host:port` of a URL, the unit secrets are bound to (the browser's origin).
pub fn origin(url: &Url) -> Option<String> {
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    Some(format!("{}://{host}:{port}", url.scheme()))
}

/// [`origin`] of a URL given as text (`None`: not a URL with a host).
pub fn origin_of(url: &str) -> Option<String> {
    origin(&Url::parse(url.trim()).ok()?)
}

/// The host of an origin or URL, for sentences ("files.example.com").
pub fn host_of(url: &str) -> String {
    Url::parse(url.trim())
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| url.to_string())
}
