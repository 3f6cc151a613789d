-- infor_comm.daily_runs: the run history of the daily job (run_daily records it: api/job.sql).

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
    held_out         integer,
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
COMMENT ON COLUMN infor_comm.daily_runs.held_out IS 'Thinking clients held out of the calls (infor_comm.holdout_percent); NULL before 0.3.0.';
COMMENT ON COLUMN infor_comm.daily_runs.error IS 'SQLSTATE and message of the error that stopped a failed run.';

-- "Did yesterday's job run?": the latest runs, and the latest successful one.
CREATE INDEX daily_runs_started_idx ON infor_comm.daily_runs (started_at);
CREATE INDEX daily_runs_succeeded_idx ON infor_comm.daily_runs (started_at) WHERE status = 'succeeded';

-- pg_dump dumps the rows of this table and the state of its identity sequence.
SELECT pg_catalog.pg_extension_config_dump('infor_comm.daily_runs', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.daily_runs_run_id_seq', '');
