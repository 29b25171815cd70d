/* dialect_smsbat: SMSBat's API: POST /bat/messagelist with a list of messages
 * (client ids "customerMessageId"), JSON reports, statuses polled with
 * GET /bat/message/{messageId}; no inbound webhook. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/mock/mock_internal.h"

static int mock_write_smsbat(const mock_send_ctx *ctx, sr_buf *out) {
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_field_uint(&w, "messagelistId", ctx->list_id);
    sr_jw_key(&w, "messages");
    sr_jw_array_begin(&w);
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        bool taken = m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE;
        sr_jw_object_begin(&w);
        sr_jw_field_str(&w, "messageId", taken ? m->provider_id : NULL);
        sr_jw_field_str(&w, "status", taken ? "accepted" : "rejected");
        sr_jw_field_uint(&w, "parts", taken ? m->parts : 0);
        if (m->id_json) {
            sr_jw_key(&w, "customerMessageId");
            sr_jw_json(&w, m->id_json);
        }
        if (m->to) sr_jw_field_strn(&w, "to", m->to, m->to_len);
        if (m->result == MOCK_RESULT_REJECTED) {
            sr_jw_field_str(&w, "message", "invalid phone number");
        } else if (m->result == MOCK_RESULT_INVALID) {
            sr_jw_key(&w, "message");
            mock_put_problem(&w, m);
        }
        sr_jw_object_end(&w);
    }
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
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
    sr_form_unescape_buf(&id, escaped_id, strlen(escaped_id));
    sr_buf_cstr(&id);
    const mock_slot *s = id.len ? mock_recall(&mp->statuses, &mp->statuses_old, id.data, id.len) : NULL;
    sr_buf out;
    sr_buf_init(&out);
    sr_jw w;
    sr_jw_init(&w, &out);
    sr_jw_object_begin(&w);
    if (!s) {
        sr_jw_field_int(&w, "status", 404);
        sr_jw_field_str(&w, "error", "Not Found");
        sr_jw_field_str(&w, "message", "message not found");
    } else {
        uint64_t at_ms;
        static const char *const words[] = {"processing", "delivered", "undeliverable"};
        mock_state state = mock_status_state(mp, s, &at_ms);
        const char *list_id = mock_slot_value(s);
        sr_jw_key(&w, "messagelistId");
        if (list_id[0]) sr_jw_raw(&w, list_id, strlen(list_id)); /* digits */
        else
            sr_jw_null(&w);
        sr_jw_field_strn(&w, "messageId", id.data, id.len);
        sr_jw_field_str(&w, "deliverystatus", words[state]);
        sr_jw_field_uint(&w, "partscount", s->count >> 1 & 0x7f);
        sr_jw_field_double(&w, "cost", 0.05);
    }
    sr_jw_object_end(&w);
    sr_http_respond(req, s ? 200 : 404, "application/json", out.data, out.len, NULL);
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
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_field_int(&w, "status", http[f]);
    sr_jw_field_str(&w, "error", reason[f]);
    sr_jw_field_str(&w, "message", detail ? detail : text[f]);
    sr_jw_object_end(&w);
    return http[f];
}

/* {"messageId","deliverystatus":"delivered"|"undeliverable","timestamp","cost"}. */
static void smsbat_dlr_build(const mock_dlr *d, const char *url, mock_post *post) {
    (void)url;
    char timestamp[32];
    mock_rfc3339(mock_wall_ms(), timestamp, sizeof timestamp);
    mock_post_init(post, mock_ct_json);
    sr_jw w;
    sr_jw_init(&w, &post->body);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "messageId", d->message_id);
    sr_jw_field_str(&w, "deliverystatus", d->undelivered ? "undeliverable" : "delivered");
    sr_jw_field_str(&w, "timestamp", timestamp);
    sr_jw_field_double(&w, "cost", 0.05);
    sr_jw_object_end(&w);
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
