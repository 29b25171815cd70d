#include "delivery/rate_lanes.h"
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gcra.h"

struct sr_rate_lanes {
    int count;
    int nodes;
    struct {
        char name[72];
        sr_rate_lane lane;
    } lanes[SR_RATE_LANES_MAX];
};

sr_rate_lanes *sr_rate_lanes_new(void) {
    sr_rate_lanes *rl = calloc(1, sizeof *rl);
    if (!rl) abort();
    rl->nodes = 1;
    return rl;
}

void sr_rate_lanes_free(sr_rate_lanes *rl) { free(rl); }

void sr_rate_lanes_set_nodes(sr_rate_lanes *rl, int n) { rl->nodes = n < 1 ? 1 : n; }

int sr_rate_lanes_nodes(const sr_rate_lanes *rl) { return rl->nodes; }

sr_rate_lane *sr_rate_lanes_lane(sr_rate_lanes *rl, const char *name) {
    for (int i = 0; i < rl->count; i++)
        if (strcmp(rl->lanes[i].name, name) == 0) return &rl->lanes[i].lane;
    if (rl->count == SR_RATE_LANES_MAX) return NULL;
    sr_str_copy(rl->lanes[rl->count].name, sizeof rl->lanes[0].name, name);
    rl->lanes[rl->count].lane.nodes = &rl->nodes;
    return &rl->lanes[rl->count++].lane;
}

double sr_rate_lane_rate(const sr_rate_lane *lane, const sr_provider *p) {
    int n = lane && *lane->nodes > 1 ? *lane->nodes : 1;
    return p->rate_per_s / n;
}

int sr_rate_lane_take(sr_rate_lane *lane, const sr_provider *p, int64_t now_ms, int64_t *wake_ms) {
    if (!lane || p->rate_per_s <= 0) return 1;
    /* Built per take: a reload may change the provider's rate, the cluster its node count, at any time.
     * The burst is shared too (at least one message). */
    int n = *lane->nodes > 1 ? *lane->nodes : 1;
    double burst = p->burst / n;
    sr_gcra g = sr_gcra_per_second(p->rate_per_s / n, burst < 1 ? 1 : burst);
    int64_t wait_us = 0;
    if (sr_gcra_take(&g, &lane->tat_us, now_ms * 1000, &wait_us)) return 1;
    if (wake_ms) *wake_ms = (wait_us + 999) / 1000;
    return 0;
}

int sr_rate_lane_ready(const sr_rate_lane *lane, const sr_provider *p, int64_t now_ms, int64_t *wake_ms) {
    if (!lane) return 1;
    sr_rate_lane copy = *lane;
    return sr_rate_lane_take(&copy, p, now_ms, wake_ms);
}

int sr_rate_lanes_take(sr_rate_lanes *rl, const sr_provider *p, int64_t now_ms, int64_t *wake_ms) {
    return sr_rate_lane_take(sr_rate_lanes_lane(rl, p->name), p, now_ms, wake_ms);
}
