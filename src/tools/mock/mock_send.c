/* mock_send: a send request, from credentials and parsing to the decided
 * outcome of each message and the answer (now, after the latency, or held). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/mock/mock_internal.h"
#include "core/buf.h"

/* A provider id in the dialect's style, unique across restarts of the mock,
 * into out (MOCK_ID_LEN bytes). */
void mock_new_id(mock_provider *mp, const mock_dialect *d, char *out) { d->format_id(mp, ++mp->next_id, out); }

/* ---- answers ---- */

/* Answers a send request now (every send answer goes through here, once). */
static void mock_respond_send(mock_provider *mp, sr_http_request *req, int status, const char *body, size_t len,
                              const char *extra) {
    mp->in_flight--;
    sr_http_respond(req, status, "application/json", body, len, extra);
}

/* Answers a request that is not a send: {"error": message}. */
void mock_respond_error(sr_http_request *req, int status, const char *message, const char *extra) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "error", message);
    sr_jw_object_end(&w);
    sr_http_respond(req, status, "application/json", b.data, b.len, extra);
    sr_buf_free(&b);
}

/* Answers 405 for a method other than methods (MOCK_GET | MOCK_POST). */
void mock_respond_method(sr_http_request *req, unsigned methods) {
    if (methods == (MOCK_GET | MOCK_POST)) mock_respond_error(req, 405, "use GET or POST", "Allow: GET, POST\r\n");
    else if (methods == MOCK_GET)
        mock_respond_error(req, 405, "use GET", "Allow: GET\r\n");
    else
        mock_respond_error(req, 405, "use POST", "Allow: POST\r\n");
}

/* The send answer is out: the statuses of the messages it accepted count
 * their "in progress" time from now. keys: NUL-separated status keys. */
static void mock_stamp(mock_provider *mp, const sr_buf *keys) {
    if (!keys || !keys->len) return;
    uint64_t now_ms = mock_mono_ms();
    for (size_t at = 0; at < keys->len;) {
        size_t len = strlen(keys->data + at);
        mock_slot *s = mock_recall(&mp->statuses, &mp->statuses_old, keys->data + at, len);
        if (s && (s->count >> 8) == 0) s->count |= now_ms << 8;
        at += len + 1;
    }
}

static void mock_pending_closed(uv_handle_t *h) {
    mock_pending *p = h->data;
    sr_buf_free(&p->body);
    sr_buf_free(&p->stamps);
    free(p);
}

