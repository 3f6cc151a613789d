//! Reports: the reference table of client reactions (the specification's last table), the
//! views analysts group by, and the reports of docs/reports.md: `daily_funnel` (one row per
//! day), `effectiveness(asked_from, asked_to)` (what became of the clients asked about; it
//! joins the host tables, so its query is built here with the quoted host schema, like the
//! selection's), `client_history(organization_id)` (for the support desk) and `health` (one
//! row, for an alert). The run history they read is `crate::run_history`.

use crate::host_tables::HostTables;
use pgrx::prelude::*;

extension_sql_file!("../sql/client_reaction.sql", name = "client_reaction",);

extension_sql_file!(
    "../sql/reaction_views.sql",
    name = "reaction_views",
    requires = ["task_table", "client_reaction"],
);

/// The order that puts a client's decisive request first among its task rows `t`: the one that
/// created a task, else the latest. The effectiveness report and the uplift count a client by it.
pub(crate) const DECISIVE_REQUEST_FIRST: &str =
    "coalesce(t.status_code = '0', false) DESC, t.time_create DESC";

/// The first-level reaction of task row `t`, NULL when InforCRM sent none (empty or '-').
pub(crate) const FIRST_LEVEL_REACTION: &str =
    "nullif(nullif(pg_catalog.btrim(t.first_level_client_reaction), ''), '-')";

/// The effectiveness report for the host tables of `host`: `$1` and `$2` (dates, NULL for
/// unbounded) are the first and last day of the requests looked at. Each client asked about
/// counts once, by its decisive request: the one that created a task, else the latest. Its
/// migration now is read from `product_migration_clients`, and a wizard status change after
/// the request from `wizard_status_change_log` (both wall times in `infor_comm.timezone`).
pub fn effectiveness_sql(host: &HostTables) -> String {
    format!(
        "WITH asked AS (
    SELECT DISTINCT ON (t.organization_id)
           t.organization_id, t.time_create AS asked_at, t.status_code, t.task_status,
           {FIRST_LEVEL_REACTION} AS first_level
      FROM infor_comm.infor_communication_task t
     WHERE t.time_create::date BETWEEN coalesce($1::date, '-infinity'::date) AND coalesce($2::date, 'infinity'::date)
     ORDER BY t.organization_id, {DECISIVE_REQUEST_FIRST}
), judged AS (
    SELECT CASE WHEN a.status_code = '0' AND a.task_status = '3' THEN 1
                WHEN a.status_code = '0' AND a.task_status = '5' THEN 2
                WHEN a.status_code = '0' THEN 3
                WHEN a.status_code = '1' THEN 4
                WHEN a.status_code = '2' THEN 5
                ELSE 6 END AS asked_order,
           CASE WHEN a.task_status IS NOT NULL THEN coalesce(a.first_level, '-') ELSE '-' END AS reaction,
           (pg_catalog.now() AT TIME ZONE (SELECT infor_comm.setting_timezone()))::date - a.asked_at::date AS days,
           CASE WHEN c.status_found IS NULL THEN 'left_wizard'
                WHEN c.status = 'migrated' THEN 'migrated'
                WHEN c.status IS DISTINCT FROM 'in_wizard' THEN 'left_wizard'
                WHEN l.last_change > a.asked_at THEN 'moved_in_wizard'
                ELSE 'still_thinking' END AS now
      FROM asked a
      -- One index probe per client (LIMIT 1 keeps it a probe): a report of the last days costs
      -- those days' clients, not a scan of every migration client.
      LEFT JOIN LATERAL (
            SELECT true AS status_found, c.status
              FROM {clients} c
             WHERE c.organization_id = a.organization_id
             LIMIT 1) c ON true
      -- The latest wizard status change, looked up only for the clients still in the wizard.
      LEFT JOIN LATERAL (
            SELECT pg_catalog.max(w.change_date) AS last_change
              FROM {log} w
             WHERE w.organization_id = a.organization_id AND c.status = 'in_wizard') l ON true
)
SELECT (ARRAY['called (task processed)', 'task not processed', 'task created, no outcome yet',
              'not called: client not found', 'not called: other error',
              'not called: no reply'])[j.asked_order] AS asked,
       j.reaction,
       CASE WHEN j.days < 7 THEN '0-6' WHEN j.days < 14 THEN '7-13'
            WHEN j.days < 30 THEN '14-29' ELSE '30+' END AS days_since_request,
       pg_catalog.count(*) AS clients,
       pg_catalog.count(*) FILTER (WHERE j.now = 'migrated') AS migrated,
       pg_catalog.count(*) FILTER (WHERE j.now = 'left_wizard') AS left_wizard,
       pg_catalog.count(*) FILTER (WHERE j.now = 'moved_in_wizard') AS moved_in_wizard,
       pg_catalog.count(*) FILTER (WHERE j.now = 'still_thinking') AS still_thinking,
       pg_catalog.round(100.0 * pg_catalog.count(*) FILTER (WHERE j.now = 'migrated') / pg_catalog.count(*), 1) AS migrated_percent
  FROM judged j
 GROUP BY j.asked_order, j.reaction, 3
 ORDER BY j.asked_order, j.reaction, pg_catalog.min(j.days)",
        clients = host.name("product_migration_clients"),
        log = host.name("wizard_status_change_log"),
    )
}

