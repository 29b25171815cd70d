/* log: structured logs, one JSON object per line on stderr.
 *
 * Every line carries "ts" (RFC 3339 UTC, milliseconds), "level" and "msg",
 * then the caller's fields. Fields are given as a NULL-terminated list of
 * key/value string pairs; values are written as JSON strings. Numeric fields
 * use sr_log_kv with SR_LOG_NUM to be written bare. Nothing secret may be
 * passed here: callers log names, never keys or tokens. */
#ifndef SR_LOG_H
#define SR_LOG_H

#include <stdint.h>

typedef enum { SR_LOG_DEBUG = 0, SR_LOG_INFO, SR_LOG_WARN, SR_LOG_ERROR } sr_log_level;

/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int sr_log_parse_level(const char *name);
void sr_log_set_level(sr_log_level level);
int sr_log_enabled(sr_log_level level);

/* sr_log(level, msg, "key", "value", ..., NULL). A value that starts with
 * the byte SR_LOG_NUM[0] is written unquoted (numbers, true/false) when the
 * rest is a JSON literal, else as a string ("inf", "nan"); use sr_log_num()
 * to build one. */
void sr_log(sr_log_level level, const char *msg, ...);
/* The same with the pairs in an array ending with NULL. */
void sr_log_pairs(sr_log_level level, const char *msg, const char *const *pairs);
#define SR_LOG_NUM "\x01"
/* Formats v as a number field value into a small static ring of buffers,
 * valid for the next 8 calls. */
const char *sr_log_num(int64_t v);

#define sr_debug(...) (sr_log_enabled(SR_LOG_DEBUG) ? sr_log(SR_LOG_DEBUG, __VA_ARGS__, (char *)0) : (void)0)
#define sr_info(...) sr_log(SR_LOG_INFO, __VA_ARGS__, (char *)0)
#define sr_warn(...) sr_log(SR_LOG_WARN, __VA_ARGS__, (char *)0)
#define sr_error(...) sr_log(SR_LOG_ERROR, __VA_ARGS__, (char *)0)

#endif
