/* Tests of the HTTP client: real requests on one libuv loop against our own
 * HTTP server (and, where an answer must be malformed or held back, a raw TCP
 * peer) on 127.0.0.1 with free ports. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "http/http_client.h"
#include "http/http_server.h"
#include "unit.h"

#define MAX_CONNS 256
#define MAX_DELAYED 64

typedef struct fx fx;

/* An answer the server holds back for fx.delay_ms. */
typedef struct delayed_answer {
    uv_timer_t timer;
    sr_http_request *req;
    fx *f;
    bool answered;
} delayed_answer;

struct fx {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes UV_RUN_ONCE so waits can check their deadline */
    sr_http_server *server;
    sr_http_client *client;
    int port;
    char base[64]; /* "http://127.0.0.1:PORT" */
    uint64_t delay_ms;
    /* what the server saw */
    int requests;
    char method[16];
    char path[256];
    char query[256];
    sr_buf body;
    char token[64];  /* X-Token */
    char custom[64]; /* X-Custom, "" when absent */
    char content_type[64];
    bool saw_expect;
    void *conns[MAX_CONNS];
    int conn_count;
    delayed_answer *delayed[MAX_DELAYED];
    int delayed_count;
    bool stopped;
};

/* What a client callback saw. */
typedef struct result {
    int calls;
    int status;
    int error;
    char error_message[256];
    sr_buf body;
    sr_buf headers; /* "name: value\n" per header */
    char x_reply[64];
    char content_type[64];
    double duration_ms;
    int start_rc_in_callback; /* what request_start returned when called from the callback */
    fx *f;
} result;

/* Set while sr_http_client_request_start runs: a callback seeing it fails the test. */
static bool inside_start;

/* ---- server side ---- */

static void copy_header(const sr_http_request *req, const char *name, char *out, size_t out_len) {
    size_t len;
    const char *v = sr_http_header_get(req, name, &len);
    snprintf(out, out_len, "%.*s", v ? (int)len : 0, v ? v : "");
}

static void delayed_closed(uv_handle_t *h) { free(h->data); }

static void delayed_fire(uv_timer_t *t) {
    delayed_answer *d = t->data;
    if (!d->answered) {
        d->answered = true;
        sr_http_respond(d->req, 200, "text/plain", "late", 4, NULL);
    }
    fx *f = d->f;
    for (int i = 0; i < f->delayed_count; i++) {
        if (f->delayed[i] == d) f->delayed[i] = f->delayed[--f->delayed_count];
    }
    uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

static void server_handler(sr_http_request *req, void *ud) {
    fx *f = ud;
    f->requests++;
    snprintf(f->method, sizeof f->method, "%s", req->method_name);
    snprintf(f->path, sizeof f->path, "%s", req->path);
    snprintf(f->query, sizeof f->query, "%s", req->query);
    sr_buf_reset(&f->body);
    sr_buf_append(&f->body, req->body, req->body_len);
    copy_header(req, "x-token", f->token, sizeof f->token);
    copy_header(req, "x-custom", f->custom, sizeof f->custom);
    copy_header(req, "content-type", f->content_type, sizeof f->content_type);
    f->saw_expect = sr_http_header_get(req, "expect", NULL) != NULL;
    bool known = false;
    for (int i = 0; i < f->conn_count; i++) known = known || f->conns[i] == req->conn_;
    if (!known && f->conn_count < MAX_CONNS) f->conns[f->conn_count++] = req->conn_;

    if (strcmp(req->path, "/hello") == 0) {
        sr_http_respond(req, 200, "text/plain", "hello", 5, "X-Reply: yes\r\n");
    } else if (strcmp(req->path, "/echo") == 0) {
        char extra[64];
        snprintf(extra, sizeof extra, "X-Method: %s\r\n", req->method_name);
        sr_http_respond(req, 201, "application/octet-stream", req->body, req->body_len, extra);
    } else if (strcmp(req->path, "/redirect") == 0) {
        sr_http_respond(req, 302, "text/plain", "moved", 5, "Location: /hello\r\n");
    } else if (strcmp(req->path, "/slow") == 0) {
        if (f->delayed_count == MAX_DELAYED) UNIT_FAIL("too many delayed answers");
        delayed_answer *d = calloc(1, sizeof *d);
        CHECK(d != NULL);
        d->req = req;
        d->f = f;
        d->timer.data = d;
        uv_timer_init(&f->loop, &d->timer);
        uv_timer_start(&d->timer, delayed_fire, f->delay_ms, 0);
        f->delayed[f->delayed_count++] = d;
    } else {
        /* Any other path is echoed back, so concurrent answers can be matched. */
        sr_http_respond(req, 200, "text/plain", req->path, req->path_len, NULL);
    }
}

static void tick_cb(uv_timer_t *t) {}

static void fx_open_with(fx *f, const sr_http_options *base_opt) {
    memset(f, 0, sizeof *f);
    sr_buf_init(&f->body);
    CHECK_INT(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, tick_cb, 5, 5);
    sr_http_options opt = *base_opt;
    opt.handler = server_handler;
    opt.handler_ud = f;
    char err[256];
    int rc = sr_http_server_start(&f->server, &f->loop, "127.0.0.1", 0, &opt, err, sizeof err);
    if (rc != 0) UNIT_FAIL("server start: %s", err);
    f->port = sr_http_server_port(f->server);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->port);
    CHECK_INT(sr_http_client_new(&f->client, &f->loop), 0);
}

