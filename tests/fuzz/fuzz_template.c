/* Fuzz target for src/codec/template.c: sr_template_compile on arbitrary bytes and,
 * when it compiles, sr_template_render through sr_template_lookup_json over a
 * small fixed document. Checks template.h: a failed compile sets *out to NULL
 * and says "offset N: ..."; every variable path is listed once; a render
 * either succeeds or leaves the buffer exactly as it was (content before the
 * call kept); the output never exceeds SR_TEMPLATE_MAX_OUTPUT; and a template
 * without variables renders to its source with each \{{ turned into {{.
 * The document holds a 4000-byte string ("big") so a short template can reach
 * the output limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "codec/json.h"
#include "codec/template.h"

/* libFuzzer's entry points. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_template_vars[] =
    "{\"order\":{\"number\":\"A-1001\",\"total\":12.50,\"paid\":true,\"refunded\":false,\"note\":null,"
    "\"items\":[{\"name\":\"Tea\",\"qty\":2},{\"name\":\"Cup\",\"qty\":1}]},"
    "\"name\":\"Ana\",\"1\":\"one\",\"list\":[1,2,\"three\",[4]],\"empty\":\"\",\"obj\":{},\"big\":\"";

static sr_json_doc fuzz_template_doc;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    sr_buf text;
    sr_buf_init(&text);
    sr_buf_puts(&text, fuzz_template_vars);
    for (int i = 0; i < 4000; i++) sr_buf_putc(&text, (char)('a' + i % 26));
    sr_buf_puts(&text, "\"}");
    if (sr_json_parse(&fuzz_template_doc, text.data, text.len, NULL, 0) < 0) abort();
    sr_buf_free(&text);
    return 0;
}

/* The source of a template without placeholders, as it must render. */
static void fuzz_template_literal(sr_buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        if (s[i] == '\\' && len - i >= 3 && s[i + 1] == '{' && s[i + 2] == '{') {
            sr_buf_append(out, "{{", 2);
            i += 3;
        } else {
            sr_buf_putc(out, s[i++]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *src = (const char *)data;
    sr_template *t = (sr_template *)1;
    char err[160];
    if (sr_template_compile(src, size, &t, err, sizeof err) < 0) {
        if (t != NULL || strncmp(err, "offset ", 7) != 0) abort();
        return 0;
    }
    int n = sr_template_var_count(t);
    for (int i = 0; i < n; i++) {
        const char *name = sr_template_var(t, i);
        if (!name || !name[0]) abort();
        for (int j = 0; j < i; j++)
            if (strcmp(name, sr_template_var(t, j)) == 0) abort();
    }
    if (sr_template_var(t, n) != NULL || sr_template_var(t, -1) != NULL) abort();

    sr_buf out;
    sr_buf_init(&out);
    sr_buf_puts(&out, "kept:");
    int rc = sr_template_render(t, sr_template_lookup_json, (void *)fuzz_template_doc.root, &out, err, sizeof err);
    if (rc < 0 && (out.len != 5 || memcmp(out.data, "kept:", 6) != 0)) abort();
    if (rc == 0 && (out.len - 5 > SR_TEMPLATE_MAX_OUTPUT || memcmp(out.data, "kept:", 5) != 0)) abort();
    if (rc == 0 && n == 0) {
        sr_buf expected;
        sr_buf_init(&expected);
        sr_buf_puts(&expected, "kept:");
        fuzz_template_literal(&expected, src, size);
        if (expected.len != out.len || memcmp(expected.data, out.data, out.len) != 0) abort();
        sr_buf_free(&expected);
    }
    /* No variables at all, and no lookup: a template with a placeholder must fail. */
    sr_buf_reset(&out);
    rc = sr_template_render(t, sr_template_lookup_json, NULL, &out, err, sizeof err);
    if (n > 0 && rc == 0) abort();
    rc = sr_template_render(t, NULL, NULL, &out, err, sizeof err);
    if (n > 0 && rc == 0) abort();
    sr_buf_free(&out);
    sr_template_free(t);
    return 0;
}
