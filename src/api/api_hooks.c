/* api_hooks: POST /hooks/{provider}/status and /hooks/{provider}/inbound
 * (also /hooks/{provider}/{secret}/...) — provider webhooks.
 *
 * Order of work: the provider must be configured; a configured path secret
 * or basic auth must match; the body is bounded (max_event_bytes) and so
 * are the form fields of the query and a form body (SR_WEBHOOK_MAX_FIELDS);
 * the adapter's verify checks the signature (401, nothing stored); the adapter
 * parses. Reports go to the reports engine; inbound SMS are deduplicated and
 * stored, each in the unit of its handler's effects when the handler runs to
 * its end at once (see "inbound" below), else in one of its own. The provider
 * gets the adapter's answer only once everything is on disk; a store failure
 * answers 503 so that it sends again. A handler error never makes the
 * provider retry; it is recorded on the stored inbound message. An inbound
 * message still "pending" at start (the daemon stopped before its handler
 * committed) is handed to the handler again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rules/adapter.h"
#include "core/buf.h"
#include "api/api.h"
#include "codec/crypto.h"
#include "codec/form.h"
#include "codec/json.h"
#include "codec/jsonw.h"
#include "core/log.h"
#include "core/metrics.h"
#include "delivery/reports.h"
#include "rules/rules_exec.h"
#include "rules/webhook_generic.h"
#include "store/store.h"
#include "codec/phone.h"
#include "codec/text.h"

#define HOOKS_DEDUP_TTL_MS (48LL * 3600 * 1000)
#define HOOKS_MAX_HEADERS 128

static void hooks_count(const char *provider, const char *kind, const char *result) {
    char labels[200];
    snprintf(labels, sizeof labels, "provider=\"%s\",kind=\"%s\",result=\"%s\"", provider, kind, result);
    sr_metric_counter("smsrules_webhooks_total", "Provider webhooks received, by provider, kind and result.", labels)
        ->value++;
}

static void hooks_respond_answer(sr_http_request *req, const sr_webhook_answer *ans) {
    const char *content_type = NULL;
    sr_buf extra;
    sr_buf_init(&extra);
    char ct[200];
    for (char **h = ans->headers; h && *h; h++) {
        if (strncasecmp(*h, "content-type:", 13) == 0) {
            const char *v = *h + 13;
            while (*v == ' ') v++;
            sr_str_copy(ct, sizeof ct, v);
            content_type = ct;
        } else if (strncasecmp(*h, "content-length:", 15) != 0 && strncasecmp(*h, "connection:", 11) != 0) {
            sr_buf_puts(&extra, *h);
            sr_buf_puts(&extra, "\r\n");
        }
    }
    if (!content_type) content_type = ans->body_len ? "text/plain" : NULL;
    sr_http_respond(req, ans->status, content_type, ans->body ? ans->body : "", ans->body_len,
                    extra.len ? extra.data : NULL);
    sr_buf_free(&extra);
}

/* "user:password" against Authorization: Basic ..., in constant time. */
static int hooks_basic_ok(sr_http_request *req, const char *expected) {
    size_t len = 0;
    const char *auth = sr_http_header_get(req, "authorization", &len);
    if (!auth || len <= 6 || strncasecmp(auth, "Basic ", 6) != 0) return 0;
    const char *b64 = auth + 6;
    size_t blen = len - 6;
    while (blen && *b64 == ' ') b64++, blen--;
    unsigned char decoded[512];
    size_t dlen = 0;
    if (sr_crypto_unbase64_max_len(blen) > sizeof decoded || sr_crypto_unbase64(decoded, &dlen, b64, blen) != 0)
        return 0;
    return sr_crypto_equal(decoded, dlen, expected, strlen(expected));
}

/* Whether the webhook has more parameters than the adapters read (SR_WEBHOOK_MAX_FIELDS): in its query, or in
 * its body when that is a form (the core parses both into request.form). */
static int hooks_too_many_fields(sr_http_request *req) {
    if (sr_form_count(req->query, req->query_len) > SR_WEBHOOK_MAX_FIELDS) return 1;
    size_t ctlen = 0;
    const char *ct = sr_http_header_get(req, "content-type", &ctlen);
    static const char form[] = "application/x-www-form-urlencoded";
    if (!ct || ctlen < sizeof form - 1 || strncasecmp(ct, form, sizeof form - 1) != 0) return 0;
    return sr_form_count(req->body, req->body_len) > SR_WEBHOOK_MAX_FIELDS;
}

/* ---- status ---- */

typedef struct hooks_status_ctx {
    sr_http_request *req;
    sr_webhook_answer ans;
    char provider[72];
} hooks_status_ctx;

