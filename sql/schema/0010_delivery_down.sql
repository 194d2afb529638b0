-- Undoes 0010_delivery.sql. The functions that read its columns go back to revision 0009's
-- version (copied below as they were): a downgraded database keeps working with the embedq
-- release that created it, and the revisions below can be undone in turn.
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

-- Revision 0009's functions, as they were. ----------------------------------------------

-- QStash's failure callback: the message is in its DLQ; its unfinished jobs are dead.
CREATE OR REPLACE FUNCTION embedq.jobs_dead_by_message(p_message_id text, p_reason text)
RETURNS SETOF bigint
LANGUAGE sql
AS $$
    WITH changed AS (
        UPDATE embedq.jobs j
        SET status = 'dead', finished_at = now(), updated_at = now(), lease_expires_at = NULL,
            last_error = left(p_reason, 2000)
        WHERE j.message_id = p_message_id AND j.status IN ('dispatched', 'processing', 'failed')
        RETURNING j.id, j.content_type, j.source_id, j.status, j.last_error
    ), announced AS (
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(id, content_type, source_id, status, last_error)))
        FROM changed
    )
    SELECT changed.id FROM changed CROSS JOIN announced
$$;

-- Records a failure of claimed jobs. Retryable failures wait an exponential backoff
-- (base * 2^(attempts-1), capped, with +-20% jitter, at least p_min_delay_seconds) as
-- `failed`; permanent ones, and jobs out of attempts, become `dead`. Either way the error is
-- kept on the row.
--
-- With p_redelivery set (the webhook), a retryable failure goes back to `dispatched` for that
-- long instead: QStash redelivers the message itself, and the backoff is QStash's.
CREATE OR REPLACE FUNCTION embedq.jobs_fail(
    p_ids bigint[], p_attempts integer[], p_error text, p_retryable boolean,
    p_base_seconds double precision DEFAULT 2, p_max_seconds double precision DEFAULT 3600,
    p_min_delay_seconds double precision DEFAULT 0, p_redelivery interval DEFAULT NULL
) RETURNS TABLE (id bigint, status embedq.job_status)
LANGUAGE sql
AS $$
    WITH changed AS (
    UPDATE embedq.jobs j
    SET status = CASE WHEN NOT (p_retryable AND j.attempts < j.max_attempts) THEN 'dead'::embedq.job_status
                      WHEN p_redelivery IS NOT NULL THEN 'dispatched'::embedq.job_status
                      ELSE 'failed'::embedq.job_status END,
        finished_at = CASE WHEN p_retryable AND j.attempts < j.max_attempts THEN NULL ELSE now() END,
        run_after = now() + make_interval(secs => greatest(
            p_min_delay_seconds,
            least(p_max_seconds, p_base_seconds * power(2, greatest(j.attempts - 1, 0)))
                * (0.8 + random() * 0.4))),
        last_error = left(p_error, 2000), updated_at = now(),
        lease_expires_at = CASE WHEN p_retryable AND j.attempts < j.max_attempts AND p_redelivery IS NOT NULL
                                THEN now() + p_redelivery END
    FROM unnest(p_ids, p_attempts) AS claim(id, attempts)
    WHERE j.id = claim.id AND j.attempts = claim.attempts AND j.status IN ('processing', 'dispatched')
    RETURNING j.id, j.status, j.content_type, j.source_id, j.last_error
    ), announced AS (
        -- a retryable failure the webhook hands back to QStash is announced as `failed` too
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(
            id, content_type, source_id, CASE WHEN status = 'dead' THEN 'dead' ELSE 'failed' END, last_error)))
        FROM changed
    )
    SELECT changed.id, changed.status FROM changed CROSS JOIN announced
$$;

-- Returns jobs whose lease expired to `failed`, runnable at once (so they are processed or
-- published again), or to `dead` when they are out of attempts: a worker that crashed or
-- hung, or a QStash message that neither the webhook nor the failure callback ever ended.
CREATE OR REPLACE FUNCTION embedq.jobs_rescue()
RETURNS TABLE (id bigint, status embedq.job_status)
LANGUAGE sql
AS $$
    WITH changed AS (
        UPDATE embedq.jobs j
        SET status = CASE WHEN j.attempts < j.max_attempts
                          THEN 'failed'::embedq.job_status ELSE 'dead'::embedq.job_status END,
            finished_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE now() END,
            run_after = now(),
            last_error = format('lease expired while %s by %s', j.status, coalesce(j.locked_by, 'unknown')),
            lease_expires_at = NULL, updated_at = now()
        WHERE j.status IN ('processing', 'dispatched') AND j.lease_expires_at < now()
        RETURNING j.id, j.status, j.content_type, j.source_id, j.last_error
    ), announced AS (
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(id, content_type, source_id, status, last_error)))
        FROM changed
    )
    SELECT changed.id, changed.status FROM changed CROSS JOIN announced
