/* dialect_vonage: the vonage dialect of the mock provider. */
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

static const char *const mock_vonage_fields[] = {"api_key", "api_secret", "to", "from", "text", "client-ref", NULL};

/* Appends s with '&' and '=' replaced by '_', as Vonage's signed text wants. */
static void mock_vonage_sig_part(sr_buf *out, const char *s) {
    for (; *s; s++) sr_buf_putc(out, *s == '&' || *s == '=' ? '_' : *s);
}

/* Vonage's "md5hash" sig of sorted params (sig not among them): the hex
 * md5 of "&name=value..." followed by the secret. */
static void mock_vonage_signature(const char *secret, const mock_param *params, size_t n,
                                  char hex[2 * SR_CRYPTO_MD5_LEN + 1]) {
    sr_buf text;
    sr_buf_init(&text);
    for (size_t i = 0; i < n; i++) {
        sr_buf_putc(&text, '&');
        mock_vonage_sig_part(&text, params[i].name);
        sr_buf_putc(&text, '=');
        mock_vonage_sig_part(&text, params[i].value);
    }
    sr_buf_puts(&text, secret);
    unsigned char digest[SR_CRYPTO_MD5_LEN];
    sr_crypto_md5(text.data, text.len, digest);
    sr_crypto_hex(hex, digest, sizeof digest);
    sr_buf_free(&text);
}

/* Adds Vonage's signature parameters (timestamp, nonce, sig) to params,
 * which must have room for three more; the values live in the buffers given. */
size_t mock_vonage_sign(mock_provider *mp, mock_param *params, size_t n, char *timestamp, size_t ts_len,
                               char *nonce, size_t nonce_len, char sig[2 * SR_CRYPTO_MD5_LEN + 1]) {
    snprintf(timestamp, ts_len, "%" PRIu64, mock_wall_ms() / 1000);
    char seed[24];
    int seed_len = snprintf(seed, sizeof seed, "%" PRIu64, ++mp->nonces ^ mp->start_ms);
    snprintf(nonce, nonce_len, "%016" PRIx64, mock_hash(seed, (size_t)seed_len));
    params[n++] = (mock_param){"timestamp", timestamp};
    params[n++] = (mock_param){"nonce", nonce};
    mock_params_sort(params, n);
    mock_vonage_signature(mp->set.webhook_secret, params, n, sig);
    params[n++] = (mock_param){"sig", sig};
    return n;
}

const char *mock_parse_vonage(mock_send_ctx *ctx, const sr_http_request *req, mock_fields *f) {
    size_t len;
    const char *ct = sr_http_header_get(req, "content-type", &len);
    bool json = ct && memmem(ct, len, "json", 4) != NULL;
    for (size_t i = 0; !json && i < req->body_len; i++) {
        if (req->body[i] == '{') json = true;
        if (req->body[i] != ' ' && req->body[i] != '\n' && req->body[i] != '\r' && req->body[i] != '\t') break;
    }
    if (json) {
        const char *bad = mock_parse_json(ctx, req);
        if (bad) return bad;
        if (ctx->doc.root->type != SR_JSON_OBJECT) return "the body must be a JSON object";
    }
    mock_fields_load(f, mock_vonage_fields, req, json ? ctx->doc.root : NULL);
    mock_ctx_alloc(ctx, 1);
    mock_msg *m = &ctx->msgs[0];
    m->to = mock_field(f, VONAGE_TO, &m->to_len);
    m->from = mock_field(f, VONAGE_FROM, &m->from_len);
    m->text = mock_field(f, VONAGE_TEXT, &m->text_len);
    m->client_id = mock_field(f, VONAGE_REF, &m->client_id_len);
    if (m->client_id && !m->client_id_len) m->client_id = NULL;
    static const struct {
        int index;
        const char *name;
    } required[] = {{VONAGE_KEY, "api_key"}, {VONAGE_SECRET, "api_secret"}, {VONAGE_FROM, "from"},
                    {VONAGE_TO, "to"},       {VONAGE_TEXT, "text"}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        size_t value_len;
        if (!mock_field(f, required[i].index, &value_len) || value_len == 0) {
            mock_msg_problem(m, required[i].name, true);
            if (required[i].index == VONAGE_TO) m->to = NULL;
            break;
        }
    }
    return NULL;
}

int mock_write_vonage(const mock_send_ctx *ctx, sr_buf *out) {
    const mock_msg *m = &ctx->msgs[0];
    sr_buf_puts(out, "{\"message-count\":\"1\",\"messages\":[{");
    if (m->to) {
        sr_buf_puts(out, "\"to\":");
        sr_buf_json_str(out, m->to, m->to_len);
        sr_buf_putc(out, ',');
    }
    if (m->result == MOCK_RESULT_INVALID) {
        char text[160];
        snprintf(text, sizeof text, "%s %s", m->problem_missing ? "Missing" : "Invalid",
                 m->problem_field ? m->problem_field : "parameters");
        sr_buf_printf(out, "\"status\":\"%s\",\"error-text\":", m->problem_missing ? "2" : "3");
        sr_buf_json_str(out, text, strlen(text));
    } else if (m->result == MOCK_RESULT_REJECTED) {
        sr_buf_puts(out, "\"status\":\"3\",\"error-text\":\"Invalid to address\"");
    } else {
        sr_buf_puts(out, "\"message-id\":");
        sr_buf_json_str(out, m->provider_id, strlen(m->provider_id));
        sr_buf_puts(out, ",\"status\":\"0\",\"remaining-balance\":\"10.00000000\",\"message-price\":\"0.03330000\","
                         "\"network\":\"12345\"");
        if (m->client_id) mock_put_str(out, "client-ref", m->client_id, m->client_id_len);
    }
    sr_buf_puts(out, "}]}");
    return 200;
}
