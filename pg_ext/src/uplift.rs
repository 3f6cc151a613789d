//! Does calling a thinking client make it migrate? `infor_comm.uplift` compares the clients the
//! daily job asked with those it held out ([`crate::holdout`]), first selected in a window: the
//! share of each group that reached success, the difference (the uplift) with its 95%
//! confidence interval, and the asked group by the first-level reaction of the call.
//!
//! Two measures of success: `status`, the client's `product_migration_clients.status` now is one
//! of `success_statuses` (default: anything but `in_wizard`); `history`, its wizard status
//! changed after the day it was selected and within `horizon` of it
//! (`wizard_status_change_log`, wall times in `infor_comm.timezone`).
//!
//! The interval of a difference of two proportions: Wald's where both groups have at least 30
//! successes and 30 failures, else Newcombe's hybrid score interval (his method 10, from the two
//! Wilson score intervals), which keeps its coverage for small groups and rates near 0 or 1.

use crate::host_tables::HostTables;
use crate::reports::{DECISIVE_REQUEST_FIRST, FIRST_LEVEL_REACTION};
use pgrx::datum::Interval;
use pgrx::prelude::*;

/// The normal quantile of a two-sided 95% interval.
const Z: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of `successes` out of `n`: `(low, high)`; `(0, 1)` for an empty
/// group.
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (s, n) = (successes as f64, n as f64);
    let p = s / n;
    let z2 = Z * Z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// How an interval of a difference was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Wald: both groups have at least 30 successes and 30 failures.
    Wald,
    /// Newcombe's hybrid score interval (method 10).
    Newcombe,
}

impl Method {
    /// As the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Method::Wald => "Wald",
            Method::Newcombe => "Newcombe (hybrid score)",
        }
    }
}

/// The difference `s1/n1 - s2/n2` with its 95% interval and the method used; `None` when a
/// group is empty.
pub fn difference(s1: u64, n1: u64, s2: u64, n2: u64) -> Option<(f64, f64, f64, Method)> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (p1, p2) = (s1 as f64 / n1 as f64, s2 as f64 / n2 as f64);
    let d = p1 - p2;
    let large = [s1, n1 - s1, s2, n2 - s2].iter().all(|&count| count >= 30);
    if large {
        let se = (p1 * (1.0 - p1) / n1 as f64 + p2 * (1.0 - p2) / n2 as f64).sqrt();
        return Some((d, d - Z * se, d + Z * se, Method::Wald));
    }
    let (l1, u1) = wilson(s1, n1);
    let (l2, u2) = wilson(s2, n2);
    let low = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let high = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    Some((d, low, high, Method::Newcombe))
}

/// The counts behind the report, for the host schema in force: one row per group (`asked`,
/// `held out`; reaction NULL) and one per first-level reaction of the asked group, each with
/// its clients and its successes by status and by history. `$1`, `$2`: the window of first
/// selection (NULL: unbounded); `$3`: the horizon; `$4`: the success statuses (NULL: anything
/// but `in_wizard`).
pub fn counts_sql(host: &HostTables) -> String {
    format!(
        "WITH asked AS (
    SELECT t.organization_id, pg_catalog.min(t.time_create)::date AS selected_on
      FROM infor_comm.infor_communication_task t
     GROUP BY t.organization_id
), assigned AS (
    -- Each client in the group it was first assigned to: held out, or asked.
    SELECT coalesce(h.organization_id, a.organization_id) AS organization_id,
           CASE WHEN h.organization_id IS NOT NULL
                     AND (a.selected_on IS NULL OR h.first_selected_on <= a.selected_on)
                THEN 'held out' ELSE 'asked' END AS grp,
           CASE WHEN h.organization_id IS NOT NULL
                     AND (a.selected_on IS NULL OR h.first_selected_on <= a.selected_on)
                THEN h.first_selected_on ELSE a.selected_on END AS selected_on
      FROM asked a
      FULL JOIN infor_comm.holdout h ON h.organization_id = a.organization_id
), cohort AS (
    SELECT s.*
      FROM assigned s
     WHERE s.selected_on BETWEEN coalesce($1::date, '-infinity'::date) AND coalesce($2::date, 'infinity'::date)
), judged AS (
    SELECT c.grp,
           CASE WHEN c.grp = 'asked' THEN coalesce(r.first_level, '-') END AS reaction,
           coalesce(p.success, false) AS status_success,
           EXISTS (SELECT 1 FROM {log} w
                    WHERE w.organization_id = c.organization_id
                      AND w.change_date >= (c.selected_on + 1)::timestamp
                      AND w.change_date < c.selected_on::timestamp + $3) AS history_success
      FROM cohort c
      -- The first-level reaction of the client's decisive request: the one that created a task,
      -- else the latest.
      LEFT JOIN LATERAL (
            SELECT {FIRST_LEVEL_REACTION} AS first_level
              FROM infor_comm.infor_communication_task t
             WHERE t.organization_id = c.organization_id
             ORDER BY {DECISIVE_REQUEST_FIRST}
             LIMIT 1) r ON true
      LEFT JOIN LATERAL (
            SELECT CASE WHEN $4::text[] IS NULL THEN m.status <> 'in_wizard'
                        ELSE m.status = ANY ($4::text[]) END AS success
              FROM {clients} m
             WHERE m.organization_id = c.organization_id
             LIMIT 1) p ON true
)
SELECT j.grp, j.reaction, pg_catalog.count(*),
       pg_catalog.count(*) FILTER (WHERE j.status_success),
       pg_catalog.count(*) FILTER (WHERE j.history_success)
  FROM judged j
 GROUP BY GROUPING SETS ((j.grp), (j.grp, j.reaction))
HAVING j.grp = 'asked' OR j.reaction IS NULL
 ORDER BY j.grp, j.reaction NULLS FIRST",
        clients = host.name("product_migration_clients"),
        log = host.name("wizard_status_change_log"),
    )
}

