//! The request JSON: one client, one message (docs/contract.md, "The request").
//!
//! `render_request` turns the client's data into the JSON text; it is pure, so the daily job
//! calls it inside its one set-based statement. `build_request` looks one client up and renders
//! its request, with a clear error when it cannot be built.

use crate::errors::{raise, spi_fault};
use crate::host_tables::HostTables;
use pgrx::prelude::*;
use serde::Serialize;

/// One entry of `clientIdList`.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct ClientId<'a> {
    /// `vtb_mdm_id`, `ehd_id`, `IBSO` or `INFOR`.
    #[serde(rename = "systemCode")]
    pub system_code: &'static str,
    /// The client's id in that system.
    pub id: &'a str,
}

/// The request for InforCRM, with its keys in the order of the specification.
#[derive(Serialize, Debug)]
pub struct Request<'a> {
    /// Our id of the request, a lower-case UUID.
    #[serde(rename = "requestID")]
    pub request_id: String,
    /// When the request was built, e.g. `2023-07-27T09:27:04.953+03:00`.
    pub dt: &'a str,
    /// The client's ids in the bank's systems; a system without an id is left out.
    #[serde(rename = "clientIdList")]
    pub client_id_list: Vec<ClientId<'a>>,
    /// INN (`clientsnapshot.tin`).
    pub inn: &'a str,
    /// OGRN (`clientsnapshot.registry_number`).
    pub ogrn: &'a str,
    /// KPP (`clientsnapshot.kpp`).
    pub kpp: &'a str,
    /// OKPO (`clientsnapshot.okpo`); left out when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub okpo: Option<&'a str>,
}

/// The length of the task table's and the outbox's `organization_id` columns.
pub const ORGANIZATION_ID_LENGTH: usize = 200;

/// A value is present when it is not NULL and not blank: whitespace of any kind (a tab, a
/// no-break space) and characters that print as nothing (a zero-width space, a byte order
/// mark: [`is_invisible`]) count as blank.
fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.chars().all(|c| c.is_whitespace() || is_invisible(c)))
}

/// True for a character that prints as nothing and is not whitespace: Unicode's format
/// characters (general category Cf: U+200B zero width space, U+FEFF byte order mark, the
/// bidirectional controls, U+00AD soft hyphen, …) and the other default-ignorable fillers
/// (U+034F, the Hangul fillers, U+17B4, U+17B5). A value made only of them is as empty as one
/// made of spaces.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Why a client's request cannot be built or stored, or `None` when it can: the one rule that
/// the view `thinking_clients`, the daily enqueue and `build_request` share.
pub fn skip_reason(
    organization_id: &str,
    has_snapshot: bool,
    inn: Option<&str>,
    ogrn: Option<&str>,
    kpp: Option<&str>,
    change_date_unknown: bool,
) -> Option<String> {
    let length = organization_id.chars().count();
    if length > ORGANIZATION_ID_LENGTH {
        return Some(format!(
            "organization_id is {length} characters long, longer than the task table's column ({ORGANIZATION_ID_LENGTH})"
        ));
    }
    if change_date_unknown {
        return Some(
            "a wizard_status_change_log row has no change_date, so the latest change is unknown"
                .into(),
        );
    }
    if !has_snapshot {
        return Some("no clientsnapshot row".into());
    }
    let mandatory = [
        (inn, "empty inn (clientsnapshot.tin)"),
        (ogrn, "empty ogrn (clientsnapshot.registry_number)"),
        (kpp, "empty kpp (clientsnapshot.kpp)"),
    ];
    mandatory
        .into_iter()
        .find(|(value, _)| present(*value).is_none())
        .map(|(_, reason)| reason.to_string())
}

