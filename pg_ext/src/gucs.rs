//! The `infor_comm.*` settings (GUCs).
//!
//! All of them are string settings that are checked twice:
//! - when they are set interactively (`SET`, `ALTER DATABASE … SET`, `ALTER ROLE … SET`), a bad
//!   value is refused at once, with an error naming the setting and the value;
//! - when they are read, a bad value that slipped in another way (`postgresql.conf`, a per-database
//!   value stored before the library was loaded) fails the function that reads it, with the same
//!   error. A bad value is never silently replaced by the default.
//!
//! PostgreSQL's own integer and interval settings cannot give that second guarantee: a stored
//! value that fails validation when the library loads is dropped with a WARNING, and the default
//! is used. That is why the values are kept as text here and parsed by the accessors below.

use crate::errors::raise;
use pgrx::datum::Interval;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::str::FromStr;

/// The default of `infor_comm.thinking_days`.
pub const DEFAULT_THINKING_DAYS: i32 = 7;
/// The largest accepted `infor_comm.thinking_days` (ten years).
pub const MAX_THINKING_DAYS: i32 = 3650;

static THINKING_DAYS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"7"));
static TIMEZONE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"Europe/Moscow"));
static RESPONSE_TIMEOUT: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"1 day"));
static HOST_SCHEMA: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"public"));
static MAX_PUSH_DT_AHEAD: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"1 day"));
static RETENTION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"180 days"));
static HOLDOUT_PERCENT: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"0"));
static HOLDOUT_SALT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));

/// The largest accepted `infor_comm.holdout_percent`.
pub const MAX_HOLDOUT_PERCENT: i32 = 50;

thread_local! {
    /// True while `_PG_init` defines the settings: values stored earlier as placeholders are
    /// accepted as they are then, so that they are never replaced by the default.
    static DEFINING: Cell<bool> = const { Cell::new(false) };
}

/// One setting: its name, what a valid value is, and how to parse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `infor_comm.thinking_days`
    ThinkingDays,
    /// `infor_comm.timezone`
    Timezone,
    /// `infor_comm.response_timeout`
    ResponseTimeout,
    /// `infor_comm.host_schema`
    HostSchema,
    /// `infor_comm.max_push_dt_ahead`
    MaxPushDtAhead,
    /// `infor_comm.retention`
    Retention,
    /// `infor_comm.holdout_percent`
    HoldoutPercent,
    /// `infor_comm.holdout_salt`
    HoldoutSalt,
}

