/* app: the running daemon — owns the loop, the configuration, the rules, the
 * HTTP server and the router that maps paths to handlers; and the lifecycle
 * (signals, graceful drain on SIGTERM/SIGINT). */
#ifndef SR_APP_H
#define SR_APP_H

#include <uv.h>

#include "api/api.h"
#include "core/config.h"
#include "http/http_server.h"
#include "rules/host.h"
#include "rules/rules.h"

#define SR_VERSION "0.1.0"

typedef struct sr_app sr_app;

typedef struct sr_app {
    uv_loop_t *loop;
    sr_config *config;
    sr_rules *rules;
    sr_http_server *server;
    struct sr_store *store;
    struct sr_http_client *client;
    struct sr_scheduler *scheduler;
    struct sr_reports *reports;
    struct sr_rate_lanes *rates;                 /* each provider's rate: the scheduler's sends and status polls */
    struct sr_route_stats *route_stats;          /* live route quality, rebuilt from the store at start */
    sr_host host;                                /* what every rules generation acts on; outlives them all */
    struct sr_route_stats_follower *rs_follower; /* cluster mode: other nodes' changes into route_stats */
    sr_api api;                                  /* what the API handlers act on, kept current here */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer;
    uv_timer_t finish_timer;
    uv_timer_t sweep_timer;
    unsigned sweeps;
    int stopping;
    int server_stopped;
    int engine_stopping;
    int exit_code;
} sr_app;

/* Loads the rules file again into a fresh state, checks it, and swaps it in
 * atomically: new events, routes and sends use it, handlers and requests in
 * flight finish on the old one. A broken file leaves the old rules running.
 * Returns 0, or -1 with "file:line: message" in err. */
int sr_app_reload(sr_app *app, char *err, size_t errlen);

/* Runs the daemon until a stop signal; returns the process exit code.
 * Takes ownership of rules; borrows config. */
int sr_app_run(sr_config *config, sr_rules *rules);

#endif