/// Why a client's request cannot be built or stored (NULL: it can): `skip_reason` in SQL.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn request_skip_reason(
    organization_id: &str,
    has_snapshot: bool,
    inn: Option<&str>,
    ogrn: Option<&str>,
    kpp: Option<&str>,
    change_date_unknown: default!(bool, false),
) -> Option<String> {
    skip_reason(
        organization_id,
        has_snapshot,
        inn,
        ogrn,
        kpp,
        change_date_unknown,
    )
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.request_skip_reason(text, boolean, text, text, text, boolean) IS
    'Why a client''s request cannot be built or stored (the skip_reason of thinking_clients); NULL when it can.';
"#,
    name = "request_skip_reason_comment",
    requires = [request_skip_reason],
);

/// The client's IBSO and INFOR ids (`ibso`, `infor`: text arrays, sorted) from the host table
/// `clients_back_system_ids`, for the client whose mdm_id is the SQL expression `mdm_id`.
pub fn back_system_ids_sql(host: &HostTables, mdm_id: &str) -> String {
    format!(
        "SELECT coalesce(pg_catalog.array_agg(DISTINCT b.back_system_id::text ORDER BY b.back_system_id::text)
                        FILTER (WHERE b.back_system_name = 'ibso'), '{{}}') AS ibso,
       coalesce(pg_catalog.array_agg(DISTINCT b.back_system_id::text ORDER BY b.back_system_id::text)
                        FILTER (WHERE b.back_system_name = 'infor'), '{{}}') AS infor
  FROM {ids} b
 WHERE b.mdm_id = {mdm_id}
   AND b.back_system_name IN ('ibso', 'infor')",
        ids = host.name("clients_back_system_ids"),
    )
}

/// Raises the error for a request that cannot be built.
fn cannot_build(organization_id: &str, why: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        format!("infor_comm: cannot build the request for client \"{organization_id}\": {why}"),
        "inn, ogrn and kpp are mandatory in the request; it is never sent half-filled.",
        "Fix the client's row in clientsnapshot; infor_comm.thinking_clients lists such clients with their skip_reason.",
    )
}

/// One client's data, as the request needs it.
#[derive(Debug, Clone, Copy)]
pub struct ClientData<'a> {
    /// `organization_id`, the EHD id.
    pub organization_id: &'a str,
    /// `mdm_id`.
    pub mdm_id: Option<&'a str>,
    /// The IBSO ids (`clients_back_system_ids`).
    pub ibso_ids: &'a [Option<String>],
    /// The INFOR ids.
    pub infor_ids: &'a [Option<String>],
    /// `clientsnapshot.tin`.
    pub inn: Option<&'a str>,
    /// `clientsnapshot.registry_number`.
    pub ogrn: Option<&'a str>,
    /// `clientsnapshot.kpp`.
    pub kpp: Option<&'a str>,
    /// `clientsnapshot.okpo`.
    pub okpo: Option<&'a str>,
}

/// Renders the request JSON (`request_id` lower case); `Err` is the skip reason when it cannot
/// be built. Pure Rust: the daily job calls it for every client without a round trip to SQL.
pub fn render(request_id: &str, dt: &str, client: &ClientData<'_>) -> Result<String, String> {
    let organization_id = client.organization_id;
    if let Some(why) = skip_reason(
        organization_id,
        true,
        client.inn,
        client.ogrn,
        client.kpp,
        false,
    ) {
        return Err(why);
    }
    let (Some(inn), Some(ogrn), Some(kpp)) = (
        present(client.inn),
        present(client.ogrn),
        present(client.kpp),
    ) else {
        return Err("inn, ogrn or kpp is empty".into());
    };
    let mut client_id_list = Vec::with_capacity(2 + client.ibso_ids.len() + client.infor_ids.len());
    if let Some(mdm_id) = present(client.mdm_id) {
        client_id_list.push(ClientId {
            system_code: "vtb_mdm_id",
            id: mdm_id,
        });
    }
    client_id_list.push(ClientId {
        system_code: "ehd_id",
        id: organization_id,
    });
    for (system_code, ids) in [("IBSO", client.ibso_ids), ("INFOR", client.infor_ids)] {
        for id in ids.iter().filter_map(|id| present(id.as_deref())) {
            client_id_list.push(ClientId { system_code, id });
        }
    }
    let request = Request {
        request_id: request_id.to_lowercase(),
        dt,
        client_id_list,
        inn,
        ogrn,
        kpp,
        okpo: present(client.okpo),
    };
    serde_json::to_string(&request).map_err(|e| format!("cannot serialise the request: {e}"))
}

