-- infor_comm.outbox: the requests waiting for the relay, and their delivery state.

-- Whether an outbox row's closing keeps the outbox's rules (its CHECK constraint outbox_close_check).
CREATE FUNCTION infor_comm.outbox_close_is_valid(closed_at timestamptz, close_reason text)
RETURNS boolean
LANGUAGE c IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'outbox_close_is_valid_c';
COMMENT ON FUNCTION infor_comm.outbox_close_is_valid(timestamptz, text) IS
    'The outbox''s rules: a closed request has a close_reason (answered, timed_out or withdrawn), an open one none.';

-- Requests waiting to be published, and what became of them.
CREATE TABLE infor_comm.outbox (
    outbox_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id      uuid NOT NULL UNIQUE,
    task_row_id     varchar(200) NOT NULL UNIQUE
                    REFERENCES infor_comm.infor_communication_task (id),
    organization_id varchar(200) NOT NULL,
    payload         json,
    created_at      timestamptz NOT NULL DEFAULT now(),
    available_at    timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    published_at    timestamptz,
    closed_at       timestamptz,
    close_reason    text,
    payload_sha256  bytea,
    payload_size    integer,
    blanked_at      timestamptz,
    -- A closed request has its close_reason (answered, timed_out, withdrawn), an open one none.
    -- One function, because PostgreSQL compiles every CHECK of a table again for each statement
    -- that writes it (row_checks.rs).
    CONSTRAINT outbox_close_check CHECK (infor_comm.outbox_close_is_valid(closed_at, close_reason))
)
-- Room on each page for a row's next version: marking a request published (published_at,
-- last_error) and failing it (attempts, last_error, available_at) change no indexed column, so
-- with room on the page they are HOT updates, which write no index entry.
WITH (fillfactor = 50);
COMMENT ON TABLE infor_comm.outbox IS
    'Requests to publish to InforCRM; the relay claims, publishes and marks them. A request is open until it is answered or times out.';
COMMENT ON COLUMN infor_comm.outbox.payload IS 'The request JSON, published byte for byte; NULL once the retention blanked it (see payload_sha256).';
COMMENT ON COLUMN infor_comm.outbox.payload_sha256 IS 'The SHA-256 of the payload the retention blanked (infor_comm.retention).';
COMMENT ON COLUMN infor_comm.outbox.payload_size IS 'The size in bytes of the payload the retention blanked.';
COMMENT ON COLUMN infor_comm.outbox.blanked_at IS 'When the retention blanked the payload (NULL while it is kept).';
COMMENT ON COLUMN infor_comm.outbox.available_at IS 'Not handed to a relay before this time (lease or back-off).';
COMMENT ON COLUMN infor_comm.outbox.published_at IS 'When the broker confirmed the message; NULL while unpublished.';
COMMENT ON COLUMN infor_comm.outbox.closed_at IS 'When the request stopped being open (answered, or no reply within infor_comm.response_timeout).';
COMMENT ON COLUMN infor_comm.outbox.close_reason IS 'answered; timed_out (no reply within infor_comm.response_timeout); withdrawn (never published: an older request of the client got its task).';

-- At most one open request per client: the invariant the daily job relies on.
-- At most one open request per client: every open request has its row here, and this table's
-- primary key is the rule. It lives apart from the outbox so that no index of the outbox covers
-- closed_at, and closing a request (the apply of every reply) is a HOT update. The apply leaves
-- the row of the request it closes; the next enqueue removes the rows of closed requests before
-- it opens new ones. Read it joined to the outbox, with closed_at IS NULL.
CREATE TABLE infor_comm.outbox_open (
    organization_id varchar(200) PRIMARY KEY,
    outbox_id       bigint NOT NULL
);
COMMENT ON TABLE infor_comm.outbox_open IS
    'One row per client whose latest request may be open: every open request has its row (at most one per client). The enqueue removes the rows of closed requests.';

-- The requests not yet published, by outbox_id: what lock_outbox and claim_outbox hand out,
-- oldest first, and the backlog outbox_backlog and health count. The enqueue writes a row here
-- with each outbox row, and mark_published deletes it: so the outbox needs no index on whether
-- a request is published, and marking it is a HOT update (a partial index on published_at made
-- every mark a new row version with four index entries, most of the database's work for the
-- relay). A request closed or published another way (a reply to a request whose mark was lost)
-- leaves its row here until the next enqueue deletes it; the claims skip it meanwhile. No
-- foreign key: the enqueue would check it once per request.
CREATE TABLE infor_comm.outbox_pending (
    outbox_id bigint PRIMARY KEY
);
COMMENT ON TABLE infor_comm.outbox_pending IS
    'The outbox rows not yet published, by outbox_id: the relays'' queue. Written by the enqueue, emptied by mark_published.';

-- The delivery state of every request, without its payload (what infor_comm_reader may see).
CREATE VIEW infor_comm.outbox_delivery WITH (security_invoker = true) AS
SELECT outbox_id, request_id, task_row_id, organization_id, created_at, available_at, attempts,
       last_error, published_at, closed_at, close_reason
  FROM infor_comm.outbox;
COMMENT ON VIEW infor_comm.outbox_delivery IS
    'The outbox without the request payload: when each request was created, published and closed, and why.';

-- pg_dump dumps the rows of these tables (an extension's own tables are otherwise left out)
-- and the state of the outbox's identity sequence.
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox_outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox_pending', '');
SELECT pg_catalog.pg_extension_config_dump('infor_comm.outbox_open', '');
