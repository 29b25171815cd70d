#include "tools/mock/mock_provider.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http_server.h"
#include "tools/mock/mock_internal.h"

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

/* ---- routing ---- */

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
