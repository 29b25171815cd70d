-- sms.stats in `smsrules test`: the figures the engine collects from real
-- sends (scripted provider outcomes, delivery reports) on the virtual clock,
-- and an adaptive route on them. Rules: stats.lua.
local VN = "+84912345678"
local RU = "+79161234567"

local function stats(provider, country)
  local r = fire("stats", { provider = provider, country = country })
  assert_eq(r.status, 200, r.error and r.error.message)
  return r.result
end

local function near(actual, expected, rel, what)
  assert_true(actual and math.abs(actual - expected) <= rel * expected,
              string.format("%s: %s, expected %s within %g%%", what, tostring(actual), expected, rel * 100))
end

test("attempts, errors by class, reports, pending and cost, per country", function()
  provider("budget"):outcomes{ "accept", { "fail", 503 }, "accept", { "reject", "invalid number" }, "timeout",
                               "accept" }
  local a = send{ to = VN, text = "one", tags = { route = "budget" } }   -- accepted
  local b = send{ to = VN, text = "two", tags = { route = "budget" } }   -- 503, then accepted on retry
  advance(2)
  local c = send{ to = VN, text = "three", tags = { route = "budget" } } -- rejected (about the message)
  local d = send{ to = RU, text = "four", tags = { route = "budget" } }  -- no answer, then accepted
  advance(6)
  assert_eq(message(a).status, "sent")
  assert_eq(message(b).status, "sent")
  assert_eq(message(c).status, "failed")
  assert_eq(message(d).status, "sent")
  dlr(a, "delivered")
  advance(10)
  dlr(b, "undelivered")

  local vn = stats("budget", "84")["1m"]
  assert_eq(vn.attempts, 4)
  assert_eq(vn.accepted, 2)
  assert_eq(vn.errors, { retryable = 1, permanent_message = 1, permanent_provider = 0, timeout = 0 })
  assert_eq(vn.delivered, 1)
  assert_eq(vn.undelivered, 1)
  assert_eq(vn.pending, 0)
  assert_eq(vn.delivered_ratio, 0.5)
  near(vn.cost_total, 0.04, 1e-9, "cost_total")
  near(vn.cost_per_delivered, 0.04, 1e-9, "cost_per_delivered")

  local ru = stats("budget", "+7")["1m"]
  assert_eq(ru.attempts, 2)
  assert_eq(ru.errors.timeout, 1)
  assert_eq(ru.accepted, 1)
  assert_eq(ru.pending, 1, "accepted, no final report yet")
  assert_eq(ru.delivered_ratio, nil, "no final report: not measured")
  assert_eq(ru.cost_per_delivered, nil)
  assert_eq(ru.report_latency_ms, {}, "no latency measured")

  local all = stats("budget")["15m"]
  assert_eq(all.attempts, 6)
  assert_eq(all.pending, 1)
  assert_eq(stats("premium")["24h"].attempts, 0)
end)

test("latencies: the send's answer time and sent -> final report", function()
  provider("budget"):delay(2)
  local id = send{ to = VN, text = "slow", tags = { route = "budget" } }
  advance(3)
  assert_eq(message(id).status, "sent")
  advance(30)
  dlr(id, "delivered")
  local s = stats("budget", "84")["1m"]
  near(s.send_latency_ms.p50, 2000, 0.13, "send p50")
  near(s.report_latency_ms.p95, 30000, 0.13, "report p95")
end)

test("windows slide on the virtual clock", function()
  provider("budget"):dlr("delivered")
  send{ to = VN, text = "x", tags = { route = "budget" } }
  local s = stats("budget", "84")
  assert_eq(s["1m"].delivered, 1)
  advance(61)
  s = stats("budget", "84")
  assert_eq(s["1m"].attempts, 0, "out of the last minute")
  assert_eq(s["1m"].delivered, 0)
  assert_eq(s["15m"].attempts, 1)
  advance(15 * 60)
  s = stats("budget", "84")
  assert_eq(s["15m"].attempts, 0)
  assert_eq(s["1h"].delivered, 1)
  assert_eq(s["24h"].delivered_ratio, 1)
end)

test("an adaptive route leaves the provider whose delivered ratio dropped, per country", function()
  provider("budget"):dlr("delivered")
  for i = 1, 10 do send{ to = VN, text = "ok " .. i } end
  assert_eq(sent()[10].provider, "budget")
  -- budget stops delivering to Vietnam.
  provider("budget"):dlr("undelivered")
  for i = 1, 3 do send{ to = VN, text = "bad " .. i } end
  assert_eq(sent()[13].provider, "budget")
  near(stats("budget", "84")["15m"].delivered_ratio, 10 / 13, 1e-9, "delivered_ratio")
  send{ to = VN, text = "now" }
  assert_eq(sent()[#sent()].provider, "premium", "below 80%: premium first")
  -- Russia has no reports from budget yet: still the cheap one.
  send{ to = RU, text = "ru" }
  assert_eq(sent()[#sent()].provider, "budget")
  -- A quarter of an hour later the bad reports have left the window: budget again.
  advance(16 * 60)
  send{ to = VN, text = "later" }
  assert_eq(sent()[#sent()].provider, "budget")
end)

test("sms.stats refuses an unknown provider and a bad country", function()
  local r = fire("bad_stats", { provider = "nobody" })
  assert_eq(r.status, 500)
  assert_match(r.error.message, "stats.lua:%d+: .*unknown provider 'nobody'")
  r = fire("bad_stats", { provider = "budget", country = "Vietnam" })
  assert_match(r.error.message, "country calling code")
end)
