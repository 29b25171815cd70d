/* rate_lanes: each provider's rate (its `rate` and `burst` options, one
 * GCRA per provider), shared by everything that sends it requests: the
 * scheduler's sends and the reports' status polls draw from the same lane,
 * so together they stay within what the provider allows.
 *
 * Lanes are matched by provider name and live as long as the table: a
 * reload keeps each provider's state. Created by whoever starts the engine
 * (the daemon, the offline runners) and borrowed by scheduler and reports.
 * Loop thread only. */
#ifndef SR_RATE_LANES_H
#define SR_RATE_LANES_H

#include <stdint.h>

#include "rules/rules.h"

#define SR_RATE_LANES_MAX 256

typedef struct sr_rate_lanes sr_rate_lanes;

sr_rate_lanes *sr_rate_lanes_new(void);
void sr_rate_lanes_free(sr_rate_lanes *rl);

/* The TAT of provider name's lane (created at 0 on first use), stable for the table's life; NULL when
 * SR_RATE_LANES_MAX lanes exist already (that provider is then not limited). */
int64_t *sr_rate_lanes_tat(sr_rate_lanes *rl, const char *name);
/* Takes one request's worth of p's rate at now_ms: 1 taken, 0 not now (*wake_ms, may be NULL: in how
 * many ms it would be). */
int sr_rate_lanes_take(sr_rate_lanes *rl, const sr_provider *p, int64_t now_ms, int64_t *wake_ms);
/* The same on a lane already looked up (tat from sr_rate_lanes_tat; NULL: not limited). */
int sr_rate_lane_take(int64_t *tat, const sr_provider *p, int64_t now_ms, int64_t *wake_ms);
/* Whether one would be taken now, taking nothing. */
int sr_rate_lane_ready(const int64_t *tat, const sr_provider *p, int64_t now_ms, int64_t *wake_ms);

#endif
