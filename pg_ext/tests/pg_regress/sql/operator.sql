-- The repair kit as an operator uses it: a login in infor_comm_operator may call the kit and
-- read nothing; each call leaves a row in operator_actions, with the login that made it.
-- (The inbox's identity is put back at the end: later tests show inbox ids.)
SELECT last_value AS inbox_seq, is_called AS inbox_seq_called FROM infor_comm.inbox_inbox_id_seq \gset
INSERT INTO product_migration_clients VALUES ('OPS_1', 'M-OPS-1', 'in_wizard', 'OK');
INSERT INTO wizard_status_change_log VALUES ('OPS_1', 'OK', '2026-11-01 09:00:00');
INSERT INTO clientsnapshot VALUES ('OPS_1', '7700000000', '1027700000000', '770001001', NULL);
SELECT infor_comm.enqueue_thinking_clients('2026-11-20 12:00:00+03') AS enqueued;
CREATE TABLE ops_request AS
SELECT request_id::text AS request_id FROM infor_comm.outbox WHERE organization_id = 'OPS_1';
GRANT SELECT ON ops_request TO PUBLIC;
CREATE ROLE ops_login LOGIN IN ROLE infor_comm_operator;
GRANT CONNECT ON DATABASE infor_comm_regress TO ops_login;
\c infor_comm_regress ops_login
\set VERBOSITY default
-- Nothing else: no table of the extension.
SELECT count(*) FROM infor_comm.outbox;
SELECT count(*) FROM infor_comm.operator_actions;
-- Mistakes are named.
SELECT infor_comm.withdraw('no-such-request', 'a typo');
\set VERBOSITY terse
SELECT infor_comm.withdraw(request_id, '  ') FROM ops_request;
\set VERBOSITY default
-- Nothing waits for a back-off yet.
SELECT infor_comm.retry_now() AS retried;
-- The request is withdrawn once; the client is selected again by the next run.
SELECT infor_comm.withdraw(request_id, 'the client asked not to be called') AS withdrawn FROM ops_request;
SELECT infor_comm.withdraw(request_id, 'again') AS withdrawn FROM ops_request;
\c infor_comm_regress postgres
SELECT close_reason, published_at IS NULL AS unpublished,
       outbox_id IN (SELECT outbox_id FROM infor_comm.outbox_pending) AS pending
  FROM infor_comm.outbox WHERE organization_id = 'OPS_1';
SELECT organization_id, skip_reason FROM infor_comm.thinking_clients_at('2026-11-21 12:00:00+03')
 WHERE organization_id = 'OPS_1';
-- A reply an earlier release rejected (journaled by hand here), for the request of OPS_2; and a
-- body over the relay's limit, which cannot be re-applied.
INSERT INTO product_migration_clients VALUES ('OPS_2', 'M-OPS-2', 'in_wizard', 'OK');
INSERT INTO wizard_status_change_log VALUES ('OPS_2', 'OK', '2026-11-01 09:00:00');
INSERT INTO clientsnapshot VALUES ('OPS_2', '7700000000', '1027700000000', '770001001', NULL);
SELECT infor_comm.enqueue_thinking_clients('2026-11-20 12:00:00+03') AS enqueued;
INSERT INTO infor_comm.inbox (message_id, body, kind, outcome, reason)
SELECT 'old-reply', json_build_object('requestID', 'CRM-OPS-2', 'replyUID', request_id, 'dt', '2026-11-20T13:00:00.000+03:00',
                                      'statusCode', '0', 'taskID', 'T-OPS-2')::text,
       'reply', 'rejected', 'a rule of an earlier release'
  FROM infor_comm.outbox WHERE organization_id = 'OPS_2';
SELECT infor_comm.reject_oversized('\x7b'::bytea, 'huge'::bytea, 5000000, sha256('whole'), 1048576) AS oversized;
\c infor_comm_regress ops_login
-- A dry run: what each would become now, and nothing changes.
SELECT was_reason, outcome, reason FROM infor_comm.reapply_rejected() ORDER BY inbox_id;
SELECT outcome, reason FROM infor_comm.reapply_rejected(reason_code => 'oversized');
SELECT was_reason, outcome, reason FROM infor_comm.reapply_rejected(reason_code => 'unknown_shape', dry_run => true);
\c infor_comm_regress postgres
SELECT status_code IS NULL AS unanswered FROM infor_comm.infor_communication_task WHERE organization_id = 'OPS_2';
SELECT count(*) AS journaled FROM infor_comm.inbox;
\c infor_comm_regress ops_login
-- For real, once.
SELECT was_reason, outcome FROM infor_comm.reapply_rejected(received_from => now() - interval '1 hour', dry_run => false)
 WHERE outcome IS NOT NULL;
SELECT count(*) AS again FROM infor_comm.reapply_rejected(dry_run => false) WHERE outcome IS NOT NULL;
\c infor_comm_regress postgres
SELECT status_code, task_id FROM infor_comm.infor_communication_task WHERE organization_id = 'OPS_2';
SELECT i.message_id, i.outcome, i.reapplied_by, n.outcome AS reapplied_as_outcome, n.message_id AS new_message_id
  FROM infor_comm.inbox i LEFT JOIN infor_comm.inbox n ON n.inbox_id = i.reapplied_as
 WHERE i.message_id IN ('old-reply', 'huge') ORDER BY i.inbox_id;
SELECT acted_by, action, arguments - 'request_id' - 'received_from' AS arguments, dry_run, affected,
       coalesce(details -> 0 ->> 'organization_id', details -> 0 ->> 'outcome') AS first_item
  FROM infor_comm.operator_actions ORDER BY action_id;
-- Clean up.
DELETE FROM infor_comm.operator_actions;
DELETE FROM infor_comm.inbox;
SELECT setval('infor_comm.inbox_inbox_id_seq', :inbox_seq, :'inbox_seq_called'::boolean) IS NOT NULL AS put_back;
DELETE FROM infor_comm.outbox_open WHERE organization_id LIKE 'OPS%';
DELETE FROM infor_comm.outbox_pending p USING infor_comm.outbox o
 WHERE o.outbox_id = p.outbox_id AND o.organization_id LIKE 'OPS%';
DELETE FROM infor_comm.outbox WHERE organization_id LIKE 'OPS%';
DELETE FROM infor_comm.infor_communication_task WHERE organization_id LIKE 'OPS%';
DELETE FROM clientsnapshot WHERE id LIKE 'OPS%';
DELETE FROM wizard_status_change_log WHERE organization_id LIKE 'OPS%';
DELETE FROM product_migration_clients WHERE organization_id LIKE 'OPS%';
DROP TABLE ops_request;
DROP OWNED BY ops_login;
DROP ROLE ops_login;