static void hooks_status_done(int code, void *ud) {
    hooks_status_ctx *c = ud;
    if (code == 0) {
        hooks_count(c->provider, "status", "ok");
        hooks_respond_answer(c->req, &c->ans);
    } else if (code == SR_E_INVALID) {
        /* Only a part beyond the message's own count gets here (sr_reports_check ran before). */
        hooks_count(c->provider, "status", "invalid_report");
        sr_warn("status webhook: report refused", "provider", c->provider, "error",
                "a part beyond the parts of its message");
        sr_http_respond_error(c->req, 400, "invalid_report",
                              "the report names a part beyond the parts of its message; nothing was changed", NULL);
    } else {
        hooks_count(c->provider, "status", "store_error");
        sr_http_respond_error(c->req, code == SR_E_FULL ? 507 : 503,
                              code == SR_E_FULL ? "storage_full" : "storage_error",
                              "the report could not be stored; send it again", NULL);
    }
    sr_webhook_answer_free(&c->ans);
    free(c);
}

/* ---- inbound ----
 *
 * A fresh message with a handler is handed to it first: when the handler runs to its end at once, the message
 * (its dedup key and its record, "handled") commits in the unit of the handler's effects, one unit for the
 * message and its reply. A handler that waits for an async action (sms.http) leaves the message to be stored
 * on its own now, "pending" (as every message was before), and writes its outcome when it ends; one that
 * fails has the message stored with its error. A message whose dedup key is already stored or may be in flight
 * takes the old way: stored first (a duplicate stops there), its handler after. Either way the provider is
 * answered once the message is on disk. */

typedef struct hooks_inbound_one {
    struct hooks_inbound_ctx *ctx;
    char id[SR_ID_LEN + 1];
    sr_inbound_sms *sms; /* borrowed from ctx */
    int fresh;           /* stored now (not a duplicate) */
    int unhandled;       /* the rules have no sms.on_inbound */
    int fired;           /* its handler started before it was stored (hooks_fire_first) */
    int64_t received;
    sr_buf head;   /* the stored record's head (hooks_record_head), handed on to its handler */
    char key[300]; /* the dedup key */
    size_t klen;
} hooks_inbound_one;

typedef struct hooks_inbound_ctx {
    sr_api *app;
    sr_http_request *req;
    sr_webhook_answer ans;
    char provider[72];
    sr_inbound_sms *msgs;
    int n;
    int pending;
    int code;
    hooks_inbound_one *ones;
} hooks_inbound_ctx;

/* Dedup keys of messages whose store has not committed yet, as counts in slots of their hash: a message whose
 * slot is taken takes the old way (a collision only costs that). Loop thread only, like every webhook. */
#define HOOKS_INFLIGHT_SLOTS 4096
static unsigned short hooks_inflight[HOOKS_INFLIGHT_SLOTS];

static unsigned hooks_key_slot(const char *key, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h % HOOKS_INFLIGHT_SLOTS;
}

/* The stored record of an inbound SMS is JSON in two parts: its head (what the message says, written once when
 * it arrives) and its tail (the handler's outcome, written again as it changes). The head: an object left open
 * after its first members. */
static void hooks_record_head(sr_buf *b, const char *id, const char *provider, const sr_inbound_sms *m,
                              int64_t received) {
    sr_jw w;
    sr_jw_init(&w, b);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "id", id);
    sr_jw_field_str(&w, "provider", provider);
    sr_jw_field_str(&w, "provider_message_id", m->provider_message_id);
    sr_jw_field_str(&w, "from", m->from);
    sr_jw_field_str(&w, "to", m->to);
    sr_jw_field_strn(&w, "text", m->text, m->text_len);
    sr_jw_field_int(&w, "at", m->at_ms);
    sr_jw_field_int(&w, "received_at", received);
}

/* The whole record into rec (initialised here): head, then the state, the error and the replies, closed. */
static void hooks_record(sr_buf *rec, const sr_buf *head, const char *state, const char *error,
                         const char (*replies)[SR_ID_LEN + 1], int nreplies) {
    sr_buf_init(rec);
    sr_buf_reserve(rec, head->len + 64 + (size_t)nreplies * (SR_ID_LEN + 3) + (error ? strlen(error) + 16 : 0));
    sr_buf_append(rec, head->data, head->len);
    sr_jw w;
    sr_jw_init(&w, rec);
    /* Inside the head's object, after its members. */
    w.depth = 1;
    w.has_items[1] = true;
    /* hooks_pending_cb finds unfinished records by these exact bytes: "state":"pending". */
    sr_jw_field_str(&w, "state", state);
    if (error) sr_jw_field_str(&w, "error", error);
    sr_jw_key(&w, "replies");
    sr_jw_array_begin(&w);
    for (int i = 0; i < nreplies; i++) sr_jw_cstr(&w, replies[i]);
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
}

