//! The pg_cron job named [`JOB_NAME`]: [`schedule`] and [`unschedule`] (the DBA's
//! `schedule_daily` and `unschedule_daily`, in [`crate::api::operator`]), the role it runs as, and
//! the event trigger that removes it when the extension is dropped. What the job calls,
//! `run_daily`, is in [`crate::api::job`].

use crate::errors::{raise, spi_fault};
use pgrx::prelude::*;

/// The name of the pg_cron job.
pub const JOB_NAME: &str = "infor_comm_daily";

/// The command the pg_cron job runs.
pub const JOB_COMMAND: &str = "CALL infor_comm.run_daily()";
/// The pg_cron job that `schedule_daily` keeps beside the daily one, with the same schedule and
/// role: the retention of personal data ([`crate::retention`]).
pub const RETENTION_JOB_NAME: &str = "infor_comm_retention";
/// What the retention job runs.
pub const RETENTION_JOB_COMMAND: &str = "SELECT infor_comm.apply_retention()";

/// The role `schedule_daily` runs the job as when no `run_as` is given: a login member of
/// `infor_comm_job`, created when missing. It can run the job and nothing else.
pub const DAILY_ROLE: &str = "infor_comm_daily";

/// Raises an error with installation hints unless pg_cron is installed in this database.
fn require_pg_cron() {
    let installed = Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')",
    )
    .unwrap_or_else(|e| spi_fault("looking up pg_cron", e))
    .unwrap_or(false);
    if !installed {
        let database = crate::current_database();
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("infor_comm: pg_cron is not installed in database \"{database}\""),
            "schedule_daily and unschedule_daily manage a pg_cron job, and pg_cron is not installed here.",
            format!(
                "Install pg_cron (Debian: apt-get install postgresql-15-cron), add it to shared_preload_libraries, \
                 set cron.database_name = '{database}', restart PostgreSQL and run CREATE EXTENSION pg_cron; \
                 or run CALL infor_comm.run_daily() daily from another scheduler."
            ),
        );
    }
}

/// True when the current role is a superuser.
fn is_superuser() -> bool {
    Spi::get_one::<bool>("SELECT pg_catalog.current_setting('is_superuser')::boolean")
        .unwrap_or_else(|e| spi_fault("reading is_superuser", e))
        .unwrap_or(false)
}

/// Raises unless the current role may remove every `infor_comm_daily` and
/// `infor_comm_retention` job of this database.
fn require_may_replace_jobs(action: &str) {
    let others = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.string_agg(DISTINCT username, ', ')
           FROM cron.job
          WHERE jobname IN ($1, $2) AND database = pg_catalog.current_database()
            AND username <> current_user",
        &[JOB_NAME.into(), RETENTION_JOB_NAME.into()],
    )
    .unwrap_or_else(|e| spi_fault("reading cron.job", e));
    if let Some(others) = others {
        if !is_superuser() {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("infor_comm: cannot {action} the job {JOB_NAME} of role(s) {others}"),
                format!(
                    "This database has one job {JOB_NAME}, and role(s) {others} scheduled it; pg_cron lets only its owner or a superuser remove it."
                ),
                "Run this as a superuser, or as the role that scheduled the job.",
            );
        }
    }
}

/// Creates `DAILY_ROLE` (a login, member of `infor_comm_job`) when it does not exist, and makes
/// it a member of `infor_comm_job` when it is not.
fn ensure_daily_role() {
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = $1)",
        &[DAILY_ROLE.into()],
    )
    .unwrap_or_else(|e| spi_fault("looking up the role", e))
    .unwrap_or(false);
    if !is_superuser() {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("infor_comm: only a superuser can schedule the daily job as role \"{DAILY_ROLE}\""),
            format!("Without run_as, schedule_daily runs the job as {DAILY_ROLE}, a role made for it; pg_cron lets only a superuser schedule a job for another role."),
            "Run schedule_daily as a superuser.",
        );
    }
    if !exists {
        Spi::run(&format!(
            "CREATE ROLE {DAILY_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE IN ROLE infor_comm_job"
        ))
        .unwrap_or_else(|e| spi_fault("creating the role of the daily job", e));
        notice!(
            "infor_comm: created the role {DAILY_ROLE} (LOGIN, member of infor_comm_job), which runs the daily job; pg_hba.conf must let it connect to this database from the server (docs/security.md)"
        );
    } else {
        Spi::run(&format!("GRANT infor_comm_job TO {DAILY_ROLE}"))
            .unwrap_or_else(|e| spi_fault("granting infor_comm_job", e));
    }
}

