/* sim_report: the HTML page of a simulation (`smsrules simulate --html`).
 *
 * This unit owns the rendering of the `--json` document of `smsrules
 * simulate` into one self-contained page: our own small style sheet, no
 * script, and every chart drawn here as inline SVG, so the page fetches
 * nothing when it opens (it can be mailed, archived, opened offline).
 * Every text taken from the document (strategy names, rules file paths,
 * provider names, country codes) is HTML-escaped. */
#ifndef SR_SIM_REPORT_H
#define SR_SIM_REPORT_H

#include "core/buf.h"
#include "codec/json.h"

/* Appends the page for doc (the simulate --json document:
 * {"strategies": [{"name", "rules", "messages", ... "timeline", "countries"}]},
 * borrowed for the call) to out. Members a strategy lacks, or that are null,
 * are shown as "–"; charts without data say so. Returns 0, or -EINVAL when
 * doc is not an object with a "strategies" array of objects (out is then left
 * as it was). */
int sr_sim_report_html(const sr_json *doc, sr_buf *out);

#endif
