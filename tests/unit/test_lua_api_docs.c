/* The Lua API reference stays true to the API: every function of the `sms`
 * table a real rules state holds (sms.send, sms.kv.get, ...) has a heading
 * "### `sms.NAME(...)`" in one of src/rules/bindings/lua_*.md, every such
 * heading names a function that exists, each heading sits in the doc beside
 * the C file that registers the function, and docs/lua-api.md lists every
 * function in its table.
 *
 * The functions are read from the state sr_rules_load builds (the one
 * `smsrules serve` and `check` run rules in), through the read-only views the
 * sandbox puts over `sms` and its sub-tables: a binding added without its
 * doc, or a doc left behind by a removed binding, fails here. The docs are
 * found from the working directory or, failing that, upwards from the test
 * binary (build/tests/ or build/asan/tests/ under the repository). */
#include <dirent.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "rules/rules.h"
#include "rules/bindings/bindings.h"
#include "unit.h"

#define DOCS_MAX_NAMES 256
#define DOCS_NAME_MAX 96
#define DOCS_FILE_MAX 64

typedef struct doc_name {
    char name[DOCS_NAME_MAX]; /* "sms.kv.get" */
    char file[DOCS_FILE_MAX]; /* "lua_kv.md" for a heading; "" for a function of the state */
} doc_name;

typedef struct doc_names {
    doc_name items[DOCS_MAX_NAMES];
    int count;
} doc_names;

static void names_add(doc_names *n, const char *name, const char *file) {
    if (n->count == DOCS_MAX_NAMES) UNIT_FAIL("more than %d names", DOCS_MAX_NAMES);
    snprintf(n->items[n->count].name, DOCS_NAME_MAX, "%s", name);
    snprintf(n->items[n->count].file, DOCS_FILE_MAX, "%s", file);
    n->count++;
}

static const doc_name *names_find(const doc_names *n, const char *name) {
    for (int i = 0; i < n->count; i++)
        if (strcmp(n->items[i].name, name) == 0) return &n->items[i];
    return NULL;
}

/* The repository root (the folder holding src/rules/bindings) into root. */
static void docs_root(char *root, size_t len) {
    if (access("src/rules/bindings", F_OK) == 0) {
        snprintf(root, len, ".");
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) UNIT_FAIL("cannot find the repository: run from its root");
    exe[n] = '\0';
    for (char *slash = strrchr(exe, '/'); slash; slash = strrchr(exe, '/')) {
        *slash = '\0';
        char probe[PATH_MAX + 32];
        snprintf(probe, sizeof probe, "%s/src/rules/bindings", exe);
        if (access(probe, F_OK) == 0) {
            snprintf(root, len, "%s", exe);
            return;
        }
    }
    UNIT_FAIL("cannot find src/rules/bindings from the working directory or the test binary");
}

/* Pushes the table behind the value at idx: the value itself, or for a
 * read-only view of the sandbox, the table its __index reads. */
static void push_real_table(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_getmetatable(L, idx)) {
        if (lua_getfield(L, -1, "__index") == LUA_TTABLE) {
            lua_remove(L, -2);
            return;
        }
        lua_pop(L, 2);
    }
    lua_pushvalue(L, idx);
}

/* Adds prefix.KEY for every function of the table at idx, and recurses one
 * level into its tables (sms.kv, sms.log, sms.http, sms.crypto). */
static void collect_functions(lua_State *L, int idx, const char *prefix, int depth, doc_names *out) {
    push_real_table(L, idx);
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            char name[DOCS_NAME_MAX];
            snprintf(name, sizeof name, "%s.%s", prefix, lua_tostring(L, -2));
            if (lua_isfunction(L, -1)) names_add(out, name, "");
            else if (lua_istable(L, -1) && depth == 0)
                collect_functions(L, -1, name, 1, out);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Every function of the sms table of a real rules state. */
static void state_functions(doc_names *out) {
    sr_config config;
    sr_config_init(&config);
    sr_rules *r = NULL;
    char err[512];
    if (sr_rules_load(&r, NULL, &config, err, sizeof err) != 0) UNIT_FAIL("rules state: %s", err);
    lua_State *L = r->L;
    if (lua_getglobal(L, "sms") != LUA_TTABLE) UNIT_FAIL("the rules state has no sms table");
    collect_functions(L, -1, "sms", 0, out);
    lua_pop(L, 1);
    sr_rules_free(r);
    sr_config_free(&config);
    if (out->count < 20) UNIT_FAIL("only %d sms functions found: the enumeration is broken", out->count);
}

/* The name a heading line documents ("sms.kv.get" of "### `sms.kv.get(key)`"),
 * or 0 when the line is no function heading. */
static int heading_name(const char *line, char *name, size_t len) {
    static const char lead[] = "### `sms.";
    if (strncmp(line, lead, sizeof lead - 1) != 0) return 0;
    const char *s = line + sizeof lead - 1 - strlen("sms.");
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.");
    if (n == 0 || n >= len) return 0;
    memcpy(name, s, n);
    name[n] = '\0';
    return 1;
}

/* Every "### `sms.NAME...`" heading of the .md files of src/rules/bindings. */
static void doc_headings(const char *root, doc_names *out) {
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/src/rules/bindings", root);
    DIR *d = opendir(dir);
    if (!d) UNIT_FAIL("cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".md") != 0) continue;
        char path[PATH_MAX + 256];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            UNIT_FAIL("path too long: %s/%s", dir, e->d_name); /* and -Wformat-truncation at -O1 is satisfied */
        FILE *f = fopen(path, "r");
        if (!f) UNIT_FAIL("cannot read %s", path);
        char line[1024], name[DOCS_NAME_MAX];
        while (fgets(line, sizeof line, f))
            if (heading_name(line, name, sizeof name)) names_add(out, name, e->d_name);
        fclose(f);
    }
    closedir(d);
}

/* The whole of a file (caller frees), or NULL when it cannot be read. */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (!text) abort();
    size_t got = fread(text, 1, (size_t)size, f);
    text[got] = '\0';
    fclose(f);
    return text;
}

