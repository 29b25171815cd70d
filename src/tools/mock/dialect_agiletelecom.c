/* dialect_agiletelecom: Agile Telecom's API: POST /services/sms/send (or
 * /sms/send) with messages of several destinations each (client ids "ids"),
 * JSON reports one per part, form inbound posts. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/mock/mock_internal.h"

/* Agile Telecom: one message per destination of each entry. */
static const char *mock_parse_agiletelecom(mock_send_ctx *ctx, const sr_http_request *req) {
    const char *bad = mock_parse_json(ctx, req);
    if (bad) return bad;
    const sr_json *list = mock_batch_list(ctx, &bad);
    if (!list) return bad;
    const sr_json *global = sr_json_get(ctx->doc.root, "globalId");
    if (global && (global->type == SR_JSON_STRING || global->type == SR_JSON_NUMBER)) ctx->global_id = global;
    size_t count = 0;
    for (const sr_json *e = list->child; e; e = e->next) {
        const sr_json *dests = e->type == SR_JSON_OBJECT ? sr_json_get(e, "destinations") : NULL;
        count += dests && dests->type == SR_JSON_ARRAY && dests->count > 0 ? dests->count : 1;
    }
    if (count > MOCK_MAX_BATCH) return "too many destinations (at most 10000)";
    mock_ctx_alloc(ctx, count);
    size_t i = 0;
    for (const sr_json *e = list->child; e; e = e->next) {
        const sr_json *dests = e->type == SR_JSON_OBJECT ? sr_json_get(e, "destinations") : NULL;
        if (!dests || dests->type != SR_JSON_ARRAY || dests->count == 0) {
            mock_msg *m = &ctx->msgs[i++];
            if (e->type != SR_JSON_OBJECT) m->problem = "a message must be an object";
            else
                mock_msg_problem(m, "destinations", !dests || dests->type == SR_JSON_NULL);
            continue;
        }
        const sr_json *ids = sr_json_get(e, "ids");
        const sr_json *id = ids && ids->type == SR_JSON_ARRAY ? ids->child : NULL;
        for (const sr_json *dest = dests->child; dest; dest = dest->next, id = id ? id->next : NULL) {
            mock_msg *m = &ctx->msgs[i++];
            if (dest->type != SR_JSON_STRING || dest->len == 0) {
                mock_msg_problem(m, "destinations", false);
                continue;
            }
            m->to = dest->str;
            m->to_len = dest->len;
            if (!mock_json_str(e, "body", false, &m->text, &m->text_len) || !m->text) {
                mock_msg_problem(m, "body", !sr_json_get(e, "body"));
                continue;
            }
            if (!mock_json_str(e, "sender", false, &m->from, &m->from_len)) {
                mock_msg_problem(m, "sender", false);
                continue;
            }
            if (id && (id->type == SR_JSON_STRING || id->type == SR_JSON_NUMBER)) {
                m->client_id = id->str;
                m->client_id_len = id->len;
                m->id_json = id;
            }
        }
    }
    return NULL;
}

/* One result of the answer: the destination, its id and status. */
static void agiletelecom_write_result(sr_jw *w, const mock_msg *m) {
    bool taken = m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE;
    sr_jw_object_begin(w);
    sr_jw_field_strn(w, "destination", m->to, m->to_len);
    sr_jw_field_str(w, "id", taken ? m->provider_id : NULL);
    sr_jw_field_bool(w, "accepted", taken);
    sr_jw_field_int(w, "statusCode", taken ? 200 : 400);
    if (!taken) {
        sr_jw_key(w, "description");
        if (m->result == MOCK_RESULT_INVALID) mock_put_problem(w, m);
        else
            sr_jw_cstr(w, "invalid destination");
    }
    sr_jw_object_end(w);
}

static int mock_write_agiletelecom(const mock_send_ctx *ctx, sr_buf *out) {
    bool any = false;
    for (size_t i = 0; i < ctx->count; i++)
        any = any || ctx->msgs[i].result == MOCK_RESULT_ACCEPTED || ctx->msgs[i].result == MOCK_RESULT_DUPLICATE;
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "globalId");
    if (ctx->global_id) {
        sr_jw_json(&w, ctx->global_id);
    } else {
        char global[48];
        snprintf(global, sizeof global, "g%" PRIx64 "-%" PRIu64, ctx->mp->start_ms, ctx->list_id);
        sr_jw_cstr(&w, global);
    }
    sr_jw_field_bool(&w, "accepted", any);
    sr_jw_key(&w, "results");
    sr_jw_array_begin(&w);
    for (size_t i = 0; i < ctx->count; i++) agiletelecom_write_result(&w, &ctx->msgs[i]);
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
    return 200;
}

