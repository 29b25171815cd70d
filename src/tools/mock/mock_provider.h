/* mock_provider: `smsrules mock-provider`, a fake SMS provider for demos,
 * tests and benchmarks.
 *
 * A real HTTP server (our http_server on its own libuv loop) speaking one
 * provider API at a time, the "dialect" (--dialect, or "dialect" through
 * POST /control): our own "mock" JSON (POST /send with one message or a
 * batch) by default, or the API an adapter of lua/adapters/ speaks — generic,
 * smsbat, devino, agiletelecom, smsc, twilio, vonage (docs/providers.md): each
 * one's send path, credentials, request format and answers, its error
 * answers, its delivery-report webhook, its status polling endpoint where it
 * has one, and its inbound-SMS webhook.
 *
 * Sends are answered after a configurable latency (uv_timer, never
 * blocking), with a seeded random mix of 503, 429 with Retry-After, timeouts
 * (the request is held unanswered) and permanent rejections, and outcomes
 * chosen by the last four digits of the recipient so tests are repeatable;
 * every failure is written the way the dialect's provider writes it.
 * Delivery reports are posted back with http_client after a delay,
 * optionally before the send answer, signed where the provider signs
 * (X-Twilio-Signature, Vonage sig, X-Signature). Polled statuses read "in
 * progress" until the report delay has passed since the send answer. POST
 * /control/inbound posts one inbound SMS in the dialect's format and answers
 * with what the receiver answered. Client message ids are honoured where the
 * API has them (a resend with a seen id gets the same provider id and is
 * counted as a duplicate, not a reception).
 *
 * This unit owns the mock's loop, server, client, settings and counters:
 * GET /stats shows what was received per recipient (exactly-once checks) and
 * the highest number of accepted sends in any one-second window (rate checks);
 * POST /control changes the behaviour at runtime (failure mix, latency,
 * "down", dialect). Memory stays bounded: counters, one map entry per
 * recipient, capped two-generation maps of seen client ids and of polled
 * statuses, and the answers, reports and inbound posts in flight; message
 * bodies are never kept. */
#ifndef SR_MOCK_PROVIDER_H
#define SR_MOCK_PROVIDER_H

/* Runs the command: argv[0] is "mock-provider", then its options. Returns the
 * process exit code: 0 after SIGTERM/SIGINT or --help, 1 on bad arguments,
 * 2 when it cannot listen. Blocks in the loop until stopped. */
int sr_mock_provider_main(int argc, char **argv);

#endif
