//! What the CLI shows while it waits: progress bars on a terminal, plain lines otherwise
//! (logs, CI, scripts), and the listing of the journal.

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tusker_core::{Engine, EventBatch, UploadId, UploadRecord, UploadState, UploadView};

use crate::size::human;
use tusker_core::platform::Stop;

enum Display {
    Bars {
        multi: MultiProgress,
        total: ProgressBar,
        bars: HashMap<UploadId, ProgressBar>,
    },
    Plain {
        last_line: HashMap<UploadId, Instant>,
    },
}

impl Display {
    fn new(plain: bool, views: &HashMap<UploadId, UploadView>) -> Display {
        if plain || !std::io::stderr().is_terminal() {
            return Display::Plain {
                last_line: HashMap::new(),
            };
        }
        let multi = MultiProgress::new();
        let total_bytes: u64 = views.values().map(|v| v.size).sum();
        let total = multi.add(ProgressBar::new(total_bytes));
        total.set_style(
            ProgressStyle::with_template(
                "total {bar:40.green/white} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .expect("static template"),
        );
        Display::Bars {
            multi,
            total,
            bars: HashMap::new(),
        }
    }

    fn update(
        &mut self,
        v: &UploadView,
        prev: Option<UploadState>,
        views: &HashMap<UploadId, UploadView>,
    ) {
        match self {
            Display::Plain { last_line } => {
                if prev != Some(v.state) {
                    match &v.error {
                        Some(e) => println!(
                            "{} {} {} ({e}{})",
                            v.id,
                            v.state.as_str(),
                            v.path,
                            next_try(v)
                        ),
                        None => println!("{} {} {}", v.id, v.state.as_str(), v.path),
                    }
                    if let Some(d) = &v.error_detail {
                        tracing::info!(id = v.id, detail = %d, "error detail");
                    }
                    last_line.insert(v.id, Instant::now());
                } else if v.state == UploadState::Uploading
                    && last_line
                        .get(&v.id)
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(2))
                {
                    // Sent (confirmed plus on the way) and confirmed: a single PATCH of the
                    // whole file is confirmed only at its end, but it is not stuck.
                    let sent = (v.acked + v.in_flight).min(v.size);
                    let pct = if v.size == 0 {
                        100.0
                    } else {
                        sent as f64 * 100.0 / v.size as f64
                    };
                    println!(
                        "{} progress {:.1}% {} sent, {} confirmed of {} {}/s",
                        v.id,
                        pct,
                        human(sent),
                        human(v.acked),
                        human(v.size),
                        human(v.speed as u64)
                    );
                    last_line.insert(v.id, Instant::now());
                }
            }
            Display::Bars { multi, total, bars } => {
                let done: u64 = views.values().map(|v| v.acked.min(v.size)).sum();
                total.set_position(done);
                if v.state == UploadState::Uploading || v.state == UploadState::WaitingToRetry {
                    let bar = bars.entry(v.id).or_insert_with(|| {
                        let b = multi.add(ProgressBar::new(v.size));
                        b.set_style(
                            ProgressStyle::with_template(
                                "{prefix:30!} {bar:30.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                            )
                            .expect("static template"),
                        );
                        b.set_prefix(v.name.clone());
                        b
                    });
                    bar.set_length(v.size);
                    bar.set_position((v.acked + v.in_flight).min(v.size));
                    bar.set_message(if v.state == UploadState::WaitingToRetry {
                        format!("{}{}", v.error.as_deref().unwrap_or("waiting"), next_try(v))
                    } else {
                        String::new()
                    });
                } else if let Some(bar) = bars.remove(&v.id) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                    if v.state != UploadState::Completed {
                        let _ = multi.println(format!(
                            "{} {}: {}",
                            v.name,
                            v.state.as_str(),
                            v.error.as_deref().unwrap_or("")
                        ));
                    }
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Display::Bars { total, bars, .. } = self {
            for b in bars.values() {
                b.finish_and_clear();
            }
            total.finish();
        }
    }
}

/// "; next try in 12 s" for an upload waiting to retry (as the window says it).
fn next_try(v: &UploadView) -> String {
    match (v.state, v.retry_at_ms) {
        (UploadState::WaitingToRetry, Some(at)) => {
            let left = at - tusker_core::upload::now_ms();
            format!("; next try in {} s", (left.max(0) + 999) / 1000)
        }
        _ => String::new(),
    }
}

/// Waits until every tracked upload reached a terminal state; true if all completed.
/// Ctrl-C or SIGTERM pauses cleanly (the journal keeps everything) and exits 130.
pub async fn run_until_done(
    engine: &Engine,
    mut events: broadcast::Receiver<Arc<EventBatch>>,
    ids: HashSet<UploadId>,
    plain: bool,
) -> Result<bool> {
    let mut views: HashMap<UploadId, UploadView> = engine
        .snapshot()
        .await?
        .into_iter()
        .filter(|v| ids.contains(&v.id))
        .map(|v| (v.id, v))
        .collect();
    let mut display = Display::new(plain, &views);
    for v in views.clone().values() {
        display.update(v, None, &views);
    }
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        if views.values().all(|v| v.state.is_terminal()) {
            break;
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(batch) => {
                    for v in &batch.changed {
                        if ids.contains(&v.id) {
                            let prev = views.get(&v.id).map(|p| p.state);
                            views.insert(v.id, v.clone());
                            display.update(v, prev, &views);
                        }
                    }
                    for id in &batch.removed {
                        views.remove(id);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    for v in engine.snapshot().await? {
                        if ids.contains(&v.id) {
                            let prev = views.get(&v.id).map(|p| p.state);
                            views.insert(v.id, v.clone());
                            display.update(&v, prev, &views);
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => anyhow::bail!("the engine stopped"),
            },
            _ = &mut stop => {
                display.finish();
                eprintln!("interrupted: pausing; `tusker-cli resume` continues where this stopped");
                engine.shutdown().await?;
                std::process::exit(130);
            }
        }
    }
    display.finish();
    let completed = views
        .values()
        .filter(|v| v.state == UploadState::Completed)
        .count();
    let failed = views.len() - completed;
    let signed_out: Vec<&UploadView> = views
        .values()
        .filter(|v| v.state == UploadState::NeedsSignIn)
        .collect();
    for v in &signed_out {
        eprintln!(
            "upload {} ({}) needs sign-in: {}",
            v.id,
            v.name,
            v.error
                .as_deref()
                .unwrap_or("the server refused the credentials")
        );
    }
    if !signed_out.is_empty() {
        eprintln!(
            "new credentials: run `tusker-cli upload` again with them (or `tusker-cli profile set`), then `tusker-cli resume`; the uploads go on from the server's offset"
        );
    }
    let bytes: u64 = views.values().map(|v| v.size).sum();
    println!("{completed} completed, {failed} failed ({})", human(bytes));
    // The failures grouped by cause, in the catalogue's words, most frequent first.
    let failures = views
        .values()
        .filter(|v| v.state != UploadState::Completed)
        .map(|v| {
            (
                v.name.as_str(),
                v.error.as_deref().unwrap_or(v.state.as_str()),
            )
        });
    for (why, names) in tusker_core::error::explain::by_cause(failures) {
        println!("  {} × {why}", names.len());
    }
    engine.shutdown().await?;
    Ok(failed == 0)
}

/// Prints the journal as a table or JSON.
pub fn list(records: &[UploadRecord], json: bool) {
    if json {
        let rows: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "path": r.path,
                    "name": r.name,
                    "state": r.state.as_str(),
                    "offset": r.acked_offset,
                    "size": r.size,
                    "upload_url": r.upload_url,
                    "endpoint": r.endpoint,
                    "error": r.error,
                    "recreated": r.recreated,
                    "profile": r.profile,
                    "asks_host": r.asks_host,
                    "error_code": r.error_code,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return;
    }
    println!(
        "{:>5}  {:<16} {:>21}  {:<40}  PATH",
        "ID", "STATE", "OFFSET/SIZE", "UPLOAD URL"
    );
    for r in records {
        println!(
            "{:>5}  {:<16} {:>21}  {:<40}  {}",
            r.id,
            r.state.as_str(),
            format!("{}/{}", r.acked_offset, r.size),
            r.upload_url.as_deref().unwrap_or("-"),
            r.path
        );
    }
}

/// Which signal ended a long-running command.
pub async fn stop_signal() -> Stop {
    tusker_core::platform::stop_requested()
        .await
        .expect("SIGTERM handler")
}

/// `tusker-cli check` in words: what the server offers and what Tusker will do with it.
pub fn caps(endpoint: &str, c: &tusker_core::ServerCaps) {
    use tusker_core::tus::protocol::ChecksumAlgorithm;
    let has = |x: &str| c.extensions.iter().any(|e| e == x);
    match &c.undiscovered {
        Some(why) => println!("{endpoint}: the server does not say what it supports ({why})"),
        None => println!(
            "{endpoint}: a tus server (versions {})",
            if c.versions.is_empty() {
                "not given".to_string()
            } else {
                c.versions.join(", ")
            }
        ),
    }
    if !c.extensions.is_empty() {
        println!("  extensions: {}", c.extensions.join(", "));
    }
    println!(
        "  largest upload: {}",
        c.max_size.map_or("no limit given".to_string(), human)
    );
    let mut will = Vec::new();
    if c.undiscovered.is_some() {
        will.push("use tus core alone (POST, HEAD, PATCH), as tus-js-client does".to_string());
    }
    match ChecksumAlgorithm::choose(&c.checksum_algorithms) {
        Some(alg) => will.push(format!(
            "send a {} checksum with every request (the server checks each piece)",
            alg.name()
        )),
        None => will.push(
            "prove resumed uploads by the SHA-256 of the bytes sent (no checksum extension)"
                .to_string(),
        ),
    }
    if has("concatenation") {
        will.push("send large files as parallel parts joined on the server".to_string());
    }
    if has("termination") {
        will.push("delete cancelled uploads on the server".to_string());
    } else {
        will.push("leave cancelled uploads to the server's expiry (no termination)".to_string());
    }
    if !has("creation") && c.undiscovered.is_none() {
        will.push("need upload URLs made elsewhere (no creation extension)".to_string());
    }
    println!("  Tusker will: {}", will.join("; "));
}
