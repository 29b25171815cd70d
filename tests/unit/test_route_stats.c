/* Tests of the live route statistics: windows sliding on a controlled clock,
 * pending and report latency, percentiles within a bin's error, the country
 * cap ("other", slots given up after 24 h of silence), bounded memory, the
 * cost of an event, and the JSON and Prometheus outputs. */
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <ftw.h>
#include <uv.h>

#include "core/buf.h"
#include "core/log.h"
#include "model/message.h"
#include "codec/phone.h"
#include "delivery/route_stats_rebuild.h"
#include "model/route_stats.h"
#include "rules/rules.h"
#include "store/store.h"
#include "unit.h"

/* A time aligned to every bucket width (5 s ... 1 h). */
#define T0 (3600000LL * 500000)
#define SEC 1000LL
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)

enum { W1M = 0, W15M, W1H, W24H };

static sr_route_figures get(sr_route_stats *rs, const char *p, int country, int w, int64_t now) {
    sr_route_figures f;
    sr_route_stats_get(rs, p, country, w, now, &f);
    return f;
}

static void near(double actual, double expected, double rel, const char *what) {
    if (!(fabs(actual - expected) <= rel * expected))
        UNIT_FAIL("%s: %g, expected %g within %g%%", what, actual, expected, rel * 100);
}

TEST(windows_slide_with_the_clock) {
    sr_route_stats *rs = sr_route_stats_new();
    sr_route_stats_add_attempt(rs, "a", 84, T0, SR_RS_ACCEPTED, 100, 0.5);
    for (int w = 0; w < SR_ROUTE_STATS_WINDOWS; w++) CHECK_INT(get(rs, "a", 84, w, T0).attempts, 1);
    /* The 1m window keeps it 55 to 60 s (buckets of 5 s), the others a window's length. */
    CHECK_INT(get(rs, "a", 84, W1M, T0 + 59 * SEC).attempts, 1);
    CHECK_INT(get(rs, "a", 84, W1M, T0 + 60 * SEC).attempts, 0);
    CHECK_INT(get(rs, "a", 84, W15M, T0 + 14 * MINUTE + 59 * SEC).attempts, 1);
    CHECK_INT(get(rs, "a", 84, W15M, T0 + 15 * MINUTE).attempts, 0);
    CHECK_INT(get(rs, "a", 84, W1H, T0 + 59 * MINUTE).attempts, 1);
    CHECK_INT(get(rs, "a", 84, W1H, T0 + 60 * MINUTE).attempts, 0);
    CHECK_INT(get(rs, "a", 84, W24H, T0 + 23 * HOUR).attempts, 1);
    CHECK_INT(get(rs, "a", 84, W24H, T0 + 24 * HOUR).attempts, 0);
    /* An event a minute later lands in the same ring slot: the old bucket is emptied first. */
    sr_route_stats_add_attempt(rs, "a", 84, T0 + 60 * SEC, SR_RS_ERR_RETRYABLE, 100, 0);
    sr_route_figures f = get(rs, "a", 84, W1M, T0 + 60 * SEC);
    CHECK_INT(f.attempts, 1);
    CHECK_INT(f.accepted, 0);
    CHECK_INT(f.errors[SR_RS_ERR_RETRYABLE], 1);
    f = get(rs, "a", 84, W15M, T0 + 60 * SEC);
    CHECK_INT(f.attempts, 2);
    CHECK_INT(f.accepted, 1);
    near(f.cost_total, 0.5, 1e-9, "cost");
    /* An event older than what a ring holds now counts only in the wider windows. */
    sr_route_stats_add_attempt(rs, "a", 84, T0 - 2 * MINUTE, SR_RS_ERR_TIMEOUT, 100, 0);
    CHECK_INT(get(rs, "a", 84, W1M, T0 + 60 * SEC).errors[SR_RS_ERR_TIMEOUT], 0);
    CHECK_INT(get(rs, "a", 84, W15M, T0 + 60 * SEC).errors[SR_RS_ERR_TIMEOUT], 1);
    /* "all" counts every country; an unknown provider or country reads as zeros. */
    sr_route_stats_add_attempt(rs, "a", 7, T0 + 60 * SEC, SR_RS_ERR_PERMANENT_MESSAGE, 100, 0);
    CHECK_INT(get(rs, "a", -1, W15M, T0 + 60 * SEC).attempts, 4);
    CHECK_INT(get(rs, "a", 7, W15M, T0 + 60 * SEC).attempts, 1);
    CHECK_INT(get(rs, "a", 44, W15M, T0 + 60 * SEC).attempts, 0);
    CHECK_INT(get(rs, "b", -1, W15M, T0 + 60 * SEC).attempts, 0);
    CHECK_INT(sr_route_stats_get(rs, "b", -1, W15M, T0, &f), -1);
    sr_route_stats_free(rs);
}

