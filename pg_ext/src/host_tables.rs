//! The bank's host tables that the extension reads, in the schema `infor_comm.host_schema`.
//!
//! Their names are never resolved through the caller's `search_path`: every query of the daily
//! job names them schema-qualified and quoted ([`HostTables::name`]), and runs with a pinned
//! `search_path` (`pg_catalog, pg_temp`), so a look-alike table, function or operator in another
//! schema is never read or run. `sql/host_tables.sql` creates them for tests and the demo.
//!
//! The host tables belong to another role, which may be hostile. Reading a view, a foreign table,
//! a table with row-level security, or a column of a type that role created can run that role's
//! code with the reader's rights. So before a query reads them, [`HostTables::resolve`] checks
//! each host relation and every relation that inherits from it (partitions, children): an
//! ordinary or partitioned table, without row-level security, whose documented columns
//! ([`HOST_COLUMNS`]) exist and have types of `pg_catalog` created with PostgreSQL. Anything else
//! is one error naming the relation and what was found. The daily job also locks the tables
//! first ([`HostTables::resolve_for_reading`]), so that none can become something else before it
//! reads.

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

/// The documented columns of each host table (docs/install.md, "The host tables"): the only ones
/// the extension reads, checked to exist with a built-in type.
pub const HOST_COLUMNS: [(&str, &[&str]); 4] = [
    (
        "product_migration_clients",
        &["organization_id", "mdm_id", "status", "wizard_status"],
    ),
    (
        "wizard_status_change_log",
        &["organization_id", "wizard_status", "change_date"],
    ),
    (
        "clients_back_system_ids",
        &["mdm_id", "back_system_name", "back_system_id"],
    ),
    (
        "clientsnapshot",
        &["id", "tin", "registry_number", "kpp", "okpo"],
    ),
];

