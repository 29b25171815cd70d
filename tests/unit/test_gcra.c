/* The one GCRA: provider rates with a burst, sms.ratelimit's count per period, waits, no limit. */
#include "core/gcra.h"
#include "unit.h"

TEST(gcra_rate_passes_the_burst_then_one_per_interval) {
    sr_gcra g = sr_gcra_per_second(10, 2); /* 100 ms apart, 2 more at once */
    CHECK(g.interval_us == 100000 && g.tolerance_us == 200000);
    int64_t tat = 0, now = 5000000, wait = -1;
    for (int i = 0; i < 3; i++) CHECK_INT(sr_gcra_take(&g, &tat, now, &wait), 1);
    CHECK_INT(sr_gcra_take(&g, &tat, now, &wait), 0);
    CHECK_INT(wait, 100000); /* the next one in 100 ms */
    int64_t before = tat;
    CHECK_INT(sr_gcra_take(&g, &tat, now + 99999, &wait), 0);
    CHECK(tat == before); /* a refusal changes nothing */
    CHECK_INT(wait, 1);
    CHECK_INT(sr_gcra_take(&g, &tat, now + 100000, &wait), 1);
    CHECK_INT(sr_gcra_take(&g, &tat, now + 100000, &wait), 0);
    /* Idle long enough: the whole burst again. */
    now += 10000000;
    for (int i = 0; i < 3; i++) CHECK_INT(sr_gcra_take(&g, &tat, now, NULL), 1);
    CHECK_INT(sr_gcra_take(&g, &tat, now, NULL), 0);
}

TEST(gcra_count_per_period_is_what_sms_ratelimit_promises) {
    sr_gcra g = sr_gcra_per_period(3, 60); /* 3 per minute, all 3 at once */
    CHECK(g.interval_us == 20000000 && g.tolerance_us == 40000000);
    int64_t tat = 0, now = 1000000, wait = 0;
    for (int i = 0; i < 3; i++) CHECK_INT(sr_gcra_take(&g, &tat, now, &wait), 1);
    CHECK_INT(sr_gcra_take(&g, &tat, now, &wait), 0);
    CHECK_INT(wait, 20000000); /* retry_after 20 s */
    CHECK_INT(sr_gcra_take(&g, &tat, now + 20000000, &wait), 1);
    /* Intervals below a µs are a µs: a huge rate still limits. */
    sr_gcra fast = sr_gcra_per_period(1e9, 1);
    CHECK(fast.interval_us == 1);
}

TEST(gcra_without_a_rate_never_limits) {
    sr_gcra g = sr_gcra_per_second(0, 5);
    int64_t tat = 0;
    for (int i = 0; i < 1000; i++) CHECK_INT(sr_gcra_take(&g, &tat, 1, NULL), 1);
    CHECK(tat == 0);
}
