//! When the daily job was last due, from its pg_cron schedule: `health` expects a successful run
//! since then, not within a fixed 25 hours (which raised a problem every weekend for a
//! schedule of weekdays, `30 6 * * 1-5`).
//!
//! The schedule is pg_cron's five fields (minute, hour, day of the month, month, day of the
//! week), each `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a list of those;
//! months and days may be named (`jan`, `mon`); 7 is Sunday too. As in cron, when both days are
//! restricted, a time matches either. `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight` and `@hourly` stand for their schedules. Anything else (pg_cron's `N seconds`,
//! `$` for the month's last day) is not understood, and `health` falls back to its 25 hours.

use chrono::{Datelike, NaiveDateTime, Timelike};
use pgrx::prelude::*;

/// One field of a schedule: which values of its unit match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    allowed: Vec<bool>,
    /// Written as `*` (for the two day fields, that changes how they combine).
    any: bool,
}

impl Field {
    fn matches(&self, value: u32) -> bool {
        self.allowed.get(value as usize).copied().unwrap_or(false)
    }
}

/// A five-field cron schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: Field,
    hour: Field,
    day_of_month: Field,
    month: Field,
    day_of_week: Field,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses one value of a field: a number or, where `names` are given, a name (numbered from
/// `first`).
fn value(text: &str, names: &[&str], first: u32) -> Option<u32> {
    if let Ok(number) = text.parse::<u32>() {
        return Some(number);
    }
    let lower = text.to_ascii_lowercase();
    names
        .iter()
        .position(|name| *name == lower)
        .map(|index| index as u32 + first)
}

/// Parses a field whose values run from `low` to `high`.
fn field(text: &str, low: u32, high: u32, names: &[&str]) -> Option<Field> {
    let mut allowed = vec![false; high as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (start, end) = if range == "*" {
            (low, high)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, low)?, value(b, names, low)?)
        } else {
            let single = value(range, names, low)?;
            // "5/10" counts from 5 to the end, as cron does.
            (single, if part.contains('/') { high } else { single })
        };
        if start < low || end > high || start > end {
            return None;
        }
        let mut at = start;
        while at <= end {
            allowed[at as usize] = true;
            at += step;
        }
    }
    Some(Field {
        allowed,
        any: text == "*",
    })
}

impl Schedule {
    /// Parses a schedule; `None` when it is not one this module understands.
    pub fn parse(text: &str) -> Option<Schedule> {
        let text = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day_of_month, month, day_of_week] = fields.as_slice() else {
            return None;
        };
        let mut day_of_week = field(day_of_week, 0, 7, &DAYS)?;
        // 7 is Sunday too.
        if day_of_week.allowed[7] {
            day_of_week.allowed[0] = true;
        }
        Some(Schedule {
            minute: field(minute, 0, 59, &[])?,
            hour: field(hour, 0, 23, &[])?,
            day_of_month: field(day_of_month, 1, 31, &[])?,
            month: field(month, 1, 12, &MONTHS)?,
            day_of_week,
        })
    }

    /// True when the schedule runs on this day.
    fn runs_on(&self, day: &NaiveDateTime) -> bool {
        if !self.month.matches(day.month()) {
            return false;
        }
        let by_month_day = self.day_of_month.matches(day.day());
        let by_week_day = self
            .day_of_week
            .matches(day.weekday().num_days_from_sunday());
        match (self.day_of_month.any, self.day_of_week.any) {
            (true, true) => true,
            (true, false) => by_week_day,
            (false, true) => by_month_day,
            (false, false) => by_month_day || by_week_day,
        }
    }

    /// The latest minute at or before `at` when the schedule runs, within the 366 days before
    /// it; `None` when there is none.
    pub fn previous(&self, at: NaiveDateTime) -> Option<NaiveDateTime> {
        let at = at.with_second(0)?.with_nanosecond(0)?;
        let mut day = at.date();
        for days_back in 0..=366 {
            let start = day.and_hms_opt(0, 0, 0)?;
            if self.runs_on(&start) {
                let last_hour = if days_back == 0 { at.hour() } else { 23 };
                for hour in (0..=last_hour).rev().filter(|h| self.hour.matches(*h)) {
                    let last_minute = if days_back == 0 && hour == at.hour() {
                        at.minute()
                    } else {
                        59
                    };
                    if let Some(minute) = (0..=last_minute).rev().find(|m| self.minute.matches(*m))
                    {
                        return day.and_hms_opt(hour, minute, 0);
                    }
                }
            }
            day = day.pred_opt()?;
        }
        None
    }
}

/// When the pg_cron schedule `schedule` was last due at or before `at` (wall time in pg_cron's
/// time zone); NULL when the schedule is not one this function understands, or never ran in the
/// year before `at`.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn cron_previous_run(schedule: &str, at: Timestamp) -> Option<Timestamp> {
    let at =
        chrono::NaiveDate::from_ymd_opt(at.year(), u32::from(at.month()), u32::from(at.day()))?
            .and_hms_opt(u32::from(at.hour()), u32::from(at.minute()), 0)?;
    let due = Schedule::parse(schedule)?.previous(at)?;
    Timestamp::new(
        due.year(),
        due.month() as u8,
        due.day() as u8,
        due.hour() as u8,
        due.minute() as u8,
        0.0,
    )
    .ok()
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.cron_previous_run(text, timestamp) IS
    'When a pg_cron schedule (five fields, or @daily and the like) was last due at or before a wall time; NULL when the schedule is not understood. What health expects a successful daily run since.';
