/* Unit tests for src/core/config.c: the table of sms.config keys — its
 * defaults and limits, the reload (live keys taken, restart keys kept,
 * command-line keys pinned) — and the key tables in docs/rules.md and
 * src/rules/bindings/lua_sms.md, which must be what the table generates. To
 * regenerate them after changing a key:
 * SR_WRITE_README=1 build/tests/test_config readme_lists_every_key */
#include <errno.h>

#include "core/buf.h"
#include "core/config.h"
#include "unit.h"

/* ---- the table -------------------------------------------------------------- */

TEST(names_are_unique_and_found) {
    for (size_t i = 0; i < sr_config_key_count; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        CHECK(sr_config_key_find(k->name) == k);
        CHECK(k->doc && k->doc[0]);
    }
    CHECK(sr_config_key_find("valdity") == NULL);
    CHECK(sr_config_key_find("") == NULL);
    CHECK(sr_config_key_find("listen")->live == false);
    CHECK(sr_config_key_find("validity")->live == true);
}

TEST(defaults_are_within_limits_and_applied) {
    sr_config c;
    sr_config_init(&c);
    for (size_t i = 0; i < sr_config_key_count; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        if (k->type != SR_CONFIG_INT) continue;
        if (k->def < k->min || k->def > k->max)
            UNIT_FAIL("%s: default %lld outside its limits", k->name, (long long)k->def);
        CHECK_INT(sr_config_get_int(&c, k), k->def);
    }
    /* The fields the daemon reads, as the table set them. */
    CHECK_STR(c.listen, "127.0.0.1:8080");
    CHECK_STR(c.data, "./data");
    CHECK(c.admin_key == NULL && c.default_country == NULL && c.public_url == NULL && c.api_key_count == 0);
    CHECK_INT(c.log_level, 1); /* info */
    CHECK_INT(c.validity_s, 172800);
    CHECK_INT(c.max_parts, 10);
    CHECK_INT(c.max_body_bytes, 1024 * 1024);
    CHECK_INT(c.map_size_max, (int64_t)64 << 30);
    CHECK_INT(c.inbound_retention_s, 7 * 86400);
    CHECK_INT(c.memory_limit, 64 << 20);
    sr_config_free(&c);
}

/* Every integer key takes its own limits (the field is wide enough for the
 * largest) and refuses one past either, changing nothing. */
TEST(integers_refuse_values_out_of_limits) {
    sr_config c;
    sr_config_init(&c);
    for (size_t i = 0; i < sr_config_key_count; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        if (k->type != SR_CONFIG_INT) continue;
        CHECK_INT(sr_config_set_int(&c, k, k->max), 0);
        CHECK_INT(sr_config_get_int(&c, k), k->max);
        CHECK_INT(sr_config_set_int(&c, k, k->min), 0);
        CHECK_INT(sr_config_get_int(&c, k), k->min);
        CHECK_INT(sr_config_set_int(&c, k, k->max + 1), -ERANGE);
        CHECK_INT(sr_config_set_int(&c, k, k->min - 1), -ERANGE);
        CHECK_INT(sr_config_get_int(&c, k), k->min);
    }
    sr_config_free(&c);
}

/* ---- reload ----------------------------------------------------------------- */

