//! The apply: a reply to its request's task row, a push to its own request's row (or kept as an
//! orphan until its reply lands), each message journaled in `infor_comm.inbox` with its verdict.

use super::locks::{lock, LOCK_CLASS_REQUEST_ID, LOCK_CLASS_TASK_ID};
use super::outcome::{Envelope, Outcome, SpiResult, TaskRow, Verdict, OVERSIZED_HEAD_BYTES};
use super::statements::{run, Statement};
use crate::errors::{raise, spi_fault};
use crate::inbound_message::{body_text, parse, Kind, Message, Push, Reply};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiError};

/// The task rows found by `statement` for `value`, oldest first, locked; at most `limit`.
fn find_tasks(
    client: &mut SpiClient<'_>,
    statement: Statement,
    value: &str,
    limit: i64,
) -> SpiResult<Vec<TaskRow>> {
    let mut rows = Vec::new();
    for row in run(client, statement, &[value.into(), limit.into()])? {
        rows.push(TaskRow {
            id: row.get::<String>(1)?.unwrap_or_default(),
            status_code: row.get::<String>(2)?,
            infor_response_id: row.get::<String>(3)?,
            task_id: row.get::<String>(4)?,
        });
    }
    Ok(rows)
}

/// The first task row found by `statement` for `value`, locked.
fn find_task(
    client: &mut SpiClient<'_>,
    statement: Statement,
    value: &str,
) -> SpiResult<Option<TaskRow>> {
    Ok(find_tasks(client, statement, value, 1)?.into_iter().next())
}

/// A reply applied and journaled by [`Statement::AnswerReply`].
struct Answered {
    inbox_id: i64,
    task_row_id: String,
    orphans_wait: bool,
}

/// Applies a reply to its unanswered request and journals it, in one statement; `None` when
/// the request is unknown or already answered.
fn answer_reply(
    client: &mut SpiClient<'_>,
    reply: &Reply,
    body: &str,
    envelope: &Envelope<'_>,
) -> SpiResult<Option<Answered>> {
    let table = run(
        client,
        Statement::AnswerReply,
        &[
            reply.reply_uid.as_str().into(),
            reply.request_id.as_str().into(),
            reply.status_code.as_str().into(),
            reply.task_id.as_deref().into(),
            envelope.message_id.into(),
            envelope.message_id_bytes.into(),
            body.into(),
        ],
    )?;
    if table.is_empty() {
        return Ok(None);
    }
    let row = table.first();
    let answered = Answered {
        inbox_id: row.get::<i64>(1)?.unwrap_or_default(),
        task_row_id: row.get::<String>(2)?.unwrap_or_default(),
        orphans_wait: row.get::<bool>(3)?.unwrap_or(false),
    };
    let request_was_open = row.get::<bool>(4)?.unwrap_or(false);
    if !request_was_open && reply.status_code == "0" {
        run(
            client,
            Statement::WithdrawNewer,
            &[answered.task_row_id.as_str().into()],
        )?;
    }
    Ok(Some(answered))
}

/// What became of a reply.
enum ReplyOutcome {
    /// Applied and journaled.
    Answered(Answered),
    /// Not applied (a duplicate, a conflict, an unknown request): still to be journaled.
    Verdict(Verdict),
}

/// Applies a reply to its task row: one statement when the request is waiting for it (nearly
/// always); else the row is read and locked to tell a duplicate from a conflict.
fn apply_reply(
    client: &mut SpiClient<'_>,
    reply: &Reply,
    body: &str,
    envelope: &Envelope<'_>,
) -> SpiResult<ReplyOutcome> {
    lock(LOCK_CLASS_REQUEST_ID, Some(&reply.request_id));
    lock(LOCK_CLASS_TASK_ID, reply.task_id.as_deref());
    if let Some(answered) = answer_reply(client, reply, body, envelope)? {
        return Ok(ReplyOutcome::Answered(answered));
    }
    let Some(row) = find_task(client, Statement::TaskByRequest, &reply.reply_uid)? else {
        return Ok(ReplyOutcome::Verdict(Verdict::rejected(
            Kind::Reply,
            format!(
                "replyUID \"{}\" matches no request of ours",
                reply.reply_uid
            ),
        )));
    };
    let mut verdict = Verdict {
        task_row_id: Some(row.id.clone()),
        ..Verdict::new(Kind::Reply, Outcome::Reply)
    };
    let Some(applied_code) = &row.status_code else {
        // The row was committed, unanswered, after the first statement looked (the daily job's
        // transaction): it is locked now, so the same statement applies it.
        return match answer_reply(client, reply, body, envelope)? {
            Some(answered) => Ok(ReplyOutcome::Answered(answered)),
            None => raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!(
                    "infor_comm: the unanswered task row {} could not be answered",
                    row.id
                ),
                "The row was locked and unanswered, yet the reply's statement did not update it.",
                "This is a bug; the transaction is rolled back and the message can be applied again.",
            ),
        };
    };
    let same = applied_code == &reply.status_code
        && row.infor_response_id.as_deref() == Some(reply.request_id.as_str())
        && row.task_id == reply.task_id;
    if same {
        verdict.outcome = Outcome::Duplicate;
    } else {
        verdict.outcome = Outcome::Rejected;
        verdict.reason = Some(format!(
            "conflicts with the reply already applied (statusCode \"{applied_code}\", requestID \"{}\", taskID \"{}\")",
            row.infor_response_id.as_deref().unwrap_or(""),
            row.task_id.as_deref().unwrap_or("")
        ));
    }
    Ok(ReplyOutcome::Verdict(verdict))
}

