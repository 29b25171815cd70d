#include "tools/mock/mock_provider.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
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
    "      --dlr-url URL[,URL...] post a delivery report for every accepted message to URL; with\n"
    "                             several (the nodes of a cluster), reports take them in turn and a\n"
    "                             retry goes to the URL after the one the report last tried\n"
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
    "                          auth_token, webhook_secret, inbound_url (strings; null clears;\n"
    "                          dlr_url may list several URLs, as --dlr-url)\n"
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

static unsigned mock_method(const sr_http_request *req) {
    if (strcmp(req->method_name, "GET") == 0) return MOCK_GET;
    if (strcmp(req->method_name, "POST") == 0) return MOCK_POST;
    return 0;
}

/* Routes a send or a poll of the current dialect; false when the path is
 * neither of its. */
static bool mock_route_dialect(mock_provider *mp, sr_http_request *req, unsigned method) {
    const mock_dialect *d = mp->set.dialect;
    char account[64] = "";
    if (d->is_send_path(req->path, account, sizeof account)) {
        req->route = "/send";
        if (method & d->send_methods) mock_send(mp, req, account[0] ? account : NULL);
        else
            mock_respond_method(req, d->send_methods);
        return true;
    }
    if (!d->poll || !d->is_poll_path(req->path)) return false;
    req->route = "/poll";
    if (!(method & d->poll_methods)) {
        mock_respond_method(req, d->poll_methods);
        return true;
    }
    mp->stats.polls++;
    mock_rate_add(&mp->calls, req->start_ns / 1000000);
    d->poll(mp, req);
    return true;
}

static void mock_route_control(mock_provider *mp, sr_http_request *req, unsigned method) {
    req->route = "/control";
    if (method == MOCK_POST) {
        mock_control(mp, req);
    } else if (method == MOCK_GET) {
        sr_buf b;
        sr_buf_init(&b);
        mock_settings_write(mp, &b);
        sr_http_respond(req, 200, "application/json", b.data, b.len, NULL);
        sr_buf_free(&b);
    } else {
        mock_respond_method(req, MOCK_GET | MOCK_POST);
    }
}

