-- Tests of the quickstart rules (rules.lua beside this file), offline:
--   smsrules test examples/quickstart/rules_test.lua
-- The mock provider is simulated here; each test starts from an empty store.

test("order.created renders the template and the provider receives the exact text", function()
  local r = fire("order.created", { phone = "0912345678", order = { number = 42, total = "12.50" } })
  assert_eq(r.status, 202)
  assert_eq(#r.ids, 1)
  local out = sent()
  assert_eq(#out, 1)
  assert_eq(out[1].to, "+84912345678")
  assert_eq(out[1].provider, "mock")
  assert_eq(out[1].text, "Order #42 confirmed. Total 12.50. Thank you for shopping with us!")
  assert_eq(message(r.ids[1]).status, "sent")
end)

test("the same order twice sends one message", function()
  local ev = { phone = "0912345678", order = { number = 7, total = "3.00" } }
  local first = fire("order.created", ev)
  local again = fire("order.created", ev)
  assert_eq(again.ids, first.ids)
  assert_eq(#sent(), 1)
end)

test("an order without a total is a rule error naming the variable; nothing is sent", function()
  local r = fire("order.created", { phone = "0912345678", order = { number = 8 } })
  assert_eq(r.status, 500)
  assert_eq(r.error.code, "rule_error")
  assert_match(r.error.message, "missing variable 'order.total'")
  assert_eq(#sent(), 0)
end)

test("inbound STOP opts the number out; a later send to it is rejected", function()
  local stop = inbound{ from = "+84912000111", to = "8100", text = "stop", provider = "mock" }
  assert_true(is_optout("+84912000111"))
  -- The confirmation is a reply: it still reaches the number that just opted out.
  local confirmation = message(stop.ids[1])
  assert_eq(confirmation.status, "sent")
  assert_eq(confirmation.reply_to, stop.id)
  assert_match(confirmation.text, "^You are unsubscribed")
  local r = fire("order.created", { phone = "+84912000111", order = { number = 43, total = "9.90" } })
  assert_eq(message(r.ids[1]).status, "rejected")
  assert_match(message(r.ids[1]).error, "opted out")
  for _, m in ipairs(sent()) do
    assert_true(m.text:find("^Order") == nil, "no order message reached the provider")
  end
  assert_eq(#sent(), 1, "only the confirmation was sent")
end)

test("START after STOP subscribes again", function()
  inbound{ from = "+84912000111", text = "STOP" }
  inbound{ from = "+84912000111", text = "  start" }
  assert_eq(is_optout("+84912000111"), false)
  local r = fire("order.created", { phone = "+84912000111", order = { number = 44, total = "1.00" } })
  assert_eq(message(r.ids[1]).status, "sent")
end)

test("HELP gets a reply to the sender", function()
  local r = inbound{ from = "+84912000222", to = "8100", text = "Help", provider = "mock" }
  assert_eq(#r.ids, 1)
  local reply = message(r.ids[1])
  assert_eq(reply.to, "+84912000222")
  assert_eq(reply.text, "MyShop order updates. Reply STOP to unsubscribe, START to subscribe again.")
  assert_eq(reply.reply_to, r.id)
  assert_eq(reply.status, "sent")
  assert_eq(sent()[1].text, reply.text)
end)

test("other inbound text gets no reply", function()
  local r = inbound{ from = "+84912000222", text = "thanks!" }
  assert_true(r.handled)
  assert_eq(r.ids, {})
  assert_eq(#sent(), 0)
end)