/// Where a push belongs (docs/contract.md, "A push lands only on its own request's row").
enum PushTarget {
    /// Its own request's task row.
    Row(TaskRow),
    /// No row yet: kept until its reply lands; the text says what it waits for.
    Orphan(String),
    /// It can never land: the text says why.
    Rejected(String),
}

/// Finds the task row of a push: the CRM's `requestID` identifies the request, and the `taskID`
/// must agree with it; a push with a `taskID` only lands where that `taskID` is unique.
fn locate_push(client: &mut SpiClient<'_>, push: &Push) -> SpiResult<PushTarget> {
    if let Some(request_id) = &push.request_id {
        let mut rows = find_tasks(client, Statement::TaskByResponse, request_id, 2)?;
        if rows.len() > 1 {
            // The CRM gave one requestID to the replies of two of our requests: which call this
            // outcome is of cannot be told, so it is applied to neither.
            return Ok(PushTarget::Rejected(format!(
                "requestID \"{request_id}\" belongs to the replies of more than one task row, so the push cannot tell which"
            )));
        }
        let Some(row) = rows.pop() else {
            return Ok(PushTarget::Orphan(format!(
                "no reply with requestID \"{request_id}\" yet; kept until it lands"
            )));
        };
        if row.status_code.as_deref() != Some("0") {
            return Ok(PushTarget::Rejected(format!(
                "the reply with requestID \"{request_id}\" said statusCode \"{}\": no task was created, so there is no outcome to record",
                row.status_code.as_deref().unwrap_or("")
            )));
        }
        if let (Some(theirs), ours) = (&push.task_id, &row.task_id) {
            if ours.as_deref() != Some(theirs.as_str()) {
                return Ok(PushTarget::Rejected(format!(
                    "taskID \"{theirs}\" disagrees with requestID \"{request_id}\", whose task row has task_id \"{}\"",
                    ours.as_deref().unwrap_or("")
                )));
            }
        }
        return Ok(PushTarget::Row(row));
    }
    let Some(task_id) = &push.task_id else {
        return Ok(PushTarget::Rejected(
            "both taskID and requestID are missing: the push matches no task".into(),
        ));
    };
    let mut rows = find_tasks(client, Statement::TaskByTaskId, task_id, 2)?;
    match rows.len() {
        0 => Ok(PushTarget::Orphan(format!(
            "no task row with taskID \"{task_id}\" yet; kept until its reply lands"
        ))),
        1 => Ok(PushTarget::Row(rows.remove(0))),
        _ => Ok(PushTarget::Rejected(format!(
            "taskID \"{task_id}\" belongs to more than one task row and the push has no requestID to tell which"
        ))),
    }
}

