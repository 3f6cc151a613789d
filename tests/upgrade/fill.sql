-- Fills a database the way a running installation is filled: the daily job's requests, a relay
-- that published some of them, replies of every kind, pushes, an orphan push, a rejected
-- message, a failed publish. Runs against the version being upgraded from (0.1.0), so it uses
-- only the functions that version has. Used by scripts/test-upgrade.
\set ON_ERROR_STOP on

-- The daily job, as pg_cron runs it.
DO $fill$
BEGIN
    IF infor_comm.enqueue_thinking_clients(now()) = 0 THEN
        RAISE EXCEPTION 'fill.sql: the daily job enqueued nobody';
    END IF;
END
$fill$;

-- A relay published every other request, and failed once on one of them.
SELECT infor_comm.mark_published(array_agg(outbox_id)) FROM
    (SELECT outbox_id FROM infor_comm.claim_outbox(1000, '1 minute') WHERE outbox_id % 2 = 0) c;
SELECT infor_comm.mark_failed(min(outbox_id), 'NO_ROUTE (test)')
  FROM infor_comm.outbox WHERE published_at IS NULL;

-- Replies: '0' for the first ten requests, '1' and '2' for the next two; pushes for five of the
-- created tasks; an orphan push whose reply never came; a malformed message.
CREATE TEMP TABLE requests AS
SELECT row_number() OVER (ORDER BY organization_id) AS n, vtbc_request_id
  FROM infor_comm.infor_communication_task;

SELECT infor_comm.apply_inbound(pg_catalog.json_build_object(
           'requestID', 'CRM-' || n, 'replyUID', vtbc_request_id, 'dt', '2026-11-20T10:00:00.000+03:00',
           'statusCode', '0', 'taskID', 'T-' || n)::text, 'reply-' || n)
  FROM requests WHERE n <= 10;
SELECT infor_comm.apply_inbound(pg_catalog.json_build_object(
           'requestID', 'CRM-' || n, 'replyUID', vtbc_request_id, 'dt', '2026-11-20T10:00:00.000+03:00',
           'statusCode', (n - 9)::text, 'statusMsg', 'client not found')::text, 'reply-' || n)
  FROM requests WHERE n IN (11, 12);
SELECT infor_comm.apply_inbound(pg_catalog.json_build_object(
           'requestID', 'CRM-' || n, 'taskID', 'T-' || n, 'dt', '2026-11-21T10:00:00.000+03:00',
           'taskStatus', '3', 'taskCloseDate', '2026-11-21', 'taskExecType', 'Ручной',
           'taskExecDescr', 'Позвонили', 'firstLevelClientReaction', 'Недозвон',
           'secondLevelClientReaction', 'Автоответчик', 'thirdLevelClientReaction', '')::text, 'push-' || n)
  FROM requests WHERE n <= 5;
-- A push before its reply (the reply comes after the upgrade).
SELECT infor_comm.apply_inbound('{"requestID":"CRM-13","taskID":"T-13","dt":"2026-11-21T10:00:00.000+03:00","taskStatus":"5"}', 'push-13');
SELECT infor_comm.apply_inbound('{"requestID": not json', 'broken-1');
SELECT infor_comm.apply_inbound('\xff00'::bytea, 'not-utf8-1');
