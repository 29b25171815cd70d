/* api_messages: POST /v1/messages (single and batch), GET /v1/messages/{id},
 * GET /v1/messages?status=... .
 *
 * A POST validates every message first (bad input never touches the store),
 * then stores each valid one as its own store unit, so one conflict does not
 * sink its neighbours; all of them still commit in the same group commit.
 * The answer goes out from the store's done callback, that is only once the
 * messages are on disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/buf.h"
#include "codec/form.h"
#include "api/api_console.h"
#include "codec/json.h"
#include "codec/jsonw.h"
#include "delivery/scheduler.h"
#include "core/log.h"
#include "store/store.h"
#include "model/submission.h"
#include "codec/text.h"

#define API_MAX_BATCH 1000

int sr_api_secret_equal(const char *a, size_t alen, const char *b, size_t blen) {
    /* Walk the whole candidate regardless of where it differs. */
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < alen; i++) diff |= (unsigned char)(a[i] ^ (i < blen ? b[i] : 0));
    return diff == 0;
}

int sr_api_store_status(int store_code, const char **error_code) {
    if (store_code == SR_E_FULL) {
        *error_code = "storage_full";
        return 507;
    }
    if (store_code == SR_E_UNAVAILABLE) {
        *error_code = "cluster_unavailable";
        return 503;
    }
    *error_code = "storage_error";
    return 500;
}

int sr_api_require_key(sr_api *app, sr_http_request *req) {
    int session = sr_api_console_auth(app, req); /* the console's cookie, when there is no key */
    if (session) return session > 0;
    size_t len = 0;
    const char *auth = sr_http_header_get(req, "authorization", &len);
    int ok = 0;
    if (auth && len > 7 && strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *key = auth + 7;
        size_t klen = len - 7;
        for (int i = 0; i < app->config->api_key_count; i++) {
            const char *k = app->config->api_keys[i];
            ok |= sr_api_secret_equal(key, klen, k, strlen(k));
        }
    }
    if (!ok) {
        sr_http_respond_error(req, 401, "unauthorized",
                              auth ? "invalid API key" : "missing API key: send Authorization: Bearer <key>",
                              "WWW-Authenticate: Bearer\r\n");
    }
    return ok;
}

/* ---- POST /v1/messages ---- */

static const struct sr_template *api_find_template(void *ud, const char *name) {
    return ud ? sr_rules_template_find(ud, name) : NULL;
}

typedef struct post_item {
    int rejected; /* validation failed */
    sr_reasons reasons;
    int code; /* store result */
    char id[SR_ID_LEN + 1];
    int segments;
    int encoding;
    sr_status status;
} post_item;

typedef struct post_ctx {
    sr_api *app;
    sr_http_request *req;
    int batch;
    int count;
    int pending;
    post_item items[]; /* count of them */
} post_ctx;

/* ctx with its count items in one allocation. The items' reasons are left unset: sr_submission_parse and
 * store_error_reason fill them, count first, and zeroing 2 KiB of them was a third of a message's answer. */
static post_ctx *post_ctx_new(sr_api *app, sr_http_request *req, int batch, int count) {
    post_ctx *ctx = malloc(sizeof *ctx + (size_t)count * sizeof(post_item));
    if (!ctx) abort();
    *ctx = (post_ctx){.app = app, .req = req, .batch = batch, .count = count};
    for (int i = 0; i < count; i++) {
        post_item *it = &ctx->items[i];
        it->rejected = 0;
        it->reasons.count = 0;
        it->code = 0;
        it->id[0] = '\0';
        it->segments = 0;
        it->encoding = 0;
        it->status = SR_ST_ACCEPTED;
    }
    return ctx;
}

/* An accepted item as a JSON object: {["code":"OK",]"id","status","segments","encoding"[,"duplicate":true]}
 * (the prefix and the flag in a batch). Written straight, not member by member through sr_jw: every value is
 * an id, a fixed name or a number, with nothing to escape, and this is most of a single message's answer. */
