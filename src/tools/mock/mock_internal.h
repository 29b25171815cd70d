/* mock_internal: what the files of the mock provider share (see
 * mock_provider.h for what the mock does): its limits, its state, a send
 * request being decided, delivery reports, and the helpers each file offers
 * the others. Not for use outside src/tools/mock/. */
#ifndef SR_MOCK_INTERNAL_H
#define SR_MOCK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "codec/crypto.h"
#include "codec/form.h"
#include "codec/json.h"
#include "codec/jsonw.h"
#include "http/http_client.h"
#include "http/http_server.h"

#define MOCK_DEFAULT_LISTEN "127.0.0.1:9090"
#define MOCK_RATE_WINDOW_MS 1000
#define MOCK_DLR_ATTEMPTS 4     /* default: one post and three retries */
#define MOCK_DLR_BACKOFF_MS 200 /* doubled after each failed post */
#define MOCK_DLR_BACKOFF_MAX_MS 5000
#define MOCK_DLR_TIMEOUT_MS 5000
#define MOCK_INBOUND_TIMEOUT_MS 10000
#define MOCK_DRAIN_MS 3000 /* SIGTERM: then every connection is closed */
#define MOCK_MAX_BATCH 10000
#define MOCK_ID_LEN 48
#define MOCK_DEFAULT_MAX_IDS 1000000
#define MOCK_DEVINO_POLL_MAX 500 /* ids in one Devino status request */
#define MOCK_SMSC_ID_MAX 40      /* SMSC: a client "id" is at most 40 characters */
#define MOCK_MAX_FIELDS 8        /* form fields one dialect reads */
#define MOCK_MAX_PARAMS 16       /* parameters of one form webhook */
#define MOCK_TWILIO_API "2010-04-01"

/* The provider API the mock speaks: a table of functions (below). */
typedef struct mock_dialect mock_dialect;

/* ---- settings (command line, then POST /control) ---- */

typedef struct mock_settings {
    double fail_5xx_pct;
    double fail_429_pct;
    double timeout_pct;
    double reject_pct;
    double dlr_undelivered_pct;
    uint64_t retry_after_s;
    uint64_t latency_ms;
    uint64_t latency_jitter_ms;
    uint64_t hold_ms; /* a "timed out" request is answered 504 after this */
    uint64_t dlr_delay_ms;
    uint64_t dlr_attempts; /* posts of one report before giving up */
    bool dlr_before_answer;
    bool down;
    const mock_dialect *dialect;
    char *auth_key;       /* owned, or NULL: no auth */
    char *auth_token;     /* owned, or NULL: Twilio's auth token (Basic password, webhook signatures) */
    char *webhook_secret; /* owned, or NULL: generic X-Signature and Vonage sig */
    char *dlr_url;        /* owned, or NULL: no delivery reports; comma-separated URLs, taken in turn */
    char *inbound_url;    /* owned, or NULL: no inbound posts */
} mock_settings;

/* ---- a string-keyed hash map (open addressing, linear probing) ---- */

typedef struct mock_slot {
    uint64_t hash;  /* 0 marks an empty slot; hashes are never 0 */
    char *key;      /* owned: key bytes, NUL, then value bytes and NUL when the map stores values */
    size_t key_len; /* the key may contain NUL (\u0000 in JSON): the length is authoritative */
    uint64_t count;
} mock_slot;

typedef struct mock_map {
    mock_slot *slots; /* owned */
    size_t cap;       /* a power of two, or 0 */
    size_t used;
} mock_map;

/* ---- accepted-send timestamps of the last window (a ring) ---- */

typedef struct mock_rate {
    uint64_t *at_ms; /* owned; non-decreasing */
    size_t cap, head, len;
    uint64_t max_per_window;
} mock_rate;

typedef struct mock_stats {
    uint64_t received, requests, rejected, failed_5xx, failed_429, timeouts, duplicates;
    uint64_t unauthorized, bad_requests, down_dropped, dlr_sent, dlr_failed, dlr_retried;
    uint64_t polls, inbound_sent, inbound_failed;
    int64_t max_in_flight;
} mock_stats;

