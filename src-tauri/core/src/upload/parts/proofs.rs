//! Whether the parts the server holds are this file's: each checked (HEAD) before the final,
//! and proven block by block when the file's stamp moved.

use super::*;

/// Asks the server (HEAD, all at once) whether these parts are complete partial uploads.
/// A part not kept as partial means the server cannot join parts: one stream instead. A
/// part gone or short is sent again by the next pass.
pub(super) async fn check_parts(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    epoch: i64,
    s: &Setup<'_>,
    parts: &[&PartRow],
    final_posts: u32,
) -> Result<(), Interruption> {
    let heads = futures_util::future::join_all(parts.iter().map(|p| async move {
        match &p.url {
            Some(url) => Some(ctx.client.head(url, s.grant).await),
            None => None,
        }
    }))
    .await;
    for (p, head) in parts.iter().zip(heads) {
        let Some(head) = head else {
            return Err(Interruption::Recheck);
        };
        match head {
            Ok(h) if h.offset == p.len && h.length.is_none_or(|l| l == p.len) => {
                if h.concat != Some(Concat::Partial) {
                    let why = format!(
                        "the server did not keep part {} as a partial upload (HEAD has no Upload-Concat: partial)",
                        p.idx + 1
                    );
                    fall_back(ctx, rec, s, &why).await?;
                }
            }
            Ok(h) => {
                tracing::warn!(
                    id = rec.id,
                    part = p.idx,
                    server = h.offset,
                    len = p.len,
                    "a complete part is no longer complete on the server"
                );
                return Err(Interruption::Recheck);
            }
            Err(e) if says_gone(&e) && final_posts > 0 => return Err(parts_taken().into()),
            Err(e) if says_gone(&e) => {
                ctx.store.set_part_url(rec.id, epoch, p, None)?;
                return Err(Interruption::Recheck);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A moved stamp, part by part: a part whose sent bytes are no longer the file's starts
/// again, and so does one whose server upload holds bytes past what the journal proves
/// (they were read under the old stamp). With the final already made, any difference is a
/// changed file. Then the new stamp becomes the journal's.
pub(super) async fn prove_parts(
    ctx: &UploadCtx,
    rec: &mut UploadRecord,
    epoch: i64,
    parts: &mut [PartRow],
    s: &Setup<'_>,
) -> Result<(), Interruption> {
    let path = std::path::PathBuf::from(&rec.path);
    let st = source::stamp(&rec.path).await?;
    if !st.moved_from(&rec.stamp()) {
        return Ok(());
    }
    no_link_on_the_way(rec, &st).await?;
    if st.size != rec.size {
        return Err(Error::FileChanged(format!(
            "{}: size is now {} bytes, was {}",
            rec.path, st.size, rec.size
        ))
        .into());
    }
    let mut journals = Vec::with_capacity(parts.len());
    for p in parts.iter() {
        journals.push((p.start, ctx.store.part_proof(rec.id, p)?));
    }
    let (fp, stamp, results, after) = source::blocking(move || {
        let (fp, stamp) = fingerprint::fingerprint(&path)?;
        let mut results = Vec::with_capacity(journals.len());
        for (start, j) in &journals {
            results.push(proof::rebuild_at(&path, *start, j, j.len, false)?.is_ok());
        }
        Ok((fp, stamp, results, fingerprint::stamp(&path)?))
    })
    .await?;
    if after != stamp {
        return Err(Error::FileChanged(format!(
            "{} changed while it was being verified",
            rec.path
        ))
        .into());
    }
    let joined = rec.upload_url.is_some();
    for (p, proven) in parts.iter_mut().zip(results) {
        let mut keep = proven;
        if !proven && joined {
            return Err(Error::FileChanged(format!(
                "{}: the bytes of part {} differ from those the server holds",
                rec.path,
                p.idx + 1
            ))
            .into());
        }
        if let (true, Some(url)) = (proven, p.url.clone()) {
            if !joined {
                match ctx.client.head(&url, s.grant).await {
                    Ok(h) if h.offset > p.acked => keep = false,
                    Ok(_) => {}
                    Err(e) if says_gone(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if !keep {
            tracing::info!(
                id = rec.id,
                part = p.idx,
                "this part's bytes on the server are not proven to be the file's; sending it again"
            );
            if let Some(url) = &p.url {
                abandon(ctx, s.caps, rec.id, url, s.grant).await;
            }
            ctx.store.set_part_url(rec.id, epoch, p, None)?;
            p.url = None;
            p.acked = 0;
        }
    }
    let proven: u64 = parts.iter().map(|p| p.acked).sum();
    let proven = if joined { rec.acked_offset } else { proven };
    ctx.store.adopt_stamp(rec.id, epoch, proven, &stamp, &fp)?;
    tracing::info!(
        id = rec.id,
        "file stamp moved; the parts the server holds are proven to be the file's"
    );
    adopt(rec, &stamp, fp);
    Ok(())
}
