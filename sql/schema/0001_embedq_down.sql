-- Undoes 0001_embedq.sql: removes exactly what embedq created. Every registration is undone
-- first (its triggers leave the application's tables; the tables themselves stay). The schema
-- and embedq.alembic_version stay for alembic to record the downgrade; the vector extension
-- stays too: other schemas may use it. Nothing is dropped with CASCADE: an application object
-- built on embedq's (a view over embedq.search, say) stops the downgrade instead of vanishing.
SELECT embedq.unregister_source(content_type, cancel_jobs => false) FROM embedq.sources;
DO $$
DECLARE
    v_name text;
BEGIN
    FOR v_name IN
        SELECT format('%s %s', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
                      p.oid::regprocedure)
        FROM pg_proc p WHERE p.pronamespace = 'embedq'::regnamespace
    LOOP
        EXECUTE 'DROP ' || v_name;
    END LOOP;
END
$$;
DROP TABLE IF EXISTS embedq.search_log, embedq.embeddings, embedq.models, embedq.workers, embedq.job_inbox,
    embedq.jobs, embedq.sources;
DROP TYPE IF EXISTS embedq.job_status, embedq.job_op;