static void agiletelecom_format_id(const mock_provider *mp, uint64_t n, char *out) {
    snprintf(out, MOCK_ID_LEN, "msg_%011" PRIx64 "%08" PRIx64, mp->start_ms, n);
}

static bool agiletelecom_is_send_path(const char *path, char *account, size_t account_len) {
    (void)account;
    (void)account_len;
    return strcmp(path, "/services/sms/send") == 0 || strcmp(path, "/sms/send") == 0;
}

/* X-Api-Key: KEY, or HTTP Basic "user:password" = KEY. */
static bool agiletelecom_auth_ok(const mock_provider *mp, const sr_http_request *req, const char *account) {
    (void)account;
    const char *key = mp->set.auth_key;
    return !key || mock_header_is(req, "x-api-key", "", key) || mock_basic_key(req, key);
}

static int agiletelecom_write_failure(mock_failure f, const char *detail, sr_buf *out) {
    static const int http[] = {401, 503, 429, 400};
    static const char *const text[] = {"invalid credentials", "service temporarily unavailable", "too many requests",
                                       "bad request"};
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_field_bool(&w, "accepted", false);
    sr_jw_field_int(&w, "statusCode", http[f]);
    sr_jw_field_str(&w, "description", detail ? detail : text[f]);
    sr_jw_object_end(&w);
    return http[f];
}

/* {"channel":"SMS","eventType":"DELIVERY","messageId","statusCode":3|6,"numPart","totalParts",...}. */
static void agiletelecom_dlr_build(const mock_dlr *d, const char *url, mock_post *post) {
    (void)url;
    char timestamp[32];
    mock_rfc3339(mock_wall_ms(), timestamp, sizeof timestamp);
    mock_post_init(post, mock_ct_json);
    sr_jw w;
    sr_jw_init(&w, &post->body);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "channel", "SMS");
    sr_jw_field_str(&w, "eventType", "DELIVERY");
    sr_jw_field_str(&w, "messageId", d->message_id);
    sr_jw_field_int(&w, "statusCode", d->undelivered ? 6 : 3);
    sr_jw_field_str(&w, "statusDescription", d->undelivered ? "Not delivered" : "Delivered");
    sr_jw_field_double(&w, "price", 0.035);
    sr_jw_field_uint(&w, "numPart", d->parts ? d->part : 1);
    sr_jw_field_uint(&w, "totalParts", d->parts ? d->parts : 1);
    sr_jw_field_str(&w, "timestamp", timestamp);
    sr_jw_object_end(&w);
}

/* A form: originator, destination, date_time, text. */
static void agiletelecom_inbound_build(mock_provider *mp, const mock_inbound_sms *sms, const char *url,
                                       mock_post *post) {
    (void)mp;
    (void)url;
    char date_time[24];
    mock_format_time(sms->now_ms, "%Y%m%d%H%M%S", date_time, sizeof date_time);
    mock_param params[] = {
        {"originator", sms->from_bare}, {"destination", sms->to_bare}, {"date_time", date_time}, {"text", sms->text}};
    mock_post_init(post, mock_ct_form);
    mock_form_encode(&post->body, params, sizeof params / sizeof params[0]);
}

const mock_dialect mock_dialect_agiletelecom = {
    .name = "agiletelecom",
    .send_methods = MOCK_POST,
    .per_part_reports = true,
    .numbered_requests = true,
    .is_send_path = agiletelecom_is_send_path,
    .format_id = agiletelecom_format_id,
    .header_auth_ok = agiletelecom_auth_ok,
    .parse_send = mock_parse_agiletelecom,
    .write_answer = mock_write_agiletelecom,
    .write_failure = agiletelecom_write_failure,
    .dlr_build = agiletelecom_dlr_build,
    .inbound_build = agiletelecom_inbound_build,
};
