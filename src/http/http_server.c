#include "http/http_server.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "codec/jsonw.h"

#define HTTP_MAX_HEADERS 100
#define HTTP_READ_BUFFER (64 * 1024)
/* While a request is with its handler the connection keeps reading (stopping
 * and restarting costs epoll_ctl calls on every asynchronous request); what
 * arrives waits in `pending`, and reading stops only once this much waits. */
#define HTTP_PENDING_MAX (64 * 1024)
/* A chunk-size line (hex size, extensions, CRLF) longer than this is refused
 * (413): nothing legitimate comes near it, and without a bound a client could
 * stream an endless extension (or endless leading zeros) that llhttp reads
 * without ever reaching the data. */
#define HTTP_MAX_CHUNK_LINE 4096
#define HTTP_STR_(x) #x
#define HTTP_STR(x) HTTP_STR_(x)

typedef enum { CONN_IDLE, CONN_HEADERS, CONN_BODY, CONN_HANDLING } conn_state;

typedef struct http_header_index {
    size_t name_off, name_len, value_off, value_len;
} http_header_index;

typedef struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    llhttp_t parser;
    sr_http_server *server;
    struct http_conn *prev, *next;
    conn_state state;
    int handles_open; /* tcp + timer: freed when both closed and no request is out */
    bool handling;    /* a request is with the handler */
    bool in_dispatch; /* inside the handler call (answers made now are synchronous) */
    bool close_after; /* close once the current answer is written */
    bool closing;
    bool reading;
    bool peer_eof; /* the client half-closed while a request was with the handler */
    bool keep_alive;
    bool output_paused; /* reading stopped until unsent answers drain */
    int error_status;   /* set by parser callbacks that hit a limit (conn_refuse) */
    const char *error_code, *error_message;
    size_t header_bytes;
    int last_header_part; /* 0 none, 1 field, 2 value */
    int header_count;
    sr_buf url;
    sr_buf head; /* header names and values, NUL-separated */
    http_header_index index[HTTP_MAX_HEADERS];
    sr_http_header headers[HTTP_MAX_HEADERS];
    sr_buf body;
    sr_buf pending; /* bytes read but not parsed yet (pipelined requests) */
    int writes_in_flight;
    size_t unsent_bytes;       /* answer bytes queued in uv_write, not yet written */
    uint64_t request_deadline; /* uv_now() by which the request must be complete */
    /* The state's timeout (conn_set_state) as a uv_now() time, 0: none. The uv timer is armed
     * lazily: only moved earlier, never later or stopped, so a keep-alive request costs no timer
     * heap work; when it fires before `deadline` it is armed again for the rest. */
    uint64_t deadline;
    uint64_t timer_due; /* when the uv timer fires, 0: not armed */
    size_t trailer_bytes;
    /* Chunk-size line accounting (see HTTP_MAX_CHUNK_LINE). Positions are in
     * the buffer of the current llhttp_execute call only. */
    const char *parse_base;       /* start of that buffer */
    const char *parse_mark;       /* end of the last data callback in it, or NULL */
    const char *chunk_line_start; /* where the open chunk line began in it, or NULL: at parse_base */
    size_t chunk_line_bytes;      /* of the open line, in earlier buffers */
    bool chunk_line_open;
    bool chunk_last;  /* the 0-size chunk was seen: trailers follow */
    bool value_split; /* the last header value ran to the end of the previous buffer */
    sr_http_request req;
} http_conn;

struct sr_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listener_open;
    sr_http_options opt;
    llhttp_settings_t settings;
    http_conn *conns;
    int open_connections;
    int port;
    bool stopping;
    void (*stop_done)(void *ud);
    void *stop_ud;
    char read_buffer[HTTP_READ_BUFFER];
    char date[64];
    uint64_t date_second;
    sr_buf out; /* an answer being built (sr_http_respond): kept, so answers need no allocation */
    sr_http_stats stats;
};

typedef struct http_write {
    uv_write_t req;
    http_conn *conn;
    size_t len;
    char *data;
} http_write;

static void conn_close(http_conn *c);
static void conn_feed(http_conn *c, const char *data, size_t len);
static void conn_resume(http_conn *c);

