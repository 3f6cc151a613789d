//! Who is a thinking client: the set-based selection behind the view `thinking_clients`
//! and the daily enqueue.
//!
//! The rules (docs/contract.md, "Who is a thinking client"), all at `as_of`:
//! 1. `status = 'in_wizard'` and `wizard_status` in ('OK', 'IN_PROGRESS', 'TO_SIGN');
//! 2. no task row of the client has `status_code = '0'`, and none failed ('1', '2') on the
//!    calendar day of `as_of` (in `infor_comm.timezone`);
//! 3. no open request: unpublished, or published and unanswered for less than
//!    `infor_comm.response_timeout`;
//! 4. the latest `change_date` of the client is at least `infor_comm.thinking_days` full
//!    24-hour days before `as_of` (no log row: not selected);
//! 5. clients whose request cannot be built or stored are listed with `skip_reason`
//!    ([`crate::request::skip_reason`], the one rule), and so are clients with a log row without
//!    `change_date`, whose latest change is unknown.
//!
//! The selection is one SQL statement ([`selection_sql`]) with the host tables named
//! schema-qualified and quoted. The daily enqueue embeds it in its own statement, so the planner
//! sees it whole and every lookup is an index probe (see docs/selection-plan.md);
//! `thinking_clients_at` runs it with a pinned `search_path`. The settings are read once per
//! statement, through scalar sub-queries.

use crate::host_tables::HostTables;
use pgrx::prelude::*;

/// The thinking clients at `$1` (a `timestamptz`), in the columns of `thinking_clients_at`:
/// organization_id, mdm_id, wizard_status, status_since, full_days, skip_reason and
/// holdout_group (`held out` or `asked` for a client that can be sent, [`crate::holdout`]).
pub fn selection_sql(host: &HostTables) -> String {
    format!(
        "SELECT organization_id, mdm_id, wizard_status, status_since, full_days, skip_reason,
       CASE WHEN skip_reason IS NULL THEN infor_comm.holdout_group(organization_id::text) END
           AS holdout_group
  FROM (SELECT thinking.*,
               infor_comm.request_skip_reason(organization_id::text, has_snapshot, tin, ogrn, kpp,
                                              unknown_change) AS skip_reason
          FROM ({rows}) thinking) thinking",
        rows = thinking_rows_sql(host)
    )
}

