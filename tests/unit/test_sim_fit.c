/* Unit tests for src/tools/sim/sim_fit.c (models fit, durations) and the read-only store it reads through
 * (sr_store_options.read_only, sr_store_scan_messages). Messages are made by hand with known
 * attempts, reports and costs, so every fitted figure has an exact expected value. */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "codec/json.h"
#include "model/message.h"
#include "tools/sim/sim_fit.h"
#include "store/store.h"
#include "unit.h"

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

TEST(fit_parses_durations) {
    int64_t ms = 0;
    CHECK_INT(sr_sim_parse_duration("7d", &ms), 0);
    CHECK_INT(ms, 7LL * 86400 * 1000);
    CHECK_INT(sr_sim_parse_duration("12h", &ms), 0);
    CHECK_INT(ms, 12LL * 3600 * 1000);
    CHECK_INT(sr_sim_parse_duration("30m", &ms), 0);
    CHECK_INT(ms, 30LL * 60 * 1000);
    CHECK_INT(sr_sim_parse_duration("90s", &ms), 0);
    CHECK_INT(ms, 90000);
    CHECK_INT(sr_sim_parse_duration("3600", &ms), 0);
    CHECK_INT(ms, 3600000);
    CHECK_INT(sr_sim_parse_duration("1.5h", &ms), 0);
    CHECK_INT(ms, 5400000);
    static const char *const bad[] = {"", "0", "-1d", "7x", "7dd", "d", "nan", "1e300d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sr_sim_parse_duration(bad[i], &ms) == 0) UNIT_FAIL("'%s' was taken as a duration", bad[i]);
}

/* Message i of a known history: to +84 (Vietnam) for i < 900, +7 (Russia) after. Every tenth one's first
 * attempt on "budget" got a 503 (retried there); every fiftieth's a timeout. The attempt that went
 * through took 80 ms + i % 100 and has a report 4 s + i ms later: delivered, except every fifth
 * undelivered and those with i % 20 == 11 expired. Costs: 0.02 per segment, two segments on
 * every fourth one. */
static void make_history_message(sr_message *m, int i) {
    sr_message_init(m);
    char to[32];
    snprintf(to, sizeof to, i < 900 ? "+8491234%04d" : "+7912345%04d", i);
    m->to = strdup(to);
    m->text = strdup("x");
    m->segments = i % 4 == 0 ? 2 : 1;
    m->created_at_ms = T0 + i * 1000LL;
    int64_t t = m->created_at_ms;
    if (i % 10 == 0 || i % 50 == 0) {
        sr_attempt *a = sr_message_add_attempt(m, "budget", t);
        a->duration_ms = i % 10 == 0 ? 30 : 10000;
        a->http_status = i % 10 == 0 ? 503 : 0;
        sr_message_set_str(&a->outcome, "retry");
        t += a->duration_ms + 500;
    }
    sr_attempt *a = sr_message_add_attempt(m, "budget", t);
    a->duration_ms = 80 + i % 100;
    a->http_status = 200;
    sr_message_set_str(&a->outcome, "sent");
    sr_message_set_str(&a->provider_id, "p1");
    const char *report = i % 5 == 0 ? "undelivered" : i % 20 == 11 ? "expired" : "delivered";
    sr_message_set_str(&a->report, report);
    a->reported_at_ms = t + a->duration_ms + 4000 + i;
    sr_message_set_str(&m->provider, "budget");
    m->status = (sr_status)sr_status_parse(report);
    m->cost = 0.02 * m->segments;
    m->has_cost = 1;
}

static double num_at(const sr_json *root, const char *path) {
    /* path: keys separated by '/'. */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const sr_json *v = root;
    for (char *save = NULL, *k = strtok_r(buf, "/", &save); k; k = strtok_r(NULL, "/", &save)) v = sr_json_get(v, k);
    if (!v || v->type != SR_JSON_NUMBER) UNIT_FAIL("no number at %s", path);
    return v->num;
}

#define CHECK_NEAR(a, b, tol)                                                                                          \
    do {                                                                                                               \
        double unit_x = (a), unit_y = (b);                                                                             \
        if (!(fabs(unit_x - unit_y) <= (tol))) UNIT_FAIL("%s == %g, expected %g", #a, unit_x, unit_y);                 \
    } while (0)

TEST(fit_recovers_known_shares) {
    sr_models_fit *fit = sr_models_fit_new(200);
    for (int i = 0; i < 1000; i++) {
        sr_message m;
        make_history_message(&m, i);
        sr_models_fit_add(fit, &m, 0);
        sr_message_free(&m);
    }
    sr_buf out;
    sr_buf_init(&out);
    sr_models_fit_write(fit, &out);
    sr_json_doc doc = {0};
    char err[128];
    if (sr_json_parse(&doc, out.data, out.len, err, sizeof err) != 0) UNIT_FAIL("not JSON: %s\n%s", err, out.data);
    const sr_json *r = doc.root;
    /* 1000 accepted attempts and 100 503s (i % 10 == 0); i % 50 == 0 is also i % 10 == 0, so those got a
     * 503 too: no timeouts at all. */
    CHECK_NEAR(num_at(r, "providers/budget/default/accept"), 1000.0 / 1100, 1e-4);
    CHECK_NEAR(num_at(r, "providers/budget/default/errors/503"), 100.0 / 1100, 1e-4);
    CHECK(sr_json_get(sr_json_get(sr_json_get(sr_json_get(sr_json_get(r, "providers"), "budget"), "default"), "errors"),
                      "timeout") == NULL);
    /* Reports: 200 undelivered (i % 5), 50 expired (i % 20 == 11), 750 delivered. */
    CHECK_NEAR(num_at(r, "providers/budget/default/delivered"), 0.75, 1e-9);
    CHECK_NEAR(num_at(r, "providers/budget/default/undelivered"), 0.20, 1e-9);
    CHECK_NEAR(num_at(r, "providers/budget/default/expired"), 0.05, 1e-9);
    CHECK_NEAR(num_at(r, "providers/budget/default/price"), 0.02, 1e-9);
    /* Report latency 4000 + i ms: p50 about 4500, p95 about 4950. Send latency: every accepted
     * attempt 80..179 ms, and the 503s 30 ms. */
    CHECK_NEAR(num_at(r, "providers/budget/default/report_latency_ms/p50"), 4500, 2);
    CHECK_NEAR(num_at(r, "providers/budget/default/report_latency_ms/p95"), 4950, 2);
    CHECK(num_at(r, "providers/budget/default/send_latency_ms/p95") <= 179);
    CHECK_NEAR(num_at(r, "providers/budget/default/samples/attempts"), 1100, 0);
    CHECK_NEAR(num_at(r, "fitted_from/messages"), 1000, 0);
    /* Vietnam (990 attempts) gets its own model, Russia (110 < 200) does not. */
    CHECK_NEAR(num_at(r, "providers/budget/countries/84/samples/attempts"), 990, 0);
    CHECK(sr_json_get(sr_json_get(sr_json_get(sr_json_get(r, "providers"), "budget"), "countries"), "7") == NULL);
    CHECK(sr_json_get(r, "incidents") && sr_json_get(r, "incidents")->type == SR_JSON_ARRAY);
    sr_json_doc_free(&doc);
    sr_buf_free(&out);
    sr_models_fit_free(fit);
}

TEST(fit_leaves_out_reports_that_may_still_come) {
    /* Accepted at T0 + i s, no report: before the settle time they count as never reported, after it
     * they are left out of the report shares. */
    sr_models_fit *fit = sr_models_fit_new(0);
    for (int i = 0; i < 10; i++) {
        sr_message m;
        make_history_message(&m, i + 1); /* i + 1: none is undelivered by the rule above except 5, 10 */
        if (i >= 4) {
            sr_message_set_str(&m.attempts[m.attempt_count - 1].report, NULL);
            m.attempts[m.attempt_count - 1].reported_at_ms = 0;
        }
        sr_models_fit_add(fit, &m, T0 + 8000);
        sr_message_free(&m);
    }
    sr_buf out;
    sr_buf_init(&out);
    sr_models_fit_write(fit, &out);
    sr_json_doc doc = {0};
    CHECK_INT(sr_json_parse(&doc, out.data, out.len, NULL, 0), 0);
    /* Reported: messages 1..4 (delivered); unreported 5..10, of which 5, 6, 7 were sent before
     * T0 + 8 s: 7 settled, 4 delivered. */
    CHECK_NEAR(num_at(doc.root, "providers/budget/default/delivered"), 4.0 / 7, 1e-4);
    sr_json_doc_free(&doc);
    sr_buf_free(&out);
    sr_models_fit_free(fit);
}

TEST(fit_reads_whole_second_report_times_as_their_middle) {
    /* Sent (answered) at T0 + 1.2 s. A report stamped T0 + 3 s exactly (a provider clock in whole seconds)
     * came somewhere in [3 s, 4 s): 2.3 s after the answer, as the middle. One stamped T0 + 1 s stands for
     * 1.5 s: 0.3 s. One stamped T0 + 1.1 s (before the answer: the provider's clock behind ours) counts as
     * immediate. */
    static const int64_t stamps[] = {T0 + 3000, T0 + 1000, T0 + 1100};
    static const double want[] = {2300, 300, 0};
    for (int k = 0; k < 3; k++) {
        sr_models_fit *fit = sr_models_fit_new(0);
        sr_message m;
        sr_message_init(&m);
        m.to = strdup("+84912345678");
        m.created_at_ms = T0;
        sr_attempt *a = sr_message_add_attempt(&m, "p", T0 + 1000);
        a->duration_ms = 200;
        a->http_status = 200;
        sr_message_set_str(&a->outcome, "sent");
        sr_message_set_str(&a->provider_id, "x");
        sr_message_set_str(&a->report, "delivered");
        a->reported_at_ms = stamps[k];
        sr_models_fit_add(fit, &m, 0);
        sr_message_free(&m);
        sr_buf out;
        sr_buf_init(&out);
        sr_models_fit_write(fit, &out);
        sr_json_doc doc = {0};
        CHECK_INT(sr_json_parse(&doc, out.data, out.len, NULL, 0), 0);
        CHECK_NEAR(num_at(doc.root, "providers/p/default/report_latency_ms/p50"), want[k], 0);
        sr_json_doc_free(&doc);
        sr_buf_free(&out);
        sr_models_fit_free(fit);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) { return remove(path); }

static void on_done(sr_store_txn *t, void *ud) { *(int *)ud = sr_store_txn_status(t) == 0 ? 1 : -1; }

static int collect(const sr_message *m, void *ud) {
    sr_buf *ids = ud;
    sr_buf_puts(ids, m->to);
    sr_buf_putc(ids, ' ');
    return 0;
}

TEST(read_only_store_scans_without_the_lock) {
    char dir[64] = "/tmp/sr_fit_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    sr_store *w = NULL;
    char err[256];
    sr_store_options wo = {.dir = dir};
    CHECK_INT(sr_store_open(&w, &loop, &wo, err, sizeof err), 0);
    sr_store_txn *t = sr_store_txn_new(w);
    for (int i = 0; i < 5; i++) {
        sr_message m;
        sr_message_init(&m);
        char to[32];
        snprintf(to, sizeof to, "+849123400%02d", i);
        m.to = strdup(to);
        m.text = strdup("x");
        m.created_at_ms = T0 + i * 60000LL;
        sr_id_new(m.id, m.created_at_ms);
        sr_store_txn_put_message(t, &m, NULL, 0);
    }
    int done = 0;
    sr_store_txn_submit(t, on_done, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(done, 1);
    /* The writer still holds the directory lock: a second writer is refused, a reader is not. It is
     * forked, because LMDB must not have one environment open twice in one process. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        sr_store *again = NULL;
        if (sr_store_open(&again, NULL, &wo, err, sizeof err) != SR_E_LOCKED) _exit(10);
        sr_store *r = NULL;
        sr_store_options ro = {.dir = dir, .read_only = 1};
        if (sr_store_open(&r, NULL, &ro, err, sizeof err) != 0) _exit(11);
        sr_buf ids;
        sr_buf_init(&ids);
        char last[SR_ID_LEN + 1] = "";
        /* From two minutes in: messages 2, 3, 4; two per call, then on from the last. */
        if (sr_store_scan_messages(r, NULL, T0 + 120000, 2, collect, &ids, last) != 2) _exit(12);
        if (sr_store_scan_messages(r, last, T0 + 120000, 2, collect, &ids, last) != 1) _exit(13);
        if (strcmp(sr_buf_cstr(&ids), "+84912340002 +84912340003 +84912340004 ") != 0) _exit(14);
        sr_buf_reset(&ids);
        if (sr_store_scan_messages(r, NULL, 0, 100, collect, &ids, last) != 5) _exit(15);
        sr_buf_free(&ids);
        sr_store_close(r);
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) UNIT_FAIL("reader child: status %d", status);
    sr_store_close(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);

    /* A reader never creates what is missing. */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nothing-here", dir);
    sr_store *r = NULL;
    sr_store_options ro = {.dir = missing, .read_only = 1};
    CHECK(sr_store_open(&r, NULL, &ro, err, sizeof err) != 0);
    CHECK(access(missing, F_OK) != 0);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int count_messages(const sr_message *m, void *ud) {
    (*(int *)ud)++;
    return 0;
}

/* Puts n messages of about 1 KiB through writer w. */
static void put_messages(uv_loop_t *loop, sr_store *w, int first, int n) {
    sr_store_txn *t = sr_store_txn_new(w);
    for (int i = first; i < first + n; i++) {
        sr_message m;
        sr_message_init(&m);
        char to[32];
        snprintf(to, sizeof to, "+8491234%04d", i);
        m.to = strdup(to);
        m.text = malloc(1025);
        memset(m.text, 'x', 1024);
        m.text[1024] = '\0';
        m.created_at_ms = T0 + i;
        sr_id_new(m.id, m.created_at_ms);
        sr_store_txn_put_message(t, &m, NULL, 0);
    }
    int done = 0;
    sr_store_txn_submit(t, on_done, &done);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(done, 1);
}

TEST(read_only_store_follows_the_writer_growing_the_map) {
    /* A reader opened on a small file keeps reading after the daemon beside it grew the map (LMDB
     * then answers MDB_MAP_RESIZED until the reader adopts the new size). */
    char dir[64] = "/tmp/sr_fit_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    sr_store *w = NULL;
    char err[256];
    sr_store_options wo = {.dir = dir, .map_size = 1 << 20, .map_size_max = 64 << 20};
    CHECK_INT(sr_store_open(&w, &loop, &wo, err, sizeof err), 0);
    put_messages(&loop, w, 0, 10);
    int opened[2], grown[2];
    CHECK(pipe(opened) == 0 && pipe(grown) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        sr_store *r = NULL;
        sr_store_options ro = {.dir = dir, .read_only = 1};
        if (sr_store_open(&r, NULL, &ro, err, sizeof err) != 0) _exit(10);
        int n = 0;
        char last[SR_ID_LEN + 1];
        if (sr_store_scan_messages(r, NULL, 0, 100000, count_messages, &n, last) != 10) _exit(11);
        char c = 'o';
        if (write(opened[1], &c, 1) != 1 || read(grown[0], &c, 1) != 1) _exit(12);
        n = 0;
        int rc = sr_store_scan_messages(r, NULL, 0, 100000, count_messages, &n, last);
        if (rc != 3010) _exit(rc < 0 ? 13 : 14);
        sr_store_close(r);
        _exit(0);
    }
    char c;
    CHECK(read(opened[0], &c, 1) == 1);
    put_messages(&loop, w, 10, 3000); /* about 3 MiB: the 1 MiB map grows */
    sr_store_stats st;
    sr_store_get_stats(w, &st);
    CHECK(st.grows > 0);
    CHECK(write(grown[1], "g", 1) == 1);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) UNIT_FAIL("reader child: status %d", status);
    sr_store_close(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
