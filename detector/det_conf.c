/* det_conf.c -- the detector's configuration table: every key with its type, default and range
 * (common/cm_conf.h). detector/triage-detector.conf.example documents each one; the model's
 * parameters are explained in docs/incidents.md. */
#include "detector/det.h"

static const struct cm_conf_key keys[] = {
    CM_CONF_STRING(struct det_conf, db_url, "", "PostgreSQL connection string or URL (required)"),
    CM_CONF_STRING(struct det_conf, listen, "", "HOST:PORT for /healthz and /metrics; empty: none"),
    CM_CONF_STRING(struct det_conf, log_level, "info", "debug, info, warn or error"),
    CM_CONF_STRING(struct det_conf, webhook_url, "",
                   "http(s) URL to POST each opened, changed or closed incident to; empty: none"),
    CM_CONF_STRING(struct det_conf, notify_channel, "triage_incidents",
                   "PostgreSQL channel NOTIFYed for each opened, changed or closed incident"),
    CM_CONF_MS(struct det_conf, interval_ms, "15s", 100, 3600000, "time between passes"),
    CM_CONF_MS(struct det_conf, recent_ms, "5m", 60000, 86400000,
               "recent window compared with the baseline (whole minutes)"),
    CM_CONF_MS(struct det_conf, baseline_ms, "24h", 3600000, 30LL * 86400000,
               "baseline window before the recent one"),
    CM_CONF_SZ(struct det_conf, min_crashes, "10", 1, 1000000,
               "crashes in the recent window needed to open an incident"),
    CM_CONF_SZ(struct det_conf, min_hosts, "3", 1, 1000000,
               "distinct hosts in the recent window needed to open an incident"),
    CM_CONF_SZ(struct det_conf, min_ratio_pct, "300", 100, 1000000,
               "recent crashes must reach this percentage of the expected count"),
    CM_CONF_SZ(struct det_conf, open_score, "6", 1, 300,
               "-log10 p (Poisson upper tail) needed to open an incident"),
    CM_CONF_SZ(struct det_conf, hot_score, "2", 1, 300,
               "-log10 p against the pre-incident baseline that keeps an incident open"),
    CM_CONF_SZ(struct det_conf, floor_per_day, "24", 1, 100000000,
               "least baseline rate assumed for any key, crashes per day"),
    CM_CONF_MS(struct det_conf, quiet_ms, "10m", 60000, 7LL * 86400000,
               "an incident closes after this long without spiking"),
    CM_CONF_MS(struct det_conf, context_ms, "30m", 0, 86400000,
               "the stored rate series starts this long before the onset"),
    CM_CONF_SZ(struct det_conf, series_points, "1440", 10, 100000,
               "at most this many minutes in the stored rate series"),
    CM_CONF_MS(struct det_conf, correlate_ms, "1m", 0, 86400000,
               "correlations of an open incident are recomputed at most this often"),
    CM_CONF_MS(struct det_conf, correlation_window_ms, "1h", 60000, 7LL * 86400000,
               "correlations compare against at least this much of the population"),
    CM_CONF_SZ(struct det_conf, correlation_sample, "5000", 10, 1000000,
               "crashes examined on each side (incident, the rest) for correlations"),
    CM_CONF_SZ(struct det_conf, correlations_top, "10", 1, 100,
               "correlations stored with an incident"),
    CM_CONF_SZ(struct det_conf, change_pct, "200", 101, 100000,
               "a bucket count or peak rate reaching this percentage of the last announced one "
               "is announced as a change"),
    CM_CONF_MS(struct det_conf, webhook_timeout_ms, "5s", 100, 600000,
               "time allowed for one webhook POST"),
};

const struct cm_conf det_conf_table = { keys, sizeof keys / sizeof *keys };

void det_conf_default(struct det_conf *c) { cm_conf_defaults(&det_conf_table, c); }
