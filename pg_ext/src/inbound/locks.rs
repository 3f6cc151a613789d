//! The advisory locks that serialise the apply of a reply and its pushes: one class for the
//! CRM's request ids, one for its task ids, always taken in that order.

use pgrx::prelude::*;

/// Advisory lock class of the CRM's request ids.
pub(super) const LOCK_CLASS_REQUEST_ID: i32 = 0x1c_0001;
/// Advisory lock class of the CRM's task ids.
pub(super) const LOCK_CLASS_TASK_ID: i32 = 0x1c_0002;

extern "C-unwind" {
    // PostgreSQL's own functions behind `hashtext(text)` and `pg_advisory_xact_lock(int, int)`.
    pub(super) fn hashtext(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
    pub(super) fn pg_advisory_xact_lock_int4(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// Takes the transaction-level advisory lock that
/// `pg_advisory_xact_lock(class, hashtext(key))` takes, without a statement: the same lock, so
/// the same waits, and the same deadlock detection.
pub(super) fn lock(class: i32, key: Option<&str>) {
    let Some(key) = key else {
        return;
    };
    // Keys are at most 200 characters (the parser checks them against their column).
    let len = i32::try_from(key.len()).unwrap_or(i32::MAX);
    // SAFETY: `cstring_to_text_with_len` copies `len` bytes of `key` into a palloc'd text in the
    // current memory context; hashtext reads that text with the database's default collation,
    // as `hashtext($1)` does in SQL; both calls go through pgrx's guard, so an ERROR (a
    // deadlock, say) unwinds as it does from any SPI call.
    unsafe {
        let text = pg_sys::cstring_to_text_with_len(key.as_ptr().cast(), len);
        let hash = pg_sys::DirectFunctionCall1Coll(
            Some(hashtext),
            pg_sys::DEFAULT_COLLATION_OID,
            pg_sys::Datum::from(text),
        );
        pg_sys::DirectFunctionCall2Coll(
            Some(pg_advisory_xact_lock_int4),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(class),
            hash,
        );
    }
}
