//! The rules of an inbox row and of an outbox row's closing, each one C function that the table's
//! only CHECK constraint calls (`inbox_row_check`, `outbox_close_check`).
//!
//! PostgreSQL reads and compiles every CHECK constraint of a table again for each statement that
//! writes it; the eight readable constraints these replace cost the apply of one reply more than
//! the journal row itself (the goal: `apply_inbound` within 3× a bare update). The rules are
//! the same, with SQL's three-valued logic: a row is refused only where one of the former
//! constraints was false.
//!
//! The functions read only the nullness of the columns whose value does not matter, so a large
//! body is never detoasted to be checked.

use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw};
use pgrx::prelude::*;

/// What an inbox row carries, as far as its rules are concerned.
#[derive(Debug, Clone, Copy, Default)]
pub struct InboxRow<'a> {
    pub kind: Option<&'a [u8]>,
    pub outcome: Option<&'a [u8]>,
    pub has_reason: bool,
    pub has_body: bool,
    pub has_body_bytes: bool,
    pub has_message_id: bool,
    pub has_message_id_bytes: bool,
    pub has_body_size: bool,
    pub has_body_sha256: bool,
}

/// Whether an inbox row keeps the rules the constraints of 0.1.0 stated, each false only where
/// the constraint was false (a NULL passed, as in a CHECK):
/// - `kind IN ('reply', 'push', 'unknown')`;
/// - `outcome IN ('reply', 'push', 'duplicate', 'orphan', 'rejected')`;
/// - `body IS NULL OR body_bytes IS NULL`;
/// - `outcome <> 'rejected' OR reason IS NOT NULL`;
/// - `message_id IS NULL OR message_id_bytes IS NULL`;
/// - `(body_size IS NULL) = (body_sha256 IS NULL)
///    AND (body_sha256 IS NULL OR (body IS NULL AND (outcome = 'rejected' OR body_bytes IS NULL)))`:
///   a body's size and SHA-256 stand in for it on a rejected message over the relay's limit
///   (its head in `body_bytes`), or on any message whose body the retention blanked (since 0.3.0;
///   before, only the first).
pub fn inbox_row_is_valid(row: &InboxRow<'_>) -> bool {
    let kind_ok = row
        .kind
        .is_none_or(|kind| matches!(kind, b"reply" | b"push" | b"unknown"));
    let outcome_ok = row.outcome.is_none_or(|outcome| {
        matches!(
            outcome,
            b"reply" | b"push" | b"duplicate" | b"orphan" | b"rejected"
        )
    });
    let rejected = row.outcome.map(|outcome| outcome == b"rejected");
    let one_body = !(row.has_body && row.has_body_bytes);
    let rejected_has_reason = row.has_reason || rejected != Some(true);
    let one_message_id = !(row.has_message_id && row.has_message_id_bytes);
    // (outcome = 'rejected' AND body IS NULL) is false when the body is there, else the
    // comparison (NULL when outcome is NULL).
    let oversized_ok = row.has_body_size == row.has_body_sha256
        && (!row.has_body_sha256
            || (!row.has_body && (rejected != Some(false) || !row.has_body_bytes)));
    kind_ok && outcome_ok && one_body && rejected_has_reason && one_message_id && oversized_ok
}

/// Whether an outbox row's closing keeps the rules the constraints of 0.1.0 stated:
/// `close_reason IN ('answered', 'timed_out', 'withdrawn')` and
/// `(closed_at IS NULL) = (close_reason IS NULL)`.
pub fn outbox_close_is_valid(has_closed_at: bool, close_reason: Option<&[u8]>) -> bool {
    let reason_ok = close_reason
        .is_none_or(|reason| matches!(reason, b"answered" | b"timed_out" | b"withdrawn"));
    reason_ok && has_closed_at == close_reason.is_some()
}

/// A text argument's bytes (detoasted when it must be), or None when it is NULL.
///
/// # Safety
/// `fcinfo` is the call's, and argument `n` is a text (or bytea) argument of it.
unsafe fn text_arg<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<&'a [u8]> {
    if pg_arg_is_null(fcinfo, n) {
        return None;
    }
    <&[u8]>::from_datum(pg_getarg_datum_raw(fcinfo, n), false)
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_inbox_row_is_valid_c() -> &'static pg_sys::Pg_finfo_record {
    const V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1_API
}