/* Adds the record (head, then the outcome) to the unit t, with the message's dedup key when key is not NULL. */
static void hooks_record_set(sr_api *app, sr_store_txn *t, const char *id, const sr_buf *head, int64_t received,
                             const char *key, size_t klen, const char *state, const char *error,
                             const char (*replies)[SR_ID_LEN + 1], int nreplies) {
    if (key) sr_store_txn_dedup(t, key, klen, received + HOOKS_DEDUP_TTL_MS);
    sr_buf rec;
    hooks_record(&rec, head, state, error, replies, nreplies);
    sr_store_txn_set(t, SR_SPACE_INBOUND, id, strlen(id), rec.data, rec.len,
                     received + (int64_t)app->config->inbound_retention_s * 1000);
    sr_buf_free(&rec);
}

typedef enum {
    HOOKS_FIRST,   /* the message is stored with the handler's unit (hooks_fire_first) */
    HOOKS_PENDING, /* the handler waits; the message's own unit ("pending") is submitted */
    HOOKS_STORED   /* the message is on disk */
} hooks_stage;

typedef struct hooks_handler_ctx {
    sr_api *app;
    char id[SR_ID_LEN + 1];
    int64_t received;
    sr_buf head; /* the record's head: its outcome is written after it */
    hooks_stage stage;
    hooks_inbound_one *one; /* HOOKS_FIRST and HOOKS_PENDING: the webhook's message, waiting to be stored */
    int refs;               /* the handler; and a pending unit's callback */
    int store_failed;       /* the pending unit failed: the handler's effects are not written */
} hooks_handler_ctx;

static void hooks_handler_release(hooks_handler_ctx *h) {
    if (--h->refs > 0) return;
    sr_buf_free(&h->head);
    free(h);
}

static void hooks_inbound_finish(hooks_inbound_ctx *c);

/* One message of the webhook has its store's outcome (0, SR_E_EXISTS: a duplicate, or an error). */
static void hooks_one_stored(hooks_inbound_one *o, int st) {
    hooks_inbound_ctx *c = o->ctx;
    if (o->fired) hooks_inflight[hooks_key_slot(o->key, o->klen)]--;
    if (st == 0) {
        o->fresh = 1;
        sr_metric_counter("smsrules_inbound_total", "Inbound SMS stored.", NULL)->value++;
    } else if (st == SR_E_EXISTS) {
        sr_metric_counter("smsrules_inbound_duplicates_total",
                          "Inbound SMS dropped as duplicates of one already stored.", NULL)
            ->value++;
    } else if (!c->code) {
        c->code = st;
    }
    if (--c->pending == 0) hooks_inbound_finish(c);
}

static void hooks_inbound_stored(sr_store_txn *t, void *ud) { hooks_one_stored(ud, sr_store_txn_status(t)); }

static void hooks_state_written(sr_store_txn *t, void *ud) {
    (void)ud;
    if (sr_store_txn_status(t) != 0)
        sr_warn("inbound: handler outcome not recorded", "error", sr_store_strerror(sr_store_txn_status(t)));
}

/* The handler returned: its outcome is written in the unit of its effects (with the message itself when it
 * is not stored yet). */
static int hooks_mark_handled(sr_store_txn *unit, const char (*ids)[SR_ID_LEN + 1], int id_count, void *ud) {
    hooks_handler_ctx *h = ud;
    if (h->store_failed) return h->store_failed;
    int first = h->stage == HOOKS_FIRST;
    hooks_record_set(h->app, unit, h->id, &h->head, h->received, first ? h->one->key : NULL, first ? h->one->klen : 0,
                     "handled", NULL, ids, id_count);
    return 0;
}

/* The error record of a message stored with its handler's failure committed (or failed). */
static void hooks_error_stored(sr_store_txn *t, void *ud) {
    hooks_handler_ctx *h = ud;
    hooks_inbound_one *o = h->one;
    h->one = NULL;
    hooks_one_stored(o, sr_store_txn_status(t));
    hooks_handler_release(h);
}

/* The handler failed: its error is recorded on the message (stored with it when it is not stored yet). */
static void hooks_handler_failed(hooks_handler_ctx *h, const sr_invocation_result *res) {
    sr_api *app = h->app;
    char why[600];
    sr_str_copy(why, sizeof why,
                res->error                      ? res->error
                : res->status == SR_INV_TIMEOUT ? "the rule ran past its instruction budget"
                : res->status == SR_INV_MEMORY  ? "the rule ran past the memory limit"
                                                : "the rule failed");
    sr_metric_counter("smsrules_inbound_handler_errors_total", "Inbound handlers that failed (the SMS is kept).", NULL)
        ->value++;
    sr_warn("inbound: handler failed", "id", h->id, "error", why);
    int first = h->stage == HOOKS_FIRST;
    if (!app->store || app->stopping) {
        if (first) {
            hooks_inbound_one *o = h->one;
            h->one = NULL;
            hooks_one_stored(o, SR_E_IO);
        }
        return;
    }
    sr_store_txn *t = sr_store_txn_new(app->store);
    hooks_record_set(app, t, h->id, &h->head, h->received, first ? h->one->key : NULL, first ? h->one->klen : 0,
                     "error", why, NULL, 0);
    if (first) h->refs++;
    sr_store_txn_submit(t, first ? hooks_error_stored : hooks_state_written, h);
}