/// Applies a push to its (locked) task row; `inbox_id` is the push's own inbox row when it is
/// an orphan being resolved, so that it does not count as its own duplicate.
fn apply_push_to_row(
    client: &mut SpiClient<'_>,
    push: &Push,
    body: &str,
    row: &TaskRow,
    inbox_id: Option<i64>,
) -> SpiResult<Verdict> {
    let mut verdict = Verdict {
        task_row_id: Some(row.id.clone()),
        ..Verdict::new(Kind::Push, Outcome::Push)
    };
    // A copy of an earlier push for this row (the same JSON, found by the digest of its
    // canonical form, computed in Rust so that no body can make it raise) is a duplicate; a push
    // applied earlier with a later dt wins (of two with the same dt, the later received). One
    // index probe each, however many pushes came before.
    if let Some(digest) = crate::inbound_message::push_digest(body) {
        let copies = run(
            client,
            Statement::CopyOfPush,
            &[
                row.id.as_str().into(),
                digest.as_slice().into(),
                inbox_id.into(),
            ],
        )?;
        if !copies.is_empty() {
            verdict.outcome = Outcome::Duplicate;
            return Ok(verdict);
        }
    }
    let later = run(
        client,
        Statement::LaterAppliedPush,
        &[
            row.id.as_str().into(),
            push.dt.as_str().into(),
            inbox_id.into(),
        ],
    )?;
    let superseded_by = match later.into_iter().next() {
        Some(row) => row.get::<String>(1)?,
        None => None,
    };
    if let Some(later_dt) = superseded_by {
        verdict.reason = Some(format!(
            "superseded: a push with a later dt ({later_dt}) is already applied; the row is unchanged"
        ));
        return Ok(verdict);
    }
    run(
        client,
        Statement::UpdatePush,
        &[
            row.id.as_str().into(),
            push.task_id.as_deref().into(),
            push.task_status.as_str().into(),
            push.task_exec_type.as_deref().into(),
            push.task_exec_descr.as_deref().into(),
            push.task_close_date.as_deref().into(),
            push.first_level.as_deref().into(),
            push.second_level.as_deref().into(),
            push.third_level.as_deref().into(),
        ],
    )?;
    verdict.applied = true;
    Ok(verdict)
}

/// Applies a push, or keeps it as an orphan when its task row is not known yet.
fn apply_push(client: &mut SpiClient<'_>, push: &Push, body: &str) -> SpiResult<Verdict> {
    if let Some(reason) = dt_too_far_ahead(&push.dt, chrono::Utc::now()) {
        return Ok(Verdict::rejected(Kind::Push, reason));
    }
    lock(LOCK_CLASS_REQUEST_ID, push.request_id.as_deref());
    lock(LOCK_CLASS_TASK_ID, push.task_id.as_deref());
    match locate_push(client, push)? {
        PushTarget::Row(row) => apply_push_to_row(client, push, body, &row, None),
        PushTarget::Orphan(reason) => Ok(Verdict {
            reason: Some(reason),
            ..Verdict::new(Kind::Push, Outcome::Orphan)
        }),
        PushTarget::Rejected(reason) => Ok(Verdict::rejected(Kind::Push, reason)),
    }
}

/// Why a push's `dt` (normalised by `push_dt`) cannot be applied when received at `received`:
/// it lies further ahead than `infor_comm.max_push_dt_ahead`. Of two pushes for one task the
/// later `dt` wins, so a push dated 9999-12-31 would otherwise outrank every real one after it.
fn dt_too_far_ahead(dt: &str, received: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let dt = chrono::DateTime::parse_from_rfc3339(dt).ok()?;
    let latest = received.checked_add_signed(crate::gucs::max_push_dt_ahead()?)?;
    (dt.with_timezone(&chrono::Utc) > latest).then(|| {
        format!(
            "dt \"{}\" is more than {} after the push was received (infor_comm.max_push_dt_ahead)",
            dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            crate::gucs::Setting::MaxPushDtAhead.raw()
        )
    })
}

/// Applies the orphan pushes that the reply just applied to `row_id` makes matchable, oldest dt
/// first, in this same transaction. The same rule as for a push that arrives after its reply
/// decides where each one lands: one that belongs to another row stays an orphan.
fn resolve_orphans(client: &mut SpiClient<'_>, row_id: &str, reply_inbox_id: i64) -> SpiResult<()> {
    let orphans = run(client, Statement::Orphans, &[row_id.into()])?;
    let mut pending = Vec::new();
    for orphan in orphans {
        pending.push((
            orphan.get::<i64>(1)?.unwrap_or_default(),
            orphan.get::<String>(2)?.unwrap_or_default(),
        ));
    }
    for (inbox_id, body) in pending {
        let Ok(Message::Push(push)) = parse(&body) else {
            continue;
        };
        let (verdict, row_id_touched) = match locate_push(client, &push)? {
            PushTarget::Row(row) if row.id == row_id => (
                apply_push_to_row(client, &push, &body, &row, Some(inbox_id))?,
                Some(row.id),
            ),
            PushTarget::Row(_) | PushTarget::Orphan(_) => continue,
            PushTarget::Rejected(reason) => (Verdict::rejected(Kind::Push, reason), None),
        };
        let note = match (verdict.outcome, verdict.applied) {
            (_, true) => format!("applied when its reply landed (inbox {reply_inbox_id})"),
            (Outcome::Duplicate, _) => {
                format!("a duplicate, found when its reply landed (inbox {reply_inbox_id})")
            }
            (Outcome::Rejected, _) => format!(
                "rejected when its reply landed (inbox {reply_inbox_id}): {}",
                verdict.reason.unwrap_or_default()
            ),
            _ => format!(
                "not applied when its reply landed (inbox {reply_inbox_id}): {}",
                verdict.reason.unwrap_or_default()
            ),
        };
        run(
            client,
            Statement::ResolveOrphan,
            &[
                inbox_id.into(),
                row_id_touched.into(),
                note.into(),
                verdict.applied.into(),
                (verdict.outcome == Outcome::Rejected).into(),
            ],
        )?;
    }
    Ok(())
}

