-- adapters/util: what every provider adapter needs to read an HTTP answer.
--
-- Adapters do no I/O: they turn messages into a request and an HTTP answer
-- into outcomes (see adapters/generic.lua for the contract). This module holds
-- the parts that do not depend on one provider's format:
--   util.decode(body, exact)     JSON body → value (exact: big integers as strings)
--   util.inexact(v)              whether a decoded number may have lost digits
--   util.id_string(v)            a JSON id (string or number) → string or nil
--   util.status_class(status)    "ok" | "retry" | "provider" | "message"
--   util.retry_after(headers)    Retry-After (delta seconds or HTTP-date) → seconds
--   util.http_date(s)            HTTP-date → seconds since the epoch
--   util.error_text(doc, body)   the provider's error text in an answer
--   util.error_message(prefix, text)  "HTTP 400: text", cleaned and bounded
--   util.http_failure(status, doc, body, headers)  outcome of a non-2xx answer
--   util.failure(class, err, headers)  an outcome of a status class
--   util.no_id()                 outcome of a 2xx answer without a usable id
--   util.auth_headers(cfg, headers)  the api_key header, Bearer or cfg.auth_header
--   util.header(headers, name)   a response header, whatever its case
--   util.check_batch(name, batch_size, msgs)  raises unless 1..batch_size messages
--   util.check_url(name, cfg)    raises unless cfg.url is an http(s) URL
--   util.base_url(name, cfg, default)  cfg.url (checked) or default, no trailing '/'
--   util.credentials(name, cfg, basic)  "key", api_key | "basic", user, password
--   util.base64(s), util.basic_auth(user, password)  HTTP Basic credentials
--   util.url_escape(s)           percent-encodes all but RFC 3986 unreserved bytes
--   util.form_decode(body)       application/x-www-form-urlencoded → table
--                                (and true when it had more than util.MAX_FIELDS)
--   util.utc_offset(name, cfg)   cfg.utc_offset ("+03:00") → seconds east of UTC
--   util.parse_time(s, offset)   ISO 8601-like or YYYYMMDDHHMMSS → epoch seconds
--   util.epoch_ms(v)             milliseconds (number or digits) → epoch seconds
--   util.check_ids(name, max, ids)  raises unless 1..max string ids
--   util.answer(status, body)    a webhook answer table (text/plain)
--   util.trim(s)                 s without leading and trailing whitespace
--
-- Webhooks come from anyone who can reach the port, before any signature
-- is checked: everything here that reads request data costs time linear in
-- its length. Lua patterns backtrack, so a pattern is used on request data
-- only when its worst case is linear (anchored, no two adjacent repetitions
-- that can match the same bytes: "^%s*(.-)%s*$" takes seconds on a long
-- run of spaces); values that have a natural length (a time, a number, a
-- signature) are refused by length before any pattern sees them.
--
-- Every outcome returned is a fresh table: the core may keep or change it.

local cjson = require("cjson")
-- A private instance: rules share the global cjson and may change its
-- settings (cjson.encode_sparse_array, ...); adapters must not see that.
if cjson.new then cjson = cjson.new() end

local util = { json = cjson }

local ERROR_MAX_BYTES = 200

-- Integers beyond 2^53 lose digits as doubles, and cjson decodes every
-- number into one (3482512350952730368 → 3482512350952730112). An adapter
-- that finds such a number where it reads an id (util.inexact) decodes the
-- body again with util.decode(body, true): every integer literal of 16 digits
-- or more outside strings is then turned into a JSON string first, so ids
-- arrive as their exact text. Only answers that need it pay for the scan.
local EXACT_LIMIT = 2 ^ 53

-- True when v is a number that may have lost digits in decoding.
function util.inexact(v)
    return type(v) == "number" and (v >= EXACT_LIMIT or v <= -EXACT_LIMIT)
end

