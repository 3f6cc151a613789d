-- The retention of personal data (infor_comm.retention, default 180 days): the request payloads
-- and the inbound bodies carry clients' tax ids. infor_comm.apply_retention() blanks those past
-- it and keeps their SHA-256 and size, their ids, outcomes and every column a report reads, so
-- that every report gives the same numbers before and after. The pg_cron job
-- infor_comm_retention, which schedule_daily keeps beside the daily job, runs it.

-- Blanks, as of as_of: the payload of every closed request (answered, timed out or withdrawn)
-- created more than infor_comm.retention before, and the body of every inbound message received
-- more than infor_comm.retention before, except an orphan push still waiting for its reply (it
-- is applied when the reply lands; health reports it after a day). Returns how many of each it
-- blanked now; running it again blanks nothing more.
CREATE FUNCTION infor_comm.apply_retention(as_of timestamptz DEFAULT now())
RETURNS TABLE (requests_blanked bigint, messages_blanked bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    cutoff timestamptz;
BEGIN
    PERFORM infor_comm.require_login_for_database();
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'infor_comm: apply_retention needs as_of'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave it out for now().';
    END IF;
    cutoff := as_of - infor_comm.setting_retention();
    WITH blanked AS (
        UPDATE infor_comm.outbox o
           SET payload_sha256 = pg_catalog.sha256(pg_catalog.convert_to(o.payload::text, 'UTF8')),
               payload_size = pg_catalog.octet_length(o.payload::text),
               payload = NULL,
               blanked_at = as_of
         WHERE o.created_at < cutoff
           AND o.closed_at IS NOT NULL
           AND o.payload IS NOT NULL
        RETURNING 1
    )
    SELECT pg_catalog.count(*) INTO requests_blanked FROM blanked;
    -- A body over the relay's limit keeps the size and digest of the whole body; its head goes.
    WITH blanked AS (
        UPDATE infor_comm.inbox i
           SET body_sha256 = coalesce(i.body_sha256,
                                      pg_catalog.sha256(coalesce(pg_catalog.convert_to(i.body, 'UTF8'), i.body_bytes))),
               body_size = coalesce(i.body_size,
                                    pg_catalog.octet_length(coalesce(pg_catalog.convert_to(i.body, 'UTF8'), i.body_bytes))),
               body = NULL,
               body_bytes = NULL,
               blanked_at = as_of
         WHERE i.received_at < cutoff
           AND (i.body IS NOT NULL OR i.body_bytes IS NOT NULL)
           AND NOT (i.outcome = 'orphan' AND i.applied_at IS NULL)
        RETURNING 1
    )
    SELECT pg_catalog.count(*) INTO messages_blanked FROM blanked;
    RETURN NEXT;
END
$body$;
COMMENT ON FUNCTION infor_comm.apply_retention(timestamptz) IS
    'Blanks the payloads of closed requests and the bodies of inbound messages older than infor_comm.retention (an orphan push waiting for its reply excepted), keeping their SHA-256, size, ids and outcomes; returns how many of each. The pg_cron job infor_comm_retention runs it.';
