-- What each role of the extension may do: the relay calls its functions only; the reader reads
-- the task table, the views and the delivery state (not the payload); the daily job's role may
-- run the job and nothing else; infor_comm_writer, which the job's writing functions run as
-- (they belong to it), writes what the job writes. PUBLIC may do nothing.
WITH role_name(role) AS (VALUES ('infor_comm_relay'), ('infor_comm_reader'), ('infor_comm_job'), ('infor_comm_writer'), ('infor_comm_operator'), ('public')),
relation(name) AS (
    SELECT c.oid::regclass::text FROM pg_class c
     WHERE c.relnamespace = 'infor_comm'::regnamespace AND c.relkind IN ('r', 'v')
)
SELECT r.name,
       string_agg(role || ':' || concat_ws('/',
           CASE WHEN has_table_privilege(role, r.name, 'SELECT') THEN 'select' END,
           CASE WHEN has_table_privilege(role, r.name, 'INSERT') THEN 'insert' END,
           CASE WHEN has_table_privilege(role, r.name, 'UPDATE') THEN 'update' END,
           CASE WHEN has_table_privilege(role, r.name, 'DELETE') THEN 'delete' END),
           ' ' ORDER BY role) AS privileges
  FROM relation r CROSS JOIN role_name
 GROUP BY r.name ORDER BY r.name;
SELECT has_column_privilege('infor_comm_reader', 'infor_comm.outbox', 'payload', 'SELECT') AS reader_reads_payload,
       has_column_privilege('infor_comm_reader', 'infor_comm.outbox', 'published_at', 'SELECT') AS reader_reads_published_at;
WITH role_name(role) AS (VALUES ('infor_comm_relay'), ('infor_comm_reader'), ('infor_comm_job'), ('infor_comm_writer'), ('infor_comm_operator'), ('public'))
SELECT p.oid::regprocedure AS routine,
       coalesce(string_agg(role, ' ' ORDER BY role) FILTER (WHERE has_function_privilege(role, p.oid, 'EXECUTE')), '-') AS may_execute,
       p.prosecdef AS security_definer,
       CASE WHEN p.proowner = 'infor_comm_writer'::regrole THEN 'infor_comm_writer' ELSE 'installer' END AS owner,
       array_to_string(p.proconfig, ', ') AS settings
  FROM pg_proc p CROSS JOIN role_name
 WHERE p.pronamespace = 'infor_comm'::regnamespace
 GROUP BY p.oid ORDER BY p.oid::regprocedure::text;
