//! The settings as SQL functions (`setting_thinking_days`, `setting_timezone`,
//! `setting_response_timeout`, `setting_host_schema`, `setting_retention`): the value in force, validated, or the
//! error a bad value gets. The extension's own SQL calls them (the selection, the reports, the
//! task table's defaults); so may a DBA, to see what the job will use. The settings themselves,
//! and their checks, are [`crate::gucs`]'s.
//!
//! Granted to `infor_comm_reader` (the preview and the reports read them with the reader's
//! rights) and to `infor_comm_writer` (the daily job's functions run as it).

use crate::gucs::{host_schema, response_timeout, retention, thinking_days, timezone};
use pgrx::prelude::*;

/// The `infor_comm.thinking_days` in force, validated.
#[pg_extern(stable, parallel_safe, name = "setting_thinking_days")]
#[search_path(pg_catalog, pg_temp)]
fn setting_thinking_days() -> i32 {
    thinking_days()
}

/// The `infor_comm.timezone` in force, validated.
#[pg_extern(stable, parallel_safe, name = "setting_timezone")]
#[search_path(pg_catalog, pg_temp)]
fn setting_timezone() -> String {
    timezone()
}

/// The `infor_comm.response_timeout` in force, validated.
#[pg_extern(stable, parallel_safe, name = "setting_response_timeout")]
#[search_path(pg_catalog, pg_temp)]
fn setting_response_timeout() -> Interval {
    response_timeout()
}

/// The `infor_comm.retention` in force, validated.
#[pg_extern(stable, parallel_safe, name = "setting_retention")]
#[search_path(pg_catalog, pg_temp)]
fn setting_retention() -> Interval {
    retention()
}

/// The `infor_comm.host_schema` in force, validated.
#[pg_extern(stable, parallel_safe, name = "setting_host_schema")]
#[search_path(pg_catalog, pg_temp)]
fn setting_host_schema() -> String {
    host_schema()
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.setting_thinking_days() IS
    'The infor_comm.thinking_days in force, validated.';
COMMENT ON FUNCTION infor_comm.setting_timezone() IS
    'The infor_comm.timezone in force, validated.';
COMMENT ON FUNCTION infor_comm.setting_response_timeout() IS
    'The infor_comm.response_timeout in force, validated.';
COMMENT ON FUNCTION infor_comm.setting_host_schema() IS 'The infor_comm.host_schema in force, validated.';
COMMENT ON FUNCTION infor_comm.setting_retention() IS 'The infor_comm.retention in force, validated.';
"#,
    name = "settings_comments",
    requires = [
        setting_thinking_days,
        setting_timezone,
        setting_response_timeout,
        setting_host_schema,
        setting_retention,
    ],
);

extension_sql!(
    r#"
GRANT EXECUTE ON FUNCTION
    infor_comm.setting_thinking_days(),
    infor_comm.setting_timezone(),
    infor_comm.setting_response_timeout(),
    infor_comm.setting_host_schema()
TO infor_comm_reader, infor_comm_writer;
"#,
    name = "settings_grants",
    requires = [
        "roles",
        setting_thinking_days,
        setting_timezone,
        setting_response_timeout,
        setting_host_schema,
    ],
);
