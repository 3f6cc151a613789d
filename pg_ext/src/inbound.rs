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

use crate::errors::{raise, spi_fault};
use crate::inbound_message::{body_text, parse, Kind, Message, Push, Reply};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{PgBuiltInOids, PgOid};
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiError, SpiTupleTable};
use std::cell::Cell;

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

/// The most of an oversized body the inbox keeps (docs/contract.md, "Oversized messages").
pub const OVERSIZED_HEAD_BYTES: usize = 64 * 1024;

/// What the inbox keeps of how a message was delivered, beside its body.
#[derive(Debug, Default, Clone, Copy)]
struct Envelope<'a> {
    /// The broker's message id, when it is text PostgreSQL can store.
    message_id: Option<&'a str>,
    /// The broker's message id as it came, when it is not (a NUL byte, or not UTF-8).
    message_id_bytes: Option<&'a [u8]>,
    /// An oversized body's full size and SHA-256 (the inbox keeps only its head).
    oversized: Option<(i64, &'a [u8])>,
}

impl<'a> Envelope<'a> {
    /// An envelope whose id came as text (from SQL, so it holds no NUL).
    fn text_id(message_id: Option<&'a str>) -> Envelope<'a> {
        Envelope {
            message_id,
            ..Envelope::default()
        }
    }

    /// An envelope whose id came as the broker's bytes: kept as text when it is clean UTF-8,
    /// else as bytes, so that it round-trips either way and never makes the apply fail.
    fn raw_id(message_id: Option<&'a [u8]>) -> Envelope<'a> {
        match message_id.map(|bytes| (bytes, body_text(bytes))) {
            None => Envelope::default(),
            Some((_, Ok(text))) => Envelope::text_id(Some(text)),
            Some((bytes, Err(_))) => Envelope {
                message_id_bytes: Some(bytes),
                ..Envelope::default()
            },
        }
    }
}

// Every statement of the apply is prepared once per session and kept (SPI_keepplan): parsing and
// planning them anew for each message cost more than running them. PostgreSQL's plan cache
// re-plans a kept statement when a table it reads changes (an index added, the extension
// dropped and created again), and the functions that run them pin their search_path, so a kept
// statement always resolves the same objects.

/// The statements of the apply, each prepared on its first use in a session.
#[derive(Debug, Clone, Copy)]
enum Statement {
    /// A reply to an unanswered request, in one statement: the task row updated, the request's
    /// outbox row closed, the message journaled; returns the inbox id, the task row, whether
    /// orphan pushes wait for it (each test one probe of its partial index, however many
    /// orphans there are) and whether the request was still open. No row: the request is
    /// unknown or already answered (the careful path).
    AnswerReply,
    /// The unpublished open request of a task row's client withdrawn (a '0' to an older request
    /// that was no longer open: it had timed out).
    WithdrawNewer,
    /// The task row of a reply (`vtbc_request_id`), locked.
    TaskByRequest,
    /// The task row of a push's `requestID` (`infor_response_id`), oldest first, locked.
    TaskByResponse,
    /// The task rows of a push's `taskID`, oldest first, locked.
    TaskByTaskId,
    /// A copy of a push on one task row (one probe of `inbox_push_copies_idx`).
    CopyOfPush,
    /// The latest dt of the pushes applied to one task row, when later than a push's (one
    /// probe of `inbox_applied_pushes_idx`).
    LaterAppliedPush,
    /// A push applied to its task row.
    UpdatePush,
    /// One message journaled.
    Journal,
    /// The orphan pushes that a reply just applied makes matchable, locked.
    Orphans,
    /// An orphan push resolved.
    ResolveOrphan,
}

const STATEMENTS: usize = 11;

const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
const INT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8OID);
const BOOL: PgOid = PgOid::BuiltIn(PgBuiltInOids::BOOLOID);
const BYTEA: PgOid = PgOid::BuiltIn(PgBuiltInOids::BYTEAOID);

/// The columns of a task row that the apply reads, for the three look-ups.
macro_rules! find_task_sql {
    ($column:literal) => {
        concat!(
            "SELECT id::text, status_code::text, infor_response_id::text, task_id::text
               FROM infor_comm.infor_communication_task
              WHERE ",
            $column,
            " = $1
              ORDER BY time_create, id
              LIMIT $2
                FOR UPDATE"
        )
    };
}

impl Statement {
    fn sql(self) -> &'static str {
        match self {
            // The request's outbox row is closed if it is still open: a reply proves its request
            // was published, even if the relay that published it stopped before it could say
            // so. Closing changes no indexed column of the outbox: a HOT update; the client's
            // row in outbox_open stays until the next enqueue removes it. Returns whether the
            // row was open: if it was not (it timed out), a '0' withdraws the client's newer
            // request while it is unpublished (Statement::WithdrawNewer).
            Statement::AnswerReply => {
                "WITH answered AS (
                     UPDATE infor_comm.infor_communication_task
                        SET infor_response_id = $2, status_code = $3, task_id = coalesce($4, task_id)
                      WHERE vtbc_request_id = $1 AND status_code IS NULL
                  RETURNING id, task_id
                 ), closed AS (
                     UPDATE infor_comm.outbox o
                        SET closed_at = pg_catalog.now(),
                            close_reason = 'answered',
                            published_at = coalesce(o.published_at, pg_catalog.now())
                       FROM answered a
                      WHERE o.task_row_id = a.id AND o.closed_at IS NULL
                  RETURNING 1
                 )
                 INSERT INTO infor_comm.inbox
                        (message_id, message_id_bytes, body, kind, outcome, task_row_id, applied_at)
                 SELECT $5, $6, $7, 'reply', 'reply', a.id, pg_catalog.now()
                   FROM answered a
              RETURNING inbox_id, task_row_id::text,
                        EXISTS (SELECT FROM infor_comm.inbox i
                                 WHERE i.outcome = 'orphan' AND i.task_row_id IS NULL
                                   AND i.push_request_id = $2)
                        OR EXISTS (SELECT FROM infor_comm.inbox i
                                    WHERE i.outcome = 'orphan' AND i.task_row_id IS NULL
                                      AND i.push_request_id IS NULL
                                      AND i.push_task_id = (SELECT a.task_id FROM answered a)),
                        EXISTS (SELECT FROM closed)"
            }
            // The outbox holds at most one open request per client, found through outbox_open:
            // after a reply to a request that was no longer open, it is a newer one.
            Statement::WithdrawNewer => {
                "UPDATE infor_comm.outbox o
                    SET closed_at = pg_catalog.now(), close_reason = 'withdrawn'
                   FROM infor_comm.infor_communication_task t, infor_comm.outbox_open p
                  WHERE t.id = $1 AND p.organization_id = t.organization_id
                    AND o.outbox_id = p.outbox_id AND o.closed_at IS NULL AND o.published_at IS NULL"
            }
            Statement::TaskByRequest => find_task_sql!("vtbc_request_id"),
            Statement::TaskByResponse => find_task_sql!("infor_response_id"),
            Statement::TaskByTaskId => find_task_sql!("task_id"),
            Statement::CopyOfPush => {
                "SELECT 1 FROM infor_comm.inbox
                  WHERE task_row_id = $1 AND kind = 'push' AND outcome IN ('push', 'orphan')
                    AND infor_comm.inbox_push_digest(body) = $2
                    AND inbox_id IS DISTINCT FROM $3
                  LIMIT 1"
            }
            Statement::LaterAppliedPush => {
                "SELECT message_dt::text FROM infor_comm.inbox
                  WHERE task_row_id = $1 AND kind = 'push' AND applied_at IS NOT NULL
                    AND message_dt > $2::timestamptz
                    AND inbox_id IS DISTINCT FROM $3
                  ORDER BY message_dt DESC
                  LIMIT 1"
            }
            Statement::UpdatePush => {
                "UPDATE infor_comm.infor_communication_task
                    SET task_id = coalesce(task_id, $2),
                        task_status = $3,
                        task_execution_type = $4,
                        task_execution_description = $5,
                        task_close_date = $6,
                        first_level_client_reaction = $7,
                        second_level_client_reaction = $8,
                        third_level_client_reaction = $9
                  WHERE id = $1"
            }
            Statement::Journal => {
                "INSERT INTO infor_comm.inbox
                        (message_id, body, body_bytes, kind, outcome, reason, task_row_id,
                         message_dt, push_task_id, push_request_id, applied_at,
                         message_id_bytes, body_size, body_sha256)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, $9, $10,
                         CASE WHEN $11 THEN pg_catalog.now() END, $12, $13, $14)
                 RETURNING inbox_id"
            }
            Statement::Orphans => {
                "SELECT i.inbox_id, i.body
                   FROM infor_comm.inbox i
                   JOIN infor_comm.infor_communication_task t ON t.id = $1
                  WHERE i.outcome = 'orphan' AND i.task_row_id IS NULL
                    AND (i.push_request_id = t.infor_response_id
                         OR (i.push_request_id IS NULL AND i.push_task_id = t.task_id))
                  ORDER BY i.message_dt, i.inbox_id
                    FOR UPDATE OF i"
            }
            // A rejected orphan stays without a task row and leaves the orphan state; the others
            // record the row they were resolved to.
            Statement::ResolveOrphan => {
                "UPDATE infor_comm.inbox
                    SET task_row_id = $2, reason = $3,
                        outcome = CASE WHEN $5 THEN 'rejected' ELSE outcome END,
                        applied_at = CASE WHEN $4 THEN pg_catalog.now() END
                  WHERE inbox_id = $1"
            }
        }
    }

    fn arg_types(self) -> &'static [PgOid] {
        match self {
            Statement::AnswerReply => &[TEXT, TEXT, TEXT, TEXT, TEXT, BYTEA, TEXT],
            Statement::WithdrawNewer => &[TEXT],
            Statement::TaskByRequest | Statement::TaskByResponse | Statement::TaskByTaskId => {
                &[TEXT, INT8]
            }
            Statement::CopyOfPush => &[TEXT, BYTEA, INT8],
            Statement::LaterAppliedPush => &[TEXT, TEXT, INT8],
            Statement::UpdatePush => &[TEXT; 9],
            Statement::Journal => &[
                TEXT, TEXT, BYTEA, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, BOOL, BYTEA, INT8,
                BYTEA,
            ],
            Statement::Orphans => &[TEXT],
            Statement::ResolveOrphan => &[INT8, TEXT, TEXT, BOOL, BOOL],
        }
    }
}

