-- Every delivery ends, dead workers are noticed, the weekly retry knows what can succeed.

-- Why a job died, as a class (embedq.jobs.FailureCause mirrors it; a test keeps them equal).
-- Transient causes (delivery, outage, rate_limit) may pass by themselves: the weekly retry
-- requeues their dead jobs. The others need a change first (the text, the provider, the
-- registration, the configuration) and are replayed by hand.
CREATE TYPE embedq.failure_cause AS ENUM (
    'delivery', 'outage', 'rate_limit',
    'bad_input', 'dimensions', 'rejected', 'unregistered', 'wrong_model', 'cancelled', 'crash'
);

-- failed_deliveries: QStash messages of this job that ended without an outcome (QStash gave up,
-- or nothing was heard within EMBEDQ_DISPATCH_TIMEOUT). Each also counts as an attempt; after
-- EMBEDQ_MAX_FAILED_DELIVERIES a listener processes the job itself.
ALTER TABLE embedq.jobs
    ADD COLUMN cause embedq.failure_cause,
    ADD COLUMN failed_deliveries integer NOT NULL DEFAULT 0
        CONSTRAINT jobs_failed_deliveries_non_negative CHECK (failed_deliveries >= 0),
    ADD CONSTRAINT jobs_cause_only_when_dead CHECK (cause IS NULL OR status = 'dead');

-- Dead jobs of an older embedq: their cause, where the error says it.
UPDATE embedq.jobs
SET cause = CASE
        WHEN last_error = 'cancelled by operator' THEN 'cancelled'
        WHEN last_error = 'content type unregistered' THEN 'unregistered'
        WHEN last_error LIKE 'QStash gave up%' OR last_error LIKE 'lease expired while dispatched%' THEN 'delivery'
        WHEN last_error LIKE 'lease expired while processing%' THEN 'crash'
    END::embedq.failure_cause
WHERE status = 'dead';

-- The weekly retry reads dead jobs by cause; a failure callback or a DLQ entry finds the jobs of
-- a message still waiting for it.
CREATE INDEX jobs_dead_by_cause ON embedq.jobs (cause) WHERE status = 'dead';
CREATE INDEX jobs_dispatched_by_message ON embedq.jobs (message_id) WHERE status = 'dispatched';

-- Webhooks heartbeat too (the rescuer returns the jobs of a worker unseen for too long), and a
-- listener notes the last delivery problem it diagnosed (`embedq status` shows it).
ALTER TABLE embedq.workers
    ADD COLUMN role text NOT NULL DEFAULT 'listener' CONSTRAINT workers_role CHECK (role IN ('listener', 'webhook')),
    ADD COLUMN problem text,
    ADD COLUMN problem_at timestamptz;

-- When each recurring task last ran, whoever ran it (a listener's timer, `embedq up`, a QStash
-- schedule): any number of processes share one schedule, and a restart does not reset it.
CREATE TABLE embedq.schedule_runs (
    task        text PRIMARY KEY,
    last_run_at timestamptz NOT NULL
);

-- Functions whose signature changed or that are gone; the function files re-create the others.
DROP FUNCTION IF EXISTS embedq.jobs_fail(bigint[], integer[], text, boolean, double precision, double precision,
                                         double precision, interval);
DROP FUNCTION IF EXISTS embedq.jobs_rescue();
DROP FUNCTION IF EXISTS embedq.jobs_dead_by_message(text, text);
