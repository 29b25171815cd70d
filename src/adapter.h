/* adapter: the C side of provider adapters — calls an adapter's Lua
 * build_send / parse_send and the rules' sms.route, converting messages to
 * Lua tables and results back to C. Adapters do no I/O; this unit does none
 * either. Every call goes through sr_rules_call (traceback, error text). */
#ifndef SR_ADAPTER_H
#define SR_ADAPTER_H

#include <stddef.h>

#include "message.h"
#include "rules.h"

typedef struct sr_adapter_request {
    char *method;
    char *url;
    char **headers; /* NULL-terminated "Name: value" lines */
    char *body;
    size_t body_len;
} sr_adapter_request;

typedef struct sr_adapter_outcome {
    int ok;
    int retry;          /* when !ok: 1 retryable on this provider */
    int about_provider; /* when !ok && !retry: 1 provider-level (next provider), 0 message-level (failed) */
    char provider_id[128];
    char error[256];
    double retry_after_s; /* < 0: none given */
} sr_adapter_outcome;

typedef struct sr_adapter_header {
    const char *name;
    const char *value;
} sr_adapter_header;

/* Builds the request for msgs[0..n). Returns 0, or -1 with err (the adapter
 * raised or returned something unusable). out is owned by the caller
 * (sr_adapter_request_free). */
int sr_adapter_build_send(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n, sr_adapter_request *out,
                          char *err, size_t errlen);
void sr_adapter_request_free(sr_adapter_request *req);

/* Parses an HTTP answer into exactly n outcomes. Returns 0, or -1 with err
 * (then the caller decides; outcomes untouched). */
int sr_adapter_parse_send(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n, int status,
                          const char *body, size_t body_len, const sr_adapter_header *headers, int header_count,
                          sr_adapter_outcome *outs, char *err, size_t errlen);

/* Calls sms.route(msg). Returns the number of provider names written to
 * names (each a heap copy the caller frees), 0 when the rules define no
 * route function, or -1 with err. */
int sr_adapter_route(sr_rules *r, const sr_message *m, char **names, int max, char *err, size_t errlen);

#endif
