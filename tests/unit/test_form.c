/* Unit tests for src/codec/form.c: application/x-www-form-urlencoded pairs
 * and percent-decoding, as the adapters' request.form, the webhook field cap,
 * the API's query parameters and the mock provider read them; and sms.form
 * (src/rules/bindings/lua_form.c), which util.form_decode and util.form_pairs
 * call, against the Lua decoder the adapters had before. */
#include <lauxlib.h>
#include <lualib.h>

#include "codec/form.h"
#include "core/buf.h"
#include "rules/bindings/bindings.h"
#include "rules/rules.h"
#include "unit.h"

/* ---- helpers ----------------------------------------------------------- */

/* The decoding of the NUL-terminated escaped text, in a static buffer. */
static const char *form_test_unescape(const char *escaped, size_t *len) {
    static char out[256];
    size_t n = strlen(escaped);
    CHECK(n < sizeof out);
    *len = sr_form_unescape(out, escaped, n);
    CHECK(*len <= n);
    out[*len] = '\0';
    return out;
}

#define CHECK_UNESCAPE(escaped, want)                                                                                  \
    do {                                                                                                               \
        size_t len_;                                                                                                   \
        const char *got_ = form_test_unescape((escaped), &len_);                                                       \
        if (len_ != sizeof(want) - 1 || memcmp(got_, (want), len_) != 0)                                               \
            UNIT_FAIL("\"%s\" decoded to \"%.*s\"", (escaped), (int)len_, got_);                                       \
    } while (0)

/* The pairs of form written as "name=value|name=value|..." (still escaped). */
static void form_test_pairs(const char *form, const char *want) {
    sr_buf got;
    sr_buf_init(&got);
    size_t pos = 0;
    sr_form_pair p;
    while (sr_form_next(form, strlen(form), &pos, &p)) {
        if (got.len) sr_buf_putc(&got, '|');
        sr_buf_append(&got, p.name, p.name_len);
        sr_buf_putc(&got, '=');
        sr_buf_append(&got, p.value, p.value_len);
    }
    CHECK_STR(sr_buf_cstr(&got), want);
    sr_buf_free(&got);
}

/* ---- percent-decoding ------------------------------------------------------ */

TEST(unescape_plus_and_percent) {
    CHECK_UNESCAPE("", "");
    CHECK_UNESCAPE("Hello+world", "Hello world");
    CHECK_UNESCAPE("%2B84912345678", "+84912345678");
    CHECK_UNESCAPE("a%20b%2fc%2Fd", "a b/c/d"); /* either case */
    CHECK_UNESCAPE("%D0%9F%D1%80%D0%B8", "\xd0\x9f\xd1\x80\xd0\xb8");
    CHECK_UNESCAPE("%00x", "\0x"); /* a NUL byte is a byte like any other */
    CHECK_UNESCAPE("%2B+%2B", "+ +");
    CHECK_UNESCAPE("%25", "%");
    CHECK_UNESCAPE("%2525", "%25"); /* decoded once, not twice */
}

/* A '%' without two hex digits after it stays as it is. */
TEST(unescape_malformed_escapes_stay) {
    CHECK_UNESCAPE("%", "%");
    CHECK_UNESCAPE("100%", "100%");
    CHECK_UNESCAPE("%4", "%4");
    CHECK_UNESCAPE("%4g", "%4g");
    CHECK_UNESCAPE("%g4", "%g4");
    CHECK_UNESCAPE("%%41", "%A");
    CHECK_UNESCAPE("a%2", "a%2");
    CHECK_UNESCAPE("%+", "% ");
}

/* Decoding in place (out == s), and appending to an sr_buf. */
TEST(unescape_in_place_and_into_buf) {
    char s[] = "a%41+b%2";
    size_t n = sr_form_unescape(s, s, strlen(s));
    CHECK_INT(n, 6);
    CHECK(memcmp(s, "aA b%2", 6) == 0);
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_puts(&b, "x=");
    sr_form_unescape_buf(&b, "1%2B1", 5);
    CHECK_STR(sr_buf_cstr(&b), "x=1+1");
    CHECK_INT(b.len, 5);
    sr_form_unescape_buf(&b, "", 0);
    CHECK_STR(b.data, "x=1+1");
    sr_buf_free(&b);
}

/* The text need not be NUL-terminated: an escape cut by the length stays as it is. */
TEST(unescape_respects_length) {
    char out[8];
    CHECK_INT(sr_form_unescape(out, "%41%42", 4), 2);
    CHECK(memcmp(out, "A%", 2) == 0);
    CHECK_INT(sr_form_unescape(out, "%41%42", 5), 3);
    CHECK(memcmp(out, "A%4", 3) == 0);
}

