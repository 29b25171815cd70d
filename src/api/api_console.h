/* api_console: the operators' console — its static files (console/, embedded at
 * build time, served at /console with a strict Content-Security-Policy), its
 * login (the admin key, traded for a signed, expiring session cookie), and the
 * read endpoints it renders from (api_read.c, api_overview.c). Every page of the
 * console is an ordinary /v1 API call: the API takes the session cookie where it
 * takes a key, with a CSRF token on every state-changing request.
 *
 * Sessions: "EXPIRY.ID.MAC" where MAC is HMAC-SHA256 over "EXPIRY.ID" under a
 * random secret drawn at start (a restart logs everyone out); the ID must also be
 * in the table of live sessions, so a logout ends it at once. The CSRF token is
 * HMAC-SHA256 over "csrf." ID: bound to the session, never stored. */
#ifndef SR_API_CONSOLE_H
#define SR_API_CONSOLE_H

#include "api/api.h"

/* At start: draws the session secret, starts the overview's per-minute sampler
 * (a timer on app->loop, closed with every other handle at the end). */
void sr_api_console_start(sr_api *app);

/* For handlers that take a key: the request's console session, when it has no
 * Authorization header. 1: a valid session (and, unless GET or HEAD, a valid
 * X-CSRF-Token); 0: no session cookie (check the key as usual); -1: a bad,
 * expired or CSRF-less session, already answered (401 or 403). */
int sr_api_console_auth(sr_api *app, sr_http_request *req);
/* 1 when the request carries the admin key (Bearer) or a console session;
 * otherwise answers (401, or 403 when no admin key is configured) and returns 0. */
int sr_api_require_admin(sr_api *app, sr_http_request *req);

/* GET /console and /console/{file}: the embedded static files. */
void sr_api_console_page(sr_api *app, sr_http_request *req, const char *const *params, int n);
/* POST /v1/console/login {"key": ADMIN_KEY}, POST /v1/console/logout, GET /v1/console/session. */
void sr_api_console_login(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_console_logout(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_console_session(sr_api *app, sr_http_request *req, const char *const *params, int n);

/* The read endpoints (api_read.c, api_overview.c); all need the admin key or a session. */
void sr_api_search_messages(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_failed_groups(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_inbound_list(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_providers(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_rules_get(sr_api *app, sr_http_request *req, const char *const *params, int n);
void sr_api_overview(sr_api *app, sr_http_request *req, const char *const *params, int n);
/* The sampler behind the overview's per-minute series (api_overview.c). */
void sr_api_overview_start(sr_api *app);

/* Copies query parameter name, percent-decoded ('+' is a space), into out.
 * Returns 1 when present, 0 when absent, -1 when it is longer than outlen - 1
 * or not valid percent-encoding. */
int sr_api_query_param(const char *query, const char *name, char *out, size_t outlen);

#endif
