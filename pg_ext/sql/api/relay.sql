-- The relay's functions on the outbox: claim, mark published, mark failed, backlog.

-- Hands up to batch_size unpublished requests to a relay and leases them for lease (FOR UPDATE SKIP LOCKED).
CREATE FUNCTION infor_comm.claim_outbox(batch_size integer, lease interval)
RETURNS TABLE (outbox_id bigint, request_id text, payload text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
BEGIN
    PERFORM infor_comm.require_login_for_database();
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 10000 THEN
        RAISE EXCEPTION 'infor_comm: invalid batch_size %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'batch_size must be from 1 to 10000.',
                  HINT = 'Pass the number of requests the relay publishes at once, e.g. 100.';
    END IF;
    IF lease IS NULL OR lease <= interval '0' THEN
        RAISE EXCEPTION 'infor_comm: invalid lease %', coalesce(lease::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'lease must be a positive interval.',
                  HINT = 'Pass how long the relay may take to publish a batch, e.g. ''60 seconds''.';
    END IF;
    -- What lock_outbox hands out, each row leased: not available again before now() + lease.
    RETURN QUERY
    WITH claimed AS (
        SELECT l.outbox_id FROM infor_comm.lock_outbox(batch_size) l
    )
    UPDATE infor_comm.outbox o
       SET available_at = now() + lease
      FROM claimed
     WHERE o.outbox_id = claimed.outbox_id
    RETURNING o.outbox_id, o.request_id::text, o.payload::text;
END
$body$;

-- Locks up to batch_size unpublished requests (past after_id, if given) for the caller's transaction and hands them over, writing nothing.
CREATE FUNCTION infor_comm.lock_outbox(batch_size integer, after_id bigint DEFAULT NULL)
RETURNS TABLE (outbox_id bigint, request_id text, payload text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_sort = off
AS $body$
BEGIN
    PERFORM infor_comm.require_login_for_database();
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 10000 THEN
        RAISE EXCEPTION 'infor_comm: invalid batch_size %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'batch_size must be from 1 to 10000.',
                  HINT = 'Pass the number of requests the relay publishes at once, e.g. 1000.';
    END IF;
    -- The row locks are the claim: they last until the caller's transaction ends, in which it
    -- marks the rows published or failed; if it never gets there (a crash, a lost connection),
    -- the rows are claimable again at once. Rows leased by claim_outbox are not yet available.
    -- The pending requests are read in outbox_id order, oldest first, and each is looked up
    -- and locked on its own (a subquery with FOR UPDATE is never merged into the outer query),
    -- so the claim reads batch_size rows and the ones it skips (held by another relay, waiting
    -- for a back-off, closed), whatever the statistics say; enable_sort = off keeps the
    -- planner from sorting the whole queue instead of reading its primary key in order.
    -- A relay that holds batches already passes the largest outbox_id it holds as after_id, so
    -- that the claim starts past its own locked rows instead of skipping each of them again
    -- (about 1.5 µs a row); NULL starts from the oldest.
    RETURN QUERY
    SELECT c.outbox_id, c.request_id, c.payload
      FROM infor_comm.outbox_pending p
     CROSS JOIN LATERAL (
           SELECT o.outbox_id, o.request_id::text AS request_id, o.payload::text AS payload
             FROM infor_comm.outbox o
            WHERE o.outbox_id = p.outbox_id
              AND o.published_at IS NULL
              AND o.closed_at IS NULL
              AND o.available_at <= now()
              FOR UPDATE SKIP LOCKED) c
     WHERE p.outbox_id > coalesce(after_id, 0)
     ORDER BY p.outbox_id
     LIMIT batch_size;
END
$body$;

-- Records that the broker confirmed these requests (now, even late in a transaction); returns how many were newly marked.
CREATE FUNCTION infor_comm.mark_published(outbox_ids bigint[])
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT infor_comm.require_login_for_database();
    -- Out of the relays' queue, and marked: a HOT update, as no index covers published_at.
    -- A request closed meanwhile stays as it was closed: with claim_outbox's leases, a late '0'
    -- may withdraw a request between its claim and its mark, and the mark loses (a request is
    -- never both withdrawn and published).
    WITH unqueued AS (
        DELETE FROM infor_comm.outbox_pending
         WHERE outbox_id = ANY (outbox_ids)
    ), marked AS (
        UPDATE infor_comm.outbox
           SET published_at = statement_timestamp(), last_error = NULL
         WHERE outbox_id = ANY (outbox_ids)
           AND published_at IS NULL
           AND closed_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::integer FROM marked;
$body$;

-- Records that publishing a request failed; it is claimable again after a back-off, returned here.
CREATE FUNCTION infor_comm.mark_failed(outbox_id bigint, error text)
RETURNS timestamptz
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT infor_comm.require_login_for_database();
    UPDATE infor_comm.outbox o
       SET attempts = o.attempts + 1,
           last_error = error,
           available_at = now() + least(interval '5 seconds' * power(2, least(o.attempts, 16)),
                                        interval '10 minutes')
     WHERE o.outbox_id = mark_failed.outbox_id
       AND o.published_at IS NULL
    RETURNING o.available_at;
$body$;

-- The relay's view of the backlog: unpublished requests and the age of the oldest, in seconds.
CREATE FUNCTION infor_comm.outbox_backlog(OUT pending bigint, OUT oldest_age_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT infor_comm.require_login_for_database();
    SELECT count(*),
           coalesce(extract(epoch FROM now() - min(o.created_at))::double precision, 0)
      FROM infor_comm.outbox_pending p
      JOIN infor_comm.outbox o ON o.outbox_id = p.outbox_id
     WHERE o.published_at IS NULL AND o.closed_at IS NULL;
$body$;
