/* reports: delivery reports — from status webhooks and from polling —
 * applied to messages, and what waits on them.
 *
 * A report is matched to its message by (provider, provider id) through the
 * store's normalised index, or by our own id when the provider echoes it.
 * Status only moves forward: a report that says less than what is known
 * changes nothing, and a report already recorded is a duplicate. Multipart
 * messages combine per-part reports: final when every part has reported,
 * delivered when every part was. A report for an id not known yet (it can
 * arrive before the send answer) is parked in the store and applied when the
 * scheduler records that provider id; parked reports nobody claims are
 * counted as orphaned after `dlr_orphan_after`. Parking is bounded (count and
 * bytes, oldest evicted first): status webhooks may be open to anyone.
 * Impossible part numbers are refused on entry and never change a message.
 *
 * A route's fallback_on / dlr_timeout act here: a bad final report, or no
 * final report in time, sends the message on to the next provider of its
 * route; a late "delivered" for an earlier attempt is recorded on that
 * attempt, makes the message delivered and stops further fallback.
 *
 * Watching: a sent message with a poll provider or a report deadline has a
 * watch time (store index `watch`). A timer takes due messages, polls their
 * statuses in batches (within the provider's rate limit, backing off from
 * 5 s to 60 s, until a final status or poll_max_age) and applies deadlines.
 *
 * Every change is a store unit; sms.on_status runs after it committed (the
 * store announces the change). The reports parked for a provider id are
 * claimed when the store announces that id known (SR_STORE_EV_PROVIDER_ID). */
#ifndef SR_REPORTS_H
#define SR_REPORTS_H

#include <uv.h>

#include "rules/adapter.h"
#include "core/config.h"
#include "delivery/rate_lanes.h"
#include "http/http_client.h"
#include "rules/rules.h"
#include "store/store.h"

typedef struct sr_reports sr_reports;

/* Starts the report engine. Borrows everything; rates: the providers' rate lanes, which status polls
 * share with the scheduler's sends. */
int sr_reports_start(sr_reports **out, uv_loop_t *loop, sr_store *store, sr_rate_lanes *rates, sr_rules *rules,
                     sr_http_client *client, const sr_config *config);
void sr_reports_set_rules(sr_reports *r, sr_rules *rules);
/* Stops the timers; done runs once no poll or unit is in flight. */
void sr_reports_stop(sr_reports *r, void (*done)(void *ud), void *ud);
/* Frees after stop (closes its handles: run the loop once more). */
void sr_reports_free(sr_reports *r);

/* The most parts a report may name (a message has at most max_parts, itself at most this). */
#define SR_REPORT_MAX_PARTS 255

/* Checks a report's part numbers: part and parts, when said, are whole
 * numbers from 1 to SR_REPORT_MAX_PARTS, part at most parts (the adapter gives
 * SR_REPORT_PART_INVALID for anything else it was handed). 0, or SR_E_INVALID
 * with the reason in err. */
int sr_reports_check(const sr_report *rep, char *err, size_t errlen);

/* Applies reports of one provider. cb (may be NULL) runs once every report
 * is on disk (applied or parked): code 0, or the store's error when one of
 * them could not be stored (the provider should send it again), or
 * SR_E_INVALID when a report names a part its message cannot have
 * (sr_reports_check before anything is applied, or a part beyond the
 * message's own count): such a report changes nothing
 * (smsrules_dlr_reports_total{result="invalid"}).
 *
 * A report whose message is unknown is parked (see "parking" in reports.c):
 * at most config->dlr_park_max reports and dlr_park_max_bytes bytes, the
 * oldest evicted past that (smsrules_dlr_parked_evicted_total), each dropped
 * as orphaned dlr_orphan_after after it was parked. */
void sr_reports_apply(sr_reports *r, const char *provider, const sr_report *reps, int n, void (*cb)(int code, void *ud),
                      void *ud);

/* The next watch time of a sent message (m->sent_at_ms, m->polls, m->dlr_timeout_s and m->route set):
 * its next status poll (poll: the provider polls; none past max_age_ms after sent) or its report
 * deadline, whichever is first; 0 when neither. Pure: safe in a store mutator. */
int64_t sr_reports_next_watch(const sr_message *m, int poll, int64_t now_ms, int64_t max_age_ms);

/* ---- for the offline test runner (smsrules test), which drives the engine on a virtual clock ---- */

/* 1 when no store unit or status poll of the engine is in flight: every
 * report applied has committed and its sms.on_status has been started (the
 * handler itself may still run: sr_rules' live_invocations counts it). */
int sr_reports_idle(sr_reports *r);
/* Runs one pass of the timer now, on sr_now_ms(): due watch times (report
 * deadlines, polls) and, when its time came, the orphan sweep. Does nothing
 * once stopping. */
void sr_reports_tick_now(sr_reports *r);

#endif
