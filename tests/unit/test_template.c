/* Unit tests for src/codec/template.c: template syntax and its errors, the compiled
 * variable list, rendering with the JSON and Lua lookups, the size limits and
 * the rendering speed. Template sources are copied into buffers of their exact
 * size, so under AddressSanitizer any read past the end is caught. */
#include <stdint.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "core/buf.h"
#include "codec/json.h"
#include "codec/template.h"
#include "unit.h"

/* ---- helpers ----------------------------------------------------------- */

/* Compiles src[0..len) from an exact-size heap copy; returns rc, *out, err. */
static int compile_exact(const char *src, size_t len, sr_template **out, char *err, size_t errlen) {
    char *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, src, len);
    int rc = sr_template_compile(copy, len, out, err, errlen);
    free(copy);
    return rc;
}

/* Compiles the NUL-terminated src, failing the test on a syntax error. */
static sr_template *compile_ok(const char *src) {
    sr_template *t = NULL;
    char err[256];
    if (compile_exact(src, strlen(src), &t, err, sizeof err) != 0) UNIT_FAIL("\"%.80s\" did not compile: %s", src, err);
    CHECK(t != NULL);
    return t;
}

/* Checks that src fails to compile with exactly the message expected. */
static void compile_fails(const char *src, const char *expected) {
    sr_template *t = (sr_template *)&t; /* must be reset to NULL */
    char err[256] = "";
    int rc = compile_exact(src, strlen(src), &t, err, sizeof err);
    if (rc != -1) UNIT_FAIL("\"%s\" compiled, expected error \"%s\"", src, expected);
    CHECK(t == NULL);
    if (strcmp(err, expected) != 0) UNIT_FAIL("\"%s\": error \"%s\", expected \"%s\"", src, err, expected);
}

/* Renders template src with the JSON document json; expected NULL means the
 * render must fail with expected_err. */
static void render_json(const char *src, const char *json, const char *expected, const char *expected_err) {
    sr_json_doc doc;
    char err[256] = "";
    if (sr_json_parse(&doc, json, strlen(json), err, sizeof err) != 0) UNIT_FAIL("bad JSON %s: %s", json, err);
    sr_template *t = compile_ok(src);
    sr_buf out;
    sr_buf_init(&out);
    int rc = sr_template_render(t, sr_template_lookup_json, doc.root, &out, err, sizeof err);
    if (expected) {
        if (rc != 0) UNIT_FAIL("\"%s\" with %s: %s", src, json, err);
        CHECK_INT(out.len, strlen(expected));
        CHECK_STR(sr_buf_cstr(&out), expected);
    } else {
        if (rc != -1) UNIT_FAIL("\"%s\" with %s rendered \"%s\"", src, json, sr_buf_cstr(&out));
        CHECK_STR(err, expected_err);
        CHECK_INT(out.len, 0);
    }
    sr_buf_free(&out);
    sr_template_free(t);
    sr_json_doc_free(&doc);
}

static lua_State *lua_new(void) {
    lua_State *L = luaL_newstate();
    CHECK(L != NULL);
    luaL_openlibs(L);
    return L;
}

/* Runs chunk (which returns the vars table) in L, leaving the table on top. */
static void lua_push_vars(lua_State *L, const char *chunk) {
    if (luaL_dostring(L, chunk) != LUA_OK) UNIT_FAIL("lua: %s", lua_tostring(L, -1));
    CHECK(lua_istable(L, -1));
}

/* Renders src with the vars table that chunk returns, like render_json, and
 * checks that the lookup left the Lua stack exactly as it found it. */
static void render_lua(const char *src, const char *chunk, const char *expected, const char *expected_err) {
    lua_State *L = lua_new();
    lua_push_vars(L, chunk);
    int top = lua_gettop(L);
    sr_template_lua_vars vars = {L, -1};
    sr_template *t = compile_ok(src);
    sr_buf out;
    sr_buf_init(&out);
    char err[256] = "";
    int rc = sr_template_render(t, sr_template_lookup_lua, &vars, &out, err, sizeof err);
    CHECK_INT(lua_gettop(L), top);
    if (expected) {
        if (rc != 0) UNIT_FAIL("\"%s\" with %s: %s", src, chunk, err);
        CHECK_INT(out.len, strlen(expected));
        CHECK_STR(sr_buf_cstr(&out), expected);
    } else {
        if (rc != -1) UNIT_FAIL("\"%s\" with %s rendered \"%s\"", src, chunk, sr_buf_cstr(&out));
        CHECK_STR(err, expected_err);
        CHECK_INT(out.len, 0);
    }
    sr_buf_free(&out);
    sr_template_free(t);
    lua_close(L);
}