void sr_http_options_default(sr_http_options *o) {
    memset(o, 0, sizeof *o);
    o->max_header_bytes = 16 * 1024;
    o->max_body_bytes = 1024 * 1024;
    o->max_connections = 10000;
    o->header_timeout_ms = 10000;
    o->body_timeout_ms = 10000;
    o->idle_timeout_ms = 60000;
    o->request_timeout_ms = 30000;
    o->max_unsent_bytes = 256 * 1024;
}

const char *sr_http_status_text(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

/* ---- output ---- */

static const char *server_date(sr_http_server *s) {
    uint64_t now_s = uv_now(s->loop) / 1000;
    if (now_s != s->date_second || !s->date[0]) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_second = now_s;
    }
    return s->date;
}

/* Whether so many answer bytes wait for the client that reading must pause. */
static bool conn_output_full(const http_conn *c) { return c->unsent_bytes > c->server->opt.max_unsent_bytes; }

/* Stops reading until conn_write_cb sees the answers drain. */
static void conn_pause_output(http_conn *c) {
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (!c->output_paused) {
        c->output_paused = true;
        c->server->stats.read_paused++;
    }
}

static void conn_write_cb(uv_write_t *wr, int status) {
    http_write *w = (http_write *)wr;
    http_conn *c = w->conn;
    c->unsent_bytes -= w->len;
    free(w->data);
    free(w);
    c->writes_in_flight--;
    if (status < 0 && !c->closing) {
        conn_close(c);
        return;
    }
    if (c->closing) return;
    if (c->close_after && c->writes_in_flight == 0 && !c->handling) {
        conn_close(c);
        return;
    }
    /* Resume at half the bound, not just under it, so a client that reads
     * slowly does not flip reading on and off for every answer. */
    if (c->output_paused && c->unsent_bytes <= c->server->opt.max_unsent_bytes / 2) {
        c->output_paused = false;
        conn_resume(c);
    }
}

/* Writes bytes in order: try at once, queue the rest. */
static void conn_write(http_conn *c, const char *data, size_t len) {
    if (c->closing) return;
    size_t off = 0;
    if (c->writes_in_flight == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0) off = (size_t)n;
        else if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
    }
    if (off == len) return;
    http_write *w = malloc(sizeof *w);
    if (!w) abort();
    w->conn = c;
    w->len = len - off;
    w->data = malloc(len - off);
    if (!w->data) abort();
    memcpy(w->data, data + off, len - off);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(len - off));
    c->writes_in_flight++;
    c->unsent_bytes += w->len;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb);
    if (rc < 0) {
        c->writes_in_flight--;
        c->unsent_bytes -= w->len;
        free(w->data);
        free(w);
        conn_close(c);
    }
}

static void build_response(sr_http_server *s, sr_buf *out, int status, const char *content_type, const char *body,
                           size_t body_len, const char *extra, bool close) {
    sr_buf_reserve(out, 160 + body_len);
    sr_buf_puts(out, "HTTP/1.1 ");
    sr_buf_put_u64(out, (uint64_t)status);
    sr_buf_putc(out, ' ');
    sr_buf_puts(out, sr_http_status_text(status));
    sr_buf_puts(out, "\r\nDate: ");
    sr_buf_puts(out, server_date(s));
    sr_buf_puts(out, "\r\n");
    if (content_type) {
        sr_buf_puts(out, "Content-Type: ");
        sr_buf_puts(out, content_type);
        sr_buf_puts(out, "\r\n");
    }
    sr_buf_puts(out, "Content-Length: ");
    sr_buf_put_u64(out, body_len);
    sr_buf_puts(out, "\r\n");
    if (close) sr_buf_puts(out, "Connection: close\r\n");
    if (extra) sr_buf_puts(out, extra);
    sr_buf_puts(out, "\r\n");
    sr_buf_append(out, body, body_len);
}

static void json_error_body(sr_buf *b, const char *code, const char *message) {
    sr_jw w;
    sr_jw_init(&w, b);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "error");
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "code", code);
    sr_jw_field_str(&w, "message", message);
    sr_jw_object_end(&w);
    sr_jw_object_end(&w);
}

