-- Undoes 0008_write_path.sql. The triggers it rebuilt write the same inbox rows into the same
-- tables, so they work under revision 0005 unchanged.
ALTER TABLE embedq.job_inbox ALTER COLUMN source_ids SET STORAGE EXTENDED;
