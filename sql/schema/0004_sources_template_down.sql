-- Undoes 0004_sources_template.sql. Sources keep their fields; their templates are forgotten.
DROP FUNCTION IF EXISTS embedq.register_source(text, regclass, text[], integer, text, text);
ALTER TABLE embedq.sources DROP COLUMN template;
