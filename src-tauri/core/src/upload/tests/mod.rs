//! The upload worker against the scripted server ([`crate::tus::transport::fake`]): one test per
//! answer the spec and real servers give, and a cut at every phase. Each ends with the
//! server's bytes compared to the file's, so "completed" always means byte-exact.

use super::*;
use crate::journal::record::UploadState;
use crate::tus::transport::fake::{Act, FakeServer, ENDPOINT};
use reqwest::Method;
use std::time::Duration;

struct Case {
    _dir: tempfile::TempDir,
    server: FakeServer,
    ctx: UploadCtx,
    content: Vec<u8>,
    id: UploadId,
    regressed: u64,
    notes: Vec<String>,
}

/// Deterministic, non-repeating bytes (a shifted copy would not compare equal).
fn content(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn settings(chunk: Option<u64>) -> UploadSettings {
    UploadSettings {
        chunk_size: chunk,
        stall_timeout: Duration::from_millis(400),
        final_answer_timeout: Duration::from_millis(400),
        retry: RetryPolicy {
            base: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_attempts: 3,
            network_patience: None,
        },
        ..UploadSettings::default()
    }
}

impl Case {
    fn new(server: FakeServer, len: usize, settings: UploadSettings) -> Case {
        Self::with_profile(server, len, settings, None)
    }

    fn with_profile(
        server: FakeServer,
        len: usize,
        settings: UploadSettings,
        profile: Option<crate::profiles::profile::Profile>,
    ) -> Case {
        Self::build(server, len, settings, profile, None)
    }

    fn build(
        server: FakeServer,
        len: usize,
        settings: UploadSettings,
        profile: Option<crate::profiles::profile::Profile>,
        upload_url: Option<String>,
    ) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.bin");
        let content = content(len);
        std::fs::write(&path, &content).unwrap();
        let (fingerprint, stamp) = fingerprint::fingerprint(&path).unwrap();
        let store = Store::open_in_memory().unwrap();
        let profile_id = profile.map(|p| store.save_profile(&p).unwrap());
        let rec = store
            .insert(&crate::journal::NewUpload {
                path: path.display().to_string(),
                name: "file.bin".into(),
                stamp,
                fingerprint,
                endpoint: ENDPOINT.into(),
                metadata: BTreeMap::new(),
                headers: Default::default(),
                chunk_size: None,
                state: UploadState::Queued,
                profile_id,
                upload_url,
            })
            .unwrap();
        let ctx = UploadCtx {
            store,
            client: TusClient::with_transport(Arc::new(server.clone()), Duration::from_millis(300)),
            caps: CapsCache::default(),
            limiter: Arc::new(RateLimiter::new(0)),
            settings: Arc::new(settings),
            command_headers: crate::profiles::profile::CommandHeaders::default(),
            secrets: crate::profiles::secrets::Secrets::open(dir.path()),
            connections: 4,
            try_now: Default::default(),
        };
        Case {
            _dir: dir,
            server,
            ctx,
            content,
            id: rec.id,
            regressed: 0,
            notes: Vec::new(),
        }
    }

    /// One run of the worker, as the scheduler starts it.
    async fn run(&mut self) -> Outcome {
        let (epoch, rec) = self
            .ctx
            .store
            .begin_run(self.id, UploadState::Uploading)
            .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reporter = Reporter {
            id: self.id,
            epoch,
            tx,
        };
        let outcome = tokio::time::timeout(
            Duration::from_secs(20),
            run(self.ctx.clone(), self.id, reporter, rec),
        )
        .await
        .expect("the worker ended");
        while let Ok((_, _, ev)) = rx.try_recv() {
            match ev {
                WorkerEvent::Regressed { from, to } => self.regressed += from - to,
                WorkerEvent::Note(n) => self.notes.push(n),
                _ => {}
            }
        }
        outcome
    }

    fn record(&self) -> UploadRecord {
        self.ctx.store.get(self.id).unwrap()
    }

    /// Completed, journalled complete, and the server holds exactly the file.
    fn assert_byte_exact(&self, outcome: &Outcome) {
        assert_eq!(outcome, &Outcome::Completed);
        let rec = self.record();
        assert_eq!(rec.acked_offset, self.content.len() as u64);
        assert!(rec.content_hash.is_some(), "content hash journalled");
        let url = rec.upload_url.expect("an upload URL");
        let stored = self
            .server
            .stored(&url)
            .expect("the server holds the upload");
        assert!(stored == self.content, "server bytes differ from the file");
        assert!(
            self.server.unused().is_empty(),
            "scripted acts never met: {:?}",
            self.server.unused()
        );
    }

    fn patches(&self) -> Vec<(u64, u64)> {
        self.server
            .seen()
            .iter()
            .filter(|s| s.method == Method::PATCH)
            .map(|s| {
                (
                    s.header("Upload-Offset").unwrap().parse().unwrap(),
                    s.body_len,
                )
            })
            .collect()
    }

    /// Body bytes the server read in PATCHes beyond the file's size: sent twice.
    fn sent_twice(&self) -> u64 {
        let read: u64 = self.patches().iter().map(|(_, n)| n).sum();
        read.saturating_sub(self.content.len() as u64)
    }
}

