//! Keeping secrets out of logs and UI payloads. Header values such as Authorization are
//! stored (they are needed to resume) but never printed.

use reqwest::header::HeaderMap;

/// True for header names whose values are secrets: credentials by the names services give
/// them (Authorization, Proxy-Authorization, Cookie, X-Api-Key, Ocp-Apim-Subscription-Key,
/// X-Functions-Key, *Token*, *Secret*, *Signature*, ...). A profile can mark others secret.
pub fn is_sensitive(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    n == "cookie"
        || n == "set-cookie"
        || n.ends_with("key")
        || [
            "auth",
            "token",
            "secret",
            "signature",
            "password",
            "passwd",
            "session",
            "credential",
            "api-key",
            "api_key",
            "apikey",
        ]
        .iter()
        .any(|w| n.contains(w))
}

/// Masks a secret value for display: the length class is hidden too.
pub fn mask(name: &str, value: &str) -> String {
    if is_sensitive(name) {
        "••••••".to_string()
    } else {
        value.to_string()
    }
}

/// Request headers as Tusker keeps them: a map whose `Debug` masks secret values, so a
/// `{:?}` of anything holding headers (a profile, a record, a request) cannot leak them.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Headers(pub std::collections::BTreeMap<String, String>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, mask(k, v))))
            .finish()
    }
}

impl std::ops::Deref for Headers {
    type Target = std::collections::BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Headers {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<std::collections::BTreeMap<String, String>> for Headers {
    fn from(m: std::collections::BTreeMap<String, String>) -> Self {
        Headers(m)
    }
}

impl<const N: usize> From<[(String, String); N]> for Headers {
    fn from(a: [(String, String); N]) -> Self {
        Headers(a.into())
    }
}

impl IntoIterator for Headers {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Renders headers for a log line with secret values masked: those secret by name, and
/// every value marked sensitive (the gate marks each secret of a grant, whatever its name).
pub fn headers_for_log(headers: &HeaderMap) -> String {
    let mut out = String::new();
    for (k, v) in headers {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(k.as_str());
        out.push_str(": ");
        if v.is_sensitive() {
            out.push_str("••••••");
        } else {
            out.push_str(&mask(k.as_str(), v.to_str().unwrap_or("<binary>")));
        }
    }
    out
}

/// Removes `user:password@` from any URL inside a message.
pub fn strip_userinfo(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == ')' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_headers_masks_secrets() {
        let h: Headers = [
            ("Authorization".to_string(), "Bearer sekrit".to_string()),
            ("X-Tenant".to_string(), "acme".to_string()),
        ]
        .into();
        let shown = format!("{h:?}");
        assert!(
            !shown.contains("sekrit") && shown.contains("acme"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_are_known_by_the_names_services_give_them() {
        for secret in [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "X-Api-Key",
            "Ocp-Apim-Subscription-Key",
            "X-Functions-Key",
            "apikey",
            "X-Auth-Token",
            "X-Amz-Security-Token",
            "X-Client-Secret",
            "X-Upload-Signature",
            "X-Session-Id",
            "Private-Key",
            "X-Credential",
        ] {
            assert!(is_sensitive(secret), "{secret}");
        }
        for public in [
            "X-Tenant",
            "X-Request-Id",
            "Content-Type",
            "X-Bucket",
            "Upload-Metadata",
        ] {
            assert!(!is_sensitive(public), "{public}");
        }
    }

    #[test]
    fn a_log_line_masks_secrets_by_name_and_values_marked_sensitive() {
        let mut h = HeaderMap::new();
        h.insert("x-tenant", "acme".parse().unwrap());
        h.insert("authorization", "Bearer by-name".parse().unwrap());
        let mut marked: reqwest::header::HeaderValue = "marked-value".parse().unwrap();
        marked.set_sensitive(true);
        h.insert("x-signed-part", marked);
        let line = headers_for_log(&h);
        assert!(line.contains("acme"), "{line}");
        assert!(
            !line.contains("by-name") && !line.contains("marked-value"),
            "{line}"
        );
    }

    #[test]
    fn masks_secrets_only() {
        assert_eq!(mask("Authorization", "Bearer abc"), "••••••");
        assert_eq!(mask("X-Auth-Token", "abc"), "••••••");
        assert_eq!(mask("X-Request-Id", "42"), "42");
    }

    #[test]
    fn strips_userinfo() {
        assert_eq!(
            strip_userinfo("error sending request for url (http://bob:pw@host:1/files/x)"),
            "error sending request for url (http://***@host:1/files/x)"
        );
        assert_eq!(strip_userinfo("http://host/a"), "http://host/a");
    }
}
