//! The in-database tests of the apply.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

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
    fn a_body_made_of_ids_costs_what_a_body_of_its_size_without_ids_costs() {
        // About 1 MB, under the relay's 1 MiB limit: "taskID":"<n>" pairs, the worst case of the
        // ids that client_history indexes, against the same pairs under a key that is not an id
        // (the same size, stored and compressed alike).
        let pairs = |key: &str| {
            let pairs = (0..60_000)
                .map(|n| format!("\"{key}\":\"{n}\","))
                .collect::<String>();
            format!("{{{pairs}\"taskStatus\":\"3\"}}")
        };
        let worst = pairs("taskID");
        let plain = pairs("taskIX");
        let time = |body: &str| {
            let mut best = std::time::Duration::MAX;
            for _ in 0..3 {
                let started = std::time::Instant::now();
                assert_eq!(apply(body), "rejected");
                best = best.min(started.elapsed());
            }
            best
        };
        let plain_time = time(&plain);
        let worst_time = time(&worst);
        assert!(
            worst_time < plain_time * 3,
            "a body of ids took {worst_time:?}, one of the same size without ids {plain_time:?}"
        );
        assert_eq!(
            int(
                "SELECT max(cardinality(infor_comm.inbox_message_ids(body))) FROM infor_comm.inbox"
            ),
            64
        );
    }

    #[pg_test]
    fn a_push_whose_request_id_names_two_task_rows_is_applied_to_neither() {
        let first = enqueued_request("ORG1");
        let second = enqueued_request("ORG2");
        // InforCRM gives one requestID to the replies of two of our requests.
        assert_eq!(apply(&created(&first, "CRM-SAME", "T-1")), "reply");
        assert_eq!(apply(&created(&second, "CRM-SAME", "T-2")), "reply");
        for ids in [
            r#""requestID": "CRM-SAME""#,
            r#""requestID": "CRM-SAME", "taskID": "T-1""#,
        ] {
            assert_eq!(apply(&push_with(ids, "3")), "rejected", "{ids}");
            assert_eq!(
                last_reason(),
                "requestID \"CRM-SAME\" belongs to the replies of more than one task row, so the push cannot tell which"
            );
        }
        assert_eq!(task_row("ORG1"), "CRM-SAME|0|T-1");
        assert_eq!(task_row("ORG2"), "CRM-SAME|0|T-2");
    }

    #[pg_test]
    fn a_copy_of_a_push_costs_one_probe_however_many_copies_came_before() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        let push = format!(
            r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "3", "firstLevelClientReaction": "Недозвон"}}"#
        );
        assert_eq!(apply(&push), "push");
        // The same JSON in another spacing and key order is a copy too.
        let respaced = format!(
            r#"{{"firstLevelClientReaction":"Недозвон","taskStatus":"3","dt":"2026-11-22T10:00:00.000+03:00","taskID":"123456789","requestID":"{CRM_ID}"}}"#
        );
        for _ in 0..300 {
            assert_eq!(apply(&push), "duplicate");
        }
        assert_eq!(apply(&respaced), "duplicate");
        let fetched =
            || int("SELECT pg_stat_get_xact_tuples_fetched('infor_comm.inbox'::regclass)");
        let before = fetched();
        assert_eq!(apply(&push), "duplicate");
        let one_copy = fetched() - before;
        assert!(one_copy <= 3, "a copy read {one_copy} inbox rows");
        // An older push after them: superseded, again by one probe.
        let before = fetched();
        assert_eq!(apply(&push.replace("T10:00", "T09:00")), "push");
        assert!(last_reason().starts_with("superseded"), "{}", last_reason());
        let older = fetched() - before;
        assert!(older <= 3, "an older push read {older} inbox rows");
    }

    #[pg_test]
    fn a_push_dated_too_far_ahead_is_rejected_and_outranks_nothing() {
        let request_id = enqueued_request("ORG1");
        assert_eq!(apply(&success_reply(&request_id)), "reply");
        let push = |dt: &str, first: &str| {
            format!(
                r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "{dt}", "taskStatus": "3", "firstLevelClientReaction": "{first}"}}"#
            )
        };
        assert_eq!(
            apply(&push("9999-12-31T23:59:59.000+03:00", "Недозвон")),
            "rejected"
        );
        assert_eq!(
            last_reason(),
            "dt \"9999-12-31T20:59:59Z\" is more than 1 day after the push was received (infor_comm.max_push_dt_ahead)"
        );
        // A real push after it is applied: the rejected one outranks nothing.
        assert_eq!(
            apply(&push("2026-11-22T10:00:00.000+03:00", "Дозвон - отказ")),
            "push"
        );
        assert!(
            task_row("ORG1").ends_with("|Дозвон - отказ"),
            "{}",
            task_row("ORG1")
        );
        // Within the setting: a clock a few hours fast is not refused.
        let ahead = text("SELECT to_char(now() AT TIME ZONE 'UTC' + interval '20 hours', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
            .unwrap_or_default();
        assert_eq!(apply(&push(&ahead, "Недозвон")), "push");
        run("SET LOCAL infor_comm.max_push_dt_ahead = '1 hour'");
        assert_eq!(apply(&push(&ahead, "Дозвон - отказ")), "rejected");
        assert!(last_reason().ends_with(
            "is more than 1 hour after the push was received (infor_comm.max_push_dt_ahead)"
        ));
        // An interval longer than any two times are apart allows every dt (and raises nothing).
        run("SET LOCAL infor_comm.max_push_dt_ahead = '178000000 years'");
        assert_eq!(
            apply(&push("9999-12-31T23:59:59.000+03:00", "Недозвон")),
            "push"
        );
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
    fn a_message_id_that_is_not_text_is_kept_as_bytes_and_the_message_applied() {
        let request_id = enqueued_request("ORG1");
        let reply = success_reply(&request_id);
        // A NUL byte in the AMQP message_id once made the relay's apply fail.
        let outcome = text(&format!(
            "SELECT infor_comm.apply_delivery(convert_to($${reply}$$, 'UTF8'), '\\x6162006364'::bytea)"
        ));
        assert_eq!(outcome.as_deref(), Some("reply"));
        assert_eq!(task_row("ORG1"), format!("{CRM_ID}|0|123456789"));
        assert_eq!(
            text("SELECT concat_ws('|', message_id IS NULL, encode(message_id_bytes, 'hex'), outcome) FROM infor_comm.inbox"),
            Some("t|6162006364|reply".into())
        );
        // Not UTF-8, and clean text: each kept so that it round-trips.
        assert_eq!(
            text("SELECT infor_comm.apply_delivery(convert_to('{}', 'UTF8'), '\\xff41'::bytea)")
                .as_deref(),
            Some("rejected")
        );
        assert_eq!(
            text("SELECT infor_comm.apply_delivery(NULL, convert_to('id-ü', 'UTF8'))").as_deref(),
            Some("rejected")
        );
        assert_eq!(
            text("SELECT string_agg(concat_ws('|', message_id, encode(message_id_bytes, 'hex')), ',' ORDER BY inbox_id) FROM infor_comm.inbox"),
            Some("6162006364,ff41,id-ü".into())
        );
    }

    #[pg_test]
    fn an_oversized_body_is_journaled_by_size_digest_and_head_and_never_applied() {
        let request_id = enqueued_request("ORG1");
        let outcome = text(&format!(
            "SELECT infor_comm.reject_oversized(convert_to(rpad($${reply}$$, 70000, ' '), 'UTF8'),
                    convert_to('big-1', 'UTF8'), 52428800, sha256('x'), 1048576)",
            reply = success_reply(&request_id)
        ));
        assert_eq!(outcome.as_deref(), Some("rejected"));
        assert_eq!(task_row("ORG1"), "", "the row is untouched");
        assert_eq!(
            text("SELECT concat_ws('|', message_id, kind, body IS NULL, length(body_bytes), body_size, encode(body_sha256, 'hex') = encode(sha256('x'), 'hex')) FROM infor_comm.inbox"),
            Some("big-1|unknown|t|65536|52428800|t".into())
        );
        assert_eq!(
            last_reason(),
            "the body is 52428800 bytes, over the relay's limit of 1048576 bytes; kept: its size, its SHA-256 and its first 65536 bytes"
        );
    }

    #[pg_test(error = "infor_comm: body_sha256 is 3 bytes, not 32")]
    fn an_oversized_body_needs_a_whole_digest() {
        run("SELECT infor_comm.reject_oversized('\\x00', NULL, 5, '\\x010203', 1)");
    }

    #[pg_test]
    fn a_set_aside_message_is_journaled_with_its_error_and_not_applied() {
        let request_id = enqueued_request("ORG1");
        let outcome = text(&format!(
            "SELECT infor_comm.set_aside_inbound(convert_to($${reply}$$, 'UTF8'), '\\x6100'::bytea, 5, 'canceling statement due to statement timeout')",
            reply = success_reply(&request_id)
        ));
        assert_eq!(outcome.as_deref(), Some("rejected"));
        assert_eq!(task_row("ORG1"), "", "the row is untouched");
        assert_eq!(
            text("SELECT concat_ws('|', kind, body IS NOT NULL, encode(message_id_bytes, 'hex')) FROM infor_comm.inbox"),
            Some("reply|t|6100".into())
        );
        assert_eq!(
            last_reason(),
            "set aside by the relay after 5 failed applies; last error: canceling statement due to statement timeout"
        );
        // The same reply delivered again later applies normally.
        assert_eq!(apply(&success_reply(&request_id)), "reply");
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
        // The extremes that PostgreSQL stores are applied (when the future is allowed so far).
        run("SET LOCAL infor_comm.max_push_dt_ahead = '9000 years'");
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
    fn a_withdrawal_between_a_claim_and_its_mark_wins() {
        let old_request = enqueued_request("ORG1");
        run("UPDATE infor_comm.outbox SET published_at = '2026-11-20 12:00:00+03'");
        assert_eq!(enqueue("2026-11-21 12:30:00+03"), 1);
        // A relay leases the newer request; the old request's '0' arrives before its mark.
        let claimed = int("SELECT max(outbox_id) FROM infor_comm.claim_outbox(10, '1 minute')");
        assert_eq!(apply(&success_reply(&old_request)), "reply");
        assert_eq!(
            int(&format!(
                "SELECT infor_comm.mark_published(ARRAY[{claimed}::bigint])"
            )),
            0,
            "the mark of a withdrawn request"
        );
        assert_eq!(
            text(&format!(
                "SELECT concat_ws(' ', close_reason, published_at IS NULL)
                   FROM infor_comm.outbox WHERE outbox_id = {claimed}"
            )),
            Some("withdrawn t".into())
        );
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox_pending"), 0);
    }

    #[pg_test]
    fn a_late_reply_leaves_the_newer_request_open_unless_it_is_a_0_before_its_publication() {
        let late = |org: &str, publish_newer: bool, status_code: &str| {
            let old_request = enqueued_request(org);
            run(&format!(
                "UPDATE infor_comm.outbox SET published_at = '2026-11-20 12:00:00+03'
                  WHERE organization_id = '{org}'"
            ));
            assert_eq!(enqueue("2026-11-21 12:30:00+03"), 1);
            if publish_newer {
                run(&format!(
                    "SELECT infor_comm.mark_published(array_agg(outbox_id)) FROM infor_comm.outbox
                      WHERE organization_id = '{org}' AND closed_at IS NULL"
                ));
            }
            let reply = format!(
                r#"{{"requestID": "CRM-{org}", "replyUID": "{old_request}", "dt": "2026-11-21T13:00:00.000+03:00", "statusCode": "{status_code}", "taskID": "T-{org}"}}"#
            );
            assert_eq!(apply(&reply), "reply");
            text(&format!(
                "SELECT string_agg(coalesce(close_reason, 'open'), ',' ORDER BY outbox_id)
                   FROM infor_comm.outbox WHERE organization_id = '{org}'"
            ))
        };
        assert_eq!(late("ORG1", false, "1"), Some("timed_out,open".into()));
        assert_eq!(late("ORG2", false, "2"), Some("timed_out,open".into()));
        assert_eq!(late("ORG3", true, "0"), Some("timed_out,open".into()));
        assert_eq!(late("ORG4", false, "0"), Some("timed_out,withdrawn".into()));
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
        // Every reason the extension wrote has a code (health counts them by it).
        assert_eq!(
            text(
                "SELECT string_agg(DISTINCT reason, ' | ') FROM infor_comm.inbox
                   WHERE outcome = 'rejected' AND infor_comm.inbox_reason_code(reason) = 'other'"
            ),
            None
        );
        assert!(
            int(
                "SELECT count(DISTINCT infor_comm.inbox_reason_code(reason)) FROM infor_comm.inbox
                  WHERE outcome = 'rejected'"
            ) > 3
        );
    }

    /// What `probe` reads after `sql` ran in a subtransaction that is then rolled back.
    fn state_after(sql: &str, probe: &str) -> String {
        // SAFETY: as in test_support::outcome_of: the subtransaction is begun and ended here,
        // with the memory context and resource owner restored.
        unsafe {
            let context = pg_sys::CurrentMemoryContext;
            let owner = pg_sys::CurrentResourceOwner;
            pg_sys::BeginInternalSubTransaction(std::ptr::null());
            pg_sys::MemoryContextSwitchTo(context);
            run(sql);
            let state = text(probe).unwrap_or_default();
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
            state
        }
    }

    #[pg_test]
    fn a_batch_ends_every_message_as_apply_delivery_one_by_one_would() {
        let first = enqueued_request("ORG1");
        let second = enqueued_request("ORG2");
        let third = enqueued_request("ORG3");
        // Replies, pushes before and after their reply, copies, a contradiction, a push that
        // points at two rows, garbage, a body that is not UTF-8, NULLs: every outcome.
        let messages: Vec<(Option<String>, Option<&str>)> = vec![
            (
                Some(push_with(r#""requestID": "CRM2", "taskID": "T2""#, "3")),
                Some("m1"),
            ),
            (Some(created(&first, "CRM1", "T1")), Some("m2")),
            (
                Some(push_with(r#""requestID": "CRM1", "taskID": "T1""#, "5")),
                None,
            ),
            (Some(created(&first, "CRM1", "T1")), Some("m2")),
            (Some(created(&first, "CRMX", "TX")), Some("m4")),
            (Some(created(&second, "CRM2", "T2")), Some("m5")),
            (
                Some(push_with(r#""requestID": "CRM1", "taskID": "T2""#, "3")),
                Some("m6"),
            ),
            (
                Some(r#"{"statusCode": "1", "replyUID": "nobody"}"#.to_string()),
                Some("m7"),
            ),
            (Some("not json".to_string()), Some("m8")),
            (None, Some("m9")),
            (Some(success_reply(&third)), Some("m10")),
            (
                Some(push_with(r#""requestID": "CRM1", "taskID": "T1""#, "3")),
                Some("m11"),
            ),
        ];
        let array = |items: Vec<String>| format!("ARRAY[{}]::bytea[]", items.join(", "));
        let literal = |value: Option<&str>| {
            value.map_or("NULL".to_string(), |v| {
                format!("convert_to('{}', 'UTF8')", v.replace('\'', "''"))
            })
        };
        let mut bodies: Vec<String> = messages
            .iter()
            .map(|(b, _)| literal(b.as_deref()))
            .collect();
        let mut ids: Vec<String> = messages.iter().map(|(_, m)| literal(*m)).collect();
        // A body and a message id that are not UTF-8.
        bodies.push("'\\xff00fe'::bytea".to_string());
        ids.push("'\\xc3'::bytea".to_string());
        let singles = bodies
            .iter()
            .zip(&ids)
            .map(|(body, id)| format!("SELECT infor_comm.apply_delivery({body}, {id});"))
            .collect::<String>();
        let batch = format!(
            "SELECT infor_comm.apply_deliveries({}, {})",
            array(bodies.clone()),
            array(ids.clone())
        );
        // Inbox ids are not rolled back: a reason that names one names it by its place.
        let probe = "SELECT (SELECT json_agg(to_jsonb(i) - 'inbox_id' - 'received_at'
                                    || jsonb_build_object('reason', regexp_replace(i.reason, 'inbox [0-9]+',
                                           'inbox ' || (SELECT count(*) FROM infor_comm.inbox e
                                                         WHERE e.inbox_id <= substring(i.reason FROM 'inbox ([0-9]+)')::bigint)))
                                    ORDER BY i.inbox_id)
                               FROM infor_comm.inbox i)::text
                         || (SELECT json_agg(to_jsonb(t) ORDER BY t.id)
                               FROM infor_comm.infor_communication_task t)::text
                         || (SELECT json_agg(to_jsonb(o) ORDER BY o.outbox_id)
                               FROM infor_comm.outbox o)::text";
        let one_by_one = state_after(&singles, probe);
        let together = state_after(&batch, probe);
        assert!(one_by_one.contains("orphan") && one_by_one.contains("duplicate"));
        assert!(one_by_one.contains("rejected") && one_by_one.contains(r#""outcome": "push""#));
        assert_eq!(together, one_by_one);
        // The outcomes, in the order given.
        assert_eq!(
            text(&format!("SELECT array_to_string(({batch}), ',')")),
            Some(
                "orphan,reply,push,duplicate,rejected,reply,rejected,rejected,rejected,rejected,reply,push,rejected"
                    .to_string()
            )
        );
    }

    #[pg_test]
    fn a_batch_of_arrays_of_different_lengths_is_refused_with_both_lengths() {
        assert_eq!(
            outcome_of(
                "SELECT infor_comm.apply_deliveries(ARRAY['\\x7b7d'::bytea], '{}'::bytea[])"
            ),
            "infor_comm: 1 bodies and 0 message ids"
        );
        assert_eq!(
            text("SELECT array_length(infor_comm.apply_deliveries('{}', '{}'), 1)::text"),
            None
        );
    }
}
