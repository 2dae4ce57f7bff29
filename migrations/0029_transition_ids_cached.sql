-- Each session takes audit-trail ids 32 at a time instead of reading the sequence's
-- page for every entry (a buffer access per applied event). Ids stay unique, but entries
-- written by different sessions no longer get them in the order they were written: a
-- transaction's audit trail reads in the order of `version`, the version each entry's
-- change made (changes of one transaction are serialized by its row lock). Ledger
-- entries keep an uncached sequence: their id is the order a transaction's movements
-- were written in.
ALTER SEQUENCE transaction_transitions_id_seq CACHE 32;