static void fx_open(fx *f) {
    sr_http_options opt;
    sr_http_options_default(&opt);
    fx_open_with(f, &opt);
}

static void fx_server_stopped(void *ud) { ((fx *)ud)->stopped = true; }

/* Closes the client (if still open) and the server, lets every handle close,
 * and checks that none is left behind. */
static void fx_close(fx *f) {
    if (f->client) sr_http_client_close(f->client);
    f->client = NULL;
    while (f->delayed_count > 0) {
        delayed_answer *d = f->delayed[0];
        uv_timer_stop(&d->timer);
        delayed_fire(&d->timer);
    }
    sr_http_server_stop(f->server, fx_server_stopped, f);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    CHECK(f->stopped);
    sr_http_server_free(f->server);
    CHECK_INT(uv_loop_close(&f->loop), 0);
    sr_buf_free(&f->body);
}

#define WAIT_UNTIL(f, cond, ms)                                                                                        \
    do {                                                                                                               \
        uv_update_time(&(f)->loop);                                                                                    \
        uint64_t wait_deadline = uv_now(&(f)->loop) + (ms);                                                            \
        while (!(cond)) {                                                                                              \
            if (uv_now(&(f)->loop) > wait_deadline) UNIT_FAIL("timed out waiting for %s", #cond);                      \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                                           \
        }                                                                                                              \
    } while (0)

/* ---- client side ---- */

static void result_init(result *r, fx *f) {
    memset(r, 0, sizeof *r);
    sr_buf_init(&r->body);
    sr_buf_init(&r->headers);
    r->f = f;
}

static void result_free(result *r) {
    sr_buf_free(&r->body);
    sr_buf_free(&r->headers);
}

static void on_response(const sr_http_client_response *resp, void *ud) {
    result *r = ud;
    if (inside_start) UNIT_FAIL("callback ran inside sr_http_client_request_start");
    r->calls++;
    r->status = resp->status;
    r->error = resp->error;
    snprintf(r->error_message, sizeof r->error_message, "%s", resp->error_message ? resp->error_message : "");
    sr_buf_reset(&r->body);
    sr_buf_append(&r->body, resp->body, resp->body_len);
    CHECK_INT(resp->body[resp->body_len], '\0');
    sr_buf_reset(&r->headers);
    for (int i = 0; i < resp->header_count; i++)
        sr_buf_printf(&r->headers, "%s: %s\n", resp->headers[i].name, resp->headers[i].value);
    const char *v = sr_http_client_header_get(resp, "x-reply");
    snprintf(r->x_reply, sizeof r->x_reply, "%s", v ? v : "");
    v = sr_http_client_header_get(resp, "CONTENT-type");
    snprintf(r->content_type, sizeof r->content_type, "%s", v ? v : "");
    r->duration_ms = resp->duration_ms;
}

static int start_request(fx *f, sr_http_client_request *req, sr_http_client_cb cb, void *ud) {
    inside_start = true;
    int rc = sr_http_client_request_start(f->client, req, cb, ud);
    inside_start = false;
    return rc;
}

static int start_get(fx *f, const char *path, result *r) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    sr_http_client_request req = {.method = "GET", .url = url, .timeout_ms = 5000};
    return start_request(f, &req, on_response, r);
}

/* ---- tests ---- */

TEST(get_returns_status_body_and_headers) {
    fx f;
    fx_open(&f);
    result r;
    result_init(&r, &f);
    char url[128];
    snprintf(url, sizeof url, "%s/hello?x=1&y=two", f.base);
    const char *headers[] = {"X-Token: abc123", NULL};
    sr_http_client_request req = {.method = "GET", .url = url, .headers = headers};
    CHECK_INT(start_request(&f, &req, on_response, &r), 0);
    CHECK_INT(sr_http_client_in_flight(f.client), 1);
    WAIT_UNTIL(&f, r.calls == 1, 5000);
    CHECK_INT(r.error, 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body.data, "hello");
    CHECK_INT(r.body.len, 5);
    CHECK_STR(r.x_reply, "yes");
    CHECK_STR(r.content_type, "text/plain");
    CHECK(strstr(r.headers.data, "Content-Length: 5\n") != NULL);
    CHECK(r.duration_ms > 0);
    CHECK_INT(sr_http_client_in_flight(f.client), 0);
    /* what arrived at the server */
    CHECK_INT(f.requests, 1);
    CHECK_STR(f.method, "GET");
    CHECK_STR(f.path, "/hello");
    CHECK_STR(f.query, "x=1&y=two");
    CHECK_STR(f.token, "abc123");
    CHECK_INT(f.body.len, 0);
    result_free(&r);
    fx_close(&f);
}

