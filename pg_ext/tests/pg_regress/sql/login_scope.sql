-- The roles of infor_comm belong to the whole cluster, yet a login made for one database is
-- useless in another: it uses infor_comm only where it was granted CONNECT. Two databases with
-- the extension; a relay login and a reader login for the second one only.
INSERT INTO infor_comm.infor_communication_task (id, vtbc_request_id, organization_id, request_date, time_create)
VALUES ('scope-1', 'scope-1', 'SCOPE', '2026-11-20T12:00:00.000+03:00', '2026-11-20 12:00:00');
CREATE DATABASE infor_comm_other;
\c infor_comm_other
CREATE EXTENSION infor_comm;
CREATE ROLE relay_of_other LOGIN IN ROLE infor_comm_relay;
CREATE ROLE reader_of_other LOGIN IN ROLE infor_comm_reader;
GRANT CONNECT ON DATABASE infor_comm_other TO relay_of_other, reader_of_other;
\c infor_comm_other relay_of_other
SELECT count(*) AS claimed FROM infor_comm.lock_outbox(10);
SELECT infor_comm.apply_inbound('{"replyUID": "nobody", "requestID": "X", "statusCode": "1"}') AS outcome;
\c infor_comm_other reader_of_other
SELECT count(*) AS tasks FROM infor_comm.infor_communication_task;
-- The same logins in this database, which has requests with tax ids, get one error each.
\c infor_comm_regress relay_of_other
SELECT count(*) FROM infor_comm.lock_outbox(10);
SELECT infor_comm.apply_inbound('{"replyUID": "nobody", "requestID": "X", "statusCode": "1"}');
SELECT * FROM infor_comm.outbox_backlog();
\c infor_comm_regress reader_of_other
SELECT count(*) FROM infor_comm.infor_communication_task;
SELECT count(*) FROM infor_comm.daily_funnel;
\c infor_comm_regress postgres
SELECT count(*) AS journaled_here FROM infor_comm.inbox WHERE body LIKE '%nobody%';
DELETE FROM infor_comm.infor_communication_task WHERE id = 'scope-1';
DROP DATABASE infor_comm_other;
DROP ROLE relay_of_other, reader_of_other;
