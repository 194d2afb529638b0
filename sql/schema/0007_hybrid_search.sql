-- Hybrid search (keywords fused with vectors), filterable columns, searches logged from SQL.

-- The keyword side indexes every chunk's text as a tsvector with the `simple` configuration:
-- lower case, no stemming, no stop words, so any language works and exact tokens (CS-4821,
-- json_normalize, a person's name) stay as written. Chinese, Japanese and Korean write words
-- without spaces, and the parser would index a whole sentence as one word; their runs of
-- characters are indexed instead as single characters plus overlapping pairs ("麻婆豆腐": 麻 麻婆
-- 婆 婆豆 豆 豆腐 腐), as Lucene's CJK analyzer does, and queries look for the pairs.
-- A hyphen after a letter or digit separates words: the parser would read CS-4821 as "cs" and
-- the negative number "-4821", which a search for 4821 would then miss.
--
-- The functions below decide what the stored column holds: changing them needs a revision that
-- rebuilds the column, so they live here and not in a function file.

-- Runs of CJK characters (kana, CJK ideographs, hangul).
CREATE FUNCTION embedq._fts_cjk_runs(p_text text)
RETURNS SETOF text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT regexp_split_to_array(m[1], '')
    FROM regexp_matches(p_text, '([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+)', 'g') AS m
$$;

-- The text without its CJK runs and without CJK and general punctuation (which the parser
-- would otherwise keep as words), hyphens after a letter or digit turned into spaces.
CREATE FUNCTION embedq._fts_plain_text(p_text text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT regexp_replace(
        regexp_replace(p_text,
            '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\u2000-\u206f\u3000-\u303f'
            '\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]+', ' ', 'g'),
        '([[:alnum:]])-', '\1 ', 'g')
$$;

-- What a chunk is indexed as: its plain words, then every CJK character and every pair.
CREATE FUNCTION embedq.fts_document(p_text text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT to_tsvector('simple'::regconfig,
        embedq._fts_plain_text(p_text) || ' ' || coalesce(
            (SELECT string_agg(run[i] || ' ' || run[i] || coalesce(run[i + 1], ''), ' ')
             FROM embedq._fts_cjk_runs(p_text) AS run CROSS JOIN LATERAL generate_subscripts(run, 1) AS i),
            ''))
$$;

-- The distinct terms a query looks for: its plain words, and the pairs of its CJK runs (a
-- single character alone).
CREATE FUNCTION embedq.fts_query_terms(p_text text)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(DISTINCT lexeme ORDER BY lexeme), '{}')
    FROM unnest(tsvector_to_array(to_tsvector('simple'::regconfig,
        embedq._fts_plain_text(p_text) || ' ' || coalesce(
            (SELECT string_agg(CASE WHEN cardinality(run) = 1 THEN run[1] ELSE run[i] || run[i + 1] END, ' ')
             FROM embedq._fts_cjk_runs(p_text) AS run
             CROSS JOIN LATERAL generate_series(1, greatest(cardinality(run) - 1, 1)) AS i),
            '')))) AS lexeme
$$;

ALTER TABLE embedq.embeddings ADD COLUMN fts tsvector GENERATED ALWAYS AS (embedq.fts_document(content)) STORED;
CREATE INDEX embeddings_fts ON embedq.embeddings USING gin (fts);

-- Filterable columns: a source names columns whose values are copied into its vectors'
-- metadata (metadata -> 'filters' -> column: the values as an array of text), so searches can
-- keep only, say, one tenant's rows. The GIN index serves selective filters.
ALTER TABLE embedq.sources ADD COLUMN filters text[] NOT NULL DEFAULT '{}';
CREATE INDEX embeddings_metadata ON embedq.embeddings USING gin (metadata jsonb_path_ops);

-- Searches made through the Python API, and SQL searches that ask to be logged; a search by a
-- vector alone (SQL) has no query text.
ALTER TABLE embedq.search_log DROP CONSTRAINT search_log_origin;
ALTER TABLE embedq.search_log ADD CONSTRAINT search_log_origin CHECK (origin IN ('cli', 'http', 'python', 'sql'));
ALTER TABLE embedq.search_log ALTER COLUMN query DROP NOT NULL;

-- Functions whose signature changed; the function files re-create them.
DROP FUNCTION IF EXISTS embedq.search(vector, integer, text[], text);
DROP FUNCTION IF EXISTS embedq.register_source(text, regclass, text[], integer, text, text);
