//! The daily job's entry points (role `infor_comm_job`, which `schedule_daily`'s `run_as` is a
//! member of): `run_daily`, the procedure pg_cron calls, and the steps it calls
//! (`daily_run_can_commit`, `daily_run_start`, `daily_run_enqueue`, `daily_run_failed`,
//! `daily_run_raise`). The procedure and the SQL steps are in `pg_ext/sql/api/job.sql`; the run
//! history they write is [`crate::run_history`]'s, the enqueue [`crate::outbox`]'s.
//!
//! The steps that write are SECURITY DEFINER functions owned by `infor_comm_writer`, a role
//! nobody can log in as (docs/security.md): the job's role may run the job and write nothing
//! itself. `enqueue_thinking_clients` is the same enqueue for a superuser to run by hand.
//! The grants, the ownership and what `infor_comm_writer` may read and write are at the end of
//! this file.

use crate::{outbox, run_history};
use pgrx::prelude::*;

/// True when the calling procedure may COMMIT: it was called on its own (not inside a
/// transaction block, a function, or a procedure with a SET clause).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn daily_run_can_commit() -> bool {
    run_history::may_commit()
}

/// Runs the enqueue of the daily run `run_id` at its `as_of`, and records what it did: only a
/// run this backend started (`daily_run_start`) and still runs. `SECURITY DEFINER`, owned by
/// `infor_comm_writer` (docs/security.md): the job's role runs the job and writes nothing itself.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn daily_run_enqueue(run_id: i64) -> i32 {
    crate::entry_checks();
    run_history::enqueue_run(run_id)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.daily_run_can_commit() IS
    'True when the calling procedure may commit (called on its own, as pg_cron calls run_daily). Called by run_daily.';
COMMENT ON FUNCTION infor_comm.daily_run_enqueue(bigint) IS
    'Enqueues the requests of a daily run at its as_of and records sent and skipped; returns how many were sent. Called by run_daily.';
"#,
    name = "daily_run_step_comments",
    requires = [daily_run_can_commit, daily_run_enqueue],
);

/// Enqueues a request for every client who qualifies at `as_of`; returns how many.
///
/// One transaction, serialised by an advisory lock: stale requests are closed, the candidates
/// are read in one statement, the skip rule and the request JSON are applied in Rust, and the
/// outbox rows and task rows are written in one statement.
///
/// `SECURITY DEFINER`, owned by `infor_comm_writer`: the host tables are read, and the
/// extension's tables written, as that role, whoever calls it (docs/security.md). Only a
/// superuser may call it; the daily job calls [`outbox::enqueue`] through `daily_run_enqueue`.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn enqueue_thinking_clients(as_of: default!(TimestampWithTimeZone, "now()")) -> i32 {
    outbox::enqueue(as_of, None).enqueued
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) IS
    'Writes a task row and an outbox row for every thinking client at as_of; returns how many. Safe to run twice or at once.';
"#,
    name = "enqueue_thinking_clients_comment",
    requires = [enqueue_thinking_clients],
);

extension_sql_file!(
    "../../sql/api/job.sql",
    name = "run_daily",
    requires = [
        "run_history",
        daily_run_can_commit,
        daily_run_enqueue,
        enqueue_thinking_clients,
        login_scope::require_login_for_database_sql
    ],
);

extension_sql!(
    r#"
-- The functions of the daily job that write run as infor_comm_writer, whoever calls them.
ALTER FUNCTION infor_comm.daily_run_start() OWNER TO infor_comm_writer;
ALTER FUNCTION infor_comm.daily_run_failed(bigint, text, text) OWNER TO infor_comm_writer;
ALTER FUNCTION infor_comm.daily_run_enqueue(bigint) OWNER TO infor_comm_writer;
ALTER FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) OWNER TO infor_comm_writer;
-- The job reads the host tables with row_security = off: a policy makes it fail, never run.
ALTER FUNCTION infor_comm.daily_run_enqueue(bigint) SET row_security = off;
ALTER FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) SET row_security = off;
-- The selection is index probes, and JIT compiling it took a quarter of a second on a million
-- clients and saved nothing (docs/selection-plan.md).
ALTER FUNCTION infor_comm.daily_run_enqueue(bigint) SET jit = off;
ALTER FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) SET jit = off;

-- The daily job's role (schedule_daily's run_as): it may run the job and nothing else. What the
-- job writes, it writes through SECURITY DEFINER functions owned by infor_comm_writer.
GRANT EXECUTE ON ROUTINE
    infor_comm.run_daily(),
    infor_comm.daily_run_can_commit(),
    infor_comm.daily_run_start(),
    infor_comm.daily_run_enqueue(bigint),
    infor_comm.daily_run_failed(bigint, text, text),
    infor_comm.daily_run_raise(text, text, text, text)
TO infor_comm_job;

-- infor_comm_writer: the least the enqueue needs (it renders the requests in Rust: not
-- render_request, request_skip_reason nor the selection's SQL functions). The bank grants it
-- USAGE on infor_comm.host_schema and SELECT on the four host tables; CREATE EXTENSION and the
-- update do it for the host tables that exist then (below).
-- (outbox_close_is_valid: the outbox's CHECK calls it with the rights of whoever writes the outbox.)
GRANT EXECUTE ON ROUTINE
    infor_comm.format_request_dt(timestamptz),
    infor_comm.outbox_close_is_valid(timestamptz, text)
TO infor_comm_writer;
GRANT SELECT, INSERT ON infor_comm.infor_communication_task TO infor_comm_writer;
GRANT SELECT, INSERT, UPDATE ON infor_comm.outbox TO infor_comm_writer;
GRANT SELECT, INSERT, DELETE ON infor_comm.outbox_pending TO infor_comm_writer;
GRANT SELECT, INSERT, DELETE ON infor_comm.outbox_open TO infor_comm_writer;
GRANT SELECT, INSERT, UPDATE ON infor_comm.daily_runs TO infor_comm_writer;
GRANT SELECT, INSERT ON infor_comm.holdout TO infor_comm_writer;
SELECT infor_comm.grant_host_tables_to_writer();
"#,
    name = "job_grants",
    requires = [
        "roles",
        "run_daily",
        "request_sql",
        "outbox_table",
        "run_history",
        "holdout_table",
        settings::setting_host_schema,
        daily_run_enqueue,
        enqueue_thinking_clients,
    ],
);
