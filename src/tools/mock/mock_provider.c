#include "tools/mock/mock_provider.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "codec/crypto.h"
#include "codec/form.h"
#include "http/http_client.h"
#include "http/http_server.h"
#include "codec/json.h"
#include "core/log.h"

#define MOCK_DEFAULT_LISTEN "127.0.0.1:9090"
#define MOCK_RATE_WINDOW_MS 1000
#define MOCK_DLR_ATTEMPTS 4         /* default: one post and three retries */
#define MOCK_DLR_BACKOFF_MS 200     /* doubled after each failed post */
#define MOCK_DLR_BACKOFF_MAX_MS 5000
#define MOCK_DLR_TIMEOUT_MS 5000
#define MOCK_INBOUND_TIMEOUT_MS 10000
#define MOCK_DRAIN_MS 3000          /* SIGTERM: then every connection is closed */
#define MOCK_MAX_BATCH 10000
#define MOCK_ID_LEN 48
#define MOCK_DEFAULT_MAX_IDS 1000000
#define MOCK_DEVINO_POLL_MAX 500    /* ids in one Devino status request */
#define MOCK_SMSC_ID_MAX 40         /* SMSC: a client "id" is at most 40 characters */
#define MOCK_MAX_FIELDS 8           /* form fields one dialect reads */
#define MOCK_MAX_PARAMS 16          /* parameters of one form webhook */
#define MOCK_TWILIO_API "2010-04-01"

/* ---- dialects: which provider API the mock speaks ---- */

typedef enum {
    MOCK_DIALECT_MOCK,
    MOCK_DIALECT_GENERIC,
    MOCK_DIALECT_SMSBAT,
    MOCK_DIALECT_DEVINO,
    MOCK_DIALECT_AGILETELECOM,
    MOCK_DIALECT_SMSC,
    MOCK_DIALECT_TWILIO,
    MOCK_DIALECT_VONAGE
} mock_dialect;

static const char *const mock_dialect_names[] = {"mock",         "generic", "smsbat", "devino",
                                                 "agiletelecom", "smsc",    "twilio", "vonage", NULL};

/* SMSC documents no status push we could follow: its reports are polled. */
static bool mock_dialect_pushes(mock_dialect d) { return d != MOCK_DIALECT_SMSC; }

static bool mock_dialect_polled(mock_dialect d) {
    return d == MOCK_DIALECT_SMSBAT || d == MOCK_DIALECT_DEVINO || d == MOCK_DIALECT_SMSC;
}

/* Dialects with an inbound-SMS webhook (one their adapter's parse_inbound
 * reads): SMSBat and SMSC document none. */
static bool mock_dialect_has_inbound(mock_dialect d) { return d != MOCK_DIALECT_SMSBAT && d != MOCK_DIALECT_SMSC; }

/* The dialect named name (len bytes), or -1. */
static int mock_dialect_parse(const char *name, size_t len) {
    for (int i = 0; mock_dialect_names[i]; i++)
        if (strlen(mock_dialect_names[i]) == len && memcmp(mock_dialect_names[i], name, len) == 0) return i;
    return -1;
}

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
    uint64_t hold_ms;      /* a "timed out" request is answered 504 after this */
    uint64_t dlr_delay_ms;
    uint64_t dlr_attempts; /* posts of one report before giving up */
    bool dlr_before_answer;
    bool down;
    mock_dialect dialect;
    char *auth_key;       /* owned, or NULL: no auth */
    char *auth_token;     /* owned, or NULL: Twilio's auth token (Basic password, webhook signatures) */
    char *webhook_secret; /* owned, or NULL: generic X-Signature and Vonage sig */
    char *dlr_url;        /* owned, or NULL: no delivery reports */
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
    char twilio_account[64]; /* the AccountSid of the last Twilio send, for inbound posts */
    mock_pending *pending; /* answers not given yet */
    mock_dlr *dlrs;        /* delivery reports started and not finished */
    uint64_t dlrs_started; /* how many are in dlrs */
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
    sr_buf stamps;       /* status keys (NUL-separated) whose answer time is this answer's */
    char extra[64];      /* extra header lines, "" when none */
    int waits;           /* latency timer + before-answer reports not finished */
    mock_hold_kind hold;
    mock_dlr *deferred;  /* owned: reports that start once the answer is out */
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
    bool posting;
    bool undelivered;
    unsigned part, parts; /* which part this report is about, of how many (0, 0: the whole message) */
    mock_dialect dialect;
    char message_id[MOCK_ID_LEN];
    char *to; /* owned */
    size_t to_len;
    char *from;       /* owned or NULL: the sender (Twilio From, Vonage "to") */
    char *client_ref; /* owned or NULL: Vonage client-ref */
    char *account;    /* owned or NULL: Twilio AccountSid */
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
    mock_dialect dialect;
    sr_json_doc doc;                 /* a JSON body, or empty */
    mock_fields fields;              /* form dialects (and Vonage JSON): decoded fields, in the dialect's order */
    mock_msg *msgs; /* owned */
    size_t count;
    bool batch;                    /* mock: the request was {"messages":[...]} */
    char account[64];              /* twilio: the AccountSid of the path */
    char request_id[MOCK_ID_LEN];  /* smsc: the id of a request without a client id ("" until made) */
    uint64_t list_id;              /* smsbat: the messagelistId */
    const sr_json *global_id;      /* agiletelecom: echoed */
    char bad[240];                 /* a request-level problem, formatted */
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

static const char mock_usage[] =
    "usage: smsrules mock-provider [options]\n"
    "\n"
    "A fake SMS provider for demos, tests and benchmarks. It speaks one provider API at a\n"
    "time (--dialect): our own \"mock\" JSON by default, or the API of one of the adapters in\n"
    "lua/adapters/. Logs one JSON line {\"msg\":\"listening\",\"port\":N,...} on stderr once it\n"
    "accepts connections; SIGTERM or SIGINT stop it (exit 0).\n"
    "\n"
    "options:\n"
    "  -l, --listen ADDR          address to listen on (default " MOCK_DEFAULT_LISTEN "; port 0 picks a free one)\n"
    "      --dialect NAME         the API spoken: mock (default), generic, smsbat, devino,\n"
    "                             agiletelecom, smsc, twilio or vonage (see Dialects below)\n"
    "      --latency-ms N         answer every send after N ms (default 0)\n"
    "      --latency-jitter-ms N  spread the latency uniformly over N ms either side (default 0)\n"
    "      --fail-5xx PCT         answer PCT% of send requests 503 {\"error\":\"unavailable\"}\n"
    "      --fail-429 PCT         answer PCT% of send requests 429 with Retry-After\n"
    "      --retry-after S        the Retry-After of 429 answers, in seconds (default 1)\n"
    "      --timeout PCT          never answer PCT% of send requests (held open; see --hold-ms)\n"
    "      --hold-ms N            a held request is finally answered 504 after N ms (default 60000)\n"
    "      --reject PCT           reject PCT% of messages 400 {\"error\":\"invalid number\"}\n"
    "      --auth-key KEY         require the dialect's credentials to be KEY; else 401 (or the\n"
    "                             dialect's \"bad credentials\" answer). mock, generic: Authorization:\n"
    "                             Bearer KEY or X-API-Key: KEY; smsbat: X-Authorization-Key: KEY or\n"
    "                             HTTP Basic \"@:KEY\" or \"user:password\" = KEY; devino: Authorization:\n"
    "                             Key KEY; agiletelecom: X-Api-Key: KEY or Basic \"user:password\" = KEY;\n"
    "                             smsc: apikey=KEY or \"login:psw\" = KEY; twilio: Basic \"sid:token\" =\n"
    "                             KEY; vonage: \"api_key:api_secret\" = KEY\n"
    "      --auth-token TOKEN     twilio: the account's auth token. Sends must then use HTTP Basic\n"
    "                             with the path's AccountSid and TOKEN (unless --auth-key is given),\n"
    "                             and status and inbound posts carry X-Twilio-Signature (base64\n"
    "                             HMAC-SHA1 keyed by TOKEN over the URL and the sorted parameters)\n"
    "      --webhook-secret S     mock, generic: status and inbound posts carry X-Signature, the hex\n"
    "                             HMAC-SHA256 of the body keyed by S; vonage: they carry timestamp,\n"
    "                             nonce and sig (md5hash: md5 of the sorted \"&name=value\" text and S)\n"
    "      --dlr-url URL          post a delivery report for every accepted message to URL\n"
    "      --dlr-delay-ms N       post it N ms after the send answer (default 100); polled statuses\n"
    "                             stay \"in progress\" that long after the send answer\n"
    "      --dlr-undelivered PCT  report PCT% of messages undelivered, the rest delivered\n"
    "      --dlr-attempts N       post a report up to N times while posts fail: again after 200 ms,\n"
    "                             doubling up to 5 s between tries (default 4)\n"
    "      --dlr-before-answer    post the report, and wait for its answer, before answering the\n"
    "                             send (the delay then counts from the request)\n"
    "      --inbound-url URL      where POST /control/inbound posts inbound SMS\n"
    "      --max-ids N            remember up to N client message ids for idempotency, and up to N\n"
    "                             message statuses for polling (default 1000000)\n"
    "      --seed N               seed of the random failure mix (default: from the clock; logged)\n"
    "      --log-level LVL        debug, info, warn or error (default info)\n"
    "  -h, --help                 this help\n"
    "PCT is a percentage, 0 to 100 (fractions allowed); the send-level shares\n"
    "(--fail-5xx, --fail-429, --timeout, --reject) add up to at most 100.\n"
    "\n"
    "Deterministic outcomes by the last four digits of the recipient (\"to\"); they win over\n"
    "the random mix (the answers shown are the mock dialect's; other dialects below):\n"
    "  ...0000  400 {\"error\":\"invalid number\"}   permanent, about the message\n"
    "  ...0401  401 {\"error\":\"unauthorized\"}     permanent, about the provider\n"
    "  ...0503  503 {\"error\":\"unavailable\"}      retryable\n"
    "  ...0429  429 with Retry-After                retryable\n"
    "  ...0408  no answer (timeout)                 retryable\n"
    "  ...0666  accepted, then an UNDELIV delivery report (or undelivered when polled)\n"
    "\n"
    "Endpoints (every dialect):\n"
    "  GET  /stats             received (accepted messages, duplicates excluded), requests (send\n"
    "                          requests), by_recipient {to as sent: accepted count} (?by_recipient=0\n"
    "                          leaves it out), recipients, rejected, failed_5xx, failed_429, timeouts,\n"
    "                          duplicates, unauthorized, bad_requests, down_dropped, dlr_sent,\n"
    "                          dlr_failed, dlr_retried (posts repeated after a failed attempt),\n"
    "                          dlr_pending, polls, inbound_sent, inbound_failed,\n"
    "                          in_flight, max_in_flight, and rate\n"
    "                          {window_ms: 1000, max_per_window: most accepted in any 1 s window,\n"
    "                          max_calls_per_window: most accepted messages + status polls in one}\n"
    "  POST /stats/reset       zeroes the counters and forgets recipients, client ids and statuses\n"
    "  GET|POST /control       read or change settings at runtime: {\"fail_5xx\":30}, {\"down\":true}\n"
    "                          (sends are not answered until {\"down\":false}), fail_429, retry_after,\n"
    "                          timeout, reject, hold_ms, latency_ms, latency_jitter_ms, dlr_url,\n"
    "                          dlr_delay_ms, dlr_undelivered, dlr_before_answer, auth_key, dialect,\n"
    "                          auth_token, webhook_secret, inbound_url (strings; null clears)\n"
    "  POST /control/inbound   {\"from\":\"+...\",\"to\":\"+...\",\"text\":\"...\",\"id\":optional}: posts one\n"
    "                          inbound SMS to --inbound-url in the dialect's format and answers\n"
    "                          {\"status\": the HTTP status it got, \"body\": the body it got} once done\n"
    "                          (502 when the post failed; 400 for a dialect without inbound webhook)\n"
    "  GET  /healthz           {\"status\":\"ok\"}\n"
    "Delivery reports are retried 3 times with backoff (200 ms, doubling) until a 2xx answer.\n"
    "A client id seen before (where the API has one) gets the same provider id again: a\n"
    "duplicate, not a new reception.\n"
    "\n"
    "Dialects (send; failures: reject, unauthorized, 5xx, 429; reports; polling; inbound):\n"
    "  mock          POST /send (or /) {\"to\",\"from\",\"message\",\"id\"} → 200 {\"message_id\",\"status\":\n"
    "                \"accepted\"}; a batch {\"messages\":[...]} → {\"results\":[...]}, one per message,\n"
    "                in order; client id \"id\". Report: JSON {\"message_id\",\"status\":\"DELIVRD\"|\n"
    "                \"UNDELIV\",\"to\",\"timestamp\"}, one per part of a multipart message (with \"part\"\n"
    "                and \"parts\"). Inbound: JSON {\"message_id\",\"from\",\"to\",\"text\",\n"
    "                \"timestamp\"}. Both signed with X-Signature under --webhook-secret.\n"
    "  generic       POST /send (or /), one message {\"to\",\"from\",\"message\"}, client id the\n"
    "                Idempotency-Key header; answers, reports and inbound as mock.\n"
    "  smsbat        POST /bat/messagelist {\"messages\":[{\"from\",\"to\",\"text\",\"customerMessageId\",...}]}\n"
    "                → 200 {\"messagelistId\",\"messages\":[{\"messageId\",\"status\":\"accepted\"|\"rejected\",\n"
    "                \"parts\",\"customerMessageId\",\"to\"}]}; errors {\"status\",\"error\",\"message\"} with\n"
    "                401, 503, 429. Report: JSON {\"messageId\",\"deliverystatus\":\"delivered\"|\n"
    "                \"undeliverable\",\"timestamp\",\"cost\"}. Poll: GET /bat/message/{messageId} →\n"
    "                {\"messagelistId\",\"messageId\",\"deliverystatus\":\"processing\"|\"delivered\"|\n"
    "                \"undeliverable\",\"partscount\",\"cost\"}; unknown id 404. No inbound.\n"
    "  devino        POST /sms/messages {\"messages\":[{\"from\",\"to\",\"text\",...}]} (Authorization: Key)\n"
    "                → 200 {\"result\":[{\"code\":\"OK\",\"messageId\"} | {\"code\":\"REJECTED\",\"reasons\":\n"
    "                [{\"key\":\"invalid\",\"ref\":\"messages[i].to\"}],...}]}; 401, 503, 429 for the request;\n"
    "                no client id. Report: JSON [{\"messageId\",\"ts\",\"status\":\"DELIVERED\"|\n"
    "                \"UNDELIVERABLE\",\"errorCode\"}]. Poll: POST /sms-stat/statuses/get-by-ids with a JSON\n"
    "                array of at most 500 ids → {\"result\":[{\"smsId\",\"status\":\"ENROUTE\"|\"DELIVERED\"|\n"
    "                \"UNDELIVERABLE\",\"statusDateTime\"}]}; unknown ids are left out. Inbound: JSON\n"
    "                {\"incomingMessageId\",\"from\",\"to\",\"text\",\"ts\",...}.\n"
    "  agiletelecom  POST /services/sms/send (or /sms/send) {\"messages\":[{\"ids\",\"destinations\",\n"
    "                \"sender\",\"body\"}],...} → 200 {\"globalId\",\"accepted\",\"results\":[{\"destination\",\n"
    "                \"id\",\"accepted\",\"statusCode\"}]} (a rejection: accepted false, statusCode 400);\n"
    "                401, 503, 429 for the request; client ids \"ids\". Report: JSON {\"channel\":\"SMS\",\n"
    "                \"eventType\":\"DELIVERY\",\"messageId\",\"statusCode\":3|6,\"numPart\",\"totalParts\",...},\n"
    "                one per part. Inbound: form\n"
    "                originator, destination, date_time, text.\n"
    "  smsc          GET|POST /sys/send.php (form: login+psw or apikey, phones, mes, sender, id)\n"
    "                → 200 {\"id\",\"cnt\"} (the client's id when given) or {\"error\",\"error_code\"}:\n"
    "                7 invalid number, 2 bad credentials, 9 too many requests, 1 bad parameters;\n"
    "                5xx is HTTP 503. No reports pushed. Poll: GET|POST /sys/status.php (id and\n"
    "                phone lists) → {\"status\":0|1|20,\"last_date\",\"last_timestamp\",\"err\"} (a list\n"
    "                with id and phone when asked as a list); unknown → status -3. No inbound.\n"
    "  twilio        POST /2010-04-01/Accounts/{AccountSid}/Messages.json (form To, From or\n"
    "                MessagingServiceSid, Body; HTTP Basic) → 201 {\"sid\":\"SM...\",\"status\":\"queued\",...};\n"
    "                errors {\"code\",\"message\",\"more_info\",\"status\"}: 400 21211, 401 20003, 503,\n"
    "                429 20429; no client id. Report: form MessageSid, MessageStatus delivered|\n"
    "                undelivered, ErrorCode (30003), ...; inbound: form MessageSid, From, To, Body;\n"
    "                both signed with X-Twilio-Signature under --auth-token.\n"
    "  vonage        POST /sms/json (form or JSON api_key, api_secret, from, to, text, client-ref)\n"
    "                → 200 {\"message-count\":\"1\",\"messages\":[{\"message-id\",\"status\":\"0\",...}]};\n"
    "                errors in the same form: status 3 invalid number, 4 bad credentials,\n"
    "                5 internal error, 1 throttled; client id client-ref. Report: form messageId,\n"
    "                msisdn, to, status delivered|failed, err-code, client-ref, message-timestamp;\n"
    "                inbound: form msisdn, to, messageId, text, type, keyword, message-timestamp;\n"
    "                both with sig under --webhook-secret.\n"
    "Held requests (timeouts, down) are answered 504 {\"error\":\"timeout\"} or 503\n"
    "{\"error\":\"unavailable\"} in every dialect; by then the client has normally given up.\n";