/* A lookup that answers "v" for every path and counts its calls. */
static int counting_lookup(void *ud, const char *const *segments, int count, sr_buf *out) {
    (*(int *)ud)++;
    sr_buf_putc(out, 'v');
    return 0;
}

/* ---- syntax ------------------------------------------------------------- */

TEST(literal_only) {
    render_json("Hello, world! { } }} {x} \\n \\", "{}", "Hello, world! { } }} {x} \\n \\", NULL);
    render_json("", "{}", "", NULL);
    sr_template *t = compile_ok("no placeholders }} here");
    CHECK_INT(sr_template_var_count(t), 0);
    int calls = 0;
    sr_buf out;
    sr_buf_init(&out);
    CHECK_INT(sr_template_render(t, counting_lookup, &calls, &out, NULL, 0), 0);
    CHECK_STR(sr_buf_cstr(&out), "no placeholders }} here");
    CHECK_INT(calls, 0);
    sr_buf_free(&out);
    sr_template_free(t);
}

TEST(several_variables) {
    render_json("Order #{{order.number}} confirmed. Total {{order.total}}. Delivery {{order.eta}}.",
                "{\"order\":{\"number\":\"A-17\",\"total\":\"12.50 EUR\",\"eta\":\"Monday\"}}",
                "Order #A-17 confirmed. Total 12.50 EUR. Delivery Monday.", NULL);
    render_json("{{a}}{{b}}{{a}}", "{\"a\":\"1\",\"b\":\"2\"}", "121", NULL);
}

TEST(nested_paths) {
    render_json("{{a.b.c.d}}/{{a.b.x}}/{{top}}", "{\"top\":\"T\",\"a\":{\"b\":{\"x\":\"X\",\"c\":{\"d\":\"deep\"}}}}",
                "deep/X/T", NULL);
    render_lua("{{a.b.c.d}}/{{a.b.x}}/{{top}}", "return {top='T', a={b={x='X', c={d='deep'}}}}", "deep/X/T", NULL);
    render_json("{{_private.Key_2}}", "{\"_private\":{\"Key_2\":\"ok\"}}", "ok", NULL);
}

TEST(whitespace_inside_braces) {
    render_json("#{{ order.number }}|{{\torder.number\r\n}}|{{order.number   }}", "{\"order\":{\"number\":\"7\"}}",
                "#7|7|7", NULL);
    sr_template *t = compile_ok("{{  order.number  }} {{order.number}}");
    CHECK_INT(sr_template_var_count(t), 1);
    CHECK_STR(sr_template_var(t, 0), "order.number");
    sr_template_free(t);
}

TEST(array_index) {
    const char *json = "{\"items\":[{\"name\":\"pen\"},{\"name\":\"ink\"}],\"codes\":[\"x\",\"y\",\"z\"]}";
    render_json("{{items.1.name}}, {{items.2.name}}, {{codes.3}}", json, "pen, ink, z", NULL);
    render_json("{{items.3.name}}", json, NULL, "missing variable 'items.3.name'");
    render_json("{{codes.name}}", json, NULL, "missing variable 'codes.name'");
    /* An index applied to an object selects the member of that name. */
    render_json("{{byid.10}}", "{\"byid\":{\"10\":\"ten\"}}", "ten", NULL);

    const char *chunk = "return {items={{name='pen'},{name='ink'}}, codes={'x','y','z'}}";
    render_lua("{{items.1.name}}, {{items.2.name}}, {{codes.3}}", chunk, "pen, ink, z", NULL);
    render_lua("{{codes.4}}", chunk, NULL, "missing variable 'codes.4'");
    /* A table decoded from a JSON object has string keys "1", "2", ... */
    render_lua("{{byid.10}}", "return {byid={['10']='ten'}}", "ten", NULL);
    render_lua("{{t.2}}", "return {t={[2]='int', ['2']='str'}}", "int", NULL);
}

TEST(escape_braces) {
    render_json("\\{{not.a.var}} and {{x}}", "{\"x\":\"X\"}", "{{not.a.var}} and X", NULL);
    render_json("a\\{{{x}}", "{\"x\":\"X\"}", "a{{{x}}", NULL);
    render_json("\\{ \\} \\\\ \\", "{}", "\\{ \\} \\\\ \\", NULL);
    sr_template *t = compile_ok("\\{{x}} {{y}}");
    CHECK_INT(sr_template_var_count(t), 1);
    CHECK_STR(sr_template_var(t, 0), "y");
    sr_template_free(t);
}