TEST(reports_pending_ratio_and_latency) {
    sr_route_stats *rs = sr_route_stats_new();
    for (int i = 0; i < 4; i++) sr_route_stats_add_attempt(rs, "a", 84, T0, SR_RS_ACCEPTED, 80, 0.02);
    sr_route_figures f = get(rs, "a", 84, W15M, T0);
    CHECK_INT(f.pending, 4);
    CHECK(f.delivered_ratio < 0); /* no final report yet: not measured */
    CHECK(f.cost_per_delivered < 0);
    CHECK(f.report_latency_p50_ms < 0);
    sr_route_stats_add_report(rs, "a", 84, T0 + 10 * SEC, SR_RS_DELIVERED, T0);
    sr_route_stats_add_report(rs, "a", 84, T0 + 10 * SEC, SR_RS_DELIVERED, T0);
    sr_route_stats_add_report(rs, "a", 84, T0 + 20 * SEC, SR_RS_UNDELIVERED, T0);
    f = get(rs, "a", 84, W15M, T0 + 20 * SEC);
    CHECK_INT(f.reports[SR_RS_DELIVERED], 2);
    CHECK_INT(f.reports[SR_RS_UNDELIVERED], 1);
    CHECK_INT(f.pending, 1);
    near(f.delivered_ratio, 2.0 / 3.0, 1e-9, "delivered_ratio");
    near(f.cost_total, 0.08, 1e-9, "cost_total");
    near(f.cost_per_delivered, 0.04, 1e-9, "cost_per_delivered");
    near(f.report_latency_p50_ms, 10000, 0.13, "report p50");
    near(f.report_latency_p95_ms, 20000, 0.13, "report p95");
    near(f.send_latency_p50_ms, 80, 0.13, "send p50");
    /* The 1m window: the acceptance (and its pending) left at T0 + 60 s; the reports are newer. */
    f = get(rs, "a", 84, W1M, T0 + 62 * SEC);
    CHECK_INT(f.accepted, 0);
    CHECK_INT(f.pending, 0);
    CHECK_INT(f.reports[SR_RS_UNDELIVERED], 1);
    sr_route_stats_free(rs);
}

TEST(percentiles_within_a_bin) {
    sr_route_stats *rs = sr_route_stats_new();
    /* 1..2000 ms, evenly: p50 = 1000, p95 = 1900. */
    for (int i = 1; i <= 2000; i++) sr_route_stats_add_attempt(rs, "a", 1, T0 + i, SR_RS_ACCEPTED, i, 0);
    /* Reports with latencies 1 s .. 100 s: p50 = 50 s, p95 = 95 s. */
    for (int i = 1; i <= 100; i++) sr_route_stats_add_report(rs, "a", 1, T0 + i * SEC, SR_RS_DELIVERED, T0);
    sr_route_figures f = get(rs, "a", 1, W15M, T0 + 100 * SEC);
    near(f.send_latency_p50_ms, 1000, 0.13, "send p50");
    near(f.send_latency_p95_ms, 1900, 0.13, "send p95");
    near(f.report_latency_p50_ms, 50000, 0.13, "report p50");
    near(f.report_latency_p95_ms, 95000, 0.13, "report p95");
    /* Buckets merge: the same figures over the 24h window. */
    sr_route_figures g = get(rs, "a", 1, W24H, T0 + 100 * SEC);
    near(g.send_latency_p95_ms, f.send_latency_p95_ms, 1e-9, "merged");
    sr_route_stats_free(rs);
}