static void mock_pending_answer(mock_pending *p);
static void mock_dlr_start(mock_dlr *d);
static void mock_dlr_post(uv_timer_t *t);

/* ---- random numbers (splitmix64: small, fast, seedable) ---- */

static uint64_t mock_rand(mock_provider *mp) {
    uint64_t z = (mp->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform number in [0, 100). */
static double mock_rand_pct(mock_provider *mp) { return (double)(mock_rand(mp) >> 11) * (100.0 / 9007199254740992.0); }

/* ---- the hash map ---- */

static uint64_t mock_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix for the low bits */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

/* The slot holding key, or NULL. Borrowed from the map until it changes. */
static mock_slot *mock_map_find(const mock_map *m, const char *key, size_t len, uint64_t hash) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        mock_slot *s = &m->slots[i];
        if (!s->hash) return NULL;
        if (s->hash == hash && s->key_len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

static void mock_map_grow(mock_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    mock_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) abort();
    for (size_t i = 0; i < m->cap; i++) {
        mock_slot *old = &m->slots[i];
        if (!old->hash) continue;
        size_t j = old->hash & (cap - 1);
        while (slots[j].hash) j = (j + 1) & (cap - 1);
        slots[j] = *old;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

/* The slot for key, created with count 0 when missing. The key (and value,
 * when not NULL) are copied. Borrowed from the map until it changes. */
static mock_slot *mock_map_upsert(mock_map *m, const char *key, size_t len, uint64_t hash, const char *value) {
    mock_slot *s = mock_map_find(m, key, len, hash);
    if (s) return s;
    if ((m->used + 1) * 10 > m->cap * 7) mock_map_grow(m);
    size_t mask = m->cap - 1;
    size_t i = hash & mask;
    while (m->slots[i].hash) i = (i + 1) & mask;
    s = &m->slots[i];
    size_t value_len = value ? strlen(value) : 0;
    s->key = malloc(len + value_len + 2);
    if (!s->key) abort();
    memcpy(s->key, key, len);
    s->key[len] = '\0';
    if (value) memcpy(s->key + len + 1, value, value_len);
    s->key[len + 1 + value_len] = '\0';
    s->hash = hash;
    s->key_len = len;
    s->count = 0;
    m->used++;
    return s;
}

/* The value stored with the slot's key (maps built with values). */
static const char *mock_slot_value(const mock_slot *s) { return s->key + s->key_len + 1; }

static void mock_map_clear(mock_map *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- the sliding window of accepted sends ---- */

static void mock_rate_add(mock_rate *r, uint64_t now_ms) {
    while (r->len && r->at_ms[r->head] + MOCK_RATE_WINDOW_MS <= now_ms) {
        r->head = (r->head + 1) & (r->cap - 1);
        r->len--;
    }
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        uint64_t *at = malloc(cap * sizeof *at);
        if (!at) abort();
        for (size_t i = 0; i < r->len; i++) at[i] = r->at_ms[(r->head + i) & (r->cap - 1)];
        free(r->at_ms);
        r->at_ms = at;
        r->cap = cap;
        r->head = 0;
    }
    r->at_ms[(r->head + r->len) & (r->cap - 1)] = now_ms;
    r->len++;
    if (r->len > r->max_per_window) r->max_per_window = r->len;
}

static void mock_rate_clear(mock_rate *r) {
    free(r->at_ms);
    memset(r, 0, sizeof *r);
}

/* Remembers key (with value, copied) in the young generation of a
 * two-generation map: when the young one holds max_ids / 2 + 1 keys, the old
 * one is dropped and the young one becomes old, so at most max_ids keys are
 * kept. Returns the slot, borrowed until the map changes. */
static mock_slot *mock_remember(const mock_provider *mp, mock_map *young, mock_map *old, const char *key, size_t len,
                                const char *value) {
    if (young->used >= mp->max_ids / 2 + 1) {
        mock_map_clear(old);
        *old = *young;
        memset(young, 0, sizeof *young);
    }
    return mock_map_upsert(young, key, len, mock_hash(key, len), value);
}

/* The slot of key in either generation (the young one first), or NULL. */
static mock_slot *mock_recall(const mock_map *young, const mock_map *old, const char *key, size_t len) {
    uint64_t hash = mock_hash(key, len);
    mock_slot *s = mock_map_find(young, key, len, hash);
    return s ? s : mock_map_find(old, key, len, hash);
}

/* ---- small helpers: strings, time, forms, signatures ---- */

/* A NUL-terminated copy of len bytes at s, or NULL when s is NULL. Aborts
 * when out of memory, like the rest of the mock. The caller owns it. */
static char *mock_strndup(const char *s, size_t len) {
    if (!s) return NULL;
    char *copy = malloc(len + 1);
    if (!copy) abort();
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

/* Appends the ASCII digits of s: "+84 912" → "84912". */
static void mock_put_digits(sr_buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] >= '0' && s[i] <= '9') sr_buf_putc(out, s[i]);
}

static bool mock_all_digits(const char *s, size_t len) {
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

/* The SMS parts a text takes: 160 / 153 characters for ASCII texts, else
 * 70 / 67 code points (a rough GSM-7 / UCS-2 split, enough for a mock). */
static unsigned mock_parts(const char *text, size_t len) {
    size_t chars = 0;
    bool ascii = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x80) ascii = false;
        if ((c & 0xC0) != 0x80) chars++;
    }
    size_t single = ascii ? 160 : 70, multi = ascii ? 153 : 67;
    if (chars <= single) return 1;
    size_t parts = (chars + multi - 1) / multi;
    return parts > 127 ? 127 : (unsigned)parts;
}

static uint64_t mock_wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Monotonic milliseconds, never 0 (0 marks "not answered yet"). */
static uint64_t mock_mono_ms(void) { return uv_hrtime() / 1000000 + 1; }

/* Formats the UTC time wall_ms with strftime's fmt. */
static void mock_format_time(uint64_t wall_ms, const char *fmt, char *out, size_t len) {
    time_t sec = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    if (strftime(out, len, fmt, &tm) == 0 && len) out[0] = '\0';
}

static void mock_rfc3339(uint64_t wall_ms, char *out, size_t len) {
    mock_format_time(wall_ms, "%Y-%m-%dT%H:%M:%SZ", out, len);
}

/* Appends s form-encoded the way HTML forms (and the adapters'
 * util.form_encode) do: ASCII letters, digits and "*-._" as they are, a space
 * as '+', every other byte as %XX. */
static void mock_form_escape(sr_buf *out, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '*' || c == '-' ||
            c == '.' || c == '_') {
            sr_buf_putc(out, (char)c);
        } else if (c == ' ') {
            sr_buf_putc(out, '+');
        } else {
            sr_buf_putc(out, '%');
            sr_buf_putc(out, hex[c >> 4]);
            sr_buf_putc(out, hex[c & 15]);
        }
    }
}

/* Byte order of names, then of values: the order Twilio and Vonage sign in. */
static int mock_param_cmp(const void *a, const void *b) {
    const mock_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static void mock_params_sort(mock_param *params, size_t n) { qsort(params, n, sizeof *params, mock_param_cmp); }

/* Appends the parameters as a form body, in their order. */
static void mock_form_encode(sr_buf *out, const mock_param *params, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i) sr_buf_putc(out, '&');
        mock_form_escape(out, params[i].name);
        sr_buf_putc(out, '=');
        mock_form_escape(out, params[i].value);
    }
}

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

/* A provider id in the dialect's style, unique across restarts of the mock,
 * into out (MOCK_ID_LEN bytes). */
static void mock_new_id(mock_provider *mp, mock_dialect d, char *out) {
    uint64_t n = ++mp->next_id;
    switch (d) {
    case MOCK_DIALECT_SMSBAT: snprintf(out, MOCK_ID_LEN, "%011" PRIx64 "%012" PRIx64, mp->start_ms, n); break;
    /* Devino's ids are decimal numbers beyond 2^53 (clients must read them exactly). */
    case MOCK_DIALECT_DEVINO: snprintf(out, MOCK_ID_LEN, "%" PRIu64, mp->start_ms * 1000000 + n); break;
    case MOCK_DIALECT_AGILETELECOM: snprintf(out, MOCK_ID_LEN, "msg_%011" PRIx64 "%08" PRIx64, mp->start_ms, n); break;
    /* SMSC's ids are small numbers (its older libraries keep them in 32 bits). */
    case MOCK_DIALECT_SMSC: snprintf(out, MOCK_ID_LEN, "%" PRIu64, mp->start_ms / 1000 % 100000 * 10000 + n); break;
    case MOCK_DIALECT_TWILIO: snprintf(out, MOCK_ID_LEN, "SM%016" PRIx64 "%016" PRIx64, mp->start_ms, n); break;
    case MOCK_DIALECT_VONAGE:
        snprintf(out, MOCK_ID_LEN, "%08" PRIX64 "%08" PRIX64, mp->start_ms / 1000 & 0xffffffffu, n & 0xffffffffu);
        break;
    default: snprintf(out, MOCK_ID_LEN, "%s%" PRIu64, mp->id_prefix, n); break;
    }
}

/* ---- answers ---- */

/* Answers a send request now (every send answer goes through here, once). */
static void mock_respond_send(mock_provider *mp, sr_http_request *req, int status, const char *body, size_t len,
                              const char *extra) {
    mp->in_flight--;
    sr_http_respond(req, status, "application/json", body, len, extra);
}

/* Answers a request that is not a send: {"error": message}. */
static void mock_respond_error(sr_http_request *req, int status, const char *message, const char *extra) {
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_puts(&b, "{\"error\":");
    sr_buf_json_str(&b, message, strlen(message));
    sr_buf_putc(&b, '}');
    sr_http_respond(req, status, "application/json", b.data, b.len, extra);
    sr_buf_free(&b);
}

/* The send answer is out: the statuses of the messages it accepted count
 * their "in progress" time from now. keys: NUL-separated status keys. */
static void mock_stamp(mock_provider *mp, const sr_buf *keys) {
    if (!keys || !keys->len) return;
    uint64_t now_ms = mock_mono_ms();
    for (size_t at = 0; at < keys->len;) {
        size_t len = strlen(keys->data + at);
        mock_slot *s = mock_recall(&mp->statuses, &mp->statuses_old, keys->data + at, len);
        if (s && (s->count >> 8) == 0) s->count |= now_ms << 8;
        at += len + 1;
    }
}

static void mock_pending_closed(uv_handle_t *h) {
    mock_pending *p = h->data;
    sr_buf_free(&p->body);
    sr_buf_free(&p->stamps);
    free(p);
}

