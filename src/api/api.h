/* api: the HTTP handlers of the /v1 API (messages now; events, hooks and
 * admin later), and what they share: API-key checks and JSON answers. */
#ifndef SR_API_H
#define SR_API_H

#include <uv.h>

#include "core/config.h"
#include "http/http_server.h"
#include "rules/rules.h"
#include "store/store.h"

struct sr_scheduler;
struct sr_reports;
struct sr_route_stats;

/* What the API handlers act on: filled by the daemon, which keeps it current (the rules at each
 * reload, stopping when it stops, the engine's parts NULL once they are gone). Handlers borrow all. */
typedef struct sr_api {
    uv_loop_t *loop;
    sr_config *config;
    sr_rules *rules; /* the current rules generation */
    sr_store *store;
    struct sr_scheduler *scheduler;
    struct sr_reports *reports;
    struct sr_route_stats *route_stats; /* live route quality (GET /v1/stats/routes) */
    int stopping;                       /* the daemon drains: no new work is started */
} sr_api;

/* A handler of one route: params are the path's "*" segments. */
typedef void (*sr_api_handler)(sr_api *app, sr_http_request *req, const char *const *params, int param_count);

/* 1 when the request carries a configured API key (constant-time compare);
 * otherwise answers 401 and returns 0. */
int sr_api_require_key(sr_api *app, sr_http_request *req);
/* The HTTP status and error code of a store failure: 507 storage_full, 503 cluster_unavailable (cluster
 * mode: try again later, with the same idempotency key), else 500 storage_error. */
int sr_api_store_status(int store_code, const char **error_code);
/* Compares two byte strings in time that depends only on their lengths. */
int sr_api_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

void sr_api_messages_post(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_messages_get(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_messages_retry(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_events_post(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_messages_list(sr_api *app, sr_http_request *req, const char *const *params, int n);
/* Provider webhooks: /hooks/{provider}/{status|inbound} and /hooks/{provider}/{secret}/{status|inbound}. */
void sr_api_hooks_post(sr_api *app, sr_http_request *req, const char *const *params, int n);
/* At start: inbound SMS stored but whose handler never finished are handed to it again. */
void sr_api_hooks_recover(sr_api *app);
void sr_api_inbound_get(sr_api *app, sr_http_request *req, const char *const *params, int n);
/* GET /v1/stats/routes: live route quality (api_stats.c). */
void sr_api_stats_routes(sr_api *app, sr_http_request *req, const char *const *params, int n);

#endif
