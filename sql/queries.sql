-- Named queries, loaded once by embedq.queries. asyncpg placeholders ($1, $2, ...).
-- Each block starts with `-- name: <noun_verb>`.

-- name: server_has_pgvector
SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')

-- name: schema_is_migrated
SELECT to_regclass('embedq.jobs') IS NOT NULL

-- name: jobs_claim
SELECT * FROM embedq.jobs_claim($1, $2, make_interval(secs => $3), $4, 'processing', $5, $6, $7)

-- name: jobs_ingest
SELECT embedq.jobs_ingest()

-- name: jobs_claim_dispatch
SELECT * FROM embedq.jobs_claim($1, $2, make_interval(secs => $3), $4, 'dispatched', $5, $6, $7)

-- name: jobs_set_message
SELECT embedq.jobs_set_message($1::bigint[], $2, make_interval(secs => $3))

-- name: jobs_undispatch
SELECT * FROM embedq.jobs_undispatch($1::bigint[], make_interval(secs => $2))

-- name: jobs_accept
SELECT * FROM embedq.jobs_accept($1::bigint[], $2, make_interval(secs => $3))

-- name: jobs_get_many
SELECT * FROM embedq.jobs WHERE id = ANY ($1::bigint[])

-- name: workers_announce
INSERT INTO embedq.workers (name, mode, breaker, role) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE SET mode = excluded.mode, breaker = excluded.breaker, role = excluded.role, seen_at = now()

-- name: workers_forget
DELETE FROM embedq.workers WHERE name = $1

-- name: workers_active
-- listeners only (webhooks heartbeat too); the last delivery problem one diagnosed, for an hour
SELECT name, mode, breaker, started_at, seen_at,
       CASE WHEN problem_at > now() - interval '1 hour' THEN problem END AS problem
FROM embedq.workers
WHERE seen_at > now() - interval '2 minutes' AND role = 'listener' ORDER BY name

-- name: jobs_complete
SELECT * FROM embedq.jobs_complete($1::bigint[], $2::integer[])

-- name: jobs_fail
SELECT * FROM embedq.jobs_fail($1::bigint[], $2::integer[], $3, $4, $5, $6, $7, make_interval(secs => $8), $9)

-- name: jobs_extend_lease
-- Heartbeat of a worker still processing its claims: (id, attempts) identifies each claim.
UPDATE embedq.jobs j SET lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
FROM unnest($1::bigint[], $2::integer[]) AS claim(id, attempts)
WHERE j.id = claim.id AND j.attempts = claim.attempts AND j.status = 'processing'

-- name: jobs_rescue
SELECT * FROM embedq.jobs_rescue(make_interval(secs => $1))

-- name: jobs_requeue
SELECT * FROM embedq.jobs_requeue($1::bigint[])

-- name: jobs_cancel
SELECT * FROM embedq.jobs_cancel($1)

-- name: jobs_recent
SELECT * FROM embedq.jobs WHERE status = $1::embedq.job_status ORDER BY updated_at DESC LIMIT $2

-- name: jobs_get
SELECT * FROM embedq.jobs WHERE id = $1

-- name: jobs_count_by_status_priority
SELECT status::text AS status, priority, count(*) AS jobs
FROM embedq.jobs GROUP BY status, priority ORDER BY status, priority

-- name: jobs_oldest_pending_age
SELECT extract(epoch FROM now() - min(created_at))::float8 AS seconds
FROM embedq.jobs WHERE status = 'pending'

-- name: jobs_runnable_count
SELECT count(*) FROM embedq.jobs
WHERE status IN ('pending', 'failed') AND run_after <= now()

-- name: jobs_unfinished_count
SELECT count(*) FROM embedq.jobs WHERE status IN ('pending', 'failed', 'processing', 'dispatched')

-- name: jobs_finished_since
SELECT count(*) FROM embedq.jobs WHERE status = 'done' AND finished_at >= now() - make_interval(secs => $1)

-- name: sources_list
SELECT content_type, table_name, key_column, fields, priority, enabled, template, filters
FROM embedq.sources ORDER BY priority, content_type

