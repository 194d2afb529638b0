-- Undoes 0010_delivery.sql. The functions stay at head's version (see 0003's downgrade): the
-- ones that read the new columns go with them.
DROP FUNCTION IF EXISTS embedq.jobs_undelivered(text, text, bigint[]);
DROP FUNCTION IF EXISTS embedq.jobs_fail(bigint[], integer[], text, boolean, double precision, double precision,
                                         double precision, interval, text);
DROP FUNCTION IF EXISTS embedq.jobs_rescue(interval);
DROP TABLE IF EXISTS embedq.schedule_runs;
ALTER TABLE embedq.workers DROP COLUMN role, DROP COLUMN problem, DROP COLUMN problem_at;
DROP INDEX IF EXISTS embedq.jobs_dispatched_by_message;
DROP INDEX IF EXISTS embedq.jobs_dead_by_cause;
ALTER TABLE embedq.jobs DROP CONSTRAINT jobs_cause_only_when_dead, DROP COLUMN failed_deliveries, DROP COLUMN cause;
DROP TYPE IF EXISTS embedq.failure_cause;
