-- An account's next nonce is no longer a row of its own (as on
-- PostgreSQL, migrations/postgres/0012): it is one more than the highest
-- nonce among the account's transactions (0 without any), read through the
-- unique index (chain_id, sender, nonce). Every applied transaction is a row
-- of `transactions` and nothing else moves a nonce, so the two were always
-- equal. Before the table goes, the migration checks that they agree for
-- every account and that every sender's nonces run from 0 without gaps: the
-- CHECK below fails the migration (and its transaction) if not.
--
-- Because a nonce is now read from the transactions that used it, blocks
-- and transactions become append-only (UPDATE and DELETE refused by
-- triggers, as on PostgreSQL): removing a sender's newest transaction would
-- otherwise free its nonce for a replay of that very transaction. SQLite
-- keeps its foreign key from transactions to blocks: its per-row check is
-- an in-process index look-up, not the trigger and query per row that made
-- it costly on PostgreSQL.

CREATE TEMP TABLE migration_0012_check (consistent INTEGER NOT NULL CHECK (consistent = 1));

INSERT INTO migration_0012_check (consistent)
SELECT CASE WHEN EXISTS (
    SELECT 1
    FROM accounts a
    LEFT JOIN (
        SELECT chain_id, sender, max(nonce) + 1 AS next_nonce, count(*) AS transactions
        FROM transactions
        GROUP BY chain_id, sender
    ) t ON t.chain_id = a.chain_id AND t.sender = a.address
    WHERE a.next_nonce <> COALESCE(t.next_nonce, 0)
) OR EXISTS (
    SELECT 1
    FROM (
        SELECT chain_id, sender, max(nonce) + 1 AS next_nonce, count(*) AS transactions
        FROM transactions
        GROUP BY chain_id, sender
    ) t
    LEFT JOIN accounts a ON a.chain_id = t.chain_id AND a.address = t.sender
    WHERE a.next_nonce IS NOT t.next_nonce OR t.transactions <> t.next_nonce
) THEN 0 ELSE 1 END;

DROP TABLE migration_0012_check;

DROP TABLE accounts;

CREATE TRIGGER blocks_no_update BEFORE UPDATE ON blocks
BEGIN
    SELECT RAISE(ABORT, 'blocks rows are never updated or deleted');
END;

CREATE TRIGGER blocks_no_delete BEFORE DELETE ON blocks
BEGIN
    SELECT RAISE(ABORT, 'blocks rows are never updated or deleted');
END;

CREATE TRIGGER transactions_no_update BEFORE UPDATE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions rows are never updated or deleted');
END;

CREATE TRIGGER transactions_no_delete BEFORE DELETE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions rows are never updated or deleted');
END;
