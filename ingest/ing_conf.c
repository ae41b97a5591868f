/* ing_conf.c -- the collector's configuration: one table of keys with type, default, minimum and
 * maximum (Redis standardConfig, nginx directives). Defaults come from the table, then the file,
 * then flags. Sizes accept K, M, G suffixes (powers of 1024). An unknown key or an out-of-range
 * value stops start-up with file:line. ingest/triage-ingest.conf.example documents every key and
 * tests/ingest checks that it names them all. */
#include <string.h>

#include "common/cm_conf.h"
#include "ingest/ing.h"

#define SZ(field, def, min, max, help) CM_CONF_SZ(struct ing_conf, field, def, min, max, help)
#define BOOL(field, def, help) CM_CONF_BOOLEAN(struct ing_conf, field, def, help)
#define STR(field, def, help) CM_CONF_STRING(struct ing_conf, field, def, help)

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define GiB (1024ull * 1024 * 1024)

static const struct cm_conf_key keys[] = {
    STR(listen, "127.0.0.1:8080", "HOST:PORT to listen on; port 0 picks a free port"),
    STR(spool_dir, "./triage-data/spool", "durable spool folder (created 0700)"),
    STR(db_url, "", "PostgreSQL connection string or URL; empty: no database"),
    CM_CONF_CHOICE(struct ing_conf, log_level, "info", "debug|info|warn|error",
                   "debug, info, warn or error"),
    STR(project, "default", "project every crash belongs to until API keys exist"),
    SZ(max_request_bytes, "20M", 1 * KiB, 1 * GiB, "request body as sent (compressed)"),
    SZ(max_header_bytes, "16K", 4 * KiB, 1 * MiB, "request line plus header block"),
    SZ(max_dump_bytes, "100M", 1 * KiB, 4 * GiB, "decompressed dump, capped while streaming"),
    SZ(max_part_bytes, "20M", 1 * KiB, 1 * GiB, "one multipart part"),
    SZ(max_part_header_bytes, "16K", 256, 1 * MiB, "header block of one multipart part"),
    SZ(max_preamble_bytes, "1K", 0, 1 * MiB, "bytes before the first multipart boundary"),
    SZ(max_parts, "32", 1, 10000, "multipart parts per request"),
    SZ(max_annotations, "512", 0, 100000, "annotations per crash"),
    SZ(max_annotation_bytes, "64K", 16, 16 * MiB, "one annotation value"),
    SZ(max_annotation_key_bytes, "256", 8, 64 * KiB, "one annotation key (form field name)"),
    SZ(max_string_bytes, "1K", 16, 64 * KiB, "product, version, host id and the other strings"),
    SZ(zstd_window_log_max, "24", 10, 30, "largest zstd window accepted, as a power of two"),
    SZ(zstd_level, "1", 1, 19, "zstd level for raw and gzip dumps stored in the spool"),
    SZ(connection_timeout_s, "10", 1, 3600, "idle connection (no byte received) is closed"),
    SZ(body_deadline_s, "120", 1, 86400, "a request body must be complete within this time"),
    SZ(min_body_rate_bytes, "4K", 0, 1 * GiB, "bytes/s a body must average after the grace"),
    SZ(min_rate_grace_s, "10", 0, 3600, "seconds before the minimum body rate applies"),
    SZ(max_connections, "1024", 1, 100000, "open connections in total"),
    SZ(max_connections_per_ip, "32", 1, 100000, "open connections per client address"),
    SZ(http_threads, "2", 1, 64, "HTTP polling threads"),
    SZ(workers, "8", 1, 32, "threads that decompress, fsync and record (concurrent decodes)"),
    SZ(spool_high_water, "10000", 1, 100000000,
       "pending crashes past which the native route answers 503"),
    SZ(queue_high_water, "100000", 1, 1000000000,
       "analysis jobs waiting past which the native route answers 503"),
    SZ(spool_reserve_bytes, "256M", 0, 1024 * GiB,
       "free disk below which the native route answers 503"),
    SZ(retry_after_s, "5", 1, 3600, "Retry-After sent with 503"),
    SZ(drain_interval_ms, "1000", 10, 600000, "how often pending crashes are retried"),
    BOOL(fsync_batch, "true", "concurrent uploads share one directory fsync"),
    SZ(db_timeout_ms, "5000", 100, 600000,
       "bound on one database call (statement timeout; connect gets the same, in seconds)"),
    SZ(shutdown_grace_ms, "10000", 0, 600000, "SIGTERM: time in-flight requests get to finish"),
    SZ(event_clamp_s, "604800", 60, 366 * 86400,
       "rates place a crash at its reported time clamped into [received - this, received]"),
    BOOL(hints, "true", "decide hints (POST /api/v1/hints); false: every hint asks for the dump"),
    SZ(hint_first_k, "5", 0, 1000000, "full dumps wanted per fault key per UTC day"),
    SZ(hint_sample_m, "100", 0, 100000000, "after the first K, one dump in M (0: none)"),
};
static const struct cm_conf table = { keys, sizeof keys / sizeof keys[0] };

const char *ing_conf_key(size_t i, const char **type, const char **def, const char **help)
{
    if (i >= table.count)
        return NULL;
    if (type)
        *type = cm_conf_type_name(keys[i].type);
    if (def)
        *def = keys[i].def;
    if (help)
        *help = keys[i].help;
    return keys[i].name;
}

void ing_conf_default(struct ing_conf *c)
{
    memset(c, 0, sizeof *c);
    cm_conf_defaults(&table, c); /* the table's defaults are in range; test_ingest checks */
}

enum cm_code ing_conf_set(struct ing_conf *c, const char *key, const char *value,
                          struct cm_err *err)
{
    return cm_conf_set(&table, c, key, value, err);
}

enum cm_code ing_conf_load(struct ing_conf *c, const char *path, struct cm_err *err)
{
    return cm_conf_load(&table, c, path, err);
}

enum cm_code ing_conf_args(struct ing_conf *c, int argc, char **argv, struct cm_err *err)
{
    enum cm_code rc = cm_conf_args(&table, c, argc, argv, err);
    return rc ? rc : ing_conf_check(c, err);
}

enum cm_code ing_conf_check(const struct ing_conf *c, struct cm_err *err)
{
    if (c->max_part_bytes > c->max_request_bytes && c->max_part_bytes > c->max_dump_bytes)
        return cm_fail(err, CM_E_USAGE,
                       "max_part_bytes (%zu) exceeds both max_request_bytes and max_dump_bytes",
                       c->max_part_bytes);
    if (c->max_annotation_key_bytes > c->max_part_header_bytes)
        return cm_fail(err, CM_E_USAGE,
                       "max_annotation_key_bytes (%zu) exceeds max_part_header_bytes (%zu)",
                       c->max_annotation_key_bytes, c->max_part_header_bytes);
    if (!c->spool_dir[0])
        return cm_fail(err, CM_E_USAGE, "spool_dir is empty");
    if (!c->listen[0])
        return cm_fail(err, CM_E_USAGE, "listen is empty");
    return CM_E_OK;
}
