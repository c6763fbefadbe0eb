//! One request of an upload: its body cut from the file, watched for stalls, its answer
//! believed or not, and its failure blamed on the file when the file changed under it.

use super::*;

/// Answers (to HEAD or PATCH) that mean "this upload does not exist (any more)". 401 and
/// 403 are not among them: behind a gateway they mean the credentials expired, and the upload
/// is still there ([`Error::is_auth`]).
pub(super) fn says_gone(e: &Error) -> bool {
    matches!(e.status(), Some(404 | 410))
}

/// Plans the next request's body. Before the tail: a range streamed from disk, ending at the
/// tail at the latest. Inside the tail: the range is read into memory (at most [`TAIL`]
/// bytes) and the file's stamp is checked again after the read, so the request that
/// completes the upload only carries bytes of the same content as everything before it.
pub(super) async fn next_body(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    offset: u64,
    max_len: u64,
    cut: Cut,
    transfer: &Arc<Transfer>,
    sent: &Sent,
) -> Result<SizedBody> {
    let Cut {
        tail_start,
        checksum,
    } = cut;
    let source = Source::new(&rec.path).expecting(rec.ino);
    let remaining = rec.size - offset;
    if offset >= tail_start {
        let len = max_len.min(remaining);
        // Read, checked and recorded in one place: off the event loop unless small (with
        // 100,000 small files, hashing them there made it the bottleneck).
        let (path, stamp, sent) = (rec.path.clone(), rec.stamp(), sent.clone());
        let (bytes, checksum) = source
            .read_then(offset, len, move |bytes| {
                check_unchanged(&path, &stamp)?;
                source::record_memory(&sent, offset, &bytes);
                let checksum =
                    checksum.map(|alg| protocol::format_checksum(alg, &digest(alg, &bytes)));
                Ok((bytes, checksum))
            })
            .await?;
        transfer.touch();
        return Ok(SizedBody {
            body: crate::upload::source::memory_body(bytes, ctx.limiter.clone(), transfer.clone()),
            len,
            checksum,
        });
    }
    let len = max_len.min(tail_start - offset);
    let checksum = match checksum {
        Some(alg) => Some(source.checksum(alg, offset, len).await?),
        None => None,
    };
    let body = source
        .body(
            offset,
            len,
            ctx.limiter.clone(),
            transfer.clone(),
            sent.clone(),
        )
        .await?;
    Ok(SizedBody {
        body,
        len,
        checksum,
    })
}

pub(super) fn digest(alg: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match alg {
        ChecksumAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        ChecksumAlgorithm::Sha1 => sha1_smol::Sha1::from(data).digest().bytes().to_vec(),
    }
}

/// Drives a request future while reporting in-flight progress and watching for stalls. The
/// stall watchdog counts while body bytes should be moving; once all `body_len` bytes are
/// handed over, the answer gets the (longer) final-answer timeout instead.
pub(super) async fn supervise<T>(
    fut: impl std::future::Future<Output = Result<T>>,
    transfer: &Arc<Transfer>,
    acked: u64,
    body_len: u64,
    settings: &UploadSettings,
    reporter: &Reporter,
) -> Result<T> {
    supervise_with(fut, transfer, body_len, settings, |in_flight| {
        reporter.send(WorkerEvent::Progress { acked, in_flight })
    })
    .await
}

/// [`supervise`], reporting the bytes in flight to `report`.
pub(super) async fn supervise_with<T>(
    fut: impl std::future::Future<Output = Result<T>>,
    transfer: &Arc<Transfer>,
    body_len: u64,
    settings: &UploadSettings,
    report: impl Fn(u64),
) -> Result<T> {
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut fut => return r,
            _ = tick.tick() => {
                let idle = transfer.idle();
                if transfer.sent() >= body_len {
                    if idle > settings.final_answer_timeout {
                        return Err(Error::NoAnswer(settings.final_answer_timeout));
                    }
                } else if idle > settings.stall_timeout {
                    return Err(Error::Stalled(settings.stall_timeout));
                }
                report(transfer.sent());
            }
        }
    }
}

/// A 2xx PATCH answer whose Upload-Offset is missing, malformed, shows no progress or claims
/// more than was sent is not believed: it becomes [`Error::BadOffset`] (then HEAD decides).
pub(super) fn believed(
    result: Result<client::Patched>,
    offset: u64,
    sent_len: u64,
) -> Result<client::Patched> {
    match result {
        Ok(p)
            if !(p.offset > offset || (sent_len == 0 && p.offset == offset))
                || p.offset > offset + sent_len =>
        {
            Err(Error::BadOffset(format!(
                "PATCH at {offset} with {sent_len} bytes answered Upload-Offset {}",
                p.offset
            )))
        }
        r => r,
    }
}

/// Maps a failed request to the file's fault when the body stream broke because of the file.
pub(super) async fn blame_file(e: Error, transfer: &Transfer, rec: &UploadRecord) -> Error {
    if let Some(msg) = transfer.failure() {
        if let Err(Error::FileMissing(_)) = source::stamp(&rec.path).await {
            return Error::FileMissing(rec.path.clone());
        }
        return Error::FileChanged(msg);
    }
    e
}

pub(super) fn upload_metadata(rec: &UploadRecord) -> Result<String> {
    let mut meta: BTreeMap<String, String> = BTreeMap::new();
    meta.insert("filename".into(), rec.name.clone());
    let mime = mime_guess::from_path(&rec.name).first_or_octet_stream();
    meta.insert("filetype".into(), mime.essence_str().to_string());
    // User metadata wins over the defaults.
    for (k, v) in &rec.metadata {
        meta.insert(k.clone(), v.clone());
    }
    protocol::encode_metadata(&meta)
}

pub(super) fn given_url_gone() -> Error {
    Error::UploadUrl(
        "the server no longer has it (404/410): ask the service for a new upload URL".into(),
    )
}

/// A POST refused for good by a server that told nothing in OPTIONS either: most likely not
/// a tus server at all, and the message says both answers.
pub(super) fn not_tus(e: Error, caps: &ServerCaps, endpoint: &str) -> Error {
    match (&caps.undiscovered, e.status()) {
        (Some(why), Some(status))
            if !e.is_retryable() && !e.is_auth() && status != 413 && status != 412 =>
        {
            Error::NotTusServer {
                url: crate::redact::strip_userinfo(endpoint),
                reason: format!("{why}, and POST answered {status}"),
            }
        }
        _ => e,
    }
}

/// An upload on another host than the endpoint's (Cloudflare Stream does that) gets the
/// credentials too only when the profile allows that host; without secrets it may go
/// anywhere the person did not refuse. Checked before its URL is journalled.
pub(super) fn check_location(grant: &Grant, endpoint: &url::Url, location: &str) -> Result<()> {
    let loc = url::Url::parse(location).map_err(|e| {
        Error::Protocol(format!("the Location of the new upload is not a URL ({e})"))
    })?;
    if endpoint.scheme() == "https" && loc.scheme() != "https" {
        return Err(Error::Protocol(format!(
            "refusing to send the file from https to {}",
            crate::origin::origin(&loc).unwrap_or_default()
        )));
    }
    grant.check(&loc)
}
