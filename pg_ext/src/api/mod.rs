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
