/* api_overview: GET /v1/overview — what the console's first page shows: the
 * last 30 minutes minute by minute (messages accepted, sent, delivered,
 * undelivered, failed, retried, expired, rejected; inbound SMS; webhooks),
 * the queue (depth and oldest queued message), each provider's circuit,
 * requests in flight and route quality over 15 minutes, the store and the
 * rules loaded.
 *
 * The per-minute series come from a sampler: every few seconds it reads the
 * daemon's own counters (sr_metrics_sum) and the final reports the route
 * statistics counted, and adds what grew since its last look to the current
 * minute's bucket; "accepted" is the count of message ids created in that
 * span (a key-only walk of the store, no record decoded). So the series start
 * when the daemon starts and cost O(1) per sample whatever the store holds;
 * nothing is scanned when the page asks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api_console.h"
#include "codec/jsonw.h"
#include "core/metrics.h"
#include "model/route_stats.h"
#include "delivery/scheduler.h"
#include "model/message.h"
#include "store/store.h"

#define OVERVIEW_SAMPLE_MS 5000
#define OVERVIEW_MINUTES 30
/* Ids carry the time they were made, before their commit: count a span only once it is this old. */
#define OVERVIEW_COMMIT_LAG_MS 2000

enum {
    SERIES_ACCEPTED,    /* new message ids in the store */
    SERIES_DELIVERED,   /* final reports, from the route statistics */
    SERIES_UNDELIVERED, /* final reports undelivered, expired or rejected by the network */
    SERIES_SENT,        /* the rest from counters (series_metrics) */
    SERIES_FAILED,
    SERIES_RETRIED,
    SERIES_EXPIRED,
    SERIES_REJECTED,
    SERIES_INBOUND,
    SERIES_WEBHOOKS,
    SERIES_COUNT
};
#define SERIES_FIRST_METRIC SERIES_SENT

static const char *const series_names[SERIES_COUNT] = {"accepted", "delivered", "undelivered", "sent",    "failed",
                                                       "retried",  "expired",   "rejected",    "inbound", "webhooks"};

/* The counters behind the series from SERIES_FIRST_METRIC on (name, labels part or NULL). */
static const struct {
    const char *metric;
    const char *labels;
} series_metrics[SERIES_COUNT] = {
    [SERIES_SENT] = {"smsrules_provider_sent_total", NULL},
    [SERIES_FAILED] = {"smsrules_provider_failed_total", NULL},
    [SERIES_RETRIED] = {"smsrules_provider_retried_total", NULL},
    [SERIES_EXPIRED] = {"smsrules_messages_expired_total", NULL},
    [SERIES_REJECTED] = {"smsrules_messages_rejected_total", NULL},
    [SERIES_INBOUND] = {"smsrules_inbound_total", NULL},
    [SERIES_WEBHOOKS] = {"smsrules_webhooks_total", NULL},
};

typedef struct overview_minute {
    int64_t minute; /* ms / 60000 */
    double counts[SERIES_COUNT];
} overview_minute;

static struct {
    sr_api *app;
    uv_timer_t timer;
    int started;
    int64_t since_ms;          /* first sample */
    int64_t counted_until_ms;  /* ids created before this are counted in "accepted" */
    double last[SERIES_COUNT]; /* counter values at the last sample */
    overview_minute minutes[OVERVIEW_MINUTES];
} ov;

static overview_minute *overview_bucket(int64_t minute) {
    overview_minute *b = &ov.minutes[minute % OVERVIEW_MINUTES];
    if (b->minute != minute) {
        memset(b, 0, sizeof *b);
        b->minute = minute;
    }
    return b;
}

