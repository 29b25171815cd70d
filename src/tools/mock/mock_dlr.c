/* mock_dlr: delivery reports (a delay, then posts with retries) and
 * POST /control/inbound (one inbound SMS posted in the dialect's format). */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

#include "core/buf.h"
#include "core/log.h"
#include "codec/crypto.h"
#include "codec/json.h"
#include "http/http_client.h"
#include "http/http_server.h"
#include "tools/mock/mock_internal.h"

static void mock_dlr_post(uv_timer_t *t);

/* ---- the HTTP client (delivery reports, inbound posts) ---- */

/* The client, created on first use; NULL when it cannot be made. */
static sr_http_client *mock_client(mock_provider *mp) {
    if (!mp->client && sr_http_client_new(&mp->client, mp->loop) != 0) mp->client = NULL;
    return mp->client;
}

/* ---- delivery reports ---- */

/* A report about message_id in dialect's format. Copies message_id, to,
 * from, client_ref and account (from, client_ref and account may be NULL;
 * from_len and ref_len are their lengths). The report does nothing until
 * mock_dlr_start. */
mock_dlr *mock_dlr_new(mock_provider *mp, mock_dialect dialect, const char *message_id, const char *to,
                              size_t to_len, const char *from, size_t from_len, const char *client_ref,
                              size_t ref_len, const char *account, bool undelivered) {
    mock_dlr *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->mp = mp;
    d->dialect = dialect;
    snprintf(d->message_id, sizeof d->message_id, "%s", message_id);
    d->to = mock_strndup(to, to_len);
    d->to_len = to_len;
    d->from = mock_strndup(from, from_len);
    d->client_ref = mock_strndup(client_ref, ref_len);
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
        sr_warn("delivery report not delivered", "message_id", d->message_id, "attempts",
                sr_log_num(d->attempts), "http_status", sr_log_num(status), "error", error ? error : "");
        mock_dlr_finish(d);
        return;
    }
    uint64_t backoff_ms = d->attempts > 6 ? MOCK_DLR_BACKOFF_MAX_MS : (uint64_t)MOCK_DLR_BACKOFF_MS << (d->attempts - 1);
    if (backoff_ms > MOCK_DLR_BACKOFF_MAX_MS) backoff_ms = MOCK_DLR_BACKOFF_MAX_MS;
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

static const char mock_ct_json[] = "Content-Type: application/json";

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

static const char mock_ct_form[] = "Content-Type: application/x-www-form-urlencoded";

static void mock_post_init(mock_post *post, const char *content_type) {
    sr_buf_init(&post->body);
    post->signature[0] = '\0';
    post->headers[0] = content_type;
    post->headers[1] = NULL;
    post->headers[2] = NULL;
}

static void mock_post_sign(mock_post *post) {
    if (post->signature[0]) post->headers[1] = post->signature;
}

/* X-Signature: the hex HMAC-SHA256 of the body keyed by --webhook-secret
 * (mock and generic webhooks), when the secret is set. */
static void mock_post_sign_body(const mock_provider *mp, mock_post *post) {
    const char *secret = mp->set.webhook_secret;
    if (!secret) return;
    unsigned char mac[SR_CRYPTO_SHA256_LEN];
    sr_crypto_hmac_sha256(secret, strlen(secret), post->body.data, post->body.len, mac);
    char hex[2 * SR_CRYPTO_SHA256_LEN + 1];
    sr_crypto_hex(hex, mac, sizeof mac);
    snprintf(post->signature, sizeof post->signature, "X-Signature: %s", hex);
    mock_post_sign(post);
}

/* Form webhooks (Twilio, Vonage): sorts params, signs them when the
 * dialect's secret is set, encodes the body. params has room for three more. */
