//! Inbound apply: every reply and push of InforCRM is journaled whole in `infor_comm.inbox` and
//! applied to `infor_communication_task` exactly once (docs/contract.md, "Inbound messages").
//!
//! - Replies match by `replyUID = vtbc_request_id`. A push lands only on its own request's row:
//!   its `requestID` (the CRM's) identifies the row by `infor_response_id` and its `taskID` must
//!   agree with that row's `task_id`; a push with a `taskID` only lands where that `taskID` is
//!   unique. A push whose ids point to different rows is `rejected`.
//! - A push whose task row is not known yet is kept as `orphan` and applied in the transaction
//!   that applies its reply.
//! - A repeated message changes nothing (`duplicate`); of two different pushes for one task the
//!   later `dt` wins; a reply that contradicts the applied one is `rejected`.
//! - Messages that fail validation are `rejected` with the reason; the task row is untouched.
//!
//! Concurrency: every apply takes transaction-level advisory locks on the CRM's request id and
//! task id it carries (always in that order), so a reply and its pushes, or two copies of one
//! message, are applied one after the other, never interleaved.

use crate::errors::spi_fault;
use crate::inbound_message::{body_text, parse, Kind, Message, Push, Reply};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiError};

/// Advisory lock class of the CRM's request ids.
const LOCK_CLASS_REQUEST_ID: i32 = 0x1c_0001;
/// Advisory lock class of the CRM's task ids.
const LOCK_CLASS_TASK_ID: i32 = 0x1c_0002;

/// What `apply_inbound` returns for one message (and `inbox.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A reply applied to its task row.
    Reply,
    /// A push applied to its task row (or kept because a later one is applied).
    Push,
    /// A copy of a message already applied; nothing changed.
    Duplicate,
    /// A push whose task row is not known yet; applied when its reply lands.
    Orphan,
    /// Kept in the inbox with the reason; no task row changed.
    Rejected,
}

impl Outcome {
    /// The name `apply_inbound` returns and the inbox stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Reply => "reply",
            Outcome::Push => "push",
            Outcome::Duplicate => "duplicate",
            Outcome::Orphan => "orphan",
            Outcome::Rejected => "rejected",
        }
    }
}

/// What became of one message.
#[derive(Debug)]
struct Verdict {
    kind: Kind,
    outcome: Outcome,
    reason: Option<String>,
    task_row_id: Option<String>,
    applied: bool,
}

impl Verdict {
    fn new(kind: Kind, outcome: Outcome) -> Verdict {
        Verdict {
            kind,
            outcome,
            reason: None,
            task_row_id: None,
            applied: false,
        }
    }

    fn rejected(kind: Kind, reason: String) -> Verdict {
        Verdict {
            reason: Some(reason),
            ..Verdict::new(kind, Outcome::Rejected)
        }
    }
}

/// A task row, locked for this transaction.
struct TaskRow {
    id: String,
    status_code: Option<String>,
    infor_response_id: Option<String>,
    task_id: Option<String>,
}

type SpiResult<T> = Result<T, SpiError>;

fn lock(client: &mut SpiClient<'_>, class: i32, key: Option<&str>) -> SpiResult<()> {
    if let Some(key) = key {
        client.update(
            "SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2))",
            None,
            &[class.into(), key.into()],
        )?;
    }
    Ok(())
}

/// The task rows whose `column` equals `value`, oldest first, locked; at most `limit`.
fn find_tasks(
    client: &mut SpiClient<'_>,
    column: &str,
    value: &str,
    limit: i64,
) -> SpiResult<Vec<TaskRow>> {
    // `column` is one of four fixed names, never input.
    let sql = format!(
        "SELECT id::text, status_code::text, infor_response_id::text, task_id::text
           FROM infor_comm.infor_communication_task
          WHERE {column} = $1
          ORDER BY time_create, id
          LIMIT $2
            FOR UPDATE"
    );
    let mut rows = Vec::new();
    for row in client.update(&sql, None, &[value.into(), limit.into()])? {
        rows.push(TaskRow {
            id: row.get::<String>(1)?.unwrap_or_default(),
            status_code: row.get::<String>(2)?,
            infor_response_id: row.get::<String>(3)?,
            task_id: row.get::<String>(4)?,
        });
    }
    Ok(rows)
}

