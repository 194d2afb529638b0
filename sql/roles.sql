-- Least-privilege roles for embedq's services. Not a migration: an operator runs this file
-- AFTER `embedq migrate`, as a superuser or as the role that owns the embedq schema (it needs
-- CREATEROLE the first time), and again after every `embedq migrate` and every
-- `embedq.register_source(...)` (grants name the objects that exist when it runs).
-- Idempotent: roles are created only if missing; grants are re-applied.
--
--     psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/roles.sql
--
-- Roles are cluster-wide; the grants below apply to the database you run this file in.
--
--   embedq_listener     `embedq listen`: claims and processes jobs, publishes them to QStash; and
--                       most of the operator CLI (section 2).
--   embedq_webhook      `embedq serve`: POST /v1/jobs, /v1/failures, /v1/maintenance, GET /v1/status,
--                       /v1/search, /v1/events, /metrics, /healthz.
--   embedq_app_writer   grant it to YOUR application's role: the role that writes the registered
--                       tables (section 5).
--   (optional) embedq_index_builder: lets the listener build the HNSW indexes; see section 6.
--
-- `embedq up` runs listener and webhook in one process: give its login both roles
--     CREATE ROLE embedq_up LOGIN PASSWORD '...' IN ROLE embedq_listener, embedq_webhook;
--
-- No role here may create, alter or drop schema objects (except the opt-in index builder of
-- section 6): only `embedq migrate`, run as the owner, does that. Every embedq function is
-- SECURITY INVOKER: calling one never grants more than the caller's own table privileges, so
-- the table grants below are the real boundary. (Functions keep PostgreSQL's default EXECUTE
-- for PUBLIC, but PUBLIC has no USAGE on schema embedq, so only these roles can reach them;
-- the explicit EXECUTE grants keep them working if you revoke that default.)

-- 1. The roles ---------------------------------------------------------------------------------
-- Group roles, NOLOGIN: log in as a member, or make the role itself a login:
--     CREATE ROLE listener_1 LOGIN PASSWORD 'change-me' IN ROLE embedq_listener;
--     -- or: ALTER ROLE embedq_listener LOGIN PASSWORD 'change-me';
--     CREATE ROLE webhook_1 LOGIN PASSWORD 'change-me' IN ROLE embedq_webhook;
--     GRANT embedq_app_writer TO my_app;
DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['embedq_listener', 'embedq_webhook', 'embedq_app_writer'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
        END IF;
    END LOOP;
END
$$;

-- CONNECT is PUBLIC's by default; granted only where it was revoked.
DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['embedq_listener', 'embedq_webhook', 'embedq_app_writer'] LOOP
        IF NOT has_database_privilege(v_role, current_database(), 'CONNECT') THEN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), v_role);
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA embedq TO embedq_listener, embedq_webhook, embedq_app_writer;
-- Every job state change draws its event's id (jobs_announce); both services change job states.
GRANT USAGE ON SEQUENCE embedq.event_id_seq TO embedq_listener, embedq_webhook;

