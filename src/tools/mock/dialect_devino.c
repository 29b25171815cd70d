/* dialect_devino: Devino's API: POST /sms/messages with a list of messages
 * (Authorization: Key; no client ids), JSON reports, statuses polled with
 * POST /sms-stat/statuses/get-by-ids, JSON inbound posts. */
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

static int mock_write_devino(const mock_send_ctx *ctx, sr_buf *out) {
    sr_buf_puts(out, "{\"result\":[");
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        if (i) sr_buf_putc(out, ',');
        if (m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE) {
            sr_buf_puts(out, "{\"code\":\"OK\",\"messageId\":");
            sr_buf_json_str(out, m->provider_id, strlen(m->provider_id));
            sr_buf_putc(out, '}');
            continue;
        }
        const char *key = "invalid", *field = "to";
        if (m->result == MOCK_RESULT_INVALID) {
            key = m->problem_missing ? "must.be.not.null" : "invalid";
            field = m->problem_field;
        }
        sr_buf_printf(out, "{\"code\":\"REJECTED\",\"messageId\":null,\"segmentsId\":null,\"reasons\":[{\"key\":\"%s\","
                           "\"ref\":\"messages[%zu]%s%s\"}],\"description\":",
                      key, i, field ? "." : "", field ? field : "");
        if (m->result == MOCK_RESULT_INVALID) mock_put_problem(out, m);
        else sr_buf_puts(out, "\"invalid phone number\"");
        sr_buf_putc(out, '}');
    }
    sr_buf_puts(out, "]}");
    return 200;
}

/* Authorization: Key KEY. */
static bool devino_auth_ok(const mock_provider *mp, const sr_http_request *req, const char *account) {
    (void)account;
    return !mp->set.auth_key || mock_header_is(req, "authorization", "Key ", mp->set.auth_key);
}

static bool devino_is_poll_path(const char *path) { return strcmp(path, "/sms-stat/statuses/get-by-ids") == 0; }

/* POST /sms-stat/statuses/get-by-ids with a JSON array of ids
 * (numbers or strings); unknown ids are left out of the answer. */
static void devino_poll(mock_provider *mp, sr_http_request *req) {
    if (!devino_auth_ok(mp, req, "")) {
        mock_poll_unauthorized(mp, req);
        return;
    }
    sr_json_doc doc;
    char err[160];
    sr_buf out;
    sr_buf_init(&out);
    if (sr_json_parse(&doc, req->body, req->body_len, err, sizeof err) != 0 || doc.root->type != SR_JSON_ARRAY ||
        doc.root->count == 0 || doc.root->count > MOCK_DEVINO_POLL_MAX) {
        bool too_many = doc.root && doc.root->type == SR_JSON_ARRAY && doc.root->count > MOCK_DEVINO_POLL_MAX;
        sr_buf_printf(&out, "{\"reasons\":[{\"key\":\"%s\",\"ref\":\"ids\"}],\"description\":\"%s\"}",
                      too_many ? "too.many.messages" : "invalid",
                      too_many ? "at most 500 ids per request" : "the body must be a JSON array of 1 to 500 ids");
        sr_http_respond(req, 400, "application/json", out.data, out.len, NULL);
        goto done;
    }
    sr_buf_puts(&out, "{\"result\":[");
    bool first = true;
    for (const sr_json *v = doc.root->child; v; v = v->next) {
        if (v->type != SR_JSON_STRING && v->type != SR_JSON_NUMBER) continue;
        const mock_slot *s = mock_recall(&mp->statuses, &mp->statuses_old, v->str, v->len);
        if (!s) continue;
        uint64_t at_ms;
        static const char *const words[] = {"ENROUTE", "DELIVERED", "UNDELIVERABLE"};
        mock_state state = mock_status_state(mp, s, &at_ms);
        char when[32];
        mock_format_time(at_ms, "%Y-%m-%d %H:%M:%S", when, sizeof when);
        if (!first) sr_buf_putc(&out, ',');
        first = false;
        sr_buf_puts(&out, "{\"smsId\":");
        if (mock_all_digits(v->str, v->len)) sr_buf_append(&out, v->str, v->len); /* a number, digits exact */
        else sr_buf_json_str(&out, v->str, v->len);
        sr_buf_printf(&out, ",\"status\":\"%s\",\"statusDateTime\":\"%s\"}", words[state], when);
    }
    sr_buf_puts(&out, "]}");
    sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
done:
    sr_json_doc_free(&doc);
    sr_buf_free(&out);
}