/// The thinking clients at `$1` with the data the skip rule and the request need, and no
/// function called per row: organization_id, mdm_id, wizard_status, status_since, full_days,
/// has_snapshot, tin, ogrn, kpp, okpo, unknown_change. The daily job applies the skip rule
/// and renders the requests in Rust, over these rows. The latest change is a `max()` (one
/// backward probe of the log's index); a log row without `change_date` is looked for only for
/// the clients that qualify, or that have no dated row at all.
pub fn thinking_rows_sql(host: &HostTables) -> String {
    let log = host.name("wizard_status_change_log");
    // A log row of the client without change_date: its latest change is unknown.
    let undated_change = format!(
        "EXISTS (SELECT 1 FROM {log} w
                 WHERE w.organization_id = c.organization_id AND w.change_date IS NULL)"
    );
    format!(
        "SELECT c.organization_id::varchar AS organization_id,
       c.mdm_id::varchar AS mdm_id,
       c.wizard_status::varchar AS wizard_status,
       l.last_change AS status_since,
       pg_catalog.floor(pg_catalog.date_part('epoch',
             $1 - (l.last_change AT TIME ZONE (SELECT infor_comm.setting_timezone()))) / 86400)::integer AS full_days,
       s.id IS NOT NULL AS has_snapshot,
       s.tin::text AS tin,
       s.registry_number::text AS ogrn,
       s.kpp::text AS kpp,
       s.okpo::text AS okpo,
       {undated_change} AS unknown_change
  FROM {clients} c
 CROSS JOIN LATERAL (
       SELECT pg_catalog.max(w.change_date) AS last_change
         FROM {log} w
        WHERE w.organization_id = c.organization_id) l
  LEFT JOIN {snapshot} s ON s.id = c.organization_id
  -- Rule 2 and rule 3, index probes per client whatever the statistics say: a LATERAL subquery
  -- with LIMIT is never turned into a join, so the planner cannot choose a materialized nested
  -- loop over all the open requests, which went quadratic when the statistics said there were
  -- none; and rule 3 reaches the outbox row and the task row through scalar subqueries on their
  -- primary keys, not joins whose order stale statistics could get wrong
  -- (docs/selection-plan.md).
  LEFT JOIN LATERAL (
       SELECT true AS blocks
         FROM infor_comm.infor_communication_task t
        WHERE t.organization_id = c.organization_id
          AND (t.status_code = '0'
               OR (t.status_code IN ('1', '2')
                   AND t.time_create >= (SELECT pg_catalog.date_trunc('day', $1 AT TIME ZONE infor_comm.setting_timezone()))))
        LIMIT 1) answered ON true
  LEFT JOIN LATERAL (
       SELECT true AS blocks
         FROM infor_comm.outbox_open p
        WHERE p.organization_id = c.organization_id
          AND (SELECT o.closed_at IS NULL
                      AND (o.published_at IS NULL
                           OR o.published_at > $1 - (SELECT infor_comm.setting_response_timeout()))
                      AND (SELECT t.status_code IS NULL
                             FROM infor_comm.infor_communication_task t
                            WHERE t.id = o.task_row_id)
                 FROM infor_comm.outbox o
                WHERE o.outbox_id = p.outbox_id)
        LIMIT 1) open_request ON true
 WHERE c.status = 'in_wizard'
   AND c.wizard_status IN ('OK', 'IN_PROGRESS', 'TO_SIGN')
   AND (l.last_change <= (SELECT ($1 - pg_catalog.make_interval(hours => 24 * infor_comm.setting_thinking_days()))
                                 AT TIME ZONE infor_comm.setting_timezone())
        OR (l.last_change IS NULL AND {undated_change}))
   AND answered.blocks IS NULL
   AND open_request.blocks IS NULL",
        clients = host.name("product_migration_clients"),
        snapshot = host.name("clientsnapshot"),
    )
}

/// The query behind `thinking_clients_at`, for the host schema in force (`$1` is `as_of`).
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn thinking_clients_query() -> String {
    crate::entry_checks();
    selection_sql(&HostTables::resolve())
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.thinking_clients_query() IS
    'The query of thinking_clients_at for the host schema in force ($1 is as_of), to read or EXPLAIN.';
"#,
    name = "thinking_clients_query_comment",
    requires = [thinking_clients_query],
);