"#,
    name = "cron_previous_run_comment",
    requires = [cron_previous_run],
);

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("a time")
    }

    fn previous(schedule: &str, now: &str) -> Option<String> {
        Schedule::parse(schedule)
            .and_then(|s| s.previous(at(now)))
            .map(|t| t.format("%Y-%m-%d %H:%M %a").to_string())
    }

    #[test]
    fn the_readmes_weekday_schedule_was_last_due_on_friday_all_weekend() {
        // 2026-12-05 is a Saturday.
        assert_eq!(
            previous("30 6 * * 1-5", "2026-12-05 12:00"),
            Some("2026-12-04 06:30 Fri".into())
        );
        assert_eq!(
            previous("30 6 * * 1-5", "2026-12-07 06:29"),
            Some("2026-12-04 06:30 Fri".into())
        );
        assert_eq!(
            previous("30 6 * * 1-5", "2026-12-07 06:30"),
            Some("2026-12-07 06:30 Mon".into())
        );
        assert_eq!(
            previous("30 6 * * mon-fri", "2026-12-06 23:59"),
            Some("2026-12-04 06:30 Fri".into())
        );
    }

    #[test]
    fn fields_lists_ranges_steps_names_and_shorthands() {
        assert_eq!(
            previous("0 9 * * *", "2026-12-07 08:59"),
            Some("2026-12-06 09:00 Sun".into())
        );
        assert_eq!(
            previous("*/15 * * * *", "2026-12-07 08:59"),
            Some("2026-12-07 08:45 Mon".into())
        );
        assert_eq!(
            previous("0 9,21 * * *", "2026-12-07 20:00"),
            Some("2026-12-07 09:00 Mon".into())
        );
        assert_eq!(
            previous("0 0 1 jan *", "2026-12-07 00:00"),
            Some("2026-01-01 00:00 Thu".into())
        );
        assert_eq!(
            previous("@daily", "2026-12-07 08:00"),
            Some("2026-12-07 00:00 Mon".into())
        );
        assert_eq!(
            previous("@weekly", "2026-12-07 08:00"),
            Some("2026-12-06 00:00 Sun".into())
        );
        assert_eq!(
            previous("0 0 * * 7", "2026-12-07 08:00"),
            Some("2026-12-06 00:00 Sun".into())
        );
        assert_eq!(
            previous("5/20 * * * *", "2026-12-07 08:50"),
            Some("2026-12-07 08:45 Mon".into())
        );
        // Both days restricted: either matches (the 1st, or a Monday).
        assert_eq!(
            previous("0 0 1 * 1", "2026-12-03 00:00"),
            Some("2026-12-01 00:00 Tue".into())
        );
        assert_eq!(
            previous("0 0 1 * 1", "2026-12-08 00:00"),
            Some("2026-12-07 00:00 Mon".into())
        );
    }

    #[test]
    fn what_is_not_understood_is_none() {
        for schedule in [
            "",
            "10 seconds",
            "0 9 * *",
            "61 * * * *",
            "0 9 $ * *",
            "0 9 * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
        ] {
            assert_eq!(Schedule::parse(schedule), None, "{schedule}");
        }
        // February 30th never comes.
        assert_eq!(previous("0 0 30 2 *", "2026-12-07 00:00"), None);
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    fn problems() -> String {
        text("SELECT array_to_string(problems, ' | ') FROM infor_comm.health").unwrap_or_default()
    }

    /// A successful run recorded as started at `started` (UTC).
    fn succeeded_at(started: &str) {
        run(&format!(
            "INSERT INTO infor_comm.daily_runs (started_at, as_of, run_by, backend_pid, status, finished_at, sent, skipped)
             VALUES ('{started}+00', '{started}+00', 'test', 0, 'succeeded', '{started}+00'::timestamptz + interval '10 seconds', 1, 0)"
        ));
    }

    #[pg_test]
    fn health_expects_a_run_since_the_job_was_last_due_not_within_25_hours() {
        run("CREATE EXTENSION IF NOT EXISTS pg_cron");
        // A yearly job that ran when it was due: months ago, and nothing is wrong.
        let job = int("SELECT infor_comm.schedule_daily('0 0 1 1 *')");
        let due = text("SELECT to_char(infor_comm.cron_previous_run('0 0 1 1 *', (now() AT TIME ZONE 'GMT')::timestamp), 'YYYY-MM-DD HH24:MI')")
            .expect("a due time");
        succeeded_at(&format!("{due}:05"));
        assert!(
            !problems().contains("no successful daily run"),
            "{}",
            problems()
        );
        // Due three hours ago, and the last success long before: said, with when it was due.
        let three_hours_ago = text(
            "SELECT format('0 %s * * *', extract(hour FROM now() AT TIME ZONE 'GMT' - interval '3 hours')::int)",
        )
        .expect("a schedule");
        run(&format!(
            "SELECT cron.alter_job({job}, schedule => '{three_hours_ago}')"
        ));
        assert!(
            problems().contains("no successful daily run since it was due at"),
            "{}",
            problems()
        );
        // Without a job (another scheduler runs run_daily), the 25 hours again.
        run("SELECT infor_comm.unschedule_daily()");
        assert!(
            problems().contains("no successful daily run in the last 25 hours"),
            "{}",
            problems()
        );
    }
}
