-- Undoes 0003_model_jobs.sql. Jobs queued for a model other than the active one are dropped.
DROP FUNCTION IF EXISTS embedq.jobs_claim(text, integer, interval, integer, embedq.job_status, text);
DROP FUNCTION IF EXISTS embedq.jobs_queue(text, text[], embedq.job_op, integer, text);
DROP FUNCTION IF EXISTS embedq.backfill(text, text, integer, integer, text);
DROP FUNCTION IF EXISTS embedq.jobs_set_message(bigint[], text, interval);
DELETE FROM embedq.jobs WHERE model IS NOT NULL;
DROP INDEX embedq.jobs_one_pending_per_source;
ALTER TABLE embedq.jobs DROP COLUMN model;
ALTER TABLE embedq.models DROP COLUMN maintained;
CREATE UNIQUE INDEX jobs_one_pending_per_source ON embedq.jobs (content_type, source_id)
    WHERE status = 'pending';
