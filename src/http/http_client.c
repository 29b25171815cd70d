#include "http/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

#define CLIENT_DEFAULT_TIMEOUT_MS 30000L
#define CLIENT_MAX_CONNECT_TIMEOUT_MS 10000L
/* Kept-alive connections cached by the multi handle (curl's default would be
 * four per easy handle ever added, which follows the peak, not the need). */
#define CLIENT_MAX_CONNECTS 256L
/* Idle easy handles kept for reuse; beyond that they are freed. */
#define CLIENT_POOL_MAX 256
/* Buffers of a pooled request larger than this are freed instead of kept. */
#define CLIENT_KEEP_BUFFER_BYTES (64 * 1024)
#define CLIENT_METHOD_MAX 31

/* A response header, as offsets into client_request.head (which may move
 * while headers arrive). */
typedef struct client_header_index {
    size_t name_off, value_off;
} client_header_index;

typedef struct client_request {
    sr_http_client *client;
    CURL *easy; /* owned; survives in the pool, curl_easy_reset between uses */
    struct curl_slist *request_headers;
    sr_buf request_body; /* curl reads the body from here (CURLOPT_POSTFIELDS does not copy) */
    sr_buf body;         /* the answer's body */
    sr_buf head;         /* the final answer's headers: "name\0value\0" ... */
    client_header_index *index;
    int index_count, index_cap;
    sr_http_client_header *headers; /* built from index when the request completes */
    int headers_cap;
    bool body_too_large;
    int deferred_error;           /* failed before reaching curl: completed from the immediate handle */
    const char *deferred_message; /* static string */
    sr_http_client_cb cb;
    void *ud;
    uint64_t start_ns;
    char error[CURL_ERROR_SIZE];
    struct client_request *prev, *next; /* in active, deferred or pool */
} client_request;

/* One socket curl asked us to watch; its address is curl's socketp. A connection socket curl opened
 * through client_open_socket stays (stopped) while its connection waits in curl's cache, so that the next
 * request on it starts watching again without a new uv_poll (an ioctl and two epoll_ctl calls each time):
 * curl tells client_close_socket before it closes the fd. */
typedef struct client_socket {
    uv_poll_t poll;
    sr_http_client *client;
    curl_socket_t fd;
    bool connection; /* opened by client_open_socket: its close is announced */
    struct client_socket *prev, *next;
} client_socket;

struct sr_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;    /* curl's timeout when it is > 0 ms (CURLMOPT_TIMERFUNCTION) */
    uv_idle_t immediate; /* active while the next loop pass has work: curl_due_now or deferred */
    bool curl_due_now;   /* curl asked for a 0 ms timeout */
    int handles_open;    /* uv handles not closed yet: the client is freed at 0 */
    bool closing;
    client_request *active;                        /* added to the multi handle */
    client_request *deferred_head, *deferred_tail; /* failed before curl, callbacks pending (FIFO) */
    int deferred_count;
    client_request *pool; /* idle, easy handle reset */
    int pool_count;
    int in_flight;
    client_socket *sockets;
    client_socket **by_fd; /* every socket of the list above, by fd */
    int by_fd_cap;
    sr_http_client_stats stats;
};

static pthread_once_t client_once = PTHREAD_ONCE_INIT;
static CURLcode client_global_rc;

