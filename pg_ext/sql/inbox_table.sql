-- infor_comm.inbox: the journal of every inbound message.

-- Whether an inbox row keeps the inbox's rules (its CHECK constraint inbox_row_check).
CREATE FUNCTION infor_comm.inbox_row_is_valid(
    kind text, outcome text, reason text, body text, body_bytes bytea, message_id text,
    message_id_bytes bytea, body_size bigint, body_sha256 bytea)
RETURNS boolean
LANGUAGE c IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'inbox_row_is_valid_c';
COMMENT ON FUNCTION infor_comm.inbox_row_is_valid(text, text, text, text, bytea, text, bytea, bigint, bytea) IS
    'The inbox''s rules: kind and outcome from their lists, one body and one message id, a reason when rejected, an oversized body''s size and SHA-256 only on a rejected message without its text.';

-- Every inbound message, whole, with what became of it.
CREATE TABLE infor_comm.inbox (
    inbox_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    message_id      text,
    body            text,
    body_bytes      bytea,
    kind            text NOT NULL,
    outcome         text NOT NULL,
    reason          text,
    task_row_id     varchar(200) REFERENCES infor_comm.infor_communication_task (id),
    message_dt      timestamptz,
    push_task_id    text,
    push_request_id text,
    applied_at      timestamptz,
    message_id_bytes bytea,
    body_size       bigint,
    body_sha256     bytea,
    blanked_at      timestamptz,
    reapplied_at    timestamptz,
    reapplied_by    text,
    reapplied_as    bigint,
    -- kind and outcome from their lists; one body (text or bytes) and one message id; a reason
    -- for a rejected message; an oversized body's size and SHA-256 together, only on a rejected
    -- message whose text is not kept. One function, because PostgreSQL compiles every CHECK of
    -- a table again for each statement that writes it (row_checks.rs).
    CONSTRAINT inbox_row_check
        CHECK (infor_comm.inbox_row_is_valid(kind, outcome, reason, body, body_bytes, message_id,
                                             message_id_bytes, body_size, body_sha256))
);
COMMENT ON TABLE infor_comm.inbox IS
    'Every message received from InforCRM, kept whole: its kind, outcome, the reason when it was rejected, and the task row it touched.';
COMMENT ON COLUMN infor_comm.inbox.message_id IS 'The broker''s message id, when it gave one that is text (else see message_id_bytes).';
COMMENT ON COLUMN infor_comm.inbox.body IS 'The message as received (NULL when it was not valid UTF-8: see body_bytes; both NULL: the body was NULL).';
COMMENT ON COLUMN infor_comm.inbox.body_bytes IS 'The message as received, when it was not valid UTF-8 text.';
COMMENT ON COLUMN infor_comm.inbox.outcome IS 'What apply_inbound returned: reply, push, duplicate, orphan or rejected.';
COMMENT ON COLUMN infor_comm.inbox.reason IS 'Why it was rejected, kept back, or not applied.';
COMMENT ON COLUMN infor_comm.inbox.task_row_id IS 'The infor_communication_task row it matched.';
COMMENT ON COLUMN infor_comm.inbox.message_dt IS 'dt of a push (the later one wins).';
COMMENT ON COLUMN infor_comm.inbox.message_id_bytes IS 'The broker''s message id as it came, when it was not text PostgreSQL can store (a NUL byte, or not UTF-8); message_id is then NULL.';
COMMENT ON COLUMN infor_comm.inbox.body_size IS 'For a body over the relay''s size limit (body_bytes keeps its first 64 KiB), or one the retention blanked: its size in bytes.';
COMMENT ON COLUMN infor_comm.inbox.body_sha256 IS 'For a body over the relay''s size limit, or one the retention blanked: the SHA-256 of the whole body.';
COMMENT ON COLUMN infor_comm.inbox.blanked_at IS 'When the retention (infor_comm.retention) blanked the body; NULL while it is kept.';
COMMENT ON COLUMN infor_comm.inbox.reapplied_at IS 'For a rejected message: when infor_comm.reapply_rejected re-applied it (by reapplied_by, as the row reapplied_as).';
COMMENT ON COLUMN infor_comm.inbox.reapplied_by IS 'The login that re-applied this rejected message.';
COMMENT ON COLUMN infor_comm.inbox.reapplied_as IS 'The inbox row of the re-applied message.';
COMMENT ON COLUMN infor_comm.inbox.applied_at IS 'When it changed its task row (for an orphan push: when its reply landed).';

CREATE INDEX inbox_task_row_idx ON infor_comm.inbox (task_row_id, kind);
-- The orphan pushes waiting for a reply, found by the reply's requestID, or by its taskID for
-- those without a requestID (push_request_id IS NULL AND push_task_id = …): one index for both
-- probes. Every message written pays for each index of the inbox, so it has only those its
-- statements and reports read.
CREATE INDEX inbox_orphan_idx ON infor_comm.inbox (push_request_id, push_task_id)
    WHERE outcome = 'orphan' AND task_row_id IS NULL;
-- The copies of a push: a push applied or kept as an orphan, by its task row and the digest of
-- its JSON, so that a copy is known by one probe however many copies came before it.
CREATE INDEX inbox_push_copies_idx ON infor_comm.inbox (task_row_id, infor_comm.inbox_push_digest(body))
    WHERE kind = 'push' AND outcome IN ('push', 'orphan');
-- The latest dt of the pushes applied to a task row: a push with an earlier one changes nothing.
CREATE INDEX inbox_applied_pushes_idx ON infor_comm.inbox (task_row_id, message_dt)
    WHERE kind = 'push' AND applied_at IS NOT NULL;

-- pg_dump dumps the rows of this table (an extension's own tables are otherwise left out)
-- and the state of its identity sequence.
SELECT pg_catalog.pg_extension_config_dump('infor_comm.inbox', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.inbox_inbox_id_seq', '');