typedef struct mock_pending mock_pending;
typedef struct mock_dlr mock_dlr;

typedef struct mock_provider {
    uv_loop_t *loop;
    sr_http_server *server;
    sr_http_client *client; /* owned; created for the first delivery report or inbound post */
    mock_settings set;
    mock_stats stats;
    int64_t in_flight; /* send requests not answered yet */
    mock_map recipients;
    mock_map seen, seen_old; /* client id → provider id; two generations bound the memory */
    /* Polled dialects: status key → count packing (answered_ms << 8) | (parts << 1) | undelivered,
     * where answered_ms is the monotonic time of the send answer (0: not answered yet); the value
     * is the SMSBat messagelistId. Two generations, like seen. */
    mock_map statuses, statuses_old;
    uint64_t max_ids;
    mock_rate rate;  /* accepted messages */
    mock_rate calls; /* accepted messages and status polls: what a provider's rate limit counts */
    uint64_t rng;
    uint64_t next_id;
    uint64_t next_list_id; /* SMSBat messagelistId */
    uint64_t nonces;       /* Vonage signature nonces (not from rng: signing never shifts the seeded mix) */
    uint64_t start_ms;     /* wall clock at start: provider ids stay unique across restarts */
    char id_prefix[24];
    char last_account[64]; /* the account named by the last send's path (Twilio AccountSid), for inbound posts */
    mock_pending *pending; /* answers not given yet */
    mock_dlr *dlrs;        /* delivery reports started and not finished */
    uint64_t dlrs_started; /* how many are in dlrs */
    uint64_t dlr_next;     /* reports started: the next one's first post goes to this one's URL of --dlr-url */
    uv_signal_t sig_term, sig_int;
    uv_timer_t drain_timer;
    bool stopping;
} mock_provider;

typedef enum { MOCK_HOLD_NONE, MOCK_HOLD_TIMEOUT, MOCK_HOLD_DOWN } mock_hold_kind;

/* An answer that waits: for the latency timer, for delivery reports posted
 * before the answer, or held (timeout, down). Freed in the timer's close
 * callback, after the answer. */
struct mock_pending {
    uv_timer_t timer;
    mock_provider *mp;
    sr_http_request *req; /* borrowed from the server until answered */
    mock_pending *prev, *next;
    int status;
    sr_buf body;
    sr_buf stamps;  /* status keys (NUL-separated) whose answer time is this answer's */
    char extra[64]; /* extra header lines, "" when none */
    int waits;      /* latency timer + before-answer reports not finished */
    mock_hold_kind hold;
    mock_dlr *deferred; /* owned: reports that start once the answer is out */
};

/* One delivery report: a delay, then posts with retries. The timer handle is
 * initialised when the report starts; freed in its close callback. The
 * report keeps the dialect of the send it is about. */
struct mock_dlr {
    uv_timer_t timer;
    mock_provider *mp;
    mock_pending *pending; /* before-answer mode: the answer waiting for this report */
    mock_dlr *prev, *next; /* in mp->dlrs once started */
    mock_dlr *next_deferred;
    int attempts;
    uint64_t url_turn; /* which URL of --dlr-url the last post went to (mod their count) */
    bool posting;
    bool undelivered;
    unsigned part, parts; /* which part this report is about, of how many (0, 0: the whole message) */
    const mock_dialect *dialect;
    char message_id[MOCK_ID_LEN];
    char *to; /* owned */
    size_t to_len;
    char *from;       /* owned or NULL: the sender (Twilio From, Vonage "to") */
    char *client_ref; /* owned or NULL: the client's id of the message (Vonage client-ref) */
    char *account;    /* owned or NULL: the account of the send (Twilio AccountSid) */
};

/* Reports made while deciding a request, in order (linked by next_deferred). */
typedef struct mock_dlr_list {
    mock_dlr *head;
    mock_dlr **tail;
} mock_dlr_list;

