//! Inbound apply: every reply and push of InforCRM is journaled whole in `infor_comm.inbox` and
//! applied to `infor_communication_task` exactly once (docs/contract.md, "Inbound messages").
//!
//! - Replies match by `replyUID = vtbc_request_id`. A push lands only on its own request's row:
//!   its `requestID` (the CRM's) identifies the row by `infor_response_id` and its `taskID` must
//!   agree with that row's `task_id`; a push with a `taskID` only lands where that `taskID` is
//!   unique. A push whose ids point to different rows is `rejected`.
//! - A push whose task row is not known yet is kept as `orphan` and applied in the transaction
//!   that applies its reply.
//! - A repeated message changes nothing (`duplicate`); of two different pushes for one task the
//!   later `dt` wins; a reply that contradicts the applied one is `rejected`.
//! - Messages that fail validation are `rejected` with the reason; the task row is untouched.
//!
//! Concurrency: every apply takes transaction-level advisory locks on the CRM's request id and
//! task id it carries (always in that order), so a reply and its pushes, or two copies of one
//! message, are applied one after the other, never interleaved.
//!
//! - `outcome`: what becomes of a message and what the inbox keeps of its delivery;
//! - `statements`: the apply's statements, prepared once per session and kept;
//! - `locks`: the advisory locks that put the messages of one request in a row;
//! - `apply`: the apply and the journal (the relay's entry points are in
//!   [`crate::api::relay`]);
//! - the inbox table itself (`pg_ext/sql/inbox_table.sql`) and the digest its index uses, below.

mod apply;
mod locks;
mod outcome;
mod statements;
#[cfg(any(test, feature = "pg_test"))]
mod tests;

pub use apply::{
    apply_bytes_body, apply_deliveries, apply_delivery, apply_text_body, reject_oversized,
    set_aside,
};
pub use outcome::{Outcome, OVERSIZED_HEAD_BYTES};

use pgrx::prelude::*;

/// The digest of a push's JSON (`inbound_message::push_digest`), the key of the index that finds
/// the copies of a push; `NULL` when the body is not JSON without a repeated key.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn inbox_push_digest(body: &str) -> Option<Vec<u8>> {
    crate::inbound_message::push_digest(body)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.inbox_push_digest(text) IS
    'The SHA-256 of an inbound body''s JSON written canonically (NULL when it is not JSON without a repeated key): two pushes have one digest exactly when they are the same JSON.';
"#,
    name = "inbox_push_digest_comment",
    requires = [inbox_push_digest],
);

extension_sql_file!(
    "../../sql/inbox_table.sql",
    name = "inbox_table",
    requires = ["task_table", inbox_push_digest],
);
