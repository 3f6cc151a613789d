//! The SQL interface, one file per role that calls it. Each file holds its role's entry points
//! (the `#[pg_extern]` functions with their comments, or the SQL file that defines them) and the
//! grants that let the role call them; the logic stays in the concern modules (the selection,
//! the request, the outbox, the inbound apply, the reports), which the entry points call.
//!
//! | file | who calls it | entry points |
//! |---|---|---|
//! | [`job`] | `infor_comm_job` (pg_cron's job) | `run_daily` and its steps `daily_run_*`; `enqueue_thinking_clients` |
//! | [`relay`] | `infor_comm_relay` | `claim_outbox`, `lock_outbox`, `mark_published`, `mark_failed`, `outbox_backlog`, `apply_inbound`, `apply_delivery`, `reject_oversized`, `set_aside_inbound` |
//! | [`reader`] | `infor_comm_reader` (analysts) | the task table, the views and the reports |
//! | [`operator`] | the DBA (a superuser) | `schedule_daily`, `unschedule_daily`, `require_host_tables` |
//! | [`settings`] | the extension's SQL, the reader, the DBA | `setting_thinking_days`, `setting_timezone`, `setting_response_timeout`, `setting_host_schema` |
//!
//! Every entry point pins its `search_path`; every one that reads or writes the extension's
//! tables calls [`crate::entry_checks`] first. The roles are created first
//! (`pg_ext/sql/roles.sql`); what PUBLIC may not do is revoked last
//! (`pg_ext/sql/privileges.sql`). docs/sql-interface.md is the same map for DBAs.

pub mod job;
pub mod operator;
pub mod reader;
pub mod relay;
pub mod settings;

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// A signature as docs/contract.md writes it and as PostgreSQL prints it, made comparable:
    /// lower case, no casts of defaults, PostgreSQL's names of the types.
    fn normalized(signature: &str) -> String {
        let lower = signature
            .to_lowercase()
            .replace("timestamptz", "timestamp with time zone");
        let mut out = String::new();
        let mut rest = lower.as_str();
        // Drop the casts PostgreSQL adds to defaults ('0 9 * * *'::text, null::text).
        while let Some(at) = rest.find("::") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let end = after.find([',', ')']).unwrap_or(after.len());
            rest = &after[end..];
        }
        out.push_str(rest);
        out.split(|c: char| !c.is_alphanumeric() && c != '_')
            .map(|word| if word == "int" { "integer" } else { word })
            .filter(|word| !word.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every `infor_comm.NAME(arguments) → result` that docs/contract.md gives is the signature
    /// of a routine of the schema: names, types and defaults of the arguments, and the result.
    #[pg_test]
    fn the_contracts_signatures_are_the_routines() {
        let contract = include_str!("../../../docs/contract.md");
        let mut checked = 0;
        for piece in contract.split('`').skip(1).step_by(2) {
            let Some(signature) = piece.strip_prefix("infor_comm.") else {
                continue;
            };
            let Some((name, rest)) = signature.split_once('(') else {
                continue;
            };
            let (arguments, result) = match rest.rsplit_once(") → ") {
                Some((arguments, result)) => (arguments, Some(result)),
                None => (rest.trim_end_matches(')'), None),
            };
            let overloads = Spi::connect(|client| {
                client
                    .select(
                        "SELECT pg_catalog.pg_get_function_arguments(p.oid),
                                coalesce(pg_catalog.pg_get_function_result(p.oid), '')
                           FROM pg_catalog.pg_proc p
                          WHERE p.pronamespace = 'infor_comm'::regnamespace AND p.proname = $1",
                        None,
                        &[name.into()],
                    )?
                    .map(|row| {
                        Ok((
                            row.get::<String>(1)?.unwrap_or_default(),
                            row.get::<String>(2)?.unwrap_or_default(),
                        ))
                    })
                    .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
            })
            .expect("the routines");
            let matches = overloads.iter().any(|(args, res)| {
                normalized(args) == normalized(arguments)
                    && result.is_none_or(|result| normalized(res) == normalized(result))
            });
            assert!(
                matches,
                "docs/contract.md says infor_comm.{signature}; the schema has {overloads:?}"
            );
            checked += 1;
        }
        assert!(
            checked >= 15,
            "only {checked} signatures in docs/contract.md"
        );
    }
}