/// `infor_comm.inbox_row_is_valid(kind, outcome, reason, body, body_bytes, message_id,
/// message_id_bytes, body_size, body_sha256)`: [`inbox_row_is_valid`].
///
/// # Safety
/// Called by PostgreSQL's function manager with the nine arguments the SQL declaration gives.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn inbox_row_is_valid_c(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let row = InboxRow {
        kind: text_arg(fcinfo, 0),
        outcome: text_arg(fcinfo, 1),
        has_reason: !pg_arg_is_null(fcinfo, 2),
        has_body: !pg_arg_is_null(fcinfo, 3),
        has_body_bytes: !pg_arg_is_null(fcinfo, 4),
        has_message_id: !pg_arg_is_null(fcinfo, 5),
        has_message_id_bytes: !pg_arg_is_null(fcinfo, 6),
        has_body_size: !pg_arg_is_null(fcinfo, 7),
        has_body_sha256: !pg_arg_is_null(fcinfo, 8),
    };
    pg_sys::Datum::from(inbox_row_is_valid(&row))
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_outbox_close_is_valid_c() -> &'static pg_sys::Pg_finfo_record {
    const V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1_API
}

/// `infor_comm.outbox_close_is_valid(closed_at, close_reason)`: [`outbox_close_is_valid`].
///
/// # Safety
/// Called by PostgreSQL's function manager with the two arguments the SQL declaration gives.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn outbox_close_is_valid_c(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(outbox_close_is_valid(
        !pg_arg_is_null(fcinfo, 0),
        text_arg(fcinfo, 1),
    ))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    /// Runs each statement in a subtransaction; "ok" or "refused" (a check_violation) for each.
    fn verdicts(statements: &[&str]) -> String {
        run("CREATE TEMP TABLE verdicts (n int, verdict text)");
        for (n, statement) in statements.iter().enumerate() {
            run(&format!(
                "DO $do$ BEGIN
                     BEGIN
                         EXECUTE {statement};
                         INSERT INTO verdicts VALUES ({n}, 'ok');
                     EXCEPTION WHEN check_violation THEN
                         INSERT INTO verdicts VALUES ({n}, 'refused');
                     END;
                 END $do$",
                statement = quote(statement)
            ));
        }
        text("SELECT string_agg(verdict, ' ' ORDER BY n) FROM verdicts").unwrap_or_default()
    }

    fn quote(sql: &str) -> String {
        format!("'{}'", sql.replace('\'', "''"))
    }

    #[pg_test]
    fn the_inbox_refuses_the_rows_its_rules_forbid() {
        let insert = |columns: &str, values: &str| {
            format!("INSERT INTO infor_comm.inbox ({columns}) VALUES ({values})")
        };
        let statements = [
            insert("kind, outcome, body", "'reply', 'duplicate', '{}'"),
            insert("kind, outcome, body", "'other', 'duplicate', '{}'"),
            insert("kind, outcome, body", "'reply', 'other', '{}'"),
            insert(
                "kind, outcome, body, body_bytes",
                "'unknown', 'rejected', 'x', 'x'",
            ),
            insert("kind, outcome, body", "'unknown', 'rejected', 'x'"),
            insert(
                "kind, outcome, body, reason",
                "'unknown', 'rejected', 'x', 'why'",
            ),
            insert(
                "kind, outcome, reason, message_id, message_id_bytes",
                "'unknown', 'rejected', 'why', 'a', 'a'",
            ),
            insert(
                "kind, outcome, reason, body_bytes, body_size",
                "'unknown', 'rejected', 'why', 'x', 9",
            ),
            insert(
                "kind, outcome, reason, body_bytes, body_size, body_sha256",
                "'unknown', 'rejected', 'why', 'x', 9, sha256('x')",
            ),
            insert(
                "kind, outcome, reason, body, body_size, body_sha256",
                "'unknown', 'rejected', 'why', 'x', 9, sha256('x')",
            ),
            insert(
                "kind, outcome, reason, body_bytes, body_size, body_sha256",
                "'push', 'orphan', 'why', 'x', 9, sha256('x')",
            ),
            // A reply whose body the retention blanked: its size and digest stand in for it.
            insert(
                "kind, outcome, body_size, body_sha256",
                "'reply', 'reply', 9, sha256('x')",
            ),
        ];
        let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
        assert_eq!(
            verdicts(&statements),
            "ok refused refused refused refused ok refused refused ok refused refused ok"
        );
    }

    #[pg_test]
    fn the_outbox_refuses_a_closing_without_its_reason() {
        enqueued_request("ORG1");
        assert_eq!(
            verdicts(&[
                "UPDATE infor_comm.outbox SET closed_at = now()",
                "UPDATE infor_comm.outbox SET close_reason = 'answered'",
                "UPDATE infor_comm.outbox SET closed_at = now(), close_reason = 'lost'",
                "UPDATE infor_comm.outbox SET closed_at = now(), close_reason = 'timed_out'",
            ]),
            "refused refused refused ok"
        );
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    /// The inbox's rules as readable constraints (those of 0.1.0, the last one widened in 0.3.0
    /// for blanked bodies), in SQL's three-valued logic (None = NULL), each as PostgreSQL
    /// evaluates it; a row passes unless one is false.
    fn former_inbox_rules(row: &InboxRow<'_>) -> bool {
        fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
            match (a, b) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            }
        }
        fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
            match (a, b) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            }
        }
        let is_in = |v: Option<&[u8]>, set: &[&[u8]]| v.map(|v| set.contains(&v));
        let rejected = row.outcome.map(|o| o == b"rejected");
        let rules = [
            is_in(row.kind, &[b"reply", b"push", b"unknown"]),
            is_in(
                row.outcome,
                &[b"reply", b"push", b"duplicate", b"orphan", b"rejected"],
            ),
            Some(!row.has_body || !row.has_body_bytes),
            or(rejected.map(|r| !r), Some(row.has_reason)),
            Some(!row.has_message_id || !row.has_message_id_bytes),
            and(
                Some(row.has_body_size == row.has_body_sha256),
                or(
                    Some(!row.has_body_sha256),
                    and(Some(!row.has_body), or(rejected, Some(!row.has_body_bytes))),
                ),
            ),
        ];
        rules.iter().all(|rule| *rule != Some(false))
    }

    #[test]
    fn the_inbox_function_agrees_with_the_former_constraints_on_every_row_shape() {
        let texts: [Option<&[u8]>; 9] = [
            None,
            Some(b"reply"),
            Some(b"push"),
            Some(b"unknown"),
            Some(b"duplicate"),
            Some(b"orphan"),
            Some(b"rejected"),
            Some(b"other"),
            Some(b""),
        ];
        for kind in texts {
            for outcome in texts {
                for flags in 0u32..128 {
                    let bit = |n: u32| flags & (1 << n) != 0;
                    let row = InboxRow {
                        kind,
                        outcome,
                        has_reason: bit(0),
                        has_body: bit(1),
                        has_body_bytes: bit(2),
                        has_message_id: bit(3),
                        has_message_id_bytes: bit(4),
                        has_body_size: bit(5),
                        has_body_sha256: bit(6),
                    };
                    assert_eq!(
                        inbox_row_is_valid(&row),
                        former_inbox_rules(&row),
                        "{row:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_outbox_function_agrees_with_the_former_constraints() {
        for reason in [
            None,
            Some(&b"answered"[..]),
            Some(b"timed_out"),
            Some(b"withdrawn"),
            Some(b"other"),
        ] {
            for has_closed_at in [false, true] {
                let in_set =
                    reason.map(|r| [&b"answered"[..], b"timed_out", b"withdrawn"].contains(&r));
                let former = in_set != Some(false) && has_closed_at == reason.is_some();
                assert_eq!(outbox_close_is_valid(has_closed_at, reason), former);
            }
        }
    }
}
