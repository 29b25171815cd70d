#include "model/route_stats.h"
#include "core/buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "codec/jsonw.h"
#include "codec/phone.h"

const char *const sr_route_stats_window_names[SR_ROUTE_STATS_WINDOWS] = {"1m", "15m", "1h", "24h"};

/* The rings: bucket width and count of each window; offset of its first bucket in a slot. */
static const struct {
    int64_t width_ms;
    int n;
    int offset;
} rs_windows[SR_ROUTE_STATS_WINDOWS] = {
    {5000, 12, 0},
    {60000, 15, 12},
    {300000, 12, 27},
    {3600000, 24, 39},
};
#define RS_BUCKETS 63
#define RS_DAY_MS (24 * 3600 * 1000LL)
#define RS_EMPTY INT64_MIN

typedef struct rs_bucket {
    int64_t epoch; /* at_ms / width_ms of what it holds; RS_EMPTY: nothing */
    uint32_t accepted;
    uint32_t errors[SR_RS_CLASS_COUNT];
    uint32_t reports[SR_RS_REPORT_COUNT];
    uint32_t pending;
    double cost;
    uint32_t send_hist[SR_ROUTE_STATS_BINS];
    uint32_t report_hist[SR_ROUTE_STATS_BINS];
} rs_bucket;

typedef struct rs_slot {
    int country;     /* calling code; 0: "other"; -1: all countries */
    int64_t last_ms; /* the latest event it holds */
    rs_bucket b[RS_BUCKETS];
} rs_slot;

typedef struct rs_provider {
    char name[72];
    rs_slot *all;
    rs_slot *countries[SR_ROUTE_STATS_COUNTRIES];
    rs_slot *other;
} rs_provider;

struct sr_route_stats {
    rs_provider *providers[SR_ROUTE_STATS_PROVIDERS];
    int provider_count;
    uint64_t report_totals[SR_RS_REPORT_COUNT]; /* every final report counted since creation */
};

/* A window's figures being summed: like a bucket, wider. */
typedef struct rs_acc {
    uint64_t accepted;
    uint64_t errors[SR_RS_CLASS_COUNT];
    uint64_t reports[SR_RS_REPORT_COUNT];
    uint64_t pending;
    double cost;
    uint64_t send_hist[SR_ROUTE_STATS_BINS];
    uint64_t report_hist[SR_ROUTE_STATS_BINS];
} rs_acc;

_Static_assert(RS_BUCKETS == 12 + 15 + 12 + 24, "rings");

sr_route_stats *sr_route_stats_new(void) {
    sr_route_stats *rs = calloc(1, sizeof *rs);
    if (!rs) abort();
    return rs;
}

void sr_route_stats_free(sr_route_stats *rs) {
    if (!rs) return;
    for (int i = 0; i < rs->provider_count; i++) {
        rs_provider *p = rs->providers[i];
        free(p->all);
        free(p->other);
        for (int c = 0; c < SR_ROUTE_STATS_COUNTRIES; c++) free(p->countries[c]);
        free(p);
    }
    free(rs);
}

/* ---- countries ---- */

/* Calling codes seen: 0 not looked up, 1 a code, 2 not one. The lookup goes to libphonenumber once per
 * code. */
/* ---- slots ---- */

static rs_slot *rs_slot_new(int country) {
    rs_slot *s = malloc(sizeof *s);
    if (!s) abort();
    s->country = country;
    s->last_ms = RS_EMPTY;
    for (int i = 0; i < RS_BUCKETS; i++) s->b[i].epoch = RS_EMPTY;
    return s;
}

static rs_provider *rs_find_provider(const sr_route_stats *rs, const char *name) {
    for (int i = 0; i < rs->provider_count; i++)
        if (strcmp(rs->providers[i]->name, name) == 0) return rs->providers[i];
    return NULL;
}

