-- The hold-out group (infor_comm.holdout_percent, 0 by default: nobody): thinking clients the
-- daily job does not ask InforCRM to call, so that comparing the two groups tells what the calls
-- change. Which clients: a stable hash of infor_comm.holdout_salt and the organization_id
-- (infor_comm.holdout_group). Each held-out client is recorded once, the first day a run holds
-- it out; the reports keep it in that group.
CREATE TABLE infor_comm.holdout (
    organization_id   varchar(200) PRIMARY KEY,
    first_selected_on date NOT NULL,
    first_selected_at timestamptz NOT NULL,
    run_id            bigint,
    holdout_percent   integer NOT NULL,
    holdout_salt      text NOT NULL
);
COMMENT ON TABLE infor_comm.holdout IS
    'The thinking clients held out of the calls (infor_comm.holdout_percent), each once: the first day a run held it out, that run, and the percent and salt in force then.';
COMMENT ON COLUMN infor_comm.holdout.first_selected_on IS 'The day (in infor_comm.timezone) a run first held the client out.';
COMMENT ON COLUMN infor_comm.holdout.run_id IS 'The daily run (infor_comm.daily_runs) that held it out first; NULL when enqueue_thinking_clients was called by hand.';
-- pg_dump dumps the rows of this table.
SELECT pg_catalog.pg_extension_config_dump('infor_comm.holdout', '');
