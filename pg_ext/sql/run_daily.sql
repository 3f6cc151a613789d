-- The daily job that pg_cron runs.

-- What the pg_cron job calls once a day: enqueue a request for every thinking client.
CREATE PROCEDURE infor_comm.run_daily()
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    enqueued integer;
BEGIN
    enqueued := infor_comm.enqueue_thinking_clients(now());
    RAISE LOG 'infor_comm.run_daily: % request(s) enqueued', enqueued;
END
$body$;
COMMENT ON PROCEDURE infor_comm.run_daily() IS
    'The daily job: enqueues a request to InforCRM for every thinking client (see schedule_daily).';
