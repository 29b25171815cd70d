#include "core/config.h"
#include "core/buf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define CONFIG_FIELD(field) offsetof(sr_config, field), sizeof(((sr_config *)0)->field)
#define CONFIG_INT(name, field, min, max, def, live, unit, doc)                                                        \
    { name, SR_CONFIG_INT, CONFIG_FIELD(field), min, max, def, NULL, live, false, unit, doc, NULL }
#define CONFIG_STR(name, type, field, def, live, secret, doc)                                                          \
    { name, type, CONFIG_FIELD(field), 0, 0, 0, def, live, secret, "", doc, NULL }
/* A string that its check must accept (sr_config_check_string). */
#define CONFIG_CHECKED_STR(name, field, def, live, check, doc)                                                         \
    { name, SR_CONFIG_STRING, CONFIG_FIELD(field), 0, 0, 0, def, live, false, "", doc, check }
#define LIVE true
#define RESTART false
#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)
#define DAY_S ((int64_t)86400)

/* ---- checks of string keys (the rows' check) ---- */

/* The user information of URLs is a password or a token: error messages quote values without it. */
static void config_quote(const char *value, char *why, size_t whylen, const char *fmt) {
    char shown[256];
    sr_config_redact_urls(value, shown, sizeof shown);
    snprintf(why, whylen, fmt, shown);
}

/* A name of 1 to max characters, each a letter, a digit or one of extra. */
static int config_is_name(const char *s, size_t max, const char *extra) {
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i])) return 0;
    return 1;
}

/* "HOST:PORT" (HOST a name, an IPv4 address or "[IPv6]"; PORT 1-65535) in s[0..n). */
static int config_is_host_port(const char *s, size_t n) {
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon || colon == s) return 0;
    size_t hlen = (size_t)(colon - s), plen = n - hlen - 1;
    const char *host_chars = "-._";
    if (s[0] == '[') {
        if (hlen < 3 || s[hlen - 1] != ']') return 0;
        s++;
        hlen -= 2;
        host_chars = ":.";
    }
    for (size_t i = 0; i < hlen; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(host_chars, s[i])) return 0;
    if (plen == 0 || plen > 5) return 0;
    long port = 0;
    for (size_t i = 0; i < plen; i++) {
        if (!isdigit((unsigned char)colon[1 + i])) return 0;
        port = port * 10 + (colon[1 + i] - '0');
    }
    return port >= 1 && port <= 65535;
}

/* One NATS server URL in s[0..n): nats:// or tls://, optional user information, HOST:PORT, nothing after. */
static int config_is_nats_url(const char *s, size_t n) {
    size_t scheme = strncmp(s, "nats://", 7) == 0 ? 7 : strncmp(s, "tls://", 6) == 0 ? 6 : 0;
    if (!scheme) return 0;
    const char *auth = s + scheme, *end = s + n, *at = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@') at = p;
    if (at) {
        if (at == auth) return 0;
        auth = at + 1;
    }
    return config_is_host_port(auth, (size_t)(end - auth));
}

static int config_check_cluster(const char *value, char *why, size_t whylen) {
    static const char want[] = "must be comma-separated nats://HOST:PORT or tls://HOST:PORT URLs";
    char fmt[160];
    if (!*value) return 0; /* a single node */
    for (const char *p = value;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n == 0) {
            snprintf(fmt, sizeof fmt, "%s; '%%s' has an empty one", want);
            config_quote(value, why, whylen, fmt);
            return -EINVAL;
        }
        if (!config_is_nats_url(p, n)) {
            char item[512];
            snprintf(item, sizeof item, "%.*s", (int)(n < sizeof item ? n : sizeof item - 1), p);
            snprintf(fmt, sizeof fmt, "%s; '%%s' is not one", want);
            config_quote(item, why, whylen, fmt);
            return -EINVAL;
        }
        if (!comma) return 0;
        p = comma + 1;
    }
}

/* A JetStream stream name: no '.', '*', '>' or white space (NATS rules), kept to a portable alphabet. */
static int config_check_stream(const char *value, char *why, size_t whylen) {
    if (config_is_name(value, 32, "-_")) return 0;
    config_quote(value, why, whylen, "must be 1 to 32 letters, digits, '-' or '_' (a JetStream stream name); got '%s'");
    return -EINVAL;
}

static int config_check_node(const char *value, char *why, size_t whylen) {
    if (config_is_name(value, 64, "-_.")) return 0;
    config_quote(value, why, whylen, "must be 1 to 64 letters, digits, '-', '_' or '.'; got '%s'");
    return -EINVAL;
}

