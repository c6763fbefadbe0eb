//! Resume (HEAD): what the server holds after a cut at every phase, and a server upload
//! gone, of another length, or answered without an offset.

use super::*;

#[tokio::test]
async fn a_404_or_410_to_patch_creates_the_upload_again() {
    for status in [404, 410] {
        let (case, out) = scripted(
            2 * MIB,
            Some(MIB as u64),
            &[
                (Method::PATCH, Act::Headers(vec![])),
                (Method::PATCH, Act::Status(status, vec![])),
            ],
        )
        .await;
        case.assert_byte_exact(&out);
        assert_eq!(case.server.count(Method::POST), 2, "{status}");
        assert_eq!(case.record().recreated, 1);
    }
}

#[tokio::test]
async fn a_resume_whose_head_is_404_creates_again_without_a_wasted_patch() {
    let server = FakeServer::default();
    let mut case = Case::new(server, 2 * MIB, settings(Some(MIB as u64)));
    case.server
        .then(Method::PATCH, Act::Headers(vec![]))
        .then(Method::PATCH, Act::Status(500, vec![]))
        .then(Method::PATCH, Act::Status(500, vec![]))
        .then(Method::PATCH, Act::Status(500, vec![]))
        .then(Method::PATCH, Act::Status(500, vec![]));
    let out = case.run().await;
    assert!(
        matches!(out, Outcome::Failed(ref m) if m.contains("gave up")),
        "{out:?}"
    );
    // The server loses it while the upload waits; the next run asks HEAD first.
    case.server.then(Method::HEAD, Act::Forget);
    let patches_before = case.patches().len();
    let out = case.run().await;
    case.assert_byte_exact(&out);
    let after: Vec<_> = case.patches()[patches_before..].to_vec();
    assert_eq!(
        after.first().map(|p| p.0),
        Some(0),
        "went on from 0 on the new upload"
    );
    assert_eq!(case.record().recreated, 1);
}

#[tokio::test]
async fn a_cut_at_every_phase_ends_byte_exact_and_only_the_cut_bytes_go_twice() {
    let phases: Vec<(&str, Method, Act, u64)> = vec![
        ("options", Method::OPTIONS, Act::CutLosing(0), 0),
        (
            "post before the answer",
            Method::POST,
            Act::CutAfterHandling,
            0,
        ),
        ("patch before its body", Method::PATCH, Act::CutLosing(0), 0),
        // The server read these bytes and kept none: only they go twice.
        (
            "patch mid-body, lost",
            Method::PATCH,
            Act::CutLosing(300_000),
            300_000,
        ),
        (
            "patch mid-body, kept",
            Method::PATCH,
            Act::CutKeeping(300_000),
            0,
        ),
        (
            "patch after the server stored it",
            Method::PATCH,
            Act::CutAfterHandling,
            0,
        ),
        ("head", Method::HEAD, Act::CutLosing(0), 0),
    ];
    for (phase, method, act, twice) in phases {
        let server = FakeServer::default();
        // HEAD is only asked after a failure: cut a PATCH first so one comes.
        if method == Method::HEAD {
            server.then(Method::PATCH, Act::CutLosing(0));
        }
        server.then(method, act);
        let mut case = Case::new(server, 2 * MIB + 5, settings(Some(MIB as u64)));
        let out = case.run().await;
        case.assert_byte_exact(&out);
        // A POST whose answer was cut leaves an empty upload behind (its URL never arrived).
        let expected_uploads = if phase.starts_with("post") { 2 } else { 1 };
        assert_eq!(case.server.uploads(), expected_uploads, "{phase}");
        assert_eq!(case.sent_twice(), twice, "{phase}");
        assert_eq!(case.regressed, 0, "{phase}");
    }
}

#[tokio::test]
async fn a_head_of_another_length_terminates_and_creates_again() {
    let server = FakeServer::default();
    server.then(Method::PATCH, Act::CutLosing(0)).then(
        Method::HEAD,
        Act::Headers(vec![("Upload-Length", Some("1"))]),
    );
    let mut case = Case::new(server, 10_000, settings(None));
    let out = case.run().await;
    case.assert_byte_exact(&out);
    assert_eq!(case.server.count(Method::DELETE), 1);
    assert_eq!(
        case.server.uploads(),
        1,
        "the mismatched upload was terminated"
    );
}

#[tokio::test]
async fn a_head_without_or_with_a_bad_offset_fails_naming_the_header() {
    for bad in [None, Some("twelve")] {
        let (_, out) = scripted(
            10_000,
            None,
            &[
                (Method::PATCH, Act::CutLosing(0)),
                (Method::HEAD, Act::Headers(vec![("Upload-Offset", bad)])),
            ],
        )
        .await;
        assert!(
            matches!(out, Outcome::Failed(ref m) if m.contains("Upload-Offset")),
            "{bad:?}: {out:?}"
        );
    }
}

#[tokio::test]
async fn the_client_reads_each_answer_as_the_spec_says() {
    let server = FakeServer::default();
    let client = TusClient::with_transport(Arc::new(server.clone()), Duration::from_millis(200));
    let h = Grant::default();
    // DELETE of an upload already gone counts as done; a refusal does not.
    assert!(client.delete("http://tus.test/files/9", &h).await.is_ok());
    server.then(Method::DELETE, Act::Status(410, vec![]));
    assert!(client.delete("http://tus.test/files/9", &h).await.is_ok());
    server.then(Method::DELETE, Act::Status(403, vec![]));
    let e = client
        .delete("http://tus.test/files/9", &h)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    // OPTIONS: a 503 is worth retrying, a 200 without tus headers is not a tus server, an
    // unreadable Tus-Max-Size is a protocol error.
    server.then(
        Method::OPTIONS,
        Act::Status(503, vec![("Retry-After", "7")]),
    );
    let e = client.options(ENDPOINT, &h).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    server.then(
        Method::OPTIONS,
        Act::Headers(vec![("Tus-Max-Size", Some("lots"))]),
    );
    let e = client.options(ENDPOINT, &h).await.unwrap_err();
    assert!(e.to_string().contains("Tus-Max-Size"), "{e}");
    // A deferred length reads as deferred.
    let endpoint = url::Url::parse(ENDPOINT).unwrap();
    let created = client.create(&endpoint, &h, None, "", None).await.unwrap();
    assert_eq!(created.url, "http://tus.test/files/1");
    let head = client.head(&created.url, &h).await.unwrap();
    assert!(head.length_deferred && head.length.is_none() && head.offset == 0);
    // Every request says which protocol it speaks.
    assert!(server
        .seen()
        .iter()
        .all(|s| s.header("Tus-Resumable") == Some("1.0.0")));
}
