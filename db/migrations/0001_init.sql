-- 0001_init.sql -- the first schema of the triage service (docs/database.md describes it).
--
-- Every table and every key starts with `project` (all rows are project 'default' until API
-- keys arrive), so keys and tenants can come without reshaping the data.
-- Times are timestamptz; the API carries milliseconds since the epoch (triage_ms/triage_ts).
-- Applied once by db_migrate() inside one transaction; never edit an applied migration: add a
-- new one (the checksum check refuses a changed file).

-- ---- helpers ----

-- Milliseconds since the epoch <-> timestamptz, exact (no float rounding).
CREATE FUNCTION triage_ms(t timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT (extract(epoch FROM t) * 1000)::bigint $$;

CREATE FUNCTION triage_ts(ms bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT timestamptz 'epoch' + ms * interval '1 millisecond' $$;

-- ---- crashes ----

-- The dedupe registry. PostgreSQL enforces a unique constraint on a partitioned table only
-- when it contains the partition key, so the crash identities live here, unpartitioned:
-- (project, idempotency_key) and (project, host_id, dump_sha256) are unique, which makes a
-- retried or raced upload the same crash. NULLs are distinct: a crash with no key or no host
-- is never deduped by that constraint.
CREATE TABLE crash_keys (
    project         text        NOT NULL,
    crash_id        uuid        NOT NULL,
    received_at     timestamptz NOT NULL,
    idempotency_key text,
    host_id         text,
    dump_sha256     text,
    PRIMARY KEY (project, crash_id),
    CONSTRAINT crash_keys_idempotency UNIQUE (project, idempotency_key),
    CONSTRAINT crash_keys_host_dump UNIQUE (project, host_id, dump_sha256)
);

-- One row per crash, partitioned by the day it was received (UTC), so old days can be
-- detached or dropped whole. Rows for days without a partition land in crashes_default.
CREATE TABLE crashes (
    project              text        NOT NULL,
    crash_id             uuid        NOT NULL,
    received_at          timestamptz NOT NULL,  -- server clock, when the dump was durable
    source               text        NOT NULL DEFAULT 'upload'
                         CHECK (source IN ('upload', 'submit', 'hint')),
    idempotency_key      text,
    host_id              text,
    product              text,
    version              text,
    channel              text,
    build_id             text,
    os                   text,
    os_version           text,
    cpu_arch             text,
    crash_time           timestamptz,           -- client clock as reported; NULL if unknown
    -- crash_time clamped into [received_at - clamp window, received_at] (received_at when
    -- unknown): the time rates and rollups use; event_clamped says it had to be clamped.
    event_at             timestamptz NOT NULL,
    event_clamped        boolean     NOT NULL DEFAULT false,
    annotations          jsonb       NOT NULL DEFAULT '{}',
    dump_sha256          text,                  -- hex SHA-256 of the decompressed dump
    dump_size_bytes      bigint,
    spool_path           text,                  -- the zstd-compressed dump in the spool
    dump_format          text,                  -- minidump, elf_core, windows_kernel, unknown
    status               text        NOT NULL DEFAULT 'received'
                         CHECK (status IN ('received', 'analyzing', 'done', 'failed', 'dead')),
    failure_reason       text,                  -- failed: the reader's error; dead: the job's
    analyzed_at          timestamptz,
    -- The analysis result (NULL until analyzed).
    signature            text,
    bucket_key           text,
    crash_kind           text,
    fault_module         text,
    fault_module_version text,
    fault_point          text,
    stack_hash           text,
    fault_key            text,
    rules_version        text,
    processed            jsonb,
    PRIMARY KEY (project, crash_id, received_at)
) PARTITION BY RANGE (received_at);

CREATE TABLE crashes_default PARTITION OF crashes DEFAULT;

CREATE INDEX crashes_by_received ON crashes (project, received_at);
CREATE INDEX crashes_by_bucket ON crashes (project, bucket_key, event_at);
CREATE INDEX crashes_by_fault_module ON crashes (project, fault_module, fault_module_version,
                                                 event_at);
CREATE INDEX crashes_by_status ON crashes (project, status)
    WHERE status IN ('received', 'analyzing', 'failed', 'dead');

-- Modules loaded in each crashed process (for correlations: module@version over-represented
-- in a bucket or an incident). Partitioned like crashes.
CREATE TABLE crash_modules (
    project      text          NOT NULL,
    crash_id     uuid          NOT NULL,
    received_at  timestamptz   NOT NULL,
    module_index integer       NOT NULL,  -- position in the dump's module list
    name         text          NOT NULL,  -- file name without directories
    version      text,
    debug_file   text,
    debug_id     text,                    -- Breakpad debug id (GUID+age)
    code_id      text,                    -- PE code id or ELF build id (hex)
    base_address numeric(20, 0),
    size_bytes   numeric(20, 0),
    is_main      boolean       NOT NULL DEFAULT false,
    PRIMARY KEY (project, crash_id, received_at, module_index)
) PARTITION BY RANGE (received_at);

CREATE TABLE crash_modules_default PARTITION OF crash_modules DEFAULT;

CREATE INDEX crash_modules_by_name ON crash_modules (project, name, version, received_at);

-- ---- the job queue ----

-- Holds only live work and the dead letters: a job is deleted when its crash is done or failed
-- (the crash row keeps the outcome), so the table stays small and its indexes hot.
-- Claiming: FOR UPDATE SKIP LOCKED over jobs_ready; attempts is bumped at claim, the lease
-- deadline comes from the server's now(), and (project, job_id, attempts) is the claim token
-- that every later update must match, so a worker whose lease expired cannot finish a job that
-- another worker holds.
CREATE TABLE jobs (
    project           text        NOT NULL,
    job_id            bigint      GENERATED ALWAYS AS IDENTITY,
    crash_id          uuid        NOT NULL,
    crash_received_at timestamptz NOT NULL,   -- the crash's partition key
    kind              text        NOT NULL DEFAULT 'analyze',
    state             text        NOT NULL DEFAULT 'ready'
                      CHECK (state IN ('ready', 'running', 'dead')),
    run_after         timestamptz NOT NULL DEFAULT now(),  -- backoff: not claimable before
    attempts          integer     NOT NULL DEFAULT 0,
    max_attempts      integer     NOT NULL DEFAULT 3,
    lease_owner       text,
    lease_expires_at  timestamptz,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, job_id),
    CONSTRAINT jobs_one_per_crash UNIQUE (project, crash_id)
);

CREATE INDEX jobs_ready ON jobs (run_after, job_id) WHERE state = 'ready';
CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_dead ON jobs (project, updated_at) WHERE state = 'dead';

-- ---- buckets and rollups ----

-- One row per bucket (hash of crash kind + signature). Counts are exact: a crash is counted
-- when its result is written and taken out again when it is reprocessed.
CREATE TABLE buckets (
    project              text        NOT NULL,
    bucket_key           text        NOT NULL,
    signature            text        NOT NULL,
    crash_kind           text,
    fault_module         text,         -- of the first crash seen in the bucket
    fault_module_version text,
    crash_count          bigint      NOT NULL DEFAULT 0,
    host_count           bigint      NOT NULL DEFAULT 0,  -- distinct hosts (bucket_hosts rows)
    first_seen           timestamptz NOT NULL,            -- min event_at
    last_seen            timestamptz NOT NULL,            -- max event_at
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, bucket_key)
);

