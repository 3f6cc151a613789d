//! `infor_comm`: once a day, finds the corporate clients who are stuck ("thinking") in the
//! migration wizard, writes a request for InforCRM for each of them into an outbox, and
//! records InforCRM's answers in `infor_comm.infor_communication_task`.
//!
//! [`api`] is the SQL interface, one file per role that calls it (the daily job, the relay, the
//! reader, the DBA, the settings), with the grants beside each entry point. The logic is in one
//! module per concern, which the entry points call; the SQL of each (tables with their indexes
//! and comments, views, SQL functions) is in `pg_ext/sql/`, loaded with `extension_sql_file!`,
//! and each module keeps its in-database tests (`#[pg_test]`) beside it:
//! - [`gucs`]: the `infor_comm.*` settings and their validation;
//! - [`errors`]: user-facing errors with a SQLSTATE, detail and hint;
//! - [`schema`]: the extension's tables (the task table and the outbox);
//! - [`host_tables`]: the bank's tables that the extension reads, in `infor_comm.host_schema`;
//! - [`selection`]: who is a thinking client (`thinking_clients`);
//! - [`request`]: the request JSON (`build_request`);
//! - [`outbox`]: the daily enqueue;
//! - [`holdout`]: the hold-out group (`infor_comm.holdout_percent`), whom the job does not ask;
//! - [`inbound_message`]: parsing and validating InforCRM's replies and pushes;
//! - [`inbound`]: the inbox and the apply;
//! - [`login_scope`]: a login uses infor_comm only in the databases it was granted `CONNECT` on;
//! - [`reports`]: the reference table of client reactions, the report views and the reports
//!   (`daily_funnel`, `effectiveness`, `client_history`, `health`; docs/reports.md);
//! - [`run_history`]: the run history of the daily job (`daily_runs`);
//! - [`uplift`]: what the calls changed, the asked against the held-out clients (`uplift`);
//! - [`retention`]: the retention of personal data (`apply_retention`, `infor_comm.retention`);
//! - [`roles`]: the roles, and what PUBLIC may not do;
//! - [`row_checks`]: the rules of an inbox row and of an outbox row's closing (their CHECKs);
//! - [`cron_schedule`]: when the pg_cron schedule was last due (what `health` expects a run since);
//! - [`schedule`]: the pg_cron job and the role it runs as;
//! - [`sql_version`]: the check that the database's SQL is of the library's version;
//! - `test_support` (tests only): the helpers of the in-database tests.
//!
//! Released versions: `pg_ext/sql/infor_comm--<version>.sql` (frozen) and the upgrade scripts
//! `infor_comm--<from>--<to>.sql`; docs/upgrading.md says how to add one.

use pgrx::prelude::*;

pub mod api;
pub mod cron_schedule;
pub mod errors;
pub mod gucs;
pub mod holdout;
pub mod host_tables;
pub mod inbound;
pub mod inbound_message;
pub mod login_scope;
pub mod outbox;
pub mod reports;
pub mod request;
pub mod retention;
pub mod roles;
pub mod row_checks;
pub mod run_history;
pub mod schedule;
pub mod schema;
pub mod selection;
pub mod sql_version;
pub mod uplift;

::pgrx::pg_module_magic!(name, version);

/// What every entry point that reads or writes the extension's tables checks first, once per
/// transaction: that the database's SQL is of this library's version ([`sql_version`]), and that
/// the session's login may use infor_comm in this database ([`login_scope`]).
pub fn entry_checks() {
    sql_version::require_matching_sql();
    login_scope::require_login_for_database();
}

/// The name of the current database (for messages and hints).
pub fn current_database() -> String {
    Spi::get_one::<String>("SELECT pg_catalog.current_database()::text")
        .unwrap_or_else(|e| errors::spi_fault("reading current_database", e))
        .unwrap_or_default()
}

/// Called by PostgreSQL when the library is loaded into a backend.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::register();
}

#[cfg(any(test, feature = "pg_test"))]
mod test_support;

/// Required by `cargo pgrx test`: the settings of the throwaway test cluster.
#[cfg(test)]
pub mod pg_test {
    /// One-off initialisation when the test framework starts.
    pub fn setup(_options: Vec<&str>) {}

    /// pg_cron must be preloaded, and it runs its jobs in the tests' database.
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'pg_cron'",
            "cron.database_name = 'pgrx_tests'",
        ]
    }
}
