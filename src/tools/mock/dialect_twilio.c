/* dialect_twilio: Twilio's Messages API: POST /2010-04-01/Accounts/{AccountSid}/
 * Messages.json with a form (HTTP Basic), no client ids; form reports and
 * inbound posts signed with X-Twilio-Signature under --auth-token. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/mock/mock_internal.h"

enum { TWILIO_TO, TWILIO_FROM, TWILIO_SERVICE, TWILIO_BODY };
static const char *const mock_twilio_fields[] = {"To", "From", "MessagingServiceSid", "Body", NULL};

/* X-Twilio-Signature: base64(HMAC-SHA1(token, url + every name + value, sorted
 * by name)) for sorted params, as "X-Twilio-Signature: ..." into header. */
static void mock_twilio_signature(const char *token, const char *url, const mock_param *params, size_t n, char *header,
                                  size_t header_len) {
    sr_crypto_ctx h;
    sr_crypto_hmac_init(&h, SR_CRYPTO_SHA1, token, strlen(token));
    sr_crypto_update(&h, url, strlen(url));
    for (size_t i = 0; i < n; i++) {
        sr_crypto_update(&h, params[i].name, strlen(params[i].name));
        sr_crypto_update(&h, params[i].value, strlen(params[i].value));
    }
    unsigned char mac[SR_CRYPTO_SHA1_LEN];
    sr_crypto_final(&h, mac);
    char b64[32];
    sr_crypto_base64(b64, mac, sizeof mac);
    snprintf(header, header_len, "X-Twilio-Signature: %s", b64);
}

static const char *mock_parse_twilio(mock_send_ctx *ctx, const sr_http_request *req) {
    mock_fields *f = &ctx->fields;
    mock_fields_load(f, mock_twilio_fields, req, NULL);
    mock_ctx_alloc(ctx, 1);
    mock_msg *m = &ctx->msgs[0];
    m->to = mock_field(f, TWILIO_TO, &m->to_len);
    m->text = mock_field(f, TWILIO_BODY, &m->text_len);
    m->from = mock_field(f, TWILIO_FROM, &m->from_len);
    size_t service_len;
    const char *service = mock_field(f, TWILIO_SERVICE, &service_len);
    if (m->from && !m->from_len) m->from = NULL;
    if (!m->to || !m->to_len) {
        m->to = NULL;
        mock_msg_problem(m, "To", true);
    } else if (!m->text || !m->text_len) {
        mock_msg_problem(m, "Body", true);
    } else if (!m->from && !(service && service_len)) {
        mock_msg_problem(m, "From", true);
    }
    return NULL;
}

/* An error answer: {"code","message","more_info","status"}. */
static void twilio_write_error(sr_jw *w, int code, const char *message, int status) {
    char more_info[64];
    snprintf(more_info, sizeof more_info, "https://www.twilio.com/docs/errors/%d", code);
    sr_jw_object_begin(w);
    sr_jw_field_int(w, "code", code);
    sr_jw_field_str(w, "message", message);
    sr_jw_field_str(w, "more_info", more_info);
    sr_jw_field_int(w, "status", status);
    sr_jw_object_end(w);
}

/* A message refused: the error code of its problem. */
static void twilio_write_refused(sr_jw *w, const mock_msg *m) {
    int code = 21211;
    char text[200];
    if (m->result == MOCK_RESULT_REJECTED) {
        snprintf(text, sizeof text, "The 'To' number %.*s is not a valid phone number.", (int)m->to_len, m->to);
    } else if (m->problem_field && strcmp(m->problem_field, "To") == 0) {
        code = 21604;
        snprintf(text, sizeof text, "A 'To' phone number is required.");
    } else if (m->problem_field && strcmp(m->problem_field, "Body") == 0) {
        code = 21602;
        snprintf(text, sizeof text, "Message body is required.");
    } else {
        code = 21603;
        snprintf(text, sizeof text, "A 'From' or 'MessagingServiceSid' parameter is required.");
    }
    twilio_write_error(w, code, text, 400);
}

/* The Message resource of an accepted message. */
static void twilio_write_message(sr_jw *w, const mock_send_ctx *ctx, const mock_msg *m) {
    char date[48], uri[160];
    mock_format_time(mock_wall_ms(), "%a, %d %b %Y %H:%M:%S +0000", date, sizeof date);
    snprintf(uri, sizeof uri, "/2010-04-01/Accounts/%s/Messages/%s.json", ctx->account, m->provider_id);
    size_t service_len;
    const char *service = mock_field(&ctx->fields, TWILIO_SERVICE, &service_len);
    sr_jw_object_begin(w);
    sr_jw_field_str(w, "account_sid", ctx->account);
    sr_jw_field_str(w, "api_version", MOCK_TWILIO_API);
    sr_jw_field_strn(w, "body", m->text, m->text_len);
    sr_jw_field_str(w, "date_created", date);
    sr_jw_field_null(w, "date_sent");
    sr_jw_field_str(w, "date_updated", date);
    sr_jw_field_str(w, "direction", "outbound-api");
    sr_jw_field_null(w, "error_code");
    sr_jw_field_null(w, "error_message");
    sr_jw_field_strn(w, "from", m->from, m->from_len);
    sr_jw_field_strn(w, "messaging_service_sid", service && service_len ? service : NULL, service_len);
    sr_jw_field_str(w, "num_media", "0");
    char segments[16];
    snprintf(segments, sizeof segments, "%u", m->parts);
    sr_jw_field_str(w, "num_segments", segments);
    sr_jw_field_null(w, "price");
    sr_jw_field_str(w, "price_unit", "USD");
    sr_jw_field_str(w, "sid", m->provider_id);
    sr_jw_field_str(w, "status", "queued");
    sr_jw_field_strn(w, "to", m->to, m->to_len);
    sr_jw_field_str(w, "uri", uri);
    sr_jw_object_end(w);
}

