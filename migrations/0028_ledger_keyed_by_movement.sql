-- The ledger's primary key is the movement: (transaction, kind, movement key), the key that
-- makes each credit, debit and reversal happen once. It was already unique; the surrogate
-- `id` primary key beside it was a second index every entry wrote (a B-tree descent and a
-- WAL record per applied event) that nothing looks entries up by. `id` stays, from its
-- sequence, as the order entries were written in.
--
-- On a large ledger the new index is built under a lock that holds back writes of
-- ledger entries (and so settling) for the build; run it in a quiet window.
CREATE UNIQUE INDEX ledger_entries_movement ON ledger_entries (transaction_id, kind, movement_key);
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_pkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_transaction_id_kind_movement_key_key;
-- Renames the index to ledger_entries_pkey.
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_pkey PRIMARY KEY USING INDEX ledger_entries_movement;
