-- The views analysts group pushed outcomes by.

-- Every task row with an outcome pushed, and its reaction from the reference table (NULL: unknown).
CREATE VIEW infor_comm.task_reactions WITH (security_invoker = true) AS
SELECT t.id, t.organization_id, t.task_id, t.task_status,
       t.first_level_client_reaction, t.second_level_client_reaction, t.third_level_client_reaction,
       t.task_close_date, r.reaction_id, r.reaction_type, r.reaction_id IS NOT NULL AS known
  FROM infor_comm.infor_communication_task t
  LEFT JOIN LATERAL (
        SELECT r.reaction_id, r.reaction_type
          FROM infor_comm.client_reaction r
         WHERE r.task_status = t.task_status
           AND r.first_level IS NOT DISTINCT FROM infor_comm.reaction_level(t.first_level_client_reaction)
           AND (r.second_level IS NOT DISTINCT FROM infor_comm.reaction_level(t.second_level_client_reaction)
                OR (r.second_level_free_text
                    AND infor_comm.reaction_level(t.second_level_client_reaction) IS NOT NULL))
         ORDER BY r.second_level_free_text, r.reaction_id
         LIMIT 1) r ON true
 WHERE t.task_status IS NOT NULL;
COMMENT ON VIEW infor_comm.task_reactions IS
    'Task rows with a pushed outcome, matched to the reference table of client reactions (known = false: not in it).';

-- The pushes whose reaction is not in the reference table (they are applied all the same).
CREATE VIEW infor_comm.unknown_reaction_pushes WITH (security_invoker = true) AS
SELECT id, organization_id, task_id, task_status,
       first_level_client_reaction, second_level_client_reaction, third_level_client_reaction, task_close_date
  FROM infor_comm.task_reactions
 WHERE NOT known;
COMMENT ON VIEW infor_comm.unknown_reaction_pushes IS
    'Task rows whose pushed reaction is not in infor_comm.client_reaction.';
