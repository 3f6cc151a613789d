-- The specification's reply and pushes, applied to a request of the daily job; then what
-- apply_inbound does with a copy, a push before its reply, and messages it must reject.
BEGIN;
INSERT INTO product_migration_clients VALUES ('C1', 'M1', 'in_wizard', 'OK'), ('C2', 'M2', 'in_wizard', 'OK');
INSERT INTO wizard_status_change_log VALUES ('C1', 'OK', '2026-11-01 09:00'), ('C2', 'OK', '2026-11-01 09:00');
INSERT INTO clientsnapshot VALUES ('C1', '1', '2', '3', NULL), ('C2', '1', '2', '3', NULL);
SELECT infor_comm.enqueue_thinking_clients('2026-11-20 12:00:00+03');
SELECT vtbc_request_id AS c1 FROM infor_comm.infor_communication_task WHERE organization_id = 'C1' \gset
SELECT vtbc_request_id AS c2 FROM infor_comm.infor_communication_task WHERE organization_id = 'C2' \gset

-- The success reply of the specification, then the manual push: the row is complete.
SELECT infor_comm.apply_inbound(format('{"requestID": "72a26ab9-b99e-40aa-9f7e-2247b3709394", "replyUID": "%s", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "0", "taskID": "123456789"}', :'c1'));
SELECT infor_comm.apply_inbound('{"requestID": "72a26ab9-b99e-40aa-9f7e-2247b3709394", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "0", "taskID": "123456789", "taskStatus": "3", "taskCloseDate": "2023-07-27", "taskExecType": "", "taskExecDescr": "", "firstLevelClientReaction": "Недозвон", "secondLevelClientReaction": "Автоответчик", "thirdLevelClientReaction": ""}');
-- The same push again changes nothing.
SELECT infor_comm.apply_inbound('{"requestID": "72a26ab9-b99e-40aa-9f7e-2247b3709394", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "0", "taskID": "123456789", "taskStatus": "3", "taskCloseDate": "2023-07-27", "taskExecType": "", "taskExecDescr": "", "firstLevelClientReaction": "Недозвон", "secondLevelClientReaction": "Автоответчик", "thirdLevelClientReaction": ""}');
-- A push before its reply is kept (orphan) and applied when the reply lands.
SELECT infor_comm.apply_inbound('{"requestID": "CRM-2", "taskID": "T-2", "dt": "2026-11-21T10:00:00+03:00", "taskStatus": "5"}');
SELECT infor_comm.apply_inbound(format('{"requestID": "CRM-2", "replyUID": "%s", "statusCode": "0", "taskID": "T-2"}', :'c2'));
SELECT organization_id, infor_response_id, status_code, task_id, task_status, task_close_date,
       first_level_client_reaction, second_level_client_reaction
  FROM infor_comm.infor_communication_task ORDER BY 1;
-- Messages that are kept and rejected, with the reason.
SELECT infor_comm.apply_inbound('{"requestID": broken');
SELECT infor_comm.apply_inbound('{"replyUID": "nobody", "requestID": "X", "statusCode": "0", "taskID": "1"}');
SELECT infor_comm.apply_inbound('{"requestID": "CRM-2", "taskID": "T-9", "dt": "2026-11-21T10:00:00+03:00", "taskStatus": "3"}');
SELECT infor_comm.apply_inbound('{"requestID": "CRM-2", "taskID": "T-2", "dt": "2026-11-21T10:00:00+20:00", "taskStatus": "3"}');
SELECT infor_comm.apply_inbound('{"requestID": "CRM-2", "taskID": "T-2", "dt": "2026-11-22T10:00:00Z", "taskStatus": "3", "taskExecDescr": "a\u0000b"}');
SELECT infor_comm.apply_inbound('\xfffe'::bytea);
SELECT kind, outcome, reason FROM infor_comm.inbox ORDER BY inbox_id;
ROLLBACK;
