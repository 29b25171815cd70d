/* lua_string: Lua 5.4 patterns with a step budget, for the rules sandbox.
 *
 * Why our own matcher: Lua's lstrlib backtracks in C without any limit, and
 * the instruction budget (a count hook) cannot interrupt one C call, so a rule
 * calling string.match("aaaa...", ".-.-.-.-.-.-.-.-x") held the daemon for
 * seconds. lstrlib has no step limit or hook to add one, and Debian packages
 * no bounded Lua-pattern library (lrexlib, LPeg and friends use other pattern
 * languages, which would break every rule and adapter). So this file
 * implements the same backtracking algorithm, written for this project, with
 * the same semantics as Lua 5.4's manual section 6.4.1 and the same results
 * and error messages as lstrlib (the unit test and the fuzz target compare
 * the two) — and it counts steps.
 *
 * A step is one attempt of a pattern item at one subject position: entering
 * the matcher, testing a character class (sets cost more by their length),
 * scanning a character for %b, comparing a back-reference (by its length).
 * Each call gets sr_string_step_budget(subject length) steps; past them it
 * raises "pattern too complex: ...", at the caller's file:line like every
 * luaL_error. The nesting limit of lstrlib (200 recursive matcher calls, the
 * error "pattern too complex" without details) is kept as it is. */
#include "rules/lua_string.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#define STR_MAX_CAPTURES 32 /* LUA_MAXCAPTURES */
#define STR_MAX_DEPTH 200   /* nesting of recursive matcher calls (MAXCCALLS) */
#define STR_CAP_UNFINISHED (-1)
#define STR_CAP_POSITION (-2)
#define STR_ESCAPE '%'
/* Patterns without these characters are searched for as plain text by find. */
#define STR_SPECIALS "^$*+?.([%-"

/* The guard of a state (sr_lua_string_set_guard): a full userdata, upvalue
 * of every function here, and in the registry under &str_guard_key. */
typedef struct {
    sr_string_guard fn; /* or NULL */
    void *ud;
} str_guard;

static const char str_guard_key = 'g';

typedef struct {
    const char *src_init; /* the subject */
    const char *src_end;  /* its end (Lua strings hold a '\0' there) */
    const char *p_end;    /* the pattern's end ('\0' there too) */
    lua_State *L;
    int depth_left;
    int level; /* captures opened so far */
    long long steps_used;
    long long budget;
    long long next_check; /* steps_used past this: check the budget, call the guard */
    const str_guard *guard;
    struct {
        const char *init;
        ptrdiff_t len; /* or STR_CAP_UNFINISHED, STR_CAP_POSITION */
    } capture[STR_MAX_CAPTURES];
} str_match_state;

long long sr_string_step_budget(size_t len) {
    if (len >= (size_t)((SR_STRING_STEPS_MAX - SR_STRING_STEPS_BASE) / SR_STRING_STEPS_PER_BYTE))
        return SR_STRING_STEPS_MAX;
    long long b = SR_STRING_STEPS_BASE + SR_STRING_STEPS_PER_BYTE * (long long)len;
    return b < SR_STRING_STEPS_MAX ? b : SR_STRING_STEPS_MAX;
}

static long long str_next_check(const str_match_state *ms) {
    long long next = ms->steps_used + SR_STRING_GUARD_STEPS;
    return ms->guard->fn && next < ms->budget ? next : ms->budget;
}

/* Calls the guard, if any: it may raise to stop the rule. */
static void str_guard_call(lua_State *L, const str_guard *guard) {
    if (guard->fn) guard->fn(L, guard->ud);
}

static void str_state_init(str_match_state *ms, lua_State *L, const str_guard *guard, const char *s, size_t ls,
                           const char *p, size_t lp) {
    ms->L = L;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->budget = sr_string_step_budget(ls);
    ms->steps_used = 0;
    ms->guard = guard;
    ms->next_check = str_next_check(ms);
}