/* ---- pairs ------------------------------------------------------------------ */

TEST(pairs_split_on_amp_and_first_equals) {
    form_test_pairs("", "");
    form_test_pairs("a=1", "a=1");
    form_test_pairs("a=1&b=2", "a=1|b=2");
    form_test_pairs("a=1=2&b==", "a=1=2|b==");   /* the name ends at the first '=' */
    form_test_pairs("flag&b=", "flag=|b=");      /* no '=': an empty value */
    form_test_pairs("&&a=1&&&b=2&", "a=1|b=2");  /* empty segments skipped */
    form_test_pairs("=x&=&a", "=x|=|a=");        /* empty names are pairs (callers skip them) */
    form_test_pairs("a%3D1=2%26", "a%3D1=2%26"); /* escaped '=' and '&' do not split */
    form_test_pairs("a=1;b=2", "a=1;b=2");       /* ';' is no separator */
}

TEST(count_is_non_empty_segments) {
    CHECK_INT(sr_form_count("", 0), 0);
    CHECK_INT(sr_form_count("&&&", 3), 0);
    CHECK_INT(sr_form_count("a", 1), 1);
    CHECK_INT(sr_form_count("a=1&b=2&&=&c", 12), 4);
    /* The length is respected: "a=1&b" of "a=1&b=2". */
    CHECK_INT(sr_form_count("a=1&b=2", 5), 2);
    sr_buf b;
    sr_buf_init(&b);
    for (int i = 0; i < SR_FORM_MAX_FIELDS + 1; i++) sr_buf_printf(&b, "%sk%d=v", i ? "&" : "", i);
    CHECK_INT(sr_form_count(b.data, b.len), SR_FORM_MAX_FIELDS + 1);
    sr_buf_free(&b);
}

/* ---- lookups -------------------------------------------------------------- */

TEST(name_is_compares_decoded_names) {
    CHECK(sr_form_name_is("To", 2, "To"));
    CHECK(sr_form_name_is("client%2Dref", 12, "client-ref"));
    CHECK(sr_form_name_is("a+b", 3, "a b"));
    CHECK(!sr_form_name_is("To", 2, "T"));
    CHECK(!sr_form_name_is("T", 1, "To"));
    CHECK(!sr_form_name_is("to", 2, "To"));
    CHECK(sr_form_name_is("", 0, ""));
    CHECK(!sr_form_name_is("%00", 3, "")); /* a NUL byte is not the end of the name */
}

TEST(get_first_value_of_a_name) {
    static const char form[] = "From=%2B15005550006&Body=Hi+there%21&body=x&Body=second&Empty=&Flag";
    sr_buf v;
    sr_buf_init(&v);
    CHECK(sr_form_get(form, strlen(form), "From", &v));
    CHECK_STR(v.data, "+15005550006");
    CHECK(sr_form_get(form, strlen(form), "Body", &v)); /* the first of two, names case-sensitive */
    CHECK_STR(v.data, "Hi there!");
    CHECK(sr_form_get(form, strlen(form), "body", &v));
    CHECK_STR(v.data, "x");
    CHECK(sr_form_get(form, strlen(form), "Empty", &v));
    CHECK_STR(v.data, "");
    CHECK_INT(v.len, 0);
    CHECK(sr_form_get(form, strlen(form), "Flag", &v));
    CHECK_STR(v.data, "");
    sr_buf_puts(&v, "kept");
    CHECK(!sr_form_get(form, strlen(form), "To", &v));
    CHECK_STR(v.data, "kept"); /* untouched when absent */
    CHECK(!sr_form_get("", 0, "From", &v));
    /* An escaped name matches its decoding. */
    CHECK(sr_form_get("message%2Did=A%26B", 18, "message-id", &v));
    CHECK_STR(v.data, "A&B");
    sr_form_pair p;
    CHECK(sr_form_find(form, strlen(form), "Body", &p));
    CHECK_INT(p.value_len, 11); /* borrowed from the text, still escaped */
    CHECK(memcmp(p.value, "Hi+there%21&", 12) == 0);
    sr_buf_free(&v);
}

/* ---- sms.form from Lua ------------------------------------------------------ */

static lua_State *form_test_lua(void) {
    lua_State *L = luaL_newstate();
    CHECK(L != NULL);
    luaL_openlibs(L);
    lua_newtable(L);
    sr_lua_open_form(L);
    lua_setglobal(L, "sms");
    return L;
}

