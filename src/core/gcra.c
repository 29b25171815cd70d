#include "core/gcra.h"

#include <math.h>

sr_gcra sr_gcra_per_second(double rate_per_s, double burst) {
    sr_gcra g = {0, 0};
    if (!(rate_per_s > 0)) return g;
    double interval = 1e6 / rate_per_s;
    g.interval_us = interval < 1 ? 1 : (int64_t)llround(interval);
    g.tolerance_us = burst > 0 ? (int64_t)llround(interval * burst) : 0;
    return g;
}

sr_gcra sr_gcra_per_period(double count, double per_seconds) {
    sr_gcra g;
    g.interval_us = (int64_t)llround(per_seconds * 1e6 / count);
    if (g.interval_us < 1) g.interval_us = 1;
    g.tolerance_us = (int64_t)llround((count - 1) * (double)g.interval_us);
    return g;
}

int sr_gcra_take(const sr_gcra *g, int64_t *tat_us, int64_t now_us, int64_t *wait_us) {
    if (g->interval_us <= 0) return 1;
    int64_t tat = *tat_us > now_us ? *tat_us : now_us;
    if (tat - g->tolerance_us > now_us) {
        if (wait_us) *wait_us = tat - g->tolerance_us - now_us;
        return 0;
    }
    *tat_us = tat + g->interval_us;
    return 1;
}