typedef enum {
    MOCK_OK,
    MOCK_REJECT,       /* 400 invalid number: permanent, about the message */
    MOCK_UNAUTHORIZED, /* 401: permanent, about the provider */
    MOCK_UNAVAILABLE,  /* 503 */
    MOCK_RATE_LIMITED, /* 429 with Retry-After */
    MOCK_TIMEOUT,      /* no answer */
    MOCK_UNDELIVERED   /* accepted, then an UNDELIV report */
} mock_outcome;

/* What became of one message of a send request. */
typedef enum { MOCK_RESULT_ACCEPTED, MOCK_RESULT_DUPLICATE, MOCK_RESULT_REJECTED, MOCK_RESULT_INVALID } mock_result;

/* One message of a send request, whatever the dialect. The strings are
 * borrowed from the request's context (parsed JSON or decoded form fields)
 * and are NULL when absent; they need not be NUL-terminated. */
typedef struct mock_msg {
    const char *to, *from, *text, *client_id;
    size_t to_len, from_len, text_len, client_id_len;
    const sr_json *id_json;    /* the client id as the client wrote it (echoed), or NULL */
    const char *problem;       /* why the message is unusable, or NULL */
    const char *problem_field; /* the field at fault ("to", "text", "from", ...) */
    bool problem_missing;      /* that field is missing rather than invalid */
    mock_result result;
    unsigned parts;
    char provider_id[MOCK_ID_LEN];
} mock_msg;

/* Decoded form fields (smsc, twilio, vonage), in a dialect's field order. */
typedef struct mock_fields {
    sr_buf value[MOCK_MAX_FIELDS];
    bool has[MOCK_MAX_FIELDS];
} mock_fields;

/* A send request being decided: what was parsed, and the messages. */
typedef struct mock_send_ctx {
    mock_provider *mp;
    const mock_dialect *dialect;
    sr_json_doc doc;    /* a JSON body, or empty */
    mock_fields fields; /* form dialects (and Vonage JSON): decoded fields, in the dialect's order */
    mock_msg *msgs;     /* owned */
    size_t count;
    bool batch;                   /* mock: the request was {"messages":[...]} */
    char account[64];             /* twilio: the AccountSid of the path */
    char request_id[MOCK_ID_LEN]; /* smsc: the id of a request without a client id ("" until made) */
    uint64_t list_id;             /* numbered requests (smsbat messagelistId, agiletelecom globalId), or 0 */
    const sr_json *global_id;     /* agiletelecom: echoed */
    char bad[240];                /* a request-level problem, formatted */
} mock_send_ctx;

/* A failure of a whole send request. */
typedef enum {
    MOCK_FAIL_UNAUTHORIZED,
    MOCK_FAIL_UNAVAILABLE,
    MOCK_FAIL_RATE_LIMITED,
    MOCK_FAIL_BAD_REQUEST
} mock_failure;

/* A name and value of a form webhook (both borrowed). */
typedef struct mock_param {
    const char *name;
    const char *value;
} mock_param;

/* A post being built: its body and header lines (the storage for the
 * header lines is in here too). */
typedef struct mock_post {
    sr_buf body;
    const char *headers[3]; /* NULL-terminated */
    char signature[160];    /* "X-...: value", or "" */
    /* Vonage's signature parameters, referred to by the parameter list. */
    char timestamp[24], nonce[40], sig[2 * SR_CRYPTO_MD5_LEN + 1];
} mock_post;

typedef enum { MOCK_STATE_PENDING, MOCK_STATE_DELIVERED, MOCK_STATE_UNDELIVERED } mock_state;

/* An inbound SMS to post (POST /control/inbound): the strings are
 * NUL-terminated and borrowed for the call. */
typedef struct mock_inbound_sms {
    const char *from, *to, *text, *id;
    size_t text_len;
    const char *from_bare, *to_bare; /* a number as bare digits, a sender name as it is */
    uint64_t now_ms;                 /* wall clock */
} mock_inbound_sms;

/* HTTP methods an endpoint takes. */
enum { MOCK_GET = 1, MOCK_POST = 2 };

/* ---- the dialects ---- */

/* What one provider API does, as the functions the core calls. One table per
 * dialect (dialect_NAME.c), all listed in mock_dialects (mock_dialect.c).
 * A NULL function: the dialect lacks that part. Strings and buffers given to
 * the functions are borrowed for the call. */