static void form_test_lua_run(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) UNIT_FAIL("%s\n-> %s", code, lua_tostring(L, -1));
    lua_settop(L, 0);
}

TEST(lua_decode_pairs_unescape) {
    lua_State *L = form_test_lua();
    form_test_lua_run(
        L, "local f = sms.form\n"
           "local t, more = f.decode('To=%2B1555&Body=Hi+there&Body=2&=x&flag&&e=')\n"
           "assert(t.To == '+1555' and t.Body == 'Hi there' and t.flag == '' and t.e == '' and more == nil)\n"
           "local n = 0 for _ in pairs(t) do n = n + 1 end assert(n == 4, n)\n"
           "local l = f.pairs('b=2&a=1&b=3&=x')\n"
           "assert(#l == 4 and l[1][1] == 'b' and l[1][2] == '2' and l[3][2] == '3' and l[4][1] == '' and l[4][2] == "
           "'x')\n"
           "assert(f.unescape('a%41+%zz%') == 'aA %zz%')\n"
           "assert(f.unescape('%00') == '\\0')\n"
           "assert(next(f.decode('')) == nil and #f.pairs('&&') == 0)\n"
           "assert(f.MAX_FIELDS == 256)\n");
    lua_close(L);
}

/* At most SR_FORM_MAX_FIELDS pairs are read, and a second result says there were more. */
TEST(lua_field_cap) {
    lua_State *L = form_test_lua();
    form_test_lua_run(L, "local f = sms.form\n"
                         "local t, more = f.decode(('a=1&'):rep(256))\n"
                         "assert(t.a == '1' and more == nil)\n"
                         "t, more = f.decode(('a=1&'):rep(257))\n"
                         "assert(t.a == '1' and more == true)\n"
                         "local l\n"
                         "l, more = f.pairs(('a=1&'):rep(300))\n"
                         "assert(#l == 256 and more == true)\n"
                         "l, more = f.pairs(('a=1&'):rep(256) .. '&&&')\n"
                         "assert(#l == 256 and more == nil)\n"
                         "for _, call in ipairs({function() return f.decode() end, function() return f.pairs({}) end,\n"
                         "                       function() return f.unescape(nil) end}) do\n"
                         "  local ok, err = pcall(call)\n"
                         "  assert(not ok and err:find('bad argument'), tostring(err))\n"
                         "end\n");
    lua_close(L);
}

/* The Lua decoder util.form_decode and util.form_pairs had (gsub of '+',
 * then of %XX), against sms.form on random texts over the bytes that
 * matter: the same tables, the same lists. */
TEST(lua_same_as_the_old_lua_decoder) {
    lua_State *L = form_test_lua();
    form_test_lua_run(
        L, "local function unescape(v)\n"
           "  return (v:gsub('%+', ' '):gsub('%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end))\n"
           "end\n"
           "local function old_decode(body)\n"
           "  local form = {}\n"
           "  for pair in body:gmatch('[^&]+') do\n"
           "    local k, v = pair:match('^([^=]*)=?(.*)$')\n"
           "    k = unescape(k)\n"
           "    if k ~= '' and form[k] == nil then form[k] = unescape(v) end\n"
           "  end\n"
           "  return form\n"
           "end\n"
           "local function old_pairs(body)\n"
           "  local list = {}\n"
           "  for item in body:gmatch('[^&]+') do\n"
           "    local k, v = item:match('^([^=]*)=?(.*)$')\n"
           "    list[#list + 1] = {unescape(k), unescape(v)}\n"
           "  end\n"
           "  return list\n"
           "end\n"
           "local alphabet = {'&', '=', '+', '%', '2', 'B', 'f', 'a', 'Z', 'g', '0', ' ', '\\0', '\\255'}\n"
           "local seed = 7\n"
           "local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n + 1 end\n"
           "for round = 1, 3000 do\n"
           "  local t = {}\n"
           "  for i = 1, rand(24) - 1 do t[i] = alphabet[rand(#alphabet)] end\n"
           "  local text = table.concat(t)\n"
           "  local a, b = old_decode(text), sms.form.decode(text)\n"
           "  for k, v in pairs(a) do assert(b[k] == v, text) end\n"
           "  for k, v in pairs(b) do assert(a[k] == v, text) end\n"
           "  local la, lb = old_pairs(text), sms.form.pairs(text)\n"
           "  assert(#la == #lb, text)\n"
           "  for i = 1, #la do assert(la[i][1] == lb[i][1] and la[i][2] == lb[i][2], text) end\n"
           "end\n");
    lua_close(L);
}
