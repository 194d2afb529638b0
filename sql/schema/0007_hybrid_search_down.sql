-- Undoes 0007_hybrid_search.sql. Filterable columns are forgotten (their values stay in the
-- vectors' metadata, unused); searches logged from Python or SQL go, as the older constraint
-- knows only the CLI and HTTP.
DROP FUNCTION IF EXISTS embedq.hybrid_search(text, vector, integer, text[], text, jsonb, double precision, boolean,
                                             integer, double precision, double precision, integer, double precision,
                                             boolean);
DROP FUNCTION IF EXISTS embedq.search(vector, integer, text[], text, jsonb, double precision, boolean, integer, boolean);
DROP FUNCTION IF EXISTS embedq.register_source(text, regclass, text[], integer, text, text, text[]);
DELETE FROM embedq.search_log WHERE origin NOT IN ('cli', 'http') OR query IS NULL;
ALTER TABLE embedq.search_log ALTER COLUMN query SET NOT NULL;
ALTER TABLE embedq.search_log DROP CONSTRAINT search_log_origin;
ALTER TABLE embedq.search_log ADD CONSTRAINT search_log_origin CHECK (origin IN ('cli', 'http'));
DROP INDEX embedq.embeddings_metadata;
ALTER TABLE embedq.sources DROP COLUMN filters;
DROP INDEX embedq.embeddings_fts;
ALTER TABLE embedq.embeddings DROP COLUMN fts;
DROP FUNCTION embedq.fts_query_terms(text);
DROP FUNCTION embedq.fts_document(text);
DROP FUNCTION embedq._fts_plain_text(text);
DROP FUNCTION embedq._fts_cjk_characters(text);
