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

-- The model a search uses (the active one, or the one named) and a check that the query vector
-- is of its size.
CREATE OR REPLACE FUNCTION embedq._search_model(p_model text, p_query vector)
RETURNS embedq.models
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_model embedq.models;
    v_dims integer;
BEGIN
    IF p_model IS NULL THEN
        SELECT * INTO v_model FROM embedq.models m WHERE m.active;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'embedq: no active model; nothing has been embedded yet'
                USING ERRCODE = 'undefined_object';
        END IF;
    ELSE
        SELECT * INTO v_model FROM embedq.models m WHERE m.name = p_model;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'embedq: model % is not known', quote_literal(p_model)
                USING ERRCODE = 'undefined_object';
        END IF;
    END IF;
    IF p_query IS NOT NULL THEN
        EXECUTE format('SELECT %I.vector_dims($1)', embedq._vector_schema()) INTO v_dims USING p_query;
    END IF;
    IF v_dims IS DISTINCT FROM v_model.dimensions THEN
        RAISE EXCEPTION 'embedq: the query vector has % dimensions, model % has %',
            coalesce(v_dims::text, 'no'), quote_literal(v_model.name), v_model.dimensions
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_model;
END
$$;

CREATE OR REPLACE FUNCTION embedq._search_check_page(p_match_count integer, p_match_offset integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_match_count IS NULL OR p_match_count < 1 OR p_match_count > 1000 THEN
        RAISE EXCEPTION 'embedq: match_count must be between 1 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_match_offset IS NULL OR p_match_offset < 0 OR p_match_offset > 9000 THEN
        RAISE EXCEPTION 'embedq: match_offset must be between 0 and 9000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- A search's filters ({"column": value, ...}) in the shape processing stores filterable values
-- in: {"filters": {"column": ["value", ...]}}, so one containment test (served by the GIN index
-- on metadata) applies them all. A value is a string, number or boolean, compared as text, or an
-- array of them: the row must have each. Every column must be filterable in at least one of the
-- searched content types; rows of a type without it never match. NULL or {}: no filter.
CREATE OR REPLACE FUNCTION embedq._search_filter(p_filters jsonb, p_content_types text[])
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key text;
    v_value jsonb;
    v_wanted jsonb := '{}';
    v_filterable text;
BEGIN
    IF p_filters IS NULL OR p_filters = '{}'::jsonb THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_filters) <> 'object' THEN
        RAISE EXCEPTION 'embedq: filters must be a JSON object of column: value, not %', p_filters
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_key, v_value IN SELECT f.key, f.value FROM jsonb_each(p_filters) AS f LOOP
        IF NOT EXISTS (SELECT 1 FROM embedq.sources s
                       WHERE v_key = ANY (s.filters) AND (p_content_types IS NULL OR s.content_type = ANY (p_content_types)))
        THEN
            SELECT string_agg(DISTINCT f, ', ' ORDER BY f) INTO v_filterable
            FROM embedq.sources s CROSS JOIN LATERAL unnest(s.filters) AS f
            WHERE p_content_types IS NULL OR s.content_type = ANY (p_content_types);
            RAISE EXCEPTION 'embedq: % is not a filterable column of %', quote_ident(v_key),
                coalesce('content types ' || array_to_string(p_content_types, ', '), 'any content type')
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Filterable: ' || coalesce(v_filterable, 'none') || '.',
                      HINT = 'A source names its filterable columns when it is registered: '
                             'embedq.register_source(..., filters => ARRAY[''column'']).';
        END IF;
        IF jsonb_typeof(v_value) IN ('string', 'number', 'boolean') THEN
            v_value := jsonb_build_array(v_value #>> '{}');
        ELSIF jsonb_typeof(v_value) = 'array'
              AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_value) AS x
                              WHERE jsonb_typeof(x) NOT IN ('string', 'number', 'boolean')) THEN
            v_value := coalesce((SELECT jsonb_agg(x #>> '{}') FROM jsonb_array_elements(v_value) AS x), '[]');
        ELSE
            RAISE EXCEPTION 'embedq: the filter on % must be a string, a number, a boolean or an array of them, not %',
                quote_ident(v_key), v_value
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_wanted := v_wanted || jsonb_build_object(v_key, v_value);
    END LOOP;
    RETURN jsonb_build_object('filters', v_wanted);
END
$$;

-- The nearest chunks to a query vector, best first, through the model's HNSW index (below
-- EMBEDQ_HNSW_MIN_ROWS vectors there is none and the planner scans them exactly). With filters,
-- pgvector's iterative scan (set by the calling functions, with hnsw.max_scan_tuples) keeps
-- reading the index until p_limit vectors pass them; when it gives up first, the filters keep
-- few vectors, and those are scanned exactly instead: fast because they are few, and exact. The
-- model name is inlined as a literal so the planner can match the model's partial index.
CREATE OR REPLACE FUNCTION embedq._nearest_chunks(p_model embedq.models, p_query vector, p_limit integer,
                                                  p_content_types text[], p_filter jsonb)
RETURNS TABLE (content_type text, source_id text, chunk_index integer, distance double precision, content text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_type text := embedq._model_vector_type(p_model.dimensions);
    v_schema text := embedq._vector_schema();
    v_filtered boolean := p_content_types IS NOT NULL OR p_filter IS NOT NULL;
    v_types text[];
    v_ids text[];
    v_indexes integer[];
    v_distances double precision[];
    v_contents text[];
BEGIN
    EXECUTE format($q$
        SELECT array_agg(hit.content_type), array_agg(hit.source_id), array_agg(hit.chunk_index),
               array_agg(hit.distance), array_agg(hit.content)
        FROM (
            SELECT e.content_type, e.source_id, e.chunk_index, e.content,
                   (e.embedding::%1$s OPERATOR(%3$I.<=>) $1::%1$s)::double precision AS distance
            FROM embedq.embeddings e
            WHERE e.model = %2$L AND ($3::text[] IS NULL OR e.content_type = ANY ($3::text[]))
              AND ($4::jsonb IS NULL OR e.metadata @> $4::jsonb)
            ORDER BY e.embedding::%1$s OPERATOR(%3$I.<=>) $1::%1$s
            LIMIT $2
        ) hit
    $q$, v_type, p_model.name, v_schema)
    INTO v_types, v_ids, v_indexes, v_distances, v_contents
    USING p_query, p_limit, p_content_types, p_filter;
    IF v_filtered AND coalesce(cardinality(v_types), 0) < p_limit THEN
        RETURN QUERY EXECUTE format($q$
            WITH kept AS MATERIALIZED (
                SELECT e.content_type, e.source_id, e.chunk_index, e.content, e.embedding
                FROM embedq.embeddings e
                WHERE e.model = %2$L AND ($3::text[] IS NULL OR e.content_type = ANY ($3::text[]))
                  AND ($4::jsonb IS NULL OR e.metadata @> $4::jsonb)
            )
            SELECT k.content_type, k.source_id, k.chunk_index,
                   (k.embedding::%1$s OPERATOR(%3$I.<=>) $1::%1$s)::double precision AS distance, k.content
            FROM kept k
            ORDER BY distance, k.content_type, k.source_id, k.chunk_index
            LIMIT $2
        $q$, v_type, p_model.name, v_schema)
        USING p_query, p_limit, p_content_types, p_filter;
    ELSE
        RETURN QUERY
        SELECT u.t, u.i, u.c, u.d, u.x
        FROM unnest(v_types, v_ids, v_indexes, v_distances, v_contents) AS u(t, i, c, d, x)
        ORDER BY u.d, u.t, u.i, u.c;
    END IF;
END
$$;

-- The nearest rows: each row once, with its best chunk. Reads more chunks than rows wanted
-- (a long text has many chunks near a query) and more again while the rows fall short.
CREATE OR REPLACE FUNCTION embedq._nearest_rows(p_model embedq.models, p_query vector, p_limit integer,
                                                p_content_types text[], p_filter jsonb, p_min_score double precision)
RETURNS TABLE (content_type text, source_id text, chunk_index integer, distance double precision, content text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_most_chunks constant integer := 10000;
    v_fetch integer := least(2 * p_limit, v_most_chunks);
    v_types text[];
    v_ids text[];
    v_indexes integer[];
    v_distances double precision[];
    v_contents text[];
    v_rows bigint;
BEGIN
    LOOP
        SELECT array_agg(n.content_type ORDER BY n.distance), array_agg(n.source_id ORDER BY n.distance),
               array_agg(n.chunk_index ORDER BY n.distance), array_agg(n.distance ORDER BY n.distance),
               array_agg(n.content ORDER BY n.distance)
        INTO v_types, v_ids, v_indexes, v_distances, v_contents
        FROM embedq._nearest_chunks(p_model, p_query, v_fetch, p_content_types, p_filter) AS n;
        SELECT count(DISTINCT (u.t, u.i)) INTO v_rows FROM unnest(v_types, v_ids) AS u(t, i);
        EXIT WHEN v_rows >= p_limit OR coalesce(cardinality(v_types), 0) < v_fetch OR v_fetch >= v_most_chunks
               OR (p_min_score IS NOT NULL AND 1 - v_distances[cardinality(v_distances)] < p_min_score);
        v_fetch := least(v_fetch * 4, v_most_chunks);
    END LOOP;
    RETURN QUERY
    SELECT best.t, best.i, best.c, best.d, best.x
    FROM (
        SELECT DISTINCT ON (u.t, u.i) u.t, u.i, u.c, u.d, u.x
        FROM unnest(v_types, v_ids, v_indexes, v_distances, v_contents) AS u(t, i, c, d, x)
        ORDER BY u.t, u.i, u.d, u.c
    ) best
    WHERE p_min_score IS NULL OR 1 - best.d >= p_min_score
    ORDER BY best.d, best.t, best.i
    LIMIT p_limit;
END
$$;

CREATE OR REPLACE FUNCTION embedq._search_log(p_query text, p_model text, p_content_types text[], p_match_count integer,
                                              p_result_count bigint, p_started timestamptz)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO embedq.search_log (query, model, content_types, match_count, result_count, duration_ms, origin)
    VALUES (p_query, p_model, p_content_types, p_match_count, p_result_count,
            extract(epoch FROM clock_timestamp() - p_started) * 1000, 'sql')
$$;

-- Nearest rows to a query vector, best first: each row once with its best chunk, or every chunk
-- with `chunks => true`. `filters`: {"column": value} on the columns sources register as
-- filterable; `min_score`: the least cosine similarity; `match_offset`: the page (skip that many
-- hits); `log => true` records the search in embedq.search_log (origin 'sql', no query text).
-- hnsw.ef_search = 100 keeps recall@10 at or above 0.95; an iterative scan reads at most 10,000
-- index tuples before filters fall back to an exact scan (bench/search.py).
CREATE OR REPLACE FUNCTION embedq.search(
    query vector,
    match_count integer DEFAULT 10,
    content_types text[] DEFAULT NULL,
    model text DEFAULT NULL,
    filters jsonb DEFAULT NULL,
    min_score double precision DEFAULT NULL,
    chunks boolean DEFAULT false,
    match_offset integer DEFAULT 0,
    log boolean DEFAULT false
) RETURNS TABLE (content_type text, source_id text, chunk_index integer, similarity double precision, content text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = 100
SET hnsw.max_scan_tuples = 10000
AS $$
#variable_conflict use_column
DECLARE
    v_started timestamptz := clock_timestamp();
    v_model embedq.models;
    v_filter jsonb;
    v_count bigint;
BEGIN
    v_model := embedq._search_model(search.model, search.query);
    PERFORM embedq._search_check_page(match_count, match_offset);
    v_filter := embedq._search_filter(filters, content_types);
    IF chunks THEN
        RETURN QUERY
        SELECT n.content_type, n.source_id, n.chunk_index, 1 - n.distance, n.content
        FROM embedq._nearest_chunks(v_model, search.query, match_offset + match_count, content_types, v_filter) AS n
        WHERE min_score IS NULL OR 1 - n.distance >= min_score
        ORDER BY n.distance, n.content_type, n.source_id, n.chunk_index
        OFFSET match_offset;
    ELSE
        RETURN QUERY
        SELECT n.content_type, n.source_id, n.chunk_index, 1 - n.distance, n.content
        FROM embedq._nearest_rows(v_model, search.query, match_offset + match_count, content_types, v_filter,
                                  min_score) AS n
        ORDER BY n.distance, n.content_type, n.source_id
        OFFSET match_offset;
    END IF;
    IF search.log THEN
        GET DIAGNOSTICS v_count = ROW_COUNT;
        PERFORM embedq._search_log(NULL, v_model.name, content_types, match_count, v_count, v_started);
    END IF;
END
$$;

-- How much each query term weighs: its inverse document frequency over all stored chunks
-- (BM25's idf), so that a rare token (a course code, a name) outweighs "the" and "how". How many
-- chunks hold a frequent lexeme comes from the column statistics ANALYZE keeps
-- (pg_stats.most_common_elems); the rest are counted through the GIN index, up to the frequency
-- below which ANALYZE lists none. A term no chunk holds (a typo, a word the texts do not use)
-- weighs as much as the query's median known term: a match lacking it matches less of the
-- question, but it neither outweighs a rare token that is there nor counts for nothing.
CREATE OR REPLACE FUNCTION embedq._keyword_weights(p_terms text[])
RETURNS TABLE (term text, query tsquery, documents double precision, weight double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_counted_up_to constant integer := 10000;
    v_total double precision;
    v_elements text[];
    v_frequencies real[];
    v_cap integer := 1000;
    v_term text;
    v_query tsquery;
    v_at integer;
    v_count double precision;
    v_queries tsquery[] := '{}';
    v_counts double precision[] := '{}';
BEGIN
    SELECT c.reltuples INTO v_total FROM pg_class c WHERE c.oid = 'embedq.embeddings'::regclass;
    IF v_total IS NULL OR v_total < v_counted_up_to THEN
        -- small, or never analysed (reltuples -1)
        SELECT greatest(count(*), v_total) INTO v_total
        FROM (SELECT 1 FROM embedq.embeddings LIMIT v_counted_up_to) AS counted;
    END IF;
    SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs INTO v_elements, v_frequencies
    FROM pg_stats s WHERE s.schemaname = 'embedq' AND s.tablename = 'embeddings' AND s.attname = 'fts';
    IF v_elements IS NOT NULL THEN
        -- after the frequencies of the listed lexemes: the least of them, the greatest, nulls
        v_cap := greatest(ceil(v_frequencies[cardinality(v_elements) + 1] * v_total)::integer + 1, 100);
    END IF;
    FOREACH v_term IN ARRAY p_terms LOOP
        v_query := ('''' || replace(replace(v_term, '\', '\\'), '''', '''''') || ''''
                    -- a lone CJK character: the pairs it starts (embedq.fts_document)
                    || CASE WHEN v_term ~ '^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]$'
                            THEN ':*' ELSE '' END)::tsquery;
        v_at := CASE WHEN v_query::text NOT LIKE '%:*' THEN array_position(v_elements, v_term) END;
        IF v_at IS NOT NULL THEN
            v_count := v_frequencies[v_at] * v_total;
        ELSE
            SELECT count(*) INTO v_count FROM (SELECT 1 FROM embedq.embeddings e WHERE e.fts @@ v_query LIMIT v_cap) AS m;
        END IF;
        v_queries := v_queries || v_query;
        v_counts := v_counts || v_count;
    END LOOP;
    RETURN QUERY
    WITH terms AS (
        SELECT t.term, t.query, t.documents,
               CASE WHEN t.documents > 0
                    THEN ln(1 + (greatest(v_total, t.documents) - t.documents + 0.5) / (t.documents + 0.5)) END AS idf
        FROM unnest(p_terms, v_queries, v_counts) AS t(term, query, documents)
    )
    SELECT t.term, t.query, t.documents,
           coalesce(t.idf, (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY k.idf) FROM terms k), 0)
    FROM terms t;
END
$$;

-- Chunks (or rows, each with its best chunk) that contain the query's words, best first. A hit
-- must hold terms that make up at least p_min_match of the query's weight: "CS-4821 syllabus"
-- finds the course with that code though no text says "syllabus", while a question made of
-- common words matches only texts that share most of it. Ranked by the weight matched, then
-- ts_rank. Only chunks holding one of the rarest terms can reach the threshold, so only those
-- are read; when those terms are in more than 2,000 chunks, the query is made of common words,
-- the keyword side has nothing specific to find and returns nothing (the vectors rank alone).
CREATE OR REPLACE FUNCTION embedq._keyword_hits(p_model text, p_text text, p_limit integer, p_content_types text[],
                                                p_filter jsonb, p_min_match double precision, p_rows boolean)
RETURNS TABLE (content_type text, source_id text, chunk_index integer, matched double precision, content text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_most_candidates constant integer := 2000;
    v_queries tsquery[];
    v_weights double precision[];
    v_documents double precision[];
    v_total double precision;
    v_candidates tsquery;
    v_any tsquery;
    v_sum double precision := 0;
    v_candidate_documents double precision := 0;
    i integer;
BEGIN
    SELECT array_agg(w.query ORDER BY w.weight DESC, w.term), array_agg(w.weight ORDER BY w.weight DESC, w.term),
           array_agg(w.documents ORDER BY w.weight DESC, w.term), sum(w.weight)
    INTO v_queries, v_weights, v_documents, v_total
    FROM embedq._keyword_weights(embedq.fts_query_terms(p_text)) AS w;
    IF v_queries IS NULL OR v_total <= 0 THEN
        RETURN;
    END IF;
    FOR i IN 1 .. cardinality(v_queries) LOOP
        v_any := CASE WHEN v_any IS NULL THEN v_queries[i] ELSE v_any || v_queries[i] END;
        IF v_sum <= (1 - p_min_match) * v_total THEN
            v_candidates := v_any;
            v_candidate_documents := v_candidate_documents + v_documents[i];
        END IF;
        v_sum := v_sum + v_weights[i];
    END LOOP;
    IF v_candidate_documents > v_most_candidates THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT ranked.content_type, ranked.source_id, ranked.chunk_index, ranked.matched, ranked.content
    FROM (
        SELECT DISTINCT ON (scored.content_type, scored.source_id, CASE WHEN p_rows THEN 0 ELSE scored.chunk_index END)
               scored.*
        FROM (
            SELECT c.content_type, c.source_id, c.chunk_index, c.content,
                   (SELECT sum(w.weight) FROM unnest(v_queries, v_weights) AS w(q, weight) WHERE c.fts @@ w.q) AS matched,
                   ts_rank(c.fts, v_any) AS rank
            FROM (
                SELECT e.content_type, e.source_id, e.chunk_index, e.content, e.fts
                FROM embedq.embeddings e
                WHERE e.model = p_model AND e.fts @@ v_candidates
                  AND (p_content_types IS NULL OR e.content_type = ANY (p_content_types))
                  AND (p_filter IS NULL OR e.metadata @> p_filter)
                LIMIT v_most_candidates
            ) AS c
        ) AS scored
        WHERE scored.matched >= p_min_match * v_total - 1e-9  -- sums in another order
        ORDER BY scored.content_type, scored.source_id, CASE WHEN p_rows THEN 0 ELSE scored.chunk_index END,
                 scored.matched DESC, scored.rank DESC, scored.chunk_index
    ) AS ranked
    ORDER BY ranked.matched DESC, ranked.rank DESC, ranked.content_type, ranked.source_id, ranked.chunk_index
    LIMIT p_limit;
END
$$;

-- Keywords and vectors together: the rows (or chunks) nearest to query_embedding and those whose
-- text holds query_text's words are fused by reciprocal rank (RRF: each list adds
-- weight / (rrf_k + rank)). score is that sum divided by its greatest possible value, so 1 is
-- first in both lists. A hit shows the chunk that matched the words when there is one (it
-- explains the hit), otherwise its nearest chunk; similarity is the row's best cosine similarity
-- (the chunk's own with `chunks => true`), and min_score applies to it. keyword_min_match: the
-- share of the query's weight (rare words weigh more) a text must contain to count as a keyword
-- match. semantic_rank / keyword_rank: the hit's place in each list (NULL: not in it).
CREATE OR REPLACE FUNCTION embedq.hybrid_search(
    query_text text,
    query_embedding vector,
    match_count integer DEFAULT 10,
    content_types text[] DEFAULT NULL,
    model text DEFAULT NULL,
    filters jsonb DEFAULT NULL,
    min_score double precision DEFAULT NULL,
    chunks boolean DEFAULT false,
    match_offset integer DEFAULT 0,
    full_text_weight double precision DEFAULT 1,
    semantic_weight double precision DEFAULT 1,
    rrf_k integer DEFAULT 60,
    keyword_min_match double precision DEFAULT 0.5,
    log boolean DEFAULT false
) RETURNS TABLE (content_type text, source_id text, chunk_index integer, score double precision,
                 similarity double precision, content text, semantic_rank integer, keyword_rank integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = 100
SET hnsw.max_scan_tuples = 10000
AS $$
#variable_conflict use_column
DECLARE
    v_started timestamptz := clock_timestamp();
    v_model embedq.models;
    v_filter jsonb;
    v_list integer;
    v_count bigint;
BEGIN
    v_model := embedq._search_model(hybrid_search.model, query_embedding);
    PERFORM embedq._search_check_page(match_count, match_offset);
    v_filter := embedq._search_filter(filters, content_types);
    IF full_text_weight IS NULL OR semantic_weight IS NULL OR full_text_weight < 0 OR semantic_weight < 0
       OR full_text_weight + semantic_weight = 0 THEN
        RAISE EXCEPTION 'embedq: full_text_weight and semantic_weight must be 0 or more, and not both 0'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF rrf_k IS NULL OR rrf_k < 1 THEN
        RAISE EXCEPTION 'embedq: rrf_k must be 1 or more' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF keyword_min_match IS NULL OR keyword_min_match < 0 OR keyword_min_match > 1 THEN
        RAISE EXCEPTION 'embedq: keyword_min_match must be between 0 and 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Each list is longer than the page, so that a hit ranked low in one list but high in the
    -- other still gets both contributions.
    v_list := least(greatest(2 * (match_offset + match_count), 40), 10000);
    RETURN QUERY EXECUTE format($q$
        WITH semantic AS (
            SELECT n.content_type, n.source_id, n.chunk_index, n.distance, n.content,
                   CASE WHEN $6 THEN n.chunk_index ELSE 0 END AS chunk_key,
                   row_number() OVER (ORDER BY n.distance, n.content_type, n.source_id, n.chunk_index)::integer AS rank
            FROM %3$s AS n
        ), keyword AS (
            SELECT k.content_type, k.source_id, k.chunk_index, k.content,
                   CASE WHEN $6 THEN k.chunk_index ELSE 0 END AS chunk_key, k.rank::integer AS rank
            FROM embedq._keyword_hits(($1).name, $7, $3, $4, $5, $8, NOT $6)
                WITH ORDINALITY AS k(content_type, source_id, chunk_index, matched, content, rank)
        ), fused AS (
            SELECT coalesce(k.content_type, s.content_type) AS content_type,
                   coalesce(k.source_id, s.source_id) AS source_id,
                   coalesce(k.chunk_index, s.chunk_index) AS chunk_index,
                   coalesce(k.content, s.content) AS content,
                   coalesce($9 / ($11 + s.rank), 0) + coalesce($10 / ($11 + k.rank), 0) AS rrf,
                   s.distance, s.rank AS semantic_rank, k.rank AS keyword_rank
            FROM semantic s
            FULL JOIN keyword k
                ON k.content_type = s.content_type AND k.source_id = s.source_id AND k.chunk_key = s.chunk_key
        ), scored AS (
            SELECT f.*, coalesce(1 - f.distance, (
                       SELECT max(1 - (e.embedding::%1$s OPERATOR(%2$I.<=>) $2::%1$s))
                       FROM embedq.embeddings e
                       WHERE e.content_type = f.content_type AND e.source_id = f.source_id AND e.model = ($1).name
                         AND ($6 IS FALSE OR e.chunk_index = f.chunk_index)))::double precision AS similarity
            FROM fused f
        )
        SELECT s.content_type, s.source_id, s.chunk_index, (s.rrf / (($9 + $10) / ($11 + 1)))::double precision,
               s.similarity, s.content, s.semantic_rank, s.keyword_rank
        FROM scored s
        WHERE $12::double precision IS NULL OR s.similarity >= $12
        ORDER BY s.rrf DESC, s.similarity DESC, s.content_type, s.source_id, s.chunk_index
        LIMIT $13 OFFSET $14
    $q$, embedq._model_vector_type(v_model.dimensions), embedq._vector_schema(),
        CASE WHEN chunks THEN 'embedq._nearest_chunks($1, $2, $3, $4, $5)'
             ELSE 'embedq._nearest_rows($1, $2, $3, $4, $5, NULL)' END)
    USING v_model, query_embedding, v_list, content_types, v_filter, chunks, query_text, keyword_min_match,
          semantic_weight, full_text_weight, rrf_k::double precision, min_score, match_count, match_offset;
    IF hybrid_search.log THEN
        GET DIAGNOSTICS v_count = ROW_COUNT;
        PERFORM embedq._search_log(query_text, v_model.name, content_types, match_count, v_count, v_started);
    END IF;
END
$$;
