-- infor_comm 0.1.0 → 0.2.0, applied by ALTER EXTENSION infor_comm UPDATE in one transaction.
-- Every change of the schema or of a SQL function after 0.1.0 is here, in the order it was made.
-- Never edited once 0.2.0 is released. docs/upgrading.md says how to add to it.
\echo Use "ALTER EXTENSION infor_comm UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- Where the host tables are (docs/contract.md, "Where the host tables are"): the setting
-- infor_comm.host_schema, schema-qualified names, and every function with a pinned search_path.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION infor_comm."setting_host_schema"() RETURNS TEXT
STRICT STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'setting_host_schema_wrapper';
COMMENT ON FUNCTION infor_comm.setting_host_schema() IS 'The infor_comm.host_schema in force, validated.';

CREATE FUNCTION infor_comm."request_skip_reason"(
    "organization_id" TEXT,
    "has_snapshot" bool,
    "inn" TEXT,
    "ogrn" TEXT,
    "kpp" TEXT,
    "change_date_unknown" bool DEFAULT false
) RETURNS TEXT
IMMUTABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'request_skip_reason_wrapper';
COMMENT ON FUNCTION infor_comm.request_skip_reason(text, boolean, text, text, text, boolean) IS
    'Why a client''s request cannot be built or stored (the skip_reason of thinking_clients); NULL when it can.';

CREATE FUNCTION infor_comm."thinking_clients_query"() RETURNS TEXT
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'thinking_clients_query_wrapper';
COMMENT ON FUNCTION infor_comm.thinking_clients_query() IS
    'The query of thinking_clients_at for the host schema in force ($1 is as_of), to read or EXPLAIN.';

