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
 * is found and resent with the same idempotency key (its id), and counted. */
#ifndef SR_SCHEDULER_H
#define SR_SCHEDULER_H

#include <uv.h>

#include "config.h"
#include "http_client.h"
#include "rules.h"
#include "store.h"

typedef struct sr_scheduler sr_scheduler;

/* Starts the engine: requeues messages left `sending` by a crash, then
 * pumps. Borrows everything. Returns 0 or a negative code. */
int sr_scheduler_start(sr_scheduler **out, uv_loop_t *loop, sr_store *store, sr_rules *rules,
                       sr_http_client *client, const sr_config *config);
/* After a reload: routes, adapters and limits come from rules from now on
 * (borrowed; the caller keeps them alive). Lanes are matched by provider
 * name, keeping their rate, circuit and counters; requests in flight finish
 * with the rules they were built with. */
void sr_scheduler_set_rules(sr_scheduler *s, sr_rules *rules);
/* New queued messages were committed: look at the queue soon. */
void sr_scheduler_kick(sr_scheduler *s);
/* Stops taking messages; done runs once no request is in flight (their
 * outcomes recorded). */
void sr_scheduler_stop(sr_scheduler *s, void (*done)(void *ud), void *ud);
/* Frees after stop (closes its handles: run the loop once more). */
void sr_scheduler_free(sr_scheduler *s);

/* POST /v1/messages/{id}/retry: a failed message back to the queue, from
 * the first provider of its route. cb gets 0, SR_E_NOTFOUND or SR_E_STATE
 * (not failed). */
void sr_scheduler_retry(sr_scheduler *s, const char *id, void (*cb)(int code, void *ud), void *ud);

#endif
