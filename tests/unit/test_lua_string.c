/* Unit tests for src/rules/lua_string.c: the bounded string.find, match, gmatch
 * and gsub give exactly what Lua's own give (results, captures, errors for
 * malformed patterns) on a table of cases and on seeded random ones, and stop
 * the patterns that backtrack for seconds in Lua's with "pattern too
 * complex" within a bound; string.rep and table.move are limited.
 *
 * Both sets of functions live in one plain state: REAL holds Lua's, and the
 * global string table holds ours after sr_lua_bound_string. The comparison
 * runs in Lua (tests/unit: the harness below) and uses only REAL. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <time.h>

#include "rules/lua_string.h"
#include "lua_string_compare.h"
#include "unit.h"

/* A plain state with REAL (Lua's functions), OURS (ours, also installed in
 * the global string table) and the harness. */
static lua_State *string_test_state(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    const char *names[] = {"find", "match", "gmatch", "gsub", "rep", "format"};
    lua_newtable(L);
    lua_getglobal(L, "string");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lua_getfield(L, -1, names[i]);
        lua_setfield(L, -3, names[i]);
    }
    lua_pop(L, 1);
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "move");
    lua_setfield(L, -3, "move");
    lua_getfield(L, -1, "sort");
    lua_setfield(L, -3, "sort");
    lua_pop(L, 1);
    lua_setglobal(L, "REAL");
    sr_lua_bound_string(L);
    lua_newtable(L);
    lua_getglobal(L, "string");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lua_getfield(L, -1, names[i]);
        lua_setfield(L, -3, names[i]);
    }
    lua_pop(L, 1);
    lua_setglobal(L, "OURS");
    if (luaL_loadbuffer(L, string_compare_lua, sizeof string_compare_lua - 1, "=compare") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK)
        UNIT_FAIL("harness: %s", lua_tostring(L, -1));
    return L;
}

/* Runs chunk (named "=rule.lua") and returns the error it raised (a static
 * copy), or NULL when it ran through; *seconds is how long it took. */