static rs_provider *rs_get_provider(sr_route_stats *rs, const char *name) {
    rs_provider *p = rs_find_provider(rs, name);
    if (p || rs->provider_count == SR_ROUTE_STATS_PROVIDERS || strlen(name) >= sizeof p->name) return p;
    p = calloc(1, sizeof *p);
    if (!p) abort();
    sr_str_copy(p->name, sizeof p->name, name);
    p->all = rs_slot_new(-1);
    rs->providers[rs->provider_count++] = p;
    return p;
}

/* The slot of a country for reading: its own, "other" when it has none (country 0 asks for "other"). */
static rs_slot *rs_find_country(rs_provider *p, int country) {
    if (country < 0) return p->all;
    if (country == 0) return p->other;
    int full = 1;
    for (int i = 0; i < SR_ROUTE_STATS_COUNTRIES; i++) {
        if (!p->countries[i]) full = 0;
        else if (p->countries[i]->country == country)
            return p->countries[i];
    }
    /* Not tracked: with every slot taken its events went to "other"; else there were none. */
    return full ? p->other : NULL;
}

/* The slot of a country for an event at at_ms: its own, a free one, one silent for 24 h, or "other". */
static rs_slot *rs_get_country(rs_provider *p, int country, int64_t at_ms) {
    if (country <= 0) goto other;
    int free_i = -1, stale_i = -1;
    for (int i = 0; i < SR_ROUTE_STATS_COUNTRIES; i++) {
        rs_slot *s = p->countries[i];
        if (!s) {
            if (free_i < 0) free_i = i;
        } else if (s->country == country) {
            return s;
        } else if (stale_i < 0 && s->last_ms <= at_ms - RS_DAY_MS) {
            stale_i = i;
        }
    }
    if (free_i >= 0) return p->countries[free_i] = rs_slot_new(country);
    if (stale_i >= 0) {
        rs_slot *s = p->countries[stale_i];
        s->country = country;
        s->last_ms = RS_EMPTY;
        for (int i = 0; i < RS_BUCKETS; i++) s->b[i].epoch = RS_EMPTY;
        return s;
    }
other:
    if (!p->other) p->other = rs_slot_new(0);
    return p->other;
}

static int64_t rs_epoch(int64_t at_ms, int w) {
    if (at_ms < 0) at_ms = 0;
    return at_ms / rs_windows[w].width_ms;
}

/* The bucket of window w for an event at at_ms (emptied when it held an older time), or NULL when the ring
 * has moved past that time already (the event is out of the window). */
static rs_bucket *rs_bucket_for(rs_slot *s, int w, int64_t at_ms) {
    int64_t e = rs_epoch(at_ms, w);
    rs_bucket *b = &s->b[rs_windows[w].offset + (int)(e % rs_windows[w].n)];
    if (b->epoch == e) return b;
    if (b->epoch != RS_EMPTY && b->epoch > e) return NULL;
    memset(b, 0, sizeof *b);
    b->epoch = e;
    return b;
}

static int rs_bin(double ms) {
    if (!(ms >= 1.0)) return 0;
    int i = 1 + (int)floor(3.0 * log2(ms));
    return i >= SR_ROUTE_STATS_BINS ? SR_ROUTE_STATS_BINS - 1 : i;
}

/* A value to stand for bin i: the geometric middle of its range. */
static double rs_bin_value(int i) {
    if (i <= 0) return 0;
    if (i >= SR_ROUTE_STATS_BINS - 1) return exp2((SR_ROUTE_STATS_BINS - 2) / 3.0);
    return exp2((i - 0.5) / 3.0);
}

/* ---- events ---- */

static void rs_slot_attempt(rs_slot *s, int64_t at_ms, sr_route_stats_class cls, int bin, double cost) {
    if (at_ms > s->last_ms) s->last_ms = at_ms;
    for (int w = 0; w < SR_ROUTE_STATS_WINDOWS; w++) {
        rs_bucket *b = rs_bucket_for(s, w, at_ms);
        if (!b) continue;
        if (cls == SR_RS_ACCEPTED) {
            b->accepted++;
            b->pending++;
            b->cost += cost;
        } else {
            b->errors[cls]++;
        }
        b->send_hist[bin]++;
    }
}

