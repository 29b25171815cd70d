-- One-time codes by SMS: issue and verify a 6-digit code with sms.kv.
--
--   POST /v1/events/otp.request {"phone": "0912345678"}
--     → {"sent": true, "expires_in": 300}
--     → {"sent": false, "reason": "too_soon", "retry_after": 42}   one code per 60 s per number
--     → {"sent": false, "reason": "rate_limited"}                  too many codes to numbers of one prefix
--     → {"sent": false, "reason": "invalid_phone"}
--   POST /v1/events/otp.verify {"phone": "0912345678", "code": "123456"}
--     → {"valid": true}                                            once: the code is used up
--     → {"valid": false, "reason": "wrong_code", "attempts_left": 2}
--     → {"valid": false, "reason": "too_many_attempts"}            3 wrong attempts burnt the code
--     → {"valid": false, "reason": "no_code"}                      none pending: never asked for, expired or used
--     → {"valid": false, "reason": "invalid_code" | "invalid_phone"}  malformed input (no attempt counted)
--
-- The code comes from the kernel's CSPRNG (sms.crypto.random), without
-- modulo bias. Only an HMAC of it is stored (keyed by OTP_SECRET, bound to
-- the number); the code itself is never stored in kv nor logged. It lives
-- only in the SMS (whose text the message store keeps, as for any message).
-- Tested offline by rules_test.lua beside it: `smsrules test examples/otp/rules_test.lua`.

local COUNTRY = "84"          -- national numbers (leading 0) are in this country
sms.config{
  listen = "127.0.0.1:8080",
  data = "./data",
  api_keys = { sms.env("SMSRULES_DEMO_KEY") or "demo-key" },
  default_country = COUNTRY,
}

-- The built-in mock provider (`smsrules mock-provider` on :9090): no account needed.
sms.provider("mock", { adapter = "mock", url = "http://127.0.0.1:9090/send" })

local CODE_TTL = 300          -- a code is valid 5 minutes
local MAX_ATTEMPTS = 3        -- wrong attempts before the code is burnt
local RESEND_EVERY = 60       -- one code per number per 60 s
local PREFIX_DIGITS = 6       -- numbers sharing their first 6 digits (country code included) ...
local PREFIX_CODES = 20       -- ... get at most 20 codes at once, refilling at 20 an hour (GCRA)
local PREFIX_PER = 3600
-- The gates on a code's attempts are sms.ratelimit keys that must not refill
-- while the code lives: `rate` tokens per GATE_PER seconds give one back
-- every GATE_PER / rate seconds, here 1200 s, well past CODE_TTL.
local GATE_PER = 3600

-- The HMAC key. Set OTP_SECRET (a long random string) wherever this runs
-- for real; without it the rules fall back to a fixed demo key that anyone
-- reading this file knows, and say so in the log when they load.
local DEMO_SECRET = "smsrules-otp-demo-secret-do-not-use-in-production"
local SECRET = sms.env("OTP_SECRET")
if not SECRET or SECRET == "" then
  SECRET = DEMO_SECRET
  sms.log.warn("otp: OTP_SECRET is not set, using the demo secret; set it in production")
end

-- The SMS. The code is a template variable, so it only exists in the text.
sms.template("otp", "Your MyShop code is {{code}}. It expires in 5 minutes. Never share it with anyone.")