TEST(syntax_errors) {
    compile_fails("Hi {{name", "offset 3: unclosed '{{' (write \\{{ for a literal '{{')");
    compile_fails("Hi {{name}", "offset 3: unclosed '{{' (write \\{{ for a literal '{{')");
    compile_fails("Hi {{name, your code is {{code}}", "offset 3: unclosed '{{' (write \\{{ for a literal '{{')");
    compile_fails("{{{{x}}", "offset 0: unclosed '{{' (write \\{{ for a literal '{{')");
    compile_fails("{{", "offset 0: unclosed '{{' (write \\{{ for a literal '{{')");
    compile_fails("{{}}", "offset 0: empty placeholder '{{}}'");
    compile_fails("ab{{ \t }}", "offset 2: empty placeholder '{{}}'");
    compile_fails("{{a..b}}", "offset 4: expected a name or an array index in the path");
    compile_fails("{{a.}}", "offset 4: expected a name or an array index in the path");
    compile_fails("{{a. b}}", "offset 4: expected a name or an array index in the path");
    compile_fails("{{.a}}", "offset 2: expected a name or an array index in the path");
    compile_fails("{{ 1abc }}", "offset 3: bad path segment '1abc': a name starts with a letter or '_'");
    compile_fails("{{a.0}}", "offset 4: bad array index '0': indexes start at 1, without leading zeros");
    compile_fails("{{a.01}}", "offset 4: bad array index '01': indexes start at 1, without leading zeros");
    compile_fails("{{a.2147483648}}", "offset 4: array index too large");
    compile_fails("{{a.99999999999999999999}}", "offset 4: array index too large");
    compile_fails("{{a-b}}", "offset 3: unexpected character '-' in placeholder (expected '.' or '}}')");
    compile_fails("{{a b}}", "offset 3: unexpected whitespace in the path");
    compile_fails("{{ a .b }}", "offset 4: unexpected whitespace in the path");
    compile_fails("{{a }x}}", "offset 4: unexpected character '}' in placeholder (expected '.' or '}}')");
    compile_fails("{{{a}}}", "offset 2: unexpected character '{' in placeholder");
    compile_fails("x {{\xd0\xb8\xd0\xbc\xd1\x8f}}", "offset 4: unexpected byte 0xD0 in placeholder");
    compile_fails("{{a'}}", "offset 3: unexpected byte 0x27 in placeholder (expected '.' or '}}')");

    /* The largest index is fine, and so is a NULL err. */
    sr_template *t = compile_ok("{{a.2147483647}}");
    sr_template_free(t);
    t = (sr_template *)&t;
    CHECK_INT(sr_template_compile("{{", 2, &t, NULL, 0), -1);
    CHECK(t == NULL);
    /* A short err buffer is truncated, not overrun. */
    char small[10];
    memset(small, 'x', sizeof small);
    CHECK_INT(sr_template_compile("{{}}", 4, &t, small, 8), -1);
    CHECK_STR(small, "offset ");
    CHECK(small[8] == 'x');
}

TEST(source_limit) {
    size_t len = SR_TEMPLATE_MAX_SOURCE;
    char *src = malloc(len + 1);
    CHECK(src != NULL);
    memset(src, 'a', len + 1);
    memcpy(src + len - 5, "{{x}}", 5);
    sr_template *t = NULL;
    char err[256];
    CHECK_INT(compile_exact(src, len, &t, err, sizeof err), 0);
    CHECK_INT(sr_template_var_count(t), 1);
    sr_template_free(t);
    CHECK_INT(compile_exact(src, len + 1, &t, err, sizeof err), -1);
    CHECK(t == NULL);
    CHECK_STR(err, "offset 65536: template longer than 65536 bytes");
    free(src);
}

/* ---- rendering ---------------------------------------------------------- */

TEST(missing_variable_json) {
    const char *json = "{\"order\":{\"number\":1}}";
    render_json("Total {{order.total}}", json, NULL, "missing variable 'order.total'");
    render_json("{{order.number}} {{a.b}} {{c}}", json, NULL, "missing variable 'a.b'");
    render_json("{{order.number.x}}", json, NULL, "missing variable 'order.number.x'");
    /* No document at all: every variable is missing. */
    sr_template *t = compile_ok("{{x}}");
    sr_buf out;
    sr_buf_init(&out);
    char err[128];
    CHECK_INT(sr_template_render(t, sr_template_lookup_json, NULL, &out, err, sizeof err), -1);
    CHECK_STR(err, "missing variable 'x'");
    /* No lookup at all: same. */
    CHECK_INT(sr_template_render(t, NULL, NULL, &out, err, sizeof err), -1);
    CHECK_STR(err, "missing variable 'x'");
    sr_buf_free(&out);
    sr_template_free(t);
}

