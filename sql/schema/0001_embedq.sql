-- embedq core schema. Run once, by the first alembic revision.

CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS embedq;

-- Mirrored by embedq.jobs.JobStatus; tests/integration/test_schema.py keeps them equal.
CREATE TYPE embedq.job_status AS ENUM ('pending', 'dispatched', 'processing', 'done', 'failed', 'dead');
CREATE TYPE embedq.job_op AS ENUM ('upsert', 'delete');

CREATE TABLE embedq.sources (
    content_type text PRIMARY KEY
        CONSTRAINT sources_content_type_format CHECK (content_type ~ '^[a-z][a-z0-9_]{0,39}$'),
    table_name   text NOT NULL,
    key_column   text NOT NULL,
    fields       text[] NOT NULL CONSTRAINT sources_fields_not_empty CHECK (cardinality(fields) >= 1),
    priority     smallint NOT NULL DEFAULT 3 CONSTRAINT sources_priority_range CHECK (priority BETWEEN 1 AND 9),
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The outbox. One row per unit of work: "make the vectors of (content_type, source_id) match
-- the row as it is now". Repeated edits coalesce into the one pending job of a source.
CREATE TABLE embedq.jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_type     text NOT NULL,
    source_id        text NOT NULL,
    op               embedq.job_op NOT NULL DEFAULT 'upsert',
    priority         smallint NOT NULL DEFAULT 3,
    status           embedq.job_status NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0 CONSTRAINT jobs_attempts_non_negative CHECK (attempts >= 0),
    max_attempts     integer NOT NULL DEFAULT 5 CONSTRAINT jobs_max_attempts_positive CHECK (max_attempts > 0),
    run_after        timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    message_id       text,
    last_error       text,
    locked_by        text,
    lease_expires_at timestamptz,
    CONSTRAINT jobs_finished_iff_final
        CHECK ((status IN ('done', 'dead')) = (finished_at IS NOT NULL)),
    CONSTRAINT jobs_lease_iff_in_flight
        CHECK ((status IN ('processing', 'dispatched')) = (lease_expires_at IS NOT NULL))
);

-- What triggers write: one row per statement and operation, holding the keys it touched.
-- Writing 100,000 job rows inside the application's statement would cost about as much as
-- the application's own insert; one array row costs a few percent. Claimers move these rows
-- into embedq.jobs (embedq.jobs_ingest), coalesced, off the application's write path.
CREATE TABLE embedq.job_inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_type text NOT NULL,
    op           embedq.job_op NOT NULL,
    priority     smallint NOT NULL,
    source_ids   text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX jobs_one_pending_per_source ON embedq.jobs (content_type, source_id)
    WHERE status = 'pending';
CREATE INDEX jobs_claimable ON embedq.jobs (priority, run_after, id)
    WHERE status IN ('pending', 'failed');
CREATE INDEX jobs_in_flight ON embedq.jobs (content_type, source_id)
    WHERE status IN ('processing', 'dispatched');
CREATE INDEX jobs_lease_expiry ON embedq.jobs (lease_expires_at)
    WHERE status IN ('processing', 'dispatched');
CREATE INDEX jobs_finished ON embedq.jobs (finished_at)
    WHERE status IN ('done', 'dead');

-- Listeners announce themselves here: `embedq status` and /v1/status show each one's mode
-- (qstash, local, or local because the QStash breaker is open).
CREATE TABLE embedq.workers (
    name       text PRIMARY KEY,
    mode       text NOT NULL CONSTRAINT workers_mode CHECK (mode IN ('local', 'qstash', 'fallback')),
    breaker    text NOT NULL DEFAULT 'closed' CONSTRAINT workers_breaker CHECK (breaker IN ('closed', 'open', 'half_open')),
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE embedq.models (
    name         text PRIMARY KEY,
    provider     text NOT NULL,
    dimensions   integer NOT NULL CONSTRAINT models_dimensions_range CHECK (dimensions BETWEEN 1 AND 16000),
    active       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz
);
CREATE UNIQUE INDEX models_one_active ON embedq.models (active) WHERE active;

-- Vectors of several models live side by side; each model gets its own partial HNSW index
-- (embedq.model_ensure), so vectors of different models are never compared.
CREATE TABLE embedq.embeddings (
    content_type text NOT NULL,
    source_id    text NOT NULL,
    model        text NOT NULL,
    chunk_index  integer NOT NULL CONSTRAINT embeddings_chunk_index_non_negative CHECK (chunk_index >= 0),
    embedding    vector NOT NULL,
    content_hash text NOT NULL,
    content      text NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    embedded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (content_type, source_id, model, chunk_index)
);

CREATE TABLE embedq.search_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    query         text NOT NULL,
    model         text NOT NULL,
    content_types text[],
    match_count   integer NOT NULL,
    result_count  integer NOT NULL,
    duration_ms   double precision NOT NULL,
    origin        text NOT NULL CONSTRAINT search_log_origin CHECK (origin IN ('cli', 'http')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX search_log_created_at ON embedq.search_log (created_at);