thread_local! {
    /// The statements prepared in this session (a backend is one thread), by [`Statement`].
    static PREPARED: [Cell<Option<&'static OwnedPreparedStatement>>; STATEMENTS] =
        const { [const { Cell::new(None) }; STATEMENTS] };
}

/// The prepared statement, prepared now when this session has not prepared it yet (or has
/// dropped it to plan it again). It lives until [`replan_own_statements`] drops it.
fn prepared(
    client: &SpiClient<'_>,
    statement: Statement,
) -> SpiResult<&'static OwnedPreparedStatement> {
    let slot = statement as usize;
    if let Some(kept) = PREPARED.with(|all| all[slot].get()) {
        return Ok(kept);
    }
    let kept: &'static OwnedPreparedStatement = Box::leak(Box::new(
        client
            .prepare_mut(statement.sql(), statement.arg_types())?
            .keep(),
    ));
    PREPARED.with(|all| all[slot].set(Some(kept)));
    Ok(kept)
}

/// How many statements run between two re-preparations of the apply's own statements, once a
/// session has run that many; before, they are prepared again after 32, 64, 128, … runs.
const RUNS_BETWEEN_REPLANS: u32 = 2048;

/// Whether the apply's statements are prepared again before run number `runs` of the session:
/// at each power of two from 32 on, while a new session's first messages may still be filling
/// an empty inbox, then every [`RUNS_BETWEEN_REPLANS`].
fn replan_due(runs: u32) -> bool {
    (runs >= 32 && runs.is_power_of_two()) || runs.is_multiple_of(RUNS_BETWEEN_REPLANS)
}

thread_local! {
    /// Statements the apply has run in this session.
    static RUNS: Cell<u32> = const { Cell::new(0) };
    /// How many of the apply's statements are running now (more than one only if a trigger of
    /// one of them applied a message in turn).
    static RUNNING: Cell<u32> = const { Cell::new(0) };
}

/// Drops the apply's kept statements, so that each is prepared and planned again on its next
/// use, for the tables as they are; the session's other plans (the caller's) are left alone.
/// Only when none of them is running: a statement is never freed under its own execution.
fn replan_own_statements() {
    if RUNNING.get() != 0 {
        return;
    }
    PREPARED.with(|all| {
        for slot in all {
            if let Some(kept) = slot.take() {
                // SAFETY: `kept` was leaked from a Box by `prepared`, its slot was its only
                // owner and is empty now, and nothing runs it (RUNNING is 0): the Box is
                // rebuilt once and dropped, which frees the plan (SPI_freeplan).
                drop(unsafe { Box::from_raw(std::ptr::from_ref(kept).cast_mut()) });
            }
        }
    });
}

/// Runs a prepared statement.
///
/// A kept plan is made again when a table it uses is analyzed, but not when the table merely
/// grows: a plan made while the inbox was empty (a fresh install, a purged inbox) would scan the
/// whole inbox for orphans on every message until autovacuum analyzes it, and within one long
/// transaction that never happens. So the apply drops its own statements now and then and
/// prepares each again on its next use, planned for the tables as they are: after 32, 64, 128,
/// … 2,048 runs of a session (an inbox filled from empty is planned again each time it has
/// doubled), then every 2,048. Each time, a few statements are prepared, and planned five times
/// as custom plans, then once as the generic one; no other plan of the session is touched.
fn run<'conn>(
    client: &mut SpiClient<'conn>,
    statement: Statement,
    args: &[DatumWithOid<'_>],
) -> SpiResult<SpiTupleTable<'conn>> {
    let runs = RUNS.get().wrapping_add(1);
    RUNS.set(runs);
    if replan_due(runs) {
        replan_own_statements();
    }
    let kept = prepared(client, statement)?;
    let _running = Running::start();
    client.update(kept, None, args)
}

