-- TEST ONLY: rules.lua plus one event that shows what kv holds for a number,
-- so that rules_test.lua can check the code itself is never stored. Never
-- serve this file: the event hands out kv contents.
local otp = require "rules"

-- POST /v1/events/debug.kv {"phone": "...", "code": "123456"} →
--   stored:   the kv value rules.lua keeps for the number
--   mac:      the HMAC rules.lua computes for that number and code
--   expected: the same computed here from the documented recipe, so that a
--             change of recipe (no key, no number, plain SHA-256) shows
sms.on("debug.kv", function(ev)
  local phone = otp.normalize(ev.phone)
  local secret = sms.env("OTP_SECRET")
  if not secret or secret == "" then secret = otp.DEMO_SECRET end
  return { stored = sms.kv.get(otp.key(phone)), mac = otp.mac(phone, ev.code),
           expected = sms.crypto.hex(sms.crypto.hmac_sha256(secret, phone .. ":" .. ev.code)) }
end)
