-- The repair kit as an operator uses it: a login in infor_comm_operator may call the kit and
-- read nothing; each call leaves a row in operator_actions, with the login that made it.
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
SELECT acted_by, action, arguments - 'request_id' AS arguments, dry_run, affected,
       details -> 0 ->> 'organization_id' AS client
  FROM infor_comm.operator_actions ORDER BY action_id;
-- Clean up.
DELETE FROM infor_comm.operator_actions;
DELETE FROM infor_comm.outbox_open WHERE organization_id = 'OPS_1';
DELETE FROM infor_comm.outbox_pending p USING infor_comm.outbox o
 WHERE o.outbox_id = p.outbox_id AND o.organization_id = 'OPS_1';
DELETE FROM infor_comm.outbox WHERE organization_id = 'OPS_1';
DELETE FROM infor_comm.infor_communication_task WHERE organization_id = 'OPS_1';
DELETE FROM clientsnapshot WHERE id = 'OPS_1';
DELETE FROM wizard_status_change_log WHERE organization_id = 'OPS_1';
DELETE FROM product_migration_clients WHERE organization_id = 'OPS_1';
DROP TABLE ops_request;
DROP OWNED BY ops_login;
DROP ROLE ops_login;
