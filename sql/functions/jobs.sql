-- Job state transitions, each one atomic. Idempotent: CREATE OR REPLACE only.
--
-- A claim is identified by (id, attempts): claiming increments attempts, so a worker whose
-- lease expired and whose job was claimed again cannot complete or fail the new claim.

-- Announces job state changes on channel embedq_events (GET /v1/events streams them).
-- p_jobs holds [job id, content_type, source_id, event, error] items; error is null, or why a
-- `failed` or `dead` job failed (the last two items may be left out).
-- Each job's event draws an id from embedq.event_id_seq, so every webhook replica names an event
-- alike and a client resumes on any of them with Last-Event-ID. PostgreSQL delivers
-- notifications in commit order to every listener; within a transaction, ids follow the order
-- of its notifications.
-- One NOTIFY per event kind and error text, per transaction:
--     {"event": "failed", "error": "...", "jobs": [[job id, content_type, source_id, event id], ...]}
-- split only where a payload would pass PostgreSQL's 8,000-byte limit. An error is cut to 300
-- characters; an absurdly long key is sent as null.
CREATE OR REPLACE FUNCTION embedq.jobs_announce(p_jobs jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_group record;
    v_head text;
    v_item text;
    v_buffer text;
    v_sent integer := 0;
BEGIN
    IF p_jobs IS NULL OR jsonb_array_length(p_jobs) = 0 THEN
        RETURN 0;
    END IF;
    FOR v_group IN
        SELECT DISTINCT e ->> 3 AS event, left(e ->> 4, 300) AS error FROM jsonb_array_elements(p_jobs) e
    LOOP
        v_head := format('{"event": %s, ', to_jsonb(v_group.event))
            || CASE WHEN v_group.error IS NULL THEN '' ELSE format('"error": %s, ', to_jsonb(v_group.error)) END
            || '"jobs": [';
        v_buffer := NULL;
        FOR v_item IN
            -- the target list is evaluated after ORDER BY: ids increase with the job ids
            SELECT jsonb_build_array(
                       e -> 0, e -> 1,
                       CASE WHEN octet_length((e -> 2)::text) > 2000 THEN NULL ELSE e -> 2 END,
                       nextval('embedq.event_id_seq'))::text
            FROM jsonb_array_elements(p_jobs) e
            WHERE e ->> 3 = v_group.event AND left(e ->> 4, 300) IS NOT DISTINCT FROM v_group.error
            ORDER BY (e ->> 0)::bigint
        LOOP
            IF v_buffer IS NOT NULL
               AND octet_length(v_head) + octet_length(v_buffer) + octet_length(v_item) > 7900 THEN
                PERFORM pg_notify('embedq_events', v_head || v_buffer || ']}');
                v_sent := v_sent + 1;
                v_buffer := NULL;
            END IF;
            v_buffer := coalesce(v_buffer || ', ', '') || v_item;
        END LOOP;
        PERFORM pg_notify('embedq_events', v_head || v_buffer || ']}');
        v_sent := v_sent + 1;
    END LOOP;
    RETURN v_sent;
END
$$;

-- Moves what the triggers wrote to embedq.job_inbox into embedq.jobs: one job per source,
-- coalesced with the source's pending job if it has one (the most urgent priority and the
-- latest operation win). SKIP LOCKED lets concurrent claimers ingest different inbox rows.
-- The registration is read here, not in the triggers: a job gets its source's priority as it is
-- now, and the rows of a source that is disabled (or no longer registered) are dropped.
-- The job is for the active model (model NULL), plus one for each model being filled side by
-- side (models.maintained), so that model's vectors stay in step too.
-- p_max_rows NULL: the whole inbox. Returns the number of jobs created or updated.
CREATE OR REPLACE FUNCTION embedq.jobs_ingest(p_max_rows integer DEFAULT 1000)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_count bigint;
BEGIN
    WITH taken AS (
        DELETE FROM embedq.job_inbox i
        -- the most urgent statements first: a backlog written as thousands of statements must not
        -- make an urgent edit wait for as many claims (a type's statements stay in their order)
        WHERE i.id IN (SELECT x.id FROM embedq.job_inbox x ORDER BY x.priority, x.id LIMIT p_max_rows
                       FOR UPDATE SKIP LOCKED)
        RETURNING i.*
    ), touched AS (
        SELECT t.content_type, u.source_id,
               (array_agg(t.op ORDER BY t.id DESC))[1] AS op,
               min(s.priority) AS priority, min(t.created_at) AS created_at
        FROM taken t
        JOIN embedq.sources s ON s.content_type = t.content_type AND s.enabled
        CROSS JOIN LATERAL unnest(t.source_ids) AS u(source_id)
        WHERE u.source_id IS NOT NULL  -- a row without a key cannot be named; it must not block the rest
        GROUP BY t.content_type, u.source_id
    )
    , queued AS (
        INSERT INTO embedq.jobs (content_type, source_id, model, op, priority, created_at, run_after)
        SELECT t.content_type, t.source_id, m.model, t.op, t.priority, t.created_at, t.created_at
        FROM touched t
        CROSS JOIN (SELECT NULL::text AS model
                    UNION ALL
                    SELECT name FROM embedq.models WHERE maintained AND NOT active) AS m
        ON CONFLICT (content_type, source_id, model) WHERE status = 'pending'
        DO UPDATE SET op = excluded.op,
                      priority = least(embedq.jobs.priority, excluded.priority),
                      updated_at = now()
        RETURNING id, content_type, source_id
    )
    SELECT count(*), embedq.jobs_announce(jsonb_agg(jsonb_build_array(id, content_type, source_id, 'queued')))
    INTO v_count
    FROM queued;
    RETURN v_count;
END
$$;

-- Claims up to p_limit runnable jobs, most urgent first, and leases them to p_worker.
-- FOR UPDATE SKIP LOCKED lets any number of listeners claim side by side without waiting on
-- each other's rows. A job whose source already has a job in flight (processing, or
-- dispatched to QStash) is left for later: two workers embedding the same row at once could
-- otherwise commit an older text last.
-- p_to = 'processing': the listener processes them itself (one more attempt).
-- p_to = 'dispatched' (QStash mode): they are published, with a lease long enough to publish;
-- jobs_set_message then extends it to as long as QStash may take to deliver them, retries
-- included. The rescuer re-publishes them if neither the webhook nor the failure callback
-- has ended them by then. Attempts are counted where the
-- work happens, when the webhook accepts them.
-- p_max_attempts (the claiming listener's EMBEDQ_MAX_ATTEMPTS) replaces the table default
-- the triggers wrote, which cannot know the listener's setting.
-- p_model (the model the listener embeds with) limits the claim to jobs queued for that model,
-- and to the active model's jobs (model NULL) when it is the active one, or no model is
-- active yet. NULL claims any job.
-- p_min_priority .. p_max_priority (NULL: unbounded) limit the claim to one priority tier: in
-- QStash mode each tier is claimed up to its own cap of jobs in flight, so a backlog that
-- fills its tier's cap never holds back a more urgent tier. The bounds are index conditions
-- on jobs_claimable (priority, run_after, id): a tier with nothing runnable costs one probe.
CREATE OR REPLACE FUNCTION embedq.jobs_claim(p_worker text, p_limit integer, p_lease interval,
                                             p_max_attempts integer DEFAULT NULL,
                                             p_to embedq.job_status DEFAULT 'processing',
                                             p_model text DEFAULT NULL,
                                             p_min_priority integer DEFAULT NULL,
                                             p_max_priority integer DEFAULT NULL)
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
          AND j.priority >= coalesce(p_min_priority, -32768) AND j.priority <= coalesce(p_max_priority, 32767)
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

-- Records the QStash message that carries dispatched jobs.
CREATE OR REPLACE FUNCTION embedq.jobs_set_message(p_ids bigint[], p_message_id text, p_lease interval)
RETURNS void
LANGUAGE sql
AS $$
    -- QStash's first delivery can overtake this call: the webhook may already have taken the
    -- jobs (processing, failed, done). They still need the id: a failure callback finds its
    -- jobs by it. A job re-dispatched since under another message keeps that one.
    -- The dispatch claim's lease only covers publishing; a job still waiting for its delivery
    -- gets p_lease (EMBEDQ_DISPATCH_TIMEOUT) from here. If this never runs (the database went
    -- away after the publish), the short claim lease lapses and the jobs are published again.
    WITH changed AS (
        UPDATE embedq.jobs
        SET message_id = p_message_id, updated_at = now(),
            lease_expires_at = CASE WHEN status = 'dispatched' THEN now() + p_lease ELSE lease_expires_at END
        WHERE id IN (SELECT x.id FROM embedq.jobs x
                     WHERE x.id = ANY (p_ids) AND (x.status = 'dispatched' OR x.message_id IS NULL)
                     ORDER BY x.id FOR UPDATE)
        RETURNING id, content_type, source_id, status
    )
    SELECT FROM changed HAVING embedq.jobs_announce(
        jsonb_agg(jsonb_build_array(id, content_type, source_id, 'dispatched'))
            FILTER (WHERE status = 'dispatched')) IS NOT NULL
$$;

-- Undoes a dispatch claim whose publish failed, so the jobs can be processed another way.
CREATE OR REPLACE FUNCTION embedq.jobs_undispatch(p_ids bigint[], p_lease interval)
RETURNS SETOF embedq.jobs
LANGUAGE sql
AS $$
    WITH changed AS (
        UPDATE embedq.jobs j
        SET status = 'processing', attempts = j.attempts + 1, lease_expires_at = now() + p_lease,
            updated_at = now()
        WHERE j.id = ANY (p_ids) AND j.status = 'dispatched'
        RETURNING j.*
    ), announced AS (
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(id, content_type, source_id, 'processing')))
        FROM changed
    )
    SELECT changed.* FROM changed CROSS JOIN announced
