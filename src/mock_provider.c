#include "mock_provider.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "http_client.h"
#include "http_server.h"
#include "json.h"
#include "log.h"

#define MOCK_DEFAULT_LISTEN "127.0.0.1:9090"
#define MOCK_RATE_WINDOW_MS 1000
#define MOCK_DLR_ATTEMPTS 4         /* one post and three retries */
#define MOCK_DLR_BACKOFF_MS 200     /* doubled after each failed post */
#define MOCK_DLR_TIMEOUT_MS 5000
#define MOCK_DRAIN_MS 3000          /* SIGTERM: then every connection is closed */
#define MOCK_MAX_BATCH 10000
#define MOCK_ID_LEN 48
#define MOCK_DEFAULT_MAX_IDS 1000000

/* ---- settings (command line, then POST /control) ---- */

typedef struct mock_settings {
    double fail_5xx_pct;
    double fail_429_pct;
    double timeout_pct;
    double reject_pct;
    double dlr_undelivered_pct;
    uint64_t retry_after_s;
    uint64_t latency_ms;
    uint64_t latency_jitter_ms;
    uint64_t hold_ms;      /* a "timed out" request is answered 504 after this */
    uint64_t dlr_delay_ms;
    bool dlr_before_answer;
    bool down;
    char *auth_key; /* owned, or NULL: no auth */
    char *dlr_url;  /* owned, or NULL: no delivery reports */
} mock_settings;

/* ---- a string-keyed hash map (open addressing, linear probing) ---- */

typedef struct mock_slot {
    uint64_t hash;  /* 0 marks an empty slot; hashes are never 0 */
    char *key;      /* owned: key bytes, NUL, then value bytes and NUL when the map stores values */
    size_t key_len; /* the key may contain NUL (\u0000 in JSON): the length is authoritative */
    uint64_t count;
} mock_slot;

typedef struct mock_map {
    mock_slot *slots; /* owned */
    size_t cap;       /* a power of two, or 0 */
    size_t used;
} mock_map;

/* ---- accepted-send timestamps of the last window (a ring) ---- */

typedef struct mock_rate {
    uint64_t *at_ms; /* owned; non-decreasing */
    size_t cap, head, len;
    uint64_t max_per_window;
} mock_rate;

typedef struct mock_stats {
    uint64_t received, requests, rejected, failed_5xx, failed_429, timeouts, duplicates;
    uint64_t unauthorized, bad_requests, down_dropped, dlr_sent, dlr_failed;
    int64_t max_in_flight;
} mock_stats;

typedef struct mock_pending mock_pending;
typedef struct mock_dlr mock_dlr;

typedef struct mock_provider {
    uv_loop_t *loop;
    sr_http_server *server;
    sr_http_client *client; /* owned; created for the first delivery report */
    mock_settings set;
    mock_stats stats;
    int64_t in_flight; /* send requests not answered yet */
    mock_map recipients;
    mock_map seen, seen_old; /* client id → message_id; two generations bound the memory */
    uint64_t max_ids;
    mock_rate rate;
    uint64_t rng;
    uint64_t next_id;
    char id_prefix[24];
    mock_pending *pending; /* answers not given yet */
    mock_dlr *dlrs;        /* delivery reports started and not finished */
    uint64_t dlrs_started; /* how many are in dlrs */
    uv_signal_t sig_term, sig_int;
    uv_timer_t drain_timer;
    bool stopping;
} mock_provider;

typedef enum { MOCK_HOLD_NONE, MOCK_HOLD_TIMEOUT, MOCK_HOLD_DOWN } mock_hold_kind;

/* An answer that waits: for the latency timer, for delivery reports posted
 * before the answer, or held (timeout, down). Freed in the timer's close
 * callback, after the answer. */
struct mock_pending {
    uv_timer_t timer;
    mock_provider *mp;
    sr_http_request *req; /* borrowed from the server until answered */
    mock_pending *prev, *next;
    int status;
    sr_buf body;
    char extra[64];      /* extra header lines, "" when none */
    int waits;           /* latency timer + before-answer reports not finished */
    mock_hold_kind hold;
    mock_dlr *deferred;  /* owned: reports that start once the answer is out */
};

/* One delivery report: a delay, then posts with retries. The timer handle is
 * initialised when the report starts; freed in its close callback. */
struct mock_dlr {
    uv_timer_t timer;
    mock_provider *mp;
    mock_pending *pending; /* before-answer mode: the answer waiting for this report */
    mock_dlr *prev, *next; /* in mp->dlrs once started */
    mock_dlr *next_deferred;
    int attempts;
    bool posting;
    bool undelivered;
    char message_id[MOCK_ID_LEN];
    char *to; /* owned */
    size_t to_len;
};

/* Reports made while deciding a request, in order (linked by next_deferred). */
typedef struct mock_dlr_list {
    mock_dlr *head;
    mock_dlr **tail;
} mock_dlr_list;

typedef enum {
    MOCK_OK,
    MOCK_REJECT,       /* 400 invalid number: permanent, about the message */
    MOCK_UNAUTHORIZED, /* 401: permanent, about the provider */
    MOCK_UNAVAILABLE,  /* 503 */
    MOCK_RATE_LIMITED, /* 429 with Retry-After */
    MOCK_TIMEOUT,      /* no answer */
    MOCK_UNDELIVERED   /* accepted, then an UNDELIV report */
} mock_outcome;

