-- The test runner's own tests: every helper of `smsrules test`, against
-- runner_rules.lua. Deliberately failing cases live in failing_cases.lua
-- (not named *_test.lua; tests/e2e/test_cli_test.py checks its report).
local rules = load_rules("runner_rules.lua")

local PHONE = "+84912345678"

local function statuses(list)
  local out = {}
  for i, s in ipairs(list) do out[i] = s.outcome end
  return out
end

test("load_rules returns the resolved path", function()
  assert_match(rules.path, "tests/lua/runner_rules%.lua$")
end)

test("fire renders the template and the provider receives the exact text", function()
  local r = fire("greet", { phone = "0912345678", name = "Ann" })
  assert_eq(r.status, 202)
  assert_eq(#r.ids, 1)
  assert_eq(r.error, nil)
  assert_eq(sent(), { { to = PHONE, text = "Hello Ann!", provider = "primary", id = r.ids[1],
                        outcome = "accepted", provider_id = "primary-1" } })
  local m = message(r.ids[1])
  assert_eq(m.status, "sent")
  assert_eq(m.provider, "primary")
  assert_eq(m.provider_id, "primary-1")
  assert_eq(#m.attempts, 1)
  assert_eq(m.attempts[1].outcome, "sent")
end)

test("fire answers like POST /v1/events: result, 404, rule_error", function()
  local r = fire("echo", { a = 1, list = { "x", "y" } })
  assert_eq(r.status, 200)
  assert_eq(r.ids, {})
  assert_eq(r.result, { a = 1, list = { "x", "y" } })
  r = fire("no.such.event")
  assert_eq(r.status, 404)
  assert_eq(r.error.code, "unknown_event")
  r = fire("broken")
  assert_eq(r.status, 500)
  assert_eq(r.error.code, "rule_error")
  assert_match(r.error.message, "runner_rules%.lua:%d+: deliberate failure")
end)

test("messages created together go out in one request, one outcome each", function()
  provider("primary"):outcomes{ "accept", { "reject", "unknown subscriber" }, { "accept", "custom-id" } }
  local r = fire("greet_many", { phones = { "+84912000001", "+84912000002", "+84912000003" } })
  assert_eq(#r.ids, 3)
  assert_eq(statuses(sent()), { "accepted", "rejected", "accepted" })
  assert_eq(message(r.ids[1]).status, "sent")
  assert_eq(message(r.ids[2]).status, "failed")
  assert_match(message(r.ids[2]).error, "unknown subscriber")
  assert_eq(message(r.ids[3]).provider_id, "custom-id")
end)

test("send: an id, a refusal with its reason, idempotency", function()
  local id = send{ to = PHONE, text = "plain" }
  assert_true(id, "an id")
  assert_eq(message(id).text, "plain")
  assert_eq(message(id).status, "sent")
  local none, err = send{ to = "not a number", text = "x" }
  assert_eq(none, nil)
  assert_match(err, "^invalid_phone: ")
  none, err = send{ to = PHONE, template = "greeting", vars = {} }
  assert_eq(none, nil)
  assert_match(err, "^template_error: .*name")
  local a = send{ to = PHONE, text = "once", idempotency_key = "k1" }
  local b = send{ to = PHONE, text = "once", idempotency_key = "k1" }
  assert_eq(b, a, "the same key gives the same message")
  none, err = send{ to = PHONE, text = "other", idempotency_key = "k1" }
  assert_match(err, "^idempotency_conflict")
  assert_eq(#sent(), 2)
end)

test("reject: the message fails, no other provider is tried", function()
  provider("primary"):reject("invalid number")
  local id = send{ to = PHONE, text = "x" }
  local m = message(id)
  assert_eq(m.status, "failed")
  assert_match(m.error, "invalid number")
  assert_eq(#sent(), 1)
end)

test("fail: retried with backoff as the clock advances", function()
  provider("primary"):fail(503):fail(503)
  local id = send{ to = PHONE, text = "x" }
  -- (The backoff is jittered from 0 ms up: the retry may already have gone.)
  assert_eq(sent()[1].outcome, "failed")
  assert_eq(message(id).attempts[1].outcome, "retry")
  advance(10)
  assert_eq(message(id).status, "sent")
  assert_eq(statuses(sent()), { "failed", "failed", "accepted" })
  assert_eq(message(id).attempts[1].http_status, 503)
end)

test("fail until attempts run out: the next provider of the route takes it", function()
  provider("primary"):outcomes{ "fail", "fail", "fail" }
  local id = send{ to = PHONE, text = "x" }
  advance(30)
  local m = message(id)
  assert_eq(m.status, "sent")
  assert_eq(m.provider, "backup")
  assert_eq(#sent(), 4)
  assert_eq(sent()[4].provider, "backup")
end)

test("unauthorized: the next provider at once", function()
  provider("primary"):unauthorized()
  local id = send{ to = PHONE, text = "x" }
  assert_eq(message(id).status, "sent")
  assert_eq(message(id).provider, "backup")
  assert_eq(statuses(sent()), { "unauthorized", "accepted" })
end)

test("delay: the answer arrives when the clock reaches it", function()
  provider("primary"):delay(3)
  local id = send{ to = PHONE, text = "x" }
  assert_eq(message(id).status, "sending")
  advance(2)
  assert_eq(message(id).status, "sending")
  advance(1.5)
  assert_eq(message(id).status, "sent")
end)

test("timeout: no answer within timeout_ms, retried", function()
  provider("primary"):timeout():delay(6) -- 6 s is past timeout_ms = 5000 too
  local id = send{ to = PHONE, text = "x" }
  assert_eq(message(id).status, "sending")
  advance(5)
  local m = message(id)
  assert_eq(m.attempts[1].outcome, "retry")
  assert_match(m.attempts[1].error, "^timeout")
  assert_true(m.status ~= "sent")
  advance(20)
  assert_eq(message(id).status, "sent")
  assert_eq(statuses(sent()), { "timeout", "timeout", "accepted" })
end)

test("fail with Retry-After: nothing goes before it", function()
  provider("primary"):fail(429, 20)
  local id = send{ to = PHONE, text = "x" }
  advance(19)
  assert_eq(message(id).status, "queued")
  assert_eq(#sent(), 1)
  advance(2)
  assert_eq(message(id).status, "sent")
end)

test("a provider's rate spreads messages over virtual time", function()
  local ids = {}
  for i = 1, 4 do ids[i] = send{ to = PHONE, text = "m" .. i, route = { "slow" } } end
  assert_true(#sent() < 4, "not all at once at 1 message/s")
  advance(5)
  assert_eq(#sent(), 4)
  for i = 1, 4 do assert_eq(message(ids[i]).status, "sent") end
end)

test("send_at waits for the clock", function()
  local at = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(now()) + 60)
  local id = send{ to = PHONE, text = "later", send_at = at }
  assert_eq(message(id).status, "queued")
  advance(55)
  assert_eq(#sent(), 0)
  advance(10)
  assert_eq(message(id).status, "sent")
end)

test("validity: a message that cannot go out in time expires", function()
  provider("primary"):fail(503, 120)
  local id = send{ to = PHONE, text = "x", validity = 30 }
  assert_eq(message(id).status, "queued")
  advance(40)
  assert_eq(message(id).status, "expired")
  assert_eq(#sent(), 1)
end)

test("kv values with a TTL age with the virtual clock", function()
  fire("remember", { note = "kept", ttl = 60 })
  assert_eq(fire("recall").result, { note = "kept" })
  advance(59)
  assert_eq(fire("recall").result.note, "kept")
  advance(2)
  assert_eq(fire("recall").result, {})
end)

test("each test starts from an empty store", function()
  assert_eq(fire("recall").result, {})
  assert_eq(sent(), {})
end)

test("inbound runs sms.on_inbound; the reply goes to the sender with reply_to", function()
  local r = inbound{ from = "+84912000111", to = "8100", text = "hi there", provider = "backup" }
  assert_true(r.handled)
  assert_eq(r.status, 202)
  assert_eq(#r.ids, 1)
  local m = message(r.ids[1])
  assert_eq(m.to, "+84912000111")
  assert_eq(m.text, "You said: hi there")
  assert_eq(m.reply_to, r.id)
  assert_eq(m.provider, "backup", "a reply goes through the provider that received the message")
  assert_eq(sent()[1].text, "You said: hi there")
end)

test("inbound HELP: sms.reply renders a template", function()
  local r = inbound{ from = "+84912000111", text = "help" }
  assert_eq(message(r.ids[1]).text, "Hello friend!")
end)

test("inbound: sms.reply refuses what sms.send refuses, with the same errors", function()
  local r = inbound{ from = "+84912000111", text = "refused" }
  local out = r.result
  assert_eq(out.bytes_id, nil)
  assert_eq(out.bytes_err, out.send_bytes_err, "a text that is not UTF-8")
  assert_match(out.bytes_err, "^invalid_text: ")
  assert_eq(out.to_id, nil)
  assert_eq(out.to_err, out.send_to_err, "a sender that is no number")
  assert_match(out.to_err, "^invalid_phone: ")
  assert_eq(#r.ids, 0)
end)

test("inbound STOP: opted out, later sends are rejected", function()
  local r = inbound{ from = "0912000111", text = " Stop please" }
  assert_eq(r.result, "unsubscribed")
  assert_true(is_optout("+84912000111"))
  assert_eq(is_optout(PHONE), false)
  local id = send{ to = "+84912000111", text = "promo" }
  assert_eq(message(id).status, "rejected")
  assert_match(message(id).error, "opted out")
  assert_eq(#sent(), 0)
end)

test("the clock stands still but for advance()", function()
  local t0 = now()
  send{ to = PHONE, text = "x" }
  assert_eq(now(), t0)
  advance(3600)
  assert_eq(now() - t0, 3600)
  advance(0.25)
  assert_eq(now() - t0, 3600.25)
end)

test("os.time() and os.date() in rules read the virtual clock", function()
  local a = fire("clock").result
  assert_eq(a.time, math.floor(a.now), "os.time() is sms.now() in whole seconds")
  advance(3 * 3600)
  local b = fire("clock").result
  assert_eq(b.time - a.time, 3 * 3600, "os.time() moved with advance()")
  assert_eq(b.date, os.date("!%Y-%m-%d %H:%M", b.time), "os.date() without a time reads the same clock")
end)

test("load_rules inside a test starts it over", function()
  send{ to = PHONE, text = "x" }
  assert_eq(#sent(), 1)
  local again = load_rules("runner_rules.lua")
  assert_eq(again.path, rules.path)
  assert_eq(sent(), {})
end)

test("assertions compare deeply and report where they failed", function()
  assert_eq({ a = 1, b = { 1, 2 } }, { b = { 1, 2 }, a = 1 })
  assert_eq(1, 1.0)
  assert_true(0)
  assert_match("order 42", "%d+")
  local ok, err = pcall(function() assert_eq({ 1, 2 }, { 1, 3 }, "lists") end)
  assert_eq(ok, false)
  assert_match(err, "^tests/lua/runner_test%.lua:%d+: lists: expected {1, 3}, got {1, 2}$")
  ok, err = pcall(function() assert_true(nil) end)
  assert_match(err, "runner_test%.lua:%d+: expected a true value, got nil$")
  ok, err = pcall(function() assert_match("abc", "^b", "pattern") end)
  assert_match(err, 'pattern: "abc" does not match "%^b"$')
end)

test("helpers name what is wrong", function()
  local ok, err = pcall(provider, "nope")
  assert_match(err, "no provider 'nope'")
  ok, err = pcall(inbound, { text = "no sender" })
  assert_match(err, "'from' must be a string")
  ok, err = pcall(function() provider("primary"):outcomes{ "explode" } end)
  assert_match(err, "entry 1 is not an outcome")
end)
