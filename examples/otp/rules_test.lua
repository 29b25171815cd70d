-- Tests of the OTP rules (rules.lua beside this file), offline:
--   smsrules test examples/otp/rules_test.lua
-- The mock provider is simulated; each test starts from an empty store, and
-- the clock moves only with advance(). Codes are read from what reached the
-- provider, as a user would read them on the phone.

local PHONE = "+84912345678"

local function request(phone)
  local r = fire("otp.request", { phone = phone or PHONE })
  assert_eq(r.status, r.ids[1] and 202 or 200)
  return r.result, r
end

local function verify(code, phone)
  return fire("otp.verify", { phone = phone or PHONE, code = code }).result
end

-- The code in the last SMS that reached the provider for `phone`.
local function last_code(phone)
  phone = phone or PHONE
  local out = sent()
  for i = #out, 1, -1 do
    if out[i].to == phone then
      local code = out[i].text:match("^Your MyShop code is (%d+)%. ")
      assert_true(code, "a code in: " .. out[i].text)
      return code
    end
  end
  error("no SMS reached " .. phone, 2)
end

-- A 6-digit code other than `code`.
local function other_than(code)
  return string.format("%06d", (tonumber(code) + 1) % 1000000)
end

test("a request sends a 6-digit code with the template, urgent and valid 5 minutes", function()
  local result, r = request("0912345678")
  assert_eq(result, { sent = true, expires_in = 300 })
  assert_eq(#r.ids, 1)
  local out = sent()
  assert_eq(#out, 1)
  assert_eq(out[1].to, PHONE)
  assert_eq(out[1].provider, "mock")
  assert_match(out[1].text, "^Your MyShop code is %d%d%d%d%d%d%. It expires in 5 minutes%. Never share it with anyone%.$")
  local m = message(r.ids[1])
  assert_eq(m.status, "sent")
  assert_eq(m.priority, 3)
  assert_eq(m.validity, 300)
end)

test("the right code is valid once", function()
  request()
  local code = last_code()
  assert_eq(verify(code), { valid = true })
  assert_eq(verify(code), { valid = false, reason = "no_code" }, "used up")
end)

test("the number may be written either way; the code is bound to it", function()
  request("0912 345 678")
  local code = last_code(PHONE)
  assert_eq(verify(code, "+84912000999"), { valid = false, reason = "no_code" }, "not for another number")
  assert_eq(verify(code, "0084-912-345-678"), { valid = true })
end)

test("a code sent as a JSON number is accepted, leading zeros and all", function()
  -- Ask codes for numbers of different prefixes until one begins with 0
  -- (1 in 10; 200 numbers miss with odds below 10^-9).
  local phone, code
  for i = 1, 200 do
    phone = string.format("+849%03d12345", i)
    request(phone)
    code = last_code(phone)
    if code:sub(1, 1) == "0" then break end
  end
  assert_eq(code:sub(1, 1), "0", "a code beginning with 0")
  assert_eq(verify(tonumber(code), phone), { valid = true })
end)

test("a wrong code is refused and the right one still works", function()
  request()
  local code = last_code()
  assert_eq(verify(other_than(code)), { valid = false, reason = "wrong_code", attempts_left = 2 })
  assert_eq(verify(other_than(other_than(code))), { valid = false, reason = "wrong_code", attempts_left = 1 })
  assert_eq(verify(code), { valid = true }, "the third attempt may still be the right one")
end)

test("3 wrong attempts burn the code", function()
  request()
  local code = last_code()
  local wrong = other_than(code)
  assert_eq(verify(wrong), { valid = false, reason = "wrong_code", attempts_left = 2 })
  assert_eq(verify(wrong), { valid = false, reason = "wrong_code", attempts_left = 1 })
  assert_eq(verify(wrong), { valid = false, reason = "too_many_attempts" })
  assert_eq(verify(code), { valid = false, reason = "too_many_attempts" }, "the right code no longer works")
  -- a new code (after the resend delay) has fresh attempts
  advance(60)
  assert_eq(request(), { sent = true, expires_in = 300 })
  assert_eq(verify(last_code()), { valid = true })
end)

test("malformed codes are refused without costing an attempt", function()
  request()
  local code = last_code()
  for _, bad in ipairs({ "12345", "1234567", "12a456", "", " " .. code, 1234567 }) do
    assert_eq(verify(bad), { valid = false, reason = "invalid_code" })
  end
  assert_eq(verify(nil), { valid = false, reason = "invalid_code" })
  assert_eq(verify(other_than(code)).attempts_left, 2, "only this one counted")
  assert_eq(verify(code), { valid = true })
end)

test("no code was asked for", function()
  assert_eq(verify("123456"), { valid = false, reason = "no_code" })
  assert_eq(verify("123456", "not a phone"), { valid = false, reason = "invalid_phone" })
end)

test("a code is still valid just before 5 minutes", function()
  request()
  local code = last_code()
  advance(299)
  assert_eq(verify(code), { valid = true })
end)

test("a code expires after 5 minutes", function()
  request()
  local code = last_code()
  advance(301)
  assert_eq(verify(code), { valid = false, reason = "no_code" })
end)

test("an SMS held up past the code's life is never delivered", function()
  provider("mock"):fail(503, 290):fail(503, 290)
  local _, r = request()
  advance(400)
  local m = message(r.ids[1])
  assert_eq(m.status, "expired")
  for _, s in ipairs(sent()) do assert_eq(s.outcome, "failed") end
end)

test("one code per 60 s per number; the limit resets after 60 s", function()
  assert_eq(request(), { sent = true, expires_in = 300 })
  local first = last_code()
  assert_eq(request(), { sent = false, reason = "too_soon", retry_after = 60 })
  advance(30)
  assert_eq(request("0912345678"), { sent = false, reason = "too_soon", retry_after = 30 }, "whatever the form of the number")
  assert_eq(#sent(), 1, "no second SMS")
  assert_eq(request("+84912000999").sent, true, "other numbers are not held up")
  advance(30)
  assert_eq(request(), { sent = true, expires_in = 300 })
  assert_eq(#sent(), 3)
  local second = last_code()
  if second ~= first then   -- (one chance in a million that they are equal)
    assert_eq(verify(first), { valid = false, reason = "wrong_code", attempts_left = 2 }, "the new code replaced the old one")
  end
  assert_eq(verify(second), { valid = true })
end)

test("at most 20 codes to numbers sharing their first 6 digits, refilling at 20 an hour", function()
  local codes, distinct, firsts = {}, 0, {}
  for i = 1, 20 do
    local phone = string.format("+849123%d%04d", i % 10, i)   -- (the 7th digit differs)
    assert_eq(request(phone), { sent = true, expires_in = 300 }, phone)
    local code = last_code(phone)
    if not codes[code] then distinct = distinct + 1 end
    codes[code], firsts[code:sub(1, 1)] = true, true
  end
  -- (random codes: 20 alike, or 20 with the same first digit, are beyond odds)
  assert_true(distinct >= 15, "codes differ (" .. distinct .. " distinct of 20)")
  assert_true(next(firsts, next(firsts)), "first digits differ")
  local result, r = request("+84912300021")
  assert_eq(result, { sent = false, reason = "rate_limited" })
  assert_eq(r.ids, {})
  assert_eq(request("0912300022"), { sent = false, reason = "rate_limited" }, "national form, same prefix +849123")
  assert_eq(#sent(), 20, "no SMS past the limit")
  assert_eq(request("+84912400021").sent, true, "another prefix is not held up")
  advance(179)
  assert_eq(request("+84912300023").reason, "rate_limited")
  advance(1)
  assert_eq(request("+84912300024").sent, true, "one more every 3 minutes")
  assert_eq(request("+84912300025").reason, "rate_limited")
end)

test("an invalid number is refused before any limit or SMS", function()
  for _, bad in ipairs({ "abc", "12", "+0912345678", "0912345678x" }) do
    assert_eq(request(bad), { sent = false, reason = "invalid_phone" }, bad)
  end
  assert_eq(fire("otp.request", {}).result, { sent = false, reason = "invalid_phone" })
  assert_eq(#sent(), 0)
end)

test("kv holds an HMAC of the code, never the code itself", function()
  load_rules("rules_debug.lua")
  request()
  local code = last_code()
  local seen = fire("debug.kv", { phone = PHONE, code = code }).result
  assert_true(seen.stored, "a record for the number")
  assert_eq(seen.stored:find(code, 1, true), nil, "the code is not in the stored value")
  assert_match(seen.mac, "^%x+$")
  assert_eq(#seen.mac, 64, "HMAC-SHA256 in hex")
  assert_match(seen.stored, "^%x+:" .. seen.mac .. "$", "nonce:HMAC of this number and code")
  assert_eq(seen.mac, seen.expected, "HMAC-SHA256 keyed by the secret over number:code")
  local other = fire("debug.kv", { phone = PHONE, code = other_than(code) }).result
  assert_true(other.mac ~= seen.mac, "the HMAC depends on the code")
  assert_eq(verify(code), { valid = true })
  assert_eq(fire("debug.kv", { phone = PHONE, code = code }).result.stored, nil, "deleted once used")
end)
