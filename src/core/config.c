#include "core/config.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void sr_config_init(sr_config *c) {
    memset(c, 0, sizeof *c);
    sr_config_set_str(&c->listen, "127.0.0.1:8080");
    sr_config_set_str(&c->data, "./data");
    c->log_level = SR_LOG_INFO;
    c->validity_s = 172800;
    c->max_parts = 10;
    c->max_header_bytes = 16 * 1024;
    c->max_body_bytes = 1024 * 1024;
    c->max_connections = 10000;
    c->header_timeout_ms = 10000;
    c->body_timeout_ms = 10000;
    c->idle_timeout_ms = 60000;
    c->request_timeout_ms = 30000;
    c->max_unsent_bytes = 256 * 1024;
    c->shutdown_timeout_ms = 5000;
    c->map_size = 256u << 20;
    c->map_size_max = (size_t)64 << 30;
    c->store_reserve = (size_t)32 << 20;
    c->retry_base_ms = 1000;
    c->retry_cap_ms = 60000;
    c->retry_after_max_s = 300;
    c->circuit_failures = 5;
    c->circuit_cooldown_ms = 5000;
    c->instruction_budget = 1000000;
    c->time_limit_ms = 1000;
    c->max_event_bytes = 64 * 1024;
    c->dlr_orphan_after_s = 3600;
    c->dlr_park_max = 100000;
    c->dlr_park_max_bytes = 32u << 20;
    c->poll_max_age_s = 7200;
    c->inbound_retention_s = 7 * 86400;
    c->memory_limit = 64u << 20;
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

void sr_config_apply_live(sr_config *c, const sr_config *from) {
    for (int i = 0; i < c->api_key_count; i++) free(c->api_keys[i]);
    free(c->api_keys);
    c->api_keys = NULL;
    c->api_key_count = 0;
    for (int i = 0; i < from->api_key_count; i++) sr_config_add_api_key(c, from->api_keys[i]);
    sr_config_set_str(&c->admin_key, from->admin_key);
    sr_config_set_str(&c->default_country, from->default_country);
    sr_config_set_str(&c->public_url, from->public_url);
    c->validity_s = from->validity_s;
    c->max_parts = from->max_parts;
    c->retry_base_ms = from->retry_base_ms;
    c->retry_cap_ms = from->retry_cap_ms;
    c->retry_after_max_s = from->retry_after_max_s;
    c->circuit_failures = from->circuit_failures;
    c->circuit_cooldown_ms = from->circuit_cooldown_ms;
    c->instruction_budget = from->instruction_budget;
    c->time_limit_ms = from->time_limit_ms;
    c->memory_limit = from->memory_limit;
    c->max_event_bytes = from->max_event_bytes;
    c->dlr_orphan_after_s = from->dlr_orphan_after_s;
    c->dlr_park_max = from->dlr_park_max;
    c->dlr_park_max_bytes = from->dlr_park_max_bytes;
    c->poll_max_age_s = from->poll_max_age_s;
    c->inbound_retention_s = from->inbound_retention_s;
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
