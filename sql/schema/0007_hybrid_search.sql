-- Hybrid search (keywords fused with vectors), filterable columns, searches logged from SQL.

-- The keyword side indexes every chunk's text as a tsvector with the `simple` configuration:
-- lower case, no stemming, no stop words, so any language works and exact tokens (CS-4821,
-- json_normalize, a person's name) stay as written. Chinese, Japanese and Korean write words
-- without spaces, and the parser would index a whole sentence as one word: their runs of
-- characters are indexed instead as overlapping pairs, plus each run's last character
-- ("麻婆豆腐": 麻婆 婆豆 豆腐 腐), the bigrams of Lucene's CJK analyzer and of pg_bigm. A query
-- looks for its pairs; a lone character is a prefix search (the pairs it starts, or a run's
-- last character). A hyphen after a letter or digit separates words: the parser would read
-- CS-4821 as "cs" and the negative number "-4821", which a search for 4821 would then miss.
--
-- The pairs are built with arrays, not regular expressions: PostgreSQL's regex engine is slow
-- on long runs of CJK text, and this runs for every chunk written (bench/search.py measures it).
-- The CJK character class (kana, CJK ideographs, hangul) is written out in each function that
-- needs it: regular expressions are cached by their text.
--
-- These functions decide what the stored column holds: changing them needs a revision that
-- rebuilds the column, so they live here and not in a function file.

-- The text without CJK characters and without CJK and general punctuation (which the parser
-- would otherwise keep as parts of words), hyphens after a letter or digit turned into spaces.
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

-- The CJK characters of a text, one array element each, runs separated by a ' ' element and
-- the whole framed by ' ' elements.
CREATE FUNCTION embedq._fts_cjk_characters(p_text text)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_to_array(
        ' ' || regexp_replace(p_text, '[^\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+', ' ', 'g')
            || ' ',
        NULL)
$$;

-- What a chunk is indexed as: its plain words, then the pairs and last characters of its CJK runs.
CREATE FUNCTION embedq.fts_document(p_text text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT to_tsvector('simple'::regconfig, embedq._fts_plain_text(p_text))
        || CASE WHEN p_text !~ '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]' THEN ''::tsvector
           ELSE (SELECT array_to_tsvector(coalesce(array_agg(CASE WHEN u.b = ' ' THEN u.a ELSE u.a || u.b END), '{}'))
                 FROM (SELECT embedq._fts_cjk_characters(p_text) AS c) AS s
                 CROSS JOIN LATERAL unnest(s.c, s.c[2:]) AS u(a, b)
                 WHERE u.a <> ' ' AND u.b IS NOT NULL) END
$$;

-- The distinct terms a query looks for: its plain words, the pairs of its CJK runs, and a run of
-- one character alone (embedq._keyword_weights searches that as a prefix).
CREATE FUNCTION embedq.fts_query_terms(p_text text)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(DISTINCT t.term ORDER BY t.term), '{}')
    FROM (
        SELECT unnest(tsvector_to_array(to_tsvector('simple'::regconfig, embedq._fts_plain_text(p_text)))) AS term
        UNION ALL
        SELECT CASE WHEN u.b = ' ' THEN u.a ELSE u.a || u.b END
        FROM (SELECT embedq._fts_cjk_characters(p_text) AS c) AS s
        CROSS JOIN LATERAL unnest(s.c, s.c[2:]) WITH ORDINALITY AS u(a, b, i)
        WHERE u.a <> ' ' AND u.b IS NOT NULL AND (u.b <> ' ' OR s.c[u.i - 1] = ' ')
    ) AS t
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
