/* sim_report: the self-contained HTML page of a simulation; see sim_report.h. */
#include "tools/sim/sim_report.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "codec/text.h"

/* Chart geometry, in SVG user units (the viewBox scales it to the page). */
#define CHART_W 640.0
#define CHART_H 260.0
#define PAD_L 64.0
#define PAD_R 16.0
#define PAD_T 16.0
#define PAD_B 44.0
/* Longest timeline drawn point by point; longer ones are thinned evenly. */
#define TIMELINE_MAX_POINTS 1000

/* Provider colours, chosen to stay apart for the common kinds of colour blindness (Okabe-Ito). */
static const char *const palette[] = {"#0072b2", "#e69f00", "#009e73", "#cc79a7",
                                      "#56b4e9", "#d55e00", "#f0e442", "#000000"};
#define PALETTE_LEN (sizeof palette / sizeof palette[0])

static const char style_sheet[] =
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;max-width:72em;"
    "padding:0 1em;color:#1a1a1a;background:#fff}\n"
    "h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}\n"
    "table{border-collapse:collapse;margin:1em 0}th,td{padding:.3em .7em;border-bottom:1px solid #e4e4e4;"
    "text-align:right;vertical-align:top}th{background:#f6f6f6}th[scope=row],td.text{text-align:left}\n"
    ".best{font-weight:bold;color:#006400}.note{color:#555;font-size:.9em}\n"
    "figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}\n"
    "svg.chart{width:100%;max-width:40em;height:auto;border:1px solid #e4e4e4;background:#fcfcfc}\n"
    "svg text{font:11px system-ui,sans-serif;fill:#333}svg .axis{stroke:#888;stroke-width:1}\n"
    "svg .grid{stroke:#e8e8e8;stroke-width:1}svg .accepted{fill:none;stroke:#999;stroke-width:1.5;"
    "stroke-dasharray:4 3}svg .delivered{fill:none;stroke:#0072b2;stroke-width:2}\n"
    ".legend span{display:inline-block;margin-right:1.2em}.swatch{display:inline-block;width:.9em;height:.9em;"
    "margin-right:.3em;vertical-align:-.1em;border:1px solid #666}\n";

/* ---- text ---- */

/* Appends s[0..len) as HTML text (also safe inside a quoted attribute). Invalid UTF-8 and control
 * characters become U+FFFD, so a hostile name can neither break the markup nor the encoding. */
static void html_text(sr_buf *out, const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /* Copy one whole UTF-8 sequence when it is valid, else one replacement character. */
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            if (n > 1 && i + n <= len && sr_utf8_valid(s + i, n)) {
                sr_buf_append(out, s + i, n);
                i += n;
            } else {
                sr_buf_puts(out, "\xef\xbf\xbd");
                i++;
            }
            continue;
        }
        switch (c) {
        case '&': sr_buf_puts(out, "&amp;"); break;
        case '<': sr_buf_puts(out, "&lt;"); break;
        case '>': sr_buf_puts(out, "&gt;"); break;
        case '"': sr_buf_puts(out, "&quot;"); break;
        case '\'': sr_buf_puts(out, "&#39;"); break;
        default:
            if (c < 0x20 || c == 0x7f) sr_buf_puts(out, "\xef\xbf\xbd");
            else
                sr_buf_putc(out, (char)c);
        }
        i++;
    }
}

/* Appends at most max_chars characters of s[0..len) as HTML text, with "…" when cut: labels inside a chart
 * have a fixed room (the full text is in the element's <title>). Cuts only between UTF-8 sequences. */
static void html_text_clipped(sr_buf *out, const char *s, size_t len, size_t max_chars) {
    size_t i = 0, chars = 0;
    while (i < len && chars < max_chars) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xc0) == 0x80) i++;
        chars++;
    }
    html_text(out, s, i);
    if (i < len) sr_buf_puts(out, "\xe2\x80\xa6");
}

static void html_member_clipped(sr_buf *out, const sr_json *obj, const char *key, size_t max_chars) {
    const sr_json *v = sr_json_get(obj, key);
    if (v && v->type == SR_JSON_STRING) html_text_clipped(out, v->str, v->len, max_chars);
    else
        sr_buf_puts(out, "\xe2\x80\x93");
}

