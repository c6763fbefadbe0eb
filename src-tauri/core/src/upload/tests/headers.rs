//! Credentials and where they may go: sign-in, header commands, profile edits and moves,
//! redirects, terminations, and URLs in errors.

use super::*;

#[tokio::test]
async fn a_401_or_403_waits_for_sign_in_and_never_creates_again() {
    for status in [401, 403] {
        let (case, out) =
            scripted(1000, None, &[(Method::PATCH, Act::Status(status, vec![]))]).await;
        assert!(
            matches!(out, Outcome::NeedsSignIn(ref m) if m.contains(&status.to_string())),
            "{status}: {out:?}"
        );
        assert_eq!(
            case.server.count(Method::PATCH),
            1,
            "not retried into the ground"
        );
        // Resuming: HEAD answers the same (a gateway whose token expired). The upload is
        // still there: no new one is created, nothing is terminated.
        let server = FakeServer::default();
        let mut case = Case::new(server, 50_000, settings(Some(20_000)));
        case.server.then(Method::PATCH, Act::CutLosing(0));
        case.server.then(Method::HEAD, Act::Status(status, vec![]));
        let out = case.run().await;
        assert!(matches!(out, Outcome::NeedsSignIn(_)), "{status}: {out:?}");
        assert_eq!(case.server.count(Method::POST), 1);
        assert_eq!(case.server.count(Method::DELETE), 0);
        // With credentials back, the same upload goes on.
        let out = case.run().await;
        case.assert_byte_exact(&out);
        assert_eq!(case.server.count(Method::POST), 1, "{status}");
        assert_eq!(case.record().recreated, 0);
    }
}

#[tokio::test]
async fn redirects_elsewhere_and_other_3xx_are_not_followed() {
    for (method, status, want) in [
        (Method::POST, 307, "another host"),
        (Method::PATCH, 302, "302"),
        (Method::PATCH, 308, "another host"),
    ] {
        let (case, out) = scripted(
            1000,
            None,
            &[(
                method.clone(),
                Act::Status(status, vec![("Location", "http://elsewhere.test/x")]),
            )],
        )
        .await;
        let why = match &out {
            Outcome::Failed(m) | Outcome::AsksHost { reason: m, .. } => m,
            o => panic!("{method} {status}: {o:?}"),
        };
        assert!(why.contains(want), "{method} {status}: {out:?}");
        assert!(case
            .server
            .seen()
            .iter()
            .all(|s| !s.url.contains("elsewhere")));
    }
}