-- name: source_rows
SELECT source_id, fields FROM embedq.source_rows($1, $2::text[])

-- name: embeddings_hashes
SELECT e.content_type, e.source_id, e.chunk_index, e.content_hash
FROM embedq.embeddings e
JOIN unnest($2::text[], $3::text[]) AS s(content_type, source_id)
  ON e.content_type = s.content_type AND e.source_id = s.source_id
WHERE e.model = $1

-- name: embeddings_upsert
INSERT INTO embedq.embeddings AS e
    (content_type, source_id, model, chunk_index, embedding, content_hash, content, metadata)
SELECT v.content_type, v.source_id, $1, v.chunk_index, v.embedding, v.content_hash, v.content, v.metadata
FROM unnest($2::text[], $3::text[], $4::integer[], $5::vector[], $6::text[], $7::text[], $8::jsonb[])
    AS v(content_type, source_id, chunk_index, embedding, content_hash, content, metadata)
ON CONFLICT (content_type, source_id, model, chunk_index) DO UPDATE
SET embedding = excluded.embedding, content_hash = excluded.content_hash,
    content = excluded.content, metadata = excluded.metadata, embedded_at = now()

-- name: embeddings_trim
DELETE FROM embedq.embeddings e
USING unnest($2::text[], $3::text[], $4::integer[]) AS s(content_type, source_id, chunk_count)
WHERE e.model = $1 AND e.content_type = s.content_type AND e.source_id = s.source_id
  AND e.chunk_index >= s.chunk_count

-- name: embeddings_delete_sources
DELETE FROM embedq.embeddings e
USING unnest($1::text[], $2::text[]) AS s(content_type, source_id)
WHERE e.content_type = s.content_type AND e.source_id = s.source_id

-- name: embeddings_count_by_type
SELECT e.content_type, count(DISTINCT e.source_id) AS sources, count(*) AS chunks
FROM embedq.embeddings e
WHERE e.model = (SELECT name FROM embedq.models WHERE active)
GROUP BY e.content_type ORDER BY e.content_type

-- name: models_ensure
SELECT * FROM embedq.model_ensure($1, $2, $3)

-- name: models_index_state
SELECT embedq.model_index_state($1)

-- name: models_index_ddl
SELECT embedq.model_index_ddl($1)

-- name: models_index_drop_ddl
SELECT format('DROP INDEX CONCURRENTLY IF EXISTS embedq.%I', embedq._model_index_name($1))

-- name: models_has_vectors_at_least
SELECT count(*) >= $2 FROM (SELECT 1 FROM embedq.embeddings WHERE model = $1 LIMIT $2) AS enough

-- name: models_activate
SELECT * FROM embedq.model_activate($1)

-- name: models_list
SELECT m.name, m.provider, m.dimensions, m.active, m.maintained, m.created_at,
       embedq.model_index_state(m.name) AS hnsw_index,
       (SELECT count(*) FROM embedq.embeddings e WHERE e.model = m.name) AS vectors,
       (SELECT count(*) FROM embedq.jobs j
        WHERE j.status IN ('pending', 'failed', 'processing', 'dispatched')
          AND (j.model = m.name OR (j.model IS NULL AND m.active))) AS queued
FROM embedq.models m ORDER BY m.created_at, m.name

-- name: models_get
SELECT * FROM embedq.models WHERE name = $1

-- name: models_queued_jobs
SELECT count(*) FROM embedq.jobs WHERE model = $1 AND status IN ('pending', 'failed', 'processing', 'dispatched')

-- name: models_maintain
UPDATE embedq.models SET maintained = true WHERE name = $1 AND NOT active RETURNING *

-- name: models_delete_jobs
-- a worker still processing one of them finds its claim gone and writes nothing
WITH gone AS (DELETE FROM embedq.jobs WHERE model = $1 RETURNING 1)
SELECT count(*) FROM gone

-- name: models_active
SELECT * FROM embedq.models WHERE active

