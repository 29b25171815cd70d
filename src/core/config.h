/* config: the daemon's settings, from defaults, the rules file's
 * sms.config{...} and the command line (which wins), in that order.
 *
 * Strings are heap-allocated and owned by the config (sr_config_free). */
#ifndef SR_CONFIG_H
#define SR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct sr_config {
    char *listen;          /* "host:port", default 127.0.0.1:8080 */
    char *data;            /* data directory, default ./data */
    int log_level;         /* sr_log_level */
    char **api_keys;       /* NULL-terminated; empty: the send API refuses every request */
    int api_key_count;
    char *admin_key;
    char *default_country; /* digits, or NULL */
    char *public_url;
    int validity_s;        /* default 172800 */
    int max_parts;         /* default 10 */
    /* HTTP limits */
    size_t max_header_bytes;
    size_t max_body_bytes;
    int max_connections;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t request_timeout_ms;  /* whole request (headers + body), default 30000 */
    size_t max_unsent_bytes;      /* answers queued for one client before reading pauses, default 256 KiB */
    uint64_t shutdown_timeout_ms; /* drain deadline on SIGTERM, default 5000 */
    /* store */
    size_t map_size;
    size_t map_size_max;
    size_t store_reserve; /* room kept for recording outcomes: below it, new data gets 507; default 32 MiB */
    /* delivery */
    uint64_t retry_base_ms;       /* backoff base, default 1000 */
    uint64_t retry_cap_ms;        /* backoff cap, default 60000 */
    uint64_t retry_after_max_s;   /* Retry-After honoured up to this, default 300 */
    int circuit_failures;         /* consecutive failures that open a circuit, default 5 */
    uint64_t circuit_cooldown_ms; /* open → one probe after, default 5000 */
    /* Lua sandbox */
    uint64_t instruction_budget; /* per handler, default 1,000,000 */
    uint64_t time_limit_ms;      /* wall clock one run of Lua may hold the loop, default 1000 */
    size_t memory_limit;         /* bytes for the Lua state, default 64 MiB */
    size_t max_event_bytes;      /* largest event or webhook body handed to Lua, default 64 KiB */
    /* delivery reports */
    uint64_t dlr_orphan_after_s;  /* a parked report for an unknown id counts as orphaned after, default 3600 */
    uint64_t dlr_park_max;        /* parked reports kept at most (oldest evicted), default 100000 */
    uint64_t dlr_park_max_bytes;  /* bytes of parked reports kept at most, default 32 MiB */
    uint64_t poll_max_age_s;      /* status polls stop this long after sent, default 7200 */
    uint64_t inbound_retention_s; /* inbound SMS kept, default 604800 (7 days); dedup keys 48 h */
} sr_config;

void sr_config_init(sr_config *c);
void sr_config_free(sr_config *c);
void sr_config_set_str(char **slot, const char *value);
void sr_config_add_api_key(sr_config *c, const char *key);
/* Adds the keys of SMSRULES_API_KEYS (comma-separated), when set. */
void sr_config_add_env_api_keys(sr_config *c);
/* Replaces the settings a running daemon can change (keys, defaults, retry
 * and circuit tuning, sandbox limits) with those of from. */
void sr_config_apply_live(sr_config *c, const sr_config *from);
/* Splits "host:port" (port required; "[v6]:port" allowed). Returns 0 or -1. */
int sr_config_split_listen(const char *listen, char *host, size_t hostlen, int *port);

#endif
