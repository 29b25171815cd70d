/* host: what rules act on, owned by whoever runs them (the daemon, the test
 * runner, the simulator) and outliving every rules generation: the store,
 * the HTTP client of sms.http.request, the route statistics of sms.stats,
 * and which generation is current.
 *
 * Rules reach the world only through their host (sr_rules.host), never
 * through pointers of their own: a generation kept alive after a reload by
 * a handler still in flight, or still running while the daemon stops, sees
 * what the host sees now — no client once the daemon closed it, no store
 * once it closed — and never a part that was freed. Nothing of the delivery
 * engine is reachable from here: handlers' effects reach the scheduler
 * through the store's announcements.
 *
 * Status handlers (sms.on_status) subscribe to the store's status changes
 * here, durable while the current rules declare one, and run on the current
 * generation. (Its functions live in rules_exec.c, beside the handlers.) */
#ifndef SR_HOST_H
#define SR_HOST_H

#include "rules/rules.h"
#include "store/store.h"

struct sr_http_client;
struct sr_route_stats;

typedef struct sr_host {
    sr_store *store;                    /* NULL: none (rules only checked), or closed */
    struct sr_http_client *client;      /* NULL: none, or closing (sms.http.request answers "cancelled") */
    struct sr_route_stats *route_stats; /* NULL: none (sms.stats answers zeros) */
    sr_rules *current;                  /* the generation events and status handlers run on (borrowed) */
    sr_store_subscriber status_sub;     /* the status handlers' subscription */
    int subscribed;
} sr_host;

/* Borrows store, client and route_stats (each may be NULL). */
void sr_host_init(sr_host *h, sr_store *store, struct sr_http_client *client, struct sr_route_stats *route_stats);
/* r (a freshly loaded generation) acts through h from now on. */
void sr_host_attach(sr_host *h, sr_rules *r);
/* Attaches r and makes it the current generation: status changes committed from now on run its
 * sms.on_status (and are owed durably exactly while it declares one). The previous current one is
 * not released here (its owner does). */
void sr_host_set_current(sr_host *h, sr_rules *r);
/* No more sms.http.request through the client (the daemon closes it next). */
void sr_host_drop_client(sr_host *h);
/* Before the store closes: no more status handlers, and every generation still alive finds no store. */
void sr_host_close(sr_host *h);

/* What a generation acts on (NULL when it has no host, or the host has none). */
static inline sr_store *sr_rules_store(const sr_rules *r) { return r && r->host ? r->host->store : NULL; }
static inline struct sr_http_client *sr_rules_client(const sr_rules *r) {
    return r && r->host ? r->host->client : NULL;
}
static inline struct sr_route_stats *sr_rules_route_stats(const sr_rules *r) {
    return r && r->host ? r->host->route_stats : NULL;
}

#endif