impl Setting {
    /// The full name of the setting.
    pub fn name(self) -> &'static str {
        match self {
            Setting::ThinkingDays => "infor_comm.thinking_days",
            Setting::Timezone => "infor_comm.timezone",
            Setting::ResponseTimeout => "infor_comm.response_timeout",
            Setting::HostSchema => "infor_comm.host_schema",
            Setting::MaxPushDtAhead => "infor_comm.max_push_dt_ahead",
            Setting::Retention => "infor_comm.retention",
            Setting::HoldoutPercent => "infor_comm.holdout_percent",
            Setting::HoldoutSalt => "infor_comm.holdout_salt",
        }
    }

    /// What a valid value looks like, for error details.
    pub fn expected(self) -> &'static str {
        match self {
            Setting::ThinkingDays => "a whole number of days from 1 to 3650",
            Setting::Timezone => "a time zone name known to PostgreSQL, such as 'Europe/Moscow'",
            Setting::ResponseTimeout => "a positive interval, such as '1 day' or '36 hours'",
            Setting::HostSchema => {
                "the name of the schema of the host tables, 1 to 63 bytes, as written (no quotes)"
            }
            Setting::MaxPushDtAhead => {
                "a positive interval, such as '1 day' or '6 hours' (a month counts as 30 days)"
            }
            Setting::Retention => "a positive interval, such as '180 days' or '3 years'",
            Setting::HoldoutPercent => "a whole number of percent from 0 to 50",
            Setting::HoldoutSalt => "any text (it only changes which clients are held out)",
        }
    }

    /// The default value, as text.
    pub fn default_text(self) -> &'static str {
        match self {
            Setting::ThinkingDays => "7",
            Setting::Timezone => "Europe/Moscow",
            Setting::ResponseTimeout => "1 day",
            Setting::HostSchema => "public",
            Setting::MaxPushDtAhead => "1 day",
            Setting::Retention => "180 days",
            Setting::HoldoutPercent => "0",
            Setting::HoldoutSalt => "",
        }
    }

    fn storage(self) -> &'static GucSetting<Option<CString>> {
        match self {
            Setting::ThinkingDays => &THINKING_DAYS,
            Setting::Timezone => &TIMEZONE,
            Setting::ResponseTimeout => &RESPONSE_TIMEOUT,
            Setting::HostSchema => &HOST_SCHEMA,
            Setting::MaxPushDtAhead => &MAX_PUSH_DT_AHEAD,
            Setting::Retention => &RETENTION,
            Setting::HoldoutPercent => &HOLDOUT_PERCENT,
            Setting::HoldoutSalt => &HOLDOUT_SALT,
        }
    }

    /// The current value as text (the default when the setting is unset or empty).
    pub fn raw(self) -> String {
        match self.storage().get() {
            Some(value) => value.to_string_lossy().into_owned(),
            None => String::new(),
        }
    }

    /// Checks a value without raising; `Err` says why it is not valid.
    pub fn validate(self, value: &str) -> Result<(), String> {
        match self {
            Setting::ThinkingDays => parse_thinking_days(value).map(|_| ()),
            Setting::Timezone => parse_timezone(value).map(|_| ()),
            Setting::ResponseTimeout => parse_response_timeout(value).map(|_| ()),
            Setting::HostSchema => parse_host_schema(value).map(|_| ()),
            Setting::MaxPushDtAhead => parse_response_timeout(value).map(|_| ()),
            Setting::Retention => parse_response_timeout(value).map(|_| ()),
            Setting::HoldoutPercent => parse_holdout_percent(value).map(|_| ()),
            Setting::HoldoutSalt => Ok(()),
        }
    }

    /// Raises the error for a bad value of this setting.
    pub fn invalid(self, value: &str, why: &str) -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "invalid value for parameter \"{}\": \"{}\"",
                self.name(),
                value
            ),
            format!("{why}; expected {}.", self.expected()),
            format!(
                "Fix it with SET {name} = '…' or ALTER DATABASE … SET {name} = '…', \
                 or remove it with RESET {name} (the default is '{default}').",
                name = self.name(),
                default = self.default_text()
            ),
        )
    }
}

/// Parses `infor_comm.thinking_days`.
pub fn parse_thinking_days(value: &str) -> Result<i32, String> {
    let trimmed = value.trim();
    let days: i64 = trimmed
        .parse()
        .map_err(|_| format!("\"{trimmed}\" is not a whole number"))?;
    if !(1..=i64::from(MAX_THINKING_DAYS)).contains(&days) {
        return Err(format!(
            "{days} is outside the range 1 to {MAX_THINKING_DAYS}"
        ));
    }
    Ok(days as i32)
}

/// Parses `infor_comm.holdout_percent`: a whole number from 0 to [`MAX_HOLDOUT_PERCENT`].
pub fn parse_holdout_percent(value: &str) -> Result<i32, String> {
    let trimmed = value.trim();
    let percent: i64 = trimmed
        .parse()
        .map_err(|_| format!("\"{trimmed}\" is not a whole number"))?;
    if !(0..=i64::from(MAX_HOLDOUT_PERCENT)).contains(&percent) {
        return Err(format!(
            "{percent} is outside the range 0 to {MAX_HOLDOUT_PERCENT}"
        ));
    }
    Ok(percent as i32)
}

/// Parses `infor_comm.timezone`: a name PostgreSQL's time zone database knows.
pub fn parse_timezone(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("the time zone is empty".into());
    }
    let name =
        CString::new(trimmed).map_err(|_| "the time zone contains a NUL byte".to_string())?;
    // SAFETY: pg_tzset only reads the NUL-terminated name and returns NULL when it is unknown.
    let tz = unsafe { pg_sys::pg_tzset(name.as_ptr()) };
    if tz.is_null() {
        return Err(format!("\"{trimmed}\" is not a known time zone"));
    }
    Ok(trimmed.to_string())
}

/// Parses `infor_comm.response_timeout` and `infor_comm.max_push_dt_ahead`: a positive interval.
pub fn parse_response_timeout(value: &str) -> Result<Interval, String> {
    let trimmed = value.trim();
    let interval =
        Interval::from_str(trimmed).map_err(|_| format!("\"{trimmed}\" is not an interval"))?;
    let parts = [
        i64::from(interval.months()),
        i64::from(interval.days()),
        interval.micros(),
    ];
    if parts.iter().any(|part| *part < 0) || parts.iter().all(|part| *part == 0) {
        return Err(format!("\"{trimmed}\" is not a positive interval"));
    }
    Ok(interval)
}

