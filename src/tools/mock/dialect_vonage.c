/* dialect_vonage: Vonage's SMS API: POST /sms/json with a form or JSON
 * (credentials in it; client ids "client-ref"), every answer 200 with a
 * status per message; form reports and inbound posts signed with sig under
 * --webhook-secret. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/mock/mock_internal.h"

/* Field order; the credentials come first. */
enum { VONAGE_KEY, VONAGE_SECRET, VONAGE_TO, VONAGE_FROM, VONAGE_TEXT, VONAGE_REF };
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
    sr_crypto_digest(SR_CRYPTO_MD5, text.data, text.len, digest);
    sr_crypto_hex(hex, digest, sizeof digest);
    sr_buf_free(&text);
}

/* Adds Vonage's signature parameters (timestamp, nonce, sig) to params,
 * which must have room for three more; the values live in the buffers given. */
static size_t mock_vonage_sign(mock_provider *mp, mock_param *params, size_t n, char *timestamp, size_t ts_len,
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

static const char *mock_parse_vonage(mock_send_ctx *ctx, const sr_http_request *req) {
    mock_fields *f = &ctx->fields;
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
    } required[] = {{VONAGE_KEY, "api_key"},
                    {VONAGE_SECRET, "api_secret"},
                    {VONAGE_FROM, "from"},
                    {VONAGE_TO, "to"},
                    {VONAGE_TEXT, "text"}};
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

static int mock_write_vonage(const mock_send_ctx *ctx, sr_buf *out) {
    const mock_msg *m = &ctx->msgs[0];
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "message-count", "1");
    sr_jw_key(&w, "messages");
    sr_jw_array_begin(&w);
    sr_jw_object_begin(&w);
    if (m->to) sr_jw_field_strn(&w, "to", m->to, m->to_len);
    if (m->result == MOCK_RESULT_INVALID) {
        char text[160];
        snprintf(text, sizeof text, "%s %s", m->problem_missing ? "Missing" : "Invalid",
                 m->problem_field ? m->problem_field : "parameters");
        sr_jw_field_str(&w, "status", m->problem_missing ? "2" : "3");
        sr_jw_field_str(&w, "error-text", text);
    } else if (m->result == MOCK_RESULT_REJECTED) {
        sr_jw_field_str(&w, "status", "3");
        sr_jw_field_str(&w, "error-text", "Invalid to address");
    } else {
        sr_jw_field_str(&w, "message-id", m->provider_id);
        sr_jw_field_str(&w, "status", "0");
        sr_jw_field_str(&w, "remaining-balance", "10.00000000");
        sr_jw_field_str(&w, "message-price", "0.03330000");
        sr_jw_field_str(&w, "network", "12345");
        if (m->client_id) sr_jw_field_strn(&w, "client-ref", m->client_id, m->client_id_len);
    }
    sr_jw_object_end(&w);
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
    return 200;
}

/* Credentials in the body: "api_key:api_secret" against --auth-key. */
static bool vonage_body_auth_ok(const mock_provider *mp, const mock_fields *f) {
    return !mp->set.auth_key || mock_fields_pair_is(f, VONAGE_KEY, VONAGE_SECRET, mp->set.auth_key);
}

static bool vonage_is_send_path(const char *path, char *account, size_t account_len) {
    (void)account;
    (void)account_len;
    return strcmp(path, "/sms/json") == 0;
}

static void vonage_format_id(const mock_provider *mp, uint64_t n, char *out) {
    snprintf(out, MOCK_ID_LEN, "%08" PRIX64 "%08" PRIX64, mp->start_ms / 1000 & 0xffffffffu, n & 0xffffffffu);
}

/* Vonage's SMS API answers 200 with a status per message. */
static int vonage_write_failure(mock_failure f, const char *detail, sr_buf *out) {
    static const char *const code[] = {"4", "5", "1", "3"};
    static const char *const text[] = {"Bad Credentials", "Internal Error",
                                       "Throughput Rate Exceeded - please wait [ 1000 ] and retry", NULL};
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "message-count", "1");
    sr_jw_key(&w, "messages");
    sr_jw_array_begin(&w);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "status", code[f]);
    sr_jw_field_str(&w, "error-text", text[f] ? text[f] : detail);
    sr_jw_object_end(&w);
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
    return 200;
}

/* A form post: the parameters sorted and, under --webhook-secret, signed
 * (params has room for three more). */
static void vonage_post_form(mock_provider *mp, mock_param *params, size_t n, mock_post *post) {
    mock_post_init(post, mock_ct_form);
    if (mp->set.webhook_secret)
        n = mock_vonage_sign(mp, params, n, post->timestamp, sizeof post->timestamp, post->nonce, sizeof post->nonce,
                             post->sig);
    else
        mock_params_sort(params, n);
    mock_form_encode(&post->body, params, n);
}

/* A form: messageId, msisdn, to, status delivered|failed, err-code, client-ref, ... */
static void vonage_dlr_build(const mock_dlr *d, const char *url, mock_post *post) {
    (void)url;
    uint64_t now_ms = mock_wall_ms();
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
    vonage_post_form(d->mp, params, n, post);
    sr_buf_free(&msisdn);
}

/* Vonage's keyword: the first word of text, upper-cased, into keyword (len bytes). */
static void vonage_keyword(const char *text, size_t text_len, char *keyword, size_t len) {
    size_t k = 0, start = 0;
    while (start < text_len && text[start] == ' ') start++;
    for (size_t i = start; i < text_len && text[i] != ' ' && k + 1 < len; i++)
        keyword[k++] = (char)(text[i] >= 'a' && text[i] <= 'z' ? text[i] - 32 : text[i]);
    keyword[k] = '\0';
}

/* A form: msisdn, to, messageId, text, type, keyword, message-timestamp. */
static void vonage_inbound_build(mock_provider *mp, const mock_inbound_sms *sms, const char *url, mock_post *post) {
    (void)url;
    char message_ts[24], keyword[64];
    mock_format_time(sms->now_ms, "%Y-%m-%d %H:%M:%S", message_ts, sizeof message_ts);
    vonage_keyword(sms->text, sms->text_len, keyword, sizeof keyword);
    bool ascii = true;
    for (size_t i = 0; i < sms->text_len; i++) ascii = ascii && (unsigned char)sms->text[i] < 0x80;
    mock_param params[MOCK_MAX_PARAMS];
    size_t n = 0;
    params[n++] = (mock_param){"keyword", keyword};
    params[n++] = (mock_param){"message-timestamp", message_ts};
    params[n++] = (mock_param){"messageId", sms->id};
    params[n++] = (mock_param){"msisdn", sms->from_bare};
    params[n++] = (mock_param){"text", sms->text};
    params[n++] = (mock_param){"to", sms->to_bare};
    params[n++] = (mock_param){"type", ascii ? "text" : "unicode"};
    vonage_post_form(mp, params, n, post);
}

const mock_dialect mock_dialect_vonage = {
    .name = "vonage",
    .send_methods = MOCK_POST,
    .is_send_path = vonage_is_send_path,
    .format_id = vonage_format_id,
    .body_auth_ok = vonage_body_auth_ok,
    .parse_send = mock_parse_vonage,
    .write_answer = mock_write_vonage,
    .write_failure = vonage_write_failure,
    .dlr_build = vonage_dlr_build,
    .inbound_build = vonage_inbound_build,
};