/// Creates or replaces the pg_cron job that runs `infor_comm.run_daily()` in this database as
/// `run_as` (default: `infor_comm_daily`, created when missing); returns its job id. The
/// database keeps exactly one such job, whoever scheduled the earlier one. A superuser
/// `run_as` is refused: the job never runs as one (docs/security.md).
pub fn schedule(cron: Option<&str>, run_as: Option<&str>) -> i64 {
    let Some(cron) = cron else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "infor_comm: the schedule of schedule_daily is NULL",
            "schedule_daily needs a cron schedule.",
            "Pass a schedule such as '0 9 * * *' (09:00 every day, in pg_cron's time zone), or leave it out for that default.",
        )
    };
    crate::entry_checks();
    require_pg_cron();
    let current_user = Spi::get_one::<String>("SELECT current_user::text")
        .unwrap_or_else(|e| spi_fault("reading current_user", e))
        .unwrap_or_default();
    let run_as = match run_as {
        Some(role) => role.to_string(),
        None => {
            ensure_daily_role();
            DAILY_ROLE.to_string()
        }
    };
    let role = Spi::connect(|client| {
        let rows = client.select(
            "SELECT rolcanlogin, rolsuper,
                    pg_catalog.has_function_privilege(oid, 'infor_comm.run_daily()', 'EXECUTE')
               FROM pg_catalog.pg_roles WHERE rolname = $1",
            Some(1),
            &[run_as.as_str().into()],
        )?;
        match rows.into_iter().next() {
            Some(row) => Ok(Some((
                row.get::<bool>(1)?.unwrap_or(false),
                row.get::<bool>(2)?.unwrap_or(false),
                row.get::<bool>(3)?.unwrap_or(false),
            ))),
            None => Ok(None),
        }
    })
    .unwrap_or_else(|e| spi_fault("looking up the role", e));
    if let Some((_, true, _)) = role {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("infor_comm: the daily job cannot run as the superuser \"{run_as}\""),
            "The job reads tables that other roles own; run as a superuser, their owners could make it run their code with a superuser's rights.",
            format!("Leave run_as out (the job then runs as {DAILY_ROLE}, a role made for it), or pass a role that is not a superuser and is a member of infor_comm_job."),
        );
    }
    if let Some((true, false, false)) = role {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("infor_comm: role \"{run_as}\" may not run the daily job"),
            "The job calls infor_comm.run_daily(), which only members of infor_comm_job may execute.",
            format!("GRANT infor_comm_job TO \"{run_as}\", or leave run_as out."),
        );
    }
    match role.map(|(can_login, _, _)| can_login) {
        None => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("infor_comm: role \"{run_as}\" does not exist"),
            "schedule_daily runs the daily job as this role.",
            "Create the role (docs/security.md lists the privileges it needs), or pass an existing one.",
        ),
        Some(false) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("infor_comm: role \"{run_as}\" cannot log in"),
            "pg_cron connects as the role that runs the job, so it needs LOGIN.",
            format!("ALTER ROLE \"{run_as}\" LOGIN, or pass a role that can log in."),
        ),
        Some(true) => {}
    }
    if run_as != current_user && !is_superuser() {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("infor_comm: only a superuser can schedule the daily job as role \"{run_as}\""),
            format!("The current role is \"{current_user}\"; pg_cron lets only a superuser schedule a job for another role."),
            "Run schedule_daily as a superuser, or log in as that role.",
        );
    }
    require_may_replace_jobs("replace");
    let role_oid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1",
        &[run_as.as_str().into()],
    )
    .unwrap_or_else(|e| spi_fault("looking up the role", e));
    if let Some(role_oid) = role_oid {
        if !crate::login_scope::role_may_use_database(role_oid) {
            // The job's role uses infor_comm in this database: say so the way PostgreSQL does.
            Spi::run(&format!(
                "GRANT CONNECT ON DATABASE {} TO {}",
                crate::host_tables::quote_ident(&crate::current_database()),
                crate::host_tables::quote_ident(&run_as)
            ))
            .unwrap_or_else(|e| spi_fault("granting CONNECT to the job's role", e));
            notice!(
                "infor_comm: granted CONNECT on database \"{}\" to \"{run_as}\", which runs the daily job (a login uses infor_comm only in the databases it may connect to other than through PUBLIC)",
                crate::current_database()
            );
        }
    }
    let job_id = keep_one_job(JOB_NAME, cron, JOB_COMMAND, &run_as);
    keep_one_job(RETENTION_JOB_NAME, cron, RETENTION_JOB_COMMAND, &run_as);
    job_id
}