static const char mock_usage[] =
    "usage: smsrules mock-provider [options]\n"
    "\n"
    "A fake SMS provider speaking the generic provider API (JSON over HTTP), for\n"
    "demos, tests and benchmarks. Logs one JSON line {\"msg\":\"listening\",\"port\":N,...}\n"
    "on stderr once it accepts connections; SIGTERM or SIGINT stop it (exit 0).\n"
    "\n"
    "options:\n"
    "  -l, --listen ADDR          address to listen on (default " MOCK_DEFAULT_LISTEN "; port 0 picks a free one)\n"
    "      --latency-ms N         answer every send after N ms (default 0)\n"
    "      --latency-jitter-ms N  spread the latency uniformly over N ms either side (default 0)\n"
    "      --fail-5xx PCT         answer PCT% of send requests 503 {\"error\":\"unavailable\"}\n"
    "      --fail-429 PCT         answer PCT% of send requests 429 with Retry-After\n"
    "      --retry-after S        the Retry-After of 429 answers, in seconds (default 1)\n"
    "      --timeout PCT          never answer PCT% of send requests (held open; see --hold-ms)\n"
    "      --hold-ms N            a held request is finally answered 504 after N ms (default 60000)\n"
    "      --reject PCT           reject PCT% of messages 400 {\"error\":\"invalid number\"}\n"
    "      --auth-key KEY         require Authorization: Bearer KEY (or X-API-Key: KEY); else 401\n"
    "      --dlr-url URL          post a delivery report for every accepted message to URL\n"
    "      --dlr-delay-ms N       post it N ms after the send answer (default 100)\n"
    "      --dlr-undelivered PCT  report UNDELIV for PCT% of messages, DELIVRD for the rest\n"
    "      --dlr-before-answer    post the report, and wait for its answer, before answering the\n"
    "                             send (the delay then counts from the request)\n"
    "      --max-ids N            remember up to N client message ids for idempotency (default 1000000)\n"
    "      --seed N               seed of the random failure mix (default: from the clock; logged)\n"
    "      --log-level LVL        debug, info, warn or error (default info)\n"
    "  -h, --help                 this help\n"
    "PCT is a percentage, 0 to 100 (fractions allowed); the send-level shares\n"
    "(--fail-5xx, --fail-429, --timeout, --reject) add up to at most 100.\n"
    "\n"
    "Deterministic outcomes by the last four digits of the recipient (\"to\"); they win over\n"
    "the random mix:\n"
    "  ...0000  400 {\"error\":\"invalid number\"}   permanent, about the message\n"
    "  ...0401  401 {\"error\":\"unauthorized\"}     permanent, about the provider\n"
    "  ...0503  503 {\"error\":\"unavailable\"}      retryable\n"
    "  ...0429  429 with Retry-After                retryable\n"
    "  ...0408  no answer (timeout)                 retryable\n"
    "  ...0666  accepted, then an UNDELIV delivery report\n"
    "\n"
    "Endpoints:\n"
    "  POST /send (or POST /)  {\"to\",\"from\",\"message\",\"id\"} → 200 {\"message_id\",\"status\":\"accepted\"};\n"
    "                          a batch {\"messages\":[...]} → {\"results\":[...]}, one per message, in order.\n"
    "                          A client \"id\" seen before gets the same message_id (a duplicate, not\n"
    "                          a new reception).\n"
    "  Delivery report: POST URL {\"message_id\",\"status\":\"DELIVRD\"|\"UNDELIV\",\"to\",\"timestamp\"},\n"
    "                          retried 3 times with backoff (200 ms, doubling) until a 2xx answer.\n"
    "  GET  /stats             received (accepted messages, duplicates excluded), requests (send\n"
    "                          requests), by_recipient {to: accepted count} (?by_recipient=0 leaves it\n"
    "                          out), recipients, rejected, failed_5xx, failed_429, timeouts,\n"
    "                          duplicates, unauthorized, bad_requests, down_dropped, dlr_sent,\n"
    "                          dlr_failed, dlr_pending, in_flight, max_in_flight, and rate\n"
    "                          {window_ms: 1000, max_per_window: most accepted in any 1 s window}\n"
    "  POST /stats/reset       zeroes the counters and forgets recipients and client ids\n"
    "  GET|POST /control       read or change settings at runtime: {\"fail_5xx\":30}, {\"down\":true}\n"
    "                          (sends are not answered until {\"down\":false}), fail_429, retry_after,\n"
    "                          timeout, reject, hold_ms, latency_ms, latency_jitter_ms, dlr_url,\n"
    "                          dlr_delay_ms, dlr_undelivered, dlr_before_answer, auth_key\n"
    "  GET  /healthz           {\"status\":\"ok\"}\n";

static void mock_pending_answer(mock_pending *p);
static void mock_dlr_start(mock_dlr *d);
static void mock_dlr_post(uv_timer_t *t);

/* ---- random numbers (splitmix64: small, fast, seedable) ---- */

