/* mock_dlr: delivery reports (a delay, then posts with retries) and
 * POST /control/inbound (one inbound SMS posted in the dialect's format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/buf.h"
#include "tools/mock/mock_internal.h"

static void mock_dlr_post(uv_timer_t *t);

/* ---- the HTTP client (delivery reports, inbound posts) ---- */

/* The client, created on first use; NULL when it cannot be made. */
static sr_http_client *mock_client(mock_provider *mp) {
    if (!mp->client && sr_http_client_new(&mp->client, mp->loop) != 0) mp->client = NULL;
    return mp->client;
}

/* ---- delivery reports ---- */

/* A report about the accepted message m (its provider id) in dialect's
 * format. Copies what the report needs of m and account (the account of
 * the send, "" or NULL when none). The report does nothing until
 * mock_dlr_start. */
mock_dlr *mock_dlr_new(mock_provider *mp, const mock_dialect *dialect, const mock_msg *m, const char *account,
                       bool undelivered) {
    mock_dlr *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->mp = mp;
    d->dialect = dialect;
    sr_str_copy(d->message_id, sizeof d->message_id, m->provider_id);
    d->to = mock_strndup(m->to, m->to_len);
    d->to_len = m->to_len;
    d->from = mock_strndup(m->from, m->from_len);
    d->client_ref = mock_strndup(m->client_id, m->client_id_len);
    d->account = account && account[0] ? mock_strndup(account, strlen(account)) : NULL;
    d->undelivered = undelivered;
    return d;
}

/* Frees a report: one that never started (no handle to close), or from its
 * timer's close callback. */
static void mock_dlr_discard(mock_dlr *d) {
    free(d->to);
    free(d->from);
    free(d->client_ref);
    free(d->account);
    free(d);
}

static void mock_dlr_closed(uv_handle_t *h) { mock_dlr_discard(h->data); }

/* The report is over (posted, failed for good, or cancelled at shutdown). */
void mock_dlr_finish(mock_dlr *d) {
    mock_provider *mp = d->mp;
    if (d->prev) d->prev->next = d->next;
    else
        mp->dlrs = d->next;
    if (d->next) d->next->prev = d->prev;
    mp->dlrs_started--;
    mock_pending *p = d->pending;
    d->pending = NULL;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, mock_dlr_closed);
    if (p) mock_pending_release_one(p);
}

