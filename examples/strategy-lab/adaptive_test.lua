-- Tests of adaptive.lua beside this file, offline:
--   smsrules test examples/strategy-lab/adaptive_test.lua
-- Each test starts from an empty engine: no live figures yet, so the route is
-- the static cheapest-first one whatever sms.stats would say later.

local VN = "+84912345678"

test("without live figures: budget first, premium behind it", function()
  local id = assert(send{ to = VN, text = "Your code is 1234" })
  local m = message(id)
  assert_eq(m.route, { "budget", "premium" })
  assert_eq(sent()[1].provider, "budget")
end)

test("an undelivered report from budget sends it on to premium", function()
  provider("budget"):dlr("undelivered")
  provider("premium"):dlr("delivered")
  local id = assert(send{ to = VN, text = "Your code is 1234" })
  local m = message(id)
  assert_eq(m.status, "delivered")
  assert_eq(m.provider, "premium")
  assert_eq(#m.attempts, 2)
end)

test("no report within 30 s: premium sends it", function()
  local id = assert(send{ to = VN, text = "Your code is 1234" })
  assert_eq(message(id).provider, "budget")
  advance(31)
  local m = message(id)
  assert_eq(m.provider, "premium")
  assert_eq(#sent(), 2)
end)
