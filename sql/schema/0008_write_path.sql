-- A bulk statement's keys go into one inbox row (10,000 keys: some 120 kB). Compressing it took
-- longer than writing it uncompressed (pglz: about 4 ms against 0.5 ms for 10,000 keys, some 7%
-- of a 10,000-row INSERT ... SELECT); the row lives until the next ingest, so its size hardly
-- matters. Out of line, uncompressed:
ALTER TABLE embedq.job_inbox ALTER COLUMN source_ids SET STORAGE EXTERNAL;