static void client_global_init(void) { client_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- curl errors: translated here and nowhere else ---- */

/* sent: curl got as far as sending the request (CURLINFO_PRETRANSFER_TIME
 * was reached). A timeout before that is a connection that never came up,
 * which callers may retry without any risk of a duplicate. */
static int client_error_from_curl(CURLcode rc, bool sent) {
    switch (rc) {
    case CURLE_OK: return 0;
    case CURLE_OPERATION_TIMEDOUT: return sent ? SR_HTTP_E_TIMEOUT : SR_HTTP_E_CONNECT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return SR_HTTP_E_CONNECT;
    default: return SR_HTTP_E_TRANSPORT;
    }
}

/* ---- lists ---- */

static void client_list_push(client_request **head, client_request *r) {
    r->prev = NULL;
    r->next = *head;
    if (*head) (*head)->prev = r;
    *head = r;
}

static void client_list_remove(client_request **head, client_request *r) {
    if (r->prev) r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* ---- request records ---- */

/* Frees r and its easy handle; r must not be in the multi handle. */
static void client_request_free(client_request *r) {
    if (r->easy) curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->request_headers);
    sr_buf_free(&r->request_body);
    sr_buf_free(&r->body);
    sr_buf_free(&r->head);
    free(r->index);
    free(r->headers);
    free(r);
}

/* Returns a pooled request or a new one (owned by the caller until it is
 * linked into a list), or NULL when memory or curl ran out. */
static client_request *client_acquire(sr_http_client *c) {
    client_request *r = c->pool;
    if (r) {
        client_list_remove(&c->pool, r);
        c->pool_count--;
        return r;
    }
    r = calloc(1, sizeof *r);
    if (!r) goto fail;
    r->client = c;
    sr_buf_init(&r->request_body);
    sr_buf_init(&r->body);
    sr_buf_init(&r->head);
    r->easy = curl_easy_init();
    if (!r->easy) goto fail;
    return r;
fail:
    if (r) client_request_free(r);
    return NULL;
}

static void client_buf_recycle(sr_buf *b) {
    if (b->cap > CLIENT_KEEP_BUFFER_BYTES) sr_buf_free(b);
    else
        sr_buf_reset(b);
}

/* Takes r back after its callback ran: into the pool with its easy handle
 * reset to curl's defaults (the multi handle keeps the connections), or
 * freed while closing or when the pool is full. */
static void client_release(sr_http_client *c, client_request *r) {
    curl_slist_free_all(r->request_headers);
    r->request_headers = NULL;
    if (c->closing || c->pool_count >= CLIENT_POOL_MAX) {
        client_request_free(r);
        return;
    }
    curl_easy_reset(r->easy);
    client_buf_recycle(&r->request_body);
    client_buf_recycle(&r->body);
    client_buf_recycle(&r->head);
    r->index_count = 0;
    r->body_too_large = false;
    r->deferred_error = 0;
    r->deferred_message = NULL;
    r->cb = NULL;
    r->ud = NULL;
    client_list_push(&c->pool, r);
    c->pool_count++;
}

/* Runs the callback of r (already out of every list) and releases r. */
static void client_finish(sr_http_client *c, client_request *r, int status, int error, const char *message) {
    if (r->index_count > r->headers_cap) {
        int cap = r->headers_cap ? r->headers_cap : 16;
        while (cap < r->index_count) cap *= 2;
        sr_http_client_header *h = realloc(r->headers, (size_t)cap * sizeof *h);
        if (!h) abort();
        r->headers = h;
        r->headers_cap = cap;
    }
    for (int i = 0; i < r->index_count; i++) {
        r->headers[i].name = r->head.data + r->index[i].name_off;
        r->headers[i].value = r->head.data + r->index[i].value_off;
    }
    /* sr_buf_reset keeps old bytes after len: terminate the body here. */
    if (r->body.data) r->body.data[r->body.len] = '\0';
    sr_http_client_response resp = {
        .status = error ? 0 : status,
        .error = error,
        .error_message = message,
        .body = r->body.data ? r->body.data : "",
        .body_len = r->body.len,
        .headers = r->headers,
        .header_count = r->index_count,
        .duration_ms = (double)(uv_hrtime() - r->start_ns) / 1e6,
    };
    c->in_flight--;
    c->stats.requests_completed++;
    if (error) c->stats.requests_failed++;
    r->cb(&resp, r->ud);
    client_release(c, r);
}

/* ---- curl callbacks: answers ---- */

static size_t client_on_body(char *data, size_t size, size_t count, void *ud) {
    client_request *r = ud;
    size_t len = size * count;
    if (len > SR_HTTP_CLIENT_MAX_BODY - r->body.len) {
        /* Returning less than len makes curl fail with CURLE_WRITE_ERROR. */
        r->body_too_large = true;
        return 0;
    }
    sr_buf_append(&r->body, data, len);
    return len;
}

static bool client_is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* curl passes every header line of every answer, the status lines included:
 * a status line starts a new block, so only the final answer's headers stay
 * (1xx answers and, were they followed, redirects come first). */
static size_t client_on_header(char *data, size_t size, size_t count, void *ud) {
    client_request *r = ud;
    size_t len = size * count;
    size_t end = len;
    while (end > 0 && (data[end - 1] == '\r' || data[end - 1] == '\n')) end--;
    if (end >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        sr_buf_reset(&r->head);
        r->index_count = 0;
        return len;
    }
    if (end == 0) return len;
    size_t value_start, name_end;
    if (client_is_space(data[0])) {
        /* An obsolete folded line continues the previous value. */
        if (r->index_count == 0) return len;
        value_start = 0;
        while (value_start < end && client_is_space(data[value_start])) value_start++;
        while (end > value_start && client_is_space(data[end - 1])) end--;
        r->head.len--; /* drop the value's NUL, then append " more\0" */
        sr_buf_putc(&r->head, ' ');
        sr_buf_append(&r->head, data + value_start, end - value_start);
        sr_buf_putc(&r->head, '\0');
        return len;
    }
    const char *colon = memchr(data, ':', end);
    if (!colon || colon == data) return len; /* not a header: ignored */
    name_end = (size_t)(colon - data);
    while (name_end > 0 && client_is_space(data[name_end - 1])) name_end--;
    value_start = (size_t)(colon - data) + 1;
    while (value_start < end && client_is_space(data[value_start])) value_start++;
    while (end > value_start && client_is_space(data[end - 1])) end--;
    if (r->index_count == r->index_cap) {
        int cap = r->index_cap ? r->index_cap * 2 : 16;
        client_header_index *ix = realloc(r->index, (size_t)cap * sizeof *ix);
        if (!ix) abort();
        r->index = ix;
        r->index_cap = cap;
    }
    client_header_index *ix = &r->index[r->index_count++];
    ix->name_off = r->head.len;
    sr_buf_append(&r->head, data, name_end);
    sr_buf_putc(&r->head, '\0');
    ix->value_off = r->head.len;
    sr_buf_append(&r->head, data + value_start, end - value_start);
    sr_buf_putc(&r->head, '\0');
    return len;
}

/* ---- completion ---- */

/* A transfer curl reported done: out of the multi handle, translate, call back. */
static void client_complete(sr_http_client *c, CURL *easy, CURLcode result) {
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    client_request *r = (client_request *)priv;
    curl_multi_remove_handle(c->multi, easy);
    client_list_remove(&c->active, r);
    long status = 0, connects = 0;
    curl_off_t pretransfer_us = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
    c->stats.connections_opened += (uint64_t)(connects > 0 ? connects : 0);
    int error = client_error_from_curl(result, pretransfer_us > 0);
    const char *message = NULL;
    if (r->body_too_large) message = "response body exceeds SR_HTTP_CLIENT_MAX_BODY";
    else if (result != CURLE_OK)
        message = r->error[0] ? r->error : curl_easy_strerror(result);
    client_finish(c, r, (int)status, error, message);
}

/* Completes every transfer curl has finished. Runs after each
 * curl_multi_socket_action, never inside a curl callback. Stops when a
 * callback closed the client (the multi handle is gone then). */
static void client_drain(sr_http_client *c) {
    CURLMsg *msg;
    int left;
    while (!c->closing && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        /* msg is invalid after the next curl call: copy what is needed. */
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        client_complete(c, easy, result);
    }
}

/* ---- the loop drives curl ---- */

static void client_on_poll(uv_poll_t *h, int status, int events) {
    client_socket *s = h->data;
    sr_http_client *c = s->client;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    /* s may be closed by the socket callback during this call: do not touch it after. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    client_drain(c);
}

static void client_on_timeout(uv_timer_t *t) {
    sr_http_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    client_drain(c);
}

static void client_handle_closed(uv_handle_t *h) {
    sr_http_client *c = h->data;
    if (--c->handles_open == 0) free(c);
}

static void client_socket_closed(uv_handle_t *h) {
    client_socket *s = h->data;
    sr_http_client *c = s->client;
    free(s);
    if (--c->handles_open == 0) free(c);
}

/* Stops watching s and frees it from its close callback. Only while curl
 * still owns the fd: uv_close takes the fd out of epoll at once, by number,
 * so after curl has closed it the number could belong to someone else. */
static void client_socket_close(sr_http_client *c, client_socket *s) {
    if (s->prev) s->prev->next = s->next;
    else
        c->sockets = s->next;
    if (s->next) s->next->prev = s->prev;
    if (s->fd >= 0 && s->fd < c->by_fd_cap && c->by_fd[s->fd] == s) c->by_fd[s->fd] = NULL;
    uv_close((uv_handle_t *)&s->poll, client_socket_closed);
}

/* A new watcher for fd (not started), in the list and by_fd; NULL when libuv cannot watch it. */
static client_socket *client_socket_new(sr_http_client *c, curl_socket_t fd) {
    if (fd < 0) return NULL;
    if (fd >= c->by_fd_cap) {
        int cap = c->by_fd_cap ? c->by_fd_cap : 64;
        while (cap <= fd) cap *= 2;
        client_socket **by_fd = realloc(c->by_fd, (size_t)cap * sizeof *by_fd);
        if (!by_fd) abort();
        memset(by_fd + c->by_fd_cap, 0, (size_t)(cap - c->by_fd_cap) * sizeof *by_fd);
        c->by_fd = by_fd;
        c->by_fd_cap = cap;
    }
    client_socket *s = calloc(1, sizeof *s);
    if (!s) abort();
    int rc = uv_poll_init_socket(c->loop, &s->poll, fd);
    if (rc != 0) {
        sr_error("http client: cannot watch a socket", "error", uv_strerror(rc));
        free(s);
        return NULL;
    }
    s->poll.data = s;
    s->client = c;
    s->fd = fd;
    s->next = c->sockets;
    if (c->sockets) c->sockets->prev = s;
    c->sockets = s;
    c->handles_open++;
    c->stats.sockets_watched++;
    /* A watcher left for a number the kernel gave out again would be a bug: it goes. */
    if (c->by_fd[fd]) client_socket_close(c, c->by_fd[fd]);
    c->by_fd[fd] = s;
    return s;
}

/* CURLOPT_OPENSOCKETFUNCTION: curl's connection sockets, watched from the start (see client_socket). */
static curl_socket_t client_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
    sr_http_client *c = clientp;
    (void)purpose;
    curl_socket_t fd = socket(address->family, address->socktype, address->protocol);
    if (fd == CURL_SOCKET_BAD || c->closing) return fd;
    client_socket *s = client_socket_new(c, fd);
    if (s) s->connection = true;
    return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: stops watching fd while it is still curl's (uv_close takes it out of epoll
 * by number), then closes it. */
static int client_close_socket(void *clientp, curl_socket_t fd) {
    sr_http_client *c = clientp;
    if (fd >= 0 && fd < c->by_fd_cap && c->by_fd[fd]) client_socket_close(c, c->by_fd[fd]);
    return close(fd);
}

/* CURLMOPT_SOCKETFUNCTION: one uv_poll per socket, kept as curl's socketp. */
static int client_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    sr_http_client *c = userp;
    client_socket *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            /* A kept-alive connection's socket waits, stopped, for its next request. */
            if (s->connection) uv_poll_stop(&s->poll);
            else
                client_socket_close(c, s);
        }
        return 0;
    }
    if (c->closing) return 0;
    if (!s) {
        s = fd >= 0 && fd < c->by_fd_cap ? c->by_fd[fd] : NULL;
        /* Returning -1 would kill the whole multi handle: a socket that cannot be watched leaves this
         * transfer alone to run into its timeout. */
        if (!s) s = client_socket_new(c, fd);
        if (!s) return 0;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN) events |= UV_READABLE;
    if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
    int rc = uv_poll_start(&s->poll, events, client_on_poll);
    if (rc != 0) sr_error("http client: cannot watch a socket", "error", uv_strerror(rc));
    return 0;
}

