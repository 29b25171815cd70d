#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

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
    c->shutdown_timeout_ms = 5000;
    c->map_size = 256u << 20;
    c->map_size_max = (size_t)64 << 30;
    c->retry_base_ms = 1000;
    c->retry_cap_ms = 60000;
    c->retry_after_max_s = 300;
    c->circuit_failures = 5;
    c->circuit_cooldown_ms = 5000;
    c->instruction_budget = 1000000;
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
