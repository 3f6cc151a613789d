-- The operator's repair kit (role infor_comm_operator, granted these functions and nothing
-- else): each function leaves a row in infor_comm.operator_actions saying who ran it, when,
-- with which arguments, and what it changed. Each is SECURITY DEFINER with a pinned
-- search_path, names everything schema-qualified, and checks the login's database first.

-- The audit trail of the repair kit: one row per call, dry runs included.
CREATE TABLE infor_comm.operator_actions (
    action_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    acted_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    acted_by    text NOT NULL DEFAULT pg_catalog.session_user(),
    action      text NOT NULL,
    arguments   jsonb NOT NULL,
    dry_run     boolean NOT NULL DEFAULT false,
    affected    integer NOT NULL,
    details     jsonb NOT NULL
);
COMMENT ON TABLE infor_comm.operator_actions IS
    'The audit trail of the repair kit: who ran which function, when, with which arguments, and what it changed (details), one row per call.';
COMMENT ON COLUMN infor_comm.operator_actions.acted_by IS 'The login that called the function (session_user).';
COMMENT ON COLUMN infor_comm.operator_actions.affected IS 'How many requests or messages the call changed (would change, for a dry run).';
COMMENT ON COLUMN infor_comm.operator_actions.details IS 'What changed, item by item: each request or message with its state before.';
-- pg_dump dumps the rows of this table and the state of its identity sequence.
SELECT pg_catalog.pg_extension_config_dump('infor_comm.operator_actions', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.operator_actions_action_id_seq', '');

-- Clears the back-off of failed, unpublished, open requests (all of them, or those whose
-- requestID is in request_ids), so that the relay takes them at once; returns how many.
CREATE FUNCTION infor_comm.retry_now(request_ids text[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    changed jsonb;
    affected integer;
BEGIN
    PERFORM infor_comm.require_login_for_database();
    -- Row locks in outbox_id order: a relay holding a request (publishing it now) is waited
    -- for, and a request it published meanwhile is left alone.
    WITH candidates AS (
        SELECT o.outbox_id, o.available_at AS was_available_at
          FROM infor_comm.outbox o
         WHERE (request_ids IS NULL OR o.request_id::text = ANY (request_ids))
           AND o.published_at IS NULL
           AND o.closed_at IS NULL
           AND o.attempts > 0
           AND o.available_at > pg_catalog.statement_timestamp()
         ORDER BY o.outbox_id
           FOR UPDATE
    ), retried AS (
        UPDATE infor_comm.outbox o
           SET available_at = pg_catalog.statement_timestamp()
          FROM candidates c
         WHERE o.outbox_id = c.outbox_id
        RETURNING o.outbox_id, o.request_id, o.attempts, o.last_error, c.was_available_at
    )
    SELECT pg_catalog.count(*)::integer,
           coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'request_id', r.request_id, 'attempts', r.attempts, 'last_error', r.last_error,
               'was_available_at', r.was_available_at) ORDER BY r.outbox_id), '[]'::jsonb)
      INTO affected, changed
      FROM retried r;
    INSERT INTO infor_comm.operator_actions (action, arguments, affected, details)
    VALUES ('retry_now', pg_catalog.jsonb_build_object('request_ids', request_ids), affected, changed);
    IF affected > 0 THEN
        PERFORM pg_catalog.pg_notify('infor_comm_outbox', affected::text);
    END IF;
    RETURN affected;
END
$body$;
COMMENT ON FUNCTION infor_comm.retry_now(text[]) IS
    'Clears the back-off of failed, unpublished, open requests (all, or those of request_ids) so that the relay takes them at once; returns how many. Recorded in operator_actions.';

