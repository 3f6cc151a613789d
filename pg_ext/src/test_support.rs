//! Helpers of the in-database tests (`cargo pgrx test`): host tables and clients, the daily job,
//! inbound messages of the specification, and running SQL as another role. Each test runs in its
//! own transaction, which is rolled back, so each creates the data it needs.

use pgrx::prelude::*;

/// The moment the daily job runs in most tests: 2026-11-20 12:00 in Moscow.
pub const AS_OF: &str = "2026-11-20 12:00:00+03";

/// Creates the host tables (sql/host_tables.sql).
pub fn host_tables() {
    Spi::run(include_str!("../../sql/host_tables.sql")).expect("host tables");
}

pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn text(sql: &str) -> Option<String> {
    Spi::get_one::<String>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn int(sql: &str) -> i64 {
    Spi::get_one::<i64>(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: NULL"))
}

/// A client in the wizard with every id and a full snapshot, whose wizard status last
/// changed at `changed` (wall time in Moscow).
pub fn client(org: &str, wizard_status: &str, changed: &str) {
    run(&format!(
        "INSERT INTO product_migration_clients VALUES ('{org}', 'MDM-{org}', 'in_wizard', '{wizard_status}');
         INSERT INTO wizard_status_change_log VALUES ('{org}', '{wizard_status}', '{changed}');
         INSERT INTO clients_back_system_ids VALUES ('MDM-{org}', 'ibso', 'IBSO-{org}'),
                                                    ('MDM-{org}', 'infor', 'INFOR-{org}');
         INSERT INTO clientsnapshot VALUES ('{org}', '1200009193', '1231200000844', '120001001', '02847208');"
    ));
}

/// The organization ids that qualify at `as_of`, with a skip reason or '-'.
pub fn selected(as_of: &str) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            &format!(
                "SELECT organization_id::text || ':' || coalesce(skip_reason, '-')
                   FROM infor_comm.thinking_clients_at('{as_of}') ORDER BY 1"
            ),
            None,
            &[],
        )?
        .map(|row| row.get::<String>(1).map(|v| v.unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()
    })
    .expect("selection")
}

pub fn enqueue(as_of: &str) -> i32 {
    Spi::get_one::<i32>(&format!(
        "SELECT infor_comm.enqueue_thinking_clients('{as_of}')"
    ))
    .expect("enqueue")
    .expect("count")
}

/// Enqueues one request for a new thinking client; returns its requestID.
pub fn enqueued_request(org: &str) -> String {
    host_tables_once();
    client(org, "OK", "2026-11-01 09:00:00");
    enqueue(AS_OF);
    text(&format!(
        "SELECT request_id::text FROM infor_comm.outbox WHERE organization_id = '{org}'"
    ))
    .expect("an enqueued request")
}

pub fn host_tables_once() {
    if Spi::get_one::<bool>("SELECT to_regclass('product_migration_clients') IS NULL")
        .expect("regclass")
        .unwrap_or(true)
    {
        host_tables();
    }
}

pub fn apply(body: &str) -> String {
    Spi::get_one_with_args::<String>("SELECT infor_comm.apply_inbound($1)", &[body.into()])
        .expect("apply_inbound")
        .expect("an outcome")
}

pub fn task_row(org: &str) -> String {
    text(&format!(
        "SELECT concat_ws('|', infor_response_id, status_code, task_id, task_status,
                          task_execution_type, task_execution_description, task_close_date,
                          first_level_client_reaction, second_level_client_reaction,
                          third_level_client_reaction)
           FROM infor_comm.infor_communication_task WHERE organization_id = '{org}'"
    ))
    .expect("a task row")
}

pub fn last_reason() -> String {
    text("SELECT reason FROM infor_comm.inbox ORDER BY inbox_id DESC LIMIT 1").unwrap_or_default()
}

pub const CRM_ID: &str = "72a26ab9-b99e-40aa-9f7e-2247b3709394";

pub fn success_reply(reply_uid: &str) -> String {
    format!(
        r#"{{"requestID": "{CRM_ID}", "replyUID": "{reply_uid}", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "0", "taskID": "123456789"}}"#
    )
}

