//! Parallel parts (concatenation): partial uploads joined by a final, cut, refused, lost
//! and edited.

use super::*;

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
