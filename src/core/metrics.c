#include "core/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sr_metric *metrics_head;
static sr_metric **metrics_tail = &metrics_head;

static char *metrics_strdup(const char *s) {
    char *p = strdup(s ? s : "");
    if (!p) abort();
    return p;
}

/* Series are found by name + labels through a hash index, so code that
 * registers-or-finds a labelled series per event (webhooks by provider and
 * result, say) pays a hash, not a scan of every series. */
#define METRICS_INDEX_SIZE 1024
static sr_metric *metrics_index[METRICS_INDEX_SIZE];

static unsigned metrics_hash(const char *name, const char *labels) {
    /* name, a separator, labels */
    uint32_t h = sr_fnv1a_str(sr_fnv1a_str(SR_FNV1A_INIT, name), "\xff");
    return sr_fnv1a_str(h, labels) & (METRICS_INDEX_SIZE - 1);
}

static sr_metric *metrics_find(const char *name, const char *labels) {
    if (!labels) labels = "";
    for (sr_metric *m = metrics_index[metrics_hash(name, labels)]; m; m = m->hash_next)
        if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels) == 0) return m;
    return NULL;
}

static sr_metric *metrics_add(sr_metric_type type, const char *name, const char *help, const char *labels) {
    sr_metric *m = metrics_find(name, labels);
    if (m) return m;
    m = calloc(1, sizeof *m);
    if (!m) abort();
    m->type = type;
    m->name = metrics_strdup(name);
    m->help = metrics_strdup(help);
    m->labels = metrics_strdup(labels);
    /* Keep series of one name together so exposition writes HELP/TYPE once. */
    sr_metric **at = metrics_tail;
    for (sr_metric **p = &metrics_head; *p; p = &(*p)->next) {
        if (strcmp((*p)->name, name) == 0) {
            at = &(*p)->next;
            while (*at && strcmp((*at)->name, name) == 0) at = &(*at)->next;
            break;
        }
    }
    m->next = *at;
    *at = m;
    if (!m->next) metrics_tail = &m->next;
    unsigned h = metrics_hash(m->name, m->labels);
    m->hash_next = metrics_index[h];
    metrics_index[h] = m;
    return m;
}

sr_metric *sr_metric_counter(const char *name, const char *help, const char *labels) {
    return metrics_add(SR_METRIC_COUNTER, name, help, labels);
}

sr_metric *sr_metric_gauge(const char *name, const char *help, const char *labels) {
    return metrics_add(SR_METRIC_GAUGE, name, help, labels);
}

sr_metric *sr_metric_gauge_fn(const char *name, const char *help, const char *labels, double (*read)(void *),
                              void *ud) {
    sr_metric *m = metrics_add(SR_METRIC_GAUGE, name, help, labels);
    m->read = read;
    m->read_ud = ud;
    return m;
}

sr_metric *sr_metric_counter_fn(const char *name, const char *help, const char *labels, double (*read)(void *),
                                void *ud) {
    sr_metric *m = metrics_add(SR_METRIC_COUNTER, name, help, labels);
    m->read = read;
    m->read_ud = ud;
    return m;
}

sr_metric *sr_metric_histogram(const char *name, const char *help, const char *labels, const double *bounds,
                               int bound_count) {
    sr_metric *m = metrics_add(SR_METRIC_HISTOGRAM, name, help, labels);
    if (bound_count > SR_METRIC_MAX_BUCKETS) bound_count = SR_METRIC_MAX_BUCKETS;
    m->bucket_count = bound_count;
    memcpy(m->bounds, bounds, sizeof(double) * (size_t)bound_count);
    return m;
}

void sr_metric_observe(sr_metric *h, double v) {
    for (int i = 0; i < h->bucket_count; i++)
        if (v <= h->bounds[i]) h->buckets[i]++;
    h->count++;
    h->sum += v;
}

/* A small cache so the per-request counter costs a short scan, not a format. */
typedef struct http_series {
    const char *route; /* interned: routes are string literals */
    int status;
    sr_metric *metric;
} http_series;
static http_series http_cache[128];
static int http_cache_len;

