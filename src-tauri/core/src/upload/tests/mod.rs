//! The upload worker against the scripted server ([`crate::tus::transport::fake`]): one test per
//! answer the spec and real servers give, and a cut at every phase. Each ends with the
//! server's bytes compared to the file's, so "completed" always means byte-exact.

use super::*;
use crate::journal::record::UploadState;
use crate::tus::transport::fake::{Act, FakeServer, ENDPOINT};
use reqwest::Method;
use std::time::Duration;

mod create;
mod headers;
mod parts;
mod resume;
mod send;

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