/* Completes, oldest first, the first n requests that failed before reaching
 * curl. A callback that starts a request which fails again is answered on
 * the next pass, so this cannot spin. */
static void client_run_deferred(sr_http_client *c, int n) {
    while (n-- > 0 && !c->closing && c->deferred_head) {
        client_request *r = c->deferred_head;
        c->deferred_head = r->next;
        if (!c->deferred_head) c->deferred_tail = NULL;
        c->deferred_count--;
        r->next = NULL;
        client_finish(c, r, 0, r->deferred_error, r->deferred_message);
    }
}

/* The work of a 0 ms timeout, once per loop pass (see client_on_curl_timer). */
static void client_on_immediate(uv_idle_t *h) {
    sr_http_client *c = h->data;
    uv_idle_stop(h); /* restarted by whatever asks for the next pass */
    int deferred = c->deferred_count;
    if (c->curl_due_now) {
        c->curl_due_now = false;
        int running;
        curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        client_drain(c);
    }
    client_run_deferred(c, deferred);
}

/* CURLMOPT_TIMERFUNCTION: curl's single timeout; each call replaces the last.
 *
 * 0 ms means now: it runs on the next loop pass, never rounded up to 1 ms
 * (calling curl_multi_socket_action from here is not allowed). It goes to a
 * uv_idle handle, not to a 0 ms uv_timer. In libuv 1.44 (unix/core.c) an
 * active idle handle runs exactly once per loop pass and makes the poll
 * phase non-blocking (uv_backend_timeout returns 0 while idle handles are
 * active), so nothing waits for the next millisecond tick. A 0 ms timer would
 * not round up either (it is due at the cached loop time, so
 * uv__next_timeout returns 0), but one re-armed from its own callback is due
 * again in the same uv__run_timers pass, whose cached time does not move. A
 * transfer curl fails without I/O (bad URL, refused scheme), or one whose
 * answer is already there, completes inside the socket action; when its
 * callback starts another, curl asks for 0 ms again, and the loop could stay
 * in its timer phase for as long as that goes on, starving every other
 * handle. With the idle handle each round waits for the next pass.
 *
 * For a positive timeout the loop's cached time is refreshed first: it dates
 * from the start of this loop pass, and a timer set from a stale time fires
 * early by the time the pass has taken. */
