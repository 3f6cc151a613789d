//! The daily enqueue: one transaction writes a task row and an outbox row for every thinking
//! client, with the request JSON the relay will publish. The candidates are read in one
//! statement; the skip rule and the JSON are applied in Rust (a SQL function per row would cost
//! a `search_path` change per call); the rows are written in one statement.
//!
//! Runs are serialised by a transaction-level advisory lock, and the primary key of
//! `outbox_open` keeps at most one open request per client whatever happens: a second run, or
//! two runs at once, enqueue nobody twice. Every open request has its row there; the apply of a
//! reply leaves the row of the request it closes (so that closing is a HOT update of the outbox
//! and nothing more), and each run removes the rows of closed requests before it opens new ones.
//!
//! The relay's side of the outbox is in [`crate::api::relay`] (`pg_ext/sql/api/relay.sql`): `lock_outbox` (row locks for the relay's
//! transaction, `FOR UPDATE SKIP LOCKED`), `claim_outbox` (leases), `mark_published`,
//! `mark_failed` (attempts, last error, back-off) and `outbox_backlog`, all `SECURITY DEFINER`
//! with a pinned `search_path`. The claims read the relays' queue, `outbox_pending` (one row
//! per unpublished request, written here with the outbox row, deleted by `mark_published`), so
//! that no index of the outbox covers `published_at` and marking a request is a HOT update.

use crate::errors::spi_fault;
use crate::host_tables::HostTables;
use crate::request::{back_system_ids_sql, render, skip_reason, ClientData};
use crate::selection::thinking_rows_sql;
use pgrx::prelude::*;

/// The advisory lock key of the enqueue ("inforcom" in ASCII).
pub const ENQUEUE_LOCK_KEY: i64 = 0x696e_666f_7263_6f6d;

/// The channel notified when requests are enqueued; the payload is how many.
pub const OUTBOX_CHANNEL: &str = "infor_comm_outbox";

/// Closes the open requests that are no longer open at `$1`: answered, or published and
/// unanswered for `infor_comm.response_timeout`. Every open request has its row in
/// `outbox_open`, so the outbox is read there and nowhere else.
const CLOSE_STALE_REQUESTS: &str = "
UPDATE infor_comm.outbox o
   SET closed_at = now(),
       close_reason = CASE WHEN t.status_code IS NOT NULL THEN 'answered' ELSE 'timed_out' END
  FROM infor_comm.outbox_open p, infor_comm.infor_communication_task t
 WHERE o.outbox_id = p.outbox_id
   AND t.id = o.task_row_id
   AND o.closed_at IS NULL
   AND (t.status_code IS NOT NULL
        OR o.published_at <= $1 - (SELECT infor_comm.setting_response_timeout()))";

/// Deletes from the relays' queue what is no longer pending: requests closed or published
/// other than by `mark_published` (a reply to a request whose mark was lost), and rows whose
/// outbox row is gone. The claims skip them meanwhile.
const FORGET_STALE_PENDING: &str = "
DELETE FROM infor_comm.outbox_pending p
 WHERE NOT EXISTS (SELECT FROM infor_comm.outbox o
                    WHERE o.outbox_id = p.outbox_id
                      AND o.published_at IS NULL
                      AND o.closed_at IS NULL)";

/// Deletes from `outbox_open` the rows whose request is closed (by a reply, by
/// [`CLOSE_STALE_REQUESTS`], or by hand) or gone: their clients may be asked again.
const FORGET_CLOSED_REQUESTS: &str = "
DELETE FROM infor_comm.outbox_open p
 WHERE NOT EXISTS (SELECT FROM infor_comm.outbox o
                    WHERE o.outbox_id = p.outbox_id
                      AND o.closed_at IS NULL)";

/// The thinking clients at `$1` with everything their request needs, a new request id and task
/// row id each, ordered by organization_id. The selection is embedded whole, so the planner sees
/// every lookup; no function is called per row.
fn candidates_sql(host: &HostTables) -> String {
    format!(
        "SELECT t.organization_id::text, t.mdm_id::text, t.has_snapshot, t.tin, t.ogrn, t.kpp,
       t.okpo, t.unknown_change, ids.ibso, ids.infor,
       gen_random_uuid()::text AS request_id, gen_random_uuid()::text AS task_row_id
  FROM ({rows}) t
 CROSS JOIN LATERAL ({ids}) ids
 ORDER BY t.organization_id",
        rows = thinking_rows_sql(host),
        ids = back_system_ids_sql(host, "t.mdm_id"),
    )
}

