-- Paying statements through transfers: a transfer may carry a reference
-- (for a statement payment: settlement:<closeId>:<currency>:<payer>:<payee>),
-- and each payment of a close is linked to the transfers that pay it (a new
-- one only once every earlier one ended without completing).

ALTER TABLE transfers ADD COLUMN reference TEXT NULL;

CREATE TABLE settlement_payments (
    transfer_id   TEXT   PRIMARY KEY REFERENCES transfers (id),
    close_id      TEXT   NOT NULL REFERENCES settlement_closes (id),
    currency      TEXT   NOT NULL,
    payer         TEXT   NOT NULL REFERENCES settlement_operators (tadig),
    payee         TEXT   NOT NULL REFERENCES settlement_operators (tadig),
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX settlement_payments_by_close ON settlement_payments (close_id, currency, payer, payee);
