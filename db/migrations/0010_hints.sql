-- 0010_hints.sql -- progressive collection (docs/progressive-collection.md): the service learns
-- from the dumps it analyzes which bucket each symbol-free fault key lands in; a hint whose key
-- maps to exactly one bucket is counted at once, as a crash row without a dump, through the same
-- tables an analyzed crash is counted in (buckets, bucket_hosts, the minute rollups and, by the
-- triggers of 0003, the hour rollups), so it counts in every total, rate and incident. Every
-- decision (dump wanted or not, and why) is counted by reason, product, version and fault module.
--
-- A crash counted from its hint has status 'done' (so every reader of analyzed crashes counts it:
-- views, incidents, correlations) with source 'hint' and hint_counted = true; it has no dump and
-- no module list. When its dump arrives later (the same idempotency key), triage_hint_attach()
-- takes the hint's count out again and queues the dump, whose analysis counts the crash once.

-- ---- crashes counted from hints ----

ALTER TABLE crashes ADD COLUMN hint_counted boolean NOT NULL DEFAULT false;
-- Counted from its hint but not yet added to the bucket and rollups: triage_hint_rollup() adds
-- such crashes in ordered batches, as db_result_write adds analyzed ones, so the one-row hint
-- transactions never take the bucket and rollup rows that a flood of hints all share.
ALTER TABLE crashes ADD COLUMN hint_pending boolean NOT NULL DEFAULT false;
CREATE INDEX crashes_hint_pending ON crashes (received_at) WHERE hint_pending;
-- The hint's decision: first_k, sampled, requested (dump wanted) or counted (not wanted).
ALTER TABLE crashes ADD COLUMN hint_reason text;

-- ---- what the analyzed dumps taught ----

-- Analyzed crashes (done, not counted from a hint) per fault key and bucket. Kept exact by the
-- statement trigger below: every UPDATE of crashes that makes a crash analyzed, or takes it back
-- (reprocessing), moves these counts. A key with one row of crash_count > 0 is "known".
CREATE TABLE fault_key_buckets (
    project              text        NOT NULL,
    fault_key            text        NOT NULL,
    bucket_key           text        NOT NULL,
    signature            text,
    crash_kind           text,
    fault_module         text,
    fault_module_version text,
    crash_count          bigint      NOT NULL,
    first_seen           timestamptz,  -- event times of the analyzed crashes
    last_seen            timestamptz,
    PRIMARY KEY (project, fault_key, bucket_key)
);

CREATE FUNCTION triage_fault_key_learn() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS (
        SELECT project, fault_key, bucket_key, signature, crash_kind, fault_module,
               fault_module_version, event_at, 1 AS n
        FROM triage_learn_new
        WHERE status = 'done' AND NOT hint_counted AND fault_key IS NOT NULL
          AND bucket_key IS NOT NULL
        UNION ALL
        SELECT project, fault_key, bucket_key, NULL, NULL, NULL, NULL, NULL, -1
        FROM triage_learn_old
        WHERE status = 'done' AND NOT hint_counted AND fault_key IS NOT NULL
          AND bucket_key IS NOT NULL),
    g AS (
        SELECT project, fault_key, bucket_key,
               (array_agg(signature) FILTER (WHERE n > 0))[1] AS signature,
               (array_agg(crash_kind) FILTER (WHERE n > 0))[1] AS crash_kind,
               (array_agg(fault_module) FILTER (WHERE n > 0))[1] AS fault_module,
               (array_agg(fault_module_version) FILTER (WHERE n > 0))[1] AS fault_module_version,
               sum(n) AS n, min(event_at) AS lo, max(event_at) AS hi
        FROM d GROUP BY 1, 2, 3 HAVING sum(n) <> 0)
    INSERT INTO fault_key_buckets AS f (project, fault_key, bucket_key, signature, crash_kind,
                                        fault_module, fault_module_version, crash_count,
                                        first_seen, last_seen)
    SELECT project, fault_key, bucket_key, signature, crash_kind, fault_module,
           fault_module_version, n, lo, hi
    FROM g ORDER BY 1, 2, 3  -- key order: concurrent batches lock rows in the same order
    ON CONFLICT (project, fault_key, bucket_key) DO UPDATE SET
        crash_count = f.crash_count + excluded.crash_count,
        signature = coalesce(excluded.signature, f.signature),
        crash_kind = coalesce(excluded.crash_kind, f.crash_kind),
        fault_module = coalesce(excluded.fault_module, f.fault_module),
        fault_module_version = coalesce(excluded.fault_module_version, f.fault_module_version),
        first_seen = least(f.first_seen, excluded.first_seen),
        last_seen = greatest(f.last_seen, excluded.last_seen);
    RETURN NULL;
