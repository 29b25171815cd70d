/* adapter: the C side of provider adapters — calls an adapter's Lua
 * build_send / parse_send and the rules' sms.route, converting messages to
 * Lua tables and results back to C. Adapters do no I/O; this unit does none
 * either. Every call goes through sr_rules_call (traceback, error text). */
#ifndef SR_ADAPTER_H
#define SR_ADAPTER_H

#include <stddef.h>

#include "codec/form.h"
#include "http/http_client.h"
#include "model/message.h"
#include "rules/rules.h"

typedef struct sr_adapter_request {
    char *method;
    char *url;
    char **headers; /* NULL-terminated "Name: value" lines */
    char *body;
    size_t body_len;
} sr_adapter_request;

/* Sends a built adapter request over c and frees it; cb runs exactly once:
 * with the answer, or (the request could not start) right away with a
 * transport error. */
void sr_adapter_http_send(sr_http_client *c, sr_adapter_request *req, long timeout_ms, sr_http_client_cb cb, void *ud);

typedef struct sr_adapter_outcome {
    int ok;
    int retry;          /* when !ok: 1 retryable on this provider */
    int about_provider; /* when !ok && !retry: 1 provider-level (next provider), 0 message-level (failed) */
    char provider_id[128];
    char error[256];
    double retry_after_s; /* < 0: none given */
    int parts;            /* when ok: the parts the provider counts (0: not said) */
} sr_adapter_outcome;

typedef struct sr_adapter_header {
    const char *name;
    const char *value;
} sr_adapter_header;

/* Builds the request for msgs[0..n). Returns 0, or -1 with err (the adapter
 * raised or returned something unusable). out is owned by the caller
 * (sr_adapter_request_free). msgs_ref (may be NULL) gets a reference to the
 * Lua messages table build_send was handed (or LUA_NOREF), so that
 * parse_send of the same request gets the same table instead of new ones:
 * pass it to sr_adapter_parse_send, or to sr_adapter_msgs_release when the
 * request gets no answer. */
int sr_adapter_build_send(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n, sr_adapter_request *out,
                          int *msgs_ref, char *err, size_t errlen);
void sr_adapter_request_free(sr_adapter_request *req);
/* Drops a messages table kept by sr_adapter_build_send (LUA_NOREF: nothing). */
void sr_adapter_msgs_release(const sr_provider *p, int msgs_ref);

/* Parses an HTTP answer into exactly n outcomes. msgs_ref: what
 * sr_adapter_build_send kept for this request (released here), or LUA_NOREF.
 * Returns 0, or -1 with err (then the caller decides; outcomes untouched). */
int sr_adapter_parse_send(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n, int msgs_ref, int status,
                          const char *body, size_t body_len, const sr_adapter_header *headers, int header_count,
                          sr_adapter_outcome *outs, char *err, size_t errlen);

/* Calls sms.route(msg). opt (may be NULL) gets the table's fallback_on and dlr_timeout. Returns the number of provider
 * names written to names (each a heap copy the caller frees), 0 when the rules define no route function, or -1 with
 * err. */
typedef struct sr_route_options {
    int fallback_on;   /* bit (1 << status) for each status of the route table's fallback_on */
    int dlr_timeout_s; /* the route table's dlr_timeout, 0 when none */
} sr_route_options;
int sr_adapter_route(sr_rules *r, const sr_message *m, char **names, int max, sr_route_options *opt, char *err,
                     size_t errlen);

/* ---- webhooks and polling (docs/providers.md, Writing an adapter) ---- */

/* A delivery report as parse_status / parse_poll give it. */
#define SR_REPORT_PART_INVALID (-1)