static void mock_post_form(mock_provider *mp, mock_dialect dialect, const char *url, mock_param *params, size_t n,
                           mock_post *post) {
    mock_post_init(post, mock_ct_form);
    if (dialect == MOCK_DIALECT_VONAGE && mp->set.webhook_secret) {
        n = mock_vonage_sign(mp, params, n, post->timestamp, sizeof post->timestamp, post->nonce, sizeof post->nonce,
                             post->sig);
    } else {
        mock_params_sort(params, n);
    }
    if (dialect == MOCK_DIALECT_TWILIO && mp->set.auth_token) {
        mock_twilio_signature(mp->set.auth_token, url, params, n, post->signature, sizeof post->signature);
        mock_post_sign(post);
    }
    mock_form_encode(&post->body, params, n);
}

/* The report as its dialect posts it. */
static void mock_dlr_build(mock_dlr *d, const char *url, mock_post *post) {
    mock_provider *mp = d->mp;
    uint64_t now_ms = mock_wall_ms();
    char timestamp[32];
    mock_rfc3339(now_ms, timestamp, sizeof timestamp);
    sr_buf *b = &post->body;
    switch (d->dialect) {
    case MOCK_DIALECT_SMSBAT:
        mock_post_init(post, mock_ct_json);
        sr_buf_puts(b, "{\"messageId\":");
        sr_buf_json_str(b, d->message_id, strlen(d->message_id));
        sr_buf_printf(b, ",\"deliverystatus\":\"%s\",\"timestamp\":\"%s\",\"cost\":0.05}",
                      d->undelivered ? "undeliverable" : "delivered", timestamp);
        return;
    case MOCK_DIALECT_DEVINO:
        mock_post_init(post, mock_ct_json);
        sr_buf_puts(b, "[{\"messageId\":");
        sr_buf_json_str(b, d->message_id, strlen(d->message_id));
        sr_buf_printf(b, ",\"ts\":%" PRIu64 ",\"status\":\"%s\",\"errorCode\":%d}]", now_ms,
                      d->undelivered ? "UNDELIVERABLE" : "DELIVERED", d->undelivered ? 1 : 0);
        return;
    case MOCK_DIALECT_AGILETELECOM:
        mock_post_init(post, mock_ct_json);
        sr_buf_puts(b, "{\"channel\":\"SMS\",\"eventType\":\"DELIVERY\",\"messageId\":");
        sr_buf_json_str(b, d->message_id, strlen(d->message_id));
        sr_buf_printf(b,
                      ",\"statusCode\":%d,\"statusDescription\":\"%s\",\"price\":0.035,\"numPart\":%u,"
                      "\"totalParts\":%u,\"timestamp\":\"%s\"}",
                      d->undelivered ? 6 : 3, d->undelivered ? "Not delivered" : "Delivered", d->parts ? d->part : 1,
                      d->parts ? d->parts : 1, timestamp);
        return;
    case MOCK_DIALECT_TWILIO: {
        const char *status = d->undelivered ? "undelivered" : "delivered";
        mock_param params[MOCK_MAX_PARAMS];
        size_t n = 0;
        params[n++] = (mock_param){"AccountSid", d->account ? d->account : "AC00000000000000000000000000000000"};
        params[n++] = (mock_param){"ApiVersion", MOCK_TWILIO_API};
        if (d->undelivered) params[n++] = (mock_param){"ErrorCode", "30003"};
        if (d->from) params[n++] = (mock_param){"From", d->from};
        params[n++] = (mock_param){"MessageSid", d->message_id};
        params[n++] = (mock_param){"MessageStatus", status};
        params[n++] = (mock_param){"SmsSid", d->message_id};
        params[n++] = (mock_param){"SmsStatus", status};
        params[n++] = (mock_param){"To", d->to};
        mock_post_form(mp, d->dialect, url, params, n, post);
        return;
    }
    case MOCK_DIALECT_VONAGE: {
        char message_ts[24], scts[16];
        mock_format_time(now_ms, "%Y-%m-%d %H:%M:%S", message_ts, sizeof message_ts);
        mock_format_time(now_ms, "%y%m%d%H%M", scts, sizeof scts);
        sr_buf msisdn;
        sr_buf_init(&msisdn);
        mock_put_digits(&msisdn, d->to, d->to_len);
        mock_param params[MOCK_MAX_PARAMS];
        size_t n = 0;
        if (d->client_ref) params[n++] = (mock_param){"client-ref", d->client_ref};
        params[n++] = (mock_param){"err-code", d->undelivered ? "1" : "0"};
        params[n++] = (mock_param){"message-timestamp", message_ts};
        params[n++] = (mock_param){"messageId", d->message_id};
        params[n++] = (mock_param){"msisdn", sr_buf_cstr(&msisdn)};
        params[n++] = (mock_param){"network-code", "12345"};
        params[n++] = (mock_param){"price", "0.03330000"};
        params[n++] = (mock_param){"scts", scts};
        params[n++] = (mock_param){"status", d->undelivered ? "failed" : "delivered"};
        if (d->from) params[n++] = (mock_param){"to", d->from};
        mock_post_form(mp, d->dialect, url, params, n, post);
        sr_buf_free(&msisdn);
        return;
    }
    default: /* mock, generic */
        mock_post_init(post, mock_ct_json);
        sr_buf_puts(b, "{\"message_id\":");
        sr_buf_json_str(b, d->message_id, strlen(d->message_id));
        sr_buf_puts(b, d->undelivered ? ",\"status\":\"UNDELIV\",\"to\":" : ",\"status\":\"DELIVRD\",\"to\":");
        sr_buf_json_str(b, d->to, d->to_len);
        sr_buf_puts(b, ",\"timestamp\":\"");
        sr_buf_puts(b, timestamp);
        sr_buf_putc(b, '"');
        if (d->parts) sr_buf_printf(b, ",\"part\":%u,\"parts\":%u", d->part, d->parts);
        sr_buf_putc(b, '}');
        mock_post_sign_body(mp, post);
        return;
    }
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
    if (d->attempts++ > 0) mp->stats.dlr_retried++; /* the receiver may have applied the failed post */
    sr_http_client *client = mock_client(mp);
    if (!client) {
        mock_dlr_failed_attempt(d, 0, "cannot create the HTTP client");
        return;
    }
    mock_post post;
    mock_dlr_build(d, url, &post);
    if (mock_post_send(client, url, &post, MOCK_DLR_TIMEOUT_MS, mock_dlr_answered, d) != 0) {
        mock_dlr_failed_attempt(d, 0, "the request could not start");
        return;
    }
    d->posting = true;
}