/* An answer outside a request (limits hit while reading): write it, close. */
static void conn_fail(http_conn *c, int status, const char *code, const char *message) {
    sr_http_server *s = c->server;
    sr_buf body, out;
    sr_buf_init(&body);
    sr_buf_init(&out);
    json_error_body(&body, code, message);
    build_response(s, &out, status, "application/json", body.data, body.len, NULL, true);
    c->close_after = true;
    uv_timer_stop(&c->timer);
    c->deadline = c->timer_due = 0;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    conn_write(c, out.data, out.len);
    if (s->opt.observer) {
        sr_http_request r;
        memset(&r, 0, sizeof r);
        r.method = -1;
        r.method_name = "";
        r.path = r.query = r.body = "";
        r.route = "invalid";
        s->opt.observer(&r, status, s->opt.observer_ud);
    }
    sr_buf_free(&body);
    sr_buf_free(&out);
    if (c->writes_in_flight == 0) conn_close(c);
}

/* ---- connection lifetime ---- */

static void conn_maybe_free(http_conn *c) {
    if (c->handles_open > 0 || c->handling) return;
    sr_http_server *s = c->server;
    sr_buf_free(&c->url);
    sr_buf_free(&c->head);
    sr_buf_free(&c->body);
    sr_buf_free(&c->pending);
    free(c);
    if (s->stopping && s->open_connections == 0 && !s->listener_open && s->stop_done) {
        void (*done)(void *) = s->stop_done;
        s->stop_done = NULL;
        done(s->stop_ud);
    }
}

static void conn_handle_closed(uv_handle_t *h) {
    http_conn *c = h->data;
    c->handles_open--;
    conn_maybe_free(c);
}

