#include "delivery/rate_lanes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gcra.h"

struct sr_rate_lanes {
    int count;
    struct {
        char name[72];
        int64_t tat_us;
    } lanes[SR_RATE_LANES_MAX];
};

sr_rate_lanes *sr_rate_lanes_new(void) {
    sr_rate_lanes *rl = calloc(1, sizeof *rl);
    if (!rl) abort();
    return rl;
}

void sr_rate_lanes_free(sr_rate_lanes *rl) { free(rl); }

int64_t *sr_rate_lanes_tat(sr_rate_lanes *rl, const char *name) {
    for (int i = 0; i < rl->count; i++)
        if (strcmp(rl->lanes[i].name, name) == 0) return &rl->lanes[i].tat_us;
    if (rl->count == SR_RATE_LANES_MAX) return NULL;
    snprintf(rl->lanes[rl->count].name, sizeof rl->lanes[0].name, "%s", name);
    return &rl->lanes[rl->count++].tat_us;
}

int sr_rate_lane_take(int64_t *tat, const sr_provider *p, int64_t now_ms, int64_t *wake_ms) {
    if (!tat || p->rate_per_s <= 0) return 1;
    /* Built per take: a reload may change the provider's rate at any time. */
    sr_gcra g = sr_gcra_per_second(p->rate_per_s, p->burst);
    int64_t wait_us = 0;
    if (sr_gcra_take(&g, tat, now_ms * 1000, &wait_us)) return 1;
    if (wake_ms) *wake_ms = (wait_us + 999) / 1000;
    return 0;
}

int sr_rate_lane_ready(const int64_t *tat, const sr_provider *p, int64_t now_ms, int64_t *wake_ms) {
    int64_t copy = tat ? *tat : 0;
    return sr_rate_lane_take(tat ? &copy : NULL, p, now_ms, wake_ms);
}

int sr_rate_lanes_take(sr_rate_lanes *rl, const sr_provider *p, int64_t now_ms, int64_t *wake_ms) {
    return sr_rate_lane_take(sr_rate_lanes_tat(rl, p->name), p, now_ms, wake_ms);
}