CREATE OR REPLACE FUNCTION infor_comm.thinking_clients_at(as_of timestamptz)
RETURNS TABLE (
    organization_id varchar,
    mdm_id          varchar,
    wizard_status   varchar,
    status_since    timestamp,
    full_days       integer,
    skip_reason     text
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $body$
BEGIN
    RETURN QUERY EXECUTE infor_comm.thinking_clients_query() USING as_of;
END
$body$;

-- The back-system ids are read inside the daily statement now (from infor_comm.host_schema).
DROP FUNCTION infor_comm.back_system_ids(varchar);

ALTER FUNCTION infor_comm.build_request(text, uuid, timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.render_request(uuid, text, text, text, text[], text[], text, text, text, text)
    SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.require_host_tables() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.setting_thinking_days() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.setting_timezone() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.setting_response_timeout() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.unschedule_daily() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.format_request_dt(timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.reaction_level(text) SET search_path = pg_catalog, pg_temp;
ALTER PROCEDURE infor_comm.run_daily() SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION infor_comm.require_host_tables() IS
    'Checks that the four host tables exist in infor_comm.host_schema; an error naming the first missing one.';

-- ---------------------------------------------------------------------------------------------
-- One daily job per database, run as a chosen role; schedule_daily(NULL) is an error.
-- ---------------------------------------------------------------------------------------------
DROP FUNCTION infor_comm.schedule_daily(text);
CREATE FUNCTION infor_comm."schedule_daily"(
    "cron" TEXT DEFAULT '0 9 * * *',
    "run_as" TEXT DEFAULT NULL
) RETURNS bigint
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'schedule_daily_wrapper';
REVOKE ALL ON FUNCTION infor_comm.schedule_daily(text, text) FROM PUBLIC;
COMMENT ON FUNCTION infor_comm.schedule_daily(text, text) IS
    'Creates or replaces the one pg_cron job infor_comm_daily of this database, which calls infor_comm.run_daily() as run_as (default: the current role); returns its job id.';
COMMENT ON FUNCTION infor_comm.unschedule_daily() IS
    'Removes the pg_cron job infor_comm_daily of this database, whoever scheduled it; false when there was none.';

-- ---------------------------------------------------------------------------------------------
-- A NULL body is journaled as NULL; a late '0' withdraws the client's newer unpublished request.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE infor_comm.inbox DROP CONSTRAINT inbox_one_body;
ALTER TABLE infor_comm.inbox ADD CONSTRAINT inbox_one_body CHECK (body IS NULL OR body_bytes IS NULL);
COMMENT ON COLUMN infor_comm.inbox.body IS 'The message as received (NULL when it was not valid UTF-8: see body_bytes; both NULL: the body was NULL).';

ALTER TABLE infor_comm.outbox DROP CONSTRAINT outbox_close_reason_check;
ALTER TABLE infor_comm.outbox ADD CONSTRAINT outbox_close_reason_check
    CHECK (close_reason IN ('answered', 'timed_out', 'withdrawn'));
COMMENT ON COLUMN infor_comm.outbox.close_reason IS 'answered; timed_out (no reply within infor_comm.response_timeout); withdrawn (never published: an older request of the client got its task).';

-- ---------------------------------------------------------------------------------------------
-- The reader sees the outbox's delivery state, not its payload; the daily job's own role.
-- ---------------------------------------------------------------------------------------------
CREATE VIEW infor_comm.outbox_delivery AS
SELECT outbox_id, request_id, task_row_id, organization_id, created_at, available_at, attempts,
       last_error, published_at, closed_at, close_reason
  FROM infor_comm.outbox;
COMMENT ON VIEW infor_comm.outbox_delivery IS
    'The outbox without the request payload: when each request was created, published and closed, and why.';
REVOKE ALL ON infor_comm.outbox_delivery FROM PUBLIC;

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'infor_comm_job') THEN
        BEGIN
            CREATE ROLE infor_comm_job NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$roles$;
GRANT USAGE ON SCHEMA infor_comm TO infor_comm_job;

REVOKE SELECT ON infor_comm.outbox FROM infor_comm_reader;
GRANT SELECT (outbox_id, request_id, task_row_id, organization_id, created_at, available_at,
              attempts, last_error, published_at, closed_at, close_reason)
    ON infor_comm.outbox TO infor_comm_reader;
GRANT SELECT ON infor_comm.outbox_delivery TO infor_comm_reader;
GRANT EXECUTE ON FUNCTION
    infor_comm.thinking_clients_query(),
    infor_comm.request_skip_reason(text, boolean, text, text, text, boolean),
    infor_comm.setting_host_schema()
TO infor_comm_reader;
REVOKE ALL ON FUNCTION
    infor_comm.thinking_clients_query(),
    infor_comm.request_skip_reason(text, boolean, text, text, text, boolean),
    infor_comm.setting_host_schema()
FROM PUBLIC;

GRANT EXECUTE ON ROUTINE
    infor_comm.run_daily(),
    infor_comm.enqueue_thinking_clients(timestamptz),
    infor_comm.thinking_clients_at(timestamptz),
    infor_comm.thinking_clients_query(),
    infor_comm.request_skip_reason(text, boolean, text, text, text, boolean),
    infor_comm.render_request(uuid, text, text, text, text[], text[], text, text, text, text),
    infor_comm.format_request_dt(timestamptz),
    infor_comm.setting_thinking_days(),
    infor_comm.setting_timezone(),
    infor_comm.setting_response_timeout(),
    infor_comm.setting_host_schema()
TO infor_comm_job;
GRANT SELECT, INSERT ON infor_comm.infor_communication_task TO infor_comm_job;
GRANT SELECT, INSERT, UPDATE ON infor_comm.outbox TO infor_comm_job;

-- ---------------------------------------------------------------------------------------------
-- pg_dump dumps the rows of the extension's tables and the state of their identity sequences.
-- ---------------------------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('infor_comm.infor_communication_task', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox_outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.inbox', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.inbox_inbox_id_seq', '');

-- ---------------------------------------------------------------------------------------------
-- Hostile deliveries: a message id that is not text, an oversized body, a message set aside.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE infor_comm.inbox
    ADD COLUMN message_id_bytes bytea,
    ADD COLUMN body_size bigint,
    ADD COLUMN body_sha256 bytea,
    ADD CONSTRAINT inbox_one_message_id CHECK (message_id IS NULL OR message_id_bytes IS NULL),
    ADD CONSTRAINT inbox_oversized_check
        CHECK ((body_size IS NULL) = (body_sha256 IS NULL)
               AND (body_sha256 IS NULL OR (outcome = 'rejected' AND body IS NULL)));
COMMENT ON COLUMN infor_comm.inbox.message_id IS 'The broker''s message id, when it gave one that is text (else see message_id_bytes).';
COMMENT ON COLUMN infor_comm.inbox.message_id_bytes IS 'The broker''s message id as it came, when it was not text PostgreSQL can store (a NUL byte, or not UTF-8); message_id is then NULL.';
COMMENT ON COLUMN infor_comm.inbox.body_size IS 'For a body over the relay''s size limit: its size in bytes (body_bytes keeps its first 64 KiB).';
COMMENT ON COLUMN infor_comm.inbox.body_sha256 IS 'For a body over the relay''s size limit: the SHA-256 of the whole body.';

CREATE FUNCTION infor_comm."apply_delivery"(
	"body" bytea,
	"message_id" bytea
) RETURNS TEXT
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'apply_delivery_wrapper';
COMMENT ON FUNCTION infor_comm.apply_delivery(bytea, bytea) IS
    'apply_inbound for a body and a message id as the broker delivered them (bytes); an id that is not valid text is kept as bytes.';

CREATE FUNCTION infor_comm."reject_oversized"(
	"head" bytea,
	"message_id" bytea,
	"body_size" bigint,
	"body_sha256" bytea,
	"size_limit" bigint
) RETURNS TEXT
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'reject_oversized_wrapper';
COMMENT ON FUNCTION infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint) IS
    'Journals an inbound body over the relay''s size limit as rejected: its size, SHA-256 and first 64 KiB; returns rejected.';

CREATE FUNCTION infor_comm."set_aside_inbound"(
	"body" bytea,
	"message_id" bytea,
	"attempts" INT,
	"error" TEXT
) RETURNS TEXT
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_aside_inbound_wrapper';
COMMENT ON FUNCTION infor_comm.set_aside_inbound(bytea, bytea, integer, text) IS
    'Journals an inbound message whose apply kept failing as rejected, with the attempts and the last error, without applying it.';

REVOKE ALL ON FUNCTION
    infor_comm.apply_delivery(bytea, bytea),
    infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint),
    infor_comm.set_aside_inbound(bytea, bytea, integer, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    infor_comm.apply_delivery(bytea, bytea),
    infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint),
    infor_comm.set_aside_inbound(bytea, bytea, integer, text)
TO infor_comm_relay;

-- ---------------------------------------------------------------------------------------------
-- The run history of the daily job (daily_runs), recorded by run_daily, which commits it.
-- ---------------------------------------------------------------------------------------------
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
COMMENT ON COLUMN infor_comm.daily_runs.run_by IS 'The role the job ran as (current_user).';
COMMENT ON COLUMN infor_comm.daily_runs.application_name IS 'The session''s application_name (pg_cron when pg_cron ran it).';
COMMENT ON COLUMN infor_comm.daily_runs.backend_pid IS 'The backend that ran it: a running run whose backend is gone was interrupted.';
COMMENT ON COLUMN infor_comm.daily_runs.status IS 'running (or interrupted, when its backend is gone), succeeded, failed.';
COMMENT ON COLUMN infor_comm.daily_runs.sent IS 'Requests enqueued.';
COMMENT ON COLUMN infor_comm.daily_runs.skipped IS 'Thinking clients whose request cannot be built or stored (thinking_clients.skip_reason).';
COMMENT ON COLUMN infor_comm.daily_runs.error IS 'SQLSTATE and message of the error that stopped a failed run.';