static uint64_t mock_rand(mock_provider *mp) {
    uint64_t z = (mp->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform number in [0, 100). */
static double mock_rand_pct(mock_provider *mp) { return (double)(mock_rand(mp) >> 11) * (100.0 / 9007199254740992.0); }

/* ---- the hash map ---- */

static uint64_t mock_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix for the low bits */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

/* The slot holding key, or NULL. Borrowed from the map until it changes. */
static mock_slot *mock_map_find(const mock_map *m, const char *key, size_t len, uint64_t hash) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        mock_slot *s = &m->slots[i];
        if (!s->hash) return NULL;
        if (s->hash == hash && s->key_len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

static void mock_map_grow(mock_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    mock_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) abort();
    for (size_t i = 0; i < m->cap; i++) {
        mock_slot *old = &m->slots[i];
        if (!old->hash) continue;
        size_t j = old->hash & (cap - 1);
        while (slots[j].hash) j = (j + 1) & (cap - 1);
        slots[j] = *old;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

/* The slot for key, created with count 0 when missing. The key (and value,
 * when not NULL) are copied. Borrowed from the map until it changes. */
static mock_slot *mock_map_upsert(mock_map *m, const char *key, size_t len, uint64_t hash, const char *value) {
    mock_slot *s = mock_map_find(m, key, len, hash);
    if (s) return s;
    if ((m->used + 1) * 10 > m->cap * 7) mock_map_grow(m);
    size_t mask = m->cap - 1;
    size_t i = hash & mask;
    while (m->slots[i].hash) i = (i + 1) & mask;
    s = &m->slots[i];
    size_t value_len = value ? strlen(value) : 0;
    s->key = malloc(len + value_len + 2);
    if (!s->key) abort();
    memcpy(s->key, key, len);
    s->key[len] = '\0';
    if (value) memcpy(s->key + len + 1, value, value_len);
    s->key[len + 1 + value_len] = '\0';
    s->hash = hash;
    s->key_len = len;
    s->count = 0;
    m->used++;
    return s;
}

/* The value stored with the slot's key (maps built with values). */
static const char *mock_slot_value(const mock_slot *s) { return s->key + s->key_len + 1; }

static void mock_map_clear(mock_map *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- the sliding window of accepted sends ---- */

static void mock_rate_add(mock_rate *r, uint64_t now_ms) {
    while (r->len && r->at_ms[r->head] + MOCK_RATE_WINDOW_MS <= now_ms) {
        r->head = (r->head + 1) & (r->cap - 1);
        r->len--;
    }
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        uint64_t *at = malloc(cap * sizeof *at);
        if (!at) abort();
        for (size_t i = 0; i < r->len; i++) at[i] = r->at_ms[(r->head + i) & (r->cap - 1)];
        free(r->at_ms);
        r->at_ms = at;
        r->cap = cap;
        r->head = 0;
    }
    r->at_ms[(r->head + r->len) & (r->cap - 1)] = now_ms;
    r->len++;
    if (r->len > r->max_per_window) r->max_per_window = r->len;
}

static void mock_rate_clear(mock_rate *r) {
    free(r->at_ms);
    memset(r, 0, sizeof *r);
}

/* ---- answers ---- */

/* Answers a send request now (every send answer goes through here, once). */
static void mock_respond_send(mock_provider *mp, sr_http_request *req, int status, const char *body, size_t len,
                              const char *extra) {
    mp->in_flight--;
    sr_http_respond(req, status, "application/json", body, len, extra);
}

/* Answers a request that is not a send: {"error": message}. */
static void mock_respond_error(sr_http_request *req, int status, const char *message, const char *extra) {
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_puts(&b, "{\"error\":");
    sr_buf_json_str(&b, message, strlen(message));
    sr_buf_putc(&b, '}');
    sr_http_respond(req, status, "application/json", b.data, b.len, extra);
    sr_buf_free(&b);
}

static void mock_pending_closed(uv_handle_t *h) {
    mock_pending *p = h->data;
    sr_buf_free(&p->body);
    free(p);
}

static void mock_pending_unlink(mock_pending *p) {
    mock_provider *mp = p->mp;
    if (p->prev) p->prev->next = p->next;
    else mp->pending = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

/* A waiting answer, linked into mp->pending. req is borrowed until the
 * answer; body and extra are copied. The caller sets waits or hold. */
static mock_pending *mock_pending_new(mock_provider *mp, sr_http_request *req, int status, const char *body,
                                      size_t len, const char *extra) {
    mock_pending *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->mp = mp;
    p->req = req;
    p->status = status;
    sr_buf_init(&p->body);
    sr_buf_append(&p->body, body, len);
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    uv_timer_init(mp->loop, &p->timer);
    p->timer.data = p;
    p->next = mp->pending;
    if (mp->pending) mp->pending->prev = p;
    mp->pending = p;
    return p;
}

/* Gives the answer, starts the deferred reports, frees p (later, in the
 * timer's close callback). */
static void mock_pending_answer(mock_pending *p) {
    mock_provider *mp = p->mp;
    mock_pending_unlink(p);
    uv_timer_stop(&p->timer);
    mock_respond_send(mp, p->req, p->status, p->body.data, p->body.len, p->extra[0] ? p->extra : NULL);
    p->req = NULL;
    mock_dlr *d = p->deferred;
    p->deferred = NULL;
    while (d) {
        mock_dlr *next = d->next_deferred;
        d->next_deferred = NULL;
        mock_dlr_start(d);
        d = next;
    }
    uv_close((uv_handle_t *)&p->timer, mock_pending_closed);
}

/* One thing p waited for is done. */
static void mock_pending_release_one(mock_pending *p) {
    if (--p->waits == 0) mock_pending_answer(p);
}

static void mock_pending_timer_cb(uv_timer_t *t) {
    mock_pending *p = t->data;
    if (p->hold != MOCK_HOLD_NONE) mock_pending_answer(p);
    else mock_pending_release_one(p);
}

/* Holds a send request unanswered: a timeout, or the provider is down. It is
 * answered (504, or 503 when down) after hold_ms, when the provider comes
 * back up, or at shutdown — by then the client has normally given up. */
static void mock_hold(mock_provider *mp, sr_http_request *req, mock_hold_kind kind) {
    static const char timeout_body[] = "{\"error\":\"timeout\"}";
    static const char down_body[] = "{\"error\":\"unavailable\"}";
    mock_pending *p = kind == MOCK_HOLD_TIMEOUT
                          ? mock_pending_new(mp, req, 504, timeout_body, sizeof timeout_body - 1, NULL)
                          : mock_pending_new(mp, req, 503, down_body, sizeof down_body - 1, NULL);
    p->hold = kind;
    uv_timer_start(&p->timer, mock_pending_timer_cb, mp->set.hold_ms, 0);
}

static uint64_t mock_latency(mock_provider *mp) {
    uint64_t base = mp->set.latency_ms, jitter = mp->set.latency_jitter_ms;
    if (jitter == 0) return base;
    uint64_t low = base > jitter ? base - jitter : 0;
    uint64_t high = base + jitter;
    return low + mock_rand(mp) % (high - low + 1);
}

/* Answers a send after the latency and, in before-answer mode, after its
 * delivery reports; takes ownership of the report list dlrs (linked by
 * next_deferred). body and extra are copied. */
static void mock_finish_send(mock_provider *mp, sr_http_request *req, int status, const sr_buf *body,
                             const char *extra, mock_dlr *dlrs) {
    uint64_t delay_ms = mock_latency(mp);
    bool before = mp->set.dlr_before_answer && dlrs;
    if (delay_ms == 0 && !before) {
        mock_respond_send(mp, req, status, body->data, body->len, extra);
        while (dlrs) {
            mock_dlr *next = dlrs->next_deferred;
            dlrs->next_deferred = NULL;
            mock_dlr_start(dlrs);
            dlrs = next;
        }
        return;
    }
    mock_pending *p = mock_pending_new(mp, req, status, body->data, body->len, extra);
    p->waits = 1; /* while the waits are set up: a report may finish at once */
    if (before) {
        while (dlrs) {
            mock_dlr *next = dlrs->next_deferred;
            dlrs->next_deferred = NULL;
            dlrs->pending = p;
            p->waits++;
            mock_dlr_start(dlrs);
            dlrs = next;
        }
    } else {
        p->deferred = dlrs;
    }
    if (delay_ms > 0) {
        p->waits++;
        uv_timer_start(&p->timer, mock_pending_timer_cb, delay_ms, 0);
    }
    mock_pending_release_one(p);
}

/* A fixed body through mock_finish_send (latency applies to errors too). */
static void mock_finish_send_str(mock_provider *mp, sr_http_request *req, int status, const char *body,
                                 const char *extra) {
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_puts(&b, body);
    mock_finish_send(mp, req, status, &b, extra, NULL);
    sr_buf_free(&b);
}

/* ---- delivery reports ---- */

static void mock_dlr_closed(uv_handle_t *h) {
    mock_dlr *d = h->data;
    free(d->to);
    free(d);
}

/* Copies message_id and to. The report does nothing until mock_dlr_start. */
static mock_dlr *mock_dlr_new(mock_provider *mp, const char *message_id, const char *to, size_t to_len,
                              bool undelivered) {
    mock_dlr *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->mp = mp;
    snprintf(d->message_id, sizeof d->message_id, "%s", message_id);
    d->to = malloc(to_len + 1);
    if (!d->to) abort();
    memcpy(d->to, to, to_len);
    d->to[to_len] = '\0';
    d->to_len = to_len;
    d->undelivered = undelivered;
    return d;
}

/* The report is over (posted, failed for good, or cancelled at shutdown). */
static void mock_dlr_finish(mock_dlr *d) {
    mock_provider *mp = d->mp;
    if (d->prev) d->prev->next = d->next;
    else mp->dlrs = d->next;
    if (d->next) d->next->prev = d->prev;
    mp->dlrs_started--;
    mock_pending *p = d->pending;
    d->pending = NULL;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, mock_dlr_closed);
    if (p) mock_pending_release_one(p);
}

/* Starts the delay before the first post. Takes ownership of d. */
static void mock_dlr_start(mock_dlr *d) {
    mock_provider *mp = d->mp;
    if (mp->stopping) {
        /* Never started: no handle to close. */
        mock_pending *p = d->pending;
        free(d->to);
        free(d);
        if (p) mock_pending_release_one(p);
        return;
    }
    uv_timer_init(mp->loop, &d->timer);
    d->timer.data = d;
    d->next = mp->dlrs;
    if (mp->dlrs) mp->dlrs->prev = d;
    mp->dlrs = d;
    mp->dlrs_started++;
    uv_timer_start(&d->timer, mock_dlr_post, mp->set.dlr_delay_ms, 0);
}

static void mock_dlr_failed_attempt(mock_dlr *d, int status, const char *error) {
    mock_provider *mp = d->mp;
    if (mp->stopping) {
        mock_dlr_finish(d);
        return;
    }
    if (d->attempts >= MOCK_DLR_ATTEMPTS) {
        mp->stats.dlr_failed++;
        sr_warn("delivery report not delivered", "message_id", d->message_id, "attempts",
                sr_log_num(d->attempts), "http_status", sr_log_num(status), "error", error ? error : "");
        mock_dlr_finish(d);
        return;
    }
    uint64_t backoff_ms = (uint64_t)MOCK_DLR_BACKOFF_MS << (d->attempts - 1);
    sr_debug("delivery report post failed, retrying", "message_id", d->message_id, "http_status",
             sr_log_num(status), "retry_in_ms", sr_log_num((int64_t)backoff_ms));
    uv_timer_start(&d->timer, mock_dlr_post, backoff_ms, 0);
}

static void mock_dlr_answered(const sr_http_client_response *resp, void *ud) {
    mock_dlr *d = ud;
    d->posting = false;
    if (resp->error == 0 && resp->status >= 200 && resp->status < 300) {
        d->mp->stats.dlr_sent++;
        mock_dlr_finish(d);
        return;
    }
    if (resp->error == SR_HTTP_E_CANCELLED) {
        mock_dlr_finish(d);
        return;
    }
    mock_dlr_failed_attempt(d, resp->status, resp->error_message);
}

static void mock_rfc3339_now(char *out, size_t len) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void mock_dlr_post(uv_timer_t *t) {
    mock_dlr *d = t->data;
    mock_provider *mp = d->mp;
    const char *url = mp->set.dlr_url;
    if (mp->stopping || !url) {
        /* Reports were switched off meanwhile (POST /control). */
        mock_dlr_finish(d);
        return;
    }
    d->attempts++;
    if (!mp->client && sr_http_client_new(&mp->client, mp->loop) != 0) {
        mp->client = NULL;
        mock_dlr_failed_attempt(d, 0, "cannot create the HTTP client");
        return;
    }
    char timestamp[32];
    mock_rfc3339_now(timestamp, sizeof timestamp);
    sr_buf body;
    sr_buf_init(&body);
    sr_buf_puts(&body, "{\"message_id\":");
    sr_buf_json_str(&body, d->message_id, strlen(d->message_id));
    sr_buf_puts(&body, d->undelivered ? ",\"status\":\"UNDELIV\",\"to\":" : ",\"status\":\"DELIVRD\",\"to\":");
    sr_buf_json_str(&body, d->to, d->to_len);
    sr_buf_puts(&body, ",\"timestamp\":\"");
    sr_buf_puts(&body, timestamp);
    sr_buf_puts(&body, "\"}");
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    sr_http_client_request r;
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.url = url;
    r.headers = headers;
    r.body = body.data;
    r.body_len = body.len;
    r.timeout_ms = MOCK_DLR_TIMEOUT_MS;
    int rc = sr_http_client_request_start(mp->client, &r, mock_dlr_answered, d);
    sr_buf_free(&body);
    if (rc != 0) {
        mock_dlr_failed_attempt(d, 0, "the request could not start");
        return;
    }
    d->posting = true;
}

/* ---- POST /send ---- */

/* The outcome chosen by the last four digits of the recipient. */
static mock_outcome mock_pattern(const char *to, size_t len) {
    char last[4];
    int n = 0;
    for (size_t i = len; i > 0 && n < 4; i--) {
        char ch = to[i - 1];
        if (ch >= '0' && ch <= '9') last[3 - n++] = ch;
    }
    if (n < 4) return MOCK_OK;
    if (memcmp(last, "0000", 4) == 0) return MOCK_REJECT;
    if (memcmp(last, "0401", 4) == 0) return MOCK_UNAUTHORIZED;
    if (memcmp(last, "0503", 4) == 0) return MOCK_UNAVAILABLE;
    if (memcmp(last, "0429", 4) == 0) return MOCK_RATE_LIMITED;
    if (memcmp(last, "0408", 4) == 0) return MOCK_TIMEOUT;
    if (memcmp(last, "0666", 4) == 0) return MOCK_UNDELIVERED;
    return MOCK_OK;
}

static bool mock_auth_ok(const mock_provider *mp, const sr_http_request *req) {
    const char *key = mp->set.auth_key;
    size_t key_len = strlen(key), len;
    const char *v = sr_http_header_get(req, "authorization", &len);
    if (v && len == key_len + 7 && strncasecmp(v, "Bearer ", 7) == 0 && memcmp(v + 7, key, key_len) == 0)
        return true;
    v = sr_http_header_get(req, "x-api-key", &len);
    return v && len == key_len && memcmp(v, key, key_len) == 0;
}

/* The recipient of a message, or NULL when it is not a usable message. */
static const sr_json *mock_message_to(const sr_json *msg) {
    if (!msg || msg->type != SR_JSON_OBJECT) return NULL;
    const sr_json *to = sr_json_get(msg, "to");
    return to && to->type == SR_JSON_STRING && to->len > 0 ? to : NULL;
}

/* Why a message is unusable, or NULL when it is fine. */
static const char *mock_message_problem(const sr_json *msg) {
    if (!msg || msg->type != SR_JSON_OBJECT) return "invalid request: a message must be an object";
    if (!mock_message_to(msg)) return "invalid request: \"to\" must be a non-empty string";
    const sr_json *text = sr_json_get(msg, "message");
    if (!text || text->type != SR_JSON_STRING) return "invalid request: \"message\" must be a string";
    const sr_json *from = sr_json_get(msg, "from");
    if (from && from->type != SR_JSON_STRING && from->type != SR_JSON_NULL)
        return "invalid request: \"from\" must be a string";
    const sr_json *id = sr_json_get(msg, "id");
    if (id && id->type != SR_JSON_STRING && id->type != SR_JSON_NUMBER && id->type != SR_JSON_NULL)
        return "invalid request: \"id\" must be a string";
    return NULL;
}

/* Decides one message of a request that passed the request-level draws and
 * writes its result object into out. draw is this message's number in
 * [0, 100) (already past the request-level bands). Appends a report to
 * dlrs when reports are on. Returns the HTTP status a single send gets. */
static int mock_send_one(mock_provider *mp, const sr_http_request *req, const sr_json *msg, double draw,
                         bool batch, sr_buf *out, mock_dlr_list *dlrs) {
    const char *problem = mock_message_problem(msg);
    if (problem) {
        mp->stats.bad_requests++;
        sr_buf_puts(out, batch ? "{\"status\":\"rejected\",\"error\":" : "{\"error\":");
        sr_buf_json_str(out, problem, strlen(problem));
        sr_buf_putc(out, '}');
        return 400;
    }
    const sr_json *to = sr_json_get(msg, "to");
    const sr_json *id = sr_json_get(msg, "id");
    if (id && id->type == SR_JSON_NULL) id = NULL;
    uint64_t id_hash = id ? mock_hash(id->str, id->len) : 0;
    if (id) {
        mock_slot *seen = mock_map_find(&mp->seen, id->str, id->len, id_hash);
        if (!seen) seen = mock_map_find(&mp->seen_old, id->str, id->len, id_hash);
        if (seen) {
            mp->stats.duplicates++;
            const char *mid = mock_slot_value(seen);
            sr_buf_puts(out, "{\"message_id\":");
            sr_buf_json_str(out, mid, strlen(mid));
            sr_buf_puts(out, ",\"status\":\"accepted\",\"duplicate\":true,\"id\":");
            sr_json_write(out, id); /* as the client wrote it */
            sr_buf_putc(out, '}');
            return 200;
        }
    }
    mock_outcome pattern = mock_pattern(to->str, to->len);
    double request_band = mp->set.fail_5xx_pct + mp->set.fail_429_pct + mp->set.timeout_pct;
    if (pattern == MOCK_REJECT || (pattern == MOCK_OK && draw < request_band + mp->set.reject_pct)) {
        mp->stats.rejected++;
        sr_buf_puts(out, batch ? "{\"status\":\"rejected\",\"error\":\"invalid number\"" : "{\"error\":\"invalid number\"");
        if (batch && id) {
            sr_buf_puts(out, ",\"id\":");
            sr_json_write(out, id);
        }
        sr_buf_putc(out, '}');
        return 400;
    }

    char message_id[MOCK_ID_LEN];
    snprintf(message_id, sizeof message_id, "%s%" PRIu64, mp->id_prefix, ++mp->next_id);
    mp->stats.received++;
    mock_map_upsert(&mp->recipients, to->str, to->len, mock_hash(to->str, to->len), NULL)->count++;
    mock_rate_add(&mp->rate, req->start_ns / 1000000);
    if (id) {
        if (mp->seen.used >= mp->max_ids / 2 + 1) {
            /* The oldest generation goes: at most max_ids ids are remembered. */
            mock_map_clear(&mp->seen_old);
            mp->seen_old = mp->seen;
            memset(&mp->seen, 0, sizeof mp->seen);
        }
        mock_map_upsert(&mp->seen, id->str, id->len, id_hash, message_id);
    }
    if (mp->set.dlr_url) {
        bool undelivered = pattern == MOCK_UNDELIVERED;
        if (!undelivered && mp->set.dlr_undelivered_pct > 0)
            undelivered = mock_rand_pct(mp) < mp->set.dlr_undelivered_pct;
        mock_dlr *d = mock_dlr_new(mp, message_id, to->str, to->len, undelivered);
        *dlrs->tail = d;
        dlrs->tail = &d->next_deferred;
    }
    sr_buf_puts(out, "{\"message_id\":");
    sr_buf_json_str(out, message_id, strlen(message_id));
    sr_buf_puts(out, ",\"status\":\"accepted\"");
    if (id) {
        sr_buf_puts(out, ",\"id\":");
        sr_json_write(out, id);
    }
    sr_buf_putc(out, '}');
    return 200;
}

/* Decides the request-level outcome (recipient patterns first, then the
 * draw, which is stored in *draw) of a request whose messages start at first. */
static mock_outcome mock_request_outcome(mock_provider *mp, const sr_json *first, bool batch, double *draw) {
    for (const sr_json *m = first; m; m = batch ? m->next : NULL) {
        const sr_json *to = mock_message_problem(m) ? NULL : mock_message_to(m);
        if (!to) continue;
        mock_outcome p = mock_pattern(to->str, to->len);
        if (p == MOCK_UNAUTHORIZED || p == MOCK_UNAVAILABLE || p == MOCK_RATE_LIMITED || p == MOCK_TIMEOUT) return p;
    }
    double band_5xx = mp->set.fail_5xx_pct, band_429 = band_5xx + mp->set.fail_429_pct;
    *draw = mock_rand_pct(mp);
    if (*draw < band_5xx) return MOCK_UNAVAILABLE;
    if (*draw < band_429) return MOCK_RATE_LIMITED;
    if (*draw < band_429 + mp->set.timeout_pct) return MOCK_TIMEOUT;
    return MOCK_OK;
}

static void mock_send(mock_provider *mp, sr_http_request *req) {
    mp->stats.requests++;
    if (++mp->in_flight > mp->stats.max_in_flight) mp->stats.max_in_flight = mp->in_flight;
    if (mp->stopping) {
        static const char body[] = "{\"error\":\"unavailable\"}";
        mock_respond_send(mp, req, 503, body, sizeof body - 1, NULL);
        return;
    }
    if (mp->set.down) {
        mp->stats.down_dropped++;
        mock_hold(mp, req, MOCK_HOLD_DOWN);
        return;
    }
    if (mp->set.auth_key && !mock_auth_ok(mp, req)) {
        mp->stats.unauthorized++;
        mock_finish_send_str(mp, req, 401, "{\"error\":\"unauthorized\"}", NULL);
        return;
    }

    sr_json_doc doc;
    sr_buf out;
    sr_buf_init(&out);
    char err[160];
    if (sr_json_parse(&doc, req->body, req->body_len, err, sizeof err) != 0) {
        mp->stats.bad_requests++;
        char msg[200];
        snprintf(msg, sizeof msg, "invalid JSON: %s", err);
        sr_buf_puts(&out, "{\"error\":");
        sr_buf_json_str(&out, msg, strlen(msg));
        sr_buf_putc(&out, '}');
        mock_finish_send(mp, req, 400, &out, NULL, NULL);
        goto done;
    }
    const sr_json *root = doc.root;
    const sr_json *list = root->type == SR_JSON_OBJECT ? sr_json_get(root, "messages") : NULL;
    bool batch = list != NULL;
    if (root->type != SR_JSON_OBJECT) {
        mp->stats.bad_requests++;
        mock_finish_send_str(mp, req, 400, "{\"error\":\"invalid request: the body must be a JSON object\"}", NULL);
        goto done;
    }
    if (batch && (list->type != SR_JSON_ARRAY || list->count == 0 || list->count > MOCK_MAX_BATCH)) {
        mp->stats.bad_requests++;
        mock_finish_send_str(mp, req, 400,
                             "{\"error\":\"invalid request: \\\"messages\\\" must be an array of 1 to 10000 "
                             "messages\"}",
                             NULL);
        goto done;
    }
    const sr_json *first = batch ? list->child : root;
    double draw = 0;
    switch (mock_request_outcome(mp, first, batch, &draw)) {
    case MOCK_UNAUTHORIZED:
        mp->stats.unauthorized++;
        mock_finish_send_str(mp, req, 401, "{\"error\":\"unauthorized\"}", NULL);
        goto done;
    case MOCK_UNAVAILABLE:
        mp->stats.failed_5xx++;
        mock_finish_send_str(mp, req, 503, "{\"error\":\"unavailable\"}", NULL);
        goto done;
    case MOCK_RATE_LIMITED: {
        mp->stats.failed_429++;
        char extra[64];
        snprintf(extra, sizeof extra, "Retry-After: %" PRIu64 "\r\n", mp->set.retry_after_s);
        mock_finish_send_str(mp, req, 429, "{\"error\":\"rate limited\"}", extra);
        goto done;
    }
    case MOCK_TIMEOUT:
        mp->stats.timeouts++;
        mock_hold(mp, req, MOCK_HOLD_TIMEOUT);
        goto done;
    default: break;
    }

    /* Message-level outcomes. The first message reuses the request's draw;
     * later ones draw past the request-level bands, so --reject stays the
     * share of all messages. */
    double request_band = mp->set.fail_5xx_pct + mp->set.fail_429_pct + mp->set.timeout_pct;
    mock_dlr_list dlrs = {NULL, &dlrs.head};
    int status = 200;
    if (batch) {
        sr_buf_puts(&out, "{\"results\":[");
        for (const sr_json *m = first; m; m = m->next) {
            if (m != first) {
                sr_buf_putc(&out, ',');
                draw = request_band + mock_rand_pct(mp) * (100 - request_band) / 100;
            }
            mock_send_one(mp, req, m, draw, true, &out, &dlrs);
        }
        sr_buf_puts(&out, "]}");
    } else {
        status = mock_send_one(mp, req, root, draw, false, &out, &dlrs);
    }
    mock_finish_send(mp, req, status, &out, NULL, dlrs.head);
done:
    sr_json_doc_free(&doc);
    sr_buf_free(&out);
}

/* ---- GET /stats, POST /stats/reset, /control ---- */

static void mock_put_field(sr_buf *b, const char *name, uint64_t value) {
    sr_buf_putc(b, '"');
    sr_buf_puts(b, name);
    sr_buf_puts(b, "\":");
    sr_buf_put_u64(b, value);
    sr_buf_putc(b, ',');
}

static void mock_stats_get(mock_provider *mp, sr_http_request *req) {
    const mock_stats *s = &mp->stats;
    bool with_recipients = strstr(req->query, "by_recipient=0") == NULL;
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_reserve(&b, 512 + (with_recipients ? mp->recipients.used * 24 : 0));
    sr_buf_putc(&b, '{');
    mock_put_field(&b, "received", s->received);
    mock_put_field(&b, "requests", s->requests);
    if (with_recipients) {
        sr_buf_puts(&b, "\"by_recipient\":{");
        bool first = true;
        for (size_t i = 0; i < mp->recipients.cap; i++) {
            const mock_slot *slot = &mp->recipients.slots[i];
            if (!slot->hash) continue;
            if (!first) sr_buf_putc(&b, ',');
            first = false;
            sr_buf_json_str(&b, slot->key, slot->key_len);
            sr_buf_putc(&b, ':');
            sr_buf_put_u64(&b, slot->count);
        }
        sr_buf_puts(&b, "},");
    }
    mock_put_field(&b, "recipients", mp->recipients.used);
    mock_put_field(&b, "rejected", s->rejected);
    mock_put_field(&b, "failed_5xx", s->failed_5xx);
    mock_put_field(&b, "failed_429", s->failed_429);
    mock_put_field(&b, "timeouts", s->timeouts);
    mock_put_field(&b, "duplicates", s->duplicates);
    mock_put_field(&b, "unauthorized", s->unauthorized);
    mock_put_field(&b, "bad_requests", s->bad_requests);
    mock_put_field(&b, "down_dropped", s->down_dropped);
    mock_put_field(&b, "dlr_sent", s->dlr_sent);
    mock_put_field(&b, "dlr_failed", s->dlr_failed);
    mock_put_field(&b, "dlr_pending", mp->dlrs_started);
    mock_put_field(&b, "in_flight", (uint64_t)mp->in_flight);
    mock_put_field(&b, "max_in_flight", (uint64_t)s->max_in_flight);
    sr_buf_puts(&b, "\"rate\":{\"window_ms\":");
    sr_buf_put_u64(&b, MOCK_RATE_WINDOW_MS);
    sr_buf_puts(&b, ",\"max_per_window\":");
    sr_buf_put_u64(&b, mp->rate.max_per_window);
    sr_buf_puts(&b, "}}");
    sr_http_respond(req, 200, "application/json", b.data, b.len, NULL);
    sr_buf_free(&b);
}

static void mock_stats_reset(mock_provider *mp, sr_http_request *req) {
    memset(&mp->stats, 0, sizeof mp->stats);
    mp->stats.max_in_flight = mp->in_flight;
    mock_map_clear(&mp->recipients);
    mock_map_clear(&mp->seen);
    mock_map_clear(&mp->seen_old);
    mock_rate_clear(&mp->rate);
    static const char body[] = "{\"reset\":true}";
    sr_http_respond(req, 200, "application/json", body, sizeof body - 1, NULL);
}

static void mock_put_pct(sr_buf *b, const char *name, double pct) {
    sr_buf_printf(b, "\"%s\":%.15g,", name, pct);
}

static void mock_settings_write(const mock_provider *mp, sr_buf *b) {
    const mock_settings *s = &mp->set;
    sr_buf_putc(b, '{');
    mock_put_pct(b, "fail_5xx", s->fail_5xx_pct);
    mock_put_pct(b, "fail_429", s->fail_429_pct);
    mock_put_field(b, "retry_after", s->retry_after_s);
    mock_put_pct(b, "timeout", s->timeout_pct);
    mock_put_field(b, "hold_ms", s->hold_ms);
    mock_put_pct(b, "reject", s->reject_pct);
    mock_put_field(b, "latency_ms", s->latency_ms);
    mock_put_field(b, "latency_jitter_ms", s->latency_jitter_ms);
    sr_buf_puts(b, "\"dlr_url\":");
    if (s->dlr_url) sr_buf_json_str(b, s->dlr_url, strlen(s->dlr_url));
    else sr_buf_puts(b, "null");
    sr_buf_putc(b, ',');
    mock_put_field(b, "dlr_delay_ms", s->dlr_delay_ms);
    mock_put_pct(b, "dlr_undelivered", s->dlr_undelivered_pct);
    sr_buf_printf(b, "\"dlr_before_answer\":%s,\"auth\":%s,\"down\":%s}", s->dlr_before_answer ? "true" : "false",
                  s->auth_key ? "true" : "false", s->down ? "true" : "false");
}

/* A percentage member: 0 when absent, 1 when valid (stored), -1 when invalid. */
static int mock_control_pct(const sr_json *root, const char *name, double *out) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    if (v->type != SR_JSON_NUMBER || !(v->num >= 0 && v->num <= 100)) return -1;
    *out = v->num;
    return 1;
}

static int mock_control_uint(const sr_json *root, const char *name, uint64_t *out) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    int64_t n;
    if (!sr_json_is_integer(v, &n) || n < 0 || n > 86400000) return -1;
    *out = (uint64_t)n;
    return 1;
}

static int mock_control_bool(const sr_json *root, const char *name, bool *out) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    if (v->type != SR_JSON_TRUE && v->type != SR_JSON_FALSE) return -1;
    *out = v->type == SR_JSON_TRUE;
    return 1;
}

/* A string-or-null member: *out becomes a new copy (or NULL); *set tells it was there. */
static int mock_control_str(const sr_json *root, const char *name, char **out, bool *set) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    if (v->type == SR_JSON_NULL) {
        *out = NULL;
    } else if (v->type == SR_JSON_STRING && v->len > 0 && strlen(v->str) == v->len) {
        *out = strdup(v->str);
        if (!*out) abort();
    } else {
        return -1;
    }
    *set = true;
    return 1;
}

