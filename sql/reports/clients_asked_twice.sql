-- The clients InforCRM was asked about more than once: how many requests each got, what the
-- replies were, whether a task was ever created, and where the client is in the migration now.
-- A client is asked again after a reply '1' or '2' (the next day) or a request that timed out
-- unanswered; a client whose task was created is never asked again.
--
--   psql -X -f sql/reports/clients_asked_twice.sql
--
-- Reads infor_comm.infor_communication_task, infor_comm.outbox_delivery and the host table
-- product_migration_clients (the search_path must find it): a member of infor_comm_reader with
-- SELECT on the host tables may run it.

SELECT t.organization_id,
       count(*) AS requests,
       string_agg(coalesce(t.status_code, coalesce(d.close_reason, 'waiting')), ' → '
                  ORDER BY t.time_create) AS replies_in_order,
       bool_or(t.status_code = '0') AS task_created,
       min(t.time_create) AS first_asked,
       max(t.time_create) AS last_asked,
       c.status AS migration_status_now,
       c.wizard_status AS wizard_status_now
  FROM infor_comm.infor_communication_task t
  LEFT JOIN infor_comm.outbox_delivery d ON d.task_row_id = t.id
  LEFT JOIN product_migration_clients c ON c.organization_id = t.organization_id
 GROUP BY t.organization_id, c.status, c.wizard_status
HAVING count(*) > 1
 ORDER BY requests DESC, last_asked DESC
 LIMIT 100;
