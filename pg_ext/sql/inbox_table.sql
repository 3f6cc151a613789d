-- infor_comm.inbox: the journal of every inbound message.

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
    CONSTRAINT inbox_kind_check CHECK (kind IN ('reply', 'push', 'unknown')),
    CONSTRAINT inbox_outcome_check
        CHECK (outcome IN ('reply', 'push', 'duplicate', 'orphan', 'rejected')),
    CONSTRAINT inbox_one_body CHECK (body IS NULL OR body_bytes IS NULL),
    CONSTRAINT inbox_rejected_has_reason CHECK (outcome <> 'rejected' OR reason IS NOT NULL),
    CONSTRAINT inbox_one_message_id CHECK (message_id IS NULL OR message_id_bytes IS NULL),
    CONSTRAINT inbox_oversized_check
        CHECK ((body_size IS NULL) = (body_sha256 IS NULL)
               AND (body_sha256 IS NULL OR (outcome = 'rejected' AND body IS NULL)))
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
COMMENT ON COLUMN infor_comm.inbox.body_size IS 'For a body over the relay''s size limit: its size in bytes (body_bytes keeps its first 64 KiB).';
COMMENT ON COLUMN infor_comm.inbox.body_sha256 IS 'For a body over the relay''s size limit: the SHA-256 of the whole body.';
COMMENT ON COLUMN infor_comm.inbox.applied_at IS 'When it changed its task row (for an orphan push: when its reply landed).';

CREATE INDEX inbox_task_row_idx ON infor_comm.inbox (task_row_id, kind);
CREATE INDEX inbox_orphan_task_idx ON infor_comm.inbox (push_task_id)
    WHERE outcome = 'orphan' AND task_row_id IS NULL;
CREATE INDEX inbox_orphan_request_idx ON infor_comm.inbox (push_request_id)
    WHERE outcome = 'orphan' AND task_row_id IS NULL;
CREATE INDEX inbox_received_idx ON infor_comm.inbox (received_at);

-- pg_dump dumps the rows of this table (an extension's own tables are otherwise left out)
-- and the state of its identity sequence.
SELECT pg_catalog.pg_extension_config_dump('infor_comm.inbox', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.inbox_inbox_id_seq', '');