const MIB: usize = 1024 * 1024;

async fn scripted(len: usize, chunk: Option<u64>, script: &[(Method, Act)]) -> (Case, Outcome) {
    let server = FakeServer::default();
    for (m, a) in script {
        server.then(m.clone(), a.clone());
    }
    let mut case = Case::new(server, len, settings(chunk));
    let outcome = case.run().await;
    (case, outcome)
}

#[tokio::test]
async fn answers_as_the_spec_says_upload_in_chunks() {
    let (case, out) = scripted(3 * MIB + 123, Some(MIB as u64), &[]).await;
    case.assert_byte_exact(&out);
    assert_eq!(case.server.count(Method::OPTIONS), 1);
    assert_eq!(case.server.count(Method::POST), 1);
    assert_eq!(
        case.server.count(Method::HEAD),
        0,
        "a fresh upload needs no HEAD"
    );
    assert_eq!(case.patches().len(), 4);
    assert_eq!(case.sent_twice(), 0);
    let post = &case.server.seen()[1];
    assert_eq!(post.header("Tus-Resumable"), Some("1.0.0"));
    assert_eq!(post.header("Upload-Length"), Some("3145851"));
    assert!(post
        .header("Upload-Metadata")
        .unwrap()
        .contains("filename "));
}

#[tokio::test]
async fn a_200_to_patch_and_head_is_as_good_as_204() {
    // Some gateways rewrite 204 into 200.
    let (case, out) = scripted(
        2 * MIB,
        Some(MIB as u64),
        &[
            (Method::PATCH, Act::Restatus(200)),
            (Method::PATCH, Act::CutLosing(0)),
            (Method::HEAD, Act::Restatus(204)),
        ],
    )
    .await;
    case.assert_byte_exact(&out);
    assert_eq!(case.sent_twice(), 0);
}

#[tokio::test]
async fn a_409_continues_from_the_offset_head_gives() {
    let (case, out) = scripted(
        2 * MIB + 7,
        Some(MIB as u64),
        &[(Method::PATCH, Act::Status(409, vec![]))],
    )
    .await;
    case.assert_byte_exact(&out);
    assert_eq!(case.server.count(Method::HEAD), 1);
    assert_eq!(case.sent_twice(), 0);
}

#[tokio::test]
async fn a_413_halves_the_chunk_and_the_endpoint_remembers() {
    let (case, out) = scripted(
        3 * MIB,
        Some(2 * MIB as u64),
        &[(Method::PATCH, Act::Status(413, vec![]))],
    )
    .await;
    case.assert_byte_exact(&out);
    assert_eq!(
        case.ctx.store.learned_chunk(ENDPOINT).unwrap(),
        Some(MIB as u64)
    );
    assert!(case.patches().iter().all(|(_, n)| *n <= MIB as u64));
}