TEST(post_sends_body_and_headers) {
    fx f;
    fx_open(&f);
    result r;
    result_init(&r, &f);
    char url[128];
    snprintf(url, sizeof url, "%s/echo", f.base);
    static const char body[] = "{\"to\":\"+15550100\",\"text\":\"hi\\u0000\"}\0tail";
    const char *headers[] = {"Content-Type: application/json", "X-Token: t0ken", NULL};
    sr_http_client_request req = {
        .method = "POST", .url = url, .headers = headers, .body = body, .body_len = sizeof body - 1};
    CHECK_INT(start_request(&f, &req, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 1, 5000);
    CHECK_INT(r.error, 0);
    CHECK_INT(r.status, 201);
    CHECK_INT(r.body.len, sizeof body - 1);
    CHECK(memcmp(r.body.data, body, sizeof body - 1) == 0);
    CHECK(strstr(r.headers.data, "X-Method: POST\n") != NULL);
    CHECK_STR(f.method, "POST");
    CHECK_INT(f.body.len, sizeof body - 1);
    CHECK(memcmp(f.body.data, body, sizeof body - 1) == 0);
    CHECK_STR(f.content_type, "application/json");
    CHECK_STR(f.token, "t0ken");
    CHECK(!f.saw_expect);
    result_free(&r);
    fx_close(&f);
}

/* curl asks large POSTs to wait for "100 Continue" unless told otherwise. */
TEST(large_post_is_sent_without_expect_continue) {
    sr_http_options opt;
    sr_http_options_default(&opt);
    opt.max_body_bytes = 8 * 1024 * 1024;
    fx f;
    fx_open_with(&f, &opt);
    result r;
    result_init(&r, &f);
    size_t len = 3 * 1024 * 1024 + 17;
    char *body = malloc(len);
    CHECK(body != NULL);
    for (size_t i = 0; i < len; i++) body[i] = (char)('a' + i % 26);
    char url[128];
    snprintf(url, sizeof url, "%s/echo", f.base);
    sr_http_client_request req = {.method = "POST", .url = url, .body = body, .body_len = len};
    CHECK_INT(start_request(&f, &req, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 1, 8000);
    CHECK_INT(r.error, 0);
    CHECK_INT(r.status, 201);
    CHECK(!f.saw_expect);
    CHECK_INT(f.body.len, len);
    CHECK_INT(r.body.len, len); /* a 3 MiB answer body is collected whole */
    CHECK(memcmp(r.body.data, body, len) == 0);
    free(body);
    result_free(&r);
    fx_close(&f);
}

TEST(redirect_is_not_followed) {
    fx f;
    fx_open(&f);
    result r;
    result_init(&r, &f);
    CHECK_INT(start_get(&f, "/redirect", &r), 0);
    WAIT_UNTIL(&f, r.calls == 1, 5000);
    CHECK_INT(r.error, 0);
    CHECK_INT(r.status, 302);
    CHECK_STR(r.body.data, "moved");
    CHECK(strstr(r.headers.data, "Location: /hello\n") != NULL);
    CHECK_STR(r.x_reply, "");
    CHECK_INT(f.requests, 1);
    result_free(&r);
    fx_close(&f);
}

TEST(hundred_concurrent_requests_all_complete) {
    fx f;
    fx_open(&f);
    enum { N = 100 };
    static result r[N];
    for (int i = 0; i < N; i++) {
        result_init(&r[i], &f);
        char path[32];
        snprintf(path, sizeof path, "/n/%d", i);
        CHECK_INT(start_get(&f, path, &r[i]), 0);
    }
    CHECK_INT(sr_http_client_in_flight(f.client), N);
    WAIT_UNTIL(&f, sr_http_client_in_flight(f.client) == 0, 8000);
    for (int i = 0; i < N; i++) {
        char path[32];
        snprintf(path, sizeof path, "/n/%d", i);
        CHECK_INT(r[i].calls, 1);
        CHECK_INT(r[i].error, 0);
        CHECK_INT(r[i].status, 200);
        CHECK_STR(r[i].body.data, path);
        result_free(&r[i]);
    }
    CHECK_INT(f.requests, N);
    sr_http_client_stats st;
    sr_http_client_stats_get(f.client, &st);
    CHECK_INT(st.requests_completed, N);
    CHECK_INT(st.requests_failed, 0);
    fx_close(&f);
}

/* Each request starts from the previous one's callback. */
typedef struct chain {
    fx *f;
    int left;
    int done;
    int failures;
} chain;

static void chain_next(const sr_http_client_response *resp, void *ud) {
    chain *ch = ud;
    if (inside_start) UNIT_FAIL("callback ran inside sr_http_client_request_start");
    if (resp->error || resp->status != 200 || strcmp(resp->body, "/seq") != 0) ch->failures++;
    ch->done++;
    if (--ch->left > 0) {
        char url[128];
        snprintf(url, sizeof url, "%s/seq", ch->f->base);
        sr_http_client_request req = {.method = "GET", .url = url};
        CHECK_INT(start_request(ch->f, &req, chain_next, ch), 0);
    }
}

TEST(sequential_requests_reuse_one_connection) {
    fx f;
    fx_open(&f);
    chain ch = {.f = &f, .left = 50};
    char url[128];
    snprintf(url, sizeof url, "%s/seq", f.base);
    sr_http_client_request req = {.method = "GET", .url = url};
    CHECK_INT(start_request(&f, &req, chain_next, &ch), 0);
    WAIT_UNTIL(&f, ch.done == 50, 8000);
    CHECK_INT(ch.failures, 0);
    CHECK_INT(f.requests, 50);
    CHECK_INT(f.conn_count, 1); /* distinct server connections */
    CHECK_INT(sr_http_server_open_connections(f.server), 1);
    sr_http_client_stats st;
    sr_http_client_stats_get(f.client, &st);
    CHECK_INT(st.connections_opened, 1);
    CHECK_INT(st.requests_completed, 50);
    CHECK_INT(st.sockets_watched, 1); /* the connection's watcher waits between its requests */
    fx_close(&f);
}

/* A kept-alive connection the server closed meanwhile is replaced, not failed. */
TEST(stale_keepalive_connection_is_replaced) {
    sr_http_options opt;
    sr_http_options_default(&opt);
    opt.idle_timeout_ms = 300;
    fx f;
    fx_open_with(&f, &opt);
    result r;
    result_init(&r, &f);
    CHECK_INT(start_get(&f, "/hello", &r), 0);
    WAIT_UNTIL(&f, r.calls == 1, 5000);
    CHECK_INT(r.status, 200);
    WAIT_UNTIL(&f, sr_http_server_open_connections(f.server) == 0, 5000);
    CHECK_INT(start_get(&f, "/hello", &r), 0);
    WAIT_UNTIL(&f, r.calls == 2, 5000);
    CHECK_INT(r.error, 0);
    CHECK_INT(r.status, 200);
    sr_http_client_stats st;
    sr_http_client_stats_get(f.client, &st);
    CHECK_INT(st.connections_opened, 2);
    CHECK_INT(st.sockets_watched, 2); /* the closed connection's watcher went with it */
    result_free(&r);
    fx_close(&f);
}

/* Pooled easy handles are reset: nothing of one request leaks into the next. */
TEST(pooled_handles_carry_nothing_over) {
    fx f;
    fx_open(&f);
    result r;
    result_init(&r, &f);
    char url[128];
    snprintf(url, sizeof url, "%s/echo", f.base);
    const char *headers[] = {"X-Custom: first", NULL};
    sr_http_client_request post = {.method = "POST", .url = url, .headers = headers, .body = "payload", .body_len = 7};
    CHECK_INT(start_request(&f, &post, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 1, 5000);
    CHECK_STR(f.method, "POST");
    CHECK_STR(f.custom, "first");
    CHECK_STR(f.body.data, "payload");

    sr_http_client_request get = {.method = "GET", .url = url};
    CHECK_INT(start_request(&f, &get, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 2, 5000);
    CHECK_INT(r.status, 201);
    CHECK_STR(f.method, "GET");
    CHECK_STR(f.custom, "");
    CHECK_INT(f.body.len, 0);
    CHECK(strstr(r.headers.data, "X-Method: GET\n") != NULL);

    sr_http_client_request head = {.method = "HEAD", .url = url};
    CHECK_INT(start_request(&f, &head, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 3, 5000);
    CHECK_INT(r.error, 0);
    CHECK_STR(f.method, "HEAD");

    sr_http_client_request put = {.method = "PUT", .url = url, .body = "v2", .body_len = 2};
    CHECK_INT(start_request(&f, &put, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 4, 5000);
    CHECK_STR(f.method, "PUT");
    CHECK_STR(f.body.data, "v2");
    CHECK_STR(r.body.data, "v2");

    sr_http_client_request del = {.method = "DELETE", .url = url};
    CHECK_INT(start_request(&f, &del, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 5, 5000);
    CHECK_INT(r.status, 201);
    CHECK_STR(f.method, "DELETE");
    CHECK_INT(f.body.len, 0);
    CHECK_INT(r.body.len, 0);

    sr_http_client_stats st;
    sr_http_client_stats_get(f.client, &st);
    CHECK_INT(st.connections_opened, 1);
    result_free(&r);
    fx_close(&f);
}

TEST(timeout_fires_after_timeout_ms_not_before) {
    fx f;
    fx_open(&f);
    f.delay_ms = 3000;
    result r;
    result_init(&r, &f);
    /* A first answer keeps the connection, so the timeout hits a reused one. */
    CHECK_INT(start_get(&f, "/hello", &r), 0);
    WAIT_UNTIL(&f, r.calls == 1, 5000);
    char url[128];
    snprintf(url, sizeof url, "%s/slow", f.base);
    sr_http_client_request req = {.method = "GET", .url = url, .timeout_ms = 300};
    CHECK_INT(start_request(&f, &req, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 2, 5000);
    CHECK_INT(r.error, SR_HTTP_E_TIMEOUT);
    CHECK_INT(r.status, 0);
    CHECK(r.error_message[0] != '\0');
    CHECK(r.duration_ms >= 300.0);
    CHECK(r.duration_ms < 1500.0);
    CHECK_INT(f.requests, 2); /* it did reach the server */
    result_free(&r);
    fx_close(&f);
}

TEST(connection_refused_is_a_connect_error) {
    fx f;
    fx_open(&f);
    /* A port that was free a moment ago, with nothing listening. */
    uv_tcp_t probe;
    uv_tcp_init(&f.loop, &probe);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    CHECK_INT(uv_tcp_bind(&probe, (const struct sockaddr *)&addr, 0), 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&probe, (struct sockaddr *)&addr, &len);
    int port = ntohs(addr.sin_port);
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(&f.loop, UV_RUN_NOWAIT);

    result r;
    result_init(&r, &f);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    sr_http_client_request req = {.method = "GET", .url = url, .timeout_ms = 3000};
    CHECK_INT(start_request(&f, &req, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 1, 5000);
    CHECK_INT(r.error, SR_HTTP_E_CONNECT);
    CHECK_INT(r.status, 0);
    CHECK(r.error_message[0] != '\0');
    CHECK(r.duration_ms < 1000.0);
    result_free(&r);
    fx_close(&f);
}

/* ".invalid" never resolves (RFC 2606). Without a DNS answer in time the
 * timeout hits before any connection, which is a connect error too. */
TEST(unknown_host_is_a_connect_error) {
    fx f;
    fx_open(&f);
    result r;
    result_init(&r, &f);
    sr_http_client_request req = {.method = "GET", .url = "http://smsrules-test.invalid/", .timeout_ms = 2000};
    CHECK_INT(start_request(&f, &req, on_response, &r), 0);
    WAIT_UNTIL(&f, r.calls == 1, 5000);
    CHECK_INT(r.error, SR_HTTP_E_CONNECT);
    CHECK_INT(r.status, 0);
    result_free(&r);
    fx_close(&f);
}

/* A listener with backlog 0 that never accepts: the first connection waits in
 * the kernel's accept queue (its request is sent and never answered), the
 * second one's SYN is dropped, so it never connects. */
TEST(connect_timeout_is_a_connect_error_and_answer_timeout_is_not) {
    fx f;
    fx_open(&f);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_INT(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    CHECK_INT(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    CHECK_INT(listen(fd, 0), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/never", ntohs(addr.sin_port));
    sr_http_client_request req = {.method = "GET", .url = url, .timeout_ms = 400, .connect_timeout_ms = 400};
    result a, b;
    result_init(&a, &f);
    result_init(&b, &f);
    CHECK_INT(start_request(&f, &req, on_response, &a), 0);
    WAIT_UNTIL(&f, a.calls == 1, 5000);
    /* a held the only accept-queue slot until it timed out; curl closed it,
     * but the kernel keeps the finished connection queued, so the slot stays taken. */
    CHECK_INT(a.error, SR_HTTP_E_TIMEOUT);
    CHECK_INT(start_request(&f, &req, on_response, &b), 0);
    WAIT_UNTIL(&f, b.calls == 1, 5000);
    CHECK_INT(b.error, SR_HTTP_E_CONNECT);
    CHECK(b.duration_ms >= 400.0);
    close(fd);
    result_free(&a);
    result_free(&b);
    fx_close(&f);
}

TEST(only_http_and_https_are_fetched) {
    fx f;
    fx_open(&f);
    const char *urls[] = {"file:///etc/hostname", "ftp://127.0.0.1/", "gopher://127.0.0.1/", "dict://127.0.0.1/"};
    enum { N = sizeof urls / sizeof urls[0] };
    result r[N];
    for (int i = 0; i < N; i++) {
        result_init(&r[i], &f);
        sr_http_client_request req = {.method = "GET", .url = urls[i]};
        CHECK_INT(start_request(&f, &req, on_response, &r[i]), 0);
    }
    WAIT_UNTIL(&f, sr_http_client_in_flight(f.client) == 0, 5000);
    for (int i = 0; i < N; i++) {
        CHECK_INT(r[i].calls, 1);
        CHECK_INT(r[i].error, SR_HTTP_E_TRANSPORT);
        CHECK_INT(r[i].body.len, 0);
        result_free(&r[i]);
    }
    fx_close(&f);
}

TEST(callback_never_runs_inside_request_start) {
    fx f;
    fx_open(&f);
    result ok, refused;
    result_init(&ok, &f);
    result_init(&refused, &f);
    /* Misuse is refused synchronously and the callback never runs. */
    sr_http_client_request bad = {.method = "GET", .url = NULL};
    CHECK_INT(start_request(&f, &bad, on_response, &refused), -EINVAL);
    char url[128];
    snprintf(url, sizeof url, "%s/hello", f.base);
    bad.url = url;
    bad.method = "GE T";
    CHECK_INT(start_request(&f, &bad, on_response, &refused), -EINVAL);
    const char *injected[] = {"X-A: 1\r\nX-Evil: 2", NULL};
    sr_http_client_request inj = {.method = "GET", .url = url, .headers = injected};
    CHECK_INT(start_request(&f, &inj, on_response, &refused), -EINVAL);
    CHECK_INT(sr_http_client_in_flight(f.client), 0);

    /* curl refuses a URL over 8 MB in curl_easy_setopt itself: that failure
     * is still reported through the loop, not from inside request_start. */
    size_t n = 9 * 1000 * 1000;
    char *huge = malloc(n + 1);
    CHECK(huge != NULL);
    memcpy(huge, "http://127.0.0.1/", 17);
    memset(huge + 17, 'a', n - 17);
    huge[n] = '\0';
    result failed;
    result_init(&failed, &f);
    sr_http_client_request big = {.method = "GET", .url = huge};
    CHECK_INT(start_request(&f, &big, on_response, &failed), 0);
    free(huge);
    CHECK_INT(start_get(&f, "/hello", &ok), 0);
    CHECK_INT(failed.calls, 0);
    CHECK_INT(ok.calls, 0);
    CHECK_INT(sr_http_client_in_flight(f.client), 2);
    WAIT_UNTIL(&f, sr_http_client_in_flight(f.client) == 0, 5000);
    CHECK_INT(failed.calls, 1);
    CHECK_INT(failed.error, SR_HTTP_E_TRANSPORT);
    CHECK(failed.error_message[0] != '\0');
    CHECK_INT(ok.calls, 1);
    CHECK_INT(ok.status, 200);
    CHECK_INT(refused.calls, 0);
    result_free(&ok);
    result_free(&refused);
    result_free(&failed);
    fx_close(&f);
}

static void on_cancelled(const sr_http_client_response *resp, void *ud) {
    result *r = ud;
    on_response(resp, ud);
    /* Starting a request from a cancel callback is refused, not crashed. */
    sr_http_client_request req = {.method = "GET", .url = r->f->base};
    r->start_rc_in_callback = sr_http_client_request_start(r->f->client, &req, on_response, r);
}

TEST(close_cancels_requests_in_flight) {
    fx f;
    fx_open(&f);
    f.delay_ms = 5000;
    enum { SENT = 10, QUEUED = 5, N = SENT + QUEUED + 1 };
    result r[N];
    char url[128];
    snprintf(url, sizeof url, "%s/slow", f.base);
    sr_http_client_request req = {.method = "POST", .url = url, .body = "x", .body_len = 1};
    for (int i = 0; i < SENT; i++) {
        result_init(&r[i], &f);
        CHECK_INT(start_request(&f, &req, on_cancelled, &r[i]), 0);
    }
    /* The first ten are at the server, waiting for their answers. */
    WAIT_UNTIL(&f, f.requests == SENT, 5000);
    /* Five more that curl has not started yet, and one that failed in setopt. */
    for (int i = SENT; i < SENT + QUEUED; i++) {
        result_init(&r[i], &f);
        CHECK_INT(start_request(&f, &req, on_cancelled, &r[i]), 0);
    }
    size_t n = 9 * 1000 * 1000;
    char *huge = malloc(n + 1);
    CHECK(huge != NULL);
    memset(huge, 'a', n);
    huge[n] = '\0';
    result_init(&r[N - 1], &f);
    sr_http_client_request big = {.method = "GET", .url = huge};
    CHECK_INT(start_request(&f, &big, on_cancelled, &r[N - 1]), 0);
    free(huge);
    CHECK_INT(sr_http_client_in_flight(f.client), N);

    sr_http_client_close(f.client);
    f.client = NULL;
    for (int i = 0; i < N; i++) {
        CHECK_INT(r[i].calls, 1);
        CHECK_INT(r[i].error, SR_HTTP_E_CANCELLED);
        CHECK_INT(r[i].status, 0);
        CHECK_INT(r[i].start_rc_in_callback, -ECANCELED);
    }
    /* Every uv handle of the client closes (fx_close checks uv_loop_close),
     * and no callback runs a second time. */
    fx_close(&f);
    for (int i = 0; i < N; i++) {
        CHECK_INT(r[i].calls, 1);
        result_free(&r[i]);
    }
}

/* A callback may close the client: the others are cancelled, nothing breaks. */
typedef struct closer {
    fx *f;
    int ok;
    int cancelled;
    int other;
} closer;

static void on_close_from_callback(const sr_http_client_response *resp, void *ud) {
    closer *cl = ud;
    if (resp->error == 0 && resp->status == 200) {
        cl->ok++;
        sr_http_client_close(cl->f->client);
        cl->f->client = NULL;
    } else if (resp->error == SR_HTTP_E_CANCELLED) {
        cl->cancelled++;
    } else {
        cl->other++;
    }
}

TEST(close_from_inside_a_callback) {
    fx f;
    fx_open(&f);
    f.delay_ms = 5000;
    closer cl = {.f = &f};
    char fast[128], slow[128];
    snprintf(fast, sizeof fast, "%s/hello", f.base);
    snprintf(slow, sizeof slow, "%s/slow", f.base);
    for (int i = 0; i < 5; i++) {
        sr_http_client_request req = {.method = "GET", .url = slow};
        CHECK_INT(sr_http_client_request_start(f.client, &req, on_close_from_callback, &cl), 0);
    }
    sr_http_client_request req = {.method = "GET", .url = fast};
    CHECK_INT(sr_http_client_request_start(f.client, &req, on_close_from_callback, &cl), 0);
    WAIT_UNTIL(&f, cl.ok == 1, 5000);
    CHECK_INT(cl.cancelled, 5);
    CHECK_INT(cl.other, 0);
    fx_close(&f);
    CHECK_INT(cl.ok + cl.cancelled + cl.other, 6);
}

/* A raw TCP peer: answers one request with canned bytes, then closes. For
 * answers our server would never give. */
typedef struct raw_server {
    uv_tcp_t listener;
    uv_tcp_t conn;
    bool conn_open;
    const char *answer;
    sr_buf in;
    int port;
} raw_server;

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char space[4096];
    buf->base = space;
    buf->len = sizeof space;
}

/* The raw peer answers once, then closes. */
static void raw_close_conn(raw_server *rs) {
    if (!rs->conn_open) return;
    uv_close((uv_handle_t *)&rs->conn, NULL);
    rs->conn_open = false;
}

static void raw_written(uv_write_t *w, int status) {
    raw_close_conn(w->handle->data);
    free(w);
}

static void raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    raw_server *rs = s->data;
    if (nread < 0) {
        raw_close_conn(rs);
        return;
    }
    sr_buf_append(&rs->in, buf->base, (size_t)nread);
    if (rs->answer && strstr(rs->in.data, "\r\n\r\n")) {
        if (!rs->answer[0]) {
            rs->answer = NULL;
            raw_close_conn(rs);
            return;
        }
        uv_write_t *w = malloc(sizeof *w);
        CHECK(w != NULL);
        uv_buf_t b = uv_buf_init((char *)rs->answer, (unsigned)strlen(rs->answer));
        CHECK_INT(uv_write(w, s, &b, 1, raw_written), 0);
        rs->answer = NULL;
    }
}

static void raw_on_connection(uv_stream_t *l, int status) {
    raw_server *rs = l->data;
    CHECK(!rs->conn_open);
    uv_tcp_init(l->loop, &rs->conn);
    rs->conn.data = rs;
    rs->conn_open = true;
    CHECK_INT(uv_accept(l, (uv_stream_t *)&rs->conn), 0);
    uv_read_start((uv_stream_t *)&rs->conn, raw_alloc, raw_read);
}

static void raw_start(raw_server *rs, uv_loop_t *loop, const char *answer) {
    memset(rs, 0, sizeof *rs);
    sr_buf_init(&rs->in);
    rs->answer = answer;
    uv_tcp_init(loop, &rs->listener);
    rs->listener.data = rs;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    CHECK_INT(uv_tcp_bind(&rs->listener, (const struct sockaddr *)&addr, 0), 0);
    CHECK_INT(uv_listen((uv_stream_t *)&rs->listener, 16, raw_on_connection), 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&rs->listener, (struct sockaddr *)&addr, &len);
    rs->port = ntohs(addr.sin_port);
}

static void raw_stop(raw_server *rs) {
    uv_close((uv_handle_t *)&rs->listener, NULL);
    raw_close_conn(rs);
    uv_run(rs->listener.loop, UV_RUN_NOWAIT); /* rs lives on the caller's stack */
    sr_buf_free(&rs->in);
}

static void raw_exchange(fx *f, const char *answer, result *r) {
    raw_server rs;
    raw_start(&rs, &f->loop, answer);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/raw", rs.port);
    sr_http_client_request req = {.method = "GET", .url = url, .timeout_ms = 2000};
    CHECK_INT(start_request(f, &req, on_response, r), 0);
    WAIT_UNTIL(f, r->calls == 1, 5000);
    raw_stop(&rs);
}

/* An interim 1xx answer with headers of its own comes first. */
TEST(only_the_final_answer_headers_are_kept) {
    fx f;
    fx_open(&f);
    result r;
    result_init(&r, &f);
    raw_exchange(&f,
                 "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final:   padded value  \r\n"
                 "X-Folded: one\r\n  two\r\nConnection: close\r\n\r\nok",
                 &r);
    CHECK_INT(r.error, 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body.data, "ok");
    CHECK_STR(r.headers.data, "Content-Length: 2\nX-Final: padded value\nX-Folded: one two\nConnection: close\n");
    result_free(&r);
    fx_close(&f);
}

TEST(broken_answers_are_transport_errors) {
    fx f;
    fx_open(&f);
    const char *answers[] = {
        "this is not HTTP\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", /* breaks off in the body */
        "",                                                                                /* closed without a word */
    };
    for (int i = 0; i < 3; i++) {
        result r;
        result_init(&r, &f);
        raw_exchange(&f, answers[i], &r);
        if (r.error != SR_HTTP_E_TRANSPORT) UNIT_FAIL("answer %d: error %d (%s)", i, r.error, r.error_message);
        CHECK_INT(r.status, 0);
        CHECK(r.error_message[0] != '\0');
        result_free(&r);
    }
    fx_close(&f);
}

static void count_polls(uv_handle_t *h, void *arg) {
    if (h->type == UV_POLL && uv_is_active(h)) (*(int *)arg)++;
}

static int active_polls(uv_loop_t *loop) {
    int n = 0;
    uv_walk(loop, count_polls, &n);
    return n;
}

/* curl asks for a 0 ms timeout when a transfer is added; its first step
 * (opening the socket) must happen in the very next loop pass. UV_RUN_NOWAIT
 * runs exactly one pass without sleeping, a fraction of a millisecond after
 * uv_update_time, so a timer rounded up to 1 ms would almost never be due in
 * it; twenty rounds make passing by chance vanishingly unlikely. */
TEST(zero_ms_curl_timer_runs_on_the_next_loop_pass) {
    fx f;
    fx_open(&f);
    for (int i = 0; i < 20; i++) {
        sr_http_client_close(f.client);
        CHECK_INT(sr_http_client_new(&f.client, &f.loop), 0);
        uv_run(&f.loop, UV_RUN_NOWAIT); /* let the previous client's handles close */
        result r;
        result_init(&r, &f);
        uv_update_time(&f.loop);
        CHECK_INT(start_get(&f, "/hello", &r), 0);
        CHECK_INT(active_polls(&f.loop), 0);
        uv_run(&f.loop, UV_RUN_NOWAIT);
        CHECK(active_polls(&f.loop) >= 1);
        WAIT_UNTIL(&f, r.calls == 1, 5000);
        CHECK_INT(r.status, 200);
        result_free(&r);
    }
    fx_close(&f);
}

typedef struct retrier {
    fx *f;
    int left;
    int done;
    int wrong;
} retrier;

/* Starts the same doomed request again from its own callback, as a naive
 * retry policy would. */
static void retry_at_once(const sr_http_client_response *resp, void *ud) {
    retrier *rt = ud;
    rt->done++;
    if (resp->error != SR_HTTP_E_TRANSPORT) rt->wrong++;
    if (rt->left-- > 0) {
        sr_http_client_request req = {.method = "GET", .url = "ftp://127.0.0.1/"};
        CHECK_INT(sr_http_client_request_start(rt->f->client, &req, retry_at_once, rt), 0);
    }
}

static void count_pass(uv_check_t *h) { (*(long *)h->data)++; }

/* A request curl fails without any I/O (here: a refused scheme) completes
 * during the 0 ms timeout's socket action, and a callback that starts it
 * again makes curl ask for 0 ms once more. That must wait for the next loop
 * pass: run again within the same pass (as a re-armed 0 ms uv_timer does in
 * libuv's timer phase), the loop would never get back to polling and every
 * other handle on it would starve. */
TEST(immediate_curl_work_does_not_starve_the_loop) {
    fx f;
    fx_open(&f);
    enum { RETRIES = 200 };
    long passes = 0;
    uv_check_t check;
    uv_check_init(&f.loop, &check);
    check.data = &passes;
    uv_check_start(&check, count_pass);
    retrier rt = {.f = &f, .left = RETRIES - 1};
    sr_http_client_request req = {.method = "GET", .url = "ftp://127.0.0.1/"};
    CHECK_INT(sr_http_client_request_start(f.client, &req, retry_at_once, &rt), 0);
    WAIT_UNTIL(&f, rt.done == RETRIES, 8000);
    CHECK_INT(rt.wrong, 0);
    /* one loop pass per attempt at least */
    if (passes < RETRIES) UNIT_FAIL("%ld loop passes for %d attempts", passes, RETRIES);
    uv_close((uv_handle_t *)&check, NULL);
    fx_close(&f);
}
