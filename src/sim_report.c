/* sim_report: a plain HTML page of the simulation results: one table with a
 * column per strategy (see sim_report.h). */
#include "sim_report.h"

#include <string.h>

static void report_escape(sr_buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '<': sr_buf_puts(out, "&lt;"); break;
        case '>': sr_buf_puts(out, "&gt;"); break;
        case '&': sr_buf_puts(out, "&amp;"); break;
        case '"': sr_buf_puts(out, "&quot;"); break;
        case '\'': sr_buf_puts(out, "&#39;"); break;
        default: sr_buf_putc(out, s[i]);
        }
    }
}

/* A scalar as text (numbers as written in the document); objects and arrays as compact JSON. */
static void report_value(sr_buf *out, const sr_json *v) {
    if (!v) return;
    if (v->type == SR_JSON_STRING || v->type == SR_JSON_NUMBER) {
        report_escape(out, v->str, v->len);
        return;
    }
    sr_buf tmp;
    sr_buf_init(&tmp);
    sr_json_write(&tmp, v);
    report_escape(out, tmp.data, tmp.len);
    sr_buf_free(&tmp);
}

int sr_sim_report_html(const sr_json *doc, sr_buf *out) {
    const sr_json *strategies = doc && doc->type == SR_JSON_OBJECT ? sr_json_get(doc, "strategies") : NULL;
    if (!strategies || strategies->type != SR_JSON_ARRAY || !strategies->child ||
        strategies->child->type != SR_JSON_OBJECT)
        return -1;
    sr_buf_puts(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>smsrules simulate</title>\n"
                     "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
                     "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{text-align:left}</style>\n"
                     "</head><body>\n<h1>smsrules simulate</h1>\n<table>\n");
    /* Rows: the members of the first strategy, in its order. */
    for (const sr_json *row = strategies->child->child; row; row = row->next) {
        if (strcmp(row->key, "timeline") == 0) continue; /* one number per minute: not a table cell */
        sr_buf_puts(out, "<tr><th>");
        report_escape(out, row->key, row->key_len);
        sr_buf_puts(out, "</th>");
        for (const sr_json *s = strategies->child; s; s = s->next) {
            sr_buf_puts(out, "<td>");
            if (s->type == SR_JSON_OBJECT) report_value(out, sr_json_get(s, row->key));
            sr_buf_puts(out, "</td>");
        }
        sr_buf_puts(out, "</tr>\n");
    }
    sr_buf_puts(out, "</table>\n</body></html>\n");
    return 0;
}
