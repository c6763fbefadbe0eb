//! Where an upload goes, as identity sees it. "Already uploaded" and "resume that upload"
//! hold only within one destination: two profiles on one endpoint that differ by a tenant
//! header or metadata (Supabase's `bucketName`), or by whose credentials they carry, are two
//! places, and a file sent to one is not in the other.
//!
//! A destination is the endpoint, the request's metadata, the profile's non-secret headers,
//! and which credential goes along: an identifier, never the value. A profile's credentials
//! are identified by the profile (a token refreshed in the same profile is the same sign-in);
//! headers given with a request of their own by the references they are kept under.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::profiles::profile::Profile;

/// The destination key: `d1:` and 32 hex digits of SHA-256 over its parts.
pub fn key(
    endpoint: &str,
    metadata: &BTreeMap<String, String>,
    public_headers: &BTreeMap<String, String>,
    credential: &str,
) -> String {
    let parts = serde_json::json!([endpoint.trim(), metadata, public_headers, credential]);
    let digest = Sha256::digest(parts.to_string().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("d1:{hex}")
}

/// The headers that tell destinations apart: names in lower case, values trimmed.
fn public(
    headers: &BTreeMap<String, String>,
    is_secret: &dyn Fn(&str) -> bool,
) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(k, _)| !is_secret(k))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// Where uploads made with `profile` as it is go (its endpoint, metadata, headers).
pub fn of_profile(profile: &Profile) -> String {
    of(
        &profile.endpoint,
        &profile.metadata,
        Some(profile),
        &BTreeMap::new(),
    )
}

/// The destination of uploads to `endpoint` with `metadata`, carrying `profile`'s headers
/// (or, without a profile, `row_headers`, as stored: secrets by their references).
pub fn of(
    endpoint: &str,
    metadata: &BTreeMap<String, String>,
    profile: Option<&Profile>,
    row_headers: &BTreeMap<String, String>,
) -> String {
    match profile {
        Some(p) => {
            let credential = if p.has_credentials() {
                format!("profile:{}", p.id)
            } else {
                String::new()
            };
            key(
                endpoint,
                metadata,
                &public(&p.headers, &|k| p.is_secret(k)),
                &credential,
            )
        }
        None => {
            let refs: Vec<&str> = row_headers
                .iter()
                .filter(|(k, _)| crate::redact::is_sensitive(k))
                .map(|(_, v)| v.as_str())
                .collect();
            key(
                endpoint,
                metadata,
                &public(row_headers, &crate::redact::is_sensitive),
                &refs.join(","),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(id: i64, headers: &[(&str, &str)], metadata: &[(&str, &str)]) -> Profile {
        Profile {
            id,
            endpoint: "https://x.supabase.co/storage/v1/upload/resumable".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
                .into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn dest(p: &Profile) -> String {
        of(&p.endpoint, &p.metadata, Some(p), &BTreeMap::new())
    }

    #[test]
    fn tenants_on_one_endpoint_are_different_destinations() {
        let photos = profile(1, &[("X-Tenant", "a")], &[("bucketName", "photos")]);
        let videos = profile(2, &[("X-Tenant", "a")], &[("bucketName", "videos")]);
        let other_tenant = profile(3, &[("X-Tenant", "b")], &[("bucketName", "photos")]);
        let keys = [dest(&photos), dest(&videos), dest(&other_tenant)];
        assert_ne!(keys[0], keys[1], "metadata tells them apart");
        assert_ne!(keys[0], keys[2], "a tenant header tells them apart");
        // Without credentials, the same settings are the same place, whichever profile.
        let same = profile(9, &[("x-tenant", " a ")], &[("bucketName", "photos")]);
        assert_eq!(dest(&same), keys[0]);
    }

    #[test]
    fn which_credential_goes_along_is_part_of_it_but_never_its_value() {
        let a = profile(1, &[("Authorization", "secret-ref:keyring:k1")], &[]);
        let a_refreshed = profile(1, &[("Authorization", "secret-ref:keyring:k2")], &[]);
        let b = profile(2, &[("Authorization", "secret-ref:keyring:k1")], &[]);
        assert_eq!(
            dest(&a),
            dest(&a_refreshed),
            "a refreshed token is the same sign-in"
        );
        assert_ne!(
            dest(&a),
            dest(&b),
            "another profile's credentials are another tenant"
        );
        let commanded = Profile {
            header_command: Some("get-token".into()),
            ..profile(1, &[], &[])
        };
        assert_eq!(dest(&commanded), dest(&a));
        assert!(!dest(&a).contains("k1"));
        assert!(dest(&a).starts_with("d1:") && dest(&a).len() == 35);
    }
}