static int client_on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    sr_http_client *c = userp;
    if (c->closing) return 0;
    c->curl_due_now = timeout_ms == 0;
    if (timeout_ms == 0) {
        uv_timer_stop(&c->timer);
        uv_idle_start(&c->immediate, client_on_immediate);
    } else if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_update_time(c->loop);
        uv_timer_start(&c->timer, client_on_timeout, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* Queues r (out of every list) to fail on the next loop pass, so that its
 * callback does not run inside sr_http_client_request_start. */
static void client_fail_later(sr_http_client *c, client_request *r, int error, const char *message) {
    r->deferred_error = error;
    r->deferred_message = message;
    r->prev = r->next = NULL;
    if (c->deferred_tail) c->deferred_tail->next = r;
    else
        c->deferred_head = r;
    c->deferred_tail = r;
    c->deferred_count++;
    uv_idle_start(&c->immediate, client_on_immediate);
}

/* ---- starting requests ---- */

static bool client_method_valid(const char *m) {
    if (!m || !m[0] || strlen(m) > CLIENT_METHOD_MAX) return false;
    for (const char *p = m; *p; p++) {
        char ch = *p;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_'))
            return false;
    }
    return true;
}

/* Header lines go out verbatim: CR or LF would let a value add headers. */
static bool client_headers_valid(const char *const *headers) {
    for (int i = 0; headers && headers[i]; i++) {
        if (strpbrk(headers[i], "\r\n")) return false;
    }
    return true;
}

static bool client_has_header(const char *const *headers, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; headers && headers[i]; i++) {
        if (strncasecmp(headers[i], name, n) != 0) continue;
        if (headers[i][n] == ':' || headers[i][n] == ';') return true;
    }
    return false;
}

