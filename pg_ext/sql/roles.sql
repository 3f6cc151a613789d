-- The roles infor_comm_relay and infor_comm_reader, and every privilege of the schema.
-- Runs last, when every object exists.

-- The two roles (cluster-wide; kept when the extension is dropped). Another database may be
-- creating them at the same moment: that is fine.
DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['infor_comm_relay', 'infor_comm_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$roles$;

REVOKE ALL ON ALL ROUTINES IN SCHEMA infor_comm FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA infor_comm FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA infor_comm FROM PUBLIC;
GRANT USAGE ON SCHEMA infor_comm TO infor_comm_relay, infor_comm_reader;

GRANT EXECUTE ON FUNCTION
    infor_comm.claim_outbox(integer, interval),
    infor_comm.mark_published(bigint[]),
    infor_comm.mark_failed(bigint, text),
    infor_comm.apply_inbound(text, text),
    infor_comm.apply_inbound(bytea, text),
    infor_comm.outbox_backlog()
TO infor_comm_relay;

GRANT SELECT ON
    infor_comm.infor_communication_task,
    infor_comm.outbox,
    infor_comm.client_reaction,
    infor_comm.thinking_clients,
    infor_comm.task_reactions,
    infor_comm.unknown_reaction_pushes
TO infor_comm_reader;
-- thinking_clients is evaluated with the reader's own rights (its selection is inlined so that
-- the planner can use the indexes): it reads the outbox, calls these functions, and needs
-- SELECT on the bank's host tables, which the bank grants.
GRANT EXECUTE ON FUNCTION
    infor_comm.thinking_clients_at(timestamptz),
    infor_comm.setting_thinking_days(),
    infor_comm.setting_timezone(),
    infor_comm.setting_response_timeout(),
    infor_comm.reaction_level(text)
TO infor_comm_reader;
