//! The apply's statements, each prepared once per session and kept, and re-planned now and then
//! as the inbox grows.

use super::outcome::SpiResult;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{PgBuiltInOids, PgOid};
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use std::cell::Cell;

// Every statement of the apply is prepared once per session and kept (SPI_keepplan): parsing and
// planning them anew for each message cost more than running them. PostgreSQL's plan cache
// re-plans a kept statement when a table it reads changes (an index added, the extension
// dropped and created again), and the functions that run them pin their search_path, so a kept
// statement always resolves the same objects.

/// The statements of the apply, each prepared on its first use in a session.
#[derive(Debug, Clone, Copy)]
pub(super) enum Statement {
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

pub(super) const STATEMENTS: usize = 11;

pub(super) const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
pub(super) const INT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8OID);
pub(super) const BOOL: PgOid = PgOid::BuiltIn(PgBuiltInOids::BOOLOID);
pub(super) const BYTEA: PgOid = PgOid::BuiltIn(PgBuiltInOids::BYTEAOID);

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
    pub(super) fn sql(self) -> &'static str {
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

    pub(super) fn arg_types(self) -> &'static [PgOid] {
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
pub(super) fn prepared(
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
pub(super) const RUNS_BETWEEN_REPLANS: u32 = 2048;

/// Whether the apply's statements are prepared again before run number `runs` of the session:
/// at each power of two from 32 on, while a new session's first messages may still be filling
/// an empty inbox, then every [`RUNS_BETWEEN_REPLANS`].
pub(super) fn replan_due(runs: u32) -> bool {
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
pub(super) fn replan_own_statements() {
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
pub(super) fn run<'conn>(
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
pub(super) struct Running;

impl Running {
    pub(super) fn start() -> Running {
        RUNNING.set(RUNNING.get() + 1);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.set(RUNNING.get().saturating_sub(1));
    }
}
