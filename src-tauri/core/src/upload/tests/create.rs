//! Create (POST) and what comes before it: OPTIONS and its absence, the Location, an empty
//! file, and an upload URL a service handed over.

use super::*;

#[tokio::test]
async fn a_412_names_the_versions_the_server_speaks() {
    let (_, out) = scripted(
        1000,
        None,
        &[(
            Method::POST,
            Act::Status(412, vec![("Tus-Version", "0.2.2")]),
        )],
    )
    .await;
    match out {
        Outcome::Failed(m) => assert!(m.contains("0.2.2"), "{m}"),
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn a_201_without_location_or_with_a_strange_one_fails_clearly() {
    for (change, want) in [
        (None, "without a Location"),
        (Some("ftp://x.test/1"), "not http(s)"),
    ] {
        let (_, out) = scripted(
            1000,
            None,
            &[(Method::POST, Act::Headers(vec![("Location", change)]))],
        )
        .await;
        assert!(
            matches!(out, Outcome::Failed(ref m) if m.contains(want)),
            "{out:?}"
        );
    }
}

#[tokio::test]
async fn without_options_uploads_go_ahead_with_tus_core() {
    // A gateway that hides OPTIONS (405, 404, 401) or answers it with a page.
    for act in [
        Act::Status(405, vec![]),
        Act::Status(404, vec![]),
        Act::Status(401, vec![]),
        Act::Headers(vec![("Tus-Version", None)]),
    ] {
        let (case, out) =
            scripted(2 * MIB, Some(MIB as u64), &[(Method::OPTIONS, act.clone())]).await;
        case.assert_byte_exact(&out);
        assert_eq!(case.server.count(Method::OPTIONS), 1, "{act:?}: asked once");
        // No extension is assumed: no checksum header.
        assert!(case
            .server
            .seen()
            .iter()
            .all(|s| s.header("Upload-Checksum").is_none()));
    }
    // An empty file without creation-defer-length: the POST declares length 0 and is done.
    let (case, out) = scripted(0, None, &[(Method::OPTIONS, Act::Status(405, vec![]))]).await;
    case.assert_byte_exact(&out);
    assert_eq!(case.server.count(Method::PATCH), 0);
}

#[tokio::test]
async fn a_non_tus_endpoint_or_one_too_small_fails_clearly() {
    // OPTIONS and POST both refused: not a tus server, and the message says both answers.
    let (_, out) = scripted(
        1000,
        None,
        &[
            (Method::OPTIONS, Act::Status(404, vec![])),
            (Method::POST, Act::Status(404, vec![])),
        ],
    )
    .await;
    assert!(
        matches!(out, Outcome::Failed(ref m) if m.contains("not a tus server") && m.contains("POST answered 404")),
        "{out:?}"
    );
    let server = FakeServer::default();
    server.max_size(999);
    let mut case = Case::new(server, 1000, settings(None));
    let out = case.run().await;
    assert!(
        matches!(out, Outcome::Failed(ref m) if m.contains("at most 999")),
        "{out:?}"
    );
    assert_eq!(case.server.count(Method::POST), 0);
}

#[tokio::test]
async fn an_empty_file_completes_with_one_post() {
    let (case, out) = scripted(0, None, &[]).await;
    case.assert_byte_exact(&out);
    assert_eq!(case.server.count(Method::POST), 1);
}

#[tokio::test]
async fn a_given_upload_url_is_continued_from_the_servers_offset_and_never_created() {
    let len = 2 * MIB + 3;
    let data = content(len);
    // Empty, then with part of the file already sent by the service's own client.
    for already in [0usize, 700_000] {
        let server = FakeServer::default();
        let first = (already > 0).then(|| data[..already].to_vec());
        let url = precreated(&server, len as u64, first).await;
        let mut case = Case::build(
            server,
            len,
            settings(Some(MIB as u64)),
            None,
            Some(url.clone()),
        );
        let out = case.run().await;
        case.assert_byte_exact(&out);
        assert_eq!(case.record().upload_url.as_deref(), Some(url.as_str()));
        assert_eq!(
            case.server.count(Method::POST),
            1,
            "only the service's own POST"
        );
        assert_eq!(
            case.patches()[0].0,
            already as u64,
            "from the server's offset"
        );
        assert_eq!(case.sent_twice(), 0);
    }
}

#[tokio::test]
async fn a_given_upload_url_of_another_length_or_gone_fails_clearly() {
    let server = FakeServer::default();
    let url = precreated(&server, 999, None).await;
    let mut case = Case::build(server, 1000, settings(None), None, Some(url));
    let out = case.run().await;
    assert!(
        matches!(out, Outcome::Failed(ref m) if m.contains("upload URL") && m.contains("1000 bytes")),
        "{out:?}"
    );
    assert_eq!(
        case.server.count(Method::DELETE),
        0,
        "the service's upload is left alone"
    );

    let server = FakeServer::default();
    let url = precreated(&server, 1000, None).await;
    server.then(Method::HEAD, Act::Forget);
    let mut case = Case::build(server, 1000, settings(None), None, Some(url));
    let out = case.run().await;
    assert!(
        matches!(out, Outcome::Failed(ref m) if m.contains("new upload URL")),
        "{out:?}"
    );
    assert_eq!(
        case.server.count(Method::POST),
        1,
        "never created by Tusker"
    );
}