/* The cumulative values behind every series but "accepted". */
static void overview_read(sr_api *app, double values[SERIES_COUNT]) {
    uint64_t reports[SR_RS_REPORT_COUNT];
    sr_route_stats_report_totals(app->route_stats, reports);
    values[SERIES_ACCEPTED] = 0;
    values[SERIES_DELIVERED] = (double)reports[SR_RS_DELIVERED];
    values[SERIES_UNDELIVERED] =
        (double)(reports[SR_RS_UNDELIVERED] + reports[SR_RS_EXPIRED] + reports[SR_RS_REJECTED]);
    for (int i = SERIES_FIRST_METRIC; i < SERIES_COUNT; i++)
        values[i] = sr_metrics_sum(series_metrics[i].metric, series_metrics[i].labels);
}

static void overview_sample(uv_timer_t *t) {
    sr_api *app = ov.app;
    int64_t now = sr_now_ms();
    overview_minute *b = overview_bucket(now / 60000);
    double now_values[SERIES_COUNT];
    overview_read(app, now_values);
    for (int i = SERIES_ACCEPTED + 1; i < SERIES_COUNT; i++) {
        if (now_values[i] > ov.last[i]) b->counts[i] += now_values[i] - ov.last[i];
        ov.last[i] = now_values[i];
    }
    int64_t until = now - OVERVIEW_COMMIT_LAG_MS;
    if (app->store && until > ov.counted_until_ms) {
        int64_t created = sr_store_count_messages(app->store, ov.counted_until_ms, until, 1000000);
        if (created > 0) b->counts[SERIES_ACCEPTED] += (double)created;
        if (created >= 0) ov.counted_until_ms = until;
    }
}

void sr_api_overview_start(sr_api *app) {
    memset(&ov, 0, sizeof ov);
    ov.app = app;
    ov.since_ms = sr_now_ms();
    ov.counted_until_ms = ov.since_ms - OVERVIEW_COMMIT_LAG_MS;
    overview_read(app, ov.last);
    uv_timer_init(app->loop, &ov.timer);
    uv_unref((uv_handle_t *)&ov.timer);
    uv_timer_start(&ov.timer, overview_sample, OVERVIEW_SAMPLE_MS, OVERVIEW_SAMPLE_MS);
    ov.started = 1;
}

/* A time member: RFC 3339, or null when there is none (ms <= 0). */
static void overview_time(sr_jw *w, const char *key, int64_t ms) {
    if (ms <= 0) {
        sr_jw_field_null(w, key);
        return;
    }
    sr_buf t;
    sr_buf_init(&t);
    sr_time_rfc3339(ms, &t);
    sr_jw_field_strn(w, key, t.data ? t.data : "", t.len);
    sr_buf_free(&t);
}

/* A figure member: null when not measured (negative), else 6 significant digits. */
static void overview_number(sr_jw *w, const char *key, double v) {
    sr_jw_key(w, key);
    if (v < 0) sr_jw_null(w);
    else
        sr_jw_double_fmt(w, "%.6g", v);
}

static void overview_minutes_json(sr_jw *w, int64_t now) {
    int64_t current = now / 60000;
    sr_jw_key(w, "minutes");
    sr_jw_array_begin(w);
    for (int64_t m = current - OVERVIEW_MINUTES + 1; m <= current; m++) {
        const overview_minute *src = &ov.minutes[m % OVERVIEW_MINUTES];
        sr_jw_object_begin(w);
        overview_time(w, "at", m * 60000);
        for (int i = 0; i < SERIES_COUNT; i++) {
            sr_jw_key(w, series_names[i]);
            sr_jw_double_fmt(w, "%.0f", src->minute == m ? src->counts[i] : 0.0); /* counts: whole numbers */
        }
        sr_jw_object_end(w);
    }
    sr_jw_array_end(w);
}