/// The first task row whose `column` equals `value`, locked.
fn find_task(client: &mut SpiClient<'_>, column: &str, value: &str) -> SpiResult<Option<TaskRow>> {
    Ok(find_tasks(client, column, value, 1)?.into_iter().next())
}

/// Applies a reply to its task row.
fn apply_reply(client: &mut SpiClient<'_>, reply: &Reply) -> SpiResult<Verdict> {
    lock(client, LOCK_CLASS_REQUEST_ID, Some(&reply.request_id))?;
    lock(client, LOCK_CLASS_TASK_ID, reply.task_id.as_deref())?;
    let Some(row) = find_task(client, "vtbc_request_id", &reply.reply_uid)? else {
        return Ok(Verdict::rejected(
            Kind::Reply,
            format!(
                "replyUID \"{}\" matches no request of ours",
                reply.reply_uid
            ),
        ));
    };
    let mut verdict = Verdict {
        task_row_id: Some(row.id.clone()),
        ..Verdict::new(Kind::Reply, Outcome::Reply)
    };
    if let Some(applied_code) = &row.status_code {
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
        return Ok(verdict);
    }
    client.update(
        "UPDATE infor_comm.infor_communication_task
            SET infor_response_id = $2, status_code = $3, task_id = coalesce($4, task_id)
          WHERE id = $1",
        None,
        &[
            row.id.clone().into(),
            reply.request_id.clone().into(),
            reply.status_code.clone().into(),
            reply.task_id.clone().into(),
        ],
    )?;
    client.update(
        // A reply proves the request was published, even if the relay that published it
        // stopped before it could say so.
        "UPDATE infor_comm.outbox
            SET closed_at = pg_catalog.now(), close_reason = 'answered',
                published_at = coalesce(published_at, pg_catalog.now())
          WHERE task_row_id = $1 AND closed_at IS NULL",
        None,
        &[row.id.clone().into()],
    )?;
    if reply.status_code == "0" {
        // The client has its task now: a newer request of the client that is not published yet
        // (the daily job asked again after this one timed out) is withdrawn, never published.
        client.update(
            "UPDATE infor_comm.outbox
                SET closed_at = pg_catalog.now(), close_reason = 'withdrawn'
              WHERE organization_id = (SELECT organization_id
                                         FROM infor_comm.infor_communication_task WHERE id = $1)
                AND task_row_id <> $1 AND closed_at IS NULL AND published_at IS NULL",
            None,
            &[row.id.into()],
        )?;
    }
    verdict.applied = true;
    Ok(verdict)
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
        let Some(row) = find_task(client, "infor_response_id", request_id)? else {
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
    let mut rows = find_tasks(client, "task_id", task_id, 2)?;
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
    // Earlier pushes for this row: a copy of one of them is a duplicate (compared as JSON, in
    // Rust, so that no body can make the comparison raise); one with a later dt, or the same dt
    // received later, wins.
    let earlier = client.update(
        "SELECT body, applied_at IS NOT NULL, message_dt > $2::timestamptz, message_dt::text
           FROM infor_comm.inbox
          WHERE task_row_id = $1 AND kind = 'push' AND outcome <> 'rejected'
            AND inbox_id IS DISTINCT FROM $3",
        None,
        &[
            row.id.clone().into(),
            push.dt.clone().into(),
            inbox_id.into(),
        ],
    )?;
    let this_body = serde_json::from_str::<serde_json::Value>(body).ok();
    let mut superseded_by = None;
    for earlier in earlier {
        let same = earlier
            .get::<String>(1)?
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|value| Some(&value) == this_body.as_ref());
        if same {
            verdict.outcome = Outcome::Duplicate;
            return Ok(verdict);
        }
        let applied = earlier.get::<bool>(2)?.unwrap_or(false);
        if applied && earlier.get::<bool>(3)?.unwrap_or(false) {
            superseded_by = earlier.get::<String>(4)?;
        }
    }
    if let Some(later_dt) = superseded_by {
        verdict.reason = Some(format!(
            "superseded: a push with a later dt ({later_dt}) is already applied; the row is unchanged"
        ));
        return Ok(verdict);
    }
    client.update(
        "UPDATE infor_comm.infor_communication_task
            SET task_id = coalesce(task_id, $2),
                task_status = $3,
                task_execution_type = $4,
                task_execution_description = $5,
                task_close_date = $6,
                first_level_client_reaction = $7,
                second_level_client_reaction = $8,
                third_level_client_reaction = $9
          WHERE id = $1",
        None,
        &[
            row.id.clone().into(),
            push.task_id.clone().into(),
            push.task_status.clone().into(),
            push.task_exec_type.clone().into(),
            push.task_exec_descr.clone().into(),
            push.task_close_date.clone().into(),
            push.first_level.clone().into(),
            push.second_level.clone().into(),
            push.third_level.clone().into(),
        ],
    )?;
    verdict.applied = true;
    Ok(verdict)
}

