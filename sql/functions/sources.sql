-- Registering a table as a source of embeddings. Idempotent: CREATE OR REPLACE only.
--
-- register_source records the registration; embedq._source_triggers builds its three
-- statement-level triggers (INSERT, UPDATE, DELETE) with transition tables, so a statement
-- touching 100,000 rows costs one row in embedq.job_inbox (the keys as an array) and at most one
-- pg_notify, not 100,000 of each. (PostgreSQL takes a cluster-wide lock at commit for every
-- transaction that notifies; per-row notifies would serialise writers.) Every identifier comes
-- from the catalog and is quoted with format('%I'); nothing a caller passes is ever executed as
-- SQL. The trigger functions' bodies are passed to CREATE FUNCTION as quoted literals (%L), never
-- dollar-quoted: a column named `x$body$y` would otherwise end the body early and run the rest as
-- SQL.
--
-- What a statement costs, once the first one of its transaction is past: the trigger call and
-- one INSERT into the inbox, nothing else (bench/triggers.py measures it against the plain table
-- and the alternatives). The registration is not read on the way: the priority is written into
-- the trigger, and whether the source is enabled, and its current priority, are looked up when
-- embedq.jobs_ingest moves the rows into jobs. The queries are static, so plpgsql plans them
-- once per session: the UPDATE trigger pairs old and new rows with a FULL JOIN, which PostgreSQL
-- can only run as a hash or merge join, so a plan cached for one-row updates stays linear for a
-- 100,000-row one.
--
-- Wake-ups: a transaction sends one NOTIFY, from the first statement that writes the inbox,
-- and none when inbox rows were already waiting then: their notification is on its way (or was
-- delivered) and a listener claims again until nothing is left, so the new rows are picked up
-- without one. Under write load this removes most NOTIFYs, and with them most of the
-- commit-time lock PostgreSQL takes for a notifying transaction. The transaction-local setting
-- embedq.inbox_written remembers that the decision was made; a savepoint rolled back takes it
-- back with the rows and the NOTIFY, and losing it (RESET ALL) only costs one more check. The
-- poll interval bounds the wait if a long transaction commits just after a listener found
-- nothing to do.

CREATE OR REPLACE FUNCTION embedq._trigger_names(p_content_type text)
RETURNS TABLE (kind text, function_name text, trigger_name text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT kind, format('source_%s_%s', p_content_type, kind), format('embedq_%s_%s', p_content_type, kind)
    FROM unnest(ARRAY['insert', 'update', 'delete']) AS kind
$$;

-- How to compare a column's old and new values. Types with their own `=` compare directly;
-- the rest (json, xml, arrays, enums, ...) compare by their text form, which is equal exactly
-- when the values are.
CREATE OR REPLACE FUNCTION embedq._comparable(p_alias text, p_column text, p_type oid)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_operator op
                     WHERE op.oprname = '=' AND op.oprleft = p_type AND op.oprright = p_type)
        THEN format('%I.%I', p_alias, p_column)
        ELSE format('%I.%I::text', p_alias, p_column)
    END
$$;

