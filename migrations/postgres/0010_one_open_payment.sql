-- A statement payment is paid by one transfer at a time, and once: at most
-- one transfer with a settlement reference that is not refunded, cancelled
-- or failed (a completed one keeps its place, so a paid payment cannot be
-- paid again). Concurrent or retried payment requests meet this index.
CREATE UNIQUE INDEX transfers_one_open_payment ON transfers (reference)
    WHERE reference LIKE 'settlement:%' AND state NOT IN ('refunded', 'cancelled', 'failed');