static void post_item_object(sr_buf *b, const post_item *it, int batch) {
    sr_buf_puts(b, batch ? "{\"code\":\"OK\",\"id\":\"" : "{\"id\":\"");
    sr_buf_puts(b, it->id);
    sr_buf_puts(b, "\",\"status\":\"");
    sr_buf_puts(b, sr_status_name(it->status));
    sr_buf_puts(b, "\",\"segments\":");
    sr_buf_put_i64(b, it->segments);
    sr_buf_puts(b, ",\"encoding\":\"");
    sr_buf_puts(b, sr_encoding_name((sr_encoding)it->encoding));
    sr_buf_puts(b, batch && it->code == SR_E_EXISTS ? "\",\"duplicate\":true}" : "\"}");
}

static void reasons_json(sr_jw *w, const sr_reasons *r) {
    sr_jw_array_begin(w);
    for (int i = 0; i < r->count; i++) {
        sr_jw_object_begin(w);
        sr_jw_field_str(w, "key", r->items[i].key);
        sr_jw_field_str(w, "ref", r->items[i].ref);
        sr_jw_field_str(w, "message", r->items[i].message);
        sr_jw_object_end(w);
    }
    sr_jw_array_end(w);
}

/* {"error": {"code", "message"}}. */
static void error_json(sr_jw *w, const char *code, const char *message) {
    sr_jw_object_begin(w);
    sr_jw_key(w, "error");
    sr_jw_object_begin(w);
    sr_jw_field_str(w, "code", code);
    sr_jw_field_str(w, "message", message);
    sr_jw_object_end(w);
    sr_jw_object_end(w);
}

static void store_error_reason(post_item *it, const char *ref_prefix) {
    it->rejected = 1;
    it->reasons.count = 1;
    sr_reason *r = &it->reasons.items[0];
    snprintf(r->ref, sizeof r->ref, "%sidempotency_key", ref_prefix);
    if (it->code == SR_E_CONFLICT) {
        r->key = "idempotency_conflict";
        snprintf(r->message, sizeof r->message, "idempotency key already used with a different message");
    } else if (it->code == SR_E_UNAVAILABLE) {
        r->key = "cluster_unavailable";
        sr_str_copy(r->ref, sizeof r->ref, ref_prefix[0] ? "messages" : "");
        snprintf(r->message, sizeof r->message, "the cluster could not store the message now; send it again later");
    } else if (it->code == SR_E_FULL) {
        r->key = "storage_full";
        sr_str_copy(r->ref, sizeof r->ref, ref_prefix[0] ? "messages" : "");
        snprintf(r->message, sizeof r->message, "the store is full; the message was not accepted");
    } else {
        r->key = "storage_error";
        sr_str_copy(r->ref, sizeof r->ref, ref_prefix[0] ? "messages" : "");
        snprintf(r->message, sizeof r->message, "the message could not be stored: %s", sr_store_strerror(it->code));
    }
}

/* The answer to a single message once its unit is done: the message, or the store's error. Returns the status. */
static int post_answer_single(post_ctx *ctx, sr_jw *w) {
    post_item *it = &ctx->items[0];
    if (it->code == 0 || it->code == SR_E_EXISTS) {
        post_item_object(w->out, it, 0);
        return it->code == 0 ? 202 : 200;
    }
    if (it->code == SR_E_CONFLICT) {
        error_json(w, "idempotency_conflict", "this idempotency key was used for a different message in the last 24 h");
        return 409;
    }
    if (it->code == SR_E_FULL) {
        error_json(w, "storage_full", "the store is full; the message was not accepted");
        return 507;
    }
    if (it->code == SR_E_UNAVAILABLE) {
        error_json(w, "cluster_unavailable",
                   "the cluster could not store the message now; send it again later with the same idempotency key");
        return 503;
    }
    error_json(w, "storage_error", "the message could not be stored");
    return 500;
}

/* One member of a batch's "result": REJECTED with its reasons (a store failure becomes one), or OK with the
 * message (built in scratch). Counts what it saw into *accepted, *full and *failed. */