-- name: search
SELECT content_type, source_id, chunk_index, similarity, content
FROM embedq.search($1::vector, $2, $3::text[], $4)

-- name: search_log_insert
INSERT INTO embedq.search_log (query, model, content_types, match_count, result_count, duration_ms, origin)
VALUES ($1, $2, $3, $4, $5, $6, $7)

-- name: backfill_batch
SELECT queued, last_key FROM embedq.backfill($1, $2, $3, $4, $5)

-- name: maintenance_prune_jobs
WITH pruned AS (
    DELETE FROM embedq.jobs WHERE status = 'done' AND finished_at < now() - make_interval(days => $1)
    RETURNING 1)
SELECT count(*) FROM pruned

-- name: maintenance_prune_search_log
WITH pruned AS (
    DELETE FROM embedq.search_log WHERE created_at < now() - make_interval(days => $1) RETURNING 1)
SELECT count(*) FROM pruned

-- name: maintenance_stale_failed_ids
SELECT id FROM embedq.jobs WHERE status = 'failed' AND run_after < now() - make_interval(secs => $1)

-- name: source_page
SELECT source_id, fields FROM embedq.source_page($1, $2, $3)

-- name: jobs_queue
SELECT embedq.jobs_queue($1, $2::text[], $3::embedq.job_op, $4, $5)

-- name: jobs_unfinished_sources
SELECT DISTINCT source_id FROM embedq.jobs
WHERE content_type = $1 AND source_id = ANY ($2::text[]) AND status IN ('pending', 'failed', 'processing', 'dispatched')

-- name: embeddings_source_page
SELECT DISTINCT source_id FROM embedq.embeddings
WHERE model = $1 AND content_type = $2 AND ($3::text IS NULL OR source_id > $3)
ORDER BY source_id LIMIT $4

-- name: embeddings_unregistered_types
SELECT e.content_type, count(DISTINCT e.source_id) AS sources FROM embedq.embeddings e
WHERE e.model = $1 AND NOT EXISTS (SELECT 1 FROM embedq.sources s WHERE s.content_type = e.content_type)
GROUP BY e.content_type ORDER BY e.content_type

-- name: embeddings_delete_type
DELETE FROM embedq.embeddings WHERE model = $1 AND content_type = $2

-- name: jobs_replay_candidates
SELECT id, content_type, status::text AS status FROM embedq.jobs
WHERE status = ANY ($1::embedq.job_status[])
  AND ($2::text[] IS NULL OR content_type = ANY ($2::text[]))
  AND ($3::timestamptz IS NULL OR coalesce(finished_at, updated_at) >= $3)
  AND ($4::timestamptz IS NULL OR coalesce(finished_at, updated_at) < $4)
  AND ($5::bigint[] IS NULL OR id = ANY ($5::bigint[]))
ORDER BY id

-- name: models_drop
SELECT format('DROP INDEX IF EXISTS embedq.%I', embedq._model_index_name($1)) AS drop_index,
       (SELECT active FROM embedq.models WHERE name = $1) AS active

-- name: models_delete_vectors
WITH gone AS (DELETE FROM embedq.embeddings WHERE model = $1 RETURNING 1) SELECT count(*) FROM gone

-- name: models_forget
DELETE FROM embedq.models WHERE name = $1 AND NOT active

-- name: sample_rows_present
SELECT EXISTS (SELECT 1 FROM embedq_sample.courses)

-- name: sample_load
SELECT content_type, written FROM embedq_sample.load($1::text::jsonb)

