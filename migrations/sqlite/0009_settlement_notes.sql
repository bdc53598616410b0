-- A credit or debit note resolving a disputed record (JSON: kind, amount,
-- reason, the sender's signature and, once accepted, the recipient's).
ALTER TABLE usage_records ADD COLUMN note TEXT NULL;
