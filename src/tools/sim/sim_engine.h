/* sim_engine: the real engine run in-process on the virtual clock, shared by
 * the offline runners — `smsrules test` (test_runner.c) and `smsrules
 * simulate` (simulate.c). Owns one run's engine: the rules loaded as `serve`
 * loads them, a store in a temporary folder (no fsync: it is thrown away), the
 * scheduler sending through a caller's transport instead of HTTP with its
 * retry jitter from a seeded generator, and the report engine (reports come
 * from the caller through sr_reports_apply; providers are never polled).
 *
 * The caller drives the loop: it runs it until sr_sim_engine_idle, moves the
 * clock to sr_sim_engine_next and does what the daemon's timers would
 * (sr_sim_engine_expire, a kick of the scheduler, a pass of the report
 * engine). Loop thread only. */
#ifndef SR_SIM_ENGINE_H
#define SR_SIM_ENGINE_H

#include <limits.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "delivery/reports.h"
#include "rules/host.h"
#include "rules/rules.h"
#include "delivery/scheduler.h"
#include "tools/sim/sim_random.h"
#include "store/store.h"

typedef struct sr_sim_engine {
    uv_loop_t *loop; /* borrowed */
    sr_config config;
    sr_rules *rules;
    sr_store *store;
    sr_scheduler *scheduler;
    sr_reports *reports;
    sr_rate_lanes *rates; /* the providers' rates, shared by scheduler and reports */
    char dir[PATH_MAX];   /* the store's temporary folder, "" none */
    int in_flight;        /* store units and report applications the caller waits for */
    int scheduler_stopped, reports_stopped;
    int64_t expire_now;   /* argument of the expiry sweep's units */
    sr_sim_random random; /* the scheduler's retry jitter */
    sr_host host;         /* what the rules act on: the store, route statistics (no HTTP client) */
} sr_sim_engine;

/* Starts an engine into e (zeroed here) on loop: rules_path (NULL: no rules),
 * its store in a new folder $TMPDIR/PREFIX-XXXXXX of map_size bytes, requests
 * to transport(ud), retry jitter seeded with seed. Returns 0, or -1 with err
 * set and everything started freed (the loop is run to close it). */
int sr_sim_engine_start(sr_sim_engine *e, uv_loop_t *loop, const char *rules_path, const char *prefix, size_t map_size,
                        uint64_t seed, sr_transport_fn transport, void *ud, char *err, size_t errlen);
/* 1 when nothing happens without time passing or the transport answering: no
 * unit in flight, no handler running, the scheduler and report engine idle.
 * *wake_ms (may be NULL) as sr_scheduler_idle's. */
int sr_sim_engine_idle(sr_sim_engine *e, int64_t *wake_ms);
/* The daemon's expiry sweep at sr_now_ms(): queued messages whose validity
 * ended become expired (units counted in in_flight). Calls touched(id, ud)
 * for each (touched may be NULL). */
void sr_sim_engine_expire(sr_sim_engine *e, void (*touched)(const char *id, void *ud), void *ud);
/* The next moment the engine itself has something to do after now, if before
 * next (returned unchanged otherwise): a queued message falling due (a retry,
 * send_at), a sent message's watch time (a report deadline), or, while a due
 * message waits for its lane, the scheduler's next look. *kick is set to 1
 * when the moment returned is one where the scheduler must look at the queue
 * (may be NULL). */
int64_t sr_sim_engine_next(sr_sim_engine *e, int64_t now, int64_t next, int *kick);
/* Stops and frees the engine: the scheduler drains, flush(ud) answering
 * whatever requests the transport still holds (it returns how many it
 * answered), then the report engine stops; the store's folder is removed.
 * Returns 0, or -1 when the engine did not stop within limit_ms of real time
 * (a bug: the caller should exit, nothing is freed). */
int sr_sim_engine_stop(sr_sim_engine *e, int (*flush)(void *ud), void *ud, int64_t limit_ms);

#endif