END
$$;

CREATE TRIGGER crashes_learn_fault_keys
    AFTER UPDATE ON crashes
    REFERENCING OLD TABLE AS triage_learn_old NEW TABLE AS triage_learn_new
    FOR EACH STATEMENT EXECUTE FUNCTION triage_fault_key_learn();

-- Crashes analyzed before this migration teach too.
INSERT INTO fault_key_buckets (project, fault_key, bucket_key, signature, crash_kind,
                               fault_module, fault_module_version, crash_count, first_seen,
                               last_seen)
    SELECT project, fault_key, bucket_key, (array_agg(signature))[1], (array_agg(crash_kind))[1],
           (array_agg(fault_module))[1], (array_agg(fault_module_version))[1], count(*),
           min(event_at), max(event_at)
    FROM crashes
    WHERE status = 'done' AND fault_key IS NOT NULL AND bucket_key IS NOT NULL
    GROUP BY 1, 2, 3;

-- ---- the collection policy's state ----

-- Per fault key and UTC day (of the server's receive time): hints seen and full dumps asked for,
-- for "the first K dumps per fault key per day, then 1 in M".
CREATE TABLE hint_daily (
    project      text   NOT NULL,
    fault_key    text   NOT NULL,
    day          date   NOT NULL,
    hints        bigint NOT NULL DEFAULT 0,
    dumps_wanted bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (project, fault_key, day)
);

-- `triagectl want BUCKET N`: the next `remaining` hints counted in the bucket ask for their dump.
CREATE TABLE bucket_wants (
    project      text        NOT NULL,
    bucket_key   text        NOT NULL,
    remaining    bigint      NOT NULL,
    requested    bigint      NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, bucket_key)
);

-- Every hint's decision, per UTC day, reason, product, version and fault module: how many
-- crashes were counted without their dump (reason 'counted') and how many dumps were asked for
-- and why ('first_k', 'sampled', 'requested', 'unknown_fault_key', 'ambiguous_fault_key',
-- 'no_idempotency_key'). Unknown values are ''. Under a mass event, the 'counted' rows show how
-- much was deliberately not collected, and of what.
CREATE TABLE collection_decisions (
    project              text   NOT NULL,
    day                  date   NOT NULL,
    reason               text   NOT NULL,
    product              text   NOT NULL DEFAULT '',
    version              text   NOT NULL DEFAULT '',
    fault_module         text   NOT NULL DEFAULT '',
    fault_module_version text   NOT NULL DEFAULT '',
    crashes              bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (project, day, reason, product, version, fault_module, fault_module_version)
);

-- ---- deciding one hint ----

-- Decides and records one hint in one transaction. Returns the crash id ('' when nothing was
-- recorded), whether the crash was counted now, whether the dump is wanted, the reason token,
-- the bucket it was counted in, and whether the idempotency key was already known (a retried
-- hint, or a crash uploaded in full before: the first answer again, nothing counted twice).
-- p_first_k / p_sample_m are the policy (docs/progressive-collection.md); p_sample_m = 0 never
-- samples.
CREATE FUNCTION triage_hint(
    p_project text, p_crash_id uuid, p_idem text, p_host text, p_product text, p_version text,
    p_channel text, p_build_id text, p_os text, p_os_version text, p_cpu_arch text,
    p_crash_ms bigint, p_annotations jsonb, p_fault_key text, p_key_module text,
    p_key_version text, p_dump_format text, p_clamp_ms bigint, p_first_k bigint,
    p_sample_m bigint,
    OUT crash_id text, OUT counted boolean, OUT want_dump boolean, OUT reason text,
    OUT bucket_key text, OUT duplicate boolean)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    today   date := (now() AT TIME ZONE 'UTC')::date;
    recv    timestamptz := date_trunc('milliseconds', now());
    ev      timestamptz;
    clamped boolean;
    nb      integer;
    m       fault_key_buckets;
    seen    bigint;
    wanted  bigint;
    prev    record;
    host    text := nullif(p_host, '');
