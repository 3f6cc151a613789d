//! Reports: the reference table of client reactions (the specification's last table) and the
//! views analysts group by.

use pgrx::prelude::*;

extension_sql_file!("../sql/client_reaction.sql", name = "client_reaction",);

extension_sql_file!(
    "../sql/reaction_views.sql",
    name = "reaction_views",
    requires = ["task_table", "client_reaction"],
);