static size_t heap_used(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

TEST(bounded_memory_with_1000_countries) {
    sr_route_stats *rs = sr_route_stats_new();
    size_t before = heap_used();
    for (int round = 0; round < 3; round++)
        for (int c = 1; c <= 1000; c++) sr_route_stats_add_attempt(rs, "a", c, T0 + round * SEC, SR_RS_ACCEPTED, 50, 0);
    size_t grown = heap_used() - before;
    /* 32 countries, "other" and "all": 34 slots of about 45 KB. */
    if (grown > 34 * 48 * 1024) UNIT_FAIL("grew by %zu bytes", grown);
    int codes[64];
    int n = sr_route_stats_countries(rs, "a", T0, codes, 64);
    CHECK_INT(n, SR_ROUTE_STATS_COUNTRIES + 1);
    CHECK_INT(codes[n - 1], 0); /* "other" last */
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) sum += get(rs, "a", codes[i], W1H, T0 + 10 * SEC).attempts;
    CHECK_INT(sum, 3000);
    CHECK_INT(get(rs, "a", 0, W1H, T0 + 10 * SEC).attempts, 3 * (1000 - SR_ROUTE_STATS_COUNTRIES));
    /* A country past the cap reads as "other", where its events went. */
    CHECK_INT(get(rs, "a", 999, W1H, T0 + 10 * SEC).attempts, 3 * (1000 - SR_ROUTE_STATS_COUNTRIES));
    /* More events in the same countries allocate nothing. */
    size_t mid = heap_used();
    for (int c = 1; c <= 1000; c++) sr_route_stats_add_attempt(rs, "a", c, T0 + 5 * SEC, SR_RS_ACCEPTED, 50, 0);
    CHECK_INT(heap_used(), mid);
    /* After 24 h of silence a slot goes to a new country. */
    sr_route_stats_add_attempt(rs, "a", 1001, T0 + 25 * HOUR, SR_RS_ACCEPTED, 50, 0);
    CHECK_INT(get(rs, "a", 1001, W1H, T0 + 25 * HOUR).attempts, 1);
    CHECK_INT(heap_used(), mid);
    /* Providers are capped too. */
    char name[16];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "p%d", i);
        sr_route_stats_add_attempt(rs, name, 84, T0, SR_RS_ACCEPTED, 50, 0);
    }
    const char *names[128];
    CHECK_INT(sr_route_stats_providers(rs, names, 128), SR_ROUTE_STATS_PROVIDERS);
    sr_route_stats_free(rs);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(constant_cost_per_event) {
    /* The cost of an event does not grow with the number of countries or events: time 200k events spread
     * over 1 country and over 1000 (the slowest case: a miss scans the 32 slots, then "other"). */
    double per_event[2];
    int spread[2] = {1, 1000};
    for (int k = 0; k < 2; k++) {
        sr_route_stats *rs = sr_route_stats_new();
        double t = now_s();
        for (int i = 0; i < 200000; i++) {
            int c = 1 + i % spread[k];
            int64_t at = T0 + i; /* 200 s of traffic: every ring turns over */
            sr_route_stats_add_attempt(rs, "a", c, at, SR_RS_ACCEPTED, i % 5000, 0.01);
            sr_route_stats_add_report(rs, "a", c, at, SR_RS_DELIVERED, at - 3000);
        }
        per_event[k] = (now_s() - t) / 400000.0;
        sr_route_stats_free(rs);
    }
    printf("route_stats: %.0f ns per event (1 country), %.0f ns (1000 countries)\n", per_event[0] * 1e9,
           per_event[1] * 1e9);
    /* A query (what sms.stats does: the four windows) merges the buckets of each window. */
    sr_route_stats *rs = sr_route_stats_new();
    for (int i = 0; i < 100000; i++)
        sr_route_stats_add_attempt(rs, "a", 84, T0 + (int64_t)i * 800, SR_RS_ACCEPTED, i % 5000, 0.01);
    double t = now_s();
    uint64_t seen = 0;
    for (int i = 0; i < 2000; i++)
        for (int w = 0; w < SR_ROUTE_STATS_WINDOWS; w++) seen += get(rs, "a", 84, w, T0 + 80000 * SEC).attempts;
    double per_query = (now_s() - t) / 2000.0;
    sr_route_stats_free(rs);
    CHECK(seen > 0);
    printf("route_stats: %.1f us per query of the four windows\n", per_query * 1e6);
    /* Generous bounds for a loaded machine under sanitizers: what matters is no growth with n. */
    CHECK(per_event[0] < 20e-6);
    CHECK(per_event[1] < 20e-6);
}