/// Writes the outbox rows (`$1` request ids, `$2` task row ids, `$3` organization ids, `$4`
/// payloads) and their task rows (`$5` the request's dt, `$6` its wall time) in one statement,
/// each request opened in `outbox_open`; a client with an open request already is skipped (the
/// organization ids are distinct). Returns how many were written.
const INSERT_REQUESTS: &str = "
WITH outbox_rows AS (
    INSERT INTO infor_comm.outbox (request_id, task_row_id, organization_id, payload, created_at, available_at)
    SELECT r::uuid, t, o, p::json, now(), now()
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u (r, t, o, p)
     WHERE NOT EXISTS (SELECT FROM infor_comm.outbox_open x WHERE x.organization_id = u.o)
    RETURNING outbox_id, request_id, task_row_id, organization_id
), opened AS (
    INSERT INTO infor_comm.outbox_open (organization_id, outbox_id)
    SELECT o.organization_id, o.outbox_id FROM outbox_rows o
), pending AS (
    INSERT INTO infor_comm.outbox_pending (outbox_id)
    SELECT o.outbox_id FROM outbox_rows o
), task_rows AS (
    INSERT INTO infor_comm.infor_communication_task
           (id, vtbc_request_id, organization_id, request_date, time_create)
    SELECT o.task_row_id, o.request_id::text, o.organization_id, $5, $6
      FROM outbox_rows o
    RETURNING 1
)
SELECT count(*)::integer FROM task_rows";

/// The requests of one run, column by column, for [`INSERT_REQUESTS`].
#[derive(Default)]
struct Requests {
    request_ids: Vec<String>,
    task_row_ids: Vec<String>,
    organization_ids: Vec<String>,
    payloads: Vec<String>,
    skipped: usize,
    /// The clients held out of the calls ([`crate::holdout`]): no request, no task row.
    held_out: Vec<String>,
}

/// The hold-out settings of one enqueue, read once.
struct Holdout<'a> {
    percent: i32,
    salt: &'a str,
}

/// Records the clients held out for the first time, each once: the day (in
/// `infor_comm.timezone`) and the run that held it out first, with the percent and salt.
const RECORD_HELD_OUT: &str = "
    INSERT INTO infor_comm.holdout
           (organization_id, first_selected_on, first_selected_at, run_id, holdout_percent, holdout_salt)
    SELECT held.organization_id, ($2 AT TIME ZONE infor_comm.setting_timezone())::date, $2, $3, $4, $5
      FROM pg_catalog.unnest($1::text[]) AS held (organization_id)
        ON CONFLICT (organization_id) DO NOTHING";

/// Reads the candidates, applies the skip rule and the hold-out, and renders each request, in
/// Rust.
fn render_requests(
    client: &mut pgrx::spi::SpiClient<'_>,
    host: &HostTables,
    as_of: TimestampWithTimeZone,
    dt: &str,
    holdout: &Holdout<'_>,
) -> Result<Requests, pgrx::spi::SpiError> {
    let mut requests = Requests::default();
    for row in client.update(&candidates_sql(host), None, &[as_of.into()])? {
        let organization_id = row.get::<String>(1)?.unwrap_or_default();
        // The candidates come ordered by organization_id. A client that a host table lists twice
        // gets one request: from the first of its rows that can be sent (outbox_open's primary
        // key would refuse a second in the same statement).
        if requests.organization_ids.last() == Some(&organization_id) {
            continue;
        }
        let (mdm_id, tin, ogrn, kpp, okpo) = (
            row.get::<String>(2)?,
            row.get::<String>(4)?,
            row.get::<String>(5)?,
            row.get::<String>(6)?,
            row.get::<String>(7)?,
        );
        let has_snapshot = row.get::<bool>(3)?.unwrap_or(false);
        let unknown_change = row.get::<bool>(8)?.unwrap_or(false);
        let skip = skip_reason(
            &organization_id,
            has_snapshot,
            tin.as_deref(),
            ogrn.as_deref(),
            kpp.as_deref(),
            unknown_change,
        );
        if skip.is_some() {
            requests.skipped += 1;
            continue;
        }
        if crate::holdout::is_held_out(holdout.salt, &organization_id, holdout.percent) {
            requests.held_out.push(organization_id);
            continue;
        }
        let (ibso_ids, infor_ids) = (
            row.get::<Vec<Option<String>>>(9)?.unwrap_or_default(),
            row.get::<Vec<Option<String>>>(10)?.unwrap_or_default(),
        );
        let request_id = row.get::<String>(11)?.unwrap_or_default();
        let data = ClientData {
            organization_id: &organization_id,
            mdm_id: mdm_id.as_deref(),
            ibso_ids: &ibso_ids,
            infor_ids: &infor_ids,
            inn: tin.as_deref(),
            ogrn: ogrn.as_deref(),
            kpp: kpp.as_deref(),
            okpo: okpo.as_deref(),
        };
        match render(&request_id, dt, &data) {
            Ok(payload) => {
                requests.payloads.push(payload);
                requests.request_ids.push(request_id);
                requests
                    .task_row_ids
                    .push(row.get::<String>(12)?.unwrap_or_default());
                requests.organization_ids.push(organization_id);
            }
            // The skip rule above already refused what render refuses.
            Err(_) => requests.skipped += 1,
        }
    }
    Ok(requests)
}