struct mock_dialect {
    const char *name;
    unsigned send_methods;  /* MOCK_GET | MOCK_POST the send endpoint takes */
    bool per_part_reports;  /* one report per part of a multipart message (formats with part numbers) */
    bool key_by_phone;      /* client ids and polled statuses name a message with its phone ("id:digits") */
    bool numbered_requests; /* each accepted request gets a number (ctx->list_id) */
    /* Whether path is the send endpoint; copies an account named in the path
     * (Twilio's AccountSid) into account. */
    bool (*is_send_path)(const char *path, char *account, size_t account_len);
    /* A provider id in the dialect's style for the n-th id (MOCK_ID_LEN bytes). */
    void (*format_id)(const mock_provider *mp, uint64_t n, char *out);
    /* Credentials in the headers (account: from the path, "" when none);
     * NULL: the dialect carries them in the body. */
    bool (*header_auth_ok)(const mock_provider *mp, const sr_http_request *req, const char *account);
    /* Credentials among the decoded fields; NULL: not in the body. */
    bool (*body_auth_ok)(const mock_provider *mp, const mock_fields *f);
    /* Parses a send into ctx->msgs (and ctx->fields); NULL, or the problem with the whole request. */
    const char *(*parse_send)(mock_send_ctx *ctx, const sr_http_request *req);
    /* The provider id of an accepted message; NULL: a new one (mock_new_id). */
    void (*assign_id)(mock_send_ctx *ctx, mock_msg *m);
    /* The answer to a decided request; returns its HTTP status. */
    int (*write_answer)(const mock_send_ctx *ctx, sr_buf *out);
    /* A request-level failure in the dialect's words (detail: the problem of
     * a bad request, else NULL); returns the HTTP status. */
    int (*write_failure)(mock_failure f, const char *detail, sr_buf *out);
    /* The delivery report d as the dialect posts it to url; NULL: reports are not pushed. */
    void (*dlr_build)(const mock_dlr *d, const char *url, mock_post *post);
    /* The inbound SMS as the dialect posts it to url; NULL: no inbound webhook. */
    void (*inbound_build)(mock_provider *mp, const mock_inbound_sms *sms, const char *url, mock_post *post);
    /* Status polling: whether path is the poll endpoint, the methods it
     * takes, and the answer. NULL: statuses are not polled. */
    bool (*is_poll_path)(const char *path);
    unsigned poll_methods;
    void (*poll)(mock_provider *mp, sr_http_request *req);
};

extern const mock_dialect mock_dialect_mock, mock_dialect_generic, mock_dialect_smsbat, mock_dialect_devino,
    mock_dialect_agiletelecom, mock_dialect_smsc, mock_dialect_twilio, mock_dialect_vonage;

/* ---- mock_dialect.c ---- */
/* Every dialect, the default first; NULL-terminated. */
extern const mock_dialect *const mock_dialects[];
/* The dialect named name (len bytes), or NULL. */
const mock_dialect *mock_dialect_find(const char *name, size_t len);

/* ---- mock_util.c ---- */
uint64_t mock_rand(mock_provider *mp);
double mock_rand_pct(mock_provider *mp);
uint64_t mock_hash(const char *s, size_t len);
mock_slot *mock_map_upsert(mock_map *m, const char *key, size_t len, uint64_t hash, const char *value);
const char *mock_slot_value(const mock_slot *s);
void mock_map_clear(mock_map *m);
void mock_rate_add(mock_rate *r, uint64_t now_ms);
void mock_rate_clear(mock_rate *r);
mock_slot *mock_remember(const mock_provider *mp, mock_map *young, mock_map *old, const char *key, size_t len,
                         const char *value);
