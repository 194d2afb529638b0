-- Undoes 0006_event_ids.sql. The functions stay at head's version (see 0003's downgrade), so
-- jobs_announce goes back to its 0005 form, which draws no ids, before the sequence goes.
-- Announces job state changes on channel embedq_events (GET /v1/events streams them): one
-- NOTIFY per event kind and transaction, holding [id, content_type, source_id] of each job,
-- split only if a payload would pass PostgreSQL's 8,000-byte limit. p_jobs holds
-- [id, content_type, source_id, event] items.
CREATE OR REPLACE FUNCTION embedq.jobs_announce(p_jobs jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_event text;
    v_item text;
    v_buffer text;
    v_sent integer := 0;
BEGIN
    IF p_jobs IS NULL OR jsonb_array_length(p_jobs) = 0 THEN
        RETURN 0;
    END IF;
    FOR v_event IN SELECT DISTINCT e ->> 3 FROM jsonb_array_elements(p_jobs) e LOOP
        v_buffer := NULL;
        FOR v_item IN
            SELECT CASE WHEN octet_length(jsonb_build_array(e -> 0, e -> 1, e -> 2)::text) > 2000
                        THEN jsonb_build_array(e -> 0, e -> 1, NULL)::text  -- an absurdly long key
                        ELSE jsonb_build_array(e -> 0, e -> 1, e -> 2)::text END
            FROM jsonb_array_elements(p_jobs) e WHERE e ->> 3 = v_event
        LOOP
            IF v_buffer IS NOT NULL AND octet_length(v_buffer) + octet_length(v_item) > 7000 THEN
                PERFORM pg_notify('embedq_events', format('{"event": %s, "jobs": [%s]}', to_jsonb(v_event), v_buffer));
                v_sent := v_sent + 1;
                v_buffer := NULL;
            END IF;
            v_buffer := coalesce(v_buffer || ', ', '') || v_item;
        END LOOP;
        PERFORM pg_notify('embedq_events', format('{"event": %s, "jobs": [%s]}', to_jsonb(v_event), v_buffer));
        v_sent := v_sent + 1;
    END LOOP;
    RETURN v_sent;
END
$$;

DROP SEQUENCE IF EXISTS embedq.event_id_seq;