/// Renders the request JSON for one client from its data; raises when a mandatory field is missing.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
pub fn render_request(
    request_id: pgrx::Uuid,
    dt: &str,
    organization_id: &str,
    mdm_id: Option<&str>,
    ibso_ids: Option<Vec<Option<String>>>,
    infor_ids: Option<Vec<Option<String>>>,
    inn: Option<&str>,
    ogrn: Option<&str>,
    kpp: Option<&str>,
    okpo: Option<&str>,
) -> String {
    let (ibso_ids, infor_ids) = (ibso_ids.unwrap_or_default(), infor_ids.unwrap_or_default());
    let client = ClientData {
        organization_id,
        mdm_id,
        ibso_ids: &ibso_ids,
        infor_ids: &infor_ids,
        inn,
        ogrn,
        kpp,
        okpo,
    };
    render(&request_id.to_string(), dt, &client)
        .unwrap_or_else(|why| cannot_build(organization_id, &why))
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.render_request(uuid, text, text, text, text[], text[], text, text, text, text) IS
    'Renders the request JSON from a client''s data (used by enqueue_thinking_clients).';
"#,
    name = "render_request_comment",
    requires = [render_request],
);

/// Builds the request JSON for one client, as the daily job would send it.
///
/// Declared `RETURNS json` by hand: `json` is stored as its text, so the rendered text is
/// returned as it is, keys in the order of the specification.
#[pg_extern(
    volatile,
    sql = r#"
