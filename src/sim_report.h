/* sim_report: the HTML page of `smsrules simulate --html`, rendered from the
 * simulation's JSON document (the one --json prints). Self-contained: nothing
 * is fetched when the page opens. */
#ifndef SR_SIM_REPORT_H
#define SR_SIM_REPORT_H

#include "buf.h"
#include "json.h"

/* Appends the page for doc ({"strategies": [...]}, borrowed) to out.
 * Returns 0, or -1 when doc is not such a document (out unchanged). */
int sr_sim_report_html(const sr_json *doc, sr_buf *out);

#endif