static int mock_write_twilio(const mock_send_ctx *ctx, sr_buf *out) {
    const mock_msg *m = &ctx->msgs[0];
    sr_jw w;
    sr_jw_init(&w, out);
    if (m->result == MOCK_RESULT_INVALID || m->result == MOCK_RESULT_REJECTED) {
        twilio_write_refused(&w, m);
        return 400;
    }
    twilio_write_message(&w, ctx, m);
    return 201;
}

/* Whether path is Twilio's Messages resource; copies the AccountSid. */
static bool mock_twilio_path(const char *path, char *account, size_t account_len) {
    static const char prefix[] = "/2010-04-01/Accounts/", suffix[] = "/Messages.json";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0) return false;
    const char *sid = path + sizeof prefix - 1;
    size_t len = 0;
    while ((sid[len] >= 'A' && sid[len] <= 'Z') || (sid[len] >= 'a' && sid[len] <= 'z') ||
           (sid[len] >= '0' && sid[len] <= '9'))
        len++;
    if (len == 0 || len >= account_len || strcmp(sid + len, suffix) != 0) return false;
    memcpy(account, sid, len);
    account[len] = '\0';
    return true;
}

/* Without --auth-key, HTTP Basic with the path's AccountSid and --auth-token
 * (when set); with it, HTTP Basic "sid:token" = KEY. */
static bool twilio_auth_ok(const mock_provider *mp, const sr_http_request *req, const char *account) {
    if (mp->set.auth_key) return mock_basic_key(req, mp->set.auth_key);
    return !mp->set.auth_token || mock_basic_is(req, account, mp->set.auth_token);
}

static void twilio_format_id(const mock_provider *mp, uint64_t n, char *out) {
    snprintf(out, MOCK_ID_LEN, "SM%016" PRIx64 "%016" PRIx64, mp->start_ms, n);
}

static int twilio_write_failure(mock_failure f, const char *detail, sr_buf *out) {
    static const int http[] = {401, 503, 429, 400};
    static const int code[] = {20003, 20503, 20429, 0};
    static const char *const text[] = {"Authenticate", "Service Unavailable", "Too Many Requests", NULL};
    sr_jw w;
    sr_jw_init(&w, out);
    if (code[f]) {
        twilio_write_error(&w, code[f], text[f], http[f]);
    } else {
        sr_jw_object_begin(&w);
        sr_jw_field_str(&w, "message", detail);
        sr_jw_field_int(&w, "status", http[f]);
        sr_jw_object_end(&w);
    }
    return http[f];
}

/* A form post: the parameters sorted and, under --auth-token, signed. */
static void twilio_post_form(const mock_provider *mp, const char *url, mock_param *params, size_t n, mock_post *post) {
    mock_post_init(post, mock_ct_form);
    mock_params_sort(params, n);
    if (mp->set.auth_token) {
        mock_twilio_signature(mp->set.auth_token, url, params, n, post->signature, sizeof post->signature);
        mock_post_sign(post);
    }
    mock_form_encode(&post->body, params, n);
}

/* A form: MessageSid, MessageStatus delivered|undelivered, ErrorCode, ... */
static void twilio_dlr_build(const mock_dlr *d, const char *url, mock_post *post) {
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
    twilio_post_form(d->mp, url, params, n, post);
}

/* A form: MessageSid, From, To, Body, ... */
static void twilio_inbound_build(mock_provider *mp, const mock_inbound_sms *sms, const char *url, mock_post *post) {
    mock_param params[MOCK_MAX_PARAMS];
    size_t n = 0;
    params[n++] =
        (mock_param){"AccountSid", mp->last_account[0] ? mp->last_account : "AC00000000000000000000000000000000"};
    params[n++] = (mock_param){"ApiVersion", MOCK_TWILIO_API};
    params[n++] = (mock_param){"Body", sms->text};
    params[n++] = (mock_param){"From", sms->from};
    params[n++] = (mock_param){"MessageSid", sms->id};
    params[n++] = (mock_param){"NumMedia", "0"};
    params[n++] = (mock_param){"NumSegments", "1"};
    params[n++] = (mock_param){"SmsMessageSid", sms->id};
    params[n++] = (mock_param){"SmsSid", sms->id};
    params[n++] = (mock_param){"SmsStatus", "received"};
    params[n++] = (mock_param){"To", sms->to};
    twilio_post_form(mp, url, params, n, post);
}

const mock_dialect mock_dialect_twilio = {
    .name = "twilio",
    .send_methods = MOCK_POST,
    .is_send_path = mock_twilio_path,
    .format_id = twilio_format_id,
    .header_auth_ok = twilio_auth_ok,
    .parse_send = mock_parse_twilio,
    .write_answer = mock_write_twilio,
    .write_failure = twilio_write_failure,
    .dlr_build = twilio_dlr_build,
    .inbound_build = twilio_inbound_build,
};