$$;

-- The webhook takes jobs delivered by QStash: each becomes `processing`, with one more
-- attempt, unless it is already done or dead, or its row is being embedded elsewhere (a
-- duplicate delivery running at the same moment). Those are skipped; the delivery still
-- succeeds for them.
CREATE OR REPLACE FUNCTION embedq.jobs_accept(p_ids bigint[], p_worker text, p_lease interval)
RETURNS SETOF embedq.jobs
LANGUAGE sql
AS $$
    -- FOR UPDATE waits rather than skips: QStash may deliver before the publisher's
    -- jobs_set_message has committed, and a skipped job would sit `dispatched` until the
    -- dispatch timeout. The wait is milliseconds; after it the status is checked again, so a
    -- duplicate delivery finds the jobs `processing` (or done) and leaves them. Rows are locked
    -- in id order, like jobs_set_message does, so the two cannot deadlock.
    WITH acceptable AS (
        SELECT j.id FROM embedq.jobs j
        WHERE j.id = ANY (p_ids) AND j.status IN ('dispatched', 'pending', 'failed')
          AND NOT EXISTS (
              SELECT 1 FROM embedq.jobs busy
              WHERE busy.status = 'processing'
                AND busy.content_type = j.content_type AND busy.source_id = j.source_id)
        ORDER BY j.id
        FOR UPDATE
    ), changed AS (
        UPDATE embedq.jobs j
        SET status = 'processing', attempts = j.attempts + 1, locked_by = p_worker,
            lease_expires_at = now() + p_lease, updated_at = now()
        FROM acceptable
        WHERE j.id = acceptable.id
        RETURNING j.*
    ), announced AS (
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(id, content_type, source_id, 'processing')))
        FROM changed
    )
    SELECT changed.* FROM changed CROSS JOIN announced
