-- 0003_rollup_hosts.sql -- distinct hosts on the per-minute rollups (HyperLogLog sketches), hourly
-- rollups that triggers keep equal to the sum of their minutes, and the window sums the detector
-- reads. docs/incidents.md describes the sketches, their error and the detection model.
--
-- Whoever counts a crash (the result writer today, the hint counter later) only writes the
-- minute rows; the hour rows follow by trigger, so every writer and every correction
-- (reprocessing) keeps both levels equal without knowing about hours.

-- ---- HyperLogLog sketches of host ids ----
--
-- 2048 registers (p = 11): standard error 1.04 / sqrt(2048) = 2.3 % for large counts; below
-- 2.5 * 2048 = 5120 hosts the estimate is linear counting, which is within a host or two for the
-- handful of hosts most rows hold. A sketch is an integer[] of entries register * 64 + rank
-- (rank 1..54), one per non-empty register, sorted: the sparse form (Heule et al. 2013), so a
-- minute with three hosts costs three integers, a saturated sketch 2048. Sketches merge by
-- keeping each register's highest rank, so a union over minutes, hours and buckets is exact
-- with respect to the union of the host sets. Hosts are hashed with hashtextextended (64 bits;
-- the hash PostgreSQL keeps stable for hash partitioning). Crashes without a host id count in
-- crash_count only.