void sr_route_stats_add_attempt(sr_route_stats *rs, const char *provider, int country, int64_t at_ms,
                                sr_route_stats_class cls, int64_t duration_ms, double cost) {
    if (!rs || !provider || cls < 0 || cls >= SR_RS_CLASS_COUNT) return;
    rs_provider *p = rs_get_provider(rs, provider);
    if (!p) return;
    int bin = rs_bin((double)duration_ms);
    rs_slot_attempt(rs_get_country(p, country, at_ms), at_ms, cls, bin, cost);
    rs_slot_attempt(p->all, at_ms, cls, bin, cost);
}

static void rs_slot_report(rs_slot *s, int64_t at_ms, int report, int64_t sent_at_ms, int bin) {
    if (at_ms > s->last_ms) s->last_ms = at_ms;
    for (int w = 0; w < SR_ROUTE_STATS_WINDOWS; w++) {
        rs_bucket *b = rs_bucket_for(s, w, at_ms);
        if (b) {
            b->reports[report]++;
            if (bin >= 0) b->report_hist[bin]++;
        }
        if (sent_at_ms > 0) {
            /* No longer pending, where its acceptance was counted (when that bucket still holds it). */
            int64_t e = rs_epoch(sent_at_ms, w);
            rs_bucket *sb = &s->b[rs_windows[w].offset + (int)(e % rs_windows[w].n)];
            if (sb->epoch == e && sb->pending > 0) sb->pending--;
        }
    }
}

void sr_route_stats_add_report(sr_route_stats *rs, const char *provider, int country, int64_t at_ms, int report,
                               int64_t sent_at_ms) {
    if (!rs || !provider || report < 0 || report >= SR_RS_REPORT_COUNT) return;
    rs->report_totals[report]++;
    rs_provider *p = rs_get_provider(rs, provider);
    if (!p) return;
    int bin = sent_at_ms > 0 ? rs_bin((double)(at_ms > sent_at_ms ? at_ms - sent_at_ms : 0)) : -1;
    rs_slot_report(rs_get_country(p, country, at_ms), at_ms, report, sent_at_ms, bin);
    rs_slot_report(p->all, at_ms, report, sent_at_ms, bin);
}

int sr_route_stats_attempt_class(const sr_attempt *a) {
    if (!a->outcome) return -1;
    /* The scheduler's words (sched_decide): "sent"; "retry" (retryable, or retries exhausted); "failed"
     * (a refusal about the provider itself); "rejected" (about the message). No HTTP answer at all is a
     * timeout or a connection that failed. */
    if (strcmp(a->outcome, "sent") == 0) return SR_RS_ACCEPTED;
    if (strcmp(a->outcome, "retry") == 0) return a->http_status == 0 ? SR_RS_ERR_TIMEOUT : SR_RS_ERR_RETRYABLE;
    if (strcmp(a->outcome, "failed") == 0) return SR_RS_ERR_PERMANENT_PROVIDER;
    if (strcmp(a->outcome, "rejected") == 0) return SR_RS_ERR_PERMANENT_MESSAGE;
    return -1;
}

void sr_route_stats_on_attempt(sr_route_stats *rs, const sr_message *m, int ai, double cost_per_segment) {
    if (!rs || ai < 0 || ai >= m->attempt_count) return;
    const sr_attempt *a = &m->attempts[ai];
    int cls = sr_route_stats_attempt_class(a);
    if (cls < 0 || !a->provider) return;
    double cost = cls == SR_RS_ACCEPTED ? cost_per_segment * (m->segments > 0 ? m->segments : 1) : 0;
    sr_route_stats_add_attempt(rs, a->provider, sr_phone_calling_code(m->to), a->started_at_ms + a->duration_ms,
                               (sr_route_stats_class)cls, a->duration_ms, cost);
}

int sr_route_stats_report_of(const char *status) {
    switch (status ? sr_status_parse(status) : -1) {
    case SR_ST_DELIVERED: return SR_RS_DELIVERED;
    case SR_ST_UNDELIVERED:
    case SR_ST_FAILED: return SR_RS_UNDELIVERED;
    case SR_ST_EXPIRED: return SR_RS_EXPIRED;
    case SR_ST_REJECTED: return SR_RS_REJECTED;
    default: return -1;
    }
}