-- The request JSON for one client, as the daily job would send it; an error when it cannot be built.
CREATE FUNCTION infor_comm.build_request(organization_id text, request_id uuid, dt timestamptz)
RETURNS json VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'build_request_wrapper';
"#
)]
fn build_request(
    organization_id: &str,
    request_id: pgrx::Uuid,
    dt: TimestampWithTimeZone,
) -> String {
    let host = HostTables::resolve();
    let query = format!(
        "SELECT c.mdm_id::text, s.id IS NOT NULL, s.tin::text, s.registry_number::text,
                s.kpp::text, s.okpo::text, infor_comm.format_request_dt($2),
                ids.ibso, ids.infor
           FROM {clients} c
           LEFT JOIN {snapshot} s ON s.id = c.organization_id
          CROSS JOIN LATERAL ({ids}) ids
          WHERE c.organization_id = $1",
        clients = host.name("product_migration_clients"),
        snapshot = host.name("clientsnapshot"),
        ids = back_system_ids_sql(&host, "c.mdm_id"),
    );
    let row = Spi::connect(|client| {
        let rows = client.select(&query, Some(1), &[organization_id.into(), dt.into()])?;
        let mut found = None;
        for row in rows {
            found = Some((
                row.get::<String>(1)?,
                row.get::<bool>(2)?.unwrap_or(false),
                row.get::<String>(3)?,
                row.get::<String>(4)?,
                row.get::<String>(5)?,
                row.get::<String>(6)?,
                row.get::<String>(7)?.unwrap_or_default(),
                row.get::<Vec<Option<String>>>(8)?,
                row.get::<Vec<Option<String>>>(9)?,
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(found)
    })
    .unwrap_or_else(|e| spi_fault("looking up the client", e));
    let Some((mdm_id, has_snapshot, tin, ogrn, kpp, okpo, dt_text, ibso, infor)) = row else {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("infor_comm: client \"{organization_id}\" not found"),
            "product_migration_clients has no row with this organization_id.",
            "Pass the client's organization_id (the EHD id).",
        )
    };
    if let Some(why) = skip_reason(
        organization_id,
        has_snapshot,
        tin.as_deref(),
        ogrn.as_deref(),
        kpp.as_deref(),
        false,
    ) {
        cannot_build(organization_id, &why);
    }
    render_request(
        request_id,
        &dt_text,
        organization_id,
        mdm_id.as_deref(),
        ibso,
        infor,
        tin.as_deref(),
        ogrn.as_deref(),
        kpp.as_deref(),
        okpo.as_deref(),
    )
}

extension_sql!(
    r#"
COMMENT ON FUNCTION infor_comm.build_request(text, uuid, timestamptz) IS
    'The request JSON for one client, as the daily job would send it; an error when it cannot be built.';
"#,
    name = "build_request_comment",
    requires = [build_request],
);

extension_sql_file!(
    "../sql/request.sql",
    name = "request_sql",
    requires = [settings::setting_timezone],
);

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn the_skip_rule_names_the_first_reason_and_knows_every_kind_of_whitespace() {
        let ok = Some("1");
        assert_eq!(skip_reason("C", true, ok, ok, ok, false), None);
        assert_eq!(
            skip_reason("C", false, ok, ok, ok, false).as_deref(),
            Some("no clientsnapshot row")
        );
        for blank in [
            None,
            Some(""),
            Some(" "),
            Some("\t"),
            Some("\u{a0}"),
            Some("\u{2003}\n"),
            Some("\u{200b}"),
            Some("\u{feff}"),
            Some(" \u{200d}\u{2060}\u{ad} "),
            Some("\u{e0020}"),
        ] {
            assert_eq!(
                skip_reason("C", true, blank, ok, ok, false).as_deref(),
                Some("empty inn (clientsnapshot.tin)"),
                "{blank:?}"
            );
        }
        assert_eq!(
            skip_reason("C", true, ok, Some("\t"), ok, false).as_deref(),
            Some("empty ogrn (clientsnapshot.registry_number)")
        );
        assert_eq!(
            skip_reason("C", true, ok, ok, Some("\u{a0}"), false).as_deref(),
            Some("empty kpp (clientsnapshot.kpp)")
        );
        assert!(skip_reason("C", true, ok, ok, ok, true)
            .is_some_and(|r| r.contains("has no change_date")));
        assert_eq!(skip_reason(&"Я".repeat(200), true, ok, ok, ok, false), None);
        assert!(skip_reason(&"Я".repeat(201), true, ok, ok, ok, false)
            .is_some_and(|r| r.starts_with("organization_id is 201 characters long")));
    }

    #[test]
    fn the_request_has_the_keys_of_the_specification_in_order() {
        let request = Request {
            request_id: "e1f73276-7fb6-4e80-85de-fd8a939998f0".into(),
            dt: "2023-07-27T09:27:04.953+03:00",
            client_id_list: vec![
                ClientId {
                    system_code: "vtb_mdm_id",
                    id: "123456",
                },
                ClientId {
                    system_code: "ehd_id",
                    id: "354815252",
                },
            ],
            inn: "1200009193",
            ogrn: "1231200000844",
            kpp: "120001001",
            okpo: None,
        };
        assert_eq!(
            serde_json::to_string(&request).expect("json"),
            r#"{"requestID":"e1f73276-7fb6-4e80-85de-fd8a939998f0","dt":"2023-07-27T09:27:04.953+03:00","clientIdList":[{"systemCode":"vtb_mdm_id","id":"123456"},{"systemCode":"ehd_id","id":"354815252"}],"inn":"1200009193","ogrn":"1231200000844","kpp":"120001001"}"#
        );
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test(
        error = "infor_comm: cannot build the request for client \"NO_SNAPSHOT\": no clientsnapshot row"
    )]
    fn build_request_refuses_a_client_without_snapshot() {
        host_tables();
        client("NO_SNAPSHOT", "OK", "2026-11-01 09:00:00");
        run("DELETE FROM clientsnapshot");
        text("SELECT infor_comm.build_request('NO_SNAPSHOT', gen_random_uuid(), now())::text");
    }

    #[pg_test(error = "infor_comm: client \"NOBODY\" not found")]
    fn build_request_refuses_an_unknown_client() {
        host_tables();
        text("SELECT infor_comm.build_request('NOBODY', gen_random_uuid(), now())::text");
    }

    #[pg_test]
    fn the_request_json_is_exactly_the_contract() {
        host_tables();
        client("354815252", "OK", "2026-11-01 09:00:00");
        run("UPDATE product_migration_clients SET mdm_id = '123456';
             UPDATE clients_back_system_ids SET mdm_id = '123456';
             UPDATE clients_back_system_ids SET back_system_id = '354815252' WHERE back_system_name = 'ibso';
             UPDATE clients_back_system_ids SET back_system_id = 'A6UJ9A00EEG' WHERE back_system_name = 'infor';
             INSERT INTO clients_back_system_ids VALUES ('123456', 'bisquit', 'ignored');");
        let json = text(
            "SELECT infor_comm.build_request('354815252', 'E1F73276-7FB6-4E80-85DE-FD8A939998F0',
                                             '2023-07-27 06:27:04.953+00')::text",
        );
        assert_eq!(
            json.as_deref(),
            Some(concat!(
                r#"{"requestID":"e1f73276-7fb6-4e80-85de-fd8a939998f0","#,
                r#""dt":"2023-07-27T09:27:04.953+03:00","#,
                r#""clientIdList":[{"systemCode":"vtb_mdm_id","id":"123456"},"#,
                r#"{"systemCode":"ehd_id","id":"354815252"},"#,
                r#"{"systemCode":"IBSO","id":"354815252"},"#,
                r#"{"systemCode":"INFOR","id":"A6UJ9A00EEG"}],"#,
                r#""inn":"1200009193","ogrn":"1231200000844","kpp":"120001001","okpo":"02847208"}"#
            ))
        );
    }

    #[pg_test]
    fn missing_ids_and_a_null_okpo_are_left_out() {
        host_tables();
        client("BARE", "OK", "2026-11-01 09:00:00");
        run("DELETE FROM clients_back_system_ids;
             UPDATE product_migration_clients SET mdm_id = NULL;
             UPDATE clientsnapshot SET okpo = NULL;");
        let json = text(
            "SELECT infor_comm.build_request('BARE', 'e1f73276-7fb6-4e80-85de-fd8a939998f0',
                                             '2026-01-15 21:00:00.5+00')::text",
        );
        assert_eq!(
            json.as_deref(),
            Some(concat!(
                r#"{"requestID":"e1f73276-7fb6-4e80-85de-fd8a939998f0","#,
                r#""dt":"2026-01-16T00:00:00.500+03:00","#,
                r#""clientIdList":[{"systemCode":"ehd_id","id":"BARE"}],"#,
                r#""inn":"1200009193","ogrn":"1231200000844","kpp":"120001001"}"#
            ))
        );
        // Only one of the two back-system ids.
        run("UPDATE product_migration_clients SET mdm_id = 'M1';
             INSERT INTO clients_back_system_ids VALUES ('M1', 'infor', 'INF1');");
        let json = text(
            "SELECT (infor_comm.build_request('BARE', gen_random_uuid(), now())->'clientIdList')::text",
        );
        assert_eq!(
            json.as_deref(),
            Some(
                r#"[{"systemCode":"vtb_mdm_id","id":"M1"},{"systemCode":"ehd_id","id":"BARE"},{"systemCode":"INFOR","id":"INF1"}]"#
            )
        );
    }

    #[pg_test]
    fn dt_follows_infor_comm_timezone() {
        host_tables();
        client("TZ", "OK", "2026-11-01 09:00:00");
        run("SET LOCAL infor_comm.timezone = 'America/Sao_Paulo'");
        assert_eq!(
            text("SELECT infor_comm.build_request('TZ', gen_random_uuid(), '2023-07-27 06:27:04.953+00')->>'dt'"),
            Some("2023-07-27T03:27:04.953-03:00".into())
        );
        run("SET LOCAL infor_comm.timezone = 'Asia/Kolkata'");
        assert_eq!(
            text("SELECT infor_comm.format_request_dt('2023-07-27 06:27:04.953+00')"),
            Some("2023-07-27T11:57:04.953+05:30".into())
        );
    }
}
