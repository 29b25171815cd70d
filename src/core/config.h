/* config: the daemon's settings, from defaults, the rules file's
 * sms.config{...} and the command line (which wins), in that order.
 *
 * Every key is one row of one table (sr_config_keys, config.c): its name,
 * type, limits, default, whether a reload changes it in a running daemon or
 * it needs a restart, and its documentation line. The table drives
 * sms.config{} (rules/bindings/lua_sms.c), the defaults, the reload and the
 * key list in docs/rules.md and src/rules/bindings/lua_sms.md (checked by tests/unit/test_config.c).
 *
 * Strings are heap-allocated and owned by the config (sr_config_free). */
#ifndef SR_CONFIG_H
#define SR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sr_config {
    char *listen;    /* "host:port", default 127.0.0.1:8080 */
    char *data;      /* data directory, default ./data */
    int log_level;   /* sr_log_level */
    char **api_keys; /* NULL-terminated; empty: the send API refuses every request */
    int api_key_count;
    char *admin_key;
    char *default_country; /* digits, or NULL */
    char *public_url;
    int validity_s; /* default 172800 */
    int max_parts;  /* default 10 */
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
    /* cluster mode (docs/cluster.md), handed to the store at start */
    char *cluster;               /* "nats://HOST:PORT[,...]" (or tls://); NULL or "": single node */
    char *cluster_stream;        /* JetStream stream name, default SMSRULES */
    int cluster_replicas;        /* the stream's replication factor, default 3 */
    int cluster_node_timeout_ms; /* a node silent this long is gone, default 10000 */
    int64_t cluster_retention_s; /* the stream's max age, default 86400 */
    char *node;                  /* this node's name; NULL: "<hostname>-<pid>" */
    uint64_t pinned;             /* bit i: sr_config_keys[i] was set on the command line, which a reload keeps */
} sr_config;

/* What a key holds. */
typedef enum sr_config_type {
    SR_CONFIG_INT,       /* an integer within [min, max], in an int, size_t or uint64_t field */
    SR_CONFIG_STRING,    /* a string (char *) */
    SR_CONFIG_LOG_LEVEL, /* "debug", "info", "warn" or "error", as an sr_log_level in an int */
    SR_CONFIG_COUNTRY,   /* a string naming a country (calling code or ISO 3166 code), checked by the
                          * rules host with the phone library, a layer above this one */
    SR_CONFIG_KEY_LIST,  /* a list of non-empty strings: the API keys */
    SR_CONFIG_NAME_LIST, /* a list of names kept by the rules state itself, not here (env) */
    SR_CONFIG_PREFIX,    /* a string kept by the rules state itself, not here (env_prefix) */
} sr_config_type;

/* Keys kept by the rules state have no field here. */
#define SR_CONFIG_NO_FIELD SIZE_MAX

typedef struct sr_config_key {
    const char *name; /* as written in sms.config{...} */
    sr_config_type type;
    size_t offset;        /* of the field in sr_config, or SR_CONFIG_NO_FIELD */
    size_t size;          /* of the field (which integer type an SR_CONFIG_INT is) */
    int64_t min, max;     /* SR_CONFIG_INT: the accepted values */
    int64_t def;          /* SR_CONFIG_INT and SR_CONFIG_LOG_LEVEL: the default */
    const char *def_text; /* SR_CONFIG_STRING: the default, or NULL for none */
    bool live;            /* a reload changes it in a running daemon; else it needs a restart */
    bool secret;          /* never written to the log */
    const char *unit;     /* of an integer: "ms", "s", "bytes", or "" */
    const char *doc;      /* one line for the key tables of the docs */
    /* SR_CONFIG_STRING: checks a value beyond its type, or NULL (any string). 0, or -EINVAL with why (a phrase
     * that follows the key's name: "must be ...") written; see sr_config_check_string. */
    int (*check)(const char *value, char *why, size_t whylen);
} sr_config_key;

extern const sr_config_key sr_config_keys[];
extern const size_t sr_config_key_count;

/* The key named name, or NULL. */
const sr_config_key *sr_config_key_find(const char *name);

/* The integer value of an SR_CONFIG_INT or SR_CONFIG_LOG_LEVEL key. */
int64_t sr_config_get_int(const sr_config *c, const sr_config_key *k);
/* Sets an SR_CONFIG_INT or SR_CONFIG_LOG_LEVEL key. Returns 0, or -ERANGE
 * (nothing changed) when v is outside the key's limits. */
int sr_config_set_int(sr_config *c, const sr_config_key *k, int64_t v);
/* The field of an SR_CONFIG_STRING or SR_CONFIG_COUNTRY key. */
char **sr_config_str_slot(sr_config *c, const sr_config_key *k);
/* Whether value suits the string key k (its row's check; any value when it has none). Returns 0, or -EINVAL
 * with why written: a phrase to follow the key's name ("must be ..."), quoting the value with any URL
 * credentials stripped. Every path that sets a string key from the user goes through it (sms.config, the
 * command line). */
int sr_config_check_string(const sr_config_key *k, const char *value, char *why, size_t whylen);
/* Copies in to out (truncated to len, always terminated) with the user information ("user:password@",
 * "token@") of every URL in it stripped: "nats://a:s3cret@h:4222,nats://h2:4222" -> "nats://h:4222,
 * nats://h2:4222" without the space. Each URL's user information runs from "://" to its last '@' before a
 * ',' or white space. For logs and error messages; the rest is copied as is. */
void sr_config_redact_urls(const char *in, char *out, size_t len);

/* Marks the key named name as set on the command line: a reload keeps it. */
void sr_config_pin(sr_config *c, const char *name);

/* Writes the value of k in c for the log (secrets as "(secret)", no string as
 * "(none)", URLs without their credentials) into out. */
void sr_config_format(const sr_config *c, const sr_config_key *k, char *out, size_t len);

void sr_config_init(sr_config *c);
void sr_config_free(sr_config *c);
void sr_config_set_str(char **slot, const char *value);
void sr_config_add_api_key(sr_config *c, const char *key);
/* Adds the keys of SMSRULES_API_KEYS (comma-separated), when set. */
void sr_config_add_env_api_keys(sr_config *c);
/* A reload: takes from `from` (the reloaded file's settings) every live key
 * that the command line did not pin, logging each change (secrets without
 * their value); for every other key that differs, logs a warning naming the
 * key and the value kept ("listen changes need a restart; kept
 * 127.0.0.1:8080"). Returns the number of such keys kept. */
int sr_config_reload(sr_config *c, const sr_config *from);
/* Splits "host:port" (port required; "[v6]:port" allowed). Returns 0 or -1. */
int sr_config_split_listen(const char *listen, char *host, size_t hostlen, int *port);

#endif