/// Creates, or replaces in place, the one pg_cron job `name` of this database: `command` on
/// `cron`, as `run_as`, active; returns its id. Of several jobs of that name, the oldest stays
/// (its id too) and the others are removed.
fn keep_one_job(name: &str, cron: &str, command: &str, run_as: &str) -> i64 {
    Spi::connect_mut(|client| {
        // Keep the oldest job of this database (its id stays), remove any other.
        let existing = client
            .update(
                "SELECT pg_catalog.min(jobid) FROM cron.job
                  WHERE jobname = $1 AND database = pg_catalog.current_database()",
                None,
                &[name.into()],
            )?
            .first()
            .get::<i64>(1)?;
        let Some(job_id) = existing else {
            return client
                .update(
                    "SELECT cron.schedule_in_database($1, $2, $3, pg_catalog.current_database(), $4, true)",
                    None,
                    &[name.into(), cron.into(), command.into(), run_as.into()],
                )?
                .first()
                .get::<i64>(1);
        };
        client.update(
            "SELECT cron.unschedule(jobid) FROM cron.job
              WHERE jobname = $1 AND database = pg_catalog.current_database() AND jobid <> $2",
            None,
            &[name.into(), job_id.into()],
        )?;
        client.update(
            "SELECT cron.alter_job($1, $2, $3, pg_catalog.current_database(), $4, true)",
            None,
            &[job_id.into(), cron.into(), command.into(), run_as.into()],
        )?;
        Ok(Some(job_id))
    })
    .unwrap_or_else(|e| spi_fault("cron.schedule_in_database", e))
    .unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "infor_comm: cron.schedule_in_database returned no job id",
            format!("job {name}, schedule: {cron}"),
            "Check the pg_cron installation (infor_comm needs pg_cron 1.4 or later).",
        )
    })
}

/// Removes the pg_cron jobs of `schedule_daily` (the daily job and the retention job) from this
/// database, whoever scheduled them; returns false when there was no daily job.
pub fn unschedule() -> bool {
    crate::entry_checks();
    require_pg_cron();
    require_may_replace_jobs("remove");
    Spi::get_one_with_args::<bool>(
        "SELECT coalesce(bool_or(jobname = $1), false)
           FROM (SELECT jobname, cron.unschedule(jobid)
                   FROM cron.job
                  WHERE jobname IN ($1, $2) AND database = pg_catalog.current_database()) removed",
        &[JOB_NAME.into(), RETENTION_JOB_NAME.into()],
    )
    .unwrap_or_else(|e| spi_fault("cron.unschedule", e))
    .unwrap_or(false)
}

/// True when the statement that fires the event trigger of `fcinfo` is a `DROP EXTENSION` or
/// `DROP SCHEMA` that names `infor_comm` (dropping the schema drops the extension with it).
///
/// # Safety
/// `fcinfo` must be the call info PostgreSQL passes to an event trigger function.
unsafe fn drops_infor_comm(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_EventTriggerData {
        return false;
    }
    let tree = (*context.cast::<pg_sys::EventTriggerData>()).parsetree;
    if tree.is_null() || (*tree).type_ != pg_sys::NodeTag::T_DropStmt {
        return false;
    }
    let drop = tree.cast::<pg_sys::DropStmt>();
    if !matches!(
        (*drop).removeType,
        pg_sys::ObjectType::OBJECT_EXTENSION | pg_sys::ObjectType::OBJECT_SCHEMA
    ) {
        return false;
    }
    pgrx::PgList::<pg_sys::Node>::from_pg((*drop).objects)
        .iter_ptr()
        .any(|name| {
            !name.is_null()
                && (*name).type_ == pg_sys::NodeTag::T_String
                && !(*name.cast::<pg_sys::String>()).sval.is_null()
                && std::ffi::CStr::from_ptr((*name.cast::<pg_sys::String>()).sval).to_bytes()
                    == b"infor_comm"
        })
}

