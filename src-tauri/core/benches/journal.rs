//! What the journal costs per acknowledged PATCH: the time of one `set_offset` (an epoch-checked
//! UPDATE, committed in WAL mode with synchronous=NORMAL) on a journal on disk, with a queue of
//! 1,000 uploads. Prints one JSON line: median and p99 in µs.
//!
//!   cargo bench -p tusker-core --bench journal -- [--writes N]

use std::time::Instant;
use tusker_core::journal::record::UploadState;
use tusker_core::journal::{NewUpload, Store};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let writes: usize = args
        .iter()
        .position(|a| a == "--writes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::Builder::new()
        .prefix("tusker-journal-bench")
        .tempdir_in(std::env::var_os("TUSKER_BENCH_DISK_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .unwrap();
    let store = Store::open(&dir.path().join("journal.sqlite")).unwrap();
    let mut ids = Vec::new();
    for i in 0..1000 {
        let rec = store
            .insert(&NewUpload {
                path: format!("/data/file-{i}.bin"),
                name: format!("file-{i}.bin"),
                stamp: tusker_core::identity::fingerprint::FileStamp {
                    size: 1 << 40,
                    mtime_ns: 0,
                    ino: 0,
                    ctime_ns: 0,
                },
                fingerprint: format!("{i:064x}"),
                endpoint: "http://127.0.0.1:1080/files".into(),
                metadata: Default::default(),
                headers: Default::default(),
                chunk_size: None,
                state: UploadState::Queued,
                profile_id: None,
                upload_url: None,
            })
            .unwrap();
        ids.push(rec.id);
    }
    let id = ids[500];
    // A worker write is committed by a task on the runtime (group commit); the time includes
    // that task's turn.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let epoch = store.bump_epoch(id).unwrap();
    rt.block_on(store.set_url(id, epoch, "http://127.0.0.1:1080/files/x", None, false))
        .unwrap();
    let mut times = Vec::with_capacity(writes);
    // Each acknowledged 8 MiB PATCH also journals the digests of its eight 1 MiB blocks.
    for i in 0..writes {
        let proof = tusker_core::identity::proof::ProofDelta {
            from_block: i * 8,
            new_blocks: vec![[i as u8; 32]; 8],
            partial: None,
        };
        let t = Instant::now();
        rt.block_on(store.set_offset(id, epoch, ((i as u64 + 1) * 8) << 20, None, &proof))
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    println!("{{\"writes\": {writes}, \"median_us\": {median:.1}, \"p99_us\": {p99:.1}}}");
}
