-- The roles infor_comm_relay, infor_comm_reader and infor_comm_job, and every privilege of the
-- schema.
-- Runs last, when every object exists.

-- The three roles (cluster-wide; kept when the extension is dropped). Another database may be
-- creating them at the same moment: that is fine.
DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['infor_comm_relay', 'infor_comm_reader', 'infor_comm_job'] LOOP
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
GRANT USAGE ON SCHEMA infor_comm TO infor_comm_relay, infor_comm_reader, infor_comm_job;

-- The relay: its functions and nothing else (they are SECURITY DEFINER).
GRANT EXECUTE ON FUNCTION
    infor_comm.claim_outbox(integer, interval),
    infor_comm.lock_outbox(integer, bigint),
    infor_comm.mark_published(bigint[]),
    infor_comm.mark_failed(bigint, text),
    infor_comm.apply_inbound(text, text),
    infor_comm.apply_inbound(bytea, text),
    infor_comm.apply_delivery(bytea, bytea),
    infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint),
    infor_comm.set_aside_inbound(bytea, bytea, integer, text),
    infor_comm.outbox_backlog()
TO infor_comm_relay;

-- The reader: the task table, the reports and the views; the outbox's delivery state but not
-- its payload (inn, ogrn, kpp, okpo, back-system ids).
GRANT SELECT ON
    infor_comm.infor_communication_task,
    infor_comm.client_reaction,
    infor_comm.thinking_clients,
    infor_comm.task_reactions,
    infor_comm.unknown_reaction_pushes,
    infor_comm.outbox_delivery,
    infor_comm.daily_funnel,
    infor_comm.daily_runs,
    infor_comm.health
TO infor_comm_reader;
GRANT SELECT (outbox_id, request_id, task_row_id, organization_id, created_at, available_at,
              attempts, last_error, published_at, closed_at, close_reason)
    ON infor_comm.outbox TO infor_comm_reader;
GRANT SELECT ON infor_comm.outbox_open TO infor_comm_reader;
-- thinking_clients and effectiveness are evaluated with the reader's own rights: they read the
-- outbox's delivery state and its open requests, call these functions, and need USAGE on infor_comm.host_schema and
-- SELECT on the bank's host tables, which the bank grants. client_history and health_report are
-- SECURITY DEFINER: they read the inbox (never the request payload) and pg_cron's tables.
GRANT EXECUTE ON FUNCTION
    infor_comm.thinking_clients_at(timestamptz),
    infor_comm.thinking_clients_query(),
    infor_comm.request_skip_reason(text, boolean, text, text, text, boolean),
    infor_comm.setting_thinking_days(),
    infor_comm.setting_timezone(),
    infor_comm.setting_response_timeout(),
    infor_comm.setting_host_schema(),
    infor_comm.reaction_level(text),
    infor_comm.effectiveness(date, date),
    infor_comm.effectiveness_query(),
    infor_comm.client_history(text),
    infor_comm.health_report()
TO infor_comm_reader;

-- The daily job, when it runs as a role that is not a superuser (schedule_daily's run_as): the
-- least it needs on the extension's side (it renders the requests in Rust: not render_request,
-- request_skip_reason nor the selection's SQL functions), and its run history. The bank grants
-- USAGE on infor_comm.host_schema and SELECT on the four host tables (docs/security.md).
-- (outbox_close_is_valid: the outbox's CHECK calls it with the rights of whoever writes the outbox.)
GRANT EXECUTE ON ROUTINE
    infor_comm.run_daily(),
    infor_comm.daily_run_can_commit(),
    infor_comm.daily_run_start(),
    infor_comm.daily_run_enqueue(bigint),
    infor_comm.daily_run_failed(bigint, text, text),
    infor_comm.daily_run_raise(text, text, text, text),
    infor_comm.enqueue_thinking_clients(timestamptz),
    infor_comm.format_request_dt(timestamptz),
    infor_comm.setting_thinking_days(),
    infor_comm.setting_timezone(),
    infor_comm.setting_response_timeout(),
    infor_comm.setting_host_schema(),
    infor_comm.outbox_close_is_valid(timestamptz, text)
TO infor_comm_job;
GRANT SELECT, INSERT ON infor_comm.infor_communication_task TO infor_comm_job;
GRANT SELECT, INSERT, UPDATE ON infor_comm.outbox TO infor_comm_job;
GRANT SELECT, INSERT, DELETE ON infor_comm.outbox_pending TO infor_comm_job;
GRANT SELECT, INSERT, DELETE ON infor_comm.outbox_open TO infor_comm_job;
GRANT SELECT, INSERT, UPDATE ON infor_comm.daily_runs TO infor_comm_job;