static void conn_close(http_conn *c) {
    if (c->closing) return;
    c->closing = true;
    sr_http_server *s = c->server;
    if (c->prev) c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->open_connections--;
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void conn_timer_cb(uv_timer_t *t) {
    http_conn *c = t->data;
    sr_http_server *s = c->server;
    c->timer_due = 0;
    uint64_t now = uv_now(s->loop);
    if (!c->deadline) return;
    if (now < c->deadline) {
        /* Armed for an earlier state's timeout: the current one ends later. */
        c->timer_due = c->deadline;
        uv_timer_start(&c->timer, conn_timer_cb, c->deadline - now, 0);
        return;
    }
    c->deadline = 0;
    bool reading_request = c->state == CONN_HEADERS || c->state == CONN_BODY;
    if (reading_request && s->opt.request_timeout_ms && uv_now(s->loop) >= c->request_deadline) {
        s->stats.request_timeouts++;
        conn_fail(c, 408, "request_timeout", "request not received completely within request_timeout_ms");
        return;
    }
    switch (c->state) {
    case CONN_IDLE: conn_close(c); break;
    case CONN_HEADERS:
        s->stats.header_timeouts++;
        conn_fail(c, 408, "request_timeout", "request headers not received in time");
        break;
    case CONN_BODY:
        s->stats.body_timeouts++;
        conn_fail(c, 408, "request_timeout", "request body not received in time");
        break;
    case CONN_HANDLING: break;
    }
}

/* Arms the state's timer. While a request arrives the timer fires at the
 * earlier of the state's own timeout (header total, body silence) and the
 * request deadline, so a client that trickles bytes cannot hold the
 * connection by never falling silent. */
static void conn_set_state(http_conn *c, conn_state st) {
    c->state = st;
    const sr_http_options *o = &c->server->opt;
    uint64_t ms = 0;
    switch (st) {
    case CONN_IDLE: ms = o->idle_timeout_ms; break;
    case CONN_HEADERS: ms = o->header_timeout_ms; break;
    case CONN_BODY: ms = o->body_timeout_ms; break;
    case CONN_HANDLING: ms = 0; break;
    }
    if ((st == CONN_HEADERS || st == CONN_BODY) && o->request_timeout_ms) {
        uint64_t now = uv_now(c->server->loop);
        uint64_t left = c->request_deadline > now ? c->request_deadline - now : 1;
        if (!ms || left < ms) ms = left;
    }
    if (!ms) {
        c->deadline = 0; /* a timer still armed fires and finds nothing to do */
        return;
    }
    c->deadline = uv_now(c->server->loop) + ms;
    if (!c->timer_due || c->deadline < c->timer_due) {
        c->timer_due = c->deadline;
        uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
    }
}

static void conn_reset_request(http_conn *c) {
    sr_buf_reset(&c->url);
    sr_buf_reset(&c->head);
    sr_buf_reset(&c->body);
    c->header_bytes = 0;
    c->header_count = 0;
    c->last_header_part = 0;
    c->error_status = 0;
    c->trailer_bytes = 0;
    c->chunk_line_open = false;
    c->chunk_last = false;
    c->chunk_line_bytes = 0;
    c->chunk_line_start = NULL;
}

/* ---- parser callbacks ---- */

/* Records the answer for a limit a callback hit; conn_parse sends it. */
static int conn_refuse(http_conn *c, int status, const char *code, const char *message) {
    c->error_status = status;
    c->error_code = code;
    c->error_message = message;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p) {
    http_conn *c = p->data;
    conn_reset_request(c);
    c->request_deadline = uv_now(c->server->loop) + c->server->opt.request_timeout_ms;
    conn_set_state(c, CONN_HEADERS);
    return 0;
}

static int header_budget(http_conn *c, size_t len) {
    c->header_bytes += len;
    if (c->header_bytes > c->server->opt.max_header_bytes)
        return conn_refuse(c, 431, "headers_too_large", "request headers exceed the limit");
    return 0;
}

/* Trailers (after a chunked body) are counted against max_header_bytes and
 * dropped: no handler reads them, and keeping them beside the headers would
 * move the header buffer under the pointers already taken into it. */
static int trailer_budget(http_conn *c, size_t len) {
    c->trailer_bytes += len;
    if (c->trailer_bytes > c->server->opt.max_header_bytes)
        return conn_refuse(c, 431, "trailers_too_large", "request trailers exceed the limit");
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    http_conn *c = p->data;
    if (header_budget(c, len)) return HPE_USER;
    sr_buf_append(&c->url, at, len);
    return 0;
}

static void lower_append(sr_buf *b, const char *at, size_t len) {
    sr_buf_reserve(b, len);
    for (size_t i = 0; i < len; i++) {
        char ch = at[i];
        b->data[b->len + i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    b->len += len;
    b->data[b->len] = '\0';
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    http_conn *c = p->data;
    if (p->flags & F_TRAILING) return trailer_budget(c, len + 4);
    if (header_budget(c, len + 4)) return HPE_USER;
    if (c->last_header_part != 1) {
        if (c->last_header_part == 2) sr_buf_putc(&c->head, '\0');
        if (c->header_count == HTTP_MAX_HEADERS)
            return conn_refuse(c, 431, "headers_too_large", "request headers exceed the limit");
        http_header_index *ix = &c->index[c->header_count++];
        ix->name_off = c->head.len;
        ix->name_len = 0;
        ix->value_off = 0;
        ix->value_len = 0;
        c->last_header_part = 1;
    }
    lower_append(&c->head, at, len);
    c->index[c->header_count - 1].name_len += len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    http_conn *c = p->data;
    c->parse_mark = at + len;
    if (p->flags & F_TRAILING) return trailer_budget(c, len);
    /* A value arrives in more than one piece only when a read ended inside
     * it; any other second piece is an obs-fold continuation line, which
     * llhttp passes on and RFC 9112 5.2 lets a server refuse. */
    if (c->last_header_part == 2 && !(c->value_split && at == c->parse_base))
        return conn_refuse(c, 400, "bad_request", "malformed HTTP request: obsolete line folding in a header");
    c->value_split = false;
    if (header_budget(c, len)) return HPE_USER;
    http_header_index *ix = &c->index[c->header_count - 1];
    if (c->last_header_part != 2) {
        sr_buf_putc(&c->head, '\0');
        ix->value_off = c->head.len;
        c->last_header_part = 2;
    }
    sr_buf_append(&c->head, at, len);
    ix->value_len += len;
    return 0;
}

/* A chunk-size line starts after the headers and after each chunk's data.
 * It starts a few bytes (the CRLFs) after parse_mark, so the count is
 * slightly high, which a limit this far above real lines does not notice. */
static void chunk_line_begin(http_conn *c) {
    c->chunk_line_open = true;
    c->chunk_line_bytes = 0;
    c->chunk_line_start = c->parse_mark;
}

/* Bytes of the open chunk line up to `end` (a position in the current buffer). */
static size_t chunk_line_length(const http_conn *c, const char *end) {
    const char *start = c->chunk_line_start ? c->chunk_line_start : c->parse_base;
    return c->chunk_line_bytes + (size_t)(end - start);
}

static int chunk_line_refuse(http_conn *c) {
    return conn_refuse(c, 413, "chunk_line_too_long",
                       "a chunk-size line (size and extensions) exceeds " HTTP_STR(HTTP_MAX_CHUNK_LINE) " bytes");
}

static int on_headers_complete(llhttp_t *p) {
    http_conn *c = p->data;
    sr_http_server *s = c->server;
    if (c->last_header_part == 1) sr_buf_putc(&c->head, '\0');
    sr_buf_putc(&c->head, '\0');
    for (int i = 0; i < c->header_count; i++) {
        http_header_index *ix = &c->index[i];
        c->headers[i].name = c->head.data + ix->name_off;
        c->headers[i].name_len = ix->name_len;
        c->headers[i].value = ix->value_len ? c->head.data + ix->value_off : "";
        c->headers[i].value_len = ix->value_len;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s->opt.max_body_bytes)
        return conn_refuse(c, 413, "body_too_large", "request body exceeds the limit");
    conn_set_state(c, CONN_BODY);
    if (p->flags & F_CHUNKED) chunk_line_begin(c);
    /* Clients that wait for "100 Continue" before a body get it at once. */
    c->req.headers = c->headers;
    c->req.header_count = c->header_count;
    const char *expect = sr_http_header_get(&c->req, "expect", NULL);
    if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_major == 1 && p->http_minor == 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_write(c, cont, sizeof cont - 1);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    http_conn *c = p->data;
    if (c->body.len + len > c->server->opt.max_body_bytes)
        return conn_refuse(c, 413, "body_too_large", "request body exceeds the limit");
    c->parse_mark = at + len;
    sr_buf_append(&c->body, at, len);
    /* A body that keeps arriving is not stalled: re-arm the body timer. */
    if (c->state == CONN_BODY) conn_set_state(c, CONN_BODY);
    return 0;
}

static int on_chunk_header(llhttp_t *p) {
    http_conn *c = p->data;
    c->chunk_line_open = false;
    if (p->content_length == 0) c->chunk_last = true;
    return 0;
}

static int on_chunk_complete(llhttp_t *p) {
    http_conn *c = p->data;
    if (!c->chunk_last) chunk_line_begin(c);
    return 0;
}

/* Extension bytes arrive with their position: refuse a long line at once,
 * without waiting for the end of the buffer (conn_parse). */
static int on_chunk_extension(llhttp_t *p, const char *at, size_t len) {
    http_conn *c = p->data;
    if (c->chunk_line_open && chunk_line_length(c, at + len) > HTTP_MAX_CHUNK_LINE) return chunk_line_refuse(c);
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    http_conn *c = p->data;
    c->keep_alive = llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED;
}

/* ---- dispatch ---- */

static void conn_dispatch(http_conn *c) {
    sr_http_server *s = c->server;
    sr_http_request *r = &c->req;
    memset(r, 0, sizeof *r);
    sr_buf_cstr(&c->url);
    sr_buf_cstr(&c->body);
    char *q = memchr(c->url.data, '?', c->url.len);
    r->path = c->url.data;
    if (q) {
        *q = '\0';
        r->path_len = (size_t)(q - c->url.data);
        r->query = q + 1;
        r->query_len = c->url.len - r->path_len - 1;
    } else {
        r->path_len = c->url.len;
        r->query = "";
        r->query_len = 0;
    }
    r->method = c->parser.method;
    r->method_name = llhttp_method_name((llhttp_method_t)c->parser.method);
    r->body = c->body.data;
    r->body_len = c->body.len;
    r->headers = c->headers;
    r->header_count = c->header_count;
    r->route = "unknown";
    r->start_ns = uv_hrtime();
    r->conn_ = c;
    if (!c->keep_alive || s->stopping) c->close_after = true;
    c->handling = true;
    conn_set_state(c, CONN_HANDLING);
    c->in_dispatch = true;
    s->opt.handler(r, s->opt.handler_ud);
    c->in_dispatch = false;
}

/* Parses as much as possible; returns bytes consumed or -1 when the
 * connection failed. Stops after one complete request. */
static long conn_parse(http_conn *c, const char *data, size_t len) {
    c->parse_base = data;
    c->parse_mark = NULL;
    c->chunk_line_start = NULL;
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    c->value_split = c->last_header_part == 2 && c->parse_mark == data + len;
    if (err == HPE_OK) {
        if (c->chunk_line_open) {
            /* The buffer ended inside a chunk-size line: carry its length over. */
            c->chunk_line_bytes = chunk_line_length(c, data + len);
            c->chunk_line_start = NULL;
            if (c->chunk_line_bytes > HTTP_MAX_CHUNK_LINE) {
                chunk_line_refuse(c);
                conn_fail(c, c->error_status, c->error_code, c->error_message);
                return -1;
            }
        }
        return (long)len;
    }
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        long used = pos ? (long)(pos - data) : (long)len;
        if (err == HPE_PAUSED) {
            llhttp_resume(&c->parser);
        } else {
            /* No protocol upgrades here: answer the request, then close. */
            llhttp_resume_after_upgrade(&c->parser);
            c->keep_alive = false;
        }
        conn_dispatch(c);
        return used;
    }
    if (c->error_status) {
        conn_fail(c, c->error_status, c->error_code, c->error_message);
    } else if (err == HPE_UNEXPECTED_CONTENT_LENGTH) {
        conn_fail(c, 400, "bad_request", "Content-Length together with Transfer-Encoding is not allowed");
    } else {
        char msg[160];
        snprintf(msg, sizeof msg, "malformed HTTP request: %s", llhttp_get_error_reason(&c->parser));
        conn_fail(c, 400, "bad_request", msg);
    }
    return -1;
}

/* Parses requests from data while the connection can take them: not while
 * one is with its handler, and not while too many answers wait unsent (a
 * client that pipelines without reading would otherwise grow them without
 * bound). The rest waits in `pending`. */
static void conn_feed(http_conn *c, const char *data, size_t len) {
    while (len > 0 && !c->handling && !c->closing && !c->close_after && !conn_output_full(c)) {
        long used = conn_parse(c, data, len);
        if (used < 0) return;
        data += used;
        len -= (size_t)used;
    }
    if (c->closing || c->close_after) return;
    if (len > 0) sr_buf_append(&c->pending, data, len);
    if (conn_output_full(c)) {
        conn_pause_output(c);
    } else if (c->handling && c->reading && c->pending.len > HTTP_PENDING_MAX) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    http_conn *c = h->data;
    buf->base = c->server->read_buffer;
    buf->len = HTTP_READ_BUFFER;
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    http_conn *c = stream->data;
    if (nread < 0) {
        if (nread == UV_EOF) {
            /* A half-close after the requests: answer them (the one with the
             * handler, those pending, those whose answers are still queued),
             * then close (conn_resume). */
            c->peer_eof = true;
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
            if (!c->handling) conn_resume(c);
            return;
        }
        conn_close(c);
        return;
    }
    if (nread == 0) return;
    if (c->handling) {
        sr_buf_append(&c->pending, buf->base, (size_t)nread);
        if (c->pending.len > HTTP_PENDING_MAX) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
        }
        return;
    }
    if (c->pending.len) {
        /* Only reachable if bytes were left while reading resumed: keep order. */
        sr_buf_append(&c->pending, buf->base, (size_t)nread);
        conn_resume(c);
        return;
    }
    conn_feed(c, buf->base, (size_t)nread);
}

/* After an asynchronous answer: parse what waited, then read again. */
static void conn_resume(http_conn *c) {
    if (c->closing) return;
    if (c->pending.len) {
        sr_buf waiting = c->pending;
        sr_buf_init(&c->pending);
        conn_feed(c, waiting.data, waiting.len);
        sr_buf_free(&waiting);
    }
    if (c->handling || c->closing || c->close_after) return;
    if (conn_output_full(c)) {
        /* conn_write_cb resumes once the answers drain. */
        conn_pause_output(c);
        return;
    }
    if (c->peer_eof) {
        /* Nothing more can arrive: close once the answers are written. The
         * idle timer bounds a client that never reads them. */
        c->close_after = true;
        conn_set_state(c, CONN_IDLE);
        if (c->writes_in_flight == 0) conn_close(c);
        return;
    }
    if (!c->reading) {
        c->output_paused = false;
        if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) == 0) c->reading = true;
        else
            conn_close(c);
    }
}

