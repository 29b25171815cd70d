-- Strategy 3 of the strategy lab: adaptive. Like cheapest.lua (budget first,
-- premium behind it on a bad or missing report), until budget's live delivery
-- ratio to the message's country over the last 15 minutes drops below
-- premium's by more than the price difference is worth: then premium goes
-- first until budget recovers. The figures come from `sms.stats(provider,
-- country)` (docs/delivery.md, "Route quality"), which the engine keeps from its
-- own attempts and reports, in the daemon and in the simulator alike.
--
-- Where sms.stats is missing (an engine older than it) or a provider has too
-- few reports in the window to judge, the route is the static cheapest-first
-- one: the strategy never routes on noise.
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

-- Reports a provider needs in the window before its ratio is trusted.
local MIN_REPORTS = 50
-- How much better premium must deliver before it goes first: at 0.045
-- against 0.018 a segment, a few points of delivery are not worth 2.5 times
-- the price; a budget outage (its ratio falling towards 0) is.
local MARGIN = 0.10

-- The 15-minute delivery ratio of provider to country, or nil when unknown.
local function delivered_ratio(provider, country)
  if type(sms.stats) ~= "function" then return nil end
  local stats = sms.stats(provider, country)
  local window = stats and stats["15m"]
  if not window or window.delivered_ratio == nil then return nil end
  local reports = (window.delivered or 0) + (window.undelivered or 0) + (window.expired or 0)
    + (window.rejected or 0)
  if reports < MIN_REPORTS then return nil end
  return window.delivered_ratio
end

local CHEAPEST = { "budget", "premium", fallback_on = { "undelivered", "expired" }, dlr_timeout = 30 }
local SAFEST = { "premium", "budget", fallback_on = { "undelivered", "expired" }, dlr_timeout = 30 }

sms.route(function(msg)
  local phone = sms.phone(msg.to)
  local country = phone and tostring(phone.calling_code) or nil
  local budget = delivered_ratio("budget", country)
  local premium = delivered_ratio("premium", country)
  if budget and premium and premium - budget > MARGIN then return SAFEST end
  return CHEAPEST
end)