CREATE INDEX buckets_by_last_seen ON buckets (project, last_seen);

-- Distinct hosts per bucket, exact, with each host's crash count (so reprocessing can take a
-- host out when its last crash leaves the bucket).
CREATE TABLE bucket_hosts (
    project     text        NOT NULL,
    bucket_key  text        NOT NULL,
    host_id     text        NOT NULL,
    crash_count bigint      NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    PRIMARY KEY (project, bucket_key, host_id)
);

-- Crashes per bucket per minute of event_at: rate charts and spike detection.
CREATE TABLE bucket_rollup_minute (
    project     text        NOT NULL,
    bucket_key  text        NOT NULL,
    minute      timestamptz NOT NULL,
    crash_count bigint      NOT NULL,
    PRIMARY KEY (project, bucket_key, minute)
);

CREATE INDEX bucket_rollup_minute_by_minute ON bucket_rollup_minute (project, minute);

-- Crashes per faulting module + version per minute, across all its buckets (mass-crash
-- detection of a bad module release). Unknown version is ''.
CREATE TABLE module_rollup_minute (
    project              text        NOT NULL,
    fault_module         text        NOT NULL,
    fault_module_version text        NOT NULL DEFAULT '',
    minute               timestamptz NOT NULL,
    crash_count          bigint      NOT NULL,
    PRIMARY KEY (project, fault_module, fault_module_version, minute)
);

