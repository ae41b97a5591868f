/* cli_int.h -- what triagectl's subcommands share: symbol directories from the command line and
 * the offline pipeline (read, unwind, symbolize, sign) over one file. */
#ifndef TRIAGE_CLI_INT_H
#define TRIAGE_CLI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* pid_t */

#include "analyzer/ana.h"
#include "db/db.h"

#define CLI_DEFAULT_DATA_DIR "./triage-data"
#define CLI_DEFAULT_LISTEN "127.0.0.1:8080"

/* ---- the database (cli_db.c) ---- */

struct cli_dbopt {
    const char *db_url;   /* --db, else $DATABASE_URL */
    const char *data_dir; /* --data: the embedded cluster's folder */
};
/* Long options every database command takes, and their handling. */
enum { CLI_OPT_DB = 1000, CLI_OPT_DATA, CLI_OPT_FREE };
#define CLI_DB_OPTIONS                                                                             \
    { "db", required_argument, NULL, CLI_OPT_DB }, { "data", required_argument, NULL, CLI_OPT_DATA }
/* True when ch was --db or --data (and records it). */
bool cli_db_option(struct cli_dbopt *o, int ch, const char *arg);
/* Parses the options of a command that takes only --json, --db, --data and --help, and expects
 * `positional` arguments after them. Returns -1 to go on (argv[optind..] are the arguments), else
 * the exit status to return: 0 after --help (usage printed to stdout), 2 for bad usage (usage
 * printed to stderr). usage is the whole usage text. */
int cli_parse_simple(int argc, char **argv, const char *usage, int positional,
                     struct cli_dbopt *dbo, bool *json);
/* Connects as cli_db.c describes; prints what to do next and returns 1 on failure. */
int cli_db_connect(const struct cli_dbopt *o, struct db_conn **out);
/* "90m", "30d", "45s", "2h" -> milliseconds; 0 on success. */
int cli_parse_duration(const char *s, int64_t *ms);
int64_t cli_now_ms(void);
/* RFC 3339 UTC ("2026-11-29T19:04:37Z"), "-" for 0. */
const char *cli_time_text(int64_t ms, char *buf, size_t n);

#define CLI_MAX_SYMBOL_DIRS 32

struct cli_symbols {
    const char *dirs[CLI_MAX_SYMBOL_DIRS];
    size_t count;
    struct ana_symstore *store; /* opened on first use, shared by every file of the command */
};
void cli_symbols_free(struct cli_symbols *s);

/* Adds a --symbols directory; prints why and returns non-zero when there are too many. */
int cli_symbols_add(struct cli_symbols *s, const char *dir);

struct cli_result {
    struct ana_crash *crash; /* owned; NULL when reading failed */
    struct ana_keys keys;    /* strings live in crash's arena */
    char exe_signal[256];    /* baseline key: main executable + signal or exception */
    char *top_frame;         /* baseline key: the top frame's module!function (malloc'd) */
    char *whole_stack;       /* baseline key: every frame's module!function (malloc'd) */
    struct cm_err err;
};

/* Reads, unwinds, symbolizes and signs one dump. Returns 0, or 1 with res->err filled. */
int cli_analyze_file(const char *path, struct cli_symbols *s, struct cli_result *res);
void cli_result_free(struct cli_result *res);

/* ---- the service on one machine (cli_service.c) ---- */

#define CLI_CHILD_MAX_ARGS (16 + 2 * CLI_MAX_SYMBOL_DIRS)
struct cli_child {
    char name[32];
    char *argv[CLI_CHILD_MAX_ARGS];
    int argc;
    pid_t pid;             /* 0 when not running */
    int64_t started_ms, backoff_ms, restart_at_ms;
};

struct cli_service_opts {
    const char *data_dir;   /* default ./triage-data */
    const char *db_url;     /* NULL: $DATABASE_URL, else the embedded cluster */
    const char *listen;     /* default 127.0.0.1:8080 */
    const char *workers;    /* analyzer worker threads, NULL: its default */
    struct cli_symbols symbols;
};

struct cli_service {
    char data_dir[4096];
    char listen[256], analyzer_listen[256];
    char url[300];          /* http://HOST:PORT once up */
    char conninfo[1024];
    bool embedded, stopping;
    struct db_cluster *cluster;
    struct cli_child children[4];
    size_t nchildren;
};

/* Starts everything and waits until /healthz answers 200 (at most 60 s). 0 on success; on
 * failure everything started is stopped again and the reason printed. */
int cli_service_start(const struct cli_service_opts *o, struct cli_service *svc);
/* Restarts children that died (with backoff); call often. */
void cli_service_reap(struct cli_service *svc);
/* Supervises until SIGINT or SIGTERM. */
void cli_service_run(struct cli_service *svc);
bool cli_service_stopping(void);
/* Stops the daemons (SIGTERM, then SIGKILL after 20 s) and the embedded cluster. */
void cli_service_stop(struct cli_service *svc);

#endif
