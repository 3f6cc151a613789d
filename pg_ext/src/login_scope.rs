//! A login may use infor_comm only in the databases it was granted `CONNECT` on.
//!
//! The roles `infor_comm_relay`, `infor_comm_reader` and `infor_comm_job` are the cluster's, not a
//! database's: a login made a member of `infor_comm_relay` for database A would otherwise claim
//! requests and read tax ids in every other database of the cluster that has the extension. So
//! the extension takes PostgreSQL's own word for which database a login is for: its `CONNECT`
//! privilege on it, granted to the login (or to a role it is a member of), not the `CONNECT`
//! that `PUBLIC` has by default. The database's owner and superusers may always.
//!
//! Every entry point a non-superuser reaches checks it once per transaction (the relay's and the
//! job's functions, `client_history`, `health`; row-level security policies on the tables the
//! reader reads, and the views, which run with the reader's rights), and otherwise raises one
//! error naming the login, the database and the `GRANT` to run.

use crate::errors::{raise, spi_fault};
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// The local transaction in which, and the login that, was last found allowed.
    static ALLOWED_IN: Cell<Option<(pg_sys::LocalTransactionId, pg_sys::Oid)>> = const { Cell::new(None) };
}

/// True when the session's login may use infor_comm in this database: a superuser, the
/// database's owner, or a role granted `CONNECT` on it other than through `PUBLIC`.
const LOGIN_MAY_USE_DATABASE: &str = "
SELECT r.rolsuper OR EXISTS (
           SELECT FROM pg_catalog.pg_database d
            CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a
            WHERE d.datname = pg_catalog.current_database()
              AND a.privilege_type = 'CONNECT'
              AND a.grantee <> 0
              AND pg_catalog.pg_has_role(r.oid, a.grantee, 'MEMBER'))
  FROM pg_catalog.pg_roles r
 WHERE r.oid = $1";

/// True when the role `role` may use infor_comm in this database.
pub fn role_may_use_database(role: pg_sys::Oid) -> bool {
    Spi::get_one_with_args::<bool>(LOGIN_MAY_USE_DATABASE, &[role.into()])
        .unwrap_or_else(|e| spi_fault("checking the login's database", e))
        .unwrap_or(false)
}

/// Raises unless the session's login may use infor_comm in this database (checked once per
/// transaction).
pub fn require_login_for_database() {
    // SAFETY: MyProc is set for every backend that can call a function; lxid is read only.
    let transaction = unsafe { (*pg_sys::MyProc).lxid };
    // SAFETY: reads the session's login (SET SESSION AUTHORIZATION, which only a superuser may
    // run, changes it).
    let login = unsafe { pg_sys::GetSessionUserId() };
    if ALLOWED_IN.with(Cell::get) == Some((transaction, login)) {
        return;
    }
    if !role_may_use_database(login) {
        let names = Spi::get_two::<String, String>(
            "SELECT session_user::text, pg_catalog.current_database()::text",
        )
        .unwrap_or((None, None));
        let (login, database) = (names.0.unwrap_or_default(), names.1.unwrap_or_default());
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("infor_comm: login \"{login}\" may not use infor_comm in database \"{database}\""),
            "The roles infor_comm_relay, infor_comm_reader and infor_comm_job belong to the whole cluster; a login uses them only in the databases it was granted CONNECT on (not the CONNECT that PUBLIC has).",
            format!(
                "If \"{login}\" is meant for this database: GRANT CONNECT ON DATABASE \"{database}\" TO \"{login}\"; (docs/security.md)."
            ),
        );
    }
    ALLOWED_IN.with(|allowed| allowed.set(Some((transaction, login))));
}

/// `require_login_for_database` for the extension's SQL: its functions, row-level security
/// policies and views call it; true, or an error.
#[pg_extern(stable, parallel_restricted, name = "require_login_for_database")]
#[search_path(pg_catalog, pg_temp)]
fn require_login_for_database_sql() -> bool {
    require_login_for_database();
    true
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.require_login_for_database() IS
    'True when the session''s login may use infor_comm in this database (a superuser, the owner, or a role granted CONNECT on it other than through PUBLIC); an error naming the GRANT otherwise.';
"#,
    name = "require_login_for_database_comment",
    requires = [require_login_for_database_sql],
);

