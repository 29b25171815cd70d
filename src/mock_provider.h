/* mock_provider: `smsrules mock-provider`, a fake SMS provider for demos,
 * tests and benchmarks.
 *
 * A real HTTP server (our http_server on its own libuv loop) speaking the
 * generic provider API of PROVIDERS.md §1: POST /send with one message or a
 * batch, Bearer auth, answers after a configurable latency (uv_timer, never
 * blocking), a seeded random mix of 503, 429 with Retry-After, timeouts (the
 * request is held unanswered) and permanent rejections, and outcomes chosen
 * by the last four digits of the recipient so tests are repeatable. Delivery
 * reports are posted back with http_client after a delay, optionally before
 * the send answer. Client message ids are honoured (a resend with a seen id
 * gets the same message_id and is counted as a duplicate, not a reception).
 *
 * This unit owns the mock's loop, server, client, settings and counters:
 * GET /stats shows what was received per recipient (exactly-once checks) and
 * the highest number of accepted sends in any one-second window (rate checks);
 * POST /control changes the behaviour at runtime (failure mix, latency,
 * "down"). Memory stays bounded: counters, one map entry per recipient, a
 * capped two-generation map of seen client ids, and the answers and reports
 * in flight; message bodies are never kept. */
#ifndef SR_MOCK_PROVIDER_H
#define SR_MOCK_PROVIDER_H

/* Runs the command: argv[0] is "mock-provider", then its options. Returns the
 * process exit code: 0 after SIGTERM/SIGINT or --help, 1 on bad arguments,
 * 2 when it cannot listen. Blocks in the loop until stopped. */
int sr_mock_provider_main(int argc, char **argv);

#endif
