/* Fuzz target for sr_time_parse_rfc3339 in src/model/message.c (times in HTTP API
 * bodies: send_at). Arbitrary bytes, not NUL-terminated; an accepted time is
 * formatted with sr_time_rfc3339, and for years 0000-9999 that text must
 * parse back to the same millisecond. */
#include <stdint.h>
#include <stdlib.h>

#include "core/buf.h"
#include "model/message.h"

/* libFuzzer's entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int64_t ms;
    if (sr_time_parse_rfc3339((const char *)data, size, &ms) < 0) return 0;
    sr_buf text;
    sr_buf_init(&text);
    sr_time_rfc3339(ms, &text);
    int64_t again;
    if (text.len == 24 && text.data[0] >= '0' && text.data[0] <= '9') {
        if (sr_time_parse_rfc3339(text.data, text.len, &again) < 0 || again != ms) abort();
    }
    sr_buf_free(&text);
    return 0;
}
