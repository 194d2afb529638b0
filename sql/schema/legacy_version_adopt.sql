-- embedq 0.1 recorded its revision in public.alembic_version, the table an application's own
-- Alembic uses. Run by alembic/env.py before every migration: when embedq's schema exists, its
-- own version table does not, and public.alembic_version holds exactly one row that is one of
-- 0.1's revisions (0.1 could only migrate when it was alone there), the row moves to
-- embedq.alembic_version. Anything else in public.alembic_version is the application's and is
-- left alone.
DO $$
DECLARE
    v_revision text;
BEGIN
    IF to_regclass('public.alembic_version') IS NULL OR to_regclass('embedq.jobs') IS NULL
       OR to_regclass('embedq.alembic_version') IS NOT NULL THEN
        RETURN;
    END IF;
    IF (SELECT count(*) FROM public.alembic_version) <> 1 THEN
        RETURN;
    END IF;
    SELECT version_num INTO v_revision FROM public.alembic_version WHERE version_num IN ('0001', '0002', '0003');
    IF v_revision IS NULL THEN
        RETURN;
    END IF;
    CREATE TABLE embedq.alembic_version (
        version_num varchar(32) NOT NULL CONSTRAINT alembic_version_pkc PRIMARY KEY
    );
    INSERT INTO embedq.alembic_version VALUES (v_revision);
    DELETE FROM public.alembic_version WHERE version_num = v_revision;
    RAISE WARNING 'embedq: migration history (revision %) moved from public.alembic_version to embedq.alembic_version',
        v_revision;
END
$$;