void sr_route_stats_on_report(sr_route_stats *rs, const sr_message *m, int ai, int64_t now_ms) {
    if (!rs || ai < 0 || ai >= m->attempt_count) return;
    const sr_attempt *a = &m->attempts[ai];
    int rep = sr_route_stats_report_of(a->report);
    if (rep < 0 || !a->provider) return;
    int64_t sent = a->started_at_ms + a->duration_ms;
    int64_t at = a->reported_at_ms > 0 ? a->reported_at_ms : now_ms;
    if (at > now_ms) at = now_ms;
    if (at < sent) at = sent;
    sr_route_stats_add_report(rs, a->provider, sr_phone_calling_code(m->to), at, rep, sent);
}

/* ---- queries ---- */

static void rs_acc_slot(rs_acc *acc, const rs_slot *s, int w, int64_t now_ms, int sign) {
    if (!s) return;
    int64_t cur = rs_epoch(now_ms, w);
    int n = rs_windows[w].n;
    for (int i = 0; i < n; i++) {
        const rs_bucket *b = &s->b[rs_windows[w].offset + i];
        if (b->epoch == RS_EMPTY || b->epoch > cur || b->epoch <= cur - n) continue;
        /* sign -1 takes a part back out of a sum it is in (for "other" in the metrics): counts stay whole. */
        acc->accepted += (uint64_t)(sign * (int64_t)b->accepted);
        for (int k = 0; k < SR_RS_CLASS_COUNT; k++) acc->errors[k] += (uint64_t)(sign * (int64_t)b->errors[k]);
        for (int k = 0; k < SR_RS_REPORT_COUNT; k++) acc->reports[k] += (uint64_t)(sign * (int64_t)b->reports[k]);
        acc->pending += (uint64_t)(sign * (int64_t)b->pending);
        acc->cost += sign * b->cost;
        for (int k = 0; k < SR_ROUTE_STATS_BINS; k++) {
            acc->send_hist[k] += (uint64_t)(sign * (int64_t)b->send_hist[k]);
            acc->report_hist[k] += (uint64_t)(sign * (int64_t)b->report_hist[k]);
        }
    }
}

static double rs_percentile(const uint64_t *hist, double q) {
    uint64_t total = 0;
    for (int i = 0; i < SR_ROUTE_STATS_BINS; i++) total += hist[i];
    if (total == 0) return -1;
    uint64_t rank = (uint64_t)ceil(q * (double)total), seen = 0;
    if (rank < 1) rank = 1;
    for (int i = 0; i < SR_ROUTE_STATS_BINS; i++) {
        seen += hist[i];
        if (seen >= rank) return rs_bin_value(i);
    }
    return rs_bin_value(SR_ROUTE_STATS_BINS - 1);
}

static void rs_figures(const rs_acc *acc, sr_route_figures *f) {
    memset(f, 0, sizeof *f);
    f->accepted = acc->accepted;
    f->attempts = acc->accepted;
    for (int k = 1; k < SR_RS_CLASS_COUNT; k++) {
        f->errors[k] = acc->errors[k];
        f->attempts += acc->errors[k];
    }
    uint64_t finals = 0;
    for (int k = 0; k < SR_RS_REPORT_COUNT; k++) {
        f->reports[k] = acc->reports[k];
        finals += acc->reports[k];
    }
    f->pending = acc->pending;
    f->delivered_ratio = finals ? (double)acc->reports[SR_RS_DELIVERED] / (double)finals : -1;
    f->report_latency_p50_ms = rs_percentile(acc->report_hist, 0.50);
    f->report_latency_p95_ms = rs_percentile(acc->report_hist, 0.95);
    f->send_latency_p50_ms = rs_percentile(acc->send_hist, 0.50);
    f->send_latency_p95_ms = rs_percentile(acc->send_hist, 0.95);
    f->cost_total = acc->cost;
    f->cost_per_delivered = acc->reports[SR_RS_DELIVERED] ? acc->cost / (double)acc->reports[SR_RS_DELIVERED] : -1;
}