-- name: rows_status
-- One row's embedding state for the active model: the newest unfinished job if it has one, else
-- its newest job; whether the triggers queued it but no claimer ingested it yet; its vectors.
SELECT
    EXISTS (SELECT 1 FROM embedq.job_inbox i WHERE i.content_type = $1 AND $2 = ANY (i.source_ids)) AS in_inbox,
    latest.id AS job_id, latest.status::text AS job_status, latest.attempts, latest.last_error,
    latest.updated_at AS job_updated_at, latest.finished_at AS job_finished_at,
    vectors.chunks, vectors.embedded_at
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT j.* FROM embedq.jobs j
    WHERE j.content_type = $1 AND j.source_id = $2 AND j.model IS NULL
    ORDER BY (j.status IN ('pending', 'failed', 'processing', 'dispatched')) DESC, j.id DESC
    LIMIT 1
) AS latest ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS chunks, max(e.embedded_at) AS embedded_at FROM embedq.embeddings e
    WHERE e.content_type = $1 AND e.source_id = $2 AND e.model = (SELECT m.name FROM embedq.models m WHERE m.active)
) AS vectors ON true

-- name: doctor_pgvector_version
SELECT extversion FROM pg_extension WHERE extname = 'vector'

-- name: doctor_pgvector_available
SELECT default_version FROM pg_available_extensions WHERE name = 'vector'

-- name: models_index_lock
-- One HNSW builder per model across all listeners: a session lock, held while the build runs
-- (CREATE INDEX CONCURRENTLY cannot run inside a transaction, so no transaction lock will do).
SELECT pg_try_advisory_lock(7406219, hashtext($1))

-- name: models_index_unlock
SELECT pg_advisory_unlock(7406219, hashtext($1))

-- name: sources_get
SELECT content_type, table_name, key_column, fields, priority, enabled, template, filters
FROM embedq.sources WHERE content_type = $1

-- name: sources_row_estimate
-- The planner's row count of a source's table: instant and approximate, enough for a progress bar.
SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c WHERE c.oid = $1::regclass

-- name: sources_register
SELECT embedq.register_source($1, $2::regclass, $3::text[], $4, $5, $6, $7::text[])

-- name: sources_unregister
SELECT embedq.unregister_source($1)

-- name: embeddings_set_metadata
-- A row's metadata on all its chunks (those whose text did not change keep their vectors).
UPDATE embedq.embeddings e SET metadata = s.metadata
FROM unnest($2::text[], $3::text[], $4::jsonb[]) AS s(content_type, source_id, metadata)
WHERE e.model = $1 AND e.content_type = s.content_type AND e.source_id = s.source_id
  AND e.metadata IS DISTINCT FROM s.metadata

-- name: search_vector
SELECT content_type, source_id, chunk_index, similarity AS score, similarity, content
FROM embedq.search($1::vector, $2, $3::text[], $4, filters => $5::jsonb, min_score => $6, chunks => $7,
                   match_offset => $8)

-- name: search_hybrid
SELECT content_type, source_id, chunk_index, score, similarity, content
FROM embedq.hybrid_search($1, $2::vector, $3, $4::text[], $5, filters => $6::jsonb, min_score => $7, chunks => $8,
                          match_offset => $9)

-- name: jobs_in_flight_by_priority
-- Jobs claimed and not ended (published to QStash, or being processed), by priority: QStash mode
-- caps them per priority tier. Only in-flight rows are read (the partial index jobs_in_flight).
SELECT priority, count(*) AS jobs FROM embedq.jobs
WHERE status IN ('processing', 'dispatched') GROUP BY priority

-- name: jobs_runnable_within
-- Whether a job of priorities $1 .. $2 (NULL: open) is runnable now: a tier at its cap holds it
-- back. One probe of jobs_claimable (priority, run_after, id).
SELECT EXISTS (
    SELECT 1 FROM embedq.jobs
    WHERE status IN ('pending', 'failed') AND run_after <= now()
      AND priority >= coalesce($1::integer, -32768) AND priority <= coalesce($2::integer, 32767))

