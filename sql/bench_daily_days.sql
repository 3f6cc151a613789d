-- The daily job on the days that matter, with fresh and with stale statistics, on the data of
-- sql/generate_data.sql in a database where infor_comm was just created and nothing has run.
-- Run by scripts/bench-daily-job, on a cluster of its own whose autovacuum is off, so that
-- "stale" means what it says: the statistics are those of the last ANALYZE below.
--
--   day one        enqueue_thinking_clients(now()), nothing enqueued before;
--   baseline       the same selection inserted into a plain table with a JSON built by
--                  json_build_object (no task rows, no lock, no checks; as in sql/bench.sql);
--   second run     enqueue_thinking_clients(now() + 1 day) right after day one committed: every
--                  client has an open request (a re-run, a run after a failover, a late autovacuum);
--   preview        SELECT skip_reason, count(*) FROM infor_comm.thinking_clients GROUP BY 1,
--                  what a DBA runs right after the job.
--
-- Stale: day one before the host tables were ever analyzed; the second run and the preview
-- with the statistics of before day one (no task row, no open request). Fresh: after ANALYZE.
-- Every measured run is rolled back, except the one day one that the later cases follow;
-- rounds of the baseline and day one alternate. Prints one line per case: its name, the
-- statistics, the median in seconds, and the rows.
\set ON_ERROR_STOP on
\if :{?rounds}
\else
    \set rounds 3
\endif
SET bench.rounds = :rounds;
CREATE TEMP TABLE daily_case (seq serial, name text, statistics text, round int, seconds double precision, n bigint);
CREATE TEMP TABLE plain_request (organization_id varchar, request_id uuid, payload json);

-- Runs CASE_SQL (which returns a count) :rounds times, each rolled back, and records each time.
CREATE PROCEDURE pg_temp.measure(case_name text, statistics text, case_sql text)
LANGUAGE plpgsql AS $measure$
DECLARE
    t0 timestamptz;
    elapsed double precision;
    n bigint;
BEGIN
    FOR round IN 1..current_setting('bench.rounds')::integer LOOP
        t0 := clock_timestamp();
        EXECUTE case_sql INTO n;
        elapsed := extract(epoch FROM clock_timestamp() - t0);
        ROLLBACK;
        INSERT INTO daily_case (name, statistics, round, seconds, n)
        VALUES (case_name, statistics, round, elapsed, n);
        COMMIT;
    END LOOP;
END
$measure$;

\set baseline 'WITH candidate AS MATERIALIZED (SELECT organization_id FROM infor_comm.thinking_clients_at(now()) WHERE skip_reason IS NULL), request_time AS MATERIALIZED (SELECT infor_comm.format_request_dt(now()) AS dt), inserted AS (INSERT INTO plain_request SELECT c.organization_id, gen_random_uuid(), json_build_object(''requestID'', gen_random_uuid(), ''dt'', r.dt, ''clientIdList'', json_build_array(json_build_object(''systemCode'', ''ehd_id'', ''id'', c.organization_id)), ''inn'', s.tin, ''ogrn'', s.registry_number, ''kpp'', s.kpp, ''okpo'', s.okpo) FROM candidate c CROSS JOIN request_time r JOIN clientsnapshot s ON s.id = c.organization_id RETURNING 1) SELECT count(*) FROM inserted'
\set day_one 'SELECT infor_comm.enqueue_thinking_clients(now())'
\set second_run 'SELECT infor_comm.enqueue_thinking_clients(now() + interval ''1 day'')'
\set preview 'SELECT sum(clients) FROM (SELECT skip_reason, count(*) AS clients FROM infor_comm.thinking_clients GROUP BY 1) p'

-- Day one, the host tables never analyzed (scripts/bench-daily-job generates them with
-- analyze=off).
CHECKPOINT;
CALL pg_temp.measure('baseline', 'stale', :'baseline');
CALL pg_temp.measure('day one', 'stale', :'day_one');

-- Day one, every table analyzed.
VACUUM ANALYZE;
CALL pg_temp.measure('baseline', 'fresh', :'baseline');
CALL pg_temp.measure('day one', 'fresh', :'day_one');

-- Day one for good, and at once the next day's run and the preview on the statistics of
-- before it.
SELECT infor_comm.enqueue_thinking_clients(now()) AS day_one_committed \gset
CALL pg_temp.measure('second run', 'stale', :'second_run');
CALL pg_temp.measure('preview', 'stale', :'preview');

-- The same once the statistics know what day one wrote.
ANALYZE;
CALL pg_temp.measure('second run', 'fresh', :'second_run');
CALL pg_temp.measure('preview', 'fresh', :'preview');

\pset format unaligned
\pset tuples_only on
SELECT name || '|' || statistics || '|'
       || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric, 3) || '|' || coalesce(max(n), 0)
  FROM daily_case GROUP BY name, statistics
 ORDER BY min(seq);