TEST(missing_variable_lua) {
    render_lua("Total {{order.total}}", "return {order={number=1}}", NULL, "missing variable 'order.total'");
    render_lua("{{order.number}} {{a.b}}", "return {order={number=1}}", NULL, "missing variable 'a.b'");
    render_lua("{{order.number.x}}", "return {order={number='1'}}", NULL, "missing variable 'order.number.x'");
    render_lua("{{x}}", "return {x=nil, y=1}", NULL, "missing variable 'x'");
}

TEST(failed_render_restores_buffer) {
    sr_json_doc doc;
    CHECK_INT(sr_json_parse(&doc, "{\"a\":\"A\"}", 9, NULL, 0), 0);
    sr_template *t = compile_ok("long literal text {{a}} then {{b}}");
    sr_buf out;
    sr_buf_init(&out);
    sr_buf_puts(&out, "keep|");
    char err[128];
    CHECK_INT(sr_template_render(t, sr_template_lookup_json, doc.root, &out, err, sizeof err), -1);
    CHECK_STR(err, "missing variable 'b'");
    CHECK_INT(out.len, 5);
    CHECK_STR(sr_buf_cstr(&out), "keep|");
    sr_buf_free(&out);
    sr_template_free(t);
    sr_json_doc_free(&doc);
}

TEST(render_appends_and_reuses_buffer) {
    sr_json_doc doc;
    CHECK_INT(sr_json_parse(&doc, "{\"a\":\"A\"}", 9, NULL, 0), 0);
    sr_template *t = compile_ok("<{{a}}>");
    sr_buf out;
    sr_buf_init(&out);
    sr_buf_puts(&out, "x");
    CHECK_INT(sr_template_render(t, sr_template_lookup_json, doc.root, &out, NULL, 0), 0);
    CHECK_STR(sr_buf_cstr(&out), "x<A>");
    for (int i = 0; i < 3; i++) {
        sr_buf_reset(&out);
        CHECK_INT(sr_template_render(t, sr_template_lookup_json, doc.root, &out, NULL, 0), 0);
        CHECK_STR(sr_buf_cstr(&out), "<A>");
    }
    sr_buf_free(&out);
    sr_template_free(t);
    sr_json_doc_free(&doc);
}

TEST(not_printable_json) {
    const char *json = "{\"o\":{\"k\":1},\"a\":[1,2],\"n\":null,\"e\":{},\"z\":[]}";
    render_json("{{o}}", json, NULL, "variable 'o' is not a string or number");
    render_json("{{a}}", json, NULL, "variable 'a' is not a string or number");
    render_json("{{n}}", json, NULL, "variable 'n' is not a string or number");
    render_json("{{e}}", json, NULL, "variable 'e' is not a string or number");
    render_json("{{z}}", json, NULL, "variable 'z' is not a string or number");
    render_json("{{o.k}} {{a.2}}", json, "1 2", NULL);
    /* Walking through a null is a missing path, not a printable problem. */
    render_json("{{n.x}}", json, NULL, "missing variable 'n.x'");
}

TEST(not_printable_lua) {
    const char *chunk = "return {t={k=1}, f=print, co=coroutine.create(print), u=io.stdout}";
    render_lua("{{t}}", chunk, NULL, "variable 't' is not a string or number");
    render_lua("{{f}}", chunk, NULL, "variable 'f' is not a string or number");
    render_lua("{{co}}", chunk, NULL, "variable 'co' is not a string or number");
    render_lua("{{u}}", chunk, NULL, "variable 'u' is not a string or number");
    render_lua("{{t.k}}", chunk, "1", NULL);
}

TEST(numbers_json) {
    render_json("{{a}} {{b}} {{c}} {{d}} {{e}}", "{\"a\":12.50,\"b\":1E3,\"c\":-0,\"d\":3482512350952730368,\"e\":0.1}",
                "12.50 1E3 -0 3482512350952730368 0.1", NULL);
}

