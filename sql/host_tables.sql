-- Host tables: the four tables of the bank's application that infor_comm reads.
--
-- The bank's application owns these tables; the extension only reads them, and only the
-- columns below (real tables have more). Tests and the demo create them from this file.
-- The indexes at the end are the ones the daily selection needs; see
-- docs/host-table-indexes.md for why each exists. Real deployments should have them too.
--
-- The file is idempotent: it can be run on a database that already has the tables.

CREATE TABLE IF NOT EXISTS product_migration_clients (
    organization_id varchar PRIMARY KEY,   -- the "EHD id" of the client
    mdm_id          varchar,
    status          varchar,               -- migration status, e.g. 'in_wizard'
    wizard_status   varchar                -- 'OK', 'IN_PROGRESS', 'TO_SIGN', ...
);

CREATE TABLE IF NOT EXISTS wizard_status_change_log (
    organization_id varchar NOT NULL,
    wizard_status   varchar,
    change_date     timestamp NOT NULL     -- wall time in infor_comm.timezone
);

CREATE TABLE IF NOT EXISTS clients_back_system_ids (
    mdm_id           varchar NOT NULL,
    back_system_name varchar NOT NULL,     -- 'ibso', 'infor', others
    back_system_id   varchar NOT NULL
);

CREATE TABLE IF NOT EXISTS clientsnapshot (
    id              varchar PRIMARY KEY,   -- = product_migration_clients.organization_id
    tin             varchar,
    registry_number varchar,
    kpp             varchar,
    okpo            varchar
);

-- Recommended indexes (see docs/host-table-indexes.md).
-- The clients who are in the wizard, in one of the three thinking wizard statuses.
CREATE INDEX IF NOT EXISTS product_migration_clients_thinking_idx
    ON product_migration_clients (organization_id)
    WHERE status = 'in_wizard' AND wizard_status IN ('OK', 'IN_PROGRESS', 'TO_SIGN');
-- The latest wizard status change of one client.
CREATE INDEX IF NOT EXISTS wizard_status_change_log_org_date_idx
    ON wizard_status_change_log (organization_id, change_date DESC);
-- The IBSO and INFOR ids of one MDM id.
CREATE INDEX IF NOT EXISTS clients_back_system_ids_mdm_idx
    ON clients_back_system_ids (mdm_id, back_system_name);

-- infor_comm reads these tables as the role infor_comm_writer (docs/security.md). CREATE
-- EXTENSION grants it the host tables that exist then; tables created afterwards are granted here.
DO $grant$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'infor_comm_writer') THEN
        GRANT SELECT ON product_migration_clients, wizard_status_change_log, clients_back_system_ids,
                        clientsnapshot TO infor_comm_writer;
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO infor_comm_writer', pg_catalog.current_schema());
    END IF;
END
$grant$;
