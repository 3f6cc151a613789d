//! The request JSON: one client, one message (docs/contract.md, "The request").
//!
//! `render_request` turns the client's data into the JSON text; it is pure, so the daily job
//! calls it inside its one set-based statement. `build_request` looks one client up and renders
//! its request, with a clear error when it cannot be built.

use crate::errors::{raise, spi_fault};
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

/// A value is present when it is not NULL and not blank.
fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
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

/// Renders the request JSON for one client from its data; raises when a mandatory field is missing.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe)]
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
    let Some(inn) = present(inn) else {
        cannot_build(organization_id, "inn (clientsnapshot.tin) is empty")
    };
    let Some(ogrn) = present(ogrn) else {
        cannot_build(
            organization_id,
            "ogrn (clientsnapshot.registry_number) is empty",
        )
    };
    let Some(kpp) = present(kpp) else {
        cannot_build(organization_id, "kpp (clientsnapshot.kpp) is empty")
    };
    let ibso_ids = ibso_ids.unwrap_or_default();
    let infor_ids = infor_ids.unwrap_or_default();
    let mut client_id_list = Vec::with_capacity(2 + ibso_ids.len() + infor_ids.len());
    if let Some(mdm_id) = present(mdm_id) {
        client_id_list.push(ClientId {
            system_code: "vtb_mdm_id",
            id: mdm_id,
        });
    }
    client_id_list.push(ClientId {
        system_code: "ehd_id",
        id: organization_id,
    });
    for (system_code, ids) in [("IBSO", &ibso_ids), ("INFOR", &infor_ids)] {
        for id in ids.iter().filter_map(|id| present(id.as_deref())) {
            client_id_list.push(ClientId { system_code, id });
        }
    }
    let request = Request {
        request_id: request_id.to_string().to_lowercase(),
        dt,
        client_id_list,
        inn,
        ogrn,
        kpp,
        okpo: present(okpo),
    };
    serde_json::to_string(&request).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!(
                "infor_comm: cannot serialise the request for client \"{organization_id}\": {e}"
            ),
            "serde_json refused the request.",
            "This is a bug; please report it.",
        )
    })
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
LANGUAGE c AS 'MODULE_PATHNAME', 'build_request_wrapper';
"#
)]
fn build_request(
    organization_id: &str,
    request_id: pgrx::Uuid,
    dt: TimestampWithTimeZone,
) -> String {
    crate::host_tables::require();
    let row = Spi::connect(|client| {
        let rows = client.select(
            "SELECT c.mdm_id::text, s.id IS NOT NULL, s.tin::text, s.registry_number::text,
                    s.kpp::text, s.okpo::text, infor_comm.format_request_dt($2),
                    ids.ibso, ids.infor
               FROM product_migration_clients c
               LEFT JOIN clientsnapshot s ON s.id = c.organization_id
               CROSS JOIN LATERAL infor_comm.back_system_ids(c.mdm_id) ids
              WHERE c.organization_id = $1",
            Some(1),
            &[organization_id.into(), dt.into()],
        )?;
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
    if !has_snapshot {
        cannot_build(organization_id, "clientsnapshot has no row for it");
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
    requires = ["selection", gucs::setting_timezone],
);
