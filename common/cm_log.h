/* cm_log.h -- one line per event, key=value context, to stderr. Code that decides logs; code
 * that computes returns a cm_err. User-supplied strings go through cm_log_escape first. */
#ifndef TRIAGE_CM_LOG_H
#define TRIAGE_CM_LOG_H

#include <stddef.h> /* size_t */

enum cm_log_level { CM_LOG_DEBUG, CM_LOG_INFO, CM_LOG_WARN, CM_LOG_ERROR };

void cm_log_set_level(enum cm_log_level level);
/* "debug", "info", "warn", "error" -> the level; anything else is info. */
enum cm_log_level cm_log_level_parse(const char *name);
void cm_log_set_name(const char *program); /* prefix of every line */
void cm_log(enum cm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies s into out (size n, always terminated) with control bytes and non-ASCII escaped as
 * \xNN, so input cannot forge log lines or terminal sequences. Returns out. */
char *cm_log_escape(const char *s, size_t slen, char *out, size_t n);

#endif
