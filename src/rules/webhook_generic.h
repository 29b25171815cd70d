/* webhook_generic: the generic adapter's verify, parse_status and parse_inbound (lua/adapters/generic.lua, which
 * the mock adapter uses too) done in C for the shape nearly every delivery report has: one flat JSON object of plain
 * ASCII strings. Delivery reports come at the rate messages go out, and running the Lua for each cost more
 * than everything else a report does; this reads the same fields the same way without a Lua call.
 *
 * It is a shortcut, not a second definition: whatever it is not sure to read exactly as the Lua would (a
 * form, an array, escapes, non-ASCII bytes, a number, null or a nested value in a field the adapter reads,
 * a field named twice, part numbers, a time stamp that is not RFC 3339-like, no report at all) it leaves to
 * the Lua, which then answers as it always did. tests/unit/test_webhook_generic.c runs both on the same
 * webhooks and compares. Inbound messages are read the same way, except that their texts may carry escapes
 * and non-ASCII bytes (most do). api_hooks calls it through sr_webhook_verify, sr_webhook_parse_status and
 * sr_webhook_parse_inbound, for the built-in generic and mock adapters only. */
#ifndef SR_WEBHOOK_GENERIC_H
#define SR_WEBHOOK_GENERIC_H

#include <stddef.h>

#include "rules/adapter.h"

/* generic.verify with cfg.webhook_secret = secret (NULL or "": none): 1 accepted, 0 refused with reason. */
int sr_webhook_generic_verify(const sr_webhook_request *rq, const char *secret, size_t secret_len, char *reason,
                              size_t reason_len);

/* generic.parse_status: 0 with the report (*out, heap: free it; *n = 1) and the adapter's answer (free with
 * sr_webhook_answer_free); 1 when the webhook is not of the shape read here (nothing allocated): the caller
 * runs the Lua. */
int sr_webhook_generic_status(const sr_webhook_request *rq, sr_report **out, int *n, sr_webhook_answer *ans);

/* generic.parse_inbound of one flat JSON object: 0 with the message (*out, heap: sr_inbound_sms_free; *n = 1)
 * and the answer; 1 when the webhook is not of the shape read here (nothing allocated): the caller runs the
 * Lua. Texts may carry escapes and non-ASCII bytes, decoded as cjson decodes them. */
int sr_webhook_generic_inbound(const sr_webhook_request *rq, sr_inbound_sms **out, int *n, sr_webhook_answer *ans);

/* The adapter's verify, parse_status and parse_inbound as rules/adapter.h has them (same results, same ownership), read
 * here in C when the provider's adapter is one of those above (native_webhooks) and the webhook has the shape;
 * otherwise sr_adapter_verify / sr_adapter_parse_status / sr_adapter_parse_inbound run the Lua. */
int sr_webhook_verify(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, char *reason, size_t len);
int sr_webhook_parse_status(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, sr_report **out, int *n,
                            sr_webhook_answer *ans, char *err, size_t errlen);
int sr_webhook_parse_inbound(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, sr_inbound_sms **out,
                             int *n, sr_webhook_answer *ans, char *err, size_t errlen);

#endif
