//! The concatenation protocol steps that parallel parts will use (issue 11), against the two
//! real servers: rustus 0.5.10 builds a final from partial uploads; @tus/server 2.4.5 has no
//! concatenation and refuses a partial with 501 (the client then uploads one stream).

mod support;

use std::time::Duration;
use support::servers::RustusServer;
use support::{pattern, TusServer};
use tusker_core::tus::client::{parse_endpoint, SizedBody, TusClient};
use tusker_core::tus::protocol::{self, Concat};

fn body(bytes: Vec<u8>) -> SizedBody {
    SizedBody {
        len: bytes.len() as u64,
        body: tusker_core::tus::transport::bytes_body(bytes),
        checksum: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustus_builds_a_final_from_partial_uploads_with_the_files_metadata() {
    let server = RustusServer::start();
    let client = TusClient::new();
    let endpoint = parse_endpoint(&server.endpoint()).unwrap();
    let headers = tusker_core::tus::gate::Grant::default();
    let caps = client.options(endpoint.as_str(), &headers).await.unwrap();
    assert!(caps.has("concatenation"), "{caps:?}");
    let data = pattern((3 << 20) + 17, 61);
    let mut urls = Vec::new();
    for (start, len) in protocol::split_parts(data.len() as u64, 2, 1 << 20) {
        let part = client
            .create_partial(&endpoint, &headers, len, None)
            .await
            .unwrap();
        let head = client.head(&part.url, &headers).await.unwrap();
        assert_eq!(head.concat, Some(Concat::Partial), "rustus took the header");
        // rustus takes at most 256 KiB per PATCH.
        let mut offset = 0;
        while offset < len {
            let n = (len - offset).min(256 * 1024);
            let from = (start + offset) as usize;
            let done = client
                .patch(
                    &part.url,
                    &headers,
                    offset,
                    body(data[from..from + n as usize].to_vec()),
                    None,
                )
                .await
                .unwrap();
            offset = done.offset;
        }
        urls.push(part.url);
    }
    let meta =
        protocol::encode_metadata(&[("filename".to_string(), "whole.bin".to_string())].into())
            .unwrap();
    let fin = client
        .create_final(&endpoint, &headers, &urls, &meta, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(server.stored(&fin.url), data, "byte-exact");
    let head = client.head(&fin.url, &headers).await.unwrap();
    assert_eq!(
        (head.offset, head.length),
        (data.len() as u64, Some(data.len() as u64))
    );
    // rustus echoes its own form: `final; /files/<a> /files/<b>`.
    let Some(Concat::Final(parts)) = head.concat else {
        panic!("{:?}", head.concat)
    };
    let ids = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|u| u.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&parts), ids(&urls));
    // The parts are kept (no --remove-parts): a second final would be a second copy.
    for u in &urls {
        assert!(client.head(u, &headers).await.is_ok());
    }
    // A final of a part that is not complete: 400.
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
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_node_server_refuses_a_partial_upload_with_501() {
    let server = TusServer::start();
    let client = TusClient::new();
    let endpoint = parse_endpoint(&server.endpoint()).unwrap();
    let headers = tusker_core::tus::gate::Grant::default();
    let caps = client.options(endpoint.as_str(), &headers).await.unwrap();
    assert!(!caps.has("concatenation"), "{caps:?}");
    let e = client
        .create_partial(&endpoint, &headers, 10, None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(501), "{e}");
    assert_eq!(server.upload_count(), 0, "nothing created");
}
