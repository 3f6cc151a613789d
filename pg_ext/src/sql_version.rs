//! The extension's SQL and its library must be of one version.
//!
//! Installing a newer package replaces the library (`infor_comm.so`) at once, while each
//! database keeps the SQL of its version until `ALTER EXTENSION infor_comm UPDATE` runs there;
//! and a backend that loaded the old library keeps it after the update. In between, the SQL of
//! one version would call the library of another, whose functions may read tables or columns
//! that are not there. So every entry point that reads or writes the extension's tables first
//! checks that the version in `pg_extension` is the library's, once per transaction, and
//! otherwise raises one error naming both versions and the command to run (SQLSTATE 55000,
//! `object_not_in_prerequisite_state`, which the relay treats as "hold the messages, retry").

use crate::errors::{raise, spi_fault};
use pgrx::prelude::*;
use std::cell::Cell;

/// The version of this library (the workspace's version).
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

thread_local! {
    /// The local transaction in which the versions were last found equal.
    static CHECKED_IN: Cell<Option<pg_sys::LocalTransactionId>> = const { Cell::new(None) };
}

/// The backend's current local transaction id.
fn local_transaction() -> pg_sys::LocalTransactionId {
    // SAFETY: MyProc is set for every backend that can call a function, and lxid is read only.
    unsafe { (*pg_sys::MyProc).lxid }
}

/// Raises unless the SQL of `infor_comm` in this database is of the library's version. Skipped
/// while `CREATE EXTENSION` or `ALTER EXTENSION … UPDATE` runs its scripts, which call the new
/// library by design.
pub fn require_matching_sql() {
    let transaction = local_transaction();
    if CHECKED_IN.with(Cell::get) == Some(transaction) {
        return;
    }
    // SAFETY: a plain read of PostgreSQL's flag, set while an extension script runs.
    if unsafe { pg_sys::creating_extension } {
        return;
    }
    let installed = Spi::get_one::<String>(
        "SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'infor_comm'",
    )
    .unwrap_or_else(|e| spi_fault("reading the extension's version", e));
    match installed {
        Some(version) if version != LIBRARY_VERSION => {
            let database = crate::current_database();
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "infor_comm: the extension in database \"{database}\" is version {version}, but its library is version {LIBRARY_VERSION}"
                ),
                "The package of another version was installed, and ALTER EXTENSION infor_comm UPDATE has not run in this database yet (or this session loaded the library before it ran): the functions of one version cannot run with the library of the other.",
                format!(
                    "Run ALTER EXTENSION infor_comm UPDATE in database \"{database}\" as a superuser, then reconnect the sessions that were open (the relay reconnects by itself)."
                ),
            );
        }
        _ => CHECKED_IN.with(|checked| checked.set(Some(transaction))),
    }
}

/// Forgets that the versions were found equal in this transaction (for tests that change
/// `pg_extension` within one).
#[cfg(any(test, feature = "pg_test"))]
pub fn forget_check() {
    CHECKED_IN.with(|checked| checked.set(None));
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn the_sql_of_another_version_gets_one_error_naming_both_versions() {
        let request_id = enqueued_request("ORG1");
        run("UPDATE pg_extension SET extversion = '0.2.0' WHERE extname = 'infor_comm'");
        crate::sql_version::forget_check();
        let expected = format!(
            "infor_comm: the extension in database \"pgrx_tests\" is version 0.2.0, but its library is version {}",
            super::LIBRARY_VERSION
        );
        for sql in [
            format!(
                "SELECT infor_comm.apply_inbound('{}')",
                success_reply(&request_id)
            ),
            "SELECT infor_comm.apply_delivery('{}'::bytea, NULL)".to_string(),
            format!("SELECT infor_comm.enqueue_thinking_clients('{AS_OF}')"),
            "CALL infor_comm.run_daily()".to_string(),
            "SELECT * FROM infor_comm.thinking_clients".to_string(),
        ] {
            assert_eq!(outcome_of(&sql), expected, "{sql}");
        }
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.inbox"),
            0,
            "nothing applied"
        );
        run(&format!(
            "UPDATE pg_extension SET extversion = '{}' WHERE extname = 'infor_comm'",
            super::LIBRARY_VERSION
        ));
    }
}
