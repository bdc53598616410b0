-- Roaming settlement: operators (by TADIG code, with the address that signs
-- for them and the API tenant that acts for them), versioned bilateral
-- agreements, and usage records with their workflow (submitted, accepted and
-- anchored on the built-in ledger, disputed, superseded by a correction).

CREATE TABLE settlement_operators (
    tadig         TEXT   PRIMARY KEY CHECK (length(tadig) = 5),
    name          TEXT   NOT NULL,
    address       BYTEA  NOT NULL CHECK (length(address) = 20),
    tenant        TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX settlement_operators_by_tenant ON settlement_operators (tenant);

CREATE TABLE settlement_agreements (
    sender         TEXT    NOT NULL REFERENCES settlement_operators (tadig),
    recipient      TEXT    NOT NULL REFERENCES settlement_operators (tadig),
    currency       TEXT    NOT NULL,
    version        BIGINT  NOT NULL CHECK (version > 0),
    valid_from_ms  BIGINT  NOT NULL,
    valid_until_ms BIGINT  NOT NULL CHECK (valid_until_ms > valid_from_ms),
    rates          TEXT    NOT NULL,
    discount_bps   BIGINT  NOT NULL CHECK (discount_bps BETWEEN 0 AND 10000),
    created_at_ms  BIGINT  NOT NULL,
    PRIMARY KEY (sender, recipient, currency, version)
);

CREATE TABLE usage_records (
    record_hash          BYTEA         PRIMARY KEY CHECK (length(record_hash) = 32),
    sender               TEXT          NOT NULL REFERENCES settlement_operators (tadig),
    recipient            TEXT          NOT NULL REFERENCES settlement_operators (tadig),
    sequence             BIGINT        NOT NULL CHECK (sequence > 0),
    currency             TEXT          NOT NULL,
    period_start_ms      BIGINT        NOT NULL,
    period_end_ms        BIGINT        NOT NULL,
    total                NUMERIC(39,0) NOT NULL CHECK (total >= 0),
    body                 TEXT          NOT NULL,
    sender_signature     TEXT          NOT NULL,
    state                TEXT          NOT NULL CHECK (state IN ('submitted', 'accepted', 'disputed', 'superseded')),
    submitted_at_ms      BIGINT        NOT NULL,
    deadline_ms          BIGINT        NOT NULL,
    replaces             BYTEA         NULL,
    acceptance_signature TEXT          NULL,
    accepted_at_ms       BIGINT        NULL,
    dispute              TEXT          NULL,
    anchor_chain_id      BIGINT        NULL,
    anchor_tx_hash       BYTEA         NULL,
    anchor_signed_tx     TEXT          NULL,
    anchored             BIGINT        NOT NULL DEFAULT 0 CHECK (anchored IN (0, 1)),
    updated_at_ms        BIGINT        NOT NULL,
    version              BIGINT        NOT NULL
);
-- One live record per sender, recipient and sequence number (a correction
-- supersedes the disputed record and takes its number).
CREATE UNIQUE INDEX usage_records_live_sequence ON usage_records (sender, recipient, sequence) WHERE state <> 'superseded';
CREATE INDEX usage_records_by_sender ON usage_records (sender, submitted_at_ms);
CREATE INDEX usage_records_by_recipient ON usage_records (recipient, submitted_at_ms);
CREATE INDEX usage_records_to_anchor ON usage_records (state) WHERE state = 'accepted' AND anchored = 0;