/// One row of the report: group, reaction, measure, clients, successes, rate, uplift, its
/// interval and the method.
type Row = (
    String,
    Option<String>,
    String,
    Option<i64>,
    Option<i64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<String>,
);

/// Rounds a rate to 4 decimals (a hundredth of a percent).
fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

/// The group's row for one measure.
fn group_row(
    grp: &str,
    reaction: Option<&str>,
    measure: &str,
    clients: i64,
    successes: i64,
) -> Row {
    (
        grp.to_string(),
        reaction.map(str::to_string),
        measure.to_string(),
        Some(clients),
        Some(successes),
        (clients > 0).then(|| round4(successes as f64 / clients as f64)),
        None,
        None,
        None,
        None,
    )
}

/// What the calls changed: for the clients first selected from `asked_from` to `asked_to`, by
/// group (`asked`, `held out`) and measure (`status`, `history`), the clients, the successes
/// and the rate; a row `uplift` per measure with the difference asked minus held out, its 95%
/// interval and the method; and the asked group by first-level reaction of the call.
#[pg_extern(stable, name = "uplift")]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn uplift(
    asked_from: default!(Option<pgrx::datum::Date>, "NULL"),
    asked_to: default!(Option<pgrx::datum::Date>, "NULL"),
    horizon: default!(Interval, "'30 days'"),
    success_statuses: default!(Option<Vec<Option<String>>>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(grp, String),
        name!(reaction, Option<String>),
        name!(measure, String),
        name!(clients, Option<i64>),
        name!(successes, Option<i64>),
        name!(rate, Option<f64>),
        name!(uplift, Option<f64>),
        name!(ci_low, Option<f64>),
        name!(ci_high, Option<f64>),
        name!(method, Option<String>),
    ),
