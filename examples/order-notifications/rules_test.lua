-- Tests of the order-notification rules (rules.lua beside this file), offline:
--   smsrules test examples/order-notifications/rules_test.lua
-- The mock provider is simulated; each test starts from an empty store.
--
-- The virtual clock starts at the wall-clock time and only moves with
-- advance(), so each test that cares about the time of day first moves it to
-- a known UTC time with at_utc(). Vietnam (+84) is UTC+7 in the rules' table.

local VN = "+84912345678"

local ORDER = {
  number = 1001,
  total = "1,250,000 VND",
  carrier = "DHL",
  tracking_url = "https://track.example.com/DHL/1001",
  eta = "Fri 28 Nov",
}

local PROMO = { title = "Black Friday", offer = "30% off everything", code = "BF30", valid_until = "Sunday" }
local PROMO_TEXT = "MyShop Black Friday: 30% off everything with code BF30 until Sunday."

local HOUR = 3600

-- Moves the virtual clock forward to the next hh:mm:00 UTC; returns that time.
local function at_utc(hh, mm)
  local t = now()
  local target = t - t % 86400 + hh * HOUR + (mm or 0) * 60
  if target <= t then target = target + 86400 end
  advance(target - t)
  assert_eq(now(), target, "the clock is at the chosen time")
  return target
end

local function utc_string(t) return os.date("!%Y-%m-%dT%H:%M:%S.000Z", t) end

local function order_event(event, phone, fields)
  local order = {}
  for k, v in pairs(ORDER) do order[k] = v end
  for k, v in pairs(fields or {}) do order[k] = v end
  return fire(event, { phone = phone or VN, order = order })
end

local function promo(phone, campaign)
  return fire("promo", { phone = phone, campaign = campaign or "black-friday", promo = PROMO })
end

---------------------------------------------------------------------------
-- Templates
---------------------------------------------------------------------------

