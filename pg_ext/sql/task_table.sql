-- infor_comm.infor_communication_task: the record analysts read, its indexes and its trigger.

-- The record of every request to InforCRM, its reply and the outcome of the call.
-- Columns and types exactly as in the bank's specification ("Создание таблицы").
CREATE TABLE infor_comm.infor_communication_task (
    id                           varchar(200) NOT NULL PRIMARY KEY,
    vtbc_request_id              varchar(200) NOT NULL UNIQUE,
    infor_response_id            varchar(200),
    status_code                  varchar(200),
    organization_id              varchar(200) NOT NULL,
    request_date                 varchar(200) NOT NULL,
    task_id                      varchar(200),
    task_status                  varchar(200),
    task_execution_type          varchar(200),
    task_execution_description   varchar(200),
    task_close_date              varchar(200),
    first_level_client_reaction  varchar(200),
    second_level_client_reaction varchar(200),
    third_level_client_reaction  varchar(200),
    time_create                  timestamp NOT NULL,
    time_update                  timestamp
);
COMMENT ON TABLE infor_comm.infor_communication_task IS
    'One row per request sent to InforCRM: the request, the reply (status_code) and the outcome of the call (the push).';
COMMENT ON COLUMN infor_comm.infor_communication_task.id IS 'Row id (a UUID, as text).';
COMMENT ON COLUMN infor_comm.infor_communication_task.vtbc_request_id IS 'requestID of our request; replies carry it as replyUID.';
COMMENT ON COLUMN infor_comm.infor_communication_task.infor_response_id IS 'requestID of InforCRM''s reply; pushes carry it as requestID.';
COMMENT ON COLUMN infor_comm.infor_communication_task.status_code IS '0 task created, 1 client not found, 2 other error; NULL until the reply.';
COMMENT ON COLUMN infor_comm.infor_communication_task.organization_id IS 'The client (product_migration_clients.organization_id, the EHD id).';
COMMENT ON COLUMN infor_comm.infor_communication_task.request_date IS 'dt of the request, as sent.';
COMMENT ON COLUMN infor_comm.infor_communication_task.task_id IS 'InforCRM''s task id (taskID), when status_code is 0.';
COMMENT ON COLUMN infor_comm.infor_communication_task.task_status IS '3 processed, 5 not processed (taskStatus of the push).';
COMMENT ON COLUMN infor_comm.infor_communication_task.time_create IS 'When the row was written, wall time in infor_comm.timezone.';
COMMENT ON COLUMN infor_comm.infor_communication_task.time_update IS 'When the row last changed, wall time in infor_comm.timezone.';

-- Rule 2 of the selection (no created task) and the one-day block after a failed request.
CREATE INDEX infor_communication_task_organization_idx
    ON infor_comm.infor_communication_task (organization_id, status_code);

-- Replies and pushes find their task row by these.
CREATE INDEX infor_communication_task_task_id_idx
    ON infor_comm.infor_communication_task (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX infor_communication_task_response_idx
    ON infor_comm.infor_communication_task (infor_response_id) WHERE infor_response_id IS NOT NULL;

-- time_update is kept by the database itself, as the specification asks.
CREATE FUNCTION infor_comm.touch_time_update() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.time_update := now() AT TIME ZONE infor_comm.setting_timezone();
    RETURN NEW;
END
$$;
CREATE TRIGGER infor_communication_task_touch
    BEFORE UPDATE ON infor_comm.infor_communication_task
    FOR EACH ROW EXECUTE FUNCTION infor_comm.touch_time_update();

-- pg_dump dumps the rows of this table (an extension's own tables are otherwise left out).
SELECT pg_catalog.pg_extension_config_dump('infor_comm.infor_communication_task', '');