/* ---- public: answers ---- */

const char *sr_http_header_get(const sr_http_request *r, const char *name, size_t *len_out) {
    for (int i = 0; i < r->header_count; i++) {
        if (strcmp(r->headers[i].name, name) == 0) {
            if (len_out) *len_out = r->headers[i].value_len;
            return r->headers[i].value;
        }
    }
    return NULL;
}

void sr_http_respond(sr_http_request *req, int status, const char *content_type, const char *body, size_t body_len,
                     const char *extra_headers) {
    http_conn *c = req->conn_;
    sr_http_server *s = c->server;
    if (s->opt.observer) s->opt.observer(req, status, s->opt.observer_ud);
    c->handling = false;
    if (c->closing) {
        conn_maybe_free(c);
        return;
    }
    if (s->stopping) c->close_after = true;
    sr_buf_reset(&s->out);
    build_response(s, &s->out, status, content_type, body, body_len, extra_headers, c->close_after);
    conn_write(c, s->out.data, s->out.len);
    if (s->out.cap > 64 * 1024) sr_buf_free(&s->out); /* keep a small one, not the largest ever */
    if (c->closing) return;
    conn_reset_request(c);
    conn_set_state(c, CONN_IDLE);
    if (c->close_after) {
        if (c->writes_in_flight == 0) conn_close(c);
        return;
    }
    if (!c->in_dispatch) conn_resume(c);
}

