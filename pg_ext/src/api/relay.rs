//! The relay's entry points (role `infor_comm_relay`): it claims the outbox's requests, marks
//! them published or failed, reads the backlog, and hands every inbound message to the apply.
//! docs/relay.md describes each call; the relay may call these and nothing else.
//!
//! - the outbox side, SQL functions: `claim_outbox`, `lock_outbox`, `mark_published`,
//!   `mark_failed`, `outbox_backlog` (`pg_ext/sql/api/relay.sql`; the outbox is
//!   [`crate::outbox`]'s);
//! - the inbound side, here: `apply_inbound` (text and bytea), `apply_delivery`,
//!   `apply_deliveries` (a batch), `reject_oversized`, `set_aside_inbound` (the apply is [`crate::inbound`]'s).
//!
//! Every one is SECURITY DEFINER with a pinned search path, checks the extension's version and
//! the login's database first ([`crate::entry_checks`]), and is granted to `infor_comm_relay`
//! only, at the end of this file.

use crate::inbound;
use pgrx::prelude::*;

extension_sql_file!(
    "../../sql/api/relay.sql",
    name = "relay_functions",
    requires = ["outbox_table", login_scope::require_login_for_database_sql],
);

/// Journals a message received from the broker and applies it to its task row; returns
/// `reply`, `push`, `duplicate`, `orphan` or `rejected`. Raises only on a system fault.
#[pg_extern(volatile, security_definer, name = "apply_inbound")]
#[search_path(pg_catalog, pg_temp)]
fn apply_inbound(body: Option<&str>, message_id: default!(Option<&str>, "NULL")) -> &'static str {
    crate::entry_checks();
    inbound::apply_text_body(body, message_id)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.apply_inbound(text, text) IS
    'Journals one inbound message and applies it; returns reply, push, duplicate, orphan or rejected.';
"#,
    name = "apply_inbound_comment",
    requires = [apply_inbound],
);

/// The same for a body as raw bytes (what the broker delivers): one that is not valid UTF-8 is
/// journaled as bytes and rejected.
#[pg_extern(volatile, security_definer, name = "apply_inbound")]
#[search_path(pg_catalog, pg_temp)]
fn apply_inbound_bytes(
    body: Option<&[u8]>,
    message_id: default!(Option<&str>, "NULL"),
) -> &'static str {
    crate::entry_checks();
    inbound::apply_bytes_body(body, message_id)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.apply_inbound(bytea, text) IS
    'apply_inbound for a raw body; a body that is not valid UTF-8 is journaled as bytes and rejected.';
"#,
    name = "apply_inbound_bytes_comment",
    requires = [apply_inbound_bytes],
);

/// The relay's entry point: `apply_inbound` for a body and a message id exactly as the broker
/// delivered them. An id that PostgreSQL cannot store as text (a NUL byte, or not UTF-8) is
/// journaled in `message_id_bytes` and never makes the apply fail (docs/contract.md, "Headers
/// are content too").
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn apply_delivery(body: Option<&[u8]>, message_id: Option<&[u8]>) -> &'static str {
    crate::entry_checks();
    inbound::apply_delivery(body, message_id)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.apply_delivery(bytea, bytea) IS
    'apply_inbound for a body and a message id as the broker delivered them (bytes); an id that is not valid text is kept as bytes.';
"#,
    name = "apply_delivery_comment",
    requires = [apply_delivery],
);

/// The relay's entry point for a batch: `apply_delivery` for each body and message id, in the
/// order given, in the caller's transaction; returns the outcome of each, in that order. Content
/// never makes it raise (each message ends as `apply_delivery` would end it); a fault of the
/// database does, and then nothing of the batch is applied once the caller rolls back. The relay
/// sends its batches here, in one statement, and falls back to `apply_delivery` under a savepoint
/// per message when it raises.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn apply_deliveries(bodies: Array<'_, &[u8]>, message_ids: Array<'_, &[u8]>) -> Vec<&'static str> {
    crate::entry_checks();
    let bodies: Vec<Option<&[u8]>> = bodies.iter().collect();
    let message_ids: Vec<Option<&[u8]>> = message_ids.iter().collect();
    inbound::apply_deliveries(&bodies, &message_ids)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.apply_deliveries(bytea[], bytea[]) IS
    'apply_delivery for each body and message id, in order, in one statement; returns each outcome. Raises only on a fault of the database, never on content.';
"#,
    name = "apply_deliveries_comment",
    requires = [apply_deliveries],
);

/// Journals a body larger than the relay's limit as `rejected`, without applying it: its size,
/// its SHA-256 and at most its first 64 KiB (docs/contract.md, "Oversized messages").
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn reject_oversized(
    head: &[u8],
    message_id: Option<&[u8]>,
    body_size: i64,
    body_sha256: &[u8],
    size_limit: i64,
) -> &'static str {
    crate::entry_checks();
    inbound::reject_oversized(head, message_id, body_size, body_sha256, size_limit)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint) IS
    'Journals an inbound body over the relay''s size limit as rejected: its size, SHA-256 and first 64 KiB; returns rejected.';
"#,
    name = "reject_oversized_comment",
    requires = [reject_oversized],
);

/// Journals a message whose apply kept failing as `rejected`, with the last error, without
/// applying it, so that it no longer holds the queue (the relay sets it aside after a bounded
/// number of tries while other messages apply).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn set_aside_inbound(
    body: Option<&[u8]>,
    message_id: Option<&[u8]>,
    attempts: i32,
    error: &str,
) -> &'static str {
    crate::entry_checks();
    inbound::set_aside(body, message_id, attempts, error)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.set_aside_inbound(bytea, bytea, integer, text) IS
    'Journals an inbound message whose apply kept failing as rejected, with the attempts and the last error, without applying it.';
"#,
    name = "set_aside_inbound_comment",
    requires = [set_aside_inbound],
);

extension_sql!(
    r#"
-- The relay: its functions and nothing else (they are SECURITY DEFINER).
GRANT EXECUTE ON FUNCTION
    infor_comm.claim_outbox(integer, interval),
    infor_comm.lock_outbox(integer, bigint),
    infor_comm.mark_published(bigint[]),
    infor_comm.mark_failed(bigint, text),
    infor_comm.apply_inbound(text, text),
    infor_comm.apply_inbound(bytea, text),
    infor_comm.apply_delivery(bytea, bytea),
    infor_comm.apply_deliveries(bytea[], bytea[]),
    infor_comm.reject_oversized(bytea, bytea, bigint, bytea, bigint),
    infor_comm.set_aside_inbound(bytea, bytea, integer, text),
    infor_comm.outbox_backlog()
TO infor_comm_relay;
"#,
    name = "relay_grants",
    requires = [
        "roles",
        "relay_functions",
        apply_inbound,
        apply_inbound_bytes,
        apply_delivery,
        apply_deliveries,
        reject_oversized,
        set_aside_inbound,
    ],
);
