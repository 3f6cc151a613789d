//! The hold-out group: with `infor_comm.holdout_percent` above 0, the daily job asks InforCRM to
//! call only the thinking clients outside it, and records each held-out client once
//! (`infor_comm.holdout`, `pg_ext/sql/holdout.sql`), so that a report can compare the two groups.
//!
//! A client is held out when the SHA-256 of `infor_comm.holdout_salt` and its organization_id,
//! read as a number, falls in the first `holdout_percent` hundredths of its range
//! ([`is_held_out`]): the same client is in the same group every day for a given salt, and the
//! share held out is the percent asked for, within chance.

use pgrx::prelude::*;
use sha2::{Digest, Sha256};

extension_sql_file!(
    "../sql/holdout.sql",
    name = "holdout_table",
    requires = ["roles"]
);

/// The hundredth of the hash range (0 to 99) that `organization_id` falls in for `salt`. The
/// salt goes first, with its length, so that no pair of salt and id hashes like another.
pub fn bucket(salt: &str, organization_id: &str) -> u8 {
    let mut hasher = Sha256::new();
    hasher.update((salt.len() as u64).to_be_bytes());
    hasher.update(salt.as_bytes());
    hasher.update(organization_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The top of a 64-bit number times 100: a bucket from 0 to 99, each 1/100 of the range.
    ((u128::from(u64::from_be_bytes(first)) * 100) >> 64) as u8
}

/// Whether `organization_id` is held out at `percent` (0 to 50) for `salt`.
pub fn is_held_out(salt: &str, organization_id: &str, percent: i32) -> bool {
    percent > 0 && i32::from(bucket(salt, organization_id)) < percent
}

/// The group `organization_id` is in with the hold-out settings in force: `held out` or
/// `asked`, what `thinking_clients` shows.
pub fn group(organization_id: &str) -> &'static str {
    if is_held_out(
        &crate::gucs::holdout_salt(),
        organization_id,
        crate::gucs::holdout_percent(),
    ) {
        "held out"
    } else {
        "asked"
    }
}

/// The group of `organization_id` with the hold-out settings in force: `held out` or `asked`
/// (as `thinking_clients` shows it).
#[pg_extern(stable, parallel_safe, name = "holdout_group")]
#[search_path(pg_catalog, pg_temp)]
fn holdout_group(organization_id: &str) -> &'static str {
    group(organization_id)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.holdout_group(text) IS
    'The group of a client with the hold-out settings in force (infor_comm.holdout_percent, infor_comm.holdout_salt): held out or asked.';
