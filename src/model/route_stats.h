/* route_stats: live route quality, per provider × destination country (the
 * E.164 calling code of the recipient), over sliding windows of 1 min,
 * 15 min, 1 h and 24 h. What sms.stats, GET /v1/stats/routes and the
 * smsrules_route_* gauges show.
 *
 * Each window is a ring of time buckets (1m: 12 × 5 s, 15m: 15 × 1 min,
 * 1h: 12 × 5 min, 24h: 24 × 1 h); a window covers its current bucket and the
 * ones before it, so it slides in steps of one bucket (the 1m window counts
 * the events of the last 55 to 60 s). A bucket holds counters and two
 * latency histograms with fixed log-scale bins (a third of an octave: a
 * percentile is within ±13% of the true value), which add up across buckets.
 *
 * An event touches one bucket per window of two slots (its country and the
 * provider's "all"): O(1). Memory is bounded whatever the traffic: at most
 * SR_ROUTE_STATS_PROVIDERS providers, each with SR_ROUTE_STATS_COUNTRIES
 * countries tracked (first come; a country silent for 24 h gives its slot up)
 * and the rest together as "other" (country 0 in queries). Slots are
 * allocated on first use (about 45 KB each).
 *
 * Event times are the engine's clock (sr_now_ms), or the times recorded on
 * the message when the figures are rebuilt from the store: attempts count at
 * their answer, reports at the report's time, and `pending` (accepted, no
 * final report yet) in the bucket of the acceptance, taken off when the final
 * report comes. Loop thread only.
 *
 * Pure counting over messages (model layer): sms.stats reads it through the rules' host, the
 * scheduler and reports feed it, and delivery/route_stats_rebuild refills it from the store. */
#ifndef SR_ROUTE_STATS_H
#define SR_ROUTE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "model/message.h"

#define SR_ROUTE_STATS_PROVIDERS 64
#define SR_ROUTE_STATS_COUNTRIES 32
#define SR_ROUTE_STATS_WINDOWS 4
/* Latency histogram bins: bin 0 is < 1 ms, bin i covers [2^((i-1)/3), 2^(i/3)) ms, the last one everything
 * above (about 22 h). */
#define SR_ROUTE_STATS_BINS 80

typedef struct sr_route_stats sr_route_stats;

/* Window names, in order: "1m", "15m", "1h", "24h". */
extern const char *const sr_route_stats_window_names[SR_ROUTE_STATS_WINDOWS];

/* What an attempt's answer was. */
typedef enum {
    SR_RS_ACCEPTED = 0,
    SR_RS_ERR_RETRYABLE,          /* the provider said try again (5xx, 429, ...) */
    SR_RS_ERR_PERMANENT_MESSAGE,  /* refused this message (bad number, content) */
    SR_RS_ERR_PERMANENT_PROVIDER, /* refused for a reason of its own (credentials, balance, adapter error) */
    SR_RS_ERR_TIMEOUT,            /* no answer: timeout or connection failure */
    SR_RS_CLASS_COUNT
} sr_route_stats_class;

/* Final reports. */
enum { SR_RS_DELIVERED = 0, SR_RS_UNDELIVERED, SR_RS_EXPIRED, SR_RS_REJECTED, SR_RS_REPORT_COUNT };

/* The figures of one window. Latencies are -1 when nothing was measured. */
typedef struct sr_route_figures {
    uint64_t attempts; /* answered attempts: accepted + errors */
    uint64_t accepted;
    uint64_t errors[SR_RS_CLASS_COUNT]; /* index SR_RS_ERR_*; [SR_RS_ACCEPTED] unused (0) */
    uint64_t reports[SR_RS_REPORT_COUNT];
    uint64_t pending;
    double delivered_ratio; /* delivered / final reports; -1 when there were none */
    double report_latency_p50_ms, report_latency_p95_ms;
    double send_latency_p50_ms, send_latency_p95_ms;
    double cost_total;
    double cost_per_delivered; /* -1 when nothing was delivered */
} sr_route_figures;

sr_route_stats *sr_route_stats_new(void);
void sr_route_stats_free(sr_route_stats *rs);

/* ---- events (at_ms: when it happened) ---- */

/* An answered attempt: its class, how long the request took, what it cost (accepted ones). */
void sr_route_stats_add_attempt(sr_route_stats *rs, const char *provider, int country, int64_t at_ms,
                                sr_route_stats_class cls, int64_t duration_ms, double cost);
/* A final report (SR_RS_DELIVERED...) at at_ms for an attempt accepted at sent_at_ms (0: unknown). */
void sr_route_stats_add_report(sr_route_stats *rs, const char *provider, int country, int64_t at_ms, int report,
                               int64_t sent_at_ms);

/* SR_RS_DELIVERED... for a final report's status name ("delivered", ...), -1 for anything else. */
int sr_route_stats_report_of(const char *status);
/* The class of a closed attempt from what the store records (outcome, http status); -1 for one not
 * answered yet ("sending") or never answered ("unknown", after a crash). */
int sr_route_stats_attempt_class(const sr_attempt *a);
/* The attempt m->attempts[ai] was answered (as recorded on m): counts it. cost_per_segment: the
 * provider's `cost` option (charged per segment when accepted). */
void sr_route_stats_on_attempt(sr_route_stats *rs, const sr_message *m, int ai, double cost_per_segment);
/* The attempt m->attempts[ai] has a final report (a->report, a->reported_at_ms): counts it. now_ms bounds
 * the report time (a provider's clock may run ahead). */
void sr_route_stats_on_report(sr_route_stats *rs, const sr_message *m, int ai, int64_t now_ms);

/* ---- queries (now_ms: the engine's clock) ---- */

/* The figures of provider (country: a calling code, 0 for "other", -1 for all countries) in window w.
 * Returns 0, or -1 (zero figures) for a provider or country with no slot. */
int sr_route_stats_get(sr_route_stats *rs, const char *provider, int country, int w, int64_t now_ms,
                       sr_route_figures *out);
/* Providers and countries known: provider names (borrowed, valid until the next event), up to max. */
int sr_route_stats_providers(sr_route_stats *rs, const char **names, int max);
/* The countries tracked for provider, by 24 h attempts, most first: up to max calling codes (0 is
 * "other", listed when it has a slot). */
int sr_route_stats_countries(sr_route_stats *rs, const char *provider, int64_t now_ms, int *codes, int max);

/* Every final report counted since the statistics were created (the rebuild at start included), by
 * report (SR_RS_DELIVERED...): what the console's per-minute series take differences of. */
void sr_route_stats_report_totals(const sr_route_stats *rs, uint64_t out[SR_RS_REPORT_COUNT]);

/* {"providers": {NAME: {"countries": {CC: {"1m": {...}, ...}}, "all": {...}}}} (see docs/delivery.md, "Route quality").
 */
void sr_route_stats_json(sr_route_stats *rs, int64_t now_ms, sr_buf *out);
/* Prometheus text of smsrules_route_delivered_ratio and smsrules_route_report_latency_seconds (15m window),
 * countries limited to the top_n by 24 h volume of each provider plus "other". */
void sr_route_stats_metrics(sr_route_stats *rs, int64_t now_ms, int top_n, sr_buf *out);

#endif
