-- The write path of sql/functions/sources.sql (static trigger queries that read no registration,
-- one wake-up decision per transaction) replaces the triggers every registration got from
-- earlier revisions; run after the function files. The registrations themselves (fields,
-- priority, enabled, template) stay as they are. A registration whose table is gone has no
-- triggers to rebuild; one whose columns are gone stops the migration with its name (register
-- it again, or unregister it, then migrate).
SELECT embedq._source_triggers(s.content_type)
FROM embedq.sources s
WHERE to_regclass(s.table_name) IS NOT NULL
ORDER BY s.content_type;