static void mock_pending_unlink(mock_pending *p) {
    mock_provider *mp = p->mp;
    if (p->prev) p->prev->next = p->next;
    else mp->pending = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

/* A waiting answer, linked into mp->pending. req is borrowed until the
 * answer; body, extra and stamps (may be NULL) are copied. The caller sets
 * waits or hold. */
static mock_pending *mock_pending_new(mock_provider *mp, sr_http_request *req, int status, const char *body,
                                      size_t len, const char *extra, const sr_buf *stamps) {
    mock_pending *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->mp = mp;
    p->req = req;
    p->status = status;
    sr_buf_init(&p->body);
    sr_buf_append(&p->body, body, len);
    sr_buf_init(&p->stamps);
    if (stamps && stamps->len) sr_buf_append(&p->stamps, stamps->data, stamps->len);
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    uv_timer_init(mp->loop, &p->timer);
    p->timer.data = p;
    p->next = mp->pending;
    if (mp->pending) mp->pending->prev = p;
    mp->pending = p;
    return p;
}

/* Gives the answer, starts the deferred reports, frees p (later, in the
 * timer's close callback). */
static void mock_pending_answer(mock_pending *p) {
    mock_provider *mp = p->mp;
    mock_pending_unlink(p);
    uv_timer_stop(&p->timer);
    mock_respond_send(mp, p->req, p->status, p->body.data, p->body.len, p->extra[0] ? p->extra : NULL);
    p->req = NULL;
    mock_stamp(mp, &p->stamps);
    mock_dlr *d = p->deferred;
    p->deferred = NULL;
    while (d) {
        mock_dlr *next = d->next_deferred;
        d->next_deferred = NULL;
        mock_dlr_start(d);
        d = next;
    }
    uv_close((uv_handle_t *)&p->timer, mock_pending_closed);
}

/* One thing p waited for is done. */
static void mock_pending_release_one(mock_pending *p) {
    if (--p->waits == 0) mock_pending_answer(p);
}

static void mock_pending_timer_cb(uv_timer_t *t) {
    mock_pending *p = t->data;
    if (p->hold != MOCK_HOLD_NONE) mock_pending_answer(p);
    else mock_pending_release_one(p);
}

/* Holds a send request unanswered: a timeout, or the provider is down. It is
 * answered (504, or 503 when down) after hold_ms, when the provider comes
 * back up, or at shutdown — by then the client has normally given up. */
static void mock_hold(mock_provider *mp, sr_http_request *req, mock_hold_kind kind) {
    static const char timeout_body[] = "{\"error\":\"timeout\"}";
    static const char down_body[] = "{\"error\":\"unavailable\"}";
    mock_pending *p = kind == MOCK_HOLD_TIMEOUT
                          ? mock_pending_new(mp, req, 504, timeout_body, sizeof timeout_body - 1, NULL, NULL)
                          : mock_pending_new(mp, req, 503, down_body, sizeof down_body - 1, NULL, NULL);
    p->hold = kind;
    uv_timer_start(&p->timer, mock_pending_timer_cb, mp->set.hold_ms, 0);
}

static uint64_t mock_latency(mock_provider *mp) {
    uint64_t base = mp->set.latency_ms, jitter = mp->set.latency_jitter_ms;
    if (jitter == 0) return base;
    uint64_t low = base > jitter ? base - jitter : 0;
    uint64_t high = base + jitter;
    return low + mock_rand(mp) % (high - low + 1);
}

/* Answers a send after the latency and, in before-answer mode, after its
 * delivery reports; takes ownership of the report list dlrs (linked by
 * next_deferred). body, extra and stamps (the status keys of the accepted
 * messages, or NULL) are copied. */
static void mock_finish_send(mock_provider *mp, sr_http_request *req, int status, const sr_buf *body,
                             const char *extra, mock_dlr *dlrs, const sr_buf *stamps) {
    uint64_t delay_ms = mock_latency(mp);
    bool before = mp->set.dlr_before_answer && dlrs;
    if (delay_ms == 0 && !before) {
        mock_respond_send(mp, req, status, body->data, body->len, extra);
        mock_stamp(mp, stamps);
        while (dlrs) {
            mock_dlr *next = dlrs->next_deferred;
            dlrs->next_deferred = NULL;
            mock_dlr_start(dlrs);
            dlrs = next;
        }
        return;
    }
    mock_pending *p = mock_pending_new(mp, req, status, body->data, body->len, extra, stamps);
    p->waits = 1; /* while the waits are set up: a report may finish at once */
    if (before) {
        while (dlrs) {
            mock_dlr *next = dlrs->next_deferred;
            dlrs->next_deferred = NULL;
            dlrs->pending = p;
            p->waits++;
            mock_dlr_start(dlrs);
            dlrs = next;
        }
    } else {
        p->deferred = dlrs;
    }
    if (delay_ms > 0) {
        p->waits++;
        uv_timer_start(&p->timer, mock_pending_timer_cb, delay_ms, 0);
    }
    mock_pending_release_one(p);
}

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
static mock_dlr *mock_dlr_new(mock_provider *mp, mock_dialect dialect, const char *message_id, const char *to,
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
static void mock_dlr_finish(mock_dlr *d) {
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
static void mock_dlr_start(mock_dlr *d) {
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

/* A post being built: its body and header lines (the storage for the
 * header lines is in here too). */
typedef struct mock_post {
    sr_buf body;
    const char *headers[3]; /* NULL-terminated */
    char signature[160];    /* "X-...: value", or "" */
    /* Vonage's signature parameters, referred to by the parameter list. */
    char timestamp[24], nonce[40], sig[2 * SR_CRYPTO_MD5_LEN + 1];
} mock_post;

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
    sr_crypto_hmac(SR_CRYPTO_SHA256, secret, strlen(secret), post->body.data, post->body.len, mac);
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

/* ---- send requests: credentials ---- */

/* The outcome chosen by the last four digits of the recipient. */
static mock_outcome mock_pattern(const char *to, size_t len) {
    char last[4];
    int n = 0;
    for (size_t i = len; i > 0 && n < 4; i--) {
        char ch = to[i - 1];
        if (ch >= '0' && ch <= '9') last[3 - n++] = ch;
    }
    if (n < 4) return MOCK_OK;
    if (memcmp(last, "0000", 4) == 0) return MOCK_REJECT;
    if (memcmp(last, "0401", 4) == 0) return MOCK_UNAUTHORIZED;
    if (memcmp(last, "0503", 4) == 0) return MOCK_UNAVAILABLE;
    if (memcmp(last, "0429", 4) == 0) return MOCK_RATE_LIMITED;
    if (memcmp(last, "0408", 4) == 0) return MOCK_TIMEOUT;
    if (memcmp(last, "0666", 4) == 0) return MOCK_UNDELIVERED;
    return MOCK_OK;
}

static bool mock_equal(const char *a, size_t alen, const char *b) {
    return a && alen == strlen(b) && memcmp(a, b, alen) == 0;
}

/* Whether header name is prefix (case-insensitive) followed by key. */
static bool mock_header_is(const sr_http_request *req, const char *name, const char *prefix, const char *key) {
    size_t len, prefix_len = strlen(prefix), key_len = strlen(key);
    const char *v = sr_http_header_get(req, name, &len);
    return v && len == prefix_len + key_len && strncasecmp(v, prefix, prefix_len) == 0 &&
           memcmp(v + prefix_len, key, key_len) == 0;
}

/* The decoded "user:password" of an Authorization: Basic header, into out
 * (replacing what it held). false when there is none or it is malformed. */
static bool mock_basic_credentials(const sr_http_request *req, sr_buf *out) {
    size_t len;
    const char *v = sr_http_header_get(req, "authorization", &len);
    if (!v || len < 6 || strncasecmp(v, "Basic ", 6) != 0) return false;
    v += 6;
    len -= 6;
    while (len && *v == ' ') v++, len--;
    unsigned char *raw = malloc(sr_crypto_unbase64_max_len(len) + 1);
    if (!raw) abort();
    size_t raw_len = 0;
    bool ok = sr_crypto_unbase64(raw, &raw_len, v, len) == 0;
    if (ok) {
        sr_buf_reset(out);
        sr_buf_append(out, raw, raw_len);
    }
    free(raw);
    return ok;
}

/* Whether HTTP Basic carries exactly user ":" password. */
static bool mock_basic_is(const sr_http_request *req, const char *user, const char *password) {
    sr_buf got, want;
    sr_buf_init(&got);
    sr_buf_init(&want);
    sr_buf_printf(&want, "%s:%s", user, password);
    bool ok = mock_basic_credentials(req, &got) && got.len == want.len && memcmp(got.data, want.data, got.len) == 0;
    sr_buf_free(&got);
    sr_buf_free(&want);
    return ok;
}

/* Whether HTTP Basic's whole "user:password" is key. */
static bool mock_basic_key(const sr_http_request *req, const char *key) {
    sr_buf got;
    sr_buf_init(&got);
    bool ok = mock_basic_credentials(req, &got) && mock_equal(got.data, got.len, key);
    sr_buf_free(&got);
    return ok;
}

/* Whether a request carries the credentials its dialect sends in headers
 * (--auth-key; Twilio also --auth-token). account: Twilio's AccountSid from
 * the path. Dialects with credentials in the body (smsc, vonage) pass. */
static bool mock_header_auth_ok(const mock_provider *mp, mock_dialect dialect, const sr_http_request *req,
                                const char *account) {
    const char *key = mp->set.auth_key;
    switch (dialect) {
    case MOCK_DIALECT_SMSC:
    case MOCK_DIALECT_VONAGE: return true;
    case MOCK_DIALECT_TWILIO:
        if (key) return mock_basic_key(req, key);
        return !mp->set.auth_token || mock_basic_is(req, account, mp->set.auth_token);
    default: break;
    }
    if (!key) return true;
    switch (dialect) {
    case MOCK_DIALECT_SMSBAT:
        return mock_header_is(req, "x-authorization-key", "", key) || mock_basic_is(req, "@", key) ||
               mock_basic_key(req, key);
    case MOCK_DIALECT_DEVINO: return mock_header_is(req, "authorization", "Key ", key);
    case MOCK_DIALECT_AGILETELECOM: return mock_header_is(req, "x-api-key", "", key) || mock_basic_key(req, key);
    default: return mock_header_is(req, "authorization", "Bearer ", key) || mock_header_is(req, "x-api-key", "", key);
    }
}

/* ---- form fields (smsc, twilio, vonage) ---- */

/* Field orders. The credentials come first for smsc (both lists) and vonage. */
enum { SMSC_LOGIN, SMSC_PSW, SMSC_APIKEY, SMSC_PHONES, SMSC_MES, SMSC_SENDER, SMSC_ID };
static const char *const mock_smsc_send_fields[] = {"login", "psw", "apikey", "phones", "mes", "sender", "id", NULL};
enum { SMSC_STATUS_PHONE = 3, SMSC_STATUS_ID };
static const char *const mock_smsc_status_fields[] = {"login", "psw", "apikey", "phone", "id", NULL};
enum { TWILIO_TO, TWILIO_FROM, TWILIO_SERVICE, TWILIO_BODY };
static const char *const mock_twilio_fields[] = {"To", "From", "MessagingServiceSid", "Body", NULL};
enum { VONAGE_KEY, VONAGE_SECRET, VONAGE_TO, VONAGE_FROM, VONAGE_TEXT, VONAGE_REF };
static const char *const mock_vonage_fields[] = {"api_key", "api_secret", "to", "from", "text", "client-ref", NULL};

static void mock_fields_init(mock_fields *f) {
    for (int i = 0; i < MOCK_MAX_FIELDS; i++) sr_buf_init(&f->value[i]);
    memset(f->has, 0, sizeof f->has);
}

static void mock_fields_free(mock_fields *f) {
    for (int i = 0; i < MOCK_MAX_FIELDS; i++) sr_buf_free(&f->value[i]);
}

/* Loads the named fields: from json (an object: strings and numbers) when
 * given, else from the form body; then from the query string for those
 * still missing (SMSC takes GET too; Vonage takes query parameters too). */
static void mock_fields_load(mock_fields *f, const char *const *names, const sr_http_request *req,
                             const sr_json *json) {
    for (int i = 0; names[i] && i < MOCK_MAX_FIELDS; i++) {
        if (json) {
            const sr_json *v = sr_json_get(json, names[i]);
            if (v && (v->type == SR_JSON_STRING || v->type == SR_JSON_NUMBER)) {
                sr_buf_append(&f->value[i], v->str, v->len);
                f->has[i] = true;
            }
        } else {
            f->has[i] = sr_form_get(req->body, req->body_len, names[i], &f->value[i]);
        }
        if (!f->has[i]) f->has[i] = sr_form_get(req->query, req->query_len, names[i], &f->value[i]);
        sr_buf_cstr(&f->value[i]);
    }
}

/* Field i, or NULL when absent; *len gets its length. */
static const char *mock_field(const mock_fields *f, int i, size_t *len) {
    if (!f->has[i]) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = f->value[i].len;
    return f->value[i].data;
}

/* Fields a and b joined by ':' equal key (both present). */
static bool mock_fields_pair_is(const mock_fields *f, int a, int b, const char *key) {
    if (!f->has[a] || !f->has[b]) return false;
    sr_buf joined;
    sr_buf_init(&joined);
    sr_buf_append(&joined, f->value[a].data, f->value[a].len);
    sr_buf_putc(&joined, ':');
    sr_buf_append(&joined, f->value[b].data, f->value[b].len);
    bool ok = mock_equal(joined.data, joined.len, key);
    sr_buf_free(&joined);
    return ok;
}

/* Credentials in the body: smsc apikey or "login:psw", vonage
 * "api_key:api_secret", against --auth-key. */
static bool mock_body_auth_ok(const mock_provider *mp, mock_dialect dialect, const mock_fields *f) {
    const char *key = mp->set.auth_key;
    if (!key) return true;
    if (dialect == MOCK_DIALECT_SMSC) {
        size_t len;
        const char *apikey = mock_field(f, SMSC_APIKEY, &len);
        return (apikey && mock_equal(apikey, len, key)) || mock_fields_pair_is(f, SMSC_LOGIN, SMSC_PSW, key);
    }
    if (dialect == MOCK_DIALECT_VONAGE) return mock_fields_pair_is(f, VONAGE_KEY, VONAGE_SECRET, key);
    return true;
}

/* ---- send requests: parsing ---- */

static void mock_ctx_init(mock_send_ctx *ctx, mock_provider *mp, const char *account) {
    memset(ctx, 0, sizeof *ctx);
    mock_fields_init(&ctx->fields);
    ctx->mp = mp;
    ctx->dialect = mp->set.dialect;
    snprintf(ctx->account, sizeof ctx->account, "%s", account ? account : "");
}

static void mock_ctx_free(mock_send_ctx *ctx) {
    sr_json_doc_free(&ctx->doc);
    free(ctx->msgs);
    ctx->msgs = NULL;
    mock_fields_free(&ctx->fields);
}

static void mock_ctx_alloc(mock_send_ctx *ctx, size_t count) {
    ctx->msgs = calloc(count, sizeof *ctx->msgs);
    if (!ctx->msgs) abort();
    ctx->count = count;
}

/* A string member of a JSON object into s/len; whether it is usable:
 * absent or null (optional) passes, a string passes (non-empty when
 * required), anything else fails. */
static bool mock_json_str(const sr_json *obj, const char *name, bool required, const char **s, size_t *len) {
    const sr_json *v = sr_json_get(obj, name);
    if (!v || v->type == SR_JSON_NULL) return !required;
    if (v->type != SR_JSON_STRING) return false;
    if (required && v->len == 0) return false;
    *s = v->str;
    *len = v->len;
    return true;
}

/* A client id member (string or number, as written) into m. */
static bool mock_json_client_id(const sr_json *obj, const char *name, mock_msg *m) {
    const sr_json *v = name ? sr_json_get(obj, name) : NULL;
    if (!v || v->type == SR_JSON_NULL) return true;
    if (v->type != SR_JSON_STRING && v->type != SR_JSON_NUMBER) return false;
    m->client_id = v->str;
    m->client_id_len = v->len;
    m->id_json = v;
    return true;
}

static void mock_msg_problem(mock_msg *m, const char *field, bool missing) {
    m->problem = missing ? "missing" : "invalid";
    m->problem_field = field;
    m->problem_missing = missing;
}

/* Fills m from a JSON message object with the dialect's field names
 * (from_name and id_name may be NULL). */
static void mock_msg_from_object(mock_msg *m, const sr_json *obj, const char *to_name, const char *text_name,
                                 const char *from_name, const char *id_name) {
    if (!obj || obj->type != SR_JSON_OBJECT) {
        m->problem = "a message must be an object";
        return;
    }
    if (!mock_json_str(obj, to_name, true, &m->to, &m->to_len)) {
        const sr_json *v = sr_json_get(obj, to_name);
        mock_msg_problem(m, to_name, !v || v->type == SR_JSON_NULL);
        m->to = NULL;
        return;
    }
    if (!mock_json_str(obj, text_name, false, &m->text, &m->text_len) || !m->text) {
        const sr_json *v = sr_json_get(obj, text_name);
        mock_msg_problem(m, text_name, !v || v->type == SR_JSON_NULL);
        return;
    }
    if (from_name && !mock_json_str(obj, from_name, false, &m->from, &m->from_len)) {
        mock_msg_problem(m, from_name, false);
        return;
    }
    if (!mock_json_client_id(obj, id_name, m)) mock_msg_problem(m, id_name, false);
}

/* The recipient of a message, or NULL when it is not a usable message. */
static const sr_json *mock_message_to(const sr_json *msg) {
    if (!msg || msg->type != SR_JSON_OBJECT) return NULL;
    const sr_json *to = sr_json_get(msg, "to");
    return to && to->type == SR_JSON_STRING && to->len > 0 ? to : NULL;
}

/* Why a message of the mock dialect is unusable, or NULL when it is fine. */
static const char *mock_message_problem(const sr_json *msg) {
    if (!msg || msg->type != SR_JSON_OBJECT) return "invalid request: a message must be an object";
    if (!mock_message_to(msg)) return "invalid request: \"to\" must be a non-empty string";
    const sr_json *text = sr_json_get(msg, "message");
    if (!text || text->type != SR_JSON_STRING) return "invalid request: \"message\" must be a string";
    const sr_json *from = sr_json_get(msg, "from");
    if (from && from->type != SR_JSON_STRING && from->type != SR_JSON_NULL)
        return "invalid request: \"from\" must be a string";
    const sr_json *id = sr_json_get(msg, "id");
    if (id && id->type != SR_JSON_STRING && id->type != SR_JSON_NUMBER && id->type != SR_JSON_NULL)
        return "invalid request: \"id\" must be a string";
    return NULL;
}

/* A message of the mock (and generic) JSON shape. */
static void mock_msg_mock(mock_msg *m, const sr_json *obj, bool with_id) {
    m->problem = mock_message_problem(obj);
    if (m->problem) return;
    mock_json_str(obj, "to", true, &m->to, &m->to_len);
    mock_json_str(obj, "message", false, &m->text, &m->text_len);
    mock_json_str(obj, "from", false, &m->from, &m->from_len);
    if (with_id) mock_json_client_id(obj, "id", m);
}

/* Parses a JSON body into ctx->doc. NULL, or the problem (in ctx->bad). */
static const char *mock_parse_json(mock_send_ctx *ctx, const sr_http_request *req) {
    char err[160];
    if (sr_json_parse(&ctx->doc, req->body, req->body_len, err, sizeof err) != 0) {
        snprintf(ctx->bad, sizeof ctx->bad, "invalid JSON: %s", err);
        return ctx->bad;
    }
    return NULL;
}

/* The "messages" array of a batch body, or NULL with the problem in *bad. */
static const sr_json *mock_batch_list(mock_send_ctx *ctx, const char **bad) {
    const sr_json *root = ctx->doc.root;
    if (root->type != SR_JSON_OBJECT) {
        *bad = "the body must be a JSON object";
        return NULL;
    }
    const sr_json *list = sr_json_get(root, "messages");
    if (!list || list->type == SR_JSON_NULL) {
        *bad = "Missing required field: 'messages'";
        return NULL;
    }
    if (list->type != SR_JSON_ARRAY || list->count == 0 || list->count > MOCK_MAX_BATCH) {
        *bad = "'messages' must be an array of 1 to 10000 messages";
        return NULL;
    }
    return list;
}

static const char *mock_parse_mock(mock_send_ctx *ctx, const sr_http_request *req) {
    const char *bad = mock_parse_json(ctx, req);
    if (bad) return bad;
    const sr_json *root = ctx->doc.root;
    if (root->type != SR_JSON_OBJECT) return "invalid request: the body must be a JSON object";
    const sr_json *list = sr_json_get(root, "messages");
    if (list) {
        if (list->type != SR_JSON_ARRAY || list->count == 0 || list->count > MOCK_MAX_BATCH)
            return "invalid request: \"messages\" must be an array of 1 to 10000 messages";
        ctx->batch = true;
        mock_ctx_alloc(ctx, list->count);
        size_t i = 0;
        for (const sr_json *m = list->child; m; m = m->next) mock_msg_mock(&ctx->msgs[i++], m, true);
        return NULL;
    }
    mock_ctx_alloc(ctx, 1);
    mock_msg_mock(&ctx->msgs[0], root, true);
    return NULL;
}

static const char *mock_parse_generic(mock_send_ctx *ctx, const sr_http_request *req) {
    const char *bad = mock_parse_json(ctx, req);
    if (bad) return bad;
    const sr_json *root = ctx->doc.root;
    if (root->type != SR_JSON_OBJECT) return "invalid request: the body must be a JSON object";
    if (sr_json_get(root, "messages")) return "invalid request: one message per request (no \"messages\" batch)";
    mock_ctx_alloc(ctx, 1);
    mock_msg *m = &ctx->msgs[0];
    mock_msg_mock(m, root, false);
    size_t len;
    const char *key = sr_http_header_get(req, "idempotency-key", &len);
    if (key && len) {
        m->client_id = key;
        m->client_id_len = len;
    }
    return NULL;
}

/* SMSBat and Devino: {"messages":[...]}. */
static const char *mock_parse_list(mock_send_ctx *ctx, const sr_http_request *req, const char *id_name) {
    const char *bad = mock_parse_json(ctx, req);
    if (bad) return bad;
    const sr_json *list = mock_batch_list(ctx, &bad);
    if (!list) return bad;
    mock_ctx_alloc(ctx, list->count);
    size_t i = 0;
    for (const sr_json *m = list->child; m; m = m->next)
        mock_msg_from_object(&ctx->msgs[i++], m, "to", "text", "from", id_name);
    return NULL;
}

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
            else mock_msg_problem(m, "destinations", !dests || dests->type == SR_JSON_NULL);
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

/* An SMSC client id: 1..40 letters, digits and ".-_". */
static bool mock_smsc_id_ok(const char *id, size_t len) {
    if (len == 0 || len > MOCK_SMSC_ID_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

/* SMSC: a form (body or query); one message per phone of "phones". */
static const char *mock_parse_smsc(mock_send_ctx *ctx, const sr_http_request *req, mock_fields *f) {
    mock_fields_load(f, mock_smsc_send_fields, req, NULL);
    size_t phones_len, mes_len, sender_len, id_len;
    const char *phones = mock_field(f, SMSC_PHONES, &phones_len);
    const char *mes = mock_field(f, SMSC_MES, &mes_len);
    const char *sender = mock_field(f, SMSC_SENDER, &sender_len);
    const char *id = mock_field(f, SMSC_ID, &id_len);
    if (!phones || !phones_len) return "phones is missing";
    if (!mes) return "mes is missing";
    if (id && !mock_smsc_id_ok(id, id_len)) return "id must be 1 to 40 letters, digits or .-_";
    size_t count = 1;
    for (size_t i = 0; i < phones_len; i++) count += phones[i] == ',' || phones[i] == ';';
    if (count > MOCK_MAX_BATCH) return "too many phones";
    mock_ctx_alloc(ctx, count);
    size_t n = 0;
    for (size_t start = 0; start <= phones_len;) {
        size_t end = start;
        while (end < phones_len && phones[end] != ',' && phones[end] != ';') end++;
        size_t a = start, b = end;
        while (a < b && phones[a] == ' ') a++;
        while (b > a && phones[b - 1] == ' ') b--;
        if (b > a) {
            mock_msg *m = &ctx->msgs[n++];
            m->to = phones + a;
            m->to_len = b - a;
            m->text = mes;
            m->text_len = mes_len;
            if (sender && sender_len) {
                m->from = sender;
                m->from_len = sender_len;
            }
            if (id) {
                m->client_id = id;
                m->client_id_len = id_len;
            }
        }
        start = end + 1;
    }
    ctx->count = n;
    if (n == 0) return "phones is empty";
    return NULL;
}

static const char *mock_parse_twilio(mock_send_ctx *ctx, const sr_http_request *req, mock_fields *f) {
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

static const char *mock_parse_vonage(mock_send_ctx *ctx, const sr_http_request *req, mock_fields *f) {
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

/* Parses a send request in ctx's dialect into ctx->msgs (and ctx->fields,
 * for the form dialects). NULL, or a problem with the whole request. */
static const char *mock_parse_send(mock_send_ctx *ctx, const sr_http_request *req) {
    mock_fields *f = &ctx->fields;
    switch (ctx->dialect) {
    case MOCK_DIALECT_GENERIC: return mock_parse_generic(ctx, req);
    case MOCK_DIALECT_SMSBAT: return mock_parse_list(ctx, req, "customerMessageId");
    case MOCK_DIALECT_DEVINO: return mock_parse_list(ctx, req, NULL);
    case MOCK_DIALECT_AGILETELECOM: return mock_parse_agiletelecom(ctx, req);
    case MOCK_DIALECT_SMSC: return mock_parse_smsc(ctx, req, f);
    case MOCK_DIALECT_TWILIO: return mock_parse_twilio(ctx, req, f);
    case MOCK_DIALECT_VONAGE: return mock_parse_vonage(ctx, req, f);
    default: return mock_parse_mock(ctx, req);
    }
}

/* ---- send requests: deciding ---- */

/* Decides the request-level outcome (recipient patterns first, then the
 * draw, which is stored in *draw). */
static mock_outcome mock_request_outcome(mock_provider *mp, const mock_send_ctx *ctx, double *draw) {
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        if (m->problem || !m->to) continue;
        mock_outcome p = mock_pattern(m->to, m->to_len);
        if (p == MOCK_UNAUTHORIZED || p == MOCK_UNAVAILABLE || p == MOCK_RATE_LIMITED || p == MOCK_TIMEOUT) return p;
    }
    double band_5xx = mp->set.fail_5xx_pct, band_429 = band_5xx + mp->set.fail_429_pct;
    *draw = mock_rand_pct(mp);
    if (*draw < band_5xx) return MOCK_UNAVAILABLE;
    if (*draw < band_429) return MOCK_RATE_LIMITED;
    if (*draw < band_429 + mp->set.timeout_pct) return MOCK_TIMEOUT;
    return MOCK_OK;
}

/* The key under which a client id is remembered: the id; SMSC's ids
 * name a message together with its phone. */
static void mock_seen_key(const mock_send_ctx *ctx, const mock_msg *m, sr_buf *key) {
    sr_buf_append(key, m->client_id, m->client_id_len);
    if (ctx->dialect == MOCK_DIALECT_SMSC) {
        sr_buf_putc(key, ':');
        mock_put_digits(key, m->to, m->to_len);
    }
}

/* The key of a polled status: the provider id; for SMSC "id:phone digits",
 * as its status requests name messages. */
static void mock_status_key(const mock_send_ctx *ctx, const mock_msg *m, sr_buf *key) {
    sr_buf_puts(key, m->provider_id);
    if (ctx->dialect == MOCK_DIALECT_SMSC) {
        sr_buf_putc(key, ':');
        mock_put_digits(key, m->to, m->to_len);
    }
}

/* Decides one message of a request that passed the request-level draws.
 * draw is this message's number in [0, 100) (already past the
 * request-level bands). Appends a report to dlrs when reports are on, and
 * the status key to stamps for polled dialects. */
static void mock_decide(mock_send_ctx *ctx, const sr_http_request *req, mock_msg *m, double draw,
                        mock_dlr_list *dlrs, sr_buf *stamps) {
    mock_provider *mp = ctx->mp;
    mock_dialect dialect = ctx->dialect;
    if (m->problem) {
        mp->stats.bad_requests++;
        m->result = MOCK_RESULT_INVALID;
        return;
    }
    m->parts = mock_parts(m->text, m->text_len);
    sr_buf seen_key;
    sr_buf_init(&seen_key);
    if (m->client_id) {
        mock_seen_key(ctx, m, &seen_key);
        mock_slot *seen = mock_recall(&mp->seen, &mp->seen_old, seen_key.data, seen_key.len);
        if (seen) {
            mp->stats.duplicates++;
            snprintf(m->provider_id, sizeof m->provider_id, "%s", mock_slot_value(seen));
            m->result = MOCK_RESULT_DUPLICATE;
            sr_buf_free(&seen_key);
            return;
        }
    }
    mock_outcome pattern = mock_pattern(m->to, m->to_len);
    double request_band = mp->set.fail_5xx_pct + mp->set.fail_429_pct + mp->set.timeout_pct;
    if (pattern == MOCK_REJECT || (pattern == MOCK_OK && draw < request_band + mp->set.reject_pct)) {
        mp->stats.rejected++;
        m->result = MOCK_RESULT_REJECTED;
        sr_buf_free(&seen_key);
        return;
    }

    if (dialect == MOCK_DIALECT_SMSC) {
        /* SMSC answers with the client's id; without one, the request gets one id. */
        if (m->client_id) {
            snprintf(m->provider_id, sizeof m->provider_id, "%.*s", (int)m->client_id_len, m->client_id);
        } else {
            if (!ctx->request_id[0]) mock_new_id(mp, dialect, ctx->request_id);
            snprintf(m->provider_id, sizeof m->provider_id, "%s", ctx->request_id);
        }
    } else {
        mock_new_id(mp, dialect, m->provider_id);
    }
    m->result = MOCK_RESULT_ACCEPTED;
    mp->stats.received++;
    mock_map_upsert(&mp->recipients, m->to, m->to_len, mock_hash(m->to, m->to_len), NULL)->count++;
    mock_rate_add(&mp->rate, req->start_ns / 1000000);
    mock_rate_add(&mp->calls, req->start_ns / 1000000);
    if (m->client_id) mock_remember(mp, &mp->seen, &mp->seen_old, seen_key.data, seen_key.len, m->provider_id);
    sr_buf_free(&seen_key);

    bool report = mp->set.dlr_url && mock_dialect_pushes(dialect);
    bool polled = mock_dialect_polled(dialect);
    bool undelivered = false;
    if (report || polled) {
        undelivered = pattern == MOCK_UNDELIVERED;
        if (!undelivered && mp->set.dlr_undelivered_pct > 0)
            undelivered = mock_rand_pct(mp) < mp->set.dlr_undelivered_pct;
    }
    if (polled) {
        sr_buf key;
        sr_buf_init(&key);
        mock_status_key(ctx, m, &key);
        char list_id[24] = "";
        if (dialect == MOCK_DIALECT_SMSBAT) snprintf(list_id, sizeof list_id, "%" PRIu64, ctx->list_id);
        mock_slot *s = mock_remember(mp, &mp->statuses, &mp->statuses_old, key.data, key.len, list_id);
        s->count = (uint64_t)m->parts << 1 | (undelivered ? 1u : 0u);
        sr_buf_append(stamps, key.data, key.len);
        sr_buf_putc(stamps, '\0');
        sr_buf_free(&key);
    }
    if (report) {
        bool vonage = dialect == MOCK_DIALECT_VONAGE;
        /* Formats with part numbers (mock, generic, Agile Telecom) get one
         * report per part of a multipart message, as SMSCs send them. */
        bool per_part = dialect == MOCK_DIALECT_MOCK || dialect == MOCK_DIALECT_GENERIC ||
                        dialect == MOCK_DIALECT_AGILETELECOM;
        unsigned reports = per_part && m->parts > 1 ? m->parts : 1;
        for (unsigned part = 1; part <= reports; part++) {
            mock_dlr *d = mock_dlr_new(mp, dialect, m->provider_id, m->to, m->to_len, m->from, m->from_len,
                                       vonage ? m->client_id : NULL, vonage ? m->client_id_len : 0,
                                       dialect == MOCK_DIALECT_TWILIO ? ctx->account : NULL, undelivered);
            if (reports > 1) {
                d->part = part;
                d->parts = reports;
            }
            *dlrs->tail = d;
            dlrs->tail = &d->next_deferred;
        }
    }
}

/* ---- send requests: answering ---- */

/* "missing 'to'" / "invalid 'to'", or the problem as it is. */
static void mock_put_problem(sr_buf *out, const mock_msg *m) {
    char text[160];
    if (m->problem_field)
        snprintf(text, sizeof text, "%s '%s'", m->problem_missing ? "missing" : "invalid", m->problem_field);
    else
        snprintf(text, sizeof text, "%s", m->problem);
    sr_buf_json_str(out, text, strlen(text));
}

/* A JSON string member: ,"name":"value" (or null when value is NULL). */
static void mock_put_str(sr_buf *out, const char *name, const char *value, size_t len) {
    sr_buf_printf(out, ",\"%s\":", name);
    if (value) sr_buf_json_str(out, value, len);
    else sr_buf_puts(out, "null");
}

/* An id as SMSC writes it: a JSON number when it is digits, else a string. */
static void mock_put_smsc_id(sr_buf *out, const char *id, size_t len) {
    if (mock_all_digits(id, len) && len < 16 && id[0] != '0') sr_buf_append(out, id, len);
    else sr_buf_json_str(out, id, len);
}

/* A request-level failure in the dialect's words; returns the HTTP status
 * and sets extra (header lines, "" when none). detail: the problem of a bad
 * request. */
static int mock_write_failure(const mock_provider *mp, mock_dialect dialect, mock_failure f, const char *detail,
                              sr_buf *out, char *extra, size_t extra_len) {
    static const int http[] = {401, 503, 429, 400};
    int status = http[f];
    switch (dialect) {
    case MOCK_DIALECT_SMSBAT: {
        static const char *const reason[] = {"Unauthorized", "Service Unavailable", "Too Many Requests", "Bad Request"};
        static const char *const text[] = {"invalid credentials", "service temporarily unavailable",
                                           "rate limit exceeded, retry later", "bad request"};
        sr_buf_printf(out, "{\"status\":%d,\"error\":\"%s\"", status, reason[f]);
        const char *message = detail ? detail : text[f];
        mock_put_str(out, "message", message, strlen(message));
        sr_buf_putc(out, '}');
        break;
    }
    case MOCK_DIALECT_DEVINO: {
        static const char *const key[] = {"forbidden", NULL, "too.many.messages", "invalid"};
        static const char *const text[] = {"invalid api key", "service temporarily unavailable", "too many requests",
                                           "bad request"};
        sr_buf_putc(out, '{');
        if (key[f]) sr_buf_printf(out, "\"reasons\":[{\"key\":\"%s\",\"ref\":\"messages\"}],", key[f]);
        sr_buf_puts(out, "\"description\":");
        const char *message = detail ? detail : text[f];
        sr_buf_json_str(out, message, strlen(message));
        sr_buf_putc(out, '}');
        break;
    }
    case MOCK_DIALECT_AGILETELECOM: {
        static const char *const text[] = {"invalid credentials", "service temporarily unavailable",
                                           "too many requests", "bad request"};
        const char *message = detail ? detail : text[f];
        sr_buf_printf(out, "{\"accepted\":false,\"statusCode\":%d", status);
        mock_put_str(out, "description", message, strlen(message));
        sr_buf_putc(out, '}');
        break;
    }
    case MOCK_DIALECT_SMSC:
        /* SMSC answers its own errors with HTTP 200; a 503 comes from its front. */
        if (f == MOCK_FAIL_UNAVAILABLE) {
            sr_buf_puts(out, "{\"error\":\"service temporarily unavailable\"}");
            break;
        }
        status = 200;
        if (f == MOCK_FAIL_UNAUTHORIZED) sr_buf_puts(out, "{\"error\":\"authorise error\",\"error_code\":2}");
        else if (f == MOCK_FAIL_RATE_LIMITED)
            sr_buf_puts(out, "{\"error\":\"duplicate request, wait a minute\",\"error_code\":9}");
        else sr_buf_puts(out, "{\"error\":\"parameters error\",\"error_code\":1}");
        break;
    case MOCK_DIALECT_TWILIO: {
        static const int code[] = {20003, 20503, 20429, 0};
        static const char *const text[] = {"Authenticate", "Service Unavailable", "Too Many Requests", NULL};
        if (code[f]) {
            sr_buf_printf(out,
                          "{\"code\":%d,\"message\":\"%s\",\"more_info\":\"https://www.twilio.com/docs/errors/%d\","
                          "\"status\":%d}",
                          code[f], text[f], code[f], status);
        } else {
            sr_buf_puts(out, "{\"message\":");
            sr_buf_json_str(out, detail, strlen(detail));
            sr_buf_printf(out, ",\"status\":%d}", status);
        }
        break;
    }
    case MOCK_DIALECT_VONAGE: {
        /* Vonage's SMS API answers 200 with a status per message. */
        static const char *const code[] = {"4", "5", "1", "3"};
        static const char *const text[] = {"Bad Credentials", "Internal Error",
                                           "Throughput Rate Exceeded - please wait [ 1000 ] and retry", NULL};
        status = 200;
        sr_buf_printf(out, "{\"message-count\":\"1\",\"messages\":[{\"status\":\"%s\"", code[f]);
        const char *message = text[f] ? text[f] : detail;
        mock_put_str(out, "error-text", message, strlen(message));
        sr_buf_puts(out, "}]}");
        break;
    }
    default: {
        static const char *const text[] = {"unauthorized", "unavailable", "rate limited", NULL};
        const char *message = text[f] ? text[f] : detail;
        sr_buf_puts(out, "{\"error\":");
        sr_buf_json_str(out, message, strlen(message));
        sr_buf_putc(out, '}');
        break;
    }
    }
    extra[0] = '\0';
    if (status == 429) snprintf(extra, extra_len, "Retry-After: %" PRIu64 "\r\n", mp->set.retry_after_s);
    return status;
}

/* The mock dialect's result object of one message; returns the status a
 * single send gets. */
static int mock_write_mock_result(const mock_msg *m, bool batch, sr_buf *out) {
    switch (m->result) {
    case MOCK_RESULT_INVALID:
        sr_buf_puts(out, batch ? "{\"status\":\"rejected\",\"error\":" : "{\"error\":");
        sr_buf_json_str(out, m->problem, strlen(m->problem));
        sr_buf_putc(out, '}');
        return 400;
    case MOCK_RESULT_REJECTED:
        sr_buf_puts(out, batch ? "{\"status\":\"rejected\",\"error\":\"invalid number\""
                               : "{\"error\":\"invalid number\"");
        if (batch && m->id_json) {
            sr_buf_puts(out, ",\"id\":");
            sr_json_write(out, m->id_json);
        }
        sr_buf_putc(out, '}');
        return 400;
    default:
        sr_buf_puts(out, "{\"message_id\":");
        sr_buf_json_str(out, m->provider_id, strlen(m->provider_id));
        sr_buf_puts(out, ",\"status\":\"accepted\"");
        if (m->result == MOCK_RESULT_DUPLICATE) sr_buf_puts(out, ",\"duplicate\":true");
        if (m->id_json) {
            sr_buf_puts(out, ",\"id\":");
            sr_json_write(out, m->id_json); /* as the client wrote it */
        }
        sr_buf_putc(out, '}');
        return 200;
    }
}

static int mock_write_mock(const mock_send_ctx *ctx, sr_buf *out) {
    if (!ctx->batch) return mock_write_mock_result(&ctx->msgs[0], false, out);
    sr_buf_puts(out, "{\"results\":[");
    for (size_t i = 0; i < ctx->count; i++) {
        if (i) sr_buf_putc(out, ',');
        mock_write_mock_result(&ctx->msgs[i], true, out);
    }
    sr_buf_puts(out, "]}");
    return 200;
}

static int mock_write_generic(const mock_send_ctx *ctx, sr_buf *out) {
    const mock_msg *m = &ctx->msgs[0];
    if (m->result == MOCK_RESULT_INVALID || m->result == MOCK_RESULT_REJECTED) {
        sr_buf_puts(out, "{\"error\":");
        const char *text = m->result == MOCK_RESULT_INVALID ? m->problem : "invalid number";
        sr_buf_json_str(out, text, strlen(text));
        sr_buf_putc(out, '}');
        return 400;
    }
    sr_buf_puts(out, "{\"message_id\":");
    sr_buf_json_str(out, m->provider_id, strlen(m->provider_id));
    sr_buf_puts(out, ",\"status\":\"accepted\"}");
    return 200;
}

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

static int mock_write_agiletelecom(const mock_send_ctx *ctx, sr_buf *out) {
    bool any = false;
    for (size_t i = 0; i < ctx->count; i++)
        any = any || ctx->msgs[i].result == MOCK_RESULT_ACCEPTED || ctx->msgs[i].result == MOCK_RESULT_DUPLICATE;
    sr_buf_puts(out, "{\"globalId\":");
    if (ctx->global_id) sr_json_write(out, ctx->global_id);
    else sr_buf_printf(out, "\"g%" PRIx64 "-%" PRIu64 "\"", ctx->mp->start_ms, ctx->list_id);
    sr_buf_printf(out, ",\"accepted\":%s,\"results\":[", any ? "true" : "false");
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        if (i) sr_buf_putc(out, ',');
        sr_buf_puts(out, "{\"destination\":");
        if (m->to) sr_buf_json_str(out, m->to, m->to_len);
        else sr_buf_puts(out, "null");
        if (m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE) {
            mock_put_str(out, "id", m->provider_id, strlen(m->provider_id));
            sr_buf_puts(out, ",\"accepted\":true,\"statusCode\":200}");
            continue;
        }
        sr_buf_puts(out, ",\"id\":null,\"accepted\":false,\"statusCode\":400,\"description\":");
        if (m->result == MOCK_RESULT_INVALID) mock_put_problem(out, m);
        else sr_buf_puts(out, "\"invalid destination\"");
        sr_buf_putc(out, '}');
    }
    sr_buf_puts(out, "]}");
    return 200;
}

static int mock_write_smsc(const mock_send_ctx *ctx, sr_buf *out) {
    const mock_msg *taken = NULL;
    bool invalid = false;
    unsigned parts = 0;
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        if (m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE) {
            if (!taken) taken = m;
            parts += m->parts;
        }
        invalid = invalid || m->result == MOCK_RESULT_INVALID;
    }
    if (taken) {
        sr_buf_puts(out, "{\"id\":");
        mock_put_smsc_id(out, taken->provider_id, strlen(taken->provider_id));
        sr_buf_printf(out, ",\"cnt\":%u}", parts);
    } else if (invalid) {
        sr_buf_puts(out, "{\"error\":\"parameters error\",\"error_code\":1}");
    } else {
        sr_buf_puts(out, "{\"error\":\"invalid phone number\",\"error_code\":7}");
    }
    return 200;
}

static int mock_write_twilio(const mock_send_ctx *ctx, sr_buf *out) {
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

static int mock_write_vonage(const mock_send_ctx *ctx, sr_buf *out) {
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

/* The answer to a decided request; returns its HTTP status. */
static int mock_write_answer(const mock_send_ctx *ctx, sr_buf *out) {
    switch (ctx->dialect) {
    case MOCK_DIALECT_GENERIC: return mock_write_generic(ctx, out);
    case MOCK_DIALECT_SMSBAT: return mock_write_smsbat(ctx, out);
    case MOCK_DIALECT_DEVINO: return mock_write_devino(ctx, out);
    case MOCK_DIALECT_AGILETELECOM: return mock_write_agiletelecom(ctx, out);
    case MOCK_DIALECT_SMSC: return mock_write_smsc(ctx, out);
    case MOCK_DIALECT_TWILIO: return mock_write_twilio(ctx, out);
    case MOCK_DIALECT_VONAGE: return mock_write_vonage(ctx, out);
    default: return mock_write_mock(ctx, out);
    }
}

/* Answers a send with a request-level failure (after the latency), counted. */
static void mock_send_fail(mock_provider *mp, mock_dialect dialect, sr_http_request *req, mock_failure f,
                           const char *detail) {
    switch (f) {
    case MOCK_FAIL_UNAUTHORIZED: mp->stats.unauthorized++; break;
    case MOCK_FAIL_UNAVAILABLE: mp->stats.failed_5xx++; break;
    case MOCK_FAIL_RATE_LIMITED: mp->stats.failed_429++; break;
    case MOCK_FAIL_BAD_REQUEST: mp->stats.bad_requests++; break;
    }
    sr_buf out;
    sr_buf_init(&out);
    char extra[64];
    int status = mock_write_failure(mp, dialect, f, detail, &out, extra, sizeof extra);
    mock_finish_send(mp, req, status, &out, extra[0] ? extra : NULL, NULL, NULL);
    sr_buf_free(&out);
}

/* A send request in the current dialect. account: Twilio's AccountSid from
 * the path (else NULL). */
static void mock_send(mock_provider *mp, sr_http_request *req, const char *account) {
    mp->stats.requests++;
    if (++mp->in_flight > mp->stats.max_in_flight) mp->stats.max_in_flight = mp->in_flight;
    if (mp->stopping) {
        static const char body[] = "{\"error\":\"unavailable\"}";
        mock_respond_send(mp, req, 503, body, sizeof body - 1, NULL);
        return;
    }
    if (mp->set.down) {
        mp->stats.down_dropped++;
        mock_hold(mp, req, MOCK_HOLD_DOWN);
        return;
    }
    mock_send_ctx ctx;
    mock_ctx_init(&ctx, mp, account);
    mock_dialect dialect = ctx.dialect;
    sr_buf out, stamps;
    sr_buf_init(&out);
    sr_buf_init(&stamps);
    if (!mock_header_auth_ok(mp, dialect, req, ctx.account)) {
        mock_send_fail(mp, dialect, req, MOCK_FAIL_UNAUTHORIZED, NULL);
        goto done;
    }
    const char *bad = mock_parse_send(&ctx, req);
    if (bad) {
        mock_send_fail(mp, dialect, req, MOCK_FAIL_BAD_REQUEST, bad);
        goto done;
    }
    if (!mock_body_auth_ok(mp, dialect, &ctx.fields)) {
        mock_send_fail(mp, dialect, req, MOCK_FAIL_UNAUTHORIZED, NULL);
        goto done;
    }
    if (dialect == MOCK_DIALECT_TWILIO) snprintf(mp->twilio_account, sizeof mp->twilio_account, "%s", ctx.account);
    double draw = 0;
    switch (mock_request_outcome(mp, &ctx, &draw)) {
    case MOCK_UNAUTHORIZED: mock_send_fail(mp, dialect, req, MOCK_FAIL_UNAUTHORIZED, NULL); goto done;
    case MOCK_UNAVAILABLE: mock_send_fail(mp, dialect, req, MOCK_FAIL_UNAVAILABLE, NULL); goto done;
    case MOCK_RATE_LIMITED: mock_send_fail(mp, dialect, req, MOCK_FAIL_RATE_LIMITED, NULL); goto done;
    case MOCK_TIMEOUT:
        mp->stats.timeouts++;
        mock_hold(mp, req, MOCK_HOLD_TIMEOUT);
        goto done;
    default: break;
    }
    if (dialect == MOCK_DIALECT_SMSBAT || dialect == MOCK_DIALECT_AGILETELECOM) ctx.list_id = ++mp->next_list_id;

    /* Message-level outcomes. The first message reuses the request's draw;
     * later ones draw past the request-level bands, so --reject stays the
     * share of all messages. */
    double request_band = mp->set.fail_5xx_pct + mp->set.fail_429_pct + mp->set.timeout_pct;
    mock_dlr_list dlrs = {NULL, &dlrs.head};
    for (size_t i = 0; i < ctx.count; i++) {
        if (i > 0) draw = request_band + mock_rand_pct(mp) * (100 - request_band) / 100;
        mock_decide(&ctx, req, &ctx.msgs[i], draw, &dlrs, &stamps);
    }
    int status = mock_write_answer(&ctx, &out);
    mock_finish_send(mp, req, status, &out, NULL, dlrs.head, &stamps);
done:
    mock_ctx_free(&ctx);
    sr_buf_free(&out);
    sr_buf_free(&stamps);
}

/* ---- status polling (smsbat, devino, smsc) ---- */

typedef enum { MOCK_STATE_PENDING, MOCK_STATE_DELIVERED, MOCK_STATE_UNDELIVERED } mock_state;

/* What a polled status says now: in progress until dlr_delay_ms after the
 * send answer, then final. *at_ms: the wall-clock time of that state. */
static mock_state mock_status_state(const mock_provider *mp, const mock_slot *s, uint64_t *at_ms) {
    uint64_t answered = s->count >> 8, now = mock_mono_ms(), wall = mock_wall_ms();
    if (!answered) {
        *at_ms = wall;
        return MOCK_STATE_PENDING;
    }
    uint64_t elapsed = now > answered ? now - answered : 0;
    uint64_t answered_wall = wall > elapsed ? wall - elapsed : wall;
    if (elapsed < mp->set.dlr_delay_ms) {
        *at_ms = answered_wall;
        return MOCK_STATE_PENDING;
    }
    *at_ms = answered_wall + mp->set.dlr_delay_ms;
    return (s->count & 1) ? MOCK_STATE_UNDELIVERED : MOCK_STATE_DELIVERED;
}

/* A poll refused for its credentials, in the dialect's words. */
static void mock_poll_unauthorized(mock_provider *mp, mock_dialect dialect, sr_http_request *req) {
    sr_buf out;
    sr_buf_init(&out);
    char extra[64];
    int status = mock_write_failure(mp, dialect, MOCK_FAIL_UNAUTHORIZED, NULL, &out, extra, sizeof extra);
    sr_http_respond(req, status, "application/json", out.data, out.len, NULL);
    sr_buf_free(&out);
}

/* SMSBat: GET /bat/message/{messageId}. */
static void mock_poll_smsbat(mock_provider *mp, sr_http_request *req, const char *escaped_id) {
    if (!mock_header_auth_ok(mp, MOCK_DIALECT_SMSBAT, req, NULL)) {
        mock_poll_unauthorized(mp, MOCK_DIALECT_SMSBAT, req);
        return;
    }
    sr_buf id;
    sr_buf_init(&id);
    sr_form_unescape_buf(&id, escaped_id, strlen(escaped_id));
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

/* Devino: POST /sms-stat/statuses/get-by-ids with a JSON array of ids
 * (numbers or strings); unknown ids are left out of the answer. */
static void mock_poll_devino(mock_provider *mp, sr_http_request *req) {
    if (!mock_header_auth_ok(mp, MOCK_DIALECT_DEVINO, req, NULL)) {
        mock_poll_unauthorized(mp, MOCK_DIALECT_DEVINO, req);
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

/* The next item of a comma-separated list at *at (advanced past it).
 * false at the end; a trailing comma ends the list. */
static bool mock_list_next(const char *list, size_t len, size_t *at, const char **item, size_t *item_len) {
    if (*at >= len) return false;
    size_t end = *at;
    while (end < len && list[end] != ',') end++;
    *item = list + *at;
    *item_len = end - *at;
    *at = end + 1;
    return true;
}

/* SMSC: GET|POST /sys/status.php with id and phone (comma-separated lists
 * in the same order; a comma anywhere asks for the list answer). */
static void mock_poll_smsc(mock_provider *mp, sr_http_request *req) {
    mock_fields f;
    mock_fields_init(&f);
    mock_fields_load(&f, mock_smsc_status_fields, req, NULL);
    sr_buf out;
    sr_buf_init(&out);
    if (!mock_body_auth_ok(mp, MOCK_DIALECT_SMSC, &f)) {
        mock_poll_unauthorized(mp, MOCK_DIALECT_SMSC, req);
        goto done;
    }
    size_t ids_len, phones_len;
    const char *ids = mock_field(&f, SMSC_STATUS_ID, &ids_len);
    const char *phones = mock_field(&f, SMSC_STATUS_PHONE, &phones_len);
    size_t id_count = 0, phone_count = 0, at = 0;
    const char *item;
    size_t item_len;
    if (ids)
        while (mock_list_next(ids, ids_len, &at, &item, &item_len)) id_count++;
    at = 0;
    if (phones)
        while (mock_list_next(phones, phones_len, &at, &item, &item_len)) phone_count++;
    if (!ids || !phones || id_count == 0 || id_count != phone_count) {
        sr_buf_puts(&out, "{\"error\":\"parameters error\",\"error_code\":1}");
        sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
        goto done;
    }
    bool list = memchr(ids, ',', ids_len) != NULL;
    if (list) sr_buf_putc(&out, '[');
    size_t id_at = 0, phone_at = 0;
    const char *id = NULL, *phone = NULL;
    size_t id_len = 0, phone_len = 0;
    sr_buf key;
    sr_buf_init(&key);
    for (size_t i = 0; i < id_count; i++) {
        mock_list_next(ids, ids_len, &id_at, &id, &id_len);
        mock_list_next(phones, phones_len, &phone_at, &phone, &phone_len);
        sr_buf_reset(&key);
        sr_buf_append(&key, id, id_len);
        sr_buf_putc(&key, ':');
        mock_put_digits(&key, phone, phone_len);
        const mock_slot *s = mock_recall(&mp->statuses, &mp->statuses_old, key.data, key.len);
        if (i) sr_buf_putc(&out, ',');
        if (!s) {
            sr_buf_puts(&out, "{\"status\":-3,\"err\":0");
        } else {
            uint64_t at_ms;
            static const int codes[] = {0, 1, 20};
            mock_state state = mock_status_state(mp, s, &at_ms);
            char when[32];
            mock_format_time(at_ms, "%d.%m.%Y %H:%M:%S", when, sizeof when);
            sr_buf_printf(&out, "{\"status\":%d,\"last_date\":\"%s\",\"last_timestamp\":%" PRIu64 ",\"err\":0",
                          codes[state], when, at_ms / 1000);
        }
        if (list) {
            sr_buf_puts(&out, ",\"id\":");
            mock_put_smsc_id(&out, id, id_len);
            mock_put_str(&out, "phone", phone, phone_len);
        }
        sr_buf_putc(&out, '}');
    }
    sr_buf_free(&key);
    if (list) sr_buf_putc(&out, ']');
    sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
done:
    sr_buf_free(&out);
    mock_fields_free(&f);
}

/* ---- POST /control/inbound ---- */

/* An inbound post in flight: the control request waits for its answer. */
typedef struct mock_inbound_post {
    mock_provider *mp;
    sr_http_request *req; /* borrowed until answered */
} mock_inbound_post;

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
static void mock_inbound(mock_provider *mp, sr_http_request *req) {
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

/* ---- GET /stats, POST /stats/reset, /control ---- */

static void mock_put_field(sr_buf *b, const char *name, uint64_t value) {
    sr_buf_putc(b, '"');
    sr_buf_puts(b, name);
    sr_buf_puts(b, "\":");
    sr_buf_put_u64(b, value);
    sr_buf_putc(b, ',');
}

static void mock_stats_get(mock_provider *mp, sr_http_request *req) {
    const mock_stats *s = &mp->stats;
    bool with_recipients = strstr(req->query, "by_recipient=0") == NULL;
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_reserve(&b, 512 + (with_recipients ? mp->recipients.used * 24 : 0));
    sr_buf_putc(&b, '{');
    mock_put_field(&b, "received", s->received);
    mock_put_field(&b, "requests", s->requests);
    if (with_recipients) {
        sr_buf_puts(&b, "\"by_recipient\":{");
        bool first = true;
        for (size_t i = 0; i < mp->recipients.cap; i++) {
            const mock_slot *slot = &mp->recipients.slots[i];
            if (!slot->hash) continue;
            if (!first) sr_buf_putc(&b, ',');
            first = false;
            sr_buf_json_str(&b, slot->key, slot->key_len);
            sr_buf_putc(&b, ':');
            sr_buf_put_u64(&b, slot->count);
        }
        sr_buf_puts(&b, "},");
    }
    mock_put_field(&b, "recipients", mp->recipients.used);
    mock_put_field(&b, "rejected", s->rejected);
    mock_put_field(&b, "failed_5xx", s->failed_5xx);
    mock_put_field(&b, "failed_429", s->failed_429);
    mock_put_field(&b, "timeouts", s->timeouts);
    mock_put_field(&b, "duplicates", s->duplicates);
    mock_put_field(&b, "unauthorized", s->unauthorized);
    mock_put_field(&b, "bad_requests", s->bad_requests);
    mock_put_field(&b, "down_dropped", s->down_dropped);
    mock_put_field(&b, "dlr_sent", s->dlr_sent);
    mock_put_field(&b, "dlr_failed", s->dlr_failed);
    mock_put_field(&b, "dlr_retried", s->dlr_retried);
    mock_put_field(&b, "dlr_pending", mp->dlrs_started);
    mock_put_field(&b, "polls", s->polls);
    mock_put_field(&b, "inbound_sent", s->inbound_sent);
    mock_put_field(&b, "inbound_failed", s->inbound_failed);
    mock_put_field(&b, "in_flight", (uint64_t)mp->in_flight);
    mock_put_field(&b, "max_in_flight", (uint64_t)s->max_in_flight);
    sr_buf_puts(&b, "\"rate\":{\"window_ms\":");
    sr_buf_put_u64(&b, MOCK_RATE_WINDOW_MS);
    sr_buf_puts(&b, ",\"max_per_window\":");
    sr_buf_put_u64(&b, mp->rate.max_per_window);
    sr_buf_puts(&b, ",\"max_calls_per_window\":");
    sr_buf_put_u64(&b, mp->calls.max_per_window);
    sr_buf_puts(&b, "}}");
    sr_http_respond(req, 200, "application/json", b.data, b.len, NULL);
    sr_buf_free(&b);
}

static void mock_stats_reset(mock_provider *mp, sr_http_request *req) {
    memset(&mp->stats, 0, sizeof mp->stats);
    mp->stats.max_in_flight = mp->in_flight;
    mock_map_clear(&mp->recipients);
    mock_map_clear(&mp->seen);
    mock_map_clear(&mp->seen_old);
    mock_map_clear(&mp->statuses);
    mock_map_clear(&mp->statuses_old);
    mock_rate_clear(&mp->rate);
    mock_rate_clear(&mp->calls);
    static const char body[] = "{\"reset\":true}";
    sr_http_respond(req, 200, "application/json", body, sizeof body - 1, NULL);
}

static void mock_put_pct(sr_buf *b, const char *name, double pct) {
    sr_buf_printf(b, "\"%s\":%.15g,", name, pct);
}

static void mock_put_url(sr_buf *b, const char *name, const char *url) {
    sr_buf_printf(b, "\"%s\":", name);
    if (url) sr_buf_json_str(b, url, strlen(url));
    else sr_buf_puts(b, "null");
    sr_buf_putc(b, ',');
}

/* The settings; secrets only as whether they are set. */
static void mock_settings_write(const mock_provider *mp, sr_buf *b) {
    const mock_settings *s = &mp->set;
    sr_buf_putc(b, '{');
    sr_buf_printf(b, "\"dialect\":\"%s\",", mock_dialect_names[s->dialect]);
    mock_put_pct(b, "fail_5xx", s->fail_5xx_pct);
    mock_put_pct(b, "fail_429", s->fail_429_pct);
    mock_put_field(b, "retry_after", s->retry_after_s);
    mock_put_pct(b, "timeout", s->timeout_pct);
    mock_put_field(b, "hold_ms", s->hold_ms);
    mock_put_pct(b, "reject", s->reject_pct);
    mock_put_field(b, "latency_ms", s->latency_ms);
    mock_put_field(b, "latency_jitter_ms", s->latency_jitter_ms);
    mock_put_url(b, "dlr_url", s->dlr_url);
    mock_put_field(b, "dlr_delay_ms", s->dlr_delay_ms);
    mock_put_pct(b, "dlr_undelivered", s->dlr_undelivered_pct);
    mock_put_url(b, "inbound_url", s->inbound_url);
    sr_buf_printf(b, "\"dlr_before_answer\":%s,\"auth\":%s,\"auth_token\":%s,\"webhook_secret\":%s,\"down\":%s}",
                  s->dlr_before_answer ? "true" : "false", s->auth_key ? "true" : "false",
                  s->auth_token ? "true" : "false", s->webhook_secret ? "true" : "false",
                  s->down ? "true" : "false");
}

/* A percentage member: 0 when absent, 1 when valid (stored), -1 when invalid. */
static int mock_control_pct(const sr_json *root, const char *name, double *out) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    if (v->type != SR_JSON_NUMBER || !(v->num >= 0 && v->num <= 100)) return -1;
    *out = v->num;
    return 1;
}

static int mock_control_uint(const sr_json *root, const char *name, uint64_t *out) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    int64_t n;
    if (!sr_json_is_integer(v, &n) || n < 0 || n > 86400000) return -1;
    *out = (uint64_t)n;
    return 1;
}

static int mock_control_bool(const sr_json *root, const char *name, bool *out) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    if (v->type != SR_JSON_TRUE && v->type != SR_JSON_FALSE) return -1;
    *out = v->type == SR_JSON_TRUE;
    return 1;
}

/* A string-or-null member: *out becomes a new copy (or NULL); *set tells it was there. */
static int mock_control_str(const sr_json *root, const char *name, char **out, bool *set) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    if (v->type == SR_JSON_NULL) {
        *out = NULL;
    } else if (v->type == SR_JSON_STRING && v->len > 0 && strlen(v->str) == v->len) {
        *out = strdup(v->str);
        if (!*out) abort();
    } else {
        return -1;
    }
    *set = true;
    return 1;
}

static int mock_control_dialect(const sr_json *root, mock_dialect *out) {
    const sr_json *v = sr_json_get(root, "dialect");
    if (!v) return 0;
    int d = v->type == SR_JSON_STRING ? mock_dialect_parse(v->str, v->len) : -1;
    if (d < 0) return -1;
    *out = (mock_dialect)d;
    return 1;
}

/* Answers the held "down" requests: the provider is back. */
static void mock_release_down(mock_provider *mp) {
    mock_pending *p = mp->pending;
    while (p) {
        mock_pending *next = p->next;
        if (p->hold == MOCK_HOLD_DOWN) mock_pending_answer(p);
        p = next;
    }
}

/* The string settings /control may change, in one place. */
typedef struct mock_control_strs {
    const char *name;
    char *value; /* owned until applied */
    bool set;
} mock_control_strs;

static void mock_control(mock_provider *mp, sr_http_request *req) {
    static const char *const known[] = {"fail_5xx",        "fail_429",          "retry_after", "timeout",
                                        "hold_ms",         "reject",            "latency_ms",  "latency_jitter_ms",
                                        "dlr_url",         "dlr_delay_ms",      "dlr_undelivered",
                                        "dlr_before_answer", "down",            "auth_key",    "dialect",
                                        "auth_token",      "webhook_secret",    "inbound_url", NULL};
    sr_json_doc doc;
    char err[160];
    if (sr_json_parse(&doc, req->body, req->body_len, err, sizeof err) != 0 || doc.root->type != SR_JSON_OBJECT) {
        sr_json_doc_free(&doc);
        mock_respond_error(req, 400, "the body must be a JSON object of settings", NULL);
        return;
    }
    for (const sr_json *m = doc.root->child; m; m = m->next) {
        bool ok = false;
        for (int i = 0; known[i]; i++) ok = ok || strcmp(m->key, known[i]) == 0;
        if (!ok) {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown setting \"%.100s\"", m->key);
            sr_json_doc_free(&doc);
            mock_respond_error(req, 400, msg, NULL);
            return;
        }
    }
    /* Validate everything into a copy, then apply at once. */
    mock_settings next = mp->set;
    mock_control_strs strs[] = {{"auth_key", NULL, false},       {"dlr_url", NULL, false},
                                {"auth_token", NULL, false},     {"webhook_secret", NULL, false},
                                {"inbound_url", NULL, false}};
    char **slots[] = {&next.auth_key, &next.dlr_url, &next.auth_token, &next.webhook_secret, &next.inbound_url};
    char **current[] = {&mp->set.auth_key, &mp->set.dlr_url, &mp->set.auth_token, &mp->set.webhook_secret,
                        &mp->set.inbound_url};
    const size_t nstrs = sizeof strs / sizeof strs[0];
    const sr_json *root = doc.root;
    bool bad = mock_control_pct(root, "fail_5xx", &next.fail_5xx_pct) < 0 ||
               mock_control_pct(root, "fail_429", &next.fail_429_pct) < 0 ||
               mock_control_pct(root, "timeout", &next.timeout_pct) < 0 ||
               mock_control_pct(root, "reject", &next.reject_pct) < 0 ||
               mock_control_pct(root, "dlr_undelivered", &next.dlr_undelivered_pct) < 0 ||
               mock_control_uint(root, "retry_after", &next.retry_after_s) < 0 ||
               mock_control_uint(root, "hold_ms", &next.hold_ms) < 0 ||
               mock_control_uint(root, "latency_ms", &next.latency_ms) < 0 ||
               mock_control_uint(root, "latency_jitter_ms", &next.latency_jitter_ms) < 0 ||
               mock_control_uint(root, "dlr_delay_ms", &next.dlr_delay_ms) < 0 ||
               mock_control_bool(root, "dlr_before_answer", &next.dlr_before_answer) < 0 ||
               mock_control_bool(root, "down", &next.down) < 0 || mock_control_dialect(root, &next.dialect) < 0;
    for (size_t i = 0; i < nstrs && !bad; i++)
        bad = mock_control_str(root, strs[i].name, &strs[i].value, &strs[i].set) < 0;
    sr_json_doc_free(&doc);
    if (!bad && next.fail_5xx_pct + next.fail_429_pct + next.timeout_pct + next.reject_pct > 100) bad = true;
    if (bad) {
        for (size_t i = 0; i < nstrs; i++) free(strs[i].value);
        mock_respond_error(req, 400,
                           "invalid setting: percentages are numbers 0-100 (fail_5xx + fail_429 + timeout + reject "
                           "at most 100), durations non-negative integers, flags true or false, dialect one of mock, "
                           "generic, smsbat, devino, agiletelecom, smsc, twilio, vonage, keys and URLs strings or null",
                           NULL);
        return;
    }
    for (size_t i = 0; i < nstrs; i++) {
        if (!strs[i].set) continue;
        free(*current[i]);
        *slots[i] = strs[i].value;
    }
    bool was_down = mp->set.down;
    mock_dialect was_dialect = mp->set.dialect;
    mp->set = next;
    if (was_dialect != next.dialect) sr_info("dialect changed", "dialect", mock_dialect_names[next.dialect]);
    if (was_down != next.down) sr_info(next.down ? "provider down" : "provider up");
    if (was_down && !next.down) mock_release_down(mp);
    sr_buf b;
    sr_buf_init(&b);
    mock_settings_write(mp, &b);
    sr_http_respond(req, 200, "application/json", b.data, b.len, NULL);
    sr_buf_free(&b);
}

/* ---- routing ---- */

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

/* Whether path is the send endpoint of the dialect (account: Twilio's). */
static bool mock_is_send_path(mock_dialect dialect, const char *path, char *account, size_t account_len) {
    switch (dialect) {
    case MOCK_DIALECT_SMSBAT: return strcmp(path, "/bat/messagelist") == 0;
    case MOCK_DIALECT_DEVINO: return strcmp(path, "/sms/messages") == 0;
    case MOCK_DIALECT_AGILETELECOM: return strcmp(path, "/services/sms/send") == 0 || strcmp(path, "/sms/send") == 0;
    case MOCK_DIALECT_SMSC: return strcmp(path, "/sys/send.php") == 0;
    case MOCK_DIALECT_TWILIO: return mock_twilio_path(path, account, account_len);
    case MOCK_DIALECT_VONAGE: return strcmp(path, "/sms/json") == 0;
    default: return strcmp(path, "/send") == 0 || strcmp(path, "/") == 0;
    }
}

/* Routes a poll of the dialect; false when path is none of its. */
static bool mock_route_poll(mock_provider *mp, sr_http_request *req, bool is_get, bool is_post) {
    const char *path = req->path;
    static const char smsbat_prefix[] = "/bat/message/";
    switch (mp->set.dialect) {
    case MOCK_DIALECT_SMSBAT:
        if (strncmp(path, smsbat_prefix, sizeof smsbat_prefix - 1) != 0 || !path[sizeof smsbat_prefix - 1] ||
            strchr(path + sizeof smsbat_prefix - 1, '/'))
            return false;
        req->route = "/poll";
        if (!is_get) {
            mock_respond_error(req, 405, "use GET", "Allow: GET\r\n");
            return true;
        }
        mp->stats.polls++;
        mock_rate_add(&mp->calls, req->start_ns / 1000000);
        mock_poll_smsbat(mp, req, path + sizeof smsbat_prefix - 1);
        return true;
    case MOCK_DIALECT_DEVINO:
        if (strcmp(path, "/sms-stat/statuses/get-by-ids") != 0) return false;
        req->route = "/poll";
        if (!is_post) {
            mock_respond_error(req, 405, "use POST", "Allow: POST\r\n");
            return true;
        }
        mp->stats.polls++;
        mock_rate_add(&mp->calls, req->start_ns / 1000000);
        mock_poll_devino(mp, req);
        return true;
    case MOCK_DIALECT_SMSC:
        if (strcmp(path, "/sys/status.php") != 0) return false;
        req->route = "/poll";
        if (!is_get && !is_post) {
            mock_respond_error(req, 405, "use GET or POST", "Allow: GET, POST\r\n");
            return true;
        }
        mp->stats.polls++;
        mock_rate_add(&mp->calls, req->start_ns / 1000000);
        mock_poll_smsc(mp, req);
        return true;
    default: return false;
    }
}

static void mock_handle(sr_http_request *req, void *ud) {
    mock_provider *mp = ud;
    bool is_post = strcmp(req->method_name, "POST") == 0;
    bool is_get = strcmp(req->method_name, "GET") == 0;
    const char *path = req->path;
    char account[64] = "";
    if (mock_is_send_path(mp->set.dialect, path, account, sizeof account)) {
        req->route = "/send";
        /* SMSC documents GET for sends too. */
        if (is_post || (is_get && mp->set.dialect == MOCK_DIALECT_SMSC))
            mock_send(mp, req, account[0] ? account : NULL);
        else if (mp->set.dialect == MOCK_DIALECT_SMSC)
            mock_respond_error(req, 405, "use GET or POST", "Allow: GET, POST\r\n");
        else mock_respond_error(req, 405, "use POST", "Allow: POST\r\n");
    } else if (mock_route_poll(mp, req, is_get, is_post)) {
        /* answered */
    } else if (strcmp(path, "/stats") == 0) {
        req->route = "/stats";
        if (is_get) mock_stats_get(mp, req);
        else mock_respond_error(req, 405, "use GET", "Allow: GET\r\n");
    } else if (strcmp(path, "/stats/reset") == 0) {
        req->route = "/stats/reset";
        if (is_post) mock_stats_reset(mp, req);
        else mock_respond_error(req, 405, "use POST", "Allow: POST\r\n");
    } else if (strcmp(path, "/control") == 0) {
        req->route = "/control";
        if (is_post) {
            mock_control(mp, req);
        } else if (is_get) {
            sr_buf b;
            sr_buf_init(&b);
            mock_settings_write(mp, &b);
            sr_http_respond(req, 200, "application/json", b.data, b.len, NULL);
            sr_buf_free(&b);
        } else {
            mock_respond_error(req, 405, "use GET or POST", "Allow: GET, POST\r\n");
        }
    } else if (strcmp(path, "/control/inbound") == 0) {
        req->route = "/control/inbound";
        if (is_post) mock_inbound(mp, req);
        else mock_respond_error(req, 405, "use POST", "Allow: POST\r\n");
    } else if (strcmp(path, "/healthz") == 0 && is_get) {
        req->route = "/healthz";
        static const char body[] = "{\"status\":\"ok\"}";
        sr_http_respond(req, 200, "application/json", body, sizeof body - 1, NULL);
    } else {
        req->route = "unmatched";
        mock_respond_error(req, 404, "not found", NULL);
    }
}

/* ---- lifecycle ---- */

static void mock_close_walk(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void mock_stopped(void *ud) {
    mock_provider *mp = ud;
    uv_timer_stop(&mp->drain_timer);
    uv_walk(mp->loop, mock_close_walk, NULL);
}

static void mock_drain_deadline(uv_timer_t *t) {
    mock_provider *mp = t->data;
    sr_warn("drain deadline reached, closing remaining connections");
    sr_http_server_abort(mp->server);
}

/* Stops: reports are cancelled, every waiting answer is given now, then the
 * server drains (bounded by MOCK_DRAIN_MS) and the loop ends. */
static void mock_on_signal(uv_signal_t *h, int signum) {
    mock_provider *mp = h->data;
    if (mp->stopping) return;
    mp->stopping = true;
    sr_info("stopping", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", "in_flight", sr_log_num(mp->in_flight));
    mock_dlr *d = mp->dlrs;
    while (d) {
        mock_dlr *next = d->next;
        if (!d->posting) mock_dlr_finish(d);
        d = next;
    }
    if (mp->client) {
        /* Runs the callbacks of the posts in flight (cancelled) before returning. */
        sr_http_client_close(mp->client);
        mp->client = NULL;
    }
    while (mp->pending) mock_pending_answer(mp->pending);
    uv_timer_start(&mp->drain_timer, mock_drain_deadline, MOCK_DRAIN_MS, 0);
    sr_http_server_stop(mp->server, mock_stopped, mp);
}

/* ---- command line ---- */

static int mock_usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "smsrules mock-provider: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", mock_usage);
    return 1;
}

static int mock_parse_uint(const char *s, uint64_t max, uint64_t *out) {
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v > max) return -1;
    *out = v;
    return 0;
}

static int mock_parse_pct(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || v < 0 || v > 100) return -1;
    *out = v;
    return 0;
}

enum {
    OPT_LATENCY = 256,
    OPT_JITTER,
    OPT_FAIL_5XX,
    OPT_FAIL_429,
    OPT_RETRY_AFTER,
    OPT_TIMEOUT,
    OPT_HOLD,
    OPT_REJECT,
    OPT_AUTH_KEY,
    OPT_DLR_URL,
    OPT_DLR_DELAY,
    OPT_DLR_UNDELIVERED,
    OPT_DLR_BEFORE,
    OPT_DLR_ATTEMPTS,
    OPT_DIALECT,
    OPT_AUTH_TOKEN,
    OPT_WEBHOOK_SECRET,
    OPT_INBOUND_URL,
    OPT_MAX_IDS,
    OPT_SEED,
    OPT_LOG_LEVEL
};

/* Fills mp's settings from argv. Returns 0 to run, else -1 with *exit_code
 * set (help printed or a usage error). Strings in the settings are copies
 * owned by mp. */
static int mock_parse_args(int argc, char **argv, mock_provider *mp, const char **listen, uint64_t *seed,
                           bool *seed_given, int *exit_code) {
    static const struct option long_opts[] = {{"listen", required_argument, NULL, 'l'},
                                              {"latency-ms", required_argument, NULL, OPT_LATENCY},
                                              {"latency-jitter-ms", required_argument, NULL, OPT_JITTER},
                                              {"fail-5xx", required_argument, NULL, OPT_FAIL_5XX},
                                              {"fail-429", required_argument, NULL, OPT_FAIL_429},
                                              {"retry-after", required_argument, NULL, OPT_RETRY_AFTER},
                                              {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                              {"hold-ms", required_argument, NULL, OPT_HOLD},
                                              {"reject", required_argument, NULL, OPT_REJECT},
                                              {"auth-key", required_argument, NULL, OPT_AUTH_KEY},
                                              {"dlr-url", required_argument, NULL, OPT_DLR_URL},
                                              {"dlr-delay-ms", required_argument, NULL, OPT_DLR_DELAY},
                                              {"dlr-undelivered", required_argument, NULL, OPT_DLR_UNDELIVERED},
                                              {"dlr-before-answer", no_argument, NULL, OPT_DLR_BEFORE},
                                              {"dlr-attempts", required_argument, NULL, OPT_DLR_ATTEMPTS},
                                              {"dialect", required_argument, NULL, OPT_DIALECT},
                                              {"auth-token", required_argument, NULL, OPT_AUTH_TOKEN},
                                              {"webhook-secret", required_argument, NULL, OPT_WEBHOOK_SECRET},
                                              {"inbound-url", required_argument, NULL, OPT_INBOUND_URL},
                                              {"max-ids", required_argument, NULL, OPT_MAX_IDS},
                                              {"seed", required_argument, NULL, OPT_SEED},
                                              {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    mock_settings *s = &mp->set;
    opterr = 0;
    optind = 1;
    int ch;
    const uint64_t max_ms = 86400000; /* a day */
    while ((ch = getopt_long(argc, argv, ":l:h", long_opts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'h': fputs(mock_usage, stdout); *exit_code = 0; return -1;
        case 'l': *listen = optarg; break;
        case OPT_LATENCY: bad = mock_parse_uint(optarg, max_ms, &s->latency_ms); break;
        case OPT_JITTER: bad = mock_parse_uint(optarg, max_ms, &s->latency_jitter_ms); break;
        case OPT_FAIL_5XX: bad = mock_parse_pct(optarg, &s->fail_5xx_pct); break;
        case OPT_FAIL_429: bad = mock_parse_pct(optarg, &s->fail_429_pct); break;
        case OPT_RETRY_AFTER: bad = mock_parse_uint(optarg, 86400, &s->retry_after_s); break;
        case OPT_TIMEOUT: bad = mock_parse_pct(optarg, &s->timeout_pct); break;
        case OPT_HOLD: bad = mock_parse_uint(optarg, max_ms, &s->hold_ms); break;
        case OPT_REJECT: bad = mock_parse_pct(optarg, &s->reject_pct); break;
        case OPT_AUTH_KEY:
            if (!*optarg) bad = -1;
            else sr_config_set_str(&s->auth_key, optarg);
            break;
        case OPT_DLR_URL:
            if (!*optarg) bad = -1;
            else sr_config_set_str(&s->dlr_url, optarg);
            break;
        case OPT_DLR_DELAY: bad = mock_parse_uint(optarg, max_ms, &s->dlr_delay_ms); break;
        case OPT_DLR_ATTEMPTS: bad = mock_parse_uint(optarg, 1000, &s->dlr_attempts) || s->dlr_attempts == 0; break;
        case OPT_DLR_UNDELIVERED: bad = mock_parse_pct(optarg, &s->dlr_undelivered_pct); break;
        case OPT_DLR_BEFORE: s->dlr_before_answer = true; break;
        case OPT_DIALECT: {
            int d = mock_dialect_parse(optarg, strlen(optarg));
            if (d < 0) {
                *exit_code = mock_usage_error("unknown dialect '%s' (want mock, generic, smsbat, devino, "
                                              "agiletelecom, smsc, twilio or vonage)",
                                              optarg);
                return -1;
            }
            s->dialect = (mock_dialect)d;
            break;
        }
        case OPT_AUTH_TOKEN:
            if (!*optarg) bad = -1;
            else sr_config_set_str(&s->auth_token, optarg);
            break;
        case OPT_WEBHOOK_SECRET:
            if (!*optarg) bad = -1;
            else sr_config_set_str(&s->webhook_secret, optarg);
            break;
        case OPT_INBOUND_URL:
            if (!*optarg) bad = -1;
            else sr_config_set_str(&s->inbound_url, optarg);
            break;
        case OPT_MAX_IDS: bad = mock_parse_uint(optarg, UINT32_MAX, &mp->max_ids); break;
        case OPT_SEED:
            bad = mock_parse_uint(optarg, UINT64_MAX, seed);
            *seed_given = true;
            break;
        case OPT_LOG_LEVEL:
            if (sr_log_parse_level(optarg) < 0) {
                *exit_code = mock_usage_error("unknown log level '%s'", optarg);
                return -1;
            }
            sr_log_set_level((sr_log_level)sr_log_parse_level(optarg));
            break;
        case ':': *exit_code = mock_usage_error("option '%s' needs a value", argv[optind - 1]); return -1;
        default: *exit_code = mock_usage_error("unknown option '%s'", argv[optind - 1]); return -1;
        }
        if (bad) {
            *exit_code = mock_usage_error("invalid value for %s", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        *exit_code = mock_usage_error("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (s->fail_5xx_pct + s->fail_429_pct + s->timeout_pct + s->reject_pct > 100) {
        *exit_code = mock_usage_error("%s", "--fail-5xx, --fail-429, --timeout and --reject add up to more than 100");
        return -1;
    }
    if (mp->max_ids < 2) {
        *exit_code = mock_usage_error("%s", "--max-ids must be at least 2");
        return -1;
    }
    return 0;
}

static void mock_free(mock_provider *mp) {
    mock_map_clear(&mp->recipients);
    mock_map_clear(&mp->seen);
    mock_map_clear(&mp->seen_old);
    mock_map_clear(&mp->statuses);
    mock_map_clear(&mp->statuses_old);
    mock_rate_clear(&mp->rate);
    mock_rate_clear(&mp->calls);
    free(mp->set.auth_key);
    free(mp->set.auth_token);
    free(mp->set.webhook_secret);
    free(mp->set.dlr_url);
    free(mp->set.inbound_url);
}

int sr_mock_provider_main(int argc, char **argv) {
    mock_provider mp;
    memset(&mp, 0, sizeof mp);
    mp.set.retry_after_s = 1;
    mp.set.hold_ms = 60000;
    mp.set.dlr_delay_ms = 100;
    mp.set.dlr_attempts = MOCK_DLR_ATTEMPTS;
    mp.max_ids = MOCK_DEFAULT_MAX_IDS;
    const char *listen = MOCK_DEFAULT_LISTEN;
    uint64_t seed = 0;
    bool seed_given = false;
    int code = 0;
    if (mock_parse_args(argc, argv, &mp, &listen, &seed, &seed_given, &code) != 0) {
        mock_free(&mp);
        return code;
    }
    char host[256];
    int port;
    if (sr_config_split_listen(listen, host, sizeof host, &port) != 0) {
        mock_free(&mp);
        return mock_usage_error("invalid listen address '%s' (want host:port)", listen);
    }
    if (!seed_given) seed = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    mp.rng = seed;
    /* Ids stay unique across restarts of the mock: a time prefix, then a counter. */
    mp.start_ms = mock_wall_ms();
    snprintf(mp.id_prefix, sizeof mp.id_prefix, "m%" PRIx64 "-", mp.start_ms);

    signal(SIGPIPE, SIG_IGN);
    mp.loop = uv_default_loop();
    sr_http_options opt;
    sr_http_options_default(&opt);
    opt.max_body_bytes = 8 * 1024 * 1024; /* large batches */
    opt.max_connections = 50000;          /* held requests keep their connection */
    opt.handler = mock_handle;
    opt.handler_ud = &mp;
    char err[256];
    if (sr_http_server_start(&mp.server, mp.loop, host, port, &opt, err, sizeof err) != 0) {
        sr_error("cannot start the HTTP server", "error", err);
        uv_run(mp.loop, UV_RUN_DEFAULT);
        uv_loop_close(mp.loop);
        mock_free(&mp);
        return 2;
    }
    uv_timer_init(mp.loop, &mp.drain_timer);
    mp.drain_timer.data = &mp;
    uv_signal_init(mp.loop, &mp.sig_term);
    uv_signal_init(mp.loop, &mp.sig_int);
    mp.sig_term.data = mp.sig_int.data = &mp;
    uv_signal_start(&mp.sig_term, mock_on_signal, SIGTERM);
    uv_signal_start(&mp.sig_int, mock_on_signal, SIGINT);

    char seed_field[32];
    snprintf(seed_field, sizeof seed_field, "%s%" PRIu64, SR_LOG_NUM, seed);
    sr_info("listening", "host", host, "port", sr_log_num(sr_http_server_port(mp.server)), "seed", seed_field,
            "dialect", mock_dialect_names[mp.set.dialect], "dlr_url", mp.set.dlr_url ? mp.set.dlr_url : "",
            "inbound_url", mp.set.inbound_url ? mp.set.inbound_url : "", "auth",
            mp.set.auth_key || mp.set.auth_token ? SR_LOG_NUM "true" : SR_LOG_NUM "false");
    if (mp.set.dlr_url && !mock_dialect_pushes(mp.set.dialect))
        sr_warn("this dialect pushes no delivery reports (its statuses are polled): --dlr-url is not used",
                "dialect", mock_dialect_names[mp.set.dialect]);

    uv_run(mp.loop, UV_RUN_DEFAULT);
    sr_http_server_free(mp.server);
    uv_loop_close(mp.loop);
    sr_info("stopped", "received", sr_log_num((int64_t)mp.stats.received));
    mock_free(&mp);
    return 0;
}
