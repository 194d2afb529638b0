-- Write paths bench/triggers.py measures next to the shipped one. Each block starts with
-- `-- variant: NAME` and is run with `bench_variant` replaced by `bench_NAME`: the schema that
-- holds the variant's copy of the course table (bench_NAME.courses), its functions and its
-- triggers, and the content type it queues under (registered, so the listener can embed it).

-- variant: before
-- embedq 0.1 (revisions 0001-0005): three statement-level triggers with transition tables, each
-- checking the inbox for waiting rows on every statement and reading the registration; the
-- UPDATE trigger plans its query with EXECUTE on every statement.
CREATE FUNCTION bench_variant.course_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    already_waiting boolean := EXISTS (SELECT 1 FROM embedq.job_inbox);
BEGIN
    INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
    SELECT s.content_type, 'upsert', s.priority, touched.ids
    FROM (SELECT array_agg(r.id::text) FILTER (WHERE r.id IS NOT NULL) AS ids FROM new_rows r) touched
    CROSS JOIN embedq.sources s
    WHERE s.content_type = 'bench_variant' AND s.enabled AND touched.ids IS NOT NULL;
    IF FOUND AND NOT already_waiting THEN
        PERFORM pg_notify('embedq_jobs', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE FUNCTION bench_variant.course_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    already_waiting boolean := EXISTS (SELECT 1 FROM embedq.job_inbox);
    queued bigint;
BEGIN
    EXECUTE '
        INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
        SELECT s.content_type, touched.op, s.priority, touched.ids
        FROM (
            SELECT ''upsert''::embedq.job_op AS op, array_agg(n.id::text) AS ids
            FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
            WHERE n.id IS NOT NULL AND (o.id IS NULL OR (ROW(n.title, n.description, n.category, n.tags::text,
                n.requirements, n.learning_objectives)) IS DISTINCT FROM (ROW(o.title, o.description, o.category,
                o.tags::text, o.requirements, o.learning_objectives)))
            UNION ALL
            SELECT ''delete''::embedq.job_op, array_agg(o.id::text)
            FROM old_rows o
            WHERE o.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id)
        ) AS touched CROSS JOIN embedq.sources s
        WHERE s.content_type = ''bench_variant'' AND s.enabled AND touched.ids IS NOT NULL';
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 AND NOT already_waiting THEN
        PERFORM pg_notify('embedq_jobs', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER bench_insert AFTER INSERT ON bench_variant.courses REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_variant.course_insert();
CREATE TRIGGER bench_update AFTER UPDATE ON bench_variant.courses
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_variant.course_update();

-- variant: row
-- The reference the issue names: a row-level trigger writing one queue row per row (pgai's
-- vectorizer does this), here one inbox row per row, with a wake-up when the inbox was empty.
CREATE FUNCTION bench_variant.course_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    already_waiting boolean := EXISTS (SELECT 1 FROM embedq.job_inbox);
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
        VALUES ('bench_variant', 'upsert', 2, ARRAY[NEW.id::text]);
    ELSIF NEW.id IS DISTINCT FROM OLD.id THEN
        INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
        VALUES ('bench_variant', 'delete', 2, ARRAY[OLD.id::text]), ('bench_variant', 'upsert', 2, ARRAY[NEW.id::text]);
    ELSIF ROW(NEW.title, NEW.description, NEW.category, NEW.tags, NEW.requirements, NEW.learning_objectives)
          IS DISTINCT FROM ROW(OLD.title, OLD.description, OLD.category, OLD.tags, OLD.requirements, OLD.learning_objectives) THEN
        INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
        VALUES ('bench_variant', 'upsert', 2, ARRAY[NEW.id::text]);
    ELSE
        RETURN NULL;
    END IF;
    IF NOT already_waiting THEN
        PERFORM pg_notify('embedq_jobs', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER bench_row AFTER INSERT OR UPDATE ON bench_variant.courses
    FOR EACH ROW EXECUTE FUNCTION bench_variant.course_row();

-- variant: row_noop
-- The floor of any row-level trigger: one that does nothing.
CREATE FUNCTION bench_variant.course_noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE TRIGGER bench_noop AFTER INSERT OR UPDATE ON bench_variant.courses
    FOR EACH ROW EXECUTE FUNCTION bench_variant.course_noop();

-- variant: row_buffered
-- Aggregation per transaction without SQL per statement: a row-level trigger appends each key to
-- a transaction-local setting (set_config(..., true)); the first key of a transaction also
-- writes a marker row whose deferred constraint trigger moves the keys into the inbox at commit
-- (every 1,000 bytes of keys are written on the way). Not shipped: RESET ALL inside a
-- transaction silently drops the buffered keys, and a bulk statement pays a plpgsql call per row.
CREATE TABLE bench_variant.flush (id int);
CREATE FUNCTION bench_variant.course_flush() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_keys text := current_setting('bench_variant.keys', true);
BEGIN
    PERFORM set_config('bench_variant.keys', '', true);
    DELETE FROM bench_variant.flush;
    IF length(v_keys) > 1 THEN
        INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
        VALUES ('bench_variant', 'upsert', 2, string_to_array(substr(v_keys, 3), ','));
    END IF;
    RETURN NULL;
END
$$;
CREATE FUNCTION bench_variant.course_buffered() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_keys text := current_setting('bench_variant.keys', true);
BEGIN
    IF TG_OP = 'UPDATE' AND NOT ROW(NEW.title, NEW.description, NEW.category, NEW.tags, NEW.requirements, NEW.learning_objectives)
          IS DISTINCT FROM ROW(OLD.title, OLD.description, OLD.category, OLD.tags, OLD.requirements, OLD.learning_objectives) THEN
        RETURN NULL;
    END IF;
    IF v_keys IS NULL OR v_keys = '' THEN
        v_keys := set_config('bench_variant.keys', '+,' || NEW.id::text, true);
        INSERT INTO bench_variant.flush VALUES (1);
        IF NOT EXISTS (SELECT 1 FROM embedq.job_inbox) THEN
            PERFORM pg_notify('embedq_jobs', '');
        END IF;
    ELSIF octet_length(v_keys) < 1000 THEN
        v_keys := set_config('bench_variant.keys', v_keys || ',' || NEW.id::text, true);
    ELSE
        INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
        VALUES ('bench_variant', 'upsert', 2, string_to_array(substr(v_keys, 3) || ',' || NEW.id::text, ','));
        v_keys := set_config('bench_variant.keys', '+', true);
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER bench_flush AFTER INSERT ON bench_variant.flush DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bench_variant.course_flush();
CREATE TRIGGER bench_buffered AFTER INSERT OR UPDATE ON bench_variant.courses
    FOR EACH ROW EXECUTE FUNCTION bench_variant.course_buffered();

-- variant: unlogged
-- The shipped statement-level triggers writing to an UNLOGGED copy of the inbox (no WAL). Not
-- shipped: a crash empties an unlogged table, so every write committed since the last ingest
-- would lose its job, silently. (The listener does not read this copy: no latency figure.)
CREATE UNLOGGED TABLE bench_variant.job_inbox (LIKE embedq.job_inbox INCLUDING ALL);
CREATE FUNCTION bench_variant.course_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    first_write boolean := current_setting('embedq.inbox_written', true) IS DISTINCT FROM 'on';
    already_waiting boolean;
BEGIN
    IF first_write THEN
        already_waiting := EXISTS (SELECT 1 FROM bench_variant.job_inbox);
    END IF;
    INSERT INTO bench_variant.job_inbox (content_type, op, priority, source_ids)
    SELECT 'bench_variant', 'upsert', 2, touched.ids
    FROM (SELECT array_agg(r.id::text) AS ids FROM new_rows r WHERE r.id IS NOT NULL) touched
    WHERE touched.ids IS NOT NULL;
    IF FOUND AND first_write THEN
        PERFORM set_config('embedq.inbox_written', 'on', true);
        IF NOT already_waiting THEN
            PERFORM pg_notify('embedq_jobs', '');
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE FUNCTION bench_variant.course_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    first_write boolean := current_setting('embedq.inbox_written', true) IS DISTINCT FROM 'on';
    already_waiting boolean;
BEGIN
    IF first_write THEN
        already_waiting := EXISTS (SELECT 1 FROM bench_variant.job_inbox);
    END IF;
    INSERT INTO bench_variant.job_inbox (content_type, op, priority, source_ids)
    SELECT 'bench_variant', queued.op, 2, queued.ids
    FROM (
        SELECT array_agg(o.id::text) FILTER (WHERE n.id IS NULL AND o.id IS NOT NULL) AS deleted,
               array_agg(n.id::text) FILTER (WHERE n.id IS NOT NULL AND (o.id IS NULL OR
                   ROW(n.title, n.description, n.category, n.tags::text, n.requirements, n.learning_objectives)
                   IS DISTINCT FROM ROW(o.title, o.description, o.category, o.tags::text, o.requirements, o.learning_objectives))) AS changed
        FROM new_rows n FULL JOIN old_rows o ON o.id::text COLLATE "C" = n.id::text COLLATE "C"
    ) touched
    CROSS JOIN LATERAL (VALUES ('delete'::embedq.job_op, touched.deleted),
                               ('upsert'::embedq.job_op, touched.changed)) AS queued(op, ids)
    WHERE queued.ids IS NOT NULL;
    IF FOUND AND first_write THEN
        PERFORM set_config('embedq.inbox_written', 'on', true);
        IF NOT already_waiting THEN
            PERFORM pg_notify('embedq_jobs', '');
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER bench_insert AFTER INSERT ON bench_variant.courses REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_variant.course_insert();
CREATE TRIGGER bench_update AFTER UPDATE ON bench_variant.courses
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_variant.course_update();
