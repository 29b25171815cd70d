-- Strategy 1 of the strategy lab: static priority. Every message goes to
-- "premium" first; "budget" only takes what premium refuses at send time
-- (an error about the provider, attempts exhausted, an open circuit).
-- Nothing reacts to delivery reports: an undelivered message stays so.
--
-- Compare it with the others (see README.md beside this file):
--   smsrules simulate --models models.json --traffic traffic.json \
--     static.lua cheapest.lua adaptive.lua
-- Outside the simulator the providers talk to `smsrules mock-provider`
-- (127.0.0.1:9090); the simulator replaces them with the models' providers
-- of the same names.

sms.config{
  api_keys = { sms.env("SMSRULES_DEMO_KEY") or "demo-key" },
  default_country = "84",
}

local MOCK = sms.env("MOCK_URL") or "http://127.0.0.1:9090/send"
sms.provider("premium", { adapter = "mock", url = MOCK, cost = 0.045, max_attempts = 3 })
sms.provider("budget", { adapter = "mock", url = MOCK, cost = 0.018, max_attempts = 3 })

sms.route(function(msg)
  return { "premium", "budget" }
end)
