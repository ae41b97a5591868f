/* cm_log.c -- timestamped single-line logging to stderr. */
#include "common/cm_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum cm_log_level min_level = CM_LOG_INFO;
static const char *prog = "triage";

void cm_log_set_level(enum cm_log_level level) { min_level = level; }
void cm_log_set_name(const char *program) { prog = program; }

enum cm_log_level cm_log_level_parse(const char *name)
{
    return !strcmp(name, "debug") ? CM_LOG_DEBUG
           : !strcmp(name, "warn") ? CM_LOG_WARN
           : !strcmp(name, "error") ? CM_LOG_ERROR
                                    : CM_LOG_INFO;
}

void cm_log(enum cm_log_level level, const char *fmt, ...)
{
    static const char *const names[] = { "debug", "info", "warn", "error" };
    if (level < min_level)
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, prog, names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line); /* one write per line keeps lines whole across threads */
}

char *cm_log_escape(const char *s, size_t slen, char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (n == 0)
        return out;
    for (size_t i = 0; s && i < slen && s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            if (o + 1 >= n)
                break;
            out[o++] = (char)ch;
        } else {
            if (o + 4 >= n)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = 0;
    return out;
}