int sr_route_stats_get(sr_route_stats *rs, const char *provider, int country, int w, int64_t now_ms,
                       sr_route_figures *out) {
    rs_acc acc;
    memset(&acc, 0, sizeof acc);
    rs_provider *p = rs && provider ? rs_find_provider(rs, provider) : NULL;
    rs_slot *s = p ? rs_find_country(p, country) : NULL;
    if (s && w >= 0 && w < SR_ROUTE_STATS_WINDOWS) rs_acc_slot(&acc, s, w, now_ms, 1);
    rs_figures(&acc, out);
    return s ? 0 : -1;
}

int sr_route_stats_providers(sr_route_stats *rs, const char **names, int max) {
    int n = 0;
    for (int i = 0; rs && i < rs->provider_count && n < max; i++) names[n++] = rs->providers[i]->name;
    return n;
}

static uint64_t rs_volume(const rs_slot *s, int64_t now_ms) {
    int w = SR_ROUTE_STATS_WINDOWS - 1;
    int64_t cur = rs_epoch(now_ms, w);
    uint64_t v = 0;
    for (int i = 0; i < rs_windows[w].n; i++) {
        const rs_bucket *b = &s->b[rs_windows[w].offset + i];
        if (b->epoch == RS_EMPTY || b->epoch > cur || b->epoch <= cur - rs_windows[w].n) continue;
        v += b->accepted;
        for (int k = 0; k < SR_RS_CLASS_COUNT; k++) v += b->errors[k];
        for (int k = 0; k < SR_RS_REPORT_COUNT; k++) v += b->reports[k];
    }
    return v;
}

/* Countries of p with anything in 24 h, most volume first (0 for "other" last). */
static int rs_ranked(rs_provider *p, int64_t now_ms, rs_slot **out, int max) {
    uint64_t vol[SR_ROUTE_STATS_COUNTRIES];
    int n = 0;
    for (int i = 0; i < SR_ROUTE_STATS_COUNTRIES; i++) {
        rs_slot *s = p->countries[i];
        uint64_t v = s ? rs_volume(s, now_ms) : 0;
        if (!v) continue;
        int k = n++;
        while (k > 0 && (vol[k - 1] < v || (vol[k - 1] == v && out[k - 1]->country > s->country))) {
            vol[k] = vol[k - 1];
            out[k] = out[k - 1];
            k--;
        }
        vol[k] = v;
        out[k] = s;
    }
    if (n > max) n = max;
    return n;
}

int sr_route_stats_countries(sr_route_stats *rs, const char *provider, int64_t now_ms, int *codes, int max) {
    rs_provider *p = rs && provider ? rs_find_provider(rs, provider) : NULL;
    if (!p) return 0;
    rs_slot *ranked[SR_ROUTE_STATS_COUNTRIES];
    int n = rs_ranked(p, now_ms, ranked, max);
    for (int i = 0; i < n; i++) codes[i] = ranked[i]->country;
    if (p->other && n < max && rs_volume(p->other, now_ms)) codes[n++] = 0;
    return n;
}

/* ---- output ---- */

/* A figure that may be unknown: null when negative or not finite. */
static void rs_json_num(sr_jw *w, const char *key, double v) {
    sr_jw_key(w, key);
    if (v < 0) sr_jw_null(w);
    else
        sr_jw_double_fmt(w, "%.6g", v);
}

/* {"p50", "p95"} of a latency. */
static void rs_json_latency(sr_jw *w, const char *key, double p50, double p95) {
    sr_jw_key(w, key);
    sr_jw_object_begin(w);
    rs_json_num(w, "p50", p50);
    rs_json_num(w, "p95", p95);
    sr_jw_object_end(w);
}