/// The event trigger `infor_comm_forget_daily_job`: when `DROP EXTENSION infor_comm` (or `DROP
/// SCHEMA infor_comm … CASCADE`) starts, the pg_cron job of this database goes with it, in the
/// same transaction, instead of failing every day after.
#[pg_extern(sql = r#"
CREATE FUNCTION infor_comm.forget_daily_job_on_drop() RETURNS event_trigger
LANGUAGE c
SET search_path TO pg_catalog, pg_temp
AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION infor_comm.forget_daily_job_on_drop() IS
    'The event trigger infor_comm_forget_daily_job: removes the pg_cron jobs infor_comm_daily and infor_comm_retention of this database when DROP EXTENSION infor_comm (or DROP SCHEMA infor_comm) runs.';
CREATE EVENT TRIGGER infor_comm_forget_daily_job ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION infor_comm.forget_daily_job_on_drop();
"#)]
fn forget_daily_job_on_drop(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: PostgreSQL calls this function as an event trigger only (its SQL type says so).
    if !unsafe { drops_infor_comm(fcinfo) } {
        return;
    }
    let has_jobs = Spi::get_one::<bool>("SELECT pg_catalog.to_regclass('cron.job') IS NOT NULL")
        .unwrap_or_else(|e| spi_fault("looking up pg_cron", e))
        .unwrap_or(false);
    if has_jobs {
        Spi::run_with_args(
            "SELECT cron.unschedule(jobid) FROM cron.job
              WHERE jobname IN ($1, $2) AND database = pg_catalog.current_database()",
            &[JOB_NAME.into(), RETENTION_JOB_NAME.into()],
        )
        .unwrap_or_else(|e| spi_fault("removing the pg_cron job", e));
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn run_daily_enqueues() {
        host_tables();
        run(
            "INSERT INTO product_migration_clients VALUES ('NOW', 'M', 'in_wizard', 'OK');
             INSERT INTO wizard_status_change_log
                  VALUES ('NOW', 'OK', (now() - interval '8 days') AT TIME ZONE 'Europe/Moscow');
             INSERT INTO clientsnapshot VALUES ('NOW', '1', '2', '3', NULL);",
        );
        run("CALL infor_comm.run_daily()");
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox WHERE organization_id = 'NOW'"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM infor_comm.thinking_clients"), 0);
    }

    #[pg_test]
    fn schedule_daily_creates_one_pg_cron_job() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron");
        let first = int("SELECT infor_comm.schedule_daily()");
        let second = int("SELECT infor_comm.schedule_daily('30 6 * * *')");
        assert_eq!(first, second, "the job is replaced, not added");
        assert_eq!(
            text("SELECT schedule || ' ' || command FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            Some("30 6 * * * CALL infor_comm.run_daily()".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            1
        );
        // The retention job beside it: the same schedule and role, replaced with it.
        assert_eq!(
            text(
                "SELECT string_agg(schedule || ' ' || command || ' ' || username, ';')
                   FROM cron.job WHERE jobname = 'infor_comm_retention'"
            ),
            Some("30 6 * * * SELECT infor_comm.apply_retention() infor_comm_daily".into())
        );
        assert_eq!(
            text("SELECT infor_comm.unschedule_daily()::text"),
            Some("true".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM cron.job WHERE jobname IN ('infor_comm_daily', 'infor_comm_retention')"),
            0
        );
        assert_eq!(
            text("SELECT infor_comm.unschedule_daily()::text"),
            Some("false".into())
        );
    }

    #[pg_test(error = "infor_comm: pg_cron is not installed in database \"pgrx_tests\"")]
    fn schedule_daily_without_pg_cron_says_how_to_install_it() {
        run("DROP EXTENSION IF EXISTS pg_cron");
        int("SELECT infor_comm.schedule_daily()");
    }

    #[pg_test]
    fn schedule_daily_keeps_one_job_per_database_whoever_scheduled_it() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron;
             CREATE ROLE test_dba_a LOGIN SUPERUSER; CREATE ROLE test_dba_b LOGIN SUPERUSER;
             CREATE ROLE test_runner LOGIN IN ROLE infor_comm_job;");
        run("SET LOCAL ROLE test_dba_a");
        int("SELECT infor_comm.schedule_daily()");
        run("SET LOCAL ROLE test_dba_b");
        int("SELECT infor_comm.schedule_daily('15 8 * * *', 'test_runner')");
        run("RESET ROLE");
        assert_eq!(
            text("SELECT string_agg(username || ' ' || schedule || ' ' || database, ';') FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            Some("test_runner 15 8 * * * pgrx_tests".into())
        );
        run("SET LOCAL ROLE test_dba_a");
        assert_eq!(
            text("SELECT infor_comm.unschedule_daily()::text"),
            Some("true".into())
        );
        run("RESET ROLE");
        assert_eq!(
            int("SELECT count(*) FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            0
        );
    }

    #[pg_test(error = "infor_comm: the schedule of schedule_daily is NULL")]
    fn schedule_daily_refuses_a_null_schedule() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron");
        int("SELECT infor_comm.schedule_daily(NULL)");
    }

    #[pg_test(error = "infor_comm: role \"nobody_here\" does not exist")]
    fn schedule_daily_refuses_an_unknown_role() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron");
        int("SELECT infor_comm.schedule_daily('0 9 * * *', 'nobody_here')");
    }

    #[pg_test]
    fn the_job_never_runs_as_a_superuser() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron;
             CREATE ROLE test_super LOGIN SUPERUSER;");
        assert_eq!(
            outcome_of("SELECT infor_comm.schedule_daily('0 9 * * *', 'test_super')"),
            "infor_comm: the daily job cannot run as the superuser \"test_super\""
        );
        // Without run_as, a role made for the job: a login that may run the job, nothing more.
        int("SELECT infor_comm.schedule_daily('30 6 * * 1-5')");
        assert_eq!(
            text("SELECT username || ' ' || schedule FROM cron.job WHERE jobname = 'infor_comm_daily'"),
            Some("infor_comm_daily 30 6 * * 1-5".into())
        );
        assert_eq!(
            text("SELECT concat_ws(' ', rolcanlogin, rolsuper, pg_has_role(oid, 'infor_comm_job', 'MEMBER'))
                    FROM pg_roles WHERE rolname = 'infor_comm_daily'"),
            Some("t f t".into())
        );
        // A role that is not a member of infor_comm_job is refused with the grant to make.
        run("CREATE ROLE test_outsider LOGIN");
        assert_eq!(
            outcome_of("SELECT infor_comm.schedule_daily('0 9 * * *', 'test_outsider')"),
            "infor_comm: role \"test_outsider\" may not run the daily job"
        );
    }

    #[pg_test]
    fn health_flags_a_job_run_as_a_superuser_inactive_or_running_another_command() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron");
        // As 0.2.0's schedule_daily() left it: run as the superuser who scheduled it.
        let job = int(
            "SELECT cron.schedule('infor_comm_daily', '0 9 * * *', 'CALL infor_comm.run_daily()')",
        );
        let problems = || {
            text("SELECT array_to_string(problems, ' | ') FROM infor_comm.health")
                .unwrap_or_default()
        };
        assert!(
            problems().contains("the pg_cron job infor_comm_daily runs as the superuser"),
            "{}",
            problems()
        );
        run(&format!(
            "SELECT cron.alter_job({job}, command => 'SELECT 1', active => false)"
        ));
        assert!(problems().contains("the pg_cron job infor_comm_daily is inactive"));
        assert!(
            problems().contains("pg_cron has no job infor_comm_retention in this database"),
            "{}",
            problems()
        );
        assert!(problems().contains(
            "the pg_cron job infor_comm_daily runs 'SELECT 1', not CALL infor_comm.run_daily()"
        ));
        int("SELECT infor_comm.schedule_daily()");
        let after = problems();
        assert!(!after.contains("pg_cron job"), "{after}");
    }
}
