//! Who is a thinking client: the set-based selection behind the view `thinking_clients`
//! and the daily enqueue.
//!
//! The rules (docs/contract.md, "Who is a thinking client"), all at `as_of`:
//! 1. `status = 'in_wizard'` and `wizard_status` in ('OK', 'IN_PROGRESS', 'TO_SIGN');
//! 2. no task row of the client has `status_code = '0'`, and none failed ('1', '2') on the
//!    calendar day of `as_of` (in `infor_comm.timezone`);
//! 3. no open request: unpublished, or published and unanswered for less than
//!    `infor_comm.response_timeout`;
//! 4. the latest `change_date` of the client is at least `infor_comm.thinking_days` full
//!    24-hour days before `as_of` (no log row: not selected);
//! 5. clients whose request cannot be built or stored are listed with `skip_reason`
//!    ([`crate::request::skip_reason`], the one rule), and so are clients with a log row without
//!    `change_date`, whose latest change is unknown.
//!
//! The selection is one SQL statement ([`selection_sql`]) with the host tables named
//! schema-qualified and quoted. The daily enqueue embeds it in its own statement, so the planner
//! sees it whole and every lookup is an index probe (see docs/selection-plan.md);
//! `thinking_clients_at` runs it with a pinned `search_path`. The settings are read once per
//! statement, through scalar sub-queries.

use crate::host_tables::HostTables;
use pgrx::prelude::*;

/// The thinking clients at `$1` (a `timestamptz`): organization_id, mdm_id, wizard_status,
/// status_since, full_days, skip_reason, in the columns of `thinking_clients_at`.
pub fn selection_sql(host: &HostTables) -> String {
    format!(
        "SELECT c.organization_id::varchar AS organization_id,
       c.mdm_id::varchar AS mdm_id,
       c.wizard_status::varchar AS wizard_status,
       l.last_change AS status_since,
       pg_catalog.floor(pg_catalog.date_part('epoch',
             $1 - (l.last_change AT TIME ZONE (SELECT infor_comm.setting_timezone()))) / 86400)::integer AS full_days,
       infor_comm.request_skip_reason(c.organization_id::text, s.id IS NOT NULL, s.tin::text,
                                      s.registry_number::text, s.kpp::text, l.unknown_change) AS skip_reason
  FROM {clients} c
 CROSS JOIN LATERAL (
       SELECT pg_catalog.max(w.change_date) AS last_change,
              pg_catalog.count(*) <> pg_catalog.count(w.change_date) AS unknown_change
         FROM {log} w
        WHERE w.organization_id = c.organization_id) l
  LEFT JOIN {snapshot} s ON s.id = c.organization_id
 WHERE c.status = 'in_wizard'
   AND c.wizard_status IN ('OK', 'IN_PROGRESS', 'TO_SIGN')
   AND (l.last_change <= (SELECT ($1 - pg_catalog.make_interval(hours => 24 * infor_comm.setting_thinking_days()))
                                 AT TIME ZONE infor_comm.setting_timezone())
        OR (l.last_change IS NULL AND l.unknown_change))
   AND NOT EXISTS (
       SELECT 1
         FROM infor_comm.infor_communication_task t
        WHERE t.organization_id = c.organization_id
          AND (t.status_code = '0'
               OR (t.status_code IN ('1', '2')
                   AND t.time_create >= (SELECT pg_catalog.date_trunc('day', $1 AT TIME ZONE infor_comm.setting_timezone())))))
   AND NOT EXISTS (
       SELECT 1
         FROM infor_comm.outbox o
         JOIN infor_comm.infor_communication_task t ON t.id = o.task_row_id
        WHERE o.organization_id = c.organization_id
          AND o.closed_at IS NULL
          AND t.status_code IS NULL
          AND (o.published_at IS NULL
               OR o.published_at > $1 - (SELECT infor_comm.setting_response_timeout())))",
        clients = host.name("product_migration_clients"),
        log = host.name("wizard_status_change_log"),
        snapshot = host.name("clientsnapshot"),
    )
}

/// The query behind `thinking_clients_at`, for the host schema in force (`$1` is `as_of`).
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn thinking_clients_query() -> String {
    selection_sql(&HostTables::resolve())
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.thinking_clients_query() IS
    'The query of thinking_clients_at for the host schema in force ($1 is as_of), to read or EXPLAIN.';
"#,
    name = "thinking_clients_query_comment",
    requires = [thinking_clients_query],
);

extension_sql_file!(
    "../sql/selection.sql",
    name = "selection",
    requires = [
        "task_table",
        "outbox_table",
        thinking_clients_query,
        request::request_skip_reason,
        gucs::setting_thinking_days,
        gucs::setting_timezone,
        gucs::setting_response_timeout
    ],
);
