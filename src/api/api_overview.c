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

static void overview_time(sr_buf *b, const char *key, int64_t ms) {
    sr_buf_printf(b, "\"%s\":", key);
    if (ms <= 0) {
        sr_buf_puts(b, "null");
        return;
    }
    sr_buf t;
    sr_buf_init(&t);
    sr_time_rfc3339(ms, &t);
    sr_buf_json_str(b, t.data, t.len);
    sr_buf_free(&t);
}

static void overview_number(sr_buf *b, double v) {
    if (v < 0) sr_buf_puts(b, "null");
    else
        sr_buf_printf(b, "%.6g", v);
}

static void overview_minutes_json(sr_buf *b, int64_t now) {
    int64_t current = now / 60000;
    sr_buf_puts(b, "\"minutes\":[");
    for (int64_t m = current - OVERVIEW_MINUTES + 1; m <= current; m++) {
        const overview_minute *src = &ov.minutes[m % OVERVIEW_MINUTES];
        if (m != current - OVERVIEW_MINUTES + 1) sr_buf_putc(b, ',');
        sr_buf_putc(b, '{');
        overview_time(b, "at", m * 60000);
        for (int i = 0; i < SERIES_COUNT; i++)
            sr_buf_printf(b, ",\"%s\":%.0f", series_names[i], src->minute == m ? src->counts[i] : 0.0);
        sr_buf_putc(b, '}');
    }
    sr_buf_puts(b, "]");
}

/* Depth, and the oldest queued message (the first of the status index: ids sort by creation). */
static void overview_queue_json(sr_api *app, sr_buf *b, int64_t now) {
    int64_t depth = sr_store_queue_depth(app->store);
    char oldest[1][SR_ID_LEN + 1];
    int n = sr_store_list_status(app->store, SR_ST_QUEUED, NULL, oldest, 1);
    sr_buf_printf(b, "\"queue\":{\"depth\":%lld,\"oldest_id\":", (long long)(depth < 0 ? 0 : depth));
    sr_message m;
    int64_t created = 0;
    if (n == 1 && sr_store_get_message(app->store, oldest[0], &m) == 0) {
        created = m.created_at_ms;
        sr_message_free(&m);
        sr_buf_json_str(b, oldest[0], SR_ID_LEN);
    } else {
        sr_buf_puts(b, "null");
    }
    sr_buf_putc(b, ',');
    overview_time(b, "oldest_created_at", created);
    sr_buf_puts(b, ",\"oldest_age_s\":");
    overview_number(b, created ? (double)(now - created) / 1000.0 : -1);
    sr_buf_putc(b, '}');
}

static void overview_provider_json(sr_api *app, sr_buf *b, const sr_provider *p, int64_t now) {
    sr_buf_puts(b, "{\"name\":");
    sr_buf_json_str(b, p->name, strlen(p->name));
    sr_buf_puts(b, ",\"adapter\":");
    sr_buf_json_str(b, p->adapter, strlen(p->adapter));
    sr_lane_info li;
    if (sr_scheduler_lane_info(app->scheduler, p->name, now, &li) == 0)
        sr_buf_printf(b, ",\"circuit\":\"%s\",\"in_flight\":%d", li.circuit, li.in_flight);
    else
        sr_buf_puts(b, ",\"circuit\":\"closed\",\"in_flight\":0");
    sr_route_figures f;
    if (sr_route_stats_get(app->route_stats, p->name, -1, 1, now, &f) != 0) {
        /* Nothing measured yet: no ratio and no latency rather than zeros. */
        memset(&f, 0, sizeof f);
        f.delivered_ratio = f.report_latency_p50_ms = f.report_latency_p95_ms = -1;
    }
    sr_buf_printf(b, ",\"window\":\"15m\",\"attempts\":%llu,\"accepted\":%llu,\"delivered_ratio\":",
                  (unsigned long long)f.attempts, (unsigned long long)f.accepted);
    overview_number(b, f.delivered_ratio);
    sr_buf_puts(b, ",\"report_latency_p50_ms\":");
    overview_number(b, f.report_latency_p50_ms);
    sr_buf_puts(b, ",\"report_latency_p95_ms\":");
    overview_number(b, f.report_latency_p95_ms);
    sr_buf_putc(b, '}');
}

void sr_api_overview(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_admin(app, req)) return;
    int64_t now = sr_now_ms();
    if (ov.started) overview_sample(&ov.timer); /* the current minute up to now */
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_putc(&b, '{');
    overview_time(&b, "now", now);
    sr_buf_putc(&b, ',');
    overview_time(&b, "sampling_since", ov.since_ms);
    sr_buf_putc(&b, ',');
    overview_minutes_json(&b, now);
    sr_buf_putc(&b, ',');
    overview_queue_json(app, &b, now);
    sr_buf_puts(&b, ",\"providers\":[");
    sr_rules *r = app->rules;
    for (int i = 0; r && i < r->provider_count; i++) {
        if (i) sr_buf_putc(&b, ',');
        overview_provider_json(app, &b, &r->providers[i], now);
    }
    sr_buf_puts(&b, "],\"rules\":{\"path\":");
    if (r && r->path) sr_buf_json_str(&b, r->path, strlen(r->path));
    else
        sr_buf_puts(&b, "null");
    sr_buf_putc(&b, ',');
    overview_time(&b, "loaded_at", r ? r->loaded_at_ms : 0);
    sr_buf_printf(&b, ",\"load_ms\":%.3f}", r ? r->load_ms : 0.0);
    sr_store_stats st;
    sr_store_get_stats(app->store, &st);
    sr_buf_printf(&b, ",\"store\":{\"full\":%s,\"bytes_used\":%llu}}", sr_store_full(app->store) ? "true" : "false",
                  (unsigned long long)st.map_used);
    sr_http_respond(req, 200, "application/json", b.data, b.len, "Cache-Control: no-store\r\n");
    sr_buf_free(&b);
}
