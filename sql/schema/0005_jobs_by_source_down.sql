DROP INDEX IF EXISTS embedq.jobs_by_source;