/// One of the apply's statements running; counted in [`RUNNING`] until dropped, also when the
/// statement raises.
struct Running;

impl Running {
    fn start() -> Running {
        RUNNING.set(RUNNING.get() + 1);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.set(RUNNING.get().saturating_sub(1));
    }
}

extern "C-unwind" {
    // PostgreSQL's own functions behind `hashtext(text)` and `pg_advisory_xact_lock(int, int)`.
    fn hashtext(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
    fn pg_advisory_xact_lock_int4(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// Takes the transaction-level advisory lock that
/// `pg_advisory_xact_lock(class, hashtext(key))` takes, without a statement: the same lock, so
/// the same waits, and the same deadlock detection.
fn lock(class: i32, key: Option<&str>) {
    let Some(key) = key else {
        return;
    };
    // Keys are at most 200 characters (the parser checks them against their column).
    let len = i32::try_from(key.len()).unwrap_or(i32::MAX);
    // SAFETY: `cstring_to_text_with_len` copies `len` bytes of `key` into a palloc'd text in the
    // current memory context; hashtext reads that text with the database's default collation,
    // as `hashtext($1)` does in SQL; both calls go through pgrx's guard, so an ERROR (a
    // deadlock, say) unwinds as it does from any SPI call.
    unsafe {
        let text = pg_sys::cstring_to_text_with_len(key.as_ptr().cast(), len);
        let hash = pg_sys::DirectFunctionCall1Coll(
            Some(hashtext),
            pg_sys::DEFAULT_COLLATION_OID,
            pg_sys::Datum::from(text),
        );
        pg_sys::DirectFunctionCall2Coll(
            Some(pg_advisory_xact_lock_int4),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(class),
            hash,
        );
    }
}

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

/// Journals a message received from the broker and applies it to its task row; returns
/// `reply`, `push`, `duplicate`, `orphan` or `rejected`. Raises only on a system fault.
#[pg_extern(volatile, security_definer, name = "apply_inbound")]
#[search_path(pg_catalog, pg_temp)]
fn apply_inbound(body: Option<&str>, message_id: default!(Option<&str>, "NULL")) -> &'static str {
    crate::entry_checks();
    let envelope = Envelope::text_id(message_id);
    match body {
        Some(body) => apply_text(body, &envelope),
        None => reject_unreadable(None, &envelope, "the body is NULL".into()),
    }
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
    crate::entry_checks();
    apply_bytes(body, &Envelope::text_id(message_id))
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

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.apply_inbound(bytea, text) IS
    'apply_inbound for a raw body; a body that is not valid UTF-8 is journaled as bytes and rejected.';
"#,
    name = "apply_inbound_bytes_comment",
    requires = [apply_inbound_bytes],
);

/// The relay's entry point: `apply_inbound` for a body and a message id exactly as the broker
/// delivered them. An id that PostgreSQL cannot store as text (a NUL byte, or not UTF-8) is
/// journaled in `message_id_bytes` and never makes the apply fail (docs/contract.md, "Headers
/// are content too").
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn apply_delivery(body: Option<&[u8]>, message_id: Option<&[u8]>) -> &'static str {
    crate::entry_checks();
    apply_bytes(body, &Envelope::raw_id(message_id))
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.apply_delivery(bytea, bytea) IS
    'apply_inbound for a body and a message id as the broker delivered them (bytes); an id that is not valid text is kept as bytes.';
"#,
    name = "apply_delivery_comment",
    requires = [apply_delivery],
);

/// Journals a body larger than the relay's limit as `rejected`, without applying it: its size,
/// its SHA-256 and at most its first 64 KiB (docs/contract.md, "Oversized messages").
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn reject_oversized(
    head: &[u8],
    message_id: Option<&[u8]>,
    body_size: i64,
    body_sha256: &[u8],
    size_limit: i64,
) -> &'static str {
    crate::entry_checks();
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

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint) IS
    'Journals an inbound body over the relay''s size limit as rejected: its size, SHA-256 and first 64 KiB; returns rejected.';
"#,
    name = "reject_oversized_comment",
    requires = [reject_oversized],
);

/// Journals a message whose apply kept failing as `rejected`, with the last error, without
/// applying it, so that it no longer holds the queue (the relay sets it aside after a bounded
/// number of tries while other messages apply).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn set_aside_inbound(
    body: Option<&[u8]>,
    message_id: Option<&[u8]>,
    attempts: i32,
    error: &str,
) -> &'static str {
    crate::entry_checks();
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

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.set_aside_inbound(bytea, bytea, integer, text) IS
    'Journals an inbound message whose apply kept failing as rejected, with the attempts and the last error, without applying it.';
"#,
    name = "set_aside_inbound_comment",
    requires = [set_aside_inbound],
);

/// The digest of a push's JSON (`inbound_message::push_digest`), the key of the index that finds
/// the copies of a push; `NULL` when the body is not JSON without a repeated key.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn inbox_push_digest(body: &str) -> Option<Vec<u8>> {
    crate::inbound_message::push_digest(body)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.inbox_push_digest(text) IS
    'The SHA-256 of an inbound body''s JSON written canonically (NULL when it is not JSON without a repeated key): two pushes have one digest exactly when they are the same JSON.';
"#,
    name = "inbox_push_digest_comment",
    requires = [inbox_push_digest],
);