TEST(country_of_a_number) {
    CHECK_INT(sr_phone_calling_code("+84912345678"), 84);
    CHECK_INT(sr_phone_calling_code("+14155551234"), 1);
    CHECK_INT(sr_phone_calling_code("+79161234567"), 7);
    CHECK_INT(sr_phone_calling_code("+447400123456"), 44);
    CHECK_INT(sr_phone_calling_code("+380501234567"), 380);
    CHECK_INT(sr_phone_calling_code("+80012345678"), 800);
    CHECK_INT(sr_phone_calling_code("84912345678"), 0);
    CHECK_INT(sr_phone_calling_code("+"), 0);
    CHECK_INT(sr_phone_calling_code(NULL), 0);
}

TEST(attempts_and_reports_from_messages) {
    sr_message m;
    sr_message_init(&m);
    sr_message_set_str(&m.to, "+84912345678");
    m.segments = 2;
    sr_attempt *a = sr_message_add_attempt(&m, "a", T0);
    sr_message_set_str(&a->outcome, "retry");
    a->http_status = 503;
    a->duration_ms = 40;
    a = sr_message_add_attempt(&m, "a", T0 + SEC);
    sr_message_set_str(&a->outcome, "retry");
    a->http_status = 0; /* no answer */
    a->duration_ms = 5000;
    a = sr_message_add_attempt(&m, "b", T0 + 10 * SEC);
    sr_message_set_str(&a->outcome, "failed");
    a->http_status = 401;
    a = sr_message_add_attempt(&m, "c", T0 + 11 * SEC);
    sr_message_set_str(&a->outcome, "rejected");
    a->http_status = 400;
    a = sr_message_add_attempt(&m, "d", T0 + 12 * SEC);
    sr_message_set_str(&a->outcome, "sent");
    a->duration_ms = 100;
    sr_message_set_str(&a->report, "delivered");
    a->reported_at_ms = T0 + 42 * SEC + 100;
    a = sr_message_add_attempt(&m, "d", T0 + 13 * SEC);
    sr_message_set_str(&a->outcome, "sending"); /* not answered: not counted */

    sr_route_stats *rs = sr_route_stats_new();
    for (int i = 0; i < m.attempt_count; i++) {
        sr_route_stats_on_attempt(rs, &m, i, 0.05);
        sr_route_stats_on_report(rs, &m, i, T0 + HOUR);
    }
    int64_t now = T0 + MINUTE;
    sr_route_figures f = get(rs, "a", 84, W15M, now);
    CHECK_INT(f.attempts, 2);
    CHECK_INT(f.errors[SR_RS_ERR_RETRYABLE], 1);
    CHECK_INT(f.errors[SR_RS_ERR_TIMEOUT], 1);
    CHECK_INT(get(rs, "b", 84, W15M, now).errors[SR_RS_ERR_PERMANENT_PROVIDER], 1);
    CHECK_INT(get(rs, "c", 84, W15M, now).errors[SR_RS_ERR_PERMANENT_MESSAGE], 1);
    f = get(rs, "d", 84, W15M, now);
    CHECK_INT(f.attempts, 1);
    CHECK_INT(f.reports[SR_RS_DELIVERED], 1);
    CHECK_INT(f.pending, 0);
    near(f.cost_total, 0.10, 1e-9, "cost of 2 segments");
    near(f.report_latency_p50_ms, 30000, 0.13, "sent (answer) to report");
    sr_route_stats_free(rs);
    sr_message_free(&m);
}

