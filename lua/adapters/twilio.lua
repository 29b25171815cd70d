-- adapters/twilio: Twilio Programmable Messaging (docs/providers.md, Twilio). One
-- message per request.
--
-- The adapter contract (every adapter; the C core calls it, the adapter does
-- no I/O; docs/providers.md, Writing an adapter, has it all):
--
--   adapter.batch_size                  messages one request may carry (≥ 1)
--   adapter.options                     options beyond the common ones
--   adapter.build_send(cfg, msgs) → request {method, url, headers, body}
--   adapter.parse_send(cfg, msgs, response) → one outcome per message:
--       {ok=true, provider_id="..."}
--       {ok=false, retry=true, error="...", retry_after=seconds or nil}
--       {ok=false, retry=false, scope="provider"|"message", error="..."}
--   adapter.verify(cfg, request) → true | false, "reason"
--   adapter.parse_status(cfg, request) → updates, answer
--   adapter.parse_inbound(cfg, request) → messages, answer
--   Misuse (missing credentials, no sender at all) raises.
--
-- Options: account_sid + auth_token (HTTP Basic for sending; the auth token
-- also keys the webhook signature), messaging_service_sid (send through a
-- Messaging Service: its sender pool picks the From), sender (the default
-- From), status_callback (the StatusCallback URL sent with each message),
-- public_url (when status_callback is not set: StatusCallback is
-- public_url .. "/hooks/<provider name>/status"), url (API base, default
-- https://api.twilio.com).
--
-- Request: POST {url}/2010-04-01/Accounts/{account_sid}/Messages.json, form
-- To=+E.164, From and/or MessagingServiceSid, Body, StatusCallback; answer
-- 201 {"sid":"SM...","status":"queued","num_segments":"1",...}.
-- Errors: {"code":21211,"message":"...","more_info":"...","status":400}. The
-- Twilio code decides where it is known (ERROR_CLASS below), else the HTTP
-- status does (429/5xx retry, 401/403 next provider, other 4xx refused).
--
-- Webhooks (both answered with empty TwiML, Content-Type text/xml):
--   status:  form MessageSid, MessageStatus, ErrorCode (+ To, From, ...)
--   inbound: form MessageSid, From, To, Body
-- Signature: X-Twilio-Signature = base64(HMAC-SHA1(auth_token, url ..
-- every POST parameter as name .. value, sorted by name)). Twilio signs no
-- time stamp: replays are only caught by the core's deduplication by
-- MessageSid.

local util = require("adapters.util")

local twilio = {
    name = "twilio",
    batch_size = 1,
    options = { "account_sid", "auth_token", "messaging_service_sid", "status_callback", "public_url" },
}

local DEFAULT_URL = "https://api.twilio.com"
local EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

-- Twilio error codes (https://www.twilio.com/docs/api/errors/NNNNN) whose
-- meaning is surer than the HTTP status they come with. Codes not listed
-- fall back to the HTTP status.
local ERROR_CLASS = {
    [20003] = "provider", -- authentication failed (wrong account_sid / auth_token)
    [20404] = "provider", -- resource not found: a wrong account_sid or url, every message would fail
    [20429] = "retry",    -- too many requests
    [21211] = "message",  -- invalid 'To' phone number
    [21408] = "message",  -- sending to this region is not enabled (geo permissions, per destination)
    [21601] = "provider", -- 'From' is not an SMS-capable number of this account
    [21602] = "message",  -- message body is required
    [21606] = "provider", -- 'From' is not a valid message-capable Twilio number for this account
    [21608] = "message",  -- trial account: 'To' is not verified
    [21610] = "message",  -- the recipient replied STOP (unsubscribed)
    [21611] = "retry",    -- the 'From' queue holds more than 10 hours of messages
    [21612] = "message",  -- Twilio cannot route to this 'To' number
    [21614] = "message",  -- 'To' is not a mobile (SMS-capable) number
    [21617] = "message",  -- body exceeds the 1600-character limit
}

-- MessageStatus → normalised status. Twilio's own words
-- (docs: "Outbound Message Status in Status Callbacks"):
--   queued/accepted/scheduled: Twilio holds it, nothing sent yet → accepted
--   sending/sent: handed to (or being handed to) the carrier → sent
--   delivered, and read (a read receipt implies delivery) → delivered
--   undelivered: the carrier reported it could not deliver → undelivered
--   failed: "the message could not be sent" — it never left Twilio (queue
--     overflow, account suspended, ...): nothing reached a carrier, so it is
--     "rejected" rather than "undelivered"
--   canceled: a scheduled message canceled before sending → rejected (final,
--     never sent)
--   partially_delivered, receiving, received (inbound states): nothing final
--   about an outbound message → unknown
local STATUS = {
    queued = "accepted", accepted = "accepted", scheduled = "accepted",
    sending = "sent", sent = "sent",
    delivered = "delivered", read = "delivered",
    undelivered = "undelivered",
    failed = "rejected", canceled = "rejected",
}

local function fail(cfg, what)
    error("provider " .. tostring(cfg.name) .. " (twilio): " .. what, 0)
end

local function nonempty(v)
    return type(v) == "string" and v ~= "" and v or nil
end

-- The StatusCallback URL (util.status_callback): without one Twilio posts no
-- status callbacks for the message, unless a Messaging Service has its own.
local status_callback = util.status_callback

function twilio.build_send(cfg, msgs)
    util.check_batch("twilio", twilio.batch_size, msgs)
    local sid, token = nonempty(cfg.account_sid), nonempty(cfg.auth_token)
    if not sid or not token then fail(cfg, "needs account_sid and auth_token") end
    -- An Account SID is "AC" and 32 hex digits; anything else in a URL path
    -- would change the request's meaning.
    if not sid:match("^[A-Za-z0-9]+$") then fail(cfg, "account_sid must be letters and digits") end
    local base = util.base_url("twilio", cfg, DEFAULT_URL)
    local m = msgs[1]
    local from = nonempty(m.from) or nonempty(cfg.sender)
    local service = nonempty(cfg.messaging_service_sid)
    if not from and not service then fail(cfg, "needs a sender or messaging_service_sid") end
    -- With both, Twilio sends from From and applies the service's features.
    local body = util.form_encode({
        { "To", m.to },
        { "From", from },
        { "MessagingServiceSid", service },
        { "Body", m.text },
        { "StatusCallback", status_callback(cfg) },
    })
    return {
        method = "POST",
        url = base .. "/2010-04-01/Accounts/" .. sid .. "/Messages.json",
        headers = {
            ["Content-Type"] = "application/x-www-form-urlencoded",
            ["Accept"] = "application/json",
            ["Authorization"] = util.basic_auth(sid, token),
        },
        body = body,
    }
end

local function send_outcome(response)
    local status = response.status
    local body = response.body or ""
    local doc = util.decode(body)
    if type(doc) ~= "table" then doc = nil end
    if util.status_class(status) == "ok" then
        local id = doc and util.id_string(doc.sid)
        if not id then return util.no_id() end
        local outcome = { ok = true, provider_id = id }
        local parts = doc.num_segments and math.tointeger(tonumber(doc.num_segments))
        if parts and parts >= 1 then outcome.parts = parts end
        return outcome
    end
    local code = doc and math.tointeger(tonumber(doc.code))
    local class = (code and ERROR_CLASS[code]) or util.status_class(status)
    local prefix = "HTTP " .. tostring(status) .. (code and (" (" .. code .. ")") or "")
    return util.failure(class, util.error_message(prefix, util.error_text(doc, body)), response.headers)
end

function twilio.parse_send(cfg, msgs, response)
    -- One request carries one message.
    return util.repeat_outcome(send_outcome(response), msgs, response.headers)
end

-- ---- webhooks ----

local function crypto() return util.crypto("twilio") end

-- The URL as Twilio may have signed it: as the request came, and with the
-- default port added or removed. Twilio's own validators try both, because
-- which one Twilio signs depends on how the webhook URL was written in its
-- console; both are signed with the same secret, so accepting either gives
-- nothing away.
local function url_variants(url)
    local scheme, host, port, rest = url:match("^([hH][tT][tT][pP][sS]?)://([^/:?#]+):?(%d*)(.*)$")
    if not scheme then return { url } end
    local default = scheme:lower() == "https" and "443" or "80"
    if port == "" then
        return { url, scheme .. "://" .. host .. ":" .. default .. rest }
    elseif port == default then
        return { url, scheme .. "://" .. host .. rest }
    end
    return { url }
end

-- name .. value of every POST parameter, sorted by name then value, byte
-- order; a pair repeated with the same value counts once (as Twilio's
-- reference validators do).
local function signed_params(pairs_list)
    table.sort(pairs_list, function(a, b)
        if a[1] ~= b[1] then return util.byte_less(a[1], b[1]) end
        return util.byte_less(a[2], b[2])
    end)
    local out, last = {}, nil
    for _, p in ipairs(pairs_list) do
        local item = p[1] .. p[2]
        if not (last and last[1] == p[1] and last[2] == p[2]) then out[#out + 1] = item end
        last = p
    end
    return table.concat(out)
end

local function is_form(request)
    local ct = util.header(request.headers, "content-type")
    return type(ct) == "string" and ct:lower():find("application/x-www-form-urlencoded", 1, true) ~= nil
end

local SIGNATURE_LEN = 28

function twilio.verify(cfg, request)
    local token = nonempty(cfg.auth_token)
    if not token then return false, "auth_token is not set: cannot check X-Twilio-Signature" end
    local signature = util.header(request.headers, "x-twilio-signature")
    if type(signature) ~= "string" or signature == "" then return false, "missing X-Twilio-Signature" end
    -- Base64 of an HMAC-SHA1 is 28 characters: anything else is refused
    -- before the body is read or hashed.
    if #signature ~= SIGNATURE_LEN then return false, "X-Twilio-Signature is not 28 characters" end
    local url = request.url
    if type(url) ~= "string" or url == "" then return false, "no request url to check the signature against" end
    local c = crypto()
    local query = util.form_decode(request.query or url:match("%?([^#]*)") or "")
    local data_suffix = ""
    if query.bodySHA256 then
        -- A JSON (or other non-form) body: Twilio signs the URL alone, which
        -- carries the SHA-256 of the body in bodySHA256.
        local hash = c.hex(c.sha256(request.body or ""))
        if not c.equal(hash, query.bodySHA256:lower()) then return false, "body does not match bodySHA256" end
    elseif is_form(request) or (request.body or "") ~= "" then
        local list, more = util.form_pairs(request.body or "")
        if more then return false, "more than " .. util.MAX_FIELDS .. " parameters" end
        data_suffix = signed_params(list)
    end
    local ok = false
    for _, u in ipairs(url_variants(url)) do
        local expected = c.base64(c.hmac_sha1(token, u .. data_suffix))
        -- No early exit: every variant is checked in constant time.
        if c.equal(expected, signature) then ok = true end
    end
    if not ok then return false, "X-Twilio-Signature does not match" end
    return true
end

-- The webhook's parameters: the form the core parsed, else the body's.
local function webhook_fields(request)
    if type(request.form) == "table" then return request.form end
    if type(request.body) == "string" and request.body ~= "" then
        local fields, more = util.form_decode(request.body)
        if more then error("twilio webhook: more than " .. util.MAX_FIELDS .. " parameters", 0) end
        return fields
    end
    return {}
end

local function twiml_answer()
    return { status = 200, headers = { ["Content-Type"] = "text/xml" }, body = EMPTY_TWIML }
end

function twilio.parse_status(cfg, request)
    local f = webhook_fields(request)
    -- SmsSid/SmsStatus: the older names Twilio still sends beside the new ones.
    local id = nonempty(f.MessageSid) or nonempty(f.SmsSid)
    local raw = nonempty(f.MessageStatus) or nonempty(f.SmsStatus)
    if not id or not raw then error("twilio status callback: needs MessageSid and MessageStatus", 0) end
    local update = { provider_id = id, status = STATUS[raw:lower()] or "unknown", raw_status = raw }
    local code = nonempty(f.ErrorCode)
    if code and code ~= "0" then
        if code:match("^%d+$") then
            update.error = util.error_message("Twilio error " .. code, nonempty(f.ErrorMessage))
        else
            update.error = util.error_message("Twilio error", code)
        end
    end
    return { update }, twiml_answer()
end

function twilio.parse_inbound(cfg, request)
    local f = webhook_fields(request)
    local from, to = nonempty(f.From), nonempty(f.To)
    if not from or not to then error("twilio inbound message: needs From and To", 0) end
    local message = {
        provider_message_id = nonempty(f.MessageSid) or nonempty(f.SmsMessageSid) or nonempty(f.SmsSid),
        from = from,
        to = to,
        text = f.Body or "",
    }
    return { message }, twiml_answer()
end

return twilio