TEST(numbers_lua) {
    render_lua("{{i}} {{f}} {{neg}} {{whole}} {{third}} {{min}} {{big}}",
               "return {i=42, f=12.5, neg=-7, whole=3.0, third=1/3, min=math.mininteger, big=1e100}",
               "42 12.5 -7 3 0.33333333333333 -9223372036854775808 1e+100", NULL);
}

TEST(booleans) {
    render_json("{{t}}/{{f}}", "{\"t\":true,\"f\":false}", "true/false", NULL);
    render_lua("{{t}}/{{f}}", "return {t=true, f=false}", "true/false", NULL);
}

TEST(lua_stack_balanced) {
    lua_State *L = lua_new();
    lua_pushinteger(L, 123); /* something below, to catch a wrong index */
    lua_push_vars(L, "return {s='x', n=1, t={}, deep={a={b='c'}}}");
    lua_pushboolean(L, 1); /* the vars table is now at -2 */
    int top = lua_gettop(L);
    const char *paths[] = {"s", "n", "t", "deep.a.b", "deep.a", "deep.x.y", "s.x", "nope", "deep.a.b.c"};
    int expected[] = {0,
                      0,
                      SR_TEMPLATE_NOT_PRINTABLE,
                      0,
                      SR_TEMPLATE_NOT_PRINTABLE,
                      SR_TEMPLATE_MISSING,
                      SR_TEMPLATE_MISSING,
                      SR_TEMPLATE_MISSING,
                      SR_TEMPLATE_MISSING};
    sr_template_lua_vars relative = {L, -2};
    sr_template_lua_vars absolute = {L, top - 1};
    sr_buf out;
    sr_buf_init(&out);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        for (int which = 0; which < 2; which++) {
            void *ud = which ? (void *)&absolute : (void *)&relative;
            /* Zero segments: the vars table itself, which is not printable. */
            sr_buf_reset(&out);
            CHECK_INT(sr_template_lookup_lua(ud, NULL, 0, &out), SR_TEMPLATE_NOT_PRINTABLE);
            CHECK_INT(lua_gettop(L), top);
            sr_buf_reset(&out);
            const char *segments[8];
            int count = 0;
            char copy[64];
            snprintf(copy, sizeof copy, "%s", paths[i]);
            for (char *s = strtok(copy, "."); s; s = strtok(NULL, ".")) segments[count++] = s;
            int rc = sr_template_lookup_lua(ud, segments, count, &out);
            if (rc != expected[i]) UNIT_FAIL("path %s: rc %d, expected %d", paths[i], rc, expected[i]);
            CHECK_INT(lua_gettop(L), top);
        }
    }
    CHECK_INT(lua_toboolean(L, -1), 1);
    CHECK_INT(lua_tointeger(L, 1), 123);
    sr_buf_free(&out);
    lua_close(L);
}

TEST(lua_no_metamethods) {
    /* Any metamethod call would raise outside a protected call and abort the
     * test process: raw access must never run one. */
    const char *chunk = "local boom = function() error('metamethod called') end\n"
                        "local inner = setmetatable({}, {__index = boom})\n"
                        "local proxy = setmetatable({}, {__index = {hidden = 'h'}})\n"
                        "return setmetatable({inner = inner, proxy = proxy, s = 'ok',\n"
                        "                     obj = setmetatable({}, {__tostring = boom, __name = 'x'})},\n"
                        "                    {__index = boom})";
    render_lua("{{nothere}}", chunk, NULL, "missing variable 'nothere'");
    render_lua("{{inner.x}}", chunk, NULL, "missing variable 'inner.x'");
    render_lua("{{inner.1}}", chunk, NULL, "missing variable 'inner.1'");
    render_lua("{{proxy.hidden}}", chunk, NULL, "missing variable 'proxy.hidden'");
    render_lua("{{obj}}", chunk, NULL, "variable 'obj' is not a string or number");
    render_lua("{{s}}", chunk, "ok", NULL);
    /* Strings have a metatable with __index = string: "s.len" must not find it. */
    render_lua("{{s.len}}", chunk, NULL, "missing variable 's.len'");
}

TEST(utf8_passes_through) {
    render_json("Привет, {{name}}! 😀 {{city}}", "{\"name\":\"Zoë\",\"city\":\"東京\"}", "Привет, Zoë! 😀 東京", NULL);
    render_lua("Привет, {{name}}! 😀", "return {name='Zoë'}", "Привет, Zoë! 😀", NULL);
    /* Bytes are not checked here: that is the SMS text rules' job. */
    render_json("\xff{{x}}\xfe", "{\"x\":\"a\"}",
                "\xff"
                "a\xfe",
                NULL);
}

