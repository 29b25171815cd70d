/* gcra: the Generic Cell Rate Algorithm, the one rate limit of the engine
 * (provider lanes, status polls, sms.ratelimit). Pure functions over one
 * number per limited thing, the theoretical arrival time (TAT, µs).
 *
 * With the emission interval T and the burst tolerance tau, an event at now
 * conforms when TAT - tau <= now; it then moves TAT to max(TAT, now) + T. So
 * 1 + tau / T events pass at once, then one per T. A refused event changes
 * nothing and learns how long until the next one would pass:
 * TAT - tau - now. A TAT of 0 is a thing never limited yet. */
#ifndef SR_GCRA_H
#define SR_GCRA_H

#include <stdint.h>

typedef struct sr_gcra {
    int64_t interval_us;  /* T: 0 means no limit */
    int64_t tolerance_us; /* tau */
} sr_gcra;

/* rate_per_s events per second, and burst more at once above it (a provider's `rate`, `burst`);
 * rate_per_s <= 0: no limit. */
sr_gcra sr_gcra_per_second(double rate_per_s, double burst);
/* count events per per_seconds, all count of them at once (sms.ratelimit(key, count, per_seconds)):
 * T = per_seconds / count (at least 1 µs), tau = (count - 1) T. count >= 1, per_seconds > 0. */
sr_gcra sr_gcra_per_period(double count, double per_seconds);

/* Takes one event at now_us: 1 and *tat_us moved on when it conforms, else 0 with *tat_us unchanged
 * and *wait_us (may be NULL) the µs until one would. */
int sr_gcra_take(const sr_gcra *g, int64_t *tat_us, int64_t now_us, int64_t *wait_us);

#endif
