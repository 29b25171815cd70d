-- adapters/vonage: the Vonage (formerly Nexmo) SMS API (docs/providers.md, Vonage).
-- One message per request.
--
-- The adapter contract (every adapter; the C core calls it, the adapter does
-- no I/O; docs/providers.md, Writing an adapter, has it all):
--
--   adapter.batch_size                  messages one request may carry (≥ 1)
--   adapter.options                     options beyond the common ones
--   adapter.build_send(cfg, msgs) → request {method, url, headers, body}
--   adapter.parse_send(cfg, msgs, response) → one outcome per message:
--       {ok=true, provider_id="...", parts=n}
--       {ok=false, retry=true, error="...", retry_after=seconds or nil}
--       {ok=false, retry=false, scope="provider"|"message", error="..."}
--   adapter.verify(cfg, request) → true | false, "reason"
--   adapter.parse_status(cfg, request) → updates, answer
--   adapter.parse_inbound(cfg, request) → messages, answer
--   Misuse (missing credentials, no sender, an unsupported
--   signature_method) raises.
--
-- Options: api_key + api_secret (sent in the request body, as the SMS API
-- wants them), sender (the default "from"), url (API base, default
-- https://rest.nexmo.com), request_format ("form", the default, or "json":
-- the SMS API takes both), status_callback (the "callback" URL for delivery
-- receipts; else public_url .. "/hooks/<provider name>/status" when
-- public_url is set, else the account's default webhook), signature_secret
-- (checks the "sig" of signed webhooks; without it verify accepts every
-- request and the core relies on its own secret path or basic auth),
-- signature_method (what the Vonage dashboard is set to: "md5hash", the
-- default, or the HMACs "md5", "sha1", "sha256", "sha512").
--
-- Request: POST {url}/sms/json with api_key, api_secret, from, to (E.164
-- digits without '+'), text, type=unicode for UCS-2 texts, callback,
-- client-ref (our message id, echoed in delivery receipts).
-- Answer (HTTP 200 also for refusals):
--   {"message-count":"2","messages":[{"to":"447700900000","message-id":"0A00000012345678",
--    "status":"0","message-price":"0.0333",...},{...second part...}]}
-- A text longer than one SMS is sent as several parts, one "messages" entry
-- each: the message is accepted when any part is (a retry would send the
-- accepted parts again), its provider id is the first accepted part's id and
-- parts counts the accepted parts. Status "0" is success; the others are
-- classed in STATUS_CLASS below (Vonage's SMS API error table).
--
-- Webhooks (form, query or JSON; answered 200 with an empty body):
--   delivery receipt: msisdn, to, network-code, messageId, price, status,
--     scts, err-code, client-ref, message-timestamp (+ timestamp, nonce, sig
--     when signed). Vonage sends one receipt per part, each with that part's
--     messageId: only the first part's matches the provider id we keep, so
--     client-ref (our message id, set by build_send) is passed up as
--     message_id for the core to match the others by.
--   inbound: msisdn (sender), to, messageId, text, type, keyword,
--     message-timestamp, and concat, concat-ref, concat-total, concat-part
--     for the parts of a long message (passed on as concat_ref, part, parts).
-- Signed webhooks (Vonage "Signing messages"): sig is, over every parameter
-- but sig sorted by name as "&name=value" with '&' and '=' inside names and
-- values replaced by '_', either md5(that .. secret) ("md5hash") or the hex
-- HMAC of it keyed by the secret; timestamp must be within 5 minutes of now.

local util = require("adapters.util")
local json = util.json

local vonage = {
    name = "vonage",
    batch_size = 1,
    options = { "api_secret", "signature_secret", "signature_method", "status_callback", "public_url",
                "request_format" },
}

local DEFAULT_URL = "https://rest.nexmo.com"
local SIGNATURE_MAX_SKEW_S = 300

-- Send status → outcome class (Vonage SMS API errors,
-- https://developer.vonage.com/api-errors/sms). Codes not listed are taken
-- as refusals of this message: nothing says the provider as a whole is
-- unusable, and a blind retry could repeat an unknown permanent error.
local STATUS_CLASS = {
    ["1"] = "retry",     -- throttled: faster than the account limit
    ["2"] = "message",   -- missing parameters
    ["3"] = "message",   -- invalid parameters
    ["4"] = "provider",  -- invalid credentials
    ["5"] = "retry",     -- internal error
    ["6"] = "message",   -- invalid message (e.g. unrecognised number prefix)
    ["7"] = "message",   -- number barred (blacklisted recipient)
    ["8"] = "provider",  -- partner account barred (account suspended)
    ["9"] = "provider",  -- partner quota violation (not enough credit)
    ["10"] = "retry",    -- too many existing binds ("back-off and retry")
    ["11"] = "provider", -- account not enabled for HTTP (SMPP only)
    ["12"] = "message",  -- message too long
    ["14"] = "provider", -- invalid signature
    ["15"] = "provider", -- invalid sender address (sender not allowed)
    ["22"] = "message",  -- invalid network code
    ["23"] = "provider", -- invalid callback URL (every message carries it)
    ["29"] = "message",  -- non-whitelisted destination (test account)
    ["32"] = "provider", -- signature and api_secret disallowed
    ["33"] = "message",  -- number de-activated
}

-- Delivery receipt status → normalised status (Vonage "Delivery receipts"):
--   accepted: the downstream carrier accepted it → sent
--   buffered: held by the carrier, delivery being retried → sent
--   failed: the carrier could not deliver it → undelivered
--   rejected: the carrier refused it → rejected
local DLR_STATUS = {
    delivered = "delivered",
    expired = "expired",
    failed = "undelivered",
    rejected = "rejected",
    accepted = "sent",
    buffered = "sent",
    unknown = "unknown",
}

local function fail(cfg, what)
    error("provider " .. tostring(cfg.name) .. " (vonage): " .. what, 0)
end

local function nonempty(v)
    return type(v) == "string" and v ~= "" and v or nil
end

-- The ASCII digits of s: "+84 912" → "84912".
local function digits(s)
    return (tostring(s):gsub("[^0-9]", ""))
end

local status_callback = util.status_callback

function vonage.build_send(cfg, msgs)
    util.check_batch("vonage", vonage.batch_size, msgs)
    local key, secret = nonempty(cfg.api_key), nonempty(cfg.api_secret)
    if not key or not secret then fail(cfg, "needs api_key and api_secret") end
    local format = cfg.request_format or "form"
    if format ~= "form" and format ~= "json" then fail(cfg, 'request_format must be "form" or "json"') end
    local url = util.base_url("vonage", cfg, DEFAULT_URL) .. "/sms/json"
    local m = msgs[1]
    local from = nonempty(m.from) or nonempty(cfg.sender)
    if not from then fail(cfg, "needs a sender (the SMS API requires from)") end
    local id = m.id ~= nil and tostring(m.id) or nil
    -- client-ref is limited in length by Vonage (40 characters in the
    -- older documentation, 100 in the newer): ids longer than the stricter
    -- limit are not sent rather than risk refusing the message.
    if id and (id == "" or #id > 40) then id = nil end
    local fields = {
        { "api_key", key },
        { "api_secret", secret },
        { "from", from },
        { "to", digits(m.to) },
        { "text", m.text },
        { "type", m.encoding == "ucs2" and "unicode" or nil },
        { "callback", status_callback(cfg) },
        { "client-ref", id },
    }
    local headers = { ["Accept"] = "application/json" }
    local body
    if format == "json" then
        local doc = {}
        for _, f in ipairs(fields) do doc[f[1]] = f[2] end
        headers["Content-Type"] = "application/json"
        body = json.encode(doc)
    else
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = util.form_encode(fields)
    end
    return { method = "POST", url = url, headers = headers, body = body }
end

local function part_status(p)
    if type(p) ~= "table" then return nil end
    local s = p.status
    if type(s) == "number" then s = util.id_string(s) end
    return type(s) == "string" and s or nil
end

local function send_outcome(response)
    local status = response.status
    local body = response.body or ""
    local doc = util.decode(body)
    if util.status_class(status) ~= "ok" then return util.http_failure(status, doc, body, response.headers) end
    local parts = type(doc) == "table" and doc.messages
    if type(parts) ~= "table" or #parts == 0 then return util.no_id() end
    local first_id, accepted, refused = nil, 0, nil
    for _, p in ipairs(parts) do
        local s = part_status(p)
        if s == "0" then
            accepted = accepted + 1
            first_id = first_id or util.id_string(p["message-id"])
        elseif refused == nil then
            refused = p
        end
    end
    if accepted > 0 then
        if not first_id then return util.no_id() end
        return { ok = true, provider_id = first_id, parts = accepted }
    end
    local s = part_status(refused) or "?"
    local class = STATUS_CLASS[s] or "message"
    local text = type(refused) == "table" and refused["error-text"] or nil
    return util.failure(class, util.error_message("status " .. s, text), response.headers)
end

function vonage.parse_send(cfg, msgs, response)
    -- One request carries one message.
    return util.repeat_outcome(send_outcome(response), msgs, response.headers)
end

-- ---- webhooks ----

local function crypto() return util.crypto("vonage") end

local function as_text(v)
    if type(v) == "string" then return v end
    if math.type(v) == "integer" then return string.format("%d", v) end
    if type(v) == "number" then
        local i = math.tointeger(v)
        return i and string.format("%d", i) or tostring(v)
    end
    if type(v) == "boolean" then return tostring(v) end
    return nil
end

local function is_json(request)
    local ct = util.header(request.headers, "content-type")
    if type(ct) == "string" and ct:lower():find("json", 1, true) then return true end
    return type(request.body) == "string" and request.body:match("^%s*{") ~= nil
end

-- The webhook's parameters as strings: the form the core parsed (form body
-- and query), else a JSON body ("POST-JSON" webhooks) plus the query, else a
-- form body the core did not recognise. nil and a reason for a JSON body
-- that is not an object, or a body of more than util.MAX_FIELDS parameters.
local function webhook_fields(request)
    if type(request.form) == "table" then return request.form end
    local fields = {}
    local body = request.body
    local too_many = "webhook has more than " .. util.MAX_FIELDS .. " parameters"
    if type(body) == "string" and body ~= "" then
        if is_json(request) then
            local doc, err = util.decode(body)
            if type(doc) ~= "table" or #doc > 0 then
                return nil, "body is not a JSON object" .. (err and (": " .. err) or "")
            end
            local n = 0
            for k, v in pairs(doc) do
                n = n + 1
                if n > util.MAX_FIELDS then return nil, too_many end
                if type(k) == "string" then fields[k] = as_text(v) end
            end
        else
            local more
            fields, more = util.form_decode(body)
            if more then return nil, too_many end
        end
    end
    for k, v in pairs(util.form_decode(request.query or "")) do
        if fields[k] == nil then fields[k] = v end
    end
    return fields
end

local SIGNERS = {
    md5hash = function(c, secret, text) return c.hex(c.md5(text .. secret)) end,
    md5 = function(c, secret, text) return c.hex(c.hmac_md5(secret, text)) end,
    sha1 = function(c, secret, text) return c.hex(c.hmac_sha1(secret, text)) end,
    sha256 = function(c, secret, text) return c.hex(c.hmac_sha256(secret, text)) end,
    sha512 = function(c, secret, text) return c.hex(c.hmac_sha512(secret, text)) end,
}

local SIGNATURE_HEX_LEN = { md5hash = 32, md5 = 32, sha1 = 40, sha256 = 64, sha512 = 128 }

-- "&name=value" for every parameter but sig, sorted by name (byte order),
-- '&' and '=' in names and values replaced by '_'. skip_empty leaves out
-- parameters whose value is empty or blank, as Vonage's Java library does;
-- its Python library keeps them. Which one Vonage's servers do is not
-- documented, so verify accepts either (both need the secret).
local function signed_text(fields, skip_empty)
    local names = {}
    for k, v in pairs(fields) do
        if k ~= "sig" and type(v) == "string" and not (skip_empty and not v:find("%S")) then
            names[#names + 1] = k
        end
    end
    table.sort(names, util.byte_less)
    local out = {}
    for i, k in ipairs(names) do
        out[i] = "&" .. k:gsub("[&=]", "_") .. "=" .. fields[k]:gsub("[&=]", "_")
    end
    return table.concat(out)
end

function vonage.verify(cfg, request)
    local secret = nonempty(cfg.signature_secret)
    if not secret then return true end
    local method = cfg.signature_method or "md5hash"
    local sign = type(method) == "string" and SIGNERS[method:lower()]
    if not sign then
        fail(cfg, "signature_method must be md5hash, md5, sha1, sha256 or sha512")
    end
    local fields, err = webhook_fields(request)
    if not fields then return false, err end
    local sig = nonempty(fields.sig)
    if not sig then return false, "missing sig" end
    -- Hex of the method's digest: another length is refused before the
    -- parameters are sorted and hashed.
    local want = SIGNATURE_HEX_LEN[method:lower()]
    if #sig ~= want then return false, "sig is not " .. want .. " hex digits" end
    local ts = fields.timestamp and fields.timestamp:match("^%s*(%d+)%s*$")
    ts = ts and math.tointeger(tonumber(ts))
    if not ts then return false, "missing timestamp" end
    if math.abs(os.time() - ts) > SIGNATURE_MAX_SKEW_S then
        return false, "timestamp more than 5 minutes from now"
    end
    local c = crypto()
    sig = sig:lower()
    local ok = false
    local texts = { signed_text(fields, true) }
    local with_empty = signed_text(fields, false)
    if with_empty ~= texts[1] then texts[2] = with_empty end
    for _, text in ipairs(texts) do
        -- md5hash is lower-case hex, the HMACs upper-case: compare lower.
        if c.equal(sign(c, secret, text):lower(), sig) then ok = true end
    end
    if not ok then return false, "sig does not match" end
    return true
end

local function answer()
    return util.answer(200, "")
end

function vonage.parse_status(cfg, request)
    local f, err = webhook_fields(request)
    if not f then error("vonage webhook: " .. err, 0) end
    local id = nonempty(f.messageId) or nonempty(f["message-id"])
    local raw = nonempty(f.status)
    if not id or not raw then error("vonage delivery receipt: needs messageId and status", 0) end
    local update = {
        provider_id = id,
        -- Ours: the same in the receipt of every part.
        message_id = nonempty(f["client-ref"]),
        status = DLR_STATUS[raw:lower()] or "unknown",
        raw_status = raw,
        at = util.parse_time(f["message-timestamp"], 0),
    }
    local code = nonempty(f["err-code"])
    if code and code ~= "0" then
        update.error = code:match("^%d+$") and ("err-code " .. code) or util.error_message("err-code", code)
    end
    local price = tonumber(f.price)
    if price then update.cost = price end
    return { update }, answer()
end

function vonage.parse_inbound(cfg, request)
    local f, err = webhook_fields(request)
    if not f then error("vonage webhook: " .. err, 0) end
    local from, to = nonempty(f.msisdn), nonempty(f.to)
    if not from or not to then error("vonage inbound message: needs msisdn and to", 0) end
    local message = {
        provider_message_id = nonempty(f.messageId),
        from = from,
        to = to,
        text = f.text or "",
        at = util.parse_time(f["message-timestamp"], 0),
    }
    if f.concat == "true" then
        message.concat_ref = nonempty(f["concat-ref"])
        message.part = math.tointeger(tonumber(f["concat-part"]))
        message.parts = math.tointeger(tonumber(f["concat-total"]))
    end
    return { message }, answer()
end

return vonage
