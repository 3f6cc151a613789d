//! Roles and privileges: `infor_comm_relay` may call only the relay's functions;
//! `infor_comm_reader` may read the task table, the reaction table and the views.
//! Nothing in the schema is executable by PUBLIC.

use pgrx::prelude::*;

extension_sql!(
    r#"
-- Comments on the functions written in Rust (\df+ shows them).
COMMENT ON FUNCTION infor_comm.build_request(text, uuid, timestamptz) IS
    'The request JSON for one client, as the daily job would send it; an error when it cannot be built.';
COMMENT ON FUNCTION infor_comm.render_request(uuid, text, text, text, text[], text[], text, text, text, text) IS
    'Renders the request JSON from a client''s data (used by enqueue_thinking_clients).';
COMMENT ON FUNCTION infor_comm.enqueue_thinking_clients(timestamptz) IS
    'Writes a task row and an outbox row for every thinking client at as_of; returns how many. Safe to run twice or at once.';
COMMENT ON FUNCTION infor_comm.schedule_daily(text) IS
    'Creates or replaces the pg_cron job infor_comm_daily that calls infor_comm.run_daily(); returns its job id.';
COMMENT ON FUNCTION infor_comm.unschedule_daily() IS
    'Removes the pg_cron job infor_comm_daily; false when there was none.';
COMMENT ON FUNCTION infor_comm.apply_inbound(text, text) IS
    'Journals one inbound message and applies it; returns reply, push, duplicate, orphan or rejected.';
COMMENT ON FUNCTION infor_comm.apply_inbound(bytea, text) IS
    'apply_inbound for a raw body; a body that is not valid UTF-8 is journaled as bytes and rejected.';
COMMENT ON FUNCTION infor_comm.require_host_tables() IS
    'Checks that the four host tables are visible; an error naming the first missing one.';
COMMENT ON FUNCTION infor_comm.setting_thinking_days() IS 'The infor_comm.thinking_days in force, validated.';
COMMENT ON FUNCTION infor_comm.setting_timezone() IS 'The infor_comm.timezone in force, validated.';
COMMENT ON FUNCTION infor_comm.setting_response_timeout() IS 'The infor_comm.response_timeout in force, validated.';

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
"#,
    name = "roles",
    finalize,
);