#define CLIENT_SET(opt, value)                                                                                         \
    do {                                                                                                               \
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, value);                                                      \
    } while (0)

/* Applies every option of one request to r's freshly reset easy handle.
 * curl copies strings (URL, method); the body stays in r->request_body. */
/* The method, and the body it carries. rc: the setup's result so far. */
static CURLcode client_setup_method(client_request *r, const sr_http_client_request *req, CURLcode rc) {
    CURL *e = r->easy;
    const char *method = req->method;
    bool has_body = req->body != NULL;
    if (strcmp(method, "GET") == 0 && !has_body) {
        CLIENT_SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        CLIENT_SET(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") == 0) CLIENT_SET(CURLOPT_POST, 1L);
        else
            CLIENT_SET(CURLOPT_CUSTOMREQUEST, method);
        /* POST, PUT and PATCH always carry a body (Content-Length: 0 when
         * empty): without POSTFIELDS curl would read one from stdin. */
        if (has_body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
            sr_buf_reset(&r->request_body);
            sr_buf_append(&r->request_body, req->body ? req->body : "", req->body ? req->body_len : 0);
            CLIENT_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->request_body.len);
            CLIENT_SET(CURLOPT_POSTFIELDS, r->request_body.data);
        }
    }
    return rc;
}

/* The request's headers, kept in r until it ends (curl reads them while it runs). */
static CURLcode client_setup_headers(client_request *r, const sr_http_client_request *req) {
    for (int i = 0; req->headers && req->headers[i]; i++) {
        struct curl_slist *l = curl_slist_append(r->request_headers, req->headers[i]);
        if (!l) return CURLE_OUT_OF_MEMORY;
        r->request_headers = l;
    }
    /* An empty "Expect:" stops curl from asking for 100-continue and waiting
     * for it before sending large bodies. */
    if (!client_has_header(req->headers, "expect")) {
        struct curl_slist *l = curl_slist_append(r->request_headers, "Expect:");
        if (!l) return CURLE_OUT_OF_MEMORY;
        r->request_headers = l;
    }
    return CURLE_OK;
}