/* ---- the keys ---- */

/* Live means the reload path hands the new value to what reads it (scheduler, reports, the rules' sandbox, the
 * API handlers read app->config on each use); the HTTP server's limits and the store's sizes are taken once, at
 * start. */
const sr_config_key sr_config_keys[] = {
    CONFIG_STR("listen", SR_CONFIG_STRING, listen, "127.0.0.1:8080", RESTART, false,
               "host:port the HTTP API listens on (`--listen` wins)"),
    CONFIG_STR("data", SR_CONFIG_STRING, data, "./data", RESTART, false, "the data directory (`--data` wins)"),
    {"log_level", SR_CONFIG_LOG_LEVEL, CONFIG_FIELD(log_level), SR_LOG_DEBUG, SR_LOG_ERROR, SR_LOG_INFO, NULL, LIVE,
     false, "", "`debug`, `info`, `warn` or `error` (`--log-level` wins)", NULL},
    {"api_keys", SR_CONFIG_KEY_LIST, CONFIG_FIELD(api_keys), 0, 0, 0, NULL, LIVE, true, "",
     "list of keys of the send and event API, added to those of `SMSRULES_API_KEYS` (comma-separated); none: "
     "every request is refused (401)",
     NULL},
    CONFIG_STR("admin_key", SR_CONFIG_STRING, admin_key, NULL, LIVE, true,
               "key of the admin API (`/v1/admin/...`); none: the admin API is off"),
    CONFIG_STR("default_country", SR_CONFIG_COUNTRY, default_country, NULL, LIVE, false,
               "country of numbers written without `+` (calling code or ISO code)"),
    CONFIG_STR("public_url", SR_CONFIG_STRING, public_url, NULL, LIVE, false,
               "externally visible base URL: callback URLs and webhook signatures (default: the request's Host)"),
    CONFIG_INT("validity", validity_s, 1, 3 * DAY_S, 2 * DAY_S, LIVE, "s", "a message's validity when it names none"),
    CONFIG_INT("max_parts", max_parts, 1, 255, 10, LIVE, "", "most SMS parts one message may take"),
    CONFIG_INT("max_header_bytes", max_header_bytes, KIB, 16 * MIB, 16 * KIB, RESTART, "bytes",
               "request headers (and trailers) at most: 431"),
    CONFIG_INT("max_body_bytes", max_body_bytes, KIB, GIB, MIB, RESTART, "bytes", "request body at most: 413"),
    CONFIG_INT("max_connections", max_connections, 1, 1000000, 10000, RESTART, "", "open connections at most: 503"),
    CONFIG_INT("header_timeout_ms", header_timeout_ms, 1, 3600000, 10000, RESTART, "ms",
               "first byte to end of headers: 408"),
    CONFIG_INT("body_timeout_ms", body_timeout_ms, 1, 3600000, 10000, RESTART, "ms", "silence within a body: 408"),
    CONFIG_INT("idle_timeout_ms", idle_timeout_ms, 1, 86400000, 60000, RESTART, "ms",
               "keep-alive between requests: close"),
    CONFIG_INT("request_timeout_ms", request_timeout_ms, 1, 3600000, 30000, RESTART, "ms",
               "first to last byte of a request: 408"),
    CONFIG_INT("max_unsent_bytes", max_unsent_bytes, 4 * KIB, GIB, 256 * KIB, RESTART, "bytes",
               "answers waiting for one client before its reading pauses"),
    CONFIG_INT("shutdown_timeout_ms", shutdown_timeout_ms, 0, 600000, 5000, LIVE, "ms",
               "how long SIGTERM waits for requests in flight"),
    CONFIG_INT("map_size", map_size, MIB, (int64_t)1 << 44, 256 * MIB, RESTART, "bytes", "initial LMDB map size"),
    CONFIG_INT("map_size_max", map_size_max, MIB, (int64_t)1 << 46, 64 * GIB, RESTART, "bytes",
               "the LMDB map grows up to this"),
    CONFIG_INT("store_reserve", store_reserve, 0, (int64_t)1 << 40, 32 * MIB, RESTART, "bytes",
               "room kept for recording outcomes; below it new data gets 507 (0: off)"),
    CONFIG_INT("retry_base_ms", retry_base_ms, 1, 3600000, 1000, LIVE, "ms", "retry backoff base"),
    CONFIG_INT("retry_cap_ms", retry_cap_ms, 1, 86400000, 60000, LIVE, "ms", "retry backoff cap"),
    CONFIG_INT("retry_after_max_s", retry_after_max_s, 0, DAY_S, 300, LIVE, "s", "`Retry-After` honoured up to this"),
    CONFIG_INT("circuit_failures", circuit_failures, 1, 1000, 5, LIVE, "",
               "consecutive failures that open a provider's circuit"),
    CONFIG_INT("circuit_cooldown_ms", circuit_cooldown_ms, 10, 3600000, 5000, LIVE, "ms",
               "an open circuit lets one probe through after this"),
    CONFIG_INT("instruction_budget", instruction_budget, 1000, (int64_t)1 << 40, 1000000, LIVE, "",
               "Lua instructions per run of a handler"),
    CONFIG_INT("time_limit_ms", time_limit_ms, 10, 600000, 1000, LIVE, "ms",
               "wall clock one run of Lua may hold the loop"),
    CONFIG_INT("memory_limit", memory_limit, MIB, (int64_t)1 << 40, 64 * MIB, LIVE, "bytes",
               "memory of the rules' Lua state"),
    CONFIG_INT("max_event_bytes", max_event_bytes, KIB, MIB, 64 * KIB, LIVE, "bytes",
               "largest event or webhook body handed to Lua: 413"),
    CONFIG_INT("dlr_orphan_after", dlr_orphan_after_s, 1, 30 * DAY_S, 3600, LIVE, "s",
               "a parked report for an unknown id counts as orphaned after this"),
    CONFIG_INT("dlr_park_max", dlr_park_max, 1, 100000000, 100000, LIVE, "", "parked reports kept at most"),
    CONFIG_INT("dlr_park_max_bytes", dlr_park_max_bytes, 4 * KIB, (int64_t)1 << 40, 32 * MIB, LIVE, "bytes",
               "bytes of parked reports kept at most"),
    CONFIG_INT("poll_max_age", poll_max_age_s, 10, 30 * DAY_S, 7200, LIVE, "s",
               "status polls stop this long after sent"),
    CONFIG_INT("inbound_retention", inbound_retention_s, 3600, 3650 * DAY_S, 7 * DAY_S, LIVE, "s",
               "inbound SMS are kept this long"),
    {"env", SR_CONFIG_NAME_LIST, SR_CONFIG_NO_FIELD, 0, 0, 0, 0, NULL, LIVE, false, "",
     "list of environment variables handlers may read with `sms.env`", NULL},
    {"env_prefix", SR_CONFIG_PREFIX, SR_CONFIG_NO_FIELD, 0, 0, 0, 0, NULL, LIVE, false, "",
     "handlers may read the variables with this prefix (not `SMSRULES_`)", NULL},
    /* Cluster mode is chosen at start: the store is one or the other for the life of the process. */
    CONFIG_CHECKED_STR(
        "cluster", cluster, NULL, RESTART, config_check_cluster,
        "cluster mode (see docs/cluster.md): the NATS servers, comma-separated `nats://HOST:PORT` or "
        "`tls://HOST:PORT`; none: a single node (`--cluster` wins). Also a table: `cluster = { urls = {...}, stream = "
        "..., replicas = ..., node = ... }`"),
    CONFIG_CHECKED_STR("cluster_stream", cluster_stream, "SMSRULES", RESTART, config_check_stream,
                       "cluster mode (see docs/cluster.md): the JetStream stream (letters, digits, `-`, `_`; at "
                       "most 32)"),
    CONFIG_INT("cluster_replicas", cluster_replicas, 1, 5, 3, RESTART, "",
               "cluster mode (see docs/cluster.md): the stream's replication factor when this node creates it"),
    CONFIG_INT("cluster_retention_s", cluster_retention_s, 3600, 366 * DAY_S, DAY_S, RESTART, "s",
               "cluster mode (see docs/cluster.md): the stream keeps units this long; a node down longer is seeded "
               "from another node's backup"),
    CONFIG_INT("cluster_node_timeout_ms", cluster_node_timeout_ms, 200, 600000, 10000, RESTART, "ms",
               "cluster mode (see docs/cluster.md): a node not heard from this long is gone; another takes over "
               "its messages in flight and its owed handlers"),
    CONFIG_CHECKED_STR("node", node, NULL, RESTART, config_check_node,
                       "cluster mode (see docs/cluster.md): this node's name, unique in the cluster (letters, "
                       "digits, `-`, `_`, `.`; at most 64); none: `<hostname>-<pid>` (`--node` wins)"),
};
const size_t sr_config_key_count = sizeof sr_config_keys / sizeof sr_config_keys[0];

