/* http_server: the HTTP/1.1 server, on libuv with llhttp (built with
 * LLHTTP_STRICT_MODE, see the Makefile; no lenient flags).
 *
 * Owns listening, connections, request parsing and limits, and writing
 * answers in order. One request per connection is handled at a time: while a
 * handler works, reading stops and pipelined bytes wait, so answers always go
 * out in request order. A handler may answer at once or later (after a store
 * commit, after a Lua coroutine resumes): every request gets exactly one
 * sr_http_respond call, even when the client went away meanwhile.
 *
 * Limits, each with its answer: header bytes → 431, body bytes → 413, open
 * connections → 503 and close, header-read timeout → 408 and close, body read
 * stalled → 408 and close, whole request (headers + body) not received by the
 * request deadline → 408 and close, idle keep-alive timeout → close. Both
 * Content-Length and Transfer-Encoding → 400 and close (llhttp's strict rule);
 * a header name that is not an RFC 9110 token or a bare-LF line end → 400
 * and close (llhttp's strict mode); an obs-fold continuation line → 400 and
 * close; a chunk-size line (size and extensions) over HTTP_MAX_CHUNK_LINE
 * bytes → 413 and close; trailers over max_header_bytes → 431 and close
 * (trailers are read and dropped, never given to the handler).
 *
 * Backpressure: answers a client does not read wait in its connection's write
 * queue; once more than max_unsent_bytes wait, the connection stops reading
 * (and parsing what it already read) until half of that drained, so a client
 * that pipelines without reading costs a bounded amount of memory. */
#ifndef SR_HTTP_SERVER_H
#define SR_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"

typedef struct sr_http_server sr_http_server;

typedef struct sr_http_header {
    const char *name; /* lower-cased */
    size_t name_len;
    const char *value;
    size_t value_len;
} sr_http_header;

/* A request: borrowed from the server, valid until sr_http_respond returns. */
typedef struct sr_http_request {
    int method;              /* llhttp_method_t */
    const char *method_name; /* "GET", ... */
    const char *path;        /* without the query, NUL-terminated */
    size_t path_len;
    const char *query; /* after '?', NUL-terminated, "" when none */
    size_t query_len;
    const char *body; /* NUL-terminated (the NUL is not counted) */
    size_t body_len;
    sr_http_header *headers;
    int header_count;
    const char *route; /* metrics label set by the handler; "unknown" by default */
    uint64_t start_ns; /* uv_hrtime() when the request was complete */
    void *user;        /* free for the handler */
    void *conn_;       /* private */
} sr_http_request;

typedef void (*sr_http_handler)(sr_http_request *req, void *ud);
/* Called once per answer, after it was queued for writing. */
typedef void (*sr_http_observer)(const sr_http_request *req, int status, void *ud);

typedef struct sr_http_options {
    size_t max_header_bytes;     /* default 16 KiB */
    size_t max_body_bytes;       /* default 1 MiB */
    int max_connections;         /* default 10000 */
    uint64_t header_timeout_ms;  /* default 10 s: first byte of a request to end of headers */
    uint64_t body_timeout_ms;    /* default 10 s without body bytes */
    uint64_t idle_timeout_ms;    /* default 60 s keep-alive between requests */
    uint64_t request_timeout_ms; /* default 30 s: first byte of a request to its last; 0 none */
    size_t max_unsent_bytes;     /* default 256 KiB of answers not yet sent before reading pauses */
    sr_http_handler handler;
    void *handler_ud;
    sr_http_observer observer; /* may be NULL */
    void *observer_ud;
} sr_http_options;

/* Fills the defaults. */
void sr_http_options_default(sr_http_options *o);

/* Counters of the protections above, for metrics. */
typedef struct sr_http_stats {
    uint64_t read_paused;      /* times a connection stopped reading for unsent answers */
    uint64_t header_timeouts;  /* 408: headers not complete within header_timeout_ms */
    uint64_t body_timeouts;    /* 408: no body bytes for body_timeout_ms */
    uint64_t request_timeouts; /* 408: request not complete within request_timeout_ms */
} sr_http_stats;

/* Binds host:port and starts accepting. Returns 0 or a negative uv error
 * with a message in err. port 0 picks a free port (see sr_http_server_port). */
int sr_http_server_start(sr_http_server **out, uv_loop_t *loop, const char *host, int port, const sr_http_options *opt,
                         char *err, size_t errlen);
int sr_http_server_port(const sr_http_server *s);
int sr_http_server_open_connections(const sr_http_server *s);
/* Borrowed, valid until sr_http_server_free. */
const sr_http_stats *sr_http_server_stats(const sr_http_server *s);
/* Stops accepting, closes idle connections, lets in-flight requests finish
 * (their connections close after the answer), then calls done. */
void sr_http_server_stop(sr_http_server *s, void (*done)(void *ud), void *ud);
/* Closes every connection at once (after a drain deadline). */
void sr_http_server_abort(sr_http_server *s);
/* Frees the server after stop completed. */
void sr_http_server_free(sr_http_server *s);

/* Header value by lower-case name, or NULL. */
const char *sr_http_header_get(const sr_http_request *r, const char *name, size_t *len_out);

/* Answers the request. body is copied. extra_headers: NULL or complete
 * "Name: value\r\n" lines. After this call req must not be used. */
void sr_http_respond(sr_http_request *req, int status, const char *content_type, const char *body, size_t body_len,
                     const char *extra_headers);
/* {"error":{"code":code,"message":message}} with status. */
void sr_http_respond_error(sr_http_request *req, int status, const char *code, const char *message,
                           const char *extra_headers);
const char *sr_http_status_text(int status);

#endif
