//! The bank's host tables that the extension reads, and the check that they exist.
//!
//! The host tables are resolved through the caller's `search_path`, like any table the job's
//! owner can read; `sql/host_tables.sql` creates them for tests and the demo.

use crate::errors::{raise, spi_fault};
use pgrx::prelude::*;

/// The four host tables, in the order they are checked.
pub const HOST_TABLES: [&str; 4] = [
    "product_migration_clients",
    "wizard_status_change_log",
    "clients_back_system_ids",
    "clientsnapshot",
];

/// Raises `undefined_table` naming the first host table that the caller cannot see.
pub fn require() {
    for table in HOST_TABLES {
        let found = Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
            &[table.into()],
        )
        .unwrap_or_else(|e| spi_fault("looking up the host tables", e))
        .unwrap_or(false);
        if !found {
            let search_path =
                Spi::get_one::<String>("SELECT pg_catalog.current_setting('search_path')")
                    .ok()
                    .flatten()
                    .unwrap_or_default();
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("infor_comm: host table \"{table}\" does not exist"),
                format!(
                    "infor_comm reads the bank's tables {} through the search_path, which is \"{search_path}\".",
                    HOST_TABLES.join(", ")
                ),
                "Create the host tables (sql/host_tables.sql has their definition) or add their schema to the search_path.",
            );
        }
    }
}

/// Checks that the four host tables are visible; raises an error naming the first missing one.
#[pg_extern(volatile)]
fn require_host_tables() -> bool {
    require();
    true
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.require_host_tables() IS
    'Checks that the four host tables are visible; an error naming the first missing one.';
"#,
    name = "require_host_tables_comment",
    requires = [require_host_tables],
);