/* Starts the delay before the first post. Takes ownership of d. */
void mock_dlr_start(mock_dlr *d) {
    mock_provider *mp = d->mp;
    if (mp->stopping) {
        mock_pending *p = d->pending;
        mock_dlr_discard(d);
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
    if ((uint64_t)d->attempts >= mp->set.dlr_attempts) {
        mp->stats.dlr_failed++;
        sr_warn("delivery report not delivered", "message_id", d->message_id, "attempts", sr_log_num(d->attempts),
                "http_status", sr_log_num(status), "error", error ? error : "");
        mock_dlr_finish(d);
        return;
    }
    uint64_t backoff_ms =
        d->attempts > 6 ? MOCK_DLR_BACKOFF_MAX_MS : (uint64_t)MOCK_DLR_BACKOFF_MS << (d->attempts - 1);
    if (backoff_ms > MOCK_DLR_BACKOFF_MAX_MS) backoff_ms = MOCK_DLR_BACKOFF_MAX_MS;
    sr_debug("delivery report post failed, retrying", "message_id", d->message_id, "http_status", sr_log_num(status),
             "retry_in_ms", sr_log_num((int64_t)backoff_ms));
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

const char mock_ct_json[] = "Content-Type: application/json";

/* POSTs a built report or inbound SMS to url; frees its body. Returns the client's start code. */
static int mock_post_send(sr_http_client *client, const char *url, mock_post *post, long timeout_ms,
                          sr_http_client_cb cb, void *ud) {
    sr_http_client_request r;
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.url = url;
    r.headers = post->headers;
    r.body = post->body.data;
    r.body_len = post->body.len;
    r.timeout_ms = timeout_ms;
    int rc = sr_http_client_request_start(client, &r, cb, ud);
    sr_buf_free(&post->body);
    return rc;
}

const char mock_ct_form[] = "Content-Type: application/x-www-form-urlencoded";

void mock_post_init(mock_post *post, const char *content_type) {
    sr_buf_init(&post->body);
    post->signature[0] = '\0';
    post->headers[0] = content_type;
    post->headers[1] = NULL;
    post->headers[2] = NULL;
}

void mock_post_sign(mock_post *post) {
    if (post->signature[0]) post->headers[1] = post->signature;
}

/* X-Signature: the hex HMAC-SHA256 of the body keyed by --webhook-secret
 * (mock and generic webhooks), when the secret is set. */
void mock_post_sign_body(const mock_provider *mp, mock_post *post) {
    const char *secret = mp->set.webhook_secret;
    if (!secret) return;
    unsigned char mac[SR_CRYPTO_SHA256_LEN];
    sr_crypto_hmac(SR_CRYPTO_SHA256, secret, strlen(secret), post->body.data, post->body.len, mac);
    char hex[2 * SR_CRYPTO_SHA256_LEN + 1];
    sr_crypto_hex(hex, mac, sizeof mac);
    snprintf(post->signature, sizeof post->signature, "X-Signature: %s", hex);
    mock_post_sign(post);
}

/* Whether list is a --dlr-url value: comma-separated URLs, none empty. */
bool mock_url_list_ok(const char *list) {
    if (!list || !*list) return false;
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        if (len == 0) return false;
        p += len;
        if (!*p) return true;
    }
}

/* The URL of d's next post, copied into out: --dlr-url may list several (one per node of a cluster,
 * so that reports reach every node). Reports take them in turn, and a retry of a report goes to the
 * URL after the one its last post went to, so that it tries every URL before any twice. NULL when
 * reports are off. */
static const char *mock_dlr_next_url(mock_provider *mp, mock_dlr *d, sr_buf *out) {
    const char *list = mp->set.dlr_url;
    if (!list) return NULL;
    size_t n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    d->url_turn = d->attempts == 0 ? mp->dlr_next++ : d->url_turn + 1;
    const char *at = list;
    for (uint64_t k = d->url_turn % n; k > 0; k--) at = strchr(at, ',') + 1;
    sr_buf_append(out, at, strcspn(at, ","));
    return sr_buf_cstr(out);
}

static void mock_dlr_post(uv_timer_t *t) {
    mock_dlr *d = t->data;
    mock_provider *mp = d->mp;
    sr_buf url_buf;
    sr_buf_init(&url_buf);
    const char *url = mp->stopping ? NULL : mock_dlr_next_url(mp, d, &url_buf);
    if (!url) {
        /* Reports were switched off meanwhile (POST /control). */
        mock_dlr_finish(d);
        return;
    }
    if (d->attempts++ > 0) mp->stats.dlr_retried++; /* the receiver may have applied the failed post */
    sr_http_client *client = mock_client(mp);
    int rc = -1;
    if (client) {
        mock_post post;
        d->dialect->dlr_build(d, url, &post);
        rc = mock_post_send(client, url, &post, MOCK_DLR_TIMEOUT_MS, mock_dlr_answered, d);
    }
    sr_buf_free(&url_buf);
    if (rc != 0) {
        mock_dlr_failed_attempt(d, 0, client ? "the request could not start" : "cannot create the HTTP client");
        return;
    }
    d->posting = true;
}

/* ---- POST /control/inbound ---- */

/* An inbound post in flight: the control request waits for its answer. */
typedef struct mock_inbound_post {
    mock_provider *mp;
    sr_http_request *req; /* borrowed until answered */
} mock_inbound_post;

static void mock_inbound_answered(const sr_http_client_response *resp, void *ud) {
    mock_inbound_post *in = ud;
    mock_provider *mp = in->mp;
    sr_buf out;
    sr_buf_init(&out);
    if (resp->error == 0) {
        mp->stats.inbound_sent++;
        sr_jw w;
        sr_jw_init(&w, &out);
        sr_jw_object_begin(&w);
        sr_jw_field_int(&w, "status", resp->status);
        sr_jw_field_strn(&w, "body", resp->body ? resp->body : "", resp->body_len);
        sr_jw_object_end(&w);
        sr_http_respond(in->req, 200, "application/json", out.data, out.len, NULL);
    } else {
        mp->stats.inbound_failed++;
        char text[300];
        const char *why = resp->error_message                  ? resp->error_message
                          : resp->error == SR_HTTP_E_CANCELLED ? "cancelled"
                                                               : "error";
        snprintf(text, sizeof text, "the inbound post failed: %s", why);
        mock_respond_error(in->req, resp->error == SR_HTTP_E_CANCELLED ? 503 : 502, text, NULL);
    }
    sr_buf_free(&out);
    free(in);
}

/* Whether an inbound SMS can be posted now; else answers why not. */
static bool mock_inbound_possible(mock_provider *mp, sr_http_request *req) {
    const mock_dialect *dialect = mp->set.dialect;
    if (mp->stopping) {
        mock_respond_error(req, 503, "stopping", NULL);
        return false;
    }
    if (!dialect->inbound_build) {
        char text[200];
        snprintf(text, sizeof text, "the %s dialect has no inbound webhook (the provider documents none)",
                 dialect->name);
        mock_respond_error(req, 400, text, NULL);
        return false;
    }
    if (!mp->set.inbound_url) {
        mock_respond_error(req, 400, "no inbound URL: start with --inbound-url or set inbound_url", NULL);
        return false;
    }
    return true;
}

/* Reads {"from","to","text","id"} (id optional; nothing else, no NUL bytes)
 * into sms, borrowing from doc; else answers 400 and returns false. */
static bool mock_inbound_read(sr_http_request *req, sr_json_doc *doc, mock_inbound_sms *sms) {
    char err[160];
    if (sr_json_parse(doc, req->body, req->body_len, err, sizeof err) != 0 || doc->root->type != SR_JSON_OBJECT) {
        mock_respond_error(req, 400, "the body must be a JSON object {\"from\",\"to\",\"text\",\"id\"}", NULL);
        return false;
    }
    const sr_json *root = doc->root;
    size_t from_len = 0, to_len = 0, id_len = 0;
    bool ok = mock_json_str(root, "from", true, &sms->from, &from_len) && sms->from &&
              mock_json_str(root, "to", true, &sms->to, &to_len) && sms->to &&
              mock_json_str(root, "text", false, &sms->text, &sms->text_len) && sms->text &&
              mock_json_str(root, "id", false, &sms->id, &id_len) && strlen(sms->from) == from_len &&
              strlen(sms->to) == to_len && strlen(sms->text) == sms->text_len &&
              (!sms->id || (id_len && strlen(sms->id) == id_len && id_len < MOCK_ID_LEN));
    for (const sr_json *m = root->child; ok && m; m = m->next)
        ok = strcmp(m->key, "from") == 0 || strcmp(m->key, "to") == 0 || strcmp(m->key, "text") == 0 ||
             strcmp(m->key, "id") == 0;
    if (!ok)
        mock_respond_error(req, 400,
                           "want {\"from\": non-empty string, \"to\": non-empty string, \"text\": string, \"id\": "
                           "optional string} (no NUL bytes, nothing else)",
                           NULL);
    return ok;
}

/* Builds the inbound post in the dialect's format: an id made when the
 * request gave none, the numbers also as bare digits. */
static void mock_inbound_build(mock_provider *mp, mock_inbound_sms *sms, const char *url, mock_post *post) {
    char made_id[MOCK_ID_LEN];
    if (!sms->id) {
        mock_new_id(mp, mp->set.dialect, made_id);
        sms->id = made_id;
    }
    sr_buf from_digits, to_digits;
    sr_buf_init(&from_digits);
    sr_buf_init(&to_digits);
    mock_put_digits(&from_digits, sms->from, strlen(sms->from));
    mock_put_digits(&to_digits, sms->to, strlen(sms->to));
    /* A number as bare digits (how Devino, Agile Telecom and Vonage write
     * them); a sender name stays as it is. */
    sms->to_bare = sms->to[0] == '+' ? sr_buf_cstr(&to_digits) : sms->to;
    sms->from_bare = sms->from[0] == '+' ? sr_buf_cstr(&from_digits) : sms->from;
    sms->now_ms = mock_wall_ms();
    mp->set.dialect->inbound_build(mp, sms, url, post);
    sms->id = sms->to_bare = sms->from_bare = NULL;
    sr_buf_free(&from_digits);
    sr_buf_free(&to_digits);
}

/* POST /control/inbound {"from","to","text","id"}: one inbound SMS posted to
 * inbound_url; answered with what the receiver answered, once it did. */
void mock_inbound(mock_provider *mp, sr_http_request *req) {
    if (!mock_inbound_possible(mp, req)) return;
    sr_json_doc doc;
    mock_inbound_sms sms;
    memset(&sms, 0, sizeof sms);
    if (!mock_inbound_read(req, &doc, &sms)) {
        sr_json_doc_free(&doc);
        return;
    }
    sr_http_client *client = mock_client(mp);
    if (!client) {
        sr_json_doc_free(&doc);
        mock_respond_error(req, 502, "cannot create the HTTP client", NULL);
        return;
    }
    const char *url = mp->set.inbound_url;
    mock_post post;
    mock_inbound_build(mp, &sms, url, &post);
    sr_json_doc_free(&doc);
    mock_inbound_post *in = calloc(1, sizeof *in);
    if (!in) abort();
    in->mp = mp;
    in->req = req;
    if (mock_post_send(client, url, &post, MOCK_INBOUND_TIMEOUT_MS, mock_inbound_answered, in) != 0) {
        free(in);
        mp->stats.inbound_failed++;
        mock_respond_error(req, 502, "the inbound post could not start", NULL);
    }
}
