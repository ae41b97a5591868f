-- 0011_rollup_hour_statement_sync.sql -- the hour rollups follow their minutes by statement, not
-- by row.
--
-- 0003's row triggers locked a minute row, then its hour, then the next minute row, then its
-- hour: two result batches writing minutes of the same hour could lock in opposite orders and
-- deadlock. These statement triggers see every minute row a statement changed (transition
-- tables) and apply the hours' differences in one upsert in key order, after the statement's
-- minute rows are locked, so every writer takes locks in the same order. The arithmetic is the
-- same as before: the count by its difference, the sketch by union, an hour whose count falls
-- to zero removed. (A transition table needs a trigger per event; INSERT ... ON CONFLICT DO
-- UPDATE fires the INSERT one for the rows it inserted and the UPDATE one for those it updated.)

DROP TRIGGER bucket_rollup_minute_to_hour ON bucket_rollup_minute;
DROP TRIGGER module_rollup_minute_to_hour ON module_rollup_minute;
DROP FUNCTION triage_bucket_hour_sync();
DROP FUNCTION triage_module_hour_sync();

-- ---- buckets ----

CREATE FUNCTION triage_bucket_hour_sync_stmt() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO bucket_rollup_hour AS h (project, bucket_key, hour, crash_count, hosts)
        SELECT project, bucket_key, triage_hour(minute), sum(crash_count), triage_hll_union_agg(hosts)
        FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (project, bucket_key, hour) DO UPDATE
            SET crash_count = h.crash_count + excluded.crash_count,
                hosts = triage_hll_union(h.hosts, excluded.hosts);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO bucket_rollup_hour AS h (project, bucket_key, hour, crash_count, hosts)
        SELECT * FROM (
            SELECT n.project, n.bucket_key, triage_hour(n.minute) AS hour,
                   sum(n.crash_count - o.crash_count) AS delta,
                   triage_hll_union_agg(CASE WHEN n.hosts IS DISTINCT FROM o.hosts THEN n.hosts
                                             ELSE '{}'::integer[] END) AS sketch
            FROM new_rows n JOIN old_rows o USING (project, bucket_key, minute)
            GROUP BY 1, 2, 3) d
        WHERE d.delta <> 0 OR cardinality(d.sketch) > 0
        ORDER BY 1, 2, 3
        ON CONFLICT (project, bucket_key, hour) DO UPDATE
            SET crash_count = h.crash_count + excluded.crash_count,
                hosts = triage_hll_union(h.hosts, excluded.hosts);
    ELSE
        INSERT INTO bucket_rollup_hour AS h (project, bucket_key, hour, crash_count, hosts)
        SELECT project, bucket_key, triage_hour(minute), -sum(crash_count), '{}'::integer[]
        FROM old_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (project, bucket_key, hour) DO UPDATE
            SET crash_count = h.crash_count + excluded.crash_count;
    END IF;
    IF TG_OP <> 'INSERT' THEN /* an hour whose count fell to zero goes, as its minutes did */
        DELETE FROM bucket_rollup_hour h
        USING (SELECT DISTINCT project, bucket_key, triage_hour(minute) AS hour FROM old_rows) k
        WHERE h.project = k.project AND h.bucket_key = k.bucket_key AND h.hour = k.hour AND h.crash_count <= 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER bucket_rollup_minute_to_hour_ins AFTER INSERT ON bucket_rollup_minute
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION triage_bucket_hour_sync_stmt();
CREATE TRIGGER bucket_rollup_minute_to_hour_upd AFTER UPDATE ON bucket_rollup_minute
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION triage_bucket_hour_sync_stmt();
CREATE TRIGGER bucket_rollup_minute_to_hour_del AFTER DELETE ON bucket_rollup_minute
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION triage_bucket_hour_sync_stmt();

-- ---- fault modules ----

CREATE FUNCTION triage_module_hour_sync_stmt() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO module_rollup_hour AS h (project, fault_module, fault_module_version, hour, crash_count, hosts)
        SELECT project, fault_module, fault_module_version, triage_hour(minute), sum(crash_count), triage_hll_union_agg(hosts)
        FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (project, fault_module, fault_module_version, hour) DO UPDATE
            SET crash_count = h.crash_count + excluded.crash_count,
                hosts = triage_hll_union(h.hosts, excluded.hosts);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO module_rollup_hour AS h (project, fault_module, fault_module_version, hour, crash_count, hosts)
        SELECT * FROM (
            SELECT n.project, n.fault_module, n.fault_module_version, triage_hour(n.minute) AS hour,
                   sum(n.crash_count - o.crash_count) AS delta,
                   triage_hll_union_agg(CASE WHEN n.hosts IS DISTINCT FROM o.hosts THEN n.hosts
                                             ELSE '{}'::integer[] END) AS sketch
            FROM new_rows n JOIN old_rows o USING (project, fault_module, fault_module_version, minute)
            GROUP BY 1, 2, 3, 4) d
        WHERE d.delta <> 0 OR cardinality(d.sketch) > 0
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (project, fault_module, fault_module_version, hour) DO UPDATE
            SET crash_count = h.crash_count + excluded.crash_count,
                hosts = triage_hll_union(h.hosts, excluded.hosts);
    ELSE
        INSERT INTO module_rollup_hour AS h (project, fault_module, fault_module_version, hour, crash_count, hosts)
        SELECT project, fault_module, fault_module_version, triage_hour(minute), -sum(crash_count), '{}'::integer[]
        FROM old_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (project, fault_module, fault_module_version, hour) DO UPDATE
            SET crash_count = h.crash_count + excluded.crash_count;
    END IF;
    IF TG_OP <> 'INSERT' THEN /* an hour whose count fell to zero goes, as its minutes did */
        DELETE FROM module_rollup_hour h
        USING (SELECT DISTINCT project, fault_module, fault_module_version, triage_hour(minute) AS hour FROM old_rows) k
        WHERE h.project = k.project AND h.fault_module = k.fault_module AND h.fault_module_version = k.fault_module_version AND h.hour = k.hour AND h.crash_count <= 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER module_rollup_minute_to_hour_ins AFTER INSERT ON module_rollup_minute
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION triage_module_hour_sync_stmt();
CREATE TRIGGER module_rollup_minute_to_hour_upd AFTER UPDATE ON module_rollup_minute
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION triage_module_hour_sync_stmt();
CREATE TRIGGER module_rollup_minute_to_hour_del AFTER DELETE ON module_rollup_minute
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION triage_module_hour_sync_stmt();
