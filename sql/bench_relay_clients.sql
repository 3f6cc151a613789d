-- :clients thinking clients for the relay benchmarks of scripts/bench, each with every
-- back-system id and an okpo, so that each request is about 410 bytes, like a real one:
--
--   psql -v clients=50000 -f sql/host_tables.sql -f sql/bench_relay_clients.sql
--
-- The tables are emptied first. Every client qualifies when the daily job runs now.

\set ON_ERROR_STOP on
\if :{?clients}
\else
    \set clients 50000
\endif

TRUNCATE product_migration_clients, wizard_status_change_log, clients_back_system_ids, clientsnapshot;
INSERT INTO product_migration_clients (organization_id, mdm_id, status, wizard_status)
SELECT '1' || lpad(n::text, 23, '0'), '7' || lpad(n::text, 23, '0'), 'in_wizard', 'IN_PROGRESS'
  FROM generate_series(1, :clients) n;
INSERT INTO wizard_status_change_log (organization_id, wizard_status, change_date)
SELECT organization_id, 'IN_PROGRESS', (now() - interval '10 days') AT TIME ZONE 'Europe/Moscow'
  FROM product_migration_clients;
INSERT INTO clients_back_system_ids (mdm_id, back_system_name, back_system_id)
SELECT mdm_id, 'ibso', '35' || right(organization_id, 22) FROM product_migration_clients
UNION ALL
SELECT mdm_id, 'infor', 'A6UJ9' || right(organization_id, 20) FROM product_migration_clients;
INSERT INTO clientsnapshot (id, tin, registry_number, kpp, okpo)
SELECT organization_id, '771' || right(organization_id, 7), '1237700' || right(organization_id, 6),
       '770101001', '0' || right(organization_id, 9)
  FROM product_migration_clients;
ANALYZE product_migration_clients, wizard_status_change_log, clients_back_system_ids, clientsnapshot;