test("order.created: the provider receives the exact text", function()
  local r = order_event("order.created")
  assert_eq(r.status, 202)
  assert_eq(#r.ids, 1)
  assert_eq(r.result, r.ids[1])
  assert_eq(#sent(), 1)
  assert_eq(sent()[1].to, VN)
  assert_eq(sent()[1].text, "MyShop: order #1001 is confirmed. Total 1,250,000 VND. We will text you when it ships.")
  assert_eq(message(r.ids[1]).status, "sent")
end)

test("order.shipped: the exact text with carrier, eta and tracking url", function()
  local r = order_event("order.shipped", "0912345678") -- a national number: +84
  assert_eq(r.status, 202)
  assert_eq(#sent(), 1)
  assert_eq(sent()[1].to, VN)
  assert_eq(sent()[1].text,
    "MyShop: order #1001 has shipped with DHL, arriving Fri 28 Nov. Track it: https://track.example.com/DHL/1001")
  assert_eq(message(r.ids[1]).status, "sent")
end)

test("order.delivered: the exact text", function()
  local r = order_event("order.delivered")
  assert_eq(r.status, 202)
  assert_eq(#sent(), 1)
  assert_eq(sent()[1].text, "MyShop: order #1001 was delivered. Enjoy, and thank you for shopping with us!")
end)

test("promo: the exact text", function()
  at_utc(3, 0) -- 10:00 in Vietnam
  local r = promo(VN)
  assert_eq(r.status, 202)
  assert_eq(#sent(), 1)
  assert_eq(sent()[1].text, PROMO_TEXT)
end)

test("a missing variable is a rule error naming it; nothing is sent", function()
  local cases = {
    { "order.created", { total = false }, "order.total" },
    { "order.shipped", { tracking_url = false }, "order.tracking_url" },
    { "order.shipped", { carrier = false }, "order.carrier" },
    { "order.shipped", { eta = false }, "order.eta" },
    { "order.delivered", { number = false }, "order.number" },
  }
  for _, c in ipairs(cases) do
    local order = {}
    for k, v in pairs(ORDER) do if c[2][k] == nil then order[k] = v end end
    local r = fire(c[1], { phone = VN, order = order })
    assert_eq(r.status, 500, c[1] .. " without " .. c[3])
    assert_eq(r.error.code, "rule_error")
    assert_match(r.error.message, "missing variable '" .. c[3]:gsub("%.", "%%.") .. "'", c[1])
  end
  at_utc(3, 0)
  local r = fire("promo", { phone = VN, campaign = "bf", promo = { title = "Black Friday", offer = "30% off" } })
  assert_eq(r.status, 500)
  assert_match(r.error.message, "missing variable 'promo%.code'")
  assert_eq(#sent(), 0)
end)

---------------------------------------------------------------------------
-- Idempotency per order and event
---------------------------------------------------------------------------

test("the same event twice sends one message", function()
  local first = order_event("order.shipped")
  local again = order_event("order.shipped")
  assert_eq(again.status, 202)
  assert_eq(again.ids, first.ids)
  assert_eq(#sent(), 1)
  assert_eq(message(first.ids[1]).tags, { kind = "transactional", order = "1001", step = "shipped" })
end)

test("each event of an order, and each order, is its own message", function()
  local created = order_event("order.created")
  local shipped = order_event("order.shipped")
  local delivered = order_event("order.delivered")
  local other = order_event("order.shipped", nil, { number = 1002 })
  local ids = { created.ids[1], shipped.ids[1], delivered.ids[1], other.ids[1] }
  for i = 1, 4 do
    for j = i + 1, 4 do assert_true(ids[i] ~= ids[j], "distinct messages") end
  end
  order_event("order.created")
  order_event("order.delivered")
  assert_eq(#sent(), 4)
  assert_match(sent()[4].text, "^MyShop: order #1002 has shipped")
end)

test("the same event with different content is refused, not sent twice", function()
  order_event("order.shipped")
  local r = order_event("order.shipped", nil, { eta = "Mon 1 Dec" })
  assert_eq(r.status, 500)
  assert_match(r.error.message, "idempotency_conflict")
  assert_eq(#sent(), 1)
end)

---------------------------------------------------------------------------
-- Quiet hours
---------------------------------------------------------------------------

test("promo at local night is queued with send_at 08:00 local, sent only after advance() past it", function()
  local t = at_utc(16, 30) -- 23:30 in Vietnam
  local r = promo(VN)
  assert_eq(r.status, 202)
  local opening = t + 8.5 * HOUR -- 08:00 tomorrow in Vietnam = 01:00 UTC
  assert_eq(r.result.utc_offset, "+07:00")
  assert_eq(r.result.send_at, os.date("!%Y-%m-%dT08:00:00+07:00", opening + 7 * HOUR))
  local m = message(r.result.id)
  assert_eq(m.status, "queued")
  assert_eq(m.send_at, utc_string(opening))
  assert_match(m.send_at, "T01:00:00%.000Z$")
  assert_eq(#sent(), 0)
  advance(8.5 * HOUR - 60) -- 07:59 local
  assert_eq(message(r.result.id).status, "queued")
  assert_eq(#sent(), 0)
  advance(120) -- 08:01 local
  assert_eq(message(r.result.id).status, "sent")
  assert_eq(#sent(), 1)
  assert_eq(sent()[1].to, VN)
  assert_eq(sent()[1].text, PROMO_TEXT)
end)

test("promo in the early morning waits for 08:00 the same day", function()
  local t = at_utc(22, 0) -- 05:00 in Vietnam
  local r = promo(VN)
  local opening = t + 3 * HOUR
  assert_eq(r.result.send_at, os.date("!%Y-%m-%dT08:00:00+07:00", opening + 7 * HOUR))
  assert_eq(message(r.result.id).send_at, utc_string(opening))
  advance(3 * HOUR - 1)
  assert_eq(#sent(), 0)
  advance(2)
  assert_eq(message(r.result.id).status, "sent")
end)

test("promo in the day goes at once", function()
  at_utc(5, 15) -- 12:15 in Vietnam
  local r = promo(VN)
  assert_eq(r.status, 202)
  assert_eq(r.result.send_at, nil)
  assert_eq(message(r.result.id).send_at, nil)
  assert_eq(message(r.result.id).status, "sent")
  assert_eq(#sent(), 1)
end)

test("the marketing window is 08:00 to 21:00 local, to the minute", function()
  local t = at_utc(1, 0) -- 08:00 in Vietnam: open
  assert_eq(promo(VN, "c1").result.send_at, nil)
  advance(13 * HOUR - 60) -- 20:59: still open
  assert_eq(promo(VN, "c2").result.send_at, nil)
  advance(60) -- 21:00: closed until 08:00 tomorrow
  assert_eq(promo(VN, "c3").result.send_at, os.date("!%Y-%m-%dT08:00:00+07:00", t + 24 * HOUR + 7 * HOUR))
  advance(11 * HOUR - 60) -- 07:59: still closed, until 08:00 today
  assert_eq(promo(VN, "c4").result.send_at, os.date("!%Y-%m-%dT08:00:00+07:00", t + 24 * HOUR + 7 * HOUR))
  assert_eq(#sent(), 2, "c1 and c2 went at once")
  advance(61)
  assert_eq(#sent(), 4, "c3 and c4 went at 08:00")
end)

test("order messages go out at once at night", function()
  at_utc(19, 30) -- 02:30 in Vietnam
  local ids = {}
  for _, event in ipairs{ "order.created", "order.shipped", "order.delivered" } do
    local r = order_event(event)
    assert_eq(r.status, 202, event)
    ids[#ids + 1] = r.ids[1]
  end
  assert_eq(#sent(), 3)
  for _, id in ipairs(ids) do
    assert_eq(message(id).status, "sent")
    assert_eq(message(id).send_at, nil)
  end
end)

test("the same campaign reaches a number once, even when fired again after the night", function()
  at_utc(16, 30) -- 23:30 in Vietnam
  local first = promo(VN)
  advance(9 * HOUR) -- 08:30: the scheduled promo went
  assert_eq(#sent(), 1)
  local again = promo(VN)
  assert_eq(again.status, 200)
  assert_eq(again.result, { id = first.result.id, duplicate = true })
  assert_eq(#sent(), 1)
  assert_eq(promo("0912345678").result.duplicate, true, "the national form is the same number")
  local other = promo(VN, "cyber-monday")
  assert_eq(message(other.result.id).status, "sent", "another campaign goes")
end)

---------------------------------------------------------------------------
-- The time-zone table
---------------------------------------------------------------------------

test("zones: from the number's area, per country for several, unknown zones are UTC", function()
  at_utc(3, 0)
  local cases = {
    { "+84912345678", "+07:00" },
    { "0912345678", "+07:00" }, -- national: default country 84
    { "0084 912 345 678", "+07:00" },
    { "84912345678", "+07:00" }, -- the calling code without '+', as the engine reads it
    { "+79161234567", "+03:00" }, -- a Russian mobile: all of Russia's zones, COUNTRY_ZONES.RU
    { "+77011234567", "+05:00" }, -- a Kazakh mobile (+7 too): COUNTRY_ZONES.KZ
    { "+12125550123", "-05:00" }, -- New York
    { "+12065550123", "-08:00" }, -- Seattle: America/Los_Angeles
    { "+18085550123", "-10:00" }, -- Hawaii: Pacific/Honolulu
    { "+919812345678", "+05:30" },
    { "+442071234567", "+00:00" }, -- London
    { "+33612345678", "+00:00" }, -- Europe/Paris: not in UTC_OFFSETS
  }
  for i, c in ipairs(cases) do
    local r = promo(c[1], "zones-" .. i)
    assert_eq(r.status, 202, c[1])
    assert_eq(r.result.utc_offset, c[2], c[1])
  end
end)

test("zones: the local time decides, per number", function()
  local t = at_utc(17, 30) -- Moscow 20:30 (open), Kazakhstan 22:30 (closed)
  local moscow = promo("+79161234567")
  local almaty = promo("+77011234567")
  assert_eq(moscow.result.send_at, nil)
  assert_eq(message(moscow.result.id).status, "sent")
  assert_eq(almaty.result.send_at, os.date("!%Y-%m-%dT08:00:00+05:00", t + 9.5 * HOUR + 5 * HOUR))
  assert_eq(message(almaty.result.id).send_at, utc_string(t + 9.5 * HOUR)) -- 03:00 UTC
  t = at_utc(14, 30) -- New York 09:30 (open), Seattle 06:30 and Honolulu 04:30 (closed)
  local ny = promo("+12125550123")
  local seattle = promo("+12065550123")
  local honolulu = promo("+18085550123")
  assert_eq(ny.result.send_at, nil)
  assert_eq(message(seattle.result.id).send_at, utc_string(t + 1.5 * HOUR)) -- 08:00 = 16:00 UTC
  assert_eq(message(honolulu.result.id).send_at, utc_string(t + 3.5 * HOUR)) -- 08:00 = 18:00 UTC
  assert_eq(seattle.result.send_at, os.date("!%Y-%m-%dT08:00:00-08:00", t + 1.5 * HOUR - 8 * HOUR))
end)