/* Answers the held "down" requests: the provider is back. */
static void mock_release_down(mock_provider *mp) {
    mock_pending *p = mp->pending;
    while (p) {
        mock_pending *next = p->next;
        if (p->hold == MOCK_HOLD_DOWN) mock_pending_answer(p);
        p = next;
    }
}

static void mock_control(mock_provider *mp, sr_http_request *req) {
    static const char *const known[] = {"fail_5xx", "fail_429", "retry_after", "timeout", "hold_ms", "reject",
                                        "latency_ms", "latency_jitter_ms", "dlr_url", "dlr_delay_ms",
                                        "dlr_undelivered", "dlr_before_answer", "down", "auth_key", NULL};
    sr_json_doc doc;
    char err[160];
    if (sr_json_parse(&doc, req->body, req->body_len, err, sizeof err) != 0 || doc.root->type != SR_JSON_OBJECT) {
        sr_json_doc_free(&doc);
        mock_respond_error(req, 400, "the body must be a JSON object of settings", NULL);
        return;
    }
    for (const sr_json *m = doc.root->child; m; m = m->next) {
        bool ok = false;
        for (int i = 0; known[i]; i++) ok = ok || strcmp(m->key, known[i]) == 0;
        if (!ok) {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown setting \"%.100s\"", m->key);
            sr_json_doc_free(&doc);
            mock_respond_error(req, 400, msg, NULL);
            return;
        }
    }
    /* Validate everything into a copy, then apply at once. */
    mock_settings next = mp->set;
    char *auth_key = NULL, *dlr_url = NULL;
    bool auth_set = false, dlr_url_set = false;
    const sr_json *root = doc.root;
    bool bad = mock_control_pct(root, "fail_5xx", &next.fail_5xx_pct) < 0 ||
               mock_control_pct(root, "fail_429", &next.fail_429_pct) < 0 ||
               mock_control_pct(root, "timeout", &next.timeout_pct) < 0 ||
               mock_control_pct(root, "reject", &next.reject_pct) < 0 ||
               mock_control_pct(root, "dlr_undelivered", &next.dlr_undelivered_pct) < 0 ||
               mock_control_uint(root, "retry_after", &next.retry_after_s) < 0 ||
               mock_control_uint(root, "hold_ms", &next.hold_ms) < 0 ||
               mock_control_uint(root, "latency_ms", &next.latency_ms) < 0 ||
               mock_control_uint(root, "latency_jitter_ms", &next.latency_jitter_ms) < 0 ||
               mock_control_uint(root, "dlr_delay_ms", &next.dlr_delay_ms) < 0 ||
               mock_control_bool(root, "dlr_before_answer", &next.dlr_before_answer) < 0 ||
               mock_control_bool(root, "down", &next.down) < 0 ||
               mock_control_str(root, "auth_key", &auth_key, &auth_set) < 0 ||
               mock_control_str(root, "dlr_url", &dlr_url, &dlr_url_set) < 0;
    sr_json_doc_free(&doc);
    if (!bad && next.fail_5xx_pct + next.fail_429_pct + next.timeout_pct + next.reject_pct > 100) bad = true;
    if (bad) {
        free(auth_key);
        free(dlr_url);
        mock_respond_error(req, 400,
                           "invalid setting: percentages are numbers 0-100 (fail_5xx + fail_429 + timeout + reject "
                           "at most 100), durations non-negative integers, flags true or false, keys and URLs "
                           "strings or null",
                           NULL);
        return;
    }
    if (auth_set) {
        free(mp->set.auth_key);
        next.auth_key = auth_key;
    }
    if (dlr_url_set) {
        free(mp->set.dlr_url);
        next.dlr_url = dlr_url;
    }
    bool was_down = mp->set.down;
    mp->set = next;
    if (was_down != next.down) sr_info(next.down ? "provider down" : "provider up");
    if (was_down && !next.down) mock_release_down(mp);
    sr_buf b;
    sr_buf_init(&b);
    mock_settings_write(mp, &b);
    sr_http_respond(req, 200, "application/json", b.data, b.len, NULL);
    sr_buf_free(&b);
}