/* A string member as text; "–" when missing or not a string. */
static void html_member(sr_buf *out, const sr_json *obj, const char *key) {
    const sr_json *v = sr_json_get(obj, key);
    if (v && v->type == SR_JSON_STRING) html_text(out, v->str, v->len);
    else
        sr_buf_puts(out, "\xe2\x80\x93");
}

/* ---- numbers ---- */

/* 1 and the value when v is a finite number, else 0. */
static int number(const sr_json *v, double *out) {
    if (!v || v->type != SR_JSON_NUMBER || !isfinite(v->num)) return 0;
    *out = v->num;
    return 1;
}

static int member_number(const sr_json *obj, const char *key, double *out) {
    return number(sr_json_get(obj, key), out);
}

/* The value at obj.key or obj.key.sub (sub may be NULL). */
static int path_number(const sr_json *obj, const char *key, const char *sub, double *out) {
    const sr_json *v = sr_json_get(obj, key);
    if (sub) v = sr_json_get(v, sub);
    return number(v, out);
}

typedef enum { FMT_COUNT, FMT_SHARE, FMT_MS, FMT_MONEY, FMT_TEXT } value_format;

static void put_value(sr_buf *out, double v, value_format f) {
    switch (f) {
    case FMT_COUNT: sr_buf_printf(out, "%.0f", v); break;
    case FMT_SHARE: sr_buf_printf(out, "%.2f %%", v * 100.0); break;
    case FMT_MS:
        if (v < 10000) sr_buf_printf(out, "%.0f ms", v);
        else
            sr_buf_printf(out, "%.1f s", v / 1000.0);
        break;
    case FMT_MONEY: sr_buf_printf(out, "%.4f", v); break;
    case FMT_TEXT: break;
    }
}