-- Builds (or rebuilds) the triggers of a registered source from its row in embedq.sources:
-- register_source calls it, and a migration that changes the trigger bodies calls it for every
-- source. Each trigger function runs one static query into embedq.job_inbox, the first one of a
-- transaction also the wake-up described at the top of this file.
CREATE OR REPLACE FUNCTION embedq._source_triggers(p_content_type text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $build$
DECLARE
    v_source embedq.sources;
    v_table regclass;
    v_new_fields text;
    v_old_fields text;
    v_missing text;
    v_names record;
    v_query text;
    v_event text;
    v_watched text[];
BEGIN
    v_source := embedq._registered_source(p_content_type);
    -- a change to an embedded field re-embeds the row; one to a filterable column rewrites its metadata
    v_watched := v_source.fields || ARRAY(SELECT f FROM unnest(v_source.filters) f WHERE NOT f = ANY (v_source.fields));
    v_table := to_regclass(v_source.table_name);
    IF v_table IS NULL THEN
        RAISE EXCEPTION 'embedq: table % of source % does not exist', v_source.table_name, quote_literal(p_content_type)
            USING ERRCODE = 'undefined_table';
    END IF;
    SELECT string_agg(quote_ident(f.name), ', ') INTO v_missing
    FROM unnest(array_prepend(v_source.key_column, v_watched)) AS f(name)
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                      WHERE a.attrelid = v_table AND a.attname = f.name AND a.attnum > 0 AND NOT a.attisdropped);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'embedq: column % of source % no longer exists in table %', v_missing,
            quote_literal(p_content_type), v_source.table_name
            USING ERRCODE = 'undefined_column', HINT = 'Register the source again with its current columns.';
    END IF;
    SELECT string_agg(embedq._comparable('n', f.name, a.atttypid), ', ' ORDER BY f.ord),
           string_agg(embedq._comparable('o', f.name, a.atttypid), ', ' ORDER BY f.ord)
    INTO v_new_fields, v_old_fields
    FROM unnest(v_watched) WITH ORDINALITY AS f(name, ord)
    JOIN pg_attribute a ON a.attrelid = v_table AND a.attname = f.name AND a.attnum > 0 AND NOT a.attisdropped;
    IF cardinality(v_watched) > 1 THEN
        v_new_fields := 'ROW(' || v_new_fields || ')';
        v_old_fields := 'ROW(' || v_old_fields || ')';
    END IF;

    FOR v_names IN SELECT * FROM embedq._trigger_names(v_source.content_type) LOOP
        IF v_names.kind = 'insert' THEN
            v_event := 'INSERT ON %s REFERENCING NEW TABLE AS new_rows';
            v_query := format($q$
                INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
                SELECT %2$L, 'upsert', %3$s, touched.ids
                FROM (SELECT array_agg(r.%1$I::text) AS ids FROM new_rows r WHERE r.%1$I IS NOT NULL) touched
                WHERE touched.ids IS NOT NULL$q$,
                v_source.key_column, v_source.content_type, v_source.priority);
        ELSIF v_names.kind = 'delete' THEN
            v_event := 'DELETE ON %s REFERENCING OLD TABLE AS old_rows';
            v_query := format($q$
                INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
                SELECT %2$L, 'delete', %3$s, touched.ids
                FROM (SELECT array_agg(r.%1$I::text) AS ids FROM old_rows r WHERE r.%1$I IS NOT NULL) touched
                WHERE touched.ids IS NOT NULL$q$,
                v_source.key_column, v_source.content_type, v_source.priority);
        ELSE
            -- Old and new rows are paired by key, as text in the C collation: equal exactly when
            -- the keys are, whatever the key's type, and always hash- and merge-joinable. A FULL
            -- JOIN can only run as a hash or merge join, never as a nested loop, so the plan
            -- plpgsql caches for the session stays linear whatever size of statement it was
            -- first planned for. A key that changed queues a delete of the old key and an upsert
            -- of the new one; a row whose fields are all unchanged queues nothing.
            v_event := 'UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows';
            v_query := format($q$
                INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids)
                SELECT %2$L, queued.op, %5$s, queued.ids
                FROM (
                    SELECT array_agg(o.%1$I::text) FILTER (WHERE n.%1$I IS NULL AND o.%1$I IS NOT NULL) AS deleted,
                           array_agg(n.%1$I::text) FILTER (
                               WHERE n.%1$I IS NOT NULL AND (o.%1$I IS NULL OR %3$s IS DISTINCT FROM %4$s)) AS changed
                    FROM new_rows n FULL JOIN old_rows o ON o.%1$I::text COLLATE "C" = n.%1$I::text COLLATE "C"
                ) touched
                CROSS JOIN LATERAL (VALUES ('delete'::embedq.job_op, touched.deleted),
                                           ('upsert'::embedq.job_op, touched.changed)) AS queued(op, ids)
                WHERE queued.ids IS NOT NULL$q$,
                v_source.key_column, v_source.content_type, v_new_fields, v_old_fields, v_source.priority);
        END IF;
        -- Only the first statement of a transaction checks the inbox (a query of its own: folding
        -- it into the INSERT as a CTE cost more than it saved); the setting is set by an
        -- assignment, which plpgsql evaluates without running a query.
        EXECUTE format('CREATE OR REPLACE FUNCTION embedq.%I() RETURNS trigger LANGUAGE plpgsql AS %L',
                       v_names.function_name, format($body$
            DECLARE
                first_write boolean := current_setting('embedq.inbox_written', true) IS DISTINCT FROM 'on';
                already_waiting boolean;
                setting text;
            BEGIN
                IF first_write THEN
                    already_waiting := EXISTS (SELECT 1 FROM embedq.job_inbox);
                END IF;
                %s;
                IF FOUND AND first_write THEN
                    setting := set_config('embedq.inbox_written', 'on', true);
                    IF NOT already_waiting THEN
                        PERFORM pg_notify('embedq_jobs', '');
                    END IF;
                END IF;
                RETURN NULL;
            END
        $body$, v_query));
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_names.trigger_name, v_source.table_name);
        EXECUTE format('CREATE TRIGGER %I AFTER %s FOR EACH STATEMENT EXECUTE FUNCTION embedq.%I()',
                       v_names.trigger_name, format(v_event, v_source.table_name), v_names.function_name);
    END LOOP;
