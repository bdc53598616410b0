-- The built-in ledger's state, chain and idempotency records (SQLite).
-- Amounts are decimal TEXT minor units (u128: SQLite has no 128-bit
-- numbers; the gateway writes only what ledger-core computed with checked
-- arithmetic). Times are ms since the Unix epoch. Hashes and addresses are
-- raw bytes.

CREATE TABLE blocks (
    chain_id      INTEGER  NOT NULL,
    height        INTEGER  NOT NULL CHECK (height >= 0),
    hash          BLOB   NOT NULL UNIQUE CHECK (length(hash) = 32),
    previous_hash BLOB   NOT NULL CHECK (length(previous_hash) = 32),
    timestamp_ms  INTEGER  NOT NULL CHECK (timestamp_ms >= 0),
    tx_root       BLOB   NOT NULL CHECK (length(tx_root) = 32),
    tx_count      INTEGER NOT NULL CHECK (tx_count >= 0),
    producer      BLOB   NOT NULL CHECK (length(producer) = 20),
    signature     BLOB   NOT NULL CHECK (length(signature) = 65),
    PRIMARY KEY (chain_id, height)
);

CREATE TABLE transactions (
    chain_id   INTEGER  NOT NULL,
    hash       BLOB   NOT NULL CHECK (length(hash) = 32),
    height     INTEGER  NOT NULL,
    position   INTEGER NOT NULL CHECK (position >= 0),
    sender     BLOB   NOT NULL CHECK (length(sender) = 20),
    nonce      INTEGER  NOT NULL CHECK (nonce >= 0),
    kind       TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    signature  BLOB   NOT NULL CHECK (length(signature) = 65),
    PRIMARY KEY (chain_id, hash),
    UNIQUE (chain_id, sender, nonce),
    UNIQUE (chain_id, height, position),
    FOREIGN KEY (chain_id, height) REFERENCES blocks (chain_id, height)
);

CREATE TABLE accounts (
    chain_id   INTEGER NOT NULL,
    address    BLOB  NOT NULL CHECK (length(address) = 20),
    next_nonce INTEGER NOT NULL CHECK (next_nonce >= 0),
    PRIMARY KEY (chain_id, address)
);

CREATE TABLE assets (
    chain_id INTEGER        NOT NULL,
    code     TEXT          NOT NULL,
    scale    INTEGER      NOT NULL CHECK (scale BETWEEN 0 AND 18),
    issuer   BLOB         NOT NULL CHECK (length(issuer) = 20),
    supply   TEXT NOT NULL CHECK (supply GLOB '[0-9]*' AND supply NOT GLOB '*[^0-9]*'),
    PRIMARY KEY (chain_id, code)
);

CREATE TABLE balances (
    chain_id INTEGER        NOT NULL,
    address  BLOB         NOT NULL CHECK (length(address) = 20),
    asset    TEXT          NOT NULL,
    amount   TEXT NOT NULL CHECK (amount GLOB '[0-9]*' AND amount NOT GLOB '*[^0-9]*'),
    PRIMARY KEY (chain_id, address, asset),
    FOREIGN KEY (chain_id, asset) REFERENCES assets (chain_id, code)
);

CREATE TABLE htlcs (
    chain_id      INTEGER        NOT NULL,
    lock_id       BLOB         NOT NULL CHECK (length(lock_id) = 32),
    sender        BLOB         NOT NULL CHECK (length(sender) = 20),
    recipient     BLOB         NOT NULL CHECK (length(recipient) = 20),
    asset         TEXT          NOT NULL,
    amount        TEXT NOT NULL CHECK (amount GLOB '[1-9]*' AND amount NOT GLOB '*[^0-9]*'),
    hashlock      BLOB         NOT NULL CHECK (length(hashlock) = 32),
    expires_at_ms INTEGER        NOT NULL,
    status        TEXT          NOT NULL CHECK (status IN ('locked', 'claimed', 'refunded')),
    preimage      BLOB         NULL CHECK (preimage IS NULL OR length(preimage) = 32),
    PRIMARY KEY (chain_id, lock_id),
    CHECK ((status = 'claimed') = (preimage IS NOT NULL))
);
CREATE INDEX htlcs_open_by_expiry ON htlcs (chain_id, expires_at_ms) WHERE status = 'locked';

-- A write answered once is answered the same way again (RFC draft
-- "The Idempotency-Key HTTP Header Field"). Scoped per tenant.
CREATE TABLE idempotency_keys (
    tenant        TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    request_hash  BLOB  NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT   NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
);
