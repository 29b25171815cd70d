/* rate_lanes: each provider's rate (its `rate` and `burst` options, one
 * GCRA per provider), shared by everything that sends it requests: the
 * scheduler's sends and the reports' status polls draw from the same lane,
 * so together they stay within what the provider allows.
 *
 * Lanes are matched by provider name and live as long as the table: a
 * reload keeps each provider's state. Created by whoever starts the engine
 * (the daemon, the offline runners) and borrowed by scheduler and reports.
 * In cluster mode each node takes its share of every rate: the rate (and
 * burst) divided by the number of live nodes, which the daemon keeps
 * current (sr_rate_lanes_set_nodes), so that the cluster together stays
 * within it.
 *
 * Loop thread only. */
#ifndef SR_RATE_LANES_H
#define SR_RATE_LANES_H

#include <stdint.h>

#include "rules/rules.h"

#define SR_RATE_LANES_MAX 256

typedef struct sr_rate_lanes sr_rate_lanes;

/* One provider's lane: its GCRA state, and the nodes its rate is shared by. */
typedef struct sr_rate_lane {
    int64_t tat_us;
    const int *nodes; /* the table's live node count (1: a single node) */
} sr_rate_lane;

sr_rate_lanes *sr_rate_lanes_new(void);
void sr_rate_lanes_free(sr_rate_lanes *rl);

/* Cluster mode: the rates are shared by n live nodes (n < 1 counts as 1). */
void sr_rate_lanes_set_nodes(sr_rate_lanes *rl, int n);
int sr_rate_lanes_nodes(const sr_rate_lanes *rl);

/* Provider name's lane (created with TAT 0 on first use), stable for the table's life; NULL when
 * SR_RATE_LANES_MAX lanes exist already (that provider is then not limited). */
sr_rate_lane *sr_rate_lanes_lane(sr_rate_lanes *rl, const char *name);
/* Takes one request's worth of p's rate at now_ms: 1 taken, 0 not now (*wake_ms, may be NULL: in how
 * many ms it would be). */
int sr_rate_lanes_take(sr_rate_lanes *rl, const sr_provider *p, int64_t now_ms, int64_t *wake_ms);
/* The same on a lane already looked up (from sr_rate_lanes_lane; NULL: not limited). */
int sr_rate_lane_take(sr_rate_lane *lane, const sr_provider *p, int64_t now_ms, int64_t *wake_ms);
/* Whether one would be taken now, taking nothing. */
int sr_rate_lane_ready(const sr_rate_lane *lane, const sr_provider *p, int64_t now_ms, int64_t *wake_ms);
/* The rate this node may use of p's: p->rate_per_s over the live nodes. */
double sr_rate_lane_rate(const sr_rate_lane *lane, const sr_provider *p);

#endif