/* ---- POST /control/inbound ---- */

static void mock_inbound_answered(const sr_http_client_response *resp, void *ud) {
    mock_inbound_post *in = ud;
    mock_provider *mp = in->mp;
    sr_buf out;
    sr_buf_init(&out);
    if (resp->error == 0) {
        mp->stats.inbound_sent++;
        sr_buf_printf(&out, "{\"status\":%d,\"body\":", resp->status);
        sr_buf_json_str(&out, resp->body ? resp->body : "", resp->body_len);
        sr_buf_putc(&out, '}');
        sr_http_respond(in->req, 200, "application/json", out.data, out.len, NULL);
    } else {
        mp->stats.inbound_failed++;
        char text[300];
        const char *why = resp->error_message                 ? resp->error_message
                          : resp->error == SR_HTTP_E_CANCELLED ? "cancelled"
                                                               : "error";
        snprintf(text, sizeof text, "the inbound post failed: %s", why);
        mock_respond_error(in->req, resp->error == SR_HTTP_E_CANCELLED ? 503 : 502, text, NULL);
    }
    sr_buf_free(&out);
    free(in);
}

/* The inbound SMS as the dialect posts it. Strings are NUL-terminated. */
static void mock_inbound_build(mock_provider *mp, mock_dialect dialect, const char *url, const char *from,
                               const char *to, const char *text, size_t text_len, const char *id, mock_post *post) {
    uint64_t now_ms = mock_wall_ms();
    char made_id[MOCK_ID_LEN];
    if (!id) {
        mock_new_id(mp, dialect, made_id);
        id = made_id;
    }
    sr_buf from_digits, to_digits;
    sr_buf_init(&from_digits);
    sr_buf_init(&to_digits);
    mock_put_digits(&from_digits, from, strlen(from));
    mock_put_digits(&to_digits, to, strlen(to));
    /* A number as bare digits (how Devino, Agile Telecom and Vonage write
     * them); a sender name stays as it is. */
    const char *to_bare = to[0] == '+' ? sr_buf_cstr(&to_digits) : to;
    const char *from_bare = from[0] == '+' ? sr_buf_cstr(&from_digits) : from;
    sr_buf *b = &post->body;
    switch (dialect) {
    case MOCK_DIALECT_DEVINO:
        mock_post_init(post, mock_ct_json);
        sr_buf_puts(b, "{\"incomingMessageId\":");
        sr_buf_json_str(b, id, strlen(id));
        mock_put_str(b, "to", to_bare, strlen(to_bare));
        mock_put_str(b, "from", from_bare, strlen(from_bare));
        mock_put_str(b, "text", text, text_len);
        sr_buf_printf(b, ",\"transactionId\":\"%012" PRIx64 "\",\"countryName\":\"\",\"operator\":\"\",\"prefix\":\"\","
                         "\"ts\":\"%" PRIu64 "\"}",
                      (uint64_t)(mock_hash(id, strlen(id)) & 0xffffffffffffu), now_ms);
        break;
    case MOCK_DIALECT_AGILETELECOM: {
        char date_time[24];
        mock_format_time(now_ms, "%Y%m%d%H%M%S", date_time, sizeof date_time);
        mock_param params[] = {{"originator", from_bare}, {"destination", to_bare}, {"date_time", date_time},
                               {"text", text}};
        mock_post_init(post, mock_ct_form);
        mock_form_encode(b, params, sizeof params / sizeof params[0]);
        break;
    }
    case MOCK_DIALECT_TWILIO: {
        mock_param params[MOCK_MAX_PARAMS];
        size_t n = 0;
        params[n++] = (mock_param){"AccountSid", mp->twilio_account[0] ? mp->twilio_account
                                                                         : "AC00000000000000000000000000000000"};
        params[n++] = (mock_param){"ApiVersion", MOCK_TWILIO_API};
        params[n++] = (mock_param){"Body", text};
        params[n++] = (mock_param){"From", from};
        params[n++] = (mock_param){"MessageSid", id};
        params[n++] = (mock_param){"NumMedia", "0"};
        params[n++] = (mock_param){"NumSegments", "1"};
        params[n++] = (mock_param){"SmsMessageSid", id};
        params[n++] = (mock_param){"SmsSid", id};
        params[n++] = (mock_param){"SmsStatus", "received"};
        params[n++] = (mock_param){"To", to};
        mock_post_form(mp, dialect, url, params, n, post);
        break;
    }
    case MOCK_DIALECT_VONAGE: {
        char message_ts[24];
        mock_format_time(now_ms, "%Y-%m-%d %H:%M:%S", message_ts, sizeof message_ts);
        /* Vonage's keyword: the first word, upper-cased. */
        char keyword[64];
        size_t k = 0, start = 0;
        while (start < text_len && text[start] == ' ') start++;
        for (size_t i = start; i < text_len && text[i] != ' ' && k + 1 < sizeof keyword; i++)
            keyword[k++] = (char)(text[i] >= 'a' && text[i] <= 'z' ? text[i] - 32 : text[i]);
        keyword[k] = '\0';
        bool ascii = true;
        for (size_t i = 0; i < text_len; i++) ascii = ascii && (unsigned char)text[i] < 0x80;
        mock_param params[MOCK_MAX_PARAMS];
        size_t n = 0;
        params[n++] = (mock_param){"keyword", keyword};
        params[n++] = (mock_param){"message-timestamp", message_ts};
        params[n++] = (mock_param){"messageId", id};
        params[n++] = (mock_param){"msisdn", from_bare};
        params[n++] = (mock_param){"text", text};
        params[n++] = (mock_param){"to", to_bare};
        params[n++] = (mock_param){"type", ascii ? "text" : "unicode"};
        mock_post_form(mp, dialect, url, params, n, post);
        break;
    }
    default: { /* mock, generic */
        char timestamp[32];
        mock_rfc3339(now_ms, timestamp, sizeof timestamp);
        mock_post_init(post, mock_ct_json);
        sr_buf_puts(b, "{\"message_id\":");
        sr_buf_json_str(b, id, strlen(id));
        mock_put_str(b, "from", from, strlen(from));
        mock_put_str(b, "to", to, strlen(to));
        mock_put_str(b, "text", text, text_len);
        mock_put_str(b, "timestamp", timestamp, strlen(timestamp));
        sr_buf_putc(b, '}');
        mock_post_sign_body(mp, post);
        break;
    }
    }
    sr_buf_free(&from_digits);
    sr_buf_free(&to_digits);
}

