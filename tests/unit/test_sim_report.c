/* Unit tests for src/tools/sim/sim_report.c: the HTML page of a simulation, from a
 * simulate --json document. The page must escape every text of the document,
 * draw one delivered-over-time chart per strategy, fetch nothing, and stay
 * valid UTF-8 whatever bytes the names hold. */
#include <errno.h>

#include "core/buf.h"
#include "codec/json.h"
#include "tools/sim/sim_report.h"
#include "codec/text.h"
#include "unit.h"

/* Three strategies, one with a hostile name and one with a hostile rules path. */
static const char fixture[] =
    "{\"strategies\": ["
    "{\"name\": \"static\", \"rules\": \"examples/strategy-lab/static.lua\", \"messages\": 1000, \"delivered\": 900,"
    " \"delivered_ratio\": 0.9, \"undelivered\": 80, \"expired\": 0, \"failed\": 20, \"rejected\": 0,"
    " \"time_to_delivered_ms\": {\"p50\": 4000, \"p95\": 29000, \"p99\": 61000}, \"cost_total\": 25.0,"
    " \"cost_per_delivered\": 0.02778, \"providers\": {\"premium\": {\"attempts\": 1000, \"delivered\": 900,"
    " \"cost\": 25.0}}, \"fallbacks\": 0, \"double_delivery_risk\": 0, \"retries\": 12,"
    " \"timeline\": [{\"t_s\": 0, \"accepted\": 0, \"delivered\": 0}, {\"t_s\": 60, \"accepted\": 1000,"
    " \"delivered\": 800}, {\"t_s\": 120, \"accepted\": 1000, \"delivered\": 900}],"
    " \"countries\": {\"84\": {\"messages\": 700, \"delivered\": 630, \"cost\": 17.5}}},"
    "{\"name\": \"cheap <first> & \\\"fallback\\\"\", \"rules\": \"/tmp/o'brien/<x>.lua\", \"messages\": 1000,"
    " \"delivered\": 980, \"delivered_ratio\": 0.98, \"undelivered\": 10, \"expired\": 0, \"failed\": 10,"
    " \"rejected\": 0, \"time_to_delivered_ms\": {\"p50\": 5000, \"p95\": 31000, \"p99\": 45000},"
    " \"cost_total\": 21.0, \"cost_per_delivered\": 0.02143, \"providers\": {\"budget\": {\"attempts\": 1000,"
    " \"delivered\": 880, \"cost\": 18.0}, \"premium\": {\"attempts\": 120, \"delivered\": 100, \"cost\": 3.0}},"
    " \"fallbacks\": 120, \"double_delivery_risk\": 3, \"retries\": 8,"
    " \"timeline\": [{\"t_s\": 0, \"accepted\": 0, \"delivered\": 0}, {\"t_s\": 60, \"accepted\": 1000,"
    " \"delivered\": 700}, {\"t_s\": 120, \"accepted\": 1000, \"delivered\": 980}],"
    " \"countries\": {\"84\": {\"messages\": 700, \"delivered\": 690, \"cost\": 14.7}, \"7\": {\"messages\": 300,"
    " \"delivered\": 290, \"cost\": 6.3}}},"
    "{\"name\": \"<script>alert('x')</script>\", \"rules\": \"adaptive.lua\", \"messages\": 1000,"
    " \"delivered\": 950, \"delivered_ratio\": 0.95, \"cost_per_delivered\": null,"
    " \"providers\": {\"<img src=x onerror=alert(1)>\": {\"attempts\": 5, \"delivered\": 5, \"cost\": 0.1}},"
    " \"timeline\": [], \"countries\": {\"<b>\": {\"messages\": 1, \"delivered\": 1, \"cost\": 0.01}}}"
    "]}";

