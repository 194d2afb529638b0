-- Jobs for a model filled side by side with the active one (`embedq backfill --model M`).
--
-- A job's model is NULL for "the active model": the one search uses and every listener
-- embeds with by default. A model being filled is `maintained`: each row change then also
-- queues a job for it, so its vectors stay in step until it is activated or dropped.
ALTER TABLE embedq.models ADD COLUMN maintained boolean NOT NULL DEFAULT false;
ALTER TABLE embedq.jobs ADD COLUMN model text;

DROP INDEX embedq.jobs_one_pending_per_source;
CREATE UNIQUE INDEX jobs_one_pending_per_source ON embedq.jobs (content_type, source_id, model)
    NULLS NOT DISTINCT WHERE status = 'pending';

-- Functions whose signature gained a model parameter; the function files re-create them.
DROP FUNCTION IF EXISTS embedq.jobs_claim(text, integer, interval, integer, embedq.job_status);
DROP FUNCTION IF EXISTS embedq.jobs_queue(text, text[], embedq.job_op, integer);
DROP FUNCTION IF EXISTS embedq.backfill(text, text, integer, integer);
-- and one that gained a lease
DROP FUNCTION IF EXISTS embedq.jobs_set_message(bigint[], text);
