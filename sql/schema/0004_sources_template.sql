-- How a row becomes text is part of its registration: an optional template with {column}
-- placeholders (embedq/content.py renders it; NULL: every registered field as `Label: value`).
ALTER TABLE embedq.sources ADD COLUMN template text;

-- register_source gained the template parameter; the function file re-creates it.
DROP FUNCTION IF EXISTS embedq.register_source(text, regclass, text[], integer, text);
