/* metrics: counters, gauges and histograms, exposed in Prometheus text format.
 *
 * A metric series is registered once (name, help, label set) and returns a
 * pointer that the hot path increments directly: no lookup per event.
 * Registering a series again returns the same pointer for the cost of a hash
 * lookup, so per-event code with variable labels may call it each time.
 * Series with the same name are written together under one HELP/TYPE.
 * Registered series live until sr_metrics_reset. Loop thread only. */
#ifndef SR_METRICS_H
#define SR_METRICS_H

#include <stdint.h>

#include "core/buf.h"

typedef enum { SR_METRIC_COUNTER, SR_METRIC_GAUGE, SR_METRIC_HISTOGRAM } sr_metric_type;

#define SR_METRIC_MAX_BUCKETS 16

typedef struct sr_metric {
    sr_metric_type type;
    char *name;
    char *help;
    char *labels;             /* `provider="a",route="b"` or "" */
    double value;             /* counter / gauge */
    double (*read)(void *ud); /* gauge read at exposition when set */
    void *read_ud;
    int bucket_count;
    double bounds[SR_METRIC_MAX_BUCKETS];
    uint64_t buckets[SR_METRIC_MAX_BUCKETS];
    uint64_t count;
    double sum;
    struct sr_metric *next;
    struct sr_metric *hash_next; /* chain of the name+labels index */
} sr_metric;

/* Returns the series (the same pointer when already registered). labels may be NULL. */
sr_metric *sr_metric_counter(const char *name, const char *help, const char *labels);
sr_metric *sr_metric_gauge(const char *name, const char *help, const char *labels);
sr_metric *sr_metric_gauge_fn(const char *name, const char *help, const char *labels, double (*read)(void *), void *ud);
/* A counter whose value read(ud) gives when the metrics are written. */
sr_metric *sr_metric_counter_fn(const char *name, const char *help, const char *labels, double (*read)(void *),
                                void *ud);
/* bounds ascending, at most SR_METRIC_MAX_BUCKETS (+Inf is implied). */
sr_metric *sr_metric_histogram(const char *name, const char *help, const char *labels, const double *bounds,
                               int bound_count);
void sr_metric_observe(sr_metric *h, double v);

/* Counts an HTTP answer: smsrules_http_requests_total{route,code}. */
void sr_metrics_http(const char *route, int status);

/* The sum of the values of every counter or gauge series named name whose labels contain
 * label_part (NULL: all of them), e.g. `kind="inbound"`. 0 when none. */
double sr_metrics_sum(const char *name, const char *label_part);
void sr_metrics_write(sr_buf *out);
void sr_metrics_reset(void);

#endif
