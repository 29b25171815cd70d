/* sim_engine: the in-process engine of the offline runners (see sim_engine.h). */
#include "tools/sim/sim_engine.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "model/route_stats.h"
#include "rules/bindings/bindings.h"

#define SIM_ENGINE_SCAN 4096

static int sim_engine_rmtree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    remove(path);
    return 0;
}

static void sim_engine_rmtree(const char *dir) {
    if (dir[0]) nftw(dir, sim_engine_rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int sr_sim_engine_start(sr_sim_engine *e, uv_loop_t *loop, const char *rules_path, const char *prefix, size_t map_size,
                        uint64_t seed, sr_transport_fn transport, void *ud, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    e->loop = loop;
    sr_config_init(&e->config);
    if (sr_rules_load(&e->rules, rules_path, &e->config, err, errlen) != 0) goto fail;
    const char *tmp = getenv("TMPDIR");
    snprintf(e->dir, sizeof e->dir, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    if (!mkdtemp(e->dir)) {
        snprintf(err, errlen, "cannot create a temporary folder for the store: %s", strerror(errno));
        e->dir[0] = '\0';
        goto fail;
    }
    sr_store_options so;
    memset(&so, 0, sizeof so);
    so.dir = e->dir;
    so.map_size = map_size;
    so.no_sync = 1; /* the store is thrown away: durability buys nothing here */
    if (sr_store_open(&e->store, loop, &so, err, errlen) != 0) goto fail;
    e->rates = sr_rate_lanes_new();
    if (sr_scheduler_start(&e->scheduler, loop, e->store, e->rules, NULL, e->rates, &e->config) != 0) {
        snprintf(err, errlen, "cannot start the delivery engine");
        goto fail;
    }
    sr_scheduler_set_transport(e->scheduler, transport, ud);
    /* The same jitter in every run with the same seed. */
    sr_sim_random_seed(&e->random, seed);
    sr_scheduler_set_random(e->scheduler, sr_sim_random_hook, &e->random);
    /* Reports come from the caller, as from webhooks. There is no HTTP
     * client: providers declared with poll = true are not polled. The report
     * engine's own timer runs on real time; the caller runs its passes on
     * the virtual clock (sr_reports_tick_now). */
    for (int i = 0; i < e->rules->provider_count; i++) e->rules->providers[i].poll = 0;
    if (sr_reports_start(&e->reports, loop, e->store, e->rates, e->rules, NULL, &e->config) != 0) {
        snprintf(err, errlen, "cannot start the report engine");
        goto fail;
    }
    /* sms.stats, on the virtual clock like the rest of the engine. */
    sr_host_init(&e->host, e->store, NULL, sr_route_stats_new());
    sr_host_set_current(&e->host, e->rules);
    return 0;
fail:
    if (e->scheduler) {
        /* Nothing was sent yet: it stops at once. */
        sr_scheduler_stop(e->scheduler, NULL, NULL);
        sr_scheduler_free(e->scheduler);
    }
    if (e->store) {
        sr_store_close(e->store);
        uv_run(loop, UV_RUN_DEFAULT);
    }
    sim_engine_rmtree(e->dir);
    sr_rate_lanes_free(e->rates);
    if (e->rules) sr_rules_release(e->rules);
    sr_config_free(&e->config);
    memset(e, 0, sizeof *e);
    return -1;
}

int sr_sim_engine_idle(sr_sim_engine *e, int64_t *wake_ms) {
    int64_t wake = -1;
    int idle = sr_scheduler_idle(e->scheduler, &wake);
    if (wake_ms) *wake_ms = wake;
    /* Handlers the engine started itself (sms.on_status) count too. */
    return idle && e->in_flight == 0 && e->rules->live_invocations == 0 && sr_reports_idle(e->reports);
}

static void sim_engine_unit_done(sr_store_txn *t, void *ud) {
    sr_sim_engine *e = ud;
    e->in_flight--;
}

/* Expires queued messages whose validity ended (what the daemon's sweep
 * does every second; the scheduler itself expires only the due ones). */
static int sim_engine_expire_mutator(sr_message *m, void *arg) {
    int64_t now = *(const int64_t *)arg;
    if (m->status != SR_ST_QUEUED || m->expires_at_ms == 0 || m->expires_at_ms > now) return SR_E_STATE;
    sr_message_set_str(&m->error, "validity ended before the message was sent");
    sr_message_set_status(m, SR_ST_EXPIRED, now);
    return 0;
}

void sr_sim_engine_expire(sr_sim_engine *e, void (*touched)(const char *id, void *ud), void *ud) {
    e->expire_now = sr_now_ms();
    char ids[256][SR_ID_LEN + 1];
    int n = sr_store_expired(e->store, e->expire_now, ids, 256);
    for (int i = 0; i < n; i++) {
        sr_store_txn *t = sr_store_txn_new(e->store);
        sr_store_txn_update_message(t, ids[i], sim_engine_expire_mutator, &e->expire_now);
        e->in_flight++;
        sr_store_txn_submit(t, sim_engine_unit_done, e);
        if (touched) touched(ids[i], ud);
    }
}

int64_t sr_sim_engine_next(sr_sim_engine *e, int64_t now, int64_t next, int *kick) {
    static sr_queue_entry entries[SIM_ENGINE_SCAN];
    static char watched[SIM_ENGINE_SCAN][SR_ID_LEN + 1];
    int k = 0;
    /* Watch times already due were handled at this moment's pass: the next one after now. */
    int64_t watch_next = 0;
    sr_store_watch_due(e->store, now, watched, SIM_ENGINE_SCAN, &watch_next);
    if (watch_next > now && watch_next < next) next = watch_next;
    int n = sr_store_queue_due(e->store, next, entries, SIM_ENGINE_SCAN);
    int waiting = 0;
    for (int i = 0; i < n; i++) {
        if (entries[i].due_ms <= now) waiting = 1;
        else if (entries[i].due_ms <= next)
            next = entries[i].due_ms, k = 1;
    }
    if (waiting) {
        int64_t wake_ms;
        sr_scheduler_idle(e->scheduler, &wake_ms);
        if (wake_ms < 1) wake_ms = 1;
        if (now + wake_ms <= next) next = now + wake_ms, k = 1;
    }
    if (kick) *kick = k;
    return next;
}

static void sim_engine_scheduler_stopped(void *ud) { ((sr_sim_engine *)ud)->scheduler_stopped = 1; }
static void sim_engine_reports_stopped(void *ud) { ((sr_sim_engine *)ud)->reports_stopped = 1; }

int sr_sim_engine_stop(sr_sim_engine *e, int (*flush)(void *ud), void *ud, int64_t limit_ms) {
    uint64_t deadline = uv_hrtime() + (uint64_t)limit_ms * 1000000u;
    sr_scheduler_stop(e->scheduler, sim_engine_scheduler_stopped, e);
    while (!e->scheduler_stopped || e->in_flight > 0) {
        if (flush && flush(ud)) continue;
        if (uv_hrtime() > deadline) return -1;
        uv_run(e->loop, UV_RUN_ONCE);
    }
    if (flush) flush(ud);
    /* Then the report engine (what the daemon does too). Status handlers
     * started by the last commits finish before the engine they act on goes. */
    sr_reports_stop(e->reports, sim_engine_reports_stopped, e);
    while (!e->reports_stopped || e->in_flight > 0 || e->rules->live_invocations > 0) {
        if (uv_hrtime() > deadline) return -1;
        uv_run(e->loop, UV_RUN_ONCE);
    }
    sr_reports_free(e->reports);
    sr_scheduler_free(e->scheduler);
    sr_host_close(&e->host);
    sr_store_close(e->store);
    uv_run(e->loop, UV_RUN_DEFAULT); /* the handles' close callbacks */
    sim_engine_rmtree(e->dir);
    sr_route_stats_free(e->host.route_stats);
    e->host.route_stats = NULL;
    sr_rate_lanes_free(e->rates);
    sr_rules_release(e->rules);
    sr_config_free(&e->config);
    memset(e, 0, sizeof *e);
    sr_metrics_reset();
    return 0;
}