static void hooks_handler_done(const sr_invocation_result *res, void *ud) {
    hooks_handler_ctx *h = ud;
    if (res->status != SR_INV_OK && res->status != SR_INV_STORE) {
        hooks_handler_failed(h, res);
    } else if (h->stage == HOOKS_FIRST) {
        /* The message committed with the handler's effects ("handled"), or not at all. */
        hooks_inbound_one *o = h->one;
        h->one = NULL;
        hooks_one_stored(o, res->status == SR_INV_OK ? 0 : res->store_code);
    } else if (res->status == SR_INV_STORE && !h->store_failed) {
        sr_warn("inbound: handler outcome not recorded", "id", h->id, "error", res->error);
    }
    hooks_handler_release(h);
}

/* Hands a message to sms.on_inbound; takes head (the record's, left empty); m is read only here. one: the
 * webhook's message when it is not stored yet (it is stored with the handler's outcome), else NULL. Sets
 * *waiting when the handler waits for an async action, and then *out to its context. Returns -1 when no
 * handler ran (head is given back). */
static int hooks_fire(sr_api *app, const char *id, const char *provider, const sr_inbound_sms *m, int64_t received,
                      sr_buf *head, hooks_inbound_one *one, int *waiting, hooks_handler_ctx **out) {
    *waiting = 0;
    if (!app->rules) {
        sr_buf_free(head);
        return -1;
    }
    hooks_handler_ctx *h = calloc(1, sizeof *h);
    if (!h) abort();
    h->app = app;
    sr_str_copy(h->id, sizeof h->id, id);
    h->received = received;
    h->head = *head;
    sr_buf_init(head);
    h->stage = one ? HOOKS_FIRST : HOOKS_STORED;
    h->one = one;
    h->refs = 1;
    sr_inbound in = {.id = h->id,
                     .from = m->from,
                     .to = m->to[0] ? m->to : NULL,
                     .text = m->text,
                     .text_len = m->text_len,
                     .provider = provider,
                     .received_at_ms = received,
                     .before_commit = hooks_mark_handled,
                     .before_commit_ud = h,
                     .waiting = waiting,
                     .no_result = 1};
    *out = h; /* alive while the handler waits */
    if (sr_rules_fire_inbound(app->rules, &in, hooks_handler_done, h) == 0) return 0;
    *head = h->head; /* given back */
    free(h);
    return -1;
}

/* A waiting handler's message, stored on its own ("pending"), committed or failed. */
static void hooks_wait_stored(sr_store_txn *t, void *ud) {
    hooks_handler_ctx *h = ud;
    int st = sr_store_txn_status(t);
    /* The handler's effects must not be written without the message (a duplicate, or a store failure: the
     * provider sends it again). */
    if (st != 0) h->store_failed = st;
    h->stage = HOOKS_STORED;
    hooks_inbound_one *o = h->one;
    h->one = NULL;
    hooks_one_stored(o, st);
    hooks_handler_release(h);
}

static void hooks_inbound_finish(hooks_inbound_ctx *c) {
    if (c->code) {
        hooks_count(c->provider, "inbound", "store_error");
        sr_http_respond_error(c->req, c->code == SR_E_FULL ? 507 : 503,
                              c->code == SR_E_FULL ? "storage_full" : "storage_error",
                              "the message could not be stored; send it again", NULL);
    } else {
        hooks_count(c->provider, "inbound", "ok");
        hooks_respond_answer(c->req, &c->ans);
        /* Stored, answered: now the rules, for the messages whose handler did not run first. */
        for (int i = 0; i < c->n; i++) {
            hooks_inbound_one *o = &c->ones[i];
            if (!o->fresh || o->fired) continue;
            int waiting;
            hooks_handler_ctx *h;
            if (o->unhandled)
                sr_info("inbound: stored, no sms.on_inbound handler", "id", o->id, "provider", c->provider);
            else
                (void)hooks_fire(c->app, o->id, c->provider, o->sms, o->received, &o->head, NULL, &waiting, &h);
        }
    }
    sr_webhook_answer_free(&c->ans);
    sr_inbound_sms_free(c->msgs, c->n);
    for (int i = 0; i < c->n; i++) sr_buf_free(&c->ones[i].head);
    free(c->ones);
    free(c);
}

