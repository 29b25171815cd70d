-- Order notifications: a shop's backend fires one event per step of an order
-- (created, shipped, delivered) and a marketing event (promo); these rules
-- render the texts, send each order step once however often the event
-- arrives, and keep marketing out of the night in the recipient's time zone.
-- Tested offline by rules_test.lua beside it:
--   smsrules test examples/order-notifications/rules_test.lua
-- Run it next to `smsrules mock-provider` (127.0.0.1:9090); see docs/cli.md.

local DEFAULT_COUNTRY = "84" -- national numbers ("0912...") are Vietnamese

sms.config{
  listen = "127.0.0.1:8080",
  data = "./data",
  api_keys = { sms.env("SMSRULES_DEMO_KEY") or "demo-key" },
  default_country = DEFAULT_COUNTRY,
}

sms.provider("mock", { adapter = "mock", url = sms.env("MOCK_URL") or "http://127.0.0.1:9090/send",
                       sender = "MyShop", rate = 50, burst = 10 })

---------------------------------------------------------------------------
-- Time zones and quiet hours (edit these two tables)
---------------------------------------------------------------------------

-- Where the recipient is comes from the number: sms.phone gives the time
-- zones of its area from libphonenumber's data ("+1 206..." is
-- America/Los_Angeles, "+84..." Asia/Bangkok). A number of a country that
-- spans zones without an area in the number (a Russian mobile, a
-- Kazakh one) gets all of them: COUNTRY_ZONES picks the one to use.
local COUNTRY_ZONES = {
  RU = "Europe/Moscow",
  KZ = "Asia/Almaty",
  US = "America/New_York",
  CA = "America/Toronto",
}

