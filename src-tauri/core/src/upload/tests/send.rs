//! Send (PATCH): chunks as the spec answers them, and every odd answer a server gives to one.

use super::*;

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
