//! The roles (`pg_ext/sql/roles.sql`: `infor_comm_relay`, `infor_comm_reader`, `infor_comm_job`
//! and the sealed `infor_comm_writer`), created before anything is granted to them, and what
//! PUBLIC may not do (`pg_ext/sql/privileges.sql`, run last). What each role may call or read is
//! granted beside its entry points, in [`crate::api`]; the tests of every role's privileges are
//! here.

use pgrx::prelude::*;

extension_sql_file!("../sql/roles.sql", name = "roles");

extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);

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
        let mut calls = relay_calls(&request_id);
        calls.push("SELECT infor_comm.apply_inbound('\\x00'::bytea, 'm')".to_string());
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
    fn the_docs_name_every_function_the_relay_may_call_and_every_table_pg_dump_keeps() {
        let relay_md = include_str!("../../docs/relay.md");
        let security_md = include_str!("../../docs/security.md");
        let functions = Spi::connect(|client| {
            client
                .select(
                    "SELECT DISTINCT p.proname::text FROM pg_proc p
                      WHERE p.pronamespace = 'infor_comm'::regnamespace
                        AND has_function_privilege('infor_comm_relay', p.oid, 'EXECUTE')
                      ORDER BY 1",
                    None,
                    &[],
                )?
                .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("the relay's functions");
        assert!(functions.len() >= 9, "{functions:?}");
        for function in functions {
            assert!(
                relay_md.contains(&format!("`{function}`")),
                "docs/relay.md does not name {function}, which infor_comm_relay may call"
            );
        }
        let kept = Spi::connect(|client| {
            client
                .select(
                    "SELECT c::regclass::text FROM pg_extension e, unnest(e.extconfig) c
                      WHERE e.extname = 'infor_comm' AND (SELECT relkind FROM pg_class WHERE oid = c) = 'r'",
                    None,
                    &[],
                )?
                .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("the tables pg_dump keeps");
        let backups = security_md
            .split("## Backups")
            .nth(1)
            .expect("docs/security.md has a section Backups");
        for table in kept {
            let name = table.trim_start_matches("infor_comm.");
            assert!(
                backups.contains(&format!("`{name}`")),
                "docs/security.md's Backups does not name {name}, which pg_dump keeps"
            );
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
    fn the_job_role_runs_the_job_and_can_forge_nothing() {
        let request_id = enqueued_request("ORG1");
        client("ORG2", "OK", "2026-11-01 09:00:00");
        // The job's role has no right on the host tables either: the job reads them as
        // infor_comm_writer.
        run("CREATE ROLE test_job LOGIN IN ROLE infor_comm_job");
        run(
            "INSERT INTO infor_comm.daily_runs (started_at, as_of, run_by, backend_pid)
             VALUES (now(), now(), 'someone', 0)",
        );
        let other_run = int("SELECT max(run_id) FROM infor_comm.daily_runs");
        for (sql, message) in [
            // A forged tax id in a request the relay has not published yet.
            (
                "UPDATE infor_comm.outbox SET payload = replace(payload::text, '1200009193', '7700000000')::json".to_string(),
                "permission denied for table outbox",
            ),
            // A fake '0' task row, so that a client is never asked.
            (
                "INSERT INTO infor_comm.infor_communication_task (id, vtbc_request_id, organization_id, request_date, status_code)
                 VALUES ('fake', 'fake', 'ORG2', 'x', '0')".to_string(),
                "permission denied for table infor_communication_task",
            ),
            // A fake successful run, so that health says ok.
            (
                "INSERT INTO infor_comm.daily_runs (started_at, as_of, run_by, backend_pid, status, finished_at, sent, skipped)
                 VALUES (now(), now(), 'x', 0, 'succeeded', now(), 0, 0)".to_string(),
                "permission denied for table daily_runs",
            ),
            (
                "UPDATE infor_comm.daily_runs SET status = 'succeeded', finished_at = now()".to_string(),
                "permission denied for table daily_runs",
            ),
            // Requests dated a month ahead, or a run of its own choosing.
            (
                "SELECT infor_comm.enqueue_thinking_clients(now() + interval '30 days')".to_string(),
                "permission denied for function enqueue_thinking_clients",
            ),
            (
                format!("SELECT infor_comm.daily_run_enqueue({other_run})"),
                &*format!("infor_comm: no running daily run {other_run} of this session"),
            ),
            (
                "DELETE FROM infor_comm.outbox_open".to_string(),
                "permission denied for table outbox_open",
            ),
            (
                "DELETE FROM infor_comm.outbox_pending".to_string(),
                "permission denied for table outbox_pending",
            ),
            (
                "SELECT * FROM infor_comm.inbox".to_string(),
                "permission denied for table inbox",
            ),
            (
                "SELECT infor_comm.apply_inbound('{}')".to_string(),
                "permission denied for function apply_inbound",
            ),
            (
                "SELECT infor_comm.schedule_daily()".to_string(),
                "permission denied for function schedule_daily",
            ),
            (
                "SELECT * FROM product_migration_clients".to_string(),
                "permission denied for table product_migration_clients",
            ),
        ] {
            assert_eq!(as_role("test_job", &sql), message, "{sql}");
        }
        // Another run's failure cannot be written either.
        assert_eq!(
            as_role(
                "test_job",
                &format!("SELECT infor_comm.daily_run_failed({other_run}, 'XX000', 'forged')")
            ),
            "ok"
        );
        assert_eq!(
            text(&format!(
                "SELECT status FROM infor_comm.daily_runs WHERE run_id = {other_run}"
            )),
            Some("running".into())
        );
        // What it may do: run the job.
        assert_eq!(as_role("test_job", "CALL infor_comm.run_daily()"), "ok");
        assert_eq!(
            text("SELECT status || ' ' || sent FROM infor_comm.daily_runs ORDER BY run_id DESC LIMIT 1"),
            Some("succeeded 1".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox WHERE organization_id = 'ORG2'"),
            1
        );
        assert!(text(&format!(
            "SELECT payload::text FROM infor_comm.outbox WHERE request_id = '{request_id}'"
        ))
        .unwrap_or_default()
        .contains("1200009193"));
    }

    #[pg_test]
    fn the_writer_role_is_sealed_and_health_says_when_it_is_not() {
        assert_eq!(text("SELECT infor_comm.writer_role_problem()"), None);
        run("CREATE ROLE test_intruder LOGIN; GRANT infor_comm_writer TO test_intruder");
        assert_eq!(
            text("SELECT infor_comm.writer_role_problem()"),
            Some("role infor_comm_writer has members (test_intruder)".into())
        );
        assert_eq!(
            outcome_of("SELECT infor_comm.require_writer_role_is_sealed()"),
            "infor_comm: role infor_comm_writer has members (test_intruder)"
        );
        assert!(text("SELECT array_to_string(problems, ' | ') FROM infor_comm.health")
            .unwrap_or_default()
            .contains("role infor_comm_writer has members (test_intruder): whoever can act as it can forge the requests"));
        run("REVOKE infor_comm_writer FROM test_intruder; ALTER ROLE infor_comm_writer LOGIN");
        assert_eq!(
            text("SELECT infor_comm.writer_role_problem()"),
            Some("role infor_comm_writer has attributes it must not have (LOGIN)".into())
        );
    }

    #[pg_test]
    fn planted_types_do_not_run_in_the_daily_job() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        run("CREATE TABLE public.tripwire (what text);
             CREATE FUNCTION public.trip(what text) RETURNS boolean LANGUAGE sql
                 AS $$ INSERT INTO public.tripwire VALUES (what) RETURNING true $$;");
        // A domain for every type name run_daily's body uses, each with a CHECK that trips.
        for name in [
            "text",
            "bool",
            "boolean",
            "int8",
            "bigint",
            "int4",
            "integer",
            "timestamptz",
        ] {
            run(&format!(
                "CREATE DOMAIN public.{name} AS pg_catalog.{base} CHECK (public.trip('{name}'))",
                base = match name {
                    "boolean" => "bool",
                    "bigint" => "int8",
                    "integer" => "int4",
                    other => other,
                }
            ));
        }
        run("SET LOCAL search_path = public, pg_catalog");
        run("CALL infor_comm.run_daily()");
        run("RESET search_path");
        assert_eq!(
            int("SELECT count(*) FROM public.tripwire"),
            0,
            "a planted type ran"
        );
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox"), 1);
    }
}
