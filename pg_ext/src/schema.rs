//! The extension's tables: `infor_communication_task` (the record analysts read) and
//! `outbox` (the requests waiting for the relay, and their delivery state).

use pgrx::prelude::*;

extension_sql_file!(
    "../sql/task_table.sql",
    name = "task_table",
    requires = [settings::setting_timezone],
);

extension_sql_file!(
    "../sql/outbox_table.sql",
    name = "outbox_table",
    requires = ["task_table"],
);

// Before anything else: the schema infor_comm must be the installing superuser's own, empty.
extension_sql_file!("../sql/schema_guard.sql", name = "schema_guard", bootstrap);
