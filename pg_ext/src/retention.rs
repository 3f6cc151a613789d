//! The retention of personal data: the request payloads and the inbound bodies carry clients'
//! tax ids. `infor_comm.apply_retention(as_of)` (`pg_ext/sql/retention.sql`) blanks those older
//! than `infor_comm.retention` ([`crate::gucs::retention`]) and keeps their SHA-256, size, ids
//! and outcomes, so that the reports give the same numbers before and after; the pg_cron job
//! `infor_comm_retention` ([`crate::schedule`]) runs it daily as the daily job's role.

use pgrx::prelude::*;

extension_sql_file!(
    "../sql/retention.sql",
    name = "retention",
    requires = [
        "outbox_table",
        "inbox_table",
        "roles",
        settings::setting_retention,
        login_scope::require_login_for_database_sql
    ],
);

extension_sql!(
    r#"
-- The retention job runs as the daily job's role.
GRANT EXECUTE ON FUNCTION infor_comm.apply_retention(timestamptz) TO infor_comm_job;
"#,
    name = "retention_grants",
    requires = ["retention"],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    /// Blanks as of a year after the test's requests.
    fn blank() -> String {
        text(
            "SELECT requests_blanked || ' ' || messages_blanked
               FROM infor_comm.apply_retention('2027-11-20 12:00:00+03')",
        )
        .unwrap_or_default()
    }

    #[pg_test]
    fn an_answered_request_and_its_messages_are_blanked_an_open_one_is_kept() {
        let answered = enqueued_request("RET1");
        assert_eq!(apply(&success_reply(&answered)), "reply");
        let open = enqueued_request("RET2");
        // A body over the relay's limit: its head goes, the digest of the whole body stays.
        run("SELECT infor_comm.reject_oversized('\\x7b22'::bytea, 'big'::bytea, 5000000, sha256('whole'), 1048576)");
        run("UPDATE infor_comm.inbox SET received_at = '2026-11-20 12:00:00+03'");
        run("UPDATE infor_comm.outbox SET created_at = '2026-11-20 12:00:00+03'");
        let digest = |column: &str| {
            text(&format!(
                "SELECT encode({column}, 'hex') || ' ' || coalesce(payload_size, octet_length(payload::text))
                   FROM infor_comm.outbox WHERE request_id = '{answered}'"
            ))
        };
        let before = digest("sha256(convert_to(payload::text, 'UTF8'))");
        assert_eq!(blank(), "1 2");
        assert_eq!(
            digest("payload_sha256"),
            before,
            "the digest and size of the payload"
        );
        assert_eq!(
            text(&format!(
                "SELECT (payload IS NULL)::text FROM infor_comm.outbox WHERE request_id = '{answered}'"
            )),
            Some("true".into())
        );
        assert_eq!(
            text(&format!(
                "SELECT (payload IS NOT NULL AND blanked_at IS NULL)::text
                   FROM infor_comm.outbox WHERE request_id = '{open}'"
            )),
            Some("true".into()),
            "an open request keeps its payload"
        );
        assert_eq!(
            text(
                "SELECT body_size || ' ' || (body_sha256 = sha256('whole'))::text || ' '
                        || (body_bytes IS NULL)::text
                   FROM infor_comm.inbox WHERE message_id = 'big'"
            ),
            Some("5000000 true true".into())
        );
        // The support desk sees that it was blanked, and what it was.
        let history = text(
            "SELECT string_agg(message, ' | ') FROM infor_comm.client_history('RET1')
              WHERE event LIKE 'inbound%'",
        )
        .unwrap_or_default();
        assert!(
            history.starts_with("(blanked by the retention on 2027-11-20: ")
                && history.contains(" bytes, SHA-256 "),
            "{history}"
        );
        // Once is enough.
        assert_eq!(blank(), "0 0");
    }

    #[pg_test(error = "invalid value for parameter \"infor_comm.retention\": \"forever\"")]
    fn a_retention_that_is_not_an_interval_is_refused_with_its_value() {
        run("SET LOCAL infor_comm.retention = 'forever'");
    }
}
