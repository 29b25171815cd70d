-- Strategy 2 of the strategy lab: cheapest first, with a report deadline.
-- "budget" (0.018 a segment) takes every message; the route falls back to
-- "premium" (0.045) when budget's report says undelivered or expired, or
-- when no final report came 30 s after budget accepted the message
-- (dlr_timeout). The price of the deadline: a budget report that was only
-- late turns into a second send, and a late `delivered` after premium already
-- sent is a double delivery (the "double-delivery risk" row of the table).
--
-- Compare it with the others (see README.md beside this file):
--   smsrules simulate --models models.json --traffic traffic.json \
--     static.lua cheapest.lua adaptive.lua

sms.config{
  api_keys = { sms.env("SMSRULES_DEMO_KEY") or "demo-key" },
  default_country = "84",
}

local MOCK = sms.env("MOCK_URL") or "http://127.0.0.1:9090/send"
sms.provider("premium", { adapter = "mock", url = MOCK, cost = 0.045, max_attempts = 3 })
sms.provider("budget", { adapter = "mock", url = MOCK, cost = 0.018, max_attempts = 3 })

sms.route(function(msg)
  return { "budget", "premium", fallback_on = { "undelivered", "expired" }, dlr_timeout = 30 }
end)