/* Before each attempt at a new subject position: the captures and the
 * nesting start afresh; the steps do not. */
static void str_state_reset(str_match_state *ms) {
    ms->level = 0;
    ms->depth_left = STR_MAX_DEPTH;
}

static void str_too_complex(str_match_state *ms) {
    luaL_error(ms->L, "pattern too complex: more than %I matching steps for a %I-byte subject", (lua_Integer)ms->budget,
               (lua_Integer)(ms->src_end - ms->src_init));
}

static void str_checkpoint(str_match_state *ms) {
    if (ms->steps_used > ms->budget) str_too_complex(ms);
    str_guard_call(ms->L, ms->guard);
    ms->next_check = str_next_check(ms);
}

/* One compare on the hot path: the budget and the guard share a mark. */
static inline void str_charge(str_match_state *ms, long long steps) {
    ms->steps_used += steps;
    if (ms->steps_used > ms->next_check) str_checkpoint(ms);
}

/* ---- single characters ------------------------------------------------- */

/* Whether c is in the class %cl (cl a letter of the class, or any other
 * character standing for itself). An upper-case class letter negates. */
static int str_in_class(int c, int cl) {
    int in;
    switch (tolower(cl)) {
    case 'a': in = isalpha(c); break;
    case 'c': in = iscntrl(c); break;
    case 'd': in = isdigit(c); break;
    case 'g': in = isgraph(c); break;
    case 'l': in = islower(c); break;
    case 'p': in = ispunct(c); break;
    case 's': in = isspace(c); break;
    case 'u': in = isupper(c); break;
    case 'w': in = isalnum(c); break;
    case 'x': in = isxdigit(c); break;
    case 'z': in = c == 0; break; /* deprecated in Lua 5.2, still accepted */
    default: return cl == c;
    }
    return isupper(cl) ? !in : in != 0;
}

/* Whether c is in the set that opens at set ('[') and closes at close (its
 * ']'). A '^' right after '[' complements it; "x-y" is a range unless the
 * '-' is the set's last character. */
static int str_in_set(int c, const char *set, const char *close) {
    int hit = 1;
    const char *p = set + 1;
    if (*p == '^') {
        hit = 0;
        p++;
    }
    for (; p < close; p++) {
        if (*p == STR_ESCAPE) {
            p++;
            if (str_in_class(c, (unsigned char)*p)) return hit;
        } else if (p[1] == '-' && p + 2 < close) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return hit;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return hit;
        }
    }
    return !hit;
}

/* Where the single-character item at p ends (a quantifier may follow).
 * Raises for a '%' ending the pattern and for a set without ']'. Reading at
 * p_end is safe: Lua strings end with '\0', which is no ']'. */