END
$build$;

CREATE OR REPLACE FUNCTION embedq.register_source(
    content_type text,
    source_table regclass,
    fields text[],
    priority integer DEFAULT 3,
    key_column text DEFAULT 'id',
    template text DEFAULT NULL,
    filters text[] DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $register$
DECLARE
    v_content_type text := register_source.content_type;
    v_relkind "char";
    v_table text;
    v_key_attnum smallint;
    v_field text;
    v_field_types oid[] := '{}';
    v_type oid;
    v_schema name;
    v_persistence "char";
    v_unknown text;
    v_filters text[] := coalesce(filters, '{}');
    v_filter_types oid[] := '{}';
    v_embedded_fields text[];
BEGIN
    IF v_content_type IS NULL OR v_content_type !~ '^[a-z][a-z0-9_]{0,39}$' THEN
        RAISE EXCEPTION 'embedq: content type % is not valid', quote_literal(coalesce(v_content_type, 'NULL'))
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use 1 to 40 characters: lower-case letters, digits and _, starting with a letter.';
    END IF;
    IF source_table IS NULL THEN
        RAISE EXCEPTION 'embedq: a table is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF priority IS NULL OR priority NOT BETWEEN 1 AND 9 THEN
        RAISE EXCEPTION 'embedq: priority % is out of range (1 = most urgent .. 9)', coalesce(priority::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF fields IS NULL OR cardinality(fields) = 0 THEN
        RAISE EXCEPTION 'embedq: at least one field is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT count(DISTINCT f) FROM unnest(fields) f) <> cardinality(fields) THEN
        RAISE EXCEPTION 'embedq: fields % contain a duplicate', fields USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT c.relkind, format('%I.%I', n.nspname, c.relname), n.nspname, c.relpersistence
    INTO v_relkind, v_table, v_schema, v_persistence
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = source_table;
    IF v_relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'embedq: % is not a table', source_table USING ERRCODE = 'wrong_object_type';
    END IF;
    IF v_persistence = 't' THEN
        RAISE EXCEPTION 'embedq: % is a temporary table: no listener can read it', source_table
            USING ERRCODE = 'wrong_object_type';
    END IF;
    -- A trigger on embedq.job_inbox would fire on its own insert; one on embedq.jobs would queue
    -- a job for every job. System catalogs take no triggers at all.
    IF v_schema IN ('embedq', 'pg_catalog', 'information_schema', 'pg_toast') THEN
        RAISE EXCEPTION 'embedq: % is one of embedq''s or PostgreSQL''s own tables, not an application table', v_table
            USING ERRCODE = 'wrong_object_type';
    END IF;

    SELECT a.attnum INTO v_key_attnum FROM pg_attribute a
    WHERE a.attrelid = source_table AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_key_attnum IS NULL THEN
        RAISE EXCEPTION 'embedq: key column % does not exist in table %', quote_ident(coalesce(key_column, 'NULL')), v_table
            USING ERRCODE = 'undefined_column';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i
        WHERE i.indrelid = source_table AND i.indisunique AND i.indpred IS NULL
          AND i.indnkeyatts = 1 AND i.indkey[0] = v_key_attnum
    ) THEN
        RAISE EXCEPTION 'embedq: key column % of table % has no unique index', quote_ident(key_column), v_table
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The key must identify one row: use the primary key or a column with a unique index.';
    END IF;

    FOREACH v_field IN ARRAY fields LOOP
        SELECT a.atttypid INTO v_type FROM pg_attribute a
        WHERE a.attrelid = source_table AND a.attname = v_field AND a.attnum > 0 AND NOT a.attisdropped;
        IF v_type IS NULL THEN
            RAISE EXCEPTION 'embedq: column % does not exist in table %', quote_ident(coalesce(v_field, 'NULL')), v_table
                USING ERRCODE = 'undefined_column';
        END IF;
        v_field_types := v_field_types || v_type;
    END LOOP;

    -- Filterable columns: their values are copied into the vectors' metadata for search filters.
    IF (SELECT count(DISTINCT f) FROM unnest(v_filters) f) <> cardinality(v_filters) THEN
        RAISE EXCEPTION 'embedq: filters % contain a duplicate', v_filters USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH v_field IN ARRAY v_filters LOOP
        v_type := NULL;
        SELECT a.atttypid INTO v_type FROM pg_attribute a
        WHERE a.attrelid = source_table AND a.attname = v_field AND a.attnum > 0 AND NOT a.attisdropped;
        IF v_type IS NULL THEN
            RAISE EXCEPTION 'embedq: filterable column % does not exist in table %',
                quote_ident(coalesce(v_field, 'NULL')), v_table
                USING ERRCODE = 'undefined_column';
        END IF;
        IF NOT v_field = ANY (fields) THEN
            v_filter_types := v_filter_types || v_type;
        END IF;
    END LOOP;

    -- A template may only name registered fields: a change to any other column would not
    -- re-embed, and the text would go stale. {{ and }} are literal braces.
    IF template IS NOT NULL THEN
        IF replace(replace(regexp_replace(replace(replace(template, '{{', ''), '}}', ''), '\{[^{}]*\}', '', 'g'),
                           '{', ''), '}', '') IS DISTINCT FROM
           regexp_replace(replace(replace(template, '{{', ''), '}}', ''), '\{[^{}]*\}', '', 'g') THEN
            RAISE EXCEPTION 'embedq: template has an unmatched brace (write {{ or }} for a literal one)'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT string_agg(DISTINCT quote_ident(m[1]), ', ') INTO v_unknown
        FROM regexp_matches(replace(replace(template, '{{', ''), '}}', ''), '\{([^{}]*)\}', 'g') AS m
        WHERE NOT m[1] = ANY (fields);
        IF v_unknown IS NOT NULL THEN
            RAISE EXCEPTION 'embedq: template names %, which is not among the registered fields %', v_unknown, fields
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A template may only use registered fields: their changes are what re-embeds a row.';
        END IF;
        IF NOT template ~ '\{[^{}]+\}' THEN
            RAISE EXCEPTION 'embedq: template names no field: it needs at least one {column}'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;

    -- what embedq.sources records as the fields; the triggers also watch the filterable columns
    -- (embedq._source_triggers): their change must reach the vectors' metadata (processing embeds
    -- nothing whose text is unchanged, it rewrites the metadata)
    v_embedded_fields := fields;

    -- Re-registering replaces the previous definition (and its triggers, wherever they were).
    PERFORM embedq.unregister_source(v_content_type, cancel_jobs => false)
    FROM embedq.sources s WHERE s.content_type = v_content_type;

    INSERT INTO embedq.sources (content_type, table_name, key_column, fields, priority, template, filters)
    VALUES (v_content_type, v_table, key_column, v_embedded_fields, priority, template, v_filters);

    PERFORM embedq._source_triggers(v_content_type);