BEGIN
    crash_id := '';
    counted := false;
    want_dump := true;
    bucket_key := '';
    duplicate := false;

    IF coalesce(p_idem, '') = '' THEN
        reason := 'no_idempotency_key';
    ELSE
        -- A key already known: the same crash (a retried hint, or its upload came first).
        SELECT k.crash_id, c.source, c.hint_counted, c.hint_reason, c.bucket_key AS bk,
               c.dump_sha256
        INTO prev
        FROM crash_keys k
        JOIN crashes c ON c.project = k.project AND c.crash_id = k.crash_id
                      AND c.received_at = k.received_at
        WHERE k.project = p_project AND k.idempotency_key = p_idem;
        IF FOUND THEN
            crash_id := prev.crash_id::text;
            duplicate := true;
            counted := prev.source = 'hint' AND prev.hint_counted;
            want_dump := prev.source = 'hint' AND prev.dump_sha256 IS NULL
                         AND prev.hint_reason IN ('first_k', 'sampled', 'requested');
            reason := CASE WHEN prev.source = 'hint' THEN coalesce(prev.hint_reason, 'counted')
                           ELSE 'duplicate' END;
            bucket_key := coalesce(prev.bk, '');
            RETURN;
        END IF;
    END IF;

    IF reason IS NULL THEN
        SELECT count(*) INTO nb FROM (
            SELECT 1 FROM fault_key_buckets f
            WHERE f.project = p_project AND f.fault_key = p_fault_key AND f.crash_count > 0
            LIMIT 2) x;
        IF nb = 0 THEN
            reason := 'unknown_fault_key';
        ELSIF nb > 1 THEN
            reason := 'ambiguous_fault_key';
        END IF;
    END IF;

    IF reason IS NOT NULL THEN  -- the dump is needed; nothing is recorded until it comes
        INSERT INTO hint_daily AS h (project, fault_key, day, hints, dumps_wanted)
        VALUES (p_project, p_fault_key, today, 1, 1)
        ON CONFLICT (project, fault_key, day) DO UPDATE
            SET hints = h.hints + 1, dumps_wanted = h.dumps_wanted + 1;
        INSERT INTO collection_decisions AS d (project, day, reason, product, version,
                                               fault_module, fault_module_version, crashes)
        VALUES (p_project, today, reason, coalesce(p_product, ''), coalesce(p_version, ''),
                coalesce(p_key_module, ''), coalesce(p_key_version, ''), 1)
        ON CONFLICT (project, day, reason, product, version, fault_module, fault_module_version)
        DO UPDATE SET crashes = d.crashes + 1;
        RETURN;
    END IF;

    SELECT * INTO m FROM fault_key_buckets f
    WHERE f.project = p_project AND f.fault_key = p_fault_key AND f.crash_count > 0;

    -- Record the crash's identity first, deduplicated by its idempotency key (a racing twin
    -- waits here, and then gets the first one's answer).
    INSERT INTO crash_keys (project, crash_id, received_at, idempotency_key, host_id)
    VALUES (p_project, p_crash_id, recv, p_idem, host)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT r.* INTO crash_id, counted, want_dump, reason, bucket_key, duplicate
        FROM triage_hint(p_project, p_crash_id, p_idem, p_host, p_product, p_version, p_channel,
                         p_build_id, p_os, p_os_version, p_cpu_arch, p_crash_ms, p_annotations,
                         p_fault_key, p_key_module, p_key_version, p_dump_format, p_clamp_ms,
                         p_first_k, p_sample_m) r;
        RETURN;
    END IF;

    clamped := p_crash_ms IS NOT NULL AND triage_ts(p_crash_ms) NOT BETWEEN
               recv - p_clamp_ms * interval '1 millisecond' AND recv;
    ev := CASE WHEN p_crash_ms IS NULL THEN recv
               ELSE least(recv, greatest(triage_ts(p_crash_ms),
                                         recv - p_clamp_ms * interval '1 millisecond')) END;

    -- The bucket and rollups are added by triage_hint_rollup() (hint_pending), moments later.
    -- The policy: is the dump wanted anyway?
    INSERT INTO hint_daily AS h (project, fault_key, day, hints)
    VALUES (p_project, p_fault_key, today, 1)
    ON CONFLICT (project, fault_key, day) DO UPDATE SET hints = h.hints + 1
    RETURNING h.hints, h.dumps_wanted INTO seen, wanted;
    UPDATE bucket_wants w SET remaining = w.remaining - 1
    WHERE w.project = p_project AND w.bucket_key = m.bucket_key AND w.remaining > 0;
    IF FOUND THEN
        reason := 'requested';
    ELSIF wanted < p_first_k THEN
        reason := 'first_k';
    ELSIF p_sample_m > 0 AND (seen - p_first_k) % p_sample_m = 0 THEN
        reason := 'sampled';
    ELSE
        reason := 'counted';
    END IF;
    want_dump := reason <> 'counted';
    IF want_dump THEN
        UPDATE hint_daily h SET dumps_wanted = h.dumps_wanted + 1
        WHERE h.project = p_project AND h.fault_key = p_fault_key AND h.day = today;
    END IF;

    INSERT INTO crashes (project, crash_id, received_at, source, idempotency_key, host_id,
                         product, version, channel, build_id, os, os_version, cpu_arch,
                         crash_time, event_at, event_clamped, annotations, dump_format, status,
                         signature, bucket_key, crash_kind, fault_module, fault_module_version,
                         fault_key, hint_counted, hint_pending, hint_reason)
    VALUES (p_project, p_crash_id, recv, 'hint', p_idem, host, p_product, p_version, p_channel,
            p_build_id, p_os, p_os_version, p_cpu_arch, triage_ts(p_crash_ms), ev, clamped,
            coalesce(p_annotations, '{}'), p_dump_format, 'done', m.signature, m.bucket_key,
            m.crash_kind, m.fault_module, m.fault_module_version, p_fault_key, true, true,
            reason);
    -- The one module the hint proves loaded: the faulting one, named as the analyzer names it
    -- (name@version, else code id, else debug id: its fault_module_version), so correlations
    -- of module@version see the incident's hint-counted crashes too.
    IF m.fault_module IS NOT NULL THEN
        INSERT INTO crash_modules (project, crash_id, received_at, module_index, name, version)
        VALUES (p_project, p_crash_id, recv, 0, m.fault_module, m.fault_module_version);
    END IF;

    INSERT INTO collection_decisions AS d (project, day, reason, product, version, fault_module,
                                           fault_module_version, crashes)
    VALUES (p_project, today, reason, coalesce(p_product, ''), coalesce(p_version, ''),
            coalesce(m.fault_module, ''), coalesce(m.fault_module_version, ''), 1)
    ON CONFLICT (project, day, reason, product, version, fault_module, fault_module_version)
    DO UPDATE SET crashes = d.crashes + 1;

    crash_id := p_crash_id::text;
    counted := true;
    bucket_key := m.bucket_key;
