//! Roles and privileges: `infor_comm_relay` may call only the relay's functions;
//! `infor_comm_reader` may read the task table, the reaction table and the views.
//! Nothing in the schema is executable by PUBLIC.

use pgrx::prelude::*;

extension_sql_file!("../sql/roles.sql", name = "roles", finalize);