END
$register$;

-- Removes the triggers and the registration. Jobs still queued for the type are ended as
-- dead (kept for replay after a re-registration); vectors are kept.
CREATE OR REPLACE FUNCTION embedq.unregister_source(content_type text, cancel_jobs boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source embedq.sources;
    v_names record;
BEGIN
    SELECT * INTO v_source FROM embedq.sources s WHERE s.content_type = unregister_source.content_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'embedq: content type % is not registered', quote_literal(coalesce(unregister_source.content_type, 'NULL'))
            USING ERRCODE = 'undefined_object';
    END IF;
    FOR v_names IN SELECT * FROM embedq._trigger_names(v_source.content_type) LOOP
        IF to_regclass(v_source.table_name) IS NOT NULL THEN
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_names.trigger_name, v_source.table_name);
        END IF;
        EXECUTE format('DROP FUNCTION IF EXISTS embedq.%I()', v_names.function_name);
    END LOOP;
    IF cancel_jobs THEN
        PERFORM embedq.jobs_ingest(NULL);  -- all of it, while registered: ingest drops unregistered types' rows
    END IF;
    DELETE FROM embedq.sources s WHERE s.content_type = v_source.content_type;
    IF cancel_jobs THEN
        UPDATE embedq.jobs j
        SET status = 'dead', finished_at = now(), updated_at = now(), lease_expires_at = NULL,
            last_error = 'content type unregistered', cause = 'unregistered'
        WHERE j.content_type = v_source.content_type AND j.status IN ('pending', 'failed');
    END IF;
END
$$;