END
$$;

-- ---- adding counted hints to the buckets and rollups ----

-- Adds up to p_limit crashes counted from hints (hint_pending) to their buckets, distinct hosts
-- and minute rollups (the hour rollups follow by trigger), with the very statement shape of
-- db_result_write's counting (db/db_result.c), rows in key order, so concurrent batches of
-- either kind lock shared rows in the same order. Crashes being taken by another call are
-- skipped (SKIP LOCKED). Returns the number added.
CREATE FUNCTION triage_hint_rollup(p_limit integer) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    added bigint;
BEGIN
    WITH p AS (
        SELECT c.project, c.crash_id, c.received_at FROM crashes c
        WHERE c.hint_pending
        ORDER BY c.received_at
        LIMIT greatest(p_limit, 1)
        FOR UPDATE SKIP LOCKED),
    r AS (
        UPDATE crashes c SET hint_pending = false
        FROM p
        WHERE c.project = p.project AND c.crash_id = p.crash_id AND c.received_at = p.received_at
          AND c.hint_pending
        RETURNING c.project, c.bucket_key, c.signature, c.crash_kind, c.fault_module,
                  c.fault_module_version, c.host_id, triage_ms(c.event_at) AS event_ms),
    hg AS (
        SELECT project, bucket_key, host_id, count(*) AS n, min(event_ms) AS lo,
               max(event_ms) AS hi
        FROM r WHERE coalesce(host_id, '') <> '' GROUP BY 1, 2, 3),
    hi AS (
        INSERT INTO bucket_hosts AS h (project, bucket_key, host_id, crash_count, first_seen,
                                       last_seen)
        SELECT project, bucket_key, host_id, n, triage_ts(lo), triage_ts(hi) FROM hg
        ORDER BY 1, 2, 3
        ON CONFLICT (project, bucket_key, host_id) DO UPDATE SET
            crash_count = h.crash_count + excluded.crash_count,
            first_seen = least(h.first_seen, excluded.first_seen),
            last_seen = greatest(h.last_seen, excluded.last_seen)
        RETURNING h.project, h.bucket_key, (h.xmax = 0) AS fresh),
    hn AS (
        SELECT project, bucket_key, count(*) FILTER (WHERE fresh) AS new_hosts FROM hi
        GROUP BY 1, 2),
    br AS (
        INSERT INTO bucket_rollup_minute AS m (project, bucket_key, minute, crash_count, hosts)
        SELECT project, bucket_key, date_trunc('minute', triage_ts(event_ms)), count(*),
               triage_hll_of(array_agg(host_id)) FROM r
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (project, bucket_key, minute) DO UPDATE SET
            crash_count = m.crash_count + excluded.crash_count,
            hosts = triage_hll_union(m.hosts, excluded.hosts)),
    mr AS (
        INSERT INTO module_rollup_minute AS m (project, fault_module, fault_module_version,
                                               minute, crash_count, hosts)
        SELECT project, fault_module, coalesce(fault_module_version, ''),
               date_trunc('minute', triage_ts(event_ms)), count(*),
               triage_hll_of(array_agg(host_id)) FROM r
        WHERE fault_module IS NOT NULL
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (project, fault_module, fault_module_version, minute) DO UPDATE SET
            crash_count = m.crash_count + excluded.crash_count,
            hosts = triage_hll_union(m.hosts, excluded.hosts)),
    bg AS (
        SELECT project, bucket_key, (array_agg(signature))[1] AS signature,
               (array_agg(crash_kind))[1] AS crash_kind,
               (array_agg(fault_module))[1] AS fault_module,
               (array_agg(fault_module_version))[1] AS fault_module_version,
               count(*) AS n, min(event_ms) AS lo, max(event_ms) AS hi
        FROM r GROUP BY 1, 2),
    b AS (
        INSERT INTO buckets AS b (project, bucket_key, signature, crash_kind, fault_module,
                                  fault_module_version, crash_count, host_count, first_seen,
                                  last_seen)
        SELECT bg.project, bg.bucket_key, coalesce(bg.signature, ''), bg.crash_kind,
               bg.fault_module, bg.fault_module_version, bg.n, coalesce(hn.new_hosts, 0),
               triage_ts(bg.lo), triage_ts(bg.hi)
        FROM bg LEFT JOIN hn ON hn.project = bg.project AND hn.bucket_key = bg.bucket_key
        ORDER BY 1, 2
        ON CONFLICT (project, bucket_key) DO UPDATE SET
            crash_count = b.crash_count + excluded.crash_count,
            host_count = b.host_count + excluded.host_count,
            first_seen = least(b.first_seen, excluded.first_seen),
            last_seen = greatest(b.last_seen, excluded.last_seen),
            fault_module = coalesce(b.fault_module, excluded.fault_module),
            fault_module_version = coalesce(b.fault_module_version,
                                            excluded.fault_module_version),
            updated_at = now()
        RETURNING 1)
    SELECT (SELECT count(*) FROM r) INTO added FROM (SELECT count(*) FROM b) x;
    RETURN added;
