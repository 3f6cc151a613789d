-- Who is a thinking client: thinking_clients_at(as_of) and the view thinking_clients.

-- Who qualifies at as_of; the view thinking_clients reads this. The query is
-- infor_comm.thinking_clients_query(): the host tables of infor_comm.host_schema, named
-- schema-qualified, and nothing resolved through the caller's search_path. Without JIT: the
-- selection is index probes, which compiling does not speed up (docs/selection-plan.md).
CREATE FUNCTION infor_comm.thinking_clients_at(as_of timestamptz)
RETURNS TABLE (
    organization_id varchar,
    mdm_id          varchar,
    wizard_status   varchar,
    status_since    timestamp,
    full_days       integer,
    skip_reason     text,
    holdout_group   text
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $body$
BEGIN
    RETURN QUERY EXECUTE infor_comm.thinking_clients_query() USING as_of;
END
$body$;

COMMENT ON FUNCTION infor_comm.thinking_clients_at(timestamptz) IS
    'The thinking clients at as_of: who the daily job asks InforCRM to call, with skip_reason when a request cannot be built.';

-- Who qualifies now.
CREATE VIEW infor_comm.thinking_clients AS
    SELECT organization_id, status_since, full_days, skip_reason, mdm_id, wizard_status, holdout_group
      FROM infor_comm.thinking_clients_at(now());

COMMENT ON VIEW infor_comm.thinking_clients IS
    'The thinking clients now: organization_id, status_since (latest wizard status change), full_days, skip_reason (NULL when the request can be sent), and holdout_group (held out or asked, for a client that can be sent: infor_comm.holdout_percent).';
