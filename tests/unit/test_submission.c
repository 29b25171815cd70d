/* Unit tests of submission.c: text holding U+0000 is refused, never cut short. */
#include <string.h>

#include "core/config.h"
#include "codec/json.h"
#include "model/submission.h"
#include "codec/template.h"
#include "unit.h"

static const sr_template *tpl_hello;

static const struct sr_template *find_template(void *ud, const char *name) {
    (void)ud;
    return strcmp(name, "hello") == 0 ? tpl_hello : NULL;
}

/* Parses body (a JSON object) as one submission; returns the first reason's key, or "ok". */
static const char *submit(const char *body, char *ref, size_t reflen, char **text_out) {
    static sr_config cfg;
    sr_config_init(&cfg);
    sr_submission_templates templates = {find_template, NULL};
    sr_json_doc doc;
    char err[160];
    if (sr_json_parse(&doc, body, strlen(body), err, sizeof err) != 0) UNIT_FAIL("bad test JSON: %s", err);
    sr_message m;
    const char *idem;
    uint64_t hash;
    sr_reasons reasons;
    int rc = sr_submission_parse(doc.root, &cfg, &templates, 1700000000000LL, "", &m, &idem, &hash, &reasons);
    const char *key = rc == 0 ? "ok" : reasons.items[0].key;
    if (ref) snprintf(ref, reflen, "%s", rc == 0 ? "" : reasons.items[0].ref);
    if (text_out) *text_out = rc == 0 && m.text ? strdup(m.text) : NULL;
    sr_message_free(&m);
    sr_json_doc_free(&doc);
    sr_config_free(&cfg);
    return key;
}

TEST(text_with_nul_is_refused) {
    char ref[64];
    CHECK_STR(submit("{\"to\":\"+84912345678\",\"text\":\"a\\u0000bcdef\"}", ref, sizeof ref, NULL), "invalid_text");
    CHECK_STR(ref, "text");
    CHECK_STR(submit("{\"to\":\"+84912345678\",\"text\":\"\\u0000\"}", ref, sizeof ref, NULL), "invalid_text");
    CHECK_STR(submit("{\"to\":\"+84912345678\",\"text\":\"abc\\u0000\"}", ref, sizeof ref, NULL), "invalid_text");
    char *text = NULL;
    CHECK_STR(submit("{\"to\":\"+84912345678\",\"text\":\"a\\u0001b\"}", NULL, 0, &text), "ok");
    CHECK(text && strcmp(text, "a\001b") == 0);
    free(text);
}

TEST(template_vars_with_nul_are_refused) {
    sr_template *t = NULL;
    char err[200];
    CHECK_INT(sr_template_compile("Hello {{name}}!", 15, &t, err, sizeof err), 0);
    tpl_hello = t;
    char ref[64];
    CHECK_STR(submit("{\"to\":\"+84912345678\",\"template\":\"hello\",\"vars\":{\"name\":\"x\\u0000y\"}}", ref,
                     sizeof ref, NULL),
              "invalid_text");
    CHECK_STR(ref, "vars");
    char *text = NULL;
    CHECK_STR(submit("{\"to\":\"+84912345678\",\"template\":\"hello\",\"vars\":{\"name\":\"xy\"}}", NULL, 0, &text),
              "ok");
    CHECK(text && strcmp(text, "Hello xy!") == 0);
    free(text);
    sr_template_free(t);
}

TEST(route_and_tags_with_nul_are_refused) {
    char ref[64];
    CHECK_STR(submit("{\"to\":\"+84912345678\",\"text\":\"hi\",\"route\":[\"m\\u0000x\"]}", ref, sizeof ref, NULL),
              "invalid_value");
    CHECK_STR(ref, "route");
    CHECK_STR(submit("{\"to\":\"+84912345678\",\"text\":\"hi\",\"tags\":{\"a\":\"1\\u00002\"}}", ref, sizeof ref, NULL),
              "invalid_value");
    CHECK_STR(ref, "tags");
}