static void mock_handle(sr_http_request *req, void *ud) {
    mock_provider *mp = ud;
    bool is_post = strcmp(req->method_name, "POST") == 0;
    bool is_get = strcmp(req->method_name, "GET") == 0;
    const char *path = req->path;
    if (strcmp(path, "/send") == 0 || strcmp(path, "/") == 0) {
        req->route = "/send";
        if (is_post) mock_send(mp, req);
        else mock_respond_error(req, 405, "use POST", "Allow: POST\r\n");
    } else if (strcmp(path, "/stats") == 0) {
        req->route = "/stats";
        if (is_get) mock_stats_get(mp, req);
        else mock_respond_error(req, 405, "use GET", "Allow: GET\r\n");
    } else if (strcmp(path, "/stats/reset") == 0) {
        req->route = "/stats/reset";
        if (is_post) mock_stats_reset(mp, req);
        else mock_respond_error(req, 405, "use POST", "Allow: POST\r\n");
    } else if (strcmp(path, "/control") == 0) {
        req->route = "/control";
        if (is_post) {
            mock_control(mp, req);
        } else if (is_get) {
            sr_buf b;
            sr_buf_init(&b);
            mock_settings_write(mp, &b);
            sr_http_respond(req, 200, "application/json", b.data, b.len, NULL);
            sr_buf_free(&b);
        } else {
            mock_respond_error(req, 405, "use GET or POST", "Allow: GET, POST\r\n");
        }
    } else if (strcmp(path, "/healthz") == 0 && is_get) {
        req->route = "/healthz";
        static const char body[] = "{\"status\":\"ok\"}";
        sr_http_respond(req, 200, "application/json", body, sizeof body - 1, NULL);
    } else {
        req->route = "unmatched";
        mock_respond_error(req, 404, "not found", NULL);
    }
}

