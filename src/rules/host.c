#include "rules/host.h"

#include <string.h>

#include "rules/rules_exec.h"

/* A committed status change: its handler runs on the current generation. */
static void host_on_status(const sr_store_event *ev, void *ud) {
    sr_host *h = ud;
    sr_rules_status_changed(h->current, h->store, ev->msg, ev->owed);
}

void sr_host_init(sr_host *h, sr_store *store, struct sr_http_client *client, struct sr_route_stats *route_stats) {
    memset(h, 0, sizeof *h);
    h->store = store;
    h->client = client;
    h->route_stats = route_stats;
    h->status_sub.kind = SR_STORE_EV_STATUS;
    h->status_sub.fn = host_on_status;
    h->status_sub.ud = h;
}

void sr_host_attach(sr_host *h, sr_rules *r) {
    if (r) r->host = h;
}

void sr_host_set_current(sr_host *h, sr_rules *r) {
    sr_host_attach(h, r);
    h->current = r;
    /* Owed durably exactly while a handler is declared: rules without one pay nothing per change. */
    int on = sr_rules_has_status_handler(r);
    h->status_sub.status_mask = on ? SR_STATUS_HANDLER_MASK : 0;
    h->status_sub.durable = on;
    if (h->store && !h->subscribed) {
        sr_store_subscribe(h->store, &h->status_sub);
        h->subscribed = 1;
    }
}

void sr_host_drop_client(sr_host *h) { h->client = NULL; }

void sr_host_close(sr_host *h) {
    if (h->store && h->subscribed) sr_store_unsubscribe(h->store, &h->status_sub);
    h->subscribed = 0;
    h->store = NULL;
    h->client = NULL;
}