static CURLcode client_setup(client_request *r, const sr_http_client_request *req) {
    CURL *e = r->easy;
    CURLcode rc = CURLE_OK;
    long timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
    long connect_ms = req->connect_timeout_ms;
    if (connect_ms <= 0)
        connect_ms = timeout_ms < CLIENT_MAX_CONNECT_TIMEOUT_MS ? timeout_ms : CLIENT_MAX_CONNECT_TIMEOUT_MS;
    r->error[0] = '\0';

    CLIENT_SET(CURLOPT_PRIVATE, (void *)r);
    CLIENT_SET(CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    CLIENT_SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    CLIENT_SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    CLIENT_SET(CURLOPT_NOSIGNAL, 1L);
    CLIENT_SET(CURLOPT_FOLLOWLOCATION, 0L);
    CLIENT_SET(CURLOPT_TCP_KEEPALIVE, 1L);
    CLIENT_SET(CURLOPT_TCP_KEEPIDLE, 30L);
    CLIENT_SET(CURLOPT_TCP_KEEPINTVL, 15L);
    CLIENT_SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    CLIENT_SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    CLIENT_SET(CURLOPT_ERRORBUFFER, r->error);
    CLIENT_SET(CURLOPT_WRITEFUNCTION, client_on_body);
    CLIENT_SET(CURLOPT_WRITEDATA, (void *)r);
    CLIENT_SET(CURLOPT_HEADERFUNCTION, client_on_header);
    CLIENT_SET(CURLOPT_HEADERDATA, (void *)r);
    CLIENT_SET(CURLOPT_USERAGENT, "smsrules");
    CLIENT_SET(CURLOPT_OPENSOCKETFUNCTION, client_open_socket);
    CLIENT_SET(CURLOPT_OPENSOCKETDATA, (void *)r->client);
    CLIENT_SET(CURLOPT_CLOSESOCKETFUNCTION, client_close_socket);
    CLIENT_SET(CURLOPT_CLOSESOCKETDATA, (void *)r->client);

    rc = client_setup_method(r, req, rc);
    if (rc == CURLE_OK) rc = client_setup_headers(r, req);
    CLIENT_SET(CURLOPT_HTTPHEADER, r->request_headers);
    return rc;
}

#undef CLIENT_SET

int sr_http_client_request_start(sr_http_client *c, const sr_http_client_request *req, sr_http_client_cb cb, void *ud) {
    if (c->closing) return -ECANCELED;
    if (!req || !req->url || !cb || !client_method_valid(req->method) || !client_headers_valid(req->headers))
        return -EINVAL;
    client_request *r = client_acquire(c);
    if (!r) return -ENOMEM;
    r->cb = cb;
    r->ud = ud;
    r->start_ns = uv_hrtime();
    c->in_flight++;

    CURLcode rc = client_setup(r, req);
    if (rc != CURLE_OK) {
        /* Nothing here says which option: the URL may hold credentials. */
        sr_warn("http client: request rejected by curl", "error", curl_easy_strerror(rc));
        client_fail_later(c, r, SR_HTTP_E_TRANSPORT, curl_easy_strerror(rc));
        return 0;
    }
    /* curl only schedules the transfer here (a 0 ms timer): it starts, and
     * can complete, only from the loop. */
    CURLMcode mrc = curl_multi_add_handle(c->multi, r->easy);
    if (mrc != CURLM_OK) {
        sr_warn("http client: request rejected by curl", "error", curl_multi_strerror(mrc));
        client_fail_later(c, r, SR_HTTP_E_TRANSPORT, curl_multi_strerror(mrc));
        return 0;
    }
    client_list_push(&c->active, r);
    return 0;
}

/* ---- client ---- */

int sr_http_client_new(sr_http_client **out, uv_loop_t *loop) {
    *out = NULL;
    pthread_once(&client_once, client_global_init);
    if (client_global_rc != CURLE_OK) {
        sr_error("http client: curl_global_init failed", "error", curl_easy_strerror(client_global_rc));
        return -EIO;
    }
    int rc = -ENOMEM;
    sr_http_client *c = calloc(1, sizeof *c);
    if (!c) goto fail;
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi) goto fail;
    CURLMcode mrc = CURLM_OK;
    if (mrc == CURLM_OK) mrc = curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, client_on_socket);
    if (mrc == CURLM_OK) mrc = curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, (void *)c);
    if (mrc == CURLM_OK) mrc = curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, client_on_curl_timer);
    if (mrc == CURLM_OK) mrc = curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, (void *)c);
    if (mrc == CURLM_OK) mrc = curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, CLIENT_MAX_CONNECTS);
    if (mrc != CURLM_OK) {
        sr_error("http client: curl_multi_setopt failed", "error", curl_multi_strerror(mrc));
        rc = -EIO;
        goto fail;
    }
    /* Last, as they cannot fail: from here on the client is freed only
     * through the handles' close callbacks. */
    uv_timer_init(loop, &c->timer);
    uv_idle_init(loop, &c->immediate);
    c->timer.data = c;
    c->immediate.data = c;
    c->handles_open = 2;
    *out = c;
    return 0;