TEST(reload_takes_live_keys_and_keeps_restart_keys) {
    sr_config running, file;
    sr_config_init(&running);
    sr_config_init(&file);
    sr_config_add_api_key(&running, "old");
    sr_config_add_api_key(&file, "new1");
    sr_config_add_api_key(&file, "new2");
    sr_config_set_str(&file.listen, "0.0.0.0:9999");
    sr_config_set_str(&file.admin_key, "adm");
    file.validity_s = 60;
    file.max_body_bytes = 4096;
    file.shutdown_timeout_ms = 0;
    file.log_level = 3;
    CHECK_INT(sr_config_reload(&running, &file), 2); /* listen, max_body_bytes */
    CHECK_STR(running.listen, "127.0.0.1:8080");
    CHECK_INT(running.max_body_bytes, 1024 * 1024);
    CHECK_INT(running.validity_s, 60);
    CHECK_INT(running.shutdown_timeout_ms, 0);
    CHECK_INT(running.log_level, 3);
    CHECK_STR(running.admin_key, "adm");
    CHECK_INT(running.api_key_count, 2);
    CHECK_STR(running.api_keys[0], "new1");
    CHECK_STR(running.api_keys[1], "new2");
    CHECK(running.api_keys[2] == NULL);
    /* A second identical reload changes and warns nothing. */
    CHECK_INT(sr_config_reload(&running, &file), 2);
    sr_config_set_str(&file.listen, "127.0.0.1:8080");
    file.max_body_bytes = 1024 * 1024;
    CHECK_INT(sr_config_reload(&running, &file), 0);
    /* A key the file no longer sets goes back to its default. */
    sr_config_set_str(&file.admin_key, NULL);
    sr_config_reload(&running, &file);
    CHECK(running.admin_key == NULL);
    sr_config_free(&running);
    sr_config_free(&file);
}

/* What the command line set wins over a reload too, silently. */
TEST(reload_keeps_pinned_keys) {
    sr_config running, file;
    sr_config_init(&running);
    sr_config_init(&file);
    sr_config_set_str(&running.listen, "127.0.0.1:5555");
    sr_config_pin(&running, "listen");
    running.log_level = 0;
    sr_config_pin(&running, "log_level");
    sr_config_pin(&running, "no such key"); /* ignored */
    file.log_level = 3;
    file.retry_base_ms = 7;
    CHECK_INT(sr_config_reload(&running, &file), 0);
    CHECK_STR(running.listen, "127.0.0.1:5555");
    CHECK_INT(running.log_level, 0);
    CHECK_INT(running.retry_base_ms, 7);
    sr_config_free(&running);
    sr_config_free(&file);
}

TEST(format_hides_secrets) {
    sr_config c;
    sr_config_init(&c);
    sr_config_set_str(&c.admin_key, "topsecret");
    char out[64];
    sr_config_format(&c, sr_config_key_find("admin_key"), out, sizeof out);
    CHECK_STR(out, "(secret)");
    sr_config_format(&c, sr_config_key_find("public_url"), out, sizeof out);
    CHECK_STR(out, "(none)");
    sr_config_format(&c, sr_config_key_find("log_level"), out, sizeof out);
    CHECK_STR(out, "info");
    sr_config_format(&c, sr_config_key_find("max_parts"), out, sizeof out);
    CHECK_STR(out, "10");
    sr_config_free(&c);
}

/* ---- cluster mode ----------------------------------------------------------------- */

TEST(cluster_keys_are_restart_only_with_their_defaults) {
    static const char *const names[] = {"cluster", "cluster_stream", "cluster_replicas", "node"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const sr_config_key *k = sr_config_key_find(names[i]);
        CHECK(k != NULL && k->live == false && strstr(k->doc, "cluster mode (see docs/cluster.md)"));
    }
    const sr_config_key *replicas = sr_config_key_find("cluster_replicas");
    CHECK(replicas->type == SR_CONFIG_INT && replicas->min == 1 && replicas->max == 5 && replicas->def == 3);
    sr_config c;
    sr_config_init(&c);
    CHECK(c.cluster == NULL && c.node == NULL);
    CHECK_STR(c.cluster_stream, "SMSRULES");
    CHECK_INT(c.cluster_replicas, 3);
    sr_config_free(&c);
}

/* A string key's default passes its own check (else a file that names no value would be refused). */
TEST(string_defaults_pass_their_checks) {
    for (size_t i = 0; i < sr_config_key_count; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        char why[256];
        if (k->check && k->def_text && sr_config_check_string(k, k->def_text, why, sizeof why) != 0)
            UNIT_FAIL("%s: default '%s' %s", k->name, k->def_text, why);
        if (k->check) CHECK(k->type == SR_CONFIG_STRING);
    }
    char why[64] = "stale";
    CHECK_INT(sr_config_check_string(sr_config_key_find("listen"), "anything", why, sizeof why), 0);
    CHECK_STR(why, "");
}

