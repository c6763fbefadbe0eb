//! The final upload (concatenation) that joins the parts.

use super::*;

/// Joins the parts (the final POST), once every part is complete and the file has not moved:
/// its URL is journalled the moment the answer arrives, and a lost answer is counted.
pub(super) async fn join(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    reporter: &Reporter,
    run: &mut RunState<'_>,
    s: &Setup<'_>,
    parts: &[PartRow],
    final_posts: u32,
) -> Result<(), Interruption> {
    let (id, epoch) = (rec.id, reporter.epoch);
    let Some(urls) = parts
        .iter()
        .map(|p| p.url.clone())
        .collect::<Option<Vec<_>>>()
    else {
        return Err(Interruption::Recheck);
    };

    let before = ctx.store.count_final_post(id, epoch)?;
    if before > 0 {
        tracing::warn!(
            id,
            "an earlier final POST's answer was lost; the server may hold a second copy"
        );
        reporter.send(WorkerEvent::Note(
            "an earlier attempt to join the parts got no answer: the server may hold a second copy of this file".into(),
        ));
    }
    crate::failpoint::hit(crate::failpoint::Point::FinalPosting);
    let metadata = upload_metadata(rec)?;
    let created = match ctx
        .client
        .create_final(
            s.endpoint,
            s.grant,
            &urls,
            &metadata,
            ctx.settings.final_answer_timeout,
        )
        .await
    {
        Ok(c) => c,
        Err(e) if e.status() == Some(501) => {
            return fall_back(ctx, rec, s, "the server refused to join the parts (501)").await
        }
        // A part is not complete or not partial after all: the HEADs say which.
        Err(e) if e.status() == Some(400) => {
            let all: Vec<&PartRow> = parts.iter().collect();
            check_parts(ctx, rec, epoch, s, &all, final_posts).await?;
            return Err(Error::Protocol(format!(
                "the server refused to join the parts, which it says are complete: {e}"
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    crate::failpoint::hit(crate::failpoint::Point::FinalAnswered);
    check_location(s.grant, s.endpoint, &created.url)?;
    let exp = created.expires.and_then(unix_secs);
    ctx.store
        .set_final_url(id, epoch, Some(&created.url), exp)?;
    tracing::debug!(id, url = %crate::redact::strip_userinfo(&created.url), "final upload URL");
    reporter.send(WorkerEvent::Url {
        url: created.url.clone(),
        recreated: false,
    });
    // rustus answers the whole length as the offset: that is the check a HEAD would make.
    let head = if created.offset == rec.size {
        client::HeadInfo {
            offset: created.offset,
            length: Some(rec.size),
            length_deferred: false,
            expires: created.expires,
            concat: None,
        }
    } else {
        ctx.client.head(&created.url, s.grant).await?
    };
    finish(ctx, rec, reporter, run, s, &created.url, head).await
}