#[tokio::test]
async fn a_415_fails_with_its_status_named() {
    let (case, out) = scripted(10_000, None, &[(Method::PATCH, Act::Status(415, vec![]))]).await;
    match out {
        Outcome::Failed(m) => assert!(m.contains("415"), "{m}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(case.server.count(Method::PATCH), 1, "a 4xx is not repeated");
}

#[tokio::test]
async fn a_423_and_a_429_are_waited_out() {
    let (case, out) = scripted(
        10_000,
        None,
        &[
            (Method::PATCH, Act::Status(423, vec![])),
            (Method::PATCH, Act::Status(429, vec![("Retry-After", "0")])),
        ],
    )
    .await;
    case.assert_byte_exact(&out);
    assert_eq!(case.server.count(Method::PATCH), 3);
}

#[tokio::test]
async fn a_460_checksum_mismatch_sends_the_chunk_again() {
    let (case, out) = scripted(200_000, None, &[(Method::PATCH, Act::Status(460, vec![]))]).await;
    case.assert_byte_exact(&out);
    let patches = case.server.seen();
    let patches: Vec<_> = patches
        .iter()
        .filter(|s| s.method == Method::PATCH)
        .collect();
    assert_eq!(patches.len(), 2);
    assert!(patches[1]
        .header("Upload-Checksum")
        .is_some_and(|c| c.starts_with("sha256 ")));
}

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
async fn a_patch_answer_without_or_with_a_bad_offset_is_checked_by_head() {
    for bad in [None, Some("abc"), Some("-1"), Some("99999999999")] {
        let (case, out) = scripted(
            2 * MIB,
            Some(MIB as u64),
            &[(Method::PATCH, Act::Headers(vec![("Upload-Offset", bad)]))],
        )
        .await;
        case.assert_byte_exact(&out);
        assert_eq!(case.server.count(Method::HEAD), 1, "{bad:?}");
        assert_eq!(case.sent_twice(), 0, "{bad:?}");
    }
}

#[tokio::test]
async fn four_senseless_answers_in_a_row_fail_naming_the_answer() {
    let no_progress = || Act::Status(204, vec![("Upload-Offset", "0")]);
    let (_, out) = scripted(
        10_000,
        None,
        &[
            (Method::PATCH, no_progress()),
            (Method::PATCH, no_progress()),
            (Method::PATCH, no_progress()),
            (Method::PATCH, no_progress()),
        ],
    )
    .await;
    match out {
        Outcome::Failed(m) => assert!(
            m.contains("Upload-Offset 0") && m.contains("4 answers"),
            "{m}"
        ),
        o => panic!("{o:?}"),
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
async fn an_early_204_keeps_what_the_server_read_and_sends_the_rest() {
    let (case, out) = scripted(3 * MIB, None, &[(Method::PATCH, Act::Early(700_001))]).await;
    case.assert_byte_exact(&out);
    let p = case.patches();
    assert_eq!(p[0], (0, 700_001));
    assert_eq!(
        p[1].0, 700_001,
        "the next PATCH starts where the server stopped"
    );
    assert_eq!(case.sent_twice(), 0);
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
async fn a_silent_server_times_out_and_is_asked_again() {
    // HEAD hangs (control timeout), then a PATCH whose answer never comes (answer timeout).
    let server = FakeServer::default();
    server
        .then(Method::PATCH, Act::CutLosing(0))
        .then(Method::HEAD, Act::Hang)
        .then(Method::PATCH, Act::Hang);
    let mut case = Case::new(server, 100_000, settings(None));
    let out = case.run().await;
    case.assert_byte_exact(&out);
}

#[tokio::test]
async fn bytes_the_server_lost_are_counted_and_sent_again() {
    let server = FakeServer::default();
    server
        .then(Method::PATCH, Act::Headers(vec![]))
        .then(Method::PATCH, Act::CutLosing(0))
        .then(Method::HEAD, Act::Truncate(100_000));
    let mut case = Case::new(server, 2 * MIB, settings(Some(MIB as u64)));
    let out = case.run().await;
    case.assert_byte_exact(&out);
    assert_eq!(case.regressed, MIB as u64 - 100_000);
    assert_eq!(case.record().resent, MIB as u64 - 100_000);
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
async fn server_errors_are_retried_then_given_up_on() {
    let (case, out) = scripted(
        1000,
        None,
        &[
            (Method::POST, Act::Status(500, vec![])),
            (Method::POST, Act::Status(502, vec![])),
            (Method::POST, Act::Status(503, vec![])),
            (Method::POST, Act::Status(504, vec![])),
        ],
    )
    .await;
    assert!(
        matches!(out, Outcome::Failed(ref m) if m.contains("504") && m.contains("gave up")),
        "{out:?}"
    );
    assert_eq!(case.server.count(Method::POST), 4);
}

#[tokio::test]
async fn an_empty_file_completes_with_one_post() {
    let (case, out) = scripted(0, None, &[]).await;
    case.assert_byte_exact(&out);
    assert_eq!(case.server.count(Method::POST), 1);
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
async fn exact_chunks_are_never_cut_capped_or_halved() {
    let profile = crate::profiles::profile::Profile {
        name: "supabase-like".into(),
        endpoint: ENDPOINT.into(),
        chunk_size: Some(256 * 1024),
        exact_chunk: true,
        ..Default::default()
    };
    // 5.3 chunks, with checksums on (whose cap would otherwise apply) and a tail that would
    // otherwise start mid-chunk.
    let len = 5 * 256 * 1024 + 77_000;
    let mut case = Case::with_profile(
        FakeServer::default(),
        len,
        settings(None),
        Some(profile.clone()),
    );
    let out = case.run().await;
    case.assert_byte_exact(&out);
    let sizes: Vec<u64> = case.patches().iter().map(|p| p.1).collect();
    assert_eq!(sizes, [262144, 262144, 262144, 262144, 262144, 77_000]);
    // A server keeping part of a chunk: the next PATCH goes back to the boundary.
    let server = FakeServer::default();
    server.then(Method::PATCH, Act::Early(100_000));
    let mut case = Case::with_profile(server, len, settings(None), Some(profile.clone()));
    let out = case.run().await;
    case.assert_byte_exact(&out);
    let p = case.patches();
    assert_eq!((p[0], p[1]), ((0, 100_000), (100_000, 162_144)));
    assert!(p[2..].iter().all(|(o, _)| o % 262_144 == 0));
    // A 413 is not halved into sizes the server refuses anyway.
    let server = FakeServer::default();
    server.then(Method::PATCH, Act::Status(413, vec![]));
    let mut case = Case::with_profile(server, len, settings(None), Some(profile));
    let out = case.run().await;
    assert!(
        matches!(out, Outcome::Failed(ref m) if m.contains("413")),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_proxy_that_blocks_patch_is_passed_with_the_method_override() {
    let profile = crate::profiles::profile::Profile {
        name: "corp-proxy".into(),
        endpoint: ENDPOINT.into(),
        method_override: true,
        ..Default::default()
    };
    let server = FakeServer::default();
    server.block_patch_and_delete();
    let mut case = Case::with_profile(server, 2 * MIB, settings(Some(MIB as u64)), Some(profile));
    let out = case.run().await;
    case.assert_byte_exact(&out);
    let overridden = case
        .server
        .seen()
        .iter()
        .filter(|s| s.header("X-HTTP-Method-Override") == Some("PATCH"))
        .count();
    assert_eq!(overridden, 2);
    // Without the option the same proxy stops the upload with its 405.
    let server = FakeServer::default();
    server.block_patch_and_delete();
    let mut case = Case::new(server, 1000, settings(None));
    assert!(matches!(case.run().await, Outcome::Failed(ref m) if m.contains("405")));
}

/// An upload created the way a service's API creates it (Vimeo, say), `sent` bytes of the
/// file already in it: its URL.
async fn precreated(server: &FakeServer, length: u64, first: Option<Vec<u8>>) -> String {
    let client = TusClient::with_transport(Arc::new(server.clone()), Duration::from_secs(1));
    let endpoint = url::Url::parse(ENDPOINT).unwrap();
    let body = first.map(|b| crate::tus::client::SizedBody {
        len: b.len() as u64,
        body: crate::tus::transport::fake::body_of(b, 4096),
        checksum: None,
    });
    client
        .create(&endpoint, &Grant::default(), Some(length), "", body)
        .await
        .unwrap()
        .url
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

/// The protocol steps parallel parts will use (issue 11): partial uploads, then a final made
/// of them, against the scripted server's concatenation (modelled on rustus).
#[tokio::test]
async fn partial_uploads_concatenate_into_a_final_with_the_files_metadata() {
    let server = FakeServer::new("creation,termination,concatenation,checksum");
    let client = TusClient::with_transport(Arc::new(server.clone()), Duration::from_secs(1));
    let endpoint = url::Url::parse(ENDPOINT).unwrap();
    let headers = Grant::default();
    let data = content(3 * MIB + 17);
    let mut urls = Vec::new();
    for (start, len) in crate::tus::protocol::split_parts(data.len() as u64, 2, MIB as u64) {
        let part = client
            .create_partial(&endpoint, &headers, len, None)
            .await
            .unwrap();
        let slice = data[start as usize..(start + len) as usize].to_vec();
        let head = client.head(&part.url, &headers).await.unwrap();
        assert_eq!(head.concat, Some(crate::tus::protocol::Concat::Partial));
        client
            .patch(
                &part.url,
                &headers,
                0,
                crate::tus::client::SizedBody {
                    len,
                    body: crate::tus::transport::fake::body_of(slice, 65536),
                    checksum: None,
                },
                None,
            )
            .await
            .unwrap();
        urls.push(part.url);
    }
    let meta = crate::tus::protocol::encode_metadata(&BTreeMap::from([(
        "filename".to_string(),
        "whole.bin".to_string(),
    )]))
    .unwrap();
    let fin = client
        .create_final(&endpoint, &headers, &urls, &meta, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(server.stored(&fin.url).unwrap(), data);
    let head = client.head(&fin.url, &headers).await.unwrap();
    assert_eq!(head.length, Some(data.len() as u64));
    assert!(
        matches!(head.concat, Some(crate::tus::protocol::Concat::Final(ref p)) if p.len() == 2)
    );
    let post = server
        .seen()
        .into_iter()
        .rfind(|s| s.method == Method::POST)
        .unwrap();
    assert!(post.header("Upload-Length").is_none(), "never on a final");
    assert!(post.header("Upload-Defer-Length").is_none());
    assert_eq!(post.header("Upload-Metadata"), Some(meta.as_str()));
    assert_eq!(post.body_len, 0);
    assert!(post
        .header("Upload-Concat")
        .unwrap()
        .starts_with("final;http://tus.test/files/"));

    // A final of an incomplete part is refused (400), as rustus does.
    let short = client
        .create_partial(&endpoint, &headers, 10, None)
        .await
        .unwrap();
    let e = client
        .create_final(
            &endpoint,
            &headers,
            &[short.url],
            "",
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
}

// ---- Parallel parts (concatenation) ----

fn parts_case(len: usize) -> Case {
    let server = FakeServer::new(
        "creation,creation-defer-length,termination,expiration,checksum,concatenation",
    );
    let mut s = settings(Some(MIB as u64));
    s.parts = 4;
    s.parts_min_size = 0;
    Case::new(server, len, s)
}

impl Case {
    fn path(&self) -> std::path::PathBuf {
        self._dir.path().join("file.bin")
    }

    /// One run of the worker that is dropped after `d`, as a pause or a kill does.
    async fn run_for(&mut self, d: Duration) {
        let (epoch, rec) = self
            .ctx
            .store
            .begin_run(self.id, UploadState::Uploading)
            .unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        let reporter = Reporter {
            id: self.id,
            epoch,
            tx,
        };
        let r = tokio::time::timeout(d, run(self.ctx.clone(), self.id, reporter, rec)).await;
        assert!(r.is_err(), "the run was to be cut short, but ended: {r:?}");
        self.ctx.store.bump_epoch(self.id).unwrap();
    }

    fn posts(&self) -> (usize, usize) {
        let seen = self.server.seen();
        let posts: Vec<_> = seen.iter().filter(|s| s.method == Method::POST).collect();
        let partial = posts
            .iter()
            .filter(|s| s.header("Upload-Concat") == Some("partial"))
            .count();
        let fin = posts
            .iter()
            .filter(|s| {
                s.header("Upload-Concat")
                    .is_some_and(|v| v.starts_with("final;"))
            })
            .count();
        (partial, fin)
    }
}

#[tokio::test]
async fn a_large_file_goes_as_parts_and_hashes_like_one_stream() {
    let mut case = parts_case(5 * MIB + 123);
    let out = case.run().await;
    case.assert_byte_exact(&out);
    assert_eq!(case.posts(), (4, 1), "4 partial uploads, 1 final");
    // The final carries the metadata; the parts carry none.
    let seen = case.server.seen();
    let fin = seen
        .iter()
        .find(|s| {
            s.header("Upload-Concat")
                .is_some_and(|v| v.starts_with("final;"))
        })
        .unwrap();
    assert!(fin.header("Upload-Metadata").unwrap().contains("filename "));
    assert_eq!(fin.header("Upload-Length"), None);
    // Parts start on 1 MiB boundaries: 2, 1, 1 and 1 MiB + 123 bytes.
    let mut lengths: Vec<u64> = seen
        .iter()
        .filter(|s| s.header("Upload-Concat") == Some("partial"))
        .map(|s| s.header("Upload-Length").unwrap().parse().unwrap())
        .collect();
    lengths.sort();
    assert_eq!(
        lengths,
        vec![MIB as u64, MIB as u64, MIB as u64 + 123, 2 * MIB as u64]
    );
    // The same content hash as the file hashed in one go, and the parts are gone.
    let (hash, _) = proof::hash_file(&case.path()).unwrap();
    assert_eq!(case.record().content_hash, Some(hash));
    assert_eq!(
        case.server.count(Method::DELETE),
        4,
        "the parts are terminated"
    );
    assert_eq!(case.server.uploads(), 1, "only the final is left");
    assert!(case.ctx.store.parts(case.id).unwrap().is_empty());
    assert_eq!(case.sent_twice(), 0);
}

#[tokio::test]
async fn parts_cut_mid_way_resume_where_the_server_has_them() {
    let mut case = parts_case(6 * MIB);
    // One part's request hangs; the run is cut while the others go on.
    case.server
        .then(Method::PATCH, Act::Pass)
        .then(Method::PATCH, Act::Hang);
    case.run_for(Duration::from_millis(200)).await;
    let parts = case.ctx.store.parts(case.id).unwrap();
    assert_eq!(parts.len(), 4);
    assert!(
        parts.iter().all(|p| p.url.is_some()),
        "every part's URL is journalled"
    );
    let acked: u64 = parts.iter().map(|p| p.acked).sum();
    assert_eq!(case.record().acked_offset, acked, "the row sums its parts");
    assert!(acked > 0 && acked < 6 * MIB as u64, "{acked}");
    let out = case.run().await;
    case.assert_byte_exact(&out);
    assert_eq!(case.posts(), (4, 1), "no part was created twice");
    assert!(case.sent_twice() <= MIB as u64, "{}", case.sent_twice());
}

#[tokio::test]
async fn a_501_to_a_partial_falls_back_to_one_stream() {
    let mut case = parts_case(3 * MIB);
    case.server.then(Method::POST, Act::Status(501, vec![]));
    let out = case.run().await;
    case.assert_byte_exact(&out);
    assert!(case.ctx.caps.refuses_parts(ENDPOINT));
    assert!(case.ctx.store.parts(case.id).unwrap().is_empty());
    let (hash, _) = proof::hash_file(&case.path()).unwrap();
    assert_eq!(case.record().content_hash, Some(hash));
}

#[tokio::test]
async fn a_part_the_server_did_not_keep_as_partial_falls_back() {
    // rustus takes `Partial` (or anything but `partial`) as an ordinary upload: HEAD shows it.
    // The final is refused (400); the HEADs that follow show the part is no partial upload.
    let mut case = parts_case(3 * MIB);
    for _ in 0..3 {
        case.server.then(Method::POST, Act::Pass);
    }
    case.server
        .then(Method::POST, Act::Status(400, vec![]))
        .then(Method::HEAD, Act::Headers(vec![("Upload-Concat", None)]));
    let out = case.run().await;
    case.assert_byte_exact(&out);
    assert_eq!(case.posts().1, 1, "one final was attempted");
    assert!(case.ctx.caps.refuses_parts(ENDPOINT));
}

#[tokio::test]
async fn a_lost_final_answer_posts_again_and_says_a_copy_may_remain() {
    let mut case = parts_case(3 * MIB);
    for _ in 0..3 {
        case.server.then(Method::POST, Act::Pass);
    }
    case.server.then(Method::POST, Act::CutAfterHandling);
    let out = case.run().await;
    case.assert_byte_exact(&out);
    assert_eq!(case.posts(), (3, 2));
    assert_eq!(case.ctx.store.final_posts(case.id).unwrap(), 2);
    assert!(
        case.notes.iter().any(|n| n.contains("second copy")),
        "{:?}",
        case.notes
    );
}

#[tokio::test]
async fn a_final_shorter_than_the_file_fails() {
    let mut case = parts_case(3 * MIB);
    // The final's answer and its HEAD say 1 MiB (rustus would, had it dropped two parts).
    for _ in 0..3 {
        case.server.then(Method::POST, Act::Pass);
    }
    case.server.then(
        Method::POST,
        Act::Headers(vec![("Upload-Offset", Some("1048576"))]),
    );
    case.server.then(
        Method::HEAD,
        Act::Headers(vec![
            ("Upload-Offset", Some("1048576")),
            ("Upload-Length", Some("1048576")),
        ]),
    );
    match case.run().await {
        Outcome::Failed(m) => assert!(m.contains("a part was left out"), "{m}"),
        o => panic!("{o:?}"),
    }
    assert!(case.record().content_hash.is_none());
}

#[tokio::test]
async fn a_touched_file_keeps_its_parts_and_an_edited_part_starts_again() {
    let mut case = parts_case(6 * MIB);
    case.server
        .then(Method::PATCH, Act::Pass)
        .then(Method::PATCH, Act::Pass)
        .then(Method::PATCH, Act::Hang);
    case.run_for(Duration::from_millis(200)).await;
    let before = case.ctx.store.parts(case.id).unwrap();
    let sent: Vec<_> = before.iter().filter(|p| p.acked > 0).cloned().collect();
    assert!(!sent.is_empty());
    // Same size, one byte changed inside a part the server holds bytes of.
    let edited = &sent[0];
    let mut now = case.content.clone();
    now[(edited.start + 10) as usize] ^= 0xff;
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(case.path(), &now).unwrap();
    let out = case.run().await;
    assert_eq!(out, Outcome::Completed);
    let rec = case.record();
    let stored = case
        .server
        .stored(rec.upload_url.as_ref().unwrap())
        .unwrap();
    assert!(
        stored == now,
        "the server holds the file as it is now, no mix"
    );
    let (hash, _) = proof::hash_file(&case.path()).unwrap();
    assert_eq!(rec.content_hash, Some(hash));
    assert_eq!(case.posts().0, 5, "only the edited part was created again");
}

#[test]
fn a_checksummed_chunk_grows_on_a_fast_flow_within_its_bounds() {
    const M: u64 = 1 << 20;
    let cap = 16 * M;
    for (chunk, limit, checksums, rate, want) in [
        // 20 MB/s: 2 s is 40 MB.
        (cap, u64::MAX, true, Some(20e6), 40_000_000),
        // Never past 4 times the cap.
        (cap, u64::MAX, true, Some(1e9), 64 * M),
        // Slow: the cap.
        (cap, u64::MAX, true, Some(1e6), cap),
        // The user's chunk size (or a learned 413) bounds it.
        (cap, 24 * M, true, Some(1e9), 24 * M),
        // No checksums: no cap to grow past; no rate yet: as it is.
        (cap, u64::MAX, false, Some(1e9), cap),
        (cap, u64::MAX, true, None, cap),
        // A 413 shrank it below the base this run: it stays.
        (8 * M, u64::MAX, true, Some(1e9), 8 * M),
    ] {
        assert_eq!(
            grown_chunk(chunk, cap, limit, checksums, rate),
            want,
            "{chunk} {limit} {checksums} {rate:?}"
        );
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