/// Forgets that the login was found allowed in this transaction (for tests that change the
/// grants within one).
#[cfg(any(test, feature = "pg_test"))]
pub fn forget_check() {
    ALLOWED_IN.with(|allowed| allowed.set(None));
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    /// Runs `sql` with `login` as the session's login (as a connection of that login would).
    fn as_login(login: &str, sql: &str) -> String {
        run(&format!("SET SESSION AUTHORIZATION {login}"));
        let outcome = outcome_of(sql);
        run("RESET SESSION AUTHORIZATION");
        outcome
    }

    #[pg_test]
    fn a_login_uses_infor_comm_only_in_the_databases_it_may_connect_to() {
        let request_id = enqueued_request("ORG1");
        // A run in the run history (a policy's check runs on the first row a table gives).
        run("CALL infor_comm.run_daily()");
        run(
            "CREATE ROLE test_relay_elsewhere LOGIN IN ROLE infor_comm_relay;
             CREATE ROLE test_reader_elsewhere LOGIN IN ROLE infor_comm_reader;
             CREATE ROLE test_job_elsewhere LOGIN IN ROLE infor_comm_job;
             GRANT SELECT ON product_migration_clients, wizard_status_change_log,
                             clients_back_system_ids, clientsnapshot TO test_reader_elsewhere;",
        );
        let mut relay_calls = relay_calls(&request_id);
        relay_calls.push("SELECT infor_comm.apply_delivery('{}'::bytea, NULL)".to_string());
        let reader_reads = [
            "SELECT * FROM infor_comm.infor_communication_task",
            "SELECT * FROM infor_comm.outbox_delivery",
            "SELECT organization_id FROM infor_comm.outbox",
            "SELECT * FROM infor_comm.outbox_open",
            "SELECT * FROM infor_comm.daily_runs",
            "SELECT * FROM infor_comm.daily_funnel",
            "SELECT * FROM infor_comm.task_reactions",
            "SELECT * FROM infor_comm.unknown_reaction_pushes",
            "SELECT * FROM infor_comm.thinking_clients",
            "SELECT * FROM infor_comm.client_history('ORG1')",
            "SELECT * FROM infor_comm.health",
            "SELECT * FROM infor_comm.effectiveness(NULL, NULL)",
        ];
        let refused = |login: &str| {
            format!(
                "infor_comm: login \"{login}\" may not use infor_comm in database \"pgrx_tests\""
            )
        };
        // Members of the cluster's roles, but granted CONNECT on another database only.
        for sql in &relay_calls {
            assert_eq!(
                as_login("test_relay_elsewhere", sql),
                refused("test_relay_elsewhere"),
                "{sql}"
            );
        }
        for sql in reader_reads {
            assert_eq!(
                as_login("test_reader_elsewhere", sql),
                refused("test_reader_elsewhere"),
                "{sql}"
            );
        }
        assert_eq!(
            as_login("test_job_elsewhere", "CALL infor_comm.run_daily()"),
            refused("test_job_elsewhere")
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.inbox"),
            0,
            "nothing applied"
        );
        // Granted CONNECT on this database: the same calls work.
        run("GRANT CONNECT ON DATABASE pgrx_tests TO test_relay_elsewhere, test_reader_elsewhere, test_job_elsewhere");
        for sql in &relay_calls {
            assert_eq!(as_login("test_relay_elsewhere", sql), "ok", "{sql}");
        }
        for sql in reader_reads {
            assert_eq!(as_login("test_reader_elsewhere", sql), "ok", "{sql}");
        }
        assert_eq!(
            as_login("test_job_elsewhere", "CALL infor_comm.run_daily()"),
            "ok"
        );
    }
}