/// The longest name PostgreSQL keeps (NAMEDATALEN - 1 bytes).
pub const MAX_NAME_BYTES: usize = 63;

/// Parses `infor_comm.host_schema`: a schema name as written, without quotes. It is always
/// quoted where it is used, so any name is safe; only names PostgreSQL would cut are refused.
pub fn parse_host_schema(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("the schema name is empty".into());
    }
    if value.contains('\0') {
        return Err("the schema name contains a NUL byte".into());
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the schema name is {} bytes long; PostgreSQL keeps names up to {MAX_NAME_BYTES} bytes",
            value.len()
        ));
    }
    Ok(value.to_string())
}

/// The number of full days a client must have been thinking (`infor_comm.thinking_days`).
pub fn thinking_days() -> i32 {
    let raw = Setting::ThinkingDays.raw();
    parse_thinking_days(&raw).unwrap_or_else(|why| Setting::ThinkingDays.invalid(&raw, &why))
}

/// The time zone of the host tables' wall times and of the requests' `dt` (`infor_comm.timezone`).
pub fn timezone() -> String {
    let raw = Setting::Timezone.raw();
    parse_timezone(&raw).unwrap_or_else(|why| Setting::Timezone.invalid(&raw, &why))
}

/// How long a published request may wait for its reply before the client can be asked again.
pub fn response_timeout() -> Interval {
    let raw = Setting::ResponseTimeout.raw();
    parse_response_timeout(&raw).unwrap_or_else(|why| Setting::ResponseTimeout.invalid(&raw, &why))
}

/// The schema of the bank's host tables (`infor_comm.host_schema`).
pub fn host_schema() -> String {
    let raw = Setting::HostSchema.raw();
    parse_host_schema(&raw).unwrap_or_else(|why| Setting::HostSchema.invalid(&raw, &why))
}

/// How far after its receipt a push's `dt` may lie (`infor_comm.max_push_dt_ahead`), a month
/// counted as 30 days; `None` when that is more than any time can be apart.
pub fn max_push_dt_ahead() -> Option<chrono::Duration> {
    let raw = Setting::MaxPushDtAhead.raw();
    let interval = parse_response_timeout(&raw)
        .unwrap_or_else(|why| Setting::MaxPushDtAhead.invalid(&raw, &why));
    let days = i64::from(interval.months()) * 30 + i64::from(interval.days());
    chrono::Duration::try_days(days)?
        .checked_add(&chrono::Duration::microseconds(interval.micros()))
}

/// How long the payloads of closed requests and the bodies of inbound messages are kept
/// (`infor_comm.retention`).
pub fn retention() -> Interval {
    let raw = Setting::Retention.raw();
    parse_response_timeout(&raw).unwrap_or_else(|why| Setting::Retention.invalid(&raw, &why))
}

/// The share of thinking clients held out of the calls, in percent (`infor_comm.holdout_percent`;
/// 0, the default, holds out nobody).
pub fn holdout_percent() -> i32 {
    let raw = Setting::HoldoutPercent.raw();
    parse_holdout_percent(&raw).unwrap_or_else(|why| Setting::HoldoutPercent.invalid(&raw, &why))
}

/// What, with the organization_id, decides who is held out (`infor_comm.holdout_salt`).
pub fn holdout_salt() -> String {
    Setting::HoldoutSalt.raw()
}

/// Checks every setting, raising the error of the first bad one.
pub fn check_all() {
    thinking_days();
    timezone();
    response_timeout();
    host_schema();
}

/// The check hook shared by the settings.
///
/// Interactive sources (`SET`, and the validation that `ALTER DATABASE/ROLE … SET` runs) get an
/// immediate error. Values from other sources, and every value re-applied while the library
/// loads, are kept as they are: the accessors above fail on them when they are read.
unsafe fn check_setting(
    setting: Setting,
    newval: *mut *mut c_char,
    source: pg_sys::GucSource::Type,
) -> bool {
    if newval.is_null() || (*newval).is_null() {
        return true;
    }
    let value = CStr::from_ptr(*newval).to_string_lossy().into_owned();
    let why = match setting.validate(&value) {
        Ok(()) => return true,
        Err(why) => why,
    };
    if DEFINING.with(Cell::get) || source < pg_sys::GucSource::PGC_S_INTERACTIVE {
        return true;
    }
    let detail = format!("{why}; expected {}.", setting.expected());
    let hint = format!("The default is '{}'.", setting.default_text());
    pg_sys::GUC_check_errdetail_string = pstrdup(&detail);
    pg_sys::GUC_check_errhint_string = pstrdup(&hint);
    false
}