$$;

-- A QStash message ended without an outcome: QStash gave up on it (its failure callback, or
-- its DLQ entry read by a listener), and p_reason says why. Each of its jobs still waiting for
-- it counts one failed delivery and one attempt: back to `failed`, runnable at once (published
-- again, or processed by a listener once EMBEDQ_MAX_FAILED_DELIVERIES is reached), or `dead`
-- out of attempts, with cause `delivery`. The message id is cleared: the same message reported
-- twice (callback and DLQ) counts once, and a job published again meanwhile is not touched.
-- p_job_ids (the ids in the message's body) also finds the jobs whose message was never recorded
-- (the database went away between the publish and jobs_set_message): they would otherwise
-- wait for their publish lease to lapse.
-- plpgsql (here and below wherever a body reads columns of a later revision): every revision
-- re-applies this file, and only plpgsql bodies are not checked against the tables up front.
CREATE OR REPLACE FUNCTION embedq.jobs_undelivered(p_message_id text, p_reason text, p_job_ids bigint[] DEFAULT NULL)
RETURNS TABLE (id bigint, status embedq.job_status)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH changed AS (
        UPDATE embedq.jobs j
        SET attempts = j.attempts + 1, failed_deliveries = j.failed_deliveries + 1,
            status = CASE WHEN j.attempts + 1 < j.max_attempts
                          THEN 'failed'::embedq.job_status ELSE 'dead'::embedq.job_status END,
            finished_at = CASE WHEN j.attempts + 1 < j.max_attempts THEN NULL ELSE now() END,
            cause = CASE WHEN j.attempts + 1 < j.max_attempts THEN NULL ELSE 'delivery'::embedq.failure_cause END,
            run_after = now(), lease_expires_at = NULL, message_id = NULL, updated_at = now(),
            last_error = left(format('QStash message %s: %s', p_message_id, p_reason), 2000)
        WHERE j.status = 'dispatched'
          AND (j.message_id = p_message_id OR (j.message_id IS NULL AND j.id = ANY (p_job_ids)))
        RETURNING j.id, j.status, j.content_type, j.source_id, j.last_error
    ), announced AS (
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(c.id, c.content_type, c.source_id, c.status, c.last_error)))
        FROM changed c
    )
    SELECT changed.id, changed.status FROM changed CROSS JOIN announced;
    IF FOUND THEN
        PERFORM pg_notify('embedq_jobs', '');
    END IF;