-- The UTC offset in hours of the zones you send to; any other zone is at
-- DEFAULT_UTC_OFFSET. Offsets are fixed (no daylight saving time): pick the
-- one that suits you.
local UTC_OFFSETS = {
  ["Asia/Bangkok"] = 7,          -- Vietnam (libphonenumber's zone for +84)
  ["Asia/Ho_Chi_Minh"] = 7,
  ["Europe/Moscow"] = 3,
  ["Asia/Almaty"] = 5,
  ["America/New_York"] = -5,
  ["America/Toronto"] = -5,
  ["America/Chicago"] = -6,
  ["America/Denver"] = -7,
  ["America/Los_Angeles"] = -8,
  ["Pacific/Honolulu"] = -10,
  ["Asia/Calcutta"] = 5.5,       -- India (libphonenumber's name for Asia/Kolkata)
  ["Europe/London"] = 0,
}
local DEFAULT_UTC_OFFSET = 0

-- Marketing goes out only from `open` (inclusive) to `close` (exclusive),
-- in whole hours of the recipient's local time. A marketing message asked
-- for outside that window is scheduled (send_at) for the next `open`.
local MARKETING_HOURS = { open = 8, close = 21 }

-- How long a campaign is remembered per number (one promo per campaign).
local CAMPAIGN_MEMORY_S = 30 * 86400

---------------------------------------------------------------------------

-- The recipient's zone: the only zone of the number's area, else its
-- country's entry in COUNTRY_ZONES, else the first of its zones.
local function recipient_zone(info)
  local zones = info.time_zones or {}
  if #zones == 1 then return zones[1] end
  return COUNTRY_ZONES[info.country or ""] or zones[1]
end

-- The UTC offset (hours) of a number read by sms.phone.
local function utc_offset(info)
  return UTC_OFFSETS[recipient_zone(info) or ""] or DEFAULT_UTC_OFFSET
end

-- "+07:00", "-05:00", "+05:30"
local function offset_string(hours)
  local minutes = math.floor(math.abs(hours) * 60 + 0.5)
  return string.format("%s%02d:%02d", hours < 0 and "-" or "+", minutes // 60, minutes % 60)
end

-- When a marketing message to the number (read by sms.phone) may go, seen at
-- time t (seconds since the epoch, from sms.now()): nil for now, else the
-- next opening as RFC 3339 in the recipient's own offset
-- ("2026-11-24T08:00:00+07:00"). Also returns the offset string.
local function marketing_send_at(info, t)
  local hours = utc_offset(info)
  local zone = offset_string(hours)
  local local_t = math.floor(t) + math.floor(hours * 3600 + 0.5) -- local wall time, as if it were UTC
  local hour = os.date("!*t", local_t).hour
  if hour >= MARKETING_HOURS.open and hour < MARKETING_HOURS.close then return nil, zone end
  local opening = local_t - local_t % 86400 + MARKETING_HOURS.open * 3600 -- today's opening
  if hour >= MARKETING_HOURS.close then opening = opening + 86400 end   -- late evening: tomorrow's
  return os.date("!%Y-%m-%dT%H:%M:%S", opening) .. zone, zone
end

---------------------------------------------------------------------------
-- Templates: {{path.to.value}} from the event's body; a missing value is an
-- error naming it, never an empty string.
---------------------------------------------------------------------------

sms.template("order_created",
  "MyShop: order #{{order.number}} is confirmed. Total {{order.total}}. We will text you when it ships.")
sms.template("order_shipped",
  "MyShop: order #{{order.number}} has shipped with {{order.carrier}}, arriving {{order.eta}}. Track it: {{order.tracking_url}}")
sms.template("order_delivered",
  "MyShop: order #{{order.number}} was delivered. Enjoy, and thank you for shopping with us!")
sms.template("promo",
  "MyShop {{promo.title}}: {{promo.offer}} with code {{promo.code}} until {{promo.valid_until}}.")

---------------------------------------------------------------------------
-- Order events: transactional, sent at any hour, once per order and event.
--   POST /v1/events/order.shipped
--   {"phone": "+84912345678", "order": {"number": 1001, "carrier": "DHL", "eta": "Fri 28 Nov",
--                                       "tracking_url": "https://track.example.com/1001"}}
-- answers {"ids": [id], "result": id}. The same event again answers the same
-- id and sends nothing more (idempotency key "order-1001-shipped"); the same
-- event with different content is refused (500 rule_error: idempotency_conflict).
-- A refused send (a missing value, a bad number) is a 500 rule_error naming it.
---------------------------------------------------------------------------

local ORDER_EVENTS = {
  { event = "order.created", step = "created", template = "order_created" },
  { event = "order.shipped", step = "shipped", template = "order_shipped" },
  { event = "order.delivered", step = "delivered", template = "order_delivered" },
}

for _, e in ipairs(ORDER_EVENTS) do
  sms.on(e.event, function(ev)
    local number = type(ev.order) == "table" and ev.order.number
    if number == nil or number == "" then error("missing variable 'order.number'") end
    return assert(sms.send{
      to = ev.phone, template = e.template, vars = ev, priority = 2,
      idempotency_key = "order-" .. number .. "-" .. e.step,
      tags = { kind = "transactional", order = tostring(number), step = e.step },
    })
  end)
end

---------------------------------------------------------------------------
-- Marketing: only in the recipient's daytime, once per campaign and number.
--   POST /v1/events/promo
--   {"phone": "+84912345678", "campaign": "black-friday",
--    "promo": {"title": "Black Friday", "offer": "30% off everything", "code": "BF30", "valid_until": "Sunday"}}
-- answers {"result": {"id": ..., "utc_offset": "+07:00", "send_at": "2026-11-24T08:00:00+07:00"}}
-- (no send_at: it goes now; "duplicate": true: that campaign already went
-- to that number, the id is the first message's).
---------------------------------------------------------------------------

sms.on("promo", function(ev)
  if type(ev.campaign) ~= "string" or ev.campaign == "" then error("missing variable 'campaign'") end
  if ev.phone == nil then error("missing variable 'phone'") end
  -- The number as the engine reads it (default_country for national forms);
  -- one it cannot send to is refused by sms.send below, which says why.
  local info = sms.phone(tostring(ev.phone)) or { e164 = tostring(ev.phone) }
  local seen_key = "promo:" .. ev.campaign .. ":" .. info.e164
  local seen = sms.kv.get(seen_key)
  if seen then return { id = seen, duplicate = true } end
  local send_at, zone = marketing_send_at(info, sms.now())
  local id = assert(sms.send{
    to = ev.phone, template = "promo", vars = ev, send_at = send_at,
    idempotency_key = seen_key,
    tags = { kind = "marketing", campaign = ev.campaign },
  })
  sms.kv.set(seen_key, id, CAMPAIGN_MEMORY_S)
  return { id = id, utc_offset = zone, send_at = send_at }
end)
