#include "delivery/route_stats_rebuild.h"

#include <time.h>

#include "core/log.h"
#include "rules/rules.h"
#include "store/store.h"

#define RS_DAY_MS (24 * 3600 * 1000LL)

/* ---- rebuild ---- */

typedef struct rs_rebuild {
    sr_route_stats *rs;
    sr_rules *rules;
    int64_t now_ms;
    long attempts, reports;
} rs_rebuild;

static int rs_rebuild_cb(const sr_message *m, void *ud) {
    rs_rebuild *rb = ud;
    for (int i = 0; i < m->attempt_count; i++) {
        const sr_attempt *a = &m->attempts[i];
        if (sr_route_stats_attempt_class(a) < 0 || !a->provider) continue;
        const sr_provider *p = rb->rules ? sr_rules_provider(rb->rules, a->provider) : NULL;
        sr_route_stats_on_attempt(rb->rs, m, i, p ? p->cost : 0);
        rb->attempts++;
        if (sr_route_stats_report_of(a->report) >= 0) {
            sr_route_stats_on_report(rb->rs, m, i, rb->now_ms);
            rb->reports++;
        }
    }
    return 0;
}

int sr_route_stats_rebuild(sr_route_stats *rs, sr_store *store, sr_rules *rules, int64_t now_ms, int max_messages) {
    rs_rebuild rb = {rs, rules, now_ms, 0, 0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = sr_store_scan_messages_back(store, now_ms - RS_DAY_MS, max_messages, rs_rebuild_cb, &rb);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (n >= 0)
        sr_info("route statistics rebuilt from the store", "messages", sr_log_num(n), "attempts",
                sr_log_num(rb.attempts), "reports", sr_log_num(rb.reports), "ms",
                sr_log_num((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    return n;
}

/* ---- other nodes' changes (cluster mode) ---- */

/* What another node's status change counts: leaving `sending` closed the last attempt (sent, failed,
 * or requeued for a retry or a fallback; not a crash, whose attempt was never answered); leaving
 * `sent` recorded a final report (delivered, undelivered, or a fallback after one) on the newest
 * attempt that has one. */
static void rs_on_remote(const sr_store_event *ev, void *ud) {
    sr_route_stats_follower *f = ud;
    const sr_message *m = ev->msg;
    if (!ev->remote || m->attempt_count == 0 || m->history_count < 2) return;
    sr_status before = m->history[m->history_count - 2].status;
    int last = m->attempt_count - 1;
    const sr_attempt *a = &m->attempts[last];
    if (before == SR_ST_SENDING && sr_route_stats_attempt_class(a) >= 0 && a->provider) {
        const sr_provider *p = *f->rules ? sr_rules_provider(*f->rules, a->provider) : NULL;
        sr_route_stats_on_attempt(f->rs, m, last, p ? p->cost : 0);
        return;
    }
    if (before != SR_ST_SENT) return;
    for (int i = last; i >= 0; i--) {
        if (sr_route_stats_report_of(m->attempts[i].report) >= 0) {
            sr_route_stats_on_report(f->rs, m, i, sr_now_ms());
            return;
        }
    }
}

void sr_route_stats_follow(sr_route_stats_follower *f, sr_store *store, sr_route_stats *rs, sr_rules *const *rules) {
    f->rs = rs;
    f->rules = rules;
    f->sub = (sr_store_subscriber){.kind = SR_STORE_EV_STATUS, .status_mask = ~0u, .fn = rs_on_remote, .ud = f};
    if (sr_store_clustered(store)) sr_store_subscribe(store, &f->sub);
}

void sr_route_stats_unfollow(sr_route_stats_follower *f, sr_store *store) { sr_store_unsubscribe(store, &f->sub); }
