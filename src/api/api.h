/* api: the HTTP handlers of the /v1 API (messages now; events, hooks and
 * admin later), and what they share: API-key checks and JSON answers. */
#ifndef SR_API_H
#define SR_API_H

#include "daemon/app.h"

/* 1 when the request carries a configured API key (constant-time compare);
 * otherwise answers 401 and returns 0. */
int sr_api_require_key(sr_app *app, sr_http_request *req);
/* Compares two byte strings in time that depends only on their lengths. */
int sr_api_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

void sr_api_messages_post(sr_app *app, sr_http_request *req, const char *const *params, int n);
void sr_api_messages_get(sr_app *app, sr_http_request *req, const char *const *params, int n);
void sr_api_messages_retry(sr_app *app, sr_http_request *req, const char *const *params, int n);
void sr_api_events_post(sr_app *app, sr_http_request *req, const char *const *params, int n);
void sr_api_messages_list(sr_app *app, sr_http_request *req, const char *const *params, int n);
/* Provider webhooks: /hooks/{provider}/{status|inbound} and /hooks/{provider}/{secret}/{status|inbound}. */
void sr_api_hooks_post(sr_app *app, sr_http_request *req, const char *const *params, int n);
/* At start: inbound SMS stored but whose handler never finished are handed to it again. */
void sr_api_hooks_recover(sr_app *app);
void sr_api_inbound_get(sr_app *app, sr_http_request *req, const char *const *params, int n);
/* GET /v1/stats/routes: live route quality (api_stats.c). */
void sr_api_stats_routes(sr_app *app, sr_http_request *req, const char *const *params, int n);

#endif