#[tokio::test]
async fn refused_credentials_are_fetched_again_once_then_the_upload_waits() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("runs");
    let command = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo \"Authorization: Bearer t$n\"",
        c = count.display()
    );
    let profile = crate::profiles::profile::Profile {
        name: "svc".into(),
        endpoint: ENDPOINT.into(),
        header_command: Some(command),
        ..Default::default()
    };
    let server = FakeServer::default();
    server
        .then(Method::PATCH, Act::Headers(vec![]))
        .then(Method::PATCH, Act::Status(401, vec![]));
    let mut case = Case::with_profile(server, 2 * MIB, settings(Some(MIB as u64)), Some(profile));
    let out = case.run().await;
    case.assert_byte_exact(&out);
    let auth: Vec<String> = case
        .server
        .seen()
        .iter()
        .filter(|s| s.method == Method::PATCH)
        .map(|s| s.header("Authorization").unwrap_or("").to_string())
        .collect();
    assert_eq!(
        auth,
        ["Bearer t1", "Bearer t1", "Bearer t2"],
        "refreshed once, then went on"
    );
    assert_eq!(case.record().recreated, 0);

    // A token the server keeps refusing: one refresh, then the upload waits for sign-in
    // (never failed after the retry budget, never created again).
    let server = FakeServer::default();
    for _ in 0..3 {
        server.then(Method::POST, Act::Status(401, vec![]));
    }
    let profile = crate::profiles::profile::Profile {
        name: "svc".into(),
        endpoint: ENDPOINT.into(),
        header_command: Some("echo 'Authorization: Bearer old'".into()),
        ..Default::default()
    };
    let mut case = Case::with_profile(server, 1000, settings(None), Some(profile));
    let out = case.run().await;
    assert!(
        matches!(out, Outcome::NeedsSignIn(ref m) if m.contains("401")),
        "{out:?}"
    );
    assert_eq!(case.server.count(Method::POST), 2);
    // A broken command is shown with its stderr, and the upload waits too.
    let mut p = case.ctx.store.profile_by_name("svc").unwrap().unwrap();
    p.header_command = Some("echo 'token service down' >&2; exit 1".into());
    case.ctx.store.save_profile(&p).unwrap();
    case.ctx.command_headers.forget(p.id);
    let out = case.run().await;
    assert!(
        matches!(out, Outcome::NeedsSignIn(ref m) if m.contains("token service down")),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_profile_edit_reaches_queued_uploads_at_request_time() {
    let profile = crate::profiles::profile::Profile {
        name: "p".into(),
        endpoint: ENDPOINT.into(),
        headers: BTreeMap::from([("Authorization".into(), "Bearer old".into())]).into(),
        ..Default::default()
    };
    let server = FakeServer::default();
    server.then(Method::PATCH, Act::Status(401, vec![]));
    let mut case = Case::with_profile(server, 1000, settings(None), Some(profile));
    assert!(matches!(case.run().await, Outcome::NeedsSignIn(_)));
    let mut p = case.ctx.store.profile_by_name("p").unwrap().unwrap();
    p.headers
        .insert("Authorization".into(), "Bearer new".into());
    case.ctx.store.save_profile(&p).unwrap();
    let out = case.run().await;
    case.assert_byte_exact(&out);
    let last = case
        .server
        .seen()
        .into_iter()
        .rfind(|s| s.method == Method::PATCH)
        .unwrap();
    assert_eq!(last.header("Authorization"), Some("Bearer new"));
    assert!(
        case.record().headers.is_empty(),
        "no credentials in the upload row"
    );
}

#[tokio::test]
async fn a_given_upload_url_on_another_host_gets_secrets_only_when_the_profile_allows_it() {
    for allowed in [false, true] {
        let server = FakeServer::default();
        let url = precreated(&server, 1000, None).await;
        let url = url.replacen("tus.test", "upload.cdn.test", 1);
        let profile = crate::profiles::profile::Profile {
            name: "p".into(),
            endpoint: ENDPOINT.into(),
            headers: BTreeMap::from([("Authorization".to_string(), "Bearer t".to_string())]).into(),
            allowed_hosts: if allowed {
                vec!["upload.cdn.test".into()]
            } else {
                vec![]
            },
            ..Default::default()
        };
        let mut case = Case::build(server, 1000, settings(None), Some(profile), Some(url));
        let out = case.run().await;
        if allowed {
            case.assert_byte_exact(&out);
        } else {
            assert!(
                matches!(out, Outcome::AsksHost { ref host, .. } if host == "upload.cdn.test"),
                "{out:?}"
            );
            assert!(
                case.server
                    .seen()
                    .iter()
                    .all(|s| !s.url.contains("cdn.test")),
                "no request (with the token) went there"
            );
        }
    }
}

#[test]
fn where_a_request_may_be_sent_on_to() {
    let u = |s: &str| url::Url::parse(s).unwrap();
    let allowed = vec!["cdn.example".to_string()];
    let cases = [
        (
            "https://a.example/files/1",
            "https://a.example/other/1",
            true,
        ),
        ("https://a.example/files/1", "https://cdn.example/1", true),
        ("https://a.example/files/1", "https://evil.example/1", false),
        (
            "https://a.example/files/1",
            "http://a.example/files/1",
            false,
        ),
        ("https://a.example/files/1", "http://cdn.example/1", false),
        (
            "http://a.example/files/1",
            "https://a.example/files/1",
            false,
        ),
        ("http://a.example:1080/f", "http://a.example:1081/f", false),
    ];
    for (from, to, ok) in cases {
        let r = crate::tus::client::may_move(&u(from), &u(to), &allowed);
        assert_eq!(r.is_ok(), ok, "{from} -> {to}: {r:?}");
    }
    let why = crate::tus::client::may_move(&u("https://a/x"), &u("https://Evil.example/y"), &[])
        .unwrap_err();
    assert!(
        matches!(why, crate::Error::HostNotAllowed(ref h) if h == "evil.example"),
        "{why}"
    );
}

#[tokio::test]
async fn redirects_are_followed_within_the_origin_and_to_allowed_hosts_only() {
    // HEAD and PATCH moved within the origin: followed (HEAD by the client, PATCH sent again).
    let server = FakeServer::default();
    server
        .then(Method::PATCH, Act::CutLosing(0))
        .then(
            Method::HEAD,
            Act::Status(307, vec![("Location", "/moved/1")]),
        )
        .then(
            Method::PATCH,
            Act::Status(308, vec![("Location", "/moved-again/1")]),
        );
    let mut case = Case::new(server, 100_000, settings(None));
    let out = case.run().await;
    case.assert_byte_exact(&out);
    assert!(case
        .server
        .seen()
        .iter()
        .any(|s| s.url.contains("/moved-again/1")));
    // To another host: only when the profile allows it.
    for allowed in [false, true] {
        let profile = crate::profiles::profile::Profile {
            name: "p".into(),
            endpoint: ENDPOINT.into(),
            allowed_hosts: if allowed {
                vec!["cdn.test".into()]
            } else {
                vec![]
            },
            ..Default::default()
        };
        let server = FakeServer::default();
        server.then(
            Method::PATCH,
            Act::Status(307, vec![("Location", "http://cdn.test/files/1")]),
        );
        let mut case = Case::with_profile(server, 1000, settings(None), Some(profile));
        let out = case.run().await;
        if allowed {
            case.assert_byte_exact(&out);
            assert!(case
                .server
                .seen()
                .iter()
                .any(|s| s.url.starts_with("http://cdn.test/")));
        } else {
            assert!(
                matches!(out, Outcome::AsksHost { ref host, .. } if host == "cdn.test"),
                "{out:?}"
            );
            assert!(case
                .server
                .seen()
                .iter()
                .all(|s| !s.url.contains("cdn.test")));
        }
    }
}

/// A profile that carries `token` for `endpoint`, bound to where it was given.
fn profile_at(endpoint: &str, token: &str) -> crate::profiles::profile::Profile {
    let mut p = crate::profiles::profile::Profile {
        name: "work".into(),
        endpoint: endpoint.into(),
        headers: BTreeMap::from([("Authorization".to_string(), format!("Bearer {token}"))]).into(),
        ..Default::default()
    };
    p.bind(None);
    p
}

#[tokio::test]
async fn an_upload_whose_profile_moved_to_another_server_gets_none_of_its_credentials() {
    // The upload is on tus.test (ENDPOINT); its profile was since moved to b.test with a
    // token given for b.test.
    let server = FakeServer::default();
    let moved = profile_at("http://b.test/files/", "token-for-b");
    let mut case = Case::with_profile(server, 50_000, settings(None), Some(moved.clone()));
    let out = case.run().await;
    match &out {
        Outcome::NeedsSignIn(said) => {
            assert_eq!(said.code, "credentials_elsewhere", "{said:?}");
            assert!(
                said.text.contains("tus.test") && said.text.contains("b.test"),
                "{}",
                said.text
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        case.server.seen().is_empty(),
        "nothing went to tus.test, least of all b.test's token"
    );
    // Termination is judged the same way, before anything is read.
    let rec = case.ctx.store.get(case.id).unwrap();
    assert!(matches!(
        termination_blocked(&case.ctx, &rec, "http://tus.test/files/1"),
        Some(Error::CredentialsElsewhere { .. })
    ));
    // The person allows tus.test in the profile: now the token may go there.
    let pid = rec.profile_id.unwrap();
    let mut allowed = case.ctx.store.profile(pid).unwrap().unwrap();
    allowed.allowed_hosts = vec!["tus.test".into()];
    case.ctx.store.save_profile(&allowed).unwrap();
    let out = case.run().await;
    case.assert_byte_exact(&out);
    assert!(case
        .server
        .seen()
        .iter()
        .all(|s| s.header("authorization") == Some("Bearer token-for-b")));
}

#[tokio::test]
async fn a_termination_is_sent_only_where_the_credentials_may_go() {
    let server = FakeServer::default();
    let case = Case::with_profile(
        server,
        1000,
        settings(None),
        Some(profile_at(ENDPOINT, "t")),
    );
    let rec = case.ctx.store.get(case.id).unwrap();
    // The upload's own server: sent.
    assert!(termination_blocked(&case.ctx, &rec, "http://tus.test/files/1").is_none());
    // A URL a service handed over on a host never allowed: not sent.
    let why = termination_blocked(&case.ctx, &rec, "http://upload.cdn.test/files/1").unwrap();
    assert!(
        matches!(why, Error::HostNotAllowed(ref h) if h == "upload.cdn.test"),
        "{why}"
    );
    // Refused by the person: not sent, even for a profile without secrets.
    let pid = rec.profile_id.unwrap();
    let mut p = case.ctx.store.profile(pid).unwrap().unwrap();
    p.headers.clear();
    p.answer_host("upload.cdn.test", false);
    case.ctx.store.save_profile(&p).unwrap();
    assert!(termination_blocked(&case.ctx, &rec, "http://upload.cdn.test/files/1").is_some());
    assert!(termination_blocked(&case.ctx, &rec, "http://other.test/files/1").is_none());
    // Allowed: sent.
    p.answer_host("upload.cdn.test", true);
    p.headers.insert("Authorization".into(), "Bearer t".into());
    case.ctx.store.save_profile(&p).unwrap();
    assert!(termination_blocked(&case.ctx, &rec, "http://upload.cdn.test/files/1").is_none());
}

#[tokio::test]
async fn the_client_sends_no_request_that_would_carry_a_secret_where_it_may_not_go() {
    let server = FakeServer::default();
    let client = TusClient::with_transport(Arc::new(server.clone()), Duration::from_millis(300));
    let grant = crate::tus::gate::Grant::new(
        &BTreeMap::from([("Authorization".to_string(), "Bearer t".to_string())]),
        &crate::redact::is_sensitive,
        crate::tus::gate::Reach::new(
            crate::origin::origin_of(ENDPOINT),
            &[],
            &["refused.test".into()],
        ),
        None,
    )
    .unwrap();
    for url in [
        "http://elsewhere.test/files/1",
        "http://refused.test/files/1",
    ] {
        for e in [
            client.delete(url, &grant).await.unwrap_err(),
            client.head(url, &grant).await.unwrap_err(),
            client.options(url, &grant).await.unwrap_err(),
        ] {
            assert!(matches!(e, Error::HostNotAllowed(_)), "{url}: {e}");
        }
    }
    assert!(server.seen().is_empty(), "not one request left");
    // A redirect to another host is not followed with the secret either.
    server.then(
        Method::HEAD,
        Act::Status(307, vec![("Location", "http://elsewhere.test/files/1")]),
    );
    let created = client
        .create(
            &url::Url::parse(ENDPOINT).unwrap(),
            &grant,
            Some(10),
            "",
            None,
        )
        .await
        .unwrap();
    let e = client.head(&created.url, &grant).await.unwrap_err();
    assert!(matches!(e, Error::HostNotAllowed(_)), "{e}");
    assert!(server
        .seen()
        .iter()
        .all(|s| !s.url.contains("elsewhere.test")));
}

#[tokio::test]
async fn upload_urls_in_errors_name_only_their_origin() {
    let moved = Error::Moved("https://up.example:8443/files/abc-capability".into());
    let said = Said::of(&moved);
    assert!(!said.detail.contains("abc-capability"), "{}", said.detail);
    assert!(
        said.detail.contains("https://up.example:8443"),
        "{}",
        said.detail
    );
    for location in ["ftp://h.example/secret-cap", "http://[::1/secret-cap"] {
        let server = FakeServer::default();
        server.then(Method::POST, Act::Status(201, vec![("Location", location)]));
        let client =
            TusClient::with_transport(Arc::new(server.clone()), Duration::from_millis(300));
        let e = client
            .create(
                &url::Url::parse(ENDPOINT).unwrap(),
                &Grant::default(),
                Some(1),
                "",
                None,
            )
            .await
            .unwrap_err();
        assert!(!e.to_string().contains("secret-cap"), "{e}");
    }
}