END
$$;

-- ---- the dump of a hinted crash arrives ----

-- Attaches a dump to a crash recorded from its hint (source 'hint', no dump yet): takes the
-- hint's count out of the bucket and rollups (as triage_reprocess does), stores the dump's
-- location, and queues its analysis, which counts the crash once. Returns false (nothing done)
-- when the crash is no hint or already has its dump, so a retried upload changes nothing.
CREATE FUNCTION triage_hint_attach(p_project text, p_crash_id uuid, p_sha256 text,
                                   p_size bigint, p_spool text, p_format text,
                                   p_max_attempts integer) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    c crashes;
    hosts_left bigint;
    gone integer := 0;
BEGIN
    SELECT * INTO c FROM crashes
    WHERE project = p_project AND crash_id = p_crash_id AND source = 'hint'
      AND dump_sha256 IS NULL
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- Take the hint's count out, unless it was never added (still pending). The rows are taken
    -- in db_result_write's order (hosts, bucket, minute rollups with their hours), as a batch
    -- of one.
    IF c.hint_counted AND NOT c.hint_pending AND c.status = 'done' AND c.bucket_key IS NOT NULL
    THEN
        IF coalesce(c.host_id, '') <> '' THEN
            UPDATE bucket_hosts h SET crash_count = h.crash_count - 1
            WHERE h.project = p_project AND h.bucket_key = c.bucket_key AND h.host_id = c.host_id
            RETURNING h.crash_count INTO hosts_left;
            IF hosts_left IS NOT NULL AND hosts_left <= 0 THEN
                DELETE FROM bucket_hosts h
                WHERE h.project = p_project AND h.bucket_key = c.bucket_key
                  AND h.host_id = c.host_id;
                gone := 1;
            END IF;
        END IF;
        UPDATE buckets b SET crash_count = b.crash_count - 1, host_count = b.host_count - gone,
            updated_at = now()
        WHERE b.project = p_project AND b.bucket_key = c.bucket_key;
        UPDATE bucket_rollup_minute r SET crash_count = r.crash_count - 1
        WHERE r.project = p_project AND r.bucket_key = c.bucket_key
          AND r.minute = date_trunc('minute', c.event_at);
        DELETE FROM bucket_rollup_minute r
        WHERE r.project = p_project AND r.bucket_key = c.bucket_key
          AND r.minute = date_trunc('minute', c.event_at) AND r.crash_count <= 0;
        IF c.fault_module IS NOT NULL THEN
            UPDATE module_rollup_minute r SET crash_count = r.crash_count - 1
            WHERE r.project = p_project AND r.fault_module = c.fault_module
              AND r.fault_module_version = coalesce(c.fault_module_version, '')
              AND r.minute = date_trunc('minute', c.event_at);
            DELETE FROM module_rollup_minute r
            WHERE r.project = p_project AND r.fault_module = c.fault_module
              AND r.fault_module_version = coalesce(c.fault_module_version, '')
              AND r.minute = date_trunc('minute', c.event_at) AND r.crash_count <= 0;
        END IF;
    END IF;
    UPDATE crashes SET status = 'received', hint_counted = false, hint_pending = false,
        dump_sha256 = p_sha256,
        dump_size_bytes = p_size, spool_path = p_spool, dump_format = p_format,
        signature = NULL, bucket_key = NULL, crash_kind = NULL, fault_module = NULL,
        fault_module_version = NULL, fault_point = NULL, stack_hash = NULL
    WHERE project = p_project AND crash_id = p_crash_id AND received_at = c.received_at;
    -- The analysis writes the whole module list.
    DELETE FROM crash_modules m
    WHERE m.project = p_project AND m.crash_id = p_crash_id AND m.received_at = c.received_at;
    INSERT INTO jobs (project, crash_id, crash_received_at, max_attempts)
    VALUES (p_project, p_crash_id, c.received_at, greatest(coalesce(p_max_attempts, 3), 1))
    ON CONFLICT (project, crash_id) DO NOTHING;
    RETURN true;
