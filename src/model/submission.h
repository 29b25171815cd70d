/* submission: turns one message request (a JSON object with the fields of
 * POST /v1/messages) into a message record ready to store, or into the list
 * of reasons it was refused. Shared by the HTTP API and, through JSON, by
 * sms.send in rules, so both accept exactly the same fields.
 *
 * Reasons carry a key (the error code), a ref ("to", or "messages[3].to" in a
 * batch) and a human message naming the offending input. */
#ifndef SR_SUBMISSION_H
#define SR_SUBMISSION_H

#include <stdint.h>

#include "core/config.h"
#include "codec/json.h"
#include "model/message.h"

#define SR_REASONS_MAX 8

typedef struct sr_reason {
    const char *key; /* static string: "missing_field", "invalid_phone", ... */
    char ref[64];
    char message[192];
} sr_reason;

typedef struct sr_reasons {
    sr_reason items[SR_REASONS_MAX];
    int count;
} sr_reasons;

/* Where templates come from for {template, vars} requests (NULL: refused). */
struct sr_template;
typedef struct sr_submission_templates {
    const struct sr_template *(*find)(void *ud, const char *name);
    void *ud;
} sr_submission_templates;

/* Validates obj. On success returns 0 with *out filled (initialised here,
 * owned by the caller: free it or hand it to the store), *idem_key pointing
 * into obj (or NULL) and *body_hash a hash of the normalised request (what an
 * idempotent retry must repeat). On refusal returns -1 with reasons filled
 * (out left empty). ref_prefix is "" or "messages[3]." for batch entries.
 * With "template" (and optional "vars", an object) instead of "text", the
 * text is the template rendered with vars; a missing variable refuses the
 * message with template_error naming it. */
int sr_submission_parse(const sr_json *obj, const sr_config *cfg, const sr_submission_templates *templates,
                        int64_t now_ms, const char *ref_prefix, sr_message *out, const char **idem_key,
                        uint64_t *body_hash, sr_reasons *reasons);

/* The HTTP status for a refused single message: 400 for malformed requests
 * (missing/unknown field, wrong type, invalid text), 422 for well-formed but
 * unacceptable values (phone, length, ranges). */
int sr_submission_http_status(const sr_reasons *reasons);

#endif
