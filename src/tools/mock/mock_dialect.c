/* mock_dialect: the names of the dialects the mock speaks and what each does. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

#include "core/buf.h"
#include "core/log.h"
#include "codec/crypto.h"
#include "codec/json.h"
#include "http/http_client.h"
#include "http/http_server.h"
#include "tools/mock/mock_internal.h"

/* ---- dialects: which provider API the mock speaks ---- */

const char *const mock_dialect_names[] = {"mock",         "generic", "smsbat", "devino",
                                                 "agiletelecom", "smsc",    "twilio", "vonage", NULL};

/* SMSC documents no status push we could follow: its reports are polled. */
bool mock_dialect_pushes(mock_dialect d) { return d != MOCK_DIALECT_SMSC; }

bool mock_dialect_polled(mock_dialect d) {
    return d == MOCK_DIALECT_SMSBAT || d == MOCK_DIALECT_DEVINO || d == MOCK_DIALECT_SMSC;
}

/* Dialects with an inbound-SMS webhook (one their adapter's parse_inbound
 * reads): SMSBat and SMSC document none. */
bool mock_dialect_has_inbound(mock_dialect d) { return d != MOCK_DIALECT_SMSBAT && d != MOCK_DIALECT_SMSC; }

/* The dialect named name (len bytes), or -1. */
int mock_dialect_parse(const char *name, size_t len) {
    for (int i = 0; mock_dialect_names[i]; i++)
        if (strlen(mock_dialect_names[i]) == len && memcmp(mock_dialect_names[i], name, len) == 0) return i;
    return -1;
}