/* A step of 1, 2 or 5 times a power of ten that cuts range into about `ticks` parts. */
static double nice_step(double range, int ticks) {
    if (!(range > 0)) return 1;
    double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* Tick labels: at most 3 significant decimals, no trailing zeros. */
static void put_tick(sr_buf *out, double v) {
    if (fabs(v) < 1e-12) v = 0;
    sr_buf_printf(out, "%.6g", v);
}

/* ---- the summary table ---- */

typedef struct summary_row {
    const char *label;
    const char *key, *sub; /* the member, and the member of it (NULL) */
    value_format format;
    int better;     /* +1 the highest is best, -1 the lowest, 0 no best */
    int with_share; /* a count also shown as a share of the messages */
} summary_row;

static const summary_row summary_rows[] = {
    {"Rules file", "rules", NULL, FMT_TEXT, 0, 0},
    {"Messages", "messages", NULL, FMT_COUNT, 0, 0},
    {"Delivered", "delivered", NULL, FMT_COUNT, 0, 1},
    {"Delivered share", "delivered_ratio", NULL, FMT_SHARE, +1, 0},
    {"Undelivered", "undelivered", NULL, FMT_COUNT, -1, 1},
    {"Expired", "expired", NULL, FMT_COUNT, -1, 1},
    {"Failed", "failed", NULL, FMT_COUNT, -1, 1},
    {"Rejected", "rejected", NULL, FMT_COUNT, -1, 1},
    {"Time to delivered p50", "time_to_delivered_ms", "p50", FMT_MS, -1, 0},
    {"Time to delivered p95", "time_to_delivered_ms", "p95", FMT_MS, -1, 0},
    {"Time to delivered p99", "time_to_delivered_ms", "p99", FMT_MS, -1, 0},
    {"Cost total", "cost_total", NULL, FMT_MONEY, 0, 0},
    {"Cost per delivered", "cost_per_delivered", NULL, FMT_MONEY, -1, 0},
    {"Fallbacks", "fallbacks", NULL, FMT_COUNT, 0, 0},
    {"Retries", "retries", NULL, FMT_COUNT, 0, 0},
    {"Double-delivery risk", "double_delivery_risk", NULL, FMT_COUNT, -1, 0},
};

static void summary_table(sr_buf *out, const sr_json *strategies) {
    sr_buf_puts(out, "<table id=\"summary\">\n<caption class=\"note\">One column per strategy; "
                     "<span class=\"best\">bold green</span> marks the best value of a row.</caption>\n"
                     "<thead><tr><th scope=\"col\">Figure</th>");
    for (const sr_json *s = strategies->child; s; s = s->next) {
        sr_buf_puts(out, "<th scope=\"col\">");
        html_member(out, s, "name");
        sr_buf_puts(out, "</th>");
    }
    sr_buf_puts(out, "</tr></thead>\n<tbody>\n");
    for (size_t r = 0; r < sizeof summary_rows / sizeof summary_rows[0]; r++) {
        const summary_row *row = &summary_rows[r];
        /* The best value among the strategies that have one; marked only when there is a choice. */
        double best = 0, v;
        int have = 0, differ = 0;
        for (const sr_json *s = strategies->child; s; s = s->next) {
            if (!row->better || !path_number(s, row->key, row->sub, &v)) continue;
            if (have && v != best) differ = 1;
            if (!have || (row->better > 0 ? v > best : v < best)) best = v;
            have++;
        }
        if (!differ) have = 0; /* all the same: nothing to choose */
        sr_buf_printf(out, "<tr><th scope=\"row\">%s</th>", row->label);
        for (const sr_json *s = strategies->child; s; s = s->next) {
            if (row->format == FMT_TEXT) {
                sr_buf_puts(out, "<td class=\"text\">");
                html_member(out, s, row->key);
                sr_buf_puts(out, "</td>");
                continue;
            }
            if (!path_number(s, row->key, row->sub, &v)) {
                sr_buf_puts(out, "<td>\xe2\x80\x93</td>");
                continue;
            }
            int is_best = have > 1 && v == best;
            sr_buf_puts(out, is_best ? "<td class=\"best\">" : "<td>");
            put_value(out, v, row->format);
            double messages;
            if (row->with_share && member_number(s, "messages", &messages) && messages > 0) {
                sr_buf_puts(out, " (");
                put_value(out, v / messages, FMT_SHARE);
                sr_buf_puts(out, ")");
            }
            if (is_best) sr_buf_puts(out, "<span class=\"note\"> (best)</span>");
            sr_buf_puts(out, "</td>");
        }
        sr_buf_puts(out, "</tr>\n");
    }
    sr_buf_puts(out, "</tbody></table>\n");
}

/* ---- charts ---- */

/* Axes, grid lines and tick labels of a chart whose data spans [x0,x1] × [y0,y1]. */
static void chart_axes(sr_buf *out, double x0, double x1, double xstep, double y0, double y1, double ystep,
                       const char *x_label, const char *y_label) {
    double pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
    for (double y = y0; y <= y1 + ystep * 1e-9; y += ystep) {
        double py = PAD_T + ph - (y - y0) / (y1 - y0) * ph;
        sr_buf_printf(out, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", PAD_L, py,
                      PAD_L + pw, py);
        sr_buf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", PAD_L - 6, py + 4);
        put_tick(out, y);
        sr_buf_puts(out, "</text>");
    }
    for (double x = x0; x <= x1 + xstep * 1e-9; x += xstep) {
        double px = PAD_L + (x - x0) / (x1 - x0) * pw;
        sr_buf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", px, PAD_T + ph + 16);
        put_tick(out, x);
        sr_buf_puts(out, "</text>");
    }
    sr_buf_printf(out, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", PAD_L, PAD_T + ph,
                  PAD_L + pw, PAD_T + ph);
    sr_buf_printf(out, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", PAD_L, PAD_T, PAD_L,
                  PAD_T + ph);
    sr_buf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>", PAD_L + pw / 2, CHART_H - 6,
                  x_label);
    sr_buf_printf(out, "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">%s</text>",
                  PAD_T + ph / 2, PAD_T + ph / 2, y_label);
}

/* The upper end of an axis from 0 to at least max, on a whole step; *step gets the step. */
static double axis_top(double max, double *step) {
    if (!(max > 0)) max = 1;
    *step = nice_step(max, 5);
    return ceil(max / *step - 1e-9) * *step;
}