-- E.164 as the engine reads numbers (docs/rules.md, "Phone numbers"), so that
-- "0912 345 678" and "+84912345678" share their limits and their code. Only
-- valid numbers of assigned ranges get a code (sms.phone: the numbering plan
-- of the number's country), not one with an extension.
local function normalize(phone)
  if type(phone) ~= "string" or #phone > 64 then return nil end
  local info = sms.phone(phone)
  if not info or not info.valid or info.extension then return nil end
  return info.e164
end

-- Six digits, uniform: 4 random bytes give n in [0, 2^32); values from the
-- largest multiple of 10^6 up are drawn again, so that n % 10^6 favours no
-- code (about 1 draw in 4,400 is redrawn).
local UNBIASED_BELOW = (1 << 32) - (1 << 32) % 1000000
local function new_code()
  for _ = 1, 32 do
    local n = string.unpack(">I4", sms.crypto.random(4))
    if n < UNBIASED_BELOW then return string.format("%06d", n % 1000000) end
  end
  error("otp: no random number below the bound in 32 draws")  -- odds 10^-117: a broken generator
end

local function key(phone) return "otp:" .. phone end

-- What is stored instead of the code: an HMAC over the number and the code.
local function mac(phone, code)
  return sms.crypto.hex(sms.crypto.hmac_sha256(SECRET, phone .. ":" .. code))
end

sms.on("otp.request", function(ev)
  local phone = normalize(ev.phone)
  if not phone then return { sent = false, reason = "invalid_phone" } end

  -- One code per number per RESEND_EVERY seconds. sms.ratelimit rather than
  -- a kv timestamp: it is exact when requests arrive together (kv reads see
  -- committed state only), and a spent token stays spent.
  local ok, wait = sms.ratelimit("otp:resend:" .. phone, 1, RESEND_EVERY)
  if not ok then return { sent = false, reason = "too_soon", retry_after = math.ceil(wait) } end

  -- SMS pumping: a fraudster asks for codes to many numbers of a premium
  -- range he is paid for. Cap the codes per prefix.
  local prefix = phone:sub(2, 1 + PREFIX_DIGITS)
  ok, wait = sms.ratelimit("otp:prefix:" .. prefix, PREFIX_CODES, PREFIX_PER)
  if not ok then
    sms.log.warn("otp: codes to this prefix are rate limited", { prefix = prefix, retry_after = wait })
    return { sent = false, reason = "rate_limited" }
  end

  local code = new_code()
  -- validity: an SMS held up past the code's life is never delivered
  -- (it ends `expired`); priority 3: codes go before bulk messages.
  local id, err = sms.send{ to = phone, template = "otp", vars = { code = code },
                            validity = CODE_TTL, priority = 3 }
  if not id then
    sms.log.warn("otp: code not sent", { error = err })   -- err names the number, never the code
    return { sent = false, reason = err:match("^[%w_]+") }
  end
  -- A new code replaces the previous one. The nonce names this code in the
  -- attempt gates below, so a new code gets fresh attempts.
  local nonce = sms.crypto.hex(sms.crypto.random(8))
  sms.kv.set(key(phone), nonce .. ":" .. mac(phone, code), CODE_TTL)
  return { sent = true, expires_in = CODE_TTL }
end)

sms.on("otp.verify", function(ev)
  local phone = normalize(ev.phone)
  if not phone then return { valid = false, reason = "invalid_phone" } end
  local code = ev.code
  if math.type(code) == "integer" and code >= 0 and code < 1000000 then code = string.format("%06d", code) end
  if type(code) ~= "string" or not code:match("^%d%d%d%d%d%d$") then
    return { valid = false, reason = "invalid_code" }
  end

  local record = sms.kv.get(key(phone))
  if record == "burnt" then return { valid = false, reason = "too_many_attempts" } end
  local nonce, stored = (record or ""):match("^(%x+):(%x+)$")
  if not nonce then return { valid = false, reason = "no_code" } end

  -- Every attempt takes one of MAX_ATTEMPTS tokens of this code. The counter
  -- below burns the code after the last wrong one; this gate is what holds
  -- when attempts arrive together, before any of them is committed.
  if not sms.ratelimit("otp:attempt:" .. nonce, MAX_ATTEMPTS, GATE_PER) then
    sms.kv.set(key(phone), "burnt", CODE_TTL)
    return { valid = false, reason = "too_many_attempts" }
  end

  if not sms.crypto.equal(mac(phone, code), stored) then
    local wrong = sms.kv.incr("otp:wrong:" .. nonce, 1, CODE_TTL)
    if wrong >= MAX_ATTEMPTS then
      sms.kv.set(key(phone), "burnt", CODE_TTL)
      sms.log.warn("otp: code burnt after wrong attempts", { phone = phone, attempts = wrong })
      return { valid = false, reason = "too_many_attempts" }
    end
    return { valid = false, reason = "wrong_code", attempts_left = MAX_ATTEMPTS - wrong }
  end

  -- Right: used up. The gate makes "once" exact for two right answers
  -- arriving together; the delete makes it visible to the next ones.
  if not sms.ratelimit("otp:used:" .. nonce, 1, GATE_PER) then return { valid = false, reason = "no_code" } end
  sms.kv.del(key(phone))
  return { valid = true }
end)

-- For rules_debug.lua (tests only); the daemon ignores what a rules file returns.
return { key = key, mac = mac, normalize = normalize, DEMO_SECRET = DEMO_SECRET }
