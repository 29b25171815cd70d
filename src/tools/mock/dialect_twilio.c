/* dialect_twilio: the twilio dialect of the mock provider. */
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

static const char *const mock_twilio_fields[] = {"To", "From", "MessagingServiceSid", "Body", NULL};

/* X-Twilio-Signature: base64(HMAC-SHA1(token, url + every name + value, sorted
 * by name)) for sorted params, as "X-Twilio-Signature: ..." into header. */
void mock_twilio_signature(const char *token, const char *url, const mock_param *params, size_t n, char *header,
                                  size_t header_len) {
    sr_crypto_hmac_sha1_ctx h;
    sr_crypto_hmac_sha1_init(&h, token, strlen(token));
    sr_crypto_hmac_sha1_update(&h, url, strlen(url));
    for (size_t i = 0; i < n; i++) {
        sr_crypto_hmac_sha1_update(&h, params[i].name, strlen(params[i].name));
        sr_crypto_hmac_sha1_update(&h, params[i].value, strlen(params[i].value));
    }
    unsigned char mac[SR_CRYPTO_SHA1_LEN];
    sr_crypto_hmac_sha1_final(&h, mac);
    char b64[32];
    sr_crypto_base64(b64, mac, sizeof mac);
    snprintf(header, header_len, "X-Twilio-Signature: %s", b64);
}

const char *mock_parse_twilio(mock_send_ctx *ctx, const sr_http_request *req, mock_fields *f) {
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

int mock_write_twilio(const mock_send_ctx *ctx, sr_buf *out) {
    const mock_msg *m = &ctx->msgs[0];
    if (m->result == MOCK_RESULT_INVALID || m->result == MOCK_RESULT_REJECTED) {
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
        sr_buf_printf(out, "{\"code\":%d,\"message\":", code);
        sr_buf_json_str(out, text, strlen(text));
        sr_buf_printf(out, ",\"more_info\":\"https://www.twilio.com/docs/errors/%d\",\"status\":400}", code);
        return 400;
    }
    char date[48];
    mock_format_time(mock_wall_ms(), "%a, %d %b %Y %H:%M:%S +0000", date, sizeof date);
    size_t service_len;
    const char *service = mock_field(&ctx->fields, TWILIO_SERVICE, &service_len);
    sr_buf_puts(out, "{\"account_sid\":");
    sr_buf_json_str(out, ctx->account, strlen(ctx->account));
    sr_buf_puts(out, ",\"api_version\":\"" MOCK_TWILIO_API "\"");
    mock_put_str(out, "body", m->text, m->text_len);
    sr_buf_printf(out, ",\"date_created\":\"%s\",\"date_sent\":null,\"date_updated\":\"%s\","
                       "\"direction\":\"outbound-api\",\"error_code\":null,\"error_message\":null",
                  date, date);
    mock_put_str(out, "from", m->from, m->from_len);
    mock_put_str(out, "messaging_service_sid", service && service_len ? service : NULL, service_len);
    sr_buf_printf(out, ",\"num_media\":\"0\",\"num_segments\":\"%u\",\"price\":null,\"price_unit\":\"USD\"", m->parts);
    mock_put_str(out, "sid", m->provider_id, strlen(m->provider_id));
    sr_buf_puts(out, ",\"status\":\"queued\"");
    mock_put_str(out, "to", m->to, m->to_len);
    sr_buf_puts(out, ",\"uri\":\"/2010-04-01/Accounts/");
    sr_buf_puts(out, ctx->account);
    sr_buf_printf(out, "/Messages/%s.json\"}", m->provider_id);
    return 201;
}

/* Whether path is Twilio's Messages resource; copies the AccountSid. */
bool mock_twilio_path(const char *path, char *account, size_t account_len) {
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
