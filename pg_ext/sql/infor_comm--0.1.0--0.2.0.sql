-- infor_comm 0.1.0 → 0.2.0, applied by ALTER EXTENSION infor_comm UPDATE in one transaction.
-- Every change of the schema or of a SQL function after 0.1.0 is here, in the order it was made.
-- Never edited once 0.2.0 is released. docs/upgrading.md says how to add to it.
\echo Use "ALTER EXTENSION infor_comm UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- Where the host tables are (docs/contract.md, "Where the host tables are"): the setting
-- infor_comm.host_schema, schema-qualified names, and every function with a pinned search_path.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION infor_comm."setting_host_schema"() RETURNS TEXT
STRICT STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'setting_host_schema_wrapper';
COMMENT ON FUNCTION infor_comm.setting_host_schema() IS 'The infor_comm.host_schema in force, validated.';

CREATE FUNCTION infor_comm."request_skip_reason"(
    "organization_id" TEXT,
    "has_snapshot" bool,
    "inn" TEXT,
    "ogrn" TEXT,
    "kpp" TEXT,
    "change_date_unknown" bool DEFAULT false
) RETURNS TEXT
IMMUTABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'request_skip_reason_wrapper';
COMMENT ON FUNCTION infor_comm.request_skip_reason(text, boolean, text, text, text, boolean) IS
    'Why a client''s request cannot be built or stored (the skip_reason of thinking_clients); NULL when it can.';

CREATE FUNCTION infor_comm."thinking_clients_query"() RETURNS TEXT
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'thinking_clients_query_wrapper';
COMMENT ON FUNCTION infor_comm.thinking_clients_query() IS
    'The query of thinking_clients_at for the host schema in force ($1 is as_of), to read or EXPLAIN.';