fail:
    if (c && c->multi) curl_multi_cleanup(c->multi);
    free(c);
    return rc;
}

void sr_http_client_close(sr_http_client *c) {
    if (!c || c->closing) return;
    c->closing = true; /* from here request_start refuses and curl's timer is ignored */
    while (c->active) {
        client_request *r = c->active;
        client_list_remove(&c->active, r);
        curl_multi_remove_handle(c->multi, r->easy);
        client_finish(c, r, 0, SR_HTTP_E_CANCELLED, "cancelled");
    }
    while (c->deferred_head) {
        client_request *r = c->deferred_head;
        c->deferred_head = r->next;
        c->deferred_count--;
        r->next = NULL;
        client_finish(c, r, 0, SR_HTTP_E_CANCELLED, "cancelled");
    }
    c->deferred_tail = NULL;
    while (c->pool) {
        client_request *r = c->pool;
        client_list_remove(&c->pool, r);
        client_request_free(r);
    }
    c->pool_count = 0;
    /* Stop watching the sockets while curl still owns them, then let curl
     * close them with its cached connections. */
    while (c->sockets) {
        curl_multi_assign(c->multi, c->sockets->fd, NULL);
        client_socket_close(c, c->sockets);
    }
    /* Closing its cached connections, curl calls client_close_socket: nothing is watched any more. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    free(c->by_fd);
    c->by_fd = NULL;
    c->by_fd_cap = 0;
    uv_close((uv_handle_t *)&c->timer, client_handle_closed);
    uv_close((uv_handle_t *)&c->immediate, client_handle_closed);
}

const char *sr_http_client_header_get(const sr_http_client_response *r, const char *name) {
    for (int i = 0; i < r->header_count; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    }
    return NULL;
}

int sr_http_client_in_flight(const sr_http_client *c) { return c->in_flight; }

void sr_http_client_stats_get(const sr_http_client *c, sr_http_client_stats *out) { *out = c->stats; }