TEST(output_limit) {
    sr_buf src, out;
    sr_buf_init(&src);
    sr_buf_init(&out);
    char err[128];

    /* One variable of 1000 bytes, used 65 times: 65000 bytes fit, 66 do not. */
    lua_State *L = lua_new();
    lua_push_vars(L, "return {x=string.rep('x', 1000), y=string.rep('y', 536)}");
    sr_template_lua_vars vars = {L, -1};
    for (int i = 0; i < 65; i++) sr_buf_puts(&src, "{{x}}");
    sr_template *t = compile_ok(sr_buf_cstr(&src));
    CHECK_INT(sr_template_render(t, sr_template_lookup_lua, &vars, &out, err, sizeof err), 0);
    CHECK_INT(out.len, 65000);
    sr_template_free(t);
    /* Exactly the limit. */
    sr_buf_puts(&src, "{{y}}");
    t = compile_ok(sr_buf_cstr(&src));
    sr_buf_reset(&out);
    CHECK_INT(sr_template_render(t, sr_template_lookup_lua, &vars, &out, err, sizeof err), 0);
    CHECK_INT(out.len, SR_TEMPLATE_MAX_OUTPUT);
    sr_template_free(t);
    /* One byte more, from a literal. */
    sr_buf_puts(&src, "!");
    t = compile_ok(sr_buf_cstr(&src));
    sr_buf_reset(&out);
    sr_buf_puts(&out, "keep");
    CHECK_INT(sr_template_render(t, sr_template_lookup_lua, &vars, &out, err, sizeof err), -1);
    CHECK_STR(err, "rendered text too long (more than 65536 bytes)");
    CHECK_STR(sr_buf_cstr(&out), "keep");
    sr_template_free(t);

    /* A short template multiplying a big value is stopped too. */
    lua_push_vars(L, "return {x=string.rep('z', 30000)}");
    vars.index = lua_gettop(L);
    t = compile_ok("{{x}}{{x}}{{x}}{{x}}{{x}}{{x}}{{x}}{{x}}");
    sr_buf_reset(&out);
    CHECK_INT(sr_template_render(t, sr_template_lookup_lua, &vars, &out, err, sizeof err), -1);
    CHECK_STR(err, "rendered text too long (more than 65536 bytes)");
    CHECK_INT(out.len, 0);
    sr_template_free(t);

    lua_close(L);
    sr_buf_free(&src);
    sr_buf_free(&out);
}

/* ---- the variable list ---------------------------------------------------- */

TEST(var_listing) {
    sr_template *t = compile_ok("{{a}} {{ b.c }} {{a}} {{d.1.e}} \\{{skipped}} {{b.c}}");
    CHECK_INT(sr_template_var_count(t), 3);
    CHECK_STR(sr_template_var(t, 0), "a");
    CHECK_STR(sr_template_var(t, 1), "b.c");
    CHECK_STR(sr_template_var(t, 2), "d.1.e");
    CHECK(sr_template_var(t, 3) == NULL);
    CHECK(sr_template_var(t, -1) == NULL);
    sr_template_free(t);

    /* Many distinct paths (and repeats) keep their first-appearance order. */
    sr_buf src;
    sr_buf_init(&src);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 2000; i++) sr_buf_printf(&src, "{{v%d.x%d}}", i, i % 7);
    t = compile_ok(sr_buf_cstr(&src));
    CHECK_INT(sr_template_var_count(t), 2000);
    for (int i = 0; i < 2000; i++) {
        char name[32];
        snprintf(name, sizeof name, "v%d.x%d", i, i % 7);
        CHECK_STR(sr_template_var(t, i), name);
    }
    sr_template_free(t);
    sr_buf_free(&src);
}

/* The lookup receives the pre-split segments of each path. */
static int joining_lookup(void *ud, const char *const *segments, int count, sr_buf *out) {
    for (int i = 0; i < count; i++) sr_buf_printf(out, "%s[%s]", i ? "," : "", segments[i]);
    return 0;
}

TEST(lookup_gets_segments) {
    sr_template *t = compile_ok("{{ order.items.12.name }}|{{x}}");
    sr_buf out;
    sr_buf_init(&out);
    CHECK_INT(sr_template_render(t, joining_lookup, NULL, &out, NULL, 0), 0);
    CHECK_STR(sr_buf_cstr(&out), "[order],[items],[12],[name]|[x]");
    sr_buf_free(&out);
    sr_template_free(t);
}

/* ---- speed -------------------------------------------------------------- */
