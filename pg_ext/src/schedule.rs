//! The daily job: `run_daily` (what pg_cron calls) and `schedule_daily` / `unschedule_daily`,
//! which manage the pg_cron job named [`JOB_NAME`].

use crate::errors::{raise, spi_fault};
use pgrx::prelude::*;

/// The name of the pg_cron job.
pub const JOB_NAME: &str = "infor_comm_daily";

/// The command the pg_cron job runs.
pub const JOB_COMMAND: &str = "CALL infor_comm.run_daily()";

/// Raises an error with installation hints unless pg_cron is installed in this database.
fn require_pg_cron() {
    let installed = Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')",
    )
    .unwrap_or_else(|e| spi_fault("looking up pg_cron", e))
    .unwrap_or(false);
    if !installed {
        let database = Spi::get_one::<String>("SELECT pg_catalog.current_database()::text")
            .ok()
            .flatten()
            .unwrap_or_default();
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("infor_comm: pg_cron is not installed in database \"{database}\""),
            "schedule_daily and unschedule_daily manage a pg_cron job, and pg_cron is not installed here.",
            format!(
                "Install pg_cron (Debian: apt-get install postgresql-15-cron), add it to shared_preload_libraries, \
                 set cron.database_name = '{database}', restart PostgreSQL and run CREATE EXTENSION pg_cron; \
                 or run CALL infor_comm.run_daily() daily from another scheduler."
            ),
        );
    }
}

/// Creates or replaces the pg_cron job that runs `infor_comm.run_daily()`; returns its job id.
#[pg_extern(volatile)]
fn schedule_daily(cron: default!(&str, "'0 9 * * *'")) -> i64 {
    require_pg_cron();
    Spi::get_one_with_args::<i64>(
        "SELECT cron.schedule($1, $2, $3)",
        &[JOB_NAME.into(), cron.into(), JOB_COMMAND.into()],
    )
    .unwrap_or_else(|e| spi_fault("cron.schedule", e))
    .unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "infor_comm: cron.schedule returned no job id",
            format!("schedule: {cron}"),
            "Check the pg_cron installation.",
        )
    })
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.schedule_daily(text) IS
    'Creates or replaces the pg_cron job infor_comm_daily that calls infor_comm.run_daily(); returns its job id.';
"#,
    name = "schedule_daily_comment",
    requires = [schedule_daily],
);

/// Removes the pg_cron job of `schedule_daily`; returns false when there was none.
#[pg_extern(volatile)]
fn unschedule_daily() -> bool {
    require_pg_cron();
    Spi::get_one_with_args::<bool>(
        "SELECT coalesce(bool_or(cron.unschedule(jobid)), false)
           FROM cron.job
          WHERE jobname = $1 AND username = current_user",
        &[JOB_NAME.into()],
    )
    .unwrap_or_else(|e| spi_fault("cron.unschedule", e))
    .unwrap_or(false)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.unschedule_daily() IS
    'Removes the pg_cron job infor_comm_daily; false when there was none.';
"#,
    name = "unschedule_daily_comment",
    requires = [unschedule_daily],
);

extension_sql_file!(
    "../sql/run_daily.sql",
    name = "run_daily",
    requires = [outbox::enqueue_thinking_clients],
);
