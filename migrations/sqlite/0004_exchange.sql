-- Exchanges (payment-versus-payment, delivery-versus-payment): two parties
-- each lock on one ledger under one hashlock, no connector liquidity. The
-- kind of a transfer, and the amount of its target leg (which may differ
-- from the source leg's in an exchange; NULL for a connector transfer,
-- where both legs carry `amount`).
ALTER TABLE transfers ADD COLUMN kind TEXT NOT NULL DEFAULT 'connector' CHECK (kind IN ('connector', 'exchange'));
ALTER TABLE transfers ADD COLUMN target_amount NUMERIC(39,0) NULL CHECK (target_amount IS NULL OR target_amount > 0);
