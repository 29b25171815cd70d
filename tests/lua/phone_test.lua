-- sms.phone and the numbers the rules can send to (tests/lua/phone.lua,
-- default_country "1").
load_rules("phone.lua")

local function info(number, country)
  return fire("phone.info", { number = number, country = country }).result
end

test("a US number written nationally: E.164, country, type, zone, location", function()
  assert_eq(info("(415) 555-1234"), {
    e164 = "+14155551234", country = "US", calling_code = 1, type = "fixed_line_or_mobile",
    valid = true, possible = true, time_zones = { "America/Los_Angeles" }, location = "San Francisco, CA",
  })
end)

test("another region of the default calling code: Canada with default 1", function()
  local i = info("506 234 5678")
  assert_eq(i.e164, "+15062345678")
  assert_eq(i.country, "CA")
  assert_eq(i.time_zones, { "America/Halifax" })
end)

test("a default country per call: RU national form, KZ mobile with its carrier", function()
  local ru = info("8 (495) 123-45-67", "7")
  assert_eq(ru.e164, "+74951234567")
  assert_eq(ru.country, "RU")
  assert_eq(ru.type, "fixed_line")
  assert_eq(ru.time_zones, { "Europe/Moscow" })
  local kz = info("8 701 234 5678", "KZ")
  assert_eq(kz.e164, "+77012345678")
  assert_eq(kz.country, "KZ")
  assert_eq(kz.type, "mobile")
  assert_eq(kz.carrier, "Kcell/Activ")
  local gb = info("+44 (0)7400 123456")
  assert_eq(gb.e164, "+447400123456")
  assert_eq(gb.type, "mobile")
  assert_eq(gb.carrier, "Three")
  assert_eq(gb.time_zones, { "Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey", "Europe/London" })
end)

test("possible but not valid, and an extension: reported, not refused", function()
  assert_eq(info("+1 555 000 1111"), {
    e164 = "+15550001111", calling_code = 1, type = "unknown", valid = false, possible = true,
  })
  local ext = info("(415) 555-1234 ext. 12")
  assert_eq(ext.e164, "+14155551234")
  assert_eq(ext.extension, "12")
end)

test("not a number: nil and the reason", function()
  assert_eq(info("hello"), { error = "not a phone number" })
  assert_eq(info("1-800-FLOWERS"), { error = "has letters in it" })
end)

test("a bad default_country argument raises, naming the rule line", function()
  local r = fire("phone.info", { number = "0912345678", country = "999" })
  assert_eq(r.status, 500)
  assert_eq(r.error.code, "rule_error")
  assert_match(r.error.message, "phone%.lua:%d+: bad argument #2 to 'phone' %(%+999 is not a country calling code%)")
end)

test("sms.send refuses what cannot be a number of the default country", function()
  local r = fire("phone.send", { number = "(415) 555-1234" }).result
  assert_true(r.id, "a valid US number is sent")
  assert_eq(message(r.id).to, "+14155551234")
  r = fire("phone.send", { number = "84912345678" }).result
  assert_eq(r.id, nil)
  assert_eq(r.error, "invalid_phone: not a valid phone number: '84912345678': too long for US (+1)")
  r = fire("phone.send", { number = "(555) 000-1111" }).result
  assert_eq(r.error, "invalid_phone: not a valid phone number: '(555) 000-1111': not a valid number for US (+1)")
  r = fire("phone.send", { number = "+1 415 555 1234 x7" }).result
  assert_match(r.error, "^invalid_phone: .*extension %(7%)")
end)
