-- Rules for phone_test.lua: sms.phone and the numbers sms.send accepts, with
-- default_country "1" (US formats; any region of +1, e.g. Canada).
sms.config{ default_country = "1" }

sms.provider("primary", { adapter = "mock", url = "http://127.0.0.1:9/send" })
sms.route(function(msg) return { "primary" } end)

-- sms.phone works at load time too (pure, does not yield).
local at_load = sms.phone("(415) 555-1234")
assert(at_load and at_load.e164 == "+14155551234", "sms.phone at load time")

-- POST /v1/events/phone.info {"number": ..., "country": ...}
sms.on("phone.info", function(ev)
  local info, err = sms.phone(ev.number, ev.country)
  if not info then return { error = err } end
  return info
end)

-- POST /v1/events/phone.send {"number": ...}
sms.on("phone.send", function(ev)
  local id, err = sms.send{ to = ev.number, text = "hi" }
  return { id = id, error = err }
end)
