/* rules_exec: running rule handlers. Each event (trigger, inbound SMS,
 * delivery report) runs its handler in its own coroutine, under the
 * instruction budget and the state's memory cap. The handler's effects
 * (messages sent, kv writes, opt-outs) gather in one store unit that is
 * committed when the handler returns, all or nothing; a handler that raises,
 * runs out of budget or memory commits nothing. The done callback runs after
 * the commit reached the disk, so an answer sent from it promises durability. */
#ifndef SR_RULES_EXEC_H
#define SR_RULES_EXEC_H

#include "codec/json.h"
#include "model/message.h"
#include "rules/rules.h"

typedef enum {
    SR_INV_OK = 0,
    SR_INV_ERROR,   /* the handler raised: rule_error */
    SR_INV_TIMEOUT, /* instruction budget exceeded: rule_timeout */
    SR_INV_MEMORY,  /* memory cap reached: rule_memory */
    SR_INV_STORE,   /* the effects could not be committed */
} sr_invocation_status;

typedef struct sr_invocation sr_invocation;

/* What a finished invocation reports. ids: the messages it created (or
 * found by idempotency key), valid during the callback. */
typedef struct sr_invocation_result {
    sr_invocation_status status;
    const char *error; /* "file:line: message" or the store's error; NULL when OK */
    int store_code;    /* with SR_INV_STORE */
    const char (*ids)[SR_ID_LEN + 1];
    int id_count;
    const char *result_json; /* the handler's first return value as JSON, or NULL */
} sr_invocation_result;

typedef void (*sr_invocation_done)(const sr_invocation_result *res, void *ud);

/* Runs the event handler registered with sms.on(name) with the JSON value as
 * its argument (NULL: an empty table). Returns 0 and later calls done
 * exactly once, or SR_E_NOTFOUND (no such handler; done never runs). */
int sr_rules_fire_event(sr_rules *r, const char *name, const sr_json *arg, sr_invocation_done done, void *ud);

struct sr_store_txn;

/* An inbound SMS as a provider webhook (or the test runner) hands it over.
 * Strings are borrowed for the call; the caller bounds their sizes. */
typedef struct sr_inbound {
    const char *id;   /* our id for it (replies carry it as reply_to), or NULL */
    const char *from; /* the sender, E.164 */
    const char *to;   /* the number it was sent to, or NULL */
    const char *text;
    size_t text_len;      /* its bytes (it may hold NUL: inbound text is carried whole); 0: strlen(text) */
    const char *provider; /* the provider that received it, or NULL */
    int64_t received_at_ms;
    /* Optional: when the handler returned without error, called with the unit holding its effects
     * (and the ids of the messages it created) right before that unit is submitted, so the caller's
     * own record of the outcome commits with them, all or nothing. It returns 0, or a negative store
     * code to drop the unit: nothing of the handler is written, done reports SR_INV_STORE with it. */
    int (*before_commit)(struct sr_store_txn *unit, const char (*ids)[SR_ID_LEN + 1], int id_count, void *ud);
    void *before_commit_ud;
    /* Optional: set to 1 when sr_rules_fire_inbound returns with the handler waiting for an async
     * action (it goes on later), 0 when it ran to its end (done has run, or runs once its unit commits). */
    int *waiting;
    int no_result; /* 1: done's result_json stays NULL (the handler's return value is not encoded) */
} sr_inbound;

/* Where sms.on_inbound(fn) keeps fn: a field of the Lua registry. */
#define SR_INBOUND_HANDLER_KEY "smsrules.on_inbound"
#define SR_STATUS_HANDLER_KEY "smsrules.on_status"

/* sms.on_status, at least once across a crash. The host subscribes to the
 * store's status changes (durably while the current rules declare a status
 * handler: the store records each change to sent or a final status as owed
 * in the same commit). sr_rules_status_changed runs the handler for one
 * announced change, with the message as written; owed (the record's number,
 * 0: none) is cleared by the handler's own unit (a handler that fails, or
 * rules without a handler, clear it alone). sr_rules_status_recover, at
 * start, runs the handlers still owed (the daemon stopped first), each with
 * the status it is owed for, and returns how many it started. In cluster mode
 * it runs only those owed by a node that is gone (sr_store_orphaned), each
 * after this node took it over in a unit (so exactly one node runs it); the
 * daemon then calls it every few seconds. */
struct sr_store;
/* The statuses sms.on_status is run for (bits 1 << sr_status). */
#define SR_STATUS_HANDLER_MASK                                                                                         \
    (1u << SR_ST_SENT | 1u << SR_ST_DELIVERED | 1u << SR_ST_UNDELIVERED | 1u << SR_ST_EXPIRED | 1u << SR_ST_REJECTED | \
     1u << SR_ST_FAILED)
int sr_rules_has_status_handler(sr_rules *r);
void sr_rules_status_changed(sr_rules *r, struct sr_store *store, const sr_message *m, int64_t owed);
int sr_rules_status_recover(sr_rules *r, struct sr_store *store);

/* Runs the handler declared with sms.on_inbound(fn) with the message as a
 * table {id, from, to, text, provider, received_at (seconds)}, like
 * sr_rules_fire_event: returns 0 and later calls done exactly once (ids: the
 * replies and other messages it created), or SR_E_NOTFOUND when the rules
 * declare no inbound handler (done never runs). */
int sr_rules_fire_inbound(sr_rules *r, const sr_inbound *msg, sr_invocation_done done, void *ud);

/* The invocation whose handler is running now (NULL at load time). */
sr_invocation *sr_invocation_current(sr_rules *r);
/* For actions (sms.send, sms.kv, ...): the unit collecting the effects,
 * created on first use. */
struct sr_store_txn *sr_invocation_unit(sr_invocation *inv);
/* Records a message id the invocation created. */
void sr_invocation_add_id(sr_invocation *inv, const char *id);
/* Pushes onto L (the running thread) a table holding this invocation's pending kv
 * writes and opt-outs, so reads inside the handler see its own writes. */
void sr_invocation_push_overlay(sr_invocation *inv, lua_State *L);

/* Async actions (the OpenResty pattern): the action checks
 * lua_isyieldable, starts its I/O with a completion callback that holds the
 * invocation, and returns lua_yield(L, 0). The completion pushes its results
 * onto sr_invocation_thread(inv) and calls sr_invocation_resume(inv, nresults).
 * A yielded invocation lives until it is resumed and finishes. */
lua_State *sr_invocation_thread(sr_invocation *inv);
/* Called by an async action right before lua_yield: any other yield (a bare
 * coroutine.yield in a handler) would leave the handler suspended forever,
 * so it is a rule error. */
void sr_invocation_expect_yield(sr_invocation *inv);
void sr_invocation_resume(sr_invocation *inv, int nresults);

/* Pushes a JSON value as a Lua value (objects → tables, arrays → sequences,
 * null → nil inside tables). */
void sr_lua_push_json(lua_State *L, const sr_json *v, int depth);

#endif