/* value refused by key; why must hold want (and never the word secret: URL credentials stay out). */
static void check_refused(const char *key, const char *value, const char *want) {
    char why[512];
    if (sr_config_check_string(sr_config_key_find(key), value, why, sizeof why) != -EINVAL)
        UNIT_FAIL("%s = '%s' was accepted", key, value);
    if (!strstr(why, want)) UNIT_FAIL("%s = '%s': '%s' does not say '%s'", key, value, why, want);
    if (strstr(why, "secret")) UNIT_FAIL("%s = '%s': '%s' shows the credentials", key, value, why);
}

static void check_accepted(const char *key, const char *value) {
    char why[512];
    if (sr_config_check_string(sr_config_key_find(key), value, why, sizeof why) != 0)
        UNIT_FAIL("%s = '%s' was refused: %s", key, value, why);
}

TEST(cluster_takes_nats_and_tls_urls) {
    static const char *const good[] = {"", /* a single node */
                                       "nats://127.0.0.1:4222",
                                       "tls://nats.example.com:4443",
                                       "nats://a:4222,nats://b:4223,tls://c-1.example:65535",
                                       " nats://a:4222 , nats://b:1",
                                       "nats://user:secret@10.0.0.1:4222",
                                       "nats://s3cr3t-token@h:4222",
                                       "nats://[::1]:4222",
                                       "nats://[fe80::1]:4222,nats://h_1:1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) check_accepted("cluster", good[i]);
    static const char want[] = "must be comma-separated nats://HOST:PORT or tls://HOST:PORT URLs";
    static const char *const bad[][2] = {
        {"not-a-url", "'not-a-url' is not one"},
        {"http://h:4222", "'http://h:4222' is not one"},
        {"nats://h", "'nats://h' is not one"},
        {"nats://h:", "'nats://h:' is not one"},
        {"nats://h:0", "'nats://h:0' is not one"},
        {"nats://h:65536", "'nats://h:65536' is not one"},
        {"nats://h:42x", "is not one"},
        {"nats://h:123456", "is not one"},
        {"nats://:4222", "is not one"},
        {"nats://h:4222/", "'nats://h:4222/' is not one"},
        {"nats://h:4222?x=1", "is not one"},
        {"nats://h 1:4222", "is not one"},
        {"nats://@h:4222", "is not one"},
        {"nats://[::1:4222", "is not one"},
        {"nats://[]:4222", "is not one"},
        {"NATS://h:4222", "is not one"},
        {"nats://a:1,", "'nats://a:1,' has an empty one"},
        {"nats://a:1,,nats://b:2", "has an empty one"},
        {",nats://a:1", "has an empty one"},
        {" ", "has an empty one"},
        {"nats://a:1,b:2", "'b:2' is not one"},
        /* The credentials of a refused URL are not repeated in the message. */
        {"nats://bob:secret@h:0", "'nats://h:0' is not one"},
        {"nats://bob:secret/1@h:0", "'nats://h:0' is not one"},
        {"nats://a:1,,tls://secret@b:2", "'nats://a:1,,tls://b:2' has an empty one"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        check_refused("cluster", bad[i][0], want);
        check_refused("cluster", bad[i][0], bad[i][1]);
    }
}

TEST(cluster_stream_takes_a_jetstream_stream_name) {
    check_accepted("cluster_stream", "SMSRULES");
    check_accepted("cluster_stream", "sms-rules_2");
    check_accepted("cluster_stream", "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"); /* 32 */
    static const char want[] = "must be 1 to 32 letters, digits, '-' or '_' (a JetStream stream name)";
    static const char *const bad[] = {"",          "SMS.RULES",  "SMS*", "SMS>",
                                      "SMS RULES", "SMS\tRULES", "a/b",  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456" /* 33 */,
                                      "é"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) check_refused("cluster_stream", bad[i], want);
    check_refused("cluster_stream", "SMS.RULES", "got 'SMS.RULES'");
}

TEST(node_takes_a_name) {
    check_accepted("node", "node-1");
    check_accepted("node", "sms_a.example.com");
    char longest[66];
    memset(longest, 'n', 64);
    longest[64] = '\0';
    check_accepted("node", longest);
    static const char want[] = "must be 1 to 64 letters, digits, '-', '_' or '.'";
    longest[64] = 'n';
    longest[65] = '\0';
    check_refused("node", longest, want);
    static const char *const bad[] = {"", "node 1", "node/1", "node*", "node>", "node:1", "nöde"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) check_refused("node", bad[i], want);
    check_refused("node", "node 1", "got 'node 1'");
}

TEST(redact_urls_strips_credentials) {
    static const char *const cases[][2] = {
        {"nats://user:pw@h:4222", "nats://h:4222"},
        {"nats://u:p@a:1,tls://token@b:2, nats://c:3", "nats://a:1,tls://b:2, nats://c:3"},
        {"nats://h:4222", "nats://h:4222"},
        {"nats://we@ird:pw@h:1", "nats://h:1"}, /* the last '@' of the authority ends the user */
        {"nats://u:pa/ss#?@h:1", "nats://h:1"}, /* a password not percent-encoded */
        {"https://u:p@h/path", "https://h/path"},
        {"nats://h:1,tls://u@", "nats://h:1,tls://"},
        {"./data", "./data"},
        {"me@example.com", "me@example.com"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[128];
        sr_config_redact_urls(cases[i][0], out, sizeof out);
        CHECK_STR(out, cases[i][1]);
    }
    char small[12];
    sr_config_redact_urls("nats://u:p@host.example:4222", small, sizeof small);
    CHECK_STR(small, "nats://host");
    char one[1] = {'x'};
    sr_config_redact_urls("nats://u:p@h:1", one, sizeof one);
    CHECK_INT(one[0], '\0');
    sr_config_redact_urls("nats://u:p@h:1", one, 0); /* writes nothing */
}

/* What the log shows of the cluster key (a reload's warning, the start line) has no credentials. */
TEST(format_strips_cluster_credentials) {
    sr_config c;
    sr_config_init(&c);
    char out[128];
    sr_config_format(&c, sr_config_key_find("cluster"), out, sizeof out);
    CHECK_STR(out, "(none)");
    sr_config_set_str(&c.cluster, "nats://smsrules:secret@10.0.0.1:4222,nats://10.0.0.2:4222");
    sr_config_format(&c, sr_config_key_find("cluster"), out, sizeof out);
    CHECK_STR(out, "nats://10.0.0.1:4222,nats://10.0.0.2:4222");
    sr_config_format(&c, sr_config_key_find("cluster_stream"), out, sizeof out);
    CHECK_STR(out, "SMSRULES");
    sr_config_free(&c);
}

/* Cluster mode is chosen at start: a reload that changes it keeps the running value (and says so); the
 * command line's --cluster and --node win over a reload. */
TEST(reload_keeps_cluster_keys) {
    sr_config running, file;
    sr_config_init(&running);
    sr_config_init(&file);
    sr_config_set_str(&file.cluster, "nats://a:4222");
    sr_config_set_str(&file.cluster_stream, "OTHER");
    file.cluster_replicas = 1;
    CHECK_INT(sr_config_reload(&running, &file), 3);
    CHECK(running.cluster == NULL);
    CHECK_STR(running.cluster_stream, "SMSRULES");
    CHECK_INT(running.cluster_replicas, 3);
    sr_config_set_str(&running.node, "cli-node");
    sr_config_pin(&running, "node");
    sr_config_set_str(&file.node, "file-node");
    CHECK_INT(sr_config_reload(&running, &file), 3);
    CHECK_STR(running.node, "cli-node");
    sr_config_free(&running);
    sr_config_free(&file);
}

/* ---- docs/rules.md ---------------------------------------------------------------- */

static const char readme_begin[] =
    "<!-- sms.config keys: generated from src/core/config.c, checked by tests/unit/test_config.c -->\n";
static const char readme_end[] = "<!-- end of sms.config keys -->\n";

/* "integer 1-255 s", "string", ... */
static void config_doc_value(sr_buf *b, const sr_config_key *k) {
    switch (k->type) {
    case SR_CONFIG_INT:
        sr_buf_printf(b, "integer %lld-%lld%s%s", (long long)k->min, (long long)k->max, k->unit[0] ? " " : "", k->unit);
        break;
    case SR_CONFIG_STRING: sr_buf_puts(b, "string"); break;
    case SR_CONFIG_LOG_LEVEL: sr_buf_puts(b, "level name"); break;
    case SR_CONFIG_COUNTRY: sr_buf_puts(b, "country"); break;
    case SR_CONFIG_KEY_LIST:
    case SR_CONFIG_NAME_LIST: sr_buf_puts(b, "list of strings"); break;
    case SR_CONFIG_PREFIX: sr_buf_puts(b, "string"); break;
    }
}

/* The markdown table of every key, between the markers. */
static void config_doc(sr_buf *b) {
    sr_config c;
    sr_config_init(&c);
    sr_buf_puts(b, readme_begin);
    sr_buf_puts(b, "| key | value | default | on reload | what |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < sr_config_key_count; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        sr_buf_printf(b, "| `%s` | ", k->name);
        config_doc_value(b, k);
        char def[64] = "none";
        if (k->type == SR_CONFIG_INT || k->type == SR_CONFIG_LOG_LEVEL || k->def_text)
            sr_config_format(&c, k, def, sizeof def);
        sr_buf_printf(b, " | %s | %s | %s |\n", def, k->live ? "changes" : "restart", k->doc);
    }
    sr_buf_puts(b, readme_end);
    sr_config_free(&c);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) UNIT_FAIL("cannot open %s (run the unit tests from the repository root)", path);
    sr_buf b;
    sr_buf_init(&b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sr_buf_append(&b, chunk, n);
    fclose(f);
    return sr_buf_steal(&b, len);
}

/* The key table between the markers of the document at path must be what config_doc writes (rewritten when
 * SR_WRITE_README is set), and so name every key. */
static void config_check_doc(const char *path) {
    size_t len;
    char *doc = read_file(path, &len);
    char *begin = strstr(doc, readme_begin), *end = begin ? strstr(begin, readme_end) : NULL;
    if (!begin || !end) UNIT_FAIL("%s has no sms.config key table between the markers", path);
    end += strlen(readme_end);
    sr_buf want;
    sr_buf_init(&want);
    config_doc(&want);
    int same = (size_t)(end - begin) == want.len && memcmp(begin, want.data, want.len) == 0;
    if (!same && getenv("SR_WRITE_README")) {
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        fwrite(doc, 1, (size_t)(begin - doc), f);
        fwrite(want.data, 1, want.len, f);
        fwrite(end, 1, len - (size_t)(end - doc), f);
        fclose(f);
        printf("%s: sms.config key table regenerated\n", path);
        same = 1;
        begin = want.data;
    }
    if (!same)
        UNIT_FAIL("%s's sms.config key table differs from src/core/config.c; regenerate it with "
                  "SR_WRITE_README=1 build/tests/test_config readme_lists_every_key. It should read:\n%s",
                  path, want.data);
    for (size_t i = 0; i < sr_config_key_count; i++) {
        char name[64];
        snprintf(name, sizeof name, "| `%s` |", sr_config_keys[i].name);
        CHECK(strstr(begin, name) != NULL);
    }
    sr_buf_free(&want);
    free(doc);
}

TEST(readme_lists_every_key) {
    config_check_doc("docs/rules.md");
    config_check_doc("src/rules/bindings/lua_sms.md");
}
