-- A realistic, deterministic data set of N clients in the four host tables.
--
--   psql -v clients=10000 -v seed=0.42 -f sql/host_tables.sql -f sql/generate_data.sql
--
-- clients defaults to 10000 and seed to 0.42; the same seed gives the same data (except the
-- dates, which are relative to now). The tables are emptied first, so the script can be rerun.
-- Everything is set-based (one INSERT ... SELECT per table): a million clients take about a
-- minute on two cores.
--
-- The shape of the data:
-- - migration status: 40% in_wizard, the rest not_started, migrated, cancelled, error;
-- - wizard status of the in-wizard clients: OK, IN_PROGRESS, TO_SIGN (90% together), SIGNED,
--   REJECTED, NULL;
-- - 1 to 5 wizard status changes per client (1% have none), the latest within the last 20
--   days (about 40% of them 7 or more days ago), its status the client's current one;
-- - 2% have no mdm_id; of the others ~10% have no IBSO id, ~15% no INFOR id, ~3% an id in
--   another back system too;
-- - 1% have no clientsnapshot row, 0.5% an empty kpp, 20% no okpo.

\set ON_ERROR_STOP on
\if :{?clients}
\else
    \set clients 10000
\endif
\if :{?seed}
\else
    \set seed 0.42
\endif

SET synchronous_commit = off;
SELECT setseed(:seed) \gset

TRUNCATE product_migration_clients, wizard_status_change_log, clients_back_system_ids, clientsnapshot;

BEGIN;

-- Each client's dice, rolled once, in generation order (so the seed decides everything).
CREATE TEMP TABLE generated_client ON COMMIT DROP AS
SELECT n,
       'ORG' || lpad(n::text, 7, '0')                            AS organization_id,
       CASE WHEN random() < 0.02 THEN NULL ELSE (700000000 + n)::text END AS mdm_id,
       random()                                                  AS status_dice,
       random()                                                  AS wizard_dice,
       random()                                                  AS ids_dice,
       random()                                                  AS snapshot_dice,
       random()                                                  AS okpo_dice,
       CASE WHEN random() < 0.01 THEN 0 ELSE 1 + floor(random() * 5)::int END AS log_rows,
       20 * power(random(), 2)                                   AS latest_change_days_ago
  FROM generate_series(1, :clients) AS n;

-- product_migration_clients: the migration status, and a wizard status that fits it.
INSERT INTO product_migration_clients (organization_id, mdm_id, status, wizard_status)
SELECT organization_id, mdm_id, status,
       CASE status
           WHEN 'in_wizard' THEN CASE
               WHEN wizard_dice < 0.40 THEN 'OK'
               WHEN wizard_dice < 0.65 THEN 'IN_PROGRESS'
               WHEN wizard_dice < 0.90 THEN 'TO_SIGN'
               WHEN wizard_dice < 0.95 THEN 'SIGNED'
               WHEN wizard_dice < 0.98 THEN 'REJECTED'
           END
           WHEN 'migrated'    THEN 'SIGNED'
           WHEN 'cancelled'   THEN 'REJECTED'
           WHEN 'error'       THEN 'IN_PROGRESS'
       END
  FROM (SELECT *,
               CASE WHEN status_dice < 0.40 THEN 'in_wizard'
                    WHEN status_dice < 0.55 THEN 'not_started'
                    WHEN status_dice < 0.80 THEN 'migrated'
                    WHEN status_dice < 0.90 THEN 'cancelled'
                    ELSE 'error' END AS status
          FROM generated_client) AS c;

-- wizard_status_change_log: log_rows changes, one to five days apart, the latest one
-- latest_change_days_ago days ago with the client's current wizard status.
INSERT INTO wizard_status_change_log (organization_id, wizard_status, change_date)
SELECT c.organization_id,
       CASE WHEN k = c.log_rows THEN p.wizard_status
            WHEN k = 1 THEN 'OK'
            ELSE 'IN_PROGRESS' END,
       date_trunc('second', now() AT TIME ZONE 'Europe/Moscow')
         - make_interval(secs => (c.latest_change_days_ago + (c.log_rows - k) * (1 + (c.n % 5))) * 86400)
  FROM generated_client c
  JOIN product_migration_clients p USING (organization_id)
 CROSS JOIN LATERAL generate_series(1, c.log_rows) AS k;

-- clients_back_system_ids: IBSO and INFOR ids, some missing, some in other systems.
INSERT INTO clients_back_system_ids (mdm_id, back_system_name, back_system_id)
SELECT mdm_id, system, id
  FROM generated_client c
 CROSS JOIN LATERAL (VALUES
        ('ibso',  (100000000 + c.n)::text, c.ids_dice >= 0.10),
        ('infor', upper(substr(md5(c.n::text || ':infor'), 1, 11)), (c.ids_dice * 7 - floor(c.ids_dice * 7)) >= 0.15),
        (CASE WHEN c.n % 2 = 0 THEN 'bisquit' ELSE 'mdm2' END, 'X' || c.n, (c.ids_dice * 13 - floor(c.ids_dice * 13)) < 0.03)
       ) AS ids (system, id, present)
 WHERE c.mdm_id IS NOT NULL AND present;

-- clientsnapshot: inn, ogrn, kpp, okpo; a few clients without a row or with an empty kpp.
INSERT INTO clientsnapshot (id, tin, registry_number, kpp, okpo)
SELECT organization_id,
       (7700000000 + n)::text,
       (1027700000000 + n)::text,
       CASE WHEN snapshot_dice < 0.015 THEN '' ELSE (770001000 + n % 1000)::text END,
       CASE WHEN okpo_dice < 0.20 THEN NULL ELSE lpad((n % 100000000)::text, 8, '0') END
  FROM generated_client
 WHERE snapshot_dice >= 0.01;

COMMIT;

-- analyze=off leaves them never analyzed (scripts/bench-daily-job measures that case).
\if :{?analyze}
\else
    \set analyze on
\endif
SELECT :'analyze' <> 'off' AS analyze_now \gset
\if :analyze_now
ANALYZE product_migration_clients, wizard_status_change_log, clients_back_system_ids, clientsnapshot;
\endif

\echo 'Generated host tables:'
SELECT (SELECT count(*) FROM product_migration_clients) AS clients,
       (SELECT count(*) FROM wizard_status_change_log)  AS status_changes,
       (SELECT count(*) FROM clients_back_system_ids)    AS back_system_ids,
       (SELECT count(*) FROM clientsnapshot)             AS snapshots,
       (SELECT count(*) FROM product_migration_clients
         WHERE status = 'in_wizard' AND wizard_status IN ('OK', 'IN_PROGRESS', 'TO_SIGN')) AS in_wizard_thinking_statuses;