mock_slot *mock_recall(const mock_map *young, const mock_map *old, const char *key, size_t len);
char *mock_strndup(const char *s, size_t len);
void mock_put_digits(sr_buf *out, const char *s, size_t len);
bool mock_all_digits(const char *s, size_t len);
unsigned mock_parts(const char *text, size_t len);
uint64_t mock_wall_ms(void);
uint64_t mock_mono_ms(void);
void mock_format_time(uint64_t wall_ms, const char *fmt, char *out, size_t len);
void mock_rfc3339(uint64_t wall_ms, char *out, size_t len);
void mock_params_sort(mock_param *params, size_t n);
void mock_form_encode(sr_buf *out, const mock_param *params, size_t n);
mock_outcome mock_pattern(const char *to, size_t len);
bool mock_equal(const char *a, size_t alen, const char *b);
bool mock_header_is(const sr_http_request *req, const char *name, const char *prefix, const char *key);
bool mock_basic_is(const sr_http_request *req, const char *user, const char *password);
bool mock_basic_key(const sr_http_request *req, const char *key);
const char *mock_field(const mock_fields *f, int i, size_t *len);
void mock_fields_init(mock_fields *f);
void mock_fields_free(mock_fields *f);
void mock_fields_load(mock_fields *f, const char *const *names, const sr_http_request *req, const sr_json *json);
bool mock_fields_pair_is(const mock_fields *f, int a, int b, const char *key);
bool mock_json_str(const sr_json *obj, const char *name, bool required, const char **s, size_t *len);
bool mock_json_client_id(const sr_json *obj, const char *name, mock_msg *m);
void mock_msg_problem(mock_msg *m, const char *field, bool missing);
const char *mock_parse_json(mock_send_ctx *ctx, const sr_http_request *req);
const sr_json *mock_batch_list(mock_send_ctx *ctx, const char **bad);
const char *mock_parse_list(mock_send_ctx *ctx, const sr_http_request *req, const char *id_name);
void mock_put_problem(sr_jw *w, const mock_msg *m);
mock_state mock_status_state(const mock_provider *mp, const mock_slot *s, uint64_t *at_ms);

/* ---- mock_send.c ---- */
void mock_new_id(mock_provider *mp, const mock_dialect *d, char *out);
void mock_respond_error(sr_http_request *req, int status, const char *message, const char *extra);
void mock_respond_method(sr_http_request *req, unsigned methods);
void mock_pending_answer(mock_pending *p);
void mock_pending_release_one(mock_pending *p);
void mock_send(mock_provider *mp, sr_http_request *req, const char *account);
void mock_ctx_alloc(mock_send_ctx *ctx, size_t count);
void mock_poll_unauthorized(mock_provider *mp, sr_http_request *req);

/* ---- mock_dlr.c ---- */
extern const char mock_ct_json[], mock_ct_form[];
void mock_dlr_start(mock_dlr *d);
mock_dlr *mock_dlr_new(mock_provider *mp, const mock_dialect *dialect, const mock_msg *m, const char *account,
                       bool undelivered);
void mock_dlr_finish(mock_dlr *d);
bool mock_url_list_ok(const char *list);
void mock_inbound(mock_provider *mp, sr_http_request *req);
void mock_post_init(mock_post *post, const char *content_type);
void mock_post_sign(mock_post *post);
void mock_post_sign_body(const mock_provider *mp, mock_post *post);

/* ---- mock_control.c ---- */
void mock_stats_get(mock_provider *mp, sr_http_request *req);
void mock_stats_reset(mock_provider *mp, sr_http_request *req);
void mock_settings_write(const mock_provider *mp, sr_buf *b);
void mock_control(mock_provider *mp, sr_http_request *req);

/* ---- dialect_mock.c (the generic dialect shares them) ---- */
void mock_msg_mock(mock_msg *m, const sr_json *obj, bool with_id);
int mock_write_error_answer(mock_failure f, const char *detail, sr_buf *out);
void mock_dlr_build_mock(const mock_dlr *d, const char *url, mock_post *post);
void mock_inbound_build_mock(mock_provider *mp, const mock_inbound_sms *sms, const char *url, mock_post *post);
void mock_format_id_mock(const mock_provider *mp, uint64_t n, char *out);
bool mock_bearer_auth_ok(const mock_provider *mp, const sr_http_request *req, const char *account);
bool mock_is_send_path_mock(const char *path, char *account, size_t account_len);

#endif