static const char *string_test_run(lua_State *L, const char *chunk, double *seconds) {
    static char err[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = luaL_loadbuffer(L, chunk, strlen(chunk), "=rule.lua");
    if (rc == LUA_OK) rc = lua_pcall(L, 0, 0, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (seconds) *seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (rc == LUA_OK) return NULL;
    snprintf(err, sizeof err, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return err;
}

/* Fails unless chunk runs without error. */
static void string_test_ok(lua_State *L, const char *chunk) {
    const char *err = string_test_run(L, chunk, NULL);
    if (err) UNIT_FAIL("%s\n  raised: %s", chunk, err);
}

/* Fails unless chunk raises an error containing expected. */
static void string_test_raises(lua_State *L, const char *chunk, const char *expected) {
    const char *err = string_test_run(L, chunk, NULL);
    if (!err) UNIT_FAIL("%s\n  raised nothing, expected: %s", chunk, expected);
    if (!strstr(err, expected)) UNIT_FAIL("%s\n  raised:   %s\n  expected: %s", chunk, err, expected);
}

/* ---- the table of cases ------------------------------------------------ */

struct string_case {
    const char *fn;
    const char *s;
    const char *p;
    const char *a; /* Lua expression for argument 3, or NULL */
    const char *b; /* Lua expression for argument 4, or NULL */
};

static const struct string_case string_cases[] = {
    /* plain characters, '.', anchors */
    {"find", "hello world", "o w", NULL, NULL},
    {"find", "hello world", "l", "5", NULL},
    {"find", "hello world", "l", "-2", NULL},
    {"find", "hello world", "l", "-100", NULL},
    {"find", "hello world", "", "12", NULL},
    {"find", "hello world", "", "13", NULL},
    {"find", "hello world", "", "0", NULL},
    {"find", "", "", NULL, NULL},
    {"find", "a.b", ".", NULL, "true"},
    {"find", "a.b", "%.", NULL, NULL},
    {"find", "a+b", "+", NULL, NULL},
    {"find", "a(b", "(", NULL, "1"},
    {"find", "a)b", ")", NULL, NULL},
    {"find", "a]b", "]", NULL, NULL},
    {"find", "a@b", "@", NULL, NULL},
    {"match", "hello", "^h", NULL, NULL},
    {"match", "hello", "^e", NULL, NULL},
    {"match", "hello", "o$", NULL, NULL},
    {"match", "hello", "l$", NULL, NULL},
    {"match", "a$b", "$b", NULL, NULL},
    {"match", "a$b", "a$", NULL, NULL},
    {"match", "^a", "^^a", NULL, NULL},
    {"match", "hello", "^", NULL, NULL},
    {"match", "hello", "$", NULL, NULL},
    {"match", "hello", "", "3", NULL},
    {"match", "hello", "", "10", NULL},
    {"match", "hello", ".", "-1", NULL},
    /* classes */
    {"match", "  abc123 DEF_x!", "%a+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%d+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%l+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%u+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%s+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%w+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%p+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%x+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%g+", NULL, NULL},
    {"match", "a\1\2\tb", "%c+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%A+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%D+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%S+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%W+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%L+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%U+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%X+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%P+", NULL, NULL},
    {"match", "  abc123 DEF_x!", "%G+", NULL, NULL},
    {"match", "a\1\2\tb", "%C+", NULL, NULL},
    {"match", "z%Z", "%z", NULL, NULL},
    {"match", "z%Z", "%Z", NULL, NULL},
    {"match", "\xe9t\xc3\xa9", "%a+", NULL, NULL},
    {"match", "\xff\x80", "[\x80-\xff]+", NULL, NULL},
    /* sets */
    {"match", "hello-world_1", "[%w_]+", NULL, NULL},
    {"match", "hello-world_1", "[^%w]+", NULL, NULL},
    {"match", "abc]def", "[]]", NULL, NULL},
    {"match", "abc]def", "[^]]+", NULL, NULL},
    {"match", "a-b", "[a-]+", NULL, NULL},
    {"match", "a-b", "[-a]+", NULL, NULL},
    {"match", "b-c", "[%-]", NULL, NULL},
    {"match", "x^y", "[x^]+", NULL, NULL},
    {"match", "x^y", "[^^]+", NULL, NULL},
    {"match", "0123456789abcdef", "[2-5a-c]+", NULL, NULL},
    {"match", "0123456789abcdef", "[5-2]", NULL, NULL},
    {"match", "a%]b", "[%]]", NULL, NULL},
    {"match", "a%]b", "[%%]", NULL, NULL},
    {"match", "abc", "[a", NULL, NULL},
    {"match", "abc", "[a%", NULL, NULL},
    {"match", "abc", "[]", NULL, NULL},
    {"match", "abc", "[^]", NULL, NULL},
    {"match", "abc", "x[", NULL, NULL},
    {"match", "abc", "[%a-z]+", NULL, NULL},
    {"match", "a-z", "[a-%z]+", NULL, NULL},
    /* quantifiers */
    {"match", "aaab", "a*", NULL, NULL},
    {"match", "aaab", "a+", NULL, NULL},
    {"match", "aaab", "a-b", NULL, NULL},
    {"match", "aaab", "a-", NULL, NULL},
    {"match", "aaab", "a?a?a?a?b", NULL, NULL},
    {"match", "b", "a+", NULL, NULL},
    {"match", "b", "a*b", NULL, NULL},
    {"match", "<<a>> <<b>>", "<<(.-)>>", NULL, NULL},
    {"match", "<<a>> <<b>>", "<<(.*)>>", NULL, NULL},
    {"match", "key = value  ", "^%s*(%S+)%s*=%s*(.-)%s*$", NULL, NULL},
    {"match", "ab", "a**", NULL, NULL},
    {"match", "a*", "a**", NULL, NULL},
    {"match", "+", "+", NULL, NULL},
    {"match", "x?", "x??", NULL, NULL},
    {"match", "-3", "^-?%d+$", NULL, NULL},
    /* captures */
    {"match", "hello world", "(h)(e)(l)(l)(o)", NULL, NULL},
    {"match", "hello world", "()ll()", NULL, NULL},
    {"match", "hello world", "((l)(l))", NULL, NULL},
    {"find", "hello world", "(o)(.)", NULL, NULL},
    {"find", "hello world", "()", NULL, NULL},
    {"match", "hello", "(h", NULL, NULL},
    {"match", "hello", "h)", NULL, NULL},
    {"match", "hello", "(()", NULL, NULL},
    {"match", "x", "((((((((((((((((((((((((((((((((x))))))))))))))))))))))))))))))))", NULL, NULL},
    {"match", "x", "(((((((((((((((((((((((((((((((((x)))))))))))))))))))))))))))))))))", NULL, NULL},
    {"match", "x", "()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()x", NULL, NULL},
    /* back-references */
    {"match", "abcabc", "(abc)%1", NULL, NULL},
    {"match", "say \"hi\" or 'bye'", "([\"'])(.-)%1", NULL, NULL},
    {"match", "aa", "(a)%2", NULL, NULL},
    {"match", "aa", "(a%1)", NULL, NULL},
    {"match", "aa", "(a)%0", NULL, NULL},
    {"match", "aa", "()a%1", NULL, NULL},
    {"match", "aa", "%1", NULL, NULL},
    {"match", "xyzxyz", "(.+)%1$", NULL, NULL},
    /* %b and %f */
    {"match", "f(a(b)c) d", "%b()", NULL, NULL},
    {"match", "f(a(b)c d", "%b()", NULL, NULL},
    {"match", "[[x]]", "%b[]", NULL, NULL},
    {"match", "aXbXXb", "%bXb", NULL, NULL},
    {"match", "abc", "%b", NULL, NULL},
    {"match", "abc", "%b(", NULL, NULL},
    {"match", "abc", "a%b", NULL, NULL},
    {"match", "THE (quick) fox", "%f[%a]%a+", NULL, NULL},
    {"match", "THE (quick) fox", "%f[%a]%a+", "5", NULL},
    {"match", "hello", "%f[%z]", NULL, NULL},
    {"match", "hello", "()%f[^%w]", NULL, NULL},
    {"match", "hello", "%f[%w]()", NULL, NULL},
    {"match", "hello", "%fx", NULL, NULL},
    {"match", "hello", "%f", NULL, NULL},
    {"match", "hello", "%f[a", NULL, NULL},
    /* malformed, and errors only reached while matching */
    {"match", "abc", "%", NULL, NULL},
    {"match", "abc", "x%", NULL, NULL},
    {"match", "abc", "a%", NULL, NULL},
    {"find", "abc", "x%", NULL, NULL},
    {"find", "abc", "%", NULL, "true"},
    {"gsub", "abc", "%", "'x'", NULL},
    {"gmatch", "abc", "(", NULL, NULL},
    /* find and match arguments */
    {"find", "abc", "b", "2.0", NULL},
    {"find", "abc", "b", "'2'", NULL},
    {"find", "abc", "b", "2.5", NULL},
    {"find", "abc", "b", "{}", NULL},
    {"find", "abc", "nil", NULL, NULL},
    {"find", "abc", "b", "math.mininteger", NULL},
    {"find", "abc", "b", "math.maxinteger", NULL},
    {"match", "abc", "b", "nil", NULL},
    /* gmatch */
    {"gmatch", "one two  three", "%a+", NULL, NULL},
    {"gmatch", "one two  three", "%a*", NULL, NULL},
    {"gmatch", "one two  three", "()", NULL, NULL},
    {"gmatch", "k1=v1, k2=v2", "(%w+)=(%w+)", NULL, NULL},
    {"gmatch", "one two  three", "%a+", "5", NULL},
    {"gmatch", "one two  three", "%a+", "-5", NULL},
    {"gmatch", "one two  three", "%a+", "100", NULL},
    {"gmatch", "one two  three", "", "15", NULL},
    {"gmatch", "one two  three", "", "16", NULL},
    {"gmatch", "^a^a", "^a", NULL, NULL},
    {"gmatch", "abc", "x*", NULL, NULL},
    {"gmatch", "abc", ".-", NULL, NULL},
    /* gsub */
    {"gsub", "hello world", "o", "'0'", NULL},
    {"gsub", "hello world", "o", "'0'", "1"},
    {"gsub", "hello world", "o", "'0'", "0"},
    {"gsub", "hello world", "o", "'0'", "-1"},
    {"gsub", "hello world", "", "'-'", NULL},
    {"gsub", "hello world", "x*", "'-'", NULL},
    {"gsub", "hello world", "^h", "'H'", NULL},
    {"gsub", "hello world", "^", "'>'", NULL},
    {"gsub", "hello world", "$", "'<'", NULL},
    {"gsub", "hello world", "(%w+)", "'<%1>'", NULL},
    {"gsub", "hello world", "(%w+)", "'<%0>'", NULL},
    {"gsub", "hello world", "%w+", "'<%1>'", NULL},
    {"gsub", "hello world", "%w+", "'<%2>'", NULL},
    {"gsub", "hello world", "(%w+)", "'<%2>'", NULL},
    {"gsub", "hello world", "(%w+)", "'100%%'", NULL},
    {"gsub", "hello world", "(%w+)", "'100%'", NULL},
    {"gsub", "hello world", "(%w+)", "'%x'", NULL},
    {"gsub", "hello world", "()(%w+)", "'%1'", NULL},
    {"gsub", "hello world", "o", "7", NULL},
    {"gsub", "hello world", "o", "1.5", NULL},
    {"gsub", "hello world", "(o)", "'F'", NULL},
    {"gsub", "a ab b", "%w+", "'F'", NULL},
    {"gsub", "a ab b", "%w+", "'T'", NULL},
    {"gsub", "a ab b", "()%w+", "'T'", NULL},
    {"gsub", "a ab b", "()%w+", "'F'", NULL},
    {"gsub", "a ab b", "%w+", "'FT'", NULL},
    {"gsub", "a ab b", "%w+", "nil", NULL},
    {"gsub", "a ab b", "%w+", "true", NULL},
    {"gsub", "a ab b", "%w+", "'x'", "'y'"},
    {"gsub", "a ab b", "%w+", "'x'", "1.5"},
    {"gsub", "abc", "(", "'x'", NULL},
    {"gsub", "abc", "b", "'%'", NULL},
    {"gsub", "a@b@", "%z", "'Z'", NULL},
    {"gsub", "a@b@", "@", "'Z'", NULL},
    {"match", "a@b@", "[@]+", NULL, NULL},
    {"match", "a@b@", "%f[@]", NULL, NULL},
    {"match", "a@b@", "[^%z]+", NULL, NULL},
    {"gsub", "", "", "'x'", NULL},
    {"gsub", "", "x*", "'%0%0'", NULL},
};

/* The Lua string literal of s into out, each '@' standing for a NUL byte
 * (C strings cannot hold one). */
static void string_test_quote(char *out, size_t outlen, const char *s) {
    size_t o = 0;
    out[o++] = '"';
    for (; *s && o + 6 < outlen; s++)
        o += (size_t)snprintf(out + o, outlen - o, "\\%d", *s == '@' ? 0 : (unsigned char)*s);
    out[o++] = '"';
    out[o] = '\0';
}

TEST(table_of_cases_matches_lua) {
    lua_State *L = string_test_state();
    char chunk[2048], sq[600], pq[600];
    int mismatches = 0;
    for (size_t i = 0; i < sizeof string_cases / sizeof string_cases[0]; i++) {
        const struct string_case *c = &string_cases[i];
        string_test_quote(sq, sizeof sq, c->s);
        if (strcmp(c->p, "nil") == 0) snprintf(pq, sizeof pq, "nil");
        else
            string_test_quote(pq, sizeof pq, c->p);
        snprintf(chunk, sizeof chunk, "return compare('%s', %s, %s, %s, %s)", c->fn, sq, pq, c->a ? c->a : "nil",
                 c->b ? c->b : "nil");
        if (luaL_dostring(L, chunk) != LUA_OK) UNIT_FAIL("%s: %s", chunk, lua_tostring(L, -1));
        if (!lua_isnil(L, -1)) {
            fprintf(stderr, "case %zu: %s\n", i, lua_tostring(L, -1));
            mismatches++;
        }
        lua_pop(L, 1);
    }
    CHECK_INT(mismatches, 0);
    lua_close(L);
}

/* Seeded random cases (UNIT_SEED overrides the seed; a failure prints it):
 * patterns of random items, well-formed or not, on short subjects over a
 * small alphabet, through all four functions with random extra arguments. */
static const char random_cases[] = "local seed, count = ...\n"
                                   "math.randomseed(seed)\n"
                                   "local atoms = { '.', 'a', 'b', 'c', '%a', '%d', '%s', '%w', '%x', '%p', "
                                   "'%c', '%g', '%l', '%u',\n"
                                   "  '%A', '%S', '%W', '%D', '%.', '%%', '%(', '[ab]', '[^ab]', '[a-c]', "
                                   "'[%d_]', '[]a]', '[^]]',\n"
                                   "  '[a-]', '[%]]', 'x', ' ', '%z', '(', ')', '()', '(', ')', '%1', '%2', "
                                   "'%0', '%b()', '%bab',\n"
                                   "  '%f[%w]', '%f[^%s]', '%f[a]', '$', '^', '[', '%', '%f', '%b', '-', '*', "
                                   "'?', '+', ']', '\\0' }\n"
                                   "local quants = { '', '', '', '*', '+', '-', '?' }\n"
                                   "local alphabet = { 'a', 'b', 'c', '(', ')', ' ', 'x', '1', '_', '.', "
                                   "'\\0', 'A', '%', '-' }\n"
                                   "local inits = { 'nil', '1', '2', '-1', '-3', '0', '5', '30' }\n"
                                   "local repls = { \"'<%0>'\", \"'%1'\", \"'%2'\", \"'x'\", \"'%%'\", "
                                   "\"'%'\", \"'F'\", \"'T'\", '3', \"'FT'\" }\n"
                                   "local ns = { 'nil', '0', '1', '2', '-1' }\n"
                                   "local fns = { 'find', 'match', 'gmatch', 'gsub' }\n"
                                   "local function pick(t) return t[math.random(#t)] end\n"
                                   "for i = 1, count do\n"
                                   "  local p = {}\n"
                                   "  if math.random(5) == 1 then p[#p + 1] = '^' end\n"
                                   "  for k = 1, math.random(0, 6) do p[#p + 1] = pick(atoms) .. pick(quants) "
                                   "end\n"
                                   "  if math.random(5) == 1 then p[#p + 1] = '$' end\n"
                                   "  p = table.concat(p)\n"
                                   "  local s = {}\n"
                                   "  for k = 1, math.random(0, 14) do s[#s + 1] = pick(alphabet) end\n"
                                   "  s = table.concat(s)\n"
                                   "  local fn = pick(fns)\n"
                                   "  local a, b\n"
                                   "  if fn == 'gsub' then a, b = load('return ' .. pick(repls))(), "
                                   "load('return ' .. pick(ns))()\n"
                                   "  else a = load('return ' .. pick(inits))(); b = math.random(3) == 1 end\n"
                                   "  local bad = compare(fn, s, p, a, b)\n"
                                   "  if bad then return 'case ' .. i .. ': ' .. bad end\n"
                                   "end\n"
                                   "return nil\n";

TEST(random_cases_match_lua) {
    lua_State *L = string_test_state();
    long seed = getenv("UNIT_SEED") ? atol(getenv("UNIT_SEED")) : 20240611;
    int count = 40000;
    if (luaL_loadbuffer(L, random_cases, sizeof random_cases - 1, "=random") != LUA_OK)
        UNIT_FAIL("%s", lua_tostring(L, -1));
    lua_pushinteger(L, seed);
    lua_pushinteger(L, count);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) UNIT_FAIL("seed %ld: %s", seed, lua_tostring(L, -1));
    if (!lua_isnil(L, -1)) UNIT_FAIL("seed %ld: %s", seed, lua_tostring(L, -1));
    lua_getglobal(L, "SKIPPED");
    /* The random cases are small: none should reach the budget. */
    CHECK_INT(lua_tointeger(L, -1), 0);
    lua_close(L);
}

/* ---- what Lua's own functions cannot stop ------------------------------ */

/* Each chunk makes Lua's own matcher run for seconds to forever; ours must
 * stop it with the budget error, at the rule's file:line, well within 1 s
 * (measured: well under 0.1 s each, see README). */
static void string_test_stops(const char *chunk) {
    lua_State *L = string_test_state();
    double seconds;
    const char *err = string_test_run(L, chunk, &seconds);
    if (!err) UNIT_FAIL("%s\n  ran through", chunk);
    if (strncmp(err, "rule.lua:", 9) != 0 || !strstr(err, ": pattern too complex: more than "))
        UNIT_FAIL("%s\n  raised: %s", chunk, err);
    if (seconds > 1.0) UNIT_FAIL("%s\n  took %.3f s", chunk, seconds);
    fprintf(stderr, "%.1f ms: %s\n", seconds * 1000, err);
    lua_close(L);
}

TEST(eight_lazy_dots_on_40_bytes_stop) {
    string_test_stops("local s = string.rep('a', 40)\n"
                      "return s:match('.-.-.-.-.-.-.-.-x')\n");
}

TEST(lazy_captures_stop) {
    string_test_stops("local s = string.rep('ab', 30)\n"
                      "return string.find(s, '(.-)(.-)(.-)(.-)(.-)(.-)(.-)%1x')\n");
}

TEST(greedy_runs_stop) {
    string_test_stops("local s = string.rep('a', 60)\n"
                      "return string.match(s, 'a*a*a*a*a*a*a*a*a*b')\n");
}

TEST(unbalanced_runs_on_64k_stop) {
    /* %b() from each of 64 Ki positions scans to the end: n^2 / 2 bytes. */
    string_test_stops("local s = string.rep('(', 65536)\n"
                      "return s:find('%b()')\n");
}

TEST(lazy_chain_on_64k_stops) {
    string_test_stops("local s = string.rep('a', 65536)\n"
                      "return s:match('(.-)x(.-)y(.-)$')\n");
}

TEST(gsub_and_gmatch_share_one_budget) {
    string_test_stops("local s = string.rep('a', 4096)\n"
                      "return s:gsub('a-a-a-b', '')\n");
    string_test_stops("local s = string.rep('a', 4096)\n"
                      "local n = 0\n"
                      "for w in s:gmatch('a-a-b') do n = n + 1 end\n");
}

TEST(linear_work_on_big_subjects_fits) {
    lua_State *L = string_test_state();
    double seconds;
    const char *err = string_test_run(L,
                                      "local s = string.rep('word, ', 200000)\n"
                                      "assert(#s == 1200000)\n"
                                      "local t, n = s:gsub('%s+', '')\n"
                                      "assert(n == 200000 and #t == 1000000)\n"
                                      "local c = 0\n"
                                      "for w in s:gmatch('%a+') do c = c + 1 end\n"
                                      "assert(c == 200000)\n"
                                      "assert(s:find('word,$') == nil and s:find('word, $') == #s - 5)\n"
                                      "assert(s:match('^%s*(.-)%s*$') == s:sub(1, -2))\n",
                                      &seconds);
    if (err) UNIT_FAIL("%s", err);
    lua_close(L);
}

TEST(budget_grows_with_the_subject_up_to_a_cap) {
    CHECK_INT(sr_string_step_budget(0), SR_STRING_STEPS_BASE);
    CHECK_INT(sr_string_step_budget(1000), SR_STRING_STEPS_BASE + 1000 * SR_STRING_STEPS_PER_BYTE);
    CHECK_INT(sr_string_step_budget((size_t)1 << 30), SR_STRING_STEPS_MAX);
    CHECK_INT(sr_string_step_budget(SIZE_MAX), SR_STRING_STEPS_MAX);
}

TEST(methods_and_string_table_are_ours) {
    lua_State *L = string_test_state();
    string_test_ok(L, "assert(getmetatable('').__index == string)\n"
                      "assert(('x').match == OURS.match and string.gsub == OURS.gsub)\n"
                      "assert(REAL.match ~= OURS.match)\n");
    string_test_raises(L, "local s = ('a'):rep(40)\n\nreturn s:match('.-.-.-.-.-.-.-.-x')",
                       "rule.lua:3: pattern too complex: more than");
    /* The nesting limit of Lua's matcher stays as it is. */
    string_test_raises(L, "return string.match(string.rep('x', 300), string.rep('x?', 300))",
                       "rule.lua:1: pattern too complex");
    lua_close(L);
}

TEST(gsub_callbacks_run_as_lua) {
    lua_State *L = string_test_state();
    string_test_ok(L, "local seen = {}\n"
                      "local r, n = ('a=1, b=2'):gsub('(%w+)=(%w+)', function(k, v) seen[#seen "
                      "+ 1] = k .. v; return v .. k end)\n"
                      "assert(r == '1a, 2b' and n == 2 and seen[1] == 'a1' and seen[2] == "
                      "'b2')\n"
                      "local ok, err = pcall(string.gsub, 'abc', '%w', function() "
                      "error('boom') end)\n"
                      "assert(not ok and err:find('boom'))\n"
                      "local co = coroutine.wrap(function()\n"
                      "  return ('ab'):gsub('%w', function(c) return c:upper() end)\n"
                      "end)\n"
                      "assert(co() == 'AB')\n"
                      "local it = ('x y z'):gmatch('%a')\n"
                      "assert(coroutine.wrap(function() return it() end)() == 'x')\n"
                      "assert(it() == 'y' and it() == 'z' and it() == nil and it() == nil)\n");
    lua_close(L);
}

TEST(rep_is_limited) {
    lua_State *L = string_test_state();
    double seconds;
    const char *err = string_test_run(L,
                                      "assert(string.rep('', 1 << 62) == '')\n"
                                      "assert(string.rep('', 1 << 62, '') == '')\n",
                                      &seconds);
    if (err) UNIT_FAIL("%s", err);
    CHECK(seconds < 0.5);
    string_test_ok(L, "assert(string.rep('ab', 3, ',') == 'ab,ab,ab')\n"
                      "assert(string.rep('ab', 0) == '' and string.rep('ab', -1, ',') == '')\n"
                      "assert(string.rep('x', 1) == 'x' and ('y'):rep(2) == 'yy')\n"
                      "assert(#string.rep('x', 32 << 20) == 32 << 20)\n"
                      "assert(#string.rep('ab', 16 << 20) == 32 << 20)\n"
                      "assert(#string.rep('a', 16 << 20, '_') == (32 << 20) - 1)\n");
    string_test_raises(L, "return string.rep('x', (32 << 20) + 1)", "rule.lua:1: resulting string too large");
    string_test_raises(L, "return string.rep('ab', 1 << 62)", "resulting string too large");
    string_test_raises(L, "return string.rep('a', 16 << 20, '__')", "resulting string too large");
    string_test_raises(L, "return string.rep('', 1 << 62, 'x')", "resulting string too large");
    string_test_raises(L, "return string.rep('a', 'x')", "bad argument #2 to 'rep'");
    lua_close(L);
}

TEST(table_move_is_limited) {
    lua_State *L = string_test_state();
    double seconds;
    string_test_ok(L, "local t = table.move({1, 2, 3}, 1, 3, 2)\n"
                      "assert(t[1] == 1 and t[2] == 1 and t[3] == 2 and t[4] == 3)\n"
                      "local d = table.move({1, 2, 3}, 2, 3, 1, {})\n"
                      "assert(d[1] == 2 and d[2] == 3 and d[3] == nil)\n"
                      "assert(#table.move({}, 1, 0, 1) == 0)\n");
    const char *err = string_test_run(L, "return table.move({}, 1, 1e15, 1)", &seconds);
    if (!err || !strstr(err, "too many elements to move")) UNIT_FAIL("%s", err ? err : "ran through");
    CHECK(seconds < 0.5);
    string_test_raises(L, "return table.move({}, math.mininteger, math.maxinteger, 1)", "too many elements to move");
    string_test_raises(L, "return table.move({}, 1, 2, math.maxinteger)", "destination wrap around");
    lua_close(L);
}

/* A guard that counts its calls and, once past *ud calls, raises the way a
 * host's deadline check would. */
static int guard_calls;
static void string_test_guard(lua_State *L, void *ud) {
    if (++guard_calls > *(int *)ud) luaL_error(L, "deadline passed");
}

TEST(guard_runs_at_every_call_and_within_long_ones) {
    lua_State *L = string_test_state();
    int limit = 1000000;
    sr_lua_string_set_guard(L, string_test_guard, &limit);
    /* Every bounded function calls it once per call (gmatch: per step). */
    guard_calls = 0;
    string_test_ok(L, "string.find('a', 'a'); string.match('a', 'a'); string.gsub('a', 'a', 'b')\n"
                      "for w in string.gmatch('a b', '%a') do end\n"
                      "string.rep('a', 2); table.move({}, 1, 0, 1); ('x'):find('x', 1, true)\n");
    CHECK_INT(guard_calls, 1 + 1 + 1 + (1 + 3) + 1 + 1 + 1);
    /* A long call reaches it every SR_STRING_GUARD_STEPS steps (and rep once). */
    guard_calls = 0;
    string_test_raises(L, "return string.rep('a', 65536):match('.-.-.-x')", "pattern too complex: more than");
    CHECK_INT(guard_calls, 1 + 1 + SR_STRING_STEPS_MAX / SR_STRING_GUARD_STEPS - 1);
    /* It can stop a loop of many cheap calls, and one long call. */
    limit = 100;
    guard_calls = 0;
    string_test_raises(L, "for i = 1, 1e9 do string.find('abc', 'b') end", "rule.lua:1: deadline passed");
    CHECK_INT(guard_calls, 101);
    limit = 3;
    guard_calls = 0;
    string_test_raises(L, "return string.rep('a', 65536):match('.-.-.-x')", "rule.lua:1: deadline passed");
    CHECK_INT(guard_calls, 4);
    /* NULL removes it. */
    sr_lua_string_set_guard(L, NULL, NULL);
    guard_calls = 0;
    string_test_ok(L, "string.find('abc', 'b')");
    CHECK_INT(guard_calls, 0);
    lua_close(L);
}

TEST(table_sort_is_limited) {
    lua_State *L = string_test_state();
    string_test_ok(L, "local t = {3, 1, 2}; table.sort(t); assert(t[1] == 1 and t[3] == 3)\n"
                      "table.sort(t, function(a, b) return a > b end); assert(t[1] == 3)\n"
                      "local big = {}; for i = 1, 1 << 18 do big[i] = -i end\n"
                      "table.sort(big); assert(big[1] == -(1 << 18))\n");
    string_test_raises(L, "local t = {}; for i = 1, (1 << 18) + 1 do t[i] = i end\ntable.sort(t)",
                       "rule.lua:2: bad argument #1 to 'sort' (array too big to sort (at most 262144 elements))");
    string_test_raises(L, "table.sort(nil)", "bad argument #1 to 'sort' (table expected, got nil)");
    string_test_raises(L, "table.sort({3, 2, 1}, 1)", "bad argument #2 to 'sort'");
    lua_close(L);
}

/* Fails unless ours (using string.* and table.*) and real (the same with
 * REAL.*) raise exactly the same error, file:line included. */
static void string_test_same_error(lua_State *L, const char *ours, const char *real) {
    char ours_err[512];
    const char *err = string_test_run(L, ours, NULL);
    if (!err) UNIT_FAIL("%s\n  raised nothing", ours);
    snprintf(ours_err, sizeof ours_err, "%s", err);
    err = string_test_run(L, real, NULL);
    if (!err) UNIT_FAIL("%s\n  raised nothing", real);
    if (strcmp(ours_err, err) != 0) UNIT_FAIL("%s\n  ours: %s\n  lua:  %s", ours, ours_err, err);
}

TEST(wrapped_functions_raise_what_lua_raises) {
    lua_State *L = string_test_state();
    static const char *const calls[][2] = {
        {"string.format('%d', 'x')", "REAL.format('%d', 'x')"},
        {"string.format('%d', 1.5)", "REAL.format('%d', 1.5)"},
        {"string.format('%y', 1)", "REAL.format('%y', 1)"},
        {"string.format('%100d', 1)", "REAL.format('%100d', 1)"},
        {"string.format('%.100f', 1)", "REAL.format('%.100f', 1)"},
        {"string.format('%10q', 'a')", "REAL.format('%10q', 'a')"},
        {"string.format('%q', {})", "REAL.format('%q', {})"},
        {"string.format('%s %s', 1)", "REAL.format('%s %s', 1)"},
        {"string.format(nil)", "REAL.format(nil)"},
        {"string.format()", "REAL.format()"},
        {"string.format('%s', setmetatable({}, {__tostring = function() return {} end}))",
         "REAL.format('%s', setmetatable({}, {__tostring = function() return {} end}))"},
        {"string.format('%s', setmetatable({}, {__tostring = function() error('mine') end}))",
         "REAL.format('%s', setmetatable({}, {__tostring = function() error('mine') end}))"},
        {"string.rep()", "REAL.rep()"},
        {"string.rep('x', 2, {})", "REAL.rep('x', 2, {})"},
        {"table.move(nil, 1, 2, 3)", "REAL.move(nil, 1, 2, 3)"},
        {"table.move({}, 1, 2, 3, 4)", "REAL.move({}, 1, 2, 3, 4)"},
        {"table.move({}, 'a', 2, 3)", "REAL.move({}, 'a', 2, 3)"},
        {"table.move({}, -1, math.maxinteger, 3)", "REAL.move({}, -1, math.maxinteger, 3)"},
        {"table.move({}, 1, 2, math.maxinteger)", "REAL.move({}, 1, 2, math.maxinteger)"},
        {"table.move('abc', 1, 2, 3)", "REAL.move('abc', 1, 2, 3)"},
        {"table.move({}, 1, 2, 3, 'abc')", "REAL.move({}, 1, 2, 3, 'abc')"},
        {"table.sort('abc')", "REAL.sort('abc')"},
        {"table.sort(1)", "REAL.sort(1)"},
        {"table.sort({3, 2, 1}, 1)", "REAL.sort({3, 2, 1}, 1)"},
        {"table.sort({3, 'x', 1})", "REAL.sort({3, 'x', 1})"},
        {"table.sort({3, 2, 1}, function(a, b) error('cmp') end)",
         "REAL.sort({3, 2, 1}, function(a, b) error('cmp') end)"},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        char ours[512], real[512];
        snprintf(ours, sizeof ours, "local x = 1\nreturn %s", calls[i][0]);
        snprintf(real, sizeof real, "local x = 1\nreturn %s", calls[i][1]);
        string_test_same_error(L, ours, real);
    }
    /* Accepted the same way too: proxies with the metamethods. */
    string_test_ok(L,
                   "local log = {}\n"
                   "local src = setmetatable({}, {__index = function(_, k) return k * 10 end})\n"
                   "local dst = setmetatable({}, {__newindex = function(_, k, v) log[#log + 1] = k .. '=' .. v end})\n"
                   "table.move(src, 1, 2, 5, dst)\n"
                   "assert(table.concat(log, ',') == '5=10,6=20')\n"
                   "assert(string.format('%5.1f|%-3d|%q|%s|%%', 1.25, 7, 'a\\0', {}) ~= nil)\n"
                   "assert(string.format('%q', 1/0) == REAL.format('%q', 1/0))\n");
    lua_close(L);
}

TEST(format_quotes_at_most_2_mib) {
    lua_State *L = string_test_state();
    double seconds;
    const char *err = string_test_run(L,
                                      "local s = ('\\0'):rep(2 << 20)\n"
                                      "assert(#string.format('%q', s) == (4 << 20) + 2)\n"
                                      "assert(#string.format('%%q %s', s) == (2 << 20) + 3)\n"
                                      "assert(#string.format('%5d%q', 1, s) == 5 + (4 << 20) + 2)\n",
                                      &seconds);
    if (err) UNIT_FAIL("%s", err);
    string_test_raises(L, "local s = ('\\0'):rep((2 << 20) + 1)\nreturn string.format('%q', s)",
                       "rule.lua:2: string too long for '%q' (string.format quotes at most 2097152 bytes)");
    string_test_raises(L, "local s = ('\\0'):rep(1 << 20)\nreturn string.format('%q%s%q', s, 1, s .. 'x')",
                       "rule.lua:2: string too long for '%q'");
    lua_close(L);
}