static const char *str_item_end(str_match_state *ms, const char *p) {
    char c = *p++;
    if (c == STR_ESCAPE) {
        if (p >= ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c != '[') return p;
    const char *set = p;
    if (*p == '^') p++;
    /* The set's first character is a member even when it is ']'. */
    do {
        if (p >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
        c = *p++;
        if (c == STR_ESCAPE && p < ms->p_end) p++; /* "%]" is a member */
    } while (*p != ']');
    str_charge(ms, (p - set) / 4); /* finding the end of a long set is work too */
    return p + 1;
}

/* Whether the item p..ep matches the subject character at s. */
static int str_item_matches(str_match_state *ms, const char *s, const char *p, const char *ep) {
    if (s >= ms->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case STR_ESCAPE: return str_in_class(c, (unsigned char)p[1]);
    case '[': str_charge(ms, (ep - p) / 4); return str_in_set(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

/* ---- the matcher ------------------------------------------------------- */

static const char *str_match(str_match_state *ms, const char *s, const char *p);

/* %bxy at p (p points at x): a balanced run from s. */
static const char *str_balanced(str_match_state *ms, const char *s, const char *p) {
    if (p + 1 >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != p[0]) return NULL;
    char open = p[0], close = p[1];
    int depth = 1;
    const char *start = s;
    while (++s < ms->src_end) {
        if (*s == close) {
            if (--depth == 0) {
                str_charge(ms, s - start);
                return s + 1;
            }
        } else if (*s == open) {
            depth++;
        }
    }
    str_charge(ms, s - start);
    return NULL;
}

/* %1-%9 (digit at p): the text of an earlier, closed capture again. */
static const char *str_backref(str_match_state *ms, const char *s, int digit) {
    int i = digit - '1';
    if (i < 0 || i >= ms->level || ms->capture[i].len == STR_CAP_UNFINISHED)
        luaL_error(ms->L, "invalid capture index %%%d", i + 1);
    ptrdiff_t len = ms->capture[i].len;
    if (len < 0) return NULL; /* a position capture holds no text */
    str_charge(ms, len / 16);
    if (ms->src_end - s >= len && memcmp(ms->capture[i].init, s, (size_t)len) == 0) return s + len;
    return NULL;
}

/* item* and item+: the longest run first, then shorter ones. */
static const char *str_longest(str_match_state *ms, const char *s, const char *p, const char *ep) {
    ptrdiff_t n = 0;
    while (str_item_matches(ms, s + n, p, ep)) {
        str_charge(ms, 1);
        n++;
    }
    for (; n >= 0; n--) {
        const char *e = str_match(ms, s + n, ep + 1);
        if (e) return e;
    }
    return NULL;
}

/* item-: the shortest run first, then one more character at a time. */
static const char *str_shortest(str_match_state *ms, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *e = str_match(ms, s, ep + 1);
        if (e) return e;
        str_charge(ms, 1);
        if (!str_item_matches(ms, s, p, ep)) return NULL;
        s++;
    }
}

static const char *str_open_capture(str_match_state *ms, const char *s, const char *p, ptrdiff_t what) {
    if (ms->level >= STR_MAX_CAPTURES) luaL_error(ms->L, "too many captures");
    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    const char *e = str_match(ms, s, p);
    if (!e) ms->level--;
    return e;
}

static const char *str_close_capture(str_match_state *ms, const char *s, const char *p) {
    int i = ms->level - 1;
    while (i >= 0 && ms->capture[i].len != STR_CAP_UNFINISHED) i--;
    if (i < 0) luaL_error(ms->L, "invalid pattern capture");
    ms->capture[i].len = s - ms->capture[i].init;
    const char *e = str_match(ms, s, p);
    if (!e) ms->capture[i].len = STR_CAP_UNFINISHED;
    return e;
}

/* Matches the pattern from p against the subject from s: the end of the
 * match, or NULL. Items that cannot backtrack loop here; the others recurse,
 * at most STR_MAX_DEPTH deep. */
static const char *str_match(str_match_state *ms, const char *s, const char *p) {
    if (ms->depth_left-- == 0) luaL_error(ms->L, "pattern too complex");
    for (;;) {
        str_charge(ms, 1);
        if (p == ms->p_end) break;
        switch (*p) {
        case '(':
            if (p[1] == ')') s = str_open_capture(ms, s, p + 2, STR_CAP_POSITION);
            else
                s = str_open_capture(ms, s, p + 1, STR_CAP_UNFINISHED);
            goto done;
        case ')': s = str_close_capture(ms, s, p + 1); goto done;
        case '$':
            if (p + 1 != ms->p_end) break; /* a '$' inside the pattern is itself */
            if (s != ms->src_end) s = NULL;
            goto done;
        case STR_ESCAPE:
            if (p[1] == 'b') {
                s = str_balanced(ms, s, p + 2);
                if (!s) goto done;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                const char *ep = str_item_end(ms, p);
                str_charge(ms, (ep - p) / 4);
                int before = s == ms->src_init ? 0 : (unsigned char)s[-1];
                int here = s < ms->src_end ? (unsigned char)*s : 0;
                if (str_in_set(before, p, ep - 1) || !str_in_set(here, p, ep - 1)) {
                    s = NULL;
                    goto done;
                }
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)p[1])) {
                s = str_backref(ms, s, (unsigned char)p[1]);
                if (!s) goto done;
                p += 2;
                continue;
            }
            break;
        default: break;
        }
        /* A single-character item, maybe with a quantifier. */
        const char *ep = str_item_end(ms, p);
        if (!str_item_matches(ms, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') { /* zero repetitions are fine */
                p = ep + 1;
                continue;
            }
            s = NULL;
            goto done;
        }
        switch (*ep) {
        case '?': {
            const char *e = str_match(ms, s + 1, ep + 1);
            if (e) {
                s = e;
                goto done;
            }
            p = ep + 1;
            continue;
        }
        case '+': s = str_longest(ms, s + 1, p, ep); goto done;
        case '*': s = str_longest(ms, s, p, ep); goto done;
        case '-': s = str_shortest(ms, s, p, ep); goto done;
        default:
            s++;
            p = ep;
            continue;
        }
    }
done:
    ms->depth_left++;
    return s;
}

/* ---- results ----------------------------------------------------------- */

/* Pushes capture i of the match s..e (a string, or a position as an
 * integer); with no captures, i == 0 is the whole match. Raises for a
 * capture the pattern does not have. */
static void str_push_capture(str_match_state *ms, int i, const char *s, const char *e) {
    if (i >= ms->level) {
        if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(ms->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = ms->capture[i].len;
    if (len == STR_CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
    if (len == STR_CAP_POSITION) lua_pushinteger(ms->L, (lua_Integer)(ms->capture[i].init - ms->src_init) + 1);
    else
        lua_pushlstring(ms->L, ms->capture[i].init, (size_t)len);
}

/* Pushes every capture (the whole match s..e when there are none and s is
 * not NULL); returns how many. */
static int str_push_captures(str_match_state *ms, const char *s, const char *e) {
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++) str_push_capture(ms, i, s, e);
    return n;
}

/* A 1-based start position (negative: from the end) as an offset + 1,
 * clipped to 1 below; may exceed len + 1. */
static size_t str_start_position(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

static int str_has_specials(const char *p, size_t lp) {
    for (size_t i = 0; i < lp; i++)
        if (p[i] && strchr(STR_SPECIALS, p[i])) return 1;
    return 0;
}

/* ---- find, match ------------------------------------------------------- */

static int str_find_or_match(lua_State *L, int find) {
    const str_guard *guard = lua_touserdata(L, lua_upvalueindex(1));
    str_guard_call(L, guard);
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = str_start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !str_has_specials(p, lp))) {
        /* Plain text: memmem is linear, no budget needed. */
        const char *hit = memmem(s + init, ls - init, p, lp);
        if (hit) {
            lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)(hit - s + (ptrdiff_t)lp));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    str_match_state ms;
    str_state_init(&ms, L, guard, s, ls, p, lp);
    int anchored = *p == '^';
    if (anchored) p++;
    const char *from = s + init;
    do {
        str_state_reset(&ms);
        str_charge(&ms, 1); /* each start position costs a step of its own */
        const char *e = str_match(&ms, from, p);
        if (e) {
            if (!find) return str_push_captures(&ms, from, e);
            lua_pushinteger(L, (lua_Integer)(from - s) + 1);
            lua_pushinteger(L, (lua_Integer)(e - s));
            return str_push_captures(&ms, NULL, NULL) + 2;
        }
    } while (from++ < ms.src_end && !anchored);
    luaL_pushfail(L);
    return 1;
}

static int l_string_find(lua_State *L) { return str_find_or_match(L, 1); }

static int l_string_match(lua_State *L) { return str_find_or_match(L, 0); }

/* ---- gmatch ------------------------------------------------------------ */

/* The iterator's state (upvalue 3; the subject and the pattern are upvalues
 * 1 and 2, which keeps the pointers below valid; the guard is upvalue 4). One budget for all the
 * iterations: a gmatch loop costs what one gsub over the subject costs. */
typedef struct {
    str_match_state ms;
    const char *next;     /* where the next match may start */
    const char *last_end; /* end of the last match: no empty match there */
} str_gmatch_state;

static int l_gmatch_next(lua_State *L) {
    str_gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    const char *p = lua_tostring(L, lua_upvalueindex(2));
    gm->ms.L = L; /* the loop may run in another coroutine than gmatch did */
    str_guard_call(L, gm->ms.guard);
    for (const char *from = gm->next; from <= gm->ms.src_end; from++) {
        str_state_reset(&gm->ms);
        str_charge(&gm->ms, 1);
        const char *e = str_match(&gm->ms, from, p);
        if (e && e != gm->last_end) {
            gm->next = gm->last_end = e;
            return str_push_captures(&gm->ms, from, e);
        }
    }
    gm->next = gm->ms.src_end + 1; /* done: later calls return nothing at once */
    return 0;
}

static int l_string_gmatch(lua_State *L) {
    const str_guard *guard = lua_touserdata(L, lua_upvalueindex(1));
    str_guard_call(L, guard);
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = str_start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) init = ls + 1; /* past the end: no match */
    lua_settop(L, 2);
    str_gmatch_state *gm = lua_newuserdatauv(L, sizeof *gm, 0);
    str_state_init(&gm->ms, L, guard, s, ls, p, lp);
    gm->next = s + init;
    gm->last_end = NULL;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, l_gmatch_next, 4);
    return 1;
}

/* ---- gsub -------------------------------------------------------------- */

/* A string replacement with %0-%9 and %% for the match s..e into b. */
static void str_add_template(str_match_state *ms, luaL_Buffer *b, const char *s, const char *e) {
    lua_State *L = ms->L;
    size_t len;
    const char *r = lua_tolstring(L, 3, &len);
    const char *esc;
    while ((esc = memchr(r, STR_ESCAPE, len)) != NULL) {
        luaL_addlstring(b, r, (size_t)(esc - r));
        esc++; /* the character after '%' ('\0' at the end of the string) */
        if (*esc == STR_ESCAPE) {
            luaL_addchar(b, *esc);
        } else if (*esc == '0') {
            str_charge(ms, 2 + (e - s) / 16);
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit((unsigned char)*esc)) {
            str_push_capture(ms, *esc - '1', s, e);
            size_t cap_len;
            lua_tolstring(L, -1, &cap_len);
            str_charge(ms, 10 + (long long)cap_len / 16); /* a push and an add cost ten steps' time */
            luaL_addvalue(b);                             /* the capture, or its position as a number */
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", STR_ESCAPE);
        }
        len -= (size_t)(esc + 1 - r);
        r = esc + 1;
    }
    luaL_addlstring(b, r, len);
}

/* Adds the replacement of the match s..e to b; returns whether it changed
 * the text (false when a function or table gave false or nil). */
static int str_add_replacement(str_match_state *ms, luaL_Buffer *b, const char *s, const char *e, int type) {
    lua_State *L = ms->L;
    str_charge(ms, 6); /* the lookup or the call, besides what runs in Lua */
    if (type == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = str_push_captures(ms, s, e);
        lua_call(L, n, 1);
    } else if (type == LUA_TTABLE) {
        str_push_capture(ms, 0, s, e);
        lua_gettable(L, 3);
    } else {
        size_t len;
        lua_tolstring(L, 3, &len);
        str_charge(ms, 1 + (long long)len / 16); /* copying the replacement is work too */
        str_add_template(ms, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s)); /* keep the match */
        return 0;
    }
    if (!lua_isstring(L, -1)) return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int l_string_gsub(lua_State *L) {
    const str_guard *guard = lua_touserdata(L, lua_upvalueindex(1));
    str_guard_call(L, guard);
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int type = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION || type == LUA_TTABLE, 3,
                     "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    str_match_state ms;
    str_state_init(&ms, L, guard, s, ls, p, lp);
    int anchored = *p == '^';
    if (anchored) p++;
    const char *from = s, *last_end = NULL;
    lua_Integer n = 0;
    int changed = 0;
    while (n < max_n) {
        str_state_reset(&ms);
        str_charge(&ms, 1);
        const char *e = str_match(&ms, from, p);
        if (e && e != last_end) {
            n++;
            changed |= str_add_replacement(&ms, &b, from, e, type);
            from = last_end = e;
        } else if (from < ms.src_end) {
            luaL_addchar(&b, *from++);
        } else {
            break;
        }
        if (anchored) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1); /* the subject itself, no copy */
    } else {
        luaL_addlstring(&b, from, (size_t)(ms.src_end - from));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

/* ---- rep, format, table.move, table.sort ------------------------------ */

/* Calls Lua's own function (upvalue 1) with the arguments. Used where the
 * arguments were checked here, so that what it raises comes from
 * metamethods, comparisons or memory, and names no function anyway. */
static int str_call_lua_own(lua_State *L, int nresults) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, nresults);
    return nresults;
}