$$;

-- Puts ended or failing jobs back in the queue with their attempts cleared. Where the source
-- already has a pending job, that job is made at least as urgent and the requeued one is
-- marked done as superseded: the pending job re-embeds the row as it is now, which is
-- exactly what the requeued job would have done.
CREATE OR REPLACE FUNCTION embedq.jobs_requeue(p_ids bigint[])
RETURNS TABLE (id bigint, status embedq.job_status, merged_into bigint)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_job embedq.jobs;
    v_pending bigint;
BEGIN
    FOR v_job IN
        SELECT * FROM embedq.jobs j WHERE j.id = ANY (p_ids)
          AND j.status IN ('done', 'dead', 'failed')
        ORDER BY j.id FOR UPDATE
    LOOP
        SELECT p.id INTO v_pending FROM embedq.jobs p
        WHERE p.status = 'pending' AND p.content_type = v_job.content_type AND p.source_id = v_job.source_id
          AND p.model IS NOT DISTINCT FROM v_job.model
        FOR UPDATE;
        IF v_pending IS NULL THEN
            UPDATE embedq.jobs j
            SET status = 'pending', attempts = 0, run_after = now(), finished_at = NULL,
                message_id = NULL, locked_by = NULL, updated_at = now()
            WHERE j.id = v_job.id;
            id := v_job.id; status := 'pending'; merged_into := NULL;
        ELSE
            UPDATE embedq.jobs p
            SET priority = least(p.priority, v_job.priority), run_after = least(p.run_after, now()),
                updated_at = now()
            WHERE p.id = v_pending;
            UPDATE embedq.jobs j
            SET status = 'done', finished_at = now(), updated_at = now(),
                last_error = format('superseded by pending job %s', v_pending)
            WHERE j.id = v_job.id;
            id := v_job.id; status := 'done'; merged_into := v_pending;
        END IF;
        RETURN NEXT;
    END LOOP;
    IF FOUND THEN
        PERFORM pg_notify('embedq_jobs', '');
    END IF;
END
$$;

-- Ends a job that has not ended yet as dead, kept for replay.
CREATE OR REPLACE FUNCTION embedq.jobs_cancel(p_id bigint)
RETURNS SETOF embedq.jobs
LANGUAGE sql
AS $$
    WITH changed AS (
        UPDATE embedq.jobs j
        SET status = 'dead', finished_at = now(), updated_at = now(), lease_expires_at = NULL,
            last_error = 'cancelled by operator'
        WHERE j.id = p_id AND j.status NOT IN ('done', 'dead')
        RETURNING j.*
    ), announced AS (
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(id, content_type, source_id, 'dead', last_error)))
        FROM changed
    )
    SELECT changed.* FROM changed CROSS JOIN announced
$$;

-- Removes the triggers and the registration. Jobs still queued for the type are ended as
-- dead (kept for replay after a re-registration); vectors are kept.
CREATE OR REPLACE FUNCTION embedq.unregister_source(content_type text, cancel_jobs boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source embedq.sources;
    v_names record;
BEGIN
    SELECT * INTO v_source FROM embedq.sources s WHERE s.content_type = unregister_source.content_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'embedq: content type % is not registered', quote_literal(coalesce(unregister_source.content_type, 'NULL'))
            USING ERRCODE = 'undefined_object';
    END IF;
    FOR v_names IN SELECT * FROM embedq._trigger_names(v_source.content_type) LOOP
        IF to_regclass(v_source.table_name) IS NOT NULL THEN
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_names.trigger_name, v_source.table_name);
        END IF;
        EXECUTE format('DROP FUNCTION IF EXISTS embedq.%I()', v_names.function_name);
    END LOOP;
    IF cancel_jobs THEN
        PERFORM embedq.jobs_ingest(NULL);  -- all of it, while registered: ingest drops unregistered types' rows
    END IF;
    DELETE FROM embedq.sources s WHERE s.content_type = v_source.content_type;
    IF cancel_jobs THEN
        UPDATE embedq.jobs j
        SET status = 'dead', finished_at = now(), updated_at = now(), lease_expires_at = NULL,
            last_error = 'content type unregistered'
        WHERE j.content_type = v_source.content_type AND j.status IN ('pending', 'failed');
    END IF;
END
$$;
