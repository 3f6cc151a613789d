-- Years of answered requests, for measuring the reports (docs/benchmarks.md, "The reports on a
-- million clients"): :days days (default 365) before today of :per_day requests a day (default
-- 3000) for clients spread over generate_data.sql's ORG0000001…, each with its outbox row
-- (published, closed), its reply and push in the inbox, a rejected message now and then, and a
-- successful daily run a day. Run it after CREATE EXTENSION infor_comm (and after the daily job,
-- whose selection these rows would otherwise change):
--   psql -v days=365 -v per_day=3000 -f sql/report_history.sql
-- Replies: 80% '0' (70% of those processed, '3', with a reaction; 30% '5'), 10% '1', 7% '2',
-- 3% never answered (timed out).

\set ON_ERROR_STOP on
\if :{?days}
\else
    \set days 365
\endif
\if :{?per_day}
\else
    \set per_day 3000
\endif

SET synchronous_commit = off;
BEGIN;

CREATE TEMP TABLE history ON COMMIT DROP AS
SELECT d, k,
       'ORG' || lpad((1 + (d * 7919 + k * 104729) % 1000000)::text, 7, '0') AS organization_id,
       gen_random_uuid() AS request_id,
       gen_random_uuid()::text AS row_id,
       date_trunc('day', now() AT TIME ZONE 'Europe/Moscow') - make_interval(days => d) + interval '9 hours' AS time_create,
       random() AS reply_dice,
       random() AS push_dice
  FROM generate_series(1, :days) AS d, generate_series(1, :per_day) AS k;

INSERT INTO infor_comm.infor_communication_task
       (id, vtbc_request_id, infor_response_id, status_code, organization_id, request_date, task_id,
        task_status, first_level_client_reaction, second_level_client_reaction, time_create, time_update)
SELECT h.row_id, h.request_id::text,
       CASE WHEN h.reply_dice < 0.97 THEN 'CRM-' || h.row_id END,
       CASE WHEN h.reply_dice < 0.80 THEN '0' WHEN h.reply_dice < 0.90 THEN '1' WHEN h.reply_dice < 0.97 THEN '2' END,
       h.organization_id,
       to_char(h.time_create, 'YYYY-MM-DD"T"HH24:MI:SS.MS"+03:00"'),
       CASE WHEN h.reply_dice < 0.80 THEN 'T-' || h.row_id END,
       CASE WHEN h.reply_dice < 0.80 THEN CASE WHEN h.push_dice < 0.7 THEN '3' ELSE '5' END END,
       CASE WHEN h.reply_dice < 0.80 AND h.push_dice < 0.7
            THEN (ARRAY['Недозвон', 'Дозвон - планирует миграцию', 'Дозвон - не планирует миграцию',
                        'Дозвон - коммуникация не состоялась'])[1 + floor(h.push_dice / 0.7 * 4)::int] END,
       CASE WHEN h.reply_dice < 0.80 AND h.push_dice < 0.7 THEN 'Другое' END,
       h.time_create,
       CASE WHEN h.reply_dice < 0.97 THEN h.time_create + interval '1 day' END
  FROM history h;

INSERT INTO infor_comm.outbox
       (request_id, task_row_id, organization_id, payload, created_at, available_at, published_at,
        closed_at, close_reason)
SELECT h.request_id, h.row_id, h.organization_id, '{}'::json,
       h.time_create AT TIME ZONE 'Europe/Moscow', h.time_create AT TIME ZONE 'Europe/Moscow',
       (h.time_create + interval '1 minute') AT TIME ZONE 'Europe/Moscow',
       (h.time_create + interval '1 day') AT TIME ZONE 'Europe/Moscow',
       CASE WHEN h.reply_dice < 0.97 THEN 'answered' ELSE 'timed_out' END
  FROM history h;

-- The replies, the pushes, and one rejected message in a thousand (no task row).
INSERT INTO infor_comm.inbox (received_at, body, kind, outcome, reason, task_row_id, applied_at)
SELECT (h.time_create + m.delay) AT TIME ZONE 'Europe/Moscow',
       CASE m.kind
            WHEN 'reply' THEN format('{"requestID": "CRM-%s", "replyUID": "%s", "dt": "%s", "statusCode": "%s", "taskID": "T-%s"}',
                                     h.row_id, h.request_id, h.time_create, CASE WHEN h.reply_dice < 0.80 THEN '0' ELSE '1' END, h.row_id)
            WHEN 'push' THEN format('{"requestID": "CRM-%s", "taskID": "T-%s", "dt": "%s", "taskStatus": "%s"}',
                                    h.row_id, h.row_id, h.time_create, CASE WHEN h.push_dice < 0.7 THEN '3' ELSE '5' END)
            ELSE format('{"requestID": "CRM-%s", "taskID": "T-%s", "dt": "%s", "taskStatus": "9"}', h.row_id, h.row_id, h.time_create)
       END,
       CASE m.kind WHEN 'reply' THEN 'reply' ELSE 'push' END,
       CASE m.kind WHEN 'rejected' THEN 'rejected' ELSE m.kind END,
       CASE m.kind WHEN 'rejected' THEN 'taskStatus "9" is not one of "3", "5"' END,
       CASE m.kind WHEN 'rejected' THEN NULL ELSE h.row_id END,
       CASE m.kind WHEN 'rejected' THEN NULL ELSE (h.time_create + m.delay) AT TIME ZONE 'Europe/Moscow' END
  FROM history h
  JOIN (VALUES ('reply', interval '10 minutes'), ('push', interval '1 day'), ('rejected', interval '2 days')) AS m (kind, delay)
    ON (m.kind = 'reply' AND h.reply_dice < 0.97)
    OR (m.kind = 'push' AND h.reply_dice < 0.80)
    OR (m.kind = 'rejected' AND h.push_dice < 0.001);

INSERT INTO infor_comm.daily_runs (started_at, as_of, run_by, application_name, backend_pid, status, finished_at, sent, skipped)
SELECT t AT TIME ZONE 'Europe/Moscow', t AT TIME ZONE 'Europe/Moscow', 'postgres', 'pg_cron', 0, 'succeeded',
       (t + interval '20 seconds') AT TIME ZONE 'Europe/Moscow', :per_day, 40
  FROM (SELECT date_trunc('day', now() AT TIME ZONE 'Europe/Moscow') - make_interval(days => d) + interval '9 hours' AS t
          FROM generate_series(1, :days) AS d) days;

COMMIT;
ANALYZE infor_comm.infor_communication_task, infor_comm.outbox, infor_comm.inbox, infor_comm.daily_runs;
