/* sim_random: the seeded random generator of simulations and rule tests
 * (xoshiro256**, seeded through splitmix64), so that a run with the same seed
 * draws the same numbers everywhere: traffic, provider outcomes, latencies and
 * the scheduler's retry jitter (sr_scheduler_set_random). Not for secrets. */
#ifndef SR_SIM_RANDOM_H
#define SR_SIM_RANDOM_H

#include <math.h>
#include <stdint.h>

typedef struct sr_sim_random {
    uint64_t s[4];
} sr_sim_random;

static inline uint64_t sr_sim_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void sr_sim_random_seed(sr_sim_random *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = sr_sim_splitmix64(&seed);
}

static inline uint64_t sr_sim_random_next(sr_sim_random *r) {
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, 1). */
static inline double sr_sim_random_unit(sr_sim_random *r) {
    return (double)(sr_sim_random_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box–Muller; one draw per call keeps the sequence simple). */
static inline double sr_sim_random_normal(sr_sim_random *r) {
    double u1 = sr_sim_random_unit(r), u2 = sr_sim_random_unit(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* For the scheduler's hook: ud is a sr_sim_random. */
static inline uint64_t sr_sim_random_hook(void *ud) { return sr_sim_random_next((sr_sim_random *)ud); }

#endif
