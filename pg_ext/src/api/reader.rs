//! The reader's entry points (role `infor_comm_reader`, for the analysts): the task table, the
//! client reactions, the report views (`daily_funnel`, `daily_runs`, `health`, `task_reactions`,
//! `unknown_reaction_pushes`, `outbox_delivery`), the preview `thinking_clients` and the report
//! functions (`effectiveness`, `client_history`, `health_report`). Their SQL is their concern's
//! (`pg_ext/sql/reports.sql`, `selection.sql`, `reaction_views.sql`; [`crate::reports`],
//! [`crate::selection`]); docs/reports.md documents each. Here: what the reader is granted, and
//! the row-level security policies that keep a login to the databases it was granted `CONNECT`
//! on ([`crate::login_scope`]).

use pgrx::prelude::*;

extension_sql!(
    r#"
-- The reader: the task table, the reports and the views; the outbox's delivery state but not
-- its payload (inn, ogrn, kpp, okpo, back-system ids).
GRANT SELECT ON
    infor_comm.infor_communication_task,
    infor_comm.client_reaction,
    infor_comm.thinking_clients,
    infor_comm.task_reactions,
    infor_comm.unknown_reaction_pushes,
    infor_comm.outbox_delivery,
    infor_comm.daily_funnel,
    infor_comm.daily_runs,
    infor_comm.health,
    infor_comm.holdout
TO infor_comm_reader;
GRANT SELECT (outbox_id, request_id, task_row_id, organization_id, created_at, available_at,
              attempts, last_error, published_at, closed_at, close_reason)
    ON infor_comm.outbox TO infor_comm_reader;
GRANT SELECT ON infor_comm.outbox_open TO infor_comm_reader;
-- thinking_clients and effectiveness are evaluated with the reader's own rights: they read the
-- outbox's delivery state and its open requests, call these functions, and need USAGE on infor_comm.host_schema and
-- SELECT on the bank's host tables, which the bank grants. client_history and health_report are
-- SECURITY DEFINER: they read the inbox (never the request payload) and pg_cron's tables.
GRANT EXECUTE ON FUNCTION
    infor_comm.thinking_clients_at(timestamptz),
    infor_comm.thinking_clients_query(),
    infor_comm.request_skip_reason(text, boolean, text, text, text, boolean),
    infor_comm.holdout_group(text),
    infor_comm.reaction_level(text),
    infor_comm.effectiveness(date, date),
    infor_comm.effectiveness_query(),
    infor_comm.forecast(integer, timestamptz),
    infor_comm.forecast_query(),
    infor_comm.uplift(date, date, interval, text[]),
    infor_comm.client_history(text),
    infor_comm.health_report()
TO infor_comm_reader;

-- A login uses infor_comm only in the databases it was granted CONNECT on: the functions check
-- it, and so do these policies on the tables the reader reads (the views that read them run
-- with the reader's rights). infor_comm_writer bypasses row-level security.
ALTER TABLE infor_comm.infor_communication_task ENABLE ROW LEVEL SECURITY;
ALTER TABLE infor_comm.outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE infor_comm.outbox_open ENABLE ROW LEVEL SECURITY;
ALTER TABLE infor_comm.daily_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE infor_comm.holdout ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_in_its_databases ON infor_comm.infor_communication_task FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));
CREATE POLICY reader_in_its_databases ON infor_comm.outbox FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));
CREATE POLICY reader_in_its_databases ON infor_comm.outbox_open FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));
CREATE POLICY reader_in_its_databases ON infor_comm.daily_runs FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));
CREATE POLICY reader_in_its_databases ON infor_comm.holdout FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));
"#,
    name = "reader_grants",
    requires = [
        "roles",
        "task_table",
        "outbox_table",
        "client_reaction",
        "reaction_views",
        "selection",
        "reports",
        "run_history",
        "holdout_table",
        uplift::uplift,
        login_scope::require_login_for_database_sql,
    ],
);