static void timeline_chart(sr_buf *out, const sr_json *s, int index) {
    const sr_json *timeline = sr_json_get(s, "timeline");
    sr_buf_printf(out, "<figure>\n<figcaption id=\"delivered-caption-%d\">", index);
    html_member(out, s, "name");
    sr_buf_puts(out, "</figcaption>\n");
    double t_max = 0, y_max = 0, t, a, d;
    size_t points = 0;
    if (timeline && timeline->type == SR_JSON_ARRAY) {
        for (const sr_json *p = timeline->child; p; p = p->next) {
            if (!member_number(p, "t_s", &t)) continue;
            points++;
            if (t > t_max) t_max = t;
            if (member_number(p, "accepted", &a) && a > y_max) y_max = a;
            if (member_number(p, "delivered", &d) && d > y_max) y_max = d;
        }
    }
    sr_buf_printf(out,
                  "<svg class=\"chart delivered-over-time\" id=\"delivered-over-time-%d\" role=\"img\" "
                  "viewBox=\"0 0 %.0f %.0f\" aria-labelledby=\"delivered-title-%d delivered-desc-%d\">",
                  index, CHART_W, CHART_H, index, index);
    sr_buf_printf(out, "<title id=\"delivered-title-%d\">Delivered over time: ", index);
    html_member(out, s, "name");
    sr_buf_printf(out, "</title><desc id=\"delivered-desc-%d\">", index);
    if (points == 0) {
        sr_buf_puts(out, "No timeline in the simulation output.</desc>");
        sr_buf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no timeline data</text></svg>\n",
                      CHART_W / 2, CHART_H / 2);
        sr_buf_puts(out, "</figure>\n");
        return;
    }
    sr_buf_puts(out, "Cumulative messages accepted (dashed) and delivered (solid) against simulated time; ");
    if (member_number(s, "delivered", &d) && member_number(s, "messages", &a))
        sr_buf_printf(out, "%.0f of %.0f delivered in the end.", d, a);
    sr_buf_puts(out, "</desc>");
    double xstep, ystep, x1 = axis_top(t_max, &xstep), y1 = axis_top(y_max, &ystep);
    chart_axes(out, 0, x1, xstep, 0, y1, ystep, "simulated time (s)", "messages");
    double pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
    size_t every = points > TIMELINE_MAX_POINTS ? (points + TIMELINE_MAX_POINTS - 1) / TIMELINE_MAX_POINTS : 1;
    static const char *const series[] = {"accepted", "delivered"};
    for (int k = 0; k < 2; k++) {
        sr_buf_printf(out, "<polyline class=\"%s\" points=\"", series[k]);
        size_t i = 0;
        for (const sr_json *p = timeline->child; p; p = p->next) {
            double v;
            if (!member_number(p, "t_s", &t)) continue;
            /* Thinned evenly, but the last point always drawn: it is the end result. */
            if (i++ % every != 0 && p->next) continue;
            if (!member_number(p, series[k], &v)) continue;
            sr_buf_printf(out, "%.1f,%.1f ", PAD_L + t / x1 * pw, PAD_T + ph - v / y1 * ph);
        }
        sr_buf_puts(out, "\"/>");
    }
    sr_buf_puts(out, "</svg>\n</figure>\n");
}

