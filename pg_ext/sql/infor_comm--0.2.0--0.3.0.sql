-- infor_comm 0.2.0 → 0.3.0: everything that changed since the release of 0.2.0.
-- Each change here is also in the source (pg_ext/sql/*.sql or the Rust code) that makes a fresh
-- install; scripts/test-upgrade checks that both end with the same schema.
\echo Use "ALTER EXTENSION infor_comm UPDATE TO '0.3.0'" to load this file. \quit

-- A login uses infor_comm only in the databases it was granted CONNECT on (login_scope.rs).
CREATE FUNCTION infor_comm."require_login_for_database"() RETURNS bool
STRICT STABLE PARALLEL RESTRICTED
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'require_login_for_database_sql_wrapper';
COMMENT ON FUNCTION infor_comm.require_login_for_database() IS
    'True when the session''s login may use infor_comm in this database (a superuser, the owner, or a role granted CONNECT on it other than through PUBLIC); an error naming the GRANT otherwise.';

-- health counts rejected messages by the kind of their reason (inbox_reason_code).
CREATE FUNCTION infor_comm."inbox_reason_code"(reason text) RETURNS text
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'inbox_reason_code_wrapper';
COMMENT ON FUNCTION infor_comm.inbox_reason_code(text) IS
    'The kind of a rejection reason of the inbox (malformed_json, unknown_request, bad_dt, ...), without the values in it: what health counts rejected messages by.';

-- health expects a successful run since the job was last due by its pg_cron schedule.
CREATE FUNCTION infor_comm."cron_previous_run"(schedule text, at timestamp) RETURNS timestamp
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'cron_previous_run_wrapper';
COMMENT ON FUNCTION infor_comm.cron_previous_run(text, timestamp) IS
    'When a pg_cron schedule (five fields, or @daily and the like) was last due at or before a wall time; NULL when the schedule is not understood. What health expects a successful daily run since.';

-- A copy of a push is known by one index probe: the digest of its JSON, and the latest dt of the
-- pushes applied to its row (each copy read every earlier push of its row: quadratic).
CREATE FUNCTION infor_comm."inbox_push_digest"(body text) RETURNS bytea
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'inbox_push_digest_wrapper';
COMMENT ON FUNCTION infor_comm.inbox_push_digest(text) IS
    'The SHA-256 of an inbound body''s JSON written canonically (NULL when it is not JSON without a repeated key): two pushes have one digest exactly when they are the same JSON.';
-- The copies of a push: a push applied or kept as an orphan, by its task row and the digest of
-- its JSON, so that a copy is known by one probe however many copies came before it.
CREATE INDEX inbox_push_copies_idx ON infor_comm.inbox (task_row_id, infor_comm.inbox_push_digest(body))
    WHERE kind = 'push' AND outcome IN ('push', 'orphan');
-- The latest dt of the pushes applied to a task row: a push with an earlier one changes nothing.
CREATE INDEX inbox_applied_pushes_idx ON infor_comm.inbox (task_row_id, message_dt)
    WHERE kind = 'push' AND applied_at IS NOT NULL;



-- The daily job never writes with its caller's rights: its writing functions run as the role
-- infor_comm_writer (NOLOGIN, no members), and the job's role may only run it.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'infor_comm_writer') THEN
        BEGIN
            CREATE ROLE infor_comm_writer NOLOGIN BYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$roles$;

-- Raises unless infor_comm_writer is sealed: it cannot log in, has no attribute beyond that of
-- an ordinary role, no role is a member of it and it is a member of no role. It owns the daily
-- job's SECURITY DEFINER functions: a role that could act as it could write the requests.
-- Checked by CREATE EXTENSION and the update; infor_comm.health reports it too.
CREATE FUNCTION infor_comm.writer_role_problem() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT CASE
        WHEN r.oid IS NULL THEN 'role infor_comm_writer does not exist'
        WHEN r.rolsuper OR r.rolcanlogin OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
        THEN 'role infor_comm_writer has attributes it must not have ('
             || concat_ws(', ', CASE WHEN r.rolsuper THEN 'SUPERUSER' END,
                          CASE WHEN r.rolcanlogin THEN 'LOGIN' END,
                          CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
                          CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
                          CASE WHEN r.rolreplication THEN 'REPLICATION' END) || ')'
        WHEN EXISTS (SELECT FROM pg_auth_members m WHERE m.roleid = r.oid)
        THEN 'role infor_comm_writer has members ('
             || (SELECT string_agg(quote_ident(u.rolname), ', ' ORDER BY u.rolname)
                   FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
                  WHERE m.roleid = r.oid) || ')'
        WHEN EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.oid)
        THEN 'role infor_comm_writer is a member of other roles ('
             || (SELECT string_agg(quote_ident(g.rolname), ', ' ORDER BY g.rolname)
                   FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                  WHERE m.member = r.oid) || ')'
    END
      FROM (SELECT 1) one
      LEFT JOIN pg_roles r ON r.rolname = 'infor_comm_writer'
$body$;
COMMENT ON FUNCTION infor_comm.writer_role_problem() IS
    'What is wrong with the role infor_comm_writer (it can log in, has members, ...), or NULL when it is sealed as the daily job needs.';

CREATE FUNCTION infor_comm.require_writer_role_is_sealed() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    problem text := infor_comm.writer_role_problem();
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'infor_comm: %', problem
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The daily job writes the requests as infor_comm_writer; a role that can log in as it, or act as it, could forge them.',
                  HINT = 'A role of that name existed before infor_comm: make it NOLOGIN and NOSUPERUSER, revoke its memberships (REVOKE infor_comm_writer FROM ...), or drop it, then try again.';
    END IF;
END
$body$;
COMMENT ON FUNCTION infor_comm.require_writer_role_is_sealed() IS
    'Raises unless the role infor_comm_writer is sealed (infor_comm.writer_role_problem()).';

-- Grants infor_comm_writer what the daily job reads: USAGE on infor_comm.host_schema and SELECT
-- on the four host tables that exist there (ordinary or partitioned tables). CREATE EXTENSION
-- and the update call it; a superuser calls it again once the host tables exist. Returns the
-- tables granted.
CREATE FUNCTION infor_comm.grant_host_tables_to_writer() RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    host_schema text;
    granted     text[] := '{}';
    host_table  regclass;
BEGIN
    BEGIN
        host_schema := infor_comm.setting_host_schema();
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'infor_comm: infor_comm_writer was granted no host table: %', SQLERRM;
        RETURN granted;
    END;
    FOR host_table IN
        SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = host_schema AND c.relkind IN ('r', 'p')
           AND c.relname IN ('product_migration_clients', 'wizard_status_change_log',
                             'clients_back_system_ids', 'clientsnapshot')
         ORDER BY c.relname
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO infor_comm_writer', host_table);
        granted := granted || host_table::text;
    END LOOP;
    IF cardinality(granted) > 0 THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO infor_comm_writer', host_schema);
    END IF;
    RETURN granted;
END
$body$;
COMMENT ON FUNCTION infor_comm.grant_host_tables_to_writer() IS
    'Grants infor_comm_writer USAGE on infor_comm.host_schema and SELECT on the host tables there; returns the tables granted. Run by CREATE EXTENSION and the update; run it again once the host tables exist.';

SELECT infor_comm.require_writer_role_is_sealed();
DO $bypass$
BEGIN
    -- Only when it lacks it: databases installing at the same moment would otherwise update the
    -- role's row together ("tuple concurrently updated").
    IF NOT (SELECT rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = 'infor_comm_writer') THEN
        ALTER ROLE infor_comm_writer BYPASSRLS;
    END IF;
END
$bypass$;

-- run_daily: types schema-qualified; READ COMMITTED for the enqueue when it commits.
CREATE OR REPLACE PROCEDURE infor_comm.run_daily()
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

CREATE OR REPLACE FUNCTION infor_comm.daily_run_start() RETURNS bigint
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
CREATE OR REPLACE FUNCTION infor_comm.daily_run_failed(run_id bigint, sqlstate text, message text) RETURNS void
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
COMMENT ON COLUMN infor_comm.daily_runs.run_by IS 'The login that ran the job (session_user): the role of the pg_cron job when pg_cron ran it.';
ALTER FUNCTION infor_comm.daily_run_enqueue(bigint) SECURITY DEFINER;
ALTER FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) SECURITY DEFINER;
ALTER FUNCTION infor_comm.daily_run_start() OWNER TO infor_comm_writer;
ALTER FUNCTION infor_comm.daily_run_failed(bigint, text, text) OWNER TO infor_comm_writer;
ALTER FUNCTION infor_comm.daily_run_enqueue(bigint) OWNER TO infor_comm_writer;
ALTER FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) OWNER TO infor_comm_writer;
ALTER FUNCTION infor_comm.daily_run_enqueue(bigint) SET row_security = off;
ALTER FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) SET row_security = off;
-- The selection is index probes: JIT compiling it costs time and saves nothing.
ALTER FUNCTION infor_comm.daily_run_enqueue(bigint) SET jit = off;
ALTER FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) SET jit = off;
ALTER FUNCTION infor_comm.thinking_clients_at(timestamptz) SET jit = off;

-- The relay's functions check the login's database first; mark_published loses to a withdrawal.
CREATE OR REPLACE FUNCTION infor_comm.claim_outbox(batch_size integer, lease interval)
RETURNS TABLE (outbox_id bigint, request_id text, payload text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
BEGIN
    PERFORM infor_comm.require_login_for_database();
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
CREATE OR REPLACE FUNCTION infor_comm.lock_outbox(batch_size integer, after_id bigint DEFAULT NULL)
RETURNS TABLE (outbox_id bigint, request_id text, payload text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_sort = off
AS $body$
BEGIN
    PERFORM infor_comm.require_login_for_database();
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
CREATE OR REPLACE FUNCTION infor_comm.mark_published(outbox_ids bigint[])
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT infor_comm.require_login_for_database();
    -- Out of the relays' queue, and marked: a HOT update, as no index covers published_at.
    -- A request closed meanwhile stays as it was closed: with claim_outbox's leases, a late '0'
    -- may withdraw a request between its claim and its mark, and the mark loses (a request is
    -- never both withdrawn and published).
    WITH unqueued AS (
        DELETE FROM infor_comm.outbox_pending
         WHERE outbox_id = ANY (outbox_ids)
    ), marked AS (
        UPDATE infor_comm.outbox
           SET published_at = statement_timestamp(), last_error = NULL
         WHERE outbox_id = ANY (outbox_ids)
           AND published_at IS NULL
           AND closed_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::integer FROM marked;
$body$;
CREATE OR REPLACE FUNCTION infor_comm.mark_failed(outbox_id bigint, error text)
RETURNS timestamptz
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT infor_comm.require_login_for_database();
    UPDATE infor_comm.outbox o
       SET attempts = o.attempts + 1,
           last_error = error,
           available_at = now() + least(interval '5 seconds' * power(2, least(o.attempts, 16)),
                                        interval '10 minutes')
     WHERE o.outbox_id = mark_failed.outbox_id
       AND o.published_at IS NULL
    RETURNING o.available_at;
$body$;
CREATE OR REPLACE FUNCTION infor_comm.outbox_backlog(OUT pending bigint, OUT oldest_age_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT infor_comm.require_login_for_database();
    SELECT count(*),
           coalesce(extract(epoch FROM now() - min(o.created_at))::double precision, 0)
      FROM infor_comm.outbox_pending p
      JOIN infor_comm.outbox o ON o.outbox_id = p.outbox_id
     WHERE o.published_at IS NULL AND o.closed_at IS NULL;
$body$;

-- The reports: client_history and health check the login's database; health reports the pg_cron
-- job (inactive, another command, run as a superuser), infor_comm_writer not sealed, and host
-- tables without a unique key on their id.
-- What health says of the host tables' keys: product_migration_clients and clientsnapshot must
-- have a unique key on their id (organization_id, id), or a client listed twice (two statuses,
-- two snapshots) is read from one of its rows, which one is not defined.
CREATE FUNCTION infor_comm.host_table_key_problems() RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    host_schema text;
    problems    text[] := '{}';
    wanted      record;
BEGIN
    BEGIN
        host_schema := infor_comm.setting_host_schema();
    EXCEPTION WHEN OTHERS THEN
        RETURN problems;
    END;
    FOR wanted IN SELECT * FROM (VALUES ('product_migration_clients', 'organization_id'),
                                        ('clientsnapshot', 'id')) AS w (relname, attname) LOOP
        IF EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = host_schema AND c.relname = wanted.relname)
           AND NOT EXISTS (
               SELECT FROM pg_index i
                 JOIN pg_class c ON c.oid = i.indrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
                WHERE n.nspname = host_schema AND c.relname = wanted.relname
                  AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
                  AND i.indpred IS NULL AND i.indexprs IS NULL
                  AND a.attname = wanted.attname) THEN
            problems := problems || format('host table %I.%I has no unique key on %I: a client listed twice is read from one of its rows, which one is not defined',
                                           host_schema, wanted.relname, wanted.attname);
        END IF;
    END LOOP;
    RETURN problems;
END
$body$;
COMMENT ON FUNCTION infor_comm.host_table_key_problems() IS
    'The host tables whose documented key (product_migration_clients.organization_id, clientsnapshot.id) has no unique index, as health reports them.';

CREATE OR REPLACE FUNCTION infor_comm.client_history(organization_id text)
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
SELECT infor_comm.require_login_for_database();
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
           coalesce(pg_catalog.left(i.body, 2000),
                    '(blanked by the retention on ' || i.blanked_at::date || ': ' || i.body_size
                    || ' bytes, SHA-256 ' || pg_catalog.encode(i.body_sha256, 'hex') || ')',
                    '(not UTF-8 text: ' || pg_catalog.length(i.body_bytes) || ' bytes)')
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
-- health gains daily_run_missed (for the alerts): its function and view are made again.
DROP VIEW infor_comm.health;
DROP FUNCTION infor_comm.health_report();
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
    cron_last_message           text,
    daily_run_missed            boolean
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    job_id        bigint;
    job_user      text;
    job_command   text;
    job_superuser boolean;
    job_schedule  text;
    cron_zone     text;
    due           timestamptz;
    last_success_started_at timestamptz;
    writer_problem text;
    retention_job_active boolean;
BEGIN
    PERFORM infor_comm.require_login_for_database();
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

    -- Rejected messages by the kind of their reason (infor_comm.inbox_reason_code); each
    -- reason, with its values, stays in the inbox.
    SELECT coalesce(pg_catalog.sum(x.n), 0),
           coalesce(pg_catalog.jsonb_object_agg(x.reason, x.n ORDER BY x.reason), '{}'::jsonb)
      INTO rejected_last_24h, rejected_last_24h_by_reason
      FROM (SELECT infor_comm.inbox_reason_code(i.reason) AS reason, pg_catalog.count(*) AS n
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

    SELECT r.finished_at, r.sent, r.skipped, r.started_at
      INTO last_success_finished_at, last_success_sent, last_success_skipped, last_success_started_at
      FROM infor_comm.daily_runs r
     WHERE r.status = 'succeeded'
     ORDER BY r.started_at DESC
     LIMIT 1;

    -- pg_cron may be absent: then its columns are NULL (pg_cron_installed false).
    pg_cron_installed := pg_catalog.to_regclass('cron.job') IS NOT NULL;
    IF pg_cron_installed THEN
        EXECUTE 'SELECT j.jobid, j.active, j.username, j.command, r.rolsuper, j.schedule FROM cron.job j
                   LEFT JOIN pg_catalog.pg_roles r ON r.rolname = j.username
                  WHERE j.jobname = ''infor_comm_daily'' AND j.database = pg_catalog.current_database()
                  ORDER BY j.jobid LIMIT 1'
           INTO job_id, cron_job_active, job_user, job_command, job_superuser, job_schedule;
        cron_job_exists := job_id IS NOT NULL;
        EXECUTE 'SELECT pg_catalog.bool_or(j.active) FROM cron.job j
                  WHERE j.jobname = ''infor_comm_retention'' AND j.database = pg_catalog.current_database()'
           INTO retention_job_active;
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
    -- A successful run since the job was last due (and an hour for it to finish), by its pg_cron
    -- schedule in pg_cron's time zone; without a schedule understood, one in the last 25 hours.
    IF cron_job_exists AND cron_job_active THEN
        cron_zone := coalesce(nullif(pg_catalog.current_setting('cron.timezone', true), ''), 'GMT');
        due := infor_comm.cron_previous_run(job_schedule, checked_at AT TIME ZONE cron_zone) AT TIME ZONE cron_zone;
    END IF;
    IF due IS NOT NULL THEN
        IF checked_at > due + interval '1 hour'
           AND (last_success_started_at IS NULL OR last_success_started_at < due - interval '1 minute') THEN
            problems := problems || pg_catalog.format('no successful daily run since it was due at %s (pg_cron schedule %L)',
                                                      due, job_schedule);
            daily_run_missed := true;
        END IF;
    ELSIF last_success_finished_at IS NULL OR last_success_finished_at < checked_at - interval '25 hours' THEN
        problems := problems || 'no successful daily run in the last 25 hours'::text;
        daily_run_missed := true;
    END IF;
    daily_run_missed := coalesce(daily_run_missed, false);
    IF pg_cron_installed AND NOT cron_job_exists THEN
        problems := problems || 'pg_cron has no job infor_comm_daily in this database (infor_comm.schedule_daily())'::text;
    END IF;
    IF cron_job_exists AND NOT cron_job_active THEN
        problems := problems || 'the pg_cron job infor_comm_daily is inactive (cron.alter_job(job_id, active => true), or infor_comm.schedule_daily())'::text;
    END IF;
    IF cron_job_exists AND job_command IS DISTINCT FROM 'CALL infor_comm.run_daily()' THEN
        problems := problems || pg_catalog.format('the pg_cron job infor_comm_daily runs %L, not CALL infor_comm.run_daily() (infor_comm.schedule_daily() sets it back)',
                                                  job_command);
    END IF;
    -- The retention job goes with the daily one (schedule_daily makes both).
    IF cron_job_exists AND retention_job_active IS NULL THEN
        problems := problems || 'pg_cron has no job infor_comm_retention in this database: payloads and bodies past infor_comm.retention are kept (SELECT infor_comm.schedule_daily(<its schedule>) adds it)'::text;
    ELSIF cron_job_exists AND NOT retention_job_active THEN
        problems := problems || 'the pg_cron job infor_comm_retention is inactive: payloads and bodies past infor_comm.retention are kept (infor_comm.schedule_daily() activates it)'::text;
    END IF;
    IF job_superuser THEN
        problems := problems || pg_catalog.format('the pg_cron job infor_comm_daily runs as the superuser %I: the job should run as a role made for it (SELECT infor_comm.schedule_daily(<its schedule>) as a superuser moves it to infor_comm_daily; docs/security.md)',
                                                  job_user);
    END IF;
    problems := problems || infor_comm.host_table_key_problems();
    writer_problem := infor_comm.writer_role_problem();
    IF writer_problem IS NOT NULL THEN
        problems := problems || pg_catalog.format('%s: whoever can act as it can forge the requests (docs/security.md)', writer_problem);
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
CREATE VIEW infor_comm.health AS
SELECT * FROM infor_comm.health_report();
COMMENT ON VIEW infor_comm.health IS
    'The state of the integration in one row: ok, problems, and the numbers behind them (infor_comm.health_report()).';
REVOKE ALL ON FUNCTION infor_comm.health_report() FROM PUBLIC;
REVOKE ALL ON infor_comm.health FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.health_report() TO infor_comm_reader;
GRANT SELECT ON infor_comm.health TO infor_comm_reader;

-- The reader's views run with the reader's rights, so that its policies apply.
ALTER VIEW infor_comm.task_reactions SET (security_invoker = true);
ALTER VIEW infor_comm.unknown_reaction_pushes SET (security_invoker = true);
ALTER VIEW infor_comm.outbox_delivery SET (security_invoker = true);
ALTER VIEW infor_comm.daily_funnel SET (security_invoker = true);

-- infor_comm_job: the right to run the job, nothing else.
REVOKE ALL ON infor_comm.infor_communication_task, infor_comm.outbox, infor_comm.outbox_pending,
              infor_comm.outbox_open, infor_comm.daily_runs FROM infor_comm_job;
REVOKE ALL ON FUNCTION
    infor_comm.enqueue_thinking_clients(timestamptz),
    infor_comm.format_request_dt(timestamptz),
    infor_comm.setting_thinking_days(),
    infor_comm.setting_timezone(),
    infor_comm.setting_response_timeout(),
    infor_comm.setting_host_schema(),
    infor_comm.outbox_close_is_valid(timestamptz, text)
FROM infor_comm_job;
REVOKE ALL ON FUNCTION infor_comm.daily_run_start(), infor_comm.daily_run_failed(bigint, text, text),
                      infor_comm.daily_run_enqueue(bigint), infor_comm.enqueue_thinking_clients(timestamptz),
                      infor_comm.writer_role_problem(), infor_comm.require_writer_role_is_sealed(),
                      infor_comm.grant_host_tables_to_writer(), infor_comm.host_table_key_problems(),
                      infor_comm.require_login_for_database(), infor_comm.inbox_reason_code(text),
                      infor_comm.inbox_push_digest(text), infor_comm.cron_previous_run(text, timestamp)
FROM PUBLIC;
GRANT EXECUTE ON ROUTINE
    infor_comm.run_daily(),
    infor_comm.daily_run_can_commit(),
    infor_comm.daily_run_start(),
    infor_comm.daily_run_enqueue(bigint),
    infor_comm.daily_run_failed(bigint, text, text),
    infor_comm.daily_run_raise(text, text, text, text)
TO infor_comm_job;

-- infor_comm_writer: the least the enqueue needs (it renders the requests in Rust: not
-- render_request, request_skip_reason nor the selection's SQL functions). The bank grants it
-- USAGE on infor_comm.host_schema and SELECT on the four host tables; CREATE EXTENSION and the
-- update do it for the host tables that exist then (below).
-- (outbox_close_is_valid: the outbox's CHECK calls it with the rights of whoever writes the outbox.)
GRANT USAGE ON SCHEMA infor_comm TO infor_comm_writer;
GRANT EXECUTE ON ROUTINE
    infor_comm.format_request_dt(timestamptz),
    infor_comm.setting_thinking_days(),
    infor_comm.setting_timezone(),
    infor_comm.setting_response_timeout(),
    infor_comm.setting_host_schema(),
    infor_comm.outbox_close_is_valid(timestamptz, text)
TO infor_comm_writer;
GRANT SELECT, INSERT ON infor_comm.infor_communication_task TO infor_comm_writer;
GRANT SELECT, INSERT, UPDATE ON infor_comm.outbox TO infor_comm_writer;
GRANT SELECT, INSERT, DELETE ON infor_comm.outbox_pending TO infor_comm_writer;
GRANT SELECT, INSERT, DELETE ON infor_comm.outbox_open TO infor_comm_writer;
GRANT SELECT, INSERT, UPDATE ON infor_comm.daily_runs TO infor_comm_writer;
-- The job read the host tables as its own role until now; from now on it reads them as
-- infor_comm_writer, which gets the same reads.
SELECT infor_comm.grant_host_tables_to_writer();

-- A login uses infor_comm only in the databases it was granted CONNECT on (login_scope.rs): the
-- functions check it, and so do these policies on the tables the reader reads (the views that
-- read them run with the reader's rights). infor_comm_writer writes only through the job's
-- functions, which check it on entry, and bypasses row-level security (below).
GRANT EXECUTE ON FUNCTION infor_comm.require_login_for_database()
    TO infor_comm_reader, infor_comm_writer;
ALTER TABLE infor_comm.infor_communication_task ENABLE ROW LEVEL SECURITY;
ALTER TABLE infor_comm.outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE infor_comm.outbox_open ENABLE ROW LEVEL SECURITY;
ALTER TABLE infor_comm.daily_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_in_its_databases ON infor_comm.infor_communication_task FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));
CREATE POLICY reader_in_its_databases ON infor_comm.outbox FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));
CREATE POLICY reader_in_its_databases ON infor_comm.outbox_open FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));
CREATE POLICY reader_in_its_databases ON infor_comm.daily_runs FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));

-- schedule_daily: never a superuser; by default the role infor_comm_daily.
COMMENT ON FUNCTION infor_comm.schedule_daily(text, text) IS
    'Creates or replaces the one pg_cron job infor_comm_daily of this database, which calls infor_comm.run_daily() as run_as (default: infor_comm_daily, created when missing; never a superuser); returns its job id.';

-- The ids indexed for client_history: read in Rust from the first 16 KiB of a body, 64 at
-- most, so that one message made of ids cannot cost seconds (the regular expression took 6 s on
-- 1 MB of "taskID" pairs). The index is built again with it.
CREATE OR REPLACE FUNCTION infor_comm.inbox_message_ids(body text) RETURNS text[]
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'inbox_message_ids_wrapper';
COMMENT ON FUNCTION infor_comm.inbox_message_ids(text) IS
    'The replyUID, requestID and taskID values written in the first 16 KiB of an inbound message''s text, at most 64 (NULL when none), for client_history.';
REINDEX INDEX infor_comm.inbox_unmatched_ids_idx;

-- The host tables are checked to be plain tables before they are read.
COMMENT ON FUNCTION infor_comm.require_host_tables() IS
    'Checks that the four host tables exist in infor_comm.host_schema and are plain tables with their documented columns of built-in types; an error naming the first that is not.';

-- DROP EXTENSION infor_comm (or DROP SCHEMA infor_comm) removes the pg_cron job with it.
CREATE FUNCTION infor_comm.forget_daily_job_on_drop() RETURNS event_trigger
LANGUAGE c
SET search_path TO pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'forget_daily_job_on_drop_wrapper';
COMMENT ON FUNCTION infor_comm.forget_daily_job_on_drop() IS
    'The event trigger infor_comm_forget_daily_job: removes the pg_cron jobs infor_comm_daily and infor_comm_retention of this database when DROP EXTENSION infor_comm (or DROP SCHEMA infor_comm) runs.';
REVOKE ALL ON FUNCTION infor_comm.forget_daily_job_on_drop() FROM PUBLIC;
CREATE EVENT TRIGGER infor_comm_forget_daily_job ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION infor_comm.forget_daily_job_on_drop();

-- The relay applies a batch of inbound messages in one statement, without a savepoint each.
CREATE FUNCTION infor_comm.apply_deliveries(bodies bytea[], message_ids bytea[]) RETURNS text[]
STRICT VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'apply_deliveries_wrapper';
COMMENT ON FUNCTION infor_comm.apply_deliveries(bytea[], bytea[]) IS
    'apply_delivery for each body and message id, in order, in one statement; returns each outcome. Raises only on a fault of the database, never on content.';
REVOKE ALL ON FUNCTION infor_comm.apply_deliveries(bytea[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.apply_deliveries(bytea[], bytea[]) TO infor_comm_relay;

-- The operator's repair kit: the role infor_comm_operator, granted the kit and nothing else,
-- and its audit trail.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'infor_comm_operator') THEN
        BEGIN
            CREATE ROLE infor_comm_operator NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$roles$;
GRANT USAGE ON SCHEMA infor_comm TO infor_comm_operator;
-- The audit trail of the repair kit: one row per call, dry runs included.
CREATE TABLE infor_comm.operator_actions (
    action_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    acted_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    acted_by    text NOT NULL DEFAULT pg_catalog.session_user(),
    action      text NOT NULL,
    arguments   jsonb NOT NULL,
    dry_run     boolean NOT NULL DEFAULT false,
    affected    integer NOT NULL,
    details     jsonb NOT NULL
);
COMMENT ON TABLE infor_comm.operator_actions IS
    'The audit trail of the repair kit: who ran which function, when, with which arguments, and what it changed (details), one row per call.';
COMMENT ON COLUMN infor_comm.operator_actions.acted_by IS 'The login that called the function (session_user).';
COMMENT ON COLUMN infor_comm.operator_actions.affected IS 'How many requests or messages the call changed (would change, for a dry run).';
COMMENT ON COLUMN infor_comm.operator_actions.details IS 'What changed, item by item: each request or message with its state before.';
-- pg_dump dumps the rows of this table and the state of its identity sequence.
SELECT pg_catalog.pg_extension_config_dump('infor_comm.operator_actions', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.operator_actions_action_id_seq', '');

-- Clears the back-off of failed, unpublished, open requests (all of them, or those whose
-- requestID is in request_ids), so that the relay takes them at once; returns how many.
CREATE FUNCTION infor_comm.retry_now(request_ids text[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    changed jsonb;
    affected integer;
BEGIN
    PERFORM infor_comm.require_login_for_database();
    -- Row locks in outbox_id order: a relay holding a request (publishing it now) is waited
    -- for, and a request it published meanwhile is left alone.
    WITH candidates AS (
        SELECT o.outbox_id, o.available_at AS was_available_at
          FROM infor_comm.outbox o
         WHERE (request_ids IS NULL OR o.request_id::text = ANY (request_ids))
           AND o.published_at IS NULL
           AND o.closed_at IS NULL
           AND o.attempts > 0
           AND o.available_at > pg_catalog.statement_timestamp()
         ORDER BY o.outbox_id
           FOR UPDATE
    ), retried AS (
        UPDATE infor_comm.outbox o
           SET available_at = pg_catalog.statement_timestamp()
          FROM candidates c
         WHERE o.outbox_id = c.outbox_id
        RETURNING o.outbox_id, o.request_id, o.attempts, o.last_error, c.was_available_at
    )
    SELECT pg_catalog.count(*)::integer,
           coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'request_id', r.request_id, 'attempts', r.attempts, 'last_error', r.last_error,
               'was_available_at', r.was_available_at) ORDER BY r.outbox_id), '[]'::jsonb)
      INTO affected, changed
      FROM retried r;
    INSERT INTO infor_comm.operator_actions (action, arguments, affected, details)
    VALUES ('retry_now', pg_catalog.jsonb_build_object('request_ids', request_ids), affected, changed);
    IF affected > 0 THEN
        PERFORM pg_catalog.pg_notify('infor_comm_outbox', affected::text);
    END IF;
    RETURN affected;
END
$body$;
COMMENT ON FUNCTION infor_comm.retry_now(text[]) IS
    'Clears the back-off of failed, unpublished, open requests (all, or those of request_ids) so that the relay takes them at once; returns how many. Recorded in operator_actions.';

-- Closes an unpublished, open request (close_reason 'withdrawn'), so that the next daily run
-- selects its client again; reason says why, in operator_actions. Returns false when the
-- request was already closed; raises when it is unknown or already published.
CREATE FUNCTION infor_comm.withdraw(request_id text, reason text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    request record;
    withdrawn boolean := false;
BEGIN
    PERFORM infor_comm.require_login_for_database();
    IF reason IS NULL OR pg_catalog.btrim(reason) = '' THEN
        RAISE EXCEPTION 'infor_comm: withdraw needs a reason'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('request %s was not withdrawn.', coalesce(request_id, 'NULL')),
                  HINT = 'Say why, e.g. SELECT infor_comm.withdraw(''<requestID>'', ''the client asked not to be called'').';
    END IF;
    -- The row lock waits for a relay publishing the request now; what it did is seen after.
    SELECT o.outbox_id, o.organization_id, o.published_at, o.closed_at, o.close_reason,
           o.attempts, o.last_error
      INTO request
      FROM infor_comm.outbox o
     WHERE o.request_id::text = withdraw.request_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'infor_comm: no request %', coalesce(request_id, 'NULL')
            USING ERRCODE = 'no_data_found',
                  HINT = 'Pass the requestID of infor_comm.outbox (infor_comm.client_history(organization_id) lists a client''s requests).';
    END IF;
    IF request.published_at IS NOT NULL AND request.closed_at IS NULL THEN
        RAISE EXCEPTION 'infor_comm: request % is published, it cannot be withdrawn', request_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('The broker confirmed it at %s: it is at InforCRM, whose reply will close it.', request.published_at),
                  HINT = 'Wait for the reply, or for infor_comm.response_timeout, after which the next run closes it and asks again.';
    END IF;
    IF request.closed_at IS NULL THEN
        UPDATE infor_comm.outbox
           SET closed_at = pg_catalog.now(), close_reason = 'withdrawn'
         WHERE outbox_id = request.outbox_id;
        DELETE FROM infor_comm.outbox_pending WHERE outbox_id = request.outbox_id;
        withdrawn := true;
    END IF;
    INSERT INTO infor_comm.operator_actions (action, arguments, affected, details)
    VALUES ('withdraw',
            pg_catalog.jsonb_build_object('request_id', request_id, 'reason', reason),
            withdrawn::integer,
            pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                'request_id', request_id, 'organization_id', request.organization_id,
                'was_closed_at', request.closed_at, 'was_close_reason', request.close_reason,
                'attempts', request.attempts, 'last_error', request.last_error)));
    RETURN withdrawn;
END
$body$;
COMMENT ON FUNCTION infor_comm.withdraw(text, text) IS
    'Closes an unpublished open request (close_reason withdrawn) so that the next run selects its client again; reason is recorded in operator_actions. False when it was already closed; an error when unknown or published.';
REVOKE ALL ON TABLE infor_comm.operator_actions FROM PUBLIC;
REVOKE ALL ON SEQUENCE infor_comm.operator_actions_action_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION infor_comm.retry_now(text[]), infor_comm.withdraw(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.retry_now(text[]), infor_comm.withdraw(text, text) TO infor_comm_operator;

-- The retention of personal data: infor_comm.retention, apply_retention() and the columns that
-- keep a blanked payload's or body's SHA-256 and size. The inbox's rule (inbox_row_is_valid,
-- the same function) now also accepts a size and digest on a message whose body was blanked.
CREATE FUNCTION infor_comm.setting_retention() RETURNS interval
STRICT STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'setting_retention_wrapper';
COMMENT ON FUNCTION infor_comm.setting_retention() IS 'The infor_comm.retention in force, validated.';
REVOKE ALL ON FUNCTION infor_comm.setting_retention() FROM PUBLIC;
ALTER TABLE infor_comm.outbox
    ALTER COLUMN payload DROP NOT NULL,
    ADD COLUMN payload_sha256 bytea,
    ADD COLUMN payload_size integer,
    ADD COLUMN blanked_at timestamptz;
COMMENT ON COLUMN infor_comm.outbox.payload IS 'The request JSON, published byte for byte; NULL once the retention blanked it (see payload_sha256).';
COMMENT ON COLUMN infor_comm.outbox.payload_sha256 IS 'The SHA-256 of the payload the retention blanked (infor_comm.retention).';
COMMENT ON COLUMN infor_comm.outbox.payload_size IS 'The size in bytes of the payload the retention blanked.';
COMMENT ON COLUMN infor_comm.outbox.blanked_at IS 'When the retention blanked the payload (NULL while it is kept).';
ALTER TABLE infor_comm.inbox ADD COLUMN blanked_at timestamptz;
COMMENT ON COLUMN infor_comm.inbox.body_size IS 'For a body over the relay''s size limit (body_bytes keeps its first 64 KiB), or one the retention blanked: its size in bytes.';
COMMENT ON COLUMN infor_comm.inbox.body_sha256 IS 'For a body over the relay''s size limit, or one the retention blanked: the SHA-256 of the whole body.';
COMMENT ON COLUMN infor_comm.inbox.blanked_at IS 'When the retention (infor_comm.retention) blanked the body; NULL while it is kept.';
-- Blanks, as of as_of: the payload of every closed request (answered, timed out or withdrawn)
-- created more than infor_comm.retention before, and the body of every inbound message received
-- more than infor_comm.retention before, except an orphan push still waiting for its reply (it
-- is applied when the reply lands; health reports it after a day). Returns how many of each it
-- blanked now; running it again blanks nothing more.
CREATE FUNCTION infor_comm.apply_retention(as_of timestamptz DEFAULT now())
RETURNS TABLE (requests_blanked bigint, messages_blanked bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    cutoff timestamptz;
BEGIN
    PERFORM infor_comm.require_login_for_database();
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'infor_comm: apply_retention needs as_of'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave it out for now().';
    END IF;
    cutoff := as_of - infor_comm.setting_retention();
    WITH blanked AS (
        UPDATE infor_comm.outbox o
           SET payload_sha256 = pg_catalog.sha256(pg_catalog.convert_to(o.payload::text, 'UTF8')),
               payload_size = pg_catalog.octet_length(o.payload::text),
               payload = NULL,
               blanked_at = as_of
         WHERE o.created_at < cutoff
           AND o.closed_at IS NOT NULL
           AND o.payload IS NOT NULL
        RETURNING 1
    )
    SELECT pg_catalog.count(*) INTO requests_blanked FROM blanked;
    -- A body over the relay's limit keeps the size and digest of the whole body; its head goes.
    WITH blanked AS (
        UPDATE infor_comm.inbox i
           SET body_sha256 = coalesce(i.body_sha256,
                                      pg_catalog.sha256(coalesce(pg_catalog.convert_to(i.body, 'UTF8'), i.body_bytes))),
               body_size = coalesce(i.body_size,
                                    pg_catalog.octet_length(coalesce(pg_catalog.convert_to(i.body, 'UTF8'), i.body_bytes))),
               body = NULL,
               body_bytes = NULL,
               blanked_at = as_of
         WHERE i.received_at < cutoff
           AND (i.body IS NOT NULL OR i.body_bytes IS NOT NULL)
           AND NOT (i.outcome = 'orphan' AND i.applied_at IS NULL)
        RETURNING 1
    )
    SELECT pg_catalog.count(*) INTO messages_blanked FROM blanked;
    RETURN NEXT;
END
$body$;
COMMENT ON FUNCTION infor_comm.apply_retention(timestamptz) IS
    'Blanks the payloads of closed requests and the bodies of inbound messages older than infor_comm.retention (an orphan push waiting for its reply excepted), keeping their SHA-256, size, ids and outcomes; returns how many of each. The pg_cron job infor_comm_retention runs it.';
REVOKE ALL ON FUNCTION infor_comm.apply_retention(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.apply_retention(timestamptz) TO infor_comm_job;

-- The repair kit re-applies rejected inbound messages: each records when, by whom and as which
-- new row.
ALTER TABLE infor_comm.inbox
    ADD COLUMN reapplied_at timestamptz,
    ADD COLUMN reapplied_by text,
    ADD COLUMN reapplied_as bigint;
COMMENT ON COLUMN infor_comm.inbox.reapplied_at IS 'For a rejected message: when infor_comm.reapply_rejected re-applied it (by reapplied_by, as the row reapplied_as).';
COMMENT ON COLUMN infor_comm.inbox.reapplied_by IS 'The login that re-applied this rejected message.';
COMMENT ON COLUMN infor_comm.inbox.reapplied_as IS 'The inbox row of the re-applied message.';
-- Re-runs rejected inbound messages through today's rules (after an update fixed what rejected
-- them, say): those of inbox_ids, or of reason_code (infor_comm.inbox_reason_code), or received
-- from received_from (inclusive) to received_to (exclusive); every filter given must hold.
-- A dry run by default: each message is applied and the apply rolled back, so the outcome shown
-- is the one it would have now, and nothing changes. With dry_run => false, each message is
-- journaled and applied as if it arrived now (a new inbox row), and its rejected row records
-- that it was re-applied (reapplied_at, reapplied_by, reapplied_as: the new row): once, however
-- many times this runs. A body kept only in part (over the relay's limit) or blanked by the
-- retention cannot be re-applied and is listed as such.
CREATE FUNCTION infor_comm.reapply_rejected(
    inbox_ids     bigint[]    DEFAULT NULL,
    reason_code   text        DEFAULT NULL,
    received_from timestamptz DEFAULT NULL,
    received_to   timestamptz DEFAULT NULL,
    dry_run       boolean     DEFAULT true)
RETURNS TABLE (inbox_id bigint, was_reason text, outcome text, reason text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    message record;
    changed jsonb := '[]'::jsonb;
    affected integer := 0;
    new_inbox_id bigint;
BEGIN
    PERFORM infor_comm.require_login_for_database();
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'infor_comm: reapply_rejected needs dry_run true or false'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave it out for a dry run, or pass dry_run => false to re-apply.';
    END IF;
    -- In inbox_id order, each rejected row locked: a second operator re-applying the same
    -- messages waits, then finds them re-applied and skips them.
    FOR message IN
        SELECT i.inbox_id, i.reason, i.body, i.body_bytes, i.body_size, i.blanked_at,
               coalesce(i.message_id_bytes, pg_catalog.convert_to(i.message_id, 'UTF8')) AS message_id
          FROM infor_comm.inbox i
         WHERE i.outcome = 'rejected'
           AND i.reapplied_at IS NULL
           AND (reapply_rejected.inbox_ids IS NULL OR i.inbox_id = ANY (reapply_rejected.inbox_ids))
           AND (reapply_rejected.reason_code IS NULL
                OR infor_comm.inbox_reason_code(i.reason) = reapply_rejected.reason_code)
           AND (received_from IS NULL OR i.received_at >= received_from)
           AND (received_to IS NULL OR i.received_at < received_to)
         ORDER BY i.inbox_id
           FOR UPDATE OF i
    LOOP
        inbox_id := message.inbox_id;
        was_reason := message.reason;
        IF message.blanked_at IS NOT NULL OR message.body_size IS NOT NULL THEN
            outcome := NULL;
            reason := CASE WHEN message.blanked_at IS NOT NULL
                           THEN 'not re-applied: its body was blanked by the retention'
                           ELSE 'not re-applied: only the head of its body was kept (over the relay''s size limit)' END;
            changed := changed || pg_catalog.jsonb_build_object('inbox_id', inbox_id, 'was_reason', was_reason,
                                                                 'outcome', outcome, 'reason', reason);
            RETURN NEXT;
            CONTINUE;
        END IF;
        BEGIN
            outcome := infor_comm.apply_delivery(
                coalesce(message.body_bytes, pg_catalog.convert_to(message.body, 'UTF8')),
                message.message_id);
            new_inbox_id := pg_catalog.currval('infor_comm.inbox_inbox_id_seq');
            SELECT i.reason INTO reason FROM infor_comm.inbox i WHERE i.inbox_id = new_inbox_id;
            IF dry_run THEN
                -- Undo the apply: the outcome is the one the message would have now.
                RAISE EXCEPTION USING ERRCODE = 'ICDRY';
            END IF;
            UPDATE infor_comm.inbox i
               SET reapplied_at = pg_catalog.now(), reapplied_by = pg_catalog.session_user(),
                   reapplied_as = new_inbox_id
             WHERE i.inbox_id = message.inbox_id;
            affected := affected + 1;
        EXCEPTION WHEN SQLSTATE 'ICDRY' THEN
            new_inbox_id := NULL;
        END;
        changed := changed || pg_catalog.jsonb_build_object('inbox_id', inbox_id, 'was_reason', was_reason,
                                                             'outcome', outcome, 'reason', reason,
                                                             'new_inbox_id', new_inbox_id);
        RETURN NEXT;
    END LOOP;
    INSERT INTO infor_comm.operator_actions (action, arguments, dry_run, affected, details)
    VALUES ('reapply_rejected',
            pg_catalog.jsonb_build_object('inbox_ids', inbox_ids, 'reason_code', reason_code,
                                          'received_from', received_from, 'received_to', received_to),
            reapply_rejected.dry_run, affected, changed);
END
$body$;
COMMENT ON FUNCTION infor_comm.reapply_rejected(bigint[], text, timestamptz, timestamptz, boolean) IS
    'Re-runs rejected inbound messages (by inbox_ids, reason_code, received time) through today''s rules: a dry run by default (the outcome each would have now); with dry_run => false each is applied as if it arrived now, once, and its row records reapplied_at/by/as. Recorded in operator_actions.';
REVOKE ALL ON FUNCTION infor_comm.reapply_rejected(bigint[], text, timestamptz, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.reapply_rejected(bigint[], text, timestamptz, timestamptz, boolean) TO infor_comm_operator;

-- The hold-out group (infor_comm.holdout_percent, 0 by default): who is held out
-- (holdout_group), the table of held-out clients, the runs' held_out count, and the preview and
-- the funnel that show it (made again: their columns change).
CREATE FUNCTION infor_comm.holdout_group(organization_id text) RETURNS text
STRICT STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'holdout_group_wrapper';
COMMENT ON FUNCTION infor_comm.holdout_group(text) IS
    'The group of a client with the hold-out settings in force (infor_comm.holdout_percent, infor_comm.holdout_salt): held out or asked.';
REVOKE ALL ON FUNCTION infor_comm.holdout_group(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.holdout_group(text) TO infor_comm_reader;
CREATE TABLE infor_comm.holdout (
    organization_id   varchar(200) PRIMARY KEY,
    first_selected_on date NOT NULL,
    first_selected_at timestamptz NOT NULL,
    run_id            bigint,
    holdout_percent   integer NOT NULL,
    holdout_salt      text NOT NULL
);
COMMENT ON TABLE infor_comm.holdout IS
    'The thinking clients held out of the calls (infor_comm.holdout_percent), each once: the first day a run held it out, that run, and the percent and salt in force then.';
COMMENT ON COLUMN infor_comm.holdout.first_selected_on IS 'The day (in infor_comm.timezone) a run first held the client out.';
COMMENT ON COLUMN infor_comm.holdout.run_id IS 'The daily run (infor_comm.daily_runs) that held it out first; NULL when enqueue_thinking_clients was called by hand.';
-- pg_dump dumps the rows of this table.
SELECT pg_catalog.pg_extension_config_dump('infor_comm.holdout', '');
REVOKE ALL ON TABLE infor_comm.holdout FROM PUBLIC;
GRANT SELECT, INSERT ON infor_comm.holdout TO infor_comm_writer;
GRANT SELECT ON infor_comm.holdout TO infor_comm_reader;
ALTER TABLE infor_comm.holdout ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_in_its_databases ON infor_comm.holdout FOR SELECT TO infor_comm_reader
    USING ((SELECT infor_comm.require_login_for_database()));
ALTER TABLE infor_comm.daily_runs ADD COLUMN held_out integer;
COMMENT ON COLUMN infor_comm.daily_runs.held_out IS 'Thinking clients held out of the calls (infor_comm.holdout_percent); NULL before 0.3.0.';
DROP VIEW infor_comm.daily_funnel;
CREATE VIEW infor_comm.daily_funnel WITH (security_invoker = true) AS
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
       d.withdrawn,
       r.held_out
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
               pg_catalog.max(x.sent + x.skipped + coalesce(x.held_out, 0)) AS thinking_clients,
               pg_catalog.max(x.skipped) AS skipped,
               pg_catalog.max(x.held_out) AS held_out
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
    'One row per day of requests (time_create): thinking clients and skipped ones (from daily_runs), requests sent, confirmed by the broker, replies by status_code, tasks processed / not processed, pushes by first-level reaction, still waiting, timed out, withdrawn; clients held out of the calls (infor_comm.holdout_percent).';
REVOKE ALL ON infor_comm.daily_funnel FROM PUBLIC;
GRANT SELECT ON infor_comm.daily_funnel TO infor_comm_reader;
DROP VIEW infor_comm.thinking_clients;
DROP FUNCTION infor_comm.thinking_clients_at(timestamptz);
CREATE FUNCTION infor_comm.thinking_clients_at(as_of timestamptz)
RETURNS TABLE (
    organization_id varchar,
    mdm_id          varchar,
    wizard_status   varchar,
    status_since    timestamp,
    full_days       integer,
    skip_reason     text,
    holdout_group   text
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $body$
BEGIN
    RETURN QUERY EXECUTE infor_comm.thinking_clients_query() USING as_of;
END
$body$;

COMMENT ON FUNCTION infor_comm.thinking_clients_at(timestamptz) IS
    'The thinking clients at as_of: who the daily job asks InforCRM to call, with skip_reason when a request cannot be built.';

-- Who qualifies now.
CREATE VIEW infor_comm.thinking_clients AS
    SELECT organization_id, status_since, full_days, skip_reason, mdm_id, wizard_status, holdout_group
      FROM infor_comm.thinking_clients_at(now());

COMMENT ON VIEW infor_comm.thinking_clients IS
    'The thinking clients now: organization_id, status_since (latest wizard status change), full_days, skip_reason (NULL when the request can be sent), and holdout_group (held out or asked, for a client that can be sent: infor_comm.holdout_percent).';
REVOKE ALL ON FUNCTION infor_comm.thinking_clients_at(timestamptz) FROM PUBLIC;
REVOKE ALL ON infor_comm.thinking_clients FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.thinking_clients_at(timestamptz) TO infor_comm_reader;
GRANT SELECT ON infor_comm.thinking_clients TO infor_comm_reader;

-- The call centre's forecast (infor_comm.forecast), and its query.
CREATE FUNCTION infor_comm.forecast_query() RETURNS text
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'forecast_query_wrapper';
COMMENT ON FUNCTION infor_comm.forecast_query() IS
    'The query of forecast for the host schema in force ($1: the end of the horizon, $2: the days, $3: the moment it starts from), to read or EXPLAIN.';
-- day if nothing changes, and how many of them the job would ask, hold out, or could not send.
-- Its query reads the host tables of infor_comm.host_schema, with the reader's rights.
CREATE FUNCTION infor_comm.forecast(days integer DEFAULT 14, as_of timestamptz DEFAULT now())
RETURNS TABLE (
    day            date,
    clients        bigint,
    to_call        bigint,
    held_out       bigint,
    cannot_be_sent bigint
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $body$
BEGIN
    IF days IS NULL OR days < 1 OR days > 366 THEN
        RAISE EXCEPTION 'infor_comm: invalid days %', coalesce(days::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'forecast looks 1 to 366 days ahead.',
                  HINT = 'SELECT * FROM infor_comm.forecast(14) for the next two weeks.';
    END IF;
    -- The selection runs at the end of the last day (in infor_comm.timezone): whoever becomes
    -- thinking by then.
    RETURN QUERY EXECUTE infor_comm.forecast_query()
        USING ((((as_of AT TIME ZONE infor_comm.setting_timezone())::date + days + 1)::timestamp
                AT TIME ZONE infor_comm.setting_timezone()) - interval '1 microsecond'),
              days, as_of;
END
$body$;
COMMENT ON FUNCTION infor_comm.forecast(integer, timestamptz) IS
    'For each of the next days (in infor_comm.timezone): the clients who become thinking that day if nothing changes (thinking_days full days in their wizard status), and how many the job would ask (to_call), hold out, or could not send.';
REVOKE ALL ON FUNCTION infor_comm.forecast_query(), infor_comm.forecast(integer, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.forecast_query(), infor_comm.forecast(integer, timestamptz) TO infor_comm_reader;

-- What the calls changed: the asked against the held-out clients (infor_comm.uplift).
CREATE FUNCTION infor_comm.uplift(
    asked_from date DEFAULT NULL,
    asked_to date DEFAULT NULL,
    horizon interval DEFAULT '30 days',
    success_statuses text[] DEFAULT NULL
) RETURNS TABLE (
    grp text,
    reaction text,
    measure text,
    clients bigint,
    successes bigint,
    rate double precision,
    uplift double precision,
    ci_low double precision,
    ci_high double precision,
    method text
)
STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'uplift_wrapper';
COMMENT ON FUNCTION infor_comm.uplift(date, date, interval, text[]) IS
    'What the calls changed: for the clients first selected (asked or held out) in the window, each group''s successes within the horizon by status and by history, the uplift (asked minus held out) with its 95% interval (Wald, or Newcombe''s hybrid score for small groups), and the asked group by first-level reaction.';
REVOKE ALL ON FUNCTION infor_comm.uplift(date, date, interval, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION infor_comm.uplift(date, date, interval, text[]) TO infor_comm_reader;