END
$$;

-- Ends claimed jobs as done. Returns the ids that were still this claim's to end.
CREATE OR REPLACE FUNCTION embedq.jobs_complete(p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE sql
AS $$
    WITH changed AS (
        UPDATE embedq.jobs j
        SET status = 'done', finished_at = now(), updated_at = now(), lease_expires_at = NULL,
            last_error = NULL
        FROM unnest(p_ids, p_attempts) AS claim(id, attempts)
        WHERE j.id = claim.id AND j.attempts = claim.attempts AND j.status IN ('processing', 'dispatched')
        RETURNING j.id, j.content_type, j.source_id, j.status
    ), announced AS (
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(id, content_type, source_id, status))) FROM changed
    )
    SELECT changed.id FROM changed CROSS JOIN announced
$$;

-- Records a failure of claimed jobs. Retryable failures wait an exponential backoff
-- (base * 2^(attempts-1), capped, with +-20% jitter, at least p_min_delay_seconds) as
-- `failed`; permanent ones, and jobs out of attempts, become `dead`, with p_cause (an
-- embedq.failure_cause; NULL: `outage` for a retryable failure, `rejected` for a permanent
-- one). Either way the error is kept on the row.
--
-- With p_redelivery set (the webhook), a retryable failure goes back to `dispatched` for that
-- long instead: QStash redelivers the message itself, and the backoff is QStash's.
CREATE OR REPLACE FUNCTION embedq.jobs_fail(
    p_ids bigint[], p_attempts integer[], p_error text, p_retryable boolean,
    p_base_seconds double precision DEFAULT 2, p_max_seconds double precision DEFAULT 3600,
    p_min_delay_seconds double precision DEFAULT 0, p_redelivery interval DEFAULT NULL,
    p_cause text DEFAULT NULL
) RETURNS TABLE (id bigint, status embedq.job_status)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH changed AS (
    UPDATE embedq.jobs j
    SET status = CASE WHEN NOT (p_retryable AND j.attempts < j.max_attempts) THEN 'dead'::embedq.job_status
                      WHEN p_redelivery IS NOT NULL THEN 'dispatched'::embedq.job_status
                      ELSE 'failed'::embedq.job_status END,
        finished_at = CASE WHEN p_retryable AND j.attempts < j.max_attempts THEN NULL ELSE now() END,
        cause = CASE WHEN p_retryable AND j.attempts < j.max_attempts THEN NULL
                     ELSE coalesce(p_cause, CASE WHEN p_retryable THEN 'outage' ELSE 'rejected' END)::embedq.failure_cause
                END,
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
            c.id, c.content_type, c.source_id, CASE WHEN c.status = 'dead' THEN 'dead' ELSE 'failed' END, c.last_error)))
        FROM changed c
    )
    SELECT changed.id, changed.status FROM changed CROSS JOIN announced;
