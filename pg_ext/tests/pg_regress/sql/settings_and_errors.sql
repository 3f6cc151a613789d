-- Every setting refuses a bad value with its name and the value; the job names what is missing.
-- Once the library is loaded (any infor_comm function loads it), a bad value is refused at once.
SELECT infor_comm.setting_thinking_days(), infor_comm.setting_timezone(),
       infor_comm.setting_response_timeout(), infor_comm.setting_host_schema();
SET infor_comm.thinking_days = 'seven';
SET infor_comm.thinking_days = '0';
SET infor_comm.timezone = 'Mars/Olympus';
SET infor_comm.response_timeout = '-1 day';
SET infor_comm.host_schema = '';
SET infor_comm.thinkingdays = 5;
-- The host schema, or a host table in it, is missing.
BEGIN;
SET LOCAL infor_comm.host_schema = 'bank';
SELECT infor_comm.enqueue_thinking_clients();
ROLLBACK;
BEGIN;
CREATE SCHEMA bank;
SET LOCAL infor_comm.host_schema = 'bank';
SELECT infor_comm.enqueue_thinking_clients();
ROLLBACK;
-- The relay's functions check their arguments; schedule_daily needs pg_cron.
SELECT * FROM infor_comm.claim_outbox(0, '1 minute');
SELECT infor_comm.schedule_daily();
-- A bad value set before the library was loaded (a new session) is kept, never replaced by the
-- default: the function that reads it fails with the same error.
\c -
SET infor_comm.thinking_days = '0';
SELECT infor_comm.enqueue_thinking_clients();
RESET infor_comm.thinking_days;
