//! In-database tests (`cargo pgrx test`): every rule of "Who is a thinking client", the request
//! JSON, the enqueue, the settings and the pg_cron job. Each test runs in its own transaction,
//! which is rolled back, so each creates the host tables it needs.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The moment the daily job runs in most tests: 2026-11-20 12:00 in Moscow.
    const AS_OF: &str = "2026-11-20 12:00:00+03";

    /// Creates the host tables (sql/host_tables.sql).
    fn host_tables() {
        Spi::run(include_str!("../../sql/host_tables.sql")).expect("host tables");
    }

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn text(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn int(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql}: NULL"))
    }

    /// A client in the wizard with every id and a full snapshot, whose wizard status last
    /// changed at `changed` (wall time in Moscow).
    fn client(org: &str, wizard_status: &str, changed: &str) {
        run(&format!(
            "INSERT INTO product_migration_clients VALUES ('{org}', 'MDM-{org}', 'in_wizard', '{wizard_status}');
             INSERT INTO wizard_status_change_log VALUES ('{org}', '{wizard_status}', '{changed}');
             INSERT INTO clients_back_system_ids VALUES ('MDM-{org}', 'ibso', 'IBSO-{org}'),
                                                        ('MDM-{org}', 'infor', 'INFOR-{org}');
             INSERT INTO clientsnapshot VALUES ('{org}', '1200009193', '1231200000844', '120001001', '02847208');"
        ));
    }

    /// The organization ids that qualify at `as_of`, with a skip reason or '-'.
    fn selected(as_of: &str) -> Vec<String> {
        Spi::connect(|c| {
            c.select(
                &format!(
                    "SELECT organization_id::text || ':' || coalesce(skip_reason, '-')
                       FROM infor_comm.thinking_clients_at('{as_of}') ORDER BY 1"
                ),
                None,
                &[],
            )?
            .map(|row| row.get::<String>(1).map(|v| v.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
        })
        .expect("selection")
    }

    fn enqueue(as_of: &str) -> i32 {
        Spi::get_one::<i32>(&format!(
            "SELECT infor_comm.enqueue_thinking_clients('{as_of}')"
        ))
        .expect("enqueue")
        .expect("count")
    }

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
        assert_eq!(selected("2026-11-20 12:00:01+03"), vec!["EXACT:-", "SHORT:-"]);
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
        assert_eq!(selected("2026-11-20 23:59:59+03"), vec!["FAILED_YESTERDAY:-"]);
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
        assert_eq!(int("SELECT count(*) FROM infor_comm.infor_communication_task"), 2);
    }

    #[pg_test]
    fn an_answered_request_is_closed_by_the_next_run() {
        host_tables();
        client("ANSWERED", "OK", "2026-11-01 09:00:00");
        assert_eq!(enqueue(AS_OF), 1);
        run("UPDATE infor_comm.infor_communication_task SET status_code = '2'");
        // Failed on 2026-11-20: blocked that day, asked again the next.
        assert_eq!(enqueue("2026-11-20 18:00:00+03"), 0);
        assert_eq!(enqueue("2026-11-21 09:00:00+03"), 1);
        assert_eq!(
            text("SELECT string_agg(coalesce(close_reason, 'open'), ',' ORDER BY outbox_id) FROM infor_comm.outbox"),
            Some("answered,open".into())
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

    #[pg_test(error = "infor_comm: cannot build the request for client \"NO_SNAPSHOT\": clientsnapshot has no row for it")]
    fn build_request_refuses_a_client_without_snapshot() {
        host_tables();
        client("NO_SNAPSHOT", "OK", "2026-11-01 09:00:00");
        run("DELETE FROM clientsnapshot");
        text("SELECT infor_comm.build_request('NO_SNAPSHOT', gen_random_uuid(), now())::text");
    }

    #[pg_test(error = "infor_comm: client \"NOBODY\" not found")]
    fn build_request_refuses_an_unknown_client() {
        host_tables();
        text("SELECT infor_comm.build_request('NOBODY', gen_random_uuid(), now())::text");
    }

    #[pg_test]
    fn the_request_json_is_exactly_the_contract() {
        host_tables();
        client("354815252", "OK", "2026-11-01 09:00:00");
        run("UPDATE product_migration_clients SET mdm_id = '123456';
             UPDATE clients_back_system_ids SET mdm_id = '123456';
             UPDATE clients_back_system_ids SET back_system_id = '354815252' WHERE back_system_name = 'ibso';
             UPDATE clients_back_system_ids SET back_system_id = 'A6UJ9A00EEG' WHERE back_system_name = 'infor';
             INSERT INTO clients_back_system_ids VALUES ('123456', 'bisquit', 'ignored');");
        let json = text(
            "SELECT infor_comm.build_request('354815252', 'E1F73276-7FB6-4E80-85DE-FD8A939998F0',
                                             '2023-07-27 06:27:04.953+00')::text",
        );
        assert_eq!(
            json.as_deref(),
            Some(concat!(
                r#"{"requestID":"e1f73276-7fb6-4e80-85de-fd8a939998f0","#,
                r#""dt":"2023-07-27T09:27:04.953+03:00","#,
                r#""clientIdList":[{"systemCode":"vtb_mdm_id","id":"123456"},"#,
                r#"{"systemCode":"ehd_id","id":"354815252"},"#,
                r#"{"systemCode":"IBSO","id":"354815252"},"#,
                r#"{"systemCode":"INFOR","id":"A6UJ9A00EEG"}],"#,
                r#""inn":"1200009193","ogrn":"1231200000844","kpp":"120001001","okpo":"02847208"}"#
            ))
        );
    }

    #[pg_test]
    fn missing_ids_and_a_null_okpo_are_left_out() {
        host_tables();
        client("BARE", "OK", "2026-11-01 09:00:00");
        run("DELETE FROM clients_back_system_ids;
             UPDATE product_migration_clients SET mdm_id = NULL;
             UPDATE clientsnapshot SET okpo = NULL;");
        let json = text(
            "SELECT infor_comm.build_request('BARE', 'e1f73276-7fb6-4e80-85de-fd8a939998f0',
                                             '2026-01-15 21:00:00.5+00')::text",
        );
        assert_eq!(
            json.as_deref(),
            Some(concat!(
                r#"{"requestID":"e1f73276-7fb6-4e80-85de-fd8a939998f0","#,
                r#""dt":"2026-01-16T00:00:00.500+03:00","#,
                r#""clientIdList":[{"systemCode":"ehd_id","id":"BARE"}],"#,
                r#""inn":"1200009193","ogrn":"1231200000844","kpp":"120001001"}"#
            ))
        );
        // Only one of the two back-system ids.
        run("UPDATE product_migration_clients SET mdm_id = 'M1';
             INSERT INTO clients_back_system_ids VALUES ('M1', 'infor', 'INF1');");
        let json = text(
            "SELECT (infor_comm.build_request('BARE', gen_random_uuid(), now())->'clientIdList')::text",
        );
        assert_eq!(
            json.as_deref(),
            Some(r#"[{"systemCode":"vtb_mdm_id","id":"M1"},{"systemCode":"ehd_id","id":"BARE"},{"systemCode":"INFOR","id":"INF1"}]"#)
        );
    }

    #[pg_test]
    fn dt_follows_infor_comm_timezone() {
        host_tables();
        client("TZ", "OK", "2026-11-01 09:00:00");
        run("SET LOCAL infor_comm.timezone = 'America/Sao_Paulo'");
        assert_eq!(
            text("SELECT infor_comm.build_request('TZ', gen_random_uuid(), '2023-07-27 06:27:04.953+00')->>'dt'"),
            Some("2023-07-27T03:27:04.953-03:00".into())
        );
        run("SET LOCAL infor_comm.timezone = 'Asia/Kolkata'");
        assert_eq!(
            text("SELECT infor_comm.format_request_dt('2023-07-27 06:27:04.953+00')"),
            Some("2023-07-27T11:57:04.953+05:30".into())
        );
    }

    #[pg_test]
    fn the_task_row_is_written_with_its_outbox_row() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        client("ORG2", "TO_SIGN", "2026-11-02 09:00:00");
        assert_eq!(enqueue("2026-11-20 09:27:04.953+03"), 2);
        // Every outbox row has its task row, with the request's id, dt and client.
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox o
                   JOIN infor_comm.infor_communication_task t ON t.id = o.task_row_id
                  WHERE t.vtbc_request_id = o.request_id::text
                    AND t.vtbc_request_id = o.payload->>'requestID'
                    AND t.organization_id = o.organization_id
                    AND t.request_date = o.payload->>'dt'
                    AND t.request_date = '2026-11-20T09:27:04.953+03:00'
                    AND t.time_create = '2026-11-20 09:27:04.953'
                    AND t.status_code IS NULL AND t.infor_response_id IS NULL
                    AND o.published_at IS NULL AND o.closed_at IS NULL"),
            2
        );
        // The payload is the text build_request renders for the same id and time.
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox o
                  WHERE o.payload::text = infor_comm.build_request(o.organization_id, o.request_id,
                                                                    '2026-11-20 09:27:04.953+03')::text"),
            2
        );
        assert_eq!(
            text("SELECT payload->>'requestID' FROM infor_comm.outbox WHERE organization_id = 'ORG1'"),
            text("SELECT lower(payload->>'requestID') FROM infor_comm.outbox WHERE organization_id = 'ORG1'")
        );
    }

    #[pg_test]
    fn running_twice_a_day_asks_nobody_twice() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        client("ORG2", "OK", "2026-11-01 09:00:00");
        assert_eq!(enqueue(AS_OF), 2);
        assert_eq!(enqueue(AS_OF), 0);
        assert_eq!(enqueue("2026-11-20 21:00:00+03"), 0);
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox"), 2);
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

    #[pg_test(error = "invalid value for parameter \"infor_comm.thinking_days\": \"seven\"")]
    fn a_bad_thinking_days_is_refused_with_its_name_and_value() {
        run("SET LOCAL infor_comm.thinking_days = 'seven'");
    }

    #[pg_test(error = "invalid value for parameter \"infor_comm.timezone\": \"Mars/Olympus\"")]
    fn a_bad_timezone_is_refused_with_its_name_and_value() {
        run("SET LOCAL infor_comm.timezone = 'Mars/Olympus'");
    }

    #[pg_test(error = "invalid value for parameter \"infor_comm.response_timeout\": \"0\"")]
    fn a_zero_response_timeout_is_refused_with_its_name_and_value() {
        run("SET LOCAL infor_comm.response_timeout = '0'");
    }

    #[pg_test(error = "invalid configuration parameter name \"infor_comm.thinkingdays\"")]
    fn a_misspelt_setting_is_refused_once_the_library_is_loaded() {
        text("SELECT infor_comm.setting_timezone()");
        run("SET LOCAL infor_comm.thinkingdays = 5");
    }

    #[pg_test(error = "infor_comm: host table \"product_migration_clients\" does not exist")]
    fn enqueue_names_the_missing_host_table() {
        enqueue(AS_OF);
    }

    #[pg_test(error = "infor_comm: host table \"clientsnapshot\" does not exist")]
    fn enqueue_names_the_one_missing_host_table() {
        host_tables();
        run("DROP TABLE clientsnapshot");
        enqueue(AS_OF);
    }

    #[pg_test]
    fn enqueue_notifies_the_relay() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        run("LISTEN infor_comm_outbox");
        assert_eq!(enqueue(AS_OF), 1);
        // A pending notification is visible in the queue usage of this backend.
        assert!(
            Spi::get_one::<f64>("SELECT pg_notification_queue_usage()")
                .expect("usage")
                .is_some()
        );
    }

    #[pg_test]
    fn run_daily_enqueues() {
        host_tables();
        run("INSERT INTO product_migration_clients VALUES ('NOW', 'M', 'in_wizard', 'OK');
             INSERT INTO wizard_status_change_log
                  VALUES ('NOW', 'OK', (now() - interval '8 days') AT TIME ZONE 'Europe/Moscow');
             INSERT INTO clientsnapshot VALUES ('NOW', '1', '2', '3', NULL);");
        run("CALL infor_comm.run_daily()");
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox WHERE organization_id = 'NOW'"), 1);
        assert_eq!(int("SELECT count(*) FROM infor_comm.thinking_clients"), 0);
    }

    #[pg_test]
    fn schedule_daily_creates_one_pg_cron_job() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron");
        let first = int("SELECT infor_comm.schedule_daily()");
        let second = int("SELECT infor_comm.schedule_daily('30 6 * * *')");
        assert_eq!(first, second, "the job is replaced, not added");
        assert_eq!(
            text("SELECT schedule || ' ' || command FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            Some("30 6 * * * CALL infor_comm.run_daily()".into())
        );
        assert_eq!(int("SELECT count(*) FROM cron.job WHERE jobname = 'infor_comm_daily'"), 1);
        assert_eq!(text("SELECT infor_comm.unschedule_daily()::text"), Some("true".into()));
        assert_eq!(int("SELECT count(*) FROM cron.job WHERE jobname = 'infor_comm_daily'"), 0);
        assert_eq!(text("SELECT infor_comm.unschedule_daily()::text"), Some("false".into()));
    }

    #[pg_test(error = "infor_comm: pg_cron is not installed in database \"pgrx_tests\"")]
    fn schedule_daily_without_pg_cron_says_how_to_install_it() {
        run("DROP EXTENSION IF EXISTS pg_cron");
        int("SELECT infor_comm.schedule_daily()");
    }
}
