-- A lock on the target ledger serves one transfer only: an exchange's
-- counter-lock must not be taken up by a second exchange under the same
-- hashlock (from another source ledger), which would have the gateway claim
-- two source locks with one preimage.
CREATE UNIQUE INDEX transfers_one_per_target_lock ON transfers (target_chain_id, target_lock_id);
