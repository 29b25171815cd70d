/* dialect_smsbat: SMSBat's API: POST /bat/messagelist with a list of messages
 * (client ids "customerMessageId"), JSON reports, statuses polled with
 * GET /bat/message/{messageId}; no inbound webhook. */
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

static int mock_write_smsbat(const mock_send_ctx *ctx, sr_buf *out) {
    sr_buf_printf(out, "{\"messagelistId\":%" PRIu64 ",\"messages\":[", ctx->list_id);
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        bool taken = m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE;
        if (i) sr_buf_putc(out, ',');
        sr_buf_puts(out, "{\"messageId\":");
        if (taken) sr_buf_json_str(out, m->provider_id, strlen(m->provider_id));
        else sr_buf_puts(out, "null");
        sr_buf_printf(out, ",\"status\":\"%s\",\"parts\":%u", taken ? "accepted" : "rejected", taken ? m->parts : 0);
        if (m->id_json) {
            sr_buf_puts(out, ",\"customerMessageId\":");
            sr_json_write(out, m->id_json);
        }
        if (m->to) mock_put_str(out, "to", m->to, m->to_len);
        if (m->result == MOCK_RESULT_REJECTED) {
            sr_buf_puts(out, ",\"message\":\"invalid phone number\"");
        } else if (m->result == MOCK_RESULT_INVALID) {
            sr_buf_puts(out, ",\"message\":");
            mock_put_problem(out, m);
        }
        sr_buf_putc(out, '}');
    }
    sr_buf_puts(out, "]}");
    return 200;
}

static const char smsbat_poll_prefix[] = "/bat/message/";

static bool smsbat_is_poll_path(const char *path) {
    const size_t n = sizeof smsbat_poll_prefix - 1;
    return strncmp(path, smsbat_poll_prefix, n) == 0 && path[n] && !strchr(path + n, '/');
}

/* X-Authorization-Key: KEY, or HTTP Basic "@:KEY" or "user:password" = KEY. */
static bool smsbat_auth_ok(const mock_provider *mp, const sr_http_request *req, const char *account) {
    (void)account;
    const char *key = mp->set.auth_key;
    return !key || mock_header_is(req, "x-authorization-key", "", key) || mock_basic_is(req, "@", key) ||
           mock_basic_key(req, key);
}

/* GET /bat/message/{messageId}. */
static void smsbat_poll(mock_provider *mp, sr_http_request *req) {
    if (!smsbat_auth_ok(mp, req, "")) {
        mock_poll_unauthorized(mp, req);
        return;
    }
    const char *escaped_id = req->path + sizeof smsbat_poll_prefix - 1;
    sr_buf id;
    sr_buf_init(&id);
    mock_form_unescape(&id, escaped_id, strlen(escaped_id));
    sr_buf_cstr(&id);
    const mock_slot *s = id.len ? mock_recall(&mp->statuses, &mp->statuses_old, id.data, id.len) : NULL;
    sr_buf out;
    sr_buf_init(&out);
    if (!s) {
        sr_buf_puts(&out, "{\"status\":404,\"error\":\"Not Found\",\"message\":\"message not found\"}");
        sr_http_respond(req, 404, "application/json", out.data, out.len, NULL);
    } else {
        uint64_t at_ms;
        static const char *const words[] = {"processing", "delivered", "undeliverable"};
        mock_state state = mock_status_state(mp, s, &at_ms);
        const char *list_id = mock_slot_value(s);
        sr_buf_printf(&out, "{\"messagelistId\":%s,\"messageId\":", list_id[0] ? list_id : "null");
        sr_buf_json_str(&out, id.data, id.len);
        sr_buf_printf(&out, ",\"deliverystatus\":\"%s\",\"partscount\":%u,\"cost\":0.05}", words[state],
                      (unsigned)(s->count >> 1 & 0x7f));
        sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
    }
    sr_buf_free(&out);
    sr_buf_free(&id);
}

static const char *smsbat_parse_send(mock_send_ctx *ctx, const sr_http_request *req) {
    return mock_parse_list(ctx, req, "customerMessageId");
}

static void smsbat_format_id(const mock_provider *mp, uint64_t n, char *out) {
    snprintf(out, MOCK_ID_LEN, "%011" PRIx64 "%012" PRIx64, mp->start_ms, n);
}

static bool smsbat_is_send_path(const char *path, char *account, size_t account_len) {
    (void)account;
    (void)account_len;
    return strcmp(path, "/bat/messagelist") == 0;
}

static int smsbat_write_failure(mock_failure f, const char *detail, sr_buf *out) {
    static const int http[] = {401, 503, 429, 400};
    static const char *const reason[] = {"Unauthorized", "Service Unavailable", "Too Many Requests", "Bad Request"};
    static const char *const text[] = {"invalid credentials", "service temporarily unavailable",
                                       "rate limit exceeded, retry later", "bad request"};
    sr_buf_printf(out, "{\"status\":%d,\"error\":\"%s\"", http[f], reason[f]);
    const char *message = detail ? detail : text[f];
    mock_put_str(out, "message", message, strlen(message));
    sr_buf_putc(out, '}');
    return http[f];
}

/* {"messageId","deliverystatus":"delivered"|"undeliverable","timestamp","cost"}. */
static void smsbat_dlr_build(const mock_dlr *d, const char *url, mock_post *post) {
    (void)url;
    char timestamp[32];
    mock_rfc3339(mock_wall_ms(), timestamp, sizeof timestamp);
    sr_buf *b = &post->body;
    mock_post_init(post, mock_ct_json);
    sr_buf_puts(b, "{\"messageId\":");
    sr_buf_json_str(b, d->message_id, strlen(d->message_id));
    sr_buf_printf(b, ",\"deliverystatus\":\"%s\",\"timestamp\":\"%s\",\"cost\":0.05}",
                  d->undelivered ? "undeliverable" : "delivered", timestamp);
}

const mock_dialect mock_dialect_smsbat = {
    .name = "smsbat",
    .send_methods = MOCK_POST,
    .numbered_requests = true,
    .is_send_path = smsbat_is_send_path,
    .format_id = smsbat_format_id,
    .header_auth_ok = smsbat_auth_ok,
    .parse_send = smsbat_parse_send,
    .write_answer = mock_write_smsbat,
    .write_failure = smsbat_write_failure,
    .dlr_build = smsbat_dlr_build,
    .is_poll_path = smsbat_is_poll_path,
    .poll_methods = MOCK_GET,
    .poll = smsbat_poll,
};