const sr_config_key *sr_config_key_find(const char *name) {
    for (size_t i = 0; i < sr_config_key_count; i++)
        if (strcmp(sr_config_keys[i].name, name) == 0) return &sr_config_keys[i];
    return NULL;
}

static void *config_field(const sr_config *c, const sr_config_key *k) { return (char *)c + k->offset; }

int64_t sr_config_get_int(const sr_config *c, const sr_config_key *k) {
    /* int fields hold 4 bytes, size_t and uint64_t 8; every value is within [min, max], non-negative. */
    if (k->size == sizeof(int32_t)) {
        int32_t v;
        memcpy(&v, config_field(c, k), sizeof v);
        return v;
    }
    uint64_t v;
    memcpy(&v, config_field(c, k), sizeof v);
    return (int64_t)v;
}

int sr_config_set_int(sr_config *c, const sr_config_key *k, int64_t v) {
    if (v < k->min || v > k->max) return -ERANGE;
    if (k->size == sizeof(int32_t)) {
        int32_t narrow = (int32_t)v;
        memcpy(config_field(c, k), &narrow, sizeof narrow);
    } else {
        uint64_t wide = (uint64_t)v;
        memcpy(config_field(c, k), &wide, sizeof wide);
    }
    return 0;
}

char **sr_config_str_slot(sr_config *c, const sr_config_key *k) { return (char **)config_field(c, k); }