static void post_batch_item_json(sr_jw *w, sr_buf *scratch, post_item *it, int index, int *accepted, int *full,
                                 int *failed, int *unavailable) {
    if (!it->rejected && it->code != 0 && it->code != SR_E_EXISTS) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "messages[%d].", index);
        if (it->code == SR_E_FULL) (*full)++;
        else if (it->code == SR_E_UNAVAILABLE)
            (*unavailable)++;
        else if (it->code != SR_E_CONFLICT)
            (*failed)++;
        store_error_reason(it, prefix);
    }
    if (it->rejected) {
        sr_jw_object_begin(w);
        sr_jw_field_str(w, "code", "REJECTED");
        sr_jw_key(w, "reasons");
        reasons_json(w, &it->reasons);
        sr_jw_object_end(w);
        return;
    }
    (*accepted)++;
    sr_buf_reset(scratch);
    post_item_object(scratch, it, 1);
    sr_jw_raw(w, scratch->data, scratch->len);
}

/* The answer to a batch once all its units are done: {"result": [...]}. Returns the status. */
static int post_answer_batch(post_ctx *ctx, sr_jw *w) {
    int accepted = 0, full = 0, failed = 0, unavailable = 0;
    sr_buf scratch;
    sr_buf_init(&scratch);
    sr_jw_object_begin(w);
    sr_jw_key(w, "result");
    sr_jw_array_begin(w);
    for (int i = 0; i < ctx->count; i++)
        post_batch_item_json(w, &scratch, &ctx->items[i], i, &accepted, &full, &failed, &unavailable);
    sr_jw_array_end(w);
    sr_jw_object_end(w);
    sr_buf_free(&scratch);
    /* None accepted: a full store is 507, a cluster without quorum 503 and any other store failure
     * 500, so a client sends the batch again later; 422 (do not resend) only when the messages
     * themselves were refused. */
    return accepted ? 202 : full ? 507 : unavailable ? 503 : failed ? 500 : 422;
}

/* Answers the request and frees ctx. */
static void post_finish(post_ctx *ctx) {
    sr_buf body;
    sr_buf_init(&body);
    sr_jw w;
    sr_jw_init(&w, &body);
    int status = ctx->batch ? post_answer_batch(ctx, &w) : post_answer_single(ctx, &w);
    sr_http_respond(ctx->req, status, "application/json", body.data, body.len, NULL);
    sr_buf_free(&body);
    free(ctx);
}

/* The done callback needs both the item and its request: items point back. */
typedef struct post_unit {
    post_ctx *ctx;
    int index;
    void *job; /* the scheduler's, when the message goes out from this unit */
} post_unit;

static void post_unit_done(sr_store_txn *t, void *ud) {
    post_unit *u = ud;
    post_ctx *ctx = u->ctx;
    post_item *it = &ctx->items[u->index];
    if (u->job) sr_scheduler_accept_done(ctx->app->scheduler, u->job, t);
    free(u);
    /* A unit whose put found the key fails as a whole with that code. */
    int st = sr_store_txn_status(t);
    it->code = st ? st : sr_store_txn_result(t, 0);
    if (it->code == 0 || it->code == SR_E_EXISTS) {
        const char *id = sr_store_txn_id(t, 0);
        sr_str_copy(it->id, sizeof it->id, id ? id : "");
        if (it->code == SR_E_EXISTS) {
            /* The original message's own figures. */
            sr_message m;
            if (sr_store_get_message(ctx->app->store, it->id, &m) == 0) {
                it->status = m.status;
                it->segments = m.segments;
                it->encoding = m.encoding;
                sr_message_free(&m);
            }
        }
    }
    if (--ctx->pending == 0) post_finish(ctx);
}

/* A batch's shape: 'messages' alone in the body, a non-empty list of at most API_MAX_BATCH. Answers the request
 * and returns -1 when it is wrong. */