fn pstrdup(text: &str) -> *mut c_char {
    let owned = CString::new(text.replace('\0', "")).unwrap_or_default();
    // SAFETY: pstrdup copies the NUL-terminated string into the current memory context, which
    // is where PostgreSQL expects GUC check messages to live.
    unsafe { pg_sys::pstrdup(owned.as_ptr()) }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_thinking_days(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    check_setting(Setting::ThinkingDays, newval, source)
}

#[pg_guard]
unsafe extern "C-unwind" fn check_timezone(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    check_setting(Setting::Timezone, newval, source)
}

#[pg_guard]
unsafe extern "C-unwind" fn check_host_schema(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    check_setting(Setting::HostSchema, newval, source)
}

#[pg_guard]
unsafe extern "C-unwind" fn check_max_push_dt_ahead(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    check_setting(Setting::MaxPushDtAhead, newval, source)
}

#[pg_guard]
unsafe extern "C-unwind" fn check_holdout_percent(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    check_setting(Setting::HoldoutPercent, newval, source)
}

#[pg_guard]
unsafe extern "C-unwind" fn check_retention(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    check_setting(Setting::Retention, newval, source)
}

#[pg_guard]
unsafe extern "C-unwind" fn check_response_timeout(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    check_setting(Setting::ResponseTimeout, newval, source)
}

/// Defines the settings; called once from `_PG_init`.
pub fn register() {
    DEFINING.with(|defining| defining.set(true));
    // SAFETY: the hooks are #[pg_guard]ed and only read the value they are given.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"infor_comm.thinking_days",
            c"Full days a client must sit in the wizard before InforCRM is asked to call.",
            c"Counted in 24-hour days from the client's latest wizard status change. 1 to 3650.",
            &THINKING_DAYS,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_thinking_days),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"infor_comm.timezone",
            c"Time zone of the host tables' wall times and of the requests' dt.",
            c"A name from PostgreSQL's time zone database.",
            &TIMEZONE,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_timezone),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"infor_comm.response_timeout",
            c"How long a published request waits for its reply before the client may be asked again.",
            c"A positive interval.",
            &RESPONSE_TIMEOUT,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_response_timeout),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"infor_comm.host_schema",
            c"Schema of the bank's host tables that the daily job reads.",
            c"product_migration_clients, wizard_status_change_log, clients_back_system_ids and clientsnapshot are read from this schema only, never through the search_path.",
            &HOST_SCHEMA,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_host_schema),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"infor_comm.max_push_dt_ahead",
            c"How far after its receipt a push's dt may lie.",
            c"A push dated further ahead is rejected: a wrong clock (or a hostile sender) could otherwise outrank every later push. A positive interval.",
            &MAX_PUSH_DT_AHEAD,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_max_push_dt_ahead),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"infor_comm.retention",
            c"How long the payloads of closed requests and the bodies of inbound messages are kept.",
            c"Past it, infor_comm.apply_retention() blanks them and keeps their SHA-256, size, ids and outcomes. A positive interval.",
            &RETENTION,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_retention),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"infor_comm.holdout_percent",
            c"Percent of the thinking clients held out of the calls, to measure what the calls change.",
            c"0 to 50; 0 (the default) holds out nobody. A client is held out when a stable hash of infor_comm.holdout_salt and its organization_id falls in the first holdout_percent of the hash range.",
            &HOLDOUT_PERCENT,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_holdout_percent),
            None,
            None,
        );
        GucRegistry::define_string_guc(
            c"infor_comm.holdout_salt",
            c"Text that, with the organization_id, decides which clients are held out.",
            c"Another salt draws another hold-out group; the same salt keeps every client in its group.",
            &HOLDOUT_SALT,
            GucContext::Userset,
            GucFlags::default(),
        );
        pg_sys::MarkGUCPrefixReserved(c"infor_comm".as_ptr());
    }
    DEFINING.with(|defining| defining.set(false));
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn thinking_days_is_a_whole_number_from_1_to_3650() {
        assert_eq!(parse_thinking_days(" 7 "), Ok(7));
        assert_eq!(parse_thinking_days("3650"), Ok(3650));
        assert!(parse_thinking_days("0").is_err_and(|e| e.contains("outside the range 1 to 3650")));
        assert!(parse_thinking_days("seven").is_err_and(|e| e.contains("not a whole number")));
        assert!(parse_thinking_days("7.5").is_err());
    }

    #[test]
    fn host_schema_is_any_name_postgresql_keeps_whole() {
        assert_eq!(parse_host_schema("public"), Ok("public".into()));
        assert_eq!(
            parse_host_schema("bank app \"x\""),
            Ok("bank app \"x\"".into())
        );
        assert!(parse_host_schema("").is_err());
        assert!(parse_host_schema(&"s".repeat(63)).is_ok());
        assert!(parse_host_schema(&"s".repeat(64)).is_err_and(|e| e.contains("64 bytes")));
        assert!(parse_host_schema("a\0b").is_err());
    }

    #[test]
    fn every_setting_is_documented_with_its_default_and_the_version_that_brought_it() {
        let install = include_str!("../../docs/install.md");
        let changelog = include_str!("../../CHANGELOG.md");
        let upgrading = include_str!("../../docs/upgrading.md");
        for setting in [
            Setting::ThinkingDays,
            Setting::Timezone,
            Setting::ResponseTimeout,
            Setting::HostSchema,
            Setting::MaxPushDtAhead,
            Setting::Retention,
            Setting::HoldoutPercent,
            Setting::HoldoutSalt,
        ] {
            // An empty default is written as the SQL literal ''.
            let default = match setting.default_text() {
                "" => "''",
                text => text,
            };
            let row = format!("| `{}` | `{default}` |", setting.name());
            assert!(install.contains(&row), "docs/install.md has no row {row}");
            // docs/upgrading.md says which version brought it, and that version's notes say so.
            let row = upgrading
                .lines()
                .find(|line| line.starts_with(&format!("| `{}` | ", setting.name())))
                .unwrap_or_else(|| panic!("docs/upgrading.md has no row for {}", setting.name()));
            let version = row.split('|').nth(2).map(str::trim).unwrap_or_default();
            assert!(
                row.ends_with(&format!("| `{default}` |")),
                "docs/upgrading.md's row of {} does not give its default",
                setting.name()
            );
            let notes = changelog
                .split(&format!("\n## {version}"))
                .nth(1)
                .and_then(|rest| rest.split("\n## ").next())
                .unwrap_or_else(|| panic!("CHANGELOG.md has no section {version}"));
            assert!(
                notes.contains(&format!("`{}`", setting.name())),
                "CHANGELOG.md's {version} does not name {}, new in {version}",
                setting.name()
            );
        }
    }

    #[test]
    fn every_setting_has_a_name_a_default_and_an_explanation() {
        for setting in [
            Setting::ThinkingDays,
            Setting::Timezone,
            Setting::ResponseTimeout,
            Setting::HostSchema,
            Setting::MaxPushDtAhead,
            Setting::Retention,
            Setting::HoldoutPercent,
            Setting::HoldoutSalt,
        ] {
            assert!(setting.name().starts_with("infor_comm."));
            assert!(!setting.expected().is_empty());
            // Only the salt may be empty by default.
            assert!(!setting.default_text().is_empty() || setting == Setting::HoldoutSalt);
        }
        assert_eq!(
            parse_thinking_days(Setting::ThinkingDays.default_text()),
            Ok(DEFAULT_THINKING_DAYS)
        );
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test(error = "invalid value for parameter \"infor_comm.thinking_days\": \"seven\"")]
    fn a_bad_thinking_days_is_refused_with_its_name_and_value() {
        run("SET LOCAL infor_comm.thinking_days = 'seven'");
    }

    #[pg_test(error = "invalid value for parameter \"infor_comm.timezone\": \"Mars/Olympus\"")]
    fn a_bad_timezone_is_refused_with_its_name_and_value() {
        run("SET LOCAL infor_comm.timezone = 'Mars/Olympus'");
    }

    #[pg_test(error = "invalid value for parameter \"infor_comm.response_timeout\": \"0\"")]
    fn a_zero_response_timeout_is_refused_with_its_name_and_value() {
        run("SET LOCAL infor_comm.response_timeout = '0'");
    }

    #[pg_test(error = "invalid configuration parameter name \"infor_comm.thinkingdays\"")]
    fn a_misspelt_setting_is_refused_once_the_library_is_loaded() {
        text("SELECT infor_comm.setting_timezone()");
        run("SET LOCAL infor_comm.thinkingdays = 5");
    }

    #[pg_test(error = "invalid value for parameter \"infor_comm.host_schema\": \"\"")]
    fn an_empty_host_schema_is_refused() {
        run("SET LOCAL infor_comm.host_schema = ''");
    }
}
