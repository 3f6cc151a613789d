-- infor_comm.daily_runs: the run history of the daily job, and the functions run_daily records it with.

-- Every run of the daily job (CALL infor_comm.run_daily()): when, as whom, what it did, or why it failed.
CREATE TABLE infor_comm.daily_runs (
    run_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at       timestamptz NOT NULL,
    as_of            timestamptz NOT NULL,
    run_by           text NOT NULL,
    application_name text,
    backend_pid      integer NOT NULL,
    status           text NOT NULL DEFAULT 'running',
    finished_at      timestamptz,
    sent             integer,
    skipped          integer,
    error            text,
    CONSTRAINT daily_runs_status_check CHECK (status IN ('running', 'succeeded', 'failed')),
    CONSTRAINT daily_runs_finished_check CHECK ((status = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE infor_comm.daily_runs IS
    'One row per run of the daily job (run_daily): started, finished, as_of, requests sent, clients skipped, by whom; a failed run with its error.';
COMMENT ON COLUMN infor_comm.daily_runs.as_of IS 'The job''s clock: the selection, the requests'' dt and the task rows'' time_create use it.';
COMMENT ON COLUMN infor_comm.daily_runs.run_by IS 'The login that ran the job (session_user): the role of the pg_cron job when pg_cron ran it.';
COMMENT ON COLUMN infor_comm.daily_runs.application_name IS 'The session''s application_name (pg_cron when pg_cron ran it).';
COMMENT ON COLUMN infor_comm.daily_runs.backend_pid IS 'The backend that ran it: a running run whose backend is gone was interrupted.';
COMMENT ON COLUMN infor_comm.daily_runs.status IS 'running (or interrupted, when its backend is gone), succeeded, failed.';
COMMENT ON COLUMN infor_comm.daily_runs.sent IS 'Requests enqueued.';
COMMENT ON COLUMN infor_comm.daily_runs.skipped IS 'Thinking clients whose request cannot be built or stored (thinking_clients.skip_reason).';
COMMENT ON COLUMN infor_comm.daily_runs.error IS 'SQLSTATE and message of the error that stopped a failed run.';

-- "Did yesterday's job run?": the latest runs, and the latest successful one.
CREATE INDEX daily_runs_started_idx ON infor_comm.daily_runs (started_at);
CREATE INDEX daily_runs_succeeded_idx ON infor_comm.daily_runs (started_at) WHERE status = 'succeeded';

-- Records the start of a run at now() (its as_of); returns its run_id. SECURITY DEFINER, owned
-- by infor_comm_writer (roles.sql): the job's role may run the job, not write its history.
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
-- SECURITY DEFINER, owned by infor_comm_writer (roles.sql).
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

-- pg_dump dumps the rows of this table and the state of its identity sequence.
SELECT pg_catalog.pg_extension_config_dump('infor_comm.daily_runs', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.daily_runs_run_id_seq', '');
