-- The built-in ledger's state, chain and idempotency records (PostgreSQL).
-- Amounts are NUMERIC(39,0) minor units (u128), never negative; the CHECKs
-- make an overdraft impossible even for a buggy writer. Times are ms since
-- the Unix epoch. Hashes and addresses are raw bytes.

CREATE TABLE blocks (
    chain_id      BIGINT  NOT NULL,
    height        BIGINT  NOT NULL CHECK (height >= 0),
    hash          BYTEA   NOT NULL UNIQUE CHECK (length(hash) = 32),
    previous_hash BYTEA   NOT NULL CHECK (length(previous_hash) = 32),
    timestamp_ms  BIGINT  NOT NULL CHECK (timestamp_ms >= 0),
    tx_root       BYTEA   NOT NULL CHECK (length(tx_root) = 32),
    tx_count      INTEGER NOT NULL CHECK (tx_count >= 0),
    producer      BYTEA   NOT NULL CHECK (length(producer) = 20),
    signature     BYTEA   NOT NULL CHECK (length(signature) = 65),
    PRIMARY KEY (chain_id, height)
);

CREATE TABLE transactions (
    chain_id   BIGINT  NOT NULL,
    hash       BYTEA   NOT NULL CHECK (length(hash) = 32),
    height     BIGINT  NOT NULL,
    position   INTEGER NOT NULL CHECK (position >= 0),
    sender     BYTEA   NOT NULL CHECK (length(sender) = 20),
    nonce      BIGINT  NOT NULL CHECK (nonce >= 0),
    kind       TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    signature  BYTEA   NOT NULL CHECK (length(signature) = 65),
    PRIMARY KEY (chain_id, hash),
    UNIQUE (chain_id, sender, nonce),
    UNIQUE (chain_id, height, position),
    FOREIGN KEY (chain_id, height) REFERENCES blocks (chain_id, height)
);

CREATE TABLE accounts (
    chain_id   BIGINT NOT NULL,
    address    BYTEA  NOT NULL CHECK (length(address) = 20),
    next_nonce BIGINT NOT NULL CHECK (next_nonce >= 0),
    PRIMARY KEY (chain_id, address)
);

CREATE TABLE assets (
    chain_id BIGINT        NOT NULL,
    code     TEXT          NOT NULL,
    scale    SMALLINT      NOT NULL CHECK (scale BETWEEN 0 AND 18),
    issuer   BYTEA         NOT NULL CHECK (length(issuer) = 20),
    supply   NUMERIC(39,0) NOT NULL CHECK (supply >= 0),
    PRIMARY KEY (chain_id, code)
);

CREATE TABLE balances (
    chain_id BIGINT        NOT NULL,
    address  BYTEA         NOT NULL CHECK (length(address) = 20),
    asset    TEXT          NOT NULL,
    amount   NUMERIC(39,0) NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (chain_id, address, asset),
    FOREIGN KEY (chain_id, asset) REFERENCES assets (chain_id, code)
);

CREATE TABLE htlcs (
    chain_id      BIGINT        NOT NULL,
    lock_id       BYTEA         NOT NULL CHECK (length(lock_id) = 32),
    sender        BYTEA         NOT NULL CHECK (length(sender) = 20),
    recipient     BYTEA         NOT NULL CHECK (length(recipient) = 20),
    asset         TEXT          NOT NULL,
    amount        NUMERIC(39,0) NOT NULL CHECK (amount > 0),
    hashlock      BYTEA         NOT NULL CHECK (length(hashlock) = 32),
    expires_at_ms BIGINT        NOT NULL,
    status        TEXT          NOT NULL CHECK (status IN ('locked', 'claimed', 'refunded')),
    preimage      BYTEA         NULL CHECK (preimage IS NULL OR length(preimage) = 32),
    PRIMARY KEY (chain_id, lock_id),
    CHECK ((status = 'claimed') = (preimage IS NOT NULL))
);
CREATE INDEX htlcs_open_by_expiry ON htlcs (chain_id, expires_at_ms) WHERE status = 'locked';

-- A write answered once is answered the same way again (RFC draft
-- "The Idempotency-Key HTTP Header Field"). Scoped per tenant.
CREATE TABLE idempotency_keys (
    tenant        TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    request_hash  BYTEA  NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, key)
);