int sr_config_check_string(const sr_config_key *k, const char *value, char *why, size_t whylen) {
    if (whylen) why[0] = '\0';
    return k->check ? k->check(value, why, whylen) : 0;
}

/* Appends s[0..n) to out[*used..len), truncating; out stays terminated. */
static void config_put(char *out, size_t len, size_t *used, const char *s, size_t n) {
    if (*used + 1 >= len) return;
    if (n > len - 1 - *used) n = len - 1 - *used;
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
}

void sr_config_redact_urls(const char *in, char *out, size_t len) {
    size_t used = 0;
    if (!len) return;
    out[0] = '\0';
    while (*in) {
        const char *sep = strstr(in, "://");
        if (!sep) break;
        /* The user information ends at the last '@' before the next ',' or white space, '/', '?' and '#'
         * included: a password written without percent-encoding may hold them, and the cluster check takes
         * the last '@' of each URL too. A path holding '@' is cut short in the log, never a password shown. */
        const char *auth = sep + 3, *end = auth + strcspn(auth, ", \t"), *at = NULL;
        for (const char *p = auth; p < end; p++)
            if (*p == '@') at = p;
        config_put(out, len, &used, in, (size_t)(auth - in));
        in = at ? at + 1 : auth;
    }
    config_put(out, len, &used, in, strlen(in));
}

void sr_config_pin(sr_config *c, const char *name) {
    const sr_config_key *k = sr_config_key_find(name);
    if (k) c->pinned |= (uint64_t)1 << (k - sr_config_keys);
}

void sr_config_init(sr_config *c) {
    /* The pinned bits (one per key) must fit. */
    _Static_assert(sizeof sr_config_keys / sizeof sr_config_keys[0] <= 64, "too many config keys for pinned");
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sr_config_key_count; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        if (k->type == SR_CONFIG_INT || k->type == SR_CONFIG_LOG_LEVEL) {
            if (sr_config_set_int(c, k, k->def) != 0) abort(); /* a default outside its own limits */
        } else if (k->type == SR_CONFIG_STRING || k->type == SR_CONFIG_COUNTRY) {
            sr_config_set_str(sr_config_str_slot(c, k), k->def_text);
        }
    }
}

void sr_config_set_str(char **slot, const char *value) {
    free(*slot);
    *slot = NULL;
    if (value) {
        *slot = strdup(value);
        if (!*slot) abort();
    }
}

void sr_config_add_api_key(sr_config *c, const char *key) {
    if (!key || !*key) return;
    char **keys = realloc(c->api_keys, sizeof(char *) * (size_t)(c->api_key_count + 2));
    if (!keys) abort();
    c->api_keys = keys;
    keys[c->api_key_count] = NULL;
    sr_config_set_str(&keys[c->api_key_count], key);
    c->api_key_count++;
    keys[c->api_key_count] = NULL;
}

