-- Undoes 0001_embedq.sql. The vector extension stays: other schemas may use it.
DROP SCHEMA IF EXISTS embedq CASCADE;
