//! The DBA's entry points (a superuser, or the extension's owner; granted to no role): the
//! pg_cron job (`schedule_daily`, `unschedule_daily`; [`crate::schedule`] does the work), the
//! check of the host tables (`require_host_tables`; [`crate::host_tables`]), and, in
//! `pg_ext/sql/roles.sql`, `grant_host_tables_to_writer()`, run again once the host tables exist.
//! `infor_comm.health` (a report, [`crate::api::reader`]) says what needs the DBA.
//!
//! The repair kit, granted to `infor_comm_operator` and nothing else
//! (`pg_ext/sql/api/operator.sql`): `retry_now`, `withdraw` and `reapply_rejected`, each recorded in
//! `infor_comm.operator_actions` (docs/operations.md).

use crate::host_tables::HostTables;
use pgrx::prelude::*;

/// Creates or replaces the pg_cron job that runs `infor_comm.run_daily()` in this database as
/// `run_as` (default: `infor_comm_daily`, created when missing); returns its job id. The
/// database keeps exactly one such job, whoever scheduled the earlier one. A superuser
/// `run_as` is refused: the job never runs as one (docs/security.md).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn schedule_daily(
    cron: default!(Option<&str>, "'0 9 * * *'"),
    run_as: default!(Option<&str>, "NULL"),
) -> i64 {
    crate::schedule::schedule(cron, run_as)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.schedule_daily(text, text) IS
    'Creates or replaces the one pg_cron job infor_comm_daily of this database, which calls infor_comm.run_daily() as run_as (default: infor_comm_daily, created when missing; never a superuser); returns its job id.';
"#,
    name = "schedule_daily_comment",
    requires = [schedule_daily],
);

/// Removes the pg_cron job of `schedule_daily` from this database, whoever scheduled it;
/// returns false when there was none.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn unschedule_daily() -> bool {
    crate::schedule::unschedule()
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.unschedule_daily() IS
    'Removes the pg_cron job infor_comm_daily of this database, whoever scheduled it; false when there was none.';
"#,
    name = "unschedule_daily_comment",
    requires = [unschedule_daily],
);

/// Checks that the four host tables exist in `infor_comm.host_schema` and are what
/// [`HostTables::resolve`] accepts; raises an error naming the first that is not.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn require_host_tables() -> bool {
    HostTables::resolve();
    true
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.require_host_tables() IS
    'Checks that the four host tables exist in infor_comm.host_schema and are plain tables with their documented columns of built-in types; an error naming the first that is not.';
"#,
    name = "require_host_tables_comment",
    requires = [require_host_tables],
);

extension_sql_file!(
    "../../sql/api/operator.sql",
    name = "operator_functions",
    requires = [
        "roles",
        "outbox_table",
        "inbox_table",
        "relay_functions",
        apply_delivery,
        inbox_reason_code,
        login_scope::require_login_for_database_sql
    ],
);

extension_sql!(
    r#"
-- The operator may run the repair kit and nothing else (its audit trail is the DBA's to read).
GRANT EXECUTE ON FUNCTION
    infor_comm.retry_now(text[]),
    infor_comm.withdraw(text, text),
    infor_comm.reapply_rejected(bigint[], text, timestamptz, timestamptz, boolean)
    TO infor_comm_operator;
"#,
    name = "operator_grants",
    requires = ["operator_functions"],
);