static void rs_json_figures(sr_jw *w, const sr_route_figures *f) {
    sr_jw_object_begin(w);
    sr_jw_field_uint(w, "attempts", f->attempts);
    sr_jw_field_uint(w, "accepted", f->accepted);
    sr_jw_key(w, "errors");
    sr_jw_object_begin(w);
    sr_jw_field_uint(w, "retryable", f->errors[SR_RS_ERR_RETRYABLE]);
    sr_jw_field_uint(w, "permanent_message", f->errors[SR_RS_ERR_PERMANENT_MESSAGE]);
    sr_jw_field_uint(w, "permanent_provider", f->errors[SR_RS_ERR_PERMANENT_PROVIDER]);
    sr_jw_field_uint(w, "timeout", f->errors[SR_RS_ERR_TIMEOUT]);
    sr_jw_object_end(w);
    sr_jw_field_uint(w, "delivered", f->reports[SR_RS_DELIVERED]);
    sr_jw_field_uint(w, "undelivered", f->reports[SR_RS_UNDELIVERED]);
    sr_jw_field_uint(w, "expired", f->reports[SR_RS_EXPIRED]);
    sr_jw_field_uint(w, "rejected", f->reports[SR_RS_REJECTED]);
    sr_jw_field_uint(w, "pending", f->pending);
    rs_json_num(w, "delivered_ratio", f->delivered_ratio);
    rs_json_latency(w, "report_latency_ms", f->report_latency_p50_ms, f->report_latency_p95_ms);
    rs_json_latency(w, "send_latency_ms", f->send_latency_p50_ms, f->send_latency_p95_ms);
    sr_jw_key(w, "cost_total");
    sr_jw_double_fmt(w, "%.6g", f->cost_total);
    rs_json_num(w, "cost_per_delivered", f->cost_per_delivered);
    sr_jw_object_end(w);
}

static void rs_json_windows(sr_jw *w, const rs_slot *s, int64_t now_ms) {
    sr_jw_object_begin(w);
    for (int win = 0; win < SR_ROUTE_STATS_WINDOWS; win++) {
        rs_acc acc;
        memset(&acc, 0, sizeof acc);
        rs_acc_slot(&acc, s, win, now_ms, 1);
        sr_route_figures f;
        rs_figures(&acc, &f);
        sr_jw_key(w, sr_route_stats_window_names[win]);
        rs_json_figures(w, &f);
    }
    sr_jw_object_end(w);
}

void sr_route_stats_json(sr_route_stats *rs, int64_t now_ms, sr_buf *out) {
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "providers");
    sr_jw_object_begin(&w);
    for (int i = 0; rs && i < rs->provider_count; i++) {
        rs_provider *p = rs->providers[i];
        sr_jw_key(&w, p->name);
        sr_jw_object_begin(&w);
        sr_jw_key(&w, "countries");
        sr_jw_object_begin(&w);
        rs_slot *ranked[SR_ROUTE_STATS_COUNTRIES];
        int n = rs_ranked(p, now_ms, ranked, SR_ROUTE_STATS_COUNTRIES);
        for (int k = 0; k < n; k++) {
            char code[16];
            snprintf(code, sizeof code, "%d", ranked[k]->country);
            sr_jw_key(&w, code);
            rs_json_windows(&w, ranked[k], now_ms);
        }
        if (p->other && rs_volume(p->other, now_ms)) {
            sr_jw_key(&w, "other");
            rs_json_windows(&w, p->other, now_ms);
        }
        sr_jw_object_end(&w);
        sr_jw_key(&w, "all");
        rs_json_windows(&w, p->all, now_ms);
        sr_jw_object_end(&w);
    }
    sr_jw_object_end(&w);
    sr_jw_object_end(&w);
    sr_buf_putc(out, '\n');
}

typedef struct rs_series {
    char country[16];
    sr_route_figures f;
} rs_series;

/* Fills ps (room for top_n + 2) with the figures of provider p in window w: "all", its top_n countries by
 * volume, then "other" when it has anything. Returns how many it filled. */
