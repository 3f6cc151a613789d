-- The run history of the daily job (infor_comm.daily_runs). Called on its own, as pg_cron calls
-- it, run_daily commits its 'running' row first; a failed run is committed as failed before its
-- error is raised, while the enqueue's own work is rolled back. This file commits: it removes
-- its rows at the end.
INSERT INTO product_migration_clients VALUES ('RUN_OK', 'M1', 'in_wizard', 'OK'),
                                             ('RUN_NO_SNAPSHOT', 'M2', 'in_wizard', 'OK');
INSERT INTO wizard_status_change_log
SELECT organization_id, 'OK', (now() - interval '8 days') AT TIME ZONE 'Europe/Moscow'
  FROM product_migration_clients WHERE organization_id LIKE 'RUN%';
INSERT INTO clientsnapshot VALUES ('RUN_OK', '7700000000', '1027700000000', '770001001', NULL);

-- A run that succeeds: one request sent, one client skipped.
CALL infor_comm.run_daily();
SELECT run_id, status, sent, skipped, run_by, application_name, error,
       finished_at >= started_at AS finished_after_start
  FROM infor_comm.daily_runs ORDER BY run_id;

-- A run that fails: the error reaches the caller (pg_cron logs it) and the run stays recorded.
SET infor_comm.host_schema = 'nowhere';
CALL infor_comm.run_daily();
RESET infor_comm.host_schema;
SELECT run_id, status, sent, skipped, error, finished_at IS NOT NULL AS finished
  FROM infor_comm.daily_runs ORDER BY run_id;

-- Inside a transaction block run_daily cannot commit: its row goes with the caller's rollback.
BEGIN;
CALL infor_comm.run_daily();
SELECT count(*) AS runs_seen_inside FROM infor_comm.daily_runs;
ROLLBACK;
SELECT count(*) AS runs_after_rollback FROM infor_comm.daily_runs;

-- What an alert reads: the failed last run, and the last successful one.
SELECT last_run_status, last_run_error, last_success_sent, last_success_skipped, pg_cron_installed,
       'the last daily run (started …) failed: 3F000: infor_comm: host schema "nowhere" does not exist'
           = ANY (SELECT regexp_replace(p, 'started [^)]*', 'started …') FROM unnest(problems) p) AS failure_listed
  FROM infor_comm.health;

-- The enqueue needs READ COMMITTED (two runs wait for each other, and the second must see what
-- the first committed); run_daily called on its own sets it, whatever the session's default.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT infor_comm.enqueue_thinking_clients();
ROLLBACK;
SET default_transaction_isolation = 'serializable';
CALL infor_comm.run_daily();
RESET default_transaction_isolation;
SELECT status, sent, error FROM infor_comm.daily_runs ORDER BY run_id DESC LIMIT 1;

DELETE FROM infor_comm.outbox_open WHERE organization_id LIKE 'RUN%';
DELETE FROM infor_comm.outbox_pending p USING infor_comm.outbox o
 WHERE o.outbox_id = p.outbox_id AND o.organization_id LIKE 'RUN%';
DELETE FROM infor_comm.outbox WHERE organization_id LIKE 'RUN%';
DELETE FROM infor_comm.infor_communication_task WHERE organization_id LIKE 'RUN%';
DELETE FROM infor_comm.daily_runs;
DELETE FROM clientsnapshot WHERE id LIKE 'RUN%';
DELETE FROM wizard_status_change_log WHERE organization_id LIKE 'RUN%';
DELETE FROM product_migration_clients WHERE organization_id LIKE 'RUN%';
