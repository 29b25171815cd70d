#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

static sr_log_level log_min_level = SR_LOG_INFO;
static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

int sr_log_parse_level(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, log_level_names[i]) == 0) return i;
    return -1;
}

void sr_log_set_level(sr_log_level level) { log_min_level = level; }

int sr_log_enabled(sr_log_level level) { return level >= log_min_level; }

const char *sr_log_num(int64_t v) {
    static char ring[8][24];
    static unsigned next;
    char *slot = ring[next++ % 8];
    snprintf(slot, 24, "%s%lld", SR_LOG_NUM, (long long)v);
    return slot;
}

#define LOG_MAX_PAIRS 64

/* Whether v may be written unquoted: true, false, null or a JSON number. A "bare" value that is none of them
 * (an "inf" or "nan" from printf) is written as a string, so a line is always JSON. */
static int log_bare_json(const char *v) {
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0 || strcmp(v, "null") == 0) return 1;
    const char *p = v;
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9') p++;
    else
        return 0;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == '\0';
}

void sr_log(sr_log_level level, const char *msg, ...) {
    if (level < log_min_level) return;
    const char *pairs[2 * LOG_MAX_PAIRS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key || n >= 2 * LOG_MAX_PAIRS) break;
        pairs[n++] = key;
        const char *value = va_arg(ap, const char *);
        pairs[n++] = value ? value : "";
    }
    va_end(ap);
    pairs[n] = NULL;
    sr_log_pairs(level, msg, pairs);
}

void sr_log_pairs(sr_log_level level, const char *msg, const char *const *pairs) {
    if (level < log_min_level) return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

    sr_buf line;
    sr_buf_init(&line);
    sr_buf_puts(&line, "{\"ts\":\"");
    sr_buf_puts(&line, ts);
    sr_buf_puts(&line, "\",\"level\":\"");
    sr_buf_puts(&line, log_level_names[level]);
    sr_buf_puts(&line, "\",\"msg\":");
    sr_buf_json_str(&line, msg, strlen(msg));

    for (const char *const *p = pairs; p[0] && p[1]; p += 2) {
        const char *key = p[0];
        const char *value = p[1] ? p[1] : "";
        sr_buf_putc(&line, ',');
        sr_buf_json_str(&line, key, strlen(key));
        sr_buf_putc(&line, ':');
        if (value[0] == SR_LOG_NUM[0] && log_bare_json(value + 1)) sr_buf_puts(&line, value + 1);
        else if (value[0] == SR_LOG_NUM[0])
            sr_buf_json_str(&line, value + 1, strlen(value + 1));
        else
            sr_buf_json_str(&line, value, strlen(value));
    }
    sr_buf_puts(&line, "}\n");
    /* One write per line so lines from concurrent writers never interleave. */
    ssize_t off = 0;
    while ((size_t)off < line.len) {
        ssize_t n = write(STDERR_FILENO, line.data + off, line.len - (size_t)off);
        if (n <= 0) break;
        off += n;
    }
    sr_buf_free(&line);
}