static void cost_delivery_chart(sr_buf *out, const sr_json *strategies) {
    double lo = 1, c_max = 0, r, c;
    int points = 0;
    for (const sr_json *s = strategies->child; s; s = s->next) {
        if (!member_number(s, "delivered_ratio", &r) || !member_number(s, "cost_per_delivered", &c)) continue;
        points++;
        if (r < lo) lo = r;
        if (c > c_max) c_max = c;
    }
    sr_buf_puts(out, "<figure>\n<svg class=\"chart cost-vs-delivery\" id=\"cost-vs-delivery\" role=\"img\" ");
    sr_buf_printf(out, "viewBox=\"0 0 %.0f %.0f\" aria-labelledby=\"cost-title cost-desc\">", CHART_W, CHART_H);
    sr_buf_puts(out, "<title id=\"cost-title\">Cost per delivered message against delivered share</title>"
                     "<desc id=\"cost-desc\">One point per strategy: further right delivers more, lower "
                     "costs less per delivered message.</desc>");
    if (points == 0) {
        sr_buf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no strategy delivered anything</text>",
                      CHART_W / 2, CHART_H / 2);
        sr_buf_puts(out, "</svg>\n</figure>\n");
        return;
    }
    /* x: delivered share in percent, from a whole step below the lowest one up to 100. */
    double x1 = 100, xstep = nice_step(100 - lo * 100 > 1 ? 100 - lo * 100 : 1, 5);
    double x0 = floor(lo * 100 / xstep) * xstep;
    if (x0 >= x1) x0 = x1 - xstep;
    double ystep, y1 = axis_top(c_max, &ystep);
    chart_axes(out, x0, x1, xstep, 0, y1, ystep, "delivered share (%)", "cost per delivered");
    double pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
    int i = 0;
    for (const sr_json *s = strategies->child; s; s = s->next, i++) {
        if (!member_number(s, "delivered_ratio", &r) || !member_number(s, "cost_per_delivered", &c)) continue;
        double px = PAD_L + (r * 100 - x0) / (x1 - x0) * pw, py = PAD_T + ph - c / y1 * ph;
        sr_buf_printf(out, "<g class=\"point\"><circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"><title>", px, py,
                      palette[i % PALETTE_LEN]);
        html_member(out, s, "name");
        sr_buf_printf(out, ": %.2f %% delivered, %.4f per delivered</title></circle>", r * 100, c);
        /* Labels of points in the right half go to their left; every other one below its point, so
         * that strategies with close results keep readable labels. */
        int left = px > PAD_L + pw * 0.5;
        sr_buf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", left ? px - 8 : px + 8,
                      i % 2 ? py + 16 : py - 8, left ? "end" : "start");
        html_member_clipped(out, s, "name", 28);
        sr_buf_puts(out, "</text></g>");
    }
    sr_buf_puts(out, "</svg>\n</figure>\n");
}

/* Provider names in order of first appearance over all strategies: their colour index. */
typedef struct provider_names {
    const sr_json *names[64];
    int count;
} provider_names;

static int provider_index(provider_names *pn, const sr_json *member) {
    for (int i = 0; i < pn->count; i++)
        if (pn->names[i]->key_len == member->key_len && memcmp(pn->names[i]->key, member->key, member->key_len) == 0)
            return i;
    if (pn->count == (int)(sizeof pn->names / sizeof pn->names[0])) return pn->count - 1;
    pn->names[pn->count] = member;
    return pn->count++;
}

/* The sum of the attempts of a strategy's providers (0 when none). */
static double provider_attempts_total(const sr_json *providers) {
    double total = 0, v;
    for (const sr_json *p = providers->child; p; p = p->next)
        if (member_number(p, "attempts", &v) && v > 0) total += v;
    return total;
}

/* One bar of the chart: the strategy's name, then a segment per provider. */
static void provider_bar(sr_buf *out, const sr_json *s, provider_names *pn, double y, double label_w, double bar_w) {
    double v;
    const sr_json *providers = sr_json_get(s, "providers");
    sr_buf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\"><title>", label_w - 8, y + 15);
    html_member(out, s, "name");
    sr_buf_puts(out, "</title>");
    html_member_clipped(out, s, "name", 20);
    sr_buf_puts(out, "</text>");
    if (!providers || providers->type != SR_JSON_OBJECT) return;
    double total = provider_attempts_total(providers);
    if (!(total > 0)) return;
    double x = label_w;
    for (const sr_json *p = providers->child; p; p = p->next) {
        if (!member_number(p, "attempts", &v) || !(v > 0)) continue;
        double w = v / total * bar_w;
        sr_buf_printf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"20\" fill=\"%s\"><title>", x, y, w,
                      palette[provider_index(pn, p) % PALETTE_LEN]);
        html_text(out, p->key, p->key_len);
        sr_buf_printf(out, ": %.0f attempts, %.1f %%</title></rect>", v, v / total * 100);
        x += w;
    }
}

