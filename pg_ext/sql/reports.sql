-- The reports: daily_funnel, client_history, health (and the effectiveness report's wrapper).
-- docs/reports.md shows each with what it answers and its output on the demo's data.

-- The funnel groups the task rows by the calendar day of their request (time_create is wall
-- time in infor_comm.timezone); this index lets a report of the last days read only those days.
CREATE INDEX infor_communication_task_day_idx
    ON infor_comm.infor_communication_task ((time_create::date));

-- One row per day: thinking clients, requests sent, confirmed, replies, outcomes, reactions,
-- still waiting, timed out.
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

-- The inbound messages that matched no task row (rejected ones, orphans still waiting), by the
-- ids written in them (infor_comm.inbox_message_ids, in Rust: read from the text without parsing
-- it, since a rejected message may not be JSON at all, and bounded whatever the body).
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
COMMENT ON FUNCTION infor_comm.client_history(text) IS
    'Every request, publication, reply, push and rejected message of one client (by organization_id), in order, for the support desk; never the request payload.';

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

-- The call centre's forecast: for each of the next days, the clients who become thinking that
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