static int rs_metrics_series(rs_provider *p, int64_t now_ms, int w, int top_n, rs_series *ps) {
    int count = 0;
    rs_slot *ranked[SR_ROUTE_STATS_COUNTRIES];
    int n = rs_ranked(p, now_ms, ranked, top_n);
    rs_acc all, other;
    memset(&all, 0, sizeof all);
    rs_acc_slot(&all, p->all, w, now_ms, 1);
    rs_figures(&all, &ps[count].f);
    snprintf(ps[count++].country, sizeof ps->country, "all");
    /* "other": everything of the provider but its top countries (exact, since "all" counts every event
     * its countries count). */
    other = all;
    for (int k = 0; k < n; k++) {
        rs_acc one;
        memset(&one, 0, sizeof one);
        rs_acc_slot(&one, ranked[k], w, now_ms, 1);
        rs_figures(&one, &ps[count].f);
        snprintf(ps[count++].country, sizeof ps->country, "%d", ranked[k]->country);
        rs_acc_slot(&other, ranked[k], w, now_ms, -1);
    }
    rs_figures(&other, &ps[count].f);
    if (ps[count].f.attempts || ps[count].f.pending || ps[count].f.delivered_ratio >= 0)
        snprintf(ps[count++].country, sizeof ps->country, "other");
    return count;
}

void sr_route_stats_metrics(sr_route_stats *rs, int64_t now_ms, int top_n, sr_buf *out) {
    if (!rs || rs->provider_count == 0) return;
    const int w = 1; /* 15m */
    if (top_n > SR_ROUTE_STATS_COUNTRIES) top_n = SR_ROUTE_STATS_COUNTRIES;
    rs_series *series = calloc((size_t)rs->provider_count * (size_t)(top_n + 2), sizeof *series);
    int *count = calloc((size_t)rs->provider_count, sizeof *count);
    if (!series || !count) abort();
    for (int i = 0; i < rs->provider_count; i++)
        count[i] = rs_metrics_series(rs->providers[i], now_ms, w, top_n, series + (size_t)i * (size_t)(top_n + 2));
    sr_buf_puts(out, "# HELP smsrules_route_delivered_ratio Delivered share of the final delivery reports, per "
                     "provider and destination country (top countries by volume, the rest as other).\n"
                     "# TYPE smsrules_route_delivered_ratio gauge\n");
    for (int i = 0; i < rs->provider_count; i++) {
        rs_series *ps = series + (size_t)i * (size_t)(top_n + 2);
        for (int k = 0; k < count[i]; k++) {
            if (ps[k].f.delivered_ratio < 0) continue;
            sr_buf_puts(out, "smsrules_route_delivered_ratio{provider=");
            sr_buf_json_str(out, rs->providers[i]->name, strlen(rs->providers[i]->name));
            sr_buf_printf(out, ",country=\"%s\",window=\"%s\"} %.6g\n", ps[k].country, sr_route_stats_window_names[w],
                          ps[k].f.delivered_ratio);
        }
    }
    sr_buf_puts(out, "# HELP smsrules_route_report_latency_seconds Time from sent to the final delivery report over "
                     "the last 15 minutes, per provider and destination country.\n"
                     "# TYPE smsrules_route_report_latency_seconds gauge\n");
    for (int i = 0; i < rs->provider_count; i++) {
        rs_series *ps = series + (size_t)i * (size_t)(top_n + 2);
        for (int k = 0; k < count[i]; k++) {
            double q[2] = {ps[k].f.report_latency_p50_ms, ps[k].f.report_latency_p95_ms};
            const char *qn[2] = {"0.5", "0.95"};
            for (int j = 0; j < 2; j++) {
                if (q[j] < 0) continue;
                sr_buf_puts(out, "smsrules_route_report_latency_seconds{provider=");
                sr_buf_json_str(out, rs->providers[i]->name, strlen(rs->providers[i]->name));
                sr_buf_printf(out, ",country=\"%s\",quantile=\"%s\"} %.6g\n", ps[k].country, qn[j], q[j] / 1000.0);
            }
        }
    }
    free(series);
    free(count);
}

void sr_route_stats_report_totals(const sr_route_stats *rs, uint64_t out[SR_RS_REPORT_COUNT]) {
    for (int i = 0; i < SR_RS_REPORT_COUNT; i++) out[i] = rs ? rs->report_totals[i] : 0;
}