/// The first problem of a host relation (`$1`, its oid) or of a relation that inherits from it,
/// with the documented columns `$2`: the relation (schema-qualified, quoted as needed), what was
/// found, and whether the relation is the host relation itself. No row: nothing is wrong. Run with `search_path = pg_catalog, pg_temp`, like every
/// query of the extension.
const RELATION_PROBLEM: &str = "
WITH RECURSIVE tree (relid) AS (
    SELECT $1::oid
    UNION
    SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid
), members AS (
    SELECT c.oid, c.oid = $1 AS top, c.relkind, c.relrowsecurity,
           format('%I.%I', n.nspname, c.relname) AS relation
      FROM tree
      JOIN pg_class c ON c.oid = tree.relid
      JOIN pg_namespace n ON n.oid = c.relnamespace
)
SELECT relation, problem, top FROM (
    SELECT 1 AS rank, m.top, m.relation,
           CASE m.relkind WHEN 'v' THEN 'a view' WHEN 'm' THEN 'a materialized view'
                          WHEN 'f' THEN 'a foreign table'
                          ELSE format('a relation of relkind %L', m.relkind) END
           || ', not a table' AS problem
      FROM members m
     WHERE m.relkind NOT IN ('r', 'p')
    UNION ALL
    SELECT 2, m.top, m.relation, 'a table with row-level security enabled'
      FROM members m
     WHERE m.relrowsecurity
    UNION ALL
    SELECT 3, m.top, m.relation, format('a table without the column %I', wanted.attname)
      FROM members m
     CROSS JOIN unnest($2::name[]) AS wanted (attname)
     WHERE m.relkind IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM pg_attribute a
                        WHERE a.attrelid = m.oid AND a.attname = wanted.attname
                          AND a.attnum > 0 AND NOT a.attisdropped)
    UNION ALL
    SELECT 4, m.top, m.relation,
           format('a table whose column %I is of type %s, which is not built into PostgreSQL',
                  a.attname, format_type(a.atttypid, a.atttypmod))
      FROM members m
      JOIN pg_attribute a ON a.attrelid = m.oid
      JOIN pg_type t ON t.oid = a.atttypid
     WHERE a.attname = ANY ($2::name[]) AND a.attnum > 0 AND NOT a.attisdropped
       AND (t.typnamespace <> 'pg_catalog'::regnamespace OR t.oid >= 16384)
) problems
ORDER BY rank, NOT top, relation
LIMIT 1";

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

    /// The host tables of the schema in force, checked as [`HostTables::resolve`] does, and
    /// checked again once each is locked in `ACCESS SHARE` mode for the rest of the transaction
    /// (so that none can become a view, or get row-level security, before the caller reads it);
    /// raises unless the current role may read them. For the daily job, which reads them next.
    pub fn resolve_for_reading() -> HostTables {
        let host = HostTables {
            schema: gucs::host_schema(),
        };
        let tables = host.require_exist();
        host.require_plain_tables(&tables);
        for (table, oid) in &tables {
            host.require_readable(table, *oid);
        }
        let locked = tables
            .iter()
            .map(|(table, _)| host.name(table))
            .collect::<Vec<_>>()
            .join(", ");
        Spi::run(&format!("LOCK TABLE ONLY {locked} IN ACCESS SHARE MODE"))
            .unwrap_or_else(|e| spi_fault("locking the host tables", e));
        host.require_plain_tables(&tables);
        host
    }

    fn require(&self) {
        let tables = self.require_exist();
        self.require_plain_tables(&tables);
    }

    /// Raises unless the host schema and the four host relations exist; returns their oids.
    fn require_exist(&self) -> Vec<(&'static str, pg_sys::Oid)> {
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
        HOST_TABLES
            .iter()
            .map(|&table| {
                let oid = Spi::get_one_with_args::<pg_sys::Oid>(
                    "SELECT (SELECT c.oid FROM pg_catalog.pg_class c
                               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                              WHERE n.nspname = $1 AND c.relname = $2)",
                    &[self.schema.as_str().into(), table.into()],
                )
                .unwrap_or_else(|e| spi_fault("looking up the host tables", e));
                let Some(oid) = oid else {
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
                        "Create the host tables in that schema (docs/install.md, \"The host tables\", has their columns), or set infor_comm.host_schema to the schema that holds them.",
                    )
                };
                (table, oid)
            })
            .collect()
    }

    /// Raises unless the current role may read `table` (USAGE on the schema, SELECT on it).
    fn require_readable(&self, table: &str, oid: pg_sys::Oid) {
        let readable = Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.has_schema_privilege($1, 'USAGE') AND pg_catalog.has_table_privilege($2, 'SELECT')",
            &[self.schema.as_str().into(), oid.into()],
        )
        .unwrap_or_else(|e| spi_fault("checking the privileges on the host tables", e))
        .unwrap_or(false);
        if !readable {
            let role = Spi::get_one::<String>("SELECT current_user::text")
                .ok()
                .flatten()
                .unwrap_or_default();
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "infor_comm: role \"{role}\" may not read host table \"{}.{table}\"",
                    self.schema
                ),
                "The daily job reads the host tables as the role infor_comm_writer (docs/security.md).",
                format!(
                    "As a superuser: SELECT infor_comm.grant_host_tables_to_writer(); or GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT ON {name} TO {role};",
                    schema = quote_ident(&self.schema),
                    name = self.name(table),
                    role = quote_ident(&role),
                ),
            );
        }
    }

    /// Raises unless every host relation, and every relation that inherits from one, is an
    /// ordinary or partitioned table without row-level security whose documented columns exist
    /// with built-in types.
    fn require_plain_tables(&self, tables: &[(&'static str, pg_sys::Oid)]) {
        for (table, oid) in tables {
            let columns = HOST_COLUMNS
                .iter()
                .find(|(name, _)| name == table)
                .map(|(_, columns)| columns.to_vec())
                .unwrap_or_default();
            let problem = Spi::connect(|client| {
                let rows =
                    client.select(RELATION_PROBLEM, Some(1), &[(*oid).into(), columns.into()])?;
                match rows.into_iter().next() {
                    Some(row) => Ok(Some((
                        row.get::<String>(1)?.unwrap_or_default(),
                        row.get::<String>(2)?.unwrap_or_default(),
                        row.get::<bool>(3)?.unwrap_or(true),
                    ))),
                    None => Ok(None),
                }
            })
            .unwrap_or_else(|e| spi_fault("checking the host tables", e));
            if let Some((relation, found, top)) = problem {
                let host_table = format!("{}.{table}", self.schema);
                let what = if top {
                    format!("infor_comm: host table \"{host_table}\" is {found}")
                } else {
                    format!(
                        "infor_comm: host table \"{host_table}\" has a partition or child \"{relation}\" that is {found}"
                    )
                };
                raise(
                    PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                    what,
                    "infor_comm reads only ordinary or partitioned tables without row-level security, whose documented columns have types built into PostgreSQL: reading anything else could run another role's code (docs/security.md).",
                    "Give infor_comm the host tables themselves (docs/install.md, \"The host tables\", has their columns), or set infor_comm.host_schema to the schema that holds them.",
                );
            }
        }
    }
}

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

    /// Host tables owned by `test_owner`, a role that is not a superuser and may create objects
    /// in `public`, as the database owner may; one thinking client.
    fn tables_of_a_hostile_owner() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        run("CREATE ROLE test_owner LOGIN;
             GRANT CREATE ON SCHEMA public TO test_owner;
             ALTER TABLE product_migration_clients OWNER TO test_owner;
             ALTER TABLE wizard_status_change_log OWNER TO test_owner;
             ALTER TABLE clients_back_system_ids OWNER TO test_owner;
             ALTER TABLE clientsnapshot OWNER TO test_owner;");
        // What the owner wants a superuser to run: harmless when run with the owner's rights.
        let planted = as_role(
            "test_owner",
            "CREATE FUNCTION public.escalate() RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN
                 IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                     ALTER ROLE test_owner SUPERUSER;
                 END IF;
                 RETURN true;
             END $$",
        );
        assert_eq!(planted, "ok");
    }

    fn owner_is_superuser() -> bool {
        text("SELECT rolsuper::text FROM pg_roles WHERE rolname = 'test_owner'")
            == Some("true".into())
    }

    #[pg_test]
    fn a_view_in_place_of_a_host_table_is_refused_and_never_run() {
        tables_of_a_hostile_owner();
        assert_eq!(
            as_role(
                "test_owner",
                "ALTER TABLE product_migration_clients RENAME TO product_migration_clients_real;
                 CREATE VIEW product_migration_clients AS
                     SELECT * FROM product_migration_clients_real WHERE public.escalate();"
            ),
            "ok"
        );
        let refused =
            "infor_comm: host table \"public.product_migration_clients\" is a view, not a table";
        assert_eq!(outcome_of("CALL infor_comm.run_daily()"), refused);
        assert_eq!(
            outcome_of("SELECT infor_comm.enqueue_thinking_clients()"),
            refused
        );
        assert_eq!(
            outcome_of("SELECT * FROM infor_comm.thinking_clients"),
            refused
        );
        assert!(
            !owner_is_superuser(),
            "the view's function ran as a superuser"
        );
    }

    #[pg_test]
    fn a_host_table_with_row_level_security_is_refused_and_its_policy_never_run() {
        tables_of_a_hostile_owner();
        assert_eq!(
            as_role(
                "test_owner",
                "ALTER TABLE clientsnapshot ENABLE ROW LEVEL SECURITY;
                 CREATE POLICY everyone ON clientsnapshot USING (public.escalate());"
            ),
            "ok"
        );
        let refused = "infor_comm: host table \"public.clientsnapshot\" is a table with row-level security enabled";
        assert_eq!(outcome_of("CALL infor_comm.run_daily()"), refused);
        assert_eq!(
            outcome_of("SELECT * FROM infor_comm.thinking_clients"),
            refused
        );
        assert!(!owner_is_superuser(), "the policy ran as a superuser");
    }

    #[pg_test]
    fn a_column_of_a_type_the_owner_created_is_refused() {
        tables_of_a_hostile_owner();
        assert_eq!(
            as_role(
                "test_owner",
                "CREATE DOMAIN public.org_id AS varchar CHECK (public.escalate());
                 ALTER TABLE wizard_status_change_log ALTER COLUMN organization_id TYPE public.org_id;"
            ),
            "ok"
        );
        assert_eq!(
            outcome_of("CALL infor_comm.run_daily()"),
            "infor_comm: host table \"public.wizard_status_change_log\" is a table whose column organization_id is of type public.org_id, which is not built into PostgreSQL"
        );
        assert!(!owner_is_superuser());
    }

    #[pg_test]
    fn a_partition_is_checked_like_its_table_and_a_partitioned_table_is_read() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        run("ALTER TABLE clientsnapshot RENAME TO clientsnapshot_old;
             CREATE TABLE clientsnapshot (id varchar, tin varchar, registry_number varchar,
                                          kpp varchar, okpo varchar) PARTITION BY LIST (id);
             CREATE TABLE clientsnapshot_rest PARTITION OF clientsnapshot DEFAULT;
             INSERT INTO clientsnapshot SELECT * FROM clientsnapshot_old;
             GRANT SELECT ON clientsnapshot TO infor_comm_writer;");
        assert_eq!(enqueue(AS_OF), 1, "a partitioned host table is read");
        run("ALTER TABLE clientsnapshot_rest ENABLE ROW LEVEL SECURITY");
        assert_eq!(
            outcome_of(&format!("SELECT infor_comm.enqueue_thinking_clients('{AS_OF}')")),
            "infor_comm: host table \"public.clientsnapshot\" has a partition or child \"public.clientsnapshot_rest\" that is a table with row-level security enabled"
        );
    }

    #[pg_test]
    fn health_says_when_a_host_table_has_no_unique_key_on_its_id() {
        host_tables();
        let problems = || {
            text("SELECT array_to_string(problems, ' | ') FROM infor_comm.health")
                .unwrap_or_default()
        };
        assert!(!problems().contains("has no unique key"), "{}", problems());
        run(
            "ALTER TABLE clientsnapshot DROP CONSTRAINT clientsnapshot_pkey;
             CREATE INDEX clientsnapshot_id_idx ON clientsnapshot (id);",
        );
        assert!(
            problems().contains("host table public.clientsnapshot has no unique key on id: a client listed twice is read from one of its rows, which one is not defined"),
            "{}",
            problems()
        );
        assert!(!problems().contains("product_migration_clients has no unique key"));
    }

    #[pg_test(
        error = "infor_comm: host table \"public.clientsnapshot\" is a table without the column okpo"
    )]
    fn a_missing_documented_column_is_named() {
        host_tables();
        run("ALTER TABLE clientsnapshot DROP COLUMN okpo");
        enqueue(AS_OF);
    }

    #[pg_test(
        error = "infor_comm: role \"infor_comm_writer\" may not read host table \"public.clientsnapshot\""
    )]
    fn a_host_table_the_writer_may_not_read_is_named_with_the_grant() {
        host_tables();
        run("REVOKE SELECT ON clientsnapshot FROM infor_comm_writer");
        enqueue(AS_OF);
    }
}