CREATE OR REPLACE FUNCTION infor_comm.thinking_clients_at(as_of timestamptz)
RETURNS TABLE (
    organization_id varchar,
    mdm_id          varchar,
    wizard_status   varchar,
    status_since    timestamp,
    full_days       integer,
    skip_reason     text
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $body$
BEGIN
    RETURN QUERY EXECUTE infor_comm.thinking_clients_query() USING as_of;
END
$body$;

-- The back-system ids are read inside the daily statement now (from infor_comm.host_schema).
DROP FUNCTION infor_comm.back_system_ids(varchar);

ALTER FUNCTION infor_comm.build_request(text, uuid, timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.render_request(uuid, text, text, text, text[], text[], text, text, text, text)
    SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.require_host_tables() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.setting_thinking_days() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.setting_timezone() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.setting_response_timeout() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.unschedule_daily() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.format_request_dt(timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION infor_comm.reaction_level(text) SET search_path = pg_catalog, pg_temp;
ALTER PROCEDURE infor_comm.run_daily() SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION infor_comm.require_host_tables() IS
    'Checks that the four host tables exist in infor_comm.host_schema; an error naming the first missing one.';

-- ---------------------------------------------------------------------------------------------
-- One daily job per database, run as a chosen role; schedule_daily(NULL) is an error.
-- ---------------------------------------------------------------------------------------------
DROP FUNCTION infor_comm.schedule_daily(text);
CREATE FUNCTION infor_comm."schedule_daily"(
    "cron" TEXT DEFAULT '0 9 * * *',
    "run_as" TEXT DEFAULT NULL
) RETURNS bigint
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'schedule_daily_wrapper';
REVOKE ALL ON FUNCTION infor_comm.schedule_daily(text, text) FROM PUBLIC;
COMMENT ON FUNCTION infor_comm.schedule_daily(text, text) IS
    'Creates or replaces the one pg_cron job infor_comm_daily of this database, which calls infor_comm.run_daily() as run_as (default: the current role); returns its job id.';
COMMENT ON FUNCTION infor_comm.unschedule_daily() IS
    'Removes the pg_cron job infor_comm_daily of this database, whoever scheduled it; false when there was none.';

-- ---------------------------------------------------------------------------------------------
-- A NULL body is journaled as NULL; a late '0' withdraws the client's newer unpublished request.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE infor_comm.inbox DROP CONSTRAINT inbox_one_body;
ALTER TABLE infor_comm.inbox ADD CONSTRAINT inbox_one_body CHECK (body IS NULL OR body_bytes IS NULL);
COMMENT ON COLUMN infor_comm.inbox.body IS 'The message as received (NULL when it was not valid UTF-8: see body_bytes; both NULL: the body was NULL).';

ALTER TABLE infor_comm.outbox DROP CONSTRAINT outbox_close_reason_check;
ALTER TABLE infor_comm.outbox ADD CONSTRAINT outbox_close_reason_check
    CHECK (close_reason IN ('answered', 'timed_out', 'withdrawn'));
COMMENT ON COLUMN infor_comm.outbox.close_reason IS 'answered; timed_out (no reply within infor_comm.response_timeout); withdrawn (never published: an older request of the client got its task).';

-- ---------------------------------------------------------------------------------------------
-- The reader sees the outbox's delivery state, not its payload; the daily job's own role.
-- ---------------------------------------------------------------------------------------------
CREATE VIEW infor_comm.outbox_delivery AS
SELECT outbox_id, request_id, task_row_id, organization_id, created_at, available_at, attempts,
       last_error, published_at, closed_at, close_reason
  FROM infor_comm.outbox;
COMMENT ON VIEW infor_comm.outbox_delivery IS
    'The outbox without the request payload: when each request was created, published and closed, and why.';
REVOKE ALL ON infor_comm.outbox_delivery FROM PUBLIC;

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'infor_comm_job') THEN
        BEGIN
            CREATE ROLE infor_comm_job NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$roles$;
GRANT USAGE ON SCHEMA infor_comm TO infor_comm_job;

REVOKE SELECT ON infor_comm.outbox FROM infor_comm_reader;
GRANT SELECT (outbox_id, request_id, task_row_id, organization_id, created_at, available_at,
              attempts, last_error, published_at, closed_at, close_reason)
    ON infor_comm.outbox TO infor_comm_reader;
GRANT SELECT ON infor_comm.outbox_delivery TO infor_comm_reader;
GRANT EXECUTE ON FUNCTION
    infor_comm.thinking_clients_query(),
    infor_comm.request_skip_reason(text, boolean, text, text, text, boolean),
    infor_comm.setting_host_schema()
TO infor_comm_reader;
REVOKE ALL ON FUNCTION
    infor_comm.thinking_clients_query(),
    infor_comm.request_skip_reason(text, boolean, text, text, text, boolean),
    infor_comm.setting_host_schema()
FROM PUBLIC;

GRANT EXECUTE ON ROUTINE
    infor_comm.run_daily(),
    infor_comm.enqueue_thinking_clients(timestamptz),
    infor_comm.thinking_clients_at(timestamptz),
    infor_comm.thinking_clients_query(),
    infor_comm.request_skip_reason(text, boolean, text, text, text, boolean),
    infor_comm.render_request(uuid, text, text, text, text[], text[], text, text, text, text),
    infor_comm.format_request_dt(timestamptz),
    infor_comm.setting_thinking_days(),
    infor_comm.setting_timezone(),
    infor_comm.setting_response_timeout(),
    infor_comm.setting_host_schema()
TO infor_comm_job;
GRANT SELECT, INSERT ON infor_comm.infor_communication_task TO infor_comm_job;
GRANT SELECT, INSERT, UPDATE ON infor_comm.outbox TO infor_comm_job;

-- ---------------------------------------------------------------------------------------------
-- pg_dump dumps the rows of the extension's tables and the state of their identity sequences.
-- ---------------------------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('infor_comm.infor_communication_task', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox_outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.inbox', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.inbox_inbox_id_seq', '');

-- ---------------------------------------------------------------------------------------------
-- Hostile deliveries: a message id that is not text, an oversized body, a message set aside.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE infor_comm.inbox
    ADD COLUMN message_id_bytes bytea,
    ADD COLUMN body_size bigint,
    ADD COLUMN body_sha256 bytea,
    ADD CONSTRAINT inbox_one_message_id CHECK (message_id IS NULL OR message_id_bytes IS NULL),
    ADD CONSTRAINT inbox_oversized_check
        CHECK ((body_size IS NULL) = (body_sha256 IS NULL)
               AND (body_sha256 IS NULL OR (outcome = 'rejected' AND body IS NULL)));
COMMENT ON COLUMN infor_comm.inbox.message_id IS 'The broker''s message id, when it gave one that is text (else see message_id_bytes).';
COMMENT ON COLUMN infor_comm.inbox.message_id_bytes IS 'The broker''s message id as it came, when it was not text PostgreSQL can store (a NUL byte, or not UTF-8); message_id is then NULL.';
COMMENT ON COLUMN infor_comm.inbox.body_size IS 'For a body over the relay''s size limit: its size in bytes (body_bytes keeps its first 64 KiB).';
COMMENT ON COLUMN infor_comm.inbox.body_sha256 IS 'For a body over the relay''s size limit: the SHA-256 of the whole body.';

CREATE FUNCTION infor_comm."apply_delivery"(
	"body" bytea,
	"message_id" bytea
) RETURNS TEXT
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'apply_delivery_wrapper';
COMMENT ON FUNCTION infor_comm.apply_delivery(bytea, bytea) IS
    'apply_inbound for a body and a message id as the broker delivered them (bytes); an id that is not valid text is kept as bytes.';

CREATE FUNCTION infor_comm."reject_oversized"(
	"head" bytea,
	"message_id" bytea,
	"body_size" bigint,
	"body_sha256" bytea,
	"size_limit" bigint
) RETURNS TEXT
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'reject_oversized_wrapper';
COMMENT ON FUNCTION infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint) IS
    'Journals an inbound body over the relay''s size limit as rejected: its size, SHA-256 and first 64 KiB; returns rejected.';

CREATE FUNCTION infor_comm."set_aside_inbound"(
	"body" bytea,
	"message_id" bytea,
	"attempts" INT,
	"error" TEXT
) RETURNS TEXT
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_aside_inbound_wrapper';
COMMENT ON FUNCTION infor_comm.set_aside_inbound(bytea, bytea, integer, text) IS
    'Journals an inbound message whose apply kept failing as rejected, with the attempts and the last error, without applying it.';

REVOKE ALL ON FUNCTION
    infor_comm.apply_delivery(bytea, bytea),
    infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint),
    infor_comm.set_aside_inbound(bytea, bytea, integer, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    infor_comm.apply_delivery(bytea, bytea),
    infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint),
    infor_comm.set_aside_inbound(bytea, bytea, integer, text)
TO infor_comm_relay;
