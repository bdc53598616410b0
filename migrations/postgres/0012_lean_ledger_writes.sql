-- Two changes to what each block writes, for throughput (issue 7,
-- docs/perf/README.md item 9). Neither relaxes a rule: each rule is kept,
-- checked in a cheaper way.
--
-- 1. An account's next nonce is no longer a row of its own. It is one more
--    than the highest nonce among the account's transactions (0 without
--    any), read through the unique index (chain_id, sender, nonce), which
--    also keeps a sender's nonces unique. Every applied transaction is a
--    row of `transactions` and nothing else moves a nonce, so the two were
--    always equal; writing the copy cost a row update per transfer. Before
--    the table goes, the migration checks that the two agree for every
--    account and that every sender's nonces run from 0 without gaps, and
--    refuses to run if not.
--
-- 2. "Every transaction row belongs to a block" was a foreign key, checked
--    by a trigger per inserted row (one look-up of the block per
--    transaction). It is now checked once per statement: an AFTER INSERT
--    statement trigger looks up the distinct blocks the new rows name, and
--    blocks and transactions are append-only (UPDATE, DELETE and TRUNCATE
--    refused), so a block that a transaction names can never go away,
--    which the foreign key's ON DELETE/UPDATE check guaranteed before, and
--    a nonce once used can never be freed again by removing its row.
--
-- Upgrading: this migration drops a table that the previous release reads
-- and writes on every commit. Stop the previous release's replicas before
-- the first replica of this one starts (deploy/README.md, "Upgrading").

DO $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM accounts a
        FULL JOIN (
            SELECT chain_id, sender, max(nonce) + 1 AS next_nonce, count(*) AS transactions
            FROM transactions
            GROUP BY chain_id, sender
        ) t ON t.chain_id = a.chain_id AND t.sender = a.address
        WHERE COALESCE(a.next_nonce, 0) <> COALESCE(t.next_nonce, 0)
           OR COALESCE(t.transactions, 0) <> COALESCE(t.next_nonce, 0)
    ) THEN
        RAISE EXCEPTION 'accounts.next_nonce disagrees with the transactions stored; migration 0012 refused'
            USING ERRCODE = 'data_corrupted';
    END IF;
END
$$;

DROP TABLE accounts;

ALTER TABLE transactions DROP CONSTRAINT transactions_chain_id_height_fkey;

CREATE FUNCTION ledger_transactions_name_blocks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM (SELECT DISTINCT chain_id, height FROM new_transactions) n
        WHERE NOT EXISTS (
            SELECT 1 FROM blocks b WHERE b.chain_id = n.chain_id AND b.height = n.height
        )
    ) THEN
        RAISE EXCEPTION 'a transaction names a block that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

-- The function reads `blocks` of this schema only: with the caller's
-- search_path, a temporary table named `blocks` (any role may create one)
-- would be read instead. The foreign key named the table itself.
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION ledger_transactions_name_blocks() SET search_path = %I, pg_catalog, pg_temp',
        current_schema()
    );
END
$$;

CREATE TRIGGER transactions_name_blocks
    AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS new_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_transactions_name_blocks();

CREATE FUNCTION ledger_history_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never updated or deleted', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER blocks_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON blocks
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_history_is_append_only();

CREATE TRIGGER transactions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_history_is_append_only();
