-- 0004_incidents.sql -- mass-crash incidents: what the detector (triage-detector) opens when
-- crash rates depart from their baseline, the buckets each one groups, its rate series and its
-- correlations. docs/incidents.md describes the model; the detector's clock writes every time
-- here (it passes "now"), so tests can drive it.

-- One row per incident. An incident is keyed by what its spikes share (group_key): a fault
-- module + version, or a single bucket when the crashes have no known fault module. At most one
-- incident per key is open at a time; after it closes, a new spike opens a new one.
CREATE TABLE incidents (
    project              text        NOT NULL,
    incident_id          bigint      GENERATED ALWAYS AS IDENTITY,
    group_key            text        NOT NULL,  -- ["m", module, version] or ["b", bucket] as JSON
    -- module: the fault module + version spiked across its buckets, and the incident's crashes
    -- are all crashes of that module + version; buckets: only single buckets spiked, and its
    -- crashes are those of its spiking buckets (incident_buckets.spiked_at set).
    kind                 text        NOT NULL CHECK (kind IN ('module', 'buckets')),
    fault_module         text,                  -- NULL: the bucket has no known fault module
    fault_module_version text        NOT NULL DEFAULT '',  -- version or build id; '' unknown
    bucket_key           text,                  -- the bucket of a group without a fault module
    status               text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_at            timestamptz NOT NULL,  -- the detector's clock when it opened
    onset_at             timestamptz NOT NULL,  -- start of the window that opened it; counts
                                                -- and correlations start here
    last_spike_at        timestamptz NOT NULL,  -- last pass that found it above its baseline
    closed_at            timestamptz,           -- set when rates returned to baseline
    updated_at           timestamptz NOT NULL,
    first_seen           timestamptz,           -- first crash ever of the key (the "new since")
    baseline_per_hour    double precision NOT NULL DEFAULT 0,  -- the rate it opened against
    open_score           double precision NOT NULL DEFAULT 0,  -- -log10 p of the opening spike
    crashes              bigint      NOT NULL DEFAULT 0,       -- since onset_at
    hosts                bigint      NOT NULL DEFAULT 0,       -- distinct, since onset_at (HLL)
    peak_per_minute      bigint      NOT NULL DEFAULT 0,
    peak_at              timestamptz,
    series_start         timestamptz,           -- the minute of series[1]
    series               bigint[]    NOT NULL DEFAULT '{}',    -- crashes per minute
    -- [{attribute, value, incident_pct, overall_pct, rest_pct, score, incident_count}], best
    -- first (docs/incidents.md).
    correlations         jsonb       NOT NULL DEFAULT '[]',
    analyzed_at          timestamptz,           -- when correlations were last computed
    headline             text        NOT NULL DEFAULT '',
    -- What the last notification told (revision counts them), so only real changes notify.
    revision             integer     NOT NULL DEFAULT 0,
    published_status     text        NOT NULL DEFAULT '',
    published_buckets    bigint      NOT NULL DEFAULT 0,
    published_peak       bigint      NOT NULL DEFAULT 0,
    published_top        text        NOT NULL DEFAULT '',
    PRIMARY KEY (project, incident_id)
);

CREATE UNIQUE INDEX incidents_one_open ON incidents (project, group_key) WHERE status = 'open';
CREATE INDEX incidents_by_opened ON incidents (project, opened_at);

-- The buckets an incident groups, with their crashes and exact distinct hosts since its onset.
CREATE TABLE incident_buckets (
    project     text        NOT NULL,
    incident_id bigint      NOT NULL,
    bucket_key  text        NOT NULL,
    crashes     bigint      NOT NULL DEFAULT 0,
    hosts       bigint      NOT NULL DEFAULT 0,
    first_seen  timestamptz,            -- first crash of the bucket in the incident
    last_seen   timestamptz,
    spiked_at   timestamptz,            -- when the bucket spiked on its own; NULL if never
    PRIMARY KEY (project, incident_id, bucket_key),
    FOREIGN KEY (project, incident_id) REFERENCES incidents ON DELETE CASCADE
);

-- RFC 3339 UTC text of a time ("2026-11-29T19:04:37Z"), NULL for NULL.
CREATE FUNCTION triage_rfc3339(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- One incident as the JSON object that `triagectl incidents --json`, the webhook and dashboards
-- share (a stable interface: change only by adding keys). At most 100 buckets are listed, most
-- crashes first; bucket_count has them all.
CREATE FUNCTION triage_incident_json(p_project text, p_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', i.incident_id, 'project', i.project, 'status', i.status, 'kind', i.kind,
        'opened_at', triage_rfc3339(i.opened_at), 'onset_at', triage_rfc3339(i.onset_at),
        'closed_at', triage_rfc3339(i.closed_at), 'updated_at', triage_rfc3339(i.updated_at),
        'first_seen', triage_rfc3339(i.first_seen),
        'fault_module', i.fault_module,
        'fault_module_version', nullif(i.fault_module_version, ''),
        'bucket_key', i.bucket_key,
        'headline', i.headline, 'hosts', i.hosts, 'crashes', i.crashes,
        'peak_per_minute', i.peak_per_minute, 'peak_at', triage_rfc3339(i.peak_at),
        'baseline_per_hour', i.baseline_per_hour, 'score', i.open_score,
        'bucket_count', (SELECT count(*) FROM incident_buckets ib
                         WHERE ib.project = i.project AND ib.incident_id = i.incident_id),
        'buckets', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'bucket', x.bucket_key, 'signature', x.signature,
                       'crashes', x.crashes, 'hosts', x.hosts,
                       'spiked', x.spiked_at IS NOT NULL) ORDER BY x.crashes DESC, x.bucket_key)
            FROM (SELECT ib.*, b.signature FROM incident_buckets ib
                  LEFT JOIN buckets b ON b.project = ib.project AND b.bucket_key = ib.bucket_key
                  WHERE ib.project = i.project AND ib.incident_id = i.incident_id
                  ORDER BY ib.crashes DESC, ib.bucket_key LIMIT 100) x), '[]'::jsonb),
        'correlations', i.correlations,
        'series_start', triage_rfc3339(i.series_start),
        'series', to_jsonb(i.series),
        'revision', i.revision)
    FROM incidents i
    WHERE i.project = p_project AND i.incident_id = p_id
$$;

-- Open incidents for dashboards: one row each, most crashes first.
CREATE VIEW open_incidents AS
    SELECT project, incident_id, kind, fault_module, nullif(fault_module_version, '')
               AS fault_module_version, bucket_key, opened_at, onset_at, last_spike_at,
           crashes, hosts, peak_per_minute, headline,
           (SELECT count(*) FROM incident_buckets ib
            WHERE ib.project = i.project AND ib.incident_id = i.incident_id) AS buckets
    FROM incidents i
    WHERE status = 'open';