/* ---- lifecycle ---- */

static void mock_close_walk(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void mock_stopped(void *ud) {
    mock_provider *mp = ud;
    uv_timer_stop(&mp->drain_timer);
    uv_walk(mp->loop, mock_close_walk, NULL);
}

static void mock_drain_deadline(uv_timer_t *t) {
    mock_provider *mp = t->data;
    sr_warn("drain deadline reached, closing remaining connections");
    sr_http_server_abort(mp->server);
}

/* Stops: reports are cancelled, every waiting answer is given now, then the
 * server drains (bounded by MOCK_DRAIN_MS) and the loop ends. */
static void mock_on_signal(uv_signal_t *h, int signum) {
    mock_provider *mp = h->data;
    if (mp->stopping) return;
    mp->stopping = true;
    sr_info("stopping", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", "in_flight", sr_log_num(mp->in_flight));
    mock_dlr *d = mp->dlrs;
    while (d) {
        mock_dlr *next = d->next;
        if (!d->posting) mock_dlr_finish(d);
        d = next;
    }
    if (mp->client) {
        /* Runs the callbacks of the posts in flight (cancelled) before returning. */
        sr_http_client_close(mp->client);
        mp->client = NULL;
    }
    while (mp->pending) mock_pending_answer(mp->pending);
    uv_timer_start(&mp->drain_timer, mock_drain_deadline, MOCK_DRAIN_MS, 0);
    sr_http_server_stop(mp->server, mock_stopped, mp);
}

/* ---- command line ---- */

static int mock_usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "smsrules mock-provider: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", mock_usage);
    return 1;
}