/// Raises unless the transaction is `READ COMMITTED`. Two runs are serialised by an advisory
/// lock, and the second must then see what the first committed: under `REPEATABLE READ` or
/// `SERIALIZABLE` its snapshot is older than the lock, and it would fail on the requests the
/// first opened. `run_daily` called on its own sets the level itself.
fn require_read_committed() {
    let isolation =
        Spi::get_one::<String>("SELECT pg_catalog.current_setting('transaction_isolation')")
            .unwrap_or_else(|e| spi_fault("reading transaction_isolation", e))
            .unwrap_or_default();
    if isolation != "read committed" {
        crate::errors::raise(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            format!("infor_comm: the daily enqueue needs READ COMMITTED, not {isolation}"),
            "Runs of the enqueue wait for each other and must then see what the earlier one committed; a snapshot taken before the wait cannot.",
            "CALL infor_comm.run_daily() on its own (it sets the level), or SET TRANSACTION ISOLATION LEVEL READ COMMITTED first.",
        );
    }
}

/// What one enqueue did: requests written, thinking clients that cannot be sent, and those held
/// out of the calls.
pub struct Enqueued {
    pub enqueued: i32,
    pub skipped: i32,
    pub held_out: i32,
}

/// The daily enqueue, which `enqueue_thinking_clients` and the daily job's `daily_run_enqueue`
/// ([`crate::api::job`], with its `run_id`) run; the latter records the counts.
pub fn enqueue(as_of: TimestampWithTimeZone, run_id: Option<i64>) -> Enqueued {
    crate::entry_checks();
    crate::gucs::check_all();
    require_read_committed();
    let salt = crate::gucs::holdout_salt();
    let holdout = Holdout {
        percent: crate::gucs::holdout_percent(),
        salt: &salt,
    };
    let host = HostTables::resolve_for_reading();
    let (enqueued, skipped, held_out) = Spi::connect_mut(|client| {
        client.update(
            "SELECT pg_catalog.pg_advisory_xact_lock($1)",
            None,
            &[ENQUEUE_LOCK_KEY.into()],
        )?;
        client.update(CLOSE_STALE_REQUESTS, None, &[as_of.into()])?;
        client.update(FORGET_STALE_PENDING, None, &[])?;
        client.update(FORGET_CLOSED_REQUESTS, None, &[])?;
        let time = client
            .update(
                "SELECT infor_comm.format_request_dt($1),
                        $1 AT TIME ZONE infor_comm.setting_timezone()",
                None,
                &[as_of.into()],
            )?
            .first();
        let dt = time.get::<String>(1)?.unwrap_or_default();
        let local_time = time.get::<Timestamp>(2)?;
        let requests = render_requests(client, &host, as_of, &dt, &holdout)?;
        let skipped = requests.skipped;
        let held_out = requests.held_out.len();
        if held_out > 0 {
            client.update(
                RECORD_HELD_OUT,
                None,
                &[
                    requests.held_out.into(),
                    as_of.into(),
                    run_id.into(),
                    holdout.percent.into(),
                    holdout.salt.into(),
                ],
            )?;
        }
        let enqueued = client
            .update(
                INSERT_REQUESTS,
                None,
                &[
                    requests.request_ids.into(),
                    requests.task_row_ids.into(),
                    requests.organization_ids.into(),
                    requests.payloads.into(),
                    dt.into(),
                    local_time.into(),
                ],
            )?
            .first()
            .get::<i32>(1)?
            .unwrap_or(0);
        if enqueued > 0 {
            client.update(
                "SELECT pg_catalog.pg_notify($1, $2)",
                None,
                &[OUTBOX_CHANNEL.into(), enqueued.to_string().into()],
            )?;
        }
        Ok::<_, pgrx::spi::SpiError>((enqueued, skipped, held_out))
    })
    .unwrap_or_else(|e| spi_fault("enqueueing the thinking clients", e));
    if skipped > 0 {
        notice!(
            "infor_comm: {skipped} thinking client(s) cannot be sent; \
             infor_comm.thinking_clients shows them with their skip_reason"
        );
    }
    Enqueued {
        enqueued,
        skipped: i32::try_from(skipped).unwrap_or(i32::MAX),
        held_out: i32::try_from(held_out).unwrap_or(i32::MAX),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn an_answered_request_is_closed_by_the_next_run() {
        host_tables();
        client("ANSWERED", "OK", "2026-11-01 09:00:00");
        assert_eq!(enqueue(AS_OF), 1);
        run("UPDATE infor_comm.infor_communication_task SET status_code = '2'");
        // Failed on 2026-11-20: blocked that day, asked again the next.
        assert_eq!(enqueue("2026-11-20 18:00:00+03"), 0);
        assert_eq!(enqueue("2026-11-21 09:00:00+03"), 1);
        assert_eq!(
            text("SELECT string_agg(coalesce(close_reason, 'open'), ',' ORDER BY outbox_id) FROM infor_comm.outbox"),
            Some("answered,open".into())
        );
    }

    #[pg_test]
    fn a_reply_closes_its_request_with_a_hot_update_and_the_next_run_reopens_the_client() {
        let request_id = enqueued_request("ORG1");
        let open = || {
            text("SELECT string_agg(p.organization_id || ':' || coalesce(o.close_reason, 'open'), ',')
                    FROM infor_comm.outbox_open p JOIN infor_comm.outbox o USING (outbox_id)")
        };
        assert_eq!(open(), Some("ORG1:open".into()));
        // Published long ago: unanswered past the timeout, which health counts through
        // outbox_open until the reply closes the request.
        run("SELECT infor_comm.mark_published(array_agg(outbox_id)) FROM infor_comm.outbox");
        run("UPDATE infor_comm.outbox SET published_at = now() - interval '30 days'");
        assert_eq!(
            int("SELECT unanswered_past_timeout FROM infor_comm.health"),
            1
        );
        // Closing the request changes no indexed column of the outbox: a HOT update, no index
        // entry written (fillfactor 50 leaves room on the page).
        let before = outbox_updates();
        let reply = format!(
            r#"{{"requestID": "CRM-1", "replyUID": "{request_id}", "dt": "2026-11-20T12:00:00.000+03:00", "statusCode": "2", "statusMsg": "Ошибка"}}"#
        );
        assert_eq!(apply(&reply), "reply");
        let after = outbox_updates();
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (1, 1),
            "one HOT update"
        );
        // The apply leaves the client's row in outbox_open, yet the closed request is no longer
        // counted; the next run removes the row.
        assert_eq!(open(), Some("ORG1:answered".into()));
        assert_eq!(
            int("SELECT unanswered_past_timeout FROM infor_comm.health"),
            0
        );
        assert_eq!(
            enqueue("2026-11-20 18:00:00+03"),
            0,
            "a '2' blocks the client that day"
        );
        assert_eq!(open(), None);
        assert_eq!(enqueue("2026-11-21 09:00:00+03"), 1);
        assert_eq!(open(), Some("ORG1:open".into()));
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox_open p
                   JOIN infor_comm.outbox o USING (outbox_id)
                  WHERE o.organization_id = p.organization_id
                    AND o.outbox_id = (SELECT max(outbox_id) FROM infor_comm.outbox)"),
            1,
            "the row points at the new request"
        );
    }

    #[pg_test]
    fn a_client_listed_twice_by_the_host_table_gets_one_request() {
        host_tables();
        client("TWICE", "OK", "2026-11-01 09:00:00");
        run(
            "ALTER TABLE product_migration_clients DROP CONSTRAINT product_migration_clients_pkey;
             INSERT INTO product_migration_clients SELECT * FROM product_migration_clients",
        );
        assert_eq!(
            selected(AS_OF).len(),
            2,
            "the selection lists the client twice"
        );
        assert_eq!(enqueue(AS_OF), 1);
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox"), 1);
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox_open"), 1);
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.infor_communication_task"),
            1
        );
    }

    #[pg_test]
    fn the_task_row_is_written_with_its_outbox_row() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        client("ORG2", "TO_SIGN", "2026-11-02 09:00:00");
        assert_eq!(enqueue("2026-11-20 09:27:04.953+03"), 2);
        // Every outbox row has its task row, with the request's id, dt and client.
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox o
                   JOIN infor_comm.infor_communication_task t ON t.id = o.task_row_id
                  WHERE t.vtbc_request_id = o.request_id::text
                    AND t.vtbc_request_id = o.payload->>'requestID'
                    AND t.organization_id = o.organization_id
                    AND t.request_date = o.payload->>'dt'
                    AND t.request_date = '2026-11-20T09:27:04.953+03:00'
                    AND t.time_create = '2026-11-20 09:27:04.953'
                    AND t.status_code IS NULL AND t.infor_response_id IS NULL
                    AND o.published_at IS NULL AND o.closed_at IS NULL"),
            2
        );
        // The payload is the text build_request renders for the same id and time.
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox o
                  WHERE o.payload::text = infor_comm.build_request(o.organization_id, o.request_id,
                                                                    '2026-11-20 09:27:04.953+03')::text"),
            2
        );
        assert_eq!(
            text("SELECT payload->>'requestID' FROM infor_comm.outbox WHERE organization_id = 'ORG1'"),
            text("SELECT lower(payload->>'requestID') FROM infor_comm.outbox WHERE organization_id = 'ORG1'")
        );
    }

    #[pg_test]
    fn running_twice_a_day_asks_nobody_twice() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        client("ORG2", "OK", "2026-11-01 09:00:00");
        assert_eq!(enqueue(AS_OF), 2);
        assert_eq!(enqueue(AS_OF), 0);
        assert_eq!(enqueue("2026-11-20 21:00:00+03"), 0);
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox"), 2);
    }

    #[pg_test]
    fn enqueue_notifies_the_relay() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        run("LISTEN infor_comm_outbox");
        assert_eq!(enqueue(AS_OF), 1);
        // A pending notification is visible in the queue usage of this backend.
        assert!(Spi::get_one::<f64>("SELECT pg_notification_queue_usage()")
            .expect("usage")
            .is_some());
    }

    #[pg_test]
    fn claim_hands_out_a_row_once_until_its_lease_ends() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        client("ORG2", "OK", "2026-11-01 09:00:00");
        enqueue(AS_OF);
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(1, '1 minute')"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            0
        );
        // A lease that ended makes the row claimable again.
        run("UPDATE infor_comm.outbox SET available_at = now() - interval '1 second' WHERE organization_id = 'ORG1'");
        assert_eq!(
            text("SELECT (payload::json->>'requestID' = request_id)::text FROM infor_comm.claim_outbox(10, '1 minute')"),
            Some("true".into())
        );
        assert_eq!(int("SELECT infor_comm.mark_published(array_agg(outbox_id))::bigint FROM infor_comm.outbox"), 2);
        assert_eq!(int("SELECT infor_comm.mark_published(array_agg(outbox_id))::bigint FROM infor_comm.outbox"), 0);
        run("UPDATE infor_comm.outbox SET available_at = now() - interval '1 hour'");
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            0,
            "published rows are not claimed"
        );
        assert_eq!(int("SELECT pending FROM infor_comm.outbox_backlog()"), 0);
    }

    #[pg_test]
    fn mark_failed_counts_attempts_keeps_the_error_and_backs_off() {
        host_tables();
        client("ORG1", "OK", "2026-11-01 09:00:00");
        enqueue(AS_OF);
        let id = int("SELECT outbox_id FROM infor_comm.claim_outbox(1, '1 minute')");
        let delays: Vec<String> = (1..=9)
            .map(|n| {
                text(&format!(
                    "SELECT (infor_comm.mark_failed({id}, 'nack {n}') - now())::text"
                ))
                .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            delays,
            [
                "00:00:05", "00:00:10", "00:00:20", "00:00:40", "00:01:20", "00:02:40", "00:05:20",
                "00:10:00", "00:10:00"
            ]
        );
        assert_eq!(
            text("SELECT attempts || ' ' || last_error FROM infor_comm.outbox"),
            Some("9 nack 9".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            0
        );
        assert_eq!(int("SELECT pending FROM infor_comm.outbox_backlog()"), 1);
    }

    #[pg_test]
    fn the_relays_queue_holds_exactly_the_pending_requests_oldest_first() {
        host_tables();
        for org in ["ORG1", "ORG2", "ORG3", "ORG4"] {
            client(org, "OK", "2026-11-01 09:00:00");
        }
        assert_eq!(enqueue(AS_OF), 4);
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox_pending p
                   JOIN infor_comm.outbox o USING (outbox_id)"),
            4
        );
        // Oldest first: outbox_id order, whatever available_at says.
        run(
            "UPDATE infor_comm.outbox SET available_at = now() - interval '1 hour'
              WHERE outbox_id = (SELECT max(outbox_id) FROM infor_comm.outbox)",
        );
        assert_eq!(
            text("SELECT string_agg((outbox_id - (SELECT min(outbox_id) FROM infor_comm.outbox))::text, ',')
                    FROM infor_comm.lock_outbox(10)"),
            Some("0,1,2,3".into())
        );
        // Past after_id only (the largest id a relay already holds); NULL is from the oldest.
        assert_eq!(
            text("SELECT string_agg((outbox_id - (SELECT min(outbox_id) FROM infor_comm.outbox))::text, ',')
                    FROM infor_comm.lock_outbox(10, (SELECT min(outbox_id) + 1 FROM infor_comm.outbox))"),
            Some("2,3".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.lock_outbox(10, NULL)"),
            4
        );
        // Marking takes a request out of the queue, and is a HOT update: no index entry is
        // written, as no index of the outbox covers published_at (fillfactor 50 leaves room).
        let before = outbox_updates();
        assert_eq!(
            int(
                "SELECT infor_comm.mark_published(array_agg(outbox_id ORDER BY outbox_id))::bigint
                   FROM (SELECT outbox_id FROM infor_comm.outbox ORDER BY outbox_id LIMIT 2) o"
            ),
            2
        );
        let after = outbox_updates();
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (2, 2),
            "both marks are HOT updates"
        );
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox_pending"), 2);
        assert_eq!(int("SELECT pending FROM infor_comm.outbox_backlog()"), 2);
        // A request answered before its mark (the relay lost it) stays in the queue, skipped by
        // the claims and not counted, until the next enqueue forgets it.
        run("UPDATE infor_comm.outbox SET published_at = now(), closed_at = now(), close_reason = 'answered'
              WHERE organization_id = 'ORG3'");
        assert_eq!(int("SELECT count(*) FROM infor_comm.lock_outbox(10)"), 1);
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.claim_outbox(10, '1 minute')"),
            1
        );
        assert_eq!(int("SELECT pending FROM infor_comm.outbox_backlog()"), 1);
        assert_eq!(int("SELECT unpublished FROM infor_comm.health"), 1);
        assert_eq!(int("SELECT count(*) FROM infor_comm.outbox_pending"), 2);
        enqueue(AS_OF);
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox_pending p
                   LEFT JOIN infor_comm.outbox o USING (outbox_id)
                  WHERE o.outbox_id IS NULL OR o.published_at IS NOT NULL OR o.closed_at IS NOT NULL"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM infor_comm.outbox_pending p
                   JOIN infor_comm.outbox o USING (outbox_id) WHERE o.organization_id = 'ORG4'"),
            1
        );
    }

    #[pg_test(error = "infor_comm: invalid batch_size 0")]
    fn claim_refuses_a_zero_batch() {
        run("SELECT * FROM infor_comm.claim_outbox(0, '1 minute')");
    }
}
