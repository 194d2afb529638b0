-- Undoes 0002_sample_app.sql: unregisters the sample sources, drops the sample tables.
SELECT embedq.unregister_source(content_type, cancel_jobs => false)
FROM embedq.sources
WHERE content_type IN ('profile', 'course', 'lesson', 'post', 'comment')
  AND table_name IN ('public.profiles', 'public.courses', 'public.lessons', 'public.posts', 'public.comments');
DROP TABLE IF EXISTS public.comments, public.posts, public.lessons, public.courses, public.profiles;