static int mock_parse_uint(const char *s, uint64_t max, uint64_t *out) {
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v > max) return -1;
    *out = v;
    return 0;
}

static int mock_parse_pct(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || v < 0 || v > 100) return -1;
    *out = v;
    return 0;
}

enum {
    OPT_LATENCY = 256,
    OPT_JITTER,
    OPT_FAIL_5XX,
    OPT_FAIL_429,
    OPT_RETRY_AFTER,
    OPT_TIMEOUT,
    OPT_HOLD,
    OPT_REJECT,
    OPT_AUTH_KEY,
    OPT_DLR_URL,
    OPT_DLR_DELAY,
    OPT_DLR_UNDELIVERED,
    OPT_DLR_BEFORE,
    OPT_MAX_IDS,
    OPT_SEED,
    OPT_LOG_LEVEL
};

/* Fills mp's settings from argv. Returns 0 to run, else -1 with *exit_code
 * set (help printed or a usage error). Strings in the settings are copies
 * owned by mp. */
static int mock_parse_args(int argc, char **argv, mock_provider *mp, const char **listen, uint64_t *seed,
                           bool *seed_given, int *exit_code) {
    static const struct option long_opts[] = {{"listen", required_argument, NULL, 'l'},
                                              {"latency-ms", required_argument, NULL, OPT_LATENCY},
                                              {"latency-jitter-ms", required_argument, NULL, OPT_JITTER},
                                              {"fail-5xx", required_argument, NULL, OPT_FAIL_5XX},
                                              {"fail-429", required_argument, NULL, OPT_FAIL_429},
                                              {"retry-after", required_argument, NULL, OPT_RETRY_AFTER},
                                              {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                              {"hold-ms", required_argument, NULL, OPT_HOLD},
                                              {"reject", required_argument, NULL, OPT_REJECT},
                                              {"auth-key", required_argument, NULL, OPT_AUTH_KEY},
                                              {"dlr-url", required_argument, NULL, OPT_DLR_URL},
                                              {"dlr-delay-ms", required_argument, NULL, OPT_DLR_DELAY},
                                              {"dlr-undelivered", required_argument, NULL, OPT_DLR_UNDELIVERED},
                                              {"dlr-before-answer", no_argument, NULL, OPT_DLR_BEFORE},
                                              {"max-ids", required_argument, NULL, OPT_MAX_IDS},
                                              {"seed", required_argument, NULL, OPT_SEED},
                                              {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    mock_settings *s = &mp->set;
    opterr = 0;
    optind = 1;
    int ch;
    const uint64_t max_ms = 86400000; /* a day */
    while ((ch = getopt_long(argc, argv, ":l:h", long_opts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'h': fputs(mock_usage, stdout); *exit_code = 0; return -1;
        case 'l': *listen = optarg; break;
        case OPT_LATENCY: bad = mock_parse_uint(optarg, max_ms, &s->latency_ms); break;
        case OPT_JITTER: bad = mock_parse_uint(optarg, max_ms, &s->latency_jitter_ms); break;
        case OPT_FAIL_5XX: bad = mock_parse_pct(optarg, &s->fail_5xx_pct); break;
        case OPT_FAIL_429: bad = mock_parse_pct(optarg, &s->fail_429_pct); break;
        case OPT_RETRY_AFTER: bad = mock_parse_uint(optarg, 86400, &s->retry_after_s); break;
        case OPT_TIMEOUT: bad = mock_parse_pct(optarg, &s->timeout_pct); break;
        case OPT_HOLD: bad = mock_parse_uint(optarg, max_ms, &s->hold_ms); break;
        case OPT_REJECT: bad = mock_parse_pct(optarg, &s->reject_pct); break;
        case OPT_AUTH_KEY:
            if (!*optarg) bad = -1;
            else sr_config_set_str(&s->auth_key, optarg);
            break;
        case OPT_DLR_URL:
            if (!*optarg) bad = -1;
            else sr_config_set_str(&s->dlr_url, optarg);
            break;
        case OPT_DLR_DELAY: bad = mock_parse_uint(optarg, max_ms, &s->dlr_delay_ms); break;
        case OPT_DLR_UNDELIVERED: bad = mock_parse_pct(optarg, &s->dlr_undelivered_pct); break;
        case OPT_DLR_BEFORE: s->dlr_before_answer = true; break;
        case OPT_MAX_IDS: bad = mock_parse_uint(optarg, UINT32_MAX, &mp->max_ids); break;
        case OPT_SEED:
            bad = mock_parse_uint(optarg, UINT64_MAX, seed);
            *seed_given = true;
            break;
        case OPT_LOG_LEVEL:
            if (sr_log_parse_level(optarg) < 0) {
                *exit_code = mock_usage_error("unknown log level '%s'", optarg);
                return -1;
            }
            sr_log_set_level((sr_log_level)sr_log_parse_level(optarg));
            break;
        case ':': *exit_code = mock_usage_error("option '%s' needs a value", argv[optind - 1]); return -1;
        default: *exit_code = mock_usage_error("unknown option '%s'", argv[optind - 1]); return -1;
        }
        if (bad) {
            *exit_code = mock_usage_error("invalid value for %s", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        *exit_code = mock_usage_error("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (s->fail_5xx_pct + s->fail_429_pct + s->timeout_pct + s->reject_pct > 100) {
        *exit_code = mock_usage_error("%s", "--fail-5xx, --fail-429, --timeout and --reject add up to more than 100");
        return -1;
    }
    if (mp->max_ids < 2) {
        *exit_code = mock_usage_error("%s", "--max-ids must be at least 2");
        return -1;
    }
    return 0;
}

static void mock_free(mock_provider *mp) {
    mock_map_clear(&mp->recipients);
    mock_map_clear(&mp->seen);
    mock_map_clear(&mp->seen_old);
    mock_rate_clear(&mp->rate);
    free(mp->set.auth_key);
    free(mp->set.dlr_url);
}

int sr_mock_provider_main(int argc, char **argv) {
    mock_provider mp;
    memset(&mp, 0, sizeof mp);
    mp.set.retry_after_s = 1;
    mp.set.hold_ms = 60000;
    mp.set.dlr_delay_ms = 100;
    mp.max_ids = MOCK_DEFAULT_MAX_IDS;
    const char *listen = MOCK_DEFAULT_LISTEN;
    uint64_t seed = 0;
    bool seed_given = false;
    int code = 0;
    if (mock_parse_args(argc, argv, &mp, &listen, &seed, &seed_given, &code) != 0) {
        mock_free(&mp);
        return code;
    }
    char host[256];
    int port;
    if (sr_config_split_listen(listen, host, sizeof host, &port) != 0) {
        mock_free(&mp);
        return mock_usage_error("invalid listen address '%s' (want host:port)", listen);
    }
    if (!seed_given) seed = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    mp.rng = seed;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    /* Ids stay unique across restarts of the mock: a time prefix, then a counter. */
    snprintf(mp.id_prefix, sizeof mp.id_prefix, "m%" PRIx64 "-",
             (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000);

    signal(SIGPIPE, SIG_IGN);
    mp.loop = uv_default_loop();
    sr_http_options opt;
    sr_http_options_default(&opt);
    opt.max_body_bytes = 8 * 1024 * 1024; /* large batches */
    opt.max_connections = 50000;          /* held requests keep their connection */
    opt.handler = mock_handle;
    opt.handler_ud = &mp;
    char err[256];
    if (sr_http_server_start(&mp.server, mp.loop, host, port, &opt, err, sizeof err) != 0) {
        sr_error("cannot start the HTTP server", "error", err);
        uv_run(mp.loop, UV_RUN_DEFAULT);
        uv_loop_close(mp.loop);
        mock_free(&mp);
        return 2;
    }
    uv_timer_init(mp.loop, &mp.drain_timer);
    mp.drain_timer.data = &mp;
    uv_signal_init(mp.loop, &mp.sig_term);
    uv_signal_init(mp.loop, &mp.sig_int);
    mp.sig_term.data = mp.sig_int.data = &mp;
    uv_signal_start(&mp.sig_term, mock_on_signal, SIGTERM);
    uv_signal_start(&mp.sig_int, mock_on_signal, SIGINT);

    char seed_field[32];
    snprintf(seed_field, sizeof seed_field, "%s%" PRIu64, SR_LOG_NUM, seed);
    sr_info("listening", "host", host, "port", sr_log_num(sr_http_server_port(mp.server)), "seed", seed_field,
            "dlr_url", mp.set.dlr_url ? mp.set.dlr_url : "", "auth", mp.set.auth_key ? SR_LOG_NUM "true" : SR_LOG_NUM "false");

    uv_run(mp.loop, UV_RUN_DEFAULT);
    sr_http_server_free(mp.server);
    uv_loop_close(mp.loop);
    sr_info("stopped", "received", sr_log_num((int64_t)mp.stats.received));
    mock_free(&mp);
    return 0;
}