/* The dedup key of an inbound SMS: the provider's message id, else a hash of what it says. */
static size_t hooks_dedup_key(const char *provider, const sr_inbound_sms *m, char *out, size_t outlen) {
    int n;
    if (m->provider_message_id[0]) {
        n = snprintf(out, outlen, "in:%s:%s", provider, m->provider_message_id);
    } else {
        sr_crypto_ctx h;
        unsigned char d[SR_CRYPTO_SHA256_LEN];
        char at[24];
        snprintf(at, sizeof at, "%lld", (long long)(m->at_ms / 1000));
        sr_crypto_init(&h, SR_CRYPTO_SHA256);
        sr_crypto_update(&h, m->from, strlen(m->from) + 1);
        sr_crypto_update(&h, m->to, strlen(m->to) + 1);
        sr_crypto_update(&h, at, strlen(at) + 1);
        sr_crypto_update(&h, m->text, m->text_len);
        sr_crypto_final(&h, d);
        n = snprintf(out, outlen, "in:%s:#", provider);
        for (int i = 0; i < 16 && n + 2 < (int)outlen; i++) n += snprintf(out + n, outlen - (size_t)n, "%02x", d[i]);
    }
    return n < 0 ? 0 : (size_t)n < outlen ? (size_t)n : outlen - 1;
}

/* The handler first (see above), when the message's dedup key is neither stored nor in flight. Returns -1 when
 * the message takes the old way. */
static int hooks_fire_first(sr_api *app, hooks_inbound_ctx *c, hooks_inbound_one *o) {
    unsigned slot = hooks_key_slot(o->key, o->klen);
    if (hooks_inflight[slot] || sr_store_dedup_seen(app->store, o->key, o->klen, sr_now_ms()) != 0) return -1;
    hooks_inflight[slot]++;
    o->fired = 1;
    int waiting;
    hooks_handler_ctx *h;
    if (hooks_fire(app, o->id, c->provider, o->sms, o->received, &o->head, o, &waiting, &h) != 0) {
        hooks_inflight[slot]--;
        o->fired = 0;
        return -1;
    }
    if (waiting) {
        /* The provider is not kept waiting for an async action: the message is stored now, "pending". */
        h->stage = HOOKS_PENDING;
        h->refs++;
        sr_store_txn *t = sr_store_txn_new(app->store);
        hooks_record_set(app, t, o->id, &h->head, o->received, o->key, o->klen, "pending", NULL, NULL, 0);
        sr_store_txn_submit(t, hooks_wait_stored, h);
    }
    return 0;
}

/* Stores the webhook's messages (their handlers first where they can: see above); the answer goes out once all
 * are stored (hooks_inbound_finish). */
static void hooks_inbound(sr_api *app, sr_http_request *req, const sr_provider *p, sr_inbound_sms *msgs, int n,
                          sr_webhook_answer *ans) {
    hooks_inbound_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->app = app;
    c->req = req;
    c->ans = *ans;
    memset(ans, 0, sizeof *ans);
    sr_str_copy(c->provider, sizeof c->provider, p->name);
    c->msgs = msgs;
    c->n = n;
    c->ones = calloc((size_t)(n ? n : 1), sizeof *c->ones);
    if (!c->ones) abort();
    c->pending = n + 1; /* + 1 until every message is on its way: one may be done before the next starts */
    int64_t now = sr_now_ms();
    lua_getfield(app->rules->L, LUA_REGISTRYINDEX, SR_INBOUND_HANDLER_KEY);
    int has_handler = lua_isfunction(app->rules->L, -1);
    lua_pop(app->rules->L, 1);
    for (int i = 0; i < n; i++) {
        sr_inbound_sms *m = &msgs[i];
        /* Numbers as E.164 where they can be read so; as given otherwise (an
         * alphanumeric sender, a short code): the message is recorded either way. */
        char e164[SR_PHONE_MAX];
        if (sr_phone_normalize_received(m->from, strlen(m->from), app->config->default_country, e164) == 0)
            sr_str_copy(m->from, sizeof m->from, e164);
        if (m->to[0] && sr_phone_normalize_received(m->to, strlen(m->to), app->config->default_country, e164) == 0)
            sr_str_copy(m->to, sizeof m->to, e164);
        hooks_inbound_one *o = &c->ones[i];
        o->ctx = c;
        o->sms = m;
        o->unhandled = !has_handler;
        o->received = now;
        sr_id_new(o->id, now);
        o->klen = hooks_dedup_key(p->name, m, o->key, sizeof o->key);
        hooks_record_head(&o->head, o->id, p->name, m, now);
        if (has_handler && hooks_fire_first(app, c, o) == 0) continue;
        sr_store_txn *t = sr_store_txn_new(app->store);
        hooks_record_set(app, t, o->id, &o->head, now, o->key, o->klen, has_handler ? "pending" : "unhandled", NULL,
                         NULL, 0);
        sr_store_txn_submit(t, hooks_inbound_stored, o);
    }
    if (--c->pending == 0) hooks_inbound_finish(c);
}