/// Applies a push, or keeps it as an orphan when its task row is not known yet.
fn apply_push(client: &mut SpiClient<'_>, push: &Push, body: &str) -> SpiResult<Verdict> {
    lock(client, LOCK_CLASS_REQUEST_ID, push.request_id.as_deref())?;
    lock(client, LOCK_CLASS_TASK_ID, push.task_id.as_deref())?;
    match locate_push(client, push)? {
        PushTarget::Row(row) => apply_push_to_row(client, push, body, &row, None),
        PushTarget::Orphan(reason) => Ok(Verdict {
            reason: Some(reason),
            ..Verdict::new(Kind::Push, Outcome::Orphan)
        }),
        PushTarget::Rejected(reason) => Ok(Verdict::rejected(Kind::Push, reason)),
    }
}

/// Applies the orphan pushes that the reply just applied to `row_id` makes matchable, oldest dt
/// first, in this same transaction. The same rule as for a push that arrives after its reply
/// decides where each one lands: one that belongs to another row stays an orphan.
fn resolve_orphans(client: &mut SpiClient<'_>, row_id: &str, reply_inbox_id: i64) -> SpiResult<()> {
    let orphans = client.update(
        "SELECT i.inbox_id, i.body
           FROM infor_comm.inbox i
           JOIN infor_comm.infor_communication_task t ON t.id = $1
          WHERE i.outcome = 'orphan' AND i.task_row_id IS NULL
            AND (i.push_request_id = t.infor_response_id
                 OR (i.push_request_id IS NULL AND i.push_task_id = t.task_id))
          ORDER BY i.message_dt, i.inbox_id
            FOR UPDATE OF i",
        None,
        &[row_id.into()],
    )?;
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
        // A rejected orphan stays without a task row and leaves the orphan state; the others
        // record the row they were resolved to.
        client.update(
            "UPDATE infor_comm.inbox
                SET task_row_id = $2, reason = $3,
                    outcome = CASE WHEN $5 THEN 'rejected' ELSE outcome END,
                    applied_at = CASE WHEN $4 THEN pg_catalog.now() END
              WHERE inbox_id = $1",
            None,
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
    message_id: Option<&str>,
    message: Option<&Message>,
    verdict: &Verdict,
) -> SpiResult<i64> {
    let push = match message {
        Some(Message::Push(push)) => Some(push),
        _ => None,
    };
    let table = client.update(
        "INSERT INTO infor_comm.inbox
                (message_id, body, body_bytes, kind, outcome, reason, task_row_id,
                 message_dt, push_task_id, push_request_id, applied_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, $9, $10,
                 CASE WHEN $11 THEN pg_catalog.now() END)
         RETURNING inbox_id",
        None,
        &[
            message_id.into(),
            body.into(),
            body_bytes.into(),
            verdict.kind.as_str().into(),
            verdict.outcome.as_str().into(),
            verdict.reason.clone().into(),
            verdict.task_row_id.clone().into(),
            push.map(|p| p.dt.clone()).into(),
            push.and_then(|p| p.task_id.clone()).into(),
            push.and_then(|p| p.request_id.clone()).into(),
            verdict.applied.into(),
        ],
    )?;
    Ok(table.first().get::<i64>(1)?.unwrap_or_default())
}

/// Journals and applies one body that is valid text.
fn apply_text(body: &str, message_id: Option<&str>) -> &'static str {
    Spi::connect_mut(|client| {
        let (message, verdict) = match parse(body) {
            Err(refusal) => (None, Verdict::rejected(refusal.kind, refusal.reason)),
            Ok(message) => {
                let verdict = match &message {
                    Message::Reply(reply) => apply_reply(client, reply)?,
                    Message::Push(push) => apply_push(client, push, body)?,
                };
                (Some(message), verdict)
            }
        };
        let inbox_id = journal(
            client,
            Some(body),
            None,
            message_id,
            message.as_ref(),
            &verdict,
        )?;
        if verdict.kind == Kind::Reply && verdict.applied {
            if let Some(row_id) = &verdict.task_row_id {
                resolve_orphans(client, row_id, inbox_id)?;
            }
        }
        Ok::<_, SpiError>(verdict.outcome.as_str())
    })
    .unwrap_or_else(|e| spi_fault("applying an inbound message", e))
}

