-- Models and search. Idempotent: CREATE OR REPLACE only.

-- The expression a model's vectors are indexed and searched by. HNSW indexes `vector` up to
-- 2,000 dimensions; larger models are indexed as halfvec (up to 4,000).
-- pgvector may live in any schema (public, extensions, ...): its names are always qualified.
CREATE OR REPLACE FUNCTION embedq._vector_schema()
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT n.nspname::text FROM pg_catalog.pg_extension e
    JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'
$$;

CREATE OR REPLACE FUNCTION embedq._model_vector_type(p_dimensions integer)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_dimensions <= 2000 THEN format('%I.vector(%s)', embedq._vector_schema(), p_dimensions)
                ELSE format('%I.halfvec(%s)', embedq._vector_schema(), p_dimensions) END
$$;

CREATE OR REPLACE FUNCTION embedq._model_index_name(p_model text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'embeddings_hnsw_' || left(md5(p_model), 16)
$$;

-- Records a model. The first model recorded becomes the active one (the one search uses by
-- default). Safe to call at every start. Its HNSW index is built later, once it has enough
-- vectors (listener/indexer.py): below that an exact scan is fast, and building the index
-- after a load is several times cheaper than maintaining it row by row during the load.
CREATE OR REPLACE FUNCTION embedq.model_ensure(p_name text, p_provider text, p_dimensions integer)
RETURNS embedq.models
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_model embedq.models;
BEGIN
    SELECT * INTO v_model FROM embedq.models m WHERE m.name = p_name;
    IF FOUND AND v_model.dimensions <> p_dimensions THEN
        RAISE EXCEPTION 'embedq: model % is recorded with % dimensions, not %',
            quote_literal(p_name), v_model.dimensions, p_dimensions
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Vectors of one model name must all have one size; use another model name.';
    END IF;
    IF NOT FOUND THEN
        -- Serialise concurrent first starts so exactly one model becomes active.
        PERFORM pg_advisory_xact_lock(hashtext('embedq.models'));
        INSERT INTO embedq.models (name, provider, dimensions, active, activated_at)
        SELECT p_name, p_provider, p_dimensions, NOT EXISTS (SELECT 1 FROM embedq.models WHERE active),
               CASE WHEN NOT EXISTS (SELECT 1 FROM embedq.models WHERE active) THEN now() END
        ON CONFLICT (name) DO NOTHING;
        SELECT * INTO v_model FROM embedq.models m WHERE m.name = p_name;
    END IF;
    RETURN v_model;
END
$$;

-- The statement that builds a model's HNSW (cosine) index without blocking writers. It has to
-- run outside a transaction (CONCURRENTLY), so the caller executes it.
CREATE OR REPLACE FUNCTION embedq.model_index_ddl(p_name text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format(
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS %I ON embedq.embeddings USING hnsw ((embedding::%s) %I.%I) WHERE model = %L',
        embedq._model_index_name(m.name), embedq._model_vector_type(m.dimensions), embedq._vector_schema(),
        CASE WHEN m.dimensions <= 2000 THEN 'vector_cosine_ops' ELSE 'halfvec_cosine_ops' END,
        m.name)
    FROM embedq.models m WHERE m.name = p_name
$$;

-- 'ready', 'invalid' (a concurrent build failed or is still running), or 'missing'.
CREATE OR REPLACE FUNCTION embedq.model_index_state(p_name text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
        (SELECT CASE WHEN i.indisvalid THEN 'ready' ELSE 'invalid' END
         FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
         WHERE c.relname = embedq._model_index_name(p_name) AND c.relnamespace = 'embedq'::regnamespace),
        'missing')
$$;

CREATE OR REPLACE FUNCTION embedq.model_activate(p_name text)
RETURNS embedq.models
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_model embedq.models;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('embedq.models'));
    IF NOT EXISTS (SELECT 1 FROM embedq.models m WHERE m.name = p_name) THEN
        RAISE EXCEPTION 'embedq: model % is not known', quote_literal(p_name)
            USING ERRCODE = 'undefined_object';
    END IF;
    UPDATE embedq.models m SET active = false WHERE m.active AND m.name <> p_name;
    UPDATE embedq.models m SET active = true, activated_at = now(), maintained = false
    WHERE m.name = p_name AND NOT m.active;
    SELECT * INTO v_model FROM embedq.models m WHERE m.name = p_name;
    RETURN v_model;
END
$$;

-- Nearest chunks to a query vector, best first, through the model's HNSW index. pgvector's
-- iterative scan keeps reading the index until match_count rows pass the content-type
-- filter, so filtered searches still return k rows.
CREATE OR REPLACE FUNCTION embedq.search(
    query vector,
    match_count integer DEFAULT 10,
    content_types text[] DEFAULT NULL,
    model text DEFAULT NULL
) RETURNS TABLE (content_type text, source_id text, chunk_index integer, similarity double precision, content text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET hnsw.iterative_scan = 'relaxed_order'
AS $$
DECLARE
    v_model embedq.models;
    v_type text;
    v_dims integer;
BEGIN
    IF search.model IS NULL THEN
        SELECT * INTO v_model FROM embedq.models m WHERE m.active;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'embedq: no active model; nothing has been embedded yet'
                USING ERRCODE = 'undefined_object';
        END IF;
    ELSE
        SELECT * INTO v_model FROM embedq.models m WHERE m.name = search.model;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'embedq: model % is not known', quote_literal(search.model)
                USING ERRCODE = 'undefined_object';
        END IF;
    END IF;
    IF query IS NOT NULL THEN
        EXECUTE format('SELECT %I.vector_dims($1)', embedq._vector_schema()) INTO v_dims USING query;
    END IF;
    IF v_dims IS DISTINCT FROM v_model.dimensions THEN
        RAISE EXCEPTION 'embedq: the query vector has % dimensions, model % has %',
            coalesce(v_dims::text, 'no'), quote_literal(v_model.name), v_model.dimensions
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF match_count IS NULL OR match_count < 1 OR match_count > 1000 THEN
        RAISE EXCEPTION 'embedq: match_count must be between 1 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_type := embedq._model_vector_type(v_model.dimensions);
    -- The model name is inlined as a literal so the planner can match the partial index.
    RETURN QUERY EXECUTE format($q$
        SELECT hit.content_type, hit.source_id, hit.chunk_index, 1 - hit.distance, hit.content
        FROM (
            SELECT e.content_type, e.source_id, e.chunk_index, e.content,
                   e.embedding::%1$s OPERATOR(%3$I.<=>) $1::%1$s AS distance
            FROM embedq.embeddings e
            WHERE e.model = %2$L AND ($3::text[] IS NULL OR e.content_type = ANY ($3::text[]))
            ORDER BY e.embedding::%1$s OPERATOR(%3$I.<=>) $1::%1$s
            LIMIT $2
        ) hit
        ORDER BY hit.distance
    $q$, v_type, v_model.name, embedq._vector_schema())
    USING query, match_count, content_types;
END
$$;
