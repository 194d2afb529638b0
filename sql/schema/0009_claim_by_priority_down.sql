-- Undoes 0009_claim_by_priority.sql: jobs_claim goes back to its signature without a priority
-- range, as the revisions before it created it.
DROP FUNCTION IF EXISTS embedq.jobs_claim(text, integer, interval, integer, embedq.job_status, text, integer, integer);

CREATE OR REPLACE FUNCTION embedq.jobs_claim(p_worker text, p_limit integer, p_lease interval,
                                             p_max_attempts integer DEFAULT NULL,
                                             p_to embedq.job_status DEFAULT 'processing',
                                             p_model text DEFAULT NULL)
RETURNS SETOF embedq.jobs
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_to NOT IN ('processing', 'dispatched') THEN
        RAISE EXCEPTION 'embedq: jobs are claimed for processing or dispatched, not %', p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM embedq.jobs_ingest();
    RETURN QUERY
    WITH claimable AS (
        SELECT j.id
        FROM embedq.jobs j
        WHERE j.status IN ('pending', 'failed')
          AND j.run_after <= now()
          AND (p_model IS NULL OR j.model = p_model
               OR (j.model IS NULL AND NOT EXISTS (
                       SELECT 1 FROM embedq.models m WHERE m.active AND m.name <> p_model)))
          AND NOT EXISTS (
              SELECT 1 FROM embedq.jobs busy
              WHERE busy.status IN ('processing', 'dispatched')
                AND busy.content_type = j.content_type AND busy.source_id = j.source_id)
        ORDER BY j.priority, j.run_after, j.id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE embedq.jobs j
        SET status = p_to, attempts = j.attempts + (p_to = 'processing')::integer, locked_by = p_worker,
            lease_expires_at = now() + p_lease, updated_at = now(),
            max_attempts = coalesce(p_max_attempts, j.max_attempts)
        FROM claimable
        WHERE j.id = claimable.id
        RETURNING j.*
    ), announced AS (
        -- dispatched jobs are announced once their message is recorded (jobs_set_message)
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(c.id, c.content_type, c.source_id, 'processing')))
        FROM claimed c WHERE p_to = 'processing'
    )
    SELECT claimed.* FROM claimed CROSS JOIN announced;
END
$$;