typedef struct sr_report {
    char provider_id[128];
    char message_id[SR_ID_LEN + 8]; /* ours, when the provider echoes it (e.g. Vonage client-ref); "" none */
    int status;                     /* accepted, sent, delivered, undelivered, expired, rejected; -1 unknown */
    char raw_status[64];
    char error[256];
    int64_t at_ms; /* 0: not said */
    int part;      /* 1-based part of a multipart message, 0: the whole message (not said) */
    int parts;     /* parts of the message as the report counts them, 0: not said */
    /* part and parts are SR_REPORT_PART_INVALID when the adapter gave something that is not a whole
     * number of at least 1 ("abc", 1.5, 0, -1): the report engine refuses such a report (sr_reports_check). */
    double cost; /* what the provider charged, when has_cost */
    int has_cost;
} sr_report;

typedef struct sr_inbound_sms {
    char provider_message_id[128];
    char from[64];
    char to[64];
    char *text; /* owned */
    size_t text_len;
    int64_t at_ms; /* 0: not said */
} sr_inbound_sms;
void sr_inbound_sms_free(sr_inbound_sms *msgs, int n);

/* Most name=value pairs a webhook's query, or its form body, may carry (codec/form.h counts them): real ones have a
 * few dozen and signature checks sort them all, so more is refused (400) before the adapter runs.
 * lua/adapters/util.lua (util.MAX_FIELDS) reads no more than this from bodies the core does not parse. */
#define SR_WEBHOOK_MAX_FIELDS SR_FORM_MAX_FIELDS

/* Adds the name=value pairs of form text (codec/form.h: a query or a form body) to the table at the top of L's
 * stack, decoded, as request.form and sms.form.decode have them: the first value of a name wins (also over the
 * table's earlier entries), pairs with an empty name are skipped. Reads at most max pairs; returns 1 when the text
 * has more, else 0. */
int sr_adapter_add_form(lua_State *L, const char *s, size_t len, size_t max);

typedef struct sr_webhook_request {
    const char *method;
    const char *url; /* what the provider called: public_url (or http://Host) + path + "?" query */
    const char *path;
    const char *query; /* raw, "" when none */
    const sr_adapter_header *headers;
    int header_count;
    const char *body;
    size_t body_len;
    /* NULL, or where the calls for this webhook keep the request table they share (the caller's int, 0 at
     * first): verify and then parse_* get the same table, made once. sr_adapter_webhook_done drops it. */
    int *table_ref;
} sr_webhook_request;
/* Drops the request table the adapter calls for rq shared (when they made one). */
void sr_adapter_webhook_done(const sr_provider *p, const sr_webhook_request *rq);

typedef struct sr_webhook_answer {
    int status;
    char *body; /* owned, may be NULL */
    size_t body_len;
    char **headers; /* NULL-terminated "Name: value" lines */
} sr_webhook_answer;
void sr_webhook_answer_free(sr_webhook_answer *a);

/* adapter.verify: 1 accepted (or no verify), 0 refused (reason), -1 the adapter raised (reason). */
int sr_adapter_verify(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, char *reason, size_t len);
/* parse_status / parse_inbound: 0 with the list (heap; free / sr_inbound_sms_free) and the answer, or -1 with
 * err (no parse function, the adapter raised or returned something unusable). */
int sr_adapter_parse_status(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, sr_report **out, int *n,
                            sr_webhook_answer *ans, char *err, size_t errlen);
int sr_adapter_parse_inbound(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, sr_inbound_sms **out,
                             int *n, sr_webhook_answer *ans, char *err, size_t errlen);
/* Ids per poll request (adapter.poll_batch), or 0 when the adapter cannot poll. */
int sr_adapter_poll_batch(sr_rules *r, const sr_provider *p);
int sr_adapter_build_poll(sr_rules *r, const sr_provider *p, const char *const *ids, int n, sr_adapter_request *out,
                          char *err, size_t errlen);
int sr_adapter_parse_poll(sr_rules *r, const sr_provider *p, const char *const *ids, int n, int status,
                          const char *body, size_t body_len, sr_report **out, int *count, char *err, size_t errlen);

#endif
