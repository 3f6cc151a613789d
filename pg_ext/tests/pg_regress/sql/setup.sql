-- The regression database: the extension and the bank's four host tables, as a DBA creates them.
CREATE EXTENSION infor_comm;
CREATE TABLE product_migration_clients (
    organization_id varchar PRIMARY KEY,
    mdm_id          varchar,
    status          varchar,
    wizard_status   varchar
);
CREATE TABLE wizard_status_change_log (
    organization_id varchar NOT NULL,
    wizard_status   varchar,
    change_date     timestamp
);
CREATE TABLE clients_back_system_ids (
    mdm_id           varchar NOT NULL,
    back_system_name varchar NOT NULL,
    back_system_id   varchar NOT NULL
);
CREATE TABLE clientsnapshot (
    id              varchar PRIMARY KEY,
    tin             varchar,
    registry_number varchar,
    kpp             varchar,
    okpo            varchar
);
-- The daily job reads them as infor_comm_writer: CREATE EXTENSION grants it the host tables that
-- exist then; these were created after it.
SELECT infor_comm.grant_host_tables_to_writer();
