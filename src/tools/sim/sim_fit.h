/* sim_fit: the strategy lab's bridge from reality — `smsrules models fit`
 * and `smsrules traffic export`.
 *
 * This unit reads an engine's own history from its data directory (opened
 * read-only, without the directory lock, so a running daemon keeps running)
 * and writes what `smsrules simulate` reads: a models file fitted per
 * provider (a default and per-country overrides where a country has enough
 * attempts) and a traffic file of what was really sent, as JSON lines without
 * message texts (time, country calling code, segments, tags). Memory is
 * bounded whatever the history: counters per provider × country and a fixed
 * reservoir of latency samples per group. */
#ifndef SR_SIM_FIT_H
#define SR_SIM_FIT_H

#include <stdint.h>

#include "core/buf.h"
#include "model/message.h"

/* `smsrules models ...`: argv[0] is "models". Returns the exit code (0, 1 user error, 2 runtime). */
int sr_models_main(int argc, char **argv);
/* `smsrules traffic ...`: argv[0] is "traffic". Returns the exit code. */
int sr_traffic_main(int argc, char **argv);

/* Reads a duration such as "7d", "12h", "30m", "90s" or "3600" (seconds) into *ms.
 * Returns 0, or -1 when it is not one (a missing, zero or negative number, an unknown unit). */
int sr_sim_parse_duration(const char *s, int64_t *ms);

/* The fitting itself, for tests and for the commands above. */
typedef struct sr_models_fit sr_models_fit;
/* A fit that makes per-country overrides for countries with at least min_samples attempts. */
sr_models_fit *sr_models_fit_new(int min_samples);
void sr_models_fit_free(sr_models_fit *f);
/* Adds one stored message (borrowed for the call). Accepted attempts still without a final report
 * that were sent after settle_before_ms are left out of the report shares (their report may still
 * come); 0 counts every one. */
void sr_models_fit_add(sr_models_fit *f, const sr_message *m, int64_t settle_before_ms);
/* Appends the models file (JSON, one provider per line) to out. */
void sr_models_fit_write(sr_models_fit *f, sr_buf *out);

#endif
