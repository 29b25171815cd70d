/* lua_string: bounded replacements for the string functions whose work in C
 * a rule could make unbounded. Lua's count hook (the instruction budget) never
 * fires inside one C call, so a single string.match with a backtracking
 * pattern ("eight .- on 40 bytes") could hold the event loop for seconds.
 *
 * string.find, string.match, string.gmatch and string.gsub keep Lua 5.4's
 * pattern semantics exactly (same results, same errors for malformed
 * patterns) but count their matching steps: past the budget of one call they
 * raise "pattern too complex: ..." at the caller's file:line. string.rep gets
 * a result-size limit and no longer loops over empty pieces, string.format a
 * limit on what %q quotes; table.move and table.sort get a limit on how many
 * elements one call may copy or sort.
 *
 * The budget of one call is SR_STRING_STEPS_BASE + SR_STRING_STEPS_PER_BYTE
 * per byte of the subject, at most SR_STRING_STEPS_MAX. gsub and a gmatch
 * iterator share one budget over all their matches. */
#ifndef SR_LUA_STRING_H
#define SR_LUA_STRING_H

#include <lua.h>
#include <stddef.h>

#define SR_STRING_STEPS_BASE 1000000LL
#define SR_STRING_STEPS_PER_BYTE 256LL
#define SR_STRING_STEPS_MAX 10000000LL
/* The longest string string.rep builds; the most bytes one string.format
 * quotes with %q. */
#define SR_STRING_REP_MAX ((size_t)32 << 20)
#define SR_STRING_QUOTE_MAX ((size_t)2 << 20)
/* The most elements one table.move copies, one table.sort sorts. */
#define SR_TABLE_MOVE_MAX ((lua_Integer)1 << 22)
#define SR_TABLE_SORT_MAX ((lua_Integer)1 << 18)

/* Replaces find, match, gmatch, gsub, rep and format in the global `string` table
 * (which is also the strings' metatable __index, so s:match(...) is covered)
 * and move and sort in the global `table`. Call after luaL_openlibs. */
void sr_lua_bound_string(lua_State *L);

/* A guard lets the host stop a rule from inside these functions, which the
 * count hook cannot reach: it is called at the start of every call of them
 * and every SR_STRING_GUARD_STEPS matching steps (a few ms) within one, and
 * may raise (luaL_error) to stop the rule, e.g. past a wall-clock deadline.
 * So a loop of many pattern calls between two count-hook firings is checked
 * too. ud is borrowed; fn NULL removes the guard. Needs
 * sr_lua_bound_string(L) first (else does nothing). */
typedef void (*sr_string_guard)(lua_State *L, void *ud);
#define SR_STRING_GUARD_STEPS 1000000LL
void sr_lua_string_set_guard(lua_State *L, sr_string_guard fn, void *ud);

/* The matching-step budget of one call on a subject of len bytes. */
long long sr_string_step_budget(size_t len);

#endif
