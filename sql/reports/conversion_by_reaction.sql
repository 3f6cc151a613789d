-- Conversion by first-level reaction: of the clients whose call outcome InforCRM pushed, by the
-- reaction the call got (first level), how many have migrated since, how many are still in the
-- wizard, and the share that migrated. A client asked several times counts once, by its latest
-- pushed outcome.
--
--   psql -X -f sql/reports/conversion_by_reaction.sql                 (the last 90 days)
--   psql -X -v since=2026-01-01 -f sql/reports/conversion_by_reaction.sql
--
-- Reads infor_comm.infor_communication_task and the host table product_migration_clients (in
-- the schema of infor_comm.host_schema; the search_path must find it): run it as a member of
-- infor_comm_reader with SELECT on the host tables.

\if :{?since}
\else
    \set since `date -u -d '90 days ago' +%F`
\endif

WITH latest AS (
    SELECT DISTINCT ON (t.organization_id)
           t.organization_id, t.task_status,
           coalesce(nullif(btrim(t.first_level_client_reaction), ''), '(none)') AS reaction
      FROM infor_comm.infor_communication_task t
     WHERE t.task_status IS NOT NULL
       AND t.time_create >= :'since'::date
     ORDER BY t.organization_id, t.time_create DESC
)
SELECT l.reaction AS first_level_reaction,
       count(*) AS clients,
       count(*) FILTER (WHERE c.status = 'migrated') AS migrated,
       count(*) FILTER (WHERE c.status = 'in_wizard') AS still_in_wizard,
       count(*) FILTER (WHERE c.status IS NULL) AS no_longer_listed,
       round(100.0 * count(*) FILTER (WHERE c.status = 'migrated') / count(*), 1) AS migrated_percent
  FROM latest l
  LEFT JOIN product_migration_clients c ON c.organization_id = l.organization_id
 GROUP BY l.reaction
 ORDER BY clients DESC, first_level_reaction;