extension_sql_file!(
    "../sql/selection.sql",
    name = "selection",
    requires = [
        "task_table",
        "outbox_table",
        thinking_clients_query,
        request::request_skip_reason,
        holdout::holdout_group,
        settings::setting_thinking_days,
        settings::setting_timezone,
        settings::setting_response_timeout
    ],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn seven_full_days_qualify_and_one_second_less_does_not() {
        host_tables();
        client("EXACT", "OK", "2026-11-13 12:00:00");
        client("SHORT", "OK", "2026-11-13 12:00:01");
        assert_eq!(selected(AS_OF), vec!["EXACT:-"]);
        assert_eq!(
            int(&format!(
                "SELECT full_days::bigint FROM infor_comm.thinking_clients_at('{AS_OF}')"
            )),
            7
        );
        // One second later, the second client has its seven days too.
        assert_eq!(
            selected("2026-11-20 12:00:01+03"),
            vec!["EXACT:-", "SHORT:-"]
        );
    }

    #[pg_test]
    fn only_in_wizard_clients_in_the_three_wizard_statuses_qualify() {
        host_tables();
        client("OK", "OK", "2026-11-01 10:00:00");
        client("PROGRESS", "IN_PROGRESS", "2026-11-01 10:00:00");
        client("SIGN", "TO_SIGN", "2026-11-01 10:00:00");
        client("SIGNED", "SIGNED", "2026-11-01 10:00:00");
        client("MIGRATED", "OK", "2026-11-01 10:00:00");
        run("UPDATE product_migration_clients SET status = 'migrated' WHERE organization_id = 'MIGRATED'");
        assert_eq!(selected(AS_OF), vec!["OK:-", "PROGRESS:-", "SIGN:-"]);
    }

    #[pg_test]
    fn a_wizard_status_change_restarts_the_count() {
        host_tables();
        client("RESTARTED", "IN_PROGRESS", "2026-11-18 09:00:00");
        run("INSERT INTO wizard_status_change_log VALUES ('RESTARTED', 'OK', '2026-11-01 09:00:00')");
        client("NO_LOG", "OK", "2026-11-01 09:00:00");
        run("DELETE FROM wizard_status_change_log WHERE organization_id = 'NO_LOG'");
        assert!(selected(AS_OF).is_empty());
        assert_eq!(selected("2026-11-25 09:00:00+03"), vec!["RESTARTED:-"]);
    }

    #[pg_test]
    fn a_created_task_blocks_for_good_and_a_failed_one_for_the_rest_of_its_day() {
        host_tables();
        client("CREATED", "OK", "2026-11-01 09:00:00");
        client("FAILED", "OK", "2026-11-01 09:00:00");
        client("FAILED_YESTERDAY", "OK", "2026-11-01 09:00:00");
        run("INSERT INTO infor_comm.infor_communication_task
                    (id, vtbc_request_id, organization_id, request_date, status_code, time_create)
             VALUES ('t1', 'r1', 'CREATED', 'x', '0', '2026-10-01 10:00:00'),
                    ('t2', 'r2', 'FAILED', 'x', '1', '2026-11-20 00:00:00'),
                    ('t3', 'r3', 'FAILED_YESTERDAY', 'x', '2', '2026-11-19 23:59:59')");
        assert_eq!(selected(AS_OF), vec!["FAILED_YESTERDAY:-"]);
        // From the next calendar day (Moscow time) the failed client is asked again.
        assert_eq!(
            selected("2026-11-21 00:00:00+03"),
            vec!["FAILED:-", "FAILED_YESTERDAY:-"]
        );
        assert_eq!(
            selected("2026-11-20 23:59:59+03"),
            vec!["FAILED_YESTERDAY:-"]
        );
    }

    #[pg_test]
    fn an_open_request_blocks_until_answered_or_timed_out() {
        host_tables();
        client("OPEN", "OK", "2026-11-01 09:00:00");
        assert_eq!(enqueue(AS_OF), 1);
        // Unpublished: open, however long it waits.
        assert!(selected("2026-11-30 12:00:00+03").is_empty());
        assert_eq!(enqueue("2026-11-30 12:00:00+03"), 0);
        // Published and unanswered: open for infor_comm.response_timeout (1 day).
        run("UPDATE infor_comm.outbox SET published_at = '2026-11-20 12:00:00+03'");
        assert!(selected("2026-11-21 11:59:59+03").is_empty());
        assert_eq!(selected("2026-11-21 12:00:00+03"), vec!["OPEN:-"]);
        run("SET LOCAL infor_comm.response_timeout = '3 days'");
        assert!(selected("2026-11-21 12:00:00+03").is_empty());
        run("RESET infor_comm.response_timeout");
        // The timed-out request is closed and a new one is written, still one open per client.
        assert_eq!(enqueue("2026-11-21 12:00:00+03"), 1);
        assert_eq!(
            text("SELECT string_agg(coalesce(close_reason, 'open'), ',' ORDER BY outbox_id) FROM infor_comm.outbox"),
            Some("timed_out,open".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.infor_communication_task"),
            2
        );
    }

    #[pg_test]
    fn clients_whose_request_cannot_be_built_are_listed_with_the_reason_and_not_sent() {
        host_tables();
        client("GOOD", "OK", "2026-11-01 09:00:00");
        client("NO_SNAPSHOT", "OK", "2026-11-01 09:00:00");
        client("NO_KPP", "OK", "2026-11-01 09:00:00");
        client("NO_INN", "OK", "2026-11-01 09:00:00");
        run("DELETE FROM clientsnapshot WHERE id = 'NO_SNAPSHOT';
             UPDATE clientsnapshot SET kpp = '' WHERE id = 'NO_KPP';
             UPDATE clientsnapshot SET tin = NULL WHERE id = 'NO_INN';");
        assert_eq!(
            selected(AS_OF),
            vec![
                "GOOD:-",
                "NO_INN:empty inn (clientsnapshot.tin)",
                "NO_KPP:empty kpp (clientsnapshot.kpp)",
                "NO_SNAPSHOT:no clientsnapshot row",
            ]
        );
        assert_eq!(enqueue(AS_OF), 1);
        assert_eq!(
            text("SELECT string_agg(organization_id, ',') FROM infor_comm.outbox"),
            Some("GOOD".into())
        );
    }

    #[pg_test]
    fn thinking_days_can_be_changed_per_session() {
        host_tables();
        client("THREE", "OK", "2026-11-17 12:00:00");
        assert!(selected(AS_OF).is_empty());
        run("SET LOCAL infor_comm.thinking_days = 3");
        assert_eq!(selected(AS_OF), vec!["THREE:-"]);
        assert_eq!(int("SELECT infor_comm.setting_thinking_days()::bigint"), 3);
    }

    #[pg_test]
    fn blank_mandatory_fields_of_any_whitespace_are_skipped_and_the_others_are_sent() {
        host_tables();
        client("GOOD", "OK", "2026-11-01 09:00:00");
        client("TAB_INN", "OK", "2026-11-01 09:00:00");
        client("NBSP_KPP", "OK", "2026-11-01 09:00:00");
        client("NL_OGRN", "OK", "2026-11-01 09:00:00");
        run(
            "UPDATE clientsnapshot SET tin = E'\\t' WHERE id = 'TAB_INN';
             UPDATE clientsnapshot SET kpp = U&' \\00A0 ' WHERE id = 'NBSP_KPP';
             UPDATE clientsnapshot SET registry_number = E'\\n\\r' WHERE id = 'NL_OGRN';",
        );
        assert_eq!(
            selected(AS_OF),
            vec![
                "GOOD:-",
                "NBSP_KPP:empty kpp (clientsnapshot.kpp)",
                "NL_OGRN:empty ogrn (clientsnapshot.registry_number)",
                "TAB_INN:empty inn (clientsnapshot.tin)",
            ]
        );
        assert_eq!(enqueue(AS_OF), 1);
    }

    #[pg_test]
    fn an_organization_id_longer_than_the_task_tables_column_is_skipped_not_fatal() {
        host_tables();
        let long = "L".repeat(201);
        client("GOOD", "OK", "2026-11-01 09:00:00");
        client(&long, "OK", "2026-11-01 09:00:00");
        assert_eq!(
            selected(AS_OF),
            vec![
                "GOOD:-".to_string(),
                format!("{long}:organization_id is 201 characters long, longer than the task table's column (200)"),
            ]
        );
        assert_eq!(enqueue(AS_OF), 1);
    }

    #[pg_test]
    fn a_null_change_date_makes_the_latest_change_unknown_and_the_client_is_not_sent() {
        host_tables();
        run("ALTER TABLE wizard_status_change_log ALTER change_date DROP NOT NULL");
        client("OLD_AND_NULL", "OK", "2026-11-01 09:00:00");
        client("ONLY_NULL", "OK", "2026-11-01 09:00:00");
        client("RECENT_AND_NULL", "OK", "2026-11-19 09:00:00");
        run("INSERT INTO wizard_status_change_log VALUES ('OLD_AND_NULL', 'OK', NULL),
                                                        ('RECENT_AND_NULL', 'OK', NULL);
             UPDATE wizard_status_change_log SET change_date = NULL WHERE organization_id = 'ONLY_NULL';");
        let unknown =
            "a wizard_status_change_log row has no change_date, so the latest change is unknown";
        assert_eq!(
            selected(AS_OF),
            vec![
                format!("OLD_AND_NULL:{unknown}"),
                format!("ONLY_NULL:{unknown}")
            ]
        );
        assert_eq!(enqueue(AS_OF), 0);
    }

    /// Look-alikes of what the daily job uses, in `schema`, each tripping a wire when it runs.
    fn plant_look_alikes(schema: &str) {
        run(&format!(
            r#"
            CREATE FUNCTION {schema}.btrim(varchar) RETURNS text LANGUAGE sql
                AS $$ SELECT CASE WHEN public.trip('{schema}.btrim') THEN 'x' END $$;
            CREATE FUNCTION {schema}.max(timestamp, timestamp) RETURNS timestamp LANGUAGE sql
                AS $$ SELECT CASE WHEN public.trip('{schema}.max') THEN $1 END $$;
            CREATE FUNCTION {schema}.now() RETURNS timestamptz LANGUAGE sql
                AS $$ SELECT CASE WHEN public.trip('{schema}.now') THEN pg_catalog.now() END $$;
            CREATE FUNCTION {schema}.gen_random_uuid() RETURNS uuid LANGUAGE sql
                AS $$ SELECT CASE WHEN public.trip('{schema}.gen_random_uuid') THEN pg_catalog.gen_random_uuid() END $$;
            CREATE FUNCTION {schema}.varchar_eq_trap(varchar, varchar) RETURNS boolean LANGUAGE sql
                AS $$ SELECT public.trip('{schema}.= varchar') $$;
            CREATE OPERATOR {schema}.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = {schema}.varchar_eq_trap);
            CREATE FUNCTION {schema}.text_eq_trap(text, text) RETURNS boolean LANGUAGE sql
                AS $$ SELECT public.trip('{schema}.= text') $$;
            CREATE OPERATOR {schema}.= (LEFTARG = text, RIGHTARG = text, FUNCTION = {schema}.text_eq_trap);
            CREATE FUNCTION {schema}.ts_le_trap(timestamp, timestamp) RETURNS boolean LANGUAGE sql
                AS $$ SELECT public.trip('{schema}.<= timestamp') $$;
            CREATE OPERATOR {schema}.<= (LEFTARG = timestamp, RIGHTARG = timestamp, FUNCTION = {schema}.ts_le_trap);
            "#
        ));
    }

    #[pg_test]
    fn the_daily_job_reads_only_its_host_schema_and_runs_no_look_alike() {
        // The bank's tables are in "bank app"; it, public and an earlier schema hold look-alikes.
        run(r#"CREATE SCHEMA "bank app"; SET LOCAL search_path = "bank app";"#);
        host_tables();
        client("REAL", "OK", "2026-11-01 09:00:00");
        run(r#"CREATE TABLE public.tripwire (what text);
               CREATE FUNCTION public.trip(what text) RETURNS boolean LANGUAGE sql
                   AS $$ INSERT INTO public.tripwire VALUES (what) RETURNING true $$;
               CREATE SCHEMA early;
               SET LOCAL search_path = early;"#);
        host_tables();
        client("EVIL", "OK", "2026-11-01 09:00:00");
        plant_look_alikes("public");
        plant_look_alikes("early");
        plant_look_alikes(r#""bank app""#);
        run(
            r#"CREATE TEMP TABLE product_migration_clients (organization_id varchar);
               SET LOCAL search_path = early, public, "bank app", pg_temp;
               SET LOCAL infor_comm.host_schema = 'bank app';"#,
        );
        assert_eq!(selected(AS_OF), vec!["REAL:-"]);
        assert_eq!(enqueue(AS_OF), 1);
        run("CALL infor_comm.run_daily()");
        assert_eq!(
            text("SELECT string_agg(organization_id, ',') FROM infor_comm.outbox"),
            Some("REAL".into())
        );
        assert!(
            text("SELECT infor_comm.build_request('REAL', gen_random_uuid(), now())::text")
                .is_some_and(|json| json.contains(r#""ehd_id","id":"REAL""#))
        );
        run("RESET search_path");
        assert_eq!(
            text("SELECT coalesce(string_agg(DISTINCT what, ', '), 'none') FROM public.tripwire"),
            Some("none".into()),
            "no look-alike ran"
        );
    }

    /// The rows every node of the plan of `sql` handled, and those its join filters removed:
    /// the work of the query, counted by `EXPLAIN ANALYZE`, not timed.
    fn rows_handled(sql: &str) -> i64 {
        let plan = Spi::get_one::<pgrx::Json>(&format!(
            "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}"
        ))
        .expect("explain")
        .expect("a plan")
        .0;
        fn walk(node: &serde_json::Value) -> i64 {
            let own = [
                "Actual Rows",
                "Rows Removed by Join Filter",
                "Rows Removed by Filter",
            ]
            .iter()
            .map(|key| {
                let rows = node
                    .get(*key)
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or(0.0);
                let loops = node
                    .get("Actual Loops")
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or(1.0);
                (rows * loops) as i64
            })
            .sum::<i64>();
            own + node
                .get("Plans")
                .and_then(serde_json::Value::as_array)
                .map_or(0, |plans| plans.iter().map(walk).sum())
        }
        walk(&plan[0]["Plan"])
    }

    #[pg_test]
    fn a_second_run_on_stale_statistics_probes_each_client_once() {
        host_tables();
        // 20,000 thinking clients; the statistics are taken before the first run, when no task
        // row exists (a re-run, a run after a failover, a busy autovacuum).
        run("INSERT INTO product_migration_clients
             SELECT 'C' || n, 'M' || n, 'in_wizard', 'OK' FROM generate_series(1, 20000) n;
             INSERT INTO wizard_status_change_log
             SELECT 'C' || n, 'OK', '2026-11-01 09:00:00' FROM generate_series(1, 20000) n;
             INSERT INTO clientsnapshot
             SELECT 'C' || n, '7700000000', '1027700000000', '770001001', NULL FROM generate_series(1, 20000) n;
             ANALYZE product_migration_clients, wizard_status_change_log, clientsnapshot,
                     infor_comm.infor_communication_task, infor_comm.outbox, infor_comm.outbox_open;");
        assert_eq!(enqueue(AS_OF), 20000);
        // The next day every client has an open request: the selection must look each one up,
        // not compare every client with every open request (400 million rows).
        let query = text("SELECT infor_comm.thinking_clients_query()").expect("the query");
        let work = rows_handled(&query.replace("$1", "'2026-11-21 12:00:00+03'::timestamptz"));
        if work >= 20 * 20000 {
            let plan = Spi::connect(|client| {
                client
                    .select(
                        &format!(
                            "EXPLAIN (COSTS OFF) {}",
                            query.replace("$1", "'2026-11-21 12:00:00+03'::timestamptz")
                        ),
                        None,
                        &[],
                    )?
                    .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map(|lines| lines.join("\n"))
            .unwrap_or_default();
            panic!("the selection handled {work} rows for 20,000 clients:\n{plan}");
        }
        assert_eq!(selected("2026-11-21 12:00:00+03"), Vec::<String>::new());
    }
}