static void mock_handle(sr_http_request *req, void *ud) {
    mock_provider *mp = ud;
    unsigned method = mock_method(req);
    const char *path = req->path;
    if (mock_route_dialect(mp, req, method)) {
        /* answered */
    } else if (strcmp(path, "/stats") == 0) {
        req->route = "/stats";
        if (method == MOCK_GET) mock_stats_get(mp, req);
        else
            mock_respond_method(req, MOCK_GET);
    } else if (strcmp(path, "/stats/reset") == 0) {
        req->route = "/stats/reset";
        if (method == MOCK_POST) mock_stats_reset(mp, req);
        else
            mock_respond_method(req, MOCK_POST);
    } else if (strcmp(path, "/control") == 0) {
        mock_route_control(mp, req, method);
    } else if (strcmp(path, "/control/inbound") == 0) {
        req->route = "/control/inbound";
        if (method == MOCK_POST) mock_inbound(mp, req);
        else
            mock_respond_method(req, MOCK_POST);
    } else if (strcmp(path, "/healthz") == 0 && method == MOCK_GET) {
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

static const struct option mock_long_opts[] = {{"listen", required_argument, NULL, 'l'},
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

/* What the command line gives besides the settings. */
typedef struct mock_args {
    const char *listen;
    uint64_t seed;
    bool seed_given;
} mock_args;

/* A numeric option: 0 when ch is one and arg is valid, -1 when invalid, 1
 * when ch is not a numeric option. */
static int mock_option_number(mock_provider *mp, int ch, const char *arg, mock_args *args) {
    mock_settings *s = &mp->set;
    const uint64_t max_ms = 86400000; /* a day */
    switch (ch) {
    case OPT_LATENCY: return mock_parse_uint(arg, max_ms, &s->latency_ms);
    case OPT_JITTER: return mock_parse_uint(arg, max_ms, &s->latency_jitter_ms);
    case OPT_FAIL_5XX: return mock_parse_pct(arg, &s->fail_5xx_pct);
    case OPT_FAIL_429: return mock_parse_pct(arg, &s->fail_429_pct);
    case OPT_RETRY_AFTER: return mock_parse_uint(arg, 86400, &s->retry_after_s);
    case OPT_TIMEOUT: return mock_parse_pct(arg, &s->timeout_pct);
    case OPT_HOLD: return mock_parse_uint(arg, max_ms, &s->hold_ms);
    case OPT_REJECT: return mock_parse_pct(arg, &s->reject_pct);
    case OPT_DLR_DELAY: return mock_parse_uint(arg, max_ms, &s->dlr_delay_ms);
    case OPT_DLR_ATTEMPTS: return mock_parse_uint(arg, 1000, &s->dlr_attempts) || s->dlr_attempts == 0 ? -1 : 0;
    case OPT_DLR_UNDELIVERED: return mock_parse_pct(arg, &s->dlr_undelivered_pct);
    case OPT_MAX_IDS: return mock_parse_uint(arg, UINT32_MAX, &mp->max_ids);
    case OPT_SEED: args->seed_given = true; return mock_parse_uint(arg, UINT64_MAX, &args->seed);
    default: return 1;
    }
}

/* A string option (a non-empty copy into the settings): as mock_option_number. */
static int mock_option_string(mock_provider *mp, int ch, const char *arg) {
    mock_settings *s = &mp->set;
    char **slot;
    switch (ch) {
    case OPT_AUTH_KEY: slot = &s->auth_key; break;
    case OPT_DLR_URL: slot = &s->dlr_url; break;
    case OPT_AUTH_TOKEN: slot = &s->auth_token; break;
    case OPT_WEBHOOK_SECRET: slot = &s->webhook_secret; break;
    case OPT_INBOUND_URL: slot = &s->inbound_url; break;
    default: return 1;
    }
    if (!*arg || (ch == OPT_DLR_URL && !mock_url_list_ok(arg))) return -1;
    sr_config_set_str(slot, arg);
    return 0;
}

/* One option of getopt_long. Returns 0 to go on, else -1 with *exit_code set. */
static int mock_option(mock_provider *mp, int ch, char **argv, mock_args *args, int *exit_code) {
    int bad = mock_option_number(mp, ch, optarg, args);
    if (bad == 1) bad = mock_option_string(mp, ch, optarg);
    if (bad == 1) {
        bad = 0;
        switch (ch) {
        case 'h':
            fputs(mock_usage, stdout);
            *exit_code = 0;
            return -1;
        case 'l': args->listen = optarg; break;
        case OPT_DLR_BEFORE: mp->set.dlr_before_answer = true; break;
        case OPT_DIALECT:
            mp->set.dialect = mock_dialect_find(optarg, strlen(optarg));
            if (mp->set.dialect) break;
            *exit_code = mock_usage_error("unknown dialect '%s' (want mock, generic, smsbat, devino, "
                                          "agiletelecom, smsc, twilio or vonage)",
                                          optarg);
            return -1;
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
    }
    if (bad) {
        *exit_code = mock_usage_error("invalid value for %s", argv[optind - 1]);
        return -1;
    }
    return 0;
}

/* Fills mp's settings and args from argv. Returns 0 to run, else -1 with
 * *exit_code set (help printed or a usage error). Strings in the settings
 * are copies owned by mp. */
static int mock_parse_args(int argc, char **argv, mock_provider *mp, mock_args *args, int *exit_code) {
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":l:h", mock_long_opts, NULL)) != -1)
        if (mock_option(mp, ch, argv, args, exit_code) != 0) return -1;
    if (optind < argc) {
        *exit_code = mock_usage_error("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    const mock_settings *s = &mp->set;
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

static void mock_defaults(mock_provider *mp) {
    memset(mp, 0, sizeof *mp);
    mp->set.retry_after_s = 1;
    mp->set.hold_ms = 60000;
    mp->set.dlr_delay_ms = 100;
    mp->set.dlr_attempts = MOCK_DLR_ATTEMPTS;
    mp->set.dialect = mock_dialects[0];
    mp->max_ids = MOCK_DEFAULT_MAX_IDS;
}

/* Starts the server and the signal handlers on mp->loop; -1 (logged) when
 * it cannot listen. */
static int mock_start(mock_provider *mp, const char *host, int port) {
    sr_http_options opt;
    sr_http_options_default(&opt);
    opt.max_body_bytes = 8 * 1024 * 1024; /* large batches */
    opt.max_connections = 50000;          /* held requests keep their connection */
    opt.handler = mock_handle;
    opt.handler_ud = mp;
    char err[256];
    if (sr_http_server_start(&mp->server, mp->loop, host, port, &opt, err, sizeof err) != 0) {
        sr_error("cannot start the HTTP server", "error", err);
        return -1;
    }
    uv_timer_init(mp->loop, &mp->drain_timer);
    mp->drain_timer.data = mp;
    uv_signal_init(mp->loop, &mp->sig_term);
    uv_signal_init(mp->loop, &mp->sig_int);
    mp->sig_term.data = mp->sig_int.data = mp;
    uv_signal_start(&mp->sig_term, mock_on_signal, SIGTERM);
    uv_signal_start(&mp->sig_int, mock_on_signal, SIGINT);
    return 0;
}

/* The "listening" line tests and scripts wait for. */
static void mock_log_listening(const mock_provider *mp, const char *host, uint64_t seed) {
    char seed_field[32];
    snprintf(seed_field, sizeof seed_field, "%s%" PRIu64, SR_LOG_NUM, seed);
    const mock_settings *s = &mp->set;
    sr_info("listening", "host", host, "port", sr_log_num(sr_http_server_port(mp->server)), "seed", seed_field,
            "dialect", s->dialect->name, "dlr_url", s->dlr_url ? s->dlr_url : "", "inbound_url",
            s->inbound_url ? s->inbound_url : "", "auth",
            s->auth_key || s->auth_token ? SR_LOG_NUM "true" : SR_LOG_NUM "false");
    if (s->dlr_url && !s->dialect->dlr_build)
        sr_warn("this dialect pushes no delivery reports (its statuses are polled): --dlr-url is not used", "dialect",
                s->dialect->name);
}

int sr_mock_provider_main(int argc, char **argv) {
    mock_provider mp;
    mock_defaults(&mp);
    mock_args args = {MOCK_DEFAULT_LISTEN, 0, false};
    int code = 0;
    if (mock_parse_args(argc, argv, &mp, &args, &code) != 0) {
        mock_free(&mp);
        return code;
    }
    char host[256];
    int port;
    if (sr_config_split_listen(args.listen, host, sizeof host, &port) != 0) {
        mock_free(&mp);
        return mock_usage_error("invalid listen address '%s' (want host:port)", args.listen);
    }
    uint64_t seed = args.seed_given ? args.seed : uv_hrtime() ^ ((uint64_t)getpid() << 32);
    mp.rng = seed;
    /* Ids stay unique across restarts of the mock: a time prefix, then a counter. */
    mp.start_ms = mock_wall_ms();
    snprintf(mp.id_prefix, sizeof mp.id_prefix, "m%" PRIx64 "-", mp.start_ms);

    signal(SIGPIPE, SIG_IGN);
    mp.loop = uv_default_loop();
    if (mock_start(&mp, host, port) != 0) {
        uv_run(mp.loop, UV_RUN_DEFAULT);
        uv_loop_close(mp.loop);
        mock_free(&mp);
        return 2;
    }
    mock_log_listening(&mp, host, seed);
    uv_run(mp.loop, UV_RUN_DEFAULT);
    sr_http_server_free(mp.server);
    uv_loop_close(mp.loop);
    sr_info("stopped", "received", sr_log_num((int64_t)mp.stats.received));
    mock_free(&mp);
    return 0;
}