static const char *devino_parse_send(mock_send_ctx *ctx, const sr_http_request *req) {
    return mock_parse_list(ctx, req, NULL);
}

/* Devino's ids are decimal numbers beyond 2^53 (clients must read them exactly). */
static void devino_format_id(const mock_provider *mp, uint64_t n, char *out) {
    snprintf(out, MOCK_ID_LEN, "%" PRIu64, mp->start_ms * 1000000 + n);
}

static bool devino_is_send_path(const char *path, char *account, size_t account_len) {
    (void)account;
    (void)account_len;
    return strcmp(path, "/sms/messages") == 0;
}

static int devino_write_failure(mock_failure f, const char *detail, sr_buf *out) {
    static const int http[] = {401, 503, 429, 400};
    static const char *const key[] = {"forbidden", NULL, "too.many.messages", "invalid"};
    static const char *const text[] = {"invalid api key", "service temporarily unavailable", "too many requests",
                                       "bad request"};
    sr_buf_putc(out, '{');
    if (key[f]) sr_buf_printf(out, "\"reasons\":[{\"key\":\"%s\",\"ref\":\"messages\"}],", key[f]);
    sr_buf_puts(out, "\"description\":");
    const char *message = detail ? detail : text[f];
    sr_buf_json_str(out, message, strlen(message));
    sr_buf_putc(out, '}');
    return http[f];
}

/* [{"messageId","ts","status":"DELIVERED"|"UNDELIVERABLE","errorCode"}]. */
static void devino_dlr_build(const mock_dlr *d, const char *url, mock_post *post) {
    (void)url;
    sr_buf *b = &post->body;
    mock_post_init(post, mock_ct_json);
    sr_buf_puts(b, "[{\"messageId\":");
    sr_buf_json_str(b, d->message_id, strlen(d->message_id));
    sr_buf_printf(b, ",\"ts\":%" PRIu64 ",\"status\":\"%s\",\"errorCode\":%d}]", mock_wall_ms(),
                  d->undelivered ? "UNDELIVERABLE" : "DELIVERED", d->undelivered ? 1 : 0);
}

/* {"incomingMessageId","to","from","text","transactionId",...,"ts"}. */
static void devino_inbound_build(mock_provider *mp, const mock_inbound_sms *sms, const char *url, mock_post *post) {
    (void)mp;
    (void)url;
    sr_buf *b = &post->body;
    mock_post_init(post, mock_ct_json);
    sr_buf_puts(b, "{\"incomingMessageId\":");
    sr_buf_json_str(b, sms->id, strlen(sms->id));
    mock_put_str(b, "to", sms->to_bare, strlen(sms->to_bare));
    mock_put_str(b, "from", sms->from_bare, strlen(sms->from_bare));
    mock_put_str(b, "text", sms->text, sms->text_len);
    sr_buf_printf(b, ",\"transactionId\":\"%012" PRIx64 "\",\"countryName\":\"\",\"operator\":\"\",\"prefix\":\"\","
                     "\"ts\":\"%" PRIu64 "\"}",
                  (uint64_t)(mock_hash(sms->id, strlen(sms->id)) & 0xffffffffffffu), sms->now_ms);
}

const mock_dialect mock_dialect_devino = {
    .name = "devino",
    .send_methods = MOCK_POST,
    .is_send_path = devino_is_send_path,
    .format_id = devino_format_id,
    .header_auth_ok = devino_auth_ok,
    .parse_send = devino_parse_send,
    .write_answer = mock_write_devino,
    .write_failure = devino_write_failure,
    .dlr_build = devino_dlr_build,
    .inbound_build = devino_inbound_build,
    .is_poll_path = devino_is_poll_path,
    .poll_methods = MOCK_POST,
    .poll = devino_poll,
};