TEST(json_and_metrics) {
    sr_route_stats *rs = sr_route_stats_new();
    int counts[3] = {30, 20, 10};
    int codes[3] = {84, 7, 1};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < counts[k]; i++) {
            sr_route_stats_add_attempt(rs, "budget", codes[k], T0, SR_RS_ACCEPTED, 100, 0.01);
            sr_route_stats_add_report(rs, "budget", codes[k], T0 + 2 * SEC, i % 2 ? SR_RS_UNDELIVERED : SR_RS_DELIVERED,
                                      T0);
        }
    sr_buf out;
    sr_buf_init(&out);
    sr_route_stats_json(rs, T0 + 5 * SEC, &out);
    sr_buf_putc(&out, '\0');
    CHECK(strstr(out.data, "{\"providers\":{\"budget\":{\"countries\":{\"84\":{\"1m\":{\"attempts\":30,") != NULL);
    CHECK(strstr(out.data, "\"all\":{\"1m\":{\"attempts\":60,\"accepted\":60,") != NULL);
    CHECK(strstr(out.data, "\"delivered_ratio\":0.5,") != NULL);
    sr_buf_free(&out);
    sr_buf_init(&out);
    sr_route_stats_metrics(rs, T0 + 5 * SEC, 1, &out);
    sr_buf_putc(&out, '\0');
    CHECK(strstr(out.data, "smsrules_route_delivered_ratio{provider=\"budget\",country=\"84\",window=\"15m\"} 0.5\n"));
    CHECK(
        strstr(out.data, "smsrules_route_delivered_ratio{provider=\"budget\",country=\"other\",window=\"15m\"} 0.5\n"));
    CHECK(strstr(out.data, "smsrules_route_delivered_ratio{provider=\"budget\",country=\"all\",window=\"15m\"} 0.5\n"));
    CHECK(strstr(out.data, "country=\"7\"") == NULL); /* beyond the top 1: in "other" */
    CHECK(strstr(out.data,
                 "smsrules_route_report_latency_seconds{provider=\"budget\",country=\"other\",quantile=\"0.95\"} "));
    sr_buf_free(&out);
    sr_route_stats_free(rs);
}

/* ---- rebuilt from the store ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) { return remove(path); }

static void on_unit_done(sr_store_txn *t, void *ud) { *(int *)ud = sr_store_txn_status(t) == 0 ? 1 : -1; }

/* A message created at created_ms to country cc: a 503 then an acceptance on "a", or (every third) a
 * rejection by "b", then reports: delivered, undelivered, or none. */
static void rebuild_message(sr_message *m, int i, int64_t created_ms) {
    static const char *const to[] = {"+84912345678", "+79161234567", "+14155551234"};
    sr_message_init(m);
    sr_id_new(m->id, created_ms);
    sr_message_set_str(&m->to, to[i % 3]);
    sr_message_set_str(&m->text, "Your code is 1234");
    m->segments = 1 + i % 2;
    m->created_at_ms = created_ms;
    m->validity_s = 3600;
    m->expires_at_ms = created_ms + 3600 * 1000;
    sr_message_set_status(m, SR_ST_ACCEPTED, created_ms);
    if (i % 3 == 2) {
        sr_attempt *a = sr_message_add_attempt(m, "b", created_ms + 5);
        sr_message_set_str(&a->outcome, "rejected");
        a->http_status = 400;
        a->duration_ms = 20 + i % 50;
        sr_message_set_status(m, SR_ST_FAILED, created_ms + 30);
        return;
    }
    sr_attempt *a = sr_message_add_attempt(m, "a", created_ms + 5);
    sr_message_set_str(&a->outcome, "retry");
    a->http_status = 503;
    a->duration_ms = 10 + i % 30;
    a = sr_message_add_attempt(m, "a", created_ms + 1005);
    sr_message_set_str(&a->outcome, "sent");
    a->http_status = 200;
    a->duration_ms = 30 + i % 200;
    sr_message_set_str(&a->provider_id, "p");
    if (i % 7 != 0) {
        sr_message_set_str(&a->report, i % 5 ? "delivered" : "undelivered");
        a->reported_at_ms = created_ms + 2000 + (i % 90) * 1000;
    }
    sr_message_set_status(m, SR_ST_SENT, created_ms + 1100);
}