/* Depth, and the oldest queued message (the first of the status index: ids sort by creation). */
static void overview_queue_json(sr_api *app, sr_jw *w, int64_t now) {
    int64_t depth = sr_store_queue_depth(app->store);
    char oldest[1][SR_ID_LEN + 1];
    int n = sr_store_list_status(app->store, SR_ST_QUEUED, NULL, oldest, 1);
    sr_jw_key(w, "queue");
    sr_jw_object_begin(w);
    sr_jw_field_int(w, "depth", depth < 0 ? 0 : depth);
    sr_message m;
    int64_t created = 0;
    if (n == 1 && sr_store_get_message(app->store, oldest[0], &m) == 0) {
        created = m.created_at_ms;
        sr_message_free(&m);
        sr_jw_field_strn(w, "oldest_id", oldest[0], SR_ID_LEN);
    } else {
        sr_jw_field_null(w, "oldest_id");
    }
    overview_time(w, "oldest_created_at", created);
    overview_number(w, "oldest_age_s", created ? (double)(now - created) / 1000.0 : -1);
    sr_jw_object_end(w);
}

static void overview_provider_json(sr_api *app, sr_jw *w, const sr_provider *p, int64_t now) {
    sr_jw_object_begin(w);
    sr_jw_field_str(w, "name", p->name);
    sr_jw_field_str(w, "adapter", p->adapter);
    sr_lane_info li;
    int known = sr_scheduler_lane_info(app->scheduler, p->name, now, &li) == 0;
    sr_jw_field_str(w, "circuit", known ? li.circuit : "closed");
    sr_jw_field_int(w, "in_flight", known ? li.in_flight : 0);
    sr_route_figures f;
    if (sr_route_stats_get(app->route_stats, p->name, -1, 1, now, &f) != 0) {
        /* Nothing measured yet: no ratio and no latency rather than zeros. */
        memset(&f, 0, sizeof f);
        f.delivered_ratio = f.report_latency_p50_ms = f.report_latency_p95_ms = -1;
    }
    sr_jw_field_str(w, "window", "15m");
    sr_jw_field_uint(w, "attempts", f.attempts);
    sr_jw_field_uint(w, "accepted", f.accepted);
    overview_number(w, "delivered_ratio", f.delivered_ratio);
    overview_number(w, "report_latency_p50_ms", f.report_latency_p50_ms);
    overview_number(w, "report_latency_p95_ms", f.report_latency_p95_ms);
    sr_jw_object_end(w);
}

/* The rules loaded (path null without a rules file) and the store. */
static void overview_rules_store_json(sr_api *app, sr_jw *w) {
    sr_rules *r = app->rules;
    sr_jw_key(w, "rules");
    sr_jw_object_begin(w);
    sr_jw_field_str(w, "path", r ? r->path : NULL);
    overview_time(w, "loaded_at", r ? r->loaded_at_ms : 0);
    sr_jw_key(w, "load_ms");
    sr_jw_double_fmt(w, "%.3f", r ? r->load_ms : 0.0);
    sr_jw_object_end(w);
    sr_store_stats st;
    sr_store_get_stats(app->store, &st);
    sr_jw_key(w, "store");
    sr_jw_object_begin(w);
    sr_jw_field_bool(w, "full", sr_store_full(app->store));
    sr_jw_field_uint(w, "bytes_used", st.map_used);
    sr_jw_object_end(w);
}

void sr_api_overview(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_admin(app, req)) return;
    int64_t now = sr_now_ms();
    if (ov.started) overview_sample(&ov.timer); /* the current minute up to now */
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    overview_time(&w, "now", now);
    overview_time(&w, "sampling_since", ov.since_ms);
    overview_minutes_json(&w, now);
    overview_queue_json(app, &w, now);
    sr_jw_key(&w, "providers");
    sr_jw_array_begin(&w);
    sr_rules *r = app->rules;
    for (int i = 0; r && i < r->provider_count; i++) overview_provider_json(app, &w, &r->providers[i], now);
    sr_jw_array_end(&w);
    overview_rules_store_json(app, &w);
    sr_jw_object_end(&w);
    sr_http_respond(req, 200, "application/json", b.data, b.len, "Cache-Control: no-store\r\n");
    sr_buf_free(&b);
}
