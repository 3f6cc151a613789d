-- The daily job that pg_cron runs (run_daily), and the steps it calls that are written in SQL.

-- Records the start of a run at now() (its as_of); returns its run_id. SECURITY DEFINER, owned
-- by infor_comm_writer (api/job.rs): the job's role may run the job, not write its history.
CREATE FUNCTION infor_comm.daily_run_start() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT infor_comm.require_login_for_database();
    INSERT INTO infor_comm.daily_runs (started_at, as_of, run_by, application_name, backend_pid)
    VALUES (pg_catalog.clock_timestamp(), pg_catalog.now(), session_user,
            nullif(pg_catalog.current_setting('application_name'), ''),
            pg_catalog.pg_backend_pid())
    RETURNING run_id
$body$;
COMMENT ON FUNCTION infor_comm.daily_run_start() IS
    'Records the start of a daily run (as_of = now()); returns its run_id. Called by run_daily.';

-- Records that a run failed with an error: only a run this backend started and still runs.
-- SECURITY DEFINER, owned by infor_comm_writer (api/job.rs).
CREATE FUNCTION infor_comm.daily_run_failed(run_id bigint, sqlstate text, message text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT infor_comm.require_login_for_database();
    UPDATE infor_comm.daily_runs
       SET status = 'failed', finished_at = pg_catalog.clock_timestamp(),
           error = pg_catalog.concat_ws(': ', $2, $3)
     WHERE daily_runs.run_id = $1
       AND daily_runs.status = 'running'
       AND daily_runs.backend_pid = pg_catalog.pg_backend_pid()
$body$;
COMMENT ON FUNCTION infor_comm.daily_run_failed(bigint, text, text) IS
    'Records that a daily run failed, with the SQLSTATE and message of its error. Called by run_daily.';

-- Raises again the error that stopped a run (its SQLSTATE, message, detail and hint), once the
-- run's failure is committed.
CREATE FUNCTION infor_comm.daily_run_raise(sqlstate text, message text, detail text, hint text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $body$
BEGIN
    IF coalesce(detail, '') <> '' AND coalesce(hint, '') <> '' THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message, DETAIL = detail, HINT = hint;
    ELSIF coalesce(detail, '') <> '' THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message, DETAIL = detail;
    ELSIF coalesce(hint, '') <> '' THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message, HINT = hint;
    END IF;
    RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message;
END
$body$;
COMMENT ON FUNCTION infor_comm.daily_run_raise(text, text, text, text) IS
    'Raises the error that stopped a daily run again, once its failure is recorded. Called by run_daily.';


-- What the pg_cron job calls once a day: enqueue a request for every thinking client, and record
-- the run in infor_comm.daily_runs.
--
-- Called on its own (pg_cron, or CALL at the top level of a session), it commits the 'running'
-- row of the run before the enqueue, and after a failure commits the 'failed' row before
-- raising the error again: a failed or interrupted run stays visible although the enqueue's own
-- work is rolled back. Called inside a transaction block, it cannot commit, and the run's row
-- lives or dies with the caller's transaction.
--
-- Called on its own, it runs the enqueue at READ COMMITTED whatever default_transaction_isolation
-- says: two runs wait for each other, and the second must see what the first committed.
--
-- It has no SET search_path clause, unlike every other routine of the schema, because
-- PostgreSQL refuses COMMIT in a procedure that has one. It is safe all the same: its body
-- names only schema-qualified types and functions (each function with a pinned search_path)
-- and uses no operator, so nothing in it is looked up through the caller's search_path (a
-- domain public.text, say, is never used). What it calls reads and writes as infor_comm_writer
-- (docs/security.md), whoever runs the job.
CREATE PROCEDURE infor_comm.run_daily()
LANGUAGE plpgsql
AS $body$
DECLARE
    committing  pg_catalog.bool;
    run         pg_catalog.int8;
    err_state   pg_catalog.text;
    err_message pg_catalog.text;
    err_detail  pg_catalog.text;
    err_hint    pg_catalog.text;
BEGIN
    committing := infor_comm.daily_run_can_commit();
    run := infor_comm.daily_run_start();
    IF committing THEN
        COMMIT;
        SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
    END IF;
    BEGIN
        PERFORM infor_comm.daily_run_enqueue(run);
    EXCEPTION WHEN OTHERS THEN
        IF NOT committing THEN
            RAISE;
        END IF;
        GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT,
                                err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
        PERFORM infor_comm.daily_run_failed(run, err_state, err_message);
    END;
    IF err_state IS NOT NULL THEN
        COMMIT;
        PERFORM infor_comm.daily_run_raise(err_state, err_message, err_detail, err_hint);
    END IF;
END
$body$;
COMMENT ON PROCEDURE infor_comm.run_daily() IS
    'The daily job: enqueues a request to InforCRM for every thinking client (see schedule_daily) and records the run in daily_runs.';
