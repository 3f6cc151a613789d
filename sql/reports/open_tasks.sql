-- The call tasks InforCRM created and has not reported on yet, by how long they have waited,
-- and the ones it reported on, by how the task was worked (task_execution_type: "Ручной" by an
-- employee, "Технический" closed by the system) and its status (3 processed, 5 not processed).
--
--   psql -X -f sql/reports/open_tasks.sql
--
-- Reads infor_comm.infor_communication_task only (a member of infor_comm_reader may run it).

\echo 'Tasks created and not reported on yet, by days waiting'
SELECT CASE WHEN waited < 1 THEN '0 days'
            WHEN waited < 3 THEN '1-2 days'
            WHEN waited < 7 THEN '3-6 days'
            WHEN waited < 14 THEN '7-13 days'
            ELSE '14 days or more' END AS waiting,
       count(*) AS tasks,
       min(time_create) AS oldest_created
  FROM (SELECT t.time_create,
               extract(epoch FROM (now() AT TIME ZONE infor_comm.setting_timezone())
                                   - t.time_create) / 86400 AS waited
          FROM infor_comm.infor_communication_task t
         WHERE t.status_code = '0' AND t.task_status IS NULL) open
 GROUP BY 1
 ORDER BY min(waited);

\echo 'Tasks reported on, by how they were worked'
SELECT coalesce(nullif(btrim(t.task_execution_type), ''), '(not given)') AS execution_type,
       count(*) FILTER (WHERE t.task_status = '3') AS processed,
       count(*) FILTER (WHERE t.task_status = '5') AS not_processed,
       count(*) AS tasks
  FROM infor_comm.infor_communication_task t
 WHERE t.status_code = '0' AND t.task_status IS NOT NULL
 GROUP BY 1
 ORDER BY tasks DESC;