/* POST /control/inbound {"from","to","text","id"}: one inbound SMS posted to
 * inbound_url; answered with what the receiver answered, once it did. */
void mock_inbound(mock_provider *mp, sr_http_request *req) {
    mock_dialect dialect = mp->set.dialect;
    if (mp->stopping) {
        mock_respond_error(req, 503, "stopping", NULL);
        return;
    }
    if (!mock_dialect_has_inbound(dialect)) {
        char text[200];
        snprintf(text, sizeof text, "the %s dialect has no inbound webhook (the provider documents none)",
                 mock_dialect_names[dialect]);
        mock_respond_error(req, 400, text, NULL);
        return;
    }
    if (!mp->set.inbound_url) {
        mock_respond_error(req, 400, "no inbound URL: start with --inbound-url or set inbound_url", NULL);
        return;
    }
    sr_json_doc doc;
    char err[160];
    if (sr_json_parse(&doc, req->body, req->body_len, err, sizeof err) != 0 || doc.root->type != SR_JSON_OBJECT) {
        sr_json_doc_free(&doc);
        mock_respond_error(req, 400, "the body must be a JSON object {\"from\",\"to\",\"text\",\"id\"}", NULL);
        return;
    }
    const char *from = NULL, *to = NULL, *text = NULL, *id = NULL;
    size_t from_len = 0, to_len = 0, text_len = 0, id_len = 0;
    const sr_json *root = doc.root;
    bool ok = mock_json_str(root, "from", true, &from, &from_len) && from &&
              mock_json_str(root, "to", true, &to, &to_len) && to &&
              mock_json_str(root, "text", false, &text, &text_len) && text &&
              mock_json_str(root, "id", false, &id, &id_len) && strlen(from) == from_len && strlen(to) == to_len &&
              strlen(text) == text_len && (!id || (id_len && strlen(id) == id_len && id_len < MOCK_ID_LEN));
    for (const sr_json *m = root->child; ok && m; m = m->next)
        ok = strcmp(m->key, "from") == 0 || strcmp(m->key, "to") == 0 || strcmp(m->key, "text") == 0 ||
             strcmp(m->key, "id") == 0;
    if (!ok) {
        sr_json_doc_free(&doc);
        mock_respond_error(req, 400,
                           "want {\"from\": non-empty string, \"to\": non-empty string, \"text\": string, \"id\": "
                           "optional string} (no NUL bytes, nothing else)",
                           NULL);
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
    mock_inbound_build(mp, dialect, url, from, to, text, text_len, id, &post);
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