-- "Did yesterday's job run?": the latest runs, and the latest successful one.
CREATE INDEX daily_runs_started_idx ON infor_comm.daily_runs (started_at);
CREATE INDEX daily_runs_succeeded_idx ON infor_comm.daily_runs (started_at) WHERE status = 'succeeded';

-- Records the start of a run at now() (its as_of); returns its run_id.
CREATE FUNCTION infor_comm.daily_run_start() RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $body$
    INSERT INTO infor_comm.daily_runs (started_at, as_of, run_by, application_name, backend_pid)
    VALUES (pg_catalog.clock_timestamp(), pg_catalog.now(), current_user,
            nullif(pg_catalog.current_setting('application_name'), ''),
            pg_catalog.pg_backend_pid())
    RETURNING run_id
$body$;
COMMENT ON FUNCTION infor_comm.daily_run_start() IS
    'Records the start of a daily run (as_of = now()); returns its run_id. Called by run_daily.';

-- Records that a run failed with an error.
CREATE FUNCTION infor_comm.daily_run_failed(run_id bigint, sqlstate text, message text) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $body$
    UPDATE infor_comm.daily_runs
       SET status = 'failed', finished_at = pg_catalog.clock_timestamp(),
           error = pg_catalog.concat_ws(': ', $2, $3)
     WHERE daily_runs.run_id = $1
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

CREATE FUNCTION infor_comm."daily_run_can_commit"() RETURNS bool
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'daily_run_can_commit_wrapper';
CREATE FUNCTION infor_comm."daily_run_enqueue"(
	"run_id" bigint
) RETURNS INT
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'daily_run_enqueue_wrapper';
COMMENT ON FUNCTION infor_comm.daily_run_can_commit() IS
    'True when the calling procedure may commit (called on its own, as pg_cron calls run_daily). Called by run_daily.';
COMMENT ON FUNCTION infor_comm.daily_run_enqueue(bigint) IS
    'Enqueues the requests of a daily run at its as_of and records sent and skipped; returns how many were sent. Called by run_daily.';

-- What the pg_cron job calls once a day: enqueue a request for every thinking client, and record
-- the run in infor_comm.daily_runs.
--
-- Called on its own (pg_cron, or CALL at the top level of a session), it commits the 'running'
-- row of the run before the enqueue, and after a failure commits the 'failed' row before
-- raising the error again: a failed or interrupted run stays visible although the enqueue's own
-- work is rolled back. Called inside a transaction block, it cannot commit, and the run's row
-- lives or dies with the caller's transaction.
--
-- It has no SET search_path clause, unlike every other routine of the schema, because
-- PostgreSQL refuses COMMIT in a procedure that has one. It is safe all the same: its body
-- names only schema-qualified functions (each with a pinned search_path) and uses no operator,
-- so nothing in it is looked up through the caller's search_path.
CREATE OR REPLACE PROCEDURE infor_comm.run_daily()
LANGUAGE plpgsql
AS $body$
DECLARE
    committing  boolean;
    run         bigint;
    err_state   text;
    err_message text;
    err_detail  text;
    err_hint    text;
BEGIN
    committing := infor_comm.daily_run_can_commit();
    run := infor_comm.daily_run_start();
    IF committing THEN
        COMMIT;
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

-- ---------------------------------------------------------------------------------------------
-- The reports: daily_funnel, effectiveness, client_history, health.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION infor_comm."effectiveness_query"() RETURNS TEXT
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'effectiveness_query_wrapper';
COMMENT ON FUNCTION infor_comm.effectiveness_query() IS
    'The query of effectiveness for the host schema in force ($1, $2: first and last request day), to read or EXPLAIN.';


-- The funnel groups the task rows by the calendar day of their request (time_create is wall
-- time in infor_comm.timezone); this index lets a report of the last days read only those days.
CREATE INDEX infor_communication_task_day_idx
    ON infor_comm.infor_communication_task ((time_create::date));

-- One row per day: thinking clients, requests sent, confirmed, replies, outcomes, reactions,
-- still waiting, timed out.
CREATE VIEW infor_comm.daily_funnel AS
SELECT d.day,
       r.runs,
       r.thinking_clients,
       r.skipped,
       d.requests_sent,
       d.confirmed_by_broker,
       d.replied_task_created,
       d.replied_client_not_found,
       d.replied_other_error,
       d.tasks_processed,
       d.tasks_not_processed,
       coalesce(f.reactions, '{}'::jsonb) AS reactions_by_first_level,
       d.waiting_for_reply,
       d.timed_out,
       d.withdrawn
  FROM (SELECT t.time_create::date AS day,
               pg_catalog.count(*) AS requests_sent,
               pg_catalog.count(o.published_at) AS confirmed_by_broker,
               pg_catalog.count(*) FILTER (WHERE t.status_code = '0') AS replied_task_created,
               pg_catalog.count(*) FILTER (WHERE t.status_code = '1') AS replied_client_not_found,
               pg_catalog.count(*) FILTER (WHERE t.status_code = '2') AS replied_other_error,
               pg_catalog.count(*) FILTER (WHERE t.task_status = '3') AS tasks_processed,
               pg_catalog.count(*) FILTER (WHERE t.task_status = '5') AS tasks_not_processed,
               pg_catalog.count(*) FILTER (
                   WHERE t.status_code IS NULL AND o.closed_at IS NULL
                     AND (o.published_at IS NULL
                          OR o.published_at > pg_catalog.now() - (SELECT infor_comm.setting_response_timeout()))
               ) AS waiting_for_reply,
               pg_catalog.count(*) FILTER (
                   WHERE t.status_code IS NULL
                     AND (o.close_reason = 'timed_out'
                          OR (o.closed_at IS NULL
                              AND o.published_at <= pg_catalog.now() - (SELECT infor_comm.setting_response_timeout())))
               ) AS timed_out,
               pg_catalog.count(*) FILTER (WHERE t.status_code IS NULL AND o.close_reason = 'withdrawn') AS withdrawn
          FROM infor_comm.infor_communication_task t
          -- One index probe per task row (LIMIT 1 keeps it a probe): a report of the last days
          -- costs those days' rows, however many years the outbox holds.
          LEFT JOIN LATERAL (
                SELECT o.published_at, o.closed_at, o.close_reason
                  FROM infor_comm.outbox o
                 WHERE o.task_row_id = t.id
                 LIMIT 1) o ON true
         GROUP BY 1) d
  LEFT JOIN LATERAL (
        SELECT pg_catalog.count(*) AS runs,
               pg_catalog.max(x.sent + x.skipped) AS thinking_clients,
               pg_catalog.max(x.skipped) AS skipped
          FROM infor_comm.daily_runs x
         WHERE x.status = 'succeeded'
           AND (x.as_of AT TIME ZONE (SELECT infor_comm.setting_timezone()))::date = d.day) r ON true
  LEFT JOIN LATERAL (
        SELECT pg_catalog.jsonb_object_agg(l.first_level, l.pushes ORDER BY l.first_level) AS reactions
          FROM (SELECT coalesce(nullif(nullif(pg_catalog.btrim(t.first_level_client_reaction), ''), '-'), '-') AS first_level,
                       pg_catalog.count(*) AS pushes
                  FROM infor_comm.infor_communication_task t
                 WHERE t.time_create::date = d.day AND t.task_status IS NOT NULL
                 GROUP BY 1) l) f ON true;