/* string.rep(s, n [, sep]): Lua's own once the result is known to be at
 * most SR_STRING_REP_MAX bytes; empty pieces give "" at once instead of
 * looping n times over nothing. */
static int l_string_rep(lua_State *L) {
    str_guard_call(L, lua_touserdata(L, lua_upvalueindex(2)));
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    /* n * l + (n - 1) * lsep <= max, without overflow. */
    size_t max = SR_STRING_REP_MAX;
    if (l > max || lsep > max || (size_t)(n - 1) > (max - l) / (l + lsep))
        return luaL_error(L, "resulting string too large (string.rep makes at most %I bytes)", (lua_Integer)max);
    return str_call_lua_own(L, 1);
}

/* The messages Lua's string.format raises itself. Called from C, it cannot
 * find its caller's file:line or its own name; l_string_format adds them. */
static int str_format_own_error(const char *msg) {
    static const char *const starts[] = {"bad argument #", "invalid conversion",        "invalid format",
                                         "specifier '%q'", "value has no literal form", "'__tostring' must"};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
        if (strncmp(msg, starts[i], strlen(starts[i])) == 0) return 1;
    return 0;
}

/* string.format(fmt, ...): Lua's own, once the strings that %q quotes are at
 * most SR_STRING_QUOTE_MAX bytes in all: %q formats byte by byte, and 20 MiB
 * of NULs took most of a second. (Widths and precisions are already limited
 * to two digits by Lua.) */