-- name: jobs_history_depth
-- Jobs not ended at the end of each of the last 60 minutes (for the current minute: now), by
-- priority. A job counts from its created_at (the row's first write) to its finished_at. Only
-- unfinished jobs and jobs ended within the hour are read (three partial-index scans); each
-- adds +1 at the minute it was written (or the first minute) and -1 at the minute it ended,
-- and a running sum gives the depth. No job at all: one row per minute, priority NULL.
WITH hour AS (
    SELECT date_trunc('minute', now()) - interval '59 minutes' AS first_minute
), relevant AS (
    SELECT priority, created_at, finished_at FROM embedq.jobs WHERE status IN ('pending', 'failed')
    UNION ALL
    SELECT priority, created_at, finished_at FROM embedq.jobs WHERE status IN ('processing', 'dispatched')
    UNION ALL
    SELECT j.priority, j.created_at, j.finished_at FROM embedq.jobs j, hour
    WHERE j.status IN ('done', 'dead') AND j.finished_at >= hour.first_minute
), changes AS (
    SELECT r.priority, greatest(date_trunc('minute', r.created_at), hour.first_minute) AS minute, 1 AS change
    FROM relevant r, hour
    UNION ALL
    SELECT r.priority, date_trunc('minute', r.finished_at), -1 FROM relevant r WHERE r.finished_at IS NOT NULL
), per_minute AS (
    SELECT priority, minute, sum(change) AS change FROM changes GROUP BY priority, minute
)
SELECT p.priority, m.minute,
       coalesce(sum(c.change) OVER (PARTITION BY p.priority ORDER BY m.minute), 0)::bigint AS jobs
FROM hour
CROSS JOIN generate_series(hour.first_minute, hour.first_minute + interval '59 minutes', interval '1 minute') AS m(minute)
LEFT JOIN (SELECT DISTINCT priority FROM per_minute) AS p ON true
LEFT JOIN per_minute c ON c.priority = p.priority AND c.minute = m.minute
ORDER BY p.priority, m.minute

-- name: jobs_history_latency
-- Write -> vector seconds (created_at, the row's first write, to finished_at, when its vectors
-- were committed) of the jobs done in each of the last 60 minutes, by priority: how many,
-- the median and the 99th percentile. Jobs a replay marked done as superseded wrote no vectors
-- (last_error says so) and are left out.
SELECT priority, date_trunc('minute', finished_at) AS minute, count(*) AS jobs,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))::float8 AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))::float8 AS p99
FROM embedq.jobs
WHERE status = 'done' AND last_error IS NULL AND finished_at >= date_trunc('minute', now()) - interval '59 minutes'
GROUP BY priority, date_trunc('minute', finished_at)
ORDER BY priority, minute

-- name: doctor_announce
-- `embedq doctor` LISTENs on embedq_doctor for the nonce it sent through QStash
SELECT pg_notify('embedq_doctor', $1)

-- name: jobs_undelivered
SELECT * FROM embedq.jobs_undelivered($1, $2, $3::bigint[])

-- name: workers_note_problem
UPDATE embedq.workers SET problem = $2, problem_at = now() WHERE name = $1

-- name: maintenance_retryable_dead_ids
-- dead jobs whose cause may have passed by itself (embedq.jobs.TRANSIENT_CAUSES)
SELECT id FROM embedq.jobs WHERE status = 'dead' AND cause = ANY ($1::embedq.failure_cause[])

-- name: schedule_runs_seed
-- a task's first sighting: counted as run now (for tasks that must not run at the first start)
INSERT INTO embedq.schedule_runs (task, last_run_at) VALUES ($1, now()) ON CONFLICT (task) DO NOTHING

-- name: schedule_runs_claim
-- The task is due (never run, or last run at least $2 seconds ago): this caller runs it now.
-- The row lock makes two processes that find it due at once run it once.
INSERT INTO embedq.schedule_runs AS s (task, last_run_at) VALUES ($1, now())
ON CONFLICT (task) DO UPDATE SET last_run_at = now()
WHERE s.last_run_at <= now() - make_interval(secs => $2)
RETURNING last_run_at

-- name: schedule_runs_record
INSERT INTO embedq.schedule_runs AS s (task, last_run_at) VALUES ($1, now())
ON CONFLICT (task) DO UPDATE SET last_run_at = now()

-- name: workers_prune
-- workers unseen for a day (a killed process never forgets itself)
WITH pruned AS (DELETE FROM embedq.workers WHERE seen_at < now() - interval '1 day' RETURNING 1)
SELECT count(*) FROM pruned
