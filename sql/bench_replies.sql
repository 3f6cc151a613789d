-- The replies of the inbound benchmarks (bench.sql and scripts/bench-apply-instructions): one
-- reply with statusCode 0 for each of the first :replies task rows, numbered n from 1, with its
-- values and its body already rendered, so that neither side of a benchmark pays for building
-- the text. After the daily enqueue; psql -v replies=N.
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_reply;
RESET client_min_messages;
CREATE TABLE bench_reply AS
SELECT n, vtbc_request_id, 'crm-' || n AS crm_id, (100000000 + n)::text AS task_id,
       format('{"requestID": "%s", "replyUID": "%s", "dt": "2026-11-24T10:00:00.000+03:00", "statusCode": "0", "taskID": "%s"}',
              'crm-' || n, vtbc_request_id, 100000000 + n) AS body
  FROM (SELECT vtbc_request_id, row_number() OVER () AS n
          FROM infor_comm.infor_communication_task
         LIMIT :replies) r;
ANALYZE bench_reply;
