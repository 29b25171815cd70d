/* route_stats_rebuild: the route statistics (model/route_stats.h) refilled
 * from the store at start, so that a restart does not blind adaptive rules. */
#ifndef SR_ROUTE_STATS_REBUILD_H
#define SR_ROUTE_STATS_REBUILD_H

#include <stdint.h>

#include "model/route_stats.h"
#include "rules/rules.h"
#include "store/store.h"

/* Rebuilds the figures from the messages created in the last 24 h (and up to max_messages of them,
 * newest kept), so that a restart does not blind adaptive rules. Costs from the rules' providers (may be
 * NULL). Returns the number of messages read, or a negative store code. */
int sr_route_stats_rebuild(sr_route_stats *rs, sr_store *store, sr_rules *rules, int64_t now_ms, int max_messages);

/* Cluster mode: the figures count what the other nodes did too (sms.stats, /v1/stats and the
 * metrics are the cluster's). Each status change another node committed is counted here as that
 * node counted it: the attempt it closed (sent, failed, requeued for a retry or a fallback) and the
 * final report it recorded. Costs from *rules (the current generation, may be NULL when read). */
typedef struct sr_route_stats_follower {
    sr_store_subscriber sub;
    sr_route_stats *rs;
    sr_rules *const *rules;
} sr_route_stats_follower;
void sr_route_stats_follow(sr_route_stats_follower *f, sr_store *store, sr_route_stats *rs, sr_rules *const *rules);
void sr_route_stats_unfollow(sr_route_stats_follower *f, sr_store *store);

#endif