-- 2. embedq_listener ---------------------------------------------------------------------------
-- jobs: ingest (INSERT), claim/complete/fail/rescue/requeue (UPDATE; FOR UPDATE SKIP LOCKED
--       needs UPDATE too), prune done jobs in `embedq maintenance` (DELETE).
-- job_inbox: jobs_ingest moves the triggers' rows into jobs (DELETE ... FOR UPDATE SKIP LOCKED).
--       No INSERT: only the triggers (the application's role) write the inbox.
-- embeddings: upsert, trim surplus chunks, delete vectors of deleted rows.
-- workers: each listener announces its mode (heartbeat) and forgets itself on exit; `embedq
--       maintenance` prunes the rows of killed ones.
-- schedule_runs: the local timers record the recurring tasks' runs.
-- models: model_ensure records the model (INSERT); `embedq models activate` (UPDATE).
-- search_log: `embedq search` logs (INSERT); `embedq maintenance` prunes (DELETE).
-- sources: read-only. Registering a table creates triggers: the owner's job, not a service's.
-- The operator CLI works with this role too (status, search, backfill, replay, verify [--fix],
-- jobs, models list/activate, maintenance); `embedq migrate`, `embedq models drop` (it drops an
-- index) and register_source/unregister_source need the owner.
GRANT SELECT, INSERT, UPDATE, DELETE ON embedq.jobs, embedq.embeddings, embedq.workers TO embedq_listener;
GRANT SELECT, UPDATE, DELETE ON embedq.job_inbox TO embedq_listener;
GRANT SELECT ON embedq.sources TO embedq_listener;
GRANT SELECT, INSERT, UPDATE ON embedq.models TO embedq_listener;
GRANT SELECT, INSERT, DELETE ON embedq.search_log TO embedq_listener;
GRANT SELECT, INSERT, UPDATE ON embedq.schedule_runs TO embedq_listener;

GRANT EXECUTE ON FUNCTION
    embedq.jobs_ingest, embedq.jobs_claim, embedq.jobs_set_message,
    embedq.jobs_undispatch, embedq.jobs_complete, embedq.jobs_fail, embedq.jobs_rescue,
    embedq.jobs_requeue, embedq.jobs_cancel, embedq.jobs_queue, embedq.jobs_announce, embedq.jobs_undelivered,
    embedq.source_rows, embedq.source_page, embedq.backfill,
    embedq.model_ensure, embedq.model_activate, embedq.model_index_state, embedq.model_index_ddl,
    embedq.search, embedq._vector_schema, embedq._model_vector_type, embedq._model_index_name,
    embedq.hybrid_search, embedq._search_model, embedq._search_check_page, embedq._search_filter,
    embedq._nearest_chunks, embedq._nearest_rows, embedq._search_log, embedq._keyword_weights, embedq._keyword_hits,
    embedq.fts_query_terms, embedq.fts_document, embedq._fts_plain_text, embedq._fts_cjk_characters
TO embedq_listener;

-- 3. embedq_webhook ----------------------------------------------------------------------------
-- The same data rights, minus what only the listener does: no claiming for QStash or local
-- processing (it accepts delivered jobs with jobs_accept), no rescuer, no model activation, no
-- index builds. It heartbeats in the worker registry (a killed webhook's jobs are returned).
-- jobs INSERT and job_inbox DELETE: /v1/status ingests the inbox first, as `embedq status` does.
-- jobs/search_log DELETE and jobs_requeue: the signed /v1/maintenance prunes and retries, and
-- records its run in schedule_runs. jobs_undelivered: the failure callback (/v1/failures).
GRANT SELECT, INSERT, UPDATE, DELETE ON embedq.jobs, embedq.embeddings TO embedq_webhook;
GRANT SELECT, UPDATE, DELETE ON embedq.job_inbox TO embedq_webhook;
GRANT SELECT ON embedq.sources TO embedq_webhook;
GRANT SELECT, INSERT, UPDATE, DELETE ON embedq.workers TO embedq_webhook;
GRANT SELECT, INSERT, UPDATE ON embedq.schedule_runs TO embedq_webhook;
GRANT SELECT, INSERT ON embedq.models TO embedq_webhook;
GRANT SELECT, INSERT, DELETE ON embedq.search_log TO embedq_webhook;

GRANT EXECUTE ON FUNCTION
    embedq.jobs_ingest, embedq.jobs_accept, embedq.jobs_complete, embedq.jobs_fail,
    embedq.jobs_undelivered, embedq.jobs_requeue, embedq.jobs_announce,
    embedq.source_rows, embedq.model_ensure, embedq.model_index_state,
    embedq.search, embedq._vector_schema, embedq._model_vector_type, embedq._model_index_name,
    embedq.hybrid_search, embedq._search_model, embedq._search_check_page, embedq._search_filter,
    embedq._nearest_chunks, embedq._nearest_rows, embedq._search_log, embedq._keyword_weights, embedq._keyword_hits,
    embedq.fts_query_terms, embedq.fts_document, embedq._fts_plain_text, embedq._fts_cjk_characters
TO embedq_webhook;

-- 4. The registered source tables --------------------------------------------------------------
-- Both services read the rows they embed: the key column and the registered fields, nothing
-- else (column privileges; price_cents, emails, ... stay unreadable). This block grants that
-- for every table in embedq.sources, when the role running this file may grant it (it owns
-- the tables, or is a superuser). Otherwise it warns, and granting is the operator's job:
--     GRANT USAGE ON SCHEMA <schema> TO embedq_listener, embedq_webhook;
--     GRANT SELECT (id, title, body) ON <your table> TO embedq_listener, embedq_webhook;
-- (A plain GRANT SELECT ON <your table> works too.) After register_source with new fields,
-- run this file again: column grants are additive and never revoked here.
DO $$
DECLARE
    v_source record;
    v_schema text;
    v_columns text;
BEGIN
    FOR v_source IN SELECT s.content_type, s.table_name, s.key_column, s.fields
                    FROM embedq.sources s ORDER BY s.content_type LOOP
        IF to_regclass(v_source.table_name) IS NULL THEN
            RAISE WARNING 'embedq: table % of source % does not exist; skipped',
                v_source.table_name, v_source.content_type;
            CONTINUE;
        END IF;
        SELECT n.nspname INTO v_schema FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = v_source.table_name::regclass;
        SELECT string_agg(DISTINCT quote_ident(col), ', ') INTO v_columns
        FROM unnest(array_prepend(v_source.key_column, v_source.fields)) AS col;
        BEGIN
            IF NOT (has_schema_privilege('embedq_listener', v_schema, 'USAGE')
                    AND has_schema_privilege('embedq_webhook', v_schema, 'USAGE')) THEN
                EXECUTE format('GRANT USAGE ON SCHEMA %I TO embedq_listener, embedq_webhook', v_schema);
            END IF;
            -- table_name is stored quoted (format('%I.%I')), so it is used as written.
            EXECUTE format('GRANT SELECT (%s) ON TABLE %s TO embedq_listener, embedq_webhook',
                           v_columns, v_source.table_name);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'embedq: not allowed to grant on %; as its owner run: GRANT SELECT (%) ON % TO embedq_listener, embedq_webhook',
                v_source.table_name, v_columns, v_source.table_name;
        END;
    END LOOP;
END
$$;

-- 5. embedq_app_writer: the application's own role -------------------------------------------
-- Triggers run as the user whose statement fired them, so the role that INSERTs, UPDATEs and
-- DELETEs the registered tables needs, besides its own rights on those tables:
--   USAGE on schema embedq;
--   INSERT on embedq.job_inbox (one row per statement, with the keys it touched), and SELECT
--     on one of its columns (a statement skips its NOTIFY when rows are already waiting);
--   SELECT on embedq.sources (content_type, priority, enabled): a disabled source queues nothing;
--   EXECUTE on the trigger functions embedq.source_<type>_{insert,update,delete}(): granted
--     below, though PostgreSQL checks it only when a trigger is created, not each time one
--     fires (so writes keep working between a register_source and the next run of this file).
-- It can neither read nor change jobs, vectors or registrations.
--     GRANT embedq_app_writer TO my_app;
GRANT INSERT ON embedq.job_inbox TO embedq_app_writer;
GRANT SELECT (id) ON embedq.job_inbox TO embedq_app_writer;
GRANT SELECT (content_type, priority, enabled) ON embedq.sources TO embedq_app_writer;

DO $$
DECLARE
    v_function text;
BEGIN
    FOR v_function IN SELECT t.function_name FROM embedq.sources s
                      CROSS JOIN LATERAL embedq._trigger_names(s.content_type) t ORDER BY 1 LOOP
        IF to_regprocedure(format('embedq.%I()', v_function)) IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION embedq.%I() TO embedq_app_writer', v_function);
        END IF;
    END LOOP;
END
$$;

-- 6. HNSW index builds (opt-in) ----------------------------------------------------------------
-- The listener builds a model's HNSW index once it has EMBEDQ_HNSW_MIN_ROWS vectors
-- (CREATE INDEX CONCURRENTLY ON embedq.embeddings). PostgreSQL lets only the table's OWNER
-- create or drop its indexes, and the owner needs CREATE on the schema as well: no GRANT on
-- the table, and not CREATE on the schema alone, is enough. So by default the listener cannot
-- build it: it logs "HNSW index build failed; will retry" every 30 s, keeps processing jobs,
-- and search stays an exact scan (correct; slower beyond some 10^5 vectors). Two ways out:
--
--   a) Keep the listener without DDL rights, and build the index as the owner (after the first
--      load, or right away), once per model:
--          SELECT embedq.model_index_ddl('multilingual-e5-small') \gexec        -- in psql
--      The listener sees it is ready and stops trying.
--
--   b) Let the listener build it: run this file with the setting below. embedq.embeddings then
--      belongs to the NOLOGIN role embedq_index_builder, which also gets CREATE on schema
--      embedq; the previous owner becomes a member (so `embedq migrate` keeps working), and
--      embedq_listener joins it. Trade-off: the listener may then also ALTER, TRUNCATE or DROP
--      embedq.embeddings (vectors it can already delete and rebuild) and create NEW objects in
--      schema embedq; it still cannot alter, drop or replace any other embedq object.
--          PGOPTIONS='-c embedq.listener_builds_index=on' psql ... -f sql/roles.sql
--      To undo: ALTER TABLE embedq.embeddings OWNER TO <owner>;
--               REVOKE CREATE ON SCHEMA embedq FROM embedq_index_builder;
--               REVOKE embedq_index_builder FROM embedq_listener;
DO $$
DECLARE
    v_owner name;
    v_owner_is_superuser boolean;
BEGIN
    IF lower(coalesce(current_setting('embedq.listener_builds_index', true), '')) NOT IN ('on', 'true', 'yes', '1') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'embedq_index_builder') THEN
        CREATE ROLE embedq_index_builder NOLOGIN;
    END IF;
    -- CREATE INDEX checks it at every build (and ALTER ... OWNER TO checks it for the new owner).
    GRANT CREATE ON SCHEMA embedq TO embedq_index_builder;
    SELECT r.rolname, r.rolsuper INTO v_owner, v_owner_is_superuser
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
    WHERE c.oid = 'embedq.embeddings'::regclass;
    IF v_owner <> 'embedq_index_builder' THEN
        IF NOT v_owner_is_superuser AND NOT pg_has_role(v_owner, 'embedq_index_builder', 'USAGE') THEN
            EXECUTE format('GRANT embedq_index_builder TO %I', v_owner);
        END IF;
        ALTER TABLE embedq.embeddings OWNER TO embedq_index_builder;
    END IF;
    IF NOT pg_has_role('embedq_listener', 'embedq_index_builder', 'USAGE') THEN
        GRANT embedq_index_builder TO embedq_listener;
    END IF;
END
$$;
