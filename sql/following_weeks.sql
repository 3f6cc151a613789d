-- The bank's application in the weeks after the daily job, for the demo: it moves some of the
-- clients the job selected out of the wizard (status 'migrated', wizard status 'SIGNED') and
-- logs that wizard status change, 2 to 27 days after the day they were selected. The share
-- depends on what happened to the client, so that infor_comm.uplift has something to find:
--   - called, first-level reaction "Дозвон - планирует миграцию": 55%;
--   - called, any other reaction, or no call made: 20%; "Недозвон" (not reached): 12%;
--   - held out (infor_comm.holdout), or the CRM did not find the client: 10%, the base rate.
-- Writes the host tables only, never the extension's tables (the extension never writes the
-- host tables). Deterministic: each client's dice come from the MD5 of its organization_id.
--   psql -v ON_ERROR_STOP=1 -f sql/following_weeks.sql
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE following_weeks ON COMMIT DROP AS
WITH selected AS (
    SELECT DISTINCT ON (t.organization_id)
           t.organization_id, t.time_create::date AS selected_on,
           CASE WHEN t.status_code IS DISTINCT FROM '0' THEN 0.10
                WHEN t.first_level_client_reaction = 'Дозвон - планирует миграцию' THEN 0.55
                WHEN t.first_level_client_reaction = 'Недозвон' THEN 0.12
                ELSE 0.20 END AS rate
      FROM infor_comm.infor_communication_task t
     ORDER BY t.organization_id, coalesce(t.status_code = '0', false) DESC, t.time_create DESC
), held AS (
    SELECT h.organization_id, h.first_selected_on AS selected_on, 0.10 AS rate
      FROM infor_comm.holdout h
     WHERE NOT EXISTS (SELECT 1 FROM selected s WHERE s.organization_id = h.organization_id)
), everyone AS (
    SELECT * FROM selected UNION ALL SELECT * FROM held
)
SELECT e.organization_id, e.selected_on,
       ('x' || substr(md5(e.organization_id || ':migrates'), 1, 8))::bit(32)::bigint / 4294967296.0 < e.rate AS migrates,
       2 + (('x' || substr(md5(e.organization_id || ':when'), 1, 8))::bit(32)::bigint % 26) AS after_days
  FROM everyone e;

UPDATE product_migration_clients c
   SET status = 'migrated', wizard_status = 'SIGNED'
  FROM following_weeks f
 WHERE f.organization_id = c.organization_id AND f.migrates AND c.status = 'in_wizard';
INSERT INTO wizard_status_change_log (organization_id, wizard_status, change_date)
SELECT f.organization_id, 'SIGNED', f.selected_on + make_interval(days => f.after_days::int) + time '11:00'
  FROM following_weeks f
 WHERE f.migrates;
SELECT count(*) FILTER (WHERE migrates) AS "clients who migrated in the following weeks",
       count(*) AS "clients selected"
  FROM following_weeks;
COMMIT;