void sr_http_respond_error(sr_http_request *req, int status, const char *code, const char *message,
                           const char *extra_headers) {
    sr_buf body;
    sr_buf_init(&body);
    json_error_body(&body, code, message);
    sr_http_respond(req, status, "application/json", body.data, body.len, extra_headers);
    sr_buf_free(&body);
}

/* ---- public: server ---- */

static void server_on_connection(uv_stream_t *listener, int status) {
    sr_http_server *s = listener->data;
    if (status < 0) {
        sr_warn("accept failed", "error", uv_strerror(status));
        return;
    }
    http_conn *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->server = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->open_connections++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->open_connections > s->opt.max_connections || s->stopping) {
        conn_fail(c, 503, "too_many_connections", "connection limit reached, try again later");
        return;
    }
    conn_set_state(c, CONN_IDLE);
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) == 0) c->reading = true;
    else
        conn_close(c);
}

static void server_free_on_close(uv_handle_t *h) { free(h->data); }

int sr_http_server_start(sr_http_server **out, uv_loop_t *loop, const char *host, int port, const sr_http_options *opt,
                         char *err, size_t errlen) {
    *out = NULL;
    sr_http_server *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    s->opt = *opt;
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_chunk_header = on_chunk_header;
    s->settings.on_chunk_complete = on_chunk_complete;
    s->settings.on_chunk_extension_name = on_chunk_extension;
    s->settings.on_chunk_extension_value = on_chunk_extension;
    s->settings.on_message_complete = on_message_complete;

    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc != 0) rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    if (rc != 0) {
        snprintf(err, errlen, "invalid listen address %s: %s", host, uv_strerror(rc));
        free(s);
        return rc;
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = true;
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 1024, server_on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        /* The listener lives inside s: free s once libuv is done with it. */
        uv_close((uv_handle_t *)&s->listener, server_free_on_close);
        return rc;
    }
    struct sockaddr_storage bound;
    int namelen = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &namelen);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