void sr_config_free(sr_config *c) {
    free(c->listen);
    free(c->data);
    for (int i = 0; i < c->api_key_count; i++) free(c->api_keys[i]);
    free(c->api_keys);
    free(c->admin_key);
    free(c->default_country);
    free(c->public_url);
    free(c->cluster);
    free(c->cluster_stream);
    free(c->node);
    memset(c, 0, sizeof *c);
}

void sr_config_add_env_api_keys(sr_config *c) {
    const char *env_keys = getenv("SMSRULES_API_KEYS");
    if (!env_keys) return;
    char *copy = strdup(env_keys), *save = NULL;
    if (!copy) abort();
    for (char *k = strtok_r(copy, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        while (*k == ' ') k++;
        size_t n = strlen(k);
        while (n && k[n - 1] == ' ') k[--n] = '\0';
        sr_config_add_api_key(c, k);
    }
    free(copy);
}

/* ---- reload ---- */

void sr_config_format(const sr_config *c, const sr_config_key *k, char *out, size_t len) {
    if (k->secret) {
        snprintf(out, len, "(secret)");
    } else if (k->type == SR_CONFIG_INT) {
        snprintf(out, len, "%lld", (long long)sr_config_get_int(c, k));
    } else if (k->type == SR_CONFIG_LOG_LEVEL) {
        static const char *const levels[] = {"debug", "info", "warn", "error"};
        int64_t v = sr_config_get_int(c, k);
        sr_str_copy(out, len, v >= 0 && v < 4 ? levels[v] : "?");
    } else if (k->type == SR_CONFIG_STRING || k->type == SR_CONFIG_COUNTRY) {
        const char *v = *sr_config_str_slot((sr_config *)c, k);
        sr_config_redact_urls(v ? v : "(none)", out, len);
    } else {
        snprintf(out, len, "-");
    }
}

static int config_str_equal(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static int config_key_equal(const sr_config *a, const sr_config *b, const sr_config_key *k) {
    switch (k->type) {
    case SR_CONFIG_INT:
    case SR_CONFIG_LOG_LEVEL: return sr_config_get_int(a, k) == sr_config_get_int(b, k);
    case SR_CONFIG_STRING:
    case SR_CONFIG_COUNTRY:
        return config_str_equal(*sr_config_str_slot((sr_config *)a, k), *sr_config_str_slot((sr_config *)b, k));
    case SR_CONFIG_KEY_LIST:
        if (a->api_key_count != b->api_key_count) return 0;
        for (int i = 0; i < a->api_key_count; i++)
            if (strcmp(a->api_keys[i], b->api_keys[i]) != 0) return 0;
        return 1;
    default: return 1; /* kept by the rules state: a reload brings a new one */
    }
}

static void config_copy_key(sr_config *c, const sr_config *from, const sr_config_key *k) {
    if (k->type == SR_CONFIG_INT || k->type == SR_CONFIG_LOG_LEVEL) {
        sr_config_set_int(c, k, sr_config_get_int(from, k));
    } else if (k->type == SR_CONFIG_STRING || k->type == SR_CONFIG_COUNTRY) {
        sr_config_set_str(sr_config_str_slot(c, k), *sr_config_str_slot((sr_config *)from, k));
    } else if (k->type == SR_CONFIG_KEY_LIST) {
        for (int i = 0; i < c->api_key_count; i++) free(c->api_keys[i]);
        free(c->api_keys);
        c->api_keys = NULL;
        c->api_key_count = 0;
        for (int i = 0; i < from->api_key_count; i++) sr_config_add_api_key(c, from->api_keys[i]);
    }
}

int sr_config_reload(sr_config *c, const sr_config *from) {
    int kept = 0;
    for (size_t i = 0; i < sr_config_key_count; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        if ((c->pinned >> i & 1) || config_key_equal(c, from, k)) continue;
        char was[128], wanted[128], msg[256];
        sr_config_format(c, k, was, sizeof was);
        sr_config_format(from, k, wanted, sizeof wanted);
        if (!k->live) {
            snprintf(msg, sizeof msg, "%s changes need a restart; kept %s", k->name, was);
            sr_warn(msg, "key", k->name, "kept", was, "wanted", wanted);
            kept++;
            continue;
        }
        config_copy_key(c, from, k);
        sr_info("config changed by the reload", "key", k->name, "from", was, "to", wanted);
    }
    return kept;
}

int sr_config_split_listen(const char *listen, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen) return -1;
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (h[0] == '[') {
        if (hlen < 2 || h[hlen - 1] != ']') return -1;
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= hostlen) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535) return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}
