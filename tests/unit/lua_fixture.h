/* lua_fixture: the Lua state the provider-adapter unit tests run in, and the
 * helpers they share (test_adapters.c, test_adapters_regional.c,
 * test_adapters_global.c).
 *
 * It owns what is the same for every adapter, whoever the provider: a state
 * built the way the daemon builds one (standard libraries, cjson and the
 * adapters.* modules in package.preload, loaded from the sources embedded in
 * the binary), the Lua prelude of shared helpers, running a snippet and
 * comparing its result as text (CHECK_LUA), and the texts of the outcomes
 * parse_send returns. A test file passes the adapters it covers and its own
 * Lua helpers (provider options, webhook requests, answers in its shape) in
 * struct fixture_options; nothing provider-specific lives here.
 *
 * The shared prelude defines these globals, for the snippets and for the test
 * file's own prelude:
 *   NOW                 1700000000 (2023-11-14 22:13:20 UTC, a Tuesday);
 *                       os.time() returns it, os.time(t) still converts t,
 *                       so HTTP-date Retry-After values are exact.
 *   NONE                in an `over` table, removes that key.
 *   canon(v)            v as JSON with sorted keys, integers without ".0",
 *                       other numbers with options->canon_digits
                       significant digits.
 *   merge(t, over)      t with the fields of over set (NONE removes); returns t.
 *   msg(n, over)        message n as the core hands it over: id
 *                       01K...000n (ID1..), to +849123400n, text "Hello n".
 *   msgs(n)             {msg(1), ..., msg(n)}.
 *   show_request(r)     "METHOD url", the sorted headers, then the body (if
 *                       any) as canon(JSON) or, with raw_request_body, as sent.
 *   request(adapter, c, ms)  show_request(adapter.build_send(c, ms or {msg(1)})).
 *   outcomes(adapter, c, ms, status, body, headers)
 *                       parse_send's outcomes for an HTTP answer to the
 *                       messages ms (a list, or a count n for msgs(n));
 *                       raises unless there is one per message.
 *   raises(f, ...)      the error f(...) raises as a string, or 'no error'.
 *   verdict(adapter, c, r)    verify's answer as text: "true" or "false: reason".
 *   status_of(adapter, c, r)  parse_status's updates and answer, as canon JSON.
 *   inbound_of(adapter, c, r) parse_inbound's messages and answer, as canon JSON. */
#ifndef SR_LUA_FIXTURE_H
#define SR_LUA_FIXTURE_H

#include <lua.h>
#include <stdbool.h>

#include "unit.h"

struct fixture_options {
    /* The adapters under test ("generic", "mock", ...), NULL-terminated. Each
     * is preloaded as adapters.NAME (besides adapters.util, always there) and
     * loaded into the global NAME. Borrowed for the call. */
    const char *const *adapters;
    /* Optional: the test file's own Lua helpers, run after the shared prelude
     * (chunk name "prelude"). Borrowed for the call. */
    const char *prelude;
    /* show_request shows a request's body as sent (form encoding, JSON key
     * order) instead of as canon(cjson.decode(body)). */
    bool raw_request_body;
    /* Significant digits canon shows of a number that is not an integer:
     * 17 (the default, for 0) tells every double apart, so precision lost in
     * decoding is visible; 14 shows documented prices as written (0.05, not
     * 0.050000000000000003). */
    int canon_digits;
};

/* A fresh state with the standard libraries, cjson, the adapters.* modules,
 * the global sms holding the real sms.crypto and sms.form (what util and
 * verify functions use), the shared prelude and options->prelude run,
 * the globals named by options->adapters and the global util. Any failure
 * fails the test. The caller owns the state and closes it with lua_close. */
lua_State *fixture_adapters_state(const struct fixture_options *options);

/* Runs code (an expression, or a chunk with its own return) and returns its
 * result converted to a string with luaL_tolstring. The caller owns the copy
 * and frees it. A Lua error fails the test with the code and the traceback.
 * The stack is left as it was. */
char *fixture_eval(lua_State *L, const char *code);

/* Fails the test unless code gives exactly the text expected. */
#define CHECK_LUA(L, code, expected)                                                                                   \
    do {                                                                                                               \
        char *check_got = fixture_eval((L), (code));                                                                   \
        if (strcmp(check_got, (expected)) != 0)                                                                        \
            UNIT_FAIL("%s\n  gave:     %s\n  expected: %s", (code), check_got, (expected));                            \
        free(check_got);                                                                                               \
    } while (0)

/* Outcome texts as canon shows them (docs/providers.md, Writing an adapter). */
#define NO_ID "{\"error\":\"no message id in answer\",\"ok\":false,\"retry\":true}"
#define OK_ID(id) "{\"ok\":true,\"provider_id\":\"" id "\"}"
#define FAILED(scope, err) "{\"error\":\"" err "\",\"ok\":false,\"retry\":false,\"scope\":\"" scope "\"}"
#define RETRY(err) "{\"error\":\"" err "\",\"ok\":false,\"retry\":true}"
#define RETRY_AFTER(err, s) "{\"error\":\"" err "\",\"ok\":false,\"retry\":true,\"retry_after\":" #s "}"

/* Message ids as msg(n) makes them. */
#define ID1 "01K00000000000000000000001"
#define ID2 "01K00000000000000000000002"
#define ID3 "01K00000000000000000000003"

#endif
