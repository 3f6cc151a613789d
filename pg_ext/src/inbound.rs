//! Inbound apply: every reply and push of InforCRM is journaled whole in `infor_comm.inbox` and
//! applied to `infor_communication_task` exactly once (docs/contract.md, "Inbound messages").
//!
//! - Replies match by `replyUID = vtbc_request_id`; pushes by `taskID = task_id`, else by
//!   `requestID = infor_response_id`.
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
use crate::inbound_message::{body_text, parse, Message, Push, Reply};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiError};

/// Advisory lock class of the CRM's request ids.
const LOCK_CLASS_REQUEST_ID: i32 = 0x1c_0001;
/// Advisory lock class of the CRM's task ids.
const LOCK_CLASS_TASK_ID: i32 = 0x1c_0002;

/// What became of one message; `outcome` is what `apply_inbound` returns.
#[derive(Debug, Default)]
struct Verdict {
    kind: &'static str,
    outcome: &'static str,
    reason: Option<String>,
    task_row_id: Option<String>,
    applied: bool,
}

impl Verdict {
    fn new(kind: &'static str, outcome: &'static str) -> Verdict {
        Verdict {
            kind,
            outcome,
            ..Verdict::default()
        }
    }

    fn rejected(kind: &'static str, reason: String) -> Verdict {
        Verdict {
            reason: Some(reason),
            ..Verdict::new(kind, "rejected")
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

fn find_task(client: &mut SpiClient<'_>, column: &str, value: &str) -> SpiResult<Option<TaskRow>> {
    // `column` is one of three fixed names, never input.
    let sql = format!(
        "SELECT id::text, status_code::text, infor_response_id::text, task_id::text
           FROM infor_comm.infor_communication_task
          WHERE {column} = $1
          ORDER BY time_create, id
          LIMIT 1
            FOR UPDATE"
    );
    let table = client.update(&sql, None, &[value.into()])?;
    if table.is_empty() {
        return Ok(None);
    }
    let row = table.first();
    Ok(Some(TaskRow {
        id: row.get::<String>(1)?.unwrap_or_default(),
        status_code: row.get::<String>(2)?,
        infor_response_id: row.get::<String>(3)?,
        task_id: row.get::<String>(4)?,
    }))
}

/// Applies a reply to its task row.
fn apply_reply(client: &mut SpiClient<'_>, reply: &Reply) -> SpiResult<Verdict> {
    lock(client, LOCK_CLASS_REQUEST_ID, Some(&reply.request_id))?;
    lock(client, LOCK_CLASS_TASK_ID, reply.task_id.as_deref())?;
    let Some(row) = find_task(client, "vtbc_request_id", &reply.reply_uid)? else {
        return Ok(Verdict::rejected(
            "reply",
            format!(
                "replyUID \"{}\" matches no request of ours",
                reply.reply_uid
            ),
        ));
    };
    let mut verdict = Verdict {
        task_row_id: Some(row.id.clone()),
        ..Verdict::new("reply", "reply")
    };
    if let Some(applied_code) = &row.status_code {
        let same = applied_code == &reply.status_code
            && row.infor_response_id.as_deref() == Some(reply.request_id.as_str())
            && row.task_id == reply.task_id;
        if same {
            verdict.outcome = "duplicate";
        } else {
            verdict.outcome = "rejected";
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
        &[row.id.into()],
    )?;
    verdict.applied = true;
    Ok(verdict)
}

/// Looks up the task row of a push: by taskID, else by the CRM's requestID.
fn find_push_task(client: &mut SpiClient<'_>, push: &Push) -> SpiResult<Option<TaskRow>> {
    if let Some(task_id) = &push.task_id {
        if let Some(row) = find_task(client, "task_id", task_id)? {
            return Ok(Some(row));
        }
    }
    match &push.request_id {
        Some(request_id) => find_task(client, "infor_response_id", request_id),
        None => Ok(None),
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
        ..Verdict::new("push", "push")
    };
    if let (Some(ours), Some(theirs)) = (&row.task_id, &push.task_id) {
        if ours != theirs {
            verdict.outcome = "rejected";
            verdict.reason = Some(format!(
                "taskID \"{theirs}\" contradicts the task row's task_id \"{ours}\""
            ));
            return Ok(verdict);
        }
    }
    let seen = client.update(
        "SELECT count(*) FILTER (WHERE body::jsonb = $2::jsonb),
                max(message_dt) FILTER (WHERE applied_at IS NOT NULL)::text,
                bool_or(applied_at IS NOT NULL AND message_dt >= $3::timestamptz)
           FROM infor_comm.inbox
          WHERE task_row_id = $1 AND kind = 'push' AND outcome <> 'rejected'
            AND inbox_id IS DISTINCT FROM $4",
        None,
        &[
            row.id.clone().into(),
            body.into(),
            push.dt.clone().into(),
            inbox_id.into(),
        ],
    )?;
    let seen = seen.first();
    if seen.get::<i64>(1)?.unwrap_or(0) > 0 {
        verdict.outcome = "duplicate";
        return Ok(verdict);
    }
    if seen.get::<bool>(3)?.unwrap_or(false) {
        verdict.reason = Some(format!(
            "superseded: a push with a later or equal dt ({}) is already applied; the row is unchanged",
            seen.get::<String>(2)?.unwrap_or_default()
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
    match find_push_task(client, push)? {
        Some(row) => apply_push_to_row(client, push, body, &row, None),
        None => {
            let mut verdict = Verdict::new("push", "orphan");
            verdict.reason = Some(format!(
                "no task row yet for taskID \"{}\" / requestID \"{}\"; kept until its reply lands",
                push.task_id.as_deref().unwrap_or(""),
                push.request_id.as_deref().unwrap_or("")
            ));
            Ok(verdict)
        }
    }
}

/// Applies the orphan pushes that the reply just applied to `row_id` makes matchable, oldest dt
/// first, in this same transaction.
fn resolve_orphans(client: &mut SpiClient<'_>, row_id: &str, reply_inbox_id: i64) -> SpiResult<()> {
    let orphans = client.update(
        "SELECT i.inbox_id, i.body
           FROM infor_comm.inbox i
           JOIN infor_comm.infor_communication_task t ON t.id = $1
          WHERE i.outcome = 'orphan' AND i.task_row_id IS NULL
            AND (i.push_task_id = t.task_id OR i.push_request_id = t.infor_response_id)
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
        let Some(row) = find_task(client, "id", row_id)? else {
            continue;
        };
        let verdict = apply_push_to_row(client, &push, &body, &row, Some(inbox_id))?;
        let note = match (verdict.outcome, verdict.applied) {
            (_, true) => format!("applied when its reply landed (inbox {reply_inbox_id})"),
            ("duplicate", _) => {
                format!("a duplicate, found when its reply landed (inbox {reply_inbox_id})")
            }
            _ => format!(
                "not applied when its reply landed (inbox {reply_inbox_id}): {}",
                verdict.reason.unwrap_or_default()
            ),
        };
        client.update(
            "UPDATE infor_comm.inbox
                SET task_row_id = $2, reason = $3,
                    applied_at = CASE WHEN $4 THEN pg_catalog.now() END
              WHERE inbox_id = $1",
            None,
            &[
                inbox_id.into(),
                row_id.into(),
                note.into(),
                verdict.applied.into(),
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
            verdict.kind.into(),
            verdict.outcome.into(),
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
        if verdict.kind == "reply" && verdict.applied {
            if let Some(row_id) = &verdict.task_row_id {
                resolve_orphans(client, row_id, inbox_id)?;
            }
        }
        Ok::<_, SpiError>(verdict.outcome)
    })
    .unwrap_or_else(|e| spi_fault("applying an inbound message", e))
}

/// Journals a message received from the broker and applies it to its task row; returns
/// `reply`, `push`, `duplicate`, `orphan` or `rejected`. Raises only on a system fault.
#[pg_extern(volatile, security_definer, name = "apply_inbound")]
#[search_path(pg_catalog, pg_temp)]
fn apply_inbound(body: Option<&str>, message_id: default!(Option<&str>, "NULL")) -> &'static str {
    apply_text(body.unwrap_or(""), message_id)
}

/// The same for a body as raw bytes (what the broker delivers): one that is not valid UTF-8 is
/// journaled as bytes and rejected.
#[pg_extern(volatile, security_definer, name = "apply_inbound")]
#[search_path(pg_catalog, pg_temp)]
fn apply_inbound_bytes(
    body: Option<&[u8]>,
    message_id: default!(Option<&str>, "NULL"),
) -> &'static str {
    let bytes = body.unwrap_or_default();
    match body_text(bytes) {
        Ok(text) => apply_text(text, message_id),
        Err(reason) => Spi::connect_mut(|client| {
            let verdict = Verdict::rejected("unknown", reason);
            journal(client, None, Some(bytes), message_id, None, &verdict)?;
            Ok::<_, SpiError>(verdict.outcome)
        })
        .unwrap_or_else(|e| spi_fault("journaling an inbound message", e)),
    }
}

extension_sql!(
    r#"
-- Every inbound message, whole, with what became of it.
CREATE TABLE infor_comm.inbox (
    inbox_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    message_id      text,
    body            text,
    body_bytes      bytea,
    kind            text NOT NULL,
    outcome         text NOT NULL,
    reason          text,
    task_row_id     varchar(200) REFERENCES infor_comm.infor_communication_task (id),
    message_dt      timestamptz,
    push_task_id    text,
    push_request_id text,
    applied_at      timestamptz,
    CONSTRAINT inbox_kind_check CHECK (kind IN ('reply', 'push', 'unknown')),
    CONSTRAINT inbox_outcome_check
        CHECK (outcome IN ('reply', 'push', 'duplicate', 'orphan', 'rejected')),
    CONSTRAINT inbox_one_body CHECK ((body IS NULL) <> (body_bytes IS NULL)),
    CONSTRAINT inbox_rejected_has_reason CHECK (outcome <> 'rejected' OR reason IS NOT NULL)
);
COMMENT ON TABLE infor_comm.inbox IS
    'Every message received from InforCRM, kept whole: its kind, outcome, the reason when it was rejected, and the task row it touched.';
COMMENT ON COLUMN infor_comm.inbox.message_id IS 'The broker''s message id, when it gave one.';
COMMENT ON COLUMN infor_comm.inbox.body IS 'The message as received (NULL when it was not valid UTF-8: see body_bytes).';
COMMENT ON COLUMN infor_comm.inbox.body_bytes IS 'The message as received, when it was not valid UTF-8 text.';
COMMENT ON COLUMN infor_comm.inbox.outcome IS 'What apply_inbound returned: reply, push, duplicate, orphan or rejected.';
COMMENT ON COLUMN infor_comm.inbox.reason IS 'Why it was rejected, kept back, or not applied.';
COMMENT ON COLUMN infor_comm.inbox.task_row_id IS 'The infor_communication_task row it matched.';
COMMENT ON COLUMN infor_comm.inbox.message_dt IS 'dt of a push (the later one wins).';
COMMENT ON COLUMN infor_comm.inbox.applied_at IS 'When it changed its task row (for an orphan push: when its reply landed).';

CREATE INDEX inbox_task_row_idx ON infor_comm.inbox (task_row_id, kind);
CREATE INDEX inbox_orphan_task_idx ON infor_comm.inbox (push_task_id)
    WHERE outcome = 'orphan' AND task_row_id IS NULL;
CREATE INDEX inbox_orphan_request_idx ON infor_comm.inbox (push_request_id)
    WHERE outcome = 'orphan' AND task_row_id IS NULL;
CREATE INDEX inbox_received_idx ON infor_comm.inbox (received_at);

-- Replies and pushes find their task row by these.
CREATE INDEX infor_communication_task_task_id_idx
    ON infor_comm.infor_communication_task (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX infor_communication_task_response_idx
    ON infor_comm.infor_communication_task (infor_response_id) WHERE infor_response_id IS NOT NULL;
"#,
    name = "inbox",
    requires = ["tables"],
);