/// The call centre's forecast: for each of the `$2` days after `$3` (a `timestamptz`; days in
/// `infor_comm.timezone`), the clients who become thinking that day if nothing changes: they
/// reach `infor_comm.thinking_days` full days in their current wizard status that day, and
/// meet the selection's other rules. `$1` is the end of the horizon, which the selection is
/// run at; a client already thinking before the first day is not counted again. Columns: day,
/// clients, to_call (would be asked), held_out (the hold-out group), cannot_be_sent (a skip
/// reason).
pub fn forecast_sql(host: &HostTables) -> String {
    format!(
        "WITH thinking AS ({selection}),
days AS (
    SELECT ($3 AT TIME ZONE (SELECT infor_comm.setting_timezone()))::date + g.n AS day
      FROM pg_catalog.generate_series(1, $2) AS g (n)
)
SELECT d.day,
       pg_catalog.count(t.organization_id) AS clients,
       pg_catalog.count(*) FILTER (WHERE t.holdout_group = 'asked') AS to_call,
       pg_catalog.count(*) FILTER (WHERE t.holdout_group = 'held out') AS held_out,
       pg_catalog.count(*) FILTER (WHERE t.skip_reason IS NOT NULL) AS cannot_be_sent
  FROM days d
  LEFT JOIN thinking t
    ON (t.status_since + pg_catalog.make_interval(hours => 24 * (SELECT infor_comm.setting_thinking_days())))::date = d.day
 GROUP BY d.day
 ORDER BY d.day",
        selection = crate::selection::selection_sql(host),
    )
}

/// The query behind `forecast`, for the host schema in force (`$1` the end of the horizon, `$2`
/// the days, `$3` the moment it starts from), to read or `EXPLAIN`.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn forecast_query() -> String {
    crate::entry_checks();
    forecast_sql(&HostTables::resolve())
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.forecast_query() IS
    'The query of forecast for the host schema in force ($1: the end of the horizon, $2: the days, $3: the moment it starts from), to read or EXPLAIN.';
"#,
    name = "forecast_query_comment",
    requires = [forecast_query],
);

/// The query behind `effectiveness`, for the host schema in force (`$1`, `$2`: the first and
/// last day of the requests, NULL for unbounded), to read or `EXPLAIN`.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn effectiveness_query() -> String {
    crate::entry_checks();
    effectiveness_sql(&HostTables::resolve())
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.effectiveness_query() IS
    'The query of effectiveness for the host schema in force ($1, $2: first and last request day), to read or EXPLAIN.';