static int post_check_batch(sr_http_request *req, const sr_json *root, const sr_json *list) {
    if (root->count != 1) {
        for (const sr_json *f = root->child; f; f = f->next) {
            if (strcmp(f->key, "messages") == 0) continue;
            char msg[200];
            snprintf(msg, sizeof msg, "unknown field '%.64s' next to 'messages'", f->key);
            sr_http_respond_error(req, 400, "unknown_field", msg, NULL);
            return -1;
        }
    }
    if (list->type != SR_JSON_ARRAY || list->count == 0) {
        sr_http_respond_error(req, 400, "invalid_type", "'messages' must be a non-empty list of messages", NULL);
        return -1;
    }
    if (list->count > API_MAX_BATCH) {
        sr_http_respond_error(req, 422, "too_many_messages", "a batch holds at most 1000 messages", NULL);
        return -1;
    }
    return 0;
}

/* Parses the body: one message object, or {"messages": [...]}. Returns 0 with doc owning the tree (the caller
 * frees it) and *list the batch's list (NULL for one message); otherwise answers the request, frees doc and
 * returns -1. */
static int post_parse_body(sr_http_request *req, sr_json_doc *doc, const sr_json **list) {
    memset(doc, 0, sizeof *doc);
    char err[160];
    if (sr_json_parse(doc, req->body, req->body_len, err, sizeof err) != 0) {
        char msg[220];
        snprintf(msg, sizeof msg, "request body is not valid JSON: %s", err);
        sr_http_respond_error(req, 400, "invalid_json", msg, NULL);
        sr_json_doc_free(doc);
        return -1;
    }
    const sr_json *root = doc->root;
    if (root->type != SR_JSON_OBJECT) {
        sr_http_respond_error(req, 400, "invalid_json", "request body must be a JSON object", NULL);
        sr_json_doc_free(doc);
        return -1;
    }
    *list = sr_json_get(root, "messages");
    if (*list && post_check_batch(req, root, *list) != 0) {
        sr_json_doc_free(doc);
        return -1;
    }
    return 0;
}

/* Validates one message into *m (the caller frees it). Returns 0 when it is valid; otherwise marks the item
 * rejected with its reasons and returns -1 (nothing to free then). */
static int post_validate(sr_api *app, const sr_json *entry, const sr_submission_templates *templates, int64_t now,
                         const char *prefix, post_item *it, sr_message *m, const char **idem, uint64_t *hash) {
    if (sr_submission_parse(entry, app->config, templates, now, prefix, m, idem, hash, &it->reasons) != 0) {
        it->rejected = 1;
        return -1;
    }
    /* A route naming a provider the rules do not declare would only fail
     * later: refuse it now, naming it. */
    for (int r = 0; r < m->route_len && app->rules; r++) {
        if (sr_rules_provider(app->rules, m->route[r])) continue;
        sr_reason *x = &it->reasons.items[0];
        it->reasons.count = 1;
        x->key = "unknown_provider";
        snprintf(x->ref, sizeof x->ref, "%sroute", prefix);
        snprintf(x->message, sizeof x->message, "the route names '%.64s', which the rules do not declare", m->route[r]);
        it->rejected = 1;
        break;
    }
    if (it->rejected) {
        sr_message_free(m);
        return -1;
    }
    return 0;
}

/* Validates every message (entry: the first) and makes a store unit for each valid one, not submitted yet: into
 * units, with its done callback's argument in unit_ud. Returns how many units it made. */
static int post_prepare_units(post_ctx *ctx, const sr_json *entry, sr_store_txn **units, post_unit **unit_ud) {
    sr_api *app = ctx->app;
    int64_t now = sr_now_ms();
    sr_submission_templates templates = {api_find_template, app->rules};
    int unit_count = 0;
    for (int i = 0; i < ctx->count; i++, entry = ctx->batch ? entry->next : NULL) {
        post_item *it = &ctx->items[i];
        char prefix[32] = "";
        if (ctx->batch) snprintf(prefix, sizeof prefix, "messages[%d].", i);
        sr_message m;
        const char *idem = NULL;
        uint64_t hash = 0;
        if (post_validate(app, entry, &templates, now, prefix, it, &m, &idem, &hash) != 0) continue;
        it->status = m.status;
        it->segments = m.segments;
        it->encoding = m.encoding;
        sr_store_txn *t = sr_store_txn_new(app->store);
        sr_id_new(m.id, m.created_at_ms);
        void *job = app->scheduler ? sr_scheduler_accept_take(app->scheduler, &m) : NULL;
        if (job) sr_scheduler_accept_mark(app->scheduler, job, &m);
        sr_store_txn_put_message(t, &m, idem, hash);
        sr_message_free(&m);
        post_unit *u = malloc(sizeof *u);
        if (!u) abort();
        u->ctx = ctx;
        u->index = i;
        u->job = job;
        units[unit_count] = t;
        unit_ud[unit_count] = u;
        unit_count++;
    }
    return unit_count;
}