/// Journals one message with its verdict; returns its inbox id.
fn journal(
    client: &mut SpiClient<'_>,
    body: Option<&str>,
    body_bytes: Option<&[u8]>,
    envelope: &Envelope<'_>,
    message: Option<&Message>,
    verdict: &Verdict,
) -> SpiResult<i64> {
    let push = match message {
        Some(Message::Push(push)) => Some(push),
        _ => None,
    };
    let table = run(
        client,
        Statement::Journal,
        &[
            envelope.message_id.into(),
            body.into(),
            body_bytes.into(),
            verdict.kind.as_str().into(),
            verdict.outcome.as_str().into(),
            verdict.reason.as_deref().into(),
            verdict.task_row_id.as_deref().into(),
            push.map(|p| p.dt.as_str()).into(),
            push.and_then(|p| p.task_id.as_deref()).into(),
            push.and_then(|p| p.request_id.as_deref()).into(),
            verdict.applied.into(),
            envelope.message_id_bytes.into(),
            envelope.oversized.map(|(size, _)| size).into(),
            envelope.oversized.map(|(_, sha256)| sha256).into(),
        ],
    )?;
    Ok(table.first().get::<i64>(1)?.unwrap_or_default())
}

/// Journals and applies one body that is valid text.
fn apply_text(body: &str, envelope: &Envelope<'_>) -> &'static str {
    Spi::connect_mut(|client| {
        let (message, verdict) = match parse(body) {
            Err(refusal) => (None, Verdict::rejected(refusal.kind, refusal.reason)),
            Ok(Message::Reply(reply)) => match apply_reply(client, &reply, body, envelope)? {
                ReplyOutcome::Answered(answered) => {
                    if answered.orphans_wait {
                        resolve_orphans(client, &answered.task_row_id, answered.inbox_id)?;
                    }
                    return Ok(Outcome::Reply.as_str());
                }
                ReplyOutcome::Verdict(verdict) => (Some(Message::Reply(reply)), verdict),
            },
            Ok(Message::Push(push)) => {
                let verdict = apply_push(client, &push, body)?;
                (Some(Message::Push(push)), verdict)
            }
        };
        journal(
            client,
            Some(body),
            None,
            envelope,
            message.as_ref(),
            &verdict,
        )?;
        Ok::<_, SpiError>(verdict.outcome.as_str())
    })
    .unwrap_or_else(|e| spi_fault("applying an inbound message", e))
}

/// Journals a body that cannot be read as text (NULL, or not UTF-8) as rejected.
fn reject_unreadable(
    bytes: Option<&[u8]>,
    envelope: &Envelope<'_>,
    reason: String,
) -> &'static str {
    Spi::connect_mut(|client| {
        let verdict = Verdict::rejected(Kind::Unknown, reason);
        journal(client, None, bytes, envelope, None, &verdict)?;
        Ok::<_, SpiError>(verdict.outcome.as_str())
    })
    .unwrap_or_else(|e| spi_fault("journaling an inbound message", e))
}

/// Journals and applies a body given as bytes.
fn apply_bytes(body: Option<&[u8]>, envelope: &Envelope<'_>) -> &'static str {
    let Some(bytes) = body else {
        return reject_unreadable(None, envelope, "the body is NULL".into());
    };
    match body_text(bytes) {
        Ok(text) => apply_text(text, envelope),
        Err(reason) => reject_unreadable(Some(bytes), envelope, reason),
    }
}

/// Journals and applies a body given as text, its message id given as text (from SQL).
pub fn apply_text_body(body: Option<&str>, message_id: Option<&str>) -> &'static str {
    let envelope = Envelope::text_id(message_id);
    match body {
        Some(body) => apply_text(body, &envelope),
        None => reject_unreadable(None, &envelope, "the body is NULL".into()),
    }
}

