//! Roles and privileges: `infor_comm_relay` may call only the relay's functions;
//! `infor_comm_reader` may read the task table, the reaction table and the views.
//! Nothing in the schema is executable by PUBLIC.

use pgrx::prelude::*;

extension_sql_file!("../sql/roles.sql", name = "roles", finalize);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn the_relay_role_may_call_its_functions_and_nothing_else() {
        let request_id = enqueued_request("ORG1");
        run("CREATE ROLE test_relay LOGIN IN ROLE infor_comm_relay");
        let calls = [
            "SELECT * FROM infor_comm.claim_outbox(10, '1 minute')".to_string(),
            "SELECT * FROM infor_comm.lock_outbox(10)".to_string(),
            "SELECT infor_comm.mark_published(ARRAY[1::bigint])".to_string(),
            "SELECT infor_comm.mark_failed(1, 'x')".to_string(),
            "SELECT * FROM infor_comm.outbox_backlog()".to_string(),
            format!(
                "SELECT infor_comm.apply_inbound('{}')",
                success_reply(&request_id)
            ),
            "SELECT infor_comm.apply_inbound('\\x00'::bytea, 'm')".to_string(),
        ];
        for sql in &calls {
            assert_eq!(as_role("test_relay", sql), "ok", "{sql}");
        }
        let denied = [
            (
                "SELECT * FROM infor_comm.outbox",
                "permission denied for table outbox",
            ),
            (
                "SELECT * FROM infor_comm.inbox",
                "permission denied for table inbox",
            ),
            (
                "SELECT payload FROM infor_comm.outbox",
                "permission denied for table outbox",
            ),
            (
                "SELECT * FROM infor_comm.infor_communication_task",
                "permission denied for table infor_communication_task",
            ),
            (
                "SELECT * FROM product_migration_clients",
                "permission denied for table product_migration_clients",
            ),
            (
                "SELECT * FROM clientsnapshot",
                "permission denied for table clientsnapshot",
            ),
            (
                "SELECT infor_comm.enqueue_thinking_clients()",
                "permission denied for function enqueue_thinking_clients",
            ),
            (
                "SELECT infor_comm.build_request('ORG1', gen_random_uuid(), now())",
                "permission denied for function build_request",
            ),
            (
                "CALL infor_comm.run_daily()",
                "permission denied for procedure run_daily",
            ),
            (
                "UPDATE infor_comm.outbox SET attempts = 0",
                "permission denied for table outbox",
            ),
        ];
        for (sql, message) in denied {
            assert_eq!(as_role("test_relay", sql), message, "{sql}");
        }
    }

    #[pg_test]
    fn the_reader_role_reads_the_task_table_and_the_views_only() {
        enqueued_request("ORG1");
        run("CREATE ROLE test_reader LOGIN IN ROLE infor_comm_reader;
             GRANT SELECT ON product_migration_clients, wizard_status_change_log,
                             clients_back_system_ids, clientsnapshot TO test_reader;");
        for sql in [
            "SELECT * FROM infor_comm.infor_communication_task",
            "SELECT * FROM infor_comm.client_reaction",
            "SELECT * FROM infor_comm.task_reactions",
            "SELECT * FROM infor_comm.unknown_reaction_pushes",
            "SELECT * FROM infor_comm.thinking_clients",
            "SELECT * FROM infor_comm.outbox_delivery",
            "SELECT organization_id, published_at, closed_at, close_reason FROM infor_comm.outbox",
        ] {
            assert_eq!(as_role("test_reader", sql), "ok", "{sql}");
        }
        for (sql, message) in [
            (
                "SELECT * FROM infor_comm.inbox",
                "permission denied for table inbox",
            ),
            (
                "SELECT payload FROM infor_comm.outbox",
                "permission denied for table outbox",
            ),
            (
                "SELECT infor_comm.apply_inbound('{}')",
                "permission denied for function apply_inbound",
            ),
            (
                "UPDATE infor_comm.outbox SET attempts = 0",
                "permission denied for table outbox",
            ),
            (
                "SELECT * FROM infor_comm.claim_outbox(1, '1 minute')",
                "permission denied for function claim_outbox",
            ),
            (
                "DELETE FROM infor_comm.infor_communication_task",
                "permission denied for table infor_communication_task",
            ),
        ] {
            assert_eq!(as_role("test_reader", sql), message, "{sql}");
        }
    }

    #[pg_test]
    fn look_alike_objects_in_public_and_pg_temp_do_not_run_in_the_relays_functions() {
        let request_id = enqueued_request("ORG1");
        run("CREATE ROLE test_mallory LOGIN IN ROLE infor_comm_relay;
             GRANT CREATE ON SCHEMA public TO test_mallory;
             CREATE TABLE public.tripwire (what text);
             GRANT INSERT ON public.tripwire TO test_mallory;");
        run("SET LOCAL ROLE test_mallory");
        // Look-alikes of everything the relay's functions use, all of which trip a wire.
        run(r#"
            CREATE FUNCTION public.trip(what text) RETURNS boolean LANGUAGE sql
                AS $$ INSERT INTO public.tripwire VALUES (what) RETURNING true $$;
            CREATE FUNCTION public.hashtext(text) RETURNS integer LANGUAGE sql
                AS $$ SELECT CASE WHEN public.trip('hashtext') THEN 1 END $$;
            CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql
                AS $$ SELECT CASE WHEN public.trip('now') THEN pg_catalog.now() END $$;
            CREATE FUNCTION public.pg_advisory_xact_lock(integer, integer) RETURNS void LANGUAGE sql
                AS $$ SELECT CASE WHEN public.trip('lock') THEN NULL END $$;
            CREATE FUNCTION public.text_eq_trap(text, text) RETURNS boolean LANGUAGE sql
                AS $$ SELECT public.trip('operator') $$;
            CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_eq_trap);
            CREATE FUNCTION public.varchar_eq_trap(varchar, varchar) RETURNS boolean LANGUAGE sql
                AS $$ SELECT public.trip('varchar operator') $$;
            CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.varchar_eq_trap);
            CREATE TEMP TABLE infor_communication_task (id text, vtbc_request_id text);
            CREATE TEMP TABLE outbox (outbox_id bigint);
            CREATE TEMP TABLE inbox (inbox_id bigint);
            SET search_path = public, pg_temp;
        "#);
        assert_eq!(
            Spi::get_one_with_args::<String>(
                "SELECT infor_comm.apply_inbound($1)",
                &[success_reply(&request_id).into()]
            )
            .expect("apply")
            .as_deref(),
            Some("reply")
        );
        run("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')");
        run("SELECT infor_comm.mark_failed(1, 'x'), infor_comm.mark_published(ARRAY[1::bigint])");
        run("SELECT * FROM infor_comm.outbox_backlog()");
        run("RESET ROLE; RESET search_path");
        assert_eq!(
            int("SELECT count(*) FROM public.tripwire"),
            0,
            "no look-alike ran"
        );
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|123456789"));
    }

    #[pg_test]
    fn the_daily_job_runs_as_a_role_with_the_least_privileges() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        run("CREATE ROLE test_job LOGIN IN ROLE infor_comm_job;
             GRANT USAGE ON SCHEMA public TO test_job;
             GRANT SELECT ON product_migration_clients, wizard_status_change_log,
                             clients_back_system_ids, clientsnapshot TO test_job;");
        assert_eq!(
            as_role(
                "test_job",
                "SELECT infor_comm.enqueue_thinking_clients('2026-11-20 12:00:00+03')"
            ),
            "ok"
        );
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox"), 1);
        // Nothing more than that: not the relay's functions, not the inbox, not the payload.
        for (sql, message) in [
            (
                "SELECT * FROM infor_comm.inbox",
                "permission denied for table inbox",
            ),
            (
                "SELECT infor_comm.apply_inbound('{}')",
                "permission denied for function apply_inbound",
            ),
            (
                "SELECT infor_comm.schedule_daily()",
                "permission denied for function schedule_daily",
            ),
            (
                "DELETE FROM infor_comm.outbox",
                "permission denied for table outbox",
            ),
        ] {
            assert_eq!(as_role("test_job", sql), message, "{sql}");
        }
        run("REVOKE SELECT ON clientsnapshot FROM test_job");
        assert_eq!(
            as_role("test_job", "CALL infor_comm.run_daily()"),
            "permission denied for table clientsnapshot"
        );
    }
}