/* A single message that was refused: {"error": {code, message, reasons}} with the status of its reasons. Frees
 * ctx. */
static void post_answer_rejected(post_ctx *ctx) {
    const sr_reasons *r = &ctx->items[0].reasons;
    sr_buf body;
    sr_buf_init(&body);
    sr_jw w;
    sr_jw_init(&w, &body);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "error");
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "code", r->items[0].key);
    sr_jw_field_str(&w, "message", r->items[0].message);
    sr_jw_key(&w, "reasons");
    reasons_json(&w, r);
    sr_jw_object_end(&w);
    sr_jw_object_end(&w);
    sr_http_respond(ctx->req, sr_submission_http_status(r), "application/json", body.data, body.len, NULL);
    sr_buf_free(&body);
    free(ctx);
}

void sr_api_messages_post(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_key(app, req)) return;
    sr_json_doc doc;
    const sr_json *list = NULL;
    if (post_parse_body(req, &doc, &list) != 0) return;
    int batch = list != NULL;

    post_ctx *ctx = post_ctx_new(app, req, batch, batch ? (int)list->count : 1);

    sr_store_txn *units[API_MAX_BATCH];
    post_unit *unit_ud[API_MAX_BATCH];
    int unit_count = post_prepare_units(ctx, batch ? list->child : doc.root, units, unit_ud);
    sr_json_doc_free(&doc);

    if (!batch && ctx->items[0].rejected) {
        post_answer_rejected(ctx);
        return;
    }
    if (unit_count == 0) {
        ctx->pending = 0;
        post_finish(ctx);
        return;
    }
    ctx->pending = unit_count;
    for (int i = 0; i < unit_count; i++) sr_store_txn_submit(units[i], post_unit_done, unit_ud[i]);
}

/* ---- GET /v1/messages/{id} ---- */

void sr_api_messages_get(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_key(app, req)) return;
    const char *id = params[0];
    if (!sr_id_valid(id, strlen(id))) {
        sr_http_respond_error(req, 404, "not_found", "no message with this id", NULL);
        return;
    }
    sr_message m;
    int rc = sr_store_get_message(app->store, id, &m);
    if (rc == SR_E_NOTFOUND) {
        sr_http_respond_error(req, 404, "not_found", "no message with this id", NULL);
        return;
    }
    if (rc != 0) {
        sr_error("cannot read a message", "id", id, "error", sr_store_strerror(rc));
        sr_http_respond_error(req, 500, rc == SR_E_CORRUPT ? "corrupt_record" : "storage_error",
                              "the message record could not be read", NULL);
        return;
    }
    sr_buf body;
    sr_buf_init(&body);
    sr_message_to_api_json(&m, &body);
    sr_message_free(&m);
    sr_http_respond(req, 200, "application/json", body.data, body.len, NULL);
    sr_buf_free(&body);
}

/* ---- GET /v1/messages?status=failed&limit=100&after=ID ---- */

/* Decodes query parameter `name` into out (truncated to outlen - 1 bytes). Returns 1 when present. */
static int query_param(const char *query, const char *name, char *out, size_t outlen) {
    sr_form_pair pair;
    if (!query || !sr_form_find(query, strlen(query), name, &pair)) return 0;
    size_t len = pair.value_len < outlen - 1 ? pair.value_len : outlen - 1;
    out[sr_form_unescape(out, pair.value, len)] = '\0';
    return 1;
}