END
$$;

-- Returns to the queue the jobs nobody will end:
-- - jobs whose lease expired: their worker crashed or hung, or, for `dispatched` jobs, QStash
--   never ended their message (no delivery, no failure callback, no DLQ entry read) within
--   EMBEDQ_DISPATCH_TIMEOUT. That counts as a failed delivery and an attempt, as
--   jobs_undelivered does: a message that can never be delivered is not published forever.
-- - jobs `processing` by a worker (listener or webhook) unseen for p_worker_timeout in
--   embedq.workers: killed or cut off; its jobs need not wait out their lease. A webhook's
--   claims are named `<worker>:<message id>`. Not judged while the server itself has been up
--   for less than p_worker_timeout: after a restart, every worker is unseen until it
--   heartbeats again.
-- Each becomes `failed`, runnable at once, or `dead` when out of attempts (cause `delivery`
-- for a dispatch, `crash` for a worker lost mid-work), and the listeners are woken up.
CREATE OR REPLACE FUNCTION embedq.jobs_rescue(p_worker_timeout interval DEFAULT NULL)
RETURNS TABLE (id bigint, status embedq.job_status)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH gone AS (
        SELECT w.name FROM embedq.workers w
        WHERE p_worker_timeout IS NOT NULL AND w.seen_at < now() - p_worker_timeout
          AND pg_postmaster_start_time() < now() - p_worker_timeout
    ), lost AS (
        -- expired leases: a range of the jobs_lease_expiry index; workers gone: usually none
        SELECT j.id, (j.status = 'dispatched')::integer AS undelivered, true AS expired
        FROM embedq.jobs j
        WHERE j.status IN ('processing', 'dispatched') AND j.lease_expires_at < now()
        UNION
        SELECT j.id, 0, false
        FROM gone g
        JOIN embedq.jobs j ON j.status = 'processing' AND j.lease_expires_at >= now()
                          AND (j.locked_by = g.name OR starts_with(j.locked_by, g.name || ':'))
    ), changed AS (
        UPDATE embedq.jobs j
        SET status = CASE WHEN j.attempts + l.undelivered < j.max_attempts
                          THEN 'failed'::embedq.job_status ELSE 'dead'::embedq.job_status END,
            finished_at = CASE WHEN j.attempts + l.undelivered < j.max_attempts THEN NULL ELSE now() END,
            cause = CASE WHEN j.attempts + l.undelivered < j.max_attempts THEN NULL
                         WHEN l.undelivered = 1 THEN 'delivery'::embedq.failure_cause
                         ELSE 'crash'::embedq.failure_cause END,
            attempts = j.attempts + l.undelivered,
            failed_deliveries = j.failed_deliveries + l.undelivered,
            run_after = now(),
            last_error = CASE
                WHEN l.undelivered = 1 AND j.message_id IS NULL THEN format(
                    'publishing by %s did not finish (its lease expired before the message was recorded)',
                    coalesce(j.locked_by, 'unknown'))
                WHEN l.undelivered = 1 THEN format(
                    'QStash message %s: no outcome within EMBEDQ_DISPATCH_TIMEOUT: no delivery, no failure '
                    'callback, no DLQ entry; is QStash delivering to EMBEDQ_WEBHOOK_URL?', j.message_id)
                WHEN l.expired THEN format('lease expired while %s by %s', j.status, coalesce(j.locked_by, 'unknown'))
                ELSE format('worker %s stopped heartbeating (unseen for %s) while processing',
                            j.locked_by, p_worker_timeout)
            END,
            lease_expires_at = NULL, updated_at = now()
        FROM lost l
        WHERE j.id = l.id AND j.status IN ('processing', 'dispatched')
        RETURNING j.id, j.status, j.content_type, j.source_id, j.last_error
    ), announced AS (
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(c.id, c.content_type, c.source_id, c.status, c.last_error)))
        FROM changed c
    )
    SELECT changed.id, changed.status FROM changed CROSS JOIN announced;
    IF FOUND THEN
        PERFORM pg_notify('embedq_jobs', '');
    END IF;