/* Appends a complaint to a report kept for one failure at the end. */
static void complain(char *report, size_t len, const char *fmt, const char *a, const char *b) {
    size_t used = strlen(report);
    if (used + 1 < len) snprintf(report + used, len - used, fmt, a, b);
}

TEST(every_sms_function_has_a_heading) {
    static doc_names functions, headings;
    char root[PATH_MAX], report[8192] = "";
    docs_root(root, sizeof root);
    state_functions(&functions);
    doc_headings(root, &headings);
    for (int i = 0; i < functions.count; i++)
        if (!names_find(&headings, functions.items[i].name))
            complain(report, sizeof report, "\n  %s has no \"### `%s...`\" heading in src/rules/bindings/*.md",
                     functions.items[i].name, functions.items[i].name);
    if (report[0]) UNIT_FAIL("undocumented functions:%s", report);
}

TEST(every_heading_names_a_function) {
    static doc_names functions, headings;
    char root[PATH_MAX], report[8192] = "";
    docs_root(root, sizeof root);
    state_functions(&functions);
    doc_headings(root, &headings);
    for (int i = 0; i < headings.count; i++)
        if (!names_find(&functions, headings.items[i].name))
            complain(report, sizeof report, "\n  %s documents %s, which the sms table does not have",
                     headings.items[i].file, headings.items[i].name);
    if (report[0]) UNIT_FAIL("headings without a function:%s", report);
}

/* Each lua_NAME.c has lua_NAME.md beside it, and each heading of a doc names
 * a function its C file registers (the last part of the name, quoted). */
TEST(every_binding_has_its_doc_beside_it) {
    static doc_names headings;
    char root[PATH_MAX], report[8192] = "";
    docs_root(root, sizeof root);
    doc_headings(root, &headings);
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/src/rules/bindings", root);
    DIR *d = opendir(dir);
    if (!d) UNIT_FAIL("cannot open %s", dir);
    struct dirent *e;
    int c_files = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        /* lua_NAME.c: one sms.* table each (bindings.c only opens them). */
        if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0 || strncmp(e->d_name, "lua_", 4) != 0) continue;
        c_files++;
        char md[PATH_MAX + 256];
        snprintf(md, sizeof md, "%s/%.*s.md", dir, (int)(n - 2), e->d_name);
        if (access(md, F_OK) != 0) complain(report, sizeof report, "\n  %s has no %s beside it", e->d_name, md);
    }
    closedir(d);
    if (c_files == 0) UNIT_FAIL("no binding in %s", dir);
    for (int i = 0; i < headings.count; i++) {
        const doc_name *h = &headings.items[i];
        char c_path[PATH_MAX + 256];
        snprintf(c_path, sizeof c_path, "%s/%.*s.c", dir, (int)(strlen(h->file) - 3), h->file);
        char *source = read_file(c_path);
        if (!source) {
            complain(report, sizeof report, "\n  %s has no C file beside it (%s)", h->file, c_path);
            continue;
        }
        char quoted[DOCS_NAME_MAX + 2];
        snprintf(quoted, sizeof quoted, "\"%s\"", strrchr(h->name, '.') + 1);
        if (!strstr(source, quoted))
            complain(report, sizeof report, "\n  %s documents %s, which its C file does not register", h->file,
                     h->name);
        free(source);
    }
    if (report[0]) UNIT_FAIL("bindings and docs apart:%s", report);
}

TEST(lua_api_overview_lists_every_function) {
    static doc_names functions;
    char root[PATH_MAX], report[8192] = "";
    docs_root(root, sizeof root);
    state_functions(&functions);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/docs/lua-api.md", root);
    char *text = read_file(path);
    if (!text) UNIT_FAIL("cannot read %s", path);
    for (int i = 0; i < functions.count; i++) {
        char call[DOCS_NAME_MAX + 4], table_call[DOCS_NAME_MAX + 4];
        snprintf(call, sizeof call, "| `%s(", functions.items[i].name);
        snprintf(table_call, sizeof table_call, "| `%s{", functions.items[i].name);
        if (!strstr(text, call) && !strstr(text, table_call))
            complain(report, sizeof report, "\n  %s is not in the table of docs/lua-api.md%s", functions.items[i].name,
                     "");
    }
    free(text);
    if (report[0]) UNIT_FAIL("docs/lua-api.md is missing functions:%s", report);
}