/* ---- the handler ---- */

/* Whether the webhook may go on to its adapter: it exists, its basic auth matches, its body and its form fields
 * are within bounds. Answers the request and returns -1 when not. */
static int hooks_admit(sr_api *app, sr_http_request *req, const sr_provider *p, const char *kind, const char *secret) {
    int is_status = strcmp(kind, "status") == 0, is_inbound = strcmp(kind, "inbound") == 0;
    /* A wrong path secret looks like any unknown path. */
    if (!p || (!is_status && !is_inbound) || (p->webhook_path_secret == NULL) != (secret == NULL) ||
        (secret && !sr_crypto_equal(secret, strlen(secret), p->webhook_path_secret, strlen(p->webhook_path_secret)))) {
        if (p && (is_status || is_inbound)) hooks_count(p->name, kind, "not_found");
        sr_http_respond_error(req, 404, "not_found", "no such webhook", NULL);
        return -1;
    }
    if (p->webhook_basic_auth && !hooks_basic_ok(req, p->webhook_basic_auth)) {
        hooks_count(p->name, kind, "unauthorized");
        sr_http_respond_error(req, 401, "unauthorized", "this webhook needs basic auth",
                              "WWW-Authenticate: Basic realm=\"smsrules\"\r\n");
        return -1;
    }
    if (req->body_len > app->config->max_event_bytes) {
        hooks_count(p->name, kind, "too_large");
        sr_http_respond_error(req, 413, "webhook_too_large", "webhook bodies are limited (sms.config max_event_bytes)",
                              NULL);
        return -1;
    }
    if (hooks_too_many_fields(req)) {
        hooks_count(p->name, kind, "bad_request");
        char msg[120];
        snprintf(msg, sizeof msg, "webhooks may carry at most %d form fields", SR_WEBHOOK_MAX_FIELDS);
        sr_http_respond_error(req, 400, "too_many_fields", msg, NULL);
        return -1;
    }
    return 0;
}

/* What the provider called, as it signs it: the public URL when configured, else http://Host; then the path and
 * the query. Into url (initialised here, NUL-terminated; the caller frees it). */
static void hooks_signed_url(sr_api *app, sr_http_request *req, sr_buf *url) {
    sr_buf_init(url);
    const char *base = app->config->public_url;
    if (base && *base) {
        size_t blen = strlen(base);
        while (blen && base[blen - 1] == '/') blen--;
        sr_buf_append(url, base, blen);
    } else {
        size_t hlen = 0;
        const char *host = sr_http_header_get(req, "host", &hlen);
        sr_buf_puts(url, "http://");
        if (host) sr_buf_append(url, host, hlen);
    }
    sr_buf_puts(url, req->path);
    if (req->query_len) {
        sr_buf_putc(url, '?');
        sr_buf_append(url, req->query, req->query_len);
    }
    sr_buf_putc(url, '\0');
}

/* The webhook as the adapter sees it. Borrows req, url and headers (HOOKS_MAX_HEADERS entries, filled here). */
static sr_webhook_request hooks_webhook_request(sr_http_request *req, const char *url, sr_adapter_header *headers) {
    int hc = 0;
    for (int i = 0; i < req->header_count && hc < HOOKS_MAX_HEADERS; i++) {
        headers[hc].name = req->headers[i].name;
        headers[hc].value = req->headers[i].value;
        hc++;
    }
    sr_webhook_request wr = {req->method_name, url, req->path, req->query, headers, hc, req->body, req->body_len, NULL};
    return wr;
}

/* The adapter's verify: 0 when the signature holds; otherwise answers (401 or 500), nothing stored, and -1. */
static int hooks_verify(sr_api *app, sr_http_request *req, const sr_provider *p, const char *kind,
                        const sr_webhook_request *wr) {
    char err[400];
    int ok = sr_webhook_verify(app->rules, p, wr, err, sizeof err);
    if (ok == 1) return 0;
    hooks_count(p->name, kind, ok == 0 ? "bad_signature" : "adapter_error");
    sr_warn("webhook refused", "provider", p->name, "kind", kind, "reason", err);
    if (ok == 0) sr_http_respond_error(req, 401, "bad_signature", err, NULL);
    else
        sr_http_respond_error(req, 500, "adapter_error", "the adapter's verify failed", NULL);
    return -1;
}