/// Journals a message received from the broker and applies it to its task row; returns
/// `reply`, `push`, `duplicate`, `orphan` or `rejected`. Raises only on a system fault.
#[pg_extern(volatile, security_definer, name = "apply_inbound")]
#[search_path(pg_catalog, pg_temp)]
fn apply_inbound(body: Option<&str>, message_id: default!(Option<&str>, "NULL")) -> &'static str {
    match body {
        Some(body) => apply_text(body, message_id),
        None => reject_unreadable(None, message_id, "the body is NULL".into()),
    }
}

/// Journals a body that cannot be read as text (NULL, or not UTF-8) as rejected.
fn reject_unreadable(
    bytes: Option<&[u8]>,
    message_id: Option<&str>,
    reason: String,
) -> &'static str {
    Spi::connect_mut(|client| {
        let verdict = Verdict::rejected(Kind::Unknown, reason);
        journal(client, None, bytes, message_id, None, &verdict)?;
        Ok::<_, SpiError>(verdict.outcome.as_str())
    })
    .unwrap_or_else(|e| spi_fault("journaling an inbound message", e))
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.apply_inbound(text, text) IS
    'Journals one inbound message and applies it; returns reply, push, duplicate, orphan or rejected.';
"#,
    name = "apply_inbound_comment",
    requires = [apply_inbound],
);

/// The same for a body as raw bytes (what the broker delivers): one that is not valid UTF-8 is
/// journaled as bytes and rejected.
#[pg_extern(volatile, security_definer, name = "apply_inbound")]
#[search_path(pg_catalog, pg_temp)]
fn apply_inbound_bytes(
    body: Option<&[u8]>,
    message_id: default!(Option<&str>, "NULL"),
) -> &'static str {
    let Some(bytes) = body else {
        return reject_unreadable(None, message_id, "the body is NULL".into());
    };
    match body_text(bytes) {
        Ok(text) => apply_text(text, message_id),
        Err(reason) => reject_unreadable(Some(bytes), message_id, reason),
    }
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.apply_inbound(bytea, text) IS
    'apply_inbound for a raw body; a body that is not valid UTF-8 is journaled as bytes and rejected.';
"#,
    name = "apply_inbound_bytes_comment",
    requires = [apply_inbound_bytes],
);

extension_sql_file!(
    "../sql/inbox_table.sql",
    name = "inbox_table",
    requires = ["task_table"],
);