static int l_string_format(lua_State *L) {
    str_guard_call(L, lua_touserdata(L, lua_upvalueindex(2)));
    size_t len;
    const char *fmt = luaL_checklstring(L, 1, &len);
    size_t quoted = 0;
    int arg = 1;
    for (size_t i = 0; i < len; i++) {
        if (fmt[i] != '%') continue;
        if (++i < len && fmt[i] == '%') continue; /* "%%" */
        arg++;
        while (i < len && fmt[i] && strchr("-+ #0123456789.", fmt[i])) i++;
        if (i < len && fmt[i] == 'q' && lua_type(L, arg) == LUA_TSTRING) quoted += lua_rawlen(L, arg);
    }
    if (quoted > SR_STRING_QUOTE_MAX)
        return luaL_error(L, "string too long for '%%q' (string.format quotes at most %I bytes)",
                          (lua_Integer)SR_STRING_QUOTE_MAX);
    int nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    if (lua_pcall(L, nargs, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (lua_type(L, -1) == LUA_TSTRING && str_format_own_error(msg)) {
            luaL_where(L, 1);
            luaL_gsub(L, msg, "to '?'", "to 'format'");
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return 1;
}

/* What table.move and table.sort accept as a table: a table, or a value
 * whose metatable has the metamethods the function uses (as ltablib checks,
 * with its error). */
static void str_check_table(lua_State *L, int arg, int read, int write, int length) {
    if (lua_type(L, arg) == LUA_TTABLE) return;
    int top = lua_gettop(L);
    if (lua_getmetatable(L, arg) && (!read || lua_getfield(L, top + 1, "__index") != LUA_TNIL) &&
        (!write || lua_getfield(L, top + 1, "__newindex") != LUA_TNIL) &&
        (!length || lua_getfield(L, top + 1, "__len") != LUA_TNIL)) {
        lua_settop(L, top);
        return;
    }
    luaL_checktype(L, arg, LUA_TTABLE);
}

/* table.move(a1, f, e, t [, a2]): Lua's own for at most SR_TABLE_MOVE_MAX
 * elements. Lua's loops over the whole range even where the table holds
 * nothing, so table.move({}, 1, 1e15, 1) ran for days. */
static int l_table_move(lua_State *L) {
    str_guard_call(L, lua_touserdata(L, lua_upvalueindex(2)));
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer to = luaL_checkinteger(L, 4);
    int dest = !lua_isnoneornil(L, 5) ? 5 : 1;
    str_check_table(L, 1, 1, 0, 0);
    str_check_table(L, dest, 0, 1, 0);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        if (e - f >= SR_TABLE_MOVE_MAX)
            return luaL_argerror(L, 3, lua_pushfstring(L, "too many elements to move (at most %I)", SR_TABLE_MOVE_MAX));
        luaL_argcheck(L, to <= LUA_MAXINTEGER - (e - f), 4, "destination wrap around");
    }
    return str_call_lua_own(L, 1);
}

/* table.sort(t [, comp]): Lua's own for at most SR_TABLE_SORT_MAX elements.
 * Without a comparison function the whole sort is one C call: 2 million
 * numbers took most of a second. */
static int l_table_sort(lua_State *L) {
    str_guard_call(L, lua_touserdata(L, lua_upvalueindex(2)));
    str_check_table(L, 1, 1, 1, 1);
    lua_Integer n = luaL_len(L, 1);
    if (n > SR_TABLE_SORT_MAX)
        return luaL_argerror(L, 1,
                             lua_pushfstring(L, "array too big to sort (at most %I elements)", SR_TABLE_SORT_MAX));
    if (n > 1 && !lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    return str_call_lua_own(L, 0);
}

/* Replaces field name of the table below the guard (on top) by fn with the
 * old value and the guard as its upvalues. */
static void str_wrap(lua_State *L, const char *name, lua_CFunction fn) {
    lua_getfield(L, -2, name);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, fn, 2);
    lua_setfield(L, -3, name);
}

void sr_lua_bound_string(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"find", l_string_find},
        {"match", l_string_match},
        {"gmatch", l_string_gmatch},
        {"gsub", l_string_gsub},
        {NULL, NULL},
    };
    str_guard *guard = lua_newuserdatauv(L, sizeof *guard, 0);
    guard->fn = NULL;
    guard->ud = NULL;
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &str_guard_key);
    lua_getglobal(L, "string");
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, fns, 1);
    lua_pushvalue(L, -2);
    str_wrap(L, "rep", l_string_rep);
    str_wrap(L, "format", l_string_format);
    lua_pop(L, 2);
    lua_getglobal(L, "table");
    lua_pushvalue(L, -2);
    str_wrap(L, "move", l_table_move);
    str_wrap(L, "sort", l_table_sort);
    lua_pop(L, 3);
}

void sr_lua_string_set_guard(lua_State *L, sr_string_guard fn, void *ud) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &str_guard_key);
    str_guard *guard = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!guard) return; /* sr_lua_bound_string was not called */
    guard->fn = fn;
    guard->ud = ud;
}
