/* scheduler: the delivery engine. Takes due messages from the store's queue
 * (priority first, then due time) and hands them to provider lanes; a lane
 * per provider enforces its rate (GCRA), its cap on requests in flight and
 * its circuit breaker, batches messages for adapters that take several per
 * request, and turns answers into outcomes: sent, retried on the same
 * provider (exponential backoff with full jitter, Retry-After honoured),
 * passed to the next provider of the route, or failed.
 *
 * Every step is a store transition committed before the next one starts: a
 * message is `sending` on disk before its request leaves, so after a crash it
 * is found and resent with the same idempotency key (its id), and counted.
 * The provider's concurrency bounds its requests out, not those commits: a
 * lane marks requests ahead (as many messages as requests may be out), which
 * wait, marked, for a slot (none ahead while its circuit is not closed). */
#ifndef SR_SCHEDULER_H
#define SR_SCHEDULER_H

#include <uv.h>

#include "rules/adapter.h"
#include "core/config.h"
#include "delivery/rate_lanes.h"
#include "http/http_client.h"
#include "rules/rules.h"
#include "store/store.h"

typedef struct sr_scheduler sr_scheduler;

/* Starts the engine: requeues messages left `sending` by a crash, then
 * pumps. Borrows everything (rates: the providers' rate lanes, shared with
 * the reports' status polls). Returns 0 or a negative code. */
int sr_scheduler_start(sr_scheduler **out, uv_loop_t *loop, sr_store *store, sr_rules *rules, sr_http_client *client,
                       sr_rate_lanes *rates, const sr_config *config);
/* After a reload: routes, adapters and limits come from rules from now on
 * (borrowed; the caller keeps them alive). Lanes are matched by provider
 * name, keeping their rate, circuit and counters; requests in flight finish
 * with the rules they were built with. */
void sr_scheduler_set_rules(sr_scheduler *s, sr_rules *rules);
/* Look at the queue soon. The engine hears of messages committed as queued from the store
 * (SR_STORE_EV_QUEUE): callers need this only for what the store does not announce. */
void sr_scheduler_kick(sr_scheduler *s);
/* Requeues (to be resent, counted as crash resends) the messages left `sending` by a process that
 * is gone; at start it is this process's predecessor, and in cluster mode the daemon calls it every
 * few seconds for nodes gone silent (sr_store_orphaned). */
void sr_scheduler_take_over(sr_scheduler *s);

/* Accept-time dispatch (POST /v1/messages): a new message m (its id set, not stored yet) that could leave
 * now — nothing due waits in the queue, m is due, not expired, not opted out, and its first provider's
 * lane is closed-circuit, unbatched, with room and rate — is claimed and returned as a job; else NULL
 * (it goes through the queue). sr_scheduler_accept_mark then makes m `sending` (its put carries the
 * transition, one store unit instead of two); once the put's unit t is done, sr_scheduler_accept_done
 * sends it, or lets the job go when t failed (an idempotency duplicate, a full store). */
struct sr_store_txn;
void *sr_scheduler_accept_take(sr_scheduler *s, const sr_message *m);
void sr_scheduler_accept_mark(sr_scheduler *s, void *job, sr_message *m);
void sr_scheduler_accept_done(sr_scheduler *s, void *job, struct sr_store_txn *t);
/* Stops taking messages; done runs once no request is in flight (their
 * outcomes recorded). Requests marked `sending` that did not leave yet never
 * do: their messages are resent at the next start, as after a crash. */
void sr_scheduler_stop(sr_scheduler *s, void (*done)(void *ud), void *ud);
/* Frees after stop (closes its handles: run the loop once more). */
void sr_scheduler_free(sr_scheduler *s);
/* At the drain deadline: gives up the send outcomes still waiting for room in
 * the store (logged; those messages are resent at the next start), so the stop
 * can finish. */
void sr_scheduler_abandon_unrecorded(sr_scheduler *s);

/* POST /v1/messages/{id}/retry: a failed message back to the queue, from
 * the first provider of its route. cb gets 0, SR_E_NOTFOUND or SR_E_STATE
 * (not failed). */
void sr_scheduler_retry(sr_scheduler *s, const char *id, void (*cb)(int code, void *ud), void *ud);

/* What a provider's lane is doing now, for the console (GET /v1/providers). */
typedef struct sr_lane_info {
    const char *circuit;     /* "closed", "open", "half_open" */
    int in_flight;           /* requests out now (HTTP requests started, not answered yet) */
    int marking;             /* requests whose messages' `sending` marks are being committed */
    int ready;               /* requests marked `sending`, waiting for a slot among the in_flight */
    int pending;             /* messages taken from the queue, waiting for a request */
    double rate_used;        /* messages the GCRA counts ahead of now: 0 idle, up to burst + 1 at the limit */
    int64_t paused_until_ms; /* a Retry-After pause, 0 none */
} sr_lane_info;
/* 0 with the lane of provider in out, or -1 when no lane has that name (yet). */
int sr_scheduler_lane_info(sr_scheduler *s, const char *provider, int64_t now_ms, sr_lane_info *out);

/* ---- another transport than HTTP: the offline test runner (smsrules test) ---- */

/* Answers a request the transport took, exactly once: outs holds one outcome
 * per message, in order (borrowed for the call); http_status is the status
 * the provider answered, 0 when it did not answer (a timeout). */
typedef void (*sr_transport_answer)(void *request, const sr_adapter_outcome *outs, int http_status);
/* Takes one provider request: the provider and msgs[0..n), already built
 * into a request by the adapter (whose errors are handled as usual). The
 * msgs array is borrowed for the call, p and the messages until answer. */
typedef void (*sr_transport_fn)(void *ud, const sr_provider *p, sr_message *const *msgs, int n, void *request,
                                sr_transport_answer answer);
/* Sends provider requests through fn instead of HTTP (NULL: HTTP again). */
void sr_scheduler_set_transport(sr_scheduler *s, sr_transport_fn fn, void *ud);
/* Draws retry jitter from fn(ud) instead of the kernel's randomness (NULL: the
 * kernel's again), so that a seeded run repeats itself exactly. */
void sr_scheduler_set_random(sr_scheduler *s, uint64_t (*fn)(void *ud), void *ud);
/* 1 when the engine has nothing to do until time passes or a transport
 * answers: no store write of its own in flight and no look at the queue
 * asked for (sr_scheduler_kick) that has not run. *wake_ms (may be NULL)
 * gets when its timer fires next, in ms from now (a rate limit or pause
 * ending, or a periodic look), or -1 when none is planned. */
int sr_scheduler_idle(sr_scheduler *s, int64_t *wake_ms);

#endif