/* A status webhook: the adapter parses its reports, all are checked, then applied; the answer goes out once
 * they are stored (hooks_status_done). */
static void hooks_status_post(sr_api *app, sr_http_request *req, const sr_provider *p, const char *kind,
                              const sr_webhook_request *wr) {
    char err[400];
    sr_webhook_answer ans;
    sr_report *reps = NULL;
    int count = 0;
    if (sr_webhook_parse_status(app->rules, p, wr, &reps, &count, &ans, err, sizeof err) != 0) {
        hooks_count(p->name, kind, "bad_request");
        sr_warn("status webhook not understood", "provider", p->name, "error", err);
        sr_http_respond_error(req, 400, "invalid_webhook", err, NULL);
        return;
    }
    /* Impossible part numbers ("part 0", "7 of 3", "abc") are refused whole: nothing is applied. */
    for (int i = 0; i < count; i++) {
        if (sr_reports_check(&reps[i], err, sizeof err) == 0) continue;
        hooks_count(p->name, kind, "invalid_report");
        sr_warn("status webhook: report refused", "provider", p->name, "error", err);
        sr_reports_apply(app->reports, p->name, reps, count, NULL, NULL); /* counts the refusal */
        sr_http_respond_error(req, 400, "invalid_report", err, NULL);
        sr_webhook_answer_free(&ans);
        free(reps);
        return;
    }
    hooks_status_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->req = req;
    c->ans = ans;
    sr_str_copy(c->provider, sizeof c->provider, p->name);
    sr_reports_apply(app->reports, p->name, reps, count, hooks_status_done, c);
    free(reps);
}

/* An inbound webhook: the adapter parses its messages, hooks_inbound stores them and answers. */
static void hooks_inbound_post(sr_api *app, sr_http_request *req, const sr_provider *p, const char *kind,
                               const sr_webhook_request *wr) {
    char err[400];
    sr_webhook_answer ans;
    sr_inbound_sms *msgs = NULL;
    int count = 0;
    if (sr_webhook_parse_inbound(app->rules, p, wr, &msgs, &count, &ans, err, sizeof err) != 0) {
        hooks_count(p->name, kind, "bad_request");
        sr_warn("inbound webhook not understood", "provider", p->name, "error", err);
        sr_http_respond_error(req, 400, "invalid_webhook", err, NULL);
        return;
    }
    hooks_inbound(app, req, p, msgs, count, &ans);
}

void sr_api_hooks_post(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    const char *provider = params[0], *kind = params[n - 1], *secret = n == 3 ? params[1] : NULL;
    sr_provider *p = sr_rules_provider(app->rules, provider);
    if (hooks_admit(app, req, p, kind, secret) != 0) return;
    sr_buf url;
    hooks_signed_url(app, req, &url);
    sr_adapter_header headers[HOOKS_MAX_HEADERS];
    sr_webhook_request wr = hooks_webhook_request(req, url.data, headers);
    int table_ref = 0; /* verify and parse share one request table */
    wr.table_ref = &table_ref;
    if (hooks_verify(app, req, p, kind, &wr) == 0) {
        if (strcmp(kind, "status") == 0) hooks_status_post(app, req, p, kind, &wr);
        else
            hooks_inbound_post(app, req, p, kind, &wr);
    }
    sr_adapter_webhook_done(p, &wr);
    sr_buf_free(&url);
}

/* ---- start: inbound SMS whose handler did not finish ---- */

typedef struct hooks_pending_scan {
    int count;
    char last[SR_ID_LEN + 1];
    char ids[1000][SR_ID_LEN + 1];
} hooks_pending_scan;

/* Runs inside the store's read transaction: only collects. */
static int hooks_pending_cb(const char *key, size_t klen, const char *val, size_t vlen, int64_t expires_at_ms,
                            void *ud) {
    hooks_pending_scan *sc = ud;
    (void)expires_at_ms;
    if (klen != SR_ID_LEN) return 0;
    memcpy(sc->last, key, SR_ID_LEN);
    sc->last[SR_ID_LEN] = '\0';
    static const char pending[] = "\"state\":\"pending\"";
    if (memmem(val, vlen, pending, sizeof pending - 1)) memcpy(sc->ids[sc->count++], sc->last, SR_ID_LEN + 1);
    return 0;
}

