/* Tests of delivery/rate_lanes: a provider's rate shared by everything that sends to it, and in
 * cluster mode by the live nodes. */
#include <string.h>

#include "delivery/rate_lanes.h"
#include "unit.h"

/* A provider "mock" at 100 a second, burst 10. */
static sr_provider mock_100_a_second(void) {
    sr_provider p;
    memset(&p, 0, sizeof p);
    p.name = "mock";
    p.rate_per_s = 100;
    p.burst = 10;
    return p;
}

/* How many takes succeed in [0, ms) when trying every millisecond. */
static int taken_in(sr_rate_lanes *rl, const sr_provider *p, int64_t ms) {
    int n = 0;
    for (int64_t t = 0; t < ms; t++) n += sr_rate_lanes_take(rl, p, t, NULL);
    return n;
}

TEST(a_single_node_takes_the_whole_rate) {
    sr_provider p = mock_100_a_second();
    sr_rate_lanes *rl = sr_rate_lanes_new();
    int n = taken_in(rl, &p, 10000);
    /* 10 s at 100/s plus the burst: 1,010 (one either way for the edges). */
    CHECK(n >= 1009 && n <= 1011);
    sr_rate_lanes_free(rl);
}

TEST(three_nodes_take_a_third_each) {
    sr_provider p = mock_100_a_second();
    sr_rate_lanes *rl = sr_rate_lanes_new();
    sr_rate_lanes_set_nodes(rl, 3);
    CHECK_INT(sr_rate_lanes_nodes(rl), 3);
    int n = taken_in(rl, &p, 10000);
    /* 10 s at 33.3/s plus a third of the burst: 336, so three nodes together stay within 1,010. */
    CHECK(n >= 335 && n <= 337);
    CHECK_INT((int)(sr_rate_lane_rate(sr_rate_lanes_lane(rl, "mock"), &p) * 3 + 0.5), 100);
    /* The others gone: this node takes the whole rate from then on (100 more in the next second). */
    sr_rate_lanes_set_nodes(rl, 1);
    int more = 0;
    for (int64_t t = 10000; t < 11000; t++) more += sr_rate_lanes_take(rl, &p, t, NULL);
    CHECK(more >= 99 && more <= 111);
    sr_rate_lanes_set_nodes(rl, 0); /* nonsense counts as one */
    CHECK_INT(sr_rate_lanes_nodes(rl), 1);
    sr_rate_lanes_free(rl);
}