END
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
            SET status = 'pending', attempts = 0, failed_deliveries = 0, cause = NULL, run_after = now(),
                finished_at = NULL, message_id = NULL, locked_by = NULL, updated_at = now()
            WHERE j.id = v_job.id;
            id := v_job.id; status := 'pending'; merged_into := NULL;
        ELSE
            UPDATE embedq.jobs p
            SET priority = least(p.priority, v_job.priority), run_after = least(p.run_after, now()),
                updated_at = now()
            WHERE p.id = v_pending;
            UPDATE embedq.jobs j
            SET status = 'done', finished_at = now(), updated_at = now(), cause = NULL,
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
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    WITH changed AS (
        UPDATE embedq.jobs j
        SET status = 'dead', finished_at = now(), updated_at = now(), lease_expires_at = NULL,
            last_error = 'cancelled by operator', cause = 'cancelled'
        WHERE j.id = p_id AND j.status NOT IN ('done', 'dead')
        RETURNING j.*
    ), announced AS (
        SELECT embedq.jobs_announce(jsonb_agg(jsonb_build_array(c.id, c.content_type, c.source_id, 'dead', c.last_error)))
        FROM changed c
    )
    SELECT changed.* FROM changed CROSS JOIN announced;
END
$$;

-- Queues jobs for explicit sources (verify --fix, replays of a different kind): one pending job
-- per source, coalesced like the triggers' jobs. p_model NULL: for the active model.
-- Returns how many were queued or updated.
CREATE OR REPLACE FUNCTION embedq.jobs_queue(p_content_type text, p_source_ids text[], p_op embedq.job_op,
                                             p_priority integer DEFAULT 3, p_model text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_count bigint;
BEGIN
    INSERT INTO embedq.jobs (content_type, source_id, model, op, priority)
    SELECT p_content_type, ids.source_id, p_model, p_op, p_priority FROM unnest(p_source_ids) AS ids(source_id)
    ON CONFLICT (content_type, source_id, model) WHERE status = 'pending'
    DO UPDATE SET op = excluded.op, priority = least(embedq.jobs.priority, excluded.priority), updated_at = now();
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM pg_notify('embedq_jobs', '');
    END IF;
    RETURN v_count;
END
$$;