/// Journals and applies a body given as bytes, its message id given as text (from SQL): a body
/// that is not valid UTF-8 is journaled as bytes and rejected.
pub fn apply_bytes_body(body: Option<&[u8]>, message_id: Option<&str>) -> &'static str {
    apply_bytes(body, &Envelope::text_id(message_id))
}

/// Journals and applies a body and a message id as the broker delivered them: an id that
/// PostgreSQL cannot store as text is journaled as bytes and never makes the apply fail.
pub fn apply_delivery(body: Option<&[u8]>, message_id: Option<&[u8]>) -> &'static str {
    apply_bytes(body, &Envelope::raw_id(message_id))
}

/// [`apply_delivery`] for each body and message id, in order; the outcome of each. Raises on
/// arrays of different lengths, naming both.
pub fn apply_deliveries(
    bodies: &[Option<&[u8]>],
    message_ids: &[Option<&[u8]>],
) -> Vec<&'static str> {
    if bodies.len() != message_ids.len() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "infor_comm: {} bodies and {} message ids",
                bodies.len(),
                message_ids.len()
            ),
            "apply_deliveries takes one message id (or NULL) for each body, in the same order.",
            "Pass two arrays of the same length.",
        );
    }
    bodies
        .iter()
        .zip(message_ids)
        .map(|(body, message_id)| apply_delivery(*body, *message_id))
        .collect()
}

/// Journals a body over the relay's size limit as `rejected` without applying it: its size,
/// its SHA-256 and at most its first [`OVERSIZED_HEAD_BYTES`]. Raises on a digest that is not 32
/// bytes or a negative size.
pub fn reject_oversized(
    head: &[u8],
    message_id: Option<&[u8]>,
    body_size: i64,
    body_sha256: &[u8],
    size_limit: i64,
) -> &'static str {
    if body_sha256.len() != 32 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "infor_comm: body_sha256 is {} bytes, not 32",
                body_sha256.len()
            ),
            "reject_oversized keeps the SHA-256 of the whole body, 32 bytes.",
            "Pass the digest as bytes, e.g. sha256(body).",
        );
    }
    if body_size < 0 || size_limit < 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("infor_comm: a negative size (body_size {body_size}, size_limit {size_limit})"),
            "body_size is the size of the whole body and size_limit the relay's limit, in bytes.",
            "Pass the sizes in bytes.",
        );
    }
    let kept = &head[..head.len().min(OVERSIZED_HEAD_BYTES)];
    let mut envelope = Envelope::raw_id(message_id);
    envelope.oversized = Some((body_size, body_sha256));
    let reason = format!(
        "the body is {body_size} bytes, over the relay's limit of {size_limit} bytes; \
         kept: its size, its SHA-256 and its first {} bytes",
        kept.len()
    );
    Spi::connect_mut(|client| {
        let verdict = Verdict::rejected(Kind::Unknown, reason);
        journal(client, None, Some(kept), &envelope, None, &verdict)?;
        Ok::<_, SpiError>(verdict.outcome.as_str())
    })
    .unwrap_or_else(|e| spi_fault("journaling an oversized inbound message", e))
}

/// Journals a message the relay set aside (its apply kept failing, or its headers are over the
/// relay's limits) as `rejected`, with the attempts and the last error, without applying it.
pub fn set_aside(
    body: Option<&[u8]>,
    message_id: Option<&[u8]>,
    attempts: i32,
    error: &str,
) -> &'static str {
    let envelope = Envelope::raw_id(message_id);
    let text = body.and_then(|bytes| body_text(bytes).ok());
    let kind = match text.map(parse) {
        Some(Ok(Message::Reply(_))) => Kind::Reply,
        Some(Ok(Message::Push(_))) => Kind::Push,
        Some(Err(refusal)) => refusal.kind,
        None => Kind::Unknown,
    };
    // attempts 0: the relay set it aside without applying it (its headers are over its limits).
    let reason = if attempts > 0 {
        format!("set aside by the relay after {attempts} failed applies; last error: {error}")
    } else {
        format!("set aside by the relay without applying it: {error}")
    };
    let bytes = if text.is_some() { None } else { body };
    Spi::connect_mut(|client| {
        let verdict = Verdict::rejected(kind, reason);
        journal(client, text, bytes, &envelope, None, &verdict)?;
        Ok::<_, SpiError>(verdict.outcome.as_str())
    })
    .unwrap_or_else(|e| spi_fault("journaling a set-aside inbound message", e))
}
