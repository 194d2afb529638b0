-- "Is this row's embedding current?" (embedq.rows.row_status, GET /v1/rows/...) reads a row's
-- latest jobs whatever their status; the partial indexes only cover pending and in-flight jobs.
CREATE INDEX IF NOT EXISTS jobs_by_source ON embedq.jobs (content_type, source_id, id);
