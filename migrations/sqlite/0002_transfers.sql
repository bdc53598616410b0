-- Cross-ledger transfers run by this gateway as a connector between two of
-- its built-in ledgers: the transfer, its append-only event history, and the
-- ledger actions it takes, written before they are submitted (write-ahead).

CREATE TABLE transfers (
    id                    TEXT          PRIMARY KEY,
    tenant                TEXT          NOT NULL,
    state                 TEXT          NOT NULL,
    source_chain_id       INTEGER        NOT NULL,
    target_chain_id       INTEGER        NOT NULL,
    source_asset          TEXT          NOT NULL,
    target_asset          TEXT          NOT NULL,
    amount                TEXT NOT NULL CHECK (amount GLOB '[1-9]*' AND amount NOT GLOB '*[^0-9]*'),
    sender                BLOB         NOT NULL CHECK (length(sender) = 20),
    recipient             BLOB         NOT NULL CHECK (length(recipient) = 20),
    connector             BLOB         NOT NULL CHECK (length(connector) = 20),
    hashlock              BLOB         NOT NULL CHECK (length(hashlock) = 32),
    source_lock_by_ms     INTEGER        NOT NULL,
    source_expires_at_ms  INTEGER        NOT NULL,
    target_expires_at_ms  INTEGER        NOT NULL,
    source_lock_id        BLOB         NULL,
    target_lock_id        BLOB         NULL,
    preimage              BLOB         NULL,
    created_at_ms         INTEGER        NOT NULL,
    updated_at_ms         INTEGER        NOT NULL,
    version               INTEGER        NOT NULL
);
CREATE INDEX transfers_active ON transfers (state) WHERE state NOT IN ('completed', 'refunded', 'cancelled', 'failed');
CREATE INDEX transfers_by_tenant ON transfers (tenant, created_at_ms);
-- A hashlock serves one transfer only, ever: a second transfer under it
-- could be backed by the same sender lock and make the connector pay twice.
CREATE UNIQUE INDEX transfers_one_per_hashlock ON transfers (source_chain_id, hashlock);
CREATE UNIQUE INDEX transfers_one_per_source_lock ON transfers (source_chain_id, source_lock_id);

CREATE TABLE transfer_events (
    transfer_id TEXT   NOT NULL REFERENCES transfers (id),
    seq         INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    kind        TEXT   NOT NULL,
    detail      TEXT   NOT NULL,
    PRIMARY KEY (transfer_id, seq)
);

CREATE TABLE transfer_actions (
    transfer_id TEXT   NOT NULL REFERENCES transfers (id),
    kind        TEXT   NOT NULL,
    chain_id    INTEGER NOT NULL,
    tx_hash     BLOB  NOT NULL CHECK (length(tx_hash) = 32),
    signed_tx   TEXT   NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (transfer_id, kind)
);
