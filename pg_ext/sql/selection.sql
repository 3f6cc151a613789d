-- Who is a thinking client: thinking_clients_at(as_of) and the view thinking_clients.

-- The host tables may not exist yet when the extension is created: their names are resolved
-- when the function runs, through the caller's search_path.
SET LOCAL check_function_bodies = off;

-- Who qualifies at as_of; the daily job and the view thinking_clients read this.
CREATE FUNCTION infor_comm.thinking_clients_at(as_of timestamptz)
RETURNS TABLE (
    organization_id varchar,
    mdm_id          varchar,
    wizard_status   varchar,
    status_since    timestamp,
    full_days       integer,
    skip_reason     text
)
LANGUAGE sql STABLE
AS $body$
    SELECT c.organization_id,
           c.mdm_id,
           c.wizard_status,
           l.last_change AS status_since,
           floor(extract(epoch FROM
                 (as_of - (l.last_change AT TIME ZONE (SELECT infor_comm.setting_timezone()))))
                 / 86400)::integer AS full_days,
           CASE
               WHEN s.id IS NULL THEN 'no clientsnapshot row'
               WHEN coalesce(btrim(s.tin), '') = '' THEN 'empty inn (clientsnapshot.tin)'
               WHEN coalesce(btrim(s.registry_number), '') = '' THEN 'empty ogrn (clientsnapshot.registry_number)'
               WHEN coalesce(btrim(s.kpp), '') = '' THEN 'empty kpp (clientsnapshot.kpp)'
           END AS skip_reason
      FROM product_migration_clients c
     CROSS JOIN LATERAL (
           SELECT max(w.change_date) AS last_change
             FROM wizard_status_change_log w
            WHERE w.organization_id = c.organization_id) l
      LEFT JOIN clientsnapshot s ON s.id = c.organization_id
     WHERE c.status = 'in_wizard'
       AND c.wizard_status IN ('OK', 'IN_PROGRESS', 'TO_SIGN')
       AND l.last_change <= (SELECT (as_of - make_interval(hours => 24 * infor_comm.setting_thinking_days()))
                                    AT TIME ZONE infor_comm.setting_timezone())
       AND NOT EXISTS (
           SELECT 1
             FROM infor_comm.infor_communication_task t
            WHERE t.organization_id = c.organization_id
              AND (t.status_code = '0'
                   OR (t.status_code IN ('1', '2')
                       AND t.time_create >= (SELECT date_trunc('day', as_of AT TIME ZONE infor_comm.setting_timezone())))))
       AND NOT EXISTS (
           SELECT 1
             FROM infor_comm.outbox o
             JOIN infor_comm.infor_communication_task t ON t.id = o.task_row_id
            WHERE o.organization_id = c.organization_id
              AND o.closed_at IS NULL
              AND t.status_code IS NULL
              AND (o.published_at IS NULL
                   OR o.published_at > as_of - (SELECT infor_comm.setting_response_timeout())));
$body$;

COMMENT ON FUNCTION infor_comm.thinking_clients_at(timestamptz) IS
    'The thinking clients at as_of: who the daily job asks InforCRM to call, with skip_reason when a request cannot be built.';

-- Who qualifies now.
CREATE VIEW infor_comm.thinking_clients AS
    SELECT organization_id, status_since, full_days, skip_reason, mdm_id, wizard_status
      FROM infor_comm.thinking_clients_at(now());

COMMENT ON VIEW infor_comm.thinking_clients IS
    'The thinking clients now: organization_id, status_since (latest wizard status change), full_days, and skip_reason (NULL when the request can be sent).';