/// The specification's manual push, as written there.
pub const MANUAL_PUSH: &str = r#"{
  "requestID": "72a26ab9-b99e-40aa-9f7e-2247b3709394",
  "dt": "2023-07-27T09:27:04.953+03:00",
  "statusCode": "0",
  "taskID": "123456789",
  "taskStatus": "3",
  "taskCloseDate": "2023-07-27",
  "taskExecType": "",
  "taskExecDescr": "",
  "firstLevelClientReaction": " - ",
  "secondLevelClientReaction": "   ",
  "thirdLevelClientReaction": ""
}"#;

/// The specification's automatic push, as written there.
pub const AUTOMATIC_PUSH: &str = r#"{
  "requestID": "72a26ab9-b99e-40aa-9f7e-2247b3709394",
  "dt": "2023-07-27T09:27:04.953+03:00",
  "statusCode": "0",
  "applicationID": "b6e4de26-9220-43b8-9323-83f31d662ef3",
  "taskID": "123456789",
  "taskStatus": "5",
  "taskCloseDate": "2023-07-27",
  "taskExecType": "",
  "taskExecDescr": ""
}"#;

/// A '0' reply of the CRM with its own requestID and taskID.
pub fn created(reply_uid: &str, crm_id: &str, task_id: &str) -> String {
    format!(
        r#"{{"requestID": "{crm_id}", "replyUID": "{reply_uid}", "dt": "2026-11-20T12:00:00.000+03:00", "statusCode": "0", "taskID": "{task_id}"}}"#
    )
}

/// A push; `ids` holds its "requestID" and "taskID" fields, as JSON.
pub fn push_with(ids: &str, task_status: &str) -> String {
    format!(r#"{{{ids}, "dt": "2026-11-21T10:00:00.000+03:00", "taskStatus": "{task_status}"}}"#)
}

/// A call of each of the relay's functions, the reply applied to `request_id`'s request.
pub fn relay_calls(request_id: &str) -> Vec<String> {
    vec![
        "SELECT * FROM infor_comm.claim_outbox(10, '1 minute')".to_string(),
        "SELECT * FROM infor_comm.lock_outbox(10)".to_string(),
        "SELECT infor_comm.mark_published(ARRAY[1::bigint])".to_string(),
        "SELECT infor_comm.mark_failed(1, 'x')".to_string(),
        "SELECT * FROM infor_comm.outbox_backlog()".to_string(),
        format!(
            "SELECT infor_comm.apply_inbound('{}')",
            success_reply(request_id)
        ),
    ]
}

/// Runs `sql` as `role`; returns the error message, or "ok".
pub fn as_role(role: &str, sql: &str) -> String {
    run(&format!("SET LOCAL ROLE {role}"));
    let result = outcome_of(sql);
    run("RESET ROLE");
    result
}

/// Runs `sql` in a subtransaction of its own, as a PL/pgSQL `EXCEPTION` block would; returns
/// the error message, or "ok". The subtransaction is rolled back after an error, which also
/// restores the role of the caller when the error came from a `SECURITY DEFINER` function.
pub fn outcome_of(sql: &str) -> String {
    // SAFETY: the subtransaction is begun and ended here, around one SPI call, with the memory
    // context and resource owner restored as PostgreSQL's PL/pgSQL does around an EXCEPTION block.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let outcome = PgTryBuilder::new(|| {
            Spi::run(sql)
                .map(|_| "ok".to_string())
                .unwrap_or_else(|e| e.to_string())
        })
        .catch_others(|e| match e {
            pg_sys::panic::CaughtError::PostgresError(report) => report.message().to_string(),
            other => format!("{other:?}"),
        })
        .execute();
        if outcome == "ok" {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        outcome
    }
}

/// The outbox rows this transaction updated so far, and how many of those updates were HOT
/// (no index entry written).
pub fn outbox_updates() -> (i64, i64) {
    (
        int("SELECT pg_stat_get_xact_tuples_updated('infor_comm.outbox'::regclass)"),
        int("SELECT pg_stat_get_xact_tuples_hot_updated('infor_comm.outbox'::regclass)"),
    )
}
