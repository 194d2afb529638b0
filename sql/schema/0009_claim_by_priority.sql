-- jobs_claim takes a range of priorities (p_min_priority, p_max_priority), so QStash mode
-- claims each priority tier up to its own cap of jobs in flight. The signature without them
-- goes first; functions/jobs.sql creates the new one (same defaults: every caller keeps working).
DROP FUNCTION IF EXISTS embedq.jobs_claim(text, integer, interval, integer, embedq.job_status, text);
