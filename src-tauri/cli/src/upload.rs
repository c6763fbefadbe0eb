//! `tusker-cli upload` and `tusker-cli resume`: files into the queue, and the queue run to
//! its end, with progress on the terminal.

use anyhow::{bail, Result};
use std::collections::HashSet;
use std::path::PathBuf;
use tusker_core::{AddRequest, AddResult, Engine, UploadId, UploadState};

use crate::{
    config, output, parse_metadata, profile_request, resolve_profile, RunOpts, UploadArgs,
};

/// Enqueues files and folders and uploads them; 0 only if all complete.
pub async fn upload(data_dir: PathBuf, args: UploadArgs) -> Result<i32> {
    let UploadArgs {
        endpoint,
        upload_url,
        profile,
        chunk_size,
        creds,
        metadata,
        again,
        run,
        paths,
    } = args;
    let metadata = parse_metadata(&metadata)?;
    // Into a given upload URL without an endpoint: the URL's own origin stands for it.
    let endpoint = endpoint.or_else(|| {
        let u = tusker_core::tus::client::parse_endpoint(upload_url.as_deref()?).ok()?;
        Some(u.join("/").ok()?.to_string())
    });
    let profile = resolve_profile(&data_dir, profile, endpoint, &creds)?;
    let engine = Engine::open(config(data_dir, &run, false)).await?;
    let events = engine.subscribe();
    let results = engine
        .add(AddRequest {
            paths,
            upload_url,
            again,
            ..profile_request(&engine, profile, metadata, chunk_size)?
        })
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            engine.shutdown().await.ok();
            return Err(e.into());
        }
    };
    let mut ids = Vec::new();
    let mut rejected = 0;
    let mut already = 0;
    for r in &results {
        match r {
            AddResult::Added { id, .. } => ids.push(*id),
            AddResult::Resumed { id, path } => {
                eprintln!("resuming upload {id} (same content as before) from {path}");
                ids.push(*id)
            }
            AddResult::Restarted { id, path } => {
                eprintln!(
                    "{path} changed since upload {id} started: uploading its current content from the start"
                );
                ids.push(*id)
            }
            AddResult::AlreadyUploaded { id, path } => {
                eprintln!("already uploaded (upload {id}): {path}; --again sends it anyway");
                already += 1;
            }
            AddResult::Rejected { path, error } => {
                eprintln!("skipped {path}: {error}");
                rejected += 1;
            }
        }
    }
    if ids.is_empty() {
        engine.shutdown().await.ok();
        if already > 0 && rejected == 0 {
            return Ok(0);
        }
        bail!("nothing to upload");
    }
    let ok = output::run_until_done(&engine, events, ids.into_iter().collect(), run.plain).await?;
    Ok(if ok && rejected == 0 { 0 } else { 1 })
}

/// Runs every unfinished upload in the journal to completion; 0 only if all complete.
pub async fn resume(data_dir: PathBuf, run: RunOpts) -> Result<i32> {
    let engine = Engine::open(config(data_dir, &run, true)).await?;
    let events = engine.subscribe();
    // A drop (an `upload` of a folder, the app's) killed while it was walked: the rest
    // of its files are taken in first.
    for r in engine.resume_intake().await? {
        if let tusker_core::AddResult::Rejected { path, error } = r {
            eprintln!("{path}: {error}");
        }
    }
    engine.resume_all(true).await?;
    let snapshot = engine.snapshot().await?;
    let ids: HashSet<UploadId> = snapshot
        .iter()
        .filter(|v| v.state.is_unfinished() && v.state != UploadState::FileChanged)
        .map(|v| v.id)
        .collect();
    let changed: Vec<_> = snapshot
        .into_iter()
        .filter(|v| v.state == UploadState::FileChanged)
        .collect();
    for v in &changed {
        eprintln!(
            "upload {} ({}) is not resumed: {}",
            v.id,
            v.path,
            v.error.as_deref().unwrap_or("file changed")
        );
    }
    if ids.is_empty() {
        engine.shutdown().await.ok();
        eprintln!("nothing to resume");
        return Ok(if changed.is_empty() { 0 } else { 1 });
    }
    let ok = output::run_until_done(&engine, events, ids, run.plain).await?;
    Ok(if ok && changed.is_empty() { 0 } else { 1 })
}
