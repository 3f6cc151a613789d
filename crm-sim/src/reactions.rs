//! The client reactions the pushes draw from: the rows of `infor_comm.client_reaction`.

use crate::contract::Reaction;
use crate::report::{redact, with_causes};

/// Reads every row of `infor_comm.client_reaction` from the database at `url`.
pub async fn load_reactions(url: &str) -> Result<Vec<Reaction>, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {}: {}", redact(url), with_causes(&e)))?;
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT task_status::text, first_level::text, second_level::text, second_level_free_text
               FROM infor_comm.client_reaction ORDER BY reaction_id",
            &[],
        )
        .await
        .map_err(|e| format!("cannot read infor_comm.client_reaction: {}", with_causes(&e)))?;
    Ok(rows
        .iter()
        .map(|row| Reaction {
            task_status: row.get(0),
            first_level: row.get(1),
            second_level: row.get(2),
            second_level_free_text: row.get(3),
        })
        .collect())
}
