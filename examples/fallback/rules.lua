-- Fallback and least-cost routing: three providers, a price table per
-- destination prefix, the cheapest provider first and the others behind it
-- as fallbacks, and named routes a message can ask for with a tag.
-- Tested offline by rules_test.lua beside it:
--   smsrules test examples/fallback/rules_test.lua
-- Run it next to `smsrules mock-provider` (127.0.0.1:9090); see docs/cli.md.
--
-- What the engine does with a route (docs/delivery.md): the message goes to
-- the first provider; a retryable failure (429, 5xx, timeout) is retried there
-- with backoff up to the provider's max_attempts; a permanent error about the
-- provider (401, 403, billing), attempts exhausted or an open circuit passes
-- it to the next provider of the route; a permanent error about the message
-- (invalid number) fails it at once, without trying the others. After the
-- send, a delivery report saying "undelivered" (the route's fallback_on,
-- docs/delivery.md, "Delivery reports") passes it to the next provider too.

sms.config{
  listen = "127.0.0.1:8080",
  data = "./data",
  api_keys = { sms.env("SMSRULES_DEMO_KEY") or "demo-key" },
  default_country = "84",
}

-- The providers, in declaration order (the tie-break between equal prices).
-- `cost` is the price per segment where the price table has no row for the
-- destination. All three are the mock adapter: by default they all talk to
-- one `smsrules mock-provider`; point one elsewhere with BUDGET_URL,
-- STANDARD_URL or PREMIUM_URL to watch it fail on its own.
local MOCK = "http://127.0.0.1:9090/send"
local PROVIDERS = {
  { name = "budget", cost = 0.050, max_attempts = 3, url = sms.env("BUDGET_URL") },
  { name = "standard", cost = 0.040, max_attempts = 3, url = sms.env("STANDARD_URL") },
  { name = "premium", cost = 0.060, max_attempts = 3, url = sms.env("PREMIUM_URL") },
}
for _, p in ipairs(PROVIDERS) do
  sms.provider(p.name, { adapter = "mock", url = p.url or MOCK, sender = "MyShop",
                         cost = p.cost, max_attempts = p.max_attempts, rate = 50, burst = 10 })
end

-- Price per segment by destination prefix (E.164); the longest prefix wins.
-- A provider missing from a row does not serve that destination and is never
-- tried for it. A number matching no row: every provider, at its `cost`.
local PRICES = {
  ["+84"] = { budget = 0.018, standard = 0.032, premium = 0.055 }, -- Vietnam
  ["+7"] = { budget = 0.090, standard = 0.041, premium = 0.065 },  -- Russia
  ["+77"] = { budget = 0.025, standard = 0.060 },                  -- Kazakhstan
  ["+1"] = { standard = 0.009, premium = 0.007 },                  -- USA, Canada
}

-- Named routes: a message tagged route=NAME takes this route whatever it
-- costs (`"tags": {"route": "premium"}`). Its own fallbacks follow it.
local ROUTES = {
  premium = { "premium", "standard" },   -- direct operator connections, e.g. for one-time codes
  budget_only = { "budget" },            -- bulk where a failure is acceptable
}

-- The price row of an E.164 number: the longest prefix in PRICES, else nil.
local function price_row(number)
  for len = #number, 2, -1 do
    local row = PRICES[number:sub(1, len)]
    if row then return row end
  end
  return nil
end

-- The providers serving `number`, cheapest first (ties: declaration order).
local function cheapest_first(number)
  local row = price_row(number)
  local offers = {}
  for i, p in ipairs(PROVIDERS) do
    local price
    if row then price = row[p.name] else price = p.cost end
    if price then offers[#offers + 1] = { name = p.name, price = price, order = i } end
  end
  table.sort(offers, function(a, b)
    if a.price ~= b.price then return a.price < b.price end
    return a.order < b.order
  end)
  local route = {}
  for i, o in ipairs(offers) do route[i] = o.name end
  return route
end

-- Delivery-driven fallback: a report that the provider could not deliver
-- the message (absent subscriber, blocked by the operator, ...) sends it on
-- to the next provider of its route; a delivered report, or no report at all,
-- keeps it where it is. (No dlr_timeout here: a provider that sends no
-- reports, like the mock, would then pass every message on.)
local FALLBACK_ON = { "undelivered" }

-- The route table sms.route returns: the provider names in order, and when
-- to fall back on the delivery outcome. A fresh table: ROUTES stays as is.
local function route_of(providers)
  local route = { fallback_on = FALLBACK_ON }
  for i, name in ipairs(providers) do route[i] = name end
  return route
end

-- Called once per message, when the scheduler first takes it (the route is
-- then kept on the message; a message sent with its own `route` field skips
-- this, fallback_on included). msg.to is E.164, msg.tags the message's tags.
sms.route(function(msg)
  local name = msg.tags and msg.tags.route
  if name then
    local named = ROUTES[name]
    if named then return route_of(named) end
    sms.log.warn("unknown route tag, routing by price", { route = name, id = msg.id })
  end
  return route_of(cheapest_first(msg.to))
end)