"#,
    name = "effectiveness_query_comment",
    requires = [effectiveness_query],
);

/// The code of a rejection reason (`inbound_message::reason_code`): its kind, without the values
/// in it.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn inbox_reason_code(reason: &str) -> &'static str {
    crate::inbound_message::reason_code(reason)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.inbox_reason_code(text) IS
    'The kind of a rejection reason of the inbox (malformed_json, unknown_request, bad_dt, ...), without the values in it: what health counts rejected messages by.';
"#,
    name = "inbox_reason_code_comment",
    requires = [inbox_reason_code],
);

/// The ids written in an inbound message's text (`inbound_message::message_ids`), for
/// `client_history` and the index of the messages that matched no task row; `NULL` when none.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn inbox_message_ids(body: &str) -> Option<Vec<String>> {
    let ids = crate::inbound_message::message_ids(body);
    (!ids.is_empty()).then_some(ids)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.inbox_message_ids(text) IS
    'The replyUID, requestID and taskID values written in the first 16 KiB of an inbound message''s text, at most 64 (NULL when none), for client_history.';
"#,
    name = "inbox_message_ids_comment",
    requires = [inbox_message_ids],
);

extension_sql_file!(
    "../sql/reports.sql",
    name = "reports",
    requires = [
        inbox_message_ids,
        inbox_reason_code,
        login_scope::require_login_for_database_sql,
        cron_schedule::cron_previous_run,
        "task_table",
        "outbox_table",
        "inbox_table",
        "run_history",
        "reaction_views",
        effectiveness_query,
        forecast_query,
        "selection",
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
    fn the_forecast_counts_each_client_on_the_day_it_becomes_thinking() {
        host_tables();
        // As of 2026-11-20 12:00 (Moscow), seven full days:
        client("DAY1", "OK", "2026-11-14 10:00:00"); // thinking on 11-21 at 10:00
        client("DAY2", "IN_PROGRESS", "2026-11-15 09:00:00"); // on 11-22
        client("NO_SNAPSHOT", "OK", "2026-11-15 18:00:00"); // on 11-22, cannot be sent
        run("DELETE FROM clientsnapshot WHERE id = 'NO_SNAPSHOT'");
        // The clock restarts: thinking since 11-08, its status changed on 11-16 (on 11-23).
        client("RESTARTED", "OK", "2026-11-01 09:00:00");
        run("INSERT INTO wizard_status_change_log VALUES ('RESTARTED', 'TO_SIGN', '2026-11-16 12:30:00')");
        run("UPDATE product_migration_clients SET wizard_status = 'TO_SIGN' WHERE organization_id = 'RESTARTED'");
        client("ALREADY", "OK", "2026-11-01 09:00:00"); // thinking already: not forecast
        client("CREATED", "OK", "2026-11-15 09:00:00"); // has its task: never again
        run("INSERT INTO infor_comm.infor_communication_task
                    (id, vtbc_request_id, organization_id, request_date, status_code, time_create)
             VALUES ('t-created', 'r-created', 'CREATED', 'x', '0', '2026-10-01 10:00:00')");
        client("LATE", "OK", "2026-11-17 09:00:00"); // on 11-24: past a three-day forecast
        let forecast = || {
            Spi::connect(|c| {
                c.select(
                    &format!(
                        "SELECT day::text || ' ' || clients || ' ' || to_call || ' ' || held_out
                                || ' ' || cannot_be_sent
                           FROM infor_comm.forecast(3, '{AS_OF}')"
                    ),
                    None,
                    &[],
                )?
                .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, _>>()
            })
            .expect("forecast")
        };
        assert_eq!(
            forecast(),
            vec![
                "2026-11-21 1 1 0 0",
                "2026-11-22 2 1 0 1",
                "2026-11-23 1 1 0 0"
            ]
        );
        // With a hold-out group, the held-out clients are counted apart.
        run("SET LOCAL infor_comm.holdout_percent = 50");
        run("SET LOCAL infor_comm.holdout_salt = 'forecast'");
        let held = |id: &str| u8::from(crate::holdout::is_held_out("forecast", id, 50));
        assert_eq!(
            forecast(),
            vec![
                format!("2026-11-21 1 {} {} 0", 1 - held("DAY1"), held("DAY1")),
                format!("2026-11-22 2 {} {} 1", 1 - held("DAY2"), held("DAY2")),
                format!(
                    "2026-11-23 1 {} {} 0",
                    1 - held("RESTARTED"),
                    held("RESTARTED")
                ),
            ]
        );
    }

    #[pg_test(error = "infor_comm: invalid days 0")]
    fn a_forecast_of_no_day_is_refused() {
        run("SELECT * FROM infor_comm.forecast(0)");
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

    /// Rows of a query, each row's columns joined with '|' (NULL as '∅').
    fn rows(sql: &str) -> Vec<String> {
        Spi::connect(|c| {
            c.select(
                &format!("SELECT concat_ws('|', VARIADIC (SELECT array_agg(coalesce(v, '∅')) FROM json_each_text(row_to_json(q)) AS j(k, v))) FROM ({sql}) q"),
                None,
                &[],
            )?
            .map(|row| row.get::<String>(1).map(|v| v.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn request_of(org: &str) -> String {
        text(&format!(
            "SELECT vtbc_request_id FROM infor_comm.infor_communication_task
              WHERE organization_id = '{org}' ORDER BY time_create DESC LIMIT 1"
        ))
        .unwrap_or_else(|| panic!("a request of {org}"))
    }

    fn reply(org: &str, code: &str) -> String {
        let request_id = request_of(org);
        let outcome = if code == "0" {
            apply(&created(
                &request_id,
                &format!("CRM-{org}"),
                &format!("T-{org}"),
            ))
        } else {
            apply(&format!(
                r#"{{"requestID": "CRM-{org}", "replyUID": "{request_id}", "dt": "2026-11-20T12:05:00.000+03:00", "statusCode": "{code}", "statusMsg": "no"}}"#
            ))
        };
        assert_eq!(outcome, "reply", "{org}: {}", last_reason());
        request_id
    }

    fn push(org: &str, task_status: &str, first_level: &str) {
        let outcome = apply(&format!(
            r#"{{"requestID": "CRM-{org}", "taskID": "T-{org}", "dt": "2026-11-21T10:00:00.000+03:00",
                 "taskStatus": "{task_status}", "firstLevelClientReaction": "{first_level}"}}"#
        ));
        assert_eq!(outcome, "push", "{org}: {}", last_reason());
    }

    #[pg_test]
    fn the_daily_funnel_counts_each_stage_by_day() {
        host_tables();
        // Day 1, 2026-11-20: five clients are sent, BAD cannot be (no snapshot).
        for org in ["A", "B", "C", "D", "E", "BAD"] {
            client(org, "OK", "2026-11-01 09:00:00");
        }
        // F reaches its seven days on day 2.
        client("F", "OK", "2026-11-14 10:00:00");
        run("DELETE FROM clientsnapshot WHERE id = 'BAD'");
        assert_eq!(enqueue("2026-11-20 12:00:00+03"), 5);
        run("UPDATE infor_comm.outbox SET published_at = '2026-11-20 12:01:00+03'");
        reply("A", "0");
        push("A", "3", "Недозвон");
        reply("B", "0");
        push("B", "3", "Дозвон - планирует миграцию");
        reply("C", "0");
        push("C", "5", "");
        reply("D", "1");
        // E is never answered: past infor_comm.response_timeout (1 day) it has timed out.
        // Day 2: D (failed yesterday) and F are sent; D is not published yet, F is, recently.
        assert_eq!(enqueue("2026-11-21 12:00:00+03"), 2);
        run(
            "UPDATE infor_comm.outbox SET published_at = now() - interval '1 hour'
              WHERE organization_id = 'F' AND published_at IS NULL",
        );
        // The runs of the two days (a failed run is not counted); the first as 0.2.0 recorded it
        // (no held_out), the second held two clients out.
        run("INSERT INTO infor_comm.daily_runs (started_at, as_of, run_by, backend_pid, status, finished_at, sent, skipped, error, held_out)
             VALUES ('2026-11-20 12:00+03', '2026-11-20 12:00+03', 'cron', 1, 'succeeded', '2026-11-20 12:00:01+03', 5, 1, NULL, NULL),
                    ('2026-11-21 11:00+03', '2026-11-21 11:00+03', 'cron', 1, 'failed', '2026-11-21 11:00:01+03', NULL, NULL, 'XX000: boom', NULL),
                    ('2026-11-21 12:00+03', '2026-11-21 12:00+03', 'cron', 1, 'succeeded', '2026-11-21 12:00:01+03', 2, 1, NULL, 2)");
        assert_eq!(
            rows("SELECT * FROM infor_comm.daily_funnel ORDER BY day"),
            vec![
                // day|runs|thinking|skipped|sent|confirmed|0|1|2|processed|not processed|reactions|waiting|timed out|withdrawn|held out
                r#"2026-11-20|1|6|1|5|5|3|1|0|2|1|{"-": 1, "Недозвон": 1, "Дозвон - планирует миграцию": 1}|0|1|0|∅"#,
                "2026-11-21|1|5|1|2|1|0|0|0|0|0|{}|2|0|0|2",
            ]
        );
        // A report of the last days reads only those days.
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.daily_funnel WHERE day >= '2026-11-21'"),
            1
        );
    }

    #[pg_test]
    fn effectiveness_says_what_became_of_the_clients_asked_about() {
        host_tables();
        // Each client: its requests (status_code, task_status, first level, days ago) and its
        // migration now. Days are counted from today, in Moscow.
        run("CREATE TEMP TABLE asked (org text, code text, task_status text, first_level text, days_ago int);
             INSERT INTO asked VALUES
                 ('C1', '0', '3', 'Недозвон', 10),
                 ('C2', '0', '3', 'Недозвон', 10),
                 ('C3', '0', '3', 'Дозвон - планирует миграцию', 3),
                 ('C4', '0', '5', NULL, 40),
                 ('C5', '1', NULL, NULL, 12),
                 ('C5', '0', NULL, NULL, 11),
                 ('C6', '2', NULL, NULL, 6),
                 ('C7', '1', NULL, NULL, 8),
                 ('C8', NULL, NULL, NULL, 2),
                 ('C9', '0', '3', 'Недозвон', 40);
             INSERT INTO infor_comm.infor_communication_task
                    (id, vtbc_request_id, organization_id, request_date, status_code, task_status,
                     first_level_client_reaction, time_create)
             SELECT 'row-' || org || days_ago, 'req-' || org || days_ago, org, 'x', code, task_status, first_level,
                    (now() AT TIME ZONE 'Europe/Moscow') - make_interval(days => days_ago)
               FROM asked;
             INSERT INTO product_migration_clients
             SELECT org, 'M', CASE WHEN org IN ('C1', 'C6') THEN 'migrated'
                                   WHEN org = 'C4' THEN 'cancelled' ELSE 'in_wizard' END, 'OK'
               FROM (SELECT DISTINCT org FROM asked) a WHERE org <> 'C7';
             -- Every client's latest change before its request; C2 moved on 9 days ago.
             INSERT INTO wizard_status_change_log
             SELECT org, 'OK', (now() AT TIME ZONE 'Europe/Moscow') - interval '60 days' FROM (SELECT DISTINCT org FROM asked) a;
             INSERT INTO wizard_status_change_log
             VALUES ('C2', 'TO_SIGN', (now() AT TIME ZONE 'Europe/Moscow') - interval '9 days');");
        // asked|reaction|days|clients|migrated|left|moved|still thinking|migrated %
        assert_eq!(
            rows("SELECT * FROM infor_comm.effectiveness()"),
            vec![
                "called (task processed)|Дозвон - планирует миграцию|0-6|1|0|0|0|1|0.0",
                "called (task processed)|Недозвон|7-13|2|1|0|1|0|50.0",
                "called (task processed)|Недозвон|30+|1|0|0|0|1|0.0",
                "task not processed|-|30+|1|0|1|0|0|0.0",
                "task created, no outcome yet|-|7-13|1|0|0|0|1|0.0",
                "not called: client not found|-|7-13|1|0|1|0|0|0.0",
                "not called: other error|-|0-6|1|1|0|0|0|100.0",
                "not called: no reply|-|0-6|1|0|0|0|1|0.0",
            ]
        );
        // The requests of the last two weeks only; C5's decisive request is still its '0'.
        assert_eq!(
            rows("SELECT asked, days_since_request, clients FROM infor_comm.effectiveness(current_date - 14, NULL)"),
            vec![
                "called (task processed)|0-6|1",
                "called (task processed)|7-13|2",
                "task created, no outcome yet|7-13|1",
                "not called: client not found|7-13|1",
                "not called: other error|0-6|1",
                "not called: no reply|0-6|1",
            ]
        );
    }

    #[pg_test]
    fn client_history_lists_every_event_of_one_client_in_order() {
        let request_id = enqueued_request("H");
        client("OTHER", "OK", "2026-11-01 09:00:00");
        enqueue(AS_OF);
        run("UPDATE infor_comm.outbox SET published_at = now()");
        apply(&created(&request_id, "CRM-H", "T-H"));
        // A push of H's task with a task status outside the list: rejected, no task row.
        let bad_push = r#"{"requestID": "CRM-H", "taskID": "T-H", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "9"}"#;
        assert_eq!(apply(bad_push), "rejected");
        let good_push = r#"{"requestID": "CRM-H", "taskID": "T-H", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "3", "firstLevelClientReaction": "Недозвон"}"#;
        assert_eq!(apply(good_push), "push");
        assert_eq!(apply(good_push), "duplicate");
        // Messages of someone else are not H's.
        assert_eq!(
            apply(
                r#"{"requestID": "CRM-X", "taskID": "T-X", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "9"}"#
            ),
            "rejected"
        );
        assert_eq!(apply("not json at all"), "rejected");
        let r = &request_id;
        assert_eq!(
            rows("SELECT event, request_id, outcome, left(reason, 30) AS reason, left(message, 40) AS message
                    FROM infor_comm.client_history('H')"),
            vec![
                format!("request enqueued|{r}|∅|∅|dt 2026-11-20T12:00:00.000+03:00"),
                format!("request published|{r}|∅|∅|∅"),
                format!("inbound reply|{r}|reply|∅|{}", &created(r, "CRM-H", "T-H")[..40]),
                format!("inbound push (matched no task row)|∅|rejected|{}|{}",
                        &text("SELECT left(reason, 30) FROM infor_comm.inbox WHERE body LIKE '%\"9\"}' ORDER BY inbox_id LIMIT 1").unwrap_or_default(),
                        &bad_push[..40]),
                format!("inbound push|{r}|push|∅|{}", &good_push[..40]),
                format!("inbound push|{r}|duplicate|∅|{}", &good_push[..40]),
                format!("request closed|{r}|answered|∅|∅"),
            ]
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.client_history('NOBODY')"),
            0
        );
    }

    #[pg_test]
    fn health_reads_the_backlog_the_runs_and_the_pg_cron_job_in_one_row() {
        run("DROP EXTENSION IF EXISTS pg_cron");
        // Nothing yet: no run, and pg_cron absent is no error.
        assert_eq!(
            rows("SELECT ok, problems, unpublished, oldest_unpublished_age, unanswered_past_timeout,
                         orphans_older_than_a_day, rejected_last_24h, rejected_last_24h_by_reason,
                         last_run_status, last_success_sent, pg_cron_installed, cron_job_exists, cron_last_status
                    FROM infor_comm.health"),
            vec![r#"false|["no successful daily run in the last 25 hours"]|0|∅|0|0|0|{}|∅|∅|false|∅|∅"#]
        );
        host_tables();
        for org in ["U1", "U2", "P1", "P2"] {
            client(org, "OK", "2026-11-01 09:00:00");
        }
        enqueue(AS_OF);
        // U1, U2 unpublished for 2 hours; P1 published 2 days ago and unanswered; P2 answered.
        run("UPDATE infor_comm.outbox SET created_at = now() - interval '2 hours';
             UPDATE infor_comm.outbox SET published_at = now() - interval '2 days' WHERE organization_id IN ('P1', 'P2')");
        assert_eq!(
            apply(&created(&request_of("P2"), "CRM-P2", "T-P2")),
            "reply"
        );
        // An orphan push (its reply never came) two days old, a fresh one, three rejected messages.
        assert_eq!(
            apply(
                r#"{"requestID": "CRM-LOST", "taskID": "T-LOST", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "3"}"#
            ),
            "orphan"
        );
        run("UPDATE infor_comm.inbox SET received_at = now() - interval '2 days' WHERE outcome = 'orphan'");
        assert_eq!(
            apply(
                r#"{"requestID": "CRM-NEW", "taskID": "T-NEW", "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "3"}"#
            ),
            "orphan"
        );
        assert_eq!(apply(&success_reply("no-such-request-1")), "rejected");
        assert_eq!(apply(&success_reply("no-such-request-2")), "rejected");
        assert_eq!(apply("{"), "rejected");
        // A successful run an hour ago, then one whose backend is gone (interrupted).
        run("INSERT INTO infor_comm.daily_runs (started_at, as_of, run_by, backend_pid, status, finished_at, sent, skipped)
             VALUES (now() - interval '1 hour', now() - interval '1 hour', 'cron', 1, 'succeeded', now() - interval '59 minutes', 7, 2),
                    (now() - interval '10 minutes', now() - interval '10 minutes', 'cron', 0, 'running', NULL, NULL, NULL)");
        run("CREATE EXTENSION pg_cron");
        run("SELECT infor_comm.schedule_daily()");
        run("INSERT INTO cron.job_run_details (jobid, runid, database, username, command, status, return_message, start_time)
             SELECT jobid, 1, 'pgrx_tests', 'postgres', command, 'failed', 'ERROR: boom', now() - interval '1 day'
               FROM cron.job WHERE jobname = 'infor_comm_daily'");
        assert_eq!(
            rows("SELECT ok, unpublished, oldest_unpublished_age, unanswered_past_timeout,
                         orphans_older_than_a_day, rejected_last_24h, rejected_last_24h_by_reason,
                         last_run_status, last_success_sent, last_success_skipped,
                         pg_cron_installed, cron_job_exists, cron_job_active, cron_last_status, cron_last_message
                    FROM infor_comm.health"),
            vec![concat!(
                "false|2|02:00:00|1|1|3|",
                r#"{"malformed_json": 1, "unknown_request": 2}|"#,
                "interrupted|7|2|true|true|true|failed|ERROR: boom"
            )]
        );
        assert_eq!(
            rows("SELECT regexp_replace(p, 'started [^)]*', 'started …') FROM infor_comm.health, unnest(problems) p"),
            vec![
                "2 request(s) unpublished, the oldest for 02:00:00",
                "1 request(s) published and unanswered for longer than infor_comm.response_timeout",
                "1 orphan push(es) waiting for their reply for more than a day",
                "3 inbound message(s) rejected in the last 24 hours",
                "the last daily run (started …) interrupted: its backend is gone",
                "the last pg_cron run of infor_comm_daily failed: ERROR: boom",
            ]
        );
    }
}