int sr_http_server_port(const sr_http_server *s) { return s->port; }

int sr_http_server_open_connections(const sr_http_server *s) { return s->open_connections; }

const sr_http_stats *sr_http_server_stats(const sr_http_server *s) { return &s->stats; }

static void server_listener_closed(uv_handle_t *h) {
    sr_http_server *s = h->data;
    s->listener_open = false;
    if (s->open_connections == 0 && s->stop_done) {
        void (*done)(void *) = s->stop_done;
        s->stop_done = NULL;
        done(s->stop_ud);
    }
}

void sr_http_server_stop(sr_http_server *s, void (*done)(void *ud), void *ud) {
    if (s->stopping) return;
    s->stopping = true;
    s->stop_done = done;
    s->stop_ud = ud;
    uv_close((uv_handle_t *)&s->listener, server_listener_closed);
    http_conn *c = s->conns;
    while (c) {
        http_conn *next = c->next;
        if (c->handling) c->close_after = true;
        else if (c->state == CONN_HEADERS || c->state == CONN_BODY) {
            /* A request still arriving is in flight too: let it complete; it is
             * answered with Connection: close (conn_dispatch sees stopping). The
             * read timers and the drain deadline bound the wait. */
        } else if (c->writes_in_flight == 0)
            conn_close(c);
        else
            c->close_after = true;
        c = next;
    }
}

void sr_http_server_abort(sr_http_server *s) {
    http_conn *c = s->conns;
    while (c) {
        http_conn *next = c->next;
        conn_close(c);
        c = next;
    }
}

void sr_http_server_free(sr_http_server *s) {
    sr_buf_free(&s->out);
    free(s);
}