static void mock_pending_unlink(mock_pending *p) {
    mock_provider *mp = p->mp;
    if (p->prev) p->prev->next = p->next;
    else
        mp->pending = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

/* A waiting answer, linked into mp->pending. req is borrowed until the
 * answer; body, extra and stamps (may be NULL) are copied. The caller sets
 * waits or hold. */
static mock_pending *mock_pending_new(mock_provider *mp, sr_http_request *req, int status, const char *body, size_t len,
                                      const char *extra, const sr_buf *stamps) {
    mock_pending *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->mp = mp;
    p->req = req;
    p->status = status;
    sr_buf_init(&p->body);
    sr_buf_append(&p->body, body, len);
    sr_buf_init(&p->stamps);
    if (stamps && stamps->len) sr_buf_append(&p->stamps, stamps->data, stamps->len);
    if (extra) sr_str_copy(p->extra, sizeof p->extra, extra);
    uv_timer_init(mp->loop, &p->timer);
    p->timer.data = p;
    p->next = mp->pending;
    if (mp->pending) mp->pending->prev = p;
    mp->pending = p;
    return p;
}

/* Gives the answer, starts the deferred reports, frees p (later, in the
 * timer's close callback). */
void mock_pending_answer(mock_pending *p) {
    mock_provider *mp = p->mp;
    mock_pending_unlink(p);
    uv_timer_stop(&p->timer);
    mock_respond_send(mp, p->req, p->status, p->body.data, p->body.len, p->extra[0] ? p->extra : NULL);
    p->req = NULL;
    mock_stamp(mp, &p->stamps);
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
void mock_pending_release_one(mock_pending *p) {
    if (--p->waits == 0) mock_pending_answer(p);
}

static void mock_pending_timer_cb(uv_timer_t *t) {
    mock_pending *p = t->data;
    if (p->hold != MOCK_HOLD_NONE) mock_pending_answer(p);
    else
        mock_pending_release_one(p);
}

/* Holds a send request unanswered: a timeout, or the provider is down. It is
 * answered (504, or 503 when down) after hold_ms, when the provider comes
 * back up, or at shutdown — by then the client has normally given up. */
static void mock_hold(mock_provider *mp, sr_http_request *req, mock_hold_kind kind) {
    static const char timeout_body[] = "{\"error\":\"timeout\"}";
    static const char down_body[] = "{\"error\":\"unavailable\"}";
    mock_pending *p = kind == MOCK_HOLD_TIMEOUT
                          ? mock_pending_new(mp, req, 504, timeout_body, sizeof timeout_body - 1, NULL, NULL)
                          : mock_pending_new(mp, req, 503, down_body, sizeof down_body - 1, NULL, NULL);
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
 * next_deferred). body, extra and stamps (the status keys of the accepted
 * messages, or NULL) are copied. */
static void mock_finish_send(mock_provider *mp, sr_http_request *req, int status, const sr_buf *body, const char *extra,
                             mock_dlr *dlrs, const sr_buf *stamps) {
    uint64_t delay_ms = mock_latency(mp);
    bool before = mp->set.dlr_before_answer && dlrs;
    if (delay_ms == 0 && !before) {
        mock_respond_send(mp, req, status, body->data, body->len, extra);
        mock_stamp(mp, stamps);
        while (dlrs) {
            mock_dlr *next = dlrs->next_deferred;
            dlrs->next_deferred = NULL;
            mock_dlr_start(dlrs);
            dlrs = next;
        }
        return;
    }
    mock_pending *p = mock_pending_new(mp, req, status, body->data, body->len, extra, stamps);
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

/* ---- send requests: parsing ---- */

static void mock_ctx_init(mock_send_ctx *ctx, mock_provider *mp, const char *account) {
    memset(ctx, 0, sizeof *ctx);
    mock_fields_init(&ctx->fields);
    ctx->mp = mp;
    ctx->dialect = mp->set.dialect;
    sr_str_copy(ctx->account, sizeof ctx->account, account ? account : "");
}

static void mock_ctx_free(mock_send_ctx *ctx) {
    sr_json_doc_free(&ctx->doc);
    free(ctx->msgs);
    ctx->msgs = NULL;
    mock_fields_free(&ctx->fields);
}

void mock_ctx_alloc(mock_send_ctx *ctx, size_t count) {
    ctx->msgs = calloc(count, sizeof *ctx->msgs);
    if (!ctx->msgs) abort();
    ctx->count = count;
}

/* ---- send requests: deciding ---- */

/* Decides the request-level outcome (recipient patterns first, then the
 * draw, which is stored in *draw). */
static mock_outcome mock_request_outcome(mock_provider *mp, const mock_send_ctx *ctx, double *draw) {
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        if (m->problem || !m->to) continue;
        mock_outcome p = mock_pattern(m->to, m->to_len);
        if (p == MOCK_UNAUTHORIZED || p == MOCK_UNAVAILABLE || p == MOCK_RATE_LIMITED || p == MOCK_TIMEOUT) return p;
    }
    double band_5xx = mp->set.fail_5xx_pct, band_429 = band_5xx + mp->set.fail_429_pct;
    *draw = mock_rand_pct(mp);
    if (*draw < band_5xx) return MOCK_UNAVAILABLE;
    if (*draw < band_429) return MOCK_RATE_LIMITED;
    if (*draw < band_429 + mp->set.timeout_pct) return MOCK_TIMEOUT;
    return MOCK_OK;
}

/* The key under which a client id is remembered: the id; for dialects
 * whose ids name a message together with its phone (SMSC), "id:digits". */
static void mock_seen_key(const mock_send_ctx *ctx, const mock_msg *m, sr_buf *key) {
    sr_buf_append(key, m->client_id, m->client_id_len);
    if (ctx->dialect->key_by_phone) {
        sr_buf_putc(key, ':');
        mock_put_digits(key, m->to, m->to_len);
    }
}

/* The key of a polled status: the provider id; "id:phone digits" where
 * status requests name messages that way (SMSC). */
static void mock_status_key(const mock_send_ctx *ctx, const mock_msg *m, sr_buf *key) {
    sr_buf_puts(key, m->provider_id);
    if (ctx->dialect->key_by_phone) {
        sr_buf_putc(key, ':');
        mock_put_digits(key, m->to, m->to_len);
    }
}

/* Whether m repeats a client id seen before: then it gets the same provider
 * id and counts as a duplicate. */
static bool mock_decide_duplicate(mock_send_ctx *ctx, mock_msg *m, const sr_buf *seen_key) {
    mock_provider *mp = ctx->mp;
    mock_slot *seen = m->client_id ? mock_recall(&mp->seen, &mp->seen_old, seen_key->data, seen_key->len) : NULL;
    if (!seen) return false;
    mp->stats.duplicates++;
    sr_str_copy(m->provider_id, sizeof m->provider_id, mock_slot_value(seen));
    m->result = MOCK_RESULT_DUPLICATE;
    return true;
}

/* Accepts m: its provider id, the counters, the rate windows, its client id. */
static void mock_accept(mock_send_ctx *ctx, const sr_http_request *req, mock_msg *m, const sr_buf *seen_key) {
    mock_provider *mp = ctx->mp;
    if (ctx->dialect->assign_id) ctx->dialect->assign_id(ctx, m);
    else
        mock_new_id(mp, ctx->dialect, m->provider_id);
    m->result = MOCK_RESULT_ACCEPTED;
    mp->stats.received++;
    mock_map_upsert(&mp->recipients, m->to, m->to_len, mock_hash(m->to, m->to_len), NULL)->count++;
    mock_rate_add(&mp->rate, req->start_ns / 1000000);
    mock_rate_add(&mp->calls, req->start_ns / 1000000);
    if (m->client_id) mock_remember(mp, &mp->seen, &mp->seen_old, seen_key->data, seen_key->len, m->provider_id);
}

/* Remembers the status of an accepted message of a polled dialect, and its
 * key in stamps (its "in progress" time starts with the answer). */
static void mock_remember_status(mock_send_ctx *ctx, const mock_msg *m, bool undelivered, sr_buf *stamps) {
    mock_provider *mp = ctx->mp;
    sr_buf key;
    sr_buf_init(&key);
    mock_status_key(ctx, m, &key);
    char list_id[24] = "";
    if (ctx->list_id) snprintf(list_id, sizeof list_id, "%" PRIu64, ctx->list_id);
    mock_slot *s = mock_remember(mp, &mp->statuses, &mp->statuses_old, key.data, key.len, list_id);
    s->count = (uint64_t)m->parts << 1 | (undelivered ? 1u : 0u);
    sr_buf_append(stamps, key.data, key.len);
    sr_buf_putc(stamps, '\0');
    sr_buf_free(&key);
}

/* Appends the reports of an accepted message to dlrs: one, or one per part
 * of a multipart message in formats with part numbers, as SMSCs send them. */
static void mock_add_reports(mock_send_ctx *ctx, const mock_msg *m, bool undelivered, mock_dlr_list *dlrs) {
    unsigned reports = ctx->dialect->per_part_reports && m->parts > 1 ? m->parts : 1;
    for (unsigned part = 1; part <= reports; part++) {
        mock_dlr *d = mock_dlr_new(ctx->mp, ctx->dialect, m, ctx->account, undelivered);
        if (reports > 1) {
            d->part = part;
            d->parts = reports;
        }
        *dlrs->tail = d;
        dlrs->tail = &d->next_deferred;
    }
}

/* Decides one message of a request that passed the request-level draws.
 * draw is this message's number in [0, 100) (already past the
 * request-level bands). Appends a report to dlrs when reports are on, and
 * the status key to stamps for polled dialects. */
static void mock_decide(mock_send_ctx *ctx, const sr_http_request *req, mock_msg *m, double draw, mock_dlr_list *dlrs,
                        sr_buf *stamps) {
    mock_provider *mp = ctx->mp;
    if (m->problem) {
        mp->stats.bad_requests++;
        m->result = MOCK_RESULT_INVALID;
        return;
    }
    m->parts = mock_parts(m->text, m->text_len);
    sr_buf seen_key;
    sr_buf_init(&seen_key);
    if (m->client_id) mock_seen_key(ctx, m, &seen_key);
    mock_outcome pattern = mock_pattern(m->to, m->to_len);
    double request_band = mp->set.fail_5xx_pct + mp->set.fail_429_pct + mp->set.timeout_pct;
    if (mock_decide_duplicate(ctx, m, &seen_key)) {
        /* the first answer stands */
    } else if (pattern == MOCK_REJECT || (pattern == MOCK_OK && draw < request_band + mp->set.reject_pct)) {
        mp->stats.rejected++;
        m->result = MOCK_RESULT_REJECTED;
    } else {
        mock_accept(ctx, req, m, &seen_key);
        bool report = mp->set.dlr_url && ctx->dialect->dlr_build, polled = ctx->dialect->poll != NULL;
        bool undelivered = pattern == MOCK_UNDELIVERED;
        if ((report || polled) && !undelivered && mp->set.dlr_undelivered_pct > 0)
            undelivered = mock_rand_pct(mp) < mp->set.dlr_undelivered_pct;
        if (polled) mock_remember_status(ctx, m, undelivered, stamps);
        if (report) mock_add_reports(ctx, m, undelivered, dlrs);
    }
    sr_buf_free(&seen_key);
}

/* ---- send requests: answering ---- */

/* A request-level failure in the dialect's words; returns the HTTP status
 * and sets extra (header lines, "" when none). detail: the problem of a bad
 * request. */
static int mock_write_failure(const mock_provider *mp, const mock_dialect *dialect, mock_failure f, const char *detail,
                              sr_buf *out, char *extra, size_t extra_len) {
    int status = dialect->write_failure(f, detail, out);
    extra[0] = '\0';
    if (status == 429) snprintf(extra, extra_len, "Retry-After: %" PRIu64 "\r\n", mp->set.retry_after_s);
    return status;
}

/* Answers a send with a request-level failure (after the latency), counted. */
static void mock_send_fail(mock_provider *mp, const mock_dialect *dialect, sr_http_request *req, mock_failure f,
                           const char *detail) {
    switch (f) {
    case MOCK_FAIL_UNAUTHORIZED: mp->stats.unauthorized++; break;
    case MOCK_FAIL_UNAVAILABLE: mp->stats.failed_5xx++; break;
    case MOCK_FAIL_RATE_LIMITED: mp->stats.failed_429++; break;
    case MOCK_FAIL_BAD_REQUEST: mp->stats.bad_requests++; break;
    }
    sr_buf out;
    sr_buf_init(&out);
    char extra[64];
    int status = mock_write_failure(mp, dialect, f, detail, &out, extra, sizeof extra);
    mock_finish_send(mp, req, status, &out, extra[0] ? extra : NULL, NULL, NULL);
    sr_buf_free(&out);
}

/* Checks the credentials and parses the request into ctx; false when the
 * request failed as a whole (answered). */
static bool mock_send_parse(mock_send_ctx *ctx, sr_http_request *req) {
    mock_provider *mp = ctx->mp;
    const mock_dialect *dialect = ctx->dialect;
    if (dialect->header_auth_ok && !dialect->header_auth_ok(mp, req, ctx->account)) {
        mock_send_fail(mp, dialect, req, MOCK_FAIL_UNAUTHORIZED, NULL);
        return false;
    }
    const char *bad = dialect->parse_send(ctx, req);
    if (bad) {
        mock_send_fail(mp, dialect, req, MOCK_FAIL_BAD_REQUEST, bad);
        return false;
    }
    if (dialect->body_auth_ok && !dialect->body_auth_ok(mp, &ctx->fields)) {
        mock_send_fail(mp, dialect, req, MOCK_FAIL_UNAUTHORIZED, NULL);
        return false;
    }
    return true;
}

/* Applies the request-level outcome (recipient patterns, then the random
 * mix); false when the request failed or is held (answered or answering). */
static bool mock_send_passes(mock_send_ctx *ctx, sr_http_request *req, double *draw) {
    mock_provider *mp = ctx->mp;
    switch (mock_request_outcome(mp, ctx, draw)) {
    case MOCK_UNAUTHORIZED: mock_send_fail(mp, ctx->dialect, req, MOCK_FAIL_UNAUTHORIZED, NULL); return false;
    case MOCK_UNAVAILABLE: mock_send_fail(mp, ctx->dialect, req, MOCK_FAIL_UNAVAILABLE, NULL); return false;
    case MOCK_RATE_LIMITED: mock_send_fail(mp, ctx->dialect, req, MOCK_FAIL_RATE_LIMITED, NULL); return false;
    case MOCK_TIMEOUT:
        mp->stats.timeouts++;
        mock_hold(mp, req, MOCK_HOLD_TIMEOUT);
        return false;
    default: return true;
    }
}

/* Decides every message of a request that passed, and answers it. */
static void mock_send_decide(mock_send_ctx *ctx, sr_http_request *req, double draw) {
    mock_provider *mp = ctx->mp;
    if (ctx->dialect->numbered_requests) ctx->list_id = ++mp->next_list_id;
    /* Message-level outcomes. The first message reuses the request's draw;
     * later ones draw past the request-level bands, so --reject stays the
     * share of all messages. */
    double request_band = mp->set.fail_5xx_pct + mp->set.fail_429_pct + mp->set.timeout_pct;
    mock_dlr_list dlrs = {NULL, &dlrs.head};
    sr_buf out, stamps;
    sr_buf_init(&out);
    sr_buf_init(&stamps);
    for (size_t i = 0; i < ctx->count; i++) {
        if (i > 0) draw = request_band + mock_rand_pct(mp) * (100 - request_band) / 100;
        mock_decide(ctx, req, &ctx->msgs[i], draw, &dlrs, &stamps);
    }
    int status = ctx->dialect->write_answer(ctx, &out);
    mock_finish_send(mp, req, status, &out, NULL, dlrs.head, &stamps);
    sr_buf_free(&out);
    sr_buf_free(&stamps);
}

/* A send request in the current dialect. account: the account named in the
 * path (Twilio's AccountSid), else NULL. */
void mock_send(mock_provider *mp, sr_http_request *req, const char *account) {
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
    mock_send_ctx ctx;
    mock_ctx_init(&ctx, mp, account);
    double draw = 0;
    if (mock_send_parse(&ctx, req)) {
        /* Inbound posts name the account of the last send (Twilio). */
        if (ctx.account[0]) sr_str_copy(mp->last_account, sizeof mp->last_account, ctx.account);
        if (mock_send_passes(&ctx, req, &draw)) mock_send_decide(&ctx, req, draw);
    }
    mock_ctx_free(&ctx);
}

/* A poll refused for its credentials, in the dialect's words. */
void mock_poll_unauthorized(mock_provider *mp, sr_http_request *req) {
    sr_buf out;
    sr_buf_init(&out);
    char extra[64];
    int status = mock_write_failure(mp, mp->set.dialect, MOCK_FAIL_UNAUTHORIZED, NULL, &out, extra, sizeof extra);
    sr_http_respond(req, status, "application/json", out.data, out.len, NULL);
    sr_buf_free(&out);
}