extension_sql_file!(
    "../sql/inbox_table.sql",
    name = "inbox_table",
    requires = ["task_table", inbox_push_digest],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn the_specifications_success_reply_and_manual_push_fill_the_row() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|123456789"));
        assert_eq!(apply(MANUAL_PUSH), "push");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|3|||2023-07-27| - |   |")
        );
        assert!(
            text("SELECT time_update::text FROM infor_comm.infor_communication_task").is_some()
        );
        // The request is answered: its outbox row is closed, and known to be published even
        // though no relay marked it.
        assert_eq!(
            text("SELECT close_reason || ' ' || (published_at IS NOT NULL) FROM infor_comm.outbox"),
            Some("answered true".into())
        );
        assert_eq!(int("SELECT count(*) FROM infor_comm.inbox"), 2);
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.inbox WHERE applied_at IS NOT NULL AND task_row_id IS NOT NULL"),
            2
        );
    }

    #[pg_test]
    fn the_specifications_failure_reply_fills_the_status_only() {
        let request_id = enqueued_request("ORG1");
        let reply = format!(
            r#"{{"requestID": "{CRM_ID}", "replyUID": "{request_id}", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "1", "statusMsg": "Клиент не найден."}}"#
        );
        assert_eq!(apply(&reply), "reply");
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|1"));
    }

    #[pg_test]
    fn the_specifications_automatic_push_is_applied() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(apply(AUTOMATIC_PUSH), "push");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|5|||2023-07-27")
        );
        // No reaction at all is the technical "-" / "-" row of the reference table.
        assert_eq!(
            text("SELECT reaction_type FROM infor_comm.task_reactions"),
            Some("Технический".into())
        );
    }

    #[pg_test]
    fn a_push_before_its_reply_is_kept_and_applied_when_the_reply_lands() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(MANUAL_PUSH), "orphan");
        assert_eq!(task_row("ORG1"), "");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|3|||2023-07-27| - |   |")
        );
        let reply_inbox_id = int("SELECT inbox_id FROM infor_comm.inbox WHERE kind = 'reply'");
        assert_eq!(
            text("SELECT outcome || ':' || (applied_at IS NOT NULL) || ':' || reason FROM infor_comm.inbox WHERE kind = 'push'"),
            Some(format!("orphan:true:applied when its reply landed (inbox {reply_inbox_id})"))
        );
        // The same push again is a duplicate.
        assert_eq!(apply(MANUAL_PUSH), "duplicate");
    }

    #[pg_test]
    fn an_orphan_push_matched_by_task_id_only_waits_for_the_reply_too() {
        let request_id = enqueued_request("ORG1");
        let push = r#"{"taskID": "123456789", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "3",
                       "firstLevelClientReaction": "Недозвон", "secondLevelClientReaction": "Автоответчик"}"#;
        assert_eq!(apply(push), "orphan");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|3|Недозвон|Автоответчик")
        );
        assert_eq!(
            text("SELECT reaction_type FROM infor_comm.task_reactions"),
            Some("Ручной отклик".into())
        );
    }

    #[pg_test]
    fn a_push_lands_only_on_its_own_requests_row_when_two_rows_share_a_task_id() {
        let a = enqueued_request("ORGA");
        let b = enqueued_request("ORGB");
        // The CRM repeats a task id: both rows get taskID 555.
        assert_eq!(apply(&created(&a, "CRM-A", "555")), "reply");
        assert_eq!(apply(&created(&b, "CRM-B", "555")), "reply");
        // B's push lands on B's row (its requestID), not on A's (the first row with taskID 555).
        assert_eq!(
            apply(&push_with(r#""requestID": "CRM-B", "taskID": "555""#, "3")),
            "push"
        );
        assert_eq!(task_row("ORGB"), "CRM-B|0|555|3");
        assert_eq!(task_row("ORGA"), "CRM-A|0|555");
        // A push whose ids point to different rows is rejected; neither row changes.
        assert_eq!(
            apply(&push_with(r#""requestID": "CRM-A", "taskID": "556""#, "5")),
            "rejected"
        );
        assert_eq!(
            last_reason(),
            r#"taskID "556" disagrees with requestID "CRM-A", whose task row has task_id "555""#
        );
        // A push with only a taskID that two rows share cannot tell which row it is for.
        assert_eq!(apply(&push_with(r#""taskID": "555""#, "5")), "rejected");
        assert!(
            last_reason().contains("more than one task row"),
            "{}",
            last_reason()
        );
        assert_eq!(task_row("ORGA"), "CRM-A|0|555");
        assert_eq!(task_row("ORGB"), "CRM-B|0|555|3");
    }

    #[pg_test]
    fn an_orphan_push_waits_for_its_own_reply_even_when_another_row_has_its_task_id() {
        let a = enqueued_request("ORGA");
        let b = enqueued_request("ORGB");
        assert_eq!(apply(&created(&a, "CRM-A", "555")), "reply");
        // B's push comes before B's reply, with the taskID that A's row already has.
        assert_eq!(
            apply(&push_with(r#""requestID": "CRM-B", "taskID": "555""#, "3")),
            "orphan"
        );
        assert_eq!(task_row("ORGA"), "CRM-A|0|555");
        // A's reply again finds nothing new for A; B's reply applies B's push to B's row.
        assert_eq!(apply(&created(&a, "CRM-A", "555")), "duplicate");
        assert_eq!(apply(&created(&b, "CRM-B", "555")), "reply");
        assert_eq!(task_row("ORGB"), "CRM-B|0|555|3");
        assert_eq!(task_row("ORGA"), "CRM-A|0|555");
        // An orphan with only a taskID is resolved by the first reply with that taskID.
        let c = enqueued_request("ORGC");
        assert_eq!(apply(&push_with(r#""taskID": "777""#, "5")), "orphan");
        assert_eq!(apply(&created(&c, "CRM-C", "777")), "reply");
        assert_eq!(task_row("ORGC"), "CRM-C|0|777|5");
    }

    #[pg_test]
    fn a_push_for_a_failed_request_is_rejected_and_the_row_is_untouched() {
        let a = enqueued_request("ORGA");
        let failed = format!(
            r#"{{"requestID": "CRM-A", "replyUID": "{a}", "statusCode": "2", "statusMsg": "error"}}"#
        );
        // One push before the failed reply (an orphan), one after it.
        assert_eq!(apply(&push_with(r#""requestID": "CRM-A""#, "5")), "orphan");
        assert_eq!(apply(&failed), "reply");
        assert_eq!(
            apply(&push_with(r#""requestID": "CRM-A", "taskID": "1""#, "3")),
            "rejected"
        );
        assert!(
            last_reason().contains("no task was created"),
            "{}",
            last_reason()
        );
        assert_eq!(task_row("ORGA"), "CRM-A|2");
        assert_eq!(
            text("SELECT string_agg(outcome, ',' ORDER BY inbox_id) FROM infor_comm.inbox WHERE kind = 'push'"),
            Some("rejected,rejected".into())
        );
    }

    #[pg_test]
    fn a_repeated_reply_is_a_duplicate_and_a_conflicting_one_is_rejected() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(apply(&success_reply(&request_id)), "duplicate");
        let conflicting = format!(
            r#"{{"requestID": "other", "replyUID": "{request_id}", "statusCode": "2", "statusMsg": "later error"}}"#
        );
        assert_eq!(apply(&conflicting), "rejected");
        assert!(
            last_reason().starts_with("conflicts with the reply already applied"),
            "{}",
            last_reason()
        );
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|123456789"));
    }

    #[pg_test]
    fn a_body_made_of_ids_costs_what_a_body_of_its_size_without_ids_costs() {
        // About 1 MB, under the relay's 1 MiB limit: "taskID":"<n>" pairs, the worst case of the
        // ids that client_history indexes, against the same pairs under a key that is not an id
        // (the same size, stored and compressed alike).
        let pairs = |key: &str| {
            let pairs = (0..60_000)
                .map(|n| format!("\"{key}\":\"{n}\","))
                .collect::<String>();
            format!("{{{pairs}\"taskStatus\":\"3\"}}")
        };
        let worst = pairs("taskID");
        let plain = pairs("taskIX");
        let time = |body: &str| {
            let mut best = std::time::Duration::MAX;
            for _ in 0..3 {
                let started = std::time::Instant::now();
                assert_eq!(apply(body), "rejected");
                best = best.min(started.elapsed());
            }
            best
        };
        let plain_time = time(&plain);
        let worst_time = time(&worst);
        assert!(
            worst_time < plain_time * 3,
            "a body of ids took {worst_time:?}, one of the same size without ids {plain_time:?}"
        );
        assert_eq!(
            int(
                "SELECT max(cardinality(infor_comm.inbox_message_ids(body))) FROM infor_comm.inbox"
            ),
            64
        );
    }

    #[pg_test]
    fn a_push_whose_request_id_names_two_task_rows_is_applied_to_neither() {
        let first = enqueued_request("ORG1");
        let second = enqueued_request("ORG2");
        // InforCRM gives one requestID to the replies of two of our requests.
        assert_eq!(apply(&created(&first, "CRM-SAME", "T-1")), "reply");
        assert_eq!(apply(&created(&second, "CRM-SAME", "T-2")), "reply");
        for ids in [
            r#""requestID": "CRM-SAME""#,
            r#""requestID": "CRM-SAME", "taskID": "T-1""#,
        ] {
            assert_eq!(apply(&push_with(ids, "3")), "rejected", "{ids}");
            assert_eq!(
                last_reason(),
                "requestID \"CRM-SAME\" belongs to the replies of more than one task row, so the push cannot tell which"
            );
        }
        assert_eq!(task_row("ORG1"), "CRM-SAME|0|T-1");
        assert_eq!(task_row("ORG2"), "CRM-SAME|0|T-2");
    }

    #[pg_test]
    fn a_copy_of_a_push_costs_one_probe_however_many_copies_came_before() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        let push = format!(
            r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "3", "firstLevelClientReaction": "Недозвон"}}"#
        );
        assert_eq!(apply(&push), "push");
        // The same JSON in another spacing and key order is a copy too.
        let respaced = format!(
            r#"{{"firstLevelClientReaction":"Недозвон","taskStatus":"3","dt":"2026-11-22T10:00:00.000+03:00","taskID":"123456789","requestID":"{CRM_ID}"}}"#
        );
        for _ in 0..300 {
            assert_eq!(apply(&push), "duplicate");
        }
        assert_eq!(apply(&respaced), "duplicate");
        let fetched =
            || int("SELECT pg_stat_get_xact_tuples_fetched('infor_comm.inbox'::regclass)");
        let before = fetched();
        assert_eq!(apply(&push), "duplicate");
        let one_copy = fetched() - before;
        assert!(one_copy <= 3, "a copy read {one_copy} inbox rows");
        // An older push after them: superseded, again by one probe.
        let before = fetched();
        assert_eq!(apply(&push.replace("T10:00", "T09:00")), "push");
        assert!(last_reason().starts_with("superseded"), "{}", last_reason());
        let older = fetched() - before;
        assert!(older <= 3, "an older push read {older} inbox rows");
    }

    #[pg_test]
    fn a_push_dated_too_far_ahead_is_rejected_and_outranks_nothing() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        let push = |dt: &str, first: &str| {
            format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "{dt}", "taskStatus": "3", "firstLevelClientReaction": "{first}"}}"#
            )
        };
        assert_eq!(
            apply(&push("9999-12-31T23:59:59.000+03:00", "Недозвон")),
            "rejected"
        );
        assert_eq!(
            last_reason(),
            "dt \"9999-12-31T20:59:59Z\" is more than 1 day after the push was received (infor_comm.max_push_dt_ahead)"
        );
        // A real push after it is applied: the rejected one outranks nothing.
        assert_eq!(
            apply(&push("2026-11-22T10:00:00.000+03:00", "Дозвон - отказ")),
            "push"
        );
        assert!(
            task_row("ORG1").ends_with("|Дозвон - отказ"),
            "{}",
            task_row("ORG1")
        );
        // Within the setting: a clock a few hours fast is not refused.
        let ahead = text("SELECT to_char(now() AT TIME ZONE 'UTC' + interval '20 hours', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
            .unwrap_or_default();
        assert_eq!(apply(&push(&ahead, "Недозвон")), "push");
        run("SET LOCAL infor_comm.max_push_dt_ahead = '1 hour'");
        assert_eq!(apply(&push(&ahead, "Дозвон - отказ")), "rejected");
        assert!(last_reason().ends_with(
            "is more than 1 hour after the push was received (infor_comm.max_push_dt_ahead)"
        ));
        // An interval longer than any two times are apart allows every dt (and raises nothing).
        run("SET LOCAL infor_comm.max_push_dt_ahead = '178000000 years'");
        assert_eq!(
            apply(&push("9999-12-31T23:59:59.000+03:00", "Недозвон")),
            "push"
        );
    }

    #[pg_test]
    fn of_two_different_pushes_the_later_dt_wins() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        let push = |dt: &str, first: &str| {
            format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "{dt}", "taskStatus": "3", "firstLevelClientReaction": "{first}"}}"#
            )
        };
        assert_eq!(
            apply(&push("2026-11-22T10:00:00.000+03:00", "Недозвон")),
            "push"
        );
        // Older, arriving later: kept, changes nothing.
        assert_eq!(
            apply(&push(
                "2026-11-22T09:00:00.000+03:00",
                "Дозвон - планирует миграцию"
            )),
            "push"
        );
        assert!(last_reason().starts_with("superseded"), "{}", last_reason());
        assert!(
            task_row("ORG1").ends_with("|Недозвон"),
            "{}",
            task_row("ORG1")
        );
        // The same instant in another offset is a tie: the later received wins.
        assert_eq!(
            apply(&push(
                "2026-11-22T07:00:00.000Z",
                "Дозвон - планирует миграцию"
            )),
            "push"
        );
        assert!(
            task_row("ORG1").ends_with("|Дозвон - планирует миграцию"),
            "{}",
            task_row("ORG1")
        );
        assert_eq!(
            apply(&push(
                "2026-11-22T11:00:00.000+03:00",
                "Не требуется коммуникация"
            )),
            "push"
        );
        assert!(
            task_row("ORG1").ends_with("|Не требуется коммуникация"),
            "{}",
            task_row("ORG1")
        );
    }

    #[pg_test]
    fn malformed_and_misshapen_messages_are_kept_and_rejected() {
        let request_id = enqueued_request("ORG1");
        let cases = [
            (r#"{"requestID": "x", "replyUID""#.to_string(), "malformed JSON"),
            ("[1, 2]".to_string(), "unknown shape: the message is an array"),
            (r#"{"hello": "world"}"#.to_string(), "unknown shape: neither replyUID"),
            (format!(r#"{{"requestID": "c", "replyUID": "{request_id}", "statusCode": 0, "taskID": "1"}}"#),
             "statusCode must be a string, not a number"),
            (format!(r#"{{"requestID": "c", "replyUID": "{request_id}", "statusCode": "7"}}"#),
             "statusCode \"7\" is not one of 0, 1, 2"),
            (format!(r#"{{"requestID": "c", "replyUID": "{request_id}", "statusCode": "0"}}"#),
             "taskID is missing"),
            (r#"{"requestID": "c", "taskID": "1", "dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "4"}"#.to_string(),
             "taskStatus \"4\" is not one of 3, 5"),
            (r#"{"requestID": "c", "taskID": "1", "dt": "yesterday", "taskStatus": "3"}"#.to_string(),
             "dt \"yesterday\" is not a date and time"),
            (r#"{"dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "3"}"#.to_string(),
             "both taskID and requestID are missing"),
            (r#"{"requestID": "nobody", "replyUID": "not-ours", "statusCode": "1"}"#.to_string(),
             "replyUID \"not-ours\" matches no request of ours"),
        ];
        for (body, reason) in &cases {
            assert_eq!(apply(body), "rejected", "{body}");
            assert!(
                last_reason().starts_with(reason),
                "{body}: {}",
                last_reason()
            );
            assert_eq!(
                text("SELECT body FROM infor_comm.inbox ORDER BY inbox_id DESC LIMIT 1").as_deref(),
                Some(body.as_str()),
                "kept whole"
            );
        }
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.inbox WHERE outcome = 'rejected'"),
            cases.len() as i64
        );
        assert_eq!(task_row("ORG1"), "", "the task row is untouched");
    }

    #[pg_test]
    fn a_value_longer_than_its_column_is_rejected_not_truncated() {
        let request_id = enqueued_request("ORG1");
        let at_limit = "9".repeat(200);
        let too_long = "я".repeat(201);
        let reply = |task_id: &str| {
            format!(
                r#"{{"requestID": "{CRM_ID}", "replyUID": "{request_id}", "statusCode": "0", "taskID": "{task_id}"}}"#
            )
        };
        assert_eq!(apply(&reply(&too_long)), "rejected");
        assert_eq!(
            last_reason(),
            "taskID is 201 characters long, longer than its column (200)"
        );
        assert_eq!(task_row("ORG1"), "");
        assert_eq!(apply(&reply(&at_limit)), "reply");
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|{at_limit}"));
    }

    #[pg_test]
    fn a_one_mebibyte_body_is_kept_whole() {
        let request_id = enqueued_request("ORG1");
        let filler = "ы".repeat(512 * 1024); // 1 MiB of UTF-8
        let reply = format!(
            r#"{{"requestID": "{CRM_ID}", "replyUID": "{request_id}", "statusCode": "2", "statusMsg": "{filler}"}}"#
        );
        assert_eq!(apply(&reply), "reply");
        assert_eq!(
            int("SELECT octet_length(body)::bigint FROM infor_comm.inbox"),
            reply.len() as i64
        );
        let push = format!(
            r#"{{"requestID": "{CRM_ID}", "dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "5", "taskExecDescr": "{filler}"}}"#
        );
        assert_eq!(apply(&push), "rejected");
        assert_eq!(
            last_reason(),
            "taskExecDescr is 524288 characters long, longer than its column (200)"
        );
        assert_eq!(
            int("SELECT octet_length(body)::bigint FROM infor_comm.inbox ORDER BY inbox_id DESC LIMIT 1"),
            push.len() as i64
        );
    }

    #[pg_test]
    fn a_body_that_is_not_utf8_is_kept_as_bytes_and_rejected() {
        let outcome = Spi::get_one::<String>(
            r"SELECT infor_comm.apply_inbound('\x7b22ff227d'::bytea, 'msg-1')",
        )
        .expect("apply")
        .expect("outcome");
        assert_eq!(outcome, "rejected");
        assert_eq!(
            text("SELECT concat_ws('|', message_id, kind, body IS NULL, encode(body_bytes, 'hex'), reason) FROM infor_comm.inbox"),
            Some("msg-1|unknown|t|7b22ff227d|the body is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 2".into())
        );
        // A valid body passed as bytes is applied like text.
        assert_eq!(
            text(r#"SELECT infor_comm.apply_inbound(convert_to('{"a": 1}', 'UTF8'))"#),
            Some("rejected".into())
        );
        assert_eq!(
            last_reason(),
            "unknown shape: neither replyUID (a reply) nor taskStatus (a push)"
        );
    }

    #[pg_test]
    fn a_nul_character_anywhere_is_rejected_and_never_blocks_the_reply() {
        let request_id = enqueued_request("ORG1");
        // An orphan push with \u0000 in a reaction: rejected at once, so it can never make its
        // reply raise later.
        let push = r#"{"requestID": "72a26ab9-b99e-40aa-9f7e-2247b3709394", "taskID": "123456789", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "3", "firstLevelClientReaction": "a\u0000b"}"#;
        assert_eq!(apply(push), "rejected");
        assert_eq!(
            last_reason(),
            "$.firstLevelClientReaction contains the character U+0000, which PostgreSQL text cannot hold"
        );
        let reply_with_nul = format!(
            r#"{{"requestID": "CRM\u0000X", "replyUID": "{request_id}", "statusCode": "0", "taskID": "1"}}"#
        );
        assert_eq!(apply(&reply_with_nul), "rejected");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|123456789"));
        assert_eq!(apply(r#"{"a\u0000": 1}"#), "rejected");
        assert_eq!(int("SELECT count(*) FROM infor_comm.inbox"), 4);
    }

    #[pg_test]
    fn a_message_id_that_is_not_text_is_kept_as_bytes_and_the_message_applied() {
        let request_id = enqueued_request("ORG1");
        let reply = success_reply(&request_id);
        // A NUL byte in the AMQP message_id once made the relay's apply fail.
        let outcome = text(&format!(
            "SELECT infor_comm.apply_delivery(convert_to($${reply}$$, 'UTF8'), '\\x6162006364'::bytea)"
        ));
        assert_eq!(outcome.as_deref(), Some("reply"));
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|123456789"));
        assert_eq!(
            text("SELECT concat_ws('|', message_id IS NULL, encode(message_id_bytes, 'hex'), outcome) FROM infor_comm.inbox"),
            Some("t|6162006364|reply".into())
        );
        // Not UTF-8, and clean text: each kept so that it round-trips.
        assert_eq!(
            text("SELECT infor_comm.apply_delivery(convert_to('{}', 'UTF8'), '\\xff41'::bytea)")
                .as_deref(),
            Some("rejected")
        );
        assert_eq!(
            text("SELECT infor_comm.apply_delivery(NULL, convert_to('id-ü', 'UTF8'))").as_deref(),
            Some("rejected")
        );
        assert_eq!(
            text("SELECT string_agg(concat_ws('|', message_id, encode(message_id_bytes, 'hex')), ',' ORDER BY inbox_id) FROM infor_comm.inbox"),
            Some("6162006364,ff41,id-ü".into())
        );
    }

    #[pg_test]
    fn an_oversized_body_is_journaled_by_size_digest_and_head_and_never_applied() {
        let request_id = enqueued_request("ORG1");
        let outcome = text(&format!(
            "SELECT infor_comm.reject_oversized(convert_to(rpad($${reply}$$, 70000, ' '), 'UTF8'),
                    convert_to('big-1', 'UTF8'), 52428800, sha256('x'), 1048576)",
            reply = success_reply(&request_id)
        ));
        assert_eq!(outcome.as_deref(), Some("rejected"));
        assert_eq!(task_row("ORG1"), "", "the row is untouched");
        assert_eq!(
            text("SELECT concat_ws('|', message_id, kind, body IS NULL, length(body_bytes), body_size, encode(body_sha256, 'hex') = encode(sha256('x'), 'hex')) FROM infor_comm.inbox"),
            Some("big-1|unknown|t|65536|52428800|t".into())
        );
        assert_eq!(
            last_reason(),
            "the body is 52428800 bytes, over the relay's limit of 1048576 bytes; kept: its size, its SHA-256 and its first 65536 bytes"
        );
    }

    #[pg_test(error = "infor_comm: body_sha256 is 3 bytes, not 32")]
    fn an_oversized_body_needs_a_whole_digest() {
        run("SELECT infor_comm.reject_oversized('\\x00', NULL, 5, '\\x010203', 1)");
    }

    #[pg_test]
    fn a_set_aside_message_is_journaled_with_its_error_and_not_applied() {
        let request_id = enqueued_request("ORG1");
        let outcome = text(&format!(
            "SELECT infor_comm.set_aside_inbound(convert_to($${reply}$$, 'UTF8'), '\\x6100'::bytea, 5, 'canceling statement due to statement timeout')",
            reply = success_reply(&request_id)
        ));
        assert_eq!(outcome.as_deref(), Some("rejected"));
        assert_eq!(task_row("ORG1"), "", "the row is untouched");
        assert_eq!(
            text("SELECT concat_ws('|', kind, body IS NOT NULL, encode(message_id_bytes, 'hex')) FROM infor_comm.inbox"),
            Some("reply|t|6100".into())
        );
        assert_eq!(
            last_reason(),
            "set aside by the relay after 5 failed applies; last error: canceling statement due to statement timeout"
        );
        // The same reply delivered again later applies normally.
        assert_eq!(apply(&success_reply(&request_id)), "reply");
    }

    #[pg_test]
    fn a_push_dt_that_postgresql_cannot_store_is_rejected() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        for (dt, reason) in [
            (
                "2026-11-21T10:00:00+20:00",
                "has the UTC offset +20:00, outside -14:00 to +14:00",
            ),
            ("0000-01-01T00:00:00Z", "is before the year 1"),
            ("9999-12-31T23:00:00-14:00", "is after the year 9999"),
            ("2026-13-01T00:00:00Z", "is not a date and time with offset"),
        ] {
            let push = format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "{dt}", "taskStatus": "3"}}"#
            );
            assert_eq!(apply(&push), "rejected", "{dt}");
            assert!(last_reason().contains(reason), "{dt}: {}", last_reason());
        }
        // The extremes that PostgreSQL stores are applied (when the future is allowed so far).
        run("SET LOCAL infor_comm.max_push_dt_ahead = '9000 years'");
        for dt in [
            "0001-01-01T14:00:00+14:00",
            "9999-12-31T09:59:59.999999-14:00",
            "2016-12-31T23:59:60Z",
        ] {
            let push = format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "{dt}", "taskStatus": "5", "taskExecDescr": "{dt}"}}"#
            );
            assert_ne!(apply(&push), "rejected", "{dt}: {}", last_reason());
        }
    }

    #[pg_test]
    fn of_two_pushes_with_the_same_dt_the_later_received_wins() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        let push = |first: &str| {
            format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "2026-11-21T10:00:00+03:00", "taskStatus": "3", "firstLevelClientReaction": "{first}"}}"#
            )
        };
        assert_eq!(apply(&push("Недозвон")), "push");
        assert_eq!(apply(&push("Дозвон - планирует миграцию")), "push");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|3|Дозвон - планирует миграцию")
        );
        // The first one again is a duplicate and changes nothing.
        assert_eq!(apply(&push("Недозвон")), "duplicate");
    }

    #[pg_test]
    fn a_late_created_reply_withdraws_the_clients_newer_unpublished_request() {
        let old_request = enqueued_request("ORG1");
        // Published, then unanswered past the timeout: the next day's job asks again.
        run("UPDATE infor_comm.outbox SET published_at = '2026-11-20 12:00:00+03'");
        assert_eq!(enqueue("2026-11-21 12:30:00+03"), 1);
        assert_eq!(
            text("SELECT string_agg(close_reason, ',' ORDER BY outbox_id) FROM infor_comm.outbox"),
            Some("timed_out".into())
        );
        // The old request's '0' arrives late: the newer request is withdrawn, never published.
        assert_eq!(apply(&success_reply(&old_request)), "reply");
        assert_eq!(
            text("SELECT string_agg(coalesce(close_reason, 'open'), ',' ORDER BY outbox_id) FROM infor_comm.outbox"),
            Some("timed_out,withdrawn".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            0
        );
    }

    #[pg_test]
    fn a_withdrawal_between_a_claim_and_its_mark_wins() {
        let old_request = enqueued_request("ORG1");
        run("UPDATE infor_comm.outbox SET published_at = '2026-11-20 12:00:00+03'");
        assert_eq!(enqueue("2026-11-21 12:30:00+03"), 1);
        // A relay leases the newer request; the old request's '0' arrives before its mark.
        let claimed = int("SELECT max(outbox_id) FROM infor_comm.claim_outbox(10, '1 minute')");
        assert_eq!(apply(&success_reply(&old_request)), "reply");
        assert_eq!(
            int(&format!(
                "SELECT infor_comm.mark_published(ARRAY[{claimed}::bigint])"
            )),
            0,
            "the mark of a withdrawn request"
        );
        assert_eq!(
            text(&format!(
                "SELECT concat_ws(' ', close_reason, published_at IS NULL)
                   FROM infor_comm.outbox WHERE outbox_id = {claimed}"
            )),
            Some("withdrawn t".into())
        );
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox_pending"), 0);
    }

    #[pg_test]
    fn a_late_reply_leaves_the_newer_request_open_unless_it_is_a_0_before_its_publication() {
        let late = |org: &str, publish_newer: bool, status_code: &str| {
            let old_request = enqueued_request(org);
            run(&format!(
                "UPDATE infor_comm.outbox SET published_at = '2026-11-20 12:00:00+03'
                  WHERE organization_id = '{org}'"
            ));
            assert_eq!(enqueue("2026-11-21 12:30:00+03"), 1);
            if publish_newer {
                run(&format!(
                    "SELECT infor_comm.mark_published(array_agg(outbox_id)) FROM infor_comm.outbox
                      WHERE organization_id = '{org}' AND closed_at IS NULL"
                ));
            }
            let reply = format!(
                r#"{{"requestID": "CRM-{org}", "replyUID": "{old_request}", "dt": "2026-11-21T13:00:00.000+03:00", "statusCode": "{status_code}", "taskID": "T-{org}"}}"#
            );
            assert_eq!(apply(&reply), "reply");
            text(&format!(
                "SELECT string_agg(coalesce(close_reason, 'open'), ',' ORDER BY outbox_id)
                   FROM infor_comm.outbox WHERE organization_id = '{org}'"
            ))
        };
        assert_eq!(late("ORG1", false, "1"), Some("timed_out,open".into()));
        assert_eq!(late("ORG2", false, "2"), Some("timed_out,open".into()));
        assert_eq!(late("ORG3", true, "0"), Some("timed_out,open".into()));
        assert_eq!(late("ORG4", false, "0"), Some("timed_out,withdrawn".into()));
    }

    #[pg_test]
    fn a_null_body_is_journaled_as_null() {
        host_tables_once();
        assert_eq!(
            text("SELECT infor_comm.apply_inbound(NULL::text)"),
            Some("rejected".into())
        );
        assert_eq!(
            text("SELECT infor_comm.apply_inbound(NULL::bytea, 'm-1')"),
            Some("rejected".into())
        );
        assert_eq!(
            text("SELECT string_agg(coalesce(body, 'NULL') || ' ' || coalesce(body_bytes::text, 'NULL') || ' ' || reason, ';') FROM infor_comm.inbox"),
            Some("NULL NULL the body is NULL;NULL NULL the body is NULL".into())
        );
    }

    /// A small deterministic pseudo-random generator (xorshift64*), so that a failing mutation
    /// can be replayed.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Mutates a body: bytes flipped, cut, escapes and odd values inserted, fields replaced.
    fn mutate(body: &[u8], rng: &mut Xorshift) -> Vec<u8> {
        const INSERTS: [&str; 16] = [
            r"\u0000", r"\ud800", r"\udfff", r"\uffff", "\\", "\"", "1e999999", "-0",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            "null", "{}", "\u{0}", "\u{fffd}", "\u{00a0}", "99999999999999999999999999", "\u{10ffff}",
        ];
        const VALUES: [&str; 10] = [
            "\"2026-11-21T10:00:00+20:00\"", "\"0000-01-01T00:00:00Z\"", "\"9999-12-31T23:59:60-14:00\"",
            "\"3\"", "\"0\"", "null", "12", "\"\\u0000\"", "[\"x\"]", "\"LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL\"",
        ];
        let mut out = body.to_vec();
        for _ in 0..=rng.below(3) {
            match rng.below(5) {
                0 if !out.is_empty() => {
                    let at = rng.below(out.len());
                    out[at] ^= 1 << rng.below(8);
                }
                1 if !out.is_empty() => out.truncate(rng.below(out.len())),
                2 => {
                    let at = rng.below(out.len() + 1);
                    let insert = INSERTS[rng.below(INSERTS.len())].as_bytes();
                    out.splice(at..at, insert.iter().copied());
                }
                3 => {
                    // Replace the value after a colon with an odd one.
                    let colons: Vec<usize> = out
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b':')
                        .map(|(i, _)| i)
                        .collect();
                    if let Some(&colon) = colons.get(rng.below(colons.len().max(1))) {
                        let end = out[colon..]
                            .iter()
                            .position(|b| *b == b',' || *b == b'}')
                            .map_or(out.len(), |p| colon + p);
                        let value = VALUES[rng.below(VALUES.len())].as_bytes();
                        out.splice(colon + 1..end, value.iter().copied());
                    }
                }
                _ => {
                    let at = rng.below(out.len() + 1);
                    let byte = (rng.next() & 0xff) as u8;
                    out.insert(at, byte);
                }
            }
        }
        out
    }

    #[pg_test]
    fn apply_inbound_returns_an_outcome_and_journals_once_for_thousands_of_mutated_bodies() {
        let request_id = enqueued_request("ORG1");
        let other = enqueued_request("ORG2");
        let seeds = [
            success_reply(&request_id),
            format!(r#"{{"requestID": "CRM-2", "replyUID": "{other}", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "1", "statusMsg": "Клиент не найден."}}"#),
            MANUAL_PUSH.to_string(),
            AUTOMATIC_PUSH.to_string(),
            r#"{"requestID": "CRM-2", "taskID": "T-2", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "5"}"#.to_string(),
        ];
        let mut rng = Xorshift(0x1c0f_fee5_eed0_0001);
        const MUTATIONS: i64 = 4000;
        let outcomes = ["reply", "push", "duplicate", "orphan", "rejected"];
        for n in 0..MUTATIONS {
            let seed = seeds[rng.below(seeds.len())].as_bytes();
            let body = mutate(seed, &mut rng);
            let outcome = Spi::get_one_with_args::<String>(
                "SELECT infor_comm.apply_inbound($1::bytea, $2)",
                &[body.as_slice().into(), format!("fuzz-{n}").into()],
            )
            .unwrap_or_else(|e| {
                panic!(
                    "mutation {n} raised: {e}; body: {}",
                    String::from_utf8_lossy(&body)
                )
            });
            assert!(
                outcome.as_deref().is_some_and(|o| outcomes.contains(&o)),
                "mutation {n}: {outcome:?}"
            );
        }
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.inbox WHERE message_id LIKE 'fuzz-%'"),
            MUTATIONS,
            "every message journaled exactly once"
        );
        assert_eq!(
            int("SELECT count(DISTINCT message_id) FROM infor_comm.inbox WHERE message_id LIKE 'fuzz-%'"),
            MUTATIONS
        );
        // The seeds themselves still apply as they should.
        assert!(int("SELECT count(*) FROM infor_comm.inbox WHERE outcome = 'rejected'") > 0);
        // Every reason the extension wrote has a code (health counts them by it).
        assert_eq!(
            text(
                "SELECT string_agg(DISTINCT reason, ' | ') FROM infor_comm.inbox
                   WHERE outcome = 'rejected' AND infor_comm.inbox_reason_code(reason) = 'other'"
            ),
            None
        );
        assert!(
            int(
                "SELECT count(DISTINCT infor_comm.inbox_reason_code(reason)) FROM infor_comm.inbox
                  WHERE outcome = 'rejected'"
            ) > 3
        );
    }
}