TEST(rebuilt_from_the_store_as_counted_live) {
    int n = getenv("ROUTE_STATS_REBUILD_N") ? atoi(getenv("ROUTE_STATS_REBUILD_N")) : 20000;
    char dir[64];
    strcpy(dir, "/tmp/sr_route_stats_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    sr_store_options opt = {.dir = dir, .no_sync = 1, .map_size = 64u << 20};
    sr_store *store = NULL;
    char err[256];
    CHECK_INT(sr_store_open(&store, &loop, &opt, err, sizeof err), 0);

    const int64_t now = T0 + 30 * HOUR;
    sr_route_stats *live = sr_route_stats_new();
    /* One message from before the 24 h: neither counted live here nor read back. */
    sr_message m;
    rebuild_message(&m, 0, now - 25 * HOUR);
    sr_store_txn *t = sr_store_txn_new(store);
    sr_store_txn_put_message(t, &m, NULL, 0);
    sr_message_free(&m);
    for (int i = 0; i < n; i++) {
        /* Spread over the last 2 hours, oldest first. */
        int64_t created = now - 2 * HOUR + (int64_t)i * (2 * HOUR - 100 * SEC) / n;
        rebuild_message(&m, i, created);
        for (int k = 0; k < m.attempt_count; k++) {
            sr_route_stats_on_attempt(live, &m, k, m.attempts[k].provider[0] == 'a' ? 0.02 : 0.5);
            sr_route_stats_on_report(live, &m, k, now);
        }
        sr_store_txn_put_message(t, &m, NULL, 0);
        sr_message_free(&m);
        if ((i + 1) % 1000 == 0 || i == n - 1) {
            int done = 0;
            sr_store_txn_submit(t, on_unit_done, &done);
            while (!done) uv_run(&loop, UV_RUN_ONCE);
            CHECK_INT(done, 1);
            t = i == n - 1 ? NULL : sr_store_txn_new(store);
        }
    }

    /* Rules for the costs: the providers' `cost` options. */
    static sr_rules rules;
    rules.provider_count = 2;
    rules.providers[0].name = (char *)"a";
    rules.providers[0].cost = 0.02;
    rules.providers[1].name = (char *)"b";
    rules.providers[1].cost = 0.5;
    sr_route_stats *rebuilt = sr_route_stats_new();
    sr_log_set_level(SR_LOG_WARN); /* its info line would mix with the runner's output */
    double t0 = now_s();
    int read = sr_route_stats_rebuild(rebuilt, store, &rules, now, 1000000);
    double took = now_s() - t0;
    printf("route_stats: rebuilt from %d messages in %.1f ms (%.2f us per message)\n", read, took * 1e3,
           took * 1e6 / read);
    CHECK_INT(read, n + 1); /* the old one is read, and ends the scan */

    const char *providers[] = {"a", "b"};
    int countries[] = {84, 7, 1, -1};
    for (int p = 0; p < 2; p++)
        for (int c = 0; c < 4; c++)
            for (int w = 0; w < SR_ROUTE_STATS_WINDOWS; w++) {
                sr_route_figures a = get(live, providers[p], countries[c], w, now);
                sr_route_figures b = get(rebuilt, providers[p], countries[c], w, now);
                /* Sums of costs in another order may differ in the last bits. */
                CHECK(fabs(a.cost_total - b.cost_total) <= 1e-9 * a.cost_total);
                CHECK(fabs(a.cost_per_delivered - b.cost_per_delivered) <= 1e-9 * fabs(a.cost_per_delivered));
                b.cost_total = a.cost_total;
                b.cost_per_delivered = a.cost_per_delivered;
                if (memcmp(&a, &b, sizeof a) != 0)
                    UNIT_FAIL("%s/%d/%s: %llu attempts, %llu delivered, %llu pending live; %llu, %llu, %llu rebuilt",
                              providers[p], countries[c], sr_route_stats_window_names[w],
                              (unsigned long long)a.attempts, (unsigned long long)a.reports[0],
                              (unsigned long long)a.pending, (unsigned long long)b.attempts,
                              (unsigned long long)b.reports[0], (unsigned long long)b.pending);
            }
    sr_route_figures all = get(rebuilt, "a", -1, W24H, now);
    CHECK_INT(all.accepted, n - n / 3);
    CHECK(all.delivered_ratio > 0.7 && all.delivered_ratio < 0.9);
    CHECK_INT(get(rebuilt, "b", -1, W24H, now).errors[SR_RS_ERR_PERMANENT_MESSAGE], n / 3);
    /* A bound on the scan keeps the newest. */
    sr_route_stats *bounded = sr_route_stats_new();
    CHECK_INT(sr_route_stats_rebuild(bounded, store, &rules, now, 100), 100);
    CHECK(get(bounded, "a", -1, W24H, now).attempts > 0);
    CHECK_INT(get(bounded, "a", -1, W24H, now).attempts, get(bounded, "a", -1, W15M, now).attempts);

    sr_route_stats_free(bounded);
    sr_route_stats_free(rebuilt);
    sr_route_stats_free(live);
    sr_store_close(store);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
