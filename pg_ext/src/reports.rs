//! Reports: the reference table of client reactions (the specification's last table) and the
//! views analysts group by.

use pgrx::prelude::*;

extension_sql_file!("../sql/client_reaction.sql", name = "client_reaction",);

extension_sql_file!(
    "../sql/reaction_views.sql",
    name = "reaction_views",
    requires = ["task_table", "client_reaction"],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn a_push_with_an_unknown_reaction_is_applied_and_listed() {
        let request_id = enqueued_request("ORG1");
        apply(&success_reply(&request_id));
        let push = format!(
            r#"{{"requestID": "{CRM_ID}", "taskID": "123456789", "dt": "2026-11-22T10:00:00.000+03:00", "taskStatus": "3",
                 "firstLevelClientReaction": "Недозвон", "secondLevelClientReaction": "Занято"}}"#
        );
        assert_eq!(apply(&push), "push");
        assert_eq!(
            text("SELECT second_level_client_reaction FROM infor_comm.unknown_reaction_pushes"),
            Some("Занято".into())
        );
        // The reference table has every row of the specification's last table.
        assert_eq!(int("SELECT count(*) FROM infor_comm.client_reaction"), 25);
    }
}
