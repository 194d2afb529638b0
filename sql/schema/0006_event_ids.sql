-- Ids of the job state change events (channel embedq_events, GET /v1/events): drawn by
-- embedq.jobs_announce in the transaction that makes the change, so an event has the same id
-- on every webhook replica and an SSE client resumes on any of them with Last-Event-ID.
CREATE SEQUENCE IF NOT EXISTS embedq.event_id_seq AS bigint;
