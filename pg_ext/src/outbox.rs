//! The daily enqueue: one transaction writes a task row and an outbox row for every thinking
//! client, with the request JSON the relay will publish.
//!
//! Runs are serialised by a transaction-level advisory lock, and the unique index
//! `outbox_one_open_request_per_client` keeps at most one open request per client whatever
//! happens: a second run, or two runs at once, enqueue nobody twice.
//!
//! The relay's side of the outbox is here too: `claim_outbox` (leases, `FOR UPDATE SKIP
//! LOCKED`), `mark_published`, `mark_failed` (attempts, last error, back-off) and
//! `outbox_backlog`, all `SECURITY DEFINER` with a pinned `search_path`.

use crate::errors::spi_fault;
use crate::host_tables::HostTables;
use crate::request::back_system_ids_sql;
use crate::selection::selection_sql;
use pgrx::prelude::*;

/// The advisory lock key of the enqueue ("inforcom" in ASCII).
pub const ENQUEUE_LOCK_KEY: i64 = 0x696e_666f_7263_6f6d;

/// The channel notified when requests are enqueued; the payload is how many.
pub const OUTBOX_CHANNEL: &str = "infor_comm_outbox";

/// Closes the open requests that are no longer open at `$1`: answered, or published and
/// unanswered for `infor_comm.response_timeout`.
const CLOSE_STALE_REQUESTS: &str = "
UPDATE infor_comm.outbox o
   SET closed_at = now(),
       close_reason = CASE WHEN t.status_code IS NOT NULL THEN 'answered' ELSE 'timed_out' END
  FROM infor_comm.infor_communication_task t
 WHERE t.id = o.task_row_id
   AND o.closed_at IS NULL
   AND (t.status_code IS NOT NULL
        OR o.published_at <= $1 - (SELECT infor_comm.setting_response_timeout()))";

/// Writes the outbox rows and task rows of everyone who qualifies at `$1`, in one statement.
/// Returns (enqueued, skipped): skipped are the thinking clients whose request cannot be built.
/// The selection is embedded whole, so the planner sees every lookup.
fn enqueue_sql(host: &HostTables) -> String {
    format!(
        "
WITH candidates AS MATERIALIZED (
    SELECT t.organization_id, t.mdm_id, t.skip_reason,
           gen_random_uuid() AS request_id,
           gen_random_uuid()::text AS task_row_id
      FROM ({selection}) t
), request_time AS MATERIALIZED (
    SELECT infor_comm.format_request_dt($1) AS dt,
           $1 AT TIME ZONE infor_comm.setting_timezone() AS local_time
), outbox_rows AS (
    INSERT INTO infor_comm.outbox (request_id, task_row_id, organization_id, payload, created_at, available_at)
    SELECT c.request_id, c.task_row_id, c.organization_id,
           infor_comm.render_request(c.request_id, r.dt, c.organization_id, c.mdm_id,
                                     ids.ibso, ids.infor,
                                     s.tin, s.registry_number, s.kpp, s.okpo)::json,
           now(), now()
      FROM candidates c
     CROSS JOIN request_time r
      JOIN {snapshot} s ON s.id = c.organization_id
     CROSS JOIN LATERAL ({ids}) ids
     WHERE c.skip_reason IS NULL
     ORDER BY c.organization_id
        ON CONFLICT (organization_id) WHERE closed_at IS NULL DO NOTHING
    RETURNING request_id, task_row_id, organization_id
), task_rows AS (
    INSERT INTO infor_comm.infor_communication_task
           (id, vtbc_request_id, organization_id, request_date, time_create)
    SELECT o.task_row_id, o.request_id::text, o.organization_id, r.dt, r.local_time
      FROM outbox_rows o
     CROSS JOIN request_time r
    RETURNING 1
)
SELECT (SELECT count(*) FROM task_rows)::integer,
       (SELECT count(*) FROM candidates WHERE skip_reason IS NOT NULL)::integer",
        selection = selection_sql(host),
        snapshot = host.name("clientsnapshot"),
        ids = back_system_ids_sql(host, "c.mdm_id"),
    )
}

/// Enqueues a request for every client who qualifies at `as_of`; returns how many.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn enqueue_thinking_clients(as_of: default!(TimestampWithTimeZone, "now()")) -> i32 {
    crate::gucs::check_all();
    let host = HostTables::resolve();
    let (enqueued, skipped) = Spi::connect_mut(|client| {
        client.update(
            "SELECT pg_catalog.pg_advisory_xact_lock($1)",
            None,
            &[ENQUEUE_LOCK_KEY.into()],
        )?;
        client.update(CLOSE_STALE_REQUESTS, None, &[as_of.into()])?;
        let row = client
            .update(&enqueue_sql(&host), None, &[as_of.into()])?
            .first();
        let enqueued = row.get::<i32>(1)?.unwrap_or(0);
        let skipped = row.get::<i32>(2)?.unwrap_or(0);
        if enqueued > 0 {
            client.update(
                "SELECT pg_catalog.pg_notify($1, $2)",
                None,
                &[OUTBOX_CHANNEL.into(), enqueued.to_string().into()],
            )?;
        }
        Ok::<_, pgrx::spi::SpiError>((enqueued, skipped))
    })
    .unwrap_or_else(|e| spi_fault("enqueueing the thinking clients", e));
    if skipped > 0 {
        notice!(
            "infor_comm: {skipped} thinking client(s) cannot be sent; \
             infor_comm.thinking_clients shows them with their skip_reason"
        );
    }
    enqueued
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
    "../sql/relay_functions.sql",
    name = "relay_functions",
    requires = ["outbox_table"],
);