-- Closes an unpublished, open request (close_reason 'withdrawn'), so that the next daily run
-- selects its client again; reason says why, in operator_actions. Returns false when the
-- request was already closed; raises when it is unknown or already published.
CREATE FUNCTION infor_comm.withdraw(request_id text, reason text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    request record;
    withdrawn boolean := false;
BEGIN
    PERFORM infor_comm.require_login_for_database();
    IF reason IS NULL OR pg_catalog.btrim(reason) = '' THEN
        RAISE EXCEPTION 'infor_comm: withdraw needs a reason'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('request %s was not withdrawn.', coalesce(request_id, 'NULL')),
                  HINT = 'Say why, e.g. SELECT infor_comm.withdraw(''<requestID>'', ''the client asked not to be called'').';
    END IF;
    -- The row lock waits for a relay publishing the request now; what it did is seen after.
    SELECT o.outbox_id, o.organization_id, o.published_at, o.closed_at, o.close_reason,
           o.attempts, o.last_error
      INTO request
      FROM infor_comm.outbox o
     WHERE o.request_id::text = withdraw.request_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'infor_comm: no request %', coalesce(request_id, 'NULL')
            USING ERRCODE = 'no_data_found',
                  HINT = 'Pass the requestID of infor_comm.outbox (infor_comm.client_history(organization_id) lists a client''s requests).';
    END IF;
    IF request.published_at IS NOT NULL AND request.closed_at IS NULL THEN
        RAISE EXCEPTION 'infor_comm: request % is published, it cannot be withdrawn', request_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('The broker confirmed it at %s: it is at InforCRM, whose reply will close it.', request.published_at),
                  HINT = 'Wait for the reply, or for infor_comm.response_timeout, after which the next run closes it and asks again.';
    END IF;
    IF request.closed_at IS NULL THEN
        UPDATE infor_comm.outbox
           SET closed_at = pg_catalog.now(), close_reason = 'withdrawn'
         WHERE outbox_id = request.outbox_id;
        DELETE FROM infor_comm.outbox_pending WHERE outbox_id = request.outbox_id;
        withdrawn := true;
    END IF;
    INSERT INTO infor_comm.operator_actions (action, arguments, affected, details)
    VALUES ('withdraw',
            pg_catalog.jsonb_build_object('request_id', request_id, 'reason', reason),
            withdrawn::integer,
            pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                'request_id', request_id, 'organization_id', request.organization_id,
                'was_closed_at', request.closed_at, 'was_close_reason', request.close_reason,
                'attempts', request.attempts, 'last_error', request.last_error)));
    RETURN withdrawn;
END
$body$;
COMMENT ON FUNCTION infor_comm.withdraw(text, text) IS
    'Closes an unpublished open request (close_reason withdrawn) so that the next run selects its client again; reason is recorded in operator_actions. False when it was already closed; an error when unknown or published.';