"#,
    name = "holdout_group_comment",
    requires = [holdout_group],
);

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn ids(n: usize) -> impl Iterator<Item = String> {
        (0..n).map(|i| format!("ORG{i:07}"))
    }

    #[test]
    fn the_share_held_out_is_the_percent_asked_for_over_100000_ids() {
        for salt in ["", "2026 spring", "a different salt"] {
            for percent in [1, 5, 10, 25, 50] {
                let held = ids(100_000)
                    .filter(|id| is_held_out(salt, id, percent))
                    .count() as f64;
                let share = held / 1000.0;
                // Within 0.5 points: more than four standard deviations at 50%.
                assert!(
                    (share - f64::from(percent)).abs() < 0.5,
                    "salt {salt:?}, {percent}%: {share}%"
                );
            }
        }
    }

    #[test]
    fn a_client_stays_in_its_group_for_a_salt_and_a_larger_percent_keeps_the_smaller_ones_group() {
        for id in ids(20_000) {
            let bucket = bucket("s", &id);
            assert_eq!(bucket, super::bucket("s", &id), "stable");
            assert!(bucket < 100);
            // Held out at 10% means held out at 20% too: raising the share only adds clients.
            if is_held_out("s", &id, 10) {
                assert!(is_held_out("s", &id, 20));
            }
        }
        assert!(
            ids(1000).all(|id| !is_held_out("s", &id, 0)),
            "0 holds out nobody"
        );
    }

    #[test]
    fn another_salt_draws_another_group() {
        let same = ids(10_000)
            .filter(|id| is_held_out("a", id, 10) == is_held_out("b", id, 10))
            .count();
        // Two independent draws of 10% agree on about 82% of the clients.
        assert!((7_900..8_500).contains(&same), "{same}");
        // The salt's length is hashed too: ("ab", "c…") is not ("a", "bc…").
        assert_ne!(
            (0..200)
                .map(|i| bucket("ab", &format!("c{i}")))
                .collect::<Vec<_>>(),
            (0..200)
                .map(|i| bucket("a", &format!("bc{i}")))
                .collect::<Vec<_>>()
        );
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    const CLIENTS: usize = 40;

    fn ids() -> Vec<String> {
        (0..CLIENTS).map(|i| format!("HOLD{i:03}")).collect()
    }

    fn held_out_by_hash() -> Vec<String> {
        ids()
            .into_iter()
            .filter(|id| crate::holdout::is_held_out("spring", id, 50))
            .collect()
    }

    fn strings(sql: &str) -> Vec<String> {
        text(&format!(
            "SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM ({sql}) q (x)"
        ))
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
    }

    #[pg_test]
    fn held_out_clients_get_no_request_and_are_recorded_once_with_their_first_day() {
        host_tables();
        for id in ids() {
            client(&id, "OK", "2026-11-01 09:00:00");
        }
        run("SET LOCAL infor_comm.holdout_percent = 50");
        run("SET LOCAL infor_comm.holdout_salt = 'spring'");
        let held = held_out_by_hash();
        assert!(
            (10..=30).contains(&held.len()),
            "about half of {CLIENTS}: {held:?}"
        );
        // The preview says who would be held out.
        assert_eq!(
            strings(&format!(
                "SELECT organization_id::text FROM infor_comm.thinking_clients_at('{AS_OF}')
                  WHERE holdout_group = 'held out'"
            )),
            held
        );
        assert_eq!(enqueue(AS_OF) as usize, CLIENTS - held.len());
        assert_eq!(
            strings("SELECT organization_id::text FROM infor_comm.holdout"),
            held
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.infor_communication_task t
                   JOIN infor_comm.holdout h USING (organization_id)"),
            0,
            "no task row for a held-out client"
        );
        // The next day they are thinking again, and held out again: recorded once, from their
        // first day.
        assert_eq!(enqueue("2026-11-21 12:00:00+03"), 0);
        assert_eq!(
            text(
                "SELECT count(*) || ' ' || min(first_selected_on) || ' ' || max(first_selected_on)
                        || ' ' || min(holdout_percent) || ' ' || min(holdout_salt)
                   FROM infor_comm.holdout"
            ),
            Some(format!("{} 2026-11-20 2026-11-20 50 spring", held.len()))
        );
        // Another salt draws another group from that day on; the first assignment stays.
        run("SET LOCAL infor_comm.holdout_salt = 'autumn'");
        let newly: Vec<String> = held
            .iter()
            .filter(|id| !crate::holdout::is_held_out("autumn", id, 50))
            .cloned()
            .collect();
        assert_eq!(enqueue("2026-11-22 12:00:00+03") as usize, newly.len());
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.holdout WHERE holdout_salt = 'spring'") as usize,
            held.len()
        );
    }

    #[pg_test]
    fn a_run_counts_its_held_out_clients_and_the_funnel_shows_them() {
        host_tables();
        for id in ids() {
            run(&format!(
                "INSERT INTO product_migration_clients VALUES ('{id}', 'M-{id}', 'in_wizard', 'OK');
                 INSERT INTO wizard_status_change_log
                      VALUES ('{id}', 'OK', (now() - interval '8 days') AT TIME ZONE 'Europe/Moscow');
                 INSERT INTO clientsnapshot VALUES ('{id}', '1200009193', '1231200000844', '120001001', NULL);"
            ));
        }
        run("SET LOCAL infor_comm.holdout_percent = 50");
        run("SET LOCAL infor_comm.holdout_salt = 'spring'");
        run("CALL infor_comm.run_daily()");
        let held = held_out_by_hash().len();
        assert_eq!(
            text("SELECT sent || ' ' || skipped || ' ' || held_out FROM infor_comm.daily_runs"),
            Some(format!("{} 0 {held}", CLIENTS - held))
        );
        assert_eq!(
            text("SELECT thinking_clients || ' ' || held_out || ' ' || requests_sent FROM infor_comm.daily_funnel"),
            Some(format!("{CLIENTS} {held} {}", CLIENTS - held))
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.holdout WHERE run_id = (SELECT run_id FROM infor_comm.daily_runs)")
                as usize,
            held
        );
    }

    #[pg_test]
    fn by_default_nobody_is_held_out() {
        host_tables();
        for id in ids() {
            client(&id, "OK", "2026-11-01 09:00:00");
        }
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM infor_comm.thinking_clients_at('{AS_OF}') WHERE holdout_group = 'asked'"
            )) as usize,
            CLIENTS
        );
        assert_eq!(enqueue(AS_OF) as usize, CLIENTS);
        assert_eq!(int("SELECT count(*) FROM infor_comm.holdout"), 0);
    }

    #[pg_test(error = "invalid value for parameter \"infor_comm.holdout_percent\": \"51\"")]
    fn a_holdout_over_half_is_refused_with_its_value() {
        run("SET LOCAL infor_comm.holdout_percent = 51");
    }
}
