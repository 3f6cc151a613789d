-- Times the daily enqueue (infor_comm.enqueue_thinking_clients(now())) :rounds times, each in a
-- transaction of its own that is rolled back so every round starts from the same state, and
-- prints the median in seconds and the number of requests. Not subtransactions of one
-- transaction: the row versions they leave could not be pruned while it runs (bench.sql).
-- Run by scripts/bench-daily-job, once with each version of the extension, on the same data.
\set ON_ERROR_STOP on
\if :{?rounds}
\else
    \set rounds 3
\endif
SET bench.rounds = :rounds;
CREATE TEMP TABLE daily_job_round (round int, seconds double precision, enqueued integer);
DO $bench$
DECLARE
    t0 timestamptz;
    elapsed double precision;
    n integer;
BEGIN
    FOR round IN 1..current_setting('bench.rounds')::integer LOOP
        t0 := clock_timestamp();
        n := infor_comm.enqueue_thinking_clients(now());
        elapsed := extract(epoch FROM clock_timestamp() - t0);
        ROLLBACK;
        INSERT INTO daily_job_round VALUES (round, elapsed, n);
        COMMIT;
    END LOOP;
END
$bench$;
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric, 3) || ' ' || max(enqueued)
  FROM daily_job_round;