CREATE INDEX module_rollup_minute_by_minute ON module_rollup_minute (project, minute);

-- ---- partition maintenance ----

-- Creates the daily partitions of crashes and crash_modules from yesterday to days_ahead days
-- ahead (UTC days). Serialized by a transaction-scoped advisory lock; a day whose rows already
-- sit in the default partition is skipped with a warning (move them by hand). Returns the
-- number of partitions created.
CREATE FUNCTION triage_ensure_partitions(days_ahead integer) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    d     date;
    t     text;
    part  text;
    made  integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7472696167650002);
    FOR d IN SELECT g::date FROM generate_series(today - 1, today + greatest(days_ahead, 0),
                                                 interval '1 day') AS g LOOP
        FOREACH t IN ARRAY ARRAY['crashes', 'crash_modules'] LOOP
            part := t || '_' || to_char(d, 'YYYYMMDD');
            IF to_regclass(part) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                                   part, t, (d::timestamp AT TIME ZONE 'UTC'),
                                   ((d + 1)::timestamp AT TIME ZONE 'UTC'));
                    made := made + 1;
                EXCEPTION WHEN check_violation OR object_not_in_prerequisite_state THEN
                    RAISE WARNING 'partition % not created: %', part, SQLERRM;
                END;
            END IF;
        END LOOP;
    END LOOP;
    RETURN made;
END
$$;

-- ---- reprocessing ----

-- Re-queues the analysis of a project's finished crashes (done, failed, dead) that match:
-- p_bucket (crashes now in that bucket), p_since (received at or after), or every crash when
-- both are NULL and p_all. Counts of done crashes are taken out of buckets, bucket_hosts and
-- both rollups first, so the new analysis counts each crash exactly once again. The matching
-- crashes are locked and copied into a temporary table first, so every step works on the same
-- set even while results are being written concurrently. Returns the number re-queued.
CREATE FUNCTION triage_reprocess(p_project text, p_bucket text, p_since timestamptz,
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
          AND (p_bucket IS NULL OR c.bucket_key = p_bucket)
          AND (p_since IS NULL OR c.received_at >= p_since)
        ORDER BY c.project, c.crash_id
        FOR UPDATE OF c;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 0;
    END IF;

    -- Take the counted (done) crashes out of their buckets.
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

    -- Back to received, result cleared.
    UPDATE crashes c SET status = 'received', failure_reason = NULL, analyzed_at = NULL,
        signature = NULL, bucket_key = NULL, crash_kind = NULL, fault_module = NULL,
        fault_module_version = NULL, fault_point = NULL, stack_hash = NULL, fault_key = NULL,
        rules_version = NULL, processed = NULL
    FROM triage_reprocess_set s
    WHERE c.project = s.project AND c.crash_id = s.crash_id AND c.received_at = s.received_at;

    -- The new analysis writes the module list again.
    DELETE FROM crash_modules m USING triage_reprocess_set s
    WHERE m.project = s.project AND m.crash_id = s.crash_id AND m.received_at = s.received_at;

    -- A fresh job (dead jobs are revived with their attempts reset).
    INSERT INTO jobs (project, crash_id, crash_received_at)
        SELECT project, crash_id, received_at FROM triage_reprocess_set ORDER BY project, crash_id
    ON CONFLICT (project, crash_id) DO UPDATE
        SET state = 'ready', attempts = 0, run_after = now(), lease_owner = NULL,
            lease_expires_at = NULL, last_error = NULL, updated_at = now();

    DELETE FROM triage_reprocess_set;
    RETURN n;
END
$$;