COMMENT ON VIEW infor_comm.daily_funnel IS
    'One row per day of requests (time_create): thinking clients and skipped ones (from daily_runs), requests sent, confirmed by the broker, replies by status_code, tasks processed / not processed, pushes by first-level reaction, still waiting, timed out, withdrawn.';

-- The ids an inbound message carries (replyUID, requestID, taskID), read from its text without
-- parsing it (a rejected message may not be JSON at all); client_history finds a client's
-- messages that matched no task row by them.
CREATE FUNCTION infor_comm.inbox_message_ids(body text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT pg_catalog.array_agg(DISTINCT m[1])
      FROM pg_catalog.regexp_matches($1, '"(?:replyUID|requestID|taskID)"\s*:\s*"?([^"\\,}\s]{1,200})', 'g') AS m
$body$;
COMMENT ON FUNCTION infor_comm.inbox_message_ids(text) IS
    'The replyUID, requestID and taskID values written in an inbound message''s text (NULL when none), for client_history.';

-- The inbound messages that matched no task row (rejected ones, orphans still waiting), by the
-- ids written in them.
CREATE INDEX inbox_unmatched_ids_idx ON infor_comm.inbox
    USING gin (infor_comm.inbox_message_ids(body)) WHERE task_row_id IS NULL;

-- health counts the messages rejected in the last 24 hours without reading the day's replies.
CREATE INDEX inbox_rejected_received_idx ON infor_comm.inbox (received_at) WHERE outcome = 'rejected';

-- Everything that happened to one client's requests, in order.
CREATE FUNCTION infor_comm.client_history(organization_id text)
RETURNS TABLE (
    at          timestamptz,
    event       text,
    request_id  text,
    outcome     text,
    reason      text,
    message     text
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
WITH requests AS (
    SELECT t.id, t.vtbc_request_id, t.infor_response_id, t.task_id, t.request_date, t.time_create,
           o.created_at, o.published_at, o.attempts, o.last_error, o.closed_at, o.close_reason
      FROM infor_comm.infor_communication_task t
      LEFT JOIN infor_comm.outbox o ON o.task_row_id = t.id
     WHERE t.organization_id = $1
), ids AS (
    SELECT pg_catalog.array_agg(DISTINCT x.id::text) AS ids
      FROM requests r
     CROSS JOIN LATERAL (VALUES (r.vtbc_request_id), (r.infor_response_id), (r.task_id)) AS x (id)
     WHERE x.id IS NOT NULL
), events AS (
    SELECT coalesce(r.created_at, r.time_create AT TIME ZONE (SELECT infor_comm.setting_timezone())) AS at,
           1 AS step, 0::bigint AS inbox_id, 'request enqueued' AS event, r.vtbc_request_id AS request_id,
           NULL::text AS outcome, NULL::text AS reason, 'dt ' || r.request_date AS message
      FROM requests r
    UNION ALL
    SELECT r.published_at, 2, 0, 'request published', r.vtbc_request_id, NULL, NULL,
           nullif(pg_catalog.concat_ws('; ', CASE WHEN r.attempts > 0 THEN r.attempts || ' failed attempt(s)' END,
                                                   'last error: ' || r.last_error), '')
      FROM requests r WHERE r.published_at IS NOT NULL
    UNION ALL
    SELECT pg_catalog.now(), 2, 0, 'request not published yet', r.vtbc_request_id, NULL, NULL,
           nullif(pg_catalog.concat_ws('; ', CASE WHEN r.attempts > 0 THEN r.attempts || ' failed attempt(s)' END,
                                                   'last error: ' || r.last_error), '')
      FROM requests r WHERE r.published_at IS NULL AND r.closed_at IS NULL AND r.created_at IS NOT NULL
    UNION ALL
    SELECT i.received_at, 3, i.inbox_id, 'inbound ' || i.kind, r.vtbc_request_id, i.outcome, i.reason,
           coalesce(pg_catalog.left(i.body, 2000), '(not UTF-8 text: ' || pg_catalog.length(i.body_bytes) || ' bytes)')
      FROM requests r
      JOIN infor_comm.inbox i ON i.task_row_id = r.id
    UNION ALL
    SELECT i.received_at, 3, i.inbox_id, 'inbound ' || i.kind || ' (matched no task row)', NULL, i.outcome, i.reason,
           pg_catalog.left(i.body, 2000)
      FROM infor_comm.inbox i
     WHERE i.task_row_id IS NULL
       AND infor_comm.inbox_message_ids(i.body) OPERATOR(pg_catalog.&&) (SELECT ids.ids FROM ids)
    UNION ALL
    SELECT r.closed_at, 4, 0, 'request closed', r.vtbc_request_id, r.close_reason, NULL, NULL
      FROM requests r WHERE r.closed_at IS NOT NULL
)
SELECT e.at, e.event, e.request_id, e.outcome, e.reason, e.message
  FROM events e
 ORDER BY e.at, e.step, e.inbox_id
$body$;
COMMENT ON FUNCTION infor_comm.client_history(text) IS
    'Every request, publication, reply, push and rejected message of one client (by organization_id), in order, for the support desk; never the request payload.';

-- The state of the integration in one row: what an alert reads.
CREATE FUNCTION infor_comm.health_report()
RETURNS TABLE (
    checked_at                  timestamptz,
    ok                          boolean,
    problems                    text[],
    unpublished                 bigint,
    oldest_unpublished_age      interval,
    unanswered_past_timeout     bigint,
    orphans_older_than_a_day    bigint,
    rejected_last_24h           bigint,
    rejected_last_24h_by_reason jsonb,
    last_run_started_at         timestamptz,
    last_run_status             text,
    last_run_error              text,
    last_success_finished_at    timestamptz,
    last_success_sent           integer,
    last_success_skipped        integer,
    pg_cron_installed           boolean,
    cron_job_exists             boolean,
    cron_job_active             boolean,
    cron_last_start             timestamptz,
    cron_last_status            text,
    cron_last_message           text
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    job_id bigint;
BEGIN
    checked_at := pg_catalog.now();

    SELECT pg_catalog.count(*), checked_at - pg_catalog.min(o.created_at)
      INTO unpublished, oldest_unpublished_age
      FROM infor_comm.outbox_pending p
      JOIN infor_comm.outbox o ON o.outbox_id = p.outbox_id
     WHERE o.published_at IS NULL AND o.closed_at IS NULL;

    SELECT pg_catalog.count(*) INTO unanswered_past_timeout
      FROM infor_comm.outbox_open p
      JOIN infor_comm.outbox o ON o.outbox_id = p.outbox_id
      JOIN infor_comm.infor_communication_task t ON t.id = o.task_row_id
     WHERE o.closed_at IS NULL AND t.status_code IS NULL
       AND o.published_at <= checked_at - infor_comm.setting_response_timeout();

    SELECT pg_catalog.count(*) INTO orphans_older_than_a_day
      FROM infor_comm.inbox i
     WHERE i.outcome = 'orphan' AND i.task_row_id IS NULL
       AND i.received_at < checked_at - interval '1 day';

    -- Rejected messages by reason, the values quoted in a reason left out ("…").
    SELECT coalesce(pg_catalog.sum(x.n), 0),
           coalesce(pg_catalog.jsonb_object_agg(x.reason, x.n ORDER BY x.reason), '{}'::jsonb)
      INTO rejected_last_24h, rejected_last_24h_by_reason
      FROM (SELECT pg_catalog.regexp_replace(i.reason, '"[^"]*"', '"…"', 'g') AS reason, pg_catalog.count(*) AS n
              FROM infor_comm.inbox i
             WHERE i.received_at >= checked_at - interval '1 day' AND i.outcome = 'rejected'
             GROUP BY 1) x;

    -- The latest run; a run still marked running whose backend is gone was interrupted.
    SELECT r.started_at,
           CASE WHEN r.status = 'running'
                 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = r.backend_pid)
                THEN 'interrupted' ELSE r.status END,
           r.error
      INTO last_run_started_at, last_run_status, last_run_error
      FROM infor_comm.daily_runs r
     ORDER BY r.started_at DESC
     LIMIT 1;

    SELECT r.finished_at, r.sent, r.skipped
      INTO last_success_finished_at, last_success_sent, last_success_skipped
      FROM infor_comm.daily_runs r
     WHERE r.status = 'succeeded'
     ORDER BY r.started_at DESC
     LIMIT 1;

    -- pg_cron may be absent: then its columns are NULL (pg_cron_installed false).
    pg_cron_installed := pg_catalog.to_regclass('cron.job') IS NOT NULL;
    IF pg_cron_installed THEN
        EXECUTE 'SELECT pg_catalog.min(jobid), pg_catalog.bool_or(active) FROM cron.job
                  WHERE jobname = ''infor_comm_daily'' AND database = pg_catalog.current_database()'
           INTO job_id, cron_job_active;
        cron_job_exists := job_id IS NOT NULL;
        IF cron_job_exists AND pg_catalog.to_regclass('cron.job_run_details') IS NOT NULL THEN
            EXECUTE 'SELECT d.start_time, d.status, d.return_message FROM cron.job_run_details d
                      WHERE d.jobid = $1 ORDER BY d.runid DESC LIMIT 1'
               INTO cron_last_start, cron_last_status, cron_last_message
              USING job_id;
        END IF;
    END IF;

    problems := ARRAY[]::text[];
    IF oldest_unpublished_age > interval '1 hour' THEN
        problems := problems || pg_catalog.format('%s request(s) unpublished, the oldest for %s', unpublished,
                                                  pg_catalog.date_trunc('second', oldest_unpublished_age));
    END IF;
    IF unanswered_past_timeout > 0 THEN
        problems := problems || pg_catalog.format('%s request(s) published and unanswered for longer than infor_comm.response_timeout',
                                                  unanswered_past_timeout);
    END IF;
    IF orphans_older_than_a_day > 0 THEN
        problems := problems || pg_catalog.format('%s orphan push(es) waiting for their reply for more than a day',
                                                  orphans_older_than_a_day);
    END IF;
    IF rejected_last_24h > 0 THEN
        problems := problems || pg_catalog.format('%s inbound message(s) rejected in the last 24 hours', rejected_last_24h);
    END IF;
    IF last_run_status IN ('failed', 'interrupted') THEN
        problems := problems || pg_catalog.format('the last daily run (started %s) %s: %s', last_run_started_at,
                                                  last_run_status, coalesce(last_run_error, 'its backend is gone'));
    END IF;
    IF last_success_finished_at IS NULL OR last_success_finished_at < checked_at - interval '25 hours' THEN
        problems := problems || 'no successful daily run in the last 25 hours'::text;
    END IF;
    IF pg_cron_installed AND NOT cron_job_exists THEN
        problems := problems || 'pg_cron has no job infor_comm_daily in this database (infor_comm.schedule_daily())'::text;
    END IF;
    IF cron_last_status = 'failed' THEN
        problems := problems || pg_catalog.format('the last pg_cron run of infor_comm_daily failed: %s', cron_last_message);
    END IF;
    ok := pg_catalog.cardinality(problems) = 0;
    RETURN NEXT;
END
$body$;
COMMENT ON FUNCTION infor_comm.health_report() IS
    'The state of the integration in one row (what an alert reads): backlog, unanswered requests, orphans, rejected messages, the daily runs, the pg_cron job; ok and the problems found.';

-- The same, as a view.
CREATE VIEW infor_comm.health AS
SELECT * FROM infor_comm.health_report();
COMMENT ON VIEW infor_comm.health IS
    'The state of the integration in one row: ok, problems, and the numbers behind them (infor_comm.health_report()).';

-- The effectiveness report: what became of the clients the job asked about, by the outcome of
-- the request and by days since it. Its query reads the host tables of infor_comm.host_schema.
CREATE FUNCTION infor_comm.effectiveness(asked_from date DEFAULT NULL, asked_to date DEFAULT NULL)
RETURNS TABLE (
    asked               text,
    reaction            text,
    days_since_request  text,
    clients             bigint,
    migrated            bigint,
    left_wizard         bigint,
    moved_in_wizard     bigint,
    still_thinking      bigint,
    migrated_percent    numeric
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET work_mem = '64MB'
AS $body$
BEGIN
    RETURN QUERY EXECUTE infor_comm.effectiveness_query() USING asked_from, asked_to;
END
$body$;
COMMENT ON FUNCTION infor_comm.effectiveness(date, date) IS
    'Clients asked about between asked_from and asked_to (request days, inclusive; NULL: unbounded): called or not, by reaction and days since the request, and what became of their migration (host tables).';

-- Privileges of the new objects, as roles.sql grants them; the daily job no longer renders its
-- requests in SQL, so its role loses what only that needed.
REVOKE ALL ON infor_comm.daily_runs, infor_comm.daily_funnel, infor_comm.health FROM PUBLIC;
REVOKE ALL ON SEQUENCE infor_comm.daily_runs_run_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION
    infor_comm.daily_run_can_commit(),
    infor_comm.daily_run_start(),
    infor_comm.daily_run_enqueue(bigint),
    infor_comm.daily_run_failed(bigint, text, text),
    infor_comm.daily_run_raise(text, text, text, text),
    infor_comm.inbox_message_ids(text),
    infor_comm.effectiveness(date, date),
    infor_comm.effectiveness_query(),
    infor_comm.client_history(text),
    infor_comm.health_report()
FROM PUBLIC;
REVOKE ALL ON PROCEDURE infor_comm.run_daily() FROM PUBLIC;
GRANT SELECT ON infor_comm.daily_funnel, infor_comm.daily_runs, infor_comm.health TO infor_comm_reader;
GRANT EXECUTE ON FUNCTION
    infor_comm.effectiveness(date, date),
    infor_comm.effectiveness_query(),
    infor_comm.client_history(text),
    infor_comm.health_report()
TO infor_comm_reader;
GRANT EXECUTE ON ROUTINE
    infor_comm.run_daily(),
    infor_comm.daily_run_can_commit(),
    infor_comm.daily_run_start(),
    infor_comm.daily_run_enqueue(bigint),
    infor_comm.daily_run_failed(bigint, text, text),
    infor_comm.daily_run_raise(text, text, text, text)
TO infor_comm_job;
GRANT SELECT, INSERT, UPDATE ON infor_comm.daily_runs TO infor_comm_job;
REVOKE EXECUTE ON FUNCTION
    infor_comm.thinking_clients_at(timestamptz),
    infor_comm.thinking_clients_query(),
    infor_comm.request_skip_reason(text, boolean, text, text, text, boolean),
    infor_comm.render_request(uuid, text, text, text, text[], text[], text, text, text, text)
FROM infor_comm_job;

-- ---------------------------------------------------------------------------------------------
-- The relays' queue: infor_comm.outbox_pending holds the unpublished requests by outbox_id, and
-- the partial index outbox_unpublished_idx is dropped. published_at was in that index's
-- predicate, so marking a request published wrote a new row version with an entry in each of
-- the outbox's four other indexes: most of the database's work for the relay. Now no index
-- covers published_at, and fillfactor 50 leaves room on the page, so the mark is a HOT update;
-- mark_published deletes the queue row. The claims read the queue in outbox_id order (oldest
-- first; before, in available_at order).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE infor_comm.outbox_pending (
    outbox_id bigint PRIMARY KEY
);
COMMENT ON TABLE infor_comm.outbox_pending IS
    'The outbox rows not yet published, by outbox_id: the relays'' queue. Written by the enqueue, emptied by mark_published.';
INSERT INTO infor_comm.outbox_pending (outbox_id)
SELECT outbox_id FROM infor_comm.outbox WHERE published_at IS NULL AND closed_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox_pending', '');
DROP INDEX infor_comm.outbox_unpublished_idx;
-- New pages only: the rows already there get their room as VACUUM frees it.
ALTER TABLE infor_comm.outbox SET (fillfactor = 50);
-- The daily job writes the queue with the outbox rows and deletes what is no longer pending.
GRANT SELECT, INSERT, DELETE ON infor_comm.outbox_pending TO infor_comm_job;

-- Hands up to batch_size unpublished requests to a relay and leases them for lease (FOR UPDATE SKIP LOCKED).
CREATE OR REPLACE FUNCTION infor_comm.claim_outbox(batch_size integer, lease interval)
RETURNS TABLE (outbox_id bigint, request_id text, payload text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
BEGIN
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 10000 THEN
        RAISE EXCEPTION 'infor_comm: invalid batch_size %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'batch_size must be from 1 to 10000.',
                  HINT = 'Pass the number of requests the relay publishes at once, e.g. 100.';
    END IF;
    IF lease IS NULL OR lease <= interval '0' THEN
        RAISE EXCEPTION 'infor_comm: invalid lease %', coalesce(lease::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'lease must be a positive interval.',
                  HINT = 'Pass how long the relay may take to publish a batch, e.g. ''60 seconds''.';
    END IF;
    -- What lock_outbox hands out, each row leased: not available again before now() + lease.
    RETURN QUERY
    WITH claimed AS (
        SELECT l.outbox_id FROM infor_comm.lock_outbox(batch_size) l
    )
    UPDATE infor_comm.outbox o
       SET available_at = now() + lease
      FROM claimed
     WHERE o.outbox_id = claimed.outbox_id
    RETURNING o.outbox_id, o.request_id::text, o.payload::text;
END
$body$;

-- The relay's view of the backlog: unpublished requests and the age of the oldest, in seconds.
CREATE OR REPLACE FUNCTION infor_comm.outbox_backlog(OUT pending bigint, OUT oldest_age_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT count(*),
           coalesce(extract(epoch FROM now() - min(o.created_at))::double precision, 0)
      FROM infor_comm.outbox_pending p
      JOIN infor_comm.outbox o ON o.outbox_id = p.outbox_id
     WHERE o.published_at IS NULL AND o.closed_at IS NULL;
$body$;

-- ---------------------------------------------------------------------------------------------
-- lock_outbox: the relay claims a batch with row locks held by its transaction, in which it
-- also marks the rows, instead of writing a lease into each row and then writing the mark
-- (issue 11). mark_published records the time of its own statement, not of its transaction.
-- ---------------------------------------------------------------------------------------------
-- Locks up to batch_size unpublished requests (past after_id, if given) for the caller's transaction and hands them over, writing nothing.
CREATE FUNCTION infor_comm.lock_outbox(batch_size integer, after_id bigint DEFAULT NULL)
RETURNS TABLE (outbox_id bigint, request_id text, payload text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_sort = off
AS $body$
BEGIN
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 10000 THEN
        RAISE EXCEPTION 'infor_comm: invalid batch_size %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'batch_size must be from 1 to 10000.',
                  HINT = 'Pass the number of requests the relay publishes at once, e.g. 1000.';
    END IF;
    -- The row locks are the claim: they last until the caller's transaction ends, in which it
    -- marks the rows published or failed; if it never gets there (a crash, a lost connection),
    -- the rows are claimable again at once. Rows leased by claim_outbox are not yet available.
    -- The pending requests are read in outbox_id order, oldest first, and each is looked up
    -- and locked on its own (a subquery with FOR UPDATE is never merged into the outer query),
    -- so the claim reads batch_size rows and the ones it skips (held by another relay, waiting
    -- for a back-off, closed), whatever the statistics say; enable_sort = off keeps the
    -- planner from sorting the whole queue instead of reading its primary key in order.
    -- A relay that holds batches already passes the largest outbox_id it holds as after_id, so
    -- that the claim starts past its own locked rows instead of skipping each of them again
    -- (about 1.5 µs a row); NULL starts from the oldest.
    RETURN QUERY
    SELECT c.outbox_id, c.request_id, c.payload
      FROM infor_comm.outbox_pending p
     CROSS JOIN LATERAL (
           SELECT o.outbox_id, o.request_id::text AS request_id, o.payload::text AS payload
             FROM infor_comm.outbox o
            WHERE o.outbox_id = p.outbox_id
              AND o.published_at IS NULL
              AND o.closed_at IS NULL
              AND o.available_at <= now()
              FOR UPDATE SKIP LOCKED) c
     WHERE p.outbox_id > coalesce(after_id, 0)
     ORDER BY p.outbox_id
     LIMIT batch_size;
END
$body$;

REVOKE ALL ON FUNCTION infor_comm.lock_outbox(integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.lock_outbox(integer, bigint) TO infor_comm_relay;

-- Records that the broker confirmed these requests (now, even late in a transaction); returns how many were newly marked.
CREATE OR REPLACE FUNCTION infor_comm.mark_published(outbox_ids bigint[])
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    -- Out of the relays' queue, and marked: a HOT update, as no index covers published_at.
    WITH unqueued AS (
        DELETE FROM infor_comm.outbox_pending
         WHERE outbox_id = ANY (outbox_ids)
    ), marked AS (
        UPDATE infor_comm.outbox
           SET published_at = statement_timestamp(), last_error = NULL
         WHERE outbox_id = ANY (outbox_ids)
           AND published_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::integer FROM marked;
$body$;

-- ---------------------------------------------------------------------------------------------
-- apply_inbound at most 3× a bare update (issue 11). PostgreSQL reads and compiles every CHECK
-- constraint of a table again for each statement that writes it: the inbox's six and the
-- outbox's two become one C function each, with the same rules. The two orphan indexes become
-- one (push_request_id, push_task_id) that serves both probes, and inbox_received_idx, which no
-- statement or report reads, is dropped: every message written paid for each of them.
-- ---------------------------------------------------------------------------------------------
-- Whether an inbox row keeps the inbox's rules (its CHECK constraint inbox_row_check).
CREATE FUNCTION infor_comm.inbox_row_is_valid(
    kind text, outcome text, reason text, body text, body_bytes bytea, message_id text,
    message_id_bytes bytea, body_size bigint, body_sha256 bytea)
RETURNS boolean
LANGUAGE c IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'inbox_row_is_valid_c';
COMMENT ON FUNCTION infor_comm.inbox_row_is_valid(text, text, text, text, bytea, text, bytea, bigint, bytea) IS
    'The inbox''s rules: kind and outcome from their lists, one body and one message id, a reason when rejected, an oversized body''s size and SHA-256 only on a rejected message without its text.';
REVOKE ALL ON FUNCTION infor_comm.inbox_row_is_valid(text, text, text, text, bytea, text, bytea, bigint, bytea) FROM PUBLIC;

ALTER TABLE infor_comm.inbox
    DROP CONSTRAINT inbox_kind_check,
    DROP CONSTRAINT inbox_outcome_check,
    DROP CONSTRAINT inbox_one_body,
    DROP CONSTRAINT inbox_rejected_has_reason,
    DROP CONSTRAINT inbox_one_message_id,
    DROP CONSTRAINT inbox_oversized_check,
    ADD CONSTRAINT inbox_row_check
        CHECK (infor_comm.inbox_row_is_valid(kind, outcome, reason, body, body_bytes, message_id,
                                             message_id_bytes, body_size, body_sha256));

-- Whether an outbox row's closing keeps the outbox's rules (its CHECK constraint outbox_close_check).
CREATE FUNCTION infor_comm.outbox_close_is_valid(closed_at timestamptz, close_reason text)
RETURNS boolean
LANGUAGE c IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'outbox_close_is_valid_c';
COMMENT ON FUNCTION infor_comm.outbox_close_is_valid(timestamptz, text) IS
    'The outbox''s rules: a closed request has a close_reason (answered, timed_out or withdrawn), an open one none.';
REVOKE ALL ON FUNCTION infor_comm.outbox_close_is_valid(timestamptz, text) FROM PUBLIC;
-- The daily job writes the outbox, so its constraint calls the function with the job's rights.
GRANT EXECUTE ON FUNCTION infor_comm.outbox_close_is_valid(timestamptz, text) TO infor_comm_job;

ALTER TABLE infor_comm.outbox
    DROP CONSTRAINT outbox_close_reason_check,
    DROP CONSTRAINT outbox_closed_has_reason,
    ADD CONSTRAINT outbox_close_check CHECK (infor_comm.outbox_close_is_valid(closed_at, close_reason));

DROP INDEX infor_comm.inbox_orphan_task_idx;
DROP INDEX infor_comm.inbox_orphan_request_idx;
DROP INDEX infor_comm.inbox_received_idx;
CREATE INDEX inbox_orphan_idx ON infor_comm.inbox (push_request_id, push_task_id)
    WHERE outcome = 'orphan' AND task_row_id IS NULL;

-- ---------------------------------------------------------------------------------------------
-- inbox_message_ids in PL/pgSQL, the same query: a SQL function with SET search_path is not
-- inlined and was parsed and planned again by every statement that indexed a rejected or orphan
-- message in inbox_unmatched_ids_idx (2,000 such inserts: 1.06 s, now 0.58 s; 0.05 s without
-- the index). Its results are the same, so the index stays as it is.
-- ---------------------------------------------------------------------------------------------
-- The ids an inbound message carries (replyUID, requestID, taskID), read from its text without
-- parsing it (a rejected message may not be JSON at all); client_history finds a client's
-- messages that matched no task row by them. PL/pgSQL keeps the query's plan for the session;
-- a SQL function with SET search_path is planned again by every statement that indexes a row.
CREATE OR REPLACE FUNCTION infor_comm.inbox_message_ids(body text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $body$
BEGIN
    RETURN (SELECT pg_catalog.array_agg(DISTINCT m[1])
              FROM pg_catalog.regexp_matches(body, '"(?:replyUID|requestID|taskID)"\s*:\s*"?([^"\\,}\s]{1,200})', 'g') AS m);
END
$body$;

-- ---------------------------------------------------------------------------------------------
-- The rule "at most one open request per client" moves from the partial unique index
-- outbox_one_open_request_per_client to the primary key of infor_comm.outbox_open. closed_at
-- was in that index's predicate, so closing a request (the apply of every reply) wrote a new
-- row version of the outbox with an entry in each of its three other indexes: a third of the
-- apply's instructions. health_report (above) counts the open requests through the new table.
-- ---------------------------------------------------------------------------------------------
-- At most one open request per client: every open request has its row here, and this table's
-- primary key is the rule. It lives apart from the outbox so that no index of the outbox covers
-- closed_at, and closing a request (the apply of every reply) is a HOT update. The apply leaves
-- the row of the request it closes; the next enqueue removes the rows of closed requests before
-- it opens new ones. Read it joined to the outbox, with closed_at IS NULL.
CREATE TABLE infor_comm.outbox_open (
    organization_id varchar(200) PRIMARY KEY,
    outbox_id       bigint NOT NULL
);
COMMENT ON TABLE infor_comm.outbox_open IS
    'One row per client whose latest request may be open: every open request has its row (at most one per client). The enqueue removes the rows of closed requests.';
INSERT INTO infor_comm.outbox_open (organization_id, outbox_id)
SELECT organization_id, outbox_id FROM infor_comm.outbox WHERE closed_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox_open', '');
DROP INDEX infor_comm.outbox_one_open_request_per_client;
-- The daily job opens requests here and removes the rows of closed ones.
GRANT SELECT, INSERT, DELETE ON infor_comm.outbox_open TO infor_comm_job;
-- thinking_clients, evaluated with the reader's own rights, reads the open requests here.
GRANT SELECT ON infor_comm.outbox_open TO infor_comm_reader;
