//! The run history of the daily job: `run_daily` records every run in `infor_comm.daily_runs`
//! (started, finished, `as_of`, sent, skipped, by whom, the error of a failed run).
//!
//! `run_daily` (pg_ext/sql/api/job.sql) commits the run's 'running' row before the enqueue
//! when it may commit (called on its own, as pg_cron does), so a run whose enqueue fails, or
//! whose backend dies, stays visible: the failure is recorded and committed before the error is
//! raised again, and a 'running' row whose backend is gone is an interrupted run.

use crate::errors::{raise, spi_fault};
use pgrx::prelude::*;

/// True when the calling procedure may COMMIT: it was called on its own (not inside a
/// transaction block, a function, or a procedure with a SET clause).
pub fn may_commit() -> bool {
    // SAFETY: reads the SPI stack of the calling PL/pgSQL procedure; no SPI call is made here.
    unsafe { pg_sys::SPI_inside_nonatomic_context() }
}

/// Runs the enqueue of the daily run `run_id` at its `as_of`, and records what it did: only a
/// run this backend started (`daily_run_start`) and still runs.
pub fn enqueue_run(run_id: i64) -> i32 {
    let as_of = Spi::get_one_with_args::<TimestampWithTimeZone>(
        "SELECT (SELECT as_of FROM infor_comm.daily_runs
                  WHERE run_id = $1 AND status = 'running' AND backend_pid = pg_catalog.pg_backend_pid())",
        &[run_id.into()],
    )
    .unwrap_or_else(|e| spi_fault("reading the daily run", e))
    .unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("infor_comm: no running daily run {run_id} of this session"),
            "daily_run_enqueue runs the enqueue of a run that infor_comm.daily_run_start() recorded in the same session.",
            "Run the daily job with CALL infor_comm.run_daily().",
        )
    });
    let done = crate::outbox::enqueue(as_of, Some(run_id));
    Spi::run_with_args(
        "UPDATE infor_comm.daily_runs
            SET status = 'succeeded', finished_at = pg_catalog.clock_timestamp(), sent = $2, skipped = $3,
                held_out = $4
          WHERE run_id = $1",
        &[
            run_id.into(),
            done.enqueued.into(),
            done.skipped.into(),
            done.held_out.into(),
        ],
    )
    .unwrap_or_else(|e| spi_fault("recording the daily run", e));
    log!(
        "infor_comm.run_daily: {} request(s) enqueued, {} skipped, {} held out",
        done.enqueued,
        done.skipped,
        done.held_out
    );
    done.enqueued
}

extension_sql_file!(
    "../sql/run_history.sql",
    name = "run_history",
    requires = ["task_table"]
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    /// A thinking client of today whose request can be sent, and one that cannot (no snapshot).
    fn two_thinking_clients() {
        host_tables();
        run(
            "INSERT INTO product_migration_clients VALUES ('NOW', 'M', 'in_wizard', 'OK'),
                                                         ('NO_SNAPSHOT', 'M2', 'in_wizard', 'OK');
             INSERT INTO wizard_status_change_log
                  SELECT organization_id, 'OK', (now() - interval '8 days') AT TIME ZONE 'Europe/Moscow'
                    FROM product_migration_clients;
             INSERT INTO clientsnapshot VALUES ('NOW', '1', '2', '3', NULL);",
        );
    }

    #[pg_test]
    fn a_run_records_when_as_whom_and_what_it_did() {
        two_thinking_clients();
        // Inside a transaction (as here) the run cannot commit: its row is part of the caller's
        // transaction. pg_regress's run_history test covers a run that commits.
        assert!(text("SELECT infor_comm.daily_run_can_commit()::text") == Some("false".into()));
        run("CALL infor_comm.run_daily()");
        assert_eq!(
            text(
                "SELECT concat_ws(' ', status, sent, skipped, run_by = current_user,
                                  as_of = now(), finished_at >= started_at, error IS NULL,
                                  backend_pid = pg_backend_pid())
                   FROM infor_comm.daily_runs"
            ),
            Some("succeeded 1 1 t t t t t".into())
        );
        // A second run the same day sends nobody and is recorded too.
        run("CALL infor_comm.run_daily()");
        assert_eq!(
            text("SELECT string_agg(sent || '/' || skipped, ',' ORDER BY run_id) FROM infor_comm.daily_runs"),
            Some("1/1,0/1".into())
        );
    }

    #[pg_test]
    fn a_failed_run_raises_the_jobs_error() {
        two_thinking_clients();
        run("SET LOCAL infor_comm.host_schema = 'nowhere'");
        let outcome = outcome_of("CALL infor_comm.run_daily()");
        assert_eq!(
            outcome,
            "infor_comm: host schema \"nowhere\" does not exist"
        );
    }

    #[pg_test(error = "infor_comm: no running daily run 42 of this session")]
    fn the_enqueue_of_an_unknown_run_is_refused() {
        run("SELECT infor_comm.daily_run_enqueue(42)");
    }
}
