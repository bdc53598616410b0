-- SATP sessions with peer gateways (draft-ietf-satp-core): the session and
-- the transfer it serves, every signed message sent and received in order
-- (the client writes its message here before sending it; the server writes
-- a received message and its answer together), and the hash-chained,
-- signed log of the gateway-recovery draft (an entry before and after
-- every step). All append-only but for the session's status.

CREATE TABLE satp_sessions (
    session_id     TEXT   PRIMARY KEY,
    transfer_id    TEXT   NOT NULL UNIQUE,
    role           TEXT   NOT NULL CHECK (role IN ('client', 'server')),
    peer           TEXT   NOT NULL,
    context_id     TEXT   NOT NULL,
    status         TEXT   NOT NULL CHECK (status IN ('open', 'complete', 'aborted')),
    source_lock_id TEXT   NULL,
    created_at_ms  BIGINT NOT NULL
);

CREATE TABLE satp_messages (
    session_id   TEXT   NOT NULL REFERENCES satp_sessions (session_id),
    seq          BIGINT NOT NULL CHECK (seq >= 0),
    sender       TEXT   NOT NULL CHECK (sender IN ('client', 'server')),
    message_type TEXT   NOT NULL,
    envelope     TEXT   NOT NULL,
    hash         TEXT   NOT NULL,
    at_ms        BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE satp_log (
    session_id TEXT   NOT NULL,
    seq        BIGINT NOT NULL CHECK (seq >= 0),
    entry      TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    signature  TEXT   NOT NULL,
    PRIMARY KEY (session_id, seq)
);
