-- Closing a settlement period: the close (its terms and the gateway's
-- signing address), one signed statement per operator and currency, and
-- each record's close (a record is closed once).

CREATE TABLE settlement_closes (
    id            TEXT   PRIMARY KEY,
    terms         TEXT   NOT NULL,
    signer        BYTEA  NOT NULL CHECK (length(signer) = 20),
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE settlement_statements (
    close_id  TEXT NOT NULL REFERENCES settlement_closes (id),
    operator  TEXT NOT NULL REFERENCES settlement_operators (tadig),
    currency  TEXT NOT NULL,
    body      TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (close_id, operator, currency)
);
CREATE INDEX settlement_statements_by_operator ON settlement_statements (operator);

ALTER TABLE usage_records ADD COLUMN close_id TEXT NULL REFERENCES settlement_closes (id);
