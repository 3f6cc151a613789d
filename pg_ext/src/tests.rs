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

    #[pg_test(
        error = "infor_comm: cannot build the request for client \"NO_SNAPSHOT\": no clientsnapshot row"
    )]
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
            Some(
                r#"[{"systemCode":"vtb_mdm_id","id":"M1"},{"systemCode":"ehd_id","id":"BARE"},{"systemCode":"INFOR","id":"INF1"}]"#
            )
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

    #[pg_test(error = "infor_comm: host table \"public.product_migration_clients\" does not exist")]
    fn enqueue_names_the_missing_host_table() {
        enqueue(AS_OF);
    }

    #[pg_test(error = "infor_comm: host table \"public.clientsnapshot\" does not exist")]
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
        assert!(Spi::get_one::<f64>("SELECT pg_notification_queue_usage()")
            .expect("usage")
            .is_some());
    }

    #[pg_test]
    fn run_daily_enqueues() {
        host_tables();
        run(
            "INSERT INTO product_migration_clients VALUES ('NOW', 'M', 'in_wizard', 'OK');
             INSERT INTO wizard_status_change_log
                  VALUES ('NOW', 'OK', (now() - interval '8 days') AT TIME ZONE 'Europe/Moscow');
             INSERT INTO clientsnapshot VALUES ('NOW', '1', '2', '3', NULL);",
        );
        run("CALL infor_comm.run_daily()");
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox WHERE organization_id = 'NOW'"),
            1
        );
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
        assert_eq!(
            int("SELECT count(*) FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            1
        );
        assert_eq!(
            text("SELECT infor_comm.unschedule_daily()::text"),
            Some("true".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            0
        );
        assert_eq!(
            text("SELECT infor_comm.unschedule_daily()::text"),
            Some("false".into())
        );
    }

    #[pg_test(error = "infor_comm: pg_cron is not installed in database \"pgrx_tests\"")]
    fn schedule_daily_without_pg_cron_says_how_to_install_it() {
        run("DROP EXTENSION IF EXISTS pg_cron");
        int("SELECT infor_comm.schedule_daily()");
    }

    // ---- Inbound: apply_inbound, the inbox, and the reactions -------------------------------

    /// Enqueues one request for a new thinking client; returns its requestID.
    fn enqueued_request(org: &str) -> String {
        host_tables_once();
        client(org, "OK", "2026-11-01 09:00:00");
        enqueue(AS_OF);
        text(&format!(
            "SELECT request_id::text FROM infor_comm.outbox WHERE organization_id = '{org}'"
        ))
        .expect("an enqueued request")
    }

    fn host_tables_once() {
        if Spi::get_one::<bool>("SELECT to_regclass('product_migration_clients') IS NULL")
            .expect("regclass")
            .unwrap_or(true)
        {
            host_tables();
        }
    }

    fn apply(body: &str) -> String {
        Spi::get_one_with_args::<String>("SELECT infor_comm.apply_inbound($1)", &[body.into()])
            .expect("apply_inbound")
            .expect("an outcome")
    }

    fn task_row(org: &str) -> String {
        text(&format!(
            "SELECT concat_ws('|', infor_response_id, status_code, task_id, task_status,
                              task_execution_type, task_execution_description, task_close_date,
                              first_level_client_reaction, second_level_client_reaction,
                              third_level_client_reaction)
               FROM infor_comm.infor_communication_task WHERE organization_id = '{org}'"
        ))
        .expect("a task row")
    }

    fn last_reason() -> String {
        text("SELECT reason FROM infor_comm.inbox ORDER BY inbox_id DESC LIMIT 1")
            .unwrap_or_default()
    }

    const CRM_ID: &str = "72a26ab9-b99e-40aa-9f7e-2247b3709394";

    fn success_reply(reply_uid: &str) -> String {
        format!(
            r#"{{"requestID": "{CRM_ID}", "replyUID": "{reply_uid}", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "0", "taskID": "123456789"}}"#
        )
    }

    /// The specification's manual push, as written there.
    const MANUAL_PUSH: &str = r#"{
  "requestID": "72a26ab9-b99e-40aa-9f7e-2247b3709394",
  "dt": "2023-07-27T09:27:04.953+03:00",
  "statusCode": "0",
  "taskID": "123456789",
  "taskStatus": "3",
  "taskCloseDate": "2023-07-27",
  "taskExecType": "",
  "taskExecDescr": "",
  "firstLevelClientReaction": " - ",
  "secondLevelClientReaction": "   ",
  "thirdLevelClientReaction": ""
}"#;

    /// The specification's automatic push, as written there.
    const AUTOMATIC_PUSH: &str = r#"{
  "requestID": "72a26ab9-b99e-40aa-9f7e-2247b3709394",
  "dt": "2023-07-27T09:27:04.953+03:00",
  "statusCode": "0",
  "applicationID": "b6e4de26-9220-43b8-9323-83f31d662ef3",
  "taskID": "123456789",
  "taskStatus": "5",
  "taskCloseDate": "2023-07-27",
  "taskExecType": "",
  "taskExecDescr": ""
}"#;

    #[pg_test]
    fn the_specifications_success_reply_and_manual_push_fill_the_row() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|123456789"));
        assert_eq!(apply(MANUAL_PUSH), "push");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|3|||2023-07-27| - |   |")
        );
        assert!(
            text("SELECT time_update::text FROM infor_comm.infor_communication_task").is_some()
        );
        // The request is answered: its outbox row is closed, and known to be published even
        // though no relay marked it.
        assert_eq!(
            text("SELECT close_reason || ' ' || (published_at IS NOT NULL) FROM infor_comm.outbox"),
            Some("answered true".into())
        );
        assert_eq!(int("SELECT count(*) FROM infor_comm.inbox"), 2);
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.inbox WHERE applied_at IS NOT NULL AND task_row_id IS NOT NULL"),
            2
        );
    }

    #[pg_test]
    fn the_specifications_failure_reply_fills_the_status_only() {
        let request_id = enqueued_request("ORG1");
        let reply = format!(
            r#"{{"requestID": "{CRM_ID}", "replyUID": "{request_id}", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "1", "statusMsg": "Клиент не найден."}}"#
        );
        assert_eq!(apply(&reply), "reply");
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|1"));
    }

    #[pg_test]
    fn the_specifications_automatic_push_is_applied() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(apply(AUTOMATIC_PUSH), "push");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|5|||2023-07-27")
        );
        // No reaction at all is the technical "-" / "-" row of the reference table.
        assert_eq!(
            text("SELECT reaction_type FROM infor_comm.task_reactions"),
            Some("Технический".into())
        );
    }

    #[pg_test]
    fn a_push_before_its_reply_is_kept_and_applied_when_the_reply_lands() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(MANUAL_PUSH), "orphan");
        assert_eq!(task_row("ORG1"), "");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|3|||2023-07-27| - |   |")
        );
        let reply_inbox_id = int("SELECT inbox_id FROM infor_comm.inbox WHERE kind = 'reply'");
        assert_eq!(
            text("SELECT outcome || ':' || (applied_at IS NOT NULL) || ':' || reason FROM infor_comm.inbox WHERE kind = 'push'"),
            Some(format!("orphan:true:applied when its reply landed (inbox {reply_inbox_id})"))
        );
        // The same push again is a duplicate.
        assert_eq!(apply(MANUAL_PUSH), "duplicate");
    }

    #[pg_test]
    fn an_orphan_push_matched_by_task_id_only_waits_for_the_reply_too() {
        let request_id = enqueued_request("ORG1");
        let push = r#"{"taskID": "123456789", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "3",
                       "firstLevelClientReaction": "Недозвон", "secondLevelClientReaction": "Автоответчик"}"#;
        assert_eq!(apply(push), "orphan");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|3|Недозвон|Автоответчик")
        );
        assert_eq!(
            text("SELECT reaction_type FROM infor_comm.task_reactions"),
            Some("Ручной отклик".into())
        );
    }

    /// A '0' reply of the CRM with its own requestID and taskID.
    fn created(reply_uid: &str, crm_id: &str, task_id: &str) -> String {
        format!(
            r#"{{"requestID": "{crm_id}", "replyUID": "{reply_uid}", "dt": "2026-11-20T12:00:00.000+03:00", "statusCode": "0", "taskID": "{task_id}"}}"#
        )
    }

    /// A push; `ids` holds its "requestID" and "taskID" fields, as JSON.
    fn push_with(ids: &str, task_status: &str) -> String {
        format!(
            r#"{{{ids}, "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "{task_status}"}}"#
        )
    }

    #[pg_test]
    fn a_push_lands_only_on_its_own_requests_row_when_two_rows_share_a_task_id() {
        let a = enqueued_request("ORGA");
        let b = enqueued_request("ORGB");
        // The CRM repeats a task id: both rows get taskID 555.
        assert_eq!(apply(&created(&a, "CRM-A", "555")), "reply");
        assert_eq!(apply(&created(&b, "CRM-B", "555")), "reply");
        // B's push lands on B's row (its requestID), not on A's (the first row with taskID 555).
        assert_eq!(
            apply(&push_with(r#""requestID": "CRM-B", "taskID": "555""#, "3")),
            "push"
        );
        assert_eq!(task_row("ORGB"), "CRM-B|0|555|3");
        assert_eq!(task_row("ORGA"), "CRM-A|0|555");
        // A push whose ids point to different rows is rejected; neither row changes.
        assert_eq!(
            apply(&push_with(r#""requestID": "CRM-A", "taskID": "556""#, "5")),
            "rejected"
        );
        assert_eq!(
            last_reason(),
            r#"taskID "556" disagrees with requestID "CRM-A", whose task row has task_id "555""#
        );
        // A push with only a taskID that two rows share cannot tell which row it is for.
        assert_eq!(apply(&push_with(r#""taskID": "555""#, "5")), "rejected");
        assert!(
            last_reason().contains("more than one task row"),
            "{}",
            last_reason()
        );
        assert_eq!(task_row("ORGA"), "CRM-A|0|555");
        assert_eq!(task_row("ORGB"), "CRM-B|0|555|3");
    }

    #[pg_test]
    fn an_orphan_push_waits_for_its_own_reply_even_when_another_row_has_its_task_id() {
        let a = enqueued_request("ORGA");
        let b = enqueued_request("ORGB");
        assert_eq!(apply(&created(&a, "CRM-A", "555")), "reply");
        // B's push comes before B's reply, with the taskID that A's row already has.
        assert_eq!(
            apply(&push_with(r#""requestID": "CRM-B", "taskID": "555""#, "3")),
            "orphan"
        );
        assert_eq!(task_row("ORGA"), "CRM-A|0|555");
        // A's reply again finds nothing new for A; B's reply applies B's push to B's row.
        assert_eq!(apply(&created(&a, "CRM-A", "555")), "duplicate");
        assert_eq!(apply(&created(&b, "CRM-B", "555")), "reply");
        assert_eq!(task_row("ORGB"), "CRM-B|0|555|3");
        assert_eq!(task_row("ORGA"), "CRM-A|0|555");
        // An orphan with only a taskID is resolved by the first reply with that taskID.
        let c = enqueued_request("ORGC");
        assert_eq!(apply(&push_with(r#""taskID": "777""#, "5")), "orphan");
        assert_eq!(apply(&created(&c, "CRM-C", "777")), "reply");
        assert_eq!(task_row("ORGC"), "CRM-C|0|777|5");
    }

    #[pg_test]
    fn a_push_for_a_failed_request_is_rejected_and_the_row_is_untouched() {
        let a = enqueued_request("ORGA");
        let failed = format!(
            r#"{{"requestID": "CRM-A", "replyUID": "{a}", "statusCode": "2", "statusMsg": "error"}}"#
        );
        // One push before the failed reply (an orphan), one after it.
        assert_eq!(apply(&push_with(r#""requestID": "CRM-A""#, "5")), "orphan");
        assert_eq!(apply(&failed), "reply");
        assert_eq!(
            apply(&push_with(r#""requestID": "CRM-A", "taskID": "1""#, "3")),
            "rejected"
        );
        assert!(
            last_reason().contains("no task was created"),
            "{}",
            last_reason()
        );
        assert_eq!(task_row("ORGA"), "CRM-A|2");
        assert_eq!(
            text("SELECT string_agg(outcome, ',' ORDER BY inbox_id) FROM infor_comm.inbox WHERE kind = 'push'"),
            Some("rejected,rejected".into())
        );
    }

    #[pg_test]
    fn a_repeated_reply_is_a_duplicate_and_a_conflicting_one_is_rejected() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(apply(&success_reply(&request_id)), "duplicate");
        let conflicting = format!(
            r#"{{"requestID": "other", "replyUID": "{request_id}", "statusCode": "2", "statusMsg": "later error"}}"#
        );
        assert_eq!(apply(&conflicting), "rejected");
        assert!(
            last_reason().starts_with("conflicts with the reply already applied"),
            "{}",
            last_reason()
        );
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|123456789"));
    }

    #[pg_test]
    fn of_two_different_pushes_the_later_dt_wins() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        let push = |dt: &str, first: &str| {
            format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "{dt}", "taskStatus": "3", "firstLevelClientReaction": "{first}"}}"#
            )
        };
        assert_eq!(
            apply(&push("2026-11-22T10:00:00.000+03:00", "Недозвон")),
            "push"
        );
        // Older, arriving later: kept, changes nothing.
        assert_eq!(
            apply(&push(
                "2026-11-22T09:00:00.000+03:00",
                "Дозвон - планирует миграцию"
            )),
            "push"
        );
        assert!(last_reason().starts_with("superseded"), "{}", last_reason());
        assert!(
            task_row("ORG1").ends_with("|Недозвон"),
            "{}",
            task_row("ORG1")
        );
        // The same instant in another offset is a tie: the later received wins.
        assert_eq!(
            apply(&push(
                "2026-11-22T07:00:00.000Z",
                "Дозвон - планирует миграцию"
            )),
            "push"
        );
        assert!(
            task_row("ORG1").ends_with("|Дозвон - планирует миграцию"),
            "{}",
            task_row("ORG1")
        );
        assert_eq!(
            apply(&push(
                "2026-11-22T11:00:00.000+03:00",
                "Не требуется коммуникация"
            )),
            "push"
        );
        assert!(
            task_row("ORG1").ends_with("|Не требуется коммуникация"),
            "{}",
            task_row("ORG1")
        );
    }

    #[pg_test]
    fn malformed_and_misshapen_messages_are_kept_and_rejected() {
        let request_id = enqueued_request("ORG1");
        let cases = [
            (r#"{"requestID": "x", "replyUID""#.to_string(), "malformed JSON"),
            ("[1, 2]".to_string(), "unknown shape: the message is an array"),
            (r#"{"hello": "world"}"#.to_string(), "unknown shape: neither replyUID"),
            (format!(r#"{{"requestID": "c", "replyUID": "{request_id}", "statusCode": 0, "taskID": "1"}}"#),
             "statusCode must be a string, not a number"),
            (format!(r#"{{"requestID": "c", "replyUID": "{request_id}", "statusCode": "7"}}"#),
             "statusCode \"7\" is not one of 0, 1, 2"),
            (format!(r#"{{"requestID": "c", "replyUID": "{request_id}", "statusCode": "0"}}"#),
             "taskID is missing"),
            (r#"{"requestID": "c", "taskID": "1", "dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "4"}"#.to_string(),
             "taskStatus \"4\" is not one of 3, 5"),
            (r#"{"requestID": "c", "taskID": "1", "dt": "yesterday", "taskStatus": "3"}"#.to_string(),
             "dt \"yesterday\" is not a date and time"),
            (r#"{"dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "3"}"#.to_string(),
             "both taskID and requestID are missing"),
            (r#"{"requestID": "nobody", "replyUID": "not-ours", "statusCode": "1"}"#.to_string(),
             "replyUID \"not-ours\" matches no request of ours"),
        ];
        for (body, reason) in &cases {
            assert_eq!(apply(body), "rejected", "{body}");
            assert!(
                last_reason().starts_with(reason),
                "{body}: {}",
                last_reason()
            );
            assert_eq!(
                text("SELECT body FROM infor_comm.inbox ORDER BY inbox_id DESC LIMIT 1").as_deref(),
                Some(body.as_str()),
                "kept whole"
            );
        }
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.inbox WHERE outcome = 'rejected'"),
            cases.len() as i64
        );
        assert_eq!(task_row("ORG1"), "", "the task row is untouched");
    }

    #[pg_test]
    fn a_value_longer_than_its_column_is_rejected_not_truncated() {
        let request_id = enqueued_request("ORG1");
        let at_limit = "9".repeat(200);
        let too_long = "я".repeat(201);
        let reply = |task_id: &str| {
            format!(
                r#"{{"requestID": "{CRM_ID}", "replyUID": "{request_id}", "statusCode": "0", "taskID": "{task_id}"}}"#
            )
        };
        assert_eq!(apply(&reply(&too_long)), "rejected");
        assert_eq!(
            last_reason(),
            "taskID is 201 characters long, longer than its column (200)"
        );
        assert_eq!(task_row("ORG1"), "");
        assert_eq!(apply(&reply(&at_limit)), "reply");
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|{at_limit}"));
    }

    #[pg_test]
    fn a_one_mebibyte_body_is_kept_whole() {
        let request_id = enqueued_request("ORG1");
        let filler = "ы".repeat(512 * 1024); // 1 MiB of UTF-8
        let reply = format!(
            r#"{{"requestID": "{CRM_ID}", "replyUID": "{request_id}", "statusCode": "2", "statusMsg": "{filler}"}}"#
        );
        assert_eq!(apply(&reply), "reply");
        assert_eq!(
            int("SELECT octet_length(body)::bigint FROM infor_comm.inbox"),
            reply.len() as i64
        );
        let push = format!(
            r#"{{"requestID": "{CRM_ID}", "dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "5", "taskExecDescr": "{filler}"}}"#
        );
        assert_eq!(apply(&push), "rejected");
        assert_eq!(
            last_reason(),
            "taskExecDescr is 524288 characters long, longer than its column (200)"
        );
        assert_eq!(
            int("SELECT octet_length(body)::bigint FROM infor_comm.inbox ORDER BY inbox_id DESC LIMIT 1"),
            push.len() as i64
        );
    }

    #[pg_test]
    fn a_body_that_is_not_utf8_is_kept_as_bytes_and_rejected() {
        let outcome = Spi::get_one::<String>(
            r"SELECT infor_comm.apply_inbound('\x7b22ff227d'::bytea, 'msg-1')",
        )
        .expect("apply")
        .expect("outcome");
        assert_eq!(outcome, "rejected");
        assert_eq!(
            text("SELECT concat_ws('|', message_id, kind, body IS NULL, encode(body_bytes, 'hex'), reason) FROM infor_comm.inbox"),
            Some("msg-1|unknown|t|7b22ff227d|the body is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 2".into())
        );
        // A valid body passed as bytes is applied like text.
        assert_eq!(
            text(r#"SELECT infor_comm.apply_inbound(convert_to('{"a": 1}', 'UTF8'))"#),
            Some("rejected".into())
        );
        assert_eq!(
            last_reason(),
            "unknown shape: neither replyUID (a reply) nor taskStatus (a push)"
        );
    }

    #[pg_test]
    fn a_push_with_an_unknown_reaction_is_applied_and_listed() {
        let request_id = enqueued_request("ORG1");
        apply(&success_reply(&request_id));
        let push = format!(
            r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "3",
                 "firstLevelClientReaction": "Недозвон", "secondLevelClientReaction": "Занято"}}"#
        );
        assert_eq!(apply(&push), "push");
        assert_eq!(
            text("SELECT second_level_client_reaction FROM infor_comm.unknown_reaction_pushes"),
            Some("Занято".into())
        );
        // The reference table has every row of the specification's last table.
        assert_eq!(int("SELECT count(*) FROM infor_comm.client_reaction"), 25);
    }

    #[pg_test]
    fn claim_hands_out_a_row_once_until_its_lease_ends() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        client("ORG2", "OK", "2026-11-01 09:00:00");
        enqueue(AS_OF);
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(1, '1 minute')"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            0
        );
        // A lease that ended makes the row claimable again.
        run("UPDATE infor_comm.outbox SET available_at = now() - interval '1 second' WHERE organization_id = 'ORG1'");
        assert_eq!(
            text("SELECT (payload::json->>'requestID' = request_id)::text FROM infor_comm.claim_outbox(10, '1 minute')"),
            Some("true".into())
        );
        assert_eq!(int("SELECT infor_comm.mark_published(array_agg(outbox_id))::bigint FROM infor_comm.outbox"), 2);
        assert_eq!(int("SELECT infor_comm.mark_published(array_agg(outbox_id))::bigint FROM infor_comm.outbox"), 0);
        run("UPDATE infor_comm.outbox SET available_at = now() - interval '1 hour'");
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            0,
            "published rows are not claimed"
        );
        assert_eq!(int("SELECT pending FROM infor_comm.outbox_backlog()"), 0);
    }

    #[pg_test]
    fn mark_failed_counts_attempts_keeps_the_error_and_backs_off() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        enqueue(AS_OF);
        let id = int("SELECT outbox_id FROM infor_comm.claim_outbox(1, '1 minute')");
        let delays: Vec<String> = (1..=9)
            .map(|n| {
                text(&format!(
                    "SELECT (infor_comm.mark_failed({id}, 'nack {n}') - now())::text"
                ))
                .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            delays,
            [
                "00:00:05", "00:00:10", "00:00:20", "00:00:40", "00:01:20", "00:02:40", "00:05:20",
                "00:10:00", "00:10:00"
            ]
        );
        assert_eq!(
            text("SELECT attempts || ' ' || last_error FROM infor_comm.outbox"),
            Some("9 nack 9".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            0
        );
        assert_eq!(int("SELECT pending FROM infor_comm.outbox_backlog()"), 1);
    }

    #[pg_test(error = "infor_comm: invalid batch_size 0")]
    fn claim_refuses_a_zero_batch() {
        run("SELECT * FROM infor_comm.claim_outbox(0, '1 minute')");
    }

    /// Runs `sql` as `role`; returns the error message, or "ok".
    fn as_role(role: &str, sql: &str) -> String {
        run(&format!("SET LOCAL ROLE {role}"));
        let result = PgTryBuilder::new(|| {
            Spi::run(sql)
                .map(|_| "ok".to_string())
                .unwrap_or_else(|e| e.to_string())
        })
        .catch_others(|e| match e {
            pg_sys::panic::CaughtError::PostgresError(report) => report.message().to_string(),
            other => format!("{other:?}"),
        })
        .execute();
        run("RESET ROLE");
        result
    }

    #[pg_test]
    fn the_relay_role_may_call_its_functions_and_nothing_else() {
        let request_id = enqueued_request("ORG1");
        run("CREATE ROLE test_relay LOGIN IN ROLE infor_comm_relay");
        let calls = [
            "SELECT * FROM infor_comm.claim_outbox(10, '1 minute')".to_string(),
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

    // ---- 0.2.0: one client never stops the run; the job trusts only its host schema --------

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

    #[pg_test(error = "invalid value for parameter \"infor_comm.host_schema\": \"\"")]
    fn an_empty_host_schema_is_refused() {
        run("SET LOCAL infor_comm.host_schema = ''");
    }

    #[pg_test(error = "infor_comm: host schema \"nowhere\" does not exist")]
    fn a_missing_host_schema_is_named() {
        run("SET LOCAL infor_comm.host_schema = 'nowhere'");
        enqueue(AS_OF);
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
        // The bank's tables are in "bank app"; public and an earlier schema hold look-alikes.
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

    #[pg_test]
    fn schedule_daily_keeps_one_job_per_database_whoever_scheduled_it() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron;
             CREATE ROLE test_dba_a LOGIN SUPERUSER; CREATE ROLE test_dba_b LOGIN SUPERUSER;
             CREATE ROLE test_runner LOGIN;");
        run("SET LOCAL ROLE test_dba_a");
        int("SELECT infor_comm.schedule_daily()");
        run("SET LOCAL ROLE test_dba_b");
        int("SELECT infor_comm.schedule_daily('15 8 * * *', 'test_runner')");
        run("RESET ROLE");
        assert_eq!(
            text("SELECT string_agg(username || ' ' || schedule || ' ' || database, ';') FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            Some("test_runner 15 8 * * * pgrx_tests".into())
        );
        run("SET LOCAL ROLE test_dba_a");
        assert_eq!(
            text("SELECT infor_comm.unschedule_daily()::text"),
            Some("true".into())
        );
        run("RESET ROLE");
        assert_eq!(
            int("SELECT count(*) FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            0
        );
    }

    #[pg_test(error = "infor_comm: the schedule of schedule_daily is NULL")]
    fn schedule_daily_refuses_a_null_schedule() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron");
        int("SELECT infor_comm.schedule_daily(NULL)");
    }

    #[pg_test(error = "infor_comm: role \"nobody_here\" does not exist")]
    fn schedule_daily_refuses_an_unknown_role() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron");
        int("SELECT infor_comm.schedule_daily('0 9 * * *', 'nobody_here')");
    }

    // ---- 0.2.0: apply_inbound never raises on content ---------------------------------------

    #[pg_test]
    fn a_nul_character_anywhere_is_rejected_and_never_blocks_the_reply() {
        let request_id = enqueued_request("ORG1");
        // An orphan push with \u0000 in a reaction: rejected at once, so it can never make its
        // reply raise later.
        let push = r#"{"requestID": "72a26ab9-b99e-40aa-9f7e-2247b3709394", "taskID": "123456789", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "3", "firstLevelClientReaction": "a\u0000b"}"#;
        assert_eq!(apply(push), "rejected");
        assert_eq!(
            last_reason(),
            "$.firstLevelClientReaction contains the character U+0000, which PostgreSQL text cannot hold"
        );
        let reply_with_nul = format!(
            r#"{{"requestID": "CRM\u0000X", "replyUID": "{request_id}", "statusCode": "0", "taskID": "1"}}"#
        );
        assert_eq!(apply(&reply_with_nul), "rejected");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|123456789"));
        assert_eq!(apply(r#"{"a\u0000": 1}"#), "rejected");
        assert_eq!(int("SELECT count(*) FROM infor_comm.inbox"), 4);
    }

    #[pg_test]
    fn a_push_dt_that_postgresql_cannot_store_is_rejected() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        for (dt, reason) in [
            (
                "2026-11-21T10:00:00+20:00",
                "has the UTC offset +20:00, outside -14:00 to +14:00",
            ),
            ("0000-01-01T00:00:00Z", "is before the year 1"),
            ("9999-12-31T23:00:00-14:00", "is after the year 9999"),
            ("2026-13-01T00:00:00Z", "is not a date and time with offset"),
        ] {
            let push = format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "{dt}", "taskStatus": "3"}}"#
            );
            assert_eq!(apply(&push), "rejected", "{dt}");
            assert!(last_reason().contains(reason), "{dt}: {}", last_reason());
        }
        // The extremes that are fine are applied.
        for dt in [
            "0001-01-01T14:00:00+14:00",
            "9999-12-31T09:59:59.999999-14:00",
            "2016-12-31T23:59:60Z",
        ] {
            let push = format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "{dt}", "taskStatus": "5", "taskExecDescr": "{dt}"}}"#
            );
            assert_ne!(apply(&push), "rejected", "{dt}: {}", last_reason());
        }
    }

    #[pg_test]
    fn of_two_pushes_with_the_same_dt_the_later_received_wins() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        let push = |first: &str| {
            format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "2026-11-21T10:00:00+03:00", "taskStatus": "3", "firstLevelClientReaction": "{first}"}}"#
            )
        };
        assert_eq!(apply(&push("Недозвон")), "push");
        assert_eq!(apply(&push("Дозвон - планирует миграцию")), "push");
        assert_eq!(
            task_row("ORG1"),
            format!("{CRM_ID}|0|123456789|3|Дозвон - планирует миграцию")
        );
        // The first one again is a duplicate and changes nothing.
        assert_eq!(apply(&push("Недозвон")), "duplicate");
    }

    #[pg_test]
    fn a_late_created_reply_withdraws_the_clients_newer_unpublished_request() {
        let old_request = enqueued_request("ORG1");
        // Published, then unanswered past the timeout: the next day's job asks again.
        run("UPDATE infor_comm.outbox SET published_at = '2026-11-20 12:00:00+03'");
        assert_eq!(enqueue("2026-11-21 12:30:00+03"), 1);
        assert_eq!(
            text("SELECT string_agg(close_reason, ',' ORDER BY outbox_id) FROM infor_comm.outbox"),
            Some("timed_out".into())
        );
        // The old request's '0' arrives late: the newer request is withdrawn, never published.
        assert_eq!(apply(&success_reply(&old_request)), "reply");
        assert_eq!(
            text("SELECT string_agg(coalesce(close_reason, 'open'), ',' ORDER BY outbox_id) FROM infor_comm.outbox"),
            Some("timed_out,withdrawn".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            0
        );
    }

    #[pg_test]
    fn a_null_body_is_journaled_as_null() {
        host_tables_once();
        assert_eq!(
            text("SELECT infor_comm.apply_inbound(NULL::text)"),
            Some("rejected".into())
        );
        assert_eq!(
            text("SELECT infor_comm.apply_inbound(NULL::bytea, 'm-1')"),
            Some("rejected".into())
        );
        assert_eq!(
            text("SELECT string_agg(coalesce(body, 'NULL') || ' ' || coalesce(body_bytes::text, 'NULL') || ' ' || reason, ';') FROM infor_comm.inbox"),
            Some("NULL NULL the body is NULL;NULL NULL the body is NULL".into())
        );
    }

    /// A small deterministic pseudo-random generator (xorshift64*), so that a failing mutation
    /// can be replayed.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Mutates a body: bytes flipped, cut, escapes and odd values inserted, fields replaced.
    fn mutate(body: &[u8], rng: &mut Xorshift) -> Vec<u8> {
        const INSERTS: [&str; 16] = [
            r"\u0000", r"\ud800", r"\udfff", r"\uffff", "\\", "\"", "1e999999", "-0",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            "null", "{}", "\u{0}", "\u{fffd}", "\u{00a0}", "99999999999999999999999999", "\u{10ffff}",
        ];
        const VALUES: [&str; 10] = [
            "\"2026-11-21T10:00:00+20:00\"", "\"0000-01-01T00:00:00Z\"", "\"9999-12-31T23:59:60-14:00\"",
            "\"3\"", "\"0\"", "null", "12", "\"\\u0000\"", "[\"x\"]", "\"LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL\"",
        ];
        let mut out = body.to_vec();
        for _ in 0..=rng.below(3) {
            match rng.below(5) {
                0 if !out.is_empty() => {
                    let at = rng.below(out.len());
                    out[at] ^= 1 << rng.below(8);
                }
                1 if !out.is_empty() => out.truncate(rng.below(out.len())),
                2 => {
                    let at = rng.below(out.len() + 1);
                    let insert = INSERTS[rng.below(INSERTS.len())].as_bytes();
                    out.splice(at..at, insert.iter().copied());
                }
                3 => {
                    // Replace the value after a colon with an odd one.
                    let colons: Vec<usize> = out
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b':')
                        .map(|(i, _)| i)
                        .collect();
                    if let Some(&colon) = colons.get(rng.below(colons.len().max(1))) {
                        let end = out[colon..]
                            .iter()
                            .position(|b| *b == b',' || *b == b'}')
                            .map_or(out.len(), |p| colon + p);
                        let value = VALUES[rng.below(VALUES.len())].as_bytes();
                        out.splice(colon + 1..end, value.iter().copied());
                    }
                }
                _ => {
                    let at = rng.below(out.len() + 1);
                    let byte = (rng.next() & 0xff) as u8;
                    out.insert(at, byte);
                }
            }
        }
        out
    }

    #[pg_test]
    fn apply_inbound_returns_an_outcome_and_journals_once_for_thousands_of_mutated_bodies() {
        let request_id = enqueued_request("ORG1");
        let other = enqueued_request("ORG2");
        let seeds = [
            success_reply(&request_id),
            format!(r#"{{"requestID": "CRM-2", "replyUID": "{other}", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "1", "statusMsg": "Клиент не найден."}}"#),
            MANUAL_PUSH.to_string(),
            AUTOMATIC_PUSH.to_string(),
            r#"{"requestID": "CRM-2", "taskID": "T-2", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "5"}"#.to_string(),
        ];
        let mut rng = Xorshift(0x1c0f_fee5_eed0_0001);
        const MUTATIONS: i64 = 4000;
        let outcomes = ["reply", "push", "duplicate", "orphan", "rejected"];
        for n in 0..MUTATIONS {
            let seed = seeds[rng.below(seeds.len())].as_bytes();
            let body = mutate(seed, &mut rng);
            let outcome = Spi::get_one_with_args::<String>(
                "SELECT infor_comm.apply_inbound($1::bytea, $2)",
                &[body.as_slice().into(), format!("fuzz-{n}").into()],
            )
            .unwrap_or_else(|e| {
                panic!(
                    "mutation {n} raised: {e}; body: {}",
                    String::from_utf8_lossy(&body)
                )
            });
            assert!(
                outcome.as_deref().is_some_and(|o| outcomes.contains(&o)),
                "mutation {n}: {outcome:?}"
            );
        }
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.inbox WHERE message_id LIKE 'fuzz-%'"),
            MUTATIONS,
            "every message journaled exactly once"
        );
        assert_eq!(
            int("SELECT count(DISTINCT message_id) FROM infor_comm.inbox WHERE message_id LIKE 'fuzz-%'"),
            MUTATIONS
        );
        // The seeds themselves still apply as they should.
        assert!(int("SELECT count(*) FROM infor_comm.inbox WHERE outcome = 'rejected'") > 0);
    }
}