void sr_metrics_http(const char *route, int status) {
    for (int i = 0; i < http_cache_len; i++) {
        if (http_cache[i].route == route && http_cache[i].status == status) {
            http_cache[i].metric->value++;
            return;
        }
    }
    char labels[160];
    snprintf(labels, sizeof labels, "route=\"%s\",code=\"%d\"", route, status);
    sr_metric *m =
        sr_metric_counter("smsrules_http_requests_total", "HTTP requests answered, by route and status code.", labels);
    m->value++;
    if (http_cache_len < (int)(sizeof http_cache / sizeof http_cache[0])) {
        http_cache[http_cache_len].route = route;
        http_cache[http_cache_len].status = status;
        http_cache[http_cache_len].metric = m;
        http_cache_len++;
    }
}

static void metrics_number(sr_buf *out, double v) {
    /* Range first: converting NaN or an infinity to an integer is undefined. */
    if (v < 9e15 && v > -9e15 && v == (double)(int64_t)v) sr_buf_put_i64(out, (int64_t)v);
    else if (isnan(v))
        sr_buf_puts(out, "NaN"); /* the exposition format's spellings */
    else if (isinf(v))
        sr_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else
        sr_buf_printf(out, "%.6g", v);
}

static void metrics_series(sr_buf *out, const char *name, const char *suffix, const char *labels,
                           const char *extra_label) {
    sr_buf_puts(out, name);
    sr_buf_puts(out, suffix);
    int has = labels[0] != '\0';
    if (has || extra_label) {
        sr_buf_putc(out, '{');
        sr_buf_puts(out, labels);
        if (extra_label) {
            if (has) sr_buf_putc(out, ',');
            sr_buf_puts(out, extra_label);
        }
        sr_buf_putc(out, '}');
    }
    sr_buf_putc(out, ' ');
}

void sr_metrics_write(sr_buf *out) {
    const char *last = NULL;
    for (sr_metric *m = metrics_head; m; m = m->next) {
        if (!last || strcmp(last, m->name) != 0) {
            static const char *const types[] = {"counter", "gauge", "histogram"};
            sr_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
            last = m->name;
        }
        if (m->type == SR_METRIC_HISTOGRAM) {
            char le[48];
            for (int i = 0; i < m->bucket_count; i++) {
                snprintf(le, sizeof le, "le=\"%g\"", m->bounds[i]);
                metrics_series(out, m->name, "_bucket", m->labels, le);
                sr_buf_put_u64(out, m->buckets[i]);
                sr_buf_putc(out, '\n');
            }
            metrics_series(out, m->name, "_bucket", m->labels, "le=\"+Inf\"");
            sr_buf_put_u64(out, m->count);
            sr_buf_putc(out, '\n');
            metrics_series(out, m->name, "_sum", m->labels, NULL);
            metrics_number(out, m->sum);
            sr_buf_putc(out, '\n');
            metrics_series(out, m->name, "_count", m->labels, NULL);
            sr_buf_put_u64(out, m->count);
            sr_buf_putc(out, '\n');
        } else {
            metrics_series(out, m->name, "", m->labels, NULL);
            metrics_number(out, m->read ? m->read(m->read_ud) : m->value);
            sr_buf_putc(out, '\n');
        }
    }
}

void sr_metrics_reset(void) {
    sr_metric *m = metrics_head;
    while (m) {
        sr_metric *next = m->next;
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m);
        m = next;
    }
    metrics_head = NULL;
    metrics_tail = &metrics_head;
    memset(metrics_index, 0, sizeof metrics_index);
    http_cache_len = 0;
}

double sr_metrics_sum(const char *name, const char *label_part) {
    double sum = 0;
    for (sr_metric *m = metrics_head; m; m = m->next) {
        if (m->type == SR_METRIC_HISTOGRAM || strcmp(m->name, name) != 0) continue;
        if (label_part && !strstr(m->labels, label_part)) continue;
        sum += m->read ? m->read(m->read_ud) : m->value;
    }
    return sum;
}