static void hooks_refire(sr_api *app, const char *id) {
    sr_buf val;
    sr_buf_init(&val);
    if (sr_store_get(app->store, SR_SPACE_INBOUND, id, SR_ID_LEN, sr_now_ms(), &val, NULL) != 0) {
        sr_buf_free(&val);
        return;
    }
    sr_json_doc doc;
    if (sr_json_parse(&doc, val.data, val.len, NULL, 0) == 0 && doc.root->type == SR_JSON_OBJECT) {
        sr_inbound_sms m;
        memset(&m, 0, sizeof m);
        const sr_json *v;
        char provider[72] = "";
        int64_t received = 0;
        if ((v = sr_json_get(doc.root, "provider")) && v->type == SR_JSON_STRING)
            sr_str_copy(provider, sizeof provider, v->str);
        if ((v = sr_json_get(doc.root, "provider_message_id")) && v->type == SR_JSON_STRING)
            sr_str_copy(m.provider_message_id, sizeof m.provider_message_id, v->str);
        if ((v = sr_json_get(doc.root, "from")) && v->type == SR_JSON_STRING)
            sr_str_copy(m.from, sizeof m.from, v->str);
        if ((v = sr_json_get(doc.root, "to")) && v->type == SR_JSON_STRING) sr_str_copy(m.to, sizeof m.to, v->str);
        if ((v = sr_json_get(doc.root, "at"))) sr_json_is_integer(v, &m.at_ms);
        if ((v = sr_json_get(doc.root, "received_at"))) sr_json_is_integer(v, &received);
        if ((v = sr_json_get(doc.root, "text")) && v->type == SR_JSON_STRING) {
            m.text = (char *)v->str;
            m.text_len = v->len;
            sr_buf head;
            sr_buf_init(&head);
            hooks_record_head(&head, id, provider, &m, received);
            int waiting;
            hooks_handler_ctx *h;
            if (hooks_fire(app, id, provider, &m, received, &head, NULL, &waiting, &h) != 0) sr_buf_free(&head);
        }
        sr_json_doc_free(&doc);
    }
    sr_buf_free(&val);
}

/* Cluster mode: a pending inbound of a node that is gone, run here once this node took it over. */
typedef struct hooks_take_over {
    sr_api *app;
    char id[SR_ID_LEN + 1];
} hooks_take_over;

static void hooks_taken_over(sr_store_txn *t, void *ud) {
    hooks_take_over *x = ud;
    if (sr_store_txn_status(t) == 0) hooks_refire(x->app, x->id);
    free(x);
}

/* Runs the handler of a pending inbound again: at once on a single node, after taking it over in
 * cluster mode. Not at all while the process that left it pending lives. */
static int hooks_recover_one(sr_api *app, const char *id) {
    if (!sr_store_orphaned(app->store, SR_ORPHAN_INBOUND, id, SR_ID_LEN)) return 0;
    if (!sr_store_clustered(app->store)) {
        hooks_refire(app, id);
        return 1;
    }
    hooks_take_over *x = calloc(1, sizeof *x);
    if (!x) abort();
    x->app = app;
    sr_str_copy(x->id, sizeof x->id, id);
    sr_store_txn *t = sr_store_txn_new(app->store);
    sr_store_txn_take_over(t, SR_ORPHAN_INBOUND, id, SR_ID_LEN);
    sr_store_txn_submit(t, hooks_taken_over, x);
    return 1;
}

void sr_api_hooks_recover(sr_api *app) {
    hooks_pending_scan *sc = calloc(1, sizeof *sc);
    if (!sc) abort();
    int fired = 0;
    for (;;) {
        char after[SR_ID_LEN + 1];
        memcpy(after, sc->last, sizeof after);
        sc->count = 0;
        int n = sr_store_scan(app->store, SR_SPACE_INBOUND, after[0] ? after : NULL, after[0] ? SR_ID_LEN : 0, 1000,
                              hooks_pending_cb, sc);
        for (int i = 0; i < sc->count; i++) fired += hooks_recover_one(app, sc->ids[i]);
        if (n < 1000) break;
    }
    free(sc);
    if (fired) sr_info("inbound: handlers run again for messages left pending", "count", sr_log_num(fired));
}

/* GET /v1/inbound/{id}: a stored inbound SMS, with its handler's outcome and replies. */
void sr_api_inbound_get(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    (void)n;
    if (!sr_api_require_key(app, req)) return;
    const char *id = params[0];
    sr_buf val;
    sr_buf_init(&val);
    int rc = strlen(id) == SR_ID_LEN
                 ? sr_store_get(app->store, SR_SPACE_INBOUND, id, SR_ID_LEN, sr_now_ms(), &val, NULL)
                 : SR_E_NOTFOUND;
    if (rc == 0) sr_http_respond(req, 200, "application/json", val.data, val.len, NULL);
    else if (rc == SR_E_NOTFOUND)
        sr_http_respond_error(req, 404, "not_found", "no inbound message with this id", NULL);
    else
        sr_http_respond_error(req, 500, "storage_error", "the inbound message could not be read", NULL);
    sr_buf_free(&val);
}
