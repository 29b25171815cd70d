/* http_client: outgoing HTTP requests, with libcurl's multi interface driven
 * by the daemon's libuv loop. The only unit that includes curl.h.
 *
 * curl's sockets are watched with uv_poll handles and its timer with one
 * uv_timer (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION, then
 * curl_multi_socket_action); a 0 ms timer runs at once (on the next loop
 * pass, never rounded up to 1 ms: a uv_idle handle, so that it cannot starve
 * the loop either; see client_on_curl_timer). Easy handles are reused from a pool and
 * connections are kept alive and reused. CURLOPT_NOSIGNAL is always set.
 * Nothing here blocks the loop. Loop thread only. */
#ifndef SR_HTTP_CLIENT_H
#define SR_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"

typedef struct sr_http_client sr_http_client;

typedef struct sr_http_client_header {
    char *name;  /* as received, without the trailing ':' */
    char *value; /* trimmed */
} sr_http_client_header;

/* What came back. Owned by the client; valid during the callback only. */
typedef struct sr_http_client_response {
    int status;                /* HTTP status, 0 when there was no complete answer (error != 0) */
    int error;                 /* 0, or one of SR_HTTP_E_* below */
    const char *error_message; /* human text for error (curl's), or NULL */
    const char *body;          /* NUL-terminated; at most SR_HTTP_CLIENT_MAX_BODY bytes (more: TRANSPORT) */
    size_t body_len;
    sr_http_client_header *headers; /* of the final answer only (not of 1xx answers) */
    int header_count;
    double duration_ms; /* from start to the end of the answer */
} sr_http_client_response;

#define SR_HTTP_E_TIMEOUT 1 /* no complete answer within timeout_ms */
/* Could not connect (refused, unreachable, DNS, or the timeout passed before
 * the connection was up): the request was certainly not sent. */
#define SR_HTTP_E_CONNECT 2
#define SR_HTTP_E_TRANSPORT 3 /* connection broke, TLS error, malformed answer, ... */
#define SR_HTTP_E_CANCELLED 4 /* sr_http_client_close ran first */

/* Larger answer bodies fail the request with SR_HTTP_E_TRANSPORT. */
#define SR_HTTP_CLIENT_MAX_BODY (16 * 1024 * 1024)

typedef void (*sr_http_client_cb)(const sr_http_client_response *resp, void *ud);

typedef struct sr_http_client_request {
    const char *method; /* "GET", "POST", ... */
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" strings (no CR/LF), or NULL */
    const char *body;           /* may be NULL */
    size_t body_len;
    long timeout_ms;         /* whole request; 0: 30000 */
    long connect_timeout_ms; /* 0: min(timeout_ms, 10000) */
} sr_http_client_request;

int sr_http_client_new(sr_http_client **out, uv_loop_t *loop);
/* Cancels every request in flight (their callbacks run with
 * SR_HTTP_E_CANCELLED before this returns), releases curl, closes the uv
 * handles (run the loop once more to finish closing), frees the client. */
void sr_http_client_close(sr_http_client *c);

/* Starts a request; everything in req is copied, so it may live on the stack.
 * cb runs exactly once, later, from the loop (never from inside this call).
 * Returns 0, or a negative code when the request could not even start (then
 * cb never runs): -EINVAL for a missing url or cb, a malformed method or a
 * header with CR/LF, -ECANCELED while closing, -ENOMEM. Redirects are not
 * followed; only http and https URLs are fetched. */
int sr_http_client_request_start(sr_http_client *c, const sr_http_client_request *req, sr_http_client_cb cb, void *ud);

/* Header value by case-insensitive name, or NULL. */
const char *sr_http_client_header_get(const sr_http_client_response *r, const char *name);

/* Requests in flight. */
int sr_http_client_in_flight(const sr_http_client *c);

/* Counters since sr_http_client_new, for metrics and tests. */
typedef struct sr_http_client_stats {
    uint64_t requests_completed; /* callbacks run, any outcome */
    uint64_t requests_failed;    /* of which with error != 0 */
    uint64_t connections_opened; /* new connections; the other requests reused kept-alive ones */
    uint64_t sockets_watched;    /* uv_poll watchers made: one per connection, kept while it is kept alive */
} sr_http_client_stats;
void sr_http_client_stats_get(const sr_http_client *c, sr_http_client_stats *out);

#endif
