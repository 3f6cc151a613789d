-- Benchmarks of the extension against plain SQL doing the same visible work, in one session,
-- on the data of sql/generate_data.sql. Each measurement runs in a transaction of its
-- own that is rolled back (a DO block at the top level may end transactions), so the rounds
-- start from the same state; rounds alternate baseline and extension, and the median of :rounds
-- is reported. Not one transaction with a subtransaction per round: while it runs, the row
-- versions of the rounds rolled back cannot be pruned, pages fill up with them, and the later
-- rounds measure full pages that the relay, which commits, does not meet. Run by scripts/bench.

\set ON_ERROR_STOP on
\if :{?rounds}
\else
    \set rounds 5
\endif

-- psql variables do not reach into DO blocks; a custom setting does.
SET bench.rounds = :rounds;

CREATE TEMP TABLE bench_result (benchmark text, side text, round int, seconds double precision);

-- 1. The daily job: enqueue_thinking_clients() against a plain INSERT ... SELECT of the same
--    clients with a JSON built by json_build_object (no task rows, no lock, no checks).
CREATE TEMP TABLE plain_request (organization_id varchar, request_id uuid, payload json);
DO $bench$
DECLARE
    t0 timestamptz;
    elapsed double precision;
    n  integer;
BEGIN
    FOR round IN 1..current_setting('bench.rounds')::integer LOOP
        BEGIN
            t0 := clock_timestamp();
            -- EXECUTE plans it afresh each round, as the extension's own statement is.
            EXECUTE $sql$
            WITH candidate AS MATERIALIZED (
                SELECT organization_id FROM infor_comm.thinking_clients_at(now()) WHERE skip_reason IS NULL
            ), request_time AS MATERIALIZED (
                SELECT infor_comm.format_request_dt(now()) AS dt
            )
            INSERT INTO plain_request
            SELECT c.organization_id, gen_random_uuid(),
                   json_build_object('requestID', gen_random_uuid(), 'dt', r.dt,
                                     'clientIdList', json_build_array(json_build_object('systemCode', 'ehd_id', 'id', c.organization_id)),
                                     'inn', s.tin, 'ogrn', s.registry_number, 'kpp', s.kpp, 'okpo', s.okpo)
              FROM candidate c
             CROSS JOIN request_time r
              JOIN clientsnapshot s ON s.id = c.organization_id
            $sql$;
            elapsed := extract(epoch FROM clock_timestamp() - t0);
            ROLLBACK;
        END;
        -- The result is written after the rollback, and committed.
        INSERT INTO bench_result VALUES ('daily enqueue', 'baseline', round, elapsed);
        COMMIT;
        BEGIN
            t0 := clock_timestamp();
            n := infor_comm.enqueue_thinking_clients();
            elapsed := extract(epoch FROM clock_timestamp() - t0);
            ROLLBACK;
        END;
        -- The result is written after the rollback, and committed.
        INSERT INTO bench_result VALUES ('daily enqueue', 'extension', round, elapsed);
        COMMIT;
    END LOOP;
END
$bench$;

-- 2. Inbound: apply_inbound(body) of one reply per request, message by message as the relay
--    sends them, against a plain UPDATE of the task row by vtbc_request_id with the same values.
--    Both sides run in one PL/pgSQL loop over the same 5,000 rows of the same table, which holds
--    each reply's values and its body already rendered (so neither side pays for building the
--    text); per row:
--    - baseline: UPDATE infor_communication_task SET infor_response_id, status_code, task_id
--      WHERE vtbc_request_id = ... (an index probe, the row's new version and its index entries,
--      the time_update trigger);
--    - extension: SELECT apply_inbound(body): the call (SECURITY DEFINER, pinned search_path),
--      the JSON parsed and validated, two advisory locks, the same UPDATE of the task row, the
--      request's outbox row closed, the message journaled in inbox (with its foreign key
--      check), the check for orphan pushes waiting for this reply.
SET client_min_messages = warning;
SELECT infor_comm.enqueue_thinking_clients() AS "requests for the inbound benchmark";
RESET client_min_messages;
-- 5,000 replies: each apply_inbound takes two transaction-level advisory locks, and here every
-- round is one transaction (the relay commits at most 16 messages at a time).
\set replies 5000
\ir bench_replies.sql
DO $bench$
DECLARE
    t0 timestamptz;
    elapsed double precision;
    r  record;
    outcome text;
BEGIN
    FOR round IN 1..current_setting('bench.rounds')::integer LOOP
        BEGIN
            t0 := clock_timestamp();
            FOR r IN SELECT * FROM bench_reply LOOP
                UPDATE infor_comm.infor_communication_task
                   SET infor_response_id = r.crm_id, status_code = '0', task_id = r.task_id
                 WHERE vtbc_request_id = r.vtbc_request_id;
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'data_exception', MESSAGE = 'bench: no task row for ' || r.vtbc_request_id;
                END IF;
            END LOOP;
            elapsed := extract(epoch FROM clock_timestamp() - t0);
            ROLLBACK;
        END;
        -- The result is written after the rollback, and committed.
        INSERT INTO bench_result VALUES ('inbound reply', 'baseline', round, elapsed);
        COMMIT;
        BEGIN
            t0 := clock_timestamp();
            FOR r IN SELECT * FROM bench_reply LOOP
                outcome := infor_comm.apply_inbound(r.body);
                IF outcome <> 'reply' THEN
                    RAISE EXCEPTION USING ERRCODE = 'data_exception', MESSAGE = format('bench: apply_inbound returned %s', outcome);
                END IF;
            END LOOP;
            elapsed := extract(epoch FROM clock_timestamp() - t0);
            ROLLBACK;
        END;
        -- The result is written after the rollback, and committed.
        INSERT INTO bench_result VALUES ('inbound reply', 'extension', round, elapsed);
        COMMIT;
    END LOOP;
END
$bench$;

\echo
SELECT count(*) AS enqueued FROM infor_comm.outbox \gset
\echo '| benchmark | rows | baseline (median s) | extension (median s) | extension / baseline |'
\echo '|---|---|---|---|---|'
\pset format unaligned
\pset tuples_only on
SELECT format('| %s | %s | %s | %s | %s |', benchmark,
              CASE benchmark WHEN 'daily enqueue' THEN :enqueued ELSE (SELECT count(*) FROM bench_reply) END,
              round(baseline::numeric, 3), round(extension::numeric, 3), round((extension / baseline)::numeric, 2))
  FROM (SELECT benchmark,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE side = 'baseline') AS baseline,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE side = 'extension') AS extension
          FROM bench_result GROUP BY benchmark) m
 ORDER BY benchmark DESC;
