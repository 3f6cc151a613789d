//! The retention of personal data on a year of history (`sql/report_history.sql`), with the real
//! extension: `apply_retention` blanks what is older than `infor_comm.retention`, keeps its
//! digest and size, and every report gives the same numbers before and after.

use infor_comm_tests::TestDb;
use tokio_postgres::Client;

/// Every report's numbers, as text, one line per row.
async fn reports(client: &Client) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, query) in [
        ("funnel", "SELECT f::text FROM infor_comm.daily_funnel f ORDER BY day"),
        (
            "effectiveness",
            "SELECT e::text FROM infor_comm.effectiveness() e ORDER BY 1",
        ),
        (
            "effectiveness of a quarter",
            "SELECT e::text FROM infor_comm.effectiveness(current_date - 300, current_date - 210) e ORDER BY 1",
        ),
        (
            "health",
            "SELECT row(unpublished, unanswered_past_timeout, orphans_older_than_a_day, rejected_last_24h,
                        rejected_last_24h_by_reason, last_run_status, last_success_sent,
                        last_success_skipped)::text
               FROM infor_comm.health",
        ),
        (
            "reactions",
            "SELECT r::text FROM infor_comm.task_reactions r ORDER BY 1",
        ),
        (
            "unknown reactions",
            "SELECT count(*)::text FROM infor_comm.unknown_reaction_pushes",
        ),
        (
            "inbox by outcome",
            "SELECT kind || ' ' || outcome || ' ' || count(*) || ' ' || count(task_row_id)
               FROM infor_comm.inbox GROUP BY kind, outcome ORDER BY 1",
        ),
    ] {
        for row in client.query(query, &[]).await.expect(name) {
            lines.push(format!("{name}: {}", row.get::<_, String>(0)));
        }
    }
    lines
}

async fn count(client: &Client, query: &str) -> i64 {
    client.query_one(query, &[]).await.expect(query).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_of_history_keeps_every_report_and_loses_its_personal_data() {
    let db = TestDb::new().await;
    db.run_sql_file(
        "sql/report_history.sql",
        &[("days", "365"), ("per_day", "40")],
    );
    let client = db.connect().await;
    // An orphan push older than the retention, still waiting for its reply: kept.
    client
        .batch_execute(
            "INSERT INTO infor_comm.inbox (received_at, message_id, body, kind, outcome, push_request_id)
             VALUES (now() - interval '200 days', 'orphan-old',
                     '{\"requestID\": \"CRM-LOST\", \"taskID\": \"T-LOST\", \"taskStatus\": \"3\"}',
                     'push', 'orphan', 'CRM-LOST')",
        )
        .await
        .expect("an old orphan");
    let before = reports(&client).await;
    for report in [
        "funnel",
        "effectiveness",
        "effectiveness of a quarter",
        "health",
        "reactions",
    ] {
        assert!(
            before
                .iter()
                .any(|line| line.starts_with(&format!("{report}: "))),
            "{report} has rows: {before:#?}"
        );
    }
    assert!(before.len() > 365, "a year of funnel rows");
    let old_rejected = count(
        &client,
        "SELECT count(*) FROM infor_comm.inbox
          WHERE outcome = 'rejected' AND received_at < now() - interval '180 days'",
    )
    .await;
    assert!(old_rejected > 0, "the history has old rejected messages");

    let row = client
        .query_one("SELECT * FROM infor_comm.apply_retention()", &[])
        .await
        .expect("apply_retention");
    let (requests, messages): (i64, i64) = (row.get(0), row.get(1));
    assert!(requests > 5000 && messages > 5000, "{requests} {messages}");

    // Every report, the same.
    assert_eq!(reports(&client).await, before);
    // Nothing past the retention keeps a payload or a body, but the waiting orphan.
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM infor_comm.outbox
              WHERE created_at < now() - interval '180 days' AND closed_at IS NOT NULL
                AND payload IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM infor_comm.inbox
              WHERE received_at < now() - interval '180 days'
                AND (body IS NOT NULL OR body_bytes IS NOT NULL)"
        )
        .await,
        1,
        "only the orphan waiting for its reply"
    );
    // What was blanked keeps its digest and size; what is younger is untouched.
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM infor_comm.outbox
              WHERE blanked_at IS NOT NULL
                AND (payload_sha256 IS NULL OR payload_size IS NULL OR length(payload_sha256) <> 32)"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM infor_comm.inbox
              WHERE blanked_at IS NOT NULL AND (body_sha256 IS NULL OR body_size IS NULL)"
        )
        .await,
        0
    );
    assert!(
        count(
            &client,
            "SELECT count(*) FROM infor_comm.outbox
              WHERE created_at > now() - interval '170 days' AND payload IS NOT NULL AND blanked_at IS NULL"
        )
        .await
            > 5000
    );
    // Once is enough: a second run blanks nothing more.
    let again = client
        .query_one("SELECT * FROM infor_comm.apply_retention()", &[])
        .await
        .expect("apply_retention again");
    assert_eq!((again.get::<_, i64>(0), again.get::<_, i64>(1)), (0, 0));
    assert_eq!(reports(&client).await, before);
}
