-- Rules for stats_test.lua: sms.stats in routes and handlers, and an
-- adaptive route that leaves the cheap provider when it stops delivering.
-- The URLs are never used: `smsrules test` simulates the providers.
sms.config{ default_country = "84", retry_base_ms = 1000, retry_cap_ms = 1000 }

sms.provider("budget", { adapter = "mock", url = "http://127.0.0.1:9/send", cost = 0.02, max_attempts = 2,
                         timeout_ms = 5000 })
sms.provider("premium", { adapter = "mock", url = "http://127.0.0.1:9/send", cost = 0.05 })

-- The cheap provider while it delivers; the premium one first once budget's
-- delivered share over the last 15 minutes, for this country, falls below
-- 80% (judged on 10 final reports at least).
local function budget_delivers(country)
  local s = sms.stats("budget", country)["15m"]
  local reports = s.delivered + s.undelivered + s.expired + s.rejected
  return reports < 10 or s.delivered_ratio >= 0.8
end

sms.route(function(msg)
  if msg.tags and msg.tags.route == "budget" then return { "budget" } end
  local country = tostring(sms.phone(msg.to).calling_code)
  if budget_delivers(country) then return { "budget", "premium" } end
  return { "premium", "budget" }
end)

-- What a test reads: sms.stats as the rules see it.
sms.on("stats", function(ev) return sms.stats(ev.provider, ev.country) end)
sms.on("bad_stats", function(ev) return sms.stats(ev.provider, ev.country) end)