void sr_api_messages_list(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_key(app, req)) return;
    char status_name[32], limit_s[16], after[SR_ID_LEN + 2];
    if (!query_param(req->query, "status", status_name, sizeof status_name)) {
        sr_http_respond_error(req, 400, "missing_field", "query parameter 'status' is required (e.g. ?status=failed)",
                              NULL);
        return;
    }
    int st = sr_status_parse(status_name);
    if (st < 0) {
        sr_http_respond_error(req, 400, "invalid_value", "unknown status", NULL);
        return;
    }
    int limit = 100;
    if (query_param(req->query, "limit", limit_s, sizeof limit_s)) {
        limit = atoi(limit_s);
        if (limit < 1 || limit > 1000) {
            sr_http_respond_error(req, 400, "invalid_value", "'limit' must be from 1 to 1000", NULL);
            return;
        }
    }
    int has_after = query_param(req->query, "after", after, sizeof after);
    if (has_after && !sr_id_valid(after, strlen(after))) {
        sr_http_respond_error(req, 400, "invalid_value", "'after' must be a message id", NULL);
        return;
    }
    char(*ids)[SR_ID_LEN + 1] = malloc(sizeof(*ids) * (size_t)limit);
    if (!ids) abort();
    int count = sr_store_list_status(app->store, (sr_status)st, has_after ? after : NULL, ids, limit);
    if (count < 0) {
        free(ids);
        sr_http_respond_error(req, 500, "storage_error", "the messages could not be listed", NULL);
        return;
    }
    sr_buf body, one;
    sr_buf_init(&body);
    sr_buf_init(&one);
    sr_jw w;
    sr_jw_init(&w, &body);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "messages");
    sr_jw_array_begin(&w);
    for (int i = 0; i < count; i++) {
        sr_message m;
        if (sr_store_get_message(app->store, ids[i], &m) != 0) continue;
        sr_buf_reset(&one);
        sr_message_to_api_json(&m, &one);
        sr_jw_raw(&w, one.data, one.len);
        sr_message_free(&m);
    }
    sr_jw_array_end(&w);
    sr_jw_field_str(&w, "next", count == limit ? ids[count - 1] : NULL);
    sr_jw_object_end(&w);
    sr_buf_free(&one);
    free(ids);
    sr_http_respond(req, 200, "application/json", body.data, body.len, NULL);
    sr_buf_free(&body);
}

/* ---- POST /v1/messages/{id}/retry ---- */

typedef struct retry_ctx {
    sr_api *app;
    sr_http_request *req;
    char id[SR_ID_LEN + 1];
} retry_ctx;

static void retry_done(int code, void *ud) {
    retry_ctx *ctx = ud;
    if (code == 0) {
        sr_message m;
        sr_buf body;
        sr_buf_init(&body);
        if (sr_store_get_message(ctx->app->store, ctx->id, &m) == 0) {
            sr_message_to_api_json(&m, &body);
            sr_message_free(&m);
        }
        sr_http_respond(ctx->req, 202, "application/json", body.data, body.len, NULL);
        sr_buf_free(&body);
    } else if (code == SR_E_NOTFOUND) {
        sr_http_respond_error(ctx->req, 404, "not_found", "no message with this id", NULL);
    } else if (code == SR_E_STATE) {
        sr_http_respond_error(ctx->req, 409, "not_failed", "only a failed message can be retried", NULL);
    } else {
        const char *key;
        int status = sr_api_store_status(code, &key);
        sr_http_respond_error(ctx->req, status, key, sr_store_strerror(code), NULL);
    }
    free(ctx);
}

void sr_api_messages_retry(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_key(app, req)) return;
    if (!sr_id_valid(params[0], strlen(params[0]))) {
        sr_http_respond_error(req, 404, "not_found", "no message with this id", NULL);
        return;
    }
    retry_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->app = app;
    ctx->req = req;
    sr_str_copy(ctx->id, sizeof ctx->id, params[0]);
    sr_scheduler_retry(app->scheduler, ctx->id, retry_done, ctx);
}