local function quote_big_integers(body)
    local parts, copied, i = {}, 1, 1
    while true do
        local s = body:find('["%-%d]', i)
        if not s then break end
        if body:byte(s) == 34 then -- '"': skip the string, escapes included
            local j = s + 1
            while true do
                local q = body:find('["\\]', j)
                if not q then return body end -- unterminated: let cjson say so
                if body:byte(q) == 92 then
                    j = q + 2
                else
                    j = q + 1
                    break
                end
            end
            i = j
        else
            local a, b = body:find("^%-?%d+", s)
            if not a then
                i = s + 1
            else
                local _, rest = body:find("^[%.eE][%d%.eE%+%-]*", b + 1)
                local digits = b - a + 1 - (body:byte(a) == 45 and 1 or 0)
                if not rest and digits >= 16 then
                    parts[#parts + 1] = body:sub(copied, a - 1)
                    parts[#parts + 1] = '"' .. body:sub(a, b) .. '"'
                    copied = b + 1
                end
                i = (rest or b) + 1
            end
        end
    end
    if copied == 1 then return body end
    parts[#parts + 1] = body:sub(copied)
    return table.concat(parts)
end

-- The decoded JSON body, or nil and a message when it is not JSON. JSON null
-- is util.null. With exact, integers of 16 digits or more come back as
-- strings (see above).
function util.decode(body, exact)
    if type(body) ~= "string" or body == "" then return nil, "empty body" end
    local ok, value = pcall(cjson.decode, exact and quote_big_integers(body) or body)
    if not ok then return nil, tostring(value) end
    return value
end

util.null = cjson.null

-- A provider id as a string: strings as they are (when not empty), numbers
-- in plain integer notation. Anything else is not a usable id: nil; so is a
-- number that may have lost digits (decode again with exact first).
function util.id_string(v)
    if type(v) == "string" then
        return v ~= "" and v or nil
    elseif type(v) == "number" and not util.inexact(v) then
        local i = math.tointeger(v)
        if i then return string.format("%d", i) end
    end
    return nil
end

-- A delivery report's part or parts as the provider gave it: a whole number
-- (or digits) as an integer; nil when absent, JSON null or ""; anything else
-- as it is, so that the core refuses the report (part 0, -1, 1.5, "abc")
-- rather than take it for a report on the whole message.
function util.part_number(v)
    if v == nil or v == cjson.null or v == "" then return nil end
    local n = tonumber(v)
    return n and math.tointeger(n) or v
end

-- What an HTTP status means for the messages of the request:
--   "ok"        2xx: accepted (the adapter still needs an id from the body)
--   "retry"     429, 408 (a timeout) and every 5xx: try again later
--   "provider"  401, 402, 403, and 3xx (a redirect means a wrong url): this
--               provider cannot take any message now; the next one of the route
--   "message"   every other 4xx (400, 404, 413, 422, ...): this message is refused
-- Anything else (1xx, outside 100..599, not a number): "retry", we cannot
-- know whether the message was taken.
function util.status_class(status)
    status = math.tointeger(status)
    if not status then return "retry" end
    if status >= 200 and status <= 299 then return "ok" end
    if status == 429 or status == 408 or (status >= 500 and status <= 599) then return "retry" end
    if status == 401 or status == 402 or status == 403 then return "provider" end
    if status >= 300 and status <= 399 then return "provider" end
    if status >= 400 and status <= 499 then return "message" end
    return "retry"
end

-- A response header by name; the core gives lower-case names, but a table
-- built by hand may not.
function util.header(headers, name)
    if type(headers) ~= "table" then return nil end
    local v = headers[name]
    if v == nil then
        name = name:lower()
        for k, value in pairs(headers) do
            if type(k) == "string" and k:lower() == name then
                v = value
                break
            end
        end
    end
    if type(v) == "table" then v = v[1] end -- several of them: the first
    return v
end

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
                 jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 }

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
-- days_from_civil); pure arithmetic, so the local time zone plays no part.
local function days_from_civil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = y // 400
    local yoe = y - era * 400
    local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468
end

-- Seconds since the epoch of an HTTP-date (RFC 9110 §5.6.7), in any of its
-- three forms, or nil:
--   Sun, 06 Nov 1994 08:49:37 GMT     (IMF-fixdate)
--   Sunday, 06-Nov-94 08:49:37 GMT    (obsolete RFC 850)
--   Sun Nov  6 08:49:37 1994          (obsolete asctime)
function util.http_date(s)
    if type(s) ~= "string" then return nil end
    local d, mon, y, hh, mm, ss = s:match("^%s*%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT%s*$")
    if not d then
        d, mon, y, hh, mm, ss = s:match("^%s*%a+, (%d%d?)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT%s*$")
        if y then
            -- Two-digit years: 00-69 → 20xx, 70-99 → 19xx. RFC 9110 reads
            -- them relative to now (more than 50 years ahead: the previous
            -- century); for a Retry-After, a date near now, both agree.
            y = tonumber(y)
            y = y < 70 and 2000 + y or 1900 + y
        end
    end
    if not d then
        mon, d, hh, mm, ss, y = s:match("^%s*%a+ (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)%s*$")
    end
    if not d then return nil end
    local m = MONTHS[mon:lower()]
    d, y, hh, mm, ss = tonumber(d), tonumber(y), tonumber(hh), tonumber(mm), tonumber(ss)
    if not m or d < 1 or d > 31 or hh > 23 or mm > 59 or ss > 60 then return nil end
    return days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss
end

-- Seconds to wait from the Retry-After header, or nil when there is none or
-- it is not understood. A delta ("2") as it is; an HTTP-date as the time
-- left from now (os.time()), 0 when it has passed. The core bounds it.
function util.retry_after(headers)
    local v = util.header(headers, "retry-after")
    if type(v) == "number" then v = tostring(v) end
    if type(v) ~= "string" then return nil end
    local delta = v:match("^%s*(%d+)%s*$")
    if delta then return math.tointeger(tonumber(delta)) or math.maxinteger end
    local at = util.http_date(v)
    if not at then return nil end
    local left = at - os.time()
    return left > 0 and left or 0
end

-- The provider's own words about an error in a decoded answer (doc) or, when
-- the answer is not JSON, in its raw text (body; HTML error pages left out).
-- Looks at error (a string, or an object with message/description/code),
-- message, error_description, error_message, description, detail, reason,
-- errors[1] (a string or an object with message/detail). nil when none.
function util.error_text(doc, body)
    local function text(v)
        if type(v) == "string" and v:find("%S") then return v end
        if type(v) == "number" then return util.id_string(v) or tostring(v) end
        return nil
    end
    local function from_object(t)
        if type(t) ~= "table" then return text(t) end
        return text(t.message) or text(t.description) or text(t.detail) or text(t.error_description)
            or text(t.code)
    end
    if type(doc) == "table" then
        local e = doc.error
        local found = (type(e) == "table" and from_object(e)) or text(e) or text(doc.message)
            or text(doc.error_description) or text(doc.error_message) or text(doc.description)
            or text(doc.detail) or text(doc.reason)
        if found then return found end
        if type(doc.errors) == "table" then return from_object(doc.errors[1]) end
        return nil
    end
    if type(doc) == "string" then return text(doc) end
    if doc == nil and type(body) == "string" and body:find("%S") and not body:find("^%s*<") then
        return body
    end
    return nil
end

-- "prefix: text" (or just prefix), control characters and runs of spaces
-- folded into one space, cut to at most ~200 bytes on a UTF-8 boundary.
function util.error_message(prefix, text)
    local s = prefix
    if text then
        text = tostring(text):gsub("[%c%s]+", " "):match("^ ?(.-) ?$")
        if text ~= "" then s = prefix .. ": " .. text end
    end
    if #s > ERROR_MAX_BYTES then
        local cut = ERROR_MAX_BYTES
        -- Back off continuation bytes (10xxxxxx) so no character is split.
        while cut > 0 and (s:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
        s = s:sub(1, cut) .. "..."
    end
    return s
end

-- The outcome of a non-2xx HTTP answer, the same for every message of the
-- request: status is the HTTP status, doc the decoded body (or nil), body
-- the raw one, headers the response headers (for Retry-After).
--   {ok=false, retry=true, error=..., retry_after=seconds or nil}
--   {ok=false, retry=false, scope="provider"|"message", error=...}
function util.http_failure(status, doc, body, headers)
    local class = util.status_class(status)
    local err = util.error_message("HTTP " .. tostring(status), util.error_text(doc, body))
    return util.failure(class, err, headers)
end

-- An outcome of class "retry" | "provider" | "message" with error err.
-- headers (optional) gives the retry_after of a retryable one.
function util.failure(class, err, headers)
    if class == "retry" then
        return { ok = false, retry = true, error = err, retry_after = util.retry_after(headers) }
    end
    return { ok = false, retry = false, scope = class, error = err }
end

-- A 2xx answer that does not say which id the provider gave: we do not know
-- whether it took the message, so it is retried (same idempotency key).
function util.no_id()
    return { ok = false, retry = true, error = "no message id in answer" }
end

-- For adapters whose request carries one message: the first message gets
-- outcome, any others (should the core ever pass more) the same failure, or
-- a retry when the first was accepted (nothing is known about them), so the
-- counts always match.
function util.repeat_outcome(outcome, msgs, headers)
    local outcomes = { outcome }
    for i = 2, #msgs do
        outcomes[i] = outcome.ok and util.no_id() or util.failure(
            outcome.retry and "retry" or outcome.scope, outcome.error, headers)
    end
    return outcomes
end

-- sms.form (src/rules/bindings/lua_form.c): the core's own form decoder
-- (src/codec/form.c), the same that builds request.form; reads at most
-- util.MAX_FIELDS pairs.
function util.form_lib()
    local f = type(sms) == "table" and sms.form
    if type(f) ~= "table" then error("adapters.util: sms.form is not available", 0) end
    return f
end

-- sms.crypto for verify(), or a clear error naming the adapter.
function util.crypto(adapter_name)
    local c = type(sms) == "table" and sms.crypto
    if type(c) ~= "table" then error(adapter_name .. " adapter: sms.crypto is not available", 0) end
    return c
end

-- Adds the credentials of cfg to headers: the api_key as
-- "Authorization: Bearer <key>", or under cfg.auth_header ("X-API-Key")
-- as it is. Nothing without an api_key. Keys never go into URLs.
function util.auth_headers(cfg, headers)
    local key = cfg.api_key
    if key == nil or key == "" then return headers end
    if type(key) ~= "string" then error("provider " .. tostring(cfg.name) .. ": api_key must be a string", 0) end
    local name = cfg.auth_header
    if name ~= nil and name ~= "" then
        if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+%-.^_`|~]+$") then
            error("provider " .. tostring(cfg.name) .. ": auth_header must be a header name", 0)
        end
        headers[name] = key
    else
        headers["Authorization"] = "Bearer " .. key
    end
    return headers
end

-- Raises unless msgs is an array of 1..adapter.batch_size messages with a
-- string "to" and "text": the core must not call an adapter otherwise.
function util.check_batch(adapter_name, batch_size, msgs)
    if type(msgs) ~= "table" or #msgs < 1 or #msgs > batch_size then
        error(adapter_name .. " adapter: expected 1 to " .. batch_size .. " messages", 0)
    end
    for i = 1, #msgs do
        local m = msgs[i]
        if type(m) ~= "table" or type(m.to) ~= "string" or type(m.text) ~= "string" then
            error(adapter_name .. " adapter: message " .. i .. " needs a string to and text", 0)
        end
    end
end

-- Raises unless cfg.url is an http(s) URL; returns it. The core passes the
-- same cfg table for every send of a provider, so a checked url is
-- remembered (weakly: a reloaded provider's old cfg can go).
local checked_urls = setmetatable({}, { __mode = "k" })

function util.check_url(adapter_name, cfg)
    local url = cfg.url
    if url ~= nil and checked_urls[cfg] == url then return url end
    if type(url) ~= "string" or not url:match("^[hH][tT][tT][pP][sS]?://[^%s]+$") then
        error("provider " .. tostring(cfg.name) .. " (" .. adapter_name .. "): url must be an http(s) URL", 0)
    end
    checked_urls[cfg] = url
    return url
end

-- The base URL of a provider whose adapter appends documented paths: cfg.url
-- when given (checked as util.check_url does), else the adapter's default;
-- trailing slashes are dropped so base .. "/path" has exactly one.
function util.base_url(adapter_name, cfg, default)
    local url = default
    if cfg.url ~= nil then url = util.check_url(adapter_name, cfg) end
    return (url:gsub("/+$", ""))
end

local function nonempty(v) return v ~= nil and v ~= "" end

-- The credentials a provider declares, for adapters that take an API key or
-- (when basic is true) HTTP Basic user + password:
--   "key", api_key            when cfg.api_key is set
--   "basic", user, password   when cfg.user and cfg.password are set
-- Raises when there are none, when both kinds are given (which one would win
-- is not obvious, so neither does), or when only one of user and password is.
function util.credentials(adapter_name, cfg, basic)
    local function fail(what)
        error("provider " .. tostring(cfg.name) .. " (" .. adapter_name .. "): " .. what, 0)
    end
    local key, user, password = cfg.api_key, cfg.user, cfg.password
    for _, f in ipairs({ { "api_key", key }, { "user", user }, { "password", password } }) do
        if f[2] ~= nil and type(f[2]) ~= "string" then fail(f[1] .. " must be a string") end
    end
    local has_user = nonempty(user) or nonempty(password)
    if nonempty(key) then
        if has_user then fail("give api_key or user + password, not both") end
        return "key", key
    end
    if basic then
        if not (nonempty(user) and nonempty(password)) then
            if has_user then fail("user and password go together") end
            fail("needs api_key or user + password")
        end
        -- RFC 7617: the user-id cannot contain a colon.
        if user:find(":", 1, true) then fail("user must not contain ':'") end
        return "basic", user, password
    end
    fail("needs api_key")
end

-- Standard base64 (RFC 4648 §4) with padding: sms.crypto.base64 (OpenSSL).
function util.base64(s)
    return util.crypto("adapters.util").base64(s)
end

-- The value of an "Authorization" header for HTTP Basic (RFC 7617).
function util.basic_auth(user, password)
    return "Basic " .. util.base64(user .. ":" .. password)
end

-- s with every byte outside the RFC 3986 unreserved set (ALPHA DIGIT - . _ ~)
-- percent-encoded: safe as one path segment or query value.
function util.url_escape(s)
    return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- The most parameters a webhook's form (or JSON object) is read for: real
-- ones have a few dozen, and signature checks sort them all. The core
-- refuses (400) a request whose query or form body has more
-- (SR_WEBHOOK_MAX_FIELDS, src/rules/adapter.h); util.form_decode and
-- util.form_pairs read no more than this from a body it did not parse.
util.MAX_FIELDS = 256

-- An application/x-www-form-urlencoded body as a table name → value ('+' is
-- a space, %XX a byte). A name given twice keeps its first value. For
-- webhooks whose form the core did not parse (no or another Content-Type).
-- Reads at most util.MAX_FIELDS pairs; a second result true says there
-- were more (the caller refuses the request).
function util.form_decode(body)
    if type(body) ~= "string" then return {} end
    return util.form_lib().decode(body)
end

-- s without leading and trailing whitespace (%s), in time linear in #s.
-- ("^%s*(.-)%s*$" is quadratic: for each byte the lazy ".-" takes, "%s*$"
-- runs over the whole run of spaces that follows.) The first non-space is
-- found by find; from there ".*%S" takes everything and backs off only over
-- the trailing spaces, and it cannot fail, so it runs once.
function util.trim(s)
    local a = s:find("%S")
    if not a then return "" end
    local _, b = s:find(".*%S", a)
    return s:sub(a, b)
end

-- Longest time stamp parse_time reads ("2025-01-23T10:30:00.123456789+02:00"
-- is 35 bytes): anything longer is not one, and no pattern looks at it.
local TIME_MAX_BYTES = 64

-- "+03:00", "+0300", "+03", "-05:30", "Z" or "UTC" → seconds east of UTC;
-- nil for anything else.
local function offset_seconds(z)
    if z == "Z" or z == "z" or z == "UTC" or z == "GMT" then return 0 end
    local sign, hh, mm = z:match("^([%+%-])(%d%d):?(%d%d)$")
    if not sign then
        sign, hh = z:match("^([%+%-])(%d%d)$")
        mm = "00"
    end
    if not sign then return nil end
    hh, mm = tonumber(hh), tonumber(mm)
    if hh > 23 or mm > 59 then return nil end
    local s = hh * 3600 + mm * 60
    return sign == "-" and -s or s
end

-- cfg.utc_offset in seconds (0 when not set): the zone of times a provider
-- writes without one. Raises when it is not understood.
function util.utc_offset(adapter_name, cfg)
    local v = cfg.utc_offset
    if v == nil then return 0 end
    local s = type(v) == "string" and offset_seconds(v)
    if not s then
        error("provider " .. tostring(cfg.name) .. " (" .. adapter_name
            .. "): utc_offset must look like \"+03:00\", \"-0500\" or \"Z\"", 0)
    end
    return s
end

-- The checks and the sum of parse_time below, from numbers.
local function civil_seconds(y, mo, d, h, mi, se, zone)
    if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or se > 60 then return nil end
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - zone
end

local byte = string.byte

-- parse_time of exactly "YYYY-MM-DDTHH:MM:SSZ", the form most providers
-- send, read by its bytes (no captures, no strings made); nil for anything
-- else, which parse_time then reads the long way.
local function utc_time(s)
    if #s ~= 20 or not s:find("^%d%d%d%d%-%d%d%-%d%d[Tt ]%d%d:%d%d:%d%d[Zz]$") then return nil end
    local y1, y2, y3, y4, _, m1, m2, _, d1, d2, _, h1, h2, _, i1, i2, _, s1, s2 = byte(s, 1, 19)
    return civil_seconds((y1 - 48) * 1000 + (y2 - 48) * 100 + (y3 - 48) * 10 + y4 - 48, (m1 - 48) * 10 + m2 - 48,
        (d1 - 48) * 10 + d2 - 48, (h1 - 48) * 10 + h2 - 48, (i1 - 48) * 10 + i2 - 48, (s1 - 48) * 10 + s2 - 48, 0)
end

-- Seconds since the epoch of a provider's time stamp, or nil:
--   2025-01-23T10:30:00Z, 2025-01-23T10:30:00.250+02:00, 2020-11-11 11:20:35,
--   2025-12-08 06:00:00.002+0200, 20150525154559 (YYYYMMDDHHMMSS).
-- Fractions of a second are dropped. A time without a zone is read at
-- offset (seconds east of UTC; 0 when nil).
function util.parse_time(s, offset)
    if type(s) ~= "string" then return nil end
    local utc = utc_time(s)
    if utc then return utc end
    s = util.trim(s)
    if #s > TIME_MAX_BYTES then return nil end
    local y, mo, d, h, mi, se, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
    if not y then
        y, mo, d, h, mi, se = s:match("^(%d%d%d%d)(%d%d)(%d%d)(%d%d)(%d%d)(%d%d)$")
        rest = ""
    end
    if not y then return nil end
    rest = rest:gsub("^%.%d+", "")
    local zone = offset or 0
    if rest ~= "" then
        zone = offset_seconds((rest:gsub("^ ", "")))
        if not zone then return nil end
    end
    return civil_seconds(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(se), zone)
end

-- Whole seconds since the epoch of a time in milliseconds, given as a JSON
-- number or a string of digits ("1587721283000"); nil otherwise.
function util.epoch_ms(v)
    if type(v) == "string" and v:match("^%d+$") then v = math.tointeger(tonumber(v)) end
    if type(v) ~= "number" or v ~= v or v < 0 or v >= 2 ^ 63 then return nil end
    return math.floor(v) // 1000
end

-- The status callback URL to hand a provider that takes one per message:
-- cfg.status_callback, else our webhook derived from cfg.public_url
-- (public URL, /hooks/NAME, the provider's webhook_path_secret when it has
-- one, /status), else nil.
function util.status_callback(cfg)
    local url = cfg.status_callback
    if type(url) == "string" and url ~= "" then return url end
    local public = cfg.public_url
    if type(public) ~= "string" or public == "" then return nil end
    url = public:gsub("/+$", "") .. "/hooks/" .. util.url_escape(tostring(cfg.name))
    local secret = cfg.webhook_path_secret
    if type(secret) == "string" and secret ~= "" then url = url .. "/" .. util.url_escape(secret) end
    return url .. "/status"
end

-- Raises unless ids is an array of 1..max non-empty strings: the core must
-- not call build_poll otherwise.
function util.check_ids(adapter_name, max, ids)
    if type(ids) ~= "table" or #ids < 1 or #ids > max then
        error(adapter_name .. " adapter: expected 1 to " .. max .. " ids to poll", 0)
    end
    for i = 1, #ids do
        if type(ids[i]) ~= "string" or ids[i] == "" then
            error(adapter_name .. " adapter: id " .. i .. " to poll must be a non-empty string", 0)
        end
    end
end

-- What a webhook answers: status (default 200) and a plain-text body.
function util.answer(status, body)
    return { status = status or 200, headers = { ["Content-Type"] = "text/plain" }, body = body or "" }
end

-- ---- Forms and byte order (for the smsc, twilio and vonage adapters) ----
--   util.form_encode(fields)     {{name, value}, ...} → "To=%2B849...&Body=Hi+there"
--                                (application/x-www-form-urlencoded, in the order
--                                given; fields whose value is nil are left out)
--   util.form_pairs(body)        every name=value of a form body, in order,
--                                repeated names included: {{"a", "1"}, {"a", "2"}}
--                                (what a signature over "all parameters" needs);
--                                at most util.MAX_FIELDS, and true when there were more
--   util.byte_less(a, b)         a < b comparing bytes; Lua's < follows the C
--                                locale (strcoll), signatures need plain byte order

-- Everything but what the HTML urlencoded serializer keeps as it is (ASCII
-- letters, digits, "*-._") becomes %XX, and a space "+". Explicit ranges,
-- not %w, so the C locale cannot widen the set.
local function form_escape(s)
    return (s:gsub("[^A-Za-z0-9%*%-%._ ]", function(c) return string.format("%%%02X", c:byte()) end)
        :gsub(" ", "+"))
end

local function form_value(v)
    if math.type(v) == "integer" then return string.format("%d", v) end
    if type(v) == "number" and math.tointeger(v) then return string.format("%d", math.tointeger(v)) end
    return tostring(v)
end

function util.form_encode(fields)
    local parts = {}
    for _, f in ipairs(fields) do
        if f[2] ~= nil then
            parts[#parts + 1] = form_escape(tostring(f[1])) .. "=" .. form_escape(form_value(f[2]))
        end
    end
    return table.concat(parts, "&")
end

function util.form_pairs(body)
    if type(body) ~= "string" then return {} end
    return util.form_lib().pairs(body)
end

-- The common prefix is found by halving, comparing substrings (in C), so
-- parameters that share long prefixes (an outsider's webhook can have 256 of
-- them) cost a few steps per comparison, not one per byte.
function util.byte_less(a, b)
    if a == b then return false end
    -- a and b agree on their first lo bytes and differ within hi + 1.
    local lo, hi = 0, math.min(#a, #b)
    while lo < hi do
        local mid = (lo + hi + 1) // 2
        if a:sub(lo + 1, mid) == b:sub(lo + 1, mid) then lo = mid else hi = mid - 1 end
    end
    local x, y = a:byte(lo + 1), b:byte(lo + 1)
    if x == nil then return true end -- a is a proper prefix of b
    if y == nil then return false end
    return x < y
end

return util