> {
    crate::entry_checks();
    let host = HostTables::resolve();
    let counts: Vec<(String, Option<String>, i64, i64, i64)> = Spi::connect(|client| {
        client
            .select(
                &counts_sql(&host),
                None,
                &[
                    asked_from.into(),
                    asked_to.into(),
                    horizon.into(),
                    success_statuses.into(),
                ],
            )?
            .map(|row| {
                Ok((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?,
                    row.get::<i64>(3)?.unwrap_or(0),
                    row.get::<i64>(4)?.unwrap_or(0),
                    row.get::<i64>(5)?.unwrap_or(0),
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .unwrap_or_else(|e| crate::errors::spi_fault("reading the groups", e));
    let group = |name: &str| {
        counts
            .iter()
            .find(|(grp, reaction, ..)| grp == name && reaction.is_none())
            .map_or((0, 0, 0), |(_, _, n, status, history)| {
                (*n, *status, *history)
            })
    };
    let (asked, held_out) = (group("asked"), group("held out"));
    let mut rows: Vec<Row> = Vec::new();
    for (measure, pick) in [
        (
            "status",
            (|c: (i64, i64, i64)| c.1) as fn((i64, i64, i64)) -> i64,
        ),
        ("history", |c: (i64, i64, i64)| c.2),
    ] {
        rows.push(group_row("asked", None, measure, asked.0, pick(asked)));
        rows.push(group_row(
            "held out",
            None,
            measure,
            held_out.0,
            pick(held_out),
        ));
        let diff = difference(
            pick(asked) as u64,
            asked.0 as u64,
            pick(held_out) as u64,
            held_out.0 as u64,
        );
        rows.push((
            "uplift".into(),
            None,
            measure.into(),
            None,
            None,
            None,
            diff.map(|d| round4(d.0)),
            diff.map(|d| round4(d.1)),
            diff.map(|d| round4(d.2)),
            diff.map(|d| d.3.label().to_string()),
        ));
        for (_, reaction, n, status, history) in counts
            .iter()
            .filter(|(grp, reaction, ..)| grp == "asked" && reaction.is_some())
        {
            rows.push(group_row(
                "asked",
                reaction.as_deref(),
                measure,
                *n,
                pick((*n, *status, *history)),
            ));
        }
    }
    TableIterator::new(rows)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.uplift(date, date, interval, text[]) IS
    'What the calls changed: for the clients first selected (asked or held out) in the window, each group''s successes within the horizon by status and by history, the uplift (asked minus held out) with its 95% interval (Wald, or Newcombe''s hybrid score for small groups), and the asked group by first-level reaction.';
"#,
    name = "uplift_comment",
    requires = [uplift],
);

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.000_05
    }

    #[test]
    fn newcombes_worked_example_is_reproduced() {
        // Newcombe (1998), Statistics in Medicine 17:873-890, table II, example (a): 56/70
        // against 48/80; method 10 gives 0.0524 to 0.3339 for a difference of 0.2.
        let (d, low, high, method) = difference(56, 70, 48, 80).expect("both groups");
        assert_eq!(method, Method::Newcombe);
        assert!(close(d, 0.2));
        assert!(close((low * 10_000.0).round() / 10_000.0, 0.0524), "{low}");
        assert!(
            close((high * 10_000.0).round() / 10_000.0, 0.3339),
            "{high}"
        );
        // Example (h) of the same table: 0/10 against 0/20, from -0.1611 to 0.2775.
        let (_, low, high, _) = difference(0, 10, 0, 20).expect("both groups");
        assert!(close((low * 10_000.0).round() / 10_000.0, -0.1611), "{low}");
        assert!(
            close((high * 10_000.0).round() / 10_000.0, 0.2775),
            "{high}"
        );
    }

    #[test]
    fn the_wilson_interval_is_the_textbook_one() {
        // 81 of 263 (Wilson 1927's style of example): 0.2553 to 0.3662, computed by hand.
        let (low, high) = wilson(81, 263);
        assert!(
            (low - 0.2553).abs() < 0.0001 && (high - 0.3662).abs() < 0.0001,
            "{low} {high}"
        );
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn large_groups_use_wald() {
        let (d, low, high, method) = difference(300, 1000, 200, 1000).expect("groups");
        assert_eq!(method, Method::Wald);
        let se = (0.3f64 * 0.7 / 1000.0 + 0.2 * 0.8 / 1000.0).sqrt();
        assert!(close(d, 0.1) && close(low, 0.1 - Z * se) && close(high, 0.1 + Z * se));
        assert!(difference(1, 0, 1, 2).is_none());
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    /// The 95% interval of p1 - p2 by Newcombe's method 10, written out again from the Wilson
    /// limits' closed form, apart from the code under test.
    fn newcombe_by_hand(s1: f64, n1: f64, s2: f64, n2: f64) -> (f64, f64) {
        let z = 1.959_963_984_540_054_f64;
        let limits = |s: f64, n: f64| {
            let p = s / n;
            let root = z * (z * z + 4.0 * n * p * (1.0 - p)).sqrt();
            let denominator = 2.0 * (n + z * z);
            (
                (2.0 * n * p + z * z - root) / denominator,
                (2.0 * n * p + z * z + root) / denominator,
            )
        };
        let ((l1, u1), (l2, u2)) = (limits(s1, n1), limits(s2, n2));
        let (p1, p2) = (s1 / n1, s2 / n2);
        (
            p1 - p2 - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
            p1 - p2 + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
        )
    }

    fn report(args: &str) -> Vec<String> {
        Spi::connect(|c| {
            c.select(
                &format!(
                    "SELECT concat_ws(' ', grp, coalesce(reaction, '·'), measure, clients, successes,
                                      rate, uplift, ci_low, ci_high, method)
                       FROM infor_comm.uplift({args})"
                ),
                None,
                &[],
            )?
            .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
        })
        .expect("uplift")
    }

    #[pg_test]
    fn the_uplift_of_ten_asked_against_ten_held_out_worked_out_by_hand() {
        host_tables();
        // Ten asked on 2026-11-20: A1-A4 reached ("Дозвон - планирует миграцию"), three of them
        // migrated; A5-A10 not reached ("Недозвон"), three of them migrated.
        for i in 1..=10 {
            let (reaction, status) = match i {
                1..=3 => ("Дозвон - планирует миграцию", "migrated"),
                4 => ("Дозвон - планирует миграцию", "in_wizard"),
                5..=7 => ("Недозвон", "migrated"),
                _ => ("Недозвон", "in_wizard"),
            };
            run(&format!(
                "INSERT INTO product_migration_clients VALUES ('A{i}', 'M-A{i}', '{status}', 'OK');
                 INSERT INTO infor_comm.infor_communication_task
                        (id, vtbc_request_id, organization_id, request_date, status_code, task_status,
                         first_level_client_reaction, time_create)
                 VALUES ('t-A{i}', 'r-A{i}', 'A{i}', 'x', '0', '3', '{reaction}', '2026-11-20 09:00:00')"
            ));
        }
        // Ten held out the same day, two of them migrated.
        for i in 1..=10 {
            let status = if i <= 2 { "migrated" } else { "in_wizard" };
            run(&format!(
                "INSERT INTO product_migration_clients VALUES ('H{i}', 'M-H{i}', '{status}', 'OK');
                 INSERT INTO infor_comm.holdout
                        (organization_id, first_selected_on, first_selected_at, holdout_percent, holdout_salt)
                 VALUES ('H{i}', '2026-11-20', '2026-11-20 09:00:00+03', 50, 's')"
            ));
        }
        // The history: a wizard status change within 30 days after the day of selection counts
        // (A1-A5, H1); on the day itself (A6) or past the horizon (A7) it does not.
        run("INSERT INTO wizard_status_change_log VALUES
                 ('A1', 'TO_SIGN', '2026-11-25 10:00'), ('A2', 'TO_SIGN', '2026-11-21 00:00'),
                 ('A3', 'TO_SIGN', '2026-12-19 23:59'), ('A4', 'TO_SIGN', '2026-11-30 10:00'),
                 ('A5', 'TO_SIGN', '2026-12-01 10:00'), ('A6', 'TO_SIGN', '2026-11-20 18:00'),
                 ('A7', 'TO_SIGN', '2026-12-20 00:00'), ('H1', 'TO_SIGN', '2026-11-25 10:00')");
        let (status_low, status_high) = newcombe_by_hand(6.0, 10.0, 2.0, 10.0);
        let (history_low, history_high) = newcombe_by_hand(5.0, 10.0, 1.0, 10.0);
        let round = |v: f64| (v * 10_000.0).round() / 10_000.0;
        assert_eq!(
            report("'2026-11-01', '2026-11-30'"),
            vec![
                "asked · status 10 6 0.6".to_string(),
                "held out · status 10 2 0.2".to_string(),
                format!(
                    "uplift · status 0.4 {} {} Newcombe (hybrid score)",
                    round(status_low),
                    round(status_high)
                ),
                "asked Дозвон - планирует миграцию status 4 3 0.75".to_string(),
                "asked Недозвон status 6 3 0.5".to_string(),
                "asked · history 10 5 0.5".to_string(),
                "held out · history 10 1 0.1".to_string(),
                format!(
                    "uplift · history 0.4 {} {} Newcombe (hybrid score)",
                    round(history_low),
                    round(history_high)
                ),
                "asked Дозвон - планирует миграцию history 4 4 1".to_string(),
                "asked Недозвон history 6 1 0.1667".to_string(),
            ]
        );
        // Success as the bank defines it: only 'migrated' (the same here), and a window that
        // holds nobody.
        assert_eq!(
            report("'2026-11-01', '2026-11-30', success_statuses => ARRAY['migrated']")[0],
            "asked · status 10 6 0.6"
        );
        assert_eq!(
            report("'2026-12-01', '2026-12-31'")[0..3],
            [
                "asked · status 0 0".to_string(),
                "held out · status 0 0".to_string(),
                "uplift · status".to_string()
            ]
        );
    }
}