-- The registration of a content type, or a clear error.
CREATE OR REPLACE FUNCTION embedq._registered_source(p_content_type text)
RETURNS embedq.sources
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source embedq.sources;
BEGIN
    SELECT * INTO v_source FROM embedq.sources s WHERE s.content_type = p_content_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'embedq: content type % is not registered', quote_literal(coalesce(p_content_type, 'NULL'))
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN v_source;
END
$$;

-- The SQL type of a source's key column (bigint, uuid, text, ...), to cast text ids back.
CREATE OR REPLACE FUNCTION embedq._key_type(p_source embedq.sources)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
    WHERE a.attrelid = p_source.table_name::regclass AND a.attname = p_source.key_column
$$;

-- The rows behind a batch of jobs, one query per content type: each requested source id
-- that still exists comes back with its registered fields and filterable columns as jsonb. Ids that are not valid
-- for the key's type cannot name a row and are treated like deleted rows.
CREATE OR REPLACE FUNCTION embedq.source_rows(p_content_type text, p_source_ids text[])
RETURNS TABLE (source_id text, fields jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source embedq.sources;
    v_key_type text;
BEGIN
    v_source := embedq._registered_source(p_content_type);
    v_key_type := embedq._key_type(v_source);
    RETURN QUERY EXECUTE format(
        'SELECT t.%1$I::text, jsonb_build_object(%2$s) FROM %3$s t '
        'WHERE t.%1$I = ANY (ARRAY(SELECT id::%4$s FROM unnest($1::text[]) id WHERE pg_input_is_valid(id, %5$L)))',
        v_source.key_column,
        (SELECT string_agg(format('%L, t.%I', c.f, c.f), ', ')
         FROM (SELECT DISTINCT unnest(v_source.fields || v_source.filters) AS f) AS c),
        v_source.table_name, v_key_type, v_key_type)
    USING p_source_ids;
END
$$;

-- Queues an upsert for up to p_limit rows of a source whose key sorts after p_after (NULL:
-- from the start), in key order. Returns how many rows it queued and the last key, to pass as
-- p_after next time: a backfill of millions of rows is many short transactions, and an
-- interrupted one resumes where it stopped. Backfill jobs default to the least urgent
-- priority so live edits are never stuck behind them; an already pending job of a row keeps
-- its own (more urgent) priority. p_model NULL: for the active model; a model name: for
-- that model only (filling it side by side).
CREATE OR REPLACE FUNCTION embedq.backfill(p_content_type text, p_after text, p_limit integer,
                                           p_priority integer DEFAULT 9, p_model text DEFAULT NULL)
RETURNS TABLE (queued bigint, last_key text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source embedq.sources;
    v_key_type text;
BEGIN
    v_source := embedq._registered_source(p_content_type);
    v_key_type := embedq._key_type(v_source);
    RETURN QUERY EXECUTE format($q$
        WITH batch AS (
            SELECT t.%1$I AS k FROM %2$s t
            WHERE $1::text IS NULL OR t.%1$I > $1::%3$s
            ORDER BY t.%1$I LIMIT $2
        ), queued AS (
            INSERT INTO embedq.jobs (content_type, source_id, model, op, priority)
            SELECT %4$L, k::text, $4, 'upsert', $3 FROM batch
            ON CONFLICT (content_type, source_id, model) WHERE status = 'pending'
            DO UPDATE SET op = 'upsert', updated_at = now()
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM queued), (SELECT k::text FROM batch ORDER BY k DESC LIMIT 1)
    $q$, v_source.key_column, v_source.table_name, v_key_type, v_source.content_type)
    USING p_after, p_limit, p_priority, p_model;
    PERFORM pg_notify('embedq_jobs', '');
END
$$;

-- One page of a source's rows in key order, for `embedq verify`: rows whose key sorts after
-- p_after (NULL: from the start), with their registered fields as jsonb.
CREATE OR REPLACE FUNCTION embedq.source_page(p_content_type text, p_after text, p_limit integer)
RETURNS TABLE (source_id text, fields jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source embedq.sources;
    v_key_type text;
BEGIN
    v_source := embedq._registered_source(p_content_type);
    v_key_type := embedq._key_type(v_source);
    RETURN QUERY EXECUTE format(
        'SELECT t.%1$I::text, jsonb_build_object(%2$s) FROM %3$s t '
        'WHERE $1::text IS NULL OR t.%1$I > $1::%4$s ORDER BY t.%1$I LIMIT $2',
        v_source.key_column,
        (SELECT string_agg(format('%L, t.%I', f, f), ', ') FROM unnest(v_source.fields) f),
        v_source.table_name, v_key_type)
    USING p_after, p_limit;
END
$$;
