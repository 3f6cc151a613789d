//! The bank's host tables that the extension reads, in the schema `infor_comm.host_schema`.
//!
//! Their names are never resolved through the caller's `search_path`: every query of the daily
//! job names them schema-qualified and quoted ([`HostTables::name`]), and runs with a pinned
//! `search_path` (`pg_catalog, pg_temp`), so a look-alike table, function or operator in another
//! schema is never read or run. `sql-by-hand/host_tables.sql` creates them for tests and the demo.

use crate::errors::{raise, spi_fault};
use crate::gucs;
use pgrx::prelude::*;

/// The four host tables, in the order they are checked.
pub const HOST_TABLES: [&str; 4] = [
    "product_migration_clients",
    "wizard_status_change_log",
    "clients_back_system_ids",
    "clientsnapshot",
];

/// Quotes an identifier the way `quote_ident` does, always (so any name is safe in SQL text).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The host tables of `infor_comm.host_schema`, checked to exist.
#[derive(Debug, Clone)]
pub struct HostTables {
    schema: String,
}

impl HostTables {
    /// The host tables of the schema in force; raises `undefined_table` naming the first one
    /// that does not exist (or `invalid_schema_name` when the schema does not).
    pub fn resolve() -> HostTables {
        let host = HostTables {
            schema: gucs::host_schema(),
        };
        host.require();
        host
    }

    /// The host tables of `schema`, unchecked (for SQL text that is only shown, never run).
    pub fn unchecked(schema: &str) -> HostTables {
        HostTables {
            schema: schema.to_string(),
        }
    }

    /// The schema-qualified, quoted name of one host table, e.g. `"public"."clientsnapshot"`.
    pub fn name(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }

    fn require(&self) {
        let schema_exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[self.schema.as_str().into()],
        )
        .unwrap_or_else(|e| spi_fault("looking up the host schema", e))
        .unwrap_or(false);
        if !schema_exists {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
                format!(
                    "infor_comm: host schema \"{}\" does not exist",
                    self.schema
                ),
                format!(
                    "infor_comm.host_schema names the schema of the bank's tables {}.",
                    HOST_TABLES.join(", ")
                ),
                "Set infor_comm.host_schema to the schema that holds them: ALTER DATABASE … SET infor_comm.host_schema = '…'.",
            );
        }
        for table in HOST_TABLES {
            let found = Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                                 WHERE n.nspname = $1 AND c.relname = $2
                                   AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))",
                &[self.schema.as_str().into(), table.into()],
            )
            .unwrap_or_else(|e| spi_fault("looking up the host tables", e))
            .unwrap_or(false);
            if !found {
                raise(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                    format!(
                        "infor_comm: host table \"{}.{table}\" does not exist",
                        self.schema
                    ),
                    format!(
                        "infor_comm reads the bank's tables {} from the schema \"{}\" (infor_comm.host_schema).",
                        HOST_TABLES.join(", "),
                        self.schema
                    ),
                    "Create the host tables in that schema (the README's \"Host tables\" section has their columns), or set infor_comm.host_schema to the schema that holds them.",
                );
            }
        }
    }
}

/// Checks that the four host tables exist in `infor_comm.host_schema`; raises an error naming
/// the first missing one.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn require_host_tables() -> bool {
    HostTables::resolve();
    true
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.require_host_tables() IS
    'Checks that the four host tables exist in infor_comm.host_schema; an error naming the first missing one.';
"#,
    name = "require_host_tables_comment",
    requires = [require_host_tables],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test(error = "infor_comm: host table \"public.product_migration_clients\" does not exist")]
    fn enqueue_names_the_missing_host_table() {
        enqueue(AS_OF);
    }

    #[pg_test(error = "infor_comm: host table \"public.clientsnapshot\" does not exist")]
    fn enqueue_names_the_one_missing_host_table() {
        host_tables();
        run("DROP TABLE clientsnapshot");
        enqueue(AS_OF);
    }

    #[pg_test(error = "infor_comm: host schema \"nowhere\" does not exist")]
    fn a_missing_host_schema_is_named() {
        run("SET LOCAL infor_comm.host_schema = 'nowhere'");
        enqueue(AS_OF);
    }
}