-- Re-runs rejected inbound messages through today's rules (after an update fixed what rejected
-- them, say): those of inbox_ids, or of reason_code (infor_comm.inbox_reason_code), or received
-- from received_from (inclusive) to received_to (exclusive); every filter given must hold.
-- A dry run by default: each message is applied and the apply rolled back, so the outcome shown
-- is the one it would have now, and nothing changes. With dry_run => false, each message is
-- journaled and applied as if it arrived now (a new inbox row), and its rejected row records
-- that it was re-applied (reapplied_at, reapplied_by, reapplied_as: the new row): once, however
-- many times this runs. A body kept only in part (over the relay's limit) or blanked by the
-- retention cannot be re-applied and is listed as such.
CREATE FUNCTION infor_comm.reapply_rejected(
    inbox_ids     bigint[]    DEFAULT NULL,
    reason_code   text        DEFAULT NULL,
    received_from timestamptz DEFAULT NULL,
    received_to   timestamptz DEFAULT NULL,
    dry_run       boolean     DEFAULT true)
RETURNS TABLE (inbox_id bigint, was_reason text, outcome text, reason text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    message record;
    changed jsonb := '[]'::jsonb;
    affected integer := 0;
    new_inbox_id bigint;
BEGIN
    PERFORM infor_comm.require_login_for_database();
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'infor_comm: reapply_rejected needs dry_run true or false'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave it out for a dry run, or pass dry_run => false to re-apply.';
    END IF;
    -- In inbox_id order, each rejected row locked: a second operator re-applying the same
    -- messages waits, then finds them re-applied and skips them.
    FOR message IN
        SELECT i.inbox_id, i.reason, i.body, i.body_bytes, i.body_size, i.blanked_at,
               coalesce(i.message_id_bytes, pg_catalog.convert_to(i.message_id, 'UTF8')) AS message_id
          FROM infor_comm.inbox i
         WHERE i.outcome = 'rejected'
           AND i.reapplied_at IS NULL
           AND (reapply_rejected.inbox_ids IS NULL OR i.inbox_id = ANY (reapply_rejected.inbox_ids))
           AND (reapply_rejected.reason_code IS NULL
                OR infor_comm.inbox_reason_code(i.reason) = reapply_rejected.reason_code)
           AND (received_from IS NULL OR i.received_at >= received_from)
           AND (received_to IS NULL OR i.received_at < received_to)
         ORDER BY i.inbox_id
           FOR UPDATE OF i
    LOOP
        inbox_id := message.inbox_id;
        was_reason := message.reason;
        IF message.blanked_at IS NOT NULL OR message.body_size IS NOT NULL THEN
            outcome := NULL;
            reason := CASE WHEN message.blanked_at IS NOT NULL
                           THEN 'not re-applied: its body was blanked by the retention'
                           ELSE 'not re-applied: only the head of its body was kept (over the relay''s size limit)' END;
            changed := changed || pg_catalog.jsonb_build_object('inbox_id', inbox_id, 'was_reason', was_reason,
                                                                 'outcome', outcome, 'reason', reason);
            RETURN NEXT;
            CONTINUE;
        END IF;
        BEGIN
            outcome := infor_comm.apply_delivery(
                coalesce(message.body_bytes, pg_catalog.convert_to(message.body, 'UTF8')),
                message.message_id);
            new_inbox_id := pg_catalog.currval('infor_comm.inbox_inbox_id_seq');
            SELECT i.reason INTO reason FROM infor_comm.inbox i WHERE i.inbox_id = new_inbox_id;
            IF dry_run THEN
                -- Undo the apply: the outcome is the one the message would have now.
                RAISE EXCEPTION USING ERRCODE = 'ICDRY';
            END IF;
            UPDATE infor_comm.inbox i
               SET reapplied_at = pg_catalog.now(), reapplied_by = pg_catalog.session_user(),
                   reapplied_as = new_inbox_id
             WHERE i.inbox_id = message.inbox_id;
            affected := affected + 1;
        EXCEPTION WHEN SQLSTATE 'ICDRY' THEN
            new_inbox_id := NULL;
        END;
        changed := changed || pg_catalog.jsonb_build_object('inbox_id', inbox_id, 'was_reason', was_reason,
                                                             'outcome', outcome, 'reason', reason,
                                                             'new_inbox_id', new_inbox_id);
        RETURN NEXT;
    END LOOP;
    INSERT INTO infor_comm.operator_actions (action, arguments, dry_run, affected, details)
    VALUES ('reapply_rejected',
            pg_catalog.jsonb_build_object('inbox_ids', inbox_ids, 'reason_code', reason_code,
                                          'received_from', received_from, 'received_to', received_to),
            reapply_rejected.dry_run, affected, changed);
END
$body$;
COMMENT ON FUNCTION infor_comm.reapply_rejected(bigint[], text, timestamptz, timestamptz, boolean) IS
    'Re-runs rejected inbound messages (by inbox_ids, reason_code, received time) through today''s rules: a dry run by default (the outcome each would have now); with dry_run => false each is applied as if it arrived now, once, and its row records reapplied_at/by/as. Recorded in operator_actions.';
