-- Tests of the fallback rules (rules.lua beside this file), offline:
--   smsrules test examples/fallback/rules_test.lua
-- The three providers are simulated; each test starts from an empty store.
-- provider(name):unauthorized() / :fail(503) / :reject(reason) script the
-- next answers of one provider; with nothing scripted it accepts.
-- dlr(id, status) delivers a report for a sent message, like the provider's
-- status webhook; provider(name):dlr(status) gives one to each message the
-- provider accepts.

local VN = "+84912345678"   -- +84: budget, standard, premium
local RU = "+79161234567"   -- +7: standard, premium, budget
local KZ = "+77011234567"   -- +77 (longest prefix): budget, standard
local US = "+12125550123"   -- +1: premium, standard
local UK = "+447700900123"  -- no row: by each provider's cost: standard, budget, premium

local function providers_of(list)
  local out = {}
  for i, s in ipairs(list) do out[i] = s.provider end
  return out
end

local function field(list, name)
  local out = {}
  for i, s in ipairs(list) do out[i] = s[name] end
  return out
end

test("cheapest provider first, by the destination's prefix", function()
  local cases = {
    { VN, { "budget", "standard", "premium" } },
    { "0912345678", { "budget", "standard", "premium" } }, -- national: +84
    { RU, { "standard", "premium", "budget" } },
    { KZ, { "budget", "standard" } },                      -- +77 beats +7; premium does not serve it
    { US, { "premium", "standard" } },                     -- budget does not serve +1
    { UK, { "standard", "budget", "premium" } },           -- no row: the providers' `cost`
  }
  for i, c in ipairs(cases) do
    local id = assert(send{ to = c[1], text = "Your code is 1234" })
    local m = message(id)
    assert_eq(m.route, c[2], c[1])
    assert_eq(m.status, "sent", c[1])
    assert_eq(m.provider, c[2][1], c[1])
    assert_eq(sent()[i].provider, c[2][1], c[1])
  end
  assert_eq(#sent(), #cases, "one attempt each: nothing fell back")
end)

test("unauthorized primary: sent by the backup at once, both attempts on the message", function()
  provider("budget"):unauthorized()
  local id = send{ to = VN, text = "Your order shipped" }
  local m = message(id)
  assert_eq(m.status, "sent")
  assert_eq(m.provider, "standard")
  assert_eq(#m.attempts, 2)
  assert_eq(field(m.attempts, "provider"), { "budget", "standard" })
  assert_eq(field(m.attempts, "http_status"), { 401, 200 })
  assert_eq(field(m.attempts, "outcome"), { "failed", "sent" })
  assert_match(m.attempts[1].error, "401")
  assert_eq(providers_of(sent()), { "budget", "standard" })
  assert_eq(field(sent(), "outcome"), { "unauthorized", "accepted" })
end)

test("a transient 503 is retried on the same provider, not passed on", function()
  provider("budget"):fail(503):fail(503)
  local id = send{ to = VN, text = "x" }
  advance(30)
  local m = message(id)
  assert_eq(m.status, "sent")
  assert_eq(m.provider, "budget")
  assert_eq(field(m.attempts, "provider"), { "budget", "budget", "budget" })
  assert_eq(field(m.attempts, "http_status"), { 503, 503, 200 })
end)

test("primary failing max_attempts times: the backup takes it", function()
  provider("budget"):fail(503):fail(503):fail(503)
  local id = send{ to = VN, text = "x" }
  advance(30)
  local m = message(id)
  assert_eq(m.status, "sent")
  assert_eq(m.provider, "standard")
  assert_eq(field(m.attempts, "provider"), { "budget", "budget", "budget", "standard" })
  assert_eq(field(m.attempts, "http_status"), { 503, 503, 503, 200 })
  assert_match(m.attempts[3].error, "attempts on budget exhausted")
  assert_eq(providers_of(sent()), { "budget", "budget", "budget", "standard" })
end)

test("a message-level reject (invalid number) does not fall back: the message fails", function()
  provider("budget"):reject("invalid number")
  local id = send{ to = VN, text = "x" }
  advance(60)
  local m = message(id)
  assert_eq(m.status, "failed")
  assert_match(m.error, "invalid number")
  assert_eq(#m.attempts, 1)
  assert_eq(m.attempts[1].provider, "budget")
  assert_eq(m.attempts[1].outcome, "rejected")
  assert_eq(providers_of(sent()), { "budget" }, "standard and premium never saw it")
end)

test("every provider of the route refusing: the message fails", function()
  provider("budget"):unauthorized()
  provider("standard"):unauthorized()
  local id = send{ to = KZ, text = "x" }
  local m = message(id)
  assert_eq(m.status, "failed")
  assert_eq(field(m.attempts, "provider"), { "budget", "standard" })
  assert_eq(providers_of(sent()), { "budget", "standard" }, "premium does not serve +77")
end)

test("tags.route picks a named route over the price", function()
  local id = send{ to = VN, text = "Your code is 1234", tags = { route = "premium" } }
  local m = message(id)
  assert_eq(m.route, { "premium", "standard" })
  assert_eq(m.provider, "premium")
  assert_eq(m.status, "sent")
  -- The named route's own fallback: standard, never the cheaper budget.
  provider("premium"):unauthorized()
  id = send{ to = VN, text = "Your code is 5678", tags = { route = "premium" } }
  assert_eq(message(id).provider, "standard")
  assert_eq(providers_of(sent()), { "premium", "premium", "standard" })
  -- Another named route, and a name the rules do not know (routed by price).
  assert_eq(message(send{ to = RU, text = "bulk", tags = { route = "budget_only" } }).route, { "budget" })
  assert_eq(message(send{ to = RU, text = "typo", tags = { route = "premuim" } }).route,
    { "standard", "premium", "budget" })
end)

test("an explicit route on the message wins over sms.route", function()
  local id = send{ to = VN, text = "x", route = { "premium" } }
  assert_eq(message(id).route, { "premium" })
  assert_eq(message(id).provider, "premium")
end)

test("an undelivered report sends the message on to the next provider", function()
  provider("budget"):dlr("undelivered", { error = "absent subscriber" })
  provider("standard"):dlr("delivered")
  local id = send{ to = VN, text = "Your order shipped" }
  local m = message(id)
  assert_eq(m.status, "delivered")
  assert_eq(m.provider, "standard")
  assert_eq(field(m.attempts, "provider"), { "budget", "standard" })
  assert_eq(field(m.attempts, "report"), { "undelivered", "delivered" })
  assert_eq(providers_of(sent()), { "budget", "standard" })
  -- A delivered report keeps it where it is.
  provider("budget"):dlr("delivered")
  id = send{ to = VN, text = "Your order shipped" }
  assert_eq(message(id).status, "delivered")
  assert_eq(message(id).provider, "budget")
  -- The last provider of the route: its undelivered is the message's outcome.
  provider("premium"):dlr("undelivered", { error = "blocked" })
  provider("standard"):dlr("undelivered")
  id = send{ to = US, text = "Your order shipped" }
  m = message(id)
  assert_eq(m.status, "undelivered")
  assert_eq(field(m.attempts, "provider"), { "premium", "standard" })
end)