/* The table under the chart: a row per strategy and provider. */
static void provider_table(sr_buf *out, const sr_json *strategies) {
    sr_buf_puts(out, "<table id=\"providers\">\n<thead><tr><th scope=\"col\">Strategy</th><th scope=\"col\">Provider"
                     "</th><th scope=\"col\">Attempts</th><th scope=\"col\">Share of attempts</th>"
                     "<th scope=\"col\">Delivered</th><th scope=\"col\">Cost</th></tr></thead>\n<tbody>\n");
    for (const sr_json *s = strategies->child; s; s = s->next) {
        const sr_json *providers = sr_json_get(s, "providers");
        if (!providers || providers->type != SR_JSON_OBJECT) continue;
        double total = provider_attempts_total(providers), v;
        for (const sr_json *p = providers->child; p; p = p->next) {
            sr_buf_puts(out, "<tr><td class=\"text\">");
            html_member(out, s, "name");
            sr_buf_puts(out, "</td><td class=\"text\">");
            html_text(out, p->key, p->key_len);
            sr_buf_puts(out, "</td><td>");
            if (member_number(p, "attempts", &v)) put_value(out, v, FMT_COUNT);
            sr_buf_puts(out, "</td><td>");
            if (member_number(p, "attempts", &v) && total > 0) put_value(out, v / total, FMT_SHARE);
            sr_buf_puts(out, "</td><td>");
            if (member_number(p, "delivered", &v)) put_value(out, v, FMT_COUNT);
            sr_buf_puts(out, "</td><td>");
            if (member_number(p, "cost", &v)) put_value(out, v, FMT_MONEY);
            sr_buf_puts(out, "</td></tr>\n");
        }
    }
    sr_buf_puts(out, "</tbody></table>\n");
}

static void provider_chart(sr_buf *out, const sr_json *strategies) {
    provider_names pn = {.count = 0};
    int rows = 0;
    for (const sr_json *s = strategies->child; s; s = s->next) {
        const sr_json *providers = sr_json_get(s, "providers");
        if (providers && providers->type == SR_JSON_OBJECT)
            for (const sr_json *p = providers->child; p; p = p->next) provider_index(&pn, p);
        rows++;
    }
    double row_h = 28, label_w = 150, bar_w = CHART_W - label_w - PAD_R, height = rows * row_h + 30;
    sr_buf_puts(out, "<figure>\n<svg class=\"chart provider-shares\" id=\"provider-shares\" role=\"img\" ");
    sr_buf_printf(out, "viewBox=\"0 0 %.0f %.0f\" aria-labelledby=\"providers-title providers-desc\">", CHART_W,
                  height);
    sr_buf_puts(out, "<title id=\"providers-title\">Share of attempts per provider</title>"
                     "<desc id=\"providers-desc\">One bar per strategy, split by the share of its send attempts "
                     "that went to each provider; the table below has the numbers.</desc>");
    int row = 0;
    for (const sr_json *s = strategies->child; s; s = s->next, row++)
        provider_bar(out, s, &pn, 10 + row * row_h, label_w, bar_w);
    sr_buf_puts(out, "</svg>\n<figcaption class=\"legend\">");
    for (int i = 0; i < pn.count; i++) {
        sr_buf_printf(out, "<span><span class=\"swatch\" style=\"background:%s\"></span>", palette[i % PALETTE_LEN]);
        html_text(out, pn.names[i]->key, pn.names[i]->key_len);
        sr_buf_puts(out, "</span>");
    }
    sr_buf_puts(out, "</figcaption>\n</figure>\n");
    provider_table(out, strategies);
}