/* Renders text (a JSON document) into out; returns sr_sim_report_html's code. */
static int render(const char *text, sr_buf *out) {
    sr_json_doc doc = {0};
    char err[128];
    if (sr_json_parse(&doc, text, strlen(text), err, sizeof err) != 0) UNIT_FAIL("fixture: %s", err);
    int rc = sr_sim_report_html(doc.root, out);
    sr_json_doc_free(&doc);
    return rc;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

TEST(report_one_delivered_chart_per_strategy) {
    sr_buf out;
    sr_buf_init(&out);
    CHECK_INT(render(fixture, &out), 0);
    const char *html = sr_buf_cstr(&out);
    CHECK(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    CHECK_INT(count(html, "class=\"chart delivered-over-time\""), 3);
    CHECK(strstr(html, "id=\"delivered-over-time-0\"") && strstr(html, "id=\"delivered-over-time-2\""));
    CHECK_INT(count(html, "class=\"chart cost-vs-delivery\""), 1);
    CHECK_INT(count(html, "class=\"chart provider-shares\""), 1);
    /* Two drawn timelines (accepted and delivered each), and the empty one said so. */
    CHECK_INT(count(html, "<polyline class=\"delivered\""), 2);
    CHECK_INT(count(html, "no timeline data"), 1);
    /* Every chart is labelled for assistive technology. */
    CHECK_INT(count(html, "role=\"img\""), 5);
    CHECK_INT(count(html, "<title id="), 5);
    /* The summary, provider and country tables. */
    CHECK(strstr(html, "<table id=\"summary\">") && strstr(html, "<table id=\"providers\">") &&
          strstr(html, "<table id=\"countries\">"));
    CHECK(strstr(html, "<td>+7</td>") == NULL); /* country cells are text cells */
    CHECK(strstr(html, "<td class=\"text\">+7</td>") != NULL);
    sr_buf_free(&out);

    /* One strategy, one chart. */
    sr_buf_init(&out);
    CHECK_INT(render("{\"strategies\": [{\"name\": \"only\", \"timeline\": [{\"t_s\": 60, \"accepted\": 5, "
                     "\"delivered\": 4}]}]}",
                     &out),
              0);
    CHECK_INT(count(sr_buf_cstr(&out), "class=\"chart delivered-over-time\""), 1);
    sr_buf_free(&out);
}

TEST(report_escapes_every_text) {
    sr_buf out;
    sr_buf_init(&out);
    CHECK_INT(render(fixture, &out), 0);
    const char *html = sr_buf_cstr(&out);
    /* No markup of the document survives: the page has no script and no image at all. */
    CHECK(strstr(html, "<script") == NULL);
    CHECK(strstr(html, "<img") == NULL);
    CHECK(strstr(html, "<b>") == NULL);
    CHECK(strstr(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") != NULL);
    CHECK(strstr(html, "cheap &lt;first&gt; &amp; &quot;fallback&quot;") != NULL);
    CHECK(strstr(html, "/tmp/o&#39;brien/&lt;x&gt;.lua") != NULL);
    CHECK(strstr(html, "&lt;img src=x onerror=alert(1)&gt;") != NULL);
    CHECK(strstr(html, "+&lt;b&gt;") != NULL);
    sr_buf_free(&out);
}

TEST(report_fetches_nothing) {
    sr_buf out;
    sr_buf_init(&out);
    CHECK_INT(render(fixture, &out), 0);
    const char *html = sr_buf_cstr(&out);
    static const char *const fetchers[] = {"http://", "https://", "//cdn",   "url(",  "@import",
                                           "<link",   "<iframe",  "<object", "<embed"};
    for (size_t i = 0; i < sizeof fetchers / sizeof fetchers[0]; i++)
        if (strstr(html, fetchers[i])) UNIT_FAIL("the page holds %s", fetchers[i]);
    /* No tag has a src, and every link is to an anchor of the page itself. (Escaped text such as
     * "&lt;img src=x" is not a tag: a tag starts with a raw '<'.) */
    for (const char *tag = strchr(html, '<'); tag; tag = strchr(tag + 1, '<')) {
        const char *end = strchr(tag, '>');
        CHECK(end != NULL);
        for (const char *a = tag; a < end; a++) {
            if (strncmp(a, " src=", 5) == 0) UNIT_FAIL("a tag with src: %.60s", tag);
            if (strncmp(a, " href=", 6) == 0 && a[6 + (a[6] == '"')] != '#') UNIT_FAIL("a link out: %.60s", tag);
        }
    }
    /* The page forbids fetching too, for whatever a future edit might add. */
    CHECK(strstr(html, "Content-Security-Policy\" content=\"default-src 'none'") != NULL);
    sr_buf_free(&out);
}

TEST(report_marks_the_best_value) {
    sr_buf out;
    sr_buf_init(&out);
    CHECK_INT(render(fixture, &out), 0);
    const char *html = sr_buf_cstr(&out);
    /* Delivered share: 0.98 (the second strategy) is best; lowest cost per delivered is also the
     * second one (the third has none). Rejected: all 0 (or missing): no best. */
    CHECK(strstr(html, "<td class=\"best\">98.00 %<span class=\"note\"> (best)</span></td>") != NULL);
    CHECK(strstr(html, "<td class=\"best\">0.0214<span class=\"note\"> (best)</span></td>") != NULL);
    const char *rejected = strstr(html, "<th scope=\"row\">Rejected</th>");
    CHECK(rejected != NULL);
    const char *end = strstr(rejected, "</tr>");
    CHECK(end != NULL);
    const char *best = strstr(rejected, "class=\"best\"");
    CHECK(best == NULL || best > end);
    /* Missing members read as a dash. */
    CHECK(strstr(html, "<td>\xe2\x80\x93</td>") != NULL);
    sr_buf_free(&out);
}

TEST(report_output_is_valid_utf8_for_any_name) {
    /* A name with a raw control character, an invalid byte, a cut sequence and a valid "é". */
    static const char doc[] = "{\"strategies\": [{\"name\": \"a\\u0001b\xff"
                              "c\xc3 \xc3\xa9\", \"timeline\": "
                              "[{\"t_s\": 0, \"accepted\": 1, \"delivered\": 1}]}]}";
    sr_buf out;
    sr_buf_init(&out);
    CHECK_INT(render(doc, &out), 0);
    CHECK(sr_utf8_valid(out.data, out.len));
    CHECK(strstr(sr_buf_cstr(&out), "a\xef\xbf\xbd"
                                    "b\xef\xbf\xbd"
                                    "c\xef\xbf\xbd \xc3\xa9") != NULL);
    sr_buf_free(&out);
}

TEST(report_clips_long_labels_inside_charts) {
    /* 40 × "é": the provider bar label keeps 20 characters and an ellipsis, the title all 40. */
    sr_buf name;
    sr_buf_init(&name);
    for (int i = 0; i < 40; i++) sr_buf_puts(&name, "\xc3\xa9");
    sr_buf doc;
    sr_buf_init(&doc);
    sr_buf_printf(&doc, "{\"strategies\": [{\"name\": \"%s\"}]}", sr_buf_cstr(&name));
    sr_buf out;
    sr_buf_init(&out);
    CHECK_INT(render(sr_buf_cstr(&doc), &out), 0);
    CHECK(sr_utf8_valid(out.data, out.len));
    sr_buf clipped;
    sr_buf_init(&clipped);
    sr_buf_printf(&clipped, "</title>%.40s\xe2\x80\xa6</text>", sr_buf_cstr(&name));
    CHECK(strstr(sr_buf_cstr(&out), sr_buf_cstr(&clipped)) != NULL);
    sr_buf_free(&clipped);
    sr_buf_free(&out);
    sr_buf_free(&doc);
    sr_buf_free(&name);
}

TEST(report_refuses_what_is_not_a_simulation) {
    static const char *const bad[] = {"[]", "{}", "{\"strategies\": {}}", "{\"strategies\": [1]}", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sr_buf out;
        sr_buf_init(&out);
        sr_buf_puts(&out, "kept");
        CHECK_INT(render(bad[i], &out), -EINVAL);
        CHECK_STR(sr_buf_cstr(&out), "kept");
        sr_buf_free(&out);
    }
    /* No strategies: a page that says so, with nothing to chart. */
    sr_buf out;
    sr_buf_init(&out);
    CHECK_INT(render("{\"strategies\": []}", &out), 0);
    CHECK_INT(count(sr_buf_cstr(&out), "delivered-over-time\""), 0);
    sr_buf_free(&out);
}
