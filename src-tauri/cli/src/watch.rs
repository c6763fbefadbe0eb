//! `tusker-cli watch`: watched folders from the command line, until a signal ends them.

use crate::size::human;
use anyhow::Result;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast;
use tusker_core::{Engine, UploadId, UploadState, UploadView};

use crate::output::stop_signal;
use crate::{config, parse_metadata, profile_request, resolve_profile, WatchArgs};
use anyhow::{bail, Context};
use std::path::PathBuf;
use tusker_core::platform::Stop;

/// `tusker-cli watch`: uploads what appears in `folders` until SIGTERM (exit 0) or Ctrl-C
/// (exit 130). A line on stdout for each file taken and each upload that completed; what
/// went wrong on stderr. Unfinished uploads of these folders from an earlier run go on first.
pub async fn watch(
    engine: &Engine,
    folders: &[std::path::PathBuf],
    request: tusker_core::AddRequest,
    ignore: tusker_core::watch::folder::IgnoreRules,
    settle: Duration,
) -> Result<i32> {
    use tusker_core::watch::folder::{FolderWatch, WatchEvent, WatchSpec};
    use tusker_core::AddResult;
    let mut events = engine.subscribe();
    let under = |path: &str| {
        folders
            .iter()
            .any(|f| std::path::Path::new(path).starts_with(f))
    };
    let endpoint = tusker_core::tus::client::parse_endpoint(&request.endpoint)?.to_string();
    let mut tracked: HashMap<UploadId, String> = HashMap::new();
    for v in engine.snapshot().await? {
        if under(&v.path)
            && v.endpoint == endpoint
            && matches!(
                v.state,
                UploadState::Queued | UploadState::Uploading | UploadState::WaitingToRetry
            )
        {
            println!("resuming {}", v.path);
            engine.resume(v.id).await?;
            tracked.insert(v.id, v.path.clone());
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watches = Vec::new();
    for f in folders {
        let spec = WatchSpec {
            dir: f.clone(),
            request: request.clone(),
            ignore: ignore.clone(),
            settle,
        };
        match FolderWatch::start(engine.clone(), spec, tx.clone()) {
            Ok(w) => watches.push(w),
            Err(e) => {
                for w in watches {
                    w.stop().await;
                }
                engine.shutdown().await.ok();
                anyhow::bail!("cannot watch {}: {e}", f.display());
            }
        }
        eprintln!(
            "watching {} (skipping {}; a file is taken once unchanged for {} s)",
            f.display(),
            if ignore.patterns().is_empty() {
                "nothing".to_string()
            } else {
                ignore.patterns().join(" ")
            },
            settle.as_secs_f64()
        );
    }
    let stop = stop_signal();
    tokio::pin!(stop);
    let how = loop {
        tokio::select! {
            Some(ev) = rx.recv() => match ev {
                WatchEvent::Added { results, .. } => {
                    for r in results {
                        match r {
                            AddResult::Added { id, path } => {
                                println!("queued {path}");
                                tracked.insert(id, path);
                            }
                            AddResult::Resumed { id, path } => {
                                println!("resuming {path}");
                                tracked.insert(id, path);
                            }
                            AddResult::Restarted { id, path } => {
                                println!("changed, uploading again from the start: {path}");
                                tracked.insert(id, path);
                            }
                            AddResult::AlreadyUploaded { id, path } => {
                                println!("already uploaded (upload {id}): {path}");
                            }
                            AddResult::Rejected { path, error } => {
                                eprintln!("skipped {path}: {error}");
                            }
                        }
                    }
                }
                WatchEvent::Problem { dir, message } => {
                    eprintln!("{}: {message}", dir.display());
                }
            },
            ev = events.recv() => match ev {
                Ok(batch) => report_finished(&batch.changed, &mut tracked),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    report_finished(&engine.snapshot().await?, &mut tracked)
                }
                Err(broadcast::error::RecvError::Closed) => anyhow::bail!("the engine stopped"),
            },
            how = &mut stop => break how,
        }
    };
    for w in watches {
        w.stop().await;
    }
    eprintln!("stopping; unfinished uploads go on from the server's offset next time");
    engine.shutdown().await?;
    Ok(match how {
        Stop::Terminate => 0,
        Stop::Interrupt => 130,
    })
}

/// Prints a line for each tracked upload that reached its end, and stops tracking it.
fn report_finished(views: &[UploadView], tracked: &mut HashMap<UploadId, String>) {
    for v in views {
        if !v.state.is_terminal() || !tracked.contains_key(&v.id) {
            continue;
        }
        tracked.remove(&v.id);
        if v.state == UploadState::Completed {
            println!("uploaded {} ({})", v.path, human(v.size));
        } else {
            eprintln!(
                "{} {}: {}",
                v.path,
                v.state.as_str(),
                v.error.as_deref().unwrap_or("")
            );
        }
    }
}

/// `tusker-cli watch` from its arguments: the folders checked, the engine opened.
pub async fn watch_cmd(data_dir: PathBuf, args: WatchArgs) -> Result<i32> {
    let WatchArgs {
        endpoint,
        profile,
        chunk_size,
        creds,
        metadata,
        ignore,
        no_default_ignore,
        settle,
        run,
        dirs,
    } = args;
    let metadata = parse_metadata(&metadata)?;
    let mut patterns: Vec<String> = if no_default_ignore {
        Vec::new()
    } else {
        tusker_core::watch::folder::DEFAULT_IGNORE
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    patterns.extend(ignore);
    let ignore =
        tusker_core::watch::folder::IgnoreRules::new(&patterns).map_err(anyhow::Error::msg)?;
    if !(0.0..=86_400.0).contains(&settle) {
        bail!("--settle must be between 0 and 86400 seconds");
    }
    let profile = resolve_profile(&data_dir, profile, endpoint, &creds)?;
    let mut folders = Vec::new();
    for d in dirs {
        let abs = std::path::absolute(&d).with_context(|| format!("{}", d.display()))?;
        if !abs.is_dir() {
            bail!("{} is not a folder", d.display());
        }
        folders.push(abs);
    }
    let engine = Engine::open(config(data_dir, &run, false)).await?;
    let request = profile_request(&engine, profile, metadata, chunk_size)?;
    let settle = Duration::from_secs_f64(settle);
    watch(&engine, &folders, request, ignore, settle).await
}