static void country_table(sr_buf *out, const sr_json *strategies) {
    sr_buf_puts(out, "<table id=\"countries\">\n<thead><tr><th scope=\"col\">Country code</th>"
                     "<th scope=\"col\">Strategy</th><th scope=\"col\">Messages</th><th scope=\"col\">Delivered</th>"
                     "<th scope=\"col\">Delivered share</th><th scope=\"col\">Cost</th>"
                     "<th scope=\"col\">Cost per delivered</th></tr></thead>\n<tbody>\n");
    int rows = 0;
    for (const sr_json *s = strategies->child; s; s = s->next) {
        const sr_json *countries = sr_json_get(s, "countries");
        if (!countries || countries->type != SR_JSON_OBJECT) continue;
        for (const sr_json *c = countries->child; c; c = c->next) {
            double messages = 0, delivered = 0, cost = 0;
            int has_m = member_number(c, "messages", &messages), has_d = member_number(c, "delivered", &delivered);
            int has_c = member_number(c, "cost", &cost);
            sr_buf_puts(out, "<tr><td class=\"text\">+");
            html_text(out, c->key, c->key_len);
            sr_buf_puts(out, "</td><td class=\"text\">");
            html_member(out, s, "name");
            sr_buf_puts(out, "</td><td>");
            if (has_m) put_value(out, messages, FMT_COUNT);
            sr_buf_puts(out, "</td><td>");
            if (has_d) put_value(out, delivered, FMT_COUNT);
            sr_buf_puts(out, "</td><td>");
            if (has_m && has_d && messages > 0) put_value(out, delivered / messages, FMT_SHARE);
            sr_buf_puts(out, "</td><td>");
            if (has_c) put_value(out, cost, FMT_MONEY);
            sr_buf_puts(out, "</td><td>");
            if (has_c && has_d && delivered > 0) put_value(out, cost / delivered, FMT_MONEY);
            sr_buf_puts(out, "</td></tr>\n");
            rows++;
        }
    }
    if (rows == 0) sr_buf_puts(out, "<tr><td class=\"text\" colspan=\"7\">no per-country figures</td></tr>\n");
    sr_buf_puts(out, "</tbody></table>\n");
}

int sr_sim_report_html(const sr_json *doc, sr_buf *out) {
    const sr_json *strategies = sr_json_get(doc, "strategies");
    if (!strategies || strategies->type != SR_JSON_ARRAY) return -EINVAL;
    for (const sr_json *s = strategies->child; s; s = s->next)
        if (s->type != SR_JSON_OBJECT) return -EINVAL;

    sr_buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                     /* Nothing may be fetched: no script, no remote style, image or font, ever. */
                     "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                     "style-src 'unsafe-inline'; img-src data:\">\n"
                     "<title>smsrules simulation report</title>\n<style>\n");
    sr_buf_puts(out, style_sheet);
    sr_buf_puts(out, "</style>\n</head>\n<body>\n<h1>smsrules simulation report</h1>\n");
    sr_buf_printf(out, "<p class=\"note\">%zu strateg%s compared on the same traffic and provider models.</p>\n",
                  strategies->count, strategies->count == 1 ? "y" : "ies");
    sr_buf_puts(out, "<nav aria-label=\"Sections\"><ul><li><a href=\"#h-summary\">Summary</a></li>"
                     "<li><a href=\"#h-delivered\">Delivered over time</a></li>"
                     "<li><a href=\"#h-cost\">Cost against delivery</a></li>"
                     "<li><a href=\"#h-providers\">Providers</a></li>"
                     "<li><a href=\"#h-countries\">Countries</a></li></ul></nav>\n");

    sr_buf_puts(out, "<section aria-labelledby=\"h-summary\">\n<h2 id=\"h-summary\">Summary</h2>\n");
    summary_table(out, strategies);
    sr_buf_puts(out, "</section>\n");

    sr_buf_puts(out, "<section aria-labelledby=\"h-delivered\">\n<h2 id=\"h-delivered\">Delivered over time</h2>\n"
                     "<p class=\"note\">Cumulative messages accepted (dashed grey) and delivered (solid blue), "
                     "per simulated minute.</p>\n");
    int index = 0;
    for (const sr_json *s = strategies->child; s; s = s->next) timeline_chart(out, s, index++);
    sr_buf_puts(out, "</section>\n");

    sr_buf_puts(out, "<section aria-labelledby=\"h-cost\">\n<h2 id=\"h-cost\">Cost against delivery</h2>\n");
    cost_delivery_chart(out, strategies);
    sr_buf_puts(out, "</section>\n");

    sr_buf_puts(out, "<section aria-labelledby=\"h-providers\">\n<h2 id=\"h-providers\">Providers</h2>\n");
    provider_chart(out, strategies);
    sr_buf_puts(out, "</section>\n");

    sr_buf_puts(out, "<section aria-labelledby=\"h-countries\">\n<h2 id=\"h-countries\">Countries</h2>\n");
    country_table(out, strategies);
    sr_buf_puts(out, "</section>\n</body>\n</html>\n");
    return 0;
}