-- The sketch entry of one host id: the top 11 bits of the hash pick the register; the rank is
-- the position of the first 1 bit in the remaining 53 bits (54 when they are all zero).
CREATE FUNCTION triage_hll_entry(host text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ((h >> 53) & 2047)::integer * 64
           + coalesce(nullif(position('1' IN ((h & 9007199254740991)::bit(53))::text), 0), 54)
    FROM (SELECT hashtextextended(host, 0) AS h) x
$$;

-- The normal form of a bag of entries: one entry per register, its highest rank, sorted.
CREATE FUNCTION triage_hll_norm(s integer[]) RETURNS integer[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(reg * 64 + rnk ORDER BY reg), '{}')
    FROM (SELECT e >> 6 AS reg, max(e & 63) AS rnk FROM unnest(s) AS u(e)
          WHERE e > 0 GROUP BY e >> 6) x
$$;

-- The union of two sketches.
CREATE FUNCTION triage_hll_union(a integer[], b integer[]) RETURNS integer[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(coalesce(b, '{}')) = 0 THEN coalesce(a, '{}')
                WHEN cardinality(coalesce(a, '{}')) = 0 THEN triage_hll_norm(b)
                ELSE triage_hll_norm(a || b) END
$$;

-- The sketch of a list of host ids (NULL and '' skipped).
CREATE FUNCTION triage_hll_of(hosts text[]) RETURNS integer[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT triage_hll_union('{}', array_agg(triage_hll_entry(h)))
    FROM unnest(hosts) AS u(h) WHERE h <> ''
$$;

-- Aggregate union: entries are gathered and folded into the normal form whenever they grow past
-- a few saturated sketches, so memory stays bounded over many rows.
CREATE FUNCTION triage_hll_acc(s integer[], x integer[]) RETURNS integer[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(s) + cardinality(coalesce(x, '{}')) > 8192
                THEN triage_hll_union(s, x) ELSE s || coalesce(x, '{}') END
$$;

CREATE AGGREGATE triage_hll_union_agg(integer[]) (
    SFUNC = triage_hll_acc, STYPE = integer[], INITCOND = '{}', FINALFUNC = triage_hll_norm
);

-- The number of distinct hosts a sketch (or several concatenated) holds: the HyperLogLog
-- estimate (Flajolet et al. 2007), with linear counting while it is at most 2.5 m and some
-- register is still empty.
CREATE FUNCTION triage_hll_estimate(s integer[]) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH r AS (SELECT max(e & 63) AS rnk FROM unnest(coalesce(s, '{}')) AS u(e)
               WHERE e > 0 GROUP BY e >> 6),
         a AS (SELECT count(*)::float8 AS nz, coalesce(sum(power(2::float8, -rnk)), 0) AS z
               FROM r),
         e AS (SELECT nz, 0.7213 / (1 + 1.079 / 2048) * 2048 * 2048 / (z + 2048 - nz) AS raw
               FROM a)
    SELECT (CASE WHEN nz = 0 THEN 0
                 WHEN raw <= 2.5 * 2048 AND nz < 2048 THEN round(2048 * ln(2048 / (2048 - nz)))
                 ELSE round(raw) END)::bigint
    FROM e
$$;

-- ---- host sketches on the minute rollups ----

ALTER TABLE bucket_rollup_minute ADD COLUMN hosts integer[] NOT NULL DEFAULT '{}';
ALTER TABLE module_rollup_minute ADD COLUMN hosts integer[] NOT NULL DEFAULT '{}';

-- Rows counted before this migration get their sketches from the crash rows.
UPDATE bucket_rollup_minute r SET hosts = s.hosts
FROM (SELECT project, bucket_key, date_trunc('minute', event_at) AS minute,
             triage_hll_of(array_agg(host_id)) AS hosts
      FROM crashes WHERE status = 'done' AND bucket_key IS NOT NULL GROUP BY 1, 2, 3) s
WHERE r.project = s.project AND r.bucket_key = s.bucket_key AND r.minute = s.minute;

UPDATE module_rollup_minute r SET hosts = s.hosts
FROM (SELECT project, fault_module, coalesce(fault_module_version, '') AS v,
             date_trunc('minute', event_at) AS minute,
             triage_hll_of(array_agg(host_id)) AS hosts
      FROM crashes WHERE status = 'done' AND fault_module IS NOT NULL GROUP BY 1, 2, 3, 4) s
WHERE r.project = s.project AND r.fault_module = s.fault_module
  AND r.fault_module_version = s.v AND r.minute = s.minute;

-- ---- hourly rollups ----

-- The UTC hour of a time, whatever the session's time zone.
CREATE FUNCTION triage_hour(t timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT date_trunc('hour', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' $$;

-- Crashes and distinct hosts per bucket per hour of event_at: the sum of the hour's minutes.
CREATE TABLE bucket_rollup_hour (
    project     text        NOT NULL,
    bucket_key  text        NOT NULL,
    hour        timestamptz NOT NULL,
    crash_count bigint      NOT NULL,
    hosts       integer[]   NOT NULL DEFAULT '{}',
    PRIMARY KEY (project, bucket_key, hour)
);

CREATE INDEX bucket_rollup_hour_by_hour ON bucket_rollup_hour (project, hour);

-- The same per fault module + version (unknown version is '').
CREATE TABLE module_rollup_hour (
    project              text        NOT NULL,
    fault_module         text        NOT NULL,
    fault_module_version text        NOT NULL DEFAULT '',
    hour                 timestamptz NOT NULL,
    crash_count          bigint      NOT NULL,
    hosts                integer[]   NOT NULL DEFAULT '{}',
    PRIMARY KEY (project, fault_module, fault_module_version, hour)
);

CREATE INDEX module_rollup_hour_by_hour ON module_rollup_hour (project, hour);

INSERT INTO bucket_rollup_hour (project, bucket_key, hour, crash_count, hosts)
    SELECT project, bucket_key, triage_hour(minute), sum(crash_count), triage_hll_union_agg(hosts)
    FROM bucket_rollup_minute GROUP BY 1, 2, 3;

INSERT INTO module_rollup_hour (project, fault_module, fault_module_version, hour, crash_count,
                                hosts)
    SELECT project, fault_module, fault_module_version, triage_hour(minute), sum(crash_count),
           triage_hll_union_agg(hosts)
    FROM module_rollup_minute GROUP BY 1, 2, 3, 4;

-- Row triggers carry every change of a minute row into its hour: the count by its difference,
-- the sketch by union (sketches only grow; see docs/incidents.md on reprocessing). An hour whose
-- count falls to zero is removed, as the minutes are. The key columns of a minute row never
-- change (writers upsert on them).
CREATE FUNCTION triage_bucket_hour_sync() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    k bucket_rollup_minute;
    delta bigint;
    sketch integer[] := '{}';
BEGIN
    IF TG_OP = 'DELETE' THEN
        k := OLD;
        delta := -OLD.crash_count;
    ELSIF TG_OP = 'INSERT' THEN
        k := NEW;
        delta := NEW.crash_count;
        sketch := NEW.hosts;
    ELSE
        k := NEW;
        delta := NEW.crash_count - OLD.crash_count;
        IF NEW.hosts IS DISTINCT FROM OLD.hosts THEN
            sketch := NEW.hosts;
        END IF;
    END IF;
    IF delta = 0 AND cardinality(sketch) = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO bucket_rollup_hour AS h (project, bucket_key, hour, crash_count, hosts)
    VALUES (k.project, k.bucket_key, triage_hour(k.minute), delta, sketch)
    ON CONFLICT (project, bucket_key, hour) DO UPDATE
        SET crash_count = h.crash_count + excluded.crash_count,
            hosts = triage_hll_union(h.hosts, excluded.hosts);
    IF delta < 0 THEN
        DELETE FROM bucket_rollup_hour
        WHERE project = k.project AND bucket_key = k.bucket_key
          AND hour = triage_hour(k.minute) AND crash_count <= 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER bucket_rollup_minute_to_hour
    AFTER INSERT OR UPDATE OR DELETE ON bucket_rollup_minute
    FOR EACH ROW EXECUTE FUNCTION triage_bucket_hour_sync();

CREATE FUNCTION triage_module_hour_sync() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    k module_rollup_minute;
    delta bigint;
    sketch integer[] := '{}';
BEGIN
    IF TG_OP = 'DELETE' THEN
        k := OLD;
        delta := -OLD.crash_count;
    ELSIF TG_OP = 'INSERT' THEN
        k := NEW;
        delta := NEW.crash_count;
        sketch := NEW.hosts;
    ELSE
        k := NEW;
        delta := NEW.crash_count - OLD.crash_count;
        IF NEW.hosts IS DISTINCT FROM OLD.hosts THEN
            sketch := NEW.hosts;
        END IF;
    END IF;
    IF delta = 0 AND cardinality(sketch) = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO module_rollup_hour AS h (project, fault_module, fault_module_version, hour,
                                         crash_count, hosts)
    VALUES (k.project, k.fault_module, k.fault_module_version, triage_hour(k.minute), delta,
            sketch)
    ON CONFLICT (project, fault_module, fault_module_version, hour) DO UPDATE
        SET crash_count = h.crash_count + excluded.crash_count,
            hosts = triage_hll_union(h.hosts, excluded.hosts);
    IF delta < 0 THEN
        DELETE FROM module_rollup_hour
        WHERE project = k.project AND fault_module = k.fault_module
          AND fault_module_version = k.fault_module_version
          AND hour = triage_hour(k.minute) AND crash_count <= 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER module_rollup_minute_to_hour
    AFTER INSERT OR UPDATE OR DELETE ON module_rollup_minute
    FOR EACH ROW EXECUTE FUNCTION triage_module_hour_sync();

-- ---- window sums ----

-- Crashes and the host sketch of one bucket (or one fault module + version) with event times in
-- [p_from, p_to): whole hours come from the hourly rollup, the ragged edges from the minutes.
-- p_hosts = false skips the sketch (baselines need counts only).
CREATE FUNCTION triage_bucket_window(p_project text, p_bucket text, p_from timestamptz,
                                     p_to timestamptz, p_hosts boolean,
                                     OUT crashes bigint, OUT hosts integer[])
    LANGUAGE sql STABLE AS $$
    WITH b AS (SELECT CASE WHEN triage_hour(p_from) = p_from THEN p_from
                           ELSE triage_hour(p_from) + interval '1 hour' END AS h0,
                      triage_hour(p_to) AS h1),
         parts AS (
             SELECT r.crash_count, r.hosts FROM bucket_rollup_hour r, b
             WHERE r.project = p_project AND r.bucket_key = p_bucket
               AND r.hour >= b.h0 AND r.hour < b.h1
             UNION ALL
             SELECT r.crash_count, r.hosts FROM bucket_rollup_minute r, b
             WHERE r.project = p_project AND r.bucket_key = p_bucket
               AND r.minute >= p_from AND r.minute < p_to
               AND (b.h0 >= b.h1 OR r.minute < b.h0 OR r.minute >= b.h1))
    SELECT coalesce(sum(crash_count), 0)::bigint,
           triage_hll_union_agg(hosts) FILTER (WHERE p_hosts)
    FROM parts
$$;

CREATE FUNCTION triage_module_window(p_project text, p_module text, p_version text,
                                     p_from timestamptz, p_to timestamptz, p_hosts boolean,
                                     OUT crashes bigint, OUT hosts integer[])
    LANGUAGE sql STABLE AS $$
    WITH b AS (SELECT CASE WHEN triage_hour(p_from) = p_from THEN p_from
                           ELSE triage_hour(p_from) + interval '1 hour' END AS h0,
                      triage_hour(p_to) AS h1),
         parts AS (
             SELECT r.crash_count, r.hosts FROM module_rollup_hour r, b
             WHERE r.project = p_project AND r.fault_module = p_module
               AND r.fault_module_version = p_version AND r.hour >= b.h0 AND r.hour < b.h1
             UNION ALL
             SELECT r.crash_count, r.hosts FROM module_rollup_minute r, b
             WHERE r.project = p_project AND r.fault_module = p_module
               AND r.fault_module_version = p_version
               AND r.minute >= p_from AND r.minute < p_to
               AND (b.h0 >= b.h1 OR r.minute < b.h0 OR r.minute >= b.h1))
    SELECT coalesce(sum(crash_count), 0)::bigint,
           triage_hll_union_agg(hosts) FILTER (WHERE p_hosts)
    FROM parts
$$;

-- ---- views (docs/database.md, docs/incidents.md) ----

-- The per-minute views gain a hosts column (distinct hosts in the minute, estimated).
CREATE OR REPLACE VIEW bucket_rate_per_minute AS
    SELECT r.project, r.bucket_key, b.signature, b.fault_module, b.fault_module_version,
           r.minute, r.crash_count AS crashes, triage_hll_estimate(r.hosts) AS hosts
    FROM bucket_rollup_minute r
    JOIN buckets b USING (project, bucket_key);

CREATE OR REPLACE VIEW fault_module_rate_per_minute AS
    SELECT project, fault_module, fault_module_version, minute, crash_count AS crashes,
           triage_hll_estimate(hosts) AS hosts
    FROM module_rollup_minute;

-- Per hour, with distinct hosts in the hour (estimated). Filter on hour.
CREATE VIEW bucket_rate_per_hour AS
    SELECT r.project, r.bucket_key, b.signature, b.fault_module, b.fault_module_version,
           r.hour, r.crash_count AS crashes, triage_hll_estimate(r.hosts) AS hosts
    FROM bucket_rollup_hour r
    JOIN buckets b USING (project, bucket_key);

CREATE VIEW fault_module_rate_per_hour AS
    SELECT project, fault_module, fault_module_version, hour, crash_count AS crashes,
           triage_hll_estimate(hosts) AS hosts
    FROM module_rollup_hour;
