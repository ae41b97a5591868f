-- 0002_dashboard_views.sql -- stable, documented views for dashboards (Grafana, Metabase, psql).
-- Their names and columns are an interface: change them only by adding columns or new views.
-- docs/database.md lists them with examples.

-- Top buckets in a window: crashes per bucket since p_since (by event minute, from the
-- rollups), most first. The views below are the usual windows of it.
CREATE FUNCTION triage_top_buckets(p_project text, p_since timestamptz, p_limit integer)
    RETURNS TABLE (project text, bucket_key text, signature text, crash_kind text,
                   fault_module text, fault_module_version text, window_crashes bigint,
                   total_crashes bigint, hosts bigint, first_seen timestamptz,
                   last_seen timestamptz)
    LANGUAGE sql STABLE AS $$
    SELECT b.project, b.bucket_key, b.signature, b.crash_kind, b.fault_module,
           b.fault_module_version, w.n, b.crash_count, b.host_count, b.first_seen, b.last_seen
    FROM (SELECT r.bucket_key, sum(r.crash_count)::bigint AS n
          FROM bucket_rollup_minute r
          WHERE r.project = p_project AND r.minute >= date_trunc('minute', p_since)
          GROUP BY r.bucket_key) w
    JOIN buckets b ON b.project = p_project AND b.bucket_key = w.bucket_key
    WHERE w.n > 0
    ORDER BY w.n DESC, b.bucket_key
    LIMIT p_limit
$$;

-- Top buckets of the last hour / day / week, all projects. Columns: project, bucket_key,
-- signature, crash_kind, fault_module, fault_module_version, window_crashes, total_crashes,
-- hosts (all time), first_seen, last_seen.
CREATE VIEW top_buckets_1h AS
    SELECT b.project, b.bucket_key, b.signature, b.crash_kind, b.fault_module,
           b.fault_module_version, w.n AS window_crashes, b.crash_count AS total_crashes,
           b.host_count AS hosts, b.first_seen, b.last_seen
    FROM (SELECT project, bucket_key, sum(crash_count)::bigint AS n FROM bucket_rollup_minute
          WHERE minute >= date_trunc('minute', now() - interval '1 hour')
          GROUP BY project, bucket_key) w
    JOIN buckets b USING (project, bucket_key);

CREATE VIEW top_buckets_24h AS
    SELECT b.project, b.bucket_key, b.signature, b.crash_kind, b.fault_module,
           b.fault_module_version, w.n AS window_crashes, b.crash_count AS total_crashes,
           b.host_count AS hosts, b.first_seen, b.last_seen
    FROM (SELECT project, bucket_key, sum(crash_count)::bigint AS n FROM bucket_rollup_minute
          WHERE minute >= date_trunc('minute', now() - interval '24 hours')
          GROUP BY project, bucket_key) w
    JOIN buckets b USING (project, bucket_key);

CREATE VIEW top_buckets_7d AS
    SELECT b.project, b.bucket_key, b.signature, b.crash_kind, b.fault_module,
           b.fault_module_version, w.n AS window_crashes, b.crash_count AS total_crashes,
           b.host_count AS hosts, b.first_seen, b.last_seen
    FROM (SELECT project, bucket_key, sum(crash_count)::bigint AS n FROM bucket_rollup_minute
          WHERE minute >= date_trunc('minute', now() - interval '7 days')
          GROUP BY project, bucket_key) w
    JOIN buckets b USING (project, bucket_key);

-- Bucket rate per minute: one row per bucket and minute that had crashes (minutes without
-- crashes have no row). Filter on minute, e.g. WHERE minute >= now() - interval '6 hours'.
CREATE VIEW bucket_rate_per_minute AS
    SELECT r.project, r.bucket_key, b.signature, b.fault_module, b.fault_module_version,
           r.minute, r.crash_count AS crashes
    FROM bucket_rollup_minute r
    JOIN buckets b USING (project, bucket_key);

-- Faulting module + version rate per minute, across all buckets (a bad module release).
CREATE VIEW fault_module_rate_per_minute AS
    SELECT project, fault_module, fault_module_version, minute, crash_count AS crashes
    FROM module_rollup_minute;

-- Crashes per faulting module version, last 24 hours (by event time), with distinct hosts
-- and buckets.
CREATE VIEW crashes_per_fault_module_version_24h AS
    SELECT project, fault_module, coalesce(fault_module_version, '') AS fault_module_version,
           count(*) AS crashes, count(DISTINCT host_id) AS hosts,
           count(DISTINCT bucket_key) AS buckets, min(event_at) AS first_seen,
           max(event_at) AS last_seen
    FROM crashes
    WHERE status = 'done' AND fault_module IS NOT NULL
      AND received_at >= now() - interval '8 days'
      AND event_at >= now() - interval '24 hours'
    GROUP BY project, fault_module, coalesce(fault_module_version, '');

-- Crashes per loaded module version (module present in the crashed process, faulting or
-- not), last 24 hours by receive time: the population side of module@version correlations.
CREATE VIEW crashes_per_module_version_24h AS
    SELECT m.project, m.name AS module, coalesce(m.version, '') AS version,
           count(DISTINCT m.crash_id) AS crashes
    FROM crash_modules m
    WHERE m.received_at >= now() - interval '24 hours'
    GROUP BY m.project, m.name, coalesce(m.version, '');

-- Queue health: jobs by state, with the age of the oldest claimable job.
CREATE VIEW job_queue_depth AS
    SELECT state, count(*) AS jobs,
           max(now() - run_after) FILTER (WHERE state = 'ready' AND run_after <= now())
               AS oldest_due_age
    FROM jobs
    GROUP BY state;