END
$$;

-- ---- a responder asks for dumps ----

-- The next p_n hints counted in the bucket ask for their dump (0 cancels). Returns false when
-- the project has no such bucket.
CREATE FUNCTION triage_want(p_project text, p_bucket text, p_n bigint) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM buckets WHERE project = p_project AND bucket_key = p_bucket;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO bucket_wants AS w (project, bucket_key, remaining, requested, requested_at)
    VALUES (p_project, p_bucket, greatest(p_n, 0), greatest(p_n, 0), now())
    ON CONFLICT (project, bucket_key) DO UPDATE SET remaining = excluded.remaining,
        requested = excluded.requested, requested_at = excluded.requested_at;
    RETURN true;
END
$$;

-- ---- reprocessing leaves crashes without a dump alone ----

-- As in 0001, except that crashes counted from a hint (no dump to analyze) are not re-queued:
-- they stay counted in the bucket their fault key mapped to.
CREATE OR REPLACE FUNCTION triage_reprocess(p_project text, p_bucket text, p_since timestamptz,
                                            p_all boolean) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF p_bucket IS NULL AND p_since IS NULL AND NOT coalesce(p_all, false) THEN
        RAISE EXCEPTION 'reprocess needs a bucket, a start time or all';
    END IF;
    CREATE TEMPORARY TABLE IF NOT EXISTS triage_reprocess_set (
        project text, crash_id uuid, received_at timestamptz, status text, bucket_key text,
        host_id text, event_at timestamptz, fault_module text, fault_module_version text
    ) ON COMMIT DELETE ROWS;
    DELETE FROM triage_reprocess_set;
    INSERT INTO triage_reprocess_set
        SELECT c.project, c.crash_id, c.received_at, c.status, c.bucket_key, c.host_id,
               c.event_at, c.fault_module, c.fault_module_version
        FROM crashes c
        WHERE c.project = p_project
          AND c.status IN ('done', 'failed', 'dead')
          AND NOT c.hint_counted AND c.spool_path IS NOT NULL
          AND (p_bucket IS NULL OR c.bucket_key = p_bucket)
          AND (p_since IS NULL OR c.received_at >= p_since)
        ORDER BY c.project, c.crash_id
        FOR UPDATE OF c;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 0;
    END IF;

    UPDATE buckets b SET crash_count = b.crash_count - g.n, updated_at = now()
    FROM (SELECT project, bucket_key, count(*) AS n FROM triage_reprocess_set
          WHERE status = 'done' AND bucket_key IS NOT NULL GROUP BY 1, 2) g
    WHERE b.project = g.project AND b.bucket_key = g.bucket_key;

    UPDATE bucket_hosts h SET crash_count = h.crash_count - g.n
    FROM (SELECT project, bucket_key, host_id, count(*) AS n FROM triage_reprocess_set
          WHERE status = 'done' AND bucket_key IS NOT NULL AND coalesce(host_id, '') <> ''
          GROUP BY 1, 2, 3) g
    WHERE h.project = g.project AND h.bucket_key = g.bucket_key AND h.host_id = g.host_id;

    WITH gone AS (
        DELETE FROM bucket_hosts h
        USING (SELECT DISTINCT project, bucket_key, host_id FROM triage_reprocess_set
               WHERE status = 'done' AND bucket_key IS NOT NULL) g
        WHERE h.project = g.project AND h.bucket_key = g.bucket_key AND h.host_id = g.host_id
          AND h.crash_count <= 0
        RETURNING h.project, h.bucket_key)
    UPDATE buckets b SET host_count = b.host_count - g.n
    FROM (SELECT project, bucket_key, count(*) AS n FROM gone GROUP BY 1, 2) g
    WHERE b.project = g.project AND b.bucket_key = g.bucket_key;

    UPDATE bucket_rollup_minute r SET crash_count = r.crash_count - g.n
    FROM (SELECT project, bucket_key, date_trunc('minute', event_at) AS minute, count(*) AS n
          FROM triage_reprocess_set WHERE status = 'done' AND bucket_key IS NOT NULL
          GROUP BY 1, 2, 3) g
    WHERE r.project = g.project AND r.bucket_key = g.bucket_key AND r.minute = g.minute;
    DELETE FROM bucket_rollup_minute r
    USING (SELECT DISTINCT project, bucket_key, date_trunc('minute', event_at) AS minute
           FROM triage_reprocess_set WHERE status = 'done' AND bucket_key IS NOT NULL) g
    WHERE r.project = g.project AND r.bucket_key = g.bucket_key AND r.minute = g.minute
      AND r.crash_count <= 0;

    UPDATE module_rollup_minute r SET crash_count = r.crash_count - g.n
    FROM (SELECT project, fault_module, coalesce(fault_module_version, '') AS v,
                 date_trunc('minute', event_at) AS minute, count(*) AS n
          FROM triage_reprocess_set WHERE status = 'done' AND fault_module IS NOT NULL
          GROUP BY 1, 2, 3, 4) g
    WHERE r.project = g.project AND r.fault_module = g.fault_module
      AND r.fault_module_version = g.v AND r.minute = g.minute;
    DELETE FROM module_rollup_minute r
    USING (SELECT DISTINCT project, fault_module, coalesce(fault_module_version, '') AS v,
                  date_trunc('minute', event_at) AS minute
           FROM triage_reprocess_set WHERE status = 'done' AND fault_module IS NOT NULL) g
    WHERE r.project = g.project AND r.fault_module = g.fault_module
      AND r.fault_module_version = g.v AND r.minute = g.minute AND r.crash_count <= 0;

    UPDATE crashes c SET status = 'received', failure_reason = NULL, analyzed_at = NULL,
        signature = NULL, bucket_key = NULL, crash_kind = NULL, fault_module = NULL,
        fault_module_version = NULL, fault_point = NULL, stack_hash = NULL, fault_key = NULL,
        rules_version = NULL, processed = NULL
    FROM triage_reprocess_set s
    WHERE c.project = s.project AND c.crash_id = s.crash_id AND c.received_at = s.received_at;

    DELETE FROM crash_modules m USING triage_reprocess_set s
    WHERE m.project = s.project AND m.crash_id = s.crash_id AND m.received_at = s.received_at;

    INSERT INTO jobs (project, crash_id, crash_received_at)
        SELECT project, crash_id, received_at FROM triage_reprocess_set ORDER BY project, crash_id
    ON CONFLICT (project, crash_id) DO UPDATE
        SET state = 'ready', attempts = 0, run_after = now(), lease_owner = NULL,
            lease_expires_at = NULL, last_error = NULL, updated_at = now();

    DELETE FROM triage_reprocess_set;
    RETURN n;
END
$$;

-- ---- views (docs/progressive-collection.md) ----

-- Collection decisions of the last 24 hours (by day: today and yesterday, UTC).
CREATE VIEW collection_decisions_24h AS
    SELECT project, reason, product, version, fault_module, fault_module_version,
           sum(crashes)::bigint AS crashes
    FROM collection_decisions
    WHERE day >= (now() AT TIME ZONE 'UTC')::date - 1
    GROUP BY 1, 2, 3, 4, 5, 6;

-- The fault keys the service knows, with the bucket each lands in (known when exactly one).
CREATE VIEW fault_key_map AS
    SELECT project, fault_key, count(*) AS buckets, (array_agg(bucket_key))[1] AS bucket_key,
           sum(crash_count)::bigint AS analyzed_crashes, min(first_seen) AS first_seen,
           max(last_seen) AS last_seen
    FROM fault_key_buckets WHERE crash_count > 0
    GROUP BY 1, 2;
